//! Pacing, as Linux's internal TCP pacing does it (`tcp_internal_pacing`, the
//! earliest-departure-time model): a connection has a pacing rate and the earliest time
//! its next data segment may leave; a segment leaves only once that time has come, and
//! each one sent moves it on by `len / rate`. Until then the connection waits for that
//! time in the stack's timer wheel (`Conn::next_deadline`).
//!
//! Linux sends a TSO packet of up to `tcp_tso_autosize` bytes (about 1 ms of data at the
//! pacing rate, at least two segments, at most one 64 KiB GSO packet) per departure. We
//! have no TSO, so a departure is a *burst* of segments of the same size: at one instant
//! (one turn of the stack) segments may leave until the burst's quantum is used, and the
//! next departure is then `quantum / rate` later. A bulk sender is thus woken once per
//! quantum, not once per segment. A sender that wakes late makes up at most half a
//! quantum of the time lost (Linux's allowance for OS jitter), so the average holds to
//! the rate and a late wake never turns into a line-rate burst.
//!
//! The first ten data segments are not paced (as `sch_fq` and Linux do), nor is anything
//! before an RTT is known. The default rate, for loss-based controllers, is Linux's
//! `tcp_update_pacing_rate`: `max(cwnd, outstanding) / srtt`, times 2 in slow start
//! (below half of `ssthresh`) and 1.2 after. A model-based controller (BBR) sets its own.

use smoltcp::time::{Duration, Instant};

/// Data segments sent before pacing starts.
const UNPACED_SEGS: u8 = 10;
/// The largest burst (Linux's TSO autosizing stops at a 64 KiB GSO packet).
pub const MAX_QUANTUM: usize = 64 << 10;
/// `net.ipv4.tcp_pacing_ss_ratio` and `tcp_pacing_ca_ratio`, percent.
const SS_RATIO: u64 = 200;
const CA_RATIO: u64 = 120;

/// The bytes one departure may send at `rate` bytes/s: about 1 ms of data (`rate >> 10`,
/// as Linux's `sk_pacing_shift`), at most [`MAX_QUANTUM`], at least two segments.
pub fn quantum(rate: u64, mss: usize) -> usize {
    ((rate >> 10).min(MAX_QUANTUM as u64) as usize).max(2 * mss)
}

/// Linux's `tcp_update_pacing_rate` in bytes per second, or 0 (no pacing) before an RTT
/// is known.
pub fn default_rate(cwnd: usize, ssthresh: usize, outstanding: usize, srtt: Option<Duration>) -> u64 {
    let Some(srtt) = srtt else { return 0 };
    let ratio = if cwnd < ssthresh / 2 { SS_RATIO } else { CA_RATIO };
    // bytes * ratio / 100 per srtt_us / 1e6 seconds.
    (cwnd.max(outstanding) as u64).saturating_mul(ratio * 10_000) / srtt.total_micros().max(1)
}

/// The pacing state of a sending connection (24 bytes, in its loss-recovery state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pacer {
    /// Earliest departure of the next burst, nanoseconds of the clock.
    next_ns: i64,
    /// The burst under way: the instant it left at (µs) and the bytes it may still send.
    burst_at: i64,
    burst_left: u32,
    /// Data segments sent, up to [`UNPACED_SEGS`].
    sent: u8,
    /// Data waits for the next departure: the connection's timer is due then.
    armed: bool,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

impl Pacer {
    /// Nothing sent yet.
    pub const fn new() -> Pacer {
        Pacer { next_ns: i64::MIN, burst_at: i64::MIN, burst_left: 0, sent: 0, armed: false }
    }

    /// Whether a data segment may leave at `now`.
    pub fn may_send(&self, now: Instant) -> bool {
        let us = now.total_micros();
        self.sent < UNPACED_SEGS
            || self.next_ns <= us.saturating_mul(1000)
            || (self.burst_at == us && self.burst_left > 0)
    }

    /// When the next burst may leave (rounded up to the clock's microsecond).
    pub fn next_departure(&self) -> Instant {
        Instant::from_micros(self.next_ns.div_euclid(1000) + i64::from(self.next_ns.rem_euclid(1000) != 0))
    }

    /// Data was held back: wake the connection at the next departure.
    pub fn arm(&mut self) {
        self.armed = true;
    }

    /// When the connection must be woken for a departure, if data waits for one.
    pub fn wake_at(&self) -> Option<Instant> {
        self.armed.then(|| self.next_departure())
    }

    /// Disarms the wake-up if it is due at `now`.
    pub fn take_wake(&mut self, now: Instant) {
        if self.armed && self.next_departure() <= now {
            self.armed = false;
        }
    }

    /// How long after `now` the next burst may leave (zero if it may now): what is
    /// already committed to the pacing queue, for a controller that looks at it (BBR).
    pub fn backlog(&self, now: Instant) -> Duration {
        let ahead = self.next_ns.saturating_sub(now.total_micros().saturating_mul(1000));
        Duration::from_micros((ahead.max(0) / 1000) as u64)
    }

