//! One document: an Automerge document seen as JSON, written with a node's stable actor.
//!
//! The node writes JSON (`put`, RFC 7386 `merge_patch`, `delete`) and Automerge-native clients
//! write raw changes; both become ordinary Automerge changes, so they merge with concurrent
//! edits by Automerge's rules. Writes reconcile the target JSON against the current tree and
//! touch only what differs, which keeps concurrent edits to different fields independent.
//!
//! Deletion is a change too (it clears the root and carries the
//! [`ChangeKind::Delete`] commit message, see [`CommitMessage`]). A document *exists* when it has changes and not
//! every head is a deletion: a write concurrent with a delete therefore wins, and every
//! replica holding the same changes reaches the same verdict.
//!
//! Time enters only through the `now_ms` arguments, stored as the Automerge change timestamp.
//! The `_by` writes also record who made the change (the API caller) in its commit message.

mod chunks;
mod commit_message;
mod json_view;
mod merge_patch;
mod reconcile;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, AutomergeError, Change, ChangeHash, ReadDoc, ROOT};
use serde_json::Value;

use crate::change_log::ChangeKind;
use crate::version::Version;

pub use chunks::plain_change_hash;
pub use commit_message::{is_deletion, CommitMessage};
pub use merge_patch::merge_patch_json;

/// Why a document operation was refused. Nothing is changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("the document root must be a JSON object")]
    RootNotObject,
    #[error("JSON nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("version {0} is not a version of this document")]
    UnknownVersion(Version),
    #[error("invalid Automerge data: {0}")]
    InvalidAutomerge(String),
    #[error("the changes depend on {0} change(s) this document does not have")]
    MissingDependencies(usize),
    #[error("change {0} is not vouched for by any record the sender proved")]
    Unattested(ChangeHash),
    #[error("automerge refused the operation: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

/// The result of a write: the raw changes it added (empty when nothing changed), their
/// hashes (`hashes[i]` is the hash of `changes[i]`, known from the write itself, so nobody
/// parses the bytes again to learn it) and the version after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    pub changes: Vec<Vec<u8>>,
    pub hashes: Vec<ChangeHash>,
    pub version: Version,
}

impl WriteOutcome {
    /// A write that changed nothing; the document is at `version`.
    pub fn unchanged(version: Version) -> Self {
        Self { changes: Vec::new(), hashes: Vec::new(), version }
    }

    fn from_changes(changes: &[Change], version: Version) -> Self {
        Self {
            changes: changes.iter().map(|c| c.raw_bytes().to_vec()).collect(),
            hashes: changes.iter().map(Change::hash).collect(),
            version,
        }
    }

    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }

    /// Adds the changes of a later write to the same document; the version becomes its.
    pub fn absorb(&mut self, later: WriteOutcome) {
        self.changes.extend(later.changes);
        self.hashes.extend(later.hashes);
        self.version = later.version;
    }
}

/// An Automerge document owned by one node.
#[derive(Debug, Clone)]
pub struct Document {
    doc: Automerge,
    /// Cached [`Document::exists`]: derived from the heads' commit messages, which is costly
    /// to look up, so it is recomputed only when foreign changes arrive.
    exists: bool,
}

impl Document {
    /// An empty document that writes as `actor`.
    pub fn new(actor: ActorId) -> Self {
        Self { doc: Automerge::new().with_actor(actor), exists: false }
    }

    /// Loads stored bytes: a saved document optionally followed by more change chunks.
    pub fn load(bytes: &[u8], actor: ActorId) -> Result<Self, DocError> {
        let doc = match Automerge::load(bytes) {
            Ok(doc) => doc,
            // A stored change list (no saved document first) holding received changes that
            // still wait for their dependencies: `load` refuses it, applying queues them.
            Err(AutomergeError::MissingDeps) => {
                let mut doc = Automerge::new();
                doc.apply_changes(chunks::parse_changes(bytes)?)?;
                doc
            }
            Err(e) => return Err(DocError::InvalidAutomerge(e.to_string())),
        };
        Ok(Self::from_automerge(doc.with_actor(actor)))
    }

