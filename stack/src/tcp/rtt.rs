//! Round-trip time estimation and the retransmission timeout (RFC 6298).

use smoltcp::time::Duration;

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
}

impl RttEstimator {
    /// Initial RTO 1 s (RFC 6298 2.1), clamped to `[min_rto, max_rto]`.
    pub fn new(initial: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator { srtt: None, rttvar: Duration::ZERO, rto: initial, min_rto, max_rto, backoff: 0 }
    }

    /// Smoothed RTT, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Feeds one RTT measurement (RFC 6298 2.2, 2.3).
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
        let k = Duration::from_micros(4 * self.rttvar.total_micros()).max(GRANULARITY);
        self.rto = (srtt + k).max(self.min_rto).min(self.max_rto);
    }

    /// The current timeout, backoff included.
    pub fn rto(&self) -> Duration {
        let shifted = self.rto.total_micros().saturating_mul(1u64 << self.backoff.min(20));
        Duration::from_micros(shifted).min(self.max_rto)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6298_arithmetic_and_backoff() {
        let ms = Duration::from_millis;
        let mut r = RttEstimator::new(ms(1000), ms(200), ms(60_000));
        assert_eq!(r.rto(), ms(1000));
        r.sample(ms(100));
        // srtt 100, rttvar 50 -> 100 + 200 = 300
        assert_eq!(r.rto(), ms(300));
        r.sample(ms(100));
        // rttvar = 3/4*50 = 37.5 -> rto = 100 + 150 = 250
        assert_eq!(r.rto(), ms(250));
        r.backoff();
        r.backoff();
        assert_eq!(r.rto(), ms(1000));
        r.reset_backoff();
        for _ in 0..50 {
            r.sample(ms(1));
        }
        assert_eq!(r.rto(), ms(200), "clamped to min_rto");
        for _ in 0..40 {
            r.backoff();
        }
        assert_eq!(r.rto(), ms(60_000), "clamped to max_rto");
    }
}
