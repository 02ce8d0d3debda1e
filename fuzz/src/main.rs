//! Fuzzing on the stable toolchain: every decoder of outside bytes, for a given time each.
//!
//! cargo-fuzz needs a nightly compiler for libFuzzer's coverage instrumentation; this driver
//! needs nothing but the workspace. It mutates real encodings (see `targets.rs`), runs each
//! input through the node's own decoding function and counts two kinds of failure:
//!
//! - a panic (decoders must answer hostile bytes with an error);
//! - a single allocation larger than the target's input limit (a forged length must never
//!   become an allocation; see `alloc.rs`).
//!
//! ```text
//! cargo run --release -p statemesh-fuzz -- all --seconds 60
//! cargo run --release -p statemesh-fuzz -- wire-message --seconds 10 --seed 7
//! cargo run --release -p statemesh-fuzz -- --reproduce wire-message fuzz/crashes/wire-message-….bin
//! ```
//!
//! Failing inputs are written to `fuzz/crashes/`; the exit status is non-zero if any target
//! failed. Each input is also written to `fuzz/crashes/<target>.last` before it runs, so an
//! allocation the allocator must refuse outright (which aborts the process) still leaves its
//! reproducer behind.

mod alloc;
mod mutate;
mod targets;

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use targets::Target;

#[global_allocator]
static ALLOCATOR: alloc::CountingAllocator = alloc::CountingAllocator;

/// Longest mutated input; real messages are larger, but forged lengths need few bytes.
const INPUT_BYTES_MAX: usize = 64 * 1024;
/// Accepted inputs join the corpus up to this many entries.
const CORPUS_MAX: usize = 4096;
/// Allocations above this are refused outright rather than attempted (see `alloc.rs`).
const REFUSE_ABOVE_BYTES: usize = 1 << 30;
/// Failing inputs saved per target.
const SAVED_FAILURES_MAX: usize = 10;

