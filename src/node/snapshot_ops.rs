//! Snapshot export and restore on the node: the part of snapshots that touches documents.
//!
//! Export reads durable storage at one point in time ([`Storage::visit_consistent`] over the
//! document, metadata and meta families), so the snapshot is a state the node really had,
//! with a version vector that matches it. Writes still queued in memory are not in it: a
//! snapshot reflects what a crash would have kept.
//!
//! Restore never rewrites storage underneath the node. Every document goes through the
//! ordinary write path as one [`ChangeKind::Restore`] write: the snapshot's changes are
//! merged in (so its history is there) and a change on top sets the content to the
//! snapshot's; documents the snapshot lacks are deleted. History is kept, the changes
//! replicate like any other write, and namespace rules still apply. Before the first write,
//! every document's bytes are loaded once, so a snapshot with an unusable document changes
//! nothing at all.

use std::time::Instant;

use futures::StreamExt;
use statemesh_protocol::{ChangeKind, DocKey, Document, VersionVector, WriteOutcome};

use super::vv_store::{parse_vv_entry, VV_PREFIX};
use super::{DocMeta, Node, NodeError, Precondition};
use crate::clock::now_ms;
use crate::snapshot::report::RestoreReport;
use crate::snapshot::{Phase, Progress, RestoreFailure, SnapshotBody, SnapshotDoc, SnapshotError};
use crate::storage::{key_after, Family, StorageError};

/// Restoring writes in flight at once: enough for group commit to share fsyncs, few enough
/// to leave room for other clients.
const RESTORE_CONCURRENCY: usize = 64;
/// Document metadata read per page when looking for documents absent from the snapshot.
const SCAN_PAGE: usize = 1000;

impl Node {
    /// A consistent snapshot of every namespace, read from durable storage, named `id`.
    /// Reports [`Phase::Reading`] progress. Blocking: run it off the async runtime.
    pub fn export_snapshot(&self, id: String, progress: &mut dyn FnMut(Progress)) -> Result<SnapshotBody, NodeError> {
        let created_ms = now_ms();
        let corrupt = |what: &str| StorageError::Corrupt(what.to_string());
        // Metadata comes first in the visit, so the document total is known before the
        // documents themselves stream by.
        let mut metas: Vec<(Vec<u8>, bool)> = Vec::new();
        let mut documents: Vec<SnapshotDoc> = Vec::new();
        let mut version_vector = VersionVector::new();
        self.inner.storage.visit_consistent(
            &[Family::DocMeta, Family::Docs, Family::Meta],
            &mut |family, key, value| {
                match family {
                    Family::DocMeta => metas.push((key.to_vec(), DocMeta::decode(value)?.exists)),
                    Family::Docs => {
                        let doc_key = DocKey::from_storage_key(key).ok_or_else(|| corrupt("document key"))?;
                        let exists = match metas.binary_search_by(|(k, _)| k.as_slice().cmp(key)) {
                            Ok(at) => metas[at].1,
                            // Bytes without metadata (never written that way): ask the document.
                            Err(_) => Document::load(value, self.inner.actor.clone())
                                .map_err(|e| StorageError::Corrupt(format!("document {doc_key}: {e}")))?
                                .exists(),
                        };
                        documents.push(SnapshotDoc { key: doc_key, exists, automerge: value.to_vec() });
                        let done = documents.len() as u64;
                        if done.is_multiple_of(1000) {
                            progress(Progress::new(Phase::Reading, done, metas.len().max(documents.len()) as u64));
                        }
                    }
                    Family::Meta if key.starts_with(VV_PREFIX) => {
                        let (origin, seq) = parse_vv_entry(key, value)?;
                        version_vector.advance(&origin, seq);
                    }
                    _ => {}
                }
                Ok(())
            },
        )?;
        let total = documents.len() as u64;
        progress(Progress::new(Phase::Reading, total, total));
        Ok(SnapshotBody { id, created_ms, node_id: self.node_id().to_string(), version_vector, documents })
    }

