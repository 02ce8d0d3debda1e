//! Document history and rollback.
//!
//! The history of a document is its Automerge change graph, which the document keeps whole:
//! listings and `?at=` reads never depend on retention. Each entry is joined with the logged
//! change that carried it (origin, seq, feed cursor) through the change-hash index. A rollback
//! writes a *new* change restoring an older state, so history is never rewritten and the
//! rollback replicates like any other write.

use std::sync::Arc;

use automerge::ChangeHash;
use serde::Serialize;
use statemesh_protocol::{ChangeKind, CommitMessage, DocKey, Version};

use super::change_index::{self, ChangeRef};
use super::{Node, NodeError, Precondition, WriteResult};
use crate::storage::Family;

/// One change of a document, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// The Automerge change hash; `?at=<hash>` reads the document as of this change.
    pub hash: String,
    /// The Automerge actor that made it (hex).
    pub actor: String,
    /// The change's number among its actor's changes to this document.
    pub actor_seq: u64,
    pub time_ms: i64,
    pub message: Option<String>,
    /// The kind of write, read from a statemesh commit message (`None` for other messages).
    #[schema(value_type = Option<crate::api::schemas::ChangeKind>)]
    pub kind: Option<ChangeKind>,
    /// Who made the change, as its origin recorded it (the API token's name, `anonymous`);
    /// `None` when not recorded (changes from before authorship, raw Automerge changes).
    pub author: Option<String>,
    /// The logged change that carried it here (`origin:seq`), when known to this node.
    pub change: Option<String>,
    pub origin: Option<String>,
    pub seq: Option<u64>,
    /// This node's feed cursor of that logged change.
    pub cursor: Option<u64>,
    /// The version as of this change: the change and everything it depends on.
    pub version: String,
}

/// One page of history, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub next: Option<String>,
    pub total: usize,
}

/// What to roll back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackTarget {
    /// A version the document had.
    Version(Version),
    /// The state before the newest `n` changes (n ≥ 1).
    Steps(usize),
}

impl Node {
    /// The document's changes, newest first, starting after `before` (a change hash).
    pub async fn history(
        &self,
        key: &DocKey,
        before: Option<&ChangeHash>,
        limit: usize,
    ) -> Result<HistoryPage, NodeError> {
        let (mut entries, total, more) = self
            .read(key, |doc| {
                let metas = doc.history();
                if metas.is_empty() {
                    return Err(NodeError::NotFound(key.to_string()));
                }
                let newest_first: Vec<_> = metas.iter().rev().collect();
                let start = match before {
                    Some(hash) => {
                        newest_first
                            .iter()
                            .position(|m| &m.hash == hash)
                            .ok_or_else(|| NodeError::UnknownVersion(Version::new(vec![*hash])))?
                            + 1
                    }
                    None => 0,
                };
                let entries: Vec<HistoryEntry> = newest_first
                    .iter()
                    .skip(start)
                    .take(limit)
                    .map(|meta| {
                        let parsed = meta.message.as_deref().and_then(CommitMessage::parse);
                        (meta, parsed.map(|m| m.kind), parsed.and_then(|m| m.author).map(str::to_string))
                    })
                    .map(|(meta, kind, author)| HistoryEntry {
                        hash: hex::encode(meta.hash.0),
                        actor: meta.actor.to_hex_string(),
                        actor_seq: meta.seq,
                        time_ms: meta.timestamp,
                        message: meta.message.as_ref().map(|m| m.to_string()),
                        kind,
                        author,
                        change: None,
                        origin: None,
                        seq: None,
                        cursor: None,
                        version: Version::new(vec![meta.hash]).to_string(),
                    })
                    .collect();
                let more = start + entries.len() < newest_first.len();
                Ok((entries, newest_first.len(), more))
            })
            .await?;
        for entry in &mut entries {
            let Ok(hash) = entry.hash.parse::<Version>().map(|v| v.heads()[0]) else { continue };
            if let Some(bytes) = self.inner.storage.get(Family::DocChanges, &change_index::key(key, &hash))? {
                let change_ref = ChangeRef::decode(&bytes)?;
                entry.change = Some(change_ref.change.to_string());
                entry.origin = Some(change_ref.change.origin.to_string());
                entry.seq = Some(change_ref.change.seq);
                entry.cursor = Some(change_ref.pos);
            }
        }
        let next = if more { entries.last().map(|e| e.hash.clone()) } else { None };
        Ok(HistoryPage { entries, next, total })
    }

    /// Restores an older state of the document as a new change.
    pub async fn rollback(
        &self,
        key: &DocKey,
        target: &RollbackTarget,
        pre: &Precondition,
    ) -> Result<WriteResult, NodeError> {
        self.rollback_by(key, target, pre, None).await
    }

    /// [`Node::rollback`] recording `author` in the change.
    pub async fn rollback_by(
        &self,
        key: &DocKey,
        target: &RollbackTarget,
        pre: &Precondition,
        author: Option<Arc<str>>,
    ) -> Result<WriteResult, NodeError> {
        let written_by = author.clone();
        self.write(key, pre, ChangeKind::Rollback, author, |doc, rules, now, bound| {
            if !doc.exists() && doc.change_count() == 0 {
                return Err(NodeError::NotFound(key.to_string()));
            }
            let version = match target {
                RollbackTarget::Version(version) => version.clone(),
                RollbackTarget::Steps(steps) => {
                    let metas = doc.history();
                    if *steps == 0 || *steps >= metas.len() {
                        return Err(NodeError::RollbackTooFar { steps: *steps, changes: metas.len() });
                    }
                    Version::new(vec![metas[metas.len() - 1 - steps].hash])
                }
            };
            let old = doc.to_json_at(&version)?;
            *bound = Some(rules.check(&key.namespace, &old)?);
            Ok(doc.rollback_to_by(&version, now, written_by.as_deref())?)
        })
        .await
    }
}
