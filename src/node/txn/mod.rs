//! Multi-document transactions: the atomic section every form is built on, the etcd-shaped
//! one-shot form, and interactive transactions under the configured concurrency model.

mod atomic;
mod compare;
mod interactive;

pub(crate) use atomic::apply_op;
pub use atomic::TxnOp;
pub use compare::{Compare, CompareOp, CompareTarget, OnceOutcome, StepResult, TxnStep};
pub use interactive::{Transactions, TxnInfo, TxnRead};
