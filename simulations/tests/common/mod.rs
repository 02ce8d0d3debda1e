//! Helpers shared by the simulation tests.

use std::path::PathBuf;

use simulations::Scenario;

pub fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name);
    Scenario::load(&path).expect("shipped scenarios load")
}
