use automerge::ActorId;
use proptest::prelude::*;
use serde_json::json;

use super::*;

fn accept_all(_: &Document) -> Result<(), DocError> {
    Ok(())
}

fn doc(actor: u8) -> Document {
    Document::new(ActorId::from(vec![actor; 16]))
}

#[test]
fn put_then_read_round_trips_json() {
    let mut d = doc(1);
    let body = json!({"name": "ada", "tags": ["x", {"deep": [1, 2.5, null, true]}], "n": -3});
    let out = d.put(&body, 10).unwrap();
    assert_eq!(out.changes.len(), 1);
    assert_eq!(d.to_json(), body);
    assert!(d.exists());
}

#[test]
fn identical_put_changes_nothing() {
    let mut d = doc(1);
    d.put(&json!({"a": 1, "b": [1, 2]}), 10).unwrap();
    let again = d.put(&json!({"a": 1, "b": [1, 2]}), 11).unwrap();
    assert!(again.is_noop());
    assert_eq!(d.change_count(), 1);
}

#[test]
fn non_object_root_is_refused_and_changes_nothing() {
    let mut d = doc(1);
    assert!(matches!(d.put(&json!([1]), 1), Err(DocError::RootNotObject)));
    assert!(matches!(d.merge_patch(&json!("x"), 1), Err(DocError::RootNotObject)));
    assert!(!d.exists());
    assert_eq!(d.change_count(), 0);
}

#[test]
fn too_deep_json_is_refused_and_rolled_back() {
    let mut deep = json!(1);
    for _ in 0..(crate::limits::JSON_DEPTH_MAX + 2) {
        deep = json!({ "a": deep });
    }
    let mut d = doc(1);
    assert!(matches!(d.put(&deep, 1), Err(DocError::TooDeep(_))));
    assert_eq!(d.change_count(), 0);
}

#[test]
fn delete_tombstones_and_a_later_put_revives() {
    let mut d = doc(1);
    d.put(&json!({"a": 1}), 1).unwrap();
    let deleted = d.delete(2).unwrap();
    assert!(!d.exists());
    assert!(!d.exists_at(&deleted.version));
    assert_eq!(d.to_json(), json!({}));
    let revived = d.put(&json!({}), 3).unwrap();
    assert!(d.exists(), "an empty put on a deleted document re-creates it");
    assert!(d.exists_at(&revived.version));
    assert!(!d.exists_at(&Version::default()));
}

#[test]
fn a_write_concurrent_with_a_delete_keeps_the_document() {
    let mut a = doc(1);
    a.put(&json!({"x": 1}), 1).unwrap();
    let mut b = a.clone();
    b.doc.set_actor(ActorId::from(vec![2u8; 16]));
    let deletion = a.delete(2).unwrap();
    let edit = b.merge_patch(&json!({"y": 2}), 2).unwrap();
    a.apply_changes(&edit.changes).unwrap();
    b.apply_changes(&deletion.changes).unwrap();
    assert!(a.exists() && b.exists());
    assert_eq!(a.to_json(), json!({"y": 2}));
    assert_eq!(a.to_json(), b.to_json());
    assert_eq!(a.version(), b.version());
}

#[test]
fn concurrent_edits_to_different_fields_both_survive() {
    let mut a = doc(1);
    a.put(&json!({"x": 1, "y": 1}), 1).unwrap();
    let mut b = a.clone();
    b.doc.set_actor(ActorId::from(vec![2u8; 16]));
    let from_a = a.put(&json!({"x": 2, "y": 1}), 2).unwrap();
    let from_b = b.put(&json!({"x": 1, "y": 3}), 2).unwrap();
    a.apply_changes(&from_b.changes).unwrap();
    b.apply_changes(&from_a.changes).unwrap();
    assert_eq!(a.to_json(), json!({"x": 2, "y": 3}));
    assert_eq!(b.to_json(), a.to_json());
}

#[test]
fn history_reads_and_rollback_write_a_new_change() {
    let mut d = doc(1);
    let v1 = d.put(&json!({"v": 1}), 1).unwrap().version;
    d.put(&json!({"v": 2}), 2).unwrap();
    assert_eq!(d.to_json_at(&v1).unwrap(), json!({"v": 1}));
    let rolled = d.rollback_to(&v1, 3).unwrap();
    assert_eq!(rolled.changes.len(), 1);
    assert_eq!(d.to_json(), json!({"v": 1}));
    assert_eq!(d.change_count(), 3);
    let unknown = Version::new(vec![automerge::ChangeHash([9; 32])]);
    assert!(matches!(d.to_json_at(&unknown), Err(DocError::UnknownVersion(_))));
}

