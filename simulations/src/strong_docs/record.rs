//! What the clients of a strong-document run saw, in the shapes the checkers read.
//!
//! Strong operations (writes, compare-and-swaps, transactions, strong reads) go into the
//! linearizability history; everything the other checkers need beside it is kept here: the
//! Raft index each acknowledged write landed at (so "older" is decidable for reads that are
//! not linearizable), the bounded and eventual reads, and the pair snapshots read by
//! transactions.

/// One write attempt on one key: a put, a compare-and-swap or a transaction's put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRecord {
    pub key: String,
    pub value: String,
    /// Acknowledged: committed and applied before the answer came.
    pub acknowledged: bool,
    /// The Raft index it is at (acknowledged writes only).
    pub index: Option<u64>,
    pub invoke_ns: u64,
    pub complete_ns: u64,
}

/// The level a non-linearizable read asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeakLevel {
    /// `bounded` with this maximum staleness.
    Bounded {
        max_staleness_ns: u64,
    },
    Eventual,
}

/// A bounded or eventual read that was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeakRead {
    pub key: String,
    pub client: u64,
    pub voter: usize,
    pub level: WeakLevel,
    /// The value read (`None`: the document does not exist there).
    pub result: Option<String>,
    pub invoke_ns: u64,
    pub complete_ns: u64,
}

/// Both documents of the pair, read in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRead {
    pub client: u64,
    pub values: [Option<String>; 2],
    pub invoke_ns: u64,
    pub complete_ns: u64,
}
