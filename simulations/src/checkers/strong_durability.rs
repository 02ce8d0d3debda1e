//! No acknowledged strong write is lost, whatever restarts happened: once the faults heal,
//! every voter applies at least up to the highest Raft index any client was acknowledged,
//! and every voter then holds the same value for every document.

use super::Violation;

pub const PROPERTY: &str = "strong_durability";

/// What one voter holds after the run has healed and settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub voter: usize,
    pub applied: Option<u64>,
    /// `(key, value)` for every document the run wrote, in key order.
    pub values: Vec<(String, Option<String>)>,
}

/// The first voter that lost an acknowledged write or diverged, if any.
pub fn check(highest_acknowledged: Option<u64>, voters: &[Settled]) -> Option<Violation> {
    if let Some(owed) = highest_acknowledged {
        if let Some(behind) = voters.iter().find(|v| v.applied.is_none_or(|applied| applied < owed)) {
            return Some(Violation::new(
                PROPERTY,
                format!(
                    "voter {} applied up to {:?} after healing, short of index {owed} a client was acknowledged",
                    behind.voter, behind.applied
                ),
            ));
        }
    }
    let first = voters.first()?;
    voters.iter().find(|v| v.values != first.values).map(|v| {
        Violation::new(
            PROPERTY,
            format!("voter {} holds {:?} but voter {} holds {:?}", v.voter, v.values, first.voter, first.values),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled(voter: usize, applied: u64, value: &str) -> Settled {
        Settled { voter, applied: Some(applied), values: vec![("k".into(), Some(value.into()))] }
    }

    #[test]
    fn a_voter_short_of_an_acknowledged_index_or_diverging_is_reported() {
        assert_eq!(check(Some(5), &[settled(0, 5, "a"), settled(1, 6, "a")]), None);
        assert!(check(Some(5), &[settled(0, 5, "a"), settled(1, 4, "a")]).is_some());
        assert!(check(Some(5), &[settled(0, 5, "a"), settled(1, 5, "b")]).is_some());
    }
}
