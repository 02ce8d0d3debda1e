//! Helpers shared by the simulation tests.
// Each test binary uses only some of them.
#![allow(dead_code)]

use std::path::PathBuf;

use simulations::{run_seed, RunOptions, Scenario};

pub fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name);
    Scenario::load(&path).expect("shipped scenarios load")
}

/// Runs `seeds` of `scenario` and describes every seed that broke a property or made a peer
/// reject something (an honest run never sends a peer anything it must reject).
pub fn failing_seeds(scenario: &Scenario, seeds: impl Iterator<Item = u64>) -> Vec<String> {
    seeds
        .map(|seed| run_seed(scenario, seed, &RunOptions::default()))
        .filter_map(|o| match (o.violation, o.stats.rejects) {
            (Some(v), _) => Some(format!("seed {}: {v}", o.seed)),
            (None, 0) => None,
            (None, rejects) => Some(format!("seed {}: {rejects} rejects", o.seed)),
        })
        .collect()
}
