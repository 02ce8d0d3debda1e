//! Bounds on names and payloads that hold for every node, whatever its configuration.
//!
//! Configurable limits (body size, document size) live in the node's configuration; these are
//! the hard ceilings that keep keys and records well-formed on disk and on the wire.

/// Longest namespace name, in bytes.
pub const NAMESPACE_BYTES_MAX: usize = 128;
/// Longest document id, in bytes.
pub const DOC_ID_BYTES_MAX: usize = 512;
/// Longest node id, in bytes (a base58 libp2p PeerId is about 52).
pub const NODE_ID_BYTES_MAX: usize = 128;
/// Most heads a version may name; more means a malformed or hostile version string.
pub const VERSION_HEADS_MAX: usize = 1024;
/// Deepest JSON nesting a document may have; deeper input is refused before recursion.
pub const JSON_DEPTH_MAX: usize = 64;
/// Largest encoded change record accepted from storage or the wire.
pub const CHANGE_RECORD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest message any configuration allows (the upper bound of `p2p.max_message_bytes`,
/// which also bounds Raft RPCs, forwarded requests and the commands built from them).
pub const MESSAGE_BYTES_CEILING: usize = 64 * 1024 * 1024;