#[test]
fn raw_changes_from_another_program_round_trip() {
    // "Another program": a plain Automerge document with its own actor and a text object.
    let mut foreign = automerge::AutoCommit::new();
    let text = foreign.put_object(ROOT, "title", ObjType::Text).unwrap();
    foreign.splice_text(&text, 0, 0, "hello").unwrap();
    foreign.put(ROOT, "count", 3).unwrap();
    let bytes = foreign.save();

    let mut d = doc(1);
    let out = d.apply_raw(&bytes, accept_all).unwrap();
    assert_eq!(d.to_json(), json!({"title": "hello", "count": 3}));
    let back = d.changes_since(&Version::default()).unwrap();
    assert_eq!(back.len(), out.changes.len());
    let mut reloaded = automerge::AutoCommit::new();
    reloaded.load_incremental(&back.concat()).unwrap();
    assert_eq!(reloaded.get_heads(), foreign.get_heads());

    // Writing JSON over the text object splices it rather than replacing it.
    d.merge_patch(&json!({"title": "hello world"}), 5).unwrap();
    assert!(matches!(d.automerge().get(ROOT, "title").unwrap(), Some((automerge::Value::Object(ObjType::Text), _))));
}

use automerge::ObjType;

#[test]
fn invalid_or_dangling_raw_changes_leave_the_document_untouched() {
    let mut d = doc(1);
    d.put(&json!({"a": 1}), 1).unwrap();
    let before = d.version();
    assert!(matches!(d.apply_raw(b"not automerge", accept_all), Err(DocError::InvalidAutomerge(_))));

    let mut other = doc(2);
    other.put(&json!({"b": 1}), 1).unwrap();
    let second = other.put(&json!({"b": 2}), 2).unwrap();
    assert!(matches!(d.apply_raw(&second.changes[0], accept_all), Err(DocError::MissingDependencies(1))));
    assert_eq!(d.version(), before);
    assert_eq!(d.to_json(), json!({"a": 1}));
}

#[test]
fn saved_bytes_followed_by_change_chunks_load_as_one_document() {
    let mut d = doc(1);
    d.put(&json!({"a": 1}), 1).unwrap();
    let mut stored = d.save();
    let more = d.merge_patch(&json!({"b": 2}), 2).unwrap();
    stored.extend_from_slice(&more.changes[0]);
    let loaded = Document::load(&stored, ActorId::from(vec![1u8; 16])).unwrap();
    assert_eq!(loaded.to_json(), json!({"a": 1, "b": 2}));
    assert_eq!(loaded.version(), d.version());
}

#[test]
fn counters_are_incremented_not_overwritten() {
    let mut foreign = automerge::AutoCommit::new();
    foreign.put(ROOT, "hits", ScalarValue::counter(5)).unwrap();
    let mut d = doc(1);
    d.apply_raw(&foreign.save(), accept_all).unwrap();
    d.merge_patch(&json!({"hits": 8}), 1).unwrap();
    assert_eq!(d.to_json(), json!({"hits": 8}));
    assert!(matches!(
        d.automerge().get(ROOT, "hits").unwrap(),
        Some((automerge::Value::Scalar(s), _)) if matches!(s.as_ref(), ScalarValue::Counter(_))
    ));
}

use automerge::ScalarValue;

