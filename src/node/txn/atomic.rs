//! Atomic multi-document sections: the mechanism under every transaction form.
//!
//! An atomic section locks the entries of all the documents it names, in key order (so two
//! sections can never deadlock), lets its body read them and edit private copies, and then
//! either publishes every copy and queues all the changes as one unit (one storage batch, so
//! a crash keeps all or none), or, on any error, drops the copies: nothing partial is ever
//! visible or stored.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use automerge::ActorId;
use parking_lot::MutexGuard;
use serde_json::Value;
use statemesh_protocol::{ChangeKind, DocKey, Document, WriteOutcome};

use super::super::doc_cache::DocEntry;
use super::super::{cpu_work, NamespaceRules, Node, NodeError, WriteResult, CPU_HEAVY_BYTES};
use crate::clock::now_ms;

/// One write inside a transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnOp {
    Put(Value),
    Patch(Value),
    Delete,
}

impl TxnOp {
    pub fn kind(&self) -> ChangeKind {
        match self {
            TxnOp::Put(_) => ChangeKind::Put,
            TxnOp::Patch(_) => ChangeKind::Patch,
            TxnOp::Delete => ChangeKind::Delete,
        }
    }
}

/// A document edited inside a section: the working copy and what was done to it.
struct Working {
    doc: Document,
    existed: bool,
    kind: ChangeKind,
    /// Everything the section's operations on it wrote, in order.
    written: WriteOutcome,
}

/// The documents a section holds, readable as they are and writable as private copies.
pub struct AtomicView<'a> {
    node: &'a Node,
    entries: BTreeMap<DocKey, MutexGuard<'a, DocEntry>>,
    working: BTreeMap<DocKey, Working>,
    now: i64,
    /// Working copies write as this actor instead of the node's (the strong path's cluster).
    actor: Option<ActorId>,
    /// Who the section's changes are recorded as made by.
    author: Option<Arc<str>>,
}

impl AtomicView<'_> {
    /// The document as the section sees it: its working copy if edited, else as stored.
    pub fn doc(&self, key: &DocKey) -> Result<&Document, NodeError> {
        if let Some(working) = self.working.get(key) {
            return Ok(&working.doc);
        }
        self.entries
            .get(key)
            .and_then(|entry| entry.doc.as_ref())
            .ok_or_else(|| NodeError::NotFound(format!("{key} (not part of this transaction)")))
    }

    /// Applies `op` to the working copy of `key`, checking the namespace's rules first.
    pub fn apply(&mut self, key: &DocKey, op: &TxnOp) -> Result<(), NodeError> {
        let rules = self.node.inner.namespaces.rules(&key.namespace)?;
        if !self.working.contains_key(key) {
            let doc = match &self.actor {
                Some(actor) => self.doc(key)?.clone().with_actor(actor.clone()),
                None => self.doc(key)?.clone(),
            };
            let existed = doc.exists();
            let written = WriteOutcome::unchanged(doc.version());
            self.working.insert(key.clone(), Working { doc, existed, kind: op.kind(), written });
        }
        let working = self.working.get_mut(key).ok_or_else(|| NodeError::NotFound(key.to_string()))?;
        let outcome = apply_op(&mut working.doc, key, op, rules, self.now, self.author.as_deref())?;
        working.kind = op.kind();
        working.written.absorb(outcome);
        Ok(())
    }
}

/// Applies `op` to `doc` (the document `key`) after checking the namespace's rules.
fn apply_op(
    doc: &mut Document,
    key: &DocKey,
    op: &TxnOp,
    rules: &NamespaceRules,
    now: i64,
    author: Option<&str>,
) -> Result<WriteOutcome, NodeError> {
    match op {
        TxnOp::Put(body) => {
            if !body.is_object() {
                return Err(statemesh_protocol::DocError::RootNotObject.into());
            }
            let size = rules.check(&key.namespace, body)?;
            Ok(cpu_work(size >= CPU_HEAVY_BYTES, || doc.put_by(body, now, author))?)
        }
        TxnOp::Patch(patch) => {
            if !patch.is_object() {
                return Err(statemesh_protocol::DocError::RootNotObject.into());
            }
            rules.check(&key.namespace, &doc.preview_merge_patch(patch))?;
            Ok(doc.merge_patch_by(patch, now, author)?)
        }
        TxnOp::Delete => {
            if !doc.exists() {
                return Err(NodeError::NotFound(key.to_string()));
            }
            Ok(doc.delete_by(now, author)?)
        }
    }
}

