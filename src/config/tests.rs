//! Tests for loading, layering, validation and the documented defaults.

use std::time::Duration;

use super::*;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn load_str(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).expect("write config");
    Config::load(Some(&path), env(vars))
}

fn err_text(result: Result<Config, ConfigError>) -> String {
    result.expect_err("configuration should be refused").to_string()
}

#[test]
fn default_yaml_parses_to_exactly_the_default_config() {
    let parsed = Config::from_yaml_str(Config::default_yaml(), "default.yaml").expect("parses");
    assert_eq!(parsed, Config::default());
}

#[test]
fn default_yaml_spells_out_every_key() {
    // Parsing alone would pass with keys missing (they default); compare the key trees.
    fn keys(value: &serde_norway::Value, prefix: &str, out: &mut Vec<String>) {
        if let serde_norway::Value::Mapping(map) = value {
            for (k, v) in map {
                let path = format!("{prefix}{}", k.as_str().unwrap_or("?"));
                keys(v, &format!("{path}."), out);
                out.push(path);
            }
        }
    }
    let documented: serde_norway::Value = serde_norway::from_str(Config::default_yaml()).expect("yaml");
    let actual = serde_norway::to_value(Config::default()).expect("to_value");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    keys(&documented, "", &mut a);
    keys(&actual, "", &mut b);
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn default_yaml_has_a_comment_on_every_key() {
    let lines: Vec<&str> = Config::default_yaml().lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let content = line.trim_start();
        if content.starts_with('#') || content.starts_with('-') || !content.contains(':') {
            continue;
        }
        let commented_before = i > 0 && lines[i - 1].trim_start().starts_with('#');
        assert!(commented_before || line.contains(" # "), "line {}: `{line}` has no comment", i + 1);
    }
}

#[test]
fn unknown_key_is_refused_naming_key_and_line() {
    let text = "api:\n  listen: 127.0.0.1:1\nstorage:\n  compresion: zstd\n";
    let msg = err_text(load_str(text, &[]));
    assert!(msg.contains("config.yaml: storage.compresion: unknown field `compresion`"), "{msg}");
    assert!(msg.contains("at line 4 column 3"), "{msg}");
}

#[test]
fn unknown_section_is_refused() {
    let msg = err_text(Config::from_yaml_str("storgae:\n  type: memory\n", "c.yaml"));
    assert!(msg.starts_with("c.yaml: storgae: unknown field `storgae`"), "{msg}");
    assert!(msg.contains("at line 1 column 1"), "{msg}");
}

#[test]
fn wrong_type_is_refused_naming_key() {
    let msg = err_text(Config::from_yaml_str("storage:\n  cache_docs: lots\n", "c.yaml"));
    assert!(msg.contains("c.yaml: storage.cache_docs: invalid type"), "{msg}");
    assert!(msg.contains("at line 2 column 15"), "{msg}");

    let msg = err_text(Config::from_yaml_str("storage:\n  type: rocks\n", "c.yaml"));
    assert!(msg.contains("storage.type: unknown variant `rocks`"), "{msg}");

    let msg = err_text(Config::from_yaml_str("api:\n  request_timeout: 30\n", "c.yaml"));
    assert!(msg.contains("api.request_timeout: invalid duration `30`"), "{msg}");
}

