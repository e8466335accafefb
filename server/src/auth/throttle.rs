//! Failed logins slow down the next attempts, per user at one client
//! address and per address, with delays that grow with each failure and
//! fade with time: a guesser is slowed to a crawl, and the owner, from
//! their own address, is never slowed by someone else's guesses.
//!
//! An attempt is counted as a failure before its password is checked
//! ([`Throttle::attempt`]) and forgiven if it succeeds, so concurrent
//! guesses cannot all slip through before the first failure is recorded.
//! Keys are short (a long one is replaced by its hash), so the records
//! are bounded in bytes as well as in number.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed without any delay.
const FREE: u32 = 5;
/// The delay after the first failure beyond the free ones; it doubles
/// with each further failure...
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// ...up to this.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// Failures are forgotten this long after the last one.
const MEMORY: Duration = Duration::from_secs(15 * 60);
/// Most keys remembered; the oldest go first.
const MAX_KEYS: usize = 100_000;
/// The longest key kept as it is; a longer one is kept as its hash.
pub const MAX_KEY_BYTES: usize = 128;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

impl Record {
    fn delay(&self) -> Duration {
        if self.failures < FREE {
            return Duration::ZERO;
        }
        let doublings = (self.failures - FREE).min(16);
        (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
    }
}

/// The failure records of users and addresses.
#[derive(Debug, Default)]
pub struct Throttle {
    records: Mutex<HashMap<String, Record>>,
}

/// The key as kept: itself if short, else a hash of it.
fn bounded(key: &str) -> String {
    if key.len() <= MAX_KEY_BYTES {
        key.to_string()
    } else {
        format!("hash:{}", blake3::hash(key.as_bytes()).to_hex())
    }
}

impl Throttle {
    /// How long the attempt with these keys must still wait, if at all.
    pub fn wait(&self, keys: &[String], now: Instant) -> Option<Duration> {
        let records = self.records.lock().unwrap();
        Self::wait_in(&records, keys, now)
    }

    fn wait_in(
        records: &HashMap<String, Record>,
        keys: &[String],
        now: Instant,
    ) -> Option<Duration> {
        keys.iter()
            .filter_map(|k| records.get(&bounded(k)))
            .filter(|r| now.duration_since(r.last) < MEMORY)
            .filter_map(|r| (r.last + r.delay()).checked_duration_since(now))
            .filter(|d| !d.is_zero())
            .max()
    }

    /// Starts an attempt: `Err(wait)` while these keys are slowed down;
    /// otherwise the attempt counts as a failure at once (in the same
    /// lock as the check), to be forgiven by [`Throttle::succeeded`].
    pub fn attempt(&self, keys: &[String], now: Instant) -> Result<(), Duration> {
        let mut records = self.records.lock().unwrap();
        if let Some(wait) = Self::wait_in(&records, keys, now) {
            return Err(wait);
        }
        Self::count(&mut records, keys, now);
        Ok(())
    }

    /// Counts a failed attempt against every key.
    pub fn failed(&self, keys: &[String], now: Instant) {
        Self::count(&mut self.records.lock().unwrap(), keys, now);
    }

    fn count(records: &mut HashMap<String, Record>, keys: &[String], now: Instant) {
        if records.len() >= MAX_KEYS {
            records.retain(|_, r| now.duration_since(r.last) < MEMORY);
        }
        for k in keys {
            let r = records.entry(bounded(k)).or_insert(Record {
                failures: 0,
                last: now,
            });
            if now.duration_since(r.last) >= MEMORY {
                r.failures = 0;
            }
            r.failures += 1;
            r.last = now;
        }
    }

