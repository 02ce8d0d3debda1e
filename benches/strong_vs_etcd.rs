//! Strong writes against etcd, side by side in one run on this machine.
//!
//! The same closed-loop load driver and payload (8-byte keys drawn from a fixed key space,
//! 256-byte values, every value different) against three clusters started and stopped by the
//! benchmark, one after the other, each on loopback with its data in a temporary directory:
//!
//! - etcd: 3 members of the `etcd` found on PATH (Debian's `etcd-server`), written through its
//!   JSON gateway, `POST /v3/kv/put` with base64 `key` and `value`;
//! - strong: 3 voters of the `statemesh` binary built with this benchmark, written with
//!   `PUT /v1/docs/bench/{key}?consistency=strong` (through Raft);
//! - eventual: the same statemesh cluster, the same request without the parameter (durable on
//!   the receiving node, then replicated by gossip).
//!
//! Each client sends its requests round-robin over the three nodes, so two requests in three
//! reach a follower and are forwarded to the leader, in both systems. At each concurrency
//! level the clients run for a warm-up, then for the measured window; a request counts when it
//! starts and ends inside the window. The two systems fsync before acknowledging and run on
//! the same cores as the load driver, so what is compared is the whole path on one machine,
//! not either server alone. For the same reason each row also gives the CPU time (user and
//! system, from `/proc`) the three servers and the load driver used in the measured window,
//! per put: what each system spends on a write, apart from how the cores were shared; and how
//! many cores anything else kept busy meanwhile (`/proc/stat`), so a row disturbed by other
//! work on the machine shows it.
//!
//! Run: `scripts/bench-strong` (installs etcd if needed), or `cargo bench --bench
//! strong_vs_etcd`. Settings: `BENCH_SECONDS` (measured per level, default 5),
//! `BENCH_WARMUP_SECONDS` (default 1), `BENCH_CLIENTS` (default `1,16,64`), `BENCH_KEYS`
//! (default 10000), `BENCH_SYSTEMS` (default `etcd,strong,eventual`), `BENCH_ETCD` (the etcd
//! executable, default `etcd`). The goals are printed next to the figures, pass or miss;
//! nothing is asserted.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

mod common;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NODES: usize = 3;
const VALUE_BYTES: usize = 256;
/// How long a cluster may take to start and elect a leader.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// A request still unanswered after this long counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

