//! Helpers the core's benchmarks share.

use std::time::Instant;

/// Runs `step` `iterations` times and returns the wall time per call, in microseconds.
pub fn micros_per(iterations: u32, mut step: impl FnMut(u32)) -> f64 {
    let started = Instant::now();
    for i in 0..iterations {
        step(i);
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
}
