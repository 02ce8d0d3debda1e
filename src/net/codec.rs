//! Request-response framing for replication streams.
//!
//! Each libp2p stream carries exactly one request and one response, so a message is simply
//! everything the peer writes before closing its side, bounded by a size limit: a peer cannot
//! make this node buffer more than the limit. The bytes are statemesh wire envelopes; the
//! driver decodes and validates them, so malformed input is counted and answered in one place.

use std::io;

use async_trait::async_trait;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// The anti-entropy protocol: a `SyncRequest` envelope in, a `SyncResponse` envelope out.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/statemesh/sync/1");

#[derive(Debug, Clone)]
pub struct EnvelopeCodec {
    limit: usize,
}

impl EnvelopeCodec {
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }

    async fn read_bounded<T: AsyncRead + Unpin + Send>(&self, io: &mut T) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        io.take(self.limit as u64 + 1).read_to_end(&mut bytes).await?;
        if bytes.len() > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("message exceeds the limit of {} bytes", self.limit),
            ));
        }
        if bytes.is_empty() {
            // The other side closed without answering (e.g. it refused the request).
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the stream closed without a message"));
        }
        Ok(bytes)
    }

    async fn write_all<T: AsyncWrite + Unpin + Send>(&self, io: &mut T, bytes: Vec<u8>) -> io::Result<()> {
        if bytes.len() > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("message of {} bytes exceeds the limit of {}", bytes.len(), self.limit),
            ));
        }
        io.write_all(&bytes).await?;
        io.close().await
    }
}

#[async_trait]
impl libp2p::request_response::Codec for EnvelopeCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_bounded(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_bounded(io).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, request: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_all(io, request).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, response: Vec<u8>) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_all(io, response).await
    }
}
