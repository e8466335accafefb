//! Failed logins slow down the next attempts, per user and per client
//! address, with delays that grow with each failure and fade with time:
//! a guesser is slowed to a crawl, and a real user is never locked out
//! for longer than the longest delay.

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

impl Throttle {
    /// How long the attempt with these keys must still wait, if at all.
    pub fn wait(&self, keys: &[String], now: Instant) -> Option<Duration> {
        let records = self.records.lock().unwrap();
        keys.iter()
            .filter_map(|k| records.get(k))
            .filter(|r| now.duration_since(r.last) < MEMORY)
            .filter_map(|r| (r.last + r.delay()).checked_duration_since(now))
            .filter(|d| !d.is_zero())
            .max()
    }

    /// Counts a failed attempt against every key.
    pub fn failed(&self, keys: &[String], now: Instant) {
        let mut records = self.records.lock().unwrap();
        if records.len() >= MAX_KEYS {
            records.retain(|_, r| now.duration_since(r.last) < MEMORY);
        }
        for k in keys {
            let r = records.entry(k.clone()).or_insert(Record {
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

    /// A successful login clears the user's record (not the address's: one
    /// address may guess at many users).
    pub fn succeeded(&self, user_key: &str) {
        self.records.lock().unwrap().remove(user_key);
    }
}

/// The throttle keys of a login attempt.
pub fn keys(user: &str, addr: Option<std::net::IpAddr>) -> Vec<String> {
    let mut k = vec![format!("user:{user}")];
    if let Some(a) = addr {
        k.push(format!("addr:{a}"));
    }
    k
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
        t.succeeded("user:bob");
        assert!(t.wait(&keys("bob", None), now).is_none());
    }
}
