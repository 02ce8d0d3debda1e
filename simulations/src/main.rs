//! The simulation runner: `run`, `sweep` and `reproduce` scenarios from the command line, and
//! `check-history` a recorded client history for linearizability.
//!
//! Every failure prints the seed, the scenario, the violated property, the trace tail and
//! the exact command that replays it; the process exits non-zero if any seed failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use simulations::linearizability::{self, CheckOptions, Verdict};
use simulations::strong::StrongSettings;
use simulations::strong_docs::DocsSettings;
use simulations::{run_seed, Outcome, PlantedBug, RunOptions, Scenario};

#[derive(Parser)]
#[command(about = "Deterministic simulation of statemesh replication")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Run every seed twice and fail if the two event traces differ.
    #[arg(long, global = true)]
    check_determinism: bool,
    /// Plant a harness-side bug, to see a checker catch it.
    #[arg(long, global = true, value_enum)]
    plant_bug: Option<PlantedBug>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the seeds the scenario lists.
    Run { scenario: PathBuf },
    /// Run `count` consecutive seeds starting at `--from`.
    Sweep {
        count: u64,
        #[arg(default_value = default_scenario())]
        scenario: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        from: u64,
    },
    /// Replay one seed exactly, printing its whole trace with `--trace`.
    Reproduce {
        seed: u64,
        #[arg(default_value = default_scenario())]
        scenario: PathBuf,
        #[arg(long)]
        trace: bool,
    },
    /// Check a JSON-lines client history for linearizability, key by key. Exits 0 when every
    /// key is linearizable, 1 when one is not, 2 on a bad file or when the search gave up.
    CheckHistory {
        /// One operation per line, as JSON (see the simulations README).
        file: PathBuf,
        /// Search steps allowed per key before giving up on it.
        #[arg(long, default_value_t = linearizability::DEFAULT_BUDGET_STEPS)]
        budget_steps: u64,
    },
    /// Run the strong path for documents (real nodes and openraft voters, isolations,
    /// restarts, concurrent clients) for `count` seeds from `--from` and check each run:
    /// linearizability, bounded reads, transaction atomicity, durability.
    Strong {
        #[arg(default_value_t = 20)]
        count: u64,
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Run the faster register-map model (`KvApplier`) instead of the documents.
        #[arg(long)]
        registers: bool,
        /// Deliver the voters' RPCs at once instead of after a seeded delay.
        #[arg(long)]
        no_rpc_delay: bool,
    },
}

