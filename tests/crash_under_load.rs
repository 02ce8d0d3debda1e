//! `kill -9` under load, twenty times over: every write a node acknowledged before it was
//! killed is there after the restart, with the content it was acknowledged with.
//!
//! Sixteen clients write as fast as the node answers: half of their writes create a new
//! document, half patch one field (the client's own) of a few shared documents. The node is
//! killed with SIGKILL at a random moment of each round, restarted on the same data
//! directory, and checked: each document created with an acknowledgement holds its value;
//! each client's field of a shared document holds at least its last acknowledged value and
//! at most the last one it sent (a write that was cut off may or may not have landed, but
//! nothing acknowledged goes back). Each restart checks the writes of the round just ended
//! and every shared document; the last one checks every write of the whole run.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::NodeProcess;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use statemesh::client::{Client, Condition};

const ROUNDS: usize = 20;
const CLIENTS: usize = 16;
const SHARED: u64 = 4;
const NS: &str = "crash";

/// What the clients sent and what the node acknowledged.
#[derive(Default)]
struct Ledger {
    /// Documents created with an acknowledgement, by round: id → value.
    created: Mutex<Vec<BTreeMap<String, u64>>>,
    /// (shared document, client) → the last value acknowledged for the client's field.
    acked: Mutex<BTreeMap<(u64, usize), u64>>,
    /// (shared document, client) → the last value sent for it, acknowledged or not.
    sent: Mutex<BTreeMap<(u64, usize), u64>>,
}

/// One client's writes until the task is aborted. `next` keeps its counter across rounds.
async fn write_forever(client: Client, me: usize, next: Arc<AtomicU64>, ledger: Arc<Ledger>, round: usize) {
    loop {
        let n = next.fetch_add(1, Ordering::SeqCst);
        if n.is_multiple_of(2) {
            let id = format!("c{me}-{n}");
            if client.put(NS, &id, &json!({ "n": n }), &Condition::None).await.is_ok() {
                ledger.created.lock()[round].insert(id, n);
            }
        } else {
            let doc = (n / 2) % SHARED;
            ledger.sent.lock().insert((doc, me), n);
            let field = format!("c{me}");
            if client.patch(NS, &format!("shared-{doc}"), &json!({ field: n }), &Condition::None).await.is_ok() {
                ledger.acked.lock().insert((doc, me), n);
            }
        }
    }
}

async fn check_created(client: &Client, created: &BTreeMap<String, u64>) {
    for (id, n) in created {
        let doc = client.get(NS, id).await.unwrap_or_else(|e| panic!("acknowledged document {id} is gone: {e}"));
        assert_eq!(doc.document, json!({ "n": n }), "document {id} lost its acknowledged content");
    }
}

async fn check_shared(client: &Client, ledger: &Ledger) {
    let acked = ledger.acked.lock().clone();
    let sent = ledger.sent.lock().clone();
    for ((doc, me), floor) in acked {
        let read = client.get(NS, &format!("shared-{doc}")).await.expect("an acknowledged shared document");
        let value = read.document[format!("c{me}")].as_u64();
        let ceiling = sent[&(doc, me)];
        assert!(
            value.is_some_and(|v| floor <= v && v <= ceiling),
            "shared-{doc}.c{me} is {value:?}; acknowledged {floor}, last sent {ceiling}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_twenty_kill_9s_under_load() {
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Arc::new(Ledger::default());
    let counters: Vec<Arc<AtomicU64>> = (0..CLIENTS).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let mut total = 0;
    for round in 0..ROUNDS {
        let mut node = NodeProcess::start(dir.path(), &[]);
        let client = Client::new(&node.url).expect("client");
        if round > 0 {
            // The round that ended with the last kill, and every shared document so far.
            let last = ledger.created.lock()[round - 1].clone();
            check_created(&client, &last).await;
            check_shared(&client, &ledger).await;
        }
        ledger.created.lock().push(BTreeMap::new());
        let writers: Vec<_> = (0..CLIENTS)
            .map(|me| {
                let client = client.clone();
                tokio::spawn(write_forever(client, me, counters[me].clone(), ledger.clone(), round))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..700))).await;
        node.child.kill().expect("SIGKILL");
        node.child.wait().expect("reaped");
        for writer in writers {
            writer.abort();
        }
        let acknowledged = ledger.created.lock()[round].len();
        assert!(acknowledged > 0, "round {round}: no write was acknowledged before the kill");
        total += acknowledged;
    }
    // After the last kill: everything, from every round.
    let node = NodeProcess::start(dir.path(), &[]);
    let client = Client::new(&node.url).expect("client");
    let created = ledger.created.lock().clone();
    for round in &created {
        check_created(&client, round).await;
    }
    check_shared(&client, &ledger).await;
    println!("{total} acknowledged creations and {} shared fields checked", ledger.acked.lock().len());
    node.terminate();
}
