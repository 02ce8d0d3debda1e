//! Whole-document state transfer, for a peer whose position is behind the oldest change a
//! log still holds: serving pages of whole documents, and merging them.
//!
//! Merging is Automerge's own merge, so it is safe whatever the receiver already has. The
//! changes it brings have no log record here (the log that carried them is gone), so this
//! node cannot serve them to others by log range either: a peer even further behind is sent
//! whole documents in turn. Each merged document gets a feed event whose change is
//! `(peer, 0)` and kind `automerge`: "state received from that peer".
//!
//! Each page also carries the headers that prove its documents' heads (`doc_proofs`), and a
//! document is merged only if the changes it brings are vouched for by those headers (see
//! `statemesh_protocol::attestation`): the headers are stored first, and the changes they
//! name are indexed under the records that wrote them, so this node proves them in turn.
//!
//! Each page carries, for every entry of the responder's version vector, the seal of the
//! record at exactly that seq (a tip): the requester counts an entry as held only if its
//! origin sealed it, and stores the tips with the vector, since the records themselves are
//! not in its log and it must prove the entries when it serves state in turn.

use std::sync::Arc;

use statemesh_protocol::attestation::{Attestations, RecordHeader};
use statemesh_protocol::change_log::log_key;
use statemesh_protocol::seal::SealedTip;
use statemesh_protocol::wire::DocState;
use statemesh_protocol::{ChangeId, ChangeKind, ChangeRecord, DocKey, NodeId, VersionVector};

use super::change_index::{self, ChangeRef};
use super::committer::PendingWrite;
use super::doc_proofs::Prover;
use super::feed_event::FeedEvent;
use super::{vv_key, DocMeta, Node, NodeError};
use crate::clock::now_ms;
use crate::storage::{codec, key_after, BatchOp, Family, StorageError, WriteBatch};

/// Meta-family prefix of the tips received by state transfer, one per origin.
const TIP_PREFIX: &[u8] = b"tip/";

fn tip_key(origin: &NodeId) -> Vec<u8> {
    let mut key = TIP_PREFIX.to_vec();
    key.extend_from_slice(origin.as_str().as_bytes());
    key
}

/// One page of documents for a peer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DocsPage {
    pub docs: Vec<DocState>,
    pub next: Option<DocKey>,
    /// This node's version vector, taken before the documents were read.
    pub vv: VersionVector,
    /// The seal proving each entry of `vv`, where this node has one.
    pub tips: Vec<SealedTip>,
    /// The headers proving the documents' heads.
    pub proofs: Vec<RecordHeader>,
}

impl Node {
    /// Up to `max_docs` stored documents after `after`, in key order, about `max_bytes` in all.
    pub async fn read_docs(
        &self,
        after: Option<DocKey>,
        max_docs: u32,
        max_bytes: usize,
    ) -> Result<DocsPage, NodeError> {
        let node = self.clone();
        tokio::task::spawn_blocking(move || node.read_docs_blocking(after.as_ref(), max_docs as usize, max_bytes))
            .await
            .map_err(|_| NodeError::ShuttingDown)?
            .map_err(NodeError::from)
    }

    fn read_docs_blocking(
        &self,
        after: Option<&DocKey>,
        max_docs: usize,
        max_bytes: usize,
    ) -> Result<DocsPage, StorageError> {
        // Taken first: every change it covers is already in the stored documents.
        let vv = self.version_vector();
        let start = after.map(|key| key_after(&key.to_storage_key())).unwrap_or_default();
        let entries = self.inner.storage.scan(Family::Docs, &[], &start, max_docs.max(1) + 1)?;
        let tips = self.tips(&vv)?;
        let mut page = DocsPage { vv, tips, ..DocsPage::default() };
        let mut prover = Prover::new(self.inner.storage.as_ref(), self.inner.actor.clone());
        let mut bytes = 0;
        for (i, (key, value)) in entries.iter().enumerate() {
            let doc = DocKey::from_storage_key(key).ok_or_else(|| StorageError::Corrupt("document key".to_string()))?;
            let full = i >= max_docs.max(1) || (!page.docs.is_empty() && bytes + value.len() > max_bytes);
            if full {
                page.next = page.docs.last().map(|d| d.doc.clone());
                break;
            }
            let (served, proof_bytes) = prover.prove(&doc, value)?;
            bytes += served.len() + proof_bytes;
            page.docs.push(DocState { doc, automerge: served });
        }
        page.proofs = prover.into_headers();
        Ok(page)
    }

    /// The seal on the record at each entry of `vv`: from the change log, or, for entries
    /// that came by state transfer, from the tips stored with them. Entries with neither are
    /// left out (the requester then does not count them).
    fn tips(&self, vv: &VersionVector) -> Result<Vec<SealedTip>, StorageError> {
        let storage = &self.inner.storage;
        let mut tips = Vec::with_capacity(vv.len());
        for (origin, seq) in vv.iter() {
            let from_log = match storage.get(Family::ChangeLog, &log_key(origin, seq))? {
                Some(bytes) => {
                    let record = ChangeRecord::decode(&bytes).map_err(|e| StorageError::Corrupt(e.to_string()))?;
                    SealedTip::of(&record)
                }
                None => None,
            };
            let tip = match from_log {
                Some(tip) => Some(tip),
                None => match storage.get(Family::Meta, &tip_key(origin))? {
                    Some(bytes) => Some(codec::decode::<SealedTip>(&bytes, "sealed tip")?),
                    None => None,
                },
            };
            tips.extend(tip.filter(|tip| tip.id.seq == seq));
        }
        Ok(tips)
    }

