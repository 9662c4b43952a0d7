//! The retransmission queue (Linux `tcp_rtx_queue`): a record per transmitted segment not
//! yet cumulatively acknowledged, saying when it was last sent and what is known about it
//! (SACKed, marked lost, retransmitted) and what its transmission knew of the delivery
//! rate (`rate.rs`). The payload itself stays in the send queue; a record is 40 bytes.
//!
//! - RACK (RFC 8985) reads send times from it, walking the transmissions in time order
//!   (Linux `tsorted_sent_queue`) and stopping at the first one sent after the most
//!   recently delivered segment, so a walk costs what is in doubt, not the whole flight.
//! - The pipe of RFC 6675 / RFC 6937 is its byte totals, as Linux counts
//!   `tcp_packets_in_flight`: outstanding - SACKed - lost + retransmitted.
//! - The lost queue says what to retransmit, oldest loss first.
//!
//! Records are cut at the boundaries of the segments as first sent; a SACK block or a
//! retransmission that ends inside one splits it.

use std::collections::VecDeque;

use smoltcp::time::Instant;

use super::rate::TxState;
use crate::wire::Seq;

/// The peer has SACKed this segment.
pub const SACKED: u8 = 1;
/// Marked lost (by RACK or the retransmission timer).
pub const LOST: u8 = 1 << 1;
/// A retransmission of it is in flight (Linux `TCPCB_SACKED_RETRANS`).
pub const RETRANS: u8 = 1 << 2;
/// It was retransmitted at least once (Karn's rule; RACK's ambiguity check).
pub const EVER_RETRANS: u8 = 1 << 3;
/// Marked lost by the retransmission timer.
pub const BY_RTO: u8 = 1 << 4;
/// Sent while the sender was application-limited (`rate.rs`).
pub const APP_LIMITED: u8 = 1 << 5;

/// One transmitted segment: `[start, end)` of the sequence space (a FIN counts one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seg {
    /// First sequence number.
    pub start: Seq,
    /// One past the last.
    pub end: Seq,
    /// When it was last sent.
    pub xmit: Instant,
    /// [`SACKED`], [`LOST`], [`RETRANS`], [`EVER_RETRANS`], [`BY_RTO`], [`APP_LIMITED`].
    pub flags: u8,
    /// The delivery state when it was last sent.
    pub tx: TxState,
}

impl Seg {
    /// Bytes of sequence space.
    pub fn len(&self) -> usize {
        self.end.since(self.start) as usize
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether it waits for a retransmission: lost, and none in flight.
    pub fn needs_rexmit(&self) -> bool {
        self.flags & (LOST | RETRANS | SACKED) == LOST
    }

    /// Whether it counts as in flight for RACK: not SACKED, not waiting for retransmission.
    fn rack_candidate(&self) -> bool {
        !self.has(SACKED) && !self.needs_rexmit()
    }
}

/// What RACK decided about a segment in its time-ordered walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sent after the most recently delivered segment: stop, so is everything after it.
    Stop,
    /// Lost: mark it.
    Lost,
    /// Not yet: keep walking.
    Wait,
}

/// Unacknowledged transmitted segments, in sequence order, with their byte totals.
#[derive(Debug)]
pub struct RtxQueue {
    segs: VecDeque<Seg>,
    sacked: usize,
    lost: usize,
    retrans: usize,
    /// Ranges marked lost, in the order they were marked; checked when taken.
    lost_q: VecDeque<(Seq, Seq)>,
    /// Every transmission `(time, start, end)` in time order; an entry whose segments were
    /// delivered, marked lost or sent again since is stale and skipped.
    tsorted: VecDeque<(Instant, Seq, Seq)>,
    /// Bytes ever marked lost, lost retransmissions included (Linux `tp->lost`).
    lost_total: u64,
}

