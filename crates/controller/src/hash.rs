//! Hashing: the routing hash every client computes (specified in `docs/partitions.md`,
//! with test vectors, so a client in any language finds the same partition), and the
//! placement hashes (internal: only the controller computes them).
//!
//! The routing hash is 64-bit FNV-1a of the key's bytes, passed through MurmurHash3's
//! 64-bit finalizer (`fmix64`) so that every bit of the key reaches the low bits, then
//! reduced modulo the partition count. Both are a few lines in any language and use only
//! wrapping 64-bit multiplication, shifts and xor.

use crate::types::PartitionId;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

/// MurmurHash3's 64-bit finalizer: a bijection that mixes every input bit into every
/// output bit.
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The routing hash of a key: `fmix64(fnv1a64(key))`.
pub fn key_hash(key: &[u8]) -> u64 {
    fmix64(fnv1a64(key))
}

/// The partition that owns `key` in a group of `partitions` partitions:
/// `key_hash(key) mod partitions`. `partitions` must be at least 1 (a group's settings
/// guarantee it); 0 is treated as 1.
pub fn partition_for(key: &[u8], partitions: u32) -> PartitionId {
    let n = u64::from(partitions.max(1));
    // The remainder is below `partitions`, so it fits.
    PartitionId((key_hash(key) % n) as u32)
}

/// An internal placement hash of several byte strings (each length-prefixed, so
/// `("ab","c")` and `("a","bc")` differ).
pub(crate) fn placement_hash(parts: &[&[u8]]) -> u64 {
    let mut hash = FNV_OFFSET;
    for part in parts {
        for byte in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME);
        }
    }
    fmix64(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vectors of docs/partitions.md, computed independently (the Python
    /// reference implementation given there).
    const VECTORS: &[(&str, u64, u32, u32, u32)] = &[
        // key, key_hash, partition of 16, of 64, of 4096
        ("", 0xefd0_1f60_ba99_2926, 6, 38, 2342),
        ("a", 0x82a2_a958_a9be_ce5b, 11, 27, 3675),
        ("user/42", 0xab51_e013_121d_86fd, 13, 61, 1789),
        ("orders/2026-12-06/000017", 0x78bc_9ceb_c1bc_66b3, 3, 51, 1715),
        ("\u{00e9}t\u{00e9}", 0x4e86_b7c4_c0fe_da3b, 11, 59, 2619),
    ];

    #[test]
    fn routing_hash_matches_the_documented_vectors() {
        for (key, hash, p16, p64, p4096) in VECTORS {
            assert_eq!(key_hash(key.as_bytes()), *hash, "key_hash({key:?})");
            assert_eq!(
                partition_for(key.as_bytes(), 16),
                PartitionId(*p16),
                "{key:?} of 16"
            );
            assert_eq!(
                partition_for(key.as_bytes(), 64),
                PartitionId(*p64),
                "{key:?} of 64"
            );
            assert_eq!(
                partition_for(key.as_bytes(), 4096),
                PartitionId(*p4096),
                "{key:?} of 4096"
            );
        }
    }

    #[test]
    fn fnv_matches_its_published_values() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn keys_spread_evenly_over_partitions() {
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[partition_for(format!("key-{i}").as_bytes(), 16).0 as usize] += 1;
        }
        // 1000 expected per partition; a fair hash stays well within ±15 %.
        assert!(counts.iter().all(|c| (850..=1150).contains(c)), "{counts:?}");
    }

    #[test]
    fn placement_hash_separates_its_parts() {
        assert_ne!(placement_hash(&[b"ab", b"c"]), placement_hash(&[b"a", b"bc"]));
    }
}
