//! Reassembly: datagrams of one message become one [`Msg`] whose segments are the
//! datagrams' own frames, in order. Nothing is copied.
//!
//! A one-datagram message skips the table. Partial messages wait in a table bounded in
//! entries and in age, every entry in proportion to what its header claims: a message
//! says how many datagrams it has, and that count may not exceed what its length needs
//! at the smallest datagram a sender can use ([`MIN_DATAGRAM_PAYLOAD`]), so a forged
//! count of 65,535 cannot size a vector. A partial expires when no datagram of it came
//! for the timeout (unreliable: the missing datagram was lost; reliable: its sender gave
//! up retransmitting). A reliable peer delivers in order, so it has at most one partial
//! message: one of a newer id ends the older. What is evicted or expires is counted, and
//! its frames go back to the pool.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::buf::{Dgram, Msg, Segs};
pub(crate) use super::wire::MIN_DATAGRAM_PAYLOAD;
use super::PeerId;

/// Why a datagram did not go into a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Header fields inconsistent (index past count, length past the maximum, more
    /// datagrams than the length needs, ...).
    Malformed,
    /// The same datagram of a message twice.
    Duplicate,
}

#[derive(Debug)]
struct Partial {
    reliable: bool,
    len: usize,
    got: u16,
    bytes: usize,
    /// When a datagram of it last arrived.
    last: Instant,
    parts: Vec<Option<Segs>>,
}

/// Counts of what the reassembler threw away.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReasmDrops {
    pub expired: u64,
    pub evicted: u64,
    pub bad_length: u64,
}

/// The reassembler's bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReasmLimits {
    /// Partial messages at most.
    pub max_partial: usize,
    /// Largest message.
    pub max_msg: usize,
    /// Age (since the last datagram) at which an unreliable partial expires.
    pub timeout: Duration,
    /// The same for a reliable partial.
    pub reliable_timeout: Duration,
}

/// The table of partial messages.
#[derive(Debug)]
pub(crate) struct Reassembler {
    partial: HashMap<(PeerId, u32), Partial>,
    /// The message id of each reliable peer's partial message.
    open: HashMap<PeerId, u32>,
    lim: ReasmLimits,
    pub drops: ReasmDrops,
}

impl Reassembler {
    pub fn new(lim: ReasmLimits) -> Self {
        Reassembler { partial: HashMap::new(), open: HashMap::new(), lim, drops: ReasmDrops::default() }
    }

    /// Adds a datagram from `peer`; returns the message it completes, if any.
    pub fn add(&mut self, now: Instant, peer: PeerId, d: Dgram) -> Result<Option<Msg>, Reject> {
        let h = d.hdr;
        let len = h.msg_len as usize;
        let most = len.div_ceil(MIN_DATAGRAM_PAYLOAD).max(1);
        if h.frags == 0 || h.frag >= h.frags || len > self.lim.max_msg || d.payload > len || usize::from(h.frags) > most
        {
            return Err(Reject::Malformed);
        }
        if h.frags == 1 {
            if d.payload != len {
                return Err(Reject::Malformed);
            }
            return Ok(Some(Msg { peer, id: h.msg_id, len, s: d.s }));
        }
        let key = (peer, h.msg_id);
        if !self.partial.contains_key(&key) {
            if h.reliable() {
                if let Some(old) = self.open.insert(peer, h.msg_id) {
                    // In-order delivery: the older message can never complete.
                    if self.partial.remove(&(peer, old)).is_some() {
                        self.drops.evicted += 1;
                    }
                }
            }
            if self.partial.len() >= self.lim.max_partial {
                self.evict();
            }
            let parts = (0..h.frags).map(|_| None).collect();
            self.partial.insert(key, Partial { reliable: h.reliable(), len, got: 0, bytes: 0, last: now, parts });
        }
        let Some(p) = self.partial.get_mut(&key) else { return Err(Reject::Malformed) };
        if p.len != len || p.parts.len() != usize::from(h.frags) || p.reliable != h.reliable() {
            return Err(Reject::Malformed);
        }
        let slot = &mut p.parts[usize::from(h.frag)];
        if slot.is_some() {
            return Err(Reject::Duplicate);
        }
        *slot = Some(d.s);
        p.got += 1;
        p.bytes += d.payload;
        p.last = now;
        if usize::from(p.got) < p.parts.len() {
            return Ok(None);
        }
        let p = self.remove(key).ok_or(Reject::Malformed)?;
        if p.bytes != p.len {
            self.drops.bad_length += 1;
            return Err(Reject::Malformed);
        }
        let mut s = Segs::default();
        for part in p.parts.into_iter().flatten() {
            s.segs.extend(part.segs);
            s.first.extend(part.first);
        }
        Ok(Some(Msg { peer, id: h.msg_id, len: p.len, s }))
    }

    fn remove(&mut self, key: (PeerId, u32)) -> Option<Partial> {
        let p = self.partial.remove(&key)?;
        if p.reliable && self.open.get(&key.0) == Some(&key.1) {
            self.open.remove(&key.0);
        }
        Some(p)
    }

    /// Drops the partial message that made progress longest ago (only ever under pressure:
    /// the table is full).
    fn evict(&mut self) {
        let victim = self.partial.iter().min_by_key(|(_, p)| p.last).map(|(k, _)| *k);
        if let Some(k) = victim {
            self.remove(k);
            self.drops.evicted += 1;
        }
    }