impl RtxQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        RtxQueue {
            segs: VecDeque::new(),
            sacked: 0,
            lost: 0,
            retrans: 0,
            lost_q: VecDeque::new(),
            tsorted: VecDeque::new(),
            lost_total: 0,
        }
    }

    /// Bytes of heap the queue holds (by capacity).
    pub fn heap_bytes(&self) -> usize {
        self.segs.capacity() * size_of::<Seg>()
            + self.lost_q.capacity() * size_of::<(Seq, Seq)>()
            + self.tsorted.capacity() * size_of::<(Instant, Seq, Seq)>()
    }

    /// Whether nothing is outstanding.
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Bytes SACKed.
    pub fn sacked(&self) -> usize {
        self.sacked
    }

    /// Bytes marked lost (retransmitted or not).
    pub fn lost(&self) -> usize {
        self.lost
    }

    /// Bytes of retransmissions in flight.
    pub fn retrans(&self) -> usize {
        self.retrans
    }

    /// Bytes ever marked lost, each loss of a retransmission counted again (Linux
    /// `tp->lost`).
    pub fn lost_total(&self) -> u64 {
        self.lost_total
    }

    /// Bytes outstanding.
    pub fn outstanding(&self) -> usize {
        match (self.segs.front(), self.segs.back()) {
            (Some(f), Some(b)) => b.end.since(f.start) as usize,
            _ => 0,
        }
    }

    /// Bytes in the network (RFC 6675 pipe, Linux `tcp_packets_in_flight` in bytes).
    pub fn pipe(&self) -> usize {
        (self.outstanding() + self.retrans).saturating_sub(self.sacked + self.lost)
    }

    /// The records, oldest first.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = &Seg> {
        self.segs.iter()
    }

    /// Index of the record holding `at`, or where one starting at `at` would go.
    fn index_of(&self, at: Seq) -> usize {
        self.segs.partition_point(|s| s.end.le(at))
    }

    /// Makes `at` a record boundary (splitting the record that holds it).
    fn split_at(&mut self, at: Seq) {
        let i = self.index_of(at);
        if let Some(s) = self.segs.get_mut(i) {
            if s.start.lt(at) && at.lt(s.end) {
                let mut right = *s;
                right.start = at;
                s.end = at;
                self.segs.insert(i + 1, right);
            }
        }
    }

    /// Records a transmission of `[start, end)` at `now` with the delivery state `tx`
    /// (application-limited if `app_limited`); `snd_max` is the highest sequence number
    /// sent before it (what lies above is new).
    pub fn on_transmit(&mut self, now: Instant, start: Seq, end: Seq, snd_max: Seq, tx: TxState, app_limited: bool) {
        let app = if app_limited { APP_LIMITED } else { 0 };
        if !start.lt(end) {
            return;
        }
        let old_end = end.min(snd_max.max(start));
        if start.lt(old_end) {
            self.split_at(start);
            self.split_at(old_end);
            let mut i = self.index_of(start);
            while let Some(s) = self.segs.get_mut(i) {
                if !s.start.lt(old_end) {
                    break;
                }
                if !s.has(SACKED) {
                    s.xmit = now;
                    s.tx = tx;
                    s.flags = (s.flags & !APP_LIMITED) | app | EVER_RETRANS;
                    if !s.has(RETRANS) {
                        s.flags |= RETRANS;
                        self.retrans += s.len();
                    }
                }
                i += 1;
            }
        }
        if old_end.lt(end) {
            self.segs.push_back(Seg { start: old_end, end, xmit: now, flags: app, tx });
        }
        self.tsorted.push_back((now, start, end));
    }

    fn forget(&mut self, s: &Seg) {
        if s.has(SACKED) {
            self.sacked -= s.len();
        }
        if s.has(LOST) {
            self.lost -= s.len();
        }
        if s.has(RETRANS) {
            self.retrans -= s.len();
        }
    }

    /// The cumulative ACK reached `una`: drops what it covers, calling `delivered` with
    /// each record (or acknowledged part of one) that was not SACKed before.
    pub fn ack(&mut self, una: Seq, delivered: &mut dyn FnMut(&Seg)) {
        while let Some(s) = self.segs.front().copied() {
            if s.end.le(una) {
                self.segs.pop_front();
                self.forget(&s);
                if !s.has(SACKED) {
                    delivered(&s);
                }
            } else {
                if s.start.lt(una) {
                    let part = Seg { end: una, ..s };
                    self.forget(&part);
                    if !s.has(SACKED) {
                        delivered(&part);
                    }
                    if let Some(f) = self.segs.front_mut() {
                        f.start = una;
                    }
                }
                break;
            }
        }
        while self.tsorted.front().is_some_and(|t| t.2.le(una)) {
            self.tsorted.pop_front();
        }
        while self.lost_q.front().is_some_and(|l| l.1.le(una)) {
            self.lost_q.pop_front();
        }
    }

    /// The peer SACKed `[left, right)`: marks the records it covers, calling `delivered`
    /// with each that was not SACKed before (as it was before).
    pub fn sack(&mut self, left: Seq, right: Seq, delivered: &mut dyn FnMut(&Seg)) {
        let (Some(first), Some(last)) = (self.segs.front(), self.segs.back()) else { return };
        let left = left.max(first.start);
        let right = right.min(last.end);
        if !left.lt(right) {
            return;
        }
        self.split_at(left);
        self.split_at(right);
        let mut i = self.index_of(left);
        while let Some(s) = self.segs.get(i).copied() {
            if !s.start.lt(right) {
                break;
            }
            if !s.has(SACKED) {
                delivered(&s);
                self.forget(&s);
                self.sacked += s.len();
                self.segs[i].flags = (s.flags & !(LOST | RETRANS)) | SACKED;
            }
            i += 1;
        }
    }

    /// Marks record `i` lost; returns whether it was a retransmission in flight.
    fn mark_lost_at(&mut self, i: usize, flags: u8) -> bool {
        let s = &mut self.segs[i];
        if s.has(SACKED) {
            return false;
        }
        let len = s.len();
        let was_retrans = s.has(RETRANS);
        if was_retrans {
            s.flags &= !RETRANS;
            self.retrans -= len;
            self.lost_total += len as u64;
        }
        if !s.has(LOST) {
            s.flags |= LOST;
            self.lost += len;
            self.lost_total += len as u64;
        }
        s.flags |= flags;
        let (a, b) = (s.start, s.end);
        self.lost_q.push_back((a, b));
        was_retrans
    }

    /// The retransmission timer expired: every record not SACKED is lost, and goes out
    /// again in sequence order.
    pub fn mark_all_lost(&mut self) {
        self.lost_q.clear();
        for i in 0..self.segs.len() {
            self.mark_lost_at(i, BY_RTO);
        }
    }

    /// Clears every loss mark (a loss found spurious); returns the bytes unmarked.
    pub fn unmark_lost(&mut self) -> usize {
        let n = self.lost;
        for s in self.segs.iter_mut() {
            s.flags &= !(LOST | BY_RTO);
        }
        self.lost = 0;
        self.lost_q.clear();
        n
    }

    /// Whether something marked lost may still wait for its retransmission (cheap; may
    /// say yes when the marks were since resolved).
    pub fn has_lost_pending(&self) -> bool {
        !self.lost_q.is_empty()
    }

    /// The next record to retransmit: the oldest loss still waiting, if any.
    pub fn next_lost(&mut self) -> Option<Seg> {
        while let Some(&(a, b)) = self.lost_q.front() {
            let mut i = self.index_of(a);
            while let Some(s) = self.segs.get(i) {
                if !s.start.lt(b) {
                    break;
                }
                if s.needs_rexmit() {
                    return Some(*s);
                }
                i += 1;
            }
            self.lost_q.pop_front();
        }
        None
    }

    /// RACK's walk (RFC 8985 `RACK_detect_loss`): the segments in flight, oldest
    /// transmission first, until `decide` says [`Verdict::Stop`]; marks what it calls
    /// lost. Returns the bytes newly marked and how many of the segments marked were
    /// retransmissions (lost again).
    pub fn detect(&mut self, decide: &mut dyn FnMut(&Seg) -> Verdict) -> (usize, u64) {
        let before = self.lost;
        let mut again = 0;
        let mut k = 0;
        while let Some(&(t, a, b)) = self.tsorted.get(k) {
            let mut live = false;
            let mut i = self.index_of(a);
            while let Some(s) = self.segs.get(i).copied() {
                if !s.start.lt(b) {
                    break;
                }
                if s.xmit == t && s.rack_candidate() {
                    match decide(&s) {
                        Verdict::Stop => return (self.lost - before, again),
                        Verdict::Lost => again += u64::from(self.mark_lost_at(i, 0)),
                        Verdict::Wait => live = true,
                    }
                }
                i += 1;
            }
            if !live && k == 0 {
                self.tsorted.pop_front();
            } else {
                k += 1;
            }
        }
        self.compact();
        (self.lost - before, again)
    }

    /// Drops stale time-order entries when they outnumber the records (a long wait at
    /// the front lets them pile up behind it).
    fn compact(&mut self) {
        if self.tsorted.len() <= 2 * self.segs.len() + 64 {
            return;
        }
        let segs = &self.segs;
        self.tsorted.retain(|&(t, a, b)| {
            let mut i = segs.partition_point(|s| s.end.le(a));
            while let Some(s) = segs.get(i) {
                if !s.start.lt(b) {
                    return false;
                }
                if s.xmit == t && s.rack_candidate() {
                    return true;
                }
                i += 1;
            }
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    /// Ten 100-byte segments from 1000, sent at 0..9 ms.
    fn ten() -> RtxQueue {
        let mut q = RtxQueue::new();
        for i in 0..10u32 {
            q.on_transmit(
                t(i64::from(i)),
                Seq(1000 + 100 * i),
                Seq(1100 + 100 * i),
                Seq(1000 + 100 * i),
                TxState::default(),
                false,
            );
        }
        q
    }

    #[test]
    fn sack_ack_and_pipe() {
        let mut q = ten();
        assert_eq!((q.outstanding(), q.pipe()), (1000, 1000));
        let mut got = Vec::new();
        q.sack(Seq(1250), Seq(1500), &mut |s| got.push((s.start, s.end)));
        // Splits the segment 1200..1300 at 1250.
        assert_eq!(got, [(Seq(1250), Seq(1300)), (Seq(1300), Seq(1400)), (Seq(1400), Seq(1500))]);
        assert_eq!((q.sacked(), q.pipe()), (250, 750));
        got.clear();
        q.sack(Seq(1300), Seq(1600), &mut |s| got.push((s.start, s.end)));
        assert_eq!(got, [(Seq(1500), Seq(1600))], "only what was not SACKed before");
        got.clear();
        q.ack(Seq(1350), &mut |s| got.push((s.start, s.end)));
        assert_eq!(got, [(Seq(1000), Seq(1100)), (Seq(1100), Seq(1200)), (Seq(1200), Seq(1250))]);
        assert_eq!((q.outstanding(), q.sacked(), q.pipe()), (650, 250, 400));
    }

    #[test]
    fn lost_retransmitted_and_lost_again() {
        let mut q = ten();
        q.sack(Seq(1200), Seq(1300), &mut |_| {});
        // RACK-like walk: everything sent before the SACKed segment is lost.
        let (n, again) = q.detect(&mut |s| if s.xmit < t(2) { Verdict::Lost } else { Verdict::Stop });
        assert_eq!((n, again), (200, 0));
        assert_eq!(q.pipe(), 1000 - 100 - 200);
        let l = q.next_lost().unwrap();
        assert_eq!((l.start, l.end), (Seq(1000), Seq(1100)));
        q.on_transmit(t(20), Seq(1000), Seq(1100), Seq(2000), TxState::default(), false);
        assert_eq!(q.pipe(), 800, "a retransmission is in flight again");
        let l = q.next_lost().unwrap();
        assert_eq!(l.start, Seq(1100));
        q.on_transmit(t(21), Seq(1100), Seq(1200), Seq(2000), TxState::default(), false);
        assert!(q.next_lost().is_none());
        // The segments sent at 3..9 ms are delivered; the walk reaches the retransmissions:
        // the one sent at 20 ms is called lost, the one sent at 21 ms stops it.
        q.sack(Seq(1300), Seq(2000), &mut |_| {});
        let mut seen = Vec::new();
        let (n, again) = q.detect(&mut |s| {
            seen.push(s.start);
            if s.xmit <= t(20) {
                Verdict::Lost
            } else {
                Verdict::Stop
            }
        });
        assert_eq!(seen, [Seq(1000), Seq(1100)]);
        assert_eq!((n, again), (0, 1), "a lost retransmission is lost again: LOST stays, RETRANS goes");
        assert_eq!(q.retrans(), 100);
        assert_eq!(q.next_lost().map(|s| s.start), Some(Seq(1000)));
        assert!(q.iter().find(|s| s.start == Seq(1000)).is_some_and(|s| s.has(EVER_RETRANS)));
    }

    #[test]
    fn rto_marks_everything_not_sacked_and_undo_clears() {
        let mut q = ten();
        q.sack(Seq(1500), Seq(1600), &mut |_| {});
        q.mark_all_lost();
        assert_eq!(q.pipe(), 0);
        let order: Vec<Seq> = std::iter::from_fn(|| {
            let s = q.next_lost()?;
            q.on_transmit(t(50), s.start, s.end, Seq(2000), TxState::default(), false);
            Some(s.start)
        })
        .collect();
        assert_eq!(order.len(), 9);
        assert!(order.windows(2).all(|w| w[0].lt(w[1])), "in sequence order");
        assert_eq!(q.pipe(), 900);
        assert!(q.iter().filter(|s| !s.has(SACKED)).all(|s| s.has(BY_RTO)));
        assert_eq!(q.unmark_lost(), 900);
        assert_eq!(q.pipe(), 1800, "originals and retransmissions both counted in flight");
    }

    #[test]
    fn retransmission_past_the_old_end_adds_the_new_part() {
        let mut q = RtxQueue::new();
        q.on_transmit(t(0), Seq(0), Seq(100), Seq(0), TxState::default(), false);
        q.on_transmit(t(1), Seq(50), Seq(200), Seq(100), TxState::default(), false);
        let v: Vec<(Seq, Seq, bool)> = q.iter().map(|s| (s.start, s.end, s.has(RETRANS))).collect();
        assert_eq!(v, [(Seq(0), Seq(50), false), (Seq(50), Seq(100), true), (Seq(100), Seq(200), false)]);
    }
}
