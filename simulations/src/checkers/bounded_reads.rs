//! Bounded reads are never older than their bound; no weak read invents a value.
//!
//! A bounded read with bound `B` invoked at `t` must reflect every strong write acknowledged
//! before `t - B`. Values are unique and every acknowledged write carries its Raft index, so
//! "older" is decidable: the value read must come from a write at an index no lower than
//! that of any write to the key acknowledged before `t - B` (an absent document counts as
//! index 0). A value from a write whose outcome the client never learnt has no known index
//! and is not judged. Eventual reads have no bound, but like bounded ones they must return a
//! value some write of that key actually carried.

use std::collections::BTreeMap;

use super::Violation;
use crate::strong_docs::record::{WeakLevel, WeakRead, WriteRecord};

pub const PROPERTY: &str = "bounded_reads";

/// The first read that broke the property, if any.
pub fn check(writes: &[WriteRecord], reads: &[WeakRead]) -> Option<Violation> {
    let mut by_key: BTreeMap<&str, Vec<&WriteRecord>> = BTreeMap::new();
    for write in writes {
        by_key.entry(write.key.as_str()).or_default().push(write);
    }
    for read in reads {
        let key_writes = by_key.get(read.key.as_str()).map(Vec::as_slice).unwrap_or_default();
        let read_index = match &read.result {
            None => Some(0),
            Some(value) => match key_writes.iter().find(|w| &w.value == value) {
                Some(write) => write.index,
                None => {
                    return Some(Violation::new(
                        PROPERTY,
                        format!(
                            "{} read {:?} from {}, which no write of that key carried",
                            describe(read),
                            value,
                            read.key
                        ),
                    ))
                }
            },
        };
        let WeakLevel::Bounded { max_staleness_ns } = read.level else { continue };
        let Some(read_index) = read_index else { continue };
        let horizon = read.invoke_ns.saturating_sub(max_staleness_ns);
        let newest_owed = key_writes
            .iter()
            .filter(|w| w.acknowledged && w.complete_ns < horizon)
            .filter_map(|w| w.index.map(|index| (index, *w)))
            .max_by_key(|(index, _)| *index);
        if let Some((owed, write)) = newest_owed {
            if read_index < owed {
                return Some(Violation::new(
                    PROPERTY,
                    format!(
                        "{} of {} returned {:?} (index {read_index}), older than {:?} (index {owed}) acknowledged at \
                         {} ns, before the bound's horizon {horizon} ns",
                        describe(read),
                        read.key,
                        read.result,
                        write.value,
                        write.complete_ns
                    ),
                ));
            }
        }
    }
    None
}

fn describe(read: &WeakRead) -> String {
    let level = match read.level {
        WeakLevel::Bounded { max_staleness_ns } => format!("bounded read (max {} ms)", max_staleness_ns / 1_000_000),
        WeakLevel::Eventual => "eventual read".to_owned(),
    };
    format!("client {}'s {level} on voter {} [{} .. {} ns]", read.client, read.voter, read.invoke_ns, read.complete_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(value: &str, index: u64, complete_ns: u64) -> WriteRecord {
        WriteRecord {
            key: "k".into(),
            value: value.into(),
            acknowledged: true,
            index: Some(index),
            invoke_ns: complete_ns - 1,
            complete_ns,
        }
    }

    fn bounded(result: Option<&str>, invoke_ns: u64, bound_ns: u64) -> WeakRead {
        WeakRead {
            key: "k".into(),
            client: 1,
            voter: 0,
            level: WeakLevel::Bounded { max_staleness_ns: bound_ns },
            result: result.map(str::to_owned),
            invoke_ns,
            complete_ns: invoke_ns + 1,
        }
    }

    #[test]
    fn a_read_older_than_its_bound_is_reported() {
        let writes = [write("a", 3, 10), write("b", 5, 20)];
        let violation = check(&writes, &[bounded(Some("a"), 100, 50)]).expect("a stale read");
        assert_eq!(violation.property, PROPERTY);
        assert!(violation.detail.contains("\"b\""), "{}", violation.detail);
        assert!(check(&writes, &[bounded(None, 100, 50)]).is_some(), "absent after an acknowledged write");
    }

    #[test]
    fn a_read_within_its_bound_passes() {
        let writes = [write("a", 3, 10), write("b", 5, 80)];
        assert_eq!(check(&writes, &[bounded(Some("a"), 100, 50), bounded(Some("b"), 100, 50)]), None);
        assert_eq!(check(&writes, &[bounded(None, 100, 95)]), None);
    }

    #[test]
    fn a_value_nobody_wrote_is_reported_at_any_level() {
        let read = WeakRead { level: WeakLevel::Eventual, ..bounded(Some("zz"), 100, 0) };
        assert!(check(&[write("a", 3, 10)], &[read]).is_some());
    }
}
