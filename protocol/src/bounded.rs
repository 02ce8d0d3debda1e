//! Bounded bincode decoding: the one rule every decoder of bytes from outside follows.
//!
//! bincode 2 trusts the length prefix of a string or byte buffer: it allocates the claimed
//! length first and only then reads, checking nothing but its configuration's limit. With
//! the plain `standard()` configuration a few dozen bytes claiming a 1 TiB `String` make the
//! node ask for 1 TiB.
//!
//! bincode's limit counts the *decoded* size: every string's length, and every primitive's
//! in-memory size (a `u64` claims 8 bytes even when its varint took one, a `u128` 16). So a
//! legitimate value of `n` encoded bytes claims at most `16 n`, and [`decode`] sets the limit
//! per call to
//!
//! ```text
//! limit = min(P(16 n), P(2 ceiling))      P(x) = smallest power of two >= max(x, 4 KiB)
//! ```
//!
//! (bincode takes its limit as a const generic, hence powers of two.) The guarantee: **a
//! claimed length makes the decoder allocate at most `min(32 n, 4 ceiling)` bytes, and at
//! most twice the ceiling when the ceiling is a power of two** (the default 4 MiB message
//! limit is); a larger claim is an error before any allocation. Inputs above the caller's
//! ceiling (the largest legitimate message or record) are refused before decoding starts,
//! and so is anything above [`DECODE_BYTES_MAX`]. Sequences are bounded independently: serde
//! pre-allocates at most 1 MiB for a claimed element count and grows only as elements decode.
//!
//! Use it for anything that can carry a peer's or a file's bytes. The node's own storage
//! records (written by itself) may keep the plain configuration.

use serde::Deserialize;

/// The smallest limit handed to bincode: small inputs may claim up to this much.
pub const LIMIT_MIN_BYTES: usize = 4 * 1024;
/// The most a legitimate value's decoded size exceeds its encoding (a `u128` in one byte).
pub const DECODED_PER_ENCODED_BYTE_MAX: usize = 16;
/// The largest input any decode accepts, whatever the caller's ceiling (the snapshot body
/// maximum, 16 GiB).
pub const DECODE_BYTES_MAX: usize = 1 << (LIMIT_MAX_SHIFT - 1);
const LIMIT_MIN_SHIFT: u32 = LIMIT_MIN_BYTES.trailing_zeros();
const LIMIT_MAX_SHIFT: u32 = 35;

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundedDecodeError {
    #[error("{size} bytes exceed the {ceiling}-byte limit")]
    TooLarge { size: usize, ceiling: usize },
    #[error("{0}")]
    Malformed(String),
    #[error("{0} unexpected bytes after the value")]
    Trailing(usize),
}

/// The bincode limit used for an input of `len` bytes under `ceiling` (see the module docs).
pub fn limit_for(len: usize, ceiling: usize) -> usize {
    let tier = |bytes: usize| bytes.max(LIMIT_MIN_BYTES).next_power_of_two();
    tier(len.saturating_mul(DECODED_PER_ENCODED_BYTE_MAX)).min(tier(ceiling.saturating_mul(2)))
}

