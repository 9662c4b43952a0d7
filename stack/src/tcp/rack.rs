//! RACK (RFC 8985 section 6): a segment is lost when a segment sent after it has been
//! delivered and more than an RTT plus a reordering window has passed since it was sent.
//! This replaces counting three duplicate ACKs: a reordered segment is not lost as long
//! as it arrives within the window, a lost retransmission is found like any other loss
//! (its send time is the retransmission's), and losses at the tail need only one later
//! delivery.
//!
//! The reordering window is a quarter of the minimum RTT once reordering has been seen
//! (zero before, in recovery or once three segments are SACKed, so a path that does not
//! reorder loses no time), times a multiplier that grows by one for each round trip in
//! which a D-SACK shows a retransmission was spurious, capped at the smoothed RTT; the
//! multiplier falls back to one after 16 recoveries without a D-SACK (section 6.2 step 4).

use smoltcp::time::{Duration, Instant};

use super::rtx_queue::{RtxQueue, Seg, Verdict, EVER_RETRANS};
use crate::wire::Seq;

/// Recoveries without a D-SACK before the reordering window shrinks back.
const REO_WND_PERSIST: u32 = 16;
/// Largest multiplier (Linux keeps it in a byte).
const MAX_REO_WND_MULT: u32 = 255;
/// Duplicate-ACK threshold, in SACKed segments, before reordering is seen (Linux
/// `tcp_reordering`).
const DUP_THRESH: usize = 3;
/// Largest reordering degree remembered, segments (Linux `tcp_max_reordering`).
const MAX_REORDERING: u32 = 300;

/// Per-connection RACK state.
#[derive(Debug, Clone)]
pub struct Rack {
    /// Send time and end of the most recently sent segment delivered
    /// (`RACK.xmit_ts`, `RACK.end_seq`).
    xmit: Option<(Instant, Seq)>,
    /// The RTT of the last delivery counted (`RACK.rtt`).
    rtt: Duration,
    /// A delivery moved RACK since the last loss check.
    advanced: bool,
    reo_wnd_mult: u32,
    reo_wnd_persist: u32,
    /// D-SACKs seen before `snd_una` passes this do not grow the window again.
    dsack_round: Option<Seq>,
    /// A segment was delivered out of order (never retransmitted, below the highest SACK).
    reordering_seen: bool,
    /// The largest reordering degree seen, segments, at least [`DUP_THRESH`] (Linux
    /// `tp->reordering`).
    reordering: u32,
}

impl Default for Rack {
    fn default() -> Self {
        Rack::new()
    }
}

impl Rack {
    /// No delivery seen yet.
    pub const fn new() -> Self {
        Rack {
            xmit: None,
            rtt: Duration::ZERO,
            advanced: false,
            reo_wnd_mult: 1,
            reo_wnd_persist: 0,
            dsack_round: None,
            reordering_seen: false,
            reordering: DUP_THRESH as u32,
        }
    }
}

/// `RACK_sent_after(t1, seq1, t2, seq2)`.
fn sent_after(t1: Instant, seq1: Seq, t2: Instant, seq2: Seq) -> bool {
    t1 > t2 || (t1 == t2 && seq1.gt(seq2))
}

impl Rack {
    /// `RACK_update` for one newly delivered segment (section 6.2 step 2). A
    /// retransmitted segment delivered sooner than the minimum RTT after its
    /// retransmission was most likely the original arriving: it does not count.
    pub fn on_delivered(&mut self, now: Instant, s: &Seg, min_rtt: Option<Duration>) {
        let rtt = now - s.xmit;
        if s.has(EVER_RETRANS) && min_rtt.is_none_or(|m| rtt < m) {
            return;
        }
        self.rtt = rtt;
        self.advanced = true;
        if self.xmit.is_none_or(|(t, e)| sent_after(s.xmit, s.end, t, e)) {
            self.xmit = Some((s.xmit, s.end));
        }
    }

