//! The binary as a user runs it: start, CLI subcommands, configuration, signals, restart.

mod common;

use common::{cli, NodeProcess};
use serde_json::{json, Value};

#[test]
fn default_config_prints_and_checks_clean() {
    let (code, yaml, _) = cli(&["config", "default"], &[]);
    assert_eq!(code, 0);
    assert!(yaml.contains("storage:") && yaml.contains("notifications:"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("default.yaml");
    std::fs::write(&file, &yaml).expect("write");
    let (code, out, err) = cli(&["config", "check", file.to_str().expect("utf8")], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok"));
}

#[test]
fn completion_scripts_name_the_subcommands_and_an_unknown_shell_is_refused() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, script, err) = cli(&["completions", shell], &[]);
        assert_eq!(code, 0, "{shell}: {err}");
        for word in ["start", "snapshot", "cluster", "cluster-key", "ca-cert"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let (code, _, err) = cli(&["completions", "tcsh"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("tcsh") && err.contains("bash"), "names the value and the choices: {err}");
}

#[test]
fn bad_config_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "storage:\n  type: rocks\n").expect("write");
    let (code, _, err) = cli(&["config", "check", file.to_str().expect("utf8")], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("storage.type"), "names the key: {err}");
    std::fs::write(&file, "storage:\n  typo: 1\n").expect("write");
    let (code, _, err) = cli(&["config", "check", file.to_str().expect("utf8")], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("typo"), "names the unknown key: {err}");
    let (code, _, err) =
        cli(&["config", "check", file.to_str().expect("utf8")], &[("STATEMESH_HISTORY__MAX_SIZE", "0")]);
    assert_ne!(code, 0, "{err}");
    // A node refuses to start on a bad configuration, too.
    let (code, _, err) = cli(&["start", "--config", file.to_str().expect("utf8")], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("typo"), "{err}");
}

#[test]
fn a_node_serves_the_cli_stops_on_sigterm_and_keeps_data_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeProcess::start(dir.path(), &[]);
    let url = node.url.clone();
    let run = |args: &[&str]| {
        let mut full = vec!["--node", url.as_str()];
        full.extend_from_slice(args);
        cli(&full, &[])
    };

    let (code, out, err) = run(&["put", "users", "ada", r#"{"name":"Ada","langs":["en"]}"#]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created users/ada"), "{out}");
    let (code, out, _) = run(&["patch", "users", "ada", r#"{"born":1815}"#]);
    assert_eq!(code, 0);
    assert!(out.contains("patched"));
    let (code, out, err) = run(&["get", "users", "ada"]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), json!({"name":"Ada","langs":["en"],"born":1815}));
    assert!(err.starts_with("version "), "version on stderr: {err}");
    let (code, out, _) = run(&["--json", "get", "users", "ada"]);
    assert_eq!(code, 0);
    let reply: Value = serde_json::from_str(&out).expect("json");
    let version = reply["version"].as_str().expect("version").to_string();

    // Compare-and-swap from the CLI: a stale version is refused with a clear message.
    let (code, _, err) = run(&["put", "users", "ada", "{}", "--if-match", &"00".repeat(32)]);
    assert_eq!(code, 1);
    assert!(err.contains("precondition failed"), "{err}");
    let (code, _, _) = run(&["put", "users", "ada", r#"{"name":"Ada L."}"#, "--if-match", &version]);
    assert_eq!(code, 0);

    run(&["put", "users", "bob", "{}"]);
    let (code, out, _) = run(&["ls", "users"]);
    assert_eq!(code, 0);
    assert!(out.contains("ada") && out.contains("bob"), "{out}");
    let (code, out, _) = run(&["--json", "status"]);
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(status["documents"], json!(2));
    let node_id = status["node_id"].clone();
    let (code, _, err) = run(&["get", "users", "nobody"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist") && err.contains("404"), "{err}");

    assert_eq!(node.terminate(), 0, "SIGTERM is a clean shutdown");

    let node = NodeProcess::start(dir.path(), &[]);
    let (code, out, _) = cli(&["--node", &node.url, "--json", "status"], &[]);
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(status["node_id"], node_id, "identity survives a restart");
    assert_eq!(status["documents"], json!(2));
    let (_, out, _) = cli(&["--node", &node.url, "get", "users", "ada"], &[]);
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), json!({"name":"Ada L."}));
    assert_eq!(node.terminate(), 0);
}

#[test]
fn an_unreachable_node_gets_a_clear_message() {
    let port = common::free_port();
    let (code, _, err) = cli(&["--node", &format!("http://127.0.0.1:{port}"), "status"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach the node"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    let (code, _, err) = cli(&["--node", "not a url", "status"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("not a valid node URL"), "{err}");
}

#[test]
fn memory_mode_writes_nothing_to_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let node = NodeProcess::start(&data, &["--memory"]);
    let (code, _, err) = cli(&["--node", &node.url, "put", "ns", "a", "{}"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(node.terminate(), 0);
    assert!(!data.exists(), "memory mode created {}", data.display());
}

#[test]
fn environment_overrides_reach_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let mut child = std::process::Command::new(common::binary())
        .args(["start", "--data-dir"])
        .arg(dir.path())
        .env("STATEMESH_API__LISTEN", format!("127.0.0.1:{port}"))
        .env("STATEMESH_NODE__NAME", "edge-7")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        let (code, out, _) = cli(&["--node", &url, "--json", "status"], &[]);
        if code == 0 {
            break serde_json::from_str::<Value>(&out).expect("json");
        }
        assert!(std::time::Instant::now() < deadline, "node did not come up");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(status["name"], json!("edge-7"));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn history_rollback_and_transactions_from_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = NodeProcess::start(dir.path(), &["--memory"]);
    let run = |args: &[&str]| {
        let mut full = vec!["--node", node.url.as_str()];
        full.extend_from_slice(args);
        cli(&full, &[])
    };
    run(&["put", "ns", "d", r#"{"v":1}"#]);
    run(&["put", "ns", "d", r#"{"v":2}"#]);
    let (code, out, err) = run(&["history", "ns", "d"]);
    assert_eq!(code, 0, "{err}");
    // One line per change: its kind and author in their columns.
    let puts = out.lines().filter(|l| l.split_whitespace().nth(2) == Some("put")).collect::<Vec<_>>();
    assert_eq!(puts.len(), 2, "{out}");
    assert!(puts.iter().all(|l| l.split_whitespace().nth(3) == Some("anonymous")), "{out}");
    let (code, _, err) = run(&["rollback", "ns", "d", "--steps", "1"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(&["get", "ns", "d"]);
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json"), json!({"v": 1}));
    let (code, _, err) = run(&["rollback", "ns", "d", "--steps", "9"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot roll back"), "{err}");

    let txn = r#"{"compare":[{"ns":"ns","id":"d","target":"value","path":"/v","value":1}],
                  "success":[{"op":"patch","ns":"ns","id":"d","value":{"v":10}}]}"#;
    let (code, out, err) = run(&["--json", "txn", txn]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json")["succeeded"], json!(true));
    let (code, _, err) = run(&["txn", r#"{"compare":[{"target":"nope"}]}"#]);
    assert_eq!(code, 1);
    assert!(err.contains("400"), "{err}");
    assert_eq!(node.terminate(), 0);
}
