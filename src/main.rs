//! The `statemesh` binary: see `statemesh --help`.

/// glibc's allocator spends a large share of a write's CPU under many threads; mimalloc's
/// per-thread heaps keep allocation off the critical path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    statemesh::cli::run()
}