    /// Drops every partial message of `peer` (it left the table); returns how many.
    pub fn drop_peer(&mut self, peer: PeerId) -> usize {
        let before = self.partial.len();
        self.partial.retain(|k, _| k.0 != peer);
        self.open.remove(&peer);
        let n = before - self.partial.len();
        self.drops.evicted += n as u64;
        n
    }

    /// Partial messages held.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Drops partial messages that made no progress for their timeout.
    pub fn expire(&mut self, now: Instant) {
        let lim = self.lim;
        let old: Vec<(PeerId, u32)> = self
            .partial
            .iter()
            .filter(|(_, p)| {
                let t = if p.reliable { lim.reliable_timeout } else { lim.timeout };
                now.saturating_duration_since(p.last) >= t
            })
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            self.remove(k);
            self.drops.expired += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::heap_pool;
    use crate::wire::{MsgHdr, FLAG_RELIABLE, HDR_LEN, KIND_DATA};
    use umem::{BufSlice, Pool};

    fn lim() -> ReasmLimits {
        ReasmLimits {
            max_partial: 4,
            max_msg: 65_536,
            timeout: Duration::from_millis(10),
            reliable_timeout: Duration::from_millis(100),
        }
    }

    /// Datagram `frag` of `frags` of message `id` (`len` bytes), carrying `payload` bytes.
    fn dgram(pool: &Pool, id: u32, frag: u16, frags: u16, len: u32, payload: usize, reliable: bool) -> Dgram {
        let buf = pool.alloc_frame().expect("a frame");
        let s = BufSlice::new(buf, 0..HDR_LEN + payload).expect("a slice");
        let flags = if reliable { FLAG_RELIABLE } else { 0 };
        let hdr = MsgHdr { kind: KIND_DATA, flags, msg_id: id, frag, frags, msg_len: len, ..MsgHdr::default() };
        Dgram { hdr, s: Segs { segs: vec![s], first: vec![true] }, payload }
    }

    const P: PeerId = PeerId { slot: 0, gen: 1 };

    #[test]
    fn a_forged_datagram_count_sizes_nothing() {
        let pool = heap_pool(16);
        let mut r = Reassembler::new(lim());
        let now = Instant::now();
        // 100 bytes need one datagram; 65,535 is refused before any table entry exists.
        assert_eq!(r.add(now, P, dgram(&pool, 1, 0, u16::MAX, 100, 10, false)).err(), Some(Reject::Malformed));
        // The largest message needs at most ceil(65536 / 524) = 126 datagrams.
        assert_eq!(r.add(now, P, dgram(&pool, 2, 0, 127, 65_536, 524, false)).err(), Some(Reject::Malformed));
        assert_eq!(r.pending(), 0);
        assert!(r.add(now, P, dgram(&pool, 3, 0, 126, 65_536, 524, false)).unwrap().is_none());
        assert_eq!(r.pending(), 1);
        assert_eq!(pool.stats().frames_free, 15, "only the accepted datagram's frame is held");
    }

    #[test]
    fn partials_expire_after_no_progress_reliable_ones_later() {
        let pool = heap_pool(16);
        let t0 = Instant::now();
        let mut r = Reassembler::new(lim());
        r.add(t0, P, dgram(&pool, 1, 0, 2, 2000, 1000, false)).unwrap();
        let q = PeerId { slot: 1, gen: 1 };
        r.add(t0, q, dgram(&pool, 1, 0, 2, 2000, 1000, true)).unwrap();
        r.expire(t0 + Duration::from_millis(9));
        assert_eq!(r.pending(), 2);
        r.expire(t0 + Duration::from_millis(10));
        assert_eq!((r.pending(), r.drops.expired), (1, 1), "the unreliable one expired");
        // Progress restarts the clock of the reliable one.
        r.add(t0 + Duration::from_millis(50), q, dgram(&pool, 2, 0, 3, 3000, 1000, true)).unwrap();
        assert_eq!(r.drops.evicted, 1, "a newer reliable message of the same peer ended the older");
        r.expire(t0 + Duration::from_millis(149));
        assert_eq!(r.pending(), 1);
        r.expire(t0 + Duration::from_millis(150));
        assert_eq!(r.pending(), 0);
        assert_eq!(pool.stats().frames_free, 16, "every frame came back");
    }

    #[test]
    fn a_full_table_evicts_the_stalest_and_counts_it() {
        let pool = heap_pool(16);
        let t0 = Instant::now();
        let mut r = Reassembler::new(lim());
        for id in 0..4u32 {
            r.add(t0 + Duration::from_millis(u64::from(id)), P, dgram(&pool, id, 0, 2, 2000, 1000, false)).unwrap();
        }
        r.add(t0 + Duration::from_millis(5), P, dgram(&pool, 9, 0, 2, 2000, 1000, false)).unwrap();
        assert_eq!((r.pending(), r.drops.evicted), (4, 1));
        // Message 0 was the stalest: its second datagram now starts a new partial.
        let done = r.add(t0 + Duration::from_millis(6), P, dgram(&pool, 1, 1, 2, 2000, 1000, false)).unwrap();
        assert!(done.is_some_and(|m| m.len() == 2000), "message 1 survived and completes");
        assert_eq!(r.drop_peer(P), 3);
        assert_eq!(pool.stats().frames_free, 16);
    }
}