    /// Merges whole documents received from `from`, as far as `proofs` (headers already
    /// checked against their origins' seals) vouch for them, and waits until they are
    /// durable; on the last page of a transfer, also stores the version vector it completes
    /// and the tips that prove it. A document bringing a change no proof vouches for stops
    /// the merge with [`NodeError::Document`].
    pub async fn merge_docs(
        &self,
        from: NodeId,
        docs: Vec<DocState>,
        complete: Option<VersionVector>,
        tips: Vec<SealedTip>,
        proofs: Vec<RecordHeader>,
    ) -> Result<(), NodeError> {
        let node = self.clone();
        let wait_for = tokio::task::spawn_blocking(move || node.merge_docs_blocking(&from, docs, &proofs))
            .await
            .map_err(|_| NodeError::ShuttingDown)??;
        self.inner.sequencer.wait_durable(wait_for).await?;
        if let Some(vv) = complete {
            self.store_remote_vv(&vv, &tips).await?;
        }
        Ok(())
    }

    fn merge_docs_blocking(
        &self,
        from: &NodeId,
        docs: Vec<DocState>,
        proofs: &[RecordHeader],
    ) -> Result<u64, NodeError> {
        let inner = &self.inner;
        // The headers go first, so they are durable no later than the documents they prove
        // (the committer's synced write that makes a document durable syncs the log up to it).
        let mut headers = WriteBatch::new();
        for header in proofs {
            headers.put(Family::RecordHeaders, log_key(&header.id.origin, header.id.seq), header.encode());
        }
        inner.storage.write_unsynced(headers)?;
        let attestations = Attestations::from_verified(proofs);
        let mut wait_for = 0;
        for DocState { doc: key, automerge } in docs {
            let handle = inner.cache.entry(&key, inner.sequencer.durable().pos);
            let mut guard = handle.lock();
            let entry = &mut *guard;
            self.ensure_loaded(&key, entry)?;
            let Some(doc) = entry.doc.as_mut() else { continue };
            let existed = doc.exists();
            let merged = doc.merge_bytes(&automerge, |hash| attestations.vouching(&key, hash).is_some())?;
            if merged.is_noop() {
                continue;
            }
            let changes = merged.changes;
            let version = doc.version();
            let exists = doc.exists();
            let now = now_ms();
            let meta = DocMeta::new(exists, &version, now, doc.change_count() as u64);
            entry.json_bytes_bound = None;
            let mut ops = self.document_ops(&key, entry, &changes);
            ops.push(BatchOp::Put { family: Family::DocMeta, key: key.to_storage_key(), value: meta.encode() });
            let vouched: Vec<(automerge::ChangeHash, ChangeId)> = merged
                .hashes
                .iter()
                .filter_map(|hash| attestations.vouching(&key, hash).map(|id| (*hash, id.clone())))
                .collect();
            let submitted = inner.sequencer.submit(0, 1, |numbers| {
                for (hash, change) in vouched {
                    let value = ChangeRef { change, pos: numbers.first_pos }.encode();
                    ops.push(BatchOp::Put { family: Family::DocChanges, key: change_index::key(&key, &hash), value });
                }
                let event = Arc::new(FeedEvent {
                    pos: numbers.first_pos,
                    change: ChangeId { origin: from.clone(), seq: 0 },
                    doc: key.clone(),
                    kind: ChangeKind::Automerge,
                    time_ms: now,
                    version: version.to_string(),
                    exists,
                    author: None,
                });
                ops.extend(self.feed_op(&event));
                PendingWrite {
                    ops,
                    doc_count_delta: i64::from(exists) - i64::from(existed),
                    events: vec![event],
                    ..PendingWrite::default()
                }
            });
            match submitted {
                Ok(pos) => {
                    entry.queued(pos, version);
                    wait_for = pos;
                }
                Err(error) => {
                    entry.doc = None;
                    return Err(error);
                }
            }
        }
        Ok(wait_for)
    }

    /// Stores other origins' version-vector entries directly (they only ever grow, so
    /// racing with a batch that carries an older value costs at most a repeated transfer
    /// after a restart), then shows them.
    async fn store_remote_vv(&self, vv: &VersionVector, tips: &[SealedTip]) -> Result<(), NodeError> {
        let me = self.node_id().clone();
        let mut batch = WriteBatch::new();
        for (origin, seq) in vv.iter().filter(|(origin, _)| *origin != &me) {
            batch.put(Family::Meta, vv_key(origin), seq.to_be_bytes().to_vec());
        }
        for tip in tips {
            batch.put(Family::Meta, tip_key(&tip.id.origin), codec::encode(tip));
        }
        let storage = self.inner.storage.clone();
        tokio::task::spawn_blocking(move || storage.write(batch)).await.map_err(|_| NodeError::ShuttingDown)??;
        self.set_replicated_vv(vv);
        Ok(())
    }
}
