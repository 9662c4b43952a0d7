//! Round-trip time estimation and the retransmission timeout (RFC 6298), with the
//! minimum and backoff Linux uses, and the windowed minimum RTT that RACK (RFC 8985) and
//! HyStart++ (RFC 9406) read.
//!
//! RFC 6298 gives `RTO = SRTT + max(G, 4 * RTTVAR)`, at least 1 s. Linux floors the
//! variance term instead of the sum: `RTO = SRTT + max(4 * RTTVAR, rto_min)` with
//! `rto_min` = 200 ms (`tcp_set_rto`, `tcp_rto_min`), so the timeout never comes within
//! 200 ms of the smoothed RTT however steady the path is; it backs off exponentially up to
//! 120 s (`TCP_RTO_MAX`). We do the same. Samples come from the send time of each segment
//! (microseconds, Karn's rule), as Linux takes them, not from the 1 ms timestamp option.

use smoltcp::time::{Duration, Instant};

use super::minmax::MinMax;

/// Clock granularity G of RFC 6298.
const GRANULARITY: Duration = Duration::from_millis(1);

/// SRTT/RTTVAR estimator with exponential backoff.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    backoff: u32,
    min_rtt: WindowedMin,
}

/// How long a minimum RTT sample stays valid (Linux `tcp_min_rtt_wlen`: 300 s).
const MIN_RTT_WINDOW: Duration = Duration::from_secs(300);

impl RttEstimator {
    /// `initial` before the first sample (RFC 6298 2.1: 1 s), clamped to `max_rto`.
    pub fn new(initial: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial.min(max_rto),
            min_rto,
            max_rto,
            backoff: 0,
            min_rtt: WindowedMin::default(),
        }
    }

    /// Smoothed RTT, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The RTT variation (RFC 6298 RTTVAR; zero before the first sample).
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// The smallest RTT seen over the last 300 s, once measured.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt.get()
    }

    /// Feeds one RTT measurement for SRTT and RTTVAR (RFC 6298 2.2, 2.3).
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = Duration::from_micros(rtt.total_micros() / 2);
            }
            Some(srtt) => {
                let (s, v, r) =
                    (srtt.total_micros() as i64, self.rttvar.total_micros() as i64, rtt.total_micros() as i64);
                let v = (3 * v + (s - r).abs()) / 4;
                let s = (7 * s + r) / 8;
                self.rttvar = Duration::from_micros(v as u64);
                self.srtt = Some(Duration::from_micros(s as u64));
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        let var = Duration::from_micros(4 * self.rttvar.total_micros()).max(GRANULARITY).max(self.min_rto);
        self.rto = (srtt + var).min(self.max_rto);
    }

    /// Feeds the RTT of the most recently sent segment an ACK delivered (Linux `ca_rtt`)
    /// to the windowed minimum.
    pub fn sample_min(&mut self, now: Instant, rtt: Duration) {
        self.min_rtt.update(now, rtt, MIN_RTT_WINDOW);
    }

    /// The current timeout, backoff included.
    pub fn rto(&self) -> Duration {
        let shifted = self.rto.total_micros().saturating_mul(1u64 << self.backoff.min(20));
        Duration::from_micros(shifted).min(self.max_rto)
    }

    /// The time backed-off timeouts `1..n` take together (the timeout with backoff 1,
    /// then 2, ...): how long ago the first of `n` consecutive expiries fired, with no
    /// clock kept for it.
    pub fn backed_off_time(&self, n: u32) -> Duration {
        let (base, cap) = (self.rto.total_micros(), self.max_rto.total_micros());
        let total = (1..n).map(|k| base.saturating_mul(1u64 << k.min(20)).min(cap)).fold(0u64, u64::saturating_add);
        Duration::from_micros(total)
    }

    /// Doubles the timeout after an expiry (RFC 6298 5.5).
    pub fn backoff(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Clears the backoff when new data are acknowledged.
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }
}

/// A running minimum over a time window ([`MinMax`]) of RTTs in microseconds (`u32`),
/// at times in microseconds of the clock: 40 bytes, in every connection (the window is
/// the caller's, passed in, so it takes no room here).
#[derive(Debug, Clone)]
pub struct WindowedMin(MinMax<u32>);

impl Default for WindowedMin {
    fn default() -> Self {
        WindowedMin(MinMax::new(0, u32::MAX))
    }
}

impl WindowedMin {
    /// The minimum, once sampled.
    pub fn get(&self) -> Option<Duration> {
        let v = self.0.get();
        (v != u32::MAX).then(|| Duration::from_micros(u64::from(v)))
    }

    /// Adds a sample taken at `now` to the minimum over `window` (at most about 71 minutes).
    pub fn update(&mut self, now: Instant, v: Duration, window: Duration) {
        let v = v.total_micros().min(u64::from(u32::MAX - 1)) as u32;
        let w = window.total_micros().min(u64::from(u32::MAX)) as i64;
        self.0.running_min(w, now.total_micros(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6298_arithmetic_with_linux_floor_and_backoff() {
        let ms = Duration::from_millis;
        let mut r = RttEstimator::new(ms(1000), ms(200), ms(120_000));
        assert_eq!(r.rto(), ms(1000));
        r.sample(ms(100));
        // srtt 100, rttvar 50 -> 100 + max(200, 200) = 300
        assert_eq!(r.rto(), ms(300));
        r.sample(ms(100));
        // rttvar = 3/4 * 50 = 37.5 -> 4 * rttvar = 150, floored at 200 -> 300
        assert_eq!(r.rto(), ms(300));
        r.sample(ms(400));
        // rttvar = (3 * 37.5 + 300) / 4 = 103.1; srtt = 137.5 -> 137.5 + 412.5 = 550
        assert_eq!(r.rto(), ms(550));
        r.backoff();
        r.backoff();
        assert_eq!(r.rto(), ms(2200));
        r.reset_backoff();
        for _ in 0..80 {
            r.sample(ms(1));
        }
        assert_eq!(r.rto(), ms(201), "the variance term is floored at min_rto, above srtt");
        for _ in 0..40 {
            r.backoff();
        }
        assert_eq!(r.rto(), ms(120_000), "clamped to max_rto");
    }

    #[test]
    fn windowed_min_ages_out() {
        let ms = Duration::from_millis;
        let t = |s: u64| Instant::from_millis(s as i64);
        let mut m = WindowedMin::default();
        assert_eq!(m.get(), None);
        m.update(t(0), ms(10), ms(1000));
        m.update(t(100), ms(20), ms(1000));
        m.update(t(600), ms(30), ms(1000));
        assert_eq!(m.get(), Some(ms(10)));
        m.update(t(1100), ms(40), ms(1000));
        // The 10 ms sample left the window; the 20 ms one came too early to be kept as a
        // second choice (a quarter window had not passed), the 30 ms one was.
        assert_eq!(m.get(), Some(ms(30)));
        m.update(t(1200), ms(5), ms(1000));
        assert_eq!(m.get(), Some(ms(5)));
    }
}
