//! Documents through the strong path, end to end: in-process nodes on real loopback sockets
//! (libp2p between them, HTTP in front), three voters and a learner.
//!
//! What must hold: concurrent clients on one register produce a linearizable history (checked
//! by the repository's checker); a compare-and-swap race has exactly one winner; writes go on
//! after the leader dies; a partitioned minority answers 503 in bounded time while the
//! majority serves; restarting every voter loses no acknowledged write; bounded reads honour
//! their bound; strong namespaces refuse eventual writes; edge nodes receive strong writes;
//! removing the leader from the voters hands leadership to the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::RwLock;
use rand::{Rng, SeedableRng};
use serde_json::json;
use simulations::linearizability::{self, CheckOptions, Op, Operation, Outcome, Verdict};
use statemesh::client::{Client, ClientError, Condition, ReadOptions};
use statemesh::config::{Config, NamespaceConsistency, NamespacePolicy};
use statemesh::raft::{NodeInfo, RaftSettings, RaftTransport, Role, TransportError};
use statemesh::strong::{StrongDocs, StrongNode};
use statemesh::testkit::{
    eventually, member_config, quick_raft_settings, raft_read_index_request, send_raw_raft_requests, Member,
};

const SETTLE: Duration = Duration::from_secs(30);
/// The strong namespace every test writes to.
const NS: &str = "reg";

/// A Raft transport that survives the node's network being stopped and started again (how
/// these tests cut a node off and heal it).
struct Switch(RwLock<Arc<dyn RaftTransport>>);

