//! Key and value generation, plus a small deterministic PRNG (no `rand` dependency needed for
//! picking keys uniformly).

/// SplitMix64: fast, statistically fine for choosing keys; seeded per client so runs repeat.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose stream depends only on `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; the modulo bias is negligible for key spaces).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Builds keys `prefix` + zero-padded decimal index, `key_size` bytes long (longer only when
/// the prefix and the digits do not fit).
#[derive(Debug, Clone)]
pub struct KeyGen {
    prefix: String,
    key_size: usize,
    space: u64,
}

impl KeyGen {
    /// Keys `prefix000…i` for `i` in `0..space`.
    pub fn new(prefix: &str, key_size: usize, space: u64) -> Self {
        KeyGen {
            prefix: prefix.to_string(),
            key_size,
            space: space.max(1),
        }
    }

    /// Number of distinct keys.
    pub fn space(&self) -> u64 {
        self.space
    }

    /// The key with index `i`.
    pub fn key(&self, i: u64) -> Vec<u8> {
        let width = self.key_size.saturating_sub(self.prefix.len());
        format!("{}{:0width$}", self.prefix, i, width = width).into_bytes()
    }

    /// A uniformly chosen key.
    pub fn random(&self, rng: &mut Rng) -> Vec<u8> {
        self.key(rng.below(self.space))
    }

    /// The key range end covering every key of this generator (etcd prefix semantics).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// A value of `size` bytes (printable, so etcdctl output stays readable).
pub fn value(size: usize) -> Vec<u8> {
    vec![b'v'; size]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_requested_size_and_are_distinct() {
        let g = KeyGen::new("k", 8, 1000);
        assert_eq!(g.key(7), b"k0000007".to_vec());
        assert_eq!(g.key(999).len(), 8);
        let g = KeyGen::new("prefix/", 4, 10);
        assert_eq!(g.key(3), b"prefix/3".to_vec());
    }

    #[test]
    fn rng_stays_in_range() {
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| r.below(10) < 10));
        let hits = (0..10_000).filter(|_| r.chance(0.9)).count();
        assert!((8500..9500).contains(&hits), "{hits}");
    }
}
