//! Client calls for the strong path: consistency levels on document routes and cluster
//! administration.

use serde_json::{json, Value};

use super::{etag, Client, ClientError, Condition, Doc, WriteReply};

/// How a read should be served (`None` fields: the node's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// `strong`, `bounded` or `eventual`.
    pub consistency: Option<String>,
    pub max_staleness_ms: Option<u64>,
    /// A Raft index from an earlier response: read only once this node has applied it.
    pub min_version: Option<u64>,
}

impl ReadOptions {
    pub fn level(level: &str) -> Self {
        Self { consistency: Some(level.to_owned()), ..Self::default() }
    }
}

/// What a response says it reflects (its `X-Statemesh-*` headers).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stamp {
    pub raft_index: Option<u64>,
    pub staleness_ms: Option<u64>,
    pub consistency: Option<String>,
}

fn stamp(response: &reqwest::Response) -> Stamp {
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Stamp {
        raft_index: header("x-statemesh-raft-index").and_then(|v| v.parse().ok()),
        staleness_ms: header("x-statemesh-staleness-ms").and_then(|v| v.parse().ok()),
        consistency: header("x-statemesh-consistency"),
    }
}

impl Client {
    async fn stamped_write(&self, request: reqwest::RequestBuilder) -> Result<(WriteReply, Stamp), ClientError> {
        let response = self.send(request).await?;
        let stamp = stamp(&response);
        let reply = response.json().await.map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok((reply, stamp))
    }

    /// Replaces a document through Raft (`?consistency=strong`).
    pub async fn put_strong(
        &self,
        ns: &str,
        id: &str,
        body: &Value,
        condition: &Condition,
    ) -> Result<(WriteReply, Stamp), ClientError> {
        self.put_with(ns, id, body, condition, "strong").await
    }

    /// Replaces a document at the given write consistency (`strong` or `eventual`).
    pub async fn put_with(
        &self,
        ns: &str,
        id: &str,
        body: &Value,
        condition: &Condition,
        consistency: &str,
    ) -> Result<(WriteReply, Stamp), ClientError> {
        let request =
            self.http.put(self.url(&["v1", "docs", ns, id])).query(&[("consistency", consistency)]).json(body);
        self.stamped_write(Self::conditioned(request, condition)).await
    }

    /// Merges a JSON merge patch into a document at the given write consistency.
    pub async fn patch_with(
        &self,
        ns: &str,
        id: &str,
        patch: &Value,
        condition: &Condition,
        consistency: &str,
    ) -> Result<(WriteReply, Stamp), ClientError> {
        let request = self.patch_request(ns, id, patch)?.query(&[("consistency", consistency)]);
        self.stamped_write(Self::conditioned(request, condition)).await
    }

    /// Deletes a document through Raft.
    pub async fn delete_strong(
        &self,
        ns: &str,
        id: &str,
        condition: &Condition,
    ) -> Result<(WriteReply, Stamp), ClientError> {
        self.delete_with(ns, id, condition, "strong").await
    }

    /// Deletes a document at the given write consistency.
    pub async fn delete_with(
        &self,
        ns: &str,
        id: &str,
        condition: &Condition,
        consistency: &str,
    ) -> Result<(WriteReply, Stamp), ClientError> {
        let request = self.http.delete(self.url(&["v1", "docs", ns, id])).query(&[("consistency", consistency)]);
        self.stamped_write(Self::conditioned(request, condition)).await
    }

    /// Reads a document at the given consistency.
    pub async fn get_with(&self, ns: &str, id: &str, read: &ReadOptions) -> Result<(Doc, Stamp), ClientError> {
        let mut request = self.http.get(self.url(&["v1", "docs", ns, id]));
        if let Some(level) = &read.consistency {
            request = request.query(&[("consistency", level)]);
        }
        if let Some(ms) = read.max_staleness_ms {
            request = request.query(&[("max_staleness_ms", ms)]);
        }
        if let Some(index) = read.min_version {
            request = request.query(&[("min_version", index)]);
        }
        let response = self.send(request).await?;
        let stamp = stamp(&response);
        let version = etag(&response)?;
        let document = response.json().await.map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok((Doc { version, document }, stamp))
    }

    /// `GET /v1/cluster`.
    pub async fn cluster_status(&self) -> Result<Value, ClientError> {
        self.json(self.http.get(self.url(&["v1", "cluster"]))).await
    }

    /// `POST /v1/cluster/init`: forms a cluster of `voters` (the configured ones when empty).
    pub async fn cluster_init(&self, voters: &[String]) -> Result<Value, ClientError> {
        self.json(self.http.post(self.url(&["v1", "cluster", "init"])).json(&json!({ "voters": voters }))).await
    }

    /// `POST /v1/cluster/{add-learner|promote|remove}` for `member`.
    pub async fn cluster_change(&self, change: &str, member: &str) -> Result<Value, ClientError> {
        self.json(self.http.post(self.url(&["v1", "cluster", change])).json(&json!({ "member": member }))).await
    }
}