#[async_trait]
impl RaftTransport for Switch {
    async fn call(&self, target: &NodeInfo, request: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, TransportError> {
        let transport = self.0.read().clone();
        transport.call(target, request, timeout).await
    }
}

fn config(data_dir: Option<&std::path::Path>) -> Config {
    let mut config = member_config(data_dir);
    config.distributed.enabled = true;
    config.namespaces.declared.insert(
        NS.to_owned(),
        NamespacePolicy { consistency: NamespaceConsistency::Strong, ..NamespacePolicy::default() },
    );
    config
}

/// One node: replication, the strong path (unless an edge node) and the HTTP API.
struct Server {
    member: Member,
    strong: Option<StrongNode>,
    switch: Option<Arc<Switch>>,
    client: Client,
    api: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Starts a node; `raft` is `None` for an edge node without the strong path.
    async fn start(config: Config, seeds: &[String], raft: Option<RaftSettings>) -> Self {
        let mut member = Member::open(config.clone());
        member.connect(seeds).await;
        let net = member.network().expect("replicating");
        let (strong, switch) = if let Some(settings) = raft {
            let node_addr = member.addrs()[0].split("/p2p/").next().unwrap_or_default().to_owned();
            let me = NodeInfo::new(member.node.node_id().to_string(), node_addr);
            let switch = Arc::new(Switch(RwLock::new(net.raft_transport())));
            let docs = StrongDocs::start_with(member.node.clone(), settings, me.clone(), switch.clone())
                .await
                .expect("strong path starts");
            net.serve_raft(Arc::new(docs.path().clone()));
            (Some(StrongNode { docs, me, book: net.address_book(), voters: Vec::new() }), Some(switch))
        } else {
            (None, None)
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let router = statemesh::api::router_with(member.node.clone(), &config, strong.clone());
        let api = tokio::spawn(async move {
            let _ = statemesh::api::serve(listener, router, std::future::pending()).await;
        });
        let client = Client::with_timeout(&url, Duration::from_secs(20)).expect("client");
        Self { member, strong, switch, client, api }
    }

    /// `<multiaddr>/p2p/<peer id>`: how the others name this member.
    fn name(&self) -> String {
        self.member.addrs()[0].clone()
    }

    fn docs(&self) -> &StrongDocs {
        &self.strong.as_ref().expect("a strong member").docs
    }

    fn role(&self) -> Role {
        self.docs().path().status().role
    }

    /// Cuts the node off: its network stops (the strong path keeps running, unreachable).
    async fn cut(&mut self) {
        self.member.disconnect().await;
    }

    /// Reconnects the node on its old ports and points the strong path at the new network.
    async fn heal(&mut self, seeds: &[String]) {
        self.member.connect(seeds).await;
        let net = self.member.network().expect("replicating");
        if let (Some(switch), Some(strong)) = (&self.switch, &self.strong) {
            *switch.0.write() = net.raft_transport();
            net.serve_raft(Arc::new(strong.docs.path().clone()));
        }
    }

    async fn stop(self) -> Config {
        if let Some(strong) = &self.strong {
            strong.docs.shutdown().await.expect("strong path stops");
        }
        self.api.abort();
        self.member.stop().await
    }
}

/// Three voters (formed through the admin API) and, if `learner`, a fourth member added as a
/// learner through a follower (so the change is forwarded to the leader).
async fn cluster(dirs: Option<&[tempfile::TempDir]>, learner: bool) -> Vec<Server> {
    cluster_with(dirs, learner, quick_raft_settings()).await
}

async fn cluster_with(dirs: Option<&[tempfile::TempDir]>, learner: bool, settings: RaftSettings) -> Vec<Server> {
    let count = if learner { 4 } else { 3 };
    let mut servers: Vec<Server> = Vec::new();
    for i in 0..count {
        let seeds: Vec<String> = servers.iter().map(Server::name).collect();
        let dir = dirs.map(|d| d[i].path());
        servers.push(Server::start(config(dir), &seeds, Some(settings.clone())).await);
    }
    form(&servers[..3]).await;
    if learner {
        let follower = servers[..3].iter().find(|s| s.role() != Role::Leader).expect("a follower");
        follower.client.cluster_change("add-learner", &servers[3].name()).await.expect("learner added");
        eventually(SETTLE, "the learner applies the log", || async {
            servers[3].role() == Role::Learner && servers[3].docs().applied_index() >= servers[0].docs().applied_index()
        })
        .await;
    }
    servers
}

async fn form(voters: &[Server]) {
    let names: Vec<String> = voters.iter().map(Server::name).collect();
    voters[0].client.cluster_init(&names).await.expect("cluster formed");
    eventually(SETTLE, "a leader is elected and known everywhere", || async {
        voters.iter().any(|s| s.role() == Role::Leader)
            && voters.iter().all(|s| s.docs().path().status().leader.is_some())
    })
    .await;
}

fn leader(servers: &[Server]) -> usize {
    servers.iter().position(|s| s.strong.is_some() && s.role() == Role::Leader).expect("a leader")
}

fn value_of(doc: &serde_json::Value) -> Option<String> {
    doc.get("v").and_then(|v| v.as_str()).map(str::to_owned)
}

async fn shutdown(servers: Vec<Server>) {
    for server in servers {
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_on_one_register_are_linearizable() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let servers = cluster(None, true).await;
        let clients: Vec<Client> = servers.iter().map(|s| s.client.clone()).collect();
        let epoch = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..8u64 {
            let clients = clients.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(c);
                let mut history = Vec::new();
                for n in 0..25 {
                    let client = &clients[rng.gen_range(0..clients.len())];
                    let key = format!("r{}", rng.gen_range(0..2));
                    let invoke_ns = epoch.elapsed().as_nanos() as u64;
                    let (op, outcome) = match rng.gen_range(0..10) {
                        0..=3 => {
                            let value = format!("c{c}-{n}");
                            let result = client.put_strong(NS, &key, &json!({"v": value}), &Condition::None).await;
                            (Op::Write { value }, if result.is_ok() { Outcome::Ok } else { Outcome::Unknown })
                        }
                        4..=7 => match client.get_with(NS, &key, &ReadOptions::level("strong")).await {
                            Ok((doc, _)) => (Op::Read { result: value_of(&doc.document) }, Outcome::Ok),
                            Err(e) if e.status() == Some(404) => (Op::Read { result: None }, Outcome::Ok),
                            Err(_) => (Op::Read { result: None }, Outcome::Unknown),
                        },
                        _ => {
                            // Read, then swap if unchanged: a compare-and-swap on the value read
                            // (values are unique, so a version names exactly one value).
                            let new = format!("c{c}-{n}");
                            match client.get_with(NS, &key, &ReadOptions::level("strong")).await {
                                Ok((doc, _)) => {
                                    let expected = value_of(&doc.document);
                                    let invoke_ns = epoch.elapsed().as_nanos() as u64;
                                    let condition = Condition::IfMatch(doc.version.clone());
                                    let result = client.put_strong(NS, &key, &json!({"v": new}), &condition).await;
                                    let outcome = match &result {
                                        Ok(_) => Outcome::Ok,
                                        Err(e) if e.status() == Some(412) => Outcome::Fail,
                                        Err(_) => Outcome::Unknown,
                                    };
                                    let complete_ns = epoch.elapsed().as_nanos() as u64;
                                    history.push(Operation {
                                        key,
                                        client: c,
                                        op: Op::Cas { expected, new },
                                        invoke_ns,
                                        complete_ns: Some(complete_ns),
                                        outcome,
                                    });
                                    continue;
                                }
                                Err(_) => continue,
                            }
                        }
                    };
                    let complete_ns = epoch.elapsed().as_nanos() as u64;
                    history.push(Operation { key, client: c, op, invoke_ns, complete_ns: Some(complete_ns), outcome });
                }
                history
            }));
        }
        let mut history = Vec::new();
        for task in tasks {
            history.extend(task.await.expect("client task"));
        }
        let unknown = history.iter().filter(|o| o.outcome == Outcome::Unknown).count();
        assert!(
            unknown * 20 <= history.len(),
            "few operations go unanswered on a healthy cluster ({unknown} of {})",
            history.len()
        );
        let report = linearizability::check(&history, &CheckOptions::default()).expect("a valid history");
        assert_eq!(report.verdict(), Verdict::Linearizable, "{report}");
        // Every member, the learner included, ends with the same documents.
        for key in ["r0", "r1"] {
            let mut seen = Vec::new();
            for server in &servers {
                let read = server.client.get_with(NS, key, &ReadOptions::level("strong")).await;
                seen.push(read.map(|(doc, _)| doc.version).map_err(|e| e.to_string()));
            }
            assert!(seen.windows(2).all(|w| w[0] == w[1]), "members disagree on {key}: {seen:?}");
        }
        shutdown(servers).await;
    })
    .await
    .expect("the test finished within its budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compare_and_swap_race_has_exactly_one_winner() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let servers = cluster(None, false).await;
        let (first, _) =
            servers[0].client.put_strong(NS, "race", &json!({"v": "start"}), &Condition::None).await.expect("put");
        let racers = 12;
        let mut tasks = Vec::new();
        for i in 0..racers {
            let client = servers[i % servers.len()].client.clone();
            let condition = Condition::IfMatch(first.version.clone());
            tasks.push(tokio::spawn(async move {
                client.put_strong(NS, "race", &json!({"v": format!("winner-{i}")}), &condition).await
            }));
        }
        let mut winners = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.expect("racer") {
                Ok(_) => winners.push(i),
                Err(e) => assert_eq!(e.status(), Some(412), "a loser fails its precondition: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
        let (doc, _) = servers[2].client.get_with(NS, "race", &ReadOptions::level("strong")).await.expect("read");
        assert_eq!(value_of(&doc.document), Some(format!("winner-{}", winners[0])));
        shutdown(servers).await;
    })
    .await
    .expect("the test finished within its budget");
}