    /// A segment arrived `degree` segments out of order: from now on the reordering
    /// window is not zero.
    pub fn note_reordering(&mut self, degree: u64) {
        self.reordering_seen = true;
        self.reordering = self.reordering.max(degree.min(u64::from(MAX_REORDERING)) as u32);
    }

    /// The largest reordering degree seen, segments (at least 3).
    pub fn reordering(&self) -> u32 {
        self.reordering
    }

    /// Reordering deeper than the duplicate-ACK threshold has been seen: the window then
    /// grows on every delivery, SACKed or cumulative, since on such a path a hole below
    /// the SACKs is more likely late than lost (Linux `tcp_may_raise_cwnd`).
    pub fn deep_reordering(&self) -> bool {
        self.reordering > DUP_THRESH as u32
    }

    /// A retransmission timeout while SACKs covered at least three segments and no
    /// recovery ran: the reordering degree was overestimated (Linux `tcp_enter_loss`).
    pub fn on_timeout_in_disorder(&mut self) {
        self.reordering = self.reordering.min(DUP_THRESH as u32);
    }

    /// Takes the "moved since the last check" flag.
    pub fn take_advanced(&mut self) -> bool {
        std::mem::take(&mut self.advanced)
    }

    /// Section 6.2 step 4, on every ACK: a D-SACK grows the window once per round trip.
    pub fn update_reo_wnd(&mut self, snd_una: Seq, snd_nxt: Seq, dsack: bool) {
        if self.dsack_round.is_some_and(|r| snd_una.ge(r)) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() && dsack {
            self.dsack_round = Some(snd_nxt);
            self.reo_wnd_mult = (self.reo_wnd_mult + 1).min(MAX_REO_WND_MULT);
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// A fast or timeout recovery ended.
    pub fn on_recovery_exit(&mut self) {
        self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
        if self.reo_wnd_persist == 0 {
            self.reo_wnd_mult = 1;
        }
    }

    /// The multiplier of the reordering window.
    pub fn reo_wnd_mult(&self) -> u32 {
        self.reo_wnd_mult
    }

    /// `RACK.reo_wnd` (section 6.2 step 4).
    pub fn reo_wnd(&self, srtt: Duration, min_rtt: Duration, in_recovery: bool, sacked: usize, mss: usize) -> Duration {
        if !self.reordering_seen && (in_recovery || sacked >= DUP_THRESH * mss) {
            return Duration::ZERO;
        }
        (min_rtt / 4 * self.reo_wnd_mult).min(srtt)
    }

    /// `RACK_detect_loss` (section 6.2 step 5): marks lost every segment in flight sent
    /// before the most recently delivered one whose RTT plus `reo_wnd` has passed.
    /// Returns the bytes marked, how many of the segments marked were retransmissions,
    /// and, if some are still in doubt, when to look again.
    pub fn detect_loss(&mut self, now: Instant, q: &mut RtxQueue, reo_wnd: Duration) -> (usize, u64, Option<Duration>) {
        let Some((rx, rend)) = self.xmit else { return (0, 0, None) };
        let rtt = self.rtt;
        let mut wait = Duration::ZERO;
        let (lost, again) = q.detect(&mut |s| {
            if !sent_after(rx, rend, s.xmit, s.end) {
                return Verdict::Stop;
            }
            let deadline = s.xmit + rtt + reo_wnd;
            if deadline <= now {
                Verdict::Lost
            } else {
                wait = wait.max(deadline - now);
                Verdict::Wait
            }
        });
        (lost, again, (wait > Duration::ZERO).then_some(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::rate::TxState;

    fn t(us: i64) -> Instant {
        Instant::from_micros(us)
    }

    /// Segments of 100 bytes sent every 10 us from t = 0, RTT 1 ms.
    fn queue(n: u32) -> RtxQueue {
        let mut q = RtxQueue::new();
        for i in 0..n {
            q.on_transmit(
                t(i64::from(i) * 10),
                Seq(100 * i),
                Seq(100 * i + 100),
                Seq(100 * i),
                TxState::default(),
                false,
            );
        }
        q
    }

    fn deliver(r: &mut Rack, q: &mut RtxQueue, now: Instant, l: u32, right: u32) {
        q.sack(Seq(l), Seq(right), &mut |s| r.on_delivered(now, s, Some(Duration::from_millis(1))));
    }

    #[test]
    fn later_delivery_marks_earlier_lost_after_the_window() {
        let mut r = Rack::default();
        let mut q = queue(10);
        // Segment 5 is SACKed at 1.05 ms; 0..5 are sent before it and not delivered.
        deliver(&mut r, &mut q, t(1050), 500, 600);
        let reo = Duration::from_micros(250);
        let (lost, _, wait) = r.detect_loss(t(1050), &mut q, reo);
        assert_eq!(lost, 0, "within RTT + reo_wnd of their send times");
        // Segment 0 was sent at 0: deadline 0 + 1 ms + 0.25 ms; segment 4 at 1.29 ms.
        assert_eq!(wait, Some(Duration::from_micros(1290 - 1050)));
        let (lost, _, wait) = r.detect_loss(t(1290), &mut q, reo);
        assert_eq!((lost, wait), (500, None));
        assert_eq!(q.next_lost().map(|s| s.start), Some(Seq(0)));
    }

    #[test]
    fn reordering_window_zero_until_reordering_then_grows_with_dsack_rounds() {
        let mut r = Rack::default();
        let (srtt, min) = (Duration::from_millis(10), Duration::from_millis(8));
        assert_eq!(r.reo_wnd(srtt, min, false, 0, 1000), Duration::from_millis(2));
        assert_eq!(r.reo_wnd(srtt, min, true, 0, 1000), Duration::ZERO);
        assert_eq!(r.reo_wnd(srtt, min, false, 3000, 1000), Duration::ZERO);
        r.note_reordering(2);
        assert!(!r.deep_reordering(), "2 segments is within the duplicate-ACK threshold");
        assert_eq!(r.reo_wnd(srtt, min, true, 3000, 1000), Duration::from_millis(2));
        r.note_reordering(7);
        r.note_reordering(5);
        assert_eq!(r.reordering(), 7);
        assert!(r.deep_reordering());
        r.on_timeout_in_disorder();
        assert!(!r.deep_reordering());
        r.update_reo_wnd(Seq(0), Seq(5000), true);
        r.update_reo_wnd(Seq(1000), Seq(6000), true);
        assert_eq!(r.reo_wnd_mult(), 2, "one step per round trip");
        r.update_reo_wnd(Seq(5000), Seq(9000), true);
        assert_eq!(r.reo_wnd_mult(), 3);
        assert_eq!(r.reo_wnd(srtt, min, true, 0, 1000), Duration::from_millis(6));
        for _ in 0..3 {
            r.update_reo_wnd(Seq(9000), Seq(9000), true);
        }
        assert_eq!(r.reo_wnd_mult(), 6);
        assert_eq!(r.reo_wnd(srtt, min, true, 0, 1000), srtt, "capped at SRTT");
        for _ in 0..16 {
            r.on_recovery_exit();
        }
        assert_eq!(r.reo_wnd_mult(), 1, "16 recoveries without D-SACK");
    }

    #[test]
    fn an_early_ack_for_a_retransmission_does_not_move_rack() {
        let mut r = Rack::default();
        let mut q = queue(2);
        q.on_transmit(t(900), Seq(0), Seq(100), Seq(200), TxState::default(), false);
        // 0.2 ms after the retransmission: less than min RTT, so the original arrived.
        q.ack(Seq(100), &mut |s| r.on_delivered(t(1100), s, Some(Duration::from_millis(1))));
        assert!(!r.take_advanced());
        let (lost, _, _) = r.detect_loss(t(5000), &mut q, Duration::ZERO);
        assert_eq!(lost, 0, "nothing delivered that was sent after segment 1");
    }
}