thread_local! {
    static PANIC_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

struct Options {
    targets: Vec<Target>,
    seconds: u64,
    seed: u64,
}

fn usage() -> String {
    let names: Vec<&str> = targets::all().iter().map(|t| t.name).collect();
    format!(
        "usage: statemesh-fuzz <target|all> [--seconds N] [--seed S] [--skip TARGET]...\n       statemesh-fuzz --reproduce <target> <file>\ntargets: {}",
        names.join(", ")
    )
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        PANIC_MESSAGE.with(|slot| *slot.borrow_mut() = Some(info.to_string()));
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--reproduce") {
        return match (args.get(1), args.get(2)) {
            (Some(name), Some(file)) => reproduce(name, &PathBuf::from(file)),
            _ => fail(&usage()),
        };
    }
    let options = match parse(&args) {
        Ok(options) => options,
        Err(message) => return fail(&format!("{message}\n{}", usage())),
    };
    println!("seed {} (rerun with --seed {}), {} s per target", options.seed, options.seed, options.seconds);
    println!(
        "{:<16} {:>10} {:>10} {:>7} {:>12} {:>9}",
        "target", "execs", "accepted", "corpus", "max alloc", "failures"
    );
    let mut failed = false;
    for target in &options.targets {
        let report = fuzz(target, Duration::from_secs(options.seconds), options.seed);
        println!(
            "{:<16} {:>10} {:>10} {:>7} {:>12} {:>9}",
            target.name, report.execs, report.accepted, report.corpus, report.largest_alloc, report.failures
        );
        failed |= report.failures > 0;
    }
    if failed {
        println!("FAILED: failing inputs are in {}", crash_dir().display());
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(2)
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut args = args.iter();
    let which = args.next().ok_or("no target named")?;
    let mut seconds = 10;
    let mut seed = rand::thread_rng().gen();
    let mut skip = Vec::new();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag} {value}: {e}"));
        match flag.as_str() {
            "--seconds" => seconds = number()?,
            "--seed" => seed = number()?,
            "--skip" => skip.push(value.clone()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let targets: Vec<Target> = targets::all()
        .into_iter()
        .filter(|t| (which == "all" || t.name == which) && !skip.iter().any(|name| name == t.name))
        .collect();
    if targets.is_empty() {
        return Err(format!("no target called {which}"));
    }
    Ok(Options { targets, seconds, seed })
}

struct Report {
    execs: u64,
    accepted: u64,
    corpus: usize,
    largest_alloc: usize,
    failures: u64,
}

/// What one run of a target on one input did.
enum Outcome {
    Accepted,
    Refused,
    Panicked(String),
    OverAllocated(usize),
}

fn run_once(target: &Target, input: &[u8]) -> (Outcome, usize) {
    alloc::arm(REFUSE_ABOVE_BYTES);
    let result = std::panic::catch_unwind(|| (target.run)(input));
    let largest = alloc::disarm();
    let outcome = match result {
        Err(_) => Outcome::Panicked(PANIC_MESSAGE.with(|slot| slot.borrow_mut().take()).unwrap_or_default()),
        Ok(_) if largest > target.alloc_limit => Outcome::OverAllocated(largest),
        Ok(true) => Outcome::Accepted,
        Ok(false) => Outcome::Refused,
    };
    (outcome, largest)
}

fn fuzz(target: &Target, budget: Duration, seed: u64) -> Report {
    let mut rng = StdRng::seed_from_u64(seed ^ hash(target.name.as_bytes()));
    let mut corpus = (target.seeds)();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let mut known: HashSet<u64> = corpus.iter().map(|input| hash(input)).collect();
    let last = open_last(target.name);
    let mut report = Report { execs: 0, accepted: 0, corpus: 0, largest_alloc: 0, failures: 0 };
    let started = Instant::now();
    // The seeds themselves first, unmutated; then mutations until the time is up.
    let mut pending: Vec<Vec<u8>> = corpus.clone();
    loop {
        let input = match pending.pop() {
            Some(input) => input,
            None if started.elapsed() >= budget => break,
            None => {
                let mut input = corpus[rng.gen_range(0..corpus.len())].clone();
                let other = &corpus[rng.gen_range(0..corpus.len())];
                mutate::mutate(&mut rng, &mut input, other, INPUT_BYTES_MAX);
                input
            }
        };
        if let Some(file) = &last {
            // Best effort: the reproducer for an abort. A failed write only loses that.
            let _ = file.set_len(0).and_then(|()| file.write_all_at(&input, 0));
        }
        let (outcome, largest) = run_once(target, &input);
        report.execs += 1;
        report.largest_alloc = report.largest_alloc.max(largest);
        match outcome {
            Outcome::Accepted => {
                report.accepted += 1;
                if corpus.len() < CORPUS_MAX && known.insert(hash(&input)) {
                    corpus.push(input);
                }
            }
            Outcome::Refused => {}
            Outcome::Panicked(message) => {
                report.failures += 1;
                save_failure(target, &input, report.failures, &format!("panic: {message}"));
            }
            Outcome::OverAllocated(bytes) => {
                report.failures += 1;
                let why = format!("allocated {bytes} bytes at once, limit {}", target.alloc_limit);
                save_failure(target, &input, report.failures, &why);
            }
        }
    }
    report.corpus = corpus.len();
    report
}

fn reproduce(name: &str, file: &PathBuf) -> ExitCode {
    let Some(target) = targets::all().into_iter().find(|t| t.name == name) else {
        return fail(&usage());
    };
    let input = match std::fs::read(file) {
        Ok(input) => input,
        Err(e) => return fail(&format!("{}: {e}", file.display())),
    };
    let (outcome, largest) = run_once(&target, &input);
    let (verdict, failed) = match outcome {
        Outcome::Accepted => ("accepted".to_owned(), false),
        Outcome::Refused => ("refused".to_owned(), false),
        Outcome::Panicked(message) => (format!("PANIC: {message}"), true),
        Outcome::OverAllocated(bytes) => {
            (format!("OVER-ALLOCATED: {bytes} bytes (limit {})", target.alloc_limit), true)
        }
    };
    println!("{name}: {} input bytes, largest allocation {largest} bytes: {verdict}", input.len());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn crash_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crashes")
}

fn open_last(name: &str) -> Option<File> {
    std::fs::create_dir_all(crash_dir()).ok()?;
    File::create(crash_dir().join(format!("{name}.last"))).ok()
}

fn save_failure(target: &Target, input: &[u8], count: u64, why: &str) {
    let path = crash_dir().join(format!("{}-{:016x}.bin", target.name, hash(input)));
    if count as usize <= SAVED_FAILURES_MAX {
        let saved = std::fs::write(&path, input).map(|()| path.display().to_string());
        println!("  {}: {why} ({})", target.name, saved.unwrap_or_else(|e| format!("not saved: {e}")));
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}
