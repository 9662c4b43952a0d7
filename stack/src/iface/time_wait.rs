//! The table of compact entries ([`TimeWait`]): connections in TIME-WAIT, and orphans in
//! FIN-WAIT-2 waiting for the peer's FIN. Found by four-tuple, kept in two lists ordered
//! by expiry, one per substate. Every entry of a list waits the same time
//! (`TcpConfig::time_wait`, `TcpConfig::fin_wait2_timeout`), so insertion (and a restart
//! after a retransmitted FIN) happens at or near a tail, and each list is its own timer:
//! insert, restart, a move from FIN-WAIT-2 to TIME-WAIT and removal are O(1), and expiry
//! pops a head.
//!
//! The table has a cap (Linux's `tcp_max_tw_buckets`, which FIN-WAIT-2 buckets count
//! against too): at the cap, the entry closest to expiry is recycled to make room, and
//! counted.

use std::collections::HashMap;

use smoltcp::time::Instant;

use crate::keyed::Keyed;
use crate::tcp::{FourTuple, TimeWait};
use crate::wire::TcpHeader;

const NIL: u32 = u32::MAX;

/// The list of entries in TIME-WAIT, and of those in FIN-WAIT-2.
const TW: usize = 0;
const FW2: usize = 1;

#[derive(Debug)]
struct TwSlot {
    tw: Option<TimeWait>,
    expires: Instant,
    /// When this entry last answered a segment, in 8 ms ticks (at most one ACK per 500 ms).
    last_ack: u16,
    prev: u32,
    next: u32,
}

impl TwSlot {
    fn list(&self) -> usize {
        if self.tw.as_ref().is_some_and(TimeWait::is_fin_wait2) {
            FW2
        } else {
            TW
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct List {
    head: Option<u32>,
    tail: Option<u32>,
    len: usize,
}

/// What expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// A TIME-WAIT entry, done.
    TimeWait,
    /// A FIN-WAIT-2 entry whose peer never sent its FIN.
    FinWait2,
}

/// The table: see the module docs.
#[derive(Debug)]
pub(crate) struct TimeWaitTable {
    slots: Vec<TwSlot>,
    free: Vec<u32>,
    by_tuple: HashMap<FourTuple, u32, Keyed>,
    lists: [List; 2],
}

impl TimeWaitTable {
    /// An empty table whose index hashes with `hasher`.
    pub(crate) fn new(hasher: Keyed) -> Self {
        TimeWaitTable {
            slots: Vec::new(),
            free: Vec::new(),
            by_tuple: HashMap::with_hasher(hasher),
            lists: [List::default(); 2],
        }
    }

    /// Entries held (both substates).
    pub(crate) fn len(&self) -> usize {
        self.by_tuple.len()
    }

    /// Entries in FIN-WAIT-2.
    pub(crate) fn fin_wait2_len(&self) -> usize {
        self.lists[FW2].len
    }

    /// The entry for `tuple`.
    pub(crate) fn find(&self, tuple: &FourTuple) -> Option<u32> {
        self.by_tuple.get(tuple).copied()
    }

    /// Whether `tuple` has an entry.
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
            let Some(oldest) = self.next_to_expire() else { break };
            self.remove(oldest);
            recycled += 1;
        }
        let tuple = tw.tuple();
        let slot = TwSlot { tw: Some(tw), expires, last_ack: crate::tcp::validate::NEVER, prev: NIL, next: NIL };
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

    /// Whether entry `idx` may answer `hdr` (carrying `plen` bytes) with an ACK now: the
    /// rate limit of RFC 5961 section 7, as for connections (Linux rate-limits TIME-WAIT
    /// ACKs the same way). A flood of segments for a closed four-tuple draws a few ACKs.
    pub(crate) fn may_ack(&mut self, idx: u32, now: Instant, hdr: &TcpHeader, plen: usize) -> bool {
        let Some(s) = self.slots.get_mut(idx as usize) else { return false };
        crate::tcp::validate::oow_ack_allowed(&mut s.last_ack, now, hdr, plen)
    }

    /// Waits again, until `expires` (2 MSL after a retransmitted FIN).
    pub(crate) fn restart(&mut self, idx: u32, expires: Instant) {
        if self.get(idx).is_none() {
            return;
        }
        self.unlink(idx);
        self.slots[idx as usize].expires = expires;
        self.link_sorted(idx);
    }

    /// A FIN-WAIT-2 entry's peer sent its FIN: the entry enters TIME-WAIT until `expires`.
    pub(crate) fn peer_fin(&mut self, idx: u32, hdr: &TcpHeader, expires: Instant) {
        if self.get(idx).is_none() {
            return;
        }
        self.unlink(idx);
        let s = &mut self.slots[idx as usize];
        if let Some(tw) = s.tw.as_mut() {
            tw.peer_fin(hdr);
        }
        s.expires = expires;
        self.link_sorted(idx);
    }

    /// Removes an entry.
    pub(crate) fn remove(&mut self, idx: u32) -> Option<TimeWait> {
        self.slots.get(idx as usize)?.tw.as_ref()?;
        self.unlink(idx);
        let tw = self.slots[idx as usize].tw.take()?;
        self.by_tuple.remove(&tw.tuple());
        self.free.push(idx);
        Some(tw)
    }

    /// The entry that expires first.
    fn next_to_expire(&self) -> Option<u32> {
        let heads = self.lists.iter().filter_map(|l| l.head);
        heads.min_by_key(|&h| self.slots[h as usize].expires)
    }

    /// When the next entry expires.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.next_to_expire().map(|h| self.slots[h as usize].expires)
    }

    /// Removes the entry that expires first if it has expired by `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Expired> {
        let h = self.next_to_expire().filter(|&h| self.slots[h as usize].expires <= now)?;
        let kind = if self.slots[h as usize].list() == FW2 { Expired::FinWait2 } else { Expired::TimeWait };
        self.remove(h).map(|_| kind)
    }

    /// Bytes of heap the table holds: its entries (by capacity), free list and index.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<TwSlot>()
            + self.free.capacity() * size_of::<u32>()
            + super::hash_map_bytes(&self.by_tuple)
    }

    /// Links `idx` into its substate's list in expiry order, searching from the tail
    /// (where it nearly always goes).
    fn link_sorted(&mut self, idx: u32) {
        let l = self.slots[idx as usize].list();
        let expires = self.slots[idx as usize].expires;
        let mut after = self.lists[l].tail;
        while let Some(a) = after {
            if self.slots[a as usize].expires <= expires {
                break;
            }
            after = Some(self.slots[a as usize].prev).filter(|&p| p != NIL);
        }
        let next = match after {
            Some(a) => std::mem::replace(&mut self.slots[a as usize].next, idx),
            None => self.lists[l].head.replace(idx).unwrap_or(NIL),
        };
        let s = &mut self.slots[idx as usize];
        s.prev = after.unwrap_or(NIL);
        s.next = next;
        if next == NIL {
            self.lists[l].tail = Some(idx);
        } else {
            self.slots[next as usize].prev = idx;
        }
        self.lists[l].len += 1;
    }

    fn unlink(&mut self, idx: u32) {
        let l = self.slots[idx as usize].list();
        let (prev, next) = (self.slots[idx as usize].prev, self.slots[idx as usize].next);
        if prev == NIL {
            self.lists[l].head = Some(next).filter(|&n| n != NIL);
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[l].tail = Some(prev).filter(|&p| p != NIL);
        } else {
            self.slots[next as usize].prev = prev;
        }
        let s = &mut self.slots[idx as usize];
        s.prev = NIL;
        s.next = NIL;
        self.lists[l].len -= 1;
    }
}
