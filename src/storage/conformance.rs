//! The behaviour every storage backend must show, run against each of them.

use super::{key_after, Family, Storage, WriteBatch};

/// Runs every check on fresh stores made by `make`.
pub fn run_all(make: &dyn Fn() -> Box<dyn Storage>) {
    put_get_delete(make().as_ref());
    appends_concatenate_in_order(make().as_ref());
    families_are_separate(make().as_ref());
    every_family_holds_its_own_keys(make().as_ref());
    scan_respects_prefix_start_and_limit(make().as_ref());
    a_batch_applies_in_order(make().as_ref());
    a_consistent_visit_sees_one_point_in_time(make().as_ref());
    an_unsynced_write_is_read_at_once(make().as_ref());
    a_range_delete_removes_exactly_its_range(make().as_ref());
}

fn batch(f: impl FnOnce(&mut WriteBatch)) -> WriteBatch {
    let mut b = WriteBatch::new();
    f(&mut b);
    b
}

fn put_get_delete(store: &dyn Storage) {
    assert_eq!(store.get(Family::Meta, b"a").expect("get"), None);
    store.write(batch(|b| b.put(Family::Meta, b"a".to_vec(), b"1".to_vec()))).expect("write");
    assert_eq!(store.get(Family::Meta, b"a").expect("get"), Some(b"1".to_vec()));
    store.write(batch(|b| b.put(Family::Meta, b"a".to_vec(), b"2".to_vec()))).expect("write");
    assert_eq!(store.get(Family::Meta, b"a").expect("get"), Some(b"2".to_vec()));
    store.write(batch(|b| b.delete(Family::Meta, b"a".to_vec()))).expect("write");
    assert_eq!(store.get(Family::Meta, b"a").expect("get"), None);
}

fn appends_concatenate_in_order(store: &dyn Storage) {
    store.write(batch(|b| b.append(Family::Docs, b"d".to_vec(), b"x".to_vec()))).expect("write");
    store
        .write(batch(|b| {
            b.append(Family::Docs, b"d".to_vec(), b"y".to_vec());
            b.append(Family::Docs, b"d".to_vec(), b"z".to_vec());
        }))
        .expect("write");
    assert_eq!(store.get(Family::Docs, b"d").expect("get"), Some(b"xyz".to_vec()));
    // A put replaces the accumulated value; later appends extend the replacement.
    store
        .write(batch(|b| {
            b.put(Family::Docs, b"d".to_vec(), b"S".to_vec());
            b.append(Family::Docs, b"d".to_vec(), b"1".to_vec());
        }))
        .expect("write");
    assert_eq!(store.get(Family::Docs, b"d").expect("get"), Some(b"S1".to_vec()));
}

fn families_are_separate(store: &dyn Storage) {
    store.write(batch(|b| b.put(Family::DocMeta, b"k".to_vec(), b"m".to_vec()))).expect("write");
    assert_eq!(store.get(Family::ChangeLog, b"k").expect("get"), None);
    assert_eq!(store.get(Family::DocMeta, b"k").expect("get"), Some(b"m".to_vec()));
}

fn every_family_holds_its_own_keys(store: &dyn Storage) {
    store
        .write(batch(|b| {
            for family in Family::ALL {
                b.put(family, b"same-key".to_vec(), family.name().as_bytes().to_vec());
            }
        }))
        .expect("write");
    for family in Family::ALL {
        assert_eq!(store.get(family, b"same-key").expect("get"), Some(family.name().as_bytes().to_vec()));
    }
}

fn scan_respects_prefix_start_and_limit(store: &dyn Storage) {
    store
        .write(batch(|b| {
            for key in ["a\0x", "b\0a", "b\0b", "b\0c", "c\0a"] {
                b.put(Family::DocMeta, key.as_bytes().to_vec(), b"v".to_vec());
            }
        }))
        .expect("write");
    let keys = |prefix: &[u8], start: &[u8], limit| -> Vec<Vec<u8>> {
        store.scan(Family::DocMeta, prefix, start, limit).expect("scan").into_iter().map(|(k, _)| k).collect()
    };
    assert_eq!(keys(b"b\0", b"", 10), vec![b"b\0a".to_vec(), b"b\0b".to_vec(), b"b\0c".to_vec()]);
    assert_eq!(keys(b"b\0", b"", 2).len(), 2);
    assert_eq!(keys(b"b\0", &key_after(b"b\0a"), 10), vec![b"b\0b".to_vec(), b"b\0c".to_vec()]);
    assert_eq!(keys(b"b\0", b"z", 10), Vec::<Vec<u8>>::new());
    assert_eq!(keys(b"", b"", 100).len(), 5);
}

