//! The tokio runtime the strong worlds run on: one thread, paused (virtual) time, and, when
//! built with `--cfg tokio_unstable` (the workspace's `.cargo/config.toml`), its random
//! number generator seeded from the run's seed.
//!
//! That generator picks which ready branch of a `tokio::select!` is polled first, and
//! openraft's loops are full of them: unseeded, two runs of one seed take different branches
//! whenever several are ready at the same virtual instant, and their schedules drift apart.

use tokio::runtime::Runtime;

/// A current-thread runtime with paused time, its `select!` choices derived from `seed`.
pub fn seeded(seed: u64) -> Result<Runtime, String> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_time().start_paused(true);
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()));
    #[cfg(not(tokio_unstable))]
    let _ = seed;
    builder.build().map_err(|e| e.to_string())
}