fn json_strategy() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        (-5i64..5).prop_map(|n| json!(n)),
        "[a-c]{0,2}".prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object_strategy() -> impl Strategy<Value = serde_json::Value> {
    proptest::collection::btree_map("[a-d]", json_strategy(), 0..5)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

proptest! {
    #[test]
    fn put_always_reads_back_exactly(first in object_strategy(), second in object_strategy()) {
        let mut d = doc(1);
        d.put(&first, 1).unwrap();
        prop_assert_eq!(d.to_json(), first);
        d.put(&second, 2).unwrap();
        prop_assert_eq!(d.to_json(), second);
    }

    #[test]
    fn merge_patch_on_automerge_matches_rfc7386_on_json(start in object_strategy(), patch in object_strategy()) {
        let mut d = doc(1);
        d.put(&start, 1).unwrap();
        let expected = d.preview_merge_patch(&patch);
        d.merge_patch(&patch, 2).unwrap();
        prop_assert_eq!(d.to_json(), expected);
    }

    #[test]
    fn replicas_converge_whatever_the_delivery_order(a_body in object_strategy(), b_body in object_strategy(), c_patch in object_strategy()) {
        let mut a = doc(1);
        let mut b = doc(2);
        let mut c = doc(3);
        let w1 = a.put(&a_body, 1).unwrap();
        let w2 = b.put(&b_body, 1).unwrap();
        let w3 = c.merge_patch(&c_patch, 1).unwrap();
        a.apply_changes(&w2.changes).unwrap();
        a.apply_changes(&w3.changes).unwrap();
        b.apply_changes(&w3.changes).unwrap();
        b.apply_changes(&w1.changes).unwrap();
        c.apply_changes(&w1.changes).unwrap();
        c.apply_changes(&w2.changes).unwrap();
        prop_assert_eq!(a.version(), b.version());
        prop_assert_eq!(a.to_json(), b.to_json());
        prop_assert_eq!(b.to_json(), c.to_json());
        prop_assert_eq!(a.exists(), c.exists());
        prop_assert_eq!(a.exists(), heads_exist(&a.doc), "the cached existence flag matches the heads");
    }
}

proptest! {
    #[test]
    fn arbitrary_or_corrupted_bytes_never_panic_and_never_half_apply(
        noise in proptest::collection::vec(any::<u8>(), 0..200),
        flip_at in any::<prop::sample::Index>(),
    ) {
        let mut d = doc(1);
        d.put(&json!({"a": 1}), 1).unwrap();
        let before = (d.version(), d.to_json());
        let _ = d.apply_raw(&noise, accept_all);

        let mut other = doc(2);
        let mut valid = other.put(&json!({"b": "x"}), 1).unwrap().changes.concat();
        let i = flip_at.index(valid.len());
        valid[i] ^= 0x5a;
        if d.apply_raw(&valid, accept_all).is_err() {
            prop_assert_eq!((d.version(), d.to_json()), before);
        }
    }
}

#[test]
fn a_refused_raw_result_leaves_the_document_untouched() {
    let mut d = doc(1);
    d.put(&json!({"a": 1}), 1).unwrap();
    let mut other = doc(2);
    let bytes = other.put(&json!({"b": 1}), 1).unwrap().changes.concat();
    let refused = d.apply_raw(&bytes, |_| Err(DocError::RootNotObject));
    assert!(refused.is_err());
    assert_eq!(d.to_json(), json!({"a": 1}));
}

#[test]
fn the_hash_read_from_a_change_chunk_header_is_automerges_own() {
    let mut d = doc(1);
    let small = d.put(&json!({"a": 1}), 1).unwrap();
    // Large enough that Automerge compresses the change when it stores it.
    let large = d.put(&json!({"text": "x".repeat(4096)}), 2).unwrap();
    for outcome in [small, large] {
        assert_eq!(plain_change_hash(&outcome.changes[0]), Some(outcome.hashes[0]));
    }
    let change = d.put(&json!({"b": 2}), 3).unwrap().changes.remove(0);
    let mut trailing = change.clone();
    trailing.push(0);
    assert_eq!(plain_change_hash(&trailing), None, "a byte after the chunk");
    let mut bad_checksum = change.clone();
    bad_checksum[4] ^= 1;
    assert_eq!(plain_change_hash(&bad_checksum), None);
    assert_eq!(plain_change_hash(&d.save()), None, "a whole document is not one change");
    assert_eq!(plain_change_hash(&change[..change.len() - 1]), None, "truncated");
    assert_eq!(plain_change_hash(&[]), None);
}

#[test]
fn merged_state_needs_its_newest_changes_vouched_for_and_nothing_else() {
    let mut origin = doc(1);
    let first = origin.put(&json!({"n": 1}), 1).unwrap().hashes[0];
    let second = origin.put(&json!({"n": 2}), 2).unwrap().hashes[0];
    let state = origin.save();

    // Vouching for the older change does not cover the newer one built on it.
    let mut receiver = doc(2);
    let refused = receiver.merge_bytes(&state, |hash| *hash == first);
    assert!(matches!(refused, Err(DocError::Unattested(hash)) if hash == second), "{refused:?}");
    assert_eq!(receiver.change_count(), 0, "nothing merged");

    // Vouching for the head covers its history.
    let merged = receiver.merge_bytes(&state, |hash| *hash == second).unwrap();
    assert_eq!(merged.hashes, vec![first, second]);
    assert_eq!(receiver.to_json(), json!({"n": 2}));

    // Changes the receiver holds already need nothing; a concurrent branch needs its own.
    let mut forger = Document::load(&receiver.save(), ActorId::from(vec![9; 16])).unwrap();
    let forged = forger.put(&json!({"n": 666}), 3).unwrap().hashes[0];
    let refused = receiver.merge_bytes(&forger.save(), |hash| *hash == second);
    assert!(matches!(refused, Err(DocError::Unattested(hash)) if hash == forged), "{refused:?}");
    assert_eq!(receiver.to_json(), json!({"n": 2}));
    assert!(receiver.merge_bytes(&state, |_| false).unwrap().is_noop(), "nothing new, nothing to vouch for");
}
