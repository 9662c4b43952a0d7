//! Congestion control, pluggable: CUBIC (RFC 9438, the default, as in Linux) and NewReno
//! (RFC 5681, RFC 6582), both with HyStart++ (RFC 9406) in their first slow start, and
//! BBR (`bbr.rs`, v1 as Linux's `tcp_bbr.c`).
//!
//! The connection owns loss detection and recovery (what to retransmit). A loss-based
//! controller sizes the congestion window in bytes outside recovery (PRR sets it during
//! fast recovery), sets `ssthresh` on a congestion event, and restores its state when
//! the event proves spurious (RFC 9438 section 4.9; Linux `undo_cwnd`). A model-based
//! controller (BBR; in Linux, one with `cong_control`) sets the window and the pacing rate
//! itself on every ACK, recovery included, from the delivery-rate sample
//! ([`AckSample`]).

use core::fmt::Debug;

use smoltcp::time::{Duration, Instant};

use super::bbr::{Bbr, BbrInfo};
use super::conn::CaState;
use super::hystart::{HyStart, SsAck, SsEvent};
use super::rate::RateSample;
use crate::wire::Seq;

/// One ACK outside recovery, as a controller sees it.
#[derive(Debug, Clone, Copy)]
pub struct AckInfo {
    /// When it arrived.
    pub now: Instant,
    /// Bytes it newly delivered (cumulatively acknowledged or SACKed).
    pub acked: usize,
    /// Send MSS.
    pub mss: usize,
    /// Smoothed RTT.
    pub srtt: Option<Duration>,
    /// The RTT of the most recently sent segment it delivered, if it gave a sample.
    pub rtt: Option<Duration>,
    /// The cumulative ACK.
    pub ack: Seq,
    /// `SND.NXT`.
    pub snd_nxt: Seq,
    /// Whether the window limited sending lately (RFC 7661): if not, it does not grow.
    pub cwnd_limited: bool,
}

/// One ACK as a model-based controller sees it: the rate sample and the connection's
/// state after the ACK (what Linux's `cong_control` reads from the socket).
#[derive(Debug, Clone, Copy)]
pub struct AckSample {
    /// When it arrived.
    pub now: Instant,
    /// Send MSS.
    pub mss: usize,
    /// Its delivery-rate sample.
    pub rs: RateSample,
    /// Bytes delivered so far, this ACK's included (Linux `tp->delivered`).
    pub delivered: u64,
    /// When the last delivery was (`tp->delivered_mstamp`).
    pub delivered_at: Instant,
    /// Bytes ever marked lost (`tp->lost`).
    pub lost: u64,
    /// Bytes in flight now (RFC 6675 pipe), and before the ACK.
    pub in_flight: usize,
    /// Bytes in flight before the ACK (`rs->prior_in_flight`).
    pub prior_in_flight: usize,
    /// The RTT of the most recently sent segment it delivered, if it gave a sample.
    pub rtt: Option<Duration>,
    /// The connection's windowed minimum RTT and smoothed RTT.
    pub min_rtt: Option<Duration>,
    /// Smoothed RTT.
    pub srtt: Option<Duration>,
    /// Where loss recovery stands after the ACK.
    pub ca: CaState,
    /// How far ahead of now pacing has already scheduled the next departure.
    pub pacing_backlog: Duration,
}

/// What one ACK changed in a model-based controller's state, for the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelEvents {
    /// Startup found the pipe full (the bandwidth stopped growing).
    pub pipe_full: bool,
    /// ProbeRTT began.
    pub probe_rtt: bool,
    /// A token-bucket policer was detected: it paces at the policed rate for a while.
    pub policer: bool,
}

impl AckInfo {
    fn ss(&self) -> SsAck {
        SsAck { acked: self.acked, mss: self.mss, rtt: self.rtt, ack: self.ack, snd_nxt: self.snd_nxt }
    }
}

