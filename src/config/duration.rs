//! Serde adapter for `std::time::Duration` in humantime form ("30s", "24h", "250ms").
//!
//! Durations appear in the YAML file, in environment overrides and in `config show`
//! output, so they must read the way an operator writes them and print back in a form
//! that parses again. `humantime::format_duration` would print 24h as "1day", so
//! printing uses the largest whole unit instead.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

const UNITS: [(&str, u128); 6] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Formats `d` with the largest unit that divides it exactly: 86400s -> "24h", 90s -> "90s".
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    for (unit, size) in UNITS {
        if nanos.is_multiple_of(size) {
            return format!("{}{unit}", nanos / size);
        }
    }
    // Unreachable: the last unit divides everything.
    format!("{nanos}ns")
}

/// Parses the humantime form, e.g. "30s", "1h 30m", "250ms".
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration `{text}` ({e}); expected e.g. \"30s\", \"250ms\" or \"24h\""))
}

pub fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*d))
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_str(DurationVisitor)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"30s\", \"250ms\" or \"24h\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    // A bare number has no unit; say so rather than guessing seconds or milliseconds.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Err(E::custom(format!("invalid duration `{v}`: a unit is required, e.g. \"{v}s\" or \"{v}ms\"")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Err(E::custom(format!("invalid duration `{v}`: a unit is required, e.g. \"{v}s\" or \"{v}ms\"")))
    }
}