/// Decodes all of `bytes` as standard bincode, refusing inputs above `ceiling` and claimed
/// lengths beyond the input's size (see the module docs for the exact bound). Types that
/// borrow (`&str`, `Cow` with `#[serde(borrow)]`) borrow from `bytes`.
pub fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8], ceiling: usize) -> Result<T, BoundedDecodeError> {
    let ceiling = ceiling.min(DECODE_BYTES_MAX);
    if bytes.len() > ceiling {
        return Err(BoundedDecodeError::TooLarge { size: bytes.len(), ceiling });
    }
    let (value, used) = decode_with_limit::<T>(bytes, limit_for(bytes.len(), ceiling).trailing_zeros())?;
    if used != bytes.len() {
        return Err(BoundedDecodeError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

/// One arm per power of two between the smallest and largest limit: bincode takes its limit
/// as a const generic, so each tier is its own instantiation.
macro_rules! decode_in_tier {
    ($shift:expr, $bytes:expr, [$($k:literal)*]) => {
        match $shift {
            $(
                $k => bincode::serde::borrow_decode_from_slice::<T, _>(
                    $bytes,
                    bincode::config::standard().with_limit::<{ 1usize << $k }>(),
                ),
            )*
            _ => return Err(BoundedDecodeError::TooLarge { size: $bytes.len(), ceiling: DECODE_BYTES_MAX }),
        }
    };
}

fn decode_with_limit<'de, T: Deserialize<'de>>(bytes: &'de [u8], shift: u32) -> Result<(T, usize), BoundedDecodeError> {
    debug_assert!((LIMIT_MIN_SHIFT..=LIMIT_MAX_SHIFT).contains(&shift));
    let decoded =
        decode_in_tier!(shift, bytes, [12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35]);
    decoded.map_err(|e| BoundedDecodeError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bincode length prefix (varint) claiming `len` elements or bytes.
    fn claim(len: u64) -> Vec<u8> {
        let mut out = vec![0xfd];
        out.extend_from_slice(&len.to_le_bytes());
        out
    }

    #[test]
    fn the_limit_follows_the_input_size_in_powers_of_two_and_stops_at_twice_the_ceiling() {
        let mib = 1 << 20;
        assert_eq!(limit_for(0, 4 * mib), LIMIT_MIN_BYTES);
        assert_eq!(limit_for(256, 4 * mib), 4096);
        assert_eq!(limit_for(257, 4 * mib), 8192);
        assert_eq!(limit_for(100_000, 4 * mib), 2 * mib);
        // A message at the 4 MiB limit may decode to 8 MiB, never more.
        assert_eq!(limit_for(4 * mib, 4 * mib), 8 * mib);
        assert_eq!(limit_for(DECODE_BYTES_MAX, DECODE_BYTES_MAX), 1 << LIMIT_MAX_SHIFT);
        assert_eq!(LIMIT_MIN_SHIFT, 12);
    }

    #[test]
    fn legitimate_values_round_trip() {
        let value = (String::from("hello"), vec![7u8; 10_000], vec![u64::MAX; 3000]);
        let bytes = bincode::serde::encode_to_vec(&value, bincode::config::standard()).expect("encodes");
        assert_eq!(decode::<(String, Vec<u8>, Vec<u64>)>(&bytes, 1 << 20), Ok(value));
        // Small integers take one byte each but count eight towards bincode's limit: a limit
        // of the input's own size would refuse this honest value.
        let small = vec![1u64; 100_000];
        let bytes = bincode::serde::encode_to_vec(&small, bincode::config::standard()).expect("encodes");
        assert_eq!(decode::<Vec<u64>>(&bytes, 1 << 20), Ok(small));
    }

    #[test]
    fn a_string_claiming_a_terabyte_is_refused_before_allocating() {
        // Nine bytes that claim 2^40 bytes of string: the plain configuration would try to
        // allocate a terabyte here and abort the process.
        let hostile = claim(1 << 40);
        assert!(matches!(decode::<String>(&hostile, 1 << 20), Err(BoundedDecodeError::Malformed(_))));
        assert!(matches!(decode::<Vec<u8>>(&hostile, 1 << 20), Err(BoundedDecodeError::Malformed(_))));
    }

    #[test]
    fn a_sequence_claiming_a_gigabyte_of_elements_is_refused() {
        let hostile = claim(1 << 30);
        assert!(decode::<Vec<String>>(&hostile, 1 << 20).is_err());
        assert!(decode::<Vec<u64>>(&hostile, 1 << 20).is_err());
    }

    #[test]
    fn a_claim_just_beyond_the_tier_is_refused_and_one_inside_fails_on_the_missing_bytes() {
        // Nine bytes of input: the limit is 4 KiB (16 x 9 rounds up to the minimum), of which
        // the length prefix itself (a u64) counts 8. A string of the rest passes the limit
        // but its bytes are missing; one byte more is refused by the limit itself. (A
        // `Vec<u8>` is a serde sequence, read element by element, so it never reaches it.)
        let refusal = |bytes: &[u8]| match decode::<String>(bytes, 1 << 20) {
            Err(BoundedDecodeError::Malformed(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        let inside = refusal(&claim(4096 - 8));
        assert!(inside.contains("UnexpectedEnd"), "{inside}");
        let beyond = refusal(&claim(4096 - 7));
        assert!(beyond.contains("LimitExceeded"), "{beyond}");
    }

    #[test]
    fn inputs_above_the_ceiling_or_with_trailing_bytes_are_refused() {
        let bytes = bincode::serde::encode_to_vec("abc", bincode::config::standard()).expect("encodes");
        assert_eq!(decode::<String>(&bytes, 2), Err(BoundedDecodeError::TooLarge { size: 4, ceiling: 2 }));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(decode::<String>(&trailing, 1 << 20), Err(BoundedDecodeError::Trailing(1)));
    }
}