/// A congestion controller.
pub trait CongestionControl: Debug {
    /// The congestion window in bytes.
    fn cwnd(&self) -> usize;
    /// The slow-start threshold in bytes.
    fn ssthresh(&self) -> usize;
    /// An ACK outside recovery; says what slow start did.
    fn on_ack(&mut self, a: &AckInfo) -> SsEvent;
    /// Loss detected (fast recovery begins) or repaired by a loss probe: reduce.
    /// `flight` is the data outstanding.
    fn on_congestion(&mut self, now: Instant, flight: usize, mss: usize);
    /// Recovery ended: the window becomes `ssthresh`.
    fn on_recovery_end(&mut self, now: Instant, mss: usize);
    /// The retransmission timer expired: one segment of window. `reduce` is false when
    /// `ssthresh` was already set for this episode (a timeout during recovery, or a
    /// repeated timeout).
    fn on_rto(&mut self, now: Instant, flight: usize, mss: usize, reduce: bool);
    /// The last reduction was spurious: restore the state from before it.
    fn undo(&mut self);
    /// Whether in slow start.
    fn in_slow_start(&self) -> bool {
        self.cwnd() < self.ssthresh()
    }
    /// Whether it sets the window on every ACK itself, recovery included ([`Self::on_sample`]
    /// instead of [`Self::on_ack`] and PRR; Linux: a controller with `cong_control`).
    fn model_based(&self) -> bool {
        false
    }
    /// Every ACK of data in flight, for a model-based controller; returns what changed in
    /// its model, for the counters.
    fn on_sample(&mut self, _s: &AckSample) -> ModelEvents {
        ModelEvents::default()
    }
    /// Whether the connection is to mark itself application-limited now (BBR in
    /// ProbeRTT: its low rate says nothing about the path).
    fn wants_app_limited(&self) -> bool {
        false
    }
    /// The pacing rate it sets, bytes/s; `None`: the connection's default.
    fn pacing_rate(&self) -> Option<u64> {
        None
    }
    /// Data leaves with nothing in flight (Linux `CA_EVENT_TX_START`); `app_limited`:
    /// the sender had run out of data, so it restarts from idle.
    fn on_tx_start(&mut self, _now: Instant, _app_limited: bool) {}
    /// BBR's model, if this is BBR.
    fn bbr_info(&self) -> Option<BbrInfo> {
        None
    }
}

/// Which controller new connections get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CcAlgorithm {
    /// RFC 5681 / RFC 6582.
    NewReno,
    /// RFC 9438 (Linux's default).
    #[default]
    Cubic,
    /// BBR v1 (Linux's `tcp_bbr`): paces at its model of the bottleneck bandwidth and
    /// sizes the window from it and the minimum RTT; random loss does not slow it.
    Bbr,
}

impl CcAlgorithm {
    /// A controller with an initial window of `min(10 * mss, max(2 * mss, 14600))` (RFC 6928),
    /// with HyStart++ in its first slow start when `hystart` (loss-based ones). `seed`
    /// varies what a controller randomizes (BBR's first gain-cycle phase) by connection.
    pub fn build(self, mss: usize, hystart: bool, seed: u32) -> Box<dyn CongestionControl> {
        let iw = (10 * mss).min((2 * mss).max(14600));
        match self {
            CcAlgorithm::NewReno => Box::new(NewReno::new(iw, hystart)),
            CcAlgorithm::Cubic => Box::new(Cubic::new(iw, hystart)),
            CcAlgorithm::Bbr => Box::new(Bbr::new(iw, mss, seed)),
        }
    }

    /// The name, as Linux's `tcp_congestion_control` spells it (Linux's `reno` is
    /// NewReno with SACK; `newreno` parses too).
    pub fn name(self) -> &'static str {
        match self {
            CcAlgorithm::NewReno => "reno",
            CcAlgorithm::Cubic => "cubic",
            CcAlgorithm::Bbr => "bbr",
        }
    }
}

impl core::str::FromStr for CcAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<CcAlgorithm, String> {
        match s {
            "newreno" | "reno" => Ok(CcAlgorithm::NewReno),
            "cubic" => Ok(CcAlgorithm::Cubic),
            "bbr" => Ok(CcAlgorithm::Bbr),
            _ => Err(format!("unknown congestion control {s:?}: give cubic, bbr or reno (newreno)")),
        }
    }
}

