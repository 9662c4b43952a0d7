//! CLOCK replacement (second chance) over keyed entries, with *pinned* entries that the
//! hand passes over: the block cache pins blocks that a send queue still holds, because
//! evicting those would free no memory.
//!
//! Lookups set an entry's reference bit; the hand clears set bits and evicts the first
//! unpinned entry whose bit is clear. Two sweeps find one if any exists.

use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug)]
struct Entry<K, V> {
    key: K,
    value: V,
    referenced: bool,
}

/// A CLOCK-managed map.
#[derive(Debug)]
pub(crate) struct Clock<K, V> {
    entries: Vec<Entry<K, V>>,
    index: HashMap<K, usize>,
    hand: usize,
}

impl<K: Hash + Eq + Copy, V> Clock<K, V> {
    pub(crate) fn new() -> Self {
        Clock { entries: Vec::new(), index: HashMap::new(), hand: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The value under `key`, marking it recently used.
    pub(crate) fn get(&mut self, key: &K) -> Option<&V> {
        let &i = self.index.get(key)?;
        let e = &mut self.entries[i];
        e.referenced = true;
        Some(&e.value)
    }

    /// Inserts (or replaces) `key`. New entries start unreferenced: a block read once and
    /// never again is the first to go.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if let Some(&i) = self.index.get(&key) {
            self.entries[i].value = value;
            return;
        }
        self.index.insert(key, self.entries.len());
        self.entries.push(Entry { key, value, referenced: false });
    }

    /// Evicts one entry: the first unpinned one whose reference bit is clear, clearing
    /// bits on the way. With `or_pinned`, when every entry is pinned, the one under the
    /// hand goes anyway.
    pub(crate) fn evict(&mut self, pinned: impl Fn(&K, &V) -> bool, or_pinned: bool) -> Option<(K, V)> {
        let n = self.entries.len();
        if n == 0 {
            return None;
        }
        if self.select(pinned).is_some() {
            return self.evict_selected();
        }
        or_pinned.then(|| self.remove_at(self.hand % n))
    }

    /// Moves the hand to the entry [`evict`](Self::evict) would take (clearing reference
    /// bits on the way) and returns its key without removing it, so the caller can weigh
    /// it first; `None` if every entry is pinned.
    pub(crate) fn select(&mut self, pinned: impl Fn(&K, &V) -> bool) -> Option<&K> {
        let n = self.entries.len();
        for _ in 0..2 * n {
            self.hand %= n;
            let e = &mut self.entries[self.hand];
            if pinned(&e.key, &e.value) {
                self.hand += 1;
            } else if e.referenced {
                e.referenced = false;
                self.hand += 1;
            } else {
                return Some(&self.entries[self.hand].key);
            }
        }
        None
    }

    /// Removes the entry under the hand (the one [`select`](Self::select) returned).
    pub(crate) fn evict_selected(&mut self) -> Option<(K, V)> {
        (self.hand < self.entries.len()).then(|| self.remove_at(self.hand))
    }

    /// Removes every entry for which `drop` is true; returns how many.
    pub(crate) fn remove_where(&mut self, drop: impl Fn(&K) -> bool) -> usize {
        let mut removed = 0;
        let mut i = 0;
        while i < self.entries.len() {
            if drop(&self.entries[i].key) {
                self.remove_at(i);
                removed += 1;
            } else {
                i += 1;
            }
        }
        removed
    }

    /// Every value.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|e| &e.value)
    }

    fn remove_at(&mut self, i: usize) -> (K, V) {
        let e = self.entries.swap_remove(i);
        self.index.remove(&e.key);
        if let Some(moved) = self.entries.get(i) {
            self.index.insert(moved.key, i);
        }
        (e.key, e.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreferenced_goes_first() {
        let mut c = Clock::new();
        for k in 0..4u32 {
            c.insert(k, k);
        }
        c.get(&0);
        c.get(&1);
        assert_eq!(c.evict(|_, _| false, false).map(|e| e.0), Some(2));
        assert_eq!(c.evict(|_, _| false, false).map(|e| e.0), Some(3));
        // Now only referenced ones remain: their bits are cleared, then one goes.
        assert!(c.evict(|_, _| false, false).is_some());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn pinned_entries_are_passed_over() {
        let mut c = Clock::new();
        for k in 0..3u32 {
            c.insert(k, k);
        }
        let pinned = |_: &u32, v: &u32| *v != 1;
        assert_eq!(c.evict(pinned, false).map(|e| e.0), Some(1));
        assert_eq!(c.evict(pinned, false), None, "all that remain are pinned");
        assert_eq!(c.len(), 2);
        assert!(c.evict(pinned, true).is_some(), "or_pinned evicts anyway");
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn select_names_the_victim_and_keeps_it_until_asked() {
        let mut c = Clock::new();
        for k in 0..3u32 {
            c.insert(k, k);
        }
        c.get(&0);
        assert_eq!(c.select(|k, _| *k == 1).copied(), Some(2), "0 is referenced, 1 pinned");
        assert_eq!(c.len(), 3, "select removes nothing");
        assert_eq!(c.evict_selected().map(|e| e.0), Some(2));
        assert_eq!(c.select(|_, _| true), None, "everything pinned");
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn index_survives_removals() {
        let mut c = Clock::new();
        for k in 0..10u32 {
            c.insert(k, k * 10);
        }
        assert_eq!(c.remove_where(|k| k % 3 == 0), 4);
        for k in 0..10u32 {
            assert_eq!(c.get(&k).copied(), (k % 3 != 0).then_some(k * 10));
        }
        while c.evict(|_, _| false, false).is_some() {}
        assert_eq!(c.len(), 0);
    }
}
