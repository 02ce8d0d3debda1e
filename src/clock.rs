//! The node's one source of wall-clock time.
//!
//! The core never reads a clock; the shell reads it here and passes `now` in, so tests and the
//! simulator can substitute their own time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the system clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}