/// Slow start for both controllers: HyStart++ decides, and ends it by `ssthresh = cwnd`.
fn slow_start(hs: &mut HyStart, cwnd: &mut usize, ssthresh: &mut usize, a: &AckInfo) -> SsEvent {
    if !a.cwnd_limited {
        return SsEvent::None;
    }
    let ev = hs.on_ack(cwnd, &a.ss());
    if ev == SsEvent::Exited {
        *ssthresh = *cwnd;
    }
    ev
}

/// NewReno: slow start, congestion avoidance with byte counting, halve on loss.
#[derive(Debug, Clone)]
pub struct NewReno {
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acknowledged since the last one-MSS increase in congestion avoidance.
    acc: usize,
    hs: HyStart,
    prior: Option<(usize, usize)>,
}

impl NewReno {
    /// Starts with `iw` bytes.
    pub fn new(iw: usize, hystart: bool) -> Self {
        NewReno { cwnd: iw, ssthresh: usize::MAX, acc: 0, hs: HyStart::new(hystart), prior: None }
    }
}

impl CongestionControl for NewReno {
    fn cwnd(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn on_ack(&mut self, a: &AckInfo) -> SsEvent {
        if self.cwnd < self.ssthresh {
            return slow_start(&mut self.hs, &mut self.cwnd, &mut self.ssthresh, a);
        }
        if a.cwnd_limited {
            self.acc += a.acked;
            if self.acc >= self.cwnd {
                self.acc -= self.cwnd;
                self.cwnd += a.mss;
            }
        }
        SsEvent::None
    }

    fn on_congestion(&mut self, _now: Instant, flight: usize, mss: usize) {
        self.prior = Some((self.cwnd, self.ssthresh));
        self.hs.stop();
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = self.ssthresh;
        self.acc = 0;
    }

    fn on_recovery_end(&mut self, _now: Instant, _mss: usize) {
        self.cwnd = self.ssthresh;
    }

    fn on_rto(&mut self, _now: Instant, flight: usize, mss: usize, reduce: bool) {
        self.hs.stop();
        if reduce {
            self.prior = Some((self.cwnd, self.ssthresh));
            self.ssthresh = (flight / 2).max(2 * mss);
        }
        self.cwnd = mss;
        self.acc = 0;
    }

    fn undo(&mut self) {
        if let Some((cwnd, ssthresh)) = self.prior.take() {
            self.cwnd = self.cwnd.max(cwnd);
            self.ssthresh = self.ssthresh.max(ssthresh);
        }
    }
}

const CUBIC_C: f64 = 0.4;
const CUBIC_BETA: f64 = 0.7;

/// What a CUBIC reduction changes, saved for undo (RFC 9438 section 4.9).
#[derive(Debug, Clone, Copy)]
struct CubicState {
    cwnd: usize,
    ssthresh: usize,
    /// Window before the last reduction, segments.
    w_max: f64,
    /// Window when `ssthresh` was last set, segments.
    cwnd_prior: f64,
    /// Start of the current congestion-avoidance epoch.
    epoch: Option<Instant>,
    /// Time from the epoch to reach `origin`, seconds.
    k: f64,
    /// The plateau of the cubic curve: `w_max`, or the window at the epoch's start when
    /// that is larger (congestion avoidance entered with no reduction), segments.
    origin: f64,
    /// Reno-friendly estimate, segments.
    w_est: f64,
}

/// CUBIC (RFC 9438): C = 0.4, beta = 0.7, fast convergence, the Reno-friendly region,
/// the target clamped to `[cwnd, 1.5 cwnd]`, and no growth while not window-limited.
#[derive(Debug, Clone)]
pub struct Cubic {
    st: CubicState,
    /// The state before the last reduction (boxed: only a connection that met loss pays).
    prior: Option<Box<CubicState>>,
    hs: HyStart,
    /// Growth below one byte, carried to the next ACK.
    frac: f64,
}

impl Cubic {
    /// Starts with `iw` bytes.
    pub fn new(iw: usize, hystart: bool) -> Self {
        Cubic {
            st: CubicState {
                cwnd: iw,
                ssthresh: usize::MAX,
                w_max: 0.0,
                cwnd_prior: 0.0,
                epoch: None,
                k: 0.0,
                origin: 0.0,
                w_est: 0.0,
            },
            prior: None,
            hs: HyStart::new(hystart),
            frac: 0.0,
        }
    }

