//! Caps on what one key (a client address, an account, a share link) may
//! hold open at once: connections, downloads. A place is held while its
//! [`Held`] lives and given back when it is dropped.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Places held per key, each key at most `max`. Cheap to clone.
#[derive(Debug)]
pub struct PerKey<K: Eq + Hash + Clone> {
    open: Arc<Mutex<HashMap<K, usize>>>,
    max: usize,
}

impl<K: Eq + Hash + Clone> Clone for PerKey<K> {
    fn clone(&self) -> Self {
        PerKey {
            open: self.open.clone(),
            max: self.max,
        }
    }
}

/// Places taken by one holder, one per key; given back on drop.
#[derive(Debug)]
pub struct Held<K: Eq + Hash + Clone> {
    open: Arc<Mutex<HashMap<K, usize>>>,
    keys: Vec<K>,
}

impl<K: Eq + Hash + Clone> PerKey<K> {
    pub fn new(max: usize) -> Self {
        PerKey {
            open: Default::default(),
            max: max.max(1),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A place under every one of `keys`, or, if any of them is full, the
    /// first full one (and nothing is taken).
    pub fn enter(&self, keys: &[K]) -> Result<Held<K>, K> {
        let mut open = self.open.lock().unwrap();
        if let Some(full) = keys
            .iter()
            .find(|k| open.get(*k).is_some_and(|n| *n >= self.max))
        {
            return Err(full.clone());
        }
        for k in keys {
            *open.entry(k.clone()).or_insert(0) += 1;
        }
        Ok(Held {
            open: self.open.clone(),
            keys: keys.to_vec(),
        })
    }

    /// Places held under `key` now.
    pub fn held(&self, key: &K) -> usize {
        self.open.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

impl<K: Eq + Hash + Clone> Drop for Held<K> {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap();
        for k in &self.keys {
            if let Some(n) = open.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    open.remove(k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_its_share_and_leaving_frees_it() {
        let p = PerKey::new(2);
        let first = p.enter(&["a"]).unwrap();
        let _second = p.enter(&["a"]).unwrap();
        assert_eq!(p.enter(&["a"]).unwrap_err(), "a");
        assert!(p.enter(&["b"]).is_ok(), "another key is not held up");
        drop(first);
        assert!(p.enter(&["a"]).is_ok(), "a place freed is free again");
    }

    #[test]
    fn several_keys_are_taken_all_or_nothing() {
        let p = PerKey::new(1);
        let _user = p.enter(&["user:1"]).unwrap();
        assert_eq!(p.enter(&["addr:x", "user:1"]).unwrap_err(), "user:1");
        assert_eq!(p.held(&"addr:x"), 0, "nothing taken on a refusal");
        let both = p.enter(&["addr:x", "user:2"]).unwrap();
        drop(both);
        assert_eq!(p.held(&"addr:x"), 0);
        assert_eq!(p.held(&"user:2"), 0);
    }
}
