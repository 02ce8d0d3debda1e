//! The event trace: a running hash of every line plus the last lines kept for failure reports.
//!
//! Hashing every line (FNV-1a) instead of storing it keeps long runs cheap while still letting
//! `--check-determinism` compare two runs of a seed event by event.

use std::collections::VecDeque;

/// How many trailing lines a failure report shows.
pub const TAIL_LINES: usize = 30;

pub struct Trace {
    hash: u64,
    lines: u64,
    tail: VecDeque<String>,
    /// Print every line as it happens (`reproduce --trace`).
    echo: bool,
}

impl Trace {
    pub fn new(echo: bool) -> Self {
        Self { hash: 0xcbf2_9ce4_8422_2325, lines: 0, tail: VecDeque::with_capacity(TAIL_LINES), echo }
    }

    pub fn line(&mut self, now_ms: i64, text: String) {
        let line = format!("{now_ms:>9} {text}");
        self.hash = fnv(self.hash, line.as_bytes());
        self.hash = fnv(self.hash, b"\n");
        self.lines += 1;
        if self.echo {
            println!("{line}");
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }
}

/// FNV-1a over `bytes`, continuing from `hash`.
pub fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
