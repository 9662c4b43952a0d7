//! The TIME-WAIT table: compact entries ([`TimeWait`]), found by four-tuple, kept in a list
//! ordered by expiry. Every entry waits the same `TcpConfig::time_wait`, so insertion (and
//! a restart after a retransmitted FIN) happens at or near the tail, and the list is its
//! own timer: insert, restart and removal are O(1), and expiry pops the head.
//!
//! The table has a cap (Linux's `tcp_max_tw_buckets`): at the cap, the oldest entry, the
//! one closest to expiry, is recycled to make room, and counted.

use std::collections::HashMap;

use smoltcp::time::Instant;

use super::Fixed;
use crate::tcp::{FourTuple, TimeWait};

const NIL: u32 = u32::MAX;

#[derive(Debug)]
struct TwSlot {
    tw: Option<TimeWait>,
    expires: Instant,
    prev: u32,
    next: u32,
}

/// The table: see the module docs.
#[derive(Debug, Default)]
pub(crate) struct TimeWaitTable {
    slots: Vec<TwSlot>,
    free: Vec<u32>,
    by_tuple: HashMap<FourTuple, u32, Fixed>,
    head: Option<u32>,
    tail: Option<u32>,
}

impl TimeWaitTable {
    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.by_tuple.len()
    }

    /// The entry for `tuple`.
    pub(crate) fn find(&self, tuple: &FourTuple) -> Option<u32> {
        self.by_tuple.get(tuple).copied()
    }

    /// Whether `tuple` is in TIME-WAIT.
    pub(crate) fn contains(&self, tuple: &FourTuple) -> bool {
        self.by_tuple.contains_key(tuple)
    }

    pub(crate) fn get(&self, idx: u32) -> Option<&TimeWait> {
        self.slots.get(idx as usize).and_then(|s| s.tw.as_ref())
    }

    /// Adds `tw` until `expires`, keeping at most `cap` entries: returns how many old
    /// entries were recycled to make room (the new one itself, when `cap` is 0).
    pub(crate) fn insert(&mut self, tw: TimeWait, expires: Instant, cap: usize) -> u64 {
        if cap == 0 {
            return 1;
        }
        let mut recycled = 0;
        if let Some(old) = self.find(&tw.tuple()) {
            self.remove(old);
        }
        while self.len() >= cap {
            let Some(oldest) = self.head else { break };
            self.remove(oldest);
            recycled += 1;
        }
        let tuple = tw.tuple();
        let slot = TwSlot { tw: Some(tw), expires, prev: NIL, next: NIL };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.by_tuple.insert(tuple, idx);
        self.link_sorted(idx);
        recycled
    }

    /// Waits 2 MSL again from `expires`.
    pub(crate) fn restart(&mut self, idx: u32, expires: Instant) {
        if self.get(idx).is_none() {
            return;
        }
        self.unlink(idx);
        self.slots[idx as usize].expires = expires;
        self.link_sorted(idx);
    }

    /// Removes an entry.
    pub(crate) fn remove(&mut self, idx: u32) -> Option<TimeWait> {
        let tw = self.slots.get_mut(idx as usize)?.tw.take()?;
        self.by_tuple.remove(&tw.tuple());
        self.unlink(idx);
        self.free.push(idx);
        Some(tw)
    }

    /// When the oldest entry expires.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.head.map(|h| self.slots[h as usize].expires)
    }

    /// Removes the oldest entry if it has expired by `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> bool {
        match self.head {
            Some(h) if self.slots[h as usize].expires <= now => self.remove(h).is_some(),
            _ => false,
        }
    }

    /// Bytes of heap the table holds: its entries (by capacity), free list and index.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<TwSlot>()
            + self.free.capacity() * size_of::<u32>()
            + super::hash_map_bytes(&self.by_tuple)
    }

    /// Links `idx` in expiry order, searching from the tail (where it nearly always goes).
    fn link_sorted(&mut self, idx: u32) {
        let expires = self.slots[idx as usize].expires;
        let mut after = self.tail;
        while let Some(a) = after {
            if self.slots[a as usize].expires <= expires {
                break;
            }
            after = Some(self.slots[a as usize].prev).filter(|&p| p != NIL);
        }
        let next = match after {
            Some(a) => std::mem::replace(&mut self.slots[a as usize].next, idx),
            None => self.head.replace(idx).unwrap_or(NIL),
        };
        let s = &mut self.slots[idx as usize];
        s.prev = after.unwrap_or(NIL);
        s.next = next;
        if next == NIL {
            self.tail = Some(idx);
        } else {
            self.slots[next as usize].prev = idx;
        }
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next) = (self.slots[idx as usize].prev, self.slots[idx as usize].next);
        if prev == NIL {
            self.head = Some(next).filter(|&n| n != NIL);
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = Some(prev).filter(|&p| p != NIL);
        } else {
            self.slots[next as usize].prev = prev;
        }
        let s = &mut self.slots[idx as usize];
        s.prev = NIL;
        s.next = NIL;
    }
}
