//! A seed replays exactly; different seeds explore different runs.

mod common;

use simulations::{run_seed, RunOptions};

#[test]
fn the_same_seed_gives_the_same_trace() {
    for name in ["smoke.toml", "edge_offline.toml"] {
        let scenario = common::scenario(name);
        for seed in [0, 1, 12_345] {
            let a = run_seed(&scenario, seed, &RunOptions::default());
            let b = run_seed(&scenario, seed, &RunOptions::default());
            assert_eq!((a.trace_hash, a.trace_lines), (b.trace_hash, b.trace_lines), "{name} seed {seed}");
            assert_eq!(a.sim_ms, b.sim_ms);
        }
    }
}

#[test]
fn different_seeds_give_different_traces() {
    let scenario = common::scenario("smoke.toml");
    let mut hashes: Vec<u64> =
        (0..10).map(|seed| run_seed(&scenario, seed, &RunOptions::default()).trace_hash).collect();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), 10);
}