impl Node {
    /// Runs `body` over the documents `keys` atomically (see the module docs) and waits until
    /// its changes are durable. Returns the body's value and one result per changed document.
    pub(crate) async fn atomic<T>(
        &self,
        keys: &BTreeSet<DocKey>,
        author: Option<Arc<str>>,
        body: impl FnOnce(&mut AtomicView<'_>) -> Result<T, NodeError>,
    ) -> Result<(T, BTreeMap<DocKey, WriteResult>), NodeError> {
        for key in keys {
            self.inner.namespaces.writable(&key.namespace)?;
        }
        let _permit = self.inner.inflight.acquire().await.map_err(|_| NodeError::ShuttingDown)?;
        let durable_pos = self.inner.sequencer.durable().pos;
        let handles: Vec<_> = keys.iter().map(|key| (key.clone(), self.inner.cache.entry(key, durable_pos))).collect();
        let (value, results, wait_for) = {
            let mut entries = BTreeMap::new();
            // What the section reads must be durable before it answers, like any read.
            let mut observed = 0;
            // `keys` is ordered, so every section takes its locks in the same order.
            for (key, handle) in &handles {
                let mut guard = handle.lock();
                self.ensure_loaded(key, &mut guard)?;
                observed = observed.max(guard.last_pos);
                entries.insert(key.clone(), guard);
            }
            let heavy = entries.values().any(|entry| entry.is_large());
            let mut view = AtomicView {
                node: self,
                entries,
                working: BTreeMap::new(),
                now: now_ms(),
                actor: None,
                author: author.clone(),
            };
            let value = cpu_work(heavy, || body(&mut view))?;
            let AtomicView { mut entries, working, now, .. } = view;
            let mut prepared = Vec::new();
            let mut touched = Vec::new();
            for (key, working) in working {
                if working.written.is_noop() {
                    continue;
                }
                let Some(entry) = entries.get_mut(&key) else { continue };
                entry.doc = Some(working.doc);
                prepared.push(
                    self.prepare(&key, entry, working.kind, now, working.existed, working.written).by(author.clone()),
                );
                touched.push(key);
            }
            let mut locked: Vec<&mut DocEntry> = Vec::new();
            let mut wanted = touched.iter().peekable();
            for (key, entry) in entries.iter_mut() {
                if wanted.peek() == Some(&key) {
                    wanted.next();
                    locked.push(&mut **entry);
                }
            }
            let (results, last_pos) =
                if prepared.is_empty() { (Vec::new(), 0) } else { self.submit_group(prepared, &mut locked)? };
            let wait_for = last_pos.max(observed);
            let results: BTreeMap<DocKey, WriteResult> = touched.into_iter().zip(results).collect();
            (value, results, wait_for)
        };
        self.inner.sequencer.wait_durable(wait_for).await?;
        Ok((value, results))
    }
}

/// A section computed as another actor and not applied: what the strong path proposes.
#[derive(Debug)]
pub struct PlannedSection<T> {
    /// The body's value.
    pub value: T,
    /// Documents the section changed, in key order, with their new changes.
    pub writes: Vec<PlannedDoc>,
    /// Documents it only read, with the actor's sequence number in each as read.
    pub reads: Vec<(DocKey, u64)>,
    /// The time the changes carry.
    pub time_ms: i64,
}

#[derive(Debug)]
pub struct PlannedDoc {
    pub key: DocKey,
    pub kind: ChangeKind,
    pub changes: Vec<Vec<u8>>,
}

impl Node {
    /// Runs `body` over the documents `keys` like [`Node::atomic`], but with working copies
    /// that write as `actor`, and applies nothing: returns the changes the section would make
    /// and what it read. Preconditions and namespace rules are checked as for any write.
    pub(crate) fn plan_atomic<T>(
        &self,
        keys: &BTreeSet<DocKey>,
        actor: &ActorId,
        body: impl FnOnce(&mut AtomicView<'_>) -> Result<T, NodeError>,
    ) -> Result<PlannedSection<T>, NodeError> {
        let durable_pos = self.inner.sequencer.durable().pos;
        let handles: Vec<_> = keys.iter().map(|key| (key.clone(), self.inner.cache.entry(key, durable_pos))).collect();
        let mut entries = BTreeMap::new();
        for (key, handle) in &handles {
            let mut guard = handle.lock();
            self.ensure_loaded(key, &mut guard)?;
            entries.insert(key.clone(), guard);
        }
        let now = now_ms();
        // The strong path's planned changes carry no author yet (its command would need one).
        let mut view =
            AtomicView { node: self, entries, working: BTreeMap::new(), now, actor: Some(actor.clone()), author: None };
        let value = body(&mut view)?;
        let mut writes = Vec::new();
        let mut reads = Vec::new();
        for key in keys {
            match view.working.remove(key) {
                Some(working) if !working.written.is_noop() => {
                    writes.push(PlannedDoc { key: key.clone(), kind: working.kind, changes: working.written.changes });
                }
                _ => {
                    let seq = view.doc(key)?.clone().with_actor(actor.clone()).own_seq();
                    reads.push((key.clone(), seq));
                }
            }
        }
        Ok(PlannedSection { value, writes, reads, time_ms: now })
    }
}
