//! Congestion control, pluggable: NewReno (RFC 5681, RFC 6582) and CUBIC (RFC 9438).
//!
//! The connection owns loss detection and recovery (what to retransmit); a controller only
//! sizes the congestion window in bytes.

use core::fmt::Debug;

use smoltcp::time::{Duration, Instant};

/// A congestion controller.
pub trait CongestionControl: Debug {
    /// The congestion window in bytes.
    fn cwnd(&self) -> usize;
    /// The slow-start threshold in bytes.
    fn ssthresh(&self) -> usize;
    /// `acked` bytes newly acknowledged outside recovery; `flight` before the ACK.
    fn on_ack(&mut self, now: Instant, acked: usize, flight: usize, mss: usize, srtt: Option<Duration>);
    /// Loss detected by duplicate ACKs or SACK: entering fast recovery.
    fn on_congestion(&mut self, now: Instant, flight: usize, mss: usize);
    /// Recovery ended by a full acknowledgment.
    fn on_recovery_end(&mut self, now: Instant, mss: usize);
    /// The retransmission timer expired.
    fn on_rto(&mut self, now: Instant, flight: usize, mss: usize);
}

/// Which controller new connections get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CcAlgorithm {
    /// RFC 5681 / RFC 6582.
    #[default]
    NewReno,
    /// RFC 9438.
    Cubic,
}

impl CcAlgorithm {
    /// A controller with an initial window of `min(10 * mss, max(2 * mss, 14600))` (RFC 6928).
    pub fn build(self, mss: usize) -> Box<dyn CongestionControl> {
        let iw = (10 * mss).min((2 * mss).max(14600));
        match self {
            CcAlgorithm::NewReno => Box::new(NewReno::new(iw)),
            CcAlgorithm::Cubic => Box::new(Cubic::new(iw)),
        }
    }
}

/// NewReno: slow start, congestion avoidance with byte counting, halve on loss.
#[derive(Debug, Clone)]
pub struct NewReno {
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acknowledged since the last one-MSS increase in congestion avoidance.
    acc: usize,
}

impl NewReno {
    /// Starts with `iw` bytes.
    pub fn new(iw: usize) -> Self {
        NewReno { cwnd: iw, ssthresh: usize::MAX, acc: 0 }
    }
}

impl CongestionControl for NewReno {
    fn cwnd(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn on_ack(&mut self, _now: Instant, acked: usize, _flight: usize, mss: usize, _srtt: Option<Duration>) {
        if self.cwnd < self.ssthresh {
            // RFC 3465 with L = 2.
            self.cwnd += acked.min(2 * mss);
        } else {
            self.acc += acked;
            if self.acc >= self.cwnd {
                self.acc -= self.cwnd;
                self.cwnd += mss;
            }
        }
    }

    fn on_congestion(&mut self, _now: Instant, flight: usize, mss: usize) {
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = self.ssthresh;
        self.acc = 0;
    }

    fn on_recovery_end(&mut self, _now: Instant, _mss: usize) {
        self.cwnd = self.ssthresh;
    }

    fn on_rto(&mut self, _now: Instant, flight: usize, mss: usize) {
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = mss;
        self.acc = 0;
    }
}

/// CUBIC with the TCP-friendly region (RFC 9438), C = 0.4, beta = 0.7.
#[derive(Debug, Clone)]
pub struct Cubic {
    cwnd: usize,
    ssthresh: usize,
    w_max: f64,
    k: f64,
    epoch: Option<Instant>,
    /// Reno-equivalent window (bytes) for the friendly region.
    w_est: f64,
    acc: usize,
}

const CUBIC_C: f64 = 0.4;
const CUBIC_BETA: f64 = 0.7;

impl Cubic {
    /// Starts with `iw` bytes.
    pub fn new(iw: usize) -> Self {
        Cubic { cwnd: iw, ssthresh: usize::MAX, w_max: 0.0, k: 0.0, epoch: None, w_est: 0.0, acc: 0 }
    }