fn default_scenario() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/smoke.toml")
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let cli = Cli::parse();
    let (path, seeds, echo): (PathBuf, Vec<u64>, bool) = match &cli.command {
        Command::Run { scenario } => {
            let s = load(scenario)?;
            (scenario.clone(), s.seed_list().collect(), false)
        }
        Command::Sweep { count, scenario, from } => {
            (scenario.clone(), (*from..from.saturating_add(*count)).collect(), false)
        }
        Command::Reproduce { seed, scenario, trace } => (scenario.clone(), vec![*seed], *trace),
        Command::CheckHistory { file, budget_steps } => return check_history(file, *budget_steps),
        Command::Strong { count, from, registers: true, .. } => {
            let settings = StrongSettings {
                stale_reads: cli.plant_bug == Some(PlantedBug::StaleStrongReads),
                ..StrongSettings::default()
            };
            return strong(*from, *count, settings, cli.check_determinism);
        }
        Command::Strong { count, from, registers: false, no_rpc_delay } => {
            let settings = DocsSettings {
                rpc_delay: !*no_rpc_delay,
                stale_strong_reads: cli.plant_bug == Some(PlantedBug::StaleStrongReads),
                unchecked_bounded_reads: cli.plant_bug == Some(PlantedBug::UncheckedBoundedReads),
                ..DocsSettings::default()
            };
            return strong_docs(*from, *count, settings, cli.check_determinism, cli.plant_bug);
        }
    };
    let scenario = load(&path)?;
    let options = RunOptions { bug: cli.plant_bug, echo_trace: echo };
    let started = Instant::now();
    let (mut failures, mut sim_ms) = (0u64, 0i64);
    for &seed in &seeds {
        let outcome = run_seed(&scenario, seed, &options);
        sim_ms += outcome.sim_ms;
        let mut failed = outcome.violation.is_some();
        if let Some(v) = &outcome.violation {
            report_failure(&scenario, &outcome, &v.to_string(), cli.plant_bug);
        }
        if cli.check_determinism && !failed {
            let again = run_seed(&scenario, seed, &RunOptions { echo_trace: false, ..options.clone() });
            sim_ms += again.sim_ms;
            if again.trace_hash != outcome.trace_hash || again.trace_lines != outcome.trace_lines {
                failed = true;
                let detail = format!(
                    "determinism: trace {:016x} ({} lines) then {:016x} ({} lines)",
                    outcome.trace_hash, outcome.trace_lines, again.trace_hash, again.trace_lines
                );
                report_failure(&scenario, &outcome, &detail, cli.plant_bug);
            }
        }
        if failed {
            failures += 1;
        } else if echo || matches!(cli.command, Command::Reproduce { .. }) {
            println!("seed {seed}: ok in {} ms simulated, trace {:016x}", outcome.sim_ms, outcome.trace_hash);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let sim = sim_ms as f64 / 1_000.0;
    println!(
        "scenario {}: {} seeds, {failures} failed, {sim:.1} s simulated in {wall:.2} s wall ({:.0}x)",
        scenario.name,
        seeds.len(),
        sim / wall.max(1e-9)
    );
    Ok(failures == 0)
}

fn strong(from: u64, count: u64, settings: StrongSettings, check_determinism: bool) -> anyhow::Result<bool> {
    let started = Instant::now();
    let (mut failures, mut nondeterministic, mut operations) = (0u64, 0u64, 0usize);
    for seed in from..from.saturating_add(count) {
        let run = simulations::strong::run(seed, settings).map_err(anyhow::Error::msg)?;
        operations += run.history.len();
        if run.report.verdict() != Verdict::Linearizable {
            failures += 1;
            println!("seed {seed}: FAILED\n{}", run.report);
            println!("reproduce: cargo run -p simulations --release -- strong 1 --from {seed} --registers");
        }
        if check_determinism {
            let again = simulations::strong::run(seed, settings).map_err(anyhow::Error::msg)?;
            if again.trace != run.trace {
                nondeterministic += 1;
                println!(
                    "seed {seed}: the second run's trace differs ({} vs {} lines)",
                    run.trace.len(),
                    again.trace.len()
                );
            }
        }
    }
    println!(
        "strong: {count} seeds, {operations} recorded operations, {failures} not linearizable{} in {:.1} s wall",
        if check_determinism { format!(", {nondeterministic} replayed differently") } else { String::new() },
        started.elapsed().as_secs_f64()
    );
    Ok(failures == 0 && nondeterministic == 0)
}

fn strong_docs(
    from: u64,
    count: u64,
    settings: DocsSettings,
    check_determinism: bool,
    bug: Option<PlantedBug>,
) -> anyhow::Result<bool> {
    let started = Instant::now();
    let (mut failures, mut nondeterministic, mut operations) = (0u64, 0u64, 0usize);
    let mut simulated = 0f64;
    for seed in from..from.saturating_add(count) {
        let run = simulations::strong_docs::run(seed, settings).map_err(anyhow::Error::msg)?;
        operations += run.history.len() + run.weak_reads;
        simulated += run.simulated.as_secs_f64();
        if let Some(violation) = &run.violation {
            failures += 1;
            println!("FAILED seed {seed} (strong documents)");
            println!("  property: {violation}");
            println!("  last trace lines:");
            for line in run.trace.iter().skip(run.trace.len().saturating_sub(20)) {
                println!("    {line}");
            }
            println!(
                "  reproduce: cargo run --release -p simulations --{} strong 1 --from {seed}{}",
                bug_flag(bug),
                if settings.rpc_delay { "" } else { " --no-rpc-delay" }
            );
        }
        if check_determinism {
            let again = simulations::strong_docs::run(seed, settings).map_err(anyhow::Error::msg)?;
            if again.trace != run.trace {
                nondeterministic += 1;
                let first = run.trace.iter().zip(&again.trace).position(|(a, b)| a != b);
                println!(
                    "seed {seed}: the second run's trace differs ({} vs {} lines, first at line {first:?})",
                    run.trace.len(),
                    again.trace.len()
                );
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "strong documents: {count} seeds, {operations} recorded operations, {failures} failed{}, {simulated:.1} s \
         simulated in {wall:.1} s wall ({:.1}x, {:.0} seeds/min)",
        if check_determinism { format!(", {nondeterministic} replayed differently") } else { String::new() },
        simulated / wall.max(1e-9),
        count as f64 * 60.0 / wall.max(1e-9)
    );
    Ok(failures == 0 && nondeterministic == 0)
}

fn bug_flag(bug: Option<PlantedBug>) -> String {
    bug.and_then(|b| clap::ValueEnum::to_possible_value(&b))
        .map(|v| format!(" --plant-bug {}", v.get_name()))
        .unwrap_or_default()
}

fn check_history(file: &Path, budget_steps: u64) -> anyhow::Result<bool> {
    let history = linearizability::read_history_file(file).with_context(|| format!("history {}", file.display()))?;
    let started = Instant::now();
    let report = linearizability::check(&history, &CheckOptions { budget_steps })?;
    println!("{report}");
    println!("checked in {:.2} s", started.elapsed().as_secs_f64());
    match report.verdict() {
        Verdict::Linearizable => Ok(true),
        Verdict::NotLinearizable => Ok(false),
        Verdict::GaveUp => anyhow::bail!("the search gave up on some keys; raise --budget-steps to decide them"),
    }
}

fn load(path: &Path) -> anyhow::Result<Scenario> {
    Scenario::load(path).with_context(|| format!("loading {}", path.display()))
}

fn report_failure(scenario: &Scenario, outcome: &Outcome, detail: &str, bug: Option<PlantedBug>) {
    println!("FAILED seed {} scenario {} ({})", outcome.seed, scenario.name, scenario.path.display());
    println!("  property: {detail}");
    println!("  at {} ms simulated; last trace lines:", outcome.sim_ms);
    for line in &outcome.trace_tail {
        println!("    {line}");
    }
    let bug = bug_flag(bug);
    println!(
        "  reproduce: cargo run --release -p simulations --{bug} reproduce {} {} --trace",
        outcome.seed,
        scenario.path.display()
    );
}