    /// RFC 9438 section 4.6 and 4.7: `W_max` with fast convergence, `ssthresh = beta * cwnd`.
    fn reduce(&mut self, mss: usize) {
        match &mut self.prior {
            Some(p) => **p = self.st,
            None => self.prior = Some(Box::new(self.st)),
        }
        self.hs.stop();
        let st = &mut self.st;
        let cwnd = st.cwnd as f64 / mss as f64;
        st.w_max = if cwnd < st.w_max { cwnd * (1.0 + CUBIC_BETA) / 2.0 } else { cwnd };
        st.cwnd_prior = cwnd;
        st.ssthresh = ((st.cwnd as f64 * CUBIC_BETA) as usize).max(2 * mss);
        st.epoch = None;
    }

    /// Congestion avoidance on one ACK (RFC 9438 sections 4.2 to 4.5).
    fn avoid(&mut self, a: &AckInfo) {
        let st = &mut self.st;
        let m = a.mss as f64;
        let cwnd = st.cwnd as f64 / m;
        let epoch = match st.epoch {
            Some(e) => e,
            None => {
                st.epoch = Some(a.now);
                (st.k, st.origin) =
                    if st.w_max > cwnd { (((st.w_max - cwnd) / CUBIC_C).cbrt(), st.w_max) } else { (0.0, cwnd) };
                st.w_est = cwnd;
                a.now
            }
        };
        let t = (a.now - epoch).total_micros() as f64 / 1e6;
        let rtt = a.srtt.map_or(0.1, |d| d.total_micros() as f64 / 1e6);
        let w_cubic = |t: f64| CUBIC_C * (t - st.k).powi(3) + st.origin;
        // Reno-friendly estimate (section 4.3): alpha until it reaches the window from
        // before the reduction, then 1.
        let alpha = if st.w_est < st.cwnd_prior { 3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA) } else { 1.0 };
        st.w_est += alpha * (a.acked as f64 / m) / cwnd;
        let next = if w_cubic(t) < st.w_est {
            st.w_est
        } else {
            let target = w_cubic(t + rtt).clamp(cwnd, 1.5 * cwnd);
            cwnd + (target - cwnd) / cwnd * (a.acked as f64 / m)
        };
        let inc = next * m - st.cwnd as f64 + self.frac;
        if inc >= 1.0 {
            st.cwnd += inc as usize;
            self.frac = inc.fract();
        } else {
            self.frac = inc.max(0.0);
        }
    }
}

impl CongestionControl for Cubic {
    fn cwnd(&self) -> usize {
        self.st.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.st.ssthresh
    }

    fn on_ack(&mut self, a: &AckInfo) -> SsEvent {
        if self.st.cwnd < self.st.ssthresh {
            return slow_start(&mut self.hs, &mut self.st.cwnd, &mut self.st.ssthresh, a);
        }
        if a.cwnd_limited {
            self.avoid(a);
        }
        SsEvent::None
    }

    fn on_congestion(&mut self, _now: Instant, _flight: usize, mss: usize) {
        self.reduce(mss);
        self.st.cwnd = self.st.ssthresh;
    }

    fn on_recovery_end(&mut self, _now: Instant, _mss: usize) {
        self.st.cwnd = self.st.ssthresh;
    }

    fn on_rto(&mut self, _now: Instant, _flight: usize, mss: usize, reduce: bool) {
        if reduce {
            self.reduce(mss);
        }
        self.hs.stop();
        self.st.epoch = None;
        self.st.cwnd = mss;
    }

