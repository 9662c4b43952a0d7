//! Reassembly: datagrams of one message become one [`Msg`] whose segments are the
//! datagrams' own frames, in order. Nothing is copied.
//!
//! A one-datagram message skips the table. Partial messages wait in a small table, bounded
//! in entries and (for unreliable messages, whose missing datagrams may never come) in age;
//! what is evicted or expires is counted, and its frames go back to the pool.

use std::time::{Duration, Instant};

use super::buf::{Dgram, Msg, Segs};
use super::PeerId;

/// Why a datagram did not go into a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Header fields inconsistent (index past count, length past the maximum, ...).
    Malformed,
    /// The same datagram of a message twice.
    Duplicate,
}

#[derive(Debug)]
struct Partial {
    peer: PeerId,
    id: u32,
    reliable: bool,
    len: usize,
    got: u16,
    bytes: usize,
    started: Instant,
    parts: Vec<Option<Segs>>,
}

/// Counts of what the reassembler threw away.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReasmDrops {
    pub expired: u64,
    pub evicted: u64,
    pub bad_length: u64,
}

/// The table of partial messages.
#[derive(Debug)]
pub(crate) struct Reassembler {
    partial: Vec<Partial>,
    max_partial: usize,
    max_msg: usize,
    timeout: Duration,
    pub drops: ReasmDrops,
}

impl Reassembler {
    pub fn new(max_partial: usize, max_msg: usize, timeout: Duration) -> Self {
        Reassembler { partial: Vec::new(), max_partial, max_msg, timeout, drops: ReasmDrops::default() }
    }

    /// Adds a datagram from `peer`; returns the message it completes, if any.
    pub fn add(&mut self, now: Instant, peer: PeerId, d: Dgram) -> Result<Option<Msg>, Reject> {
        let h = d.hdr;
        let len = h.msg_len as usize;
        if h.frags == 0 || h.frag >= h.frags || len > self.max_msg || d.payload > len {
            return Err(Reject::Malformed);
        }
        if h.frags == 1 {
            if d.payload != len {
                return Err(Reject::Malformed);
            }
            return Ok(Some(Msg { peer, id: h.msg_id, len, s: d.s }));
        }
        let i = match self.partial.iter().position(|p| p.peer == peer && p.id == h.msg_id) {
            Some(i) => i,
            None => {
                if self.partial.len() >= self.max_partial {
                    self.evict();
                }
                self.partial.push(Partial {
                    peer,
                    id: h.msg_id,
                    reliable: h.reliable(),
                    len,
                    got: 0,
                    bytes: 0,
                    started: now,
                    parts: (0..h.frags).map(|_| None).collect(),
                });
                self.partial.len() - 1
            }
        };
        let p = &mut self.partial[i];
        if p.len != len || p.parts.len() != usize::from(h.frags) {
            return Err(Reject::Malformed);
        }
        let slot = &mut p.parts[usize::from(h.frag)];
        if slot.is_some() {
            return Err(Reject::Duplicate);
        }
        *slot = Some(d.s);
        p.got += 1;
        p.bytes += d.payload;
        if usize::from(p.got) < p.parts.len() {
            return Ok(None);
        }
        let p = self.partial.swap_remove(i);
        if p.bytes != p.len {
            self.drops.bad_length += 1;
            return Err(Reject::Malformed);
        }
        let mut s = Segs::default();
        for part in p.parts.into_iter().flatten() {
            s.segs.extend(part.segs);
            s.first.extend(part.first);
        }
        Ok(Some(Msg { peer: p.peer, id: p.id, len: p.len, s }))
    }

    /// Drops the oldest unreliable partial message (reliable ones complete: their
    /// datagrams are retransmitted until they arrive), or the oldest of all.
    fn evict(&mut self) {
        let victim = self
            .partial
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.reliable)
            .min_by_key(|(_, p)| p.started)
            .or_else(|| self.partial.iter().enumerate().min_by_key(|(_, p)| p.started))
            .map(|(i, _)| i);
        if let Some(i) = victim {
            self.partial.swap_remove(i);
            self.drops.evicted += 1;
        }
    }

    /// Partial messages held.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Drops unreliable partial messages older than the timeout.
    pub fn expire(&mut self, now: Instant) {
        let before = self.partial.len();
        let timeout = self.timeout;
        self.partial.retain(|p| p.reliable || now.saturating_duration_since(p.started) < timeout);
        self.drops.expired += (before - self.partial.len()) as u64;
    }
}
