//! The one source of randomness in a simulated run.
//!
//! Every random choice (delays, loss, duplication, fault times, workload, the replicas' peer
//! picks) is drawn from a [`SimRng`] seeded by the run's single `u64` seed, so a seed replays
//! exactly. SplitMix64 is tiny, fast and has no platform-dependent behaviour.

use rand_core::RngCore;
use statemesh_protocol::seeded_rng::SplitMix64;

/// The protocol's SplitMix64 with the draws a simulation needs; it implements `RngCore`, so
/// it can be handed to `Replica::handle`.
#[derive(Debug, Clone)]
pub struct SimRng(SplitMix64);

impl SimRng {
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is irrelevant at these sizes.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in the inclusive range `[lo, hi]`.
    pub fn range(&mut self, [lo, hi]: [i64; 2]) -> i64 {
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

impl RngCore for SimRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}