    fn undo(&mut self) {
        if let Some(p) = self.prior.take() {
            let cwnd = self.st.cwnd.max(p.cwnd);
            self.st = CubicState { cwnd, ssthresh: self.st.ssthresh.max(p.ssthresh), ..*p };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_say_what_to_give() {
        for cc in [CcAlgorithm::Cubic, CcAlgorithm::Bbr, CcAlgorithm::NewReno] {
            assert_eq!(cc.name().parse::<CcAlgorithm>(), Ok(cc));
        }
        assert_eq!("newreno".parse::<CcAlgorithm>(), Ok(CcAlgorithm::NewReno));
        let e = "vegas".parse::<CcAlgorithm>().unwrap_err();
        assert!(e.contains("vegas") && e.contains("bbr"), "{e}");
    }

    fn ack(now: Instant, acked: usize, mss: usize, srtt_ms: u64) -> AckInfo {
        AckInfo {
            now,
            acked,
            mss,
            srtt: Some(Duration::from_millis(srtt_ms)),
            rtt: None,
            ack: Seq(0),
            snd_nxt: Seq(0),
            cwnd_limited: true,
        }
    }

    #[test]
    fn newreno_slow_start_avoidance_loss_and_undo() {
        let t = Instant::ZERO;
        let mut c = NewReno::new(10 * 1000, false);
        c.on_ack(&ack(t, 1000, 1000, 10));
        assert_eq!(c.cwnd(), 11_000);
        c.on_congestion(t, 20_000, 1000);
        assert_eq!((c.cwnd(), c.ssthresh()), (10_000, 10_000));
        for _ in 0..10 {
            c.on_ack(&ack(t, 1000, 1000, 10));
        }
        assert_eq!(c.cwnd(), 11_000, "one MSS per window in avoidance");
        c.on_rto(t, 4000, 1000, true);
        assert_eq!((c.cwnd(), c.ssthresh()), (1000, 2000));
        c.undo();
        assert_eq!((c.cwnd(), c.ssthresh()), (11_000, 10_000), "the timeout undone");
        let mut idle = ack(t, 1000, 1000, 10);
        idle.cwnd_limited = false;
        c.on_ack(&idle);
        assert_eq!(c.cwnd(), 11_000, "no growth while not window-limited");
    }

    #[test]
    fn cubic_reduces_by_beta_regrows_through_w_max_and_undoes() {
        let mss = 1000;
        let mut now = Instant::ZERO;
        let mut c = Cubic::new(100 * mss, false);
        c.on_congestion(now, 100_000, mss);
        assert_eq!((c.cwnd(), c.ssthresh()), (70_000, 70_000));
        // K = cbrt((100 - 70) / 0.4) = 4.22 s: the window is back near W_max then.
        let mut at_k = 0;
        for i in 0..8000 {
            now += Duration::from_millis(1);
            c.on_ack(&ack(now, mss, mss, 10));
            if i == 4200 {
                at_k = c.cwnd();
            }
        }
        assert!((95_000..=106_000).contains(&at_k), "{at_k} at t = K");
        assert!(c.cwnd() > 110_000, "convex growth past W_max: {}", c.cwnd());
        let before = c.cwnd();
        c.on_congestion(now, before, mss);
        assert!(c.cwnd() < before);
        c.undo();
        assert_eq!(c.cwnd(), before, "spurious reduction undone");
    }

    #[test]
    fn cubic_fast_convergence_lowers_w_max() {
        let mss = 1000;
        let mut c = Cubic::new(100 * mss, false);
        c.on_congestion(Instant::ZERO, 100_000, mss);
        assert_eq!(c.st.w_max, 100.0);
        c.on_congestion(Instant::ZERO, 70_000, mss);
        assert!((c.st.w_max - 70.0 * 1.7 / 2.0).abs() < 1e-9, "{}", c.st.w_max);
    }

    #[test]
    fn cubic_reno_friendly_region_at_small_windows() {
        // Short RTT and a small window: the cubic curve is flat near W_max while Reno's
        // estimate grows; the window follows W_est.
        let mss = 1000;
        let mut now = Instant::ZERO;
        let mut c = Cubic::new(10 * mss, false);
        c.on_congestion(now, 10_000, mss);
        let start = c.cwnd();
        // One RTT (1 ms) of ACKs per step for 200 RTTs.
        for _ in 0..200 {
            now += Duration::from_millis(1);
            for _ in 0..c.cwnd() / mss {
                c.on_ack(&ack(now, mss, mss, 1));
            }
        }
        let w_cubic = CUBIC_C * (0.2 - c.st.k).powi(3) + c.st.origin;
        assert!(c.st.w_est > w_cubic, "W_est {} vs W_cubic {w_cubic}", c.st.w_est);
        assert!(c.cwnd() >= start + 50 * mss, "Reno-like growth: {} from {start}", c.cwnd());
    }
}
