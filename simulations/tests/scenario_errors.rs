//! Broken scenario files are refused with an error that names the key.

use simulations::Scenario;

fn load_text(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("statemesh-sim-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).expect("temp file written");
    let error = Scenario::load(&path).err().map(|e| e.to_string()).unwrap_or_default();
    std::fs::remove_file(&path).expect("temp file removed");
    error
}

fn smoke_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml"))
        .expect("smoke scenario readable")
}

#[test]
fn the_shipped_smoke_scenario_loads() {
    assert_eq!(load_text("ok", &smoke_text()), "");
}

#[test]
fn an_out_of_range_value_names_its_key() {
    let text = smoke_text().replace("loss_percent = [0, 15]", "loss_percent = [20, 15]");
    let error = load_text("range", &text);
    assert!(error.contains("network.loss_percent"), "{error}");
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    let text = smoke_text().replace("[workload]\n", "[workload]\nwritez = 3\n");
    let error = load_text("unknown", &text);
    assert!(error.contains("writez"), "{error}");
}

#[test]
fn an_unknown_partition_mode_is_refused() {
    let text = smoke_text().replace("mode = \"halves\"", "mode = \"thirds\"");
    let error = load_text("mode", &text);
    assert!(error.contains("thirds"), "{error}");
}

#[test]
fn an_impossible_clock_drift_names_its_key() {
    let text = smoke_text().replace("[network]\n", "[faults]\nclock_drift_ppm = 2_000_000\n\n[network]\n");
    let error = load_text("drift", &text);
    assert!(error.contains("faults.clock_drift_ppm"), "{error}");
}
