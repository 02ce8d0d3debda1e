//! The runner's contract: exit status, failure report and the reproduce command.

use std::process::Command;

fn simulations(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_simulations")).args(args).output().expect("runner starts");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

const SMOKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml");

#[test]
fn a_passing_seed_exits_zero_and_reports_speed() {
    let (ok, out) = simulations(&["--check-determinism", "reproduce", "3", SMOKE]);
    assert!(ok, "{out}");
    assert!(out.contains("1 seeds, 0 failed") && out.contains("simulated in"), "{out}");
}

#[test]
fn a_failing_seed_exits_non_zero_with_a_full_report() {
    let (ok, out) = simulations(&["--plant-bug", "drop-sync-requests", "reproduce", "3", SMOKE]);
    assert!(!ok, "{out}");
    for needle in ["FAILED seed 3 scenario smoke", "property: convergence", "VIOLATION", "reproduce: cargo run"] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert!(out.contains(&format!("--plant-bug drop-sync-requests reproduce 3 {SMOKE}")), "{out}");
}

#[test]
fn a_bad_scenario_path_is_an_error() {
    let (ok, _) = simulations(&["run", "/nonexistent/scenario.toml"]);
    assert!(!ok);
}
