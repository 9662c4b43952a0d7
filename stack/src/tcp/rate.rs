//! Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation, as Linux's
//! `tcp_rate.c`): a rate sample on every ACK, the bytes the network delivered over the
//! time it took, for a model-based controller (BBR) to build its bandwidth model on.
//!
//! Each transmission remembers the connection's delivery state when it left ([`TxState`]:
//! bytes delivered so far, when the last delivery was, when the flight it belongs to
//! started, whether the sender was application-limited). When an ACK delivers segments
//! (cumulatively or by SACK), the most recently sent of them ([`Newest`]) gives the
//! sample: `delivered - its delivered` bytes over the longer of the send phase (its send
//! time since its flight's first send) and the ACK phase (now since the delivery it saw
//! last). The longer phase guards against ACK compression, which would make deliveries
//! look faster than the bottleneck can be. A sample shorter than the minimum RTT is not
//! valid (a retransmission answered by the original's ACK).
//!
//! A sample is *application-limited* if the sender ran out of data at some time while its
//! segments were in flight: it shows what the application offered, not what the path
//! can carry ([`Rate::check_app_limited`] marks it; it clears once the bubble is
//! delivered).
//!
//! Units are bytes (Linux counts segments) and microseconds.

use smoltcp::time::{Duration, Instant};

use super::rtx_queue::{Seg, APP_LIMITED};

/// What a transmission remembers of the delivery state (Linux `tcp_skb_cb.tx`), as
/// offsets back from its send time: 16 bytes in its retransmission-queue record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxState {
    /// Bytes delivered when it was sent (`tx.delivered`).
    pub delivered: u64,
    /// How long before it was sent the last delivery was (`tx.delivered_mstamp`), µs.
    delivered_ago: u32,
    /// How long before it was sent its flight's first send was (`tx.first_tx_mstamp`), µs.
    first_tx_ago: u32,
}

fn ago(now: Instant, then: Instant) -> u32 {
    (now - then).total_micros().min(u64::from(u32::MAX)) as u32
}

/// One rate sample (Linux `struct rate_sample`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateSample {
    /// Bytes delivered over `interval`, if the ACK delivered anything with a send record.
    pub delivered: Option<u64>,
    /// The sample's interval, if valid (not shorter than the minimum RTT).
    pub interval: Option<Duration>,
    /// Bytes delivered when the newest delivered segment was sent (`prior_delivered`).
    pub prior_delivered: u64,
    /// Whether the sender was application-limited while that segment was in flight.
    pub app_limited: bool,
    /// Bytes this ACK newly delivered (cumulatively or by SACK).
    pub acked_sacked: usize,
    /// Bytes this ACK newly marked lost (lost retransmissions included).
    pub losses: usize,
}

impl RateSample {
    /// The delivery rate in bytes per second, if the sample is valid.
    pub fn bw(&self) -> Option<u64> {
        let (d, i) = (self.delivered?, self.interval?);
        (i > Duration::ZERO).then(|| (u128::from(d) * 1_000_000 / u128::from(i.total_micros())) as u64)
    }
}

/// The most recently sent of the segments one ACK delivered: what its sample starts from.
#[derive(Debug, Clone, Copy)]
pub struct Newest {
    seen: Option<(u64, Instant)>,
    prior_at: Instant,
    send_phase: Duration,
    app_limited: bool,
}

impl Default for Newest {
    fn default() -> Self {
        Newest { seen: None, prior_at: Instant::ZERO, send_phase: Duration::ZERO, app_limited: false }
    }
}

impl Newest {
    /// Linux `tcp_rate_skb_delivered` for one newly delivered segment: keeps the one sent
    /// with the most delivered before it (and, among those, the last sent).
    pub fn note(&mut self, s: &Seg) {
        let key = (s.tx.delivered, s.xmit);
        if self.seen.is_some_and(|k| k >= key) {
            return;
        }
        self.seen = Some(key);
        self.prior_at = s.xmit - Duration::from_micros(u64::from(s.tx.delivered_ago));
        self.send_phase = Duration::from_micros(u64::from(s.tx.first_tx_ago));
        self.app_limited = s.has(APP_LIMITED);
    }
}

/// The connection's delivery state (Linux `tp->delivered`, `delivered_mstamp`,
/// `first_tx_mstamp`, `app_limited`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    delivered: u64,
    delivered_at: Instant,
    first_tx: Instant,
    /// While not 0: the sender ran out of data, and samples are application-limited until
    /// more than this many bytes are delivered.
    app_limited: u64,
    /// The last sample that was not application-limited, or the fastest since
    /// (`rate_delivered`, `rate_interval_us`, `rate_app_limited`).
    last: (u64, Duration, bool),
}

impl Default for Rate {
    fn default() -> Self {
        Rate::new()
    }
}

impl Rate {
    /// Nothing sent or delivered yet.
    pub const fn new() -> Rate {
        Rate {
            delivered: 0,
            delivered_at: Instant::ZERO,
            first_tx: Instant::ZERO,
            app_limited: 0,
            last: (0, Duration::ZERO, false),
        }
    }