struct Settings {
    seconds: Duration,
    warmup: Duration,
    clients: Vec<usize>,
    keys: u64,
    systems: Vec<System>,
    etcd: String,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let number = |name: &str, default: u64| -> anyhow::Result<u64> {
            match std::env::var(name) {
                Ok(text) => text.trim().parse().with_context(|| format!("{name}=`{text}` is not a whole number")),
                Err(_) => Ok(default),
            }
        };
        let list = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
        let clients = list("BENCH_CLIENTS", "1,16,64")
            .split(',')
            .map(|c| {
                c.trim().parse::<usize>().ok().filter(|&c| c > 0).ok_or_else(|| anyhow!("bad BENCH_CLIENTS `{c}`"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let systems = list("BENCH_SYSTEMS", "etcd,strong,eventual")
            .split(',')
            .map(|s| System::parse(s.trim()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let keys = number("BENCH_KEYS", 10_000)?;
        if !(1..=10_000_000).contains(&keys) {
            bail!("BENCH_KEYS must be 1..=10000000 (keys are `k` and 7 digits)");
        }
        Ok(Self {
            seconds: Duration::from_secs(number("BENCH_SECONDS", 5)?.max(1)),
            warmup: Duration::from_secs(number("BENCH_WARMUP_SECONDS", 1)?),
            clients,
            keys,
            systems,
            etcd: list("BENCH_ETCD", "etcd"),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum System {
    Etcd,
    Strong,
    Eventual,
}

impl System {
    fn parse(name: &str) -> anyhow::Result<Self> {
        match name {
            "etcd" => Ok(Self::Etcd),
            "strong" => Ok(Self::Strong),
            "eventual" => Ok(Self::Eventual),
            other => bail!("unknown system `{other}` in BENCH_SYSTEMS (etcd, strong, eventual)"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::Strong => "statemesh strong",
            Self::Eventual => "statemesh eventual",
        }
    }
}

/// A child process that is stopped when dropped, so nothing the benchmark started outlives
/// it, whether it ends normally, with an error or with a panic.
struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(name: String, command: &mut Command, log: PathBuf) -> anyhow::Result<Self> {
        let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {name} ({:?})", command.get_program()))?;
        Ok(Self { name, child, log })
    }

    /// An error carrying the end of the log if the process has exited.
    fn check_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => {
                bail!("{} exited ({status}); end of {}:\n{}", self.name, self.log.display(), tail(&self.log))
            }
        }
    }

    fn terminate(&self) {
        // SIGTERM lets both servers shut down as they would in service; `kill` is procps.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).stderr(Stdio::null()).status();
    }

    /// True once the process has exited.
    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Three server processes and the temporary directory holding their data and logs.
/// Field order matters: the processes are dropped (killed) before the directory is removed.
struct Cluster {
    processes: Vec<Process>,
    urls: Arc<[String]>,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn check_running(&mut self) -> anyhow::Result<()> {
        self.processes.iter_mut().try_for_each(Process::check_running)
    }

    /// SIGTERM to every process, up to 15 s to exit, then SIGKILL (by drop).
    async fn stop(mut self) {
        for process in &self.processes {
            process.terminate();
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && !self.processes.iter_mut().all(Process::exited) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for process in &mut self.processes {
            if !process.exited() {
                eprintln!("{} did not stop within 15 s of SIGTERM; killing it", process.name);
            }
        }
    }
}

/// `count` distinct loopback ports that were free a moment ago.
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..count).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<Result<Vec<_>, _>>()?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

fn etcd_version(etcd: &str) -> anyhow::Result<String> {
    let output = Command::new(etcd).arg("--version").output().with_context(|| {
        format!("cannot run `{etcd}`: install etcd (Debian: apt-get install etcd-server) or set BENCH_ETCD")
    })?;
    let text = String::from_utf8_lossy(&output.stdout);
    // The first line reads `etcd Version: 3.4.23`.
    let version = text.lines().next().and_then(|l| l.split(':').nth(1)).map_or("unknown version", str::trim);
    Ok(format!("etcd {version}"))
}

fn start_etcd(etcd: &str) -> anyhow::Result<Cluster> {
    let dir = tempfile::Builder::new().prefix("bench-etcd-").tempdir()?;
    let ports = free_ports(2 * NODES)?;
    let (client, peer) = ports.split_at(NODES);
    let initial: Vec<String> = (0..NODES).map(|i| format!("m{i}=http://127.0.0.1:{}", peer[i])).collect();
    let mut processes = Vec::new();
    for i in 0..NODES {
        let client_url = format!("http://127.0.0.1:{}", client[i]);
        let peer_url = format!("http://127.0.0.1:{}", peer[i]);
        let mut command = Command::new(etcd);
        command
            .arg(format!("--name=m{i}"))
            .arg(format!("--data-dir={}", dir.path().join(format!("m{i}")).display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={}", initial.join(",")))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=statemesh-bench");
        processes.push(Process::spawn(format!("etcd m{i}"), &mut command, dir.path().join(format!("m{i}.log")))?);
    }
    let urls = client.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    Ok(Cluster { processes, urls, dir })
}

/// Waits until every member answers `GET /health` with `{"health":"true"}` (it has a leader).
async fn wait_etcd_ready(http: &reqwest::Client, cluster: &mut Cluster) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        cluster.check_running()?;
        let mut healthy = 0;
        for url in cluster.urls.iter() {
            if let Ok(Some(body)) = get_json(http, &format!("{url}/health")).await {
                healthy += usize::from(body["health"] == "true");
            }
        }
        if healthy == NODES {
            return Ok(());
        }
        if start.elapsed() > READY_TIMEOUT {
            bail!("etcd not healthy within {READY_TIMEOUT:?}; logs in {}", cluster.dir.path().display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start_statemesh() -> anyhow::Result<Cluster> {
    let binary = env!("CARGO_BIN_EXE_statemesh");
    let dir = tempfile::Builder::new().prefix("bench-statemesh-").tempdir()?;
    let ports = free_ports(2 * NODES)?;
    let (api, p2p) = ports.split_at(NODES);
    let p2p_addrs: Vec<String> = p2p.iter().map(|p| format!("/ip4/127.0.0.1/tcp/{p}")).collect();
    let voters = p2p_addrs.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
    let config = dir.path().join("statemesh.yaml");
    std::fs::write(
        &config,
        format!(
            "distributed:\n  enabled: true\n  voters: [{voters}]\n\
             namespaces:\n  declared:\n    bench: {{ consistency: eventual }}\n\
             log:\n  level: warn\n"
        ),
    )?;
    let mut processes = Vec::new();
    for i in 0..NODES {
        let mut command = Command::new(binary);
        command
            .arg("start")
            .arg("--data-dir")
            .arg(dir.path().join(format!("node{i}")))
            .args(["--api-addr", &format!("127.0.0.1:{}", api[i])])
            .args(["--p2p-addr", &p2p_addrs[i]])
            .arg("--no-mdns")
            .args(["--cluster-key", statemesh::testkit::TEST_CLUSTER_KEY])
            .arg("--config")
            .arg(&config);
        for (j, other) in p2p_addrs.iter().enumerate() {
            if j != i {
                command.args(["--bootstrap", other]);
            }
        }
        // Only the file above configures the node, whatever the caller's environment holds.
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("STATEMESH_")) {
            command.env_remove(name);
        }
        processes.push(Process::spawn(
            format!("statemesh node{i}"),
            &mut command,
            dir.path().join(format!("node{i}.log")),
        )?);
    }
    let urls = api.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    Ok(Cluster { processes, urls, dir })
}

/// Waits until every node is connected to the other two and, when the strong path is served
/// (`GET /v1/cluster` exists), until every node names the same leader. Returns whether it is.
async fn wait_statemesh_ready(http: &reqwest::Client, cluster: &mut Cluster) -> anyhow::Result<bool> {
    let start = Instant::now();
    loop {
        cluster.check_running()?;
        let mut connected = 0;
        let mut leaders = Vec::new();
        let mut strong = true;
        for url in cluster.urls.iter() {
            if let Ok(Some(status)) = get_json(http, &format!("{url}/v1/status")).await {
                connected += usize::from(status["peers"].as_array().is_some_and(|p| p.len() >= NODES - 1));
            }
            match get_json(http, &format!("{url}/v1/cluster")).await {
                Ok(Some(cluster)) => leaders.push(cluster["leader"].clone()),
                Ok(None) => strong = false,
                Err(_) => {}
            }
        }
        let led = leaders.len() == NODES && !leaders[0].is_null() && leaders.iter().all(|l| *l == leaders[0]);
        if connected == NODES && (!strong || led) {
            return Ok(strong);
        }
        if start.elapsed() > READY_TIMEOUT {
            bail!(
                "statemesh not ready within {READY_TIMEOUT:?} ({connected} of {NODES} nodes connected, leaders {leaders:?}); \
                 logs in {}",
                cluster.dir.path().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The JSON body of a successful GET; `None` for a 404 (the route does not exist).
async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Option<Value>> {
    let response = http.get(url).timeout(Duration::from_secs(2)).send().await?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let response = response.error_for_status()?;
    Ok(Some(response.json().await?))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648), what the etcd gateway expects for bytes fields.
fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= chunk.len() { char::from(BASE64[(n >> shift) as usize & 63]) } else { '=' });
        }
    }
    out
}

/// A 256-byte value unique to (client, request): writing the same bytes again could be a
/// no-op for statemesh (only fields that differ become changes), so every write differs.
fn value(client: usize, n: u64) -> String {
    const FILL: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut value = format!("{client:04x}{n:012x}");
    let offset = n as usize % FILL.len();
    value.extend((0..VALUE_BYTES - value.len()).map(|i| char::from(FILL[(offset + i) % FILL.len()])));
    value
}

/// One put; an error for a transport failure or any status but 200/201.
async fn put(http: &reqwest::Client, system: System, node: &str, key: &str, value: &str) -> anyhow::Result<()> {
    let request = match system {
        System::Etcd => http.post(format!("{node}/v3/kv/put")).body(format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            base64(key.as_bytes()),
            base64(value.as_bytes())
        )),
        System::Strong => {
            http.put(format!("{node}/v1/docs/bench/{key}?consistency=strong")).body(format!(r#"{{"v":"{value}"}}"#))
        }
        System::Eventual => http.put(format!("{node}/v1/docs/bench/{key}")).body(format!(r#"{{"v":"{value}"}}"#)),
    };
    let response = request.header("content-type", "application/json").send().await?;
    let status = response.status();
    // statemesh marks a write that went through Raft; the rows must measure what they say.
    let through_raft = response.headers().get("x-statemesh-consistency").is_some_and(|v| v == "strong");
    let body = response.bytes().await?;
    if status != reqwest::StatusCode::OK && status != reqwest::StatusCode::CREATED {
        bail!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
    }
    match system {
        System::Strong if !through_raft => bail!("a strong write answered without `X-Statemesh-Consistency: strong`"),
        System::Eventual if through_raft => bail!("an eventual write went through Raft"),
        _ => Ok(()),
    }
}

#[derive(Default)]
struct ClientResult {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

/// One closed-loop client: a request, its answer, the next request, until `until`.
async fn client(
    http: reqwest::Client,
    system: System,
    urls: Arc<[String]>,
    id: usize,
    keys: u64,
    measure_from: Instant,
    until: Instant,
) -> ClientResult {
    let mut rng = StdRng::seed_from_u64(id as u64);
    let mut result = ClientResult::default();
    for n in 0.. {
        let began = Instant::now();
        if began >= until {
            break;
        }
        let key = format!("k{:07}", rng.gen_range(0..keys));
        let node = &urls[(id + n as usize) % urls.len()];
        let outcome = put(&http, system, node, &key, &value(id, n)).await;
        let ended = Instant::now();
        if began < measure_from {
            continue;
        }
        match outcome {
            Ok(()) if ended <= until => result.latencies.push(ended - began),
            Ok(()) => {}
            Err(error) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }
    result
}

struct Row {
    puts_per_s: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
    /// CPU the three servers used in the measured window, per put, in microseconds.
    server_us: f64,
    /// CPU the load driver used in the measured window, per put, in microseconds.
    driver_us: f64,
    /// Cores busy with anything else in the measured window (other processes, and kernel
    /// threads such as the filesystem's journal): a disturbed row shows here.
    others: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// CPU time the whole machine has spent running tasks so far, from `/proc/stat`'s `cpu` line:
/// user, nice, system and steal. Interrupt time is left out: most of it is the loopback
/// traffic of the benchmark itself, which no process is charged for.
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).map_while(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already within user)
    let busy: u64 = [0, 1, 2, 7].iter().filter_map(|&i| ticks.get(i)).sum();
    Duration::from_millis(busy * 10)
}

async fn run_level(
    http: &reqwest::Client,
    system: System,
    cluster: &Cluster,
    clients: usize,
    settings: &Settings,
) -> anyhow::Result<Row> {
    let measure_from = Instant::now() + settings.warmup;
    let until = measure_from + settings.seconds;
    let tasks: Vec<_> = (0..clients)
        .map(|id| {
            tokio::spawn(client(http.clone(), system, cluster.urls.clone(), id, settings.keys, measure_from, until))
        })
        .collect();
    let servers = || cluster.processes.iter().map(|p| common::cpu_time(Some(p.child.id()))).sum::<Duration>();
    tokio::time::sleep_until(measure_from.into()).await;
    let (servers_before, driver_before, busy_before) = (servers(), common::cpu_time(None), machine_busy());
    tokio::time::sleep_until(until.into()).await;
    let (server_cpu, driver_cpu) = (servers() - servers_before, common::cpu_time(None) - driver_before);
    let others = machine_busy().saturating_sub(busy_before).saturating_sub(server_cpu + driver_cpu);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let result = task.await.context("load client failed")?;
        latencies.extend(result.latencies);
        errors += result.errors;
        first_error = first_error.or(result.first_error);
    }
    if let Some(error) = first_error {
        eprintln!("{} at {clients} clients: {errors} failed requests, the first: {error}", system.label());
    }
    latencies.sort_unstable();
    let per_put = |cpu: Duration| cpu.as_secs_f64() * 1e6 / latencies.len().max(1) as f64;
    Ok(Row {
        puts_per_s: latencies.len() as f64 / settings.seconds.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        errors,
        server_us: per_put(server_cpu),
        driver_us: per_put(driver_cpu),
        others: others.as_secs_f64() / settings.seconds.as_secs_f64(),
    })
}

type Results = BTreeMap<(System, usize), Row>;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_row(system: System, clients: usize, row: &Row) {
    println!(
        "| {:<18} | {clients:>7} | {:>8.0} | {:>8.2} | {:>8.2} | {:>6} | {:>19.0} | {:>19.0} | {:>14.2} |",
        system.label(),
        row.puts_per_s,
        ms(row.p50),
        ms(row.p99),
        row.errors,
        row.server_us,
        row.driver_us,
        row.others
    );
}

async fn measure(
    http: &reqwest::Client,
    system: System,
    cluster: &mut Cluster,
    settings: &Settings,
    results: &mut Results,
) -> anyhow::Result<()> {
    for &clients in &settings.clients {
        let row = run_level(http, system, cluster, clients, settings).await?;
        cluster.check_running()?;
        print_row(system, clients, &row);
        results.insert((system, clients), row);
    }
    Ok(())
}

async fn run(settings: &Settings) -> anyhow::Result<Results> {
    // reqwest is built without a TLS provider of its own; the node's is installed first.
    statemesh::tls::install_crypto_provider();
    let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).tcp_nodelay(true).build()?;
    let mut results = Results::new();
    println!(
        "| system             | clients |   puts/s | p50 (ms) | p99 (ms) | errors | server CPU/put (µs) | driver CPU/put (µs) | others (cores) |"
    );
    println!(
        "|--------------------|---------|----------|----------|----------|--------|---------------------|---------------------|----------------|"
    );
    if settings.systems.contains(&System::Etcd) {
        let mut cluster = start_etcd(&settings.etcd)?;
        wait_etcd_ready(&http, &mut cluster).await?;
        measure(&http, System::Etcd, &mut cluster, settings, &mut results).await?;
        cluster.stop().await;
    }
    let statemesh: Vec<System> = settings.systems.iter().copied().filter(|&s| s != System::Etcd).collect();
    if !statemesh.is_empty() {
        let mut cluster = start_statemesh()?;
        let strong_served = wait_statemesh_ready(&http, &mut cluster).await?;
        for system in statemesh {
            if system == System::Strong && !strong_served {
                eprintln!("this statemesh build has no strong path (no GET /v1/cluster): strong writes not measured");
                continue;
            }
            measure(&http, system, &mut cluster, settings, &mut results).await?;
        }
        cluster.stop().await;
    }
    Ok(results)
}

/// `a / b`, or `None` when either side was not measured.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// A ratio with two decimals, "—" when it was not measured.
fn show(r: Option<f64>) -> String {
    r.map_or_else(|| "—".to_string(), |r| format!("{r:.2}×"))
}

fn report(results: &Results, settings: &Settings) {
    let puts = |s: System, c: usize| results.get(&(s, c)).map(|r| r.puts_per_s);
    let p50 = |s: System, c: usize| results.get(&(s, c)).map(|r| ms(r.p50));
    let p99 = |s: System, c: usize| results.get(&(s, c)).map(|r| ms(r.p99));
    println!();
    println!("| clients | strong/etcd puts/s | strong/etcd p50 | strong/etcd p99 | eventual/strong puts/s |");
    println!("|---------|--------------------|-----------------|-----------------|------------------------|");
    for &c in &settings.clients {
        println!(
            "| {c:>7} | {:>18} | {:>15} | {:>15} | {:>22} |",
            show(ratio(puts(System::Strong, c), puts(System::Etcd, c))),
            show(ratio(p50(System::Strong, c), p50(System::Etcd, c))),
            show(ratio(p99(System::Strong, c), p99(System::Etcd, c))),
            show(ratio(puts(System::Eventual, c), puts(System::Strong, c))),
        );
    }
    println!();
    let goal = |text: &str, value: Option<f64>, met: fn(f64) -> bool| {
        let verdict = value.map_or("not measured", |v| if met(v) { "pass" } else { "miss" });
        println!("goal: {text:<58} {:>7}  {verdict}", show(value));
    };
    goal("64 clients, strong puts/s ≥ 2× etcd's", ratio(puts(System::Strong, 64), puts(System::Etcd, 64)), |r| {
        r >= 2.0
    });
    goal(
        "64 clients, strong p99 no worse than etcd's (≤ 1×)",
        ratio(p99(System::Strong, 64), p99(System::Etcd, 64)),
        |r| r <= 1.0,
    );
    goal(
        "1 client, strong p50 no worse than etcd's (≤ 1×)",
        ratio(p50(System::Strong, 1), p50(System::Etcd, 1)),
        |r| r <= 1.0,
    );
    goal(
        "64 clients, eventual puts/s ≥ 10× strong",
        ratio(puts(System::Eventual, 64), puts(System::Strong, 64)),
        |r| r >= 10.0,
    );
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let etcd = if settings.systems.contains(&System::Etcd) {
        match etcd_version(&settings.etcd) {
            Ok(version) => version,
            Err(error) => {
                eprintln!("error: {error:#}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        "etcd not run".to_string()
    };
    println!("statemesh strong writes against etcd (3 nodes each on loopback, closed-loop HTTP clients round-robin over the nodes)");
    println!(
        "{} keys of 8 bytes, values of {VALUE_BYTES} bytes; warm-up {} s, measured {} s per level; {etcd}; {} cores; \
         load average {} at start",
        settings.keys,
        settings.warmup.as_secs(),
        settings.seconds.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    println!();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Ctrl-C drops the run, and with it every process it started.
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(&settings) => outcome,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    match outcome {
        Ok(results) => {
            report(&results, &settings);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
