//! Client calls for transactions: the one-shot compare/success/failure form and interactive
//! transactions.

use serde_json::Value;

use super::{Client, ClientError};

impl Client {
    /// `POST /v1/txn` with a `{"compare", "success", "failure"}` body.
    pub async fn txn(&self, request: &Value) -> Result<Value, ClientError> {
        self.json(self.http.post(self.url(&["v1", "txn"])).json(request)).await
    }

    /// Begins an interactive transaction; returns its id (and snapshot, model, timeout).
    pub async fn txn_begin(&self) -> Result<Value, ClientError> {
        self.json(self.http.post(self.url(&["v1", "txn", "begin"]))).await
    }

    /// Reads a document inside a transaction: `{"document", "version"}`.
    pub async fn txn_get(&self, txn: &str, ns: &str, id: &str) -> Result<Value, ClientError> {
        self.json(self.http.get(self.url(&["v1", "txn", txn, "docs", ns, id]))).await
    }

    pub async fn txn_put(&self, txn: &str, ns: &str, id: &str, body: &Value) -> Result<Value, ClientError> {
        self.json(self.http.put(self.url(&["v1", "txn", txn, "docs", ns, id])).json(body)).await
    }

    pub async fn txn_patch(&self, txn: &str, ns: &str, id: &str, patch: &Value) -> Result<Value, ClientError> {
        let request = self
            .http
            .patch(self.url(&["v1", "txn", txn, "docs", ns, id]))
            .header(reqwest::header::CONTENT_TYPE, "application/merge-patch+json")
            .body(serde_json::to_vec(patch).map_err(|e| ClientError::Decode(e.to_string()))?);
        self.json(request).await
    }

    pub async fn txn_delete(&self, txn: &str, ns: &str, id: &str) -> Result<Value, ClientError> {
        self.json(self.http.delete(self.url(&["v1", "txn", txn, "docs", ns, id]))).await
    }

    pub async fn txn_commit(&self, txn: &str) -> Result<Value, ClientError> {
        self.json(self.http.post(self.url(&["v1", "txn", txn, "commit"]))).await
    }

    pub async fn txn_abort(&self, txn: &str) -> Result<Value, ClientError> {
        self.json(self.http.post(self.url(&["v1", "txn", txn, "abort"]))).await
    }
}
