//! Version vectors: for each origin node, the highest sequence number held contiguously.
//!
//! A node's version vector summarises its whole change log in O(origins), which is what lets
//! anti-entropy ask "what am I missing?" without naming documents. Entries only grow; a
//! `BTreeMap` keeps iteration (and therefore encoding and hashing) deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::change_log::Seq;
use crate::ids::NodeId;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<NodeId, Seq>);

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Highest contiguous seq held from `origin` (0: nothing).
    pub fn get(&self, origin: &NodeId) -> Seq {
        self.0.get(origin).copied().unwrap_or(0)
    }

    /// Records that every seq up to `seq` from `origin` is held. Never moves backwards.
    pub fn advance(&mut self, origin: &NodeId, seq: Seq) {
        let entry = self.0.entry(origin.clone()).or_insert(0);
        *entry = (*entry).max(seq);
    }

    /// Whether `(origin, seq)` is covered.
    pub fn contains(&self, origin: &NodeId, seq: Seq) -> bool {
        seq != 0 && seq <= self.get(origin)
    }

    /// Point-wise maximum.
    pub fn merge(&mut self, other: &VersionVector) {
        for (origin, seq) in &other.0 {
            self.advance(origin, *seq);
        }
    }

    /// Whether every entry of `other` is covered by `self`.
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(origin, seq)| self.get(origin) >= *seq)
    }

    /// For each origin where `self` is ahead of `other`, the range `(other's seq, self's seq]`.
    pub fn ahead_of(&self, other: &VersionVector) -> Vec<(NodeId, Seq, Seq)> {
        self.0
            .iter()
            .filter_map(|(origin, seq)| {
                let theirs = other.get(origin);
                (*seq > theirs).then(|| (origin.clone(), theirs, *seq))
            })
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, Seq)> {
        self.0.iter().map(|(origin, seq)| (origin, *seq))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sum of all entries: how many changes this vector covers.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

impl FromIterator<(NodeId, Seq)> for VersionVector {
    fn from_iter<T: IntoIterator<Item = (NodeId, Seq)>>(iter: T) -> Self {
        let mut vv = Self::new();
        for (origin, seq) in iter {
            vv.advance(&origin, seq);
        }
        vv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(i: u8) -> NodeId {
        NodeId::new(format!("node{i}")).unwrap()
    }

    fn vv_strategy() -> impl Strategy<Value = VersionVector> {
        proptest::collection::vec((0u8..5, 0u64..20), 0..6)
            .prop_map(|entries| entries.into_iter().map(|(n, s)| (node(n), s)).collect())
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_idempotent(a in vv_strategy(), b in vv_strategy(), c in vv_strategy()) {
            let mut ab = a.clone(); ab.merge(&b);
            let mut ba = b.clone(); ba.merge(&a);
            prop_assert_eq!(&ab, &ba);
            let mut ab_c = ab.clone(); ab_c.merge(&c);
            let mut bc = b.clone(); bc.merge(&c);
            let mut a_bc = a.clone(); a_bc.merge(&bc);
            prop_assert_eq!(&ab_c, &a_bc);
            let mut aa = a.clone(); aa.merge(&a);
            prop_assert_eq!(&aa, &a);
        }

        #[test]
        fn merge_dominates_both_inputs_and_never_goes_backwards(a in vv_strategy(), b in vv_strategy()) {
            let mut merged = a.clone();
            merged.merge(&b);
            prop_assert!(merged.dominates(&a));
            prop_assert!(merged.dominates(&b));
        }

        #[test]
        fn ahead_of_names_exactly_the_missing_ranges(a in vv_strategy(), b in vv_strategy()) {
            let mut caught_up = b.clone();
            for (origin, _from, to) in a.ahead_of(&b) {
                prop_assert!(to > b.get(&origin));
                caught_up.advance(&origin, to);
            }
            prop_assert!(caught_up.dominates(&a));
        }
    }

    #[test]
    fn contains_covers_exactly_the_prefix() {
        let mut vv = VersionVector::new();
        vv.advance(&node(1), 3);
        vv.advance(&node(1), 2);
        assert!(vv.contains(&node(1), 3));
        assert!(!vv.contains(&node(1), 4));
        assert!(!vv.contains(&node(1), 0));
        assert!(!vv.contains(&node(2), 1));
    }
}
