//! Transactions are all-or-nothing: the two documents of the pair, which only transactions
//! write and always to the same value, are seen equal by every transaction that reads both.
//! A transaction half applied, or a read that sees one document before and the other after
//! a transaction, shows up as a snapshot with two different values.

use super::Violation;
use crate::strong_docs::record::PairRead;

pub const PROPERTY: &str = "txn_atomicity";

/// The first snapshot that saw the pair differ, if any.
pub fn check(snapshots: &[PairRead]) -> Option<Violation> {
    snapshots.iter().find(|s| s.values[0] != s.values[1]).map(|s| {
        Violation::new(
            PROPERTY,
            format!(
                "client {} read the pair as {:?} and {:?} in one transaction [{} .. {} ns]",
                s.client, s.values[0], s.values[1], s.invoke_ns, s.complete_ns
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(a: Option<&str>, b: Option<&str>) -> PairRead {
        PairRead { client: 1, values: [a.map(str::to_owned), b.map(str::to_owned)], invoke_ns: 0, complete_ns: 1 }
    }

    #[test]
    fn a_torn_pair_is_reported_and_an_equal_one_is_not() {
        assert_eq!(check(&[snapshot(Some("t1"), Some("t1")), snapshot(None, None)]), None);
        let violation = check(&[snapshot(Some("t1"), Some("t2"))]).expect("torn");
        assert_eq!(violation.property, PROPERTY);
    }
}