/// The value of the unlabelled sample `name` in Prometheus text.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_strong_writes_share_log_entries_each_with_its_own_answer() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let servers = cluster(None, false).await;
        let lead = leader(&servers);
        let (held, _) =
            servers[lead].client.put_strong(NS, "held", &json!({"v": "kept"}), &Condition::None).await.expect("put");
        // Forty-eight writes at once, through the leader and both followers: new documents,
        // and every fourth a compare-and-swap on `held` from the same version, of which only
        // the first to run can succeed.
        let mut tasks = Vec::new();
        for i in 0..48 {
            let client = servers[i % servers.len()].client.clone();
            let stale = Condition::IfMatch(held.version.clone());
            tasks.push(tokio::spawn(async move {
                if i % 4 == 3 {
                    client.put_strong(NS, "held", &json!({"v": format!("swap-{i}")}), &stale).await
                } else {
                    client
                        .put_strong(NS, &format!("doc-{i}"), &json!({"v": format!("value-{i}")}), &Condition::None)
                        .await
                }
            }));
        }
        let mut swaps = 0;
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.expect("writer") {
                Ok(_) if i % 4 != 3 => {}
                Ok(_) => swaps += 1,
                Err(e) if i % 4 == 3 => assert_eq!(e.status(), Some(412), "a losing swap fails its precondition: {e}"),
                Err(e) => panic!("write {i} failed: {e}"),
            }
        }
        // The first swap wins (it expected the right version); the others then fail theirs.
        assert_eq!(swaps, 1, "exactly one compare-and-swap on `held` succeeds");
        for i in (0..48).filter(|i| i % 4 != 3) {
            let (doc, _) = servers[(i + 1) % 3]
                .client
                .get_with(NS, &format!("doc-{i}"), &ReadOptions::level("strong"))
                .await
                .expect("read");
            assert_eq!(value_of(&doc.document), Some(format!("value-{i}")));
        }
        // The leader proposed them in fewer entries than commands, and says so in its metrics.
        let lead = leader(&servers);
        let metrics = servers[lead].client.metrics().await.expect("metrics");
        assert_eq!(sample(&metrics, "statemesh_raft_is_leader"), 1.0);
        assert_eq!(sample(&metrics, "statemesh_raft_has_leader"), 1.0);
        let commands = sample(&metrics, "statemesh_raft_proposal_batch_commands_sum");
        let entries = sample(&metrics, "statemesh_raft_proposal_batch_commands_count");
        assert!(commands >= 37.0, "{commands} commands proposed; at least the 36 writes and a swap");
        assert!(entries < commands, "{commands} commands went into {entries} entries: no batching");
        shutdown(servers).await;
    })
    .await
    .expect("the test finished within its budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_continue_after_the_leader_dies() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut servers = cluster(None, false).await;
        servers[0].client.put_strong(NS, "k", &json!({"v": "before"}), &Condition::None).await.expect("put");
        let dead = servers.remove(leader(&servers));
        dead.stop().await;
        let started = Instant::now();
        let survivor = servers[0].client.clone();
        let mut last_error = None;
        let mut written = false;
        while started.elapsed() < Duration::from_secs(20) {
            match survivor.put_strong(NS, "k", &json!({"v": "after"}), &Condition::None).await {
                Ok(_) => {
                    written = true;
                    break;
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        assert!(written, "no write succeeded after the leader died: {last_error:?}");
        let (doc, _) = servers[1].client.get_with(NS, "k", &ReadOptions::level("strong")).await.expect("read");
        assert_eq!(value_of(&doc.document).as_deref(), Some("after"));
        // One more voter dies: the new leader is alone and must say so at once (503, nothing
        // proposed) rather than propose into the void and answer 504 after its timeout.
        let new_leader = leader(&servers);
        let other = servers.remove(1 - new_leader);
        other.stop().await;
        let alone = servers.remove(0);
        let mut answers = Vec::new();
        let started = Instant::now();
        let refused_at_once = loop {
            assert!(started.elapsed() < Duration::from_secs(30), "never refused at once: {answers:?}");
            let sent = Instant::now();
            let answer = alone.client.put_strong(NS, "k", &json!({"v": "alone"}), &Condition::None).await;
            let took = sent.elapsed();
            match &answer {
                Err(ClientError::Api { status: 503, code, .. })
                    if code == "unavailable" && took < Duration::from_secs(1) =>
                {
                    break took;
                }
                Err(ClientError::Api { status: 503 | 504, .. }) => answers.push(format!("{answer:?} in {took:?}")),
                other => panic!("a leader without a quorum answered {other:?} after {answers:?}"),
            }
        };
        // Once it knows, every later write is refused at once as well.
        for _ in 0..5 {
            let sent = Instant::now();
            let answer = alone.client.put_strong(NS, "k", &json!({"v": "alone"}), &Condition::None).await;
            assert!(
                matches!(&answer, Err(ClientError::Api { status: 503, .. })) && sent.elapsed() < Duration::from_secs(1),
                "after a refusal in {refused_at_once:?}: {answer:?} in {:?}",
                sent.elapsed()
            );
        }
        alone.stop().await;
    })
    .await
    .expect("the test finished within its budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_off_minority_answers_503_while_the_majority_serves() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let mut servers = cluster(None, false).await;
        let lonely = (leader(&servers) + 1) % 3;
        servers[lonely].cut().await;
        // The majority still commits.
        let majority =
            servers.iter().enumerate().find(|(i, _)| *i != lonely).map(|(_, s)| s.client.clone()).expect("majority");
        let mut committed = false;
        for _ in 0..40 {
            if majority.put_strong(NS, "m", &json!({"v": "majority"}), &Condition::None).await.is_ok() {
                committed = true;
                break;
            }
        }
        assert!(committed, "the majority commits while one voter is cut off");
        // The minority refuses within a bounded time, never half-applying.
        let started = Instant::now();
        let refused = servers[lonely].client.put_strong(NS, "m", &json!({"v": "minority"}), &Condition::None).await;
        let took = started.elapsed();
        match refused {
            Err(ClientError::Api { status: 503, .. }) => {}
            other => panic!("the cut-off voter answered {other:?}"),
        }
        assert!(took < Duration::from_secs(10), "the refusal took {took:?}");
        let strong_read = servers[lonely].client.get_with(NS, "m", &ReadOptions::level("strong")).await;
        assert_eq!(strong_read.err().and_then(|e| e.status()), Some(503), "no strong read on the minority");
        // Healed, it catches up with what the majority committed, and nothing of its own.
        let seeds: Vec<String> =
            servers.iter().enumerate().filter(|(i, _)| *i != lonely).map(|(_, s)| s.name()).collect();
        servers[lonely].heal(&seeds).await;
        eventually(SETTLE, "the healed voter serves the majority's write", || async {
            matches!(
                servers[lonely].client.get_with(NS, "m", &ReadOptions::level("strong")).await,
                Ok((doc, _)) if value_of(&doc.document).as_deref() == Some("majority")
            )
        })
        .await;
        shutdown(servers).await;
    })
    .await
    .expect("the test finished within its budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_every_voter_loses_no_acknowledged_write() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
        let servers = cluster(Some(&dirs), false).await;
        let mut acknowledged = Vec::new();
        for i in 0..40 {
            let client = &servers[i % 3].client;
            let id = format!("d{i}");
            if client.put_strong(NS, &id, &json!({"v": format!("value-{i}")}), &Condition::None).await.is_ok() {
                acknowledged.push(i);
            }
        }
        assert_eq!(acknowledged.len(), 40, "every write commits on a healthy cluster");
        let mut configs = Vec::new();
        for server in servers {
            configs.push(server.stop().await);
        }
        let mut restarted: Vec<Server> = Vec::new();
        for config in configs {
            let seeds: Vec<String> = restarted.iter().map(Server::name).collect();
            restarted.push(Server::start(config, &seeds, Some(quick_raft_settings())).await);
        }
        eventually(SETTLE, "the restarted voters elect a leader", || async {
            restarted.iter().any(|s| s.role() == Role::Leader)
        })
        .await;
        for i in acknowledged {
            let (doc, _) = restarted[i % 3]
                .client
                .get_with(NS, &format!("d{i}"), &ReadOptions::level("strong"))
                .await
                .expect("an acknowledged write survives");
            assert_eq!(value_of(&doc.document), Some(format!("value-{i}")));
        }
        shutdown(restarted).await;
    })
    .await
    .expect("the test finished within its budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bounded_reads_honour_their_bound() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut servers = cluster(None, false).await;
        servers[0].client.put_strong(NS, "b", &json!({"v": "one"}), &Condition::None).await.expect("put");
        let follower = (leader(&servers) + 1) % 3;
        let bounded =
            ReadOptions { consistency: Some("bounded".to_owned()), max_staleness_ms: Some(400), min_version: None };
        eventually(SETTLE, "a bounded read is served locally", || async {
            match servers[follower].client.get_with(NS, "b", &bounded).await {
                Ok((_, stamp)) => stamp.consistency.as_deref() == Some("bounded"),
                Err(_) => false,
            }
        })
        .await;
        let (_, stamp) = servers[follower].client.get_with(NS, "b", &bounded).await.expect("bounded read");
        assert!(stamp.staleness_ms.expect("staleness reported") <= 400, "{stamp:?}");
        assert!(stamp.raft_index.is_some());
        // An absent document is a read result too: its 404 says what it reflects.
        let url = format!("{}/v1/docs/{NS}/never-written", servers[follower].client.base_url().trim_end_matches('/'));
        let absent = reqwest::Client::new()
            .get(url)
            .query(&[("consistency", "bounded"), ("max_staleness_ms", "400")])
            .send()
            .await
            .expect("absent read");
        assert_eq!(absent.status(), 404, "{absent:?}");
        let header = |name: &str| absent.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(header("x-statemesh-consistency").as_deref(), Some("bounded"));
        assert!(header("x-statemesh-staleness-ms").is_some_and(|ms| ms.parse::<u64>().is_ok_and(|ms| ms <= 400)));
        assert!(header("x-statemesh-raft-index").is_some());
        // Cut off, its measured staleness grows past the bound: a bounded read then falls
        // back to strong (the default), which cannot be served without a quorum.
        servers[follower].cut().await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        match servers[follower].client.get_with(NS, "b", &bounded).await {
            Err(e) => assert_eq!(e.status(), Some(503), "{e}"),
            Ok((_, stamp)) => panic!("served a read {stamp:?} beyond its bound"),
        }
        // An eventual read is still served, and says how stale it may be.
        let (_, stamp) =
            servers[follower].client.get_with(NS, "b", &ReadOptions::level("eventual")).await.expect("eventual read");
        assert!(stamp.staleness_ms.expect("staleness reported") >= 400, "{stamp:?}");
        shutdown(servers).await;
    })
    .await
    .expect("the test finished within its budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namespace_policy_and_edge_nodes() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut servers = cluster(None, false).await;
        let seeds: Vec<String> = servers.iter().map(Server::name).collect();
        servers.push(Server::start(config(None), &seeds, None).await);
        let edge = &servers[3].client;
        // An eventual write to a strong namespace is refused, and says why; without a level,
        // the namespace's own (strong) applies.
        let refused = servers[0].client.put_with(NS, "p", &json!({"v": 1}), &Condition::None, "eventual").await;
        match refused {
            Err(ClientError::Api { status: 409, code, .. }) => assert_eq!(code, "strong_namespace"),
            Ok(reply) => panic!("an eventual write to a strong namespace was accepted: {reply:?}"),
            other => panic!("expected 409, got {other:?}"),
        }
        // The edge node has no strong path: a strong write there says so.
        let edge_write = edge.put_strong("ev", "p", &json!({"v": 1}), &Condition::None).await;
        assert_eq!(edge_write.err().and_then(|e| e.code().map(str::to_owned)).as_deref(), Some("strong_path_disabled"));
        // A strong write to an eventual namespace is acknowledged through Raft, then reaches
        // every node through replication, the edge node included; so do strong namespaces.
        let (reply, stamp) = servers[1]
            .client
            .put_strong("ev", "p", &json!({"v": "strong"}), &Condition::None)
            .await
            .expect("strong write");
        assert!(stamp.raft_index.is_some());
        let cluster = servers[1].strong.as_ref().and_then(|s| s.view().cluster).expect("the cluster is named");
        assert!(
            reply.change.expect("a change").starts_with(&format!("{cluster}:")),
            "logged under the cluster's origin"
        );
        servers[2].client.put_strong(NS, "q", &json!({"v": "strong"}), &Condition::None).await.expect("strong write");
        eventually(SETTLE, "the edge node receives both strong writes", || async {
            let p = edge.get("ev", "p").await.ok().and_then(|d| value_of(&d.document));
            let q = edge.get(NS, "q").await.ok().and_then(|d| value_of(&d.document));
            p.as_deref() == Some("strong") && q.as_deref() == Some("strong")
        })
        .await;
        // Read-your-writes through a token, on any member.
        let (reply, stamp) =
            servers[0].client.put_strong(NS, "q", &json!({"v": "again"}), &Condition::None).await.expect("write");
        let token = ReadOptions {
            consistency: Some("eventual".to_owned()),
            max_staleness_ms: None,
            min_version: stamp.raft_index,
        };
        let (doc, _) = servers[2].client.get_with(NS, "q", &token).await.expect("read with token");
        assert_eq!(doc.version, reply.version);
        shutdown(servers).await;
    })
    .await
    .expect("the test finished within its budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strong_transactions_are_all_or_nothing_and_race_to_one_winner() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let servers = cluster(None, false).await;
        let client = &servers[0].client;
        client.put_strong(NS, "a", &json!({"balance": 100}), &Condition::None).await.expect("put a");
        client.put_strong(NS, "b", &json!({"balance": 0}), &Condition::None).await.expect("put b");
        // Every racer moves 10 from a to b if a still holds 100: one wins, the others see
        // their compare fail and change nothing.
        let mut tasks = Vec::new();
        for i in 0..9 {
            let client = servers[i % 3].client.clone();
            tasks.push(tokio::spawn(async move {
                let txn = json!({
                    "compare": [{"ns": NS, "id": "a", "target": "value", "path": "/balance", "value": 100}],
                    "success": [
                        {"op": "put", "ns": NS, "id": "a", "value": {"balance": 90}},
                        {"op": "put", "ns": NS, "id": "b", "value": {"balance": 10}},
                        {"op": "get", "ns": NS, "id": "b"}
                    ],
                    "failure": [{"op": "get", "ns": NS, "id": "a"}]
                });
                client.txn(&txn).await
            }));
        }
        let mut winners = 0;
        let mut ran = 0;
        for task in tasks {
            let outcome = match task.await.expect("racer") {
                Ok(outcome) => outcome,
                // Unavailable (no quorum in time on a loaded machine) means not applied.
                Err(e) if e.status() == Some(503) => continue,
                Err(e) => panic!("the transaction failed: {e}"),
            };
            ran += 1;
            if outcome["succeeded"].as_bool().expect("succeeded") {
                winners += 1;
                assert_eq!(outcome["results"][2]["document"], json!({"balance": 10}), "{outcome}");
                assert_eq!(outcome["changed"].as_array().map(Vec::len), Some(2), "{outcome}");
            } else {
                assert_eq!(
                    outcome["results"][0]["document"],
                    json!({"balance": 90}),
                    "a loser reads the winner's state"
                );
            }
        }
        assert!(ran > 0, "no transaction ran");
        assert_eq!(winners, 1, "exactly one transaction moves the money");
        for server in &servers {
            let a = server.client.get_with(NS, "a", &ReadOptions::level("strong")).await.expect("a").0.document;
            let b = server.client.get_with(NS, "b", &ReadOptions::level("strong")).await.expect("b").0.document;
            assert_eq!((a["balance"].as_i64(), b["balance"].as_i64()), (Some(90), Some(10)));
        }
        // A transaction through the local eventual path cannot touch a strong namespace.
        let eventual_url =
            format!("{}/v1/txn?consistency=eventual", servers[1].client.base_url().trim_end_matches('/'));
        let refused = reqwest::Client::new()
            .post(eventual_url)
            .json(&json!({"success": [{"op": "put", "ns": NS, "id": "a", "value": {}}]}))
            .send()
            .await
            .expect("sent");
        assert_eq!(refused.status().as_u16(), 409);
        shutdown(servers).await;
    })
    .await
    .expect("the test finished within its budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_learner_installs_a_snapshot_catches_up_and_is_promoted_and_a_voter_removed() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let settings =
            RaftSettings { snapshot_logs_since_last: 20, logs_kept_after_snapshot: 5, ..quick_raft_settings() };
        let mut servers = cluster_with(None, false, settings.clone()).await;
        for i in 0..60 {
            let client = &servers[i % 3].client;
            client
                .put_strong(NS, &format!("d{i}"), &json!({"v": format!("value-{i}")}), &Condition::None)
                .await
                .expect("put");
        }
        let first_leader = leader(&servers);
        eventually(SETTLE, "the leader purges its log behind a snapshot", || async {
            servers[first_leader].docs().path().status().purged.is_some_and(|p| p.index > 10)
        })
        .await;
        let seeds: Vec<String> = servers.iter().map(Server::name).collect();
        servers.push(Server::start(config(None), &seeds, Some(settings)).await);
        let late = servers[3].name();
        servers[1].client.cluster_change("add-learner", &late).await.expect("learner added");
        // The leader's log no longer reaches back to the start: the learner gets a snapshot
        // of the state machine, and the documents themselves through replication.
        eventually(SETTLE, "the learner installs a snapshot and applies the log", || async {
            let status = servers[3].docs().path().status();
            status.snapshot.is_some() && servers[3].docs().applied_index() >= servers[0].docs().applied_index()
        })
        .await;
        eventually(SETTLE, "the learner holds every document", || async {
            for i in 0..60 {
                let read = servers[3].client.get_with(NS, &format!("d{i}"), &ReadOptions::level("eventual")).await;
                if read.ok().and_then(|(doc, _)| value_of(&doc.document)) != Some(format!("value-{i}")) {
                    return false;
                }
            }
            true
        })
        .await;
        // Promoted, it votes and takes writes; with a voter removed, the three others carry on.
        servers[2].client.cluster_change("promote", &late).await.expect("promoted");
        let voters = |view: &serde_json::Value| {
            view["members"].as_array().map_or(0, |m| m.iter().filter(|m| m["voter"] == json!(true)).count())
        };
        assert_eq!(voters(&servers[0].client.cluster_status().await.expect("status")), 4);
        servers[3].client.put_strong(NS, "after", &json!({"v": "promoted"}), &Condition::None).await.expect("write");
        // Remove a follower (removing the leader itself is openraft's step-down path, not what
        // this test is about).
        let current = leader(&servers);
        let victim = (0..4).find(|i| *i != current && *i != 1).expect("a follower to remove");
        servers[1].client.cluster_change("remove", &servers[victim].name()).await.expect("removed");
        let started = Instant::now();
        loop {
            let view = servers[1].client.cluster_status().await.expect("status");
            if voters(&view) == 3 {
                break;
            }
            assert!(started.elapsed() < SETTLE, "the removed voter is still a member: {view:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        servers[1].client.put_strong(NS, "after", &json!({"v": "removed"}), &Condition::None).await.expect("write");
        shutdown(servers).await;
    })
    .await
    .expect("the test finished within its budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removing_the_leader_hands_over_to_the_remaining_voters() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let servers = cluster(None, true).await;
        servers[0].client.cluster_change("promote", &servers[3].name()).await.expect("promoted");
        servers[1]
            .client
            .put_strong(NS, "before", &json!({"v": "four voters"}), &Condition::None)
            .await
            .expect("write");
        let removed = leader(&servers);
        let asker = (removed + 1) % 4;
        // Asked through a follower, so the change is forwarded to the leader it removes.
        servers[asker].client.cluster_change("remove", &servers[removed].name()).await.expect("leader removed");
        let voters = |view: &serde_json::Value| {
            view["members"].as_array().map_or(0, |m| m.iter().filter(|m| m["voter"] == json!(true)).count())
        };
        let rest: Vec<usize> = (0..4).filter(|i| *i != removed).collect();
        eventually(SETTLE, "the remaining voters elect a leader among themselves", || async {
            rest.iter().any(|i| servers[*i].role() == Role::Leader) && servers[removed].role() != Role::Leader
        })
        .await;
        let view = servers[asker].client.cluster_status().await.expect("status");
        assert_eq!(voters(&view), 3, "three voters remain: {view:#}");
        // Every remaining member takes strong writes and reads them back linearizably.
        for (n, i) in rest.iter().enumerate() {
            let value = format!("after-{n}");
            servers[*i].client.put_strong(NS, "after", &json!({ "v": value }), &Condition::None).await.expect("write");
            let (doc, _) = servers[rest[(n + 1) % 3]]
                .client
                .get_with(NS, "after", &ReadOptions::level("strong"))
                .await
                .expect("strong read");
            assert_eq!(value_of(&doc.document), Some(value));
        }
        shutdown(servers).await;
    })
    .await
    .expect("the test finished within its budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interactive_transactions_on_strong_namespaces_commit_through_raft() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let servers = cluster(None, false).await;
        servers[0].client.put_strong(NS, "a", &json!({"n": 1}), &Condition::None).await.expect("put a");
        // Read on one member, write, commit: the commit runs on the leader, through Raft.
        // (A transaction reads the member's own state: a strong read first makes it current.)
        let client = &servers[1].client;
        client.get_with(NS, "a", &ReadOptions::level("strong")).await.expect("strong read");
        let txn = client.txn_begin().await.expect("begin")["id"].as_str().expect("id").to_owned();
        let read = client.txn_get(&txn, NS, "a").await.expect("read");
        assert_eq!(read["document"], json!({"n": 1}));
        client.txn_put(&txn, NS, "b", &json!({"copied": 1})).await.expect("buffered");
        let committed = client.txn_commit(&txn).await.expect("commit");
        assert_eq!(committed["committed"], json!(true), "{committed}");
        let change = committed["changed"][0]["change"].as_str().expect("a change").to_owned();
        let cluster = servers[1].strong.as_ref().and_then(|s| s.view().cluster).expect("the cluster is named");
        assert!(change.starts_with(&format!("{cluster}:")), "logged under the cluster's origin: {change}");
        let (b, _) = servers[2].client.get_with(NS, "b", &ReadOptions::level("strong")).await.expect("b");
        assert_eq!(b.document, json!({"copied": 1}));
        // A transaction whose read was overtaken by a committed write conflicts, and applies nothing.
        let client = &servers[2].client;
        let txn = client.txn_begin().await.expect("begin")["id"].as_str().expect("id").to_owned();
        client.txn_get(&txn, NS, "a").await.expect("read");
        servers[0].client.put_strong(NS, "a", &json!({"n": 2}), &Condition::None).await.expect("overtaking write");
        client.txn_put(&txn, NS, "b", &json!({"copied": 1, "stale": true})).await.expect("buffered");
        let refused = client.txn_commit(&txn).await.expect_err("the commit conflicts");
        assert_eq!(refused.status(), Some(409), "{refused}");
        let (b, _) = servers[0].client.get_with(NS, "b", &ReadOptions::level("strong")).await.expect("b");
        assert_eq!(b.document, json!({"copied": 1}), "nothing of the conflicting transaction applied");
        shutdown(servers).await;
    })
    .await
    .expect("the test finished within its budget");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_peer_outside_the_raft_cluster_is_refused_and_cut_off_while_members_carry_on() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let servers = cluster(None, false).await;
        let target = &servers[leader(&servers)];
        let before = target.member.node.metrics().p2p_rejected.get();

        // A peer holding the cluster key, but no member of the Raft cluster, asks the leader for
        // read indexes, again and again (the request a member's linearizable read sends).
        let request = raft_read_index_request(target.member.node.node_id().as_str());
        let outcomes = send_raw_raft_requests(&target.name(), vec![request; 30]).await;

        // Each request is refused and counted; after enough of them the peer is cut off and
        // its requests go unanswered.
        let rejected = target.member.node.metrics().p2p_rejected.get() - before;
        assert!(rejected >= 17, "only {rejected} refusals counted: {outcomes:?}");
        assert!(outcomes[20..].iter().all(Result::is_err), "a banned peer was still answered: {outcomes:?}");

        // The members carry on: a strong write commits through the same leader.
        let written = target.client.put_strong(NS, "after-stranger", &json!({"v": "ok"}), &Condition::None).await;
        assert!(written.is_ok(), "the cluster stopped committing: {written:?}");
        shutdown(servers).await;
    })
    .await
    .expect("the test finished within its budget");
}
