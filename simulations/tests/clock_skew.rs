//! Nodes whose clocks are skewed and drift still converge and lose nothing, and the clocks
//! really reach the replicas (the schedule differs from the same seed without skew).

mod common;

use simulations::{run_seed, RunOptions};

#[test]
fn skewed_and_drifting_clocks_keep_convergence_and_durability() {
    let scenario = common::scenario("clock_skew.toml");
    let failures = common::failing_seeds(&scenario, 0..20);
    assert!(failures.is_empty(), "failing seeds:\n{}", failures.join("\n"));
}

#[test]
fn the_clocks_change_what_the_replicas_do() {
    let skewed = common::scenario("clock_skew.toml");
    let mut perfect = skewed.clone();
    perfect.faults.clock_skew_ms = 0;
    perfect.faults.clock_drift_ppm = 0;
    let differ = (0..5)
        .filter(|seed| {
            let a = run_seed(&skewed, *seed, &RunOptions::default());
            let b = run_seed(&perfect, *seed, &RunOptions::default());
            a.trace_hash != b.trace_hash
        })
        .count();
    assert_eq!(differ, 5, "skewed clocks left {} of 5 schedules unchanged", 5 - differ);
}
