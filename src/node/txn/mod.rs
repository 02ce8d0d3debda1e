//! Multi-document transactions: the atomic section every form is built on, the etcd-shaped
//! one-shot form, and interactive transactions under the configured concurrency model.

mod atomic;
mod compare;
mod interactive;

pub use atomic::{AtomicView, PlannedDoc, PlannedSection, TxnOp};
pub use compare::{
    changed_entry, run_once, txn_keys, Compare, CompareOp, CompareTarget, OnceOutcome, StepResult, TxnStep,
};
pub use interactive::{Transactions, TxnInfo, TxnRead};
