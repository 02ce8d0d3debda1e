//! The progress of one whole-document state transfer from a peer.
//!
//! A transfer runs page by page: request, response, merge, next request. The version vector
//! of the first page is what the transfer guarantees once every page is merged, because each
//! page's documents hold at least every change that vector covers; only the entries its
//! origins' seals prove count.

use crate::ids::{DocKey, NodeId};
use crate::seal::SealedTip;
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
    /// The responder's version vector from the first page, as far as its tips prove it,
    /// and those tips.
    covers: Option<(VersionVector, Vec<SealedTip>)>,
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

    /// Whether the first page has arrived (later pages' vectors are not used).
    pub fn has_cover(&self) -> bool {
        self.covers.is_some()
    }

    /// Records a page (`cover` is the proven vector of the first); returns what the whole
    /// transfer covers, with its proof, if it was the last one.
    pub fn page_arrived(
        &mut self,
        cover: Option<(VersionVector, Vec<SealedTip>)>,
        next: Option<DocKey>,
    ) -> Option<(VersionVector, Vec<SealedTip>)> {
        if self.covers.is_none() {
            self.covers = Some(cover.unwrap_or_default());
        }
        let last = next.is_none();
        self.stage = Stage::Merging { next };
        last.then(|| self.covers.clone().unwrap_or_default())
    }

    /// The page is merged: what to do next.
    pub fn merged(&mut self, now_ms: i64) -> Next {
        match std::mem::replace(&mut self.stage, Stage::Awaiting { since_ms: now_ms }) {
            Stage::Merging { next: Some(after) } => Next::Page(after),
            _ => Next::Done(self.covers.clone().map(|(vv, _)| vv).unwrap_or_default()),
        }
    }
}
