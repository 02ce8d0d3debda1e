//! Client calls for document history and rollback.

use serde_json::{json, Value};

use super::{Client, ClientError, Condition, WriteReply};

impl Client {
    /// A page of the document's history, newest first.
    pub async fn history(
        &self,
        ns: &str,
        id: &str,
        limit: Option<u32>,
        before: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut request = self.http.get(self.url(&["v1", "docs", ns, id, "history"]));
        if let Some(limit) = limit {
            request = request.query(&[("limit", limit.to_string())]);
        }
        if let Some(before) = before {
            request = request.query(&[("before", before)]);
        }
        self.json(request).await
    }

    /// Rolls back to `version`, or by `steps` changes.
    pub async fn rollback(
        &self,
        ns: &str,
        id: &str,
        version: Option<&str>,
        steps: Option<usize>,
        condition: &Condition,
    ) -> Result<WriteReply, ClientError> {
        let body = match (version, steps) {
            (Some(version), _) => json!({"to": version}),
            (None, Some(steps)) => json!({"steps": steps}),
            (None, None) => json!({}),
        };
        let request = self.http.post(self.url(&["v1", "docs", ns, id, "rollback"])).json(&body);
        self.write_reply(Self::conditioned(request, condition)).await
    }
}