    /// The same document, writing from now on as `actor`. The strong path computes its
    /// changes on such a copy, as the cluster's own actor, so every leader continues one
    /// chain of changes.
    pub fn with_actor(mut self, actor: ActorId) -> Self {
        self.doc.set_actor(actor);
        self
    }

    /// How many changes this document's writing actor has made to it (its last sequence
    /// number; 0 for none).
    pub fn own_seq(&self) -> u64 {
        self.doc.get_last_local_change().map_or(0, |change| change.seq())
    }

    /// The compact whole-document encoding.
    pub fn save(&self) -> Vec<u8> {
        self.doc.save()
    }

    /// The saved form without the received changes that wait for dependencies (which
    /// [`Document::save`] keeps): only what the document's heads account for.
    pub fn save_applied(&self) -> Vec<u8> {
        self.doc
            .save_with_options(automerge::SaveOptions { retain_orphans: false, ..automerge::SaveOptions::default() })
    }

    pub fn version(&self) -> Version {
        Version::new(self.doc.get_heads())
    }

    /// Whether some received changes wait inside Automerge for dependencies that have not
    /// arrived yet. [`Document::save`] leaves such changes out, so their raw bytes must be
    /// kept alongside the save until they apply.
    pub fn has_queued_changes(&self) -> bool {
        !self.doc.get_missing_deps(&[]).is_empty()
    }

    fn from_automerge(doc: Automerge) -> Self {
        let exists = heads_exist(&doc);
        Self { doc, exists }
    }

    /// Whether the document has been written and not (only) deleted since.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// Whether the document existed at `version` (a version it has passed).
    pub fn exists_at(&self, version: &Version) -> bool {
        !version.is_empty()
            && !version.heads().iter().all(|head| {
                self.doc.get_change_meta_by_hash(head).is_none_or(|meta| is_deletion(meta.message.as_deref()))
            })
    }

    /// Number of changes in the document's history.
    pub fn change_count(&self) -> usize {
        usize::try_from(self.doc.stats().num_changes).unwrap_or(usize::MAX)
    }

    /// The current JSON view.
    pub fn to_json(&self) -> Value {
        json_view::document_json(&self.doc, None)
    }

    /// The JSON view as of `version`, which must be a version this document has passed.
    pub fn to_json_at(&self, version: &Version) -> Result<Value, DocError> {
        self.check_known(version)?;
        Ok(json_view::document_json(&self.doc, Some(version.heads())))
    }

    /// Whether every head of `version` is a change of this document.
    pub fn knows(&self, version: &Version) -> bool {
        version.heads().iter().all(|h| self.doc.get_change_meta_by_hash(h).is_some())
    }

    fn check_known(&self, version: &Version) -> Result<(), DocError> {
        if self.knows(version) {
            Ok(())
        } else {
            Err(DocError::UnknownVersion(version.clone()))
        }
    }

    /// Raw changes after `version` (all changes for the empty version), dependencies first.
    pub fn changes_since(&self, version: &Version) -> Result<Vec<Vec<u8>>, DocError> {
        self.check_known(version)?;
        Ok(self.doc.get_changes(version.heads()).iter().map(|c| c.raw_bytes().to_vec()).collect())
    }