    /// A data segment of `len` payload bytes left at `now`, paced at `rate` bytes/s (0:
    /// unpaced) with send MSS `mss`.
    pub fn on_sent(&mut self, now: Instant, len: usize, rate: u64, mss: usize) {
        self.armed = false;
        let us = now.total_micros();
        let now_ns = us.saturating_mul(1000);
        if self.sent < UNPACED_SEGS || rate == 0 {
            // The pacing clock starts from the last unpaced segment, with no lateness.
            self.sent = self.sent.saturating_add(1).min(UNPACED_SEGS);
            self.next_ns = self.next_ns.max(now_ns);
            return;
        }
        if self.burst_at != us || self.burst_left == 0 {
            // A new departure: up to half a quantum of lateness is made up.
            let q = quantum(rate, mss);
            let half = (q as u64 * 500_000_000 / rate) as i64;
            self.next_ns = self.next_ns.max(now_ns - half);
            self.burst_at = us;
            self.burst_left = q as u32;
        }
        self.burst_left = self.burst_left.saturating_sub(len as u32);
        self.next_ns = self.next_ns.saturating_add((len as u64 * 1_000_000_000 / rate) as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rate_is_linuxs() {
        let ms = Duration::from_millis;
        assert_eq!(default_rate(100_000, usize::MAX, 0, None), 0, "no RTT yet: unpaced");
        // Slow start: 2 x 100 kB / 10 ms = 20 MB/s.
        assert_eq!(default_rate(100_000, usize::MAX, 0, Some(ms(10))), 20_000_000);
        // At or above half of ssthresh: 1.2 x.
        assert_eq!(default_rate(100_000, 200_000, 0, Some(ms(10))), 12_000_000);
        // In recovery the window may be small; what is outstanding keeps the rate.
        assert_eq!(default_rate(10_000, 20_000, 100_000, Some(ms(10))), 12_000_000);
    }

    #[test]
    fn quantum_is_a_millisecond_within_two_segments_and_64k() {
        assert_eq!(quantum(10_240_000, 1448), 10_000);
        assert_eq!(quantum(1_000_000, 1448), 2896);
        assert_eq!(quantum(1 << 40, 1448), MAX_QUANTUM);
    }

    /// A sender with data always ready, woken at each departure (or `late` after it).
    fn bulk(late: Duration) -> Vec<(Instant, usize)> {
        let (rate, mss) = (50_000_000u64, 1448);
        let mut p = Pacer::new();
        let mut now = Instant::from_millis(5);
        let mut log = Vec::new();
        while log.len() < 20_000 {
            while p.may_send(now) {
                p.on_sent(now, mss, rate, mss);
                log.push((now, mss));
            }
            now = p.next_departure().max(now + Duration::from_micros(1)) + late;
        }
        log
    }

    /// What leaves between any two instants is at most the rate times the time between,
    /// plus one quantum and one segment (and half a quantum more when wakes are late); the
    /// average holds to the rate; a wake sends a quantum, not a segment.
    #[test]
    fn bulk_departures_hold_to_the_rate_within_a_quantum() {
        let (rate, mss) = (50_000_000u64, 1448);
        let q = quantum(rate, mss);
        for late in [Duration::ZERO, Duration::from_micros(7), Duration::from_micros(400)] {
            let log = bulk(late);
            let mut wakes = 0;
            for (i, &(t0, _)) in log.iter().enumerate().skip(10) {
                if log[i - 1].0 != t0 {
                    wakes += 1;
                }
                let mut bytes = 0;
                for &(t1, len) in &log[i..] {
                    bytes += len;
                    // A late wake may make up half a quantum.
                    let credit = if late == Duration::ZERO { 0 } else { q / 2 };
                    let allowed = (rate as f64 * (t1 - t0).total_micros() as f64 / 1e6) as usize + q + credit + mss;
                    assert!(bytes <= allowed, "late {late}: {bytes} B from {t0} to {t1}, allowed {allowed}");
                    if (t1 - t0) > Duration::from_millis(3) {
                        break;
                    }
                }
            }
            let (first, last) = (log[10].0, log[log.len() - 1].0);
            let avg = (log.len() - 11) as f64 * mss as f64 / ((last - first).total_micros() as f64 / 1e6);
            assert!((avg / rate as f64 - 1.0).abs() < 0.05, "late {late}: average {avg:.0} B/s for {rate}");
            // One wake per quantum, not per segment.
            assert!(wakes * (q / mss) <= log.len() + q / mss, "late {late}: {wakes} wakes for {} segments", log.len());
        }
    }

    #[test]
    fn the_first_ten_segments_and_an_unknown_rate_are_not_paced() {
        let mut p = Pacer::new();
        let now = Instant::from_millis(1);
        for _ in 0..UNPACED_SEGS {
            assert!(p.may_send(now));
            p.on_sent(now, 1448, 1_000_000, 1448);
        }
        for _ in 0..100 {
            assert!(p.may_send(now));
            p.on_sent(now, 1448, 0, 1448);
        }
        // Then a burst of one quantum (two segments at 1 MB/s), and a wait of 2.9 ms.
        p.on_sent(now, 1448, 1_000_000, 1448);
        assert!(p.may_send(now));
        p.on_sent(now, 1448, 1_000_000, 1448);
        assert!(!p.may_send(now));
        assert_eq!(p.next_departure(), now + Duration::from_micros(2896));
        assert_eq!(p.wake_at(), None);
        p.arm();
        assert_eq!(p.wake_at(), Some(now + Duration::from_micros(2896)));
        p.take_wake(now);
        assert!(p.wake_at().is_some(), "not due yet");
        p.take_wake(p.next_departure());
        assert_eq!(p.wake_at(), None);
        assert!(p.may_send(p.next_departure()));
    }
}
