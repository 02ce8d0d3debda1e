//! The change feed (`GET /v1/changes`) through real loopback sockets: both forms, filters,
//! resuming, delivery modes, retention, bad input, and `statemesh watch` through the binary.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{binary, cli, free_port, memory_config, InProcessNode, NodeProcess};
use serde_json::{json, Value};
use statemesh::client::feed::{ChangeEvent, ChangesFilter, FeedMessage, FeedStream};
use statemesh::client::Condition;
use statemesh::config::{Config, StorageType};

/// A generous bound for anything that should take milliseconds, so a broken feed fails the
/// test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(30);

fn rocks_config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.storage.kind = StorageType::Persistent;
    config.node.data_dir = dir.to_path_buf();
    config
}

fn all() -> ChangesFilter {
    ChangesFilter::default()
}

/// Reads change events until `count` have arrived; fails on anything else or after `DEADLINE`.
async fn take_changes(stream: &mut FeedStream, count: usize) -> Vec<ChangeEvent> {
    let mut events = Vec::new();
    while events.len() < count {
        let message = tokio::time::timeout(DEADLINE, stream.next()).await.expect("an event before the deadline");
        match message {
            Some(Ok(FeedMessage::Change(event))) => events.push(event),
            other => panic!("expected a change event, got {other:?}"),
        }
    }
    events
}

/// A GET with optional headers; returns status and JSON body.
async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

async fn put(node: &InProcessNode, ns: &str, id: &str, body: Value) -> String {
    let reply = node.client.put(ns, id, &body, &Condition::None).await.expect("put");
    reply.change.expect("a logged change")
}

#[tokio::test]
async fn sse_and_long_poll_report_puts_patches_and_deletes_in_order_with_cursors_and_ids() {
    let node = InProcessNode::memory().await;
    let c = &node.client;
    let mut written = vec![put(&node, "users", "ada", json!({"name": "Ada"})).await];
    written.push(
        c.patch("users", "ada", &json!({"born": 1815}), &Condition::None).await.expect("patch").change.expect("id"),
    );
    written.push(c.delete("users", "ada", &Condition::None).await.expect("delete").change.expect("id"));
    written.push(put(&node, "users", "bob", json!({})).await);

    let page = c.changes_page(Some(0), &all(), None, None).await.expect("page");
    assert_eq!((page.cursor, page.head), (4, 4));
    let mut stream = c.subscribe(Some(0), &all(), None).await.expect("subscribe");
    let streamed = take_changes(&mut stream, 4).await;
    assert_eq!(streamed, page.events, "both forms report the same events");

    let ids: Vec<&str> = page.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, written, "ids are the change ids the writes returned, in write order");
    let cursors: Vec<u64> = page.events.iter().map(|e| e.cursor).collect();
    assert_eq!(cursors, [1, 2, 3, 4]);
    let kinds: Vec<&str> = page.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["put", "patch", "delete", "put"]);
    let deleted: Vec<bool> = page.events.iter().map(|e| e.deleted).collect();
    assert_eq!(deleted, [false, false, true, false], "the delete shows as deleted");
    assert_eq!((page.events[3].namespace.as_str(), page.events[3].doc.as_str()), ("users", "bob"));
    let current = c.get("users", "bob").await.expect("get");
    assert_eq!(page.events[3].version, current.version, "the event carries the version written");

    // The stream keeps following: a new write arrives on the open subscription.
    let next = put(&node, "users", "cy", json!({})).await;
    assert_eq!(take_changes(&mut stream, 1).await[0].id, next);
}

#[tokio::test]
async fn without_a_cursor_only_changes_made_after_the_request_are_sent() {
    let node = InProcessNode::memory().await;
    put(&node, "ns", "old", json!({})).await;
    let page = node.client.changes_page(None, &all(), None, None).await.expect("page");
    assert!(page.events.is_empty(), "{page:?}");
    assert_eq!(page.cursor, 1, "the cursor is the head, to resume from");

    let mut stream = node.client.subscribe(None, &all(), None).await.expect("subscribe");
    let new = put(&node, "ns", "new", json!({})).await;
    let events = take_changes(&mut stream, 1).await;
    assert_eq!(events[0].id, new);
    assert_eq!(events[0].cursor, 2);
}

