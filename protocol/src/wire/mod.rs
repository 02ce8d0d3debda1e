//! The replication wire format: messages and the versioned envelope that carries them.
//!
//! Everything a node sends to a peer is one [`Message`] in an [`envelope`]: a magic, the
//! protocol version, flags, the payload length and a bincode payload, zstd-compressed above
//! a threshold. Decoding checks every field against [`WireLimits`] before allocating, so a
//! hostile or broken peer gets an error, never a panic or an unbounded allocation. The
//! format, its versioning rules and worked examples are written up in `protocol/PROTOCOL.md`;
//! the golden vectors in `protocol/tests/golden/` pin the bytes.

mod envelope;
mod message;

pub use envelope::{decode, encode, WireError, WireLimits, COMPRESS_ABOVE_BYTES, MAGIC, VERSION};
pub use message::{DocState, Gossip, Message, StateRequest, StateResponse, SyncRequest, SyncResponse};