    /// Metadata of every change, oldest first.
    pub fn history(&self) -> Vec<automerge::ChangeMetadata<'_>> {
        self.doc.get_changes_meta(&[])
    }

    /// Replaces the whole JSON content with `body` (an object).
    pub fn put(&mut self, body: &Value, now_ms: i64) -> Result<WriteOutcome, DocError> {
        self.put_by(body, now_ms, None)
    }

    /// [`Document::put`] recording `author`.
    pub fn put_by(&mut self, body: &Value, now_ms: i64, author: Option<&str>) -> Result<WriteOutcome, DocError> {
        self.put_as(body, ChangeKind::Put, now_ms, author)
    }

    /// Restores the content the document had at `version`, as a new change.
    pub fn rollback_to(&mut self, version: &Version, now_ms: i64) -> Result<WriteOutcome, DocError> {
        self.rollback_to_by(version, now_ms, None)
    }

    /// [`Document::rollback_to`] recording `author`.
    pub fn rollback_to_by(
        &mut self,
        version: &Version,
        now_ms: i64,
        author: Option<&str>,
    ) -> Result<WriteOutcome, DocError> {
        let old = self.to_json_at(version)?;
        self.put_as(&old, ChangeKind::Rollback, now_ms, author)
    }

    /// Sets the content to `body` as a [`ChangeKind::Restore`] change (snapshot restore).
    pub fn restore(&mut self, body: &Value, now_ms: i64) -> Result<WriteOutcome, DocError> {
        self.put_as(body, ChangeKind::Restore, now_ms, None)
    }

    fn put_as(
        &mut self,
        body: &Value,
        kind: ChangeKind,
        now_ms: i64,
        author: Option<&str>,
    ) -> Result<WriteOutcome, DocError> {
        let Value::Object(fields) = body else {
            return Err(DocError::RootNotObject);
        };
        self.write(CommitMessage { kind, author }, now_ms, |tx| reconcile::map(tx, &ROOT, fields, 0))
    }

    /// Applies an RFC 7386 merge patch; the patch must be an object.
    pub fn merge_patch(&mut self, patch: &Value, now_ms: i64) -> Result<WriteOutcome, DocError> {
        self.merge_patch_by(patch, now_ms, None)
    }

    /// [`Document::merge_patch`] recording `author`.
    pub fn merge_patch_by(
        &mut self,
        patch: &Value,
        now_ms: i64,
        author: Option<&str>,
    ) -> Result<WriteOutcome, DocError> {
        let Value::Object(fields) = patch else {
            return Err(DocError::RootNotObject);
        };
        let message = CommitMessage { kind: ChangeKind::Patch, author };
        self.write(message, now_ms, |tx| merge_patch::apply(tx, &ROOT, fields, 0))
    }

    /// Deletes the document: clears its content with a tombstone change. History is kept.
    pub fn delete(&mut self, now_ms: i64) -> Result<WriteOutcome, DocError> {
        self.delete_by(now_ms, None)
    }

    /// [`Document::delete`] recording `author`.
    pub fn delete_by(&mut self, now_ms: i64, author: Option<&str>) -> Result<WriteOutcome, DocError> {
        self.write(CommitMessage { kind: ChangeKind::Delete, author }, now_ms, |tx| {
            let keys: Vec<String> = tx.keys(ROOT).collect();
            for key in keys {
                tx.delete(ROOT, key)?;
            }
            Ok(())
        })
    }

    /// Runs `edit` in one transaction committed as a change with `message` (its kind and
    /// author).
    ///
    /// An edit that changes nothing yields no change, except that a write of any kind to a
    /// document that does not exist (or a delete of one that does) always leaves a change,
    /// because existence is itself part of the state.
    fn write(
        &mut self,
        message: CommitMessage<'_>,
        now_ms: i64,
        edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), DocError>,
    ) -> Result<WriteOutcome, DocError> {
        let existed = self.exists();
        let kind = message.kind;
        // Automerge keeps the message as a String anyway: rendering it is that one allocation.
        let options = || CommitOptions::default().with_message(message.render()).with_time(now_ms);
        let mut tx = self.doc.transaction();
        if let Err(error) = edit(&mut tx) {
            tx.rollback();
            return Err(error);
        }
        let committed = tx.commit_with(options()).0;
        let existence_changes = existed == (kind == ChangeKind::Delete);
        if committed.is_none() && existence_changes {
            self.doc.empty_commit(options());
        } else if committed.is_none() {
            return Ok(WriteOutcome::unchanged(self.version()));
        }
        // A local change depends on every current head, so it is now the only head.
        self.exists = kind != ChangeKind::Delete;
        let change: Vec<Change> = self.doc.get_last_local_change().into_iter().collect();
        Ok(WriteOutcome::from_changes(&change, self.version()))
    }

    /// Applies raw Automerge bytes (change chunks and/or a saved document) as they are.
    ///
    /// All-or-nothing: invalid bytes, changes whose dependencies are missing, or a result that
    /// `accept` refuses leave the document untouched.
    pub fn apply_raw<E: From<DocError>>(
        &mut self,
        bytes: &[u8],
        accept: impl FnOnce(&Document) -> Result<(), E>,
    ) -> Result<WriteOutcome, E> {
        let before = self.doc.get_heads();
        let (candidate, changes) = guard_untrusted(|| {
            let incoming = chunks::parse_changes(bytes)?;
            let mut candidate = self.doc.clone();
            candidate.apply_changes(incoming)?;
            let missing = candidate.get_missing_deps(&[]);
            if !missing.is_empty() {
                return Err(DocError::MissingDependencies(missing.len()));
            }
            let changes = candidate.get_changes(&before);
            Ok((Document::from_automerge(candidate), changes))
        })?;
        if !changes.is_empty() {
            accept(&candidate)?;
            *self = candidate;
        }
        Ok(WriteOutcome::from_changes(&changes, self.version()))
    }

    /// Applies changes received from another node. Changes already held are skipped;
    /// changes whose dependencies are missing wait inside Automerge until they arrive.
    /// All-or-nothing, like [`Document::apply_raw`].
    pub fn apply_changes(&mut self, changes: &[Vec<u8>]) -> Result<Version, DocError> {
        let candidate = guard_untrusted(|| {
            let parsed = changes
                .iter()
                .map(|bytes| Change::from_bytes(bytes.clone()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| DocError::InvalidAutomerge(e.to_string()))?;
            let mut candidate = self.doc.clone();
            candidate.apply_changes(parsed)?;
            Ok(candidate)
        })?;
        *self = Document::from_automerge(candidate);
        Ok(self.version())
    }

    /// Merges another replica's whole state (a saved document and/or change chunks) and
    /// returns the changes that were new here. All-or-nothing; received changes whose
    /// dependencies are missing from both sides are left out.
    ///
    /// The state comes from a peer, so only changes some origin vouched for may enter: each
    /// new change must be `attested` (by its hash) or be an ancestor of one that is. An
    /// Automerge change's hash covers the hashes of the changes it depends on, so whoever
    /// vouches for a change fixes its whole history (see [`crate::attestation`]).
    pub fn merge_bytes(
        &mut self,
        bytes: &[u8],
        attested: impl Fn(&ChangeHash) -> bool,
    ) -> Result<WriteOutcome, DocError> {
        let before = self.doc.get_heads();
        let (candidate, new) = guard_untrusted(|| {
            let incoming = chunks::parse_changes(bytes)?;
            let mut candidate = self.doc.clone();
            candidate.apply_changes(incoming)?;
            let new = candidate.get_changes(&before);
            let depended_on: std::collections::HashSet<ChangeHash> =
                new.iter().flat_map(|change| change.deps().iter().copied()).collect();
            // The newest of the new changes: every other new change is an ancestor of one.
            let unvouched = new.iter().map(Change::hash).find(|hash| !depended_on.contains(hash) && !attested(hash));
            if let Some(stranger) = unvouched {
                return Err(DocError::Unattested(stranger));
            }
            let new: Vec<(ChangeHash, Vec<u8>)> = new.iter().map(|c| (c.hash(), c.raw_bytes().to_vec())).collect();
            Ok((candidate, new))
        })?;
        if !new.is_empty() {
            *self = Document::from_automerge(candidate);
        }
        let (hashes, changes) = new.into_iter().unzip();
        Ok(WriteOutcome { changes, hashes, version: self.version() })
    }

    /// The JSON the document would have after `patch`, without changing it.
    pub fn preview_merge_patch(&self, patch: &Value) -> Value {
        let mut json = self.to_json();
        merge_patch_json(&mut json, patch);
        json
    }

    /// Read access for code that needs Automerge itself (history, sync).
    pub fn automerge(&self) -> &Automerge {
        &self.doc
    }
}

/// Existence from first principles: some change exists and not every head is a deletion.
fn heads_exist(doc: &Automerge) -> bool {
    let heads = doc.get_heads();
    !heads.is_empty()
        && !heads
            .iter()
            .all(|head| doc.get_change_meta_by_hash(head).is_some_and(|meta| is_deletion(meta.message.as_deref())))
}

/// Runs Automerge on bytes from outside the node, turning a panic inside Automerge into an
/// error. The closure works on a copy, so an unwinding panic cannot leave `self` half-changed.
fn guard_untrusted<T>(work: impl FnOnce() -> Result<T, DocError>) -> Result<T, DocError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|_| Err(DocError::InvalidAutomerge("Automerge could not process the data".to_string())))
}

#[cfg(test)]
mod tests;
