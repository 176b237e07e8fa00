//! Rate limit of failed `Authenticate` calls, per user name and per source address: each
//! key has a bucket of failures ([`BURST`] for a user name, [`ADDR_BURST`] for an address,
//! which many users may share) that refills one every [`REFILL`]; a key whose
//! bucket is empty is refused before its password is even checked (so guessing costs the
//! attacker time, and the member no bcrypt work). Successes cost nothing. Pure: time comes
//! in as an argument. Memory is bounded: at most [`MAX_KEYS`] keys are tracked, full
//! buckets are forgotten first.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Failures a user name may have in a row before it waits.
pub const BURST: f64 = 5.0;
/// Failures a source address may have in a row before it waits.
pub const ADDR_BURST: f64 = 20.0;
/// Time to earn back one failure.
pub const REFILL: Duration = Duration::from_secs(2);
/// Keys tracked at most.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    fn now(self, now: Instant) -> f64 {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() / REFILL.as_secs_f64();
        (self.tokens + earned).min(self.burst)
    }
}

/// The burst of a key: `addr:…` keys get [`ADDR_BURST`], others [`BURST`].
fn burst_of(key: &str) -> f64 {
    if key.starts_with("addr:") {
        ADDR_BURST
    } else {
        BURST
    }
}

/// The failure buckets.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    buckets: HashMap<String, Bucket>,
}

impl FailureLimiter {
    /// Whether every one of `keys` may try now.
    pub fn allows(&self, keys: &[String], now: Instant) -> bool {
        keys.iter()
            .all(|k| self.buckets.get(k).is_none_or(|b| b.now(now) >= 1.0))
    }

    /// Records a failure of every one of `keys`.
    pub fn failed(&mut self, keys: &[String], now: Instant) {
        if self.buckets.len() + keys.len() > MAX_KEYS {
            self.buckets.retain(|_, b| b.now(now) < b.burst);
            if self.buckets.len() + keys.len() > MAX_KEYS {
                // Under a flood of distinct keys, forget the oldest half.
                let mut ages: Vec<Instant> = self.buckets.values().map(|b| b.at).collect();
                ages.sort();
                if let Some(cut) = ages.get(ages.len() / 2).copied() {
                    self.buckets.retain(|_, b| b.at > cut);
                }
            }
        }
        for key in keys {
            let burst = burst_of(key);
            let tokens = self.buckets.get(key).map_or(burst, |b| b.now(now));
            self.buckets.insert(
                key.clone(),
                Bucket {
                    tokens: (tokens - 1.0).max(0.0),
                    burst,
                    at: now,
                },
            );
        }
    }

    /// Keys tracked (for tests).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(user: &str, addr: &str) -> Vec<String> {
        vec![format!("user:{user}"), format!("addr:{addr}")]
    }

    #[test]
    fn a_burst_of_failures_locks_the_user_until_it_refills() {
        let mut limiter = FailureLimiter::default();
        let t0 = Instant::now();
        let alice = keys("alice", "10.0.0.1");
        for _ in 0..5 {
            assert!(limiter.allows(&alice, t0));
            limiter.failed(&alice, t0);
        }
        assert!(!limiter.allows(&alice, t0));
        // From another address the user is still locked; other users are not.
        assert!(!limiter.allows(&keys("alice", "10.0.0.2"), t0));
        assert!(limiter.allows(&keys("bob", "10.0.0.1"), t0));
        assert!(limiter.allows(&alice, t0 + REFILL));
    }

    #[test]
    fn an_address_guessing_many_users_is_locked_after_its_burst() {
        let mut limiter = FailureLimiter::default();
        let t0 = Instant::now();
        for i in 0..20 {
            let k = keys(&format!("user{i}"), "10.0.0.9");
            assert!(limiter.allows(&k, t0), "attempt {i}");
            limiter.failed(&k, t0);
        }
        assert!(!limiter.allows(&keys("root", "10.0.0.9"), t0));
        assert!(limiter.allows(&keys("root", "10.0.0.8"), t0));
    }

    #[test]
    fn memory_stays_bounded_under_many_keys() {
        let mut limiter = FailureLimiter::default();
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS * 2) {
            limiter.failed(&[format!("addr:{i}")], t0 + Duration::from_micros(i as u64));
        }
        assert!(limiter.len() <= MAX_KEYS);
    }
}