#[tokio::test]
async fn filters_select_a_namespace_or_one_document_and_the_cursor_moves_past_skipped_events() {
    let node = InProcessNode::memory().await;
    let ax1 = put(&node, "a", "x", json!({"n": 1})).await;
    let ay = put(&node, "a", "y", json!({})).await;
    let bx = put(&node, "b", "x", json!({})).await;
    let ax2 = put(&node, "a", "x", json!({"n": 2})).await;
    let c = &node.client;
    let ids = |events: &[ChangeEvent]| events.iter().map(|e| e.id.clone()).collect::<Vec<_>>();

    let only_a = ChangesFilter { namespace: Some("a".into()), doc: None };
    assert_eq!(
        ids(&c.changes_page(Some(0), &only_a, None, None).await.expect("page").events),
        [ax1.clone(), ay.clone(), ax2.clone()]
    );
    let only_ax = ChangesFilter { namespace: Some("a".into()), doc: Some("x".into()) };
    assert_eq!(
        ids(&c.changes_page(Some(0), &only_ax, None, None).await.expect("page").events),
        [ax1.clone(), ax2.clone()]
    );

    let only_b = ChangesFilter { namespace: Some("b".into()), doc: None };
    let page = c.changes_page(Some(0), &only_b, None, None).await.expect("page");
    assert_eq!(ids(&page.events), [bx]);
    assert_eq!(page.cursor, 4, "the cursor covers the skipped a/x after b/x, so it is not read again");

    let mut stream = c.subscribe(Some(0), &only_ax, None).await.expect("subscribe");
    assert_eq!(ids(&take_changes(&mut stream, 2).await), [ax1.clone(), ax2.clone()]);
    put(&node, "a", "y", json!({"n": 3})).await;
    let ax3 = put(&node, "a", "x", json!({"n": 3})).await;
    assert_eq!(ids(&take_changes(&mut stream, 1).await), [ax3], "a/y is filtered out of the stream");
}

