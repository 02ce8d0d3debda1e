//! The progress of one whole-document state transfer from a peer.
//!
//! A transfer runs page by page: request, response, merge, next request. The version vector
//! of the first page is what the transfer guarantees once every page is merged, because each
//! page's documents hold at least every change that vector covers.

use crate::ids::{DocKey, NodeId};
use crate::version_vector::VersionVector;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// A request is out since this time.
    Awaiting { since_ms: i64 },
    /// A page is being merged; then ask for `next` or finish.
    Merging { next: Option<DocKey> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub peer: NodeId,
    stage: Stage,
    /// The responder's version vector from the first page.
    covers: Option<VersionVector>,
}

pub enum Next {
    Page(DocKey),
    Done(VersionVector),
}

impl Transfer {
    pub fn new(peer: NodeId, now_ms: i64) -> Self {
        Self { peer, stage: Stage::Awaiting { since_ms: now_ms }, covers: None }
    }

    pub fn awaiting_page(&self) -> bool {
        matches!(self.stage, Stage::Awaiting { .. })
    }

    /// Whether the request in flight went unanswered for `timeout_ms`.
    pub fn expired(&self, now_ms: i64, timeout_ms: i64) -> bool {
        matches!(self.stage, Stage::Awaiting { since_ms } if now_ms - since_ms >= timeout_ms)
    }

    /// Records a page; returns what the whole transfer covers if it was the last one.
    pub fn page_arrived(&mut self, vv: VersionVector, next: Option<DocKey>) -> Option<VersionVector> {
        let covers = self.covers.get_or_insert(vv).clone();
        let last = next.is_none();
        self.stage = Stage::Merging { next };
        last.then_some(covers)
    }

    /// The page is merged: what to do next.
    pub fn merged(&mut self, now_ms: i64) -> Next {
        match std::mem::replace(&mut self.stage, Stage::Awaiting { since_ms: now_ms }) {
            Stage::Merging { next: Some(after) } => Next::Page(after),
            _ => Next::Done(self.covers.clone().unwrap_or_default()),
        }
    }
}
