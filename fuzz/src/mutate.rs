//! Byte-level mutations of real encodings.
//!
//! Without coverage instrumentation (which needs a nightly compiler) the fuzzer's reach comes
//! from its seeds and from mutations that target what breaks length-prefixed formats: forged
//! bincode varint lengths, boundary bytes, truncation, and splices of two valid messages.

use rand::rngs::StdRng;
use rand::Rng;

/// Bytes that sit on format boundaries: bincode's varint markers (251-253 announce a u16,
/// u32 or u64), msgpack's length-carrying markers, zero, and the sign bits.
const INTERESTING: [u8; 12] = [0, 1, 0x7f, 0x80, 0xfb, 0xfc, 0xfd, 0xfe, 0xff, 0xc4, 0xdb, 0xdd];

/// Lengths worth claiming: just past small inputs, at the limit tiers, and absurd.
const CLAIMS: [u64; 9] = [4097, 65_537, 1 << 20, (4 << 20) + 1, 64 << 20, 1 << 30, 1 << 32, 1 << 40, u64::MAX];

/// Applies one to four mutations to `input`, keeping it at most `max_len` bytes long.
pub fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, other: &[u8], max_len: usize) {
    for _ in 0..rng.gen_range(1..=4) {
        mutate_once(rng, input, other);
    }
    input.truncate(max_len);
}

fn mutate_once(rng: &mut StdRng, input: &mut Vec<u8>, other: &[u8]) {
    let at = |rng: &mut StdRng, len: usize| if len == 0 { 0 } else { rng.gen_range(0..len) };
    match rng.gen_range(0..9) {
        // Flip one bit.
        0 if !input.is_empty() => {
            let i = at(rng, input.len());
            input[i] ^= 1 << rng.gen_range(0..8);
        }
        // Overwrite a byte with a boundary value or a random one.
        1 if !input.is_empty() => {
            let i = at(rng, input.len());
            input[i] = if rng.gen_bool(0.5) { INTERESTING[rng.gen_range(0..INTERESTING.len())] } else { rng.gen() };
        }
        // Insert a forged bincode u64 length (marker 253, then eight little-endian bytes).
        2 => {
            let i = at(rng, input.len() + 1);
            let mut claim = vec![0xfd];
            claim.extend_from_slice(&CLAIMS[rng.gen_range(0..CLAIMS.len())].to_le_bytes());
            input.splice(i..i, claim);
        }
        // Replace a byte with a forged u32 length (marker 252).
        3 if !input.is_empty() => {
            let i = at(rng, input.len());
            let mut claim = vec![0xfc];
            claim.extend_from_slice(&(CLAIMS[rng.gen_range(0..CLAIMS.len())] as u32).to_le_bytes());
            input.splice(i..=i, claim);
        }
        // Cut the tail.
        4 if !input.is_empty() => {
            let keep = at(rng, input.len());
            input.truncate(keep);
        }
        // Delete a short range.
        5 if !input.is_empty() => {
            let start = at(rng, input.len());
            let end = (start + rng.gen_range(1..=16)).min(input.len());
            input.drain(start..end);
        }
        // Insert random bytes.
        6 => {
            let i = at(rng, input.len() + 1);
            let bytes: Vec<u8> = (0..rng.gen_range(1..=8)).map(|_| rng.gen()).collect();
            input.splice(i..i, bytes);
        }
        // Duplicate a range (repeated elements, nested structures).
        7 if !input.is_empty() => {
            let start = at(rng, input.len());
            let end = (start + rng.gen_range(1..=64)).min(input.len());
            let copy = input[start..end].to_vec();
            let i = at(rng, input.len() + 1);
            input.splice(i..i, copy);
        }
        // Splice: our head, another seed's tail.
        _ if !other.is_empty() => {
            let keep = at(rng, input.len() + 1);
            let from = at(rng, other.len());
            input.truncate(keep);
            input.extend_from_slice(&other[from..]);
        }
        _ => input.push(rng.gen()),
    }
}