    /// Bytes delivered so far (Linux `tp->delivered`).
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// When the last delivery was (Linux `tp->delivered_mstamp`).
    pub fn delivered_at(&self) -> Instant {
        self.delivered_at
    }

    /// Whether the sender is application-limited now.
    pub fn is_app_limited(&self) -> bool {
        self.app_limited != 0
    }

    /// The delivery rate of the last sample that was not application-limited (or a
    /// faster one since), bytes/s, and whether it was application-limited (Linux
    /// `tcpi_delivery_rate`).
    pub fn last_rate(&self) -> Option<(u64, bool)> {
        let (d, i, app) = self.last;
        (i > Duration::ZERO).then(|| ((u128::from(d) * 1_000_000 / u128::from(i.total_micros())) as u64, app))
    }

    /// Linux `tcp_rate_skb_sent`: the state a transmission at `now` records, and whether
    /// it leaves application-limited. `idle`: nothing was outstanding before it, so the
    /// next delivery measures this flight from now.
    pub fn on_send(&mut self, now: Instant, idle: bool) -> (TxState, bool) {
        if idle {
            self.first_tx = now;
            self.delivered_at = now;
        }
        let tx = TxState {
            delivered: self.delivered,
            delivered_ago: ago(now, self.delivered_at),
            first_tx_ago: ago(now, self.first_tx),
        };
        (tx, self.app_limited != 0)
    }

    /// Linux `tcp_rate_gen`, after an ACK that newly delivered `acked` bytes (the newest of
    /// them `newest`) and newly marked `lost` bytes lost: the sample. `min_rtt` bounds
    /// the interval from below.
    pub fn on_ack(
        &mut self,
        now: Instant,
        newest: &Newest,
        acked: usize,
        lost: usize,
        min_rtt: Option<Duration>,
    ) -> RateSample {
        self.delivered += acked as u64;
        if self.app_limited != 0 && self.delivered > self.app_limited {
            self.app_limited = 0;
        }
        if acked > 0 {
            self.delivered_at = now;
        }
        let mut rs = RateSample { acked_sacked: acked, losses: lost, ..RateSample::default() };
        let Some((prior, xmit)) = newest.seen else { return rs };
        // The next sample's send phase starts at the newest segment delivered.
        self.first_tx = xmit;
        rs.prior_delivered = prior;
        rs.app_limited = newest.app_limited;
        let delivered = self.delivered - prior;
        rs.delivered = Some(delivered);
        let interval = newest.send_phase.max(now - newest.prior_at);
        if min_rtt.is_some_and(|m| interval < m) {
            return rs;
        }
        rs.interval = Some(interval);
        let (d, i, _) = self.last;
        if !rs.app_limited
            || u128::from(delivered) * u128::from(i.total_micros())
                >= u128::from(d) * u128::from(interval.total_micros())
        {
            self.last = (delivered, interval, rs.app_limited);
        }
        rs
    }

    /// Marks the sender application-limited until what is in flight now is delivered (BBR
    /// in ProbeRTT, whose low rate says nothing about the path).
    pub fn mark_app_limited(&mut self, in_flight: usize) {
        self.app_limited = (self.delivered + in_flight as u64).max(1);
    }