    /// Brings every document to its state in `body`, as new changes, and deletes live
    /// documents the snapshot does not contain. The whole body is checked first (every
    /// document's bytes must load); if any fails, nothing is written. Documents that the
    /// node then refuses (a namespace schema, strict namespaces) are reported in the result;
    /// a storage failure stops the restore and is returned.
    pub async fn restore_snapshot(
        &self,
        body: &SnapshotBody,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<RestoreReport, SnapshotError> {
        let started = Instant::now();
        let total = body.documents.len() as u64;
        let mut report = RestoreReport { id: body.id.clone(), documents: total, ..RestoreReport::default() };

        // 1. Check: every document loads. Nothing has been written yet.
        for (done, doc) in body.documents.iter().enumerate() {
            if let Err(error) = Document::load(&doc.automerge, self.inner.actor.clone()) {
                return Err(SnapshotError::Corrupt {
                    path: format!("snapshot {}", body.id),
                    reason: format!("document {} cannot be loaded: {error}", doc.key),
                });
            }
            if done.is_multiple_of(1000) {
                progress(Progress::new(Phase::Checking, done as u64, total));
            }
        }
        progress(Progress::new(Phase::Checking, total, total));

        // 2. Restore the snapshot's documents, many writes in flight so fsyncs are shared.
        // Indexes rather than references in the stream: closures over borrowed items trip
        // rustc's higher-ranked lifetime check when the whole restore runs in a spawned task.
        let documents = &body.documents;
        let mut writes = futures::stream::iter(0..documents.len())
            .map(|at| async move { (&documents[at], self.restore_document(&documents[at]).await) })
            .buffer_unordered(RESTORE_CONCURRENCY);
        let mut done = 0u64;
        progress(Progress::new(Phase::Restoring, 0, total));
        while let Some((doc, result)) = writes.next().await {
            match result {
                Ok(true) => report.restored += 1,
                Ok(false) => report.unchanged += 1,
                Err(error @ (NodeError::Storage(_) | NodeError::ShuttingDown)) => return Err(error.into()),
                Err(error) => report.record_failure(failure(&doc.key, &error)),
            }
            done += 1;
            if done.is_multiple_of(100) || done == total {
                progress(Progress::new(Phase::Restoring, done, total));
            }
        }
        drop(writes);

        // 3. Delete live documents the snapshot does not have.
        let mut in_snapshot: Vec<Vec<u8>> = body.documents.iter().map(|d| d.key.to_storage_key()).collect();
        in_snapshot.sort_unstable();
        let mut start = Vec::new();
        let mut examined = 0u64;
        loop {
            let page = self.inner.storage.scan(Family::DocMeta, b"", &start, SCAN_PAGE)?;
            let mut absent = Vec::new();
            for (key, value) in &page {
                if DocMeta::decode(value)?.exists && in_snapshot.binary_search(key).is_err() {
                    absent.push(
                        DocKey::from_storage_key(key)
                            .ok_or_else(|| SnapshotError::from(StorageError::Corrupt("document key".to_string())))?,
                    );
                }
            }
            examined += page.len() as u64;
            let absent = &absent;
            let mut deletes = futures::stream::iter(0..absent.len())
                .map(|at| async move { (&absent[at], self.delete(&absent[at], &Precondition::None).await) })
                .buffer_unordered(RESTORE_CONCURRENCY);
            while let Some((key, result)) = deletes.next().await {
                match result {
                    Ok(_) => report.deleted += 1,
                    // Deleted meanwhile by someone else: the outcome is the one wanted.
                    Err(NodeError::NotFound(_)) => {}
                    Err(error @ (NodeError::Storage(_) | NodeError::ShuttingDown)) => return Err(error.into()),
                    Err(error) => report.record_failure(failure(key, &error)),
                }
            }
            progress(Progress::new(Phase::Deleting, examined, examined));
            match page.last() {
                Some((last, _)) if page.len() == SCAN_PAGE => start = key_after(last),
                _ => break,
            }
        }
        report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(report)
    }

    /// One document to its snapshot state; `Ok(true)` when that took a new change.
    async fn restore_document(&self, snap: &SnapshotDoc) -> Result<bool, NodeError> {
        let target = if snap.exists {
            // Checked loadable before the first write; loaded again here so the restore
            // never holds more than the in-flight documents in memory.
            Some(Document::load(&snap.automerge, self.inner.actor.clone())?.to_json())
        } else {
            None
        };
        let key = &snap.key;
        let result = self
            .write(key, &Precondition::None, ChangeKind::Restore, None, |doc, rules, now, bound| {
                // Work on a copy: if the second step fails, the document is left as it was.
                let mut candidate = doc.clone();
                let merged = candidate.apply_raw(&snap.automerge, |_| Ok::<(), NodeError>(()))?;
                // Merged changes make the known JSON size bound stale.
                let kept_bound = if merged.changes.is_empty() { *bound } else { None };
                let (second, new_bound) = match &target {
                    Some(json) => {
                        let size = rules.check(&key.namespace, json)?;
                        (candidate.restore(json, now)?, Some(size))
                    }
                    None if candidate.exists() => (candidate.delete(now)?, Some(2)),
                    None => (WriteOutcome::unchanged(candidate.version()), kept_bound),
                };
                let mut outcome = merged;
                outcome.absorb(second);
                *doc = candidate;
                *bound = new_bound;
                Ok(outcome)
            })
            .await?;
        Ok(result.change.is_some())
    }
}

fn failure(key: &DocKey, error: &NodeError) -> RestoreFailure {
    RestoreFailure { namespace: key.namespace.to_string(), id: key.doc_id.to_string(), error: error.to_string() }
}