    fn reduce(&mut self, mss: usize) {
        let cwnd = self.cwnd as f64 / mss as f64;
        // Fast convergence.
        self.w_max = if cwnd < self.w_max { cwnd * (1.0 + CUBIC_BETA) / 2.0 } else { cwnd };
        self.ssthresh = ((self.cwnd as f64 * CUBIC_BETA) as usize).max(2 * mss);
        self.epoch = None;
        self.acc = 0;
    }
}

impl CongestionControl for Cubic {
    fn cwnd(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn on_ack(&mut self, now: Instant, acked: usize, _flight: usize, mss: usize, srtt: Option<Duration>) {
        if self.cwnd < self.ssthresh {
            self.cwnd += acked.min(2 * mss);
            return;
        }
        let m = mss as f64;
        let epoch = *self.epoch.get_or_insert_with(|| {
            let cwnd = self.cwnd as f64 / m;
            self.k = if self.w_max > cwnd { ((self.w_max - cwnd) / CUBIC_C).cbrt() } else { 0.0 };
            self.w_est = self.cwnd as f64;
            now
        });
        let rtt = srtt.map_or(0.1, |d| d.total_micros() as f64 / 1e6);
        let t = (now - epoch).total_micros() as f64 / 1e6 + rtt;
        let target = (CUBIC_C * (t - self.k).powi(3) + self.w_max.max(self.cwnd as f64 / m)) * m;
        // Reno-friendly estimate: alpha = 3(1-beta)/(1+beta) segments per RTT.
        let alpha = 3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA);
        self.w_est += alpha * m * acked as f64 / self.cwnd as f64;
        let target = target.max(self.w_est);
        if target > self.cwnd as f64 {
            // Grow by (target - cwnd) / cwnd per acked segment, at most 1.5x per RTT.
            let inc = ((target - self.cwnd as f64) / self.cwnd as f64 * acked as f64).min(acked as f64 / 2.0);
            self.acc += inc as usize;
            if self.acc > 0 {
                self.cwnd += self.acc;
                self.acc = 0;
            }
        }
    }

    fn on_congestion(&mut self, _now: Instant, _flight: usize, mss: usize) {
        self.reduce(mss);
        self.cwnd = self.ssthresh;
    }

    fn on_recovery_end(&mut self, _now: Instant, _mss: usize) {
        self.cwnd = self.ssthresh;
    }

    fn on_rto(&mut self, _now: Instant, _flight: usize, mss: usize) {
        self.reduce(mss);
        self.cwnd = mss;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newreno_slow_start_avoidance_and_loss() {
        let t = Instant::ZERO;
        let mut c = NewReno::new(10 * 1000);
        c.on_ack(t, 1000, 0, 1000, None);
        assert_eq!(c.cwnd(), 11_000);
        c.on_congestion(t, 20_000, 1000);
        assert_eq!((c.cwnd(), c.ssthresh()), (10_000, 10_000));
        for _ in 0..10 {
            c.on_ack(t, 1000, 0, 1000, None);
        }
        assert_eq!(c.cwnd(), 11_000, "one MSS per window in avoidance");
        c.on_rto(t, 4000, 1000);
        assert_eq!((c.cwnd(), c.ssthresh()), (1000, 2000));
    }

    #[test]
    fn cubic_reduces_by_beta_and_regrows() {
        let mut now = Instant::ZERO;
        let mut c = Cubic::new(100 * 1000);
        c.on_congestion(now, 100_000, 1000);
        assert_eq!(c.cwnd(), 70_000);
        for _ in 0..6000 {
            now += Duration::from_millis(1);
            c.on_ack(now, 1000, 0, 1000, Some(Duration::from_millis(10)));
        }
        assert!(c.cwnd() > 100_000, "{}", c.cwnd());
    }
}