fn a_batch_applies_in_order(store: &dyn Storage) {
    store
        .write(batch(|b| {
            b.put(Family::Meta, b"o".to_vec(), b"1".to_vec());
            b.delete(Family::Meta, b"o".to_vec());
            b.put(Family::Meta, b"o".to_vec(), b"3".to_vec());
        }))
        .expect("write");
    assert_eq!(store.get(Family::Meta, b"o").expect("get"), Some(b"3".to_vec()));
}

fn a_consistent_visit_sees_one_point_in_time(store: &dyn Storage) {
    store
        .write(batch(|b| {
            b.put(Family::DocMeta, b"a".to_vec(), b"meta-a".to_vec());
            b.put(Family::DocMeta, b"b".to_vec(), b"meta-b".to_vec());
            b.append(Family::Docs, b"a".to_vec(), b"doc-".to_vec());
            b.append(Family::Docs, b"a".to_vec(), b"a".to_vec());
            b.put(Family::Meta, b"m".to_vec(), b"1".to_vec());
        }))
        .expect("write");
    let mut seen = Vec::new();
    let mut writes_during_visit = 0;
    store
        .visit_consistent(&[Family::Docs, Family::DocMeta], &mut |family, key, value| {
            // Writes landing mid-visit (from another thread, in a node) must not show up.
            if writes_during_visit == 0 {
                writes_during_visit += 1;
                store
                    .write(batch(|b| {
                        b.put(Family::DocMeta, b"c".to_vec(), b"meta-c".to_vec());
                        b.delete(Family::DocMeta, b"b".to_vec());
                    }))
                    .expect("write during visit");
            }
            seen.push((family, key.to_vec(), value.to_vec()));
            Ok(())
        })
        .expect("visit");
    assert_eq!(
        seen,
        vec![
            (Family::Docs, b"a".to_vec(), b"doc-a".to_vec()),
            (Family::DocMeta, b"a".to_vec(), b"meta-a".to_vec()),
            (Family::DocMeta, b"b".to_vec(), b"meta-b".to_vec()),
        ],
        "families in the order asked, merged values, nothing written after the visit began"
    );
    // The first error stops the visit and is returned.
    let mut calls = 0;
    let result = store.visit_consistent(&[Family::DocMeta], &mut |_, _, _| {
        calls += 1;
        Err(super::StorageError::Io("stop".to_string()))
    });
    assert!(result.is_err());
    assert_eq!(calls, 1);
}

fn an_unsynced_write_is_read_at_once(store: &dyn Storage) {
    store.write_unsynced(batch(|b| b.put(Family::RaftLog, b"k".to_vec(), b"1".to_vec()))).expect("write");
    assert_eq!(store.get(Family::RaftLog, b"k").expect("get"), Some(b"1".to_vec()));
    store.write_unsynced(batch(|b| b.delete(Family::RaftLog, b"k".to_vec()))).expect("write");
    store.sync().expect("sync");
    assert_eq!(store.get(Family::RaftLog, b"k").expect("get"), None);
}

fn a_range_delete_removes_exactly_its_range(store: &dyn Storage) {
    store
        .write(batch(|b| {
            for key in [1u8, 2, 3, 4, 5] {
                b.put(Family::Feed, vec![key], b"v".to_vec());
                b.put(Family::ChangeLog, vec![key], b"v".to_vec());
            }
        }))
        .expect("write");
    let keys = |family| -> Vec<Vec<u8>> {
        store.scan(family, b"", b"", 100).expect("scan").into_iter().map(|(k, _)| k).collect()
    };
    store
        .write(batch(|b| {
            b.delete_range(Family::Feed, vec![2], vec![4]);
            // Inverted and empty ranges delete nothing.
            b.delete_range(Family::Feed, vec![5], vec![1]);
            b.delete_range(Family::Feed, vec![5], vec![5]);
        }))
        .expect("write");
    assert_eq!(keys(Family::Feed), vec![vec![1], vec![4], vec![5]], "start included, end excluded");
    assert_eq!(keys(Family::ChangeLog).len(), 5, "other families untouched");
    // Within a batch, order holds: a key put after the range delete survives it.
    store
        .write(batch(|b| {
            b.delete_range(Family::ChangeLog, vec![0], vec![9]);
            b.put(Family::ChangeLog, vec![3], b"after".to_vec());
        }))
        .expect("write");
    assert_eq!(keys(Family::ChangeLog), vec![vec![3]]);
    assert_eq!(store.get(Family::ChangeLog, &[3]).expect("get"), Some(b"after".to_vec()));
}