#[test]
fn yaml_syntax_error_is_refused_with_location() {
    let msg = err_text(Config::from_yaml_str("p2p:\n  listen: [a\n", "c.yaml"));
    assert!(msg.starts_with("c.yaml: "), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
}

#[test]
fn out_of_range_value_is_refused_naming_range_and_line() {
    let msg = err_text(load_str("storage:\n  cache_docs: 3\n", &[]));
    assert!(msg.contains("config.yaml: storage.cache_docs: 3 is out of range 16..=10000000 at line 2"), "{msg}");
}

#[test]
fn all_range_errors_are_reported_together() {
    let text = "storage:\n  cache_docs: 3\np2p:\n  anti_entropy_interval: 1ms\n\
                api:\n  listen: nowhere\nsecurity:\n  allowed_peers: [bogus]\n";
    let err = Config::from_yaml_str(text, "c.yaml").expect_err("refused");
    let keys: Vec<_> = err.problems().iter().filter_map(|p| p.key.clone()).collect();
    assert_eq!(keys, ["api.listen", "p2p.anti_entropy_interval", "storage.cache_docs", "security.allowed_peers[0]"]);
    assert_eq!(err.to_string().lines().count(), 4);
    assert!(err.to_string().contains("1ms is out of range 100ms..=1h"));
}

#[test]
fn env_override_applies_and_beats_the_file() {
    let text = "storage:\n  cache_docs: 500\n  type: memory\n";
    let config = load_str(
        text,
        &[
            ("STATEMESH_STORAGE__CACHE_DOCS", "2000"),
            ("STATEMESH_P2P__MDNS", "false"),
            ("STATEMESH_P2P__BOOTSTRAP", "[/ip4/10.0.0.1/tcp/7701, /ip4/10.0.0.2/tcp/7701]"),
            ("STATEMESH_HISTORY__RETENTION", "90m"),
            ("STATEMESH_NAMESPACES__DECLARED__ORDERS__CONSISTENCY", "strong"),
            ("STATEMESH_NODE__NAME", "007"),
            ("STATEMESH_CONFIG", "/ignored/because/no/double/underscore"),
            ("PATH", "/usr/bin"),
        ],
    )
    .expect("loads");
    assert_eq!(config.storage.cache_docs, 2000);
    assert_eq!(config.storage.kind, StorageType::Memory, "file value kept");
    assert!(!config.p2p.mdns);
    assert_eq!(config.p2p.bootstrap.len(), 2);
    assert_eq!(config.history.retention, Duration::from_secs(90 * 60));
    assert_eq!(config.node.name.as_deref(), Some("007"));
    let orders = config.namespaces.policy("orders").expect("declared");
    assert_eq!(orders.consistency, NamespaceConsistency::Strong);
    assert_eq!(orders.max_doc_bytes, NamespacePolicy::default().max_doc_bytes);
}

#[test]
fn env_override_works_without_a_file() {
    let config = Config::load(None, env(&[("STATEMESH_API__LIST_LIMIT_MAX", "50")])).expect("ok");
    assert_eq!(config.api.list_limit_max, 50);
}

#[test]
fn env_override_with_a_bad_value_names_the_variable() {
    let msg = err_text(load_str("", &[("STATEMESH_STORAGE__CACHE_DOCS", "lots")]));
    assert!(msg.starts_with("STATEMESH_STORAGE__CACHE_DOCS: storage.cache_docs: invalid type"), "{msg}");

    let msg = err_text(load_str("", &[("STATEMESH_STORAGE__COMPRESION", "lz4")]));
    assert!(msg.starts_with("STATEMESH_STORAGE__COMPRESION: storage.compresion: unknown field"), "{msg}");

    let msg = err_text(load_str("", &[("STATEMESH_STORAGE__CACHE_DOCS", "3")]));
    assert!(msg.starts_with("STATEMESH_STORAGE__CACHE_DOCS: storage.cache_docs: 3 is out of range"), "{msg}");

    let msg = err_text(load_str("", &[("STATEMESH_API__LISTEN__PORT", "1")]));
    assert!(msg.starts_with("STATEMESH_API__LISTEN__PORT: api.listen: "), "{msg}");
}

#[test]
fn state_management_wrapper_is_accepted() {
    let text = "state_management:\n  storage:\n    type: memory\n  history:\n    max_size: 7\n\
                log:\n  level: debug\n";
    let config = Config::from_yaml_str(text, "seed.yaml").expect("loads");
    assert_eq!(config.storage.kind, StorageType::Memory);
    assert_eq!(config.history.max_size, 7);
    assert_eq!(config.log.level, "debug");
}

#[test]
fn state_management_wrapper_errors_keep_their_location() {
    let text = "state_management:\n  storage:\n    cache_docs: many\n";
    let msg = err_text(Config::from_yaml_str(text, "seed.yaml"));
    assert!(msg.contains("state_management.storage.cache_docs: invalid type"), "{msg}");
    assert!(msg.contains("at line 3"), "{msg}");
}

#[test]
fn key_in_wrapper_and_at_top_level_is_refused() {
    let text = "state_management:\n  storage:\n    type: memory\nstorage:\n  type: persistent\n";
    let msg = err_text(Config::from_yaml_str(text, "seed.yaml"));
    assert!(msg.contains("seed.yaml: state_management.storage: `storage` is also given"), "{msg}");
}

#[test]
fn paxos_is_refused_with_a_clear_message() {
    let msg = err_text(Config::from_yaml_str("distributed:\n  consensus: paxos\n", "c.yaml"));
    assert!(
        msg.contains(
            "distributed.consensus: `paxos` is not supported; use `raft` (strong writes \
             through Raft) or `crdt` (eventual-only cluster)"
        ),
        "{msg}"
    );
}

#[test]
fn partial_file_keeps_defaults_for_the_rest() {
    let config = Config::from_yaml_str("api:\n  listen: 0.0.0.0:8080\n", "c.yaml").expect("ok");
    let mut expected = Config::default();
    expected.api.listen = "0.0.0.0:8080".to_owned();
    assert_eq!(config, expected);
}

#[test]
fn a_log_entry_bound_for_bounded_reads_is_refused_with_the_alternative() {
    let error = Config::from_yaml_str("distributed:\n  max_lag: 64\n", "c.yaml").expect_err("refused");
    let message = error.to_string();
    assert!(message.contains("distributed.max_lag") && message.contains("max_staleness_ms"), "{message}");
}

#[test]
fn empty_file_is_the_default_config() {
    let config = Config::from_yaml_str("# nothing here\n", "c.yaml").expect("ok");
    assert_eq!(config, Config::default());
}

#[test]
fn to_yaml_round_trips_through_from_yaml_str() {
    let mut config = Config::default();
    config.node.name = Some("alpha".to_owned());
    config.storage.path = Some("/var/lib/statemesh/db".into());
    config.p2p.gossip_batch_window = Duration::ZERO;
    config.history.retention = Duration::from_millis(1500);
    config.distributed.max_staleness_ms = 250;
    config.security.psk = Some("ab".repeat(32));
    config.namespaces.declared.insert(
        "orders".to_owned(),
        NamespacePolicy {
            consistency: NamespaceConsistency::Strong,
            max_doc_bytes: 4096,
            schema: Some(serde_json::json!({"type": "object", "required": ["id"]})),
        },
    );
    let reloaded = Config::from_yaml_str(&config.to_yaml(), "shown.yaml").expect("reloads");
    assert_eq!(reloaded, config);
}

#[test]
fn durations_print_in_the_largest_whole_unit() {
    let cases = [
        (Duration::from_secs(86_400), "24h"),
        (Duration::from_secs(90), "90s"),
        (Duration::from_secs(5_400), "90m"),
        (Duration::from_millis(250), "250ms"),
        (Duration::ZERO, "0s"),
    ];
    for (d, text) in cases {
        assert_eq!(duration::format(d), text);
        assert_eq!(duration::parse(text), Ok(d));
    }
}

#[test]
fn declared_namespaces_inherit_the_operator_defaults() {
    let text = "namespaces:\n  defaults:\n    max_doc_bytes: 2048\n  declared:\n    \
                orders:\n      consistency: strong\n";
    let config = Config::from_yaml_str(text, "c.yaml").expect("ok");
    let orders = config.namespaces.policy("orders").expect("declared");
    assert_eq!(orders.max_doc_bytes, 2048);
    assert_eq!(orders.consistency, NamespaceConsistency::Strong);
}

#[test]
fn strict_namespaces_refuse_undeclared_names() {
    let mut ns = NamespacesConfig::default();
    assert!(ns.policy("anything").is_some());
    ns.strict = true;
    assert!(ns.policy("anything").is_none());
    ns.declared.insert("orders".into(), NamespacePolicy::default());
    assert!(ns.policy("orders").is_some());
}

#[test]
fn invalid_namespace_name_and_schema_are_refused() {
    let text = "namespaces:\n  declared:\n    \"bad name\":\n      schema: 5\n";
    let msg = err_text(Config::from_yaml_str(text, "c.yaml"));
    assert!(msg.contains("namespaces.declared.bad name: namespace names"), "{msg}");
    assert!(msg.contains("namespaces.declared.bad name.schema: a JSON Schema"), "{msg}");
}

#[test]
fn psk_must_be_hex_and_exclusive_with_psk_file() {
    let text = format!("security:\n  psk: {}\n  psk_file: /etc/key\n", "ab".repeat(32));
    let msg = err_text(Config::from_yaml_str(&text, "c.yaml"));
    assert!(msg.contains("not both"), "{msg}");
    let msg = err_text(Config::from_yaml_str("security:\n  psk: xyz\n", "c.yaml"));
    assert!(msg.contains("64 hex characters"), "{msg}");
    assert!(!msg.contains("xyz"), "the key must not be echoed: {msg}");
}

#[test]
fn all_digit_psk_from_env_is_kept_verbatim() {
    let psk = "1234567890".repeat(6) + "1234";
    let config = load_str("", &[("STATEMESH_SECURITY__PSK", &psk)]).expect("ok");
    assert_eq!(config.security.psk.as_deref(), Some(psk.as_str()));
}

#[test]
fn unreadable_file_is_refused_naming_the_path() {
    let msg = err_text(Config::load(Some(std::path::Path::new("/nonexistent/statemesh.yaml")), Vec::new()));
    assert!(msg.starts_with("/nonexistent/statemesh.yaml: cannot read"), "{msg}");
}

#[test]
fn derived_paths_follow_data_dir_unless_set() {
    let mut config = Config::default();
    config.node.data_dir = "/data".into();
    assert_eq!(config.db_path(), std::path::PathBuf::from("/data/db"));
    assert_eq!(config.snapshot_dir(), std::path::PathBuf::from("/data/snapshots"));
    config.storage.path = Some("/fast/db".into());
    assert_eq!(config.db_path(), std::path::PathBuf::from("/fast/db"));
}

#[test]
fn empty_sections_mean_all_defaults() {
    let text = "storage:\n  # type: memory\napi: ~\nnamespaces:\n  declared:\n    orders:\n";
    let config = Config::from_yaml_str(text, "c.yaml").expect("ok");
    assert_eq!(config.storage, StorageConfig::default());
    assert_eq!(config.api, ApiConfig::default());
    assert_eq!(config.namespaces.policy("orders"), Some(&NamespacePolicy::default()));
    assert!(config.namespaces.declared.contains_key("orders"));
}

#[test]
fn env_override_into_an_empty_section_is_not_blamed_on_other_sections() {
    let config = load_str(
        "api: ~
storage:
",
        &[("STATEMESH_STORAGE__CACHE_DOCS", "64"), ("STATEMESH_NAMESPACES__DECLARED__LOGS", "")],
    )
    .expect("ok");
    assert_eq!(config.storage.cache_docs, 64);
    assert!(config.namespaces.declared.contains_key("logs"));
}

#[test]
fn non_mapping_documents_are_refused() {
    let msg = err_text(Config::from_yaml_str("- storage\n", "c.yaml"));
    assert!(msg.starts_with("c.yaml: must be a mapping of sections"), "{msg}");
    let msg = err_text(Config::from_yaml_str("state_management: 5\n", "c.yaml"));
    assert!(msg.starts_with("c.yaml: state_management: must be a mapping"), "{msg}");
}

#[test]
fn a_configuration_file_above_the_size_limit_is_refused_before_parsing() {
    // A comment line repeated past 1 MiB: valid YAML, but no configuration is that large,
    // and the file is refused after reading one byte past the limit, not all of it.
    let huge = "# padding\n".repeat(CONFIG_FILE_BYTES_MAX / 10 + 1);
    let msg = err_text(load_str(&huge, &[]));
    assert!(msg.contains("larger than 1048576 bytes"), "{msg}");
    let msg = err_text(Config::from_yaml_str(&huge, "inline"));
    assert!(msg.contains("more than the 1048576-byte limit"), "{msg}");
    // Just under the limit is read and parsed as usual.
    let fits = "# padding\n".repeat(CONFIG_FILE_BYTES_MAX / 10 - 1);
    assert_eq!(load_str(&fits, &[]).expect("loads"), Config::default());
}

#[test]
fn api_access_settings_are_checked_without_echoing_secrets() {
    let text = "api:\n  tokens:\n    - {name: ci, role: write, sha256: smt_plaintext_token}\n    \
                - {name: ci, role: read, sha256: 0000000000000000000000000000000000000000000000000000000000000000}\n  \
                cors_origins: ['https://app.example/', '*']\n  max_connections: 0\n";
    let err = Config::from_yaml_str(text, "c.yaml").expect_err("refused");
    let keys: Vec<_> = err.problems().iter().filter_map(|p| p.key.clone()).collect();
    assert_eq!(
        keys,
        ["api.tokens[0]", "api.tokens[1].name", "api.cors_origins[0]", "api.cors_origins[1]", "api.max_connections"]
    );
    let msg = err.to_string();
    assert!(msg.contains("the token's SHA-256, not the token"), "{msg}");
    assert!(!msg.contains("smt_plaintext_token"), "a pasted token is not echoed: {msg}");
}

#[test]
fn a_role_outside_read_write_admin_is_refused() {
    let msg = err_text(Config::from_yaml_str("api:\n  tokens:\n    - {name: x, role: root, sha256: ab}\n", "c.yaml"));
    assert!(msg.contains("api.tokens"), "{msg}");
}
