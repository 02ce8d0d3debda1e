//! The smoke scenario passes for every seed it lists.

mod common;

use simulations::{run_seed, RunOptions};

#[test]
fn smoke_scenario_passes_for_its_seeds() {
    let scenario = common::scenario("smoke.toml");
    let failures = common::failing_seeds(&scenario, scenario.seed_list());
    assert!(failures.is_empty(), "failing seeds:\n{}", failures.join("\n"));
}

#[test]
fn the_smoke_workload_really_writes_and_faults_really_happen() {
    // Guards against a harness that passes because nothing happens.
    let scenario = common::scenario("smoke.toml");
    let outcome = run_seed(&scenario, 7, &RunOptions::default());
    assert!(outcome.violation.is_none(), "{:?}", outcome.violation);
    assert!(outcome.stats.writes_acknowledged > 50, "{:?}", outcome.stats);
    assert!(outcome.stats.crashes >= 1, "{:?}", outcome.stats);
    assert!(outcome.stats.messages_lost > 0, "{:?}", outcome.stats);
    assert!(outcome.sim_ms >= scenario.duration_ms);
}