#[tokio::test]
async fn a_long_poll_waits_for_the_next_change_and_returns_it() {
    let node = InProcessNode::memory().await;
    let head = node.client.changes_page(None, &all(), None, None).await.expect("page").cursor;
    let client = node.client.clone();
    let poll =
        tokio::spawn(async move { client.changes_page(Some(head), &all(), Some(Duration::from_secs(20)), None).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = put(&node, "ns", "d", json!({})).await;
    let page = tokio::time::timeout(DEADLINE, poll).await.expect("answered").expect("task").expect("page");
    assert_eq!(page.events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);

    // Nothing new: an empty page once the wait is over, with the cursor unchanged.
    let empty = node.client.changes_page(Some(page.cursor), &all(), Some(Duration::from_millis(100)), None).await;
    let empty = empty.expect("page");
    assert!(empty.events.is_empty());
    assert_eq!(empty.cursor, page.cursor);

    // at_most_once long-poll: the live change that arrives during the wait.
    let client = node.client.clone();
    let live = tokio::spawn(async move {
        client.changes_page_with(None, &all(), Some(Duration::from_secs(20)), None, Some("at_most_once")).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = put(&node, "ns", "live", json!({})).await;
    let page = tokio::time::timeout(DEADLINE, live).await.expect("answered").expect("task").expect("page");
    assert_eq!(page.events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert_eq!(page.missed, Some(0));
}

#[tokio::test]
async fn a_killed_subscriber_resumes_from_last_event_id_and_gets_every_change_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = InProcessNode::start(rocks_config(dir.path())).await;
    let mut written = HashSet::new();
    for i in 0..20 {
        written.insert(put(&node, "ns", &format!("d{}", i % 7), json!({"i": i})).await);
    }
    let mut stream = node.client.subscribe(Some(0), &all(), None).await.expect("subscribe");
    // Writers keep going while the subscriber reads, and after it is gone.
    let writer = {
        let client = node.client.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 20..80 {
                let reply = client.patch("ns", &format!("d{}", i % 7), &json!({"i": i}), &Condition::None).await;
                ids.push(reply.expect("patch").change.expect("id"));
            }
            ids
        })
    };
    let first = take_changes(&mut stream, 25).await;
    drop(stream); // the subscriber dies mid-stream
    written.extend(writer.await.expect("writer"));
    for i in 80..90 {
        written.insert(put(&node, "other", &format!("e{i}"), json!({})).await);
    }

    let last = first.last().expect("events").cursor;
    let mut stream = node.client.subscribe(Some(last), &all(), None).await.expect("resubscribe");
    let rest = take_changes(&mut stream, written.len() - first.len()).await;

    let received: Vec<String> = first.iter().chain(&rest).map(|e| e.id.clone()).collect();
    let unique: HashSet<String> = received.iter().cloned().collect();
    assert_eq!(unique.len(), received.len(), "no change is delivered twice");
    assert_eq!(unique, written, "every change is delivered");
    let cursors: Vec<u64> = first.iter().chain(&rest).map(|e| e.cursor).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "cursors increase across the reconnect: {cursors:?}");
}

#[tokio::test]
async fn long_poll_pages_resume_with_since_without_gaps_or_repeats_and_last_event_id_wins() {
    let node = InProcessNode::memory().await;
    let mut written = Vec::new();
    for i in 0..50 {
        written.push(put(&node, "ns", &format!("d{}", i % 9), json!({"i": i})).await);
    }
    let mut received = Vec::new();
    let mut cursor = 0;
    loop {
        let page = node.client.changes_page(Some(cursor), &all(), None, Some(7)).await.expect("page");
        assert!(page.events.len() <= 7);
        received.extend(page.events.iter().map(|e| e.id.clone()));
        if page.cursor == page.head {
            break;
        }
        cursor = page.cursor;
    }
    assert_eq!(received, written);

    // An SSE client sending both: Last-Event-ID (the reconnect) wins over ?since=.
    let url = format!("{}/v1/changes?since=0", node.url);
    let response = reqwest::Client::new()
        .get(url)
        .header("accept", "text/event-stream")
        .header("last-event-id", "48")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    let mut body = response.bytes_stream();
    while !text.contains("id: 50\n") {
        use futures::StreamExt;
        let chunk = tokio::time::timeout(DEADLINE, body.next()).await.expect("data").expect("open").expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("id: 49\nevent: change\ndata: {"), "{text}");
    assert!(!text.contains("id: 48\n") && !text.contains("id: 1\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_once_slow_consumer_gets_a_lagged_event_while_writers_all_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = rocks_config(dir.path());
    config.notifications.buffer_size = 4;
    let node = InProcessNode::start(config).await;
    // Subscribed (the response head is back), but nothing is read while the writers run.
    let mut slow = node.client.subscribe(None, &all(), Some("at_most_once")).await.expect("subscribe");

    let writers: Vec<_> = (0..16)
        .map(|w| {
            let client = node.client.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    let patch = json!({"i": i});
                    client.patch("load", &format!("w{w}"), &patch, &Condition::None).await.expect("write succeeds");
                }
            })
        })
        .collect();
    for writer in writers {
        // A writer held back by the stalled subscriber would hang here.
        tokio::time::timeout(Duration::from_secs(120), writer).await.expect("writers complete").expect("writer");
    }

    let mut missed = 0;
    let mut changes = 0;
    let deadline = Instant::now() + DEADLINE;
    while missed == 0 {
        let message = tokio::time::timeout_at(deadline.into(), slow.next()).await.expect("a lagged event in time");
        match message {
            Some(Ok(FeedMessage::Lagged { missed: n })) => missed = n,
            Some(Ok(FeedMessage::Change(_))) => changes += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(missed > 0);
    assert!(changes + (missed as usize) <= 1600, "never more events than were written");

    // The durable feed still has every one of them for at-least-once consumers.
    let page = node.client.changes_page(Some(0), &all(), None, Some(1000)).await.expect("page");
    assert_eq!(page.head, 1600);
}

/// A node whose feed keeps only the newest 10 events, with older ones already pruned.
async fn pruned_node() -> InProcessNode {
    let mut config = memory_config();
    config.history.max_size = 10;
    let node = InProcessNode::start(config).await;
    for i in 0..40 {
        put(&node, "ns", &format!("d{i}"), json!({})).await;
    }
    // The committer prunes at most once a second, between batches (it wakes on its own too).
    let deadline = Instant::now() + DEADLINE;
    while node.node.feed_oldest() <= 1 {
        assert!(Instant::now() < deadline, "retention did not prune within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_retention_gets_410_cursor_expired_in_both_forms_and_in_watch() {
    let node = pruned_node().await;
    let oldest = node.node.feed_oldest();

    let (status, body) = get(&format!("{}/v1/changes?since=0", node.url), &[]).await;
    assert_eq!((status, code(&body)), (410, "cursor_expired"), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("expired") && message.contains(&format!("resume from {}", oldest - 1)), "{message}");

    let (status, body) =
        get(&format!("{}/v1/changes", node.url), &[("accept", "text/event-stream"), ("last-event-id", "0")]).await;
    assert_eq!((status, code(&body)), (410, "cursor_expired"), "{body}");
    let subscribed = node.client.subscribe(Some(0), &all(), None).await;
    assert!(matches!(&subscribed, Err(e) if e.code() == Some("cursor_expired")), "{subscribed:?}");

    // The cursor the message suggests works, and replays what is kept.
    let page = node.client.changes_page(Some(oldest - 1), &all(), None, None).await.expect("page");
    assert_eq!(page.events.first().map(|e| e.cursor), Some(oldest));

    let url = node.url.clone();
    let (exit, _, stderr) =
        tokio::task::spawn_blocking(move || cli(&["--node", &url, "watch", "--since", "0"], &[])).await.expect("cli");
    assert_eq!(exit, 1, "{stderr}");
    assert!(stderr.contains("cursor expired"), "{stderr}");
}

#[tokio::test]
async fn bad_feed_parameters_get_json_400s() {
    let node = InProcessNode::memory().await;
    put(&node, "ns", "d", json!({})).await;
    let sse = ("accept", "text/event-stream");
    // (what, query, headers, expected code)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("cursor not a number", "since=abc", vec![], "bad_parameter"),
        ("negative cursor", "since=-1", vec![], "bad_parameter"),
        ("cursor beyond the head", "since=99", vec![], "cursor_ahead"),
        ("limit zero", "limit=0", vec![], "bad_parameter"),
        ("limit too large", "limit=1001", vec![], "bad_parameter"),
        ("negative wait", "wait=-1", vec![], "bad_parameter"),
        ("wait not a number", "wait=soon", vec![], "bad_parameter"),
        ("unknown delivery", "delivery=sometimes", vec![], "bad_parameter"),
        ("unknown parameter", "from=3", vec![], "bad_parameter"),
        ("doc without ns", "doc=d", vec![], "bad_parameter"),
        ("invalid namespace", "ns=bad%20ns", vec![], "invalid_id"),
        ("limit on a stream", "limit=5", vec![sse], "bad_parameter"),
        ("wait on a stream", "wait=5", vec![sse], "bad_parameter"),
        ("bad Last-Event-ID", "", vec![sse, ("last-event-id", "seven")], "bad_header"),
        ("Last-Event-ID beyond the head", "", vec![sse, ("last-event-id", "99")], "cursor_ahead"),
    ];
    for (what, query, headers, expected) in cases {
        let (status, body) = get(&format!("{}/v1/changes?{query}", node.url), &headers).await;
        assert_eq!((status, code(&body)), (400, expected), "{what}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    }
}

#[tokio::test]
async fn replay_needs_history_and_live_delivery_works_without_it() {
    let mut config = memory_config();
    config.history.enabled = false;
    let node = InProcessNode::start(config).await;
    let (status, body) = get(&format!("{}/v1/changes", node.url), &[]).await;
    assert_eq!((status, code(&body)), (409, "history_disabled"), "{body}");
    let mut live = node.client.subscribe(None, &all(), Some("at_most_once")).await.expect("live subscription");
    let id = put(&node, "ns", "d", json!({})).await;
    assert_eq!(take_changes(&mut live, 1).await[0].id, id);
}

/// `statemesh start` on a chosen port, so a restarted node is found at the same URL.
fn start_node_on(dir: &Path, port: u16) -> NodeProcess {
    let child = Command::new(binary())
        .args(["start", "--data-dir"])
        .arg(dir)
        .args(["--api-addr", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn statemesh");
    let node = NodeProcess { child, url: format!("http://127.0.0.1:{port}"), log_tail: Default::default() };
    let deadline = Instant::now() + DEADLINE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "node did not listen within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    node
}

fn cli_put(url: &str, id: &str) -> String {
    let (exit, stdout, stderr) = cli(&["--node", url, "--json", "put", "cli", id, "{\"v\": 1}"], &[]);
    assert_eq!(exit, 0, "{stderr}");
    let reply: Value = serde_json::from_str(&stdout).expect("JSON reply");
    reply["change"].as_str().expect("change id").to_string()
}

#[test]
fn watch_follows_the_feed_and_resumes_after_the_node_restarts_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let node = start_node_on(dir.path(), port);
    let url = node.url.clone();
    let mut written = vec![cli_put(&url, "a"), cli_put(&url, "b")];

    let mut watch = Command::new(binary())
        .args(["--node", &url, "watch", "--json", "--since", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let (lines_tx, lines) = mpsc::channel();
    let stdout = watch.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = watch.stderr.take().expect("stderr");
    let notes = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let next_event = || -> Value {
        let line = lines.recv_timeout(DEADLINE).expect("watch printed an event in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };

    let mut seen = vec![next_event(), next_event()];
    written.push(cli_put(&url, "c"));
    seen.push(next_event());

    // Stopping the node must not wait for the open subscription; watch keeps retrying.
    assert_eq!(node.terminate(), 0, "the node stops cleanly with a subscriber attached");
    let node = start_node_on(dir.path(), port);
    written.push(cli_put(&url, "d"));
    written.push(cli_put(&url, "e"));
    seen.push(next_event());
    seen.push(next_event());

    let ids: Vec<&str> = seen.iter().map(|e| e["id"].as_str().unwrap_or_default()).collect();
    assert_eq!(ids, written, "every change once, in order, across the restart");
    let cursors: Vec<u64> = seen.iter().map(|e| e["cursor"].as_u64().unwrap_or_default()).collect();
    assert_eq!(cursors, [1, 2, 3, 4, 5]);
    assert!(lines.recv_timeout(Duration::from_millis(500)).is_err(), "nothing is printed twice");

    let _ = watch.kill();
    let _ = watch.wait();
    let notes = notes.join().unwrap_or_default();
    assert!(notes.contains("resuming after cursor 3"), "watch says where it resumes: {notes}");
    drop(node);
}