    /// Linux `tcp_rate_check_app_limited`, when less than a segment is left to send: the
    /// sender is application-limited if the window does not limit it (`in_flight <
    /// cwnd`) and every loss has a retransmission in flight (`lost <= retrans`). Samples
    /// are then marked until what is in flight now is delivered.
    pub fn check_app_limited(&mut self, in_flight: usize, cwnd: usize, lost: usize, retrans: usize) {
        if in_flight < cwnd && lost <= retrans {
            self.app_limited = (self.delivered + in_flight as u64).max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::rtx_queue::RtxQueue;
    use crate::wire::Seq;

    fn ms(n: i64) -> Instant {
        Instant::from_millis(n)
    }

    /// Sends `[start, start + len)` at `t` through the queue and the rate state.
    fn send(q: &mut RtxQueue, r: &mut Rate, t: Instant, start: u32, len: u32, snd_max: u32) {
        let (tx, app) = r.on_send(t, q.is_empty());
        q.on_transmit(t, Seq(start), Seq(start + len), Seq(snd_max), tx, app);
    }

    /// A cumulative ACK to `una` at `t`; the sample.
    fn ack(q: &mut RtxQueue, r: &mut Rate, t: Instant, una: u32, min_rtt: u64) -> RateSample {
        let mut n = Newest::default();
        let mut acked = 0;
        q.ack(Seq(una), &mut |s| {
            n.note(s);
            acked += s.len();
        });
        r.on_ack(t, &n, acked, 0, Some(Duration::from_millis(min_rtt)))
    }

    #[test]
    fn a_flight_sampled_over_its_ack_phase() {
        // Ten 1000-byte segments at 0, 1, ..., 9 ms; the network delivers one per 2 ms:
        // the ACKs come at 20, 22, ..., 38 ms.
        let (mut q, mut r) = (RtxQueue::new(), Rate::new());
        for i in 0..10 {
            send(&mut q, &mut r, ms(i), 1000 * i as u32, 1000, 1000 * i as u32);
        }
        let first = ack(&mut q, &mut r, ms(20), 1000, 10);
        // The first segment left with nothing delivered and nothing outstanding: 1000 B
        // over max(send phase 0, ACK phase 20 ms).
        assert_eq!((first.delivered, first.interval), (Some(1000), Some(Duration::from_millis(20))));
        assert_eq!(first.bw(), Some(50_000));
        let second = ack(&mut q, &mut r, ms(22), 2000, 10);
        // Segment 1 left at 1 ms, its flight started at 0 and the last delivery was at 0:
        // 2000 B delivered since over max(1 ms, 22 ms).
        assert_eq!((second.delivered, second.interval), (Some(2000), Some(Duration::from_millis(22))));
        // New data after the first ACKs: sent at 23 ms, when 2000 B were delivered and the
        // last delivery was at 22 ms; its flight's first send is segment 1's (1 ms).
        send(&mut q, &mut r, ms(23), 10_000, 1000, 10_000);
        for (i, t) in (3..=10).zip([24, 26, 28, 30, 32, 34, 36, 38]) {
            ack(&mut q, &mut r, ms(t), 1000 * i, 10);
        }
        let s = ack(&mut q, &mut r, ms(43), 11_000, 10);
        // 11000 - 2000 = 9000 B over max(23 - 1 = 22 ms, 43 - 22 = 21 ms).
        assert_eq!((s.delivered, s.interval, s.prior_delivered), (Some(9000), Some(Duration::from_millis(22)), 2000));
        assert_eq!(s.bw(), Some(409_090));
        assert_eq!(r.delivered(), 11_000);
    }

    #[test]
    fn the_newest_of_an_acks_segments_gives_the_sample_and_short_ones_are_invalid() {
        let (mut q, mut r) = (RtxQueue::new(), Rate::new());
        send(&mut q, &mut r, ms(0), 0, 1000, 0);
        send(&mut q, &mut r, ms(5), 1000, 1000, 1000);
        // One SACK of the second, then the cumulative ACK of both.
        let mut n = Newest::default();
        q.sack(Seq(1000), Seq(2000), &mut |s| n.note(s));
        let s = r.on_ack(ms(15), &n, 1000, 0, Some(Duration::from_millis(10)));
        // Sent at 5 ms with nothing delivered; the flight began at 0: 1000 B over 15 ms.
        assert_eq!((s.delivered, s.interval), (Some(1000), Some(Duration::from_millis(15))));
        let s = ack(&mut q, &mut r, ms(16), 2000, 10);
        // Only the first is new; it was sent with 0 delivered at 0 ms, but this ACK's
        // newest segment is it: 2000 B over max(0, 16 ms).
        assert_eq!((s.delivered, s.interval), (Some(2000), Some(Duration::from_millis(16))));
        // After idle, a segment sent at 20 ms and again at 21 ms, its ACK at 25 ms: 5 ms
        // since the flight began, less than the minimum RTT (the original's ACK).
        send(&mut q, &mut r, ms(20), 2000, 1000, 2000);
        send(&mut q, &mut r, ms(21), 2000, 1000, 3000);
        let s = ack(&mut q, &mut r, ms(25), 3000, 10);
        assert_eq!((s.delivered, s.interval, s.bw()), (Some(1000), None, None));
        // An ACK that delivers nothing new has no sample.
        let s = ack(&mut q, &mut r, ms(43), 3000, 10);
        assert_eq!((s.delivered, s.acked_sacked), (None, 0));
    }

    #[test]
    fn samples_are_application_limited_until_the_bubble_is_delivered() {
        let (mut q, mut r) = (RtxQueue::new(), Rate::new());
        send(&mut q, &mut r, ms(0), 0, 1000, 0);
        send(&mut q, &mut r, ms(0), 1000, 1000, 1000);
        // Nothing more to send with 2000 B in flight, the window not full.
        r.check_app_limited(2000, 10_000, 0, 0);
        assert!(r.is_app_limited());
        send(&mut q, &mut r, ms(1), 2000, 1000, 2000);
        assert!(!ack(&mut q, &mut r, ms(20), 2000, 10).app_limited, "sent before the bubble");
        let s = ack(&mut q, &mut r, ms(21), 3000, 10);
        assert!(s.app_limited, "sent inside the bubble");
        assert!(!r.is_app_limited(), "3000 delivered > 2000: the bubble is gone");
        // The window full, or a loss not yet retransmitted: not application-limited.
        r.check_app_limited(10_000, 10_000, 0, 0);
        r.check_app_limited(0, 10_000, 1000, 0);
        assert!(!r.is_app_limited());
        // The last rate: 2000 B in 20 ms, then replaced by the faster application-limited
        // sample, 3000 B in 21 ms.
        assert_eq!(r.last_rate(), Some((142_857, true)));
    }
}
