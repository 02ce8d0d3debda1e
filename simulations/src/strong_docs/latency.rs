//! Network latency for the strong run: each voter's Raft RPCs (appends, votes, read-index
//! confirmations, forwarded writes) wait a seeded one-way delay out and another back, in
//! virtual time, around the in-process loopback transport. Without it every RPC would
//! arrive at once and client operations would rarely overlap, which would leave the
//! linearizability checker little concurrency to judge.
//!
//! A delay is a hash of the seed, the link and the request's number on that link rather
//! than the next draw of one generator per sender, so a difference in the order requests
//! to one peer are sent does not shift the delays of requests to the others.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use statemesh::raft::{LoopbackTransport, NodeInfo, RaftTransport, TransportError};

use crate::trace::fnv;

pub struct Delayed {
    inner: Arc<LoopbackTransport>,
    /// Requests sent so far, per target.
    sent: Mutex<BTreeMap<String, u64>>,
    /// Seeds the delays of this sender.
    salt: u64,
    /// One-way delay range in milliseconds, chosen per message and direction.
    one_way_ms: [u64; 2],
}

impl Delayed {
    pub fn new(inner: Arc<LoopbackTransport>, salt: u64, one_way_ms: [u64; 2]) -> Self {
        Self { inner, sent: Mutex::new(BTreeMap::new()), salt, one_way_ms }
    }

    /// A delay in the range, picked by 32 bits of `hash`.
    fn delay(&self, hash: u64) -> Duration {
        let [lo, hi] = self.one_way_ms;
        Duration::from_millis(lo + (hash & 0xffff_ffff) % (hi.saturating_sub(lo) + 1))
    }
}

#[async_trait]
impl RaftTransport for Delayed {
    async fn call(&self, target: &NodeInfo, request: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, TransportError> {
        if self.one_way_ms == [0, 0] {
            return self.inner.call(target, request, timeout).await;
        }
        let number = {
            let mut sent = self.sent.lock();
            let count = sent.entry(target.peer_id.clone()).or_insert(0);
            *count += 1;
            *count
        };
        let hash = fnv(fnv(self.salt, target.peer_id.as_bytes()), &number.to_le_bytes());
        let (out, back) = (self.delay(hash), self.delay(hash >> 32));
        let trip = async {
            tokio::time::sleep(out).await;
            let reply = self.inner.call(target, request, timeout).await?;
            tokio::time::sleep(back).await;
            Ok(reply)
        };
        tokio::time::timeout(timeout, trip).await.unwrap_or(Err(TransportError::Timeout(timeout)))
    }
}
