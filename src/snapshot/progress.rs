//! Progress reports from long snapshot work, so a caller (the CLI) can show how far it got.
//!
//! Work reports through a plain callback rather than printing: the node and the snapshot code
//! stay free of terminal concerns, and the API, which has no one to show progress to, passes
//! a callback that ignores it.

use std::fmt;

/// A step of creating or restoring a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading documents from storage (documents).
    Reading,
    /// Encoding, compressing and writing the file (documents, reported at the end).
    Writing,
    /// Reading the file and checking its checksum (bytes).
    Verifying,
    /// Decompressing and decoding the verified payload (documents, reported at the end).
    Decoding,
    /// Loading every document's Automerge bytes before anything is written (documents).
    Checking,
    /// Writing each document's restoring change (documents).
    Restoring,
    /// Deleting live documents the snapshot does not contain (documents examined).
    Deleting,
}

impl Phase {
    /// What `done` and `total` count.
    pub fn unit(self) -> &'static str {
        match self {
            Phase::Verifying => "bytes",
            _ => "documents",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Reading => "reading documents",
            Phase::Writing => "writing the file",
            Phase::Verifying => "verifying the checksum",
            Phase::Decoding => "decoding",
            Phase::Checking => "checking documents",
            Phase::Restoring => "restoring documents",
            Phase::Deleting => "deleting documents absent from the snapshot",
        })
    }
}

/// `done` of `total` units of `phase` are complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub done: u64,
    pub total: u64,
}

impl Progress {
    pub fn new(phase: Phase, done: u64, total: u64) -> Self {
        Self { phase, done, total }
    }
}

/// A callback that ignores progress (the API and the scheduler have no one to show it to).
pub fn ignore(_: Progress) {}