    /// An attempt begun with [`Throttle::attempt`] succeeded: the first
    /// key's record (the user at this address) is cleared, and the
    /// failure counted in advance is taken back from the others (one
    /// address may guess at many users, so its record stays).
    pub fn succeeded(&self, keys: &[String]) {
        let mut records = self.records.lock().unwrap();
        let Some((first, rest)) = keys.split_first() else {
            return;
        };
        records.remove(&bounded(first));
        for k in rest {
            if let Some(r) = records.get_mut(&bounded(k)) {
                r.failures = r.failures.saturating_sub(1);
            }
        }
    }
}

/// The throttle keys of a login attempt: the user at this address first
/// (so a guesser elsewhere never slows the owner down), then the address
/// alone (so one address guessing at many users is slowed too). `user`
/// is a valid user name or a short stand-in for an invalid one.
pub fn keys(user: &str, addr: Option<std::net::IpAddr>) -> Vec<String> {
    match addr {
        Some(a) => vec![format!("user:{user}@{a}"), format!("addr:{a}")],
        None => vec![format!("user:{user}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_after_the_free_failures_and_fade() {
        let t = Throttle::default();
        let k = keys("alice", None);
        let start = Instant::now();
        for _ in 0..FREE {
            assert_eq!(t.wait(&k, start), None);
            t.failed(&k, start);
        }
        assert_eq!(t.wait(&k, start), Some(FIRST_DELAY));
        t.failed(&k, start);
        assert_eq!(t.wait(&k, start), Some(FIRST_DELAY * 2));
        for _ in 0..20 {
            t.failed(&k, start);
        }
        assert_eq!(
            t.wait(&k, start),
            Some(MAX_DELAY),
            "capped: never a lock-out"
        );
        assert_eq!(t.wait(&k, start + MAX_DELAY), None, "the delay runs out");
        // Forgotten after a quiet while.
        let later = start + MEMORY;
        t.failed(&k, later);
        assert_eq!(t.wait(&k, later), None);
    }

    #[test]
    fn one_address_is_slowed_across_users_and_success_clears_the_user() {
        let t = Throttle::default();
        let ip = "10.0.0.9".parse().ok();
        let now = Instant::now();
        for i in 0..=FREE {
            t.failed(&keys(&format!("user{i}"), ip), now);
        }
        assert!(t.wait(&keys("someone-else", ip), now).is_some());
        assert!(t.wait(&keys("someone-else", None), now).is_none());
        for _ in 0..=FREE {
            t.failed(&keys("bob", None), now);
        }
        t.succeeded(&keys("bob", None));
        assert!(t.wait(&keys("bob", None), now).is_none());
    }

    #[test]
    fn concurrent_attempts_are_counted_before_their_passwords_are_checked() {
        let t = Throttle::default();
        let k = keys("alice", "10.0.0.1".parse().ok());
        let now = Instant::now();
        // Many attempts begun at once, none finished yet: only the free
        // ones get through to a password check.
        let through = (0..100).filter(|_| t.attempt(&k, now).is_ok()).count();
        assert_eq!(through, FREE as usize);
    }

    #[test]
    fn a_guesser_elsewhere_never_slows_the_owner() {
        let t = Throttle::default();
        let now = Instant::now();
        let guesser = keys("alice", "203.0.113.7".parse().ok());
        for _ in 0..50 {
            let _ = t.attempt(&guesser, now);
        }
        assert!(t.attempt(&guesser, now).is_err(), "the guesser waits");
        let owner = keys("alice", "198.51.100.2".parse().ok());
        assert_eq!(t.attempt(&owner, now), Ok(()), "the owner does not");
        t.succeeded(&owner);
        // The owner's success forgives the address its counted attempt.
        for _ in 0..FREE {
            assert_eq!(t.attempt(&owner, now), Ok(()));
            t.succeeded(&owner);
        }
    }

    #[test]
    fn huge_keys_are_kept_short() {
        let t = Throttle::default();
        let now = Instant::now();
        let huge = "x".repeat(4 << 20);
        t.failed(&keys(&huge, None), now);
        let records = t.records.lock().unwrap();
        assert!(records.keys().all(|k| k.len() <= MAX_KEY_BYTES));
    }
}
