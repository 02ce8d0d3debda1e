//! The `statemesh` binary: see `statemesh --help`.

fn main() -> std::process::ExitCode {
    statemesh::cli::run()
}
