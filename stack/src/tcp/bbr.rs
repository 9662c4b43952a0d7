//! BBR v1 (Bottleneck Bandwidth and Round-trip propagation time), after Linux's
//! `net/ipv4/tcp_bbr.c` (Cardwell et al., "BBR: Congestion-Based Congestion Control",
//! ACM Queue 2016).
//!
//! BBR models the path from the delivery-rate samples (`rate.rs`) and does not treat a
//! loss as a signal of congestion:
//!
//! - `bw`: the windowed maximum of the delivery rate over 10 round trips (a round ends
//!   when a segment sent after the previous round's end is delivered);
//! - `min_rtt`: the minimum RTT over 10 s;
//! - pacing rate = `pacing_gain x bw` (1% below, to drain the queue it builds), and
//!   cwnd = `cwnd_gain x bw x min_rtt`, plus quanta for bursts and for ACK aggregation.
//!
//! The gains follow a state machine: **Startup** (2/ln 2 = 2.89, doubling the rate each
//! round) until the bandwidth has not grown by 25% in three rounds; **Drain** (1/2.89)
//! until what is in flight is one BDP; **ProbeBW**, an eight-phase cycle of pacing gains
//! 1.25, 0.75, 1, 1, 1, 1, 1, 1 (one phase per `min_rtt`) with cwnd gain 2; and, when the
//! minimum RTT has not been seen again for 10 s, **ProbeRTT**: cwnd 4 segments for 200 ms
//! and one round, to drain the queue and measure the path again.
//!
//! In loss recovery it keeps to packet conservation in the first round (send what is
//! delivered), then grows back towards the model's window; a timeout leaves one segment.
//! Long-term sampling detects a token-bucket policer: two intervals of 4 to 16 rounds with
//! 20% loss and the same rate make it pace at that rate for 48 rounds.
//!
//! What differs from Linux: windows and samples are in bytes, not segments (rounded up to
//! whole segments where Linux counts segments); the first gain-cycle phase is drawn from
//! a generator seeded by the connection, not the kernel's random numbers; a minimum-RTT
//! sample that may include a delayed ACK is not singled out (Linux's `is_ack_delayed`
//! only lets such a sample refresh an expired minimum).

use smoltcp::time::{Duration, Instant};

use super::cc::{AckInfo, AckSample, CongestionControl, ModelEvents};
use super::conn::CaState;
use super::hystart::SsEvent;
use super::minmax::MinMax;
use super::pacing::MAX_QUANTUM;

/// Fixed-point unit of the gains.
const UNIT: u64 = 256;
/// 2/ln(2): the smallest gain that doubles the rate every round.
const HIGH_GAIN: u64 = UNIT * 2885 / 1000 + 1;
/// Its inverse: drains Startup's queue in about a round.
const DRAIN_GAIN: u64 = UNIT * 1000 / 2885;
/// ProbeBW's cwnd gain (tolerates delayed and stretched ACKs).
const CWND_GAIN: u64 = UNIT * 2;
/// ProbeBW's pacing gains, one phase each.
const PACING_GAIN: [u64; 8] = [UNIT * 5 / 4, UNIT * 3 / 4, UNIT, UNIT, UNIT, UNIT, UNIT, UNIT];
/// The first phase is drawn from the last this many (never the draining one).
const CYCLE_RAND: u32 = 7;
/// The bandwidth filter's window, rounds.
const BW_RTTS: i64 = PACING_GAIN.len() as i64 + 2;
/// The minimum RTT's window.
const MIN_RTT_WIN: Duration = Duration::from_secs(10);
/// How long ProbeRTT holds the window down, at least.
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// The smallest window, segments (two ACKs of two segments each in flight).
const CWND_MIN_SEGS: usize = 4;
/// The window before any RTT is known, segments (Linux `TCP_INIT_CWND`).
const INIT_CWND_SEGS: usize = 10;
/// Startup ends after this many rounds without 25% more bandwidth.
const FULL_BW_THRESH: u64 = UNIT * 5 / 4;
const FULL_BW_CNT: u8 = 3;
/// Pace this much below the estimated bandwidth, percent.
const PACING_MARGIN_PCT: u64 = 1;
/// Long-term sampling: intervals of at least 4 rounds (at most 4 times that), lossy at a
/// loss rate of 50/256 (20%), consistent within 1/8 or 4 kbit/s; then 48 rounds at it.
const LT_INTVL_MIN_RTTS: u32 = 4;
const LT_LOSS_THRESH: u64 = 50;
const LT_BW_RATIO: u64 = UNIT / 8;
const LT_BW_DIFF: u64 = 4000 / 8;
const LT_BW_MAX_RTTS: u32 = 48;
/// ACK aggregation: the excess delivered beyond `bw` over an epoch, max over 5-10 rounds,
/// at most 100 ms of `bw`.
const EXTRA_ACKED_WIN_RTTS: u8 = 5;
const EXTRA_ACKED_MAX: Duration = Duration::from_millis(100);
const ACK_EPOCH_RESET_SEGS: u64 = 1 << 20;

/// BBR's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BbrMode {
    /// Ramping up: pacing gain 2.89.
    Startup,
    /// Draining Startup's queue: pacing gain 0.35.
    Drain,
    /// Steady state: the gain cycle.
    ProbeBw,
    /// The window at 4 segments to measure the minimum RTT again.
    ProbeRtt,
}

/// What BBR's model says now (Linux `tcp_bbr_info`), for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BbrInfo {
    /// The state.
    pub mode: BbrMode,
    /// The bandwidth estimate in force, bytes/s.
    pub bw: u64,
    /// The minimum RTT estimate.
    pub min_rtt: Option<Duration>,
    /// Gains, in 1/256.
    pub pacing_gain: u32,
    /// Gains, in 1/256.
    pub cwnd_gain: u32,
    /// Startup saw the bandwidth stop growing.
    pub full_bw_reached: bool,
    /// Pacing at a policer's long-term rate.
    pub lt_use_bw: bool,
    /// Rounds counted.
    pub rounds: u64,
}

/// `b - a`, or zero if `b` is not later (smoltcp's `Instant - Instant` is an absolute
/// difference).
fn since(b: Instant, a: Instant) -> Duration {
    if b > a {
        b - a
    } else {
        Duration::ZERO
    }
}

/// `rate` bytes/s over `d`, in bytes.
fn over(rate: u64, d: Duration) -> u64 {
    (u128::from(rate) * u128::from(d.total_micros()) / 1_000_000) as u64
}

/// BBR's per-connection state.
#[derive(Debug, Clone)]
pub struct Bbr {
    mode: BbrMode,
    cwnd: usize,
    /// The last good window, restored after recovery or ProbeRTT.
    prior_cwnd: usize,
    ssthresh: usize,
    pacing_rate: u64,
    mss: usize,
    /// Windowed maximum of the delivery rate (bytes/s) over rounds.
    bw: MinMax<u64>,
    min_rtt: Option<Duration>,
    min_rtt_stamp: Instant,
    probe_rtt_done: Option<Instant>,
    probe_rtt_round_done: bool,
    /// Rounds counted (64 bits: never wraps, so the bandwidth filter's window holds).
    rtt_cnt: u64,
    /// The round ends when a segment sent with this much delivered is delivered.
    next_rtt_delivered: u64,
    round_start: bool,
    cycle_idx: usize,
    cycle_stamp: Instant,
    pacing_gain: u64,
    cwnd_gain: u64,
    full_bw: u64,
    full_bw_cnt: u8,
    full_bw_reached: bool,
    packet_conservation: bool,
    prev_ca: CaState,
    idle_restart: bool,
    has_seen_rtt: bool,
    lt_is_sampling: bool,
    lt_use_bw: bool,
    lt_rtt_cnt: u32,
    lt_bw: u64,
    lt_last_delivered: u64,
    lt_last_lost: u64,
    lt_last_stamp: Instant,
    ack_epoch_stamp: Instant,
    ack_epoch_acked: u64,
    extra_acked: [u64; 2],
    extra_acked_win_rtts: u8,
    extra_acked_idx: usize,
    /// The connection's delivery totals at the last ACK.
    delivered: u64,
    delivered_at: Instant,
    lost: u64,
    rng: u32,
}

impl Bbr {
    /// A controller starting with `iw` bytes of window; `seed` draws the gain cycle's
    /// first phases.
    pub fn new(iw: usize, mss: usize, seed: u32) -> Bbr {
        let mut b = Bbr {
            mode: BbrMode::Startup,
            cwnd: iw,
            prior_cwnd: 0,
            ssthresh: usize::MAX,
            pacing_rate: 0,
            mss: mss.max(1),
            bw: MinMax::new(0, 0),
            min_rtt: None,
            min_rtt_stamp: Instant::ZERO,
            probe_rtt_done: None,
            probe_rtt_round_done: false,
            rtt_cnt: 0,
            next_rtt_delivered: 0,
            round_start: false,
            cycle_idx: 0,
            cycle_stamp: Instant::ZERO,
            pacing_gain: HIGH_GAIN,
            cwnd_gain: HIGH_GAIN,
            full_bw: 0,
            full_bw_cnt: 0,
            full_bw_reached: false,
            packet_conservation: false,
            prev_ca: CaState::Open,
            idle_restart: false,
            has_seen_rtt: false,
            lt_is_sampling: false,
            lt_use_bw: false,
            lt_rtt_cnt: 0,
            lt_bw: 0,
            lt_last_delivered: 0,
            lt_last_lost: 0,
            lt_last_stamp: Instant::ZERO,
            ack_epoch_stamp: Instant::ZERO,
            ack_epoch_acked: 0,
            extra_acked: [0; 2],
            extra_acked_win_rtts: 0,
            extra_acked_idx: 0,
            delivered: 0,
            delivered_at: Instant::ZERO,
            lost: 0,
            rng: seed | 1,
        };
        b.init_pacing_rate(None);
        b
    }

    /// What the model says now.
    pub fn info(&self) -> BbrInfo {
        BbrInfo {
            mode: self.mode,
            bw: self.bw(),
            min_rtt: self.min_rtt,
            pacing_gain: self.pacing_gain as u32,
            cwnd_gain: self.cwnd_gain as u32,
            full_bw_reached: self.full_bw_reached,
            lt_use_bw: self.lt_use_bw,
            rounds: self.rtt_cnt,
        }
    }

    fn random_below(&mut self, n: u32) -> u32 {
        // xorshift32
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x % n
    }

    fn max_bw(&self) -> u64 {
        self.bw.get()
    }

    /// The bandwidth in force: a policer's long-term rate, or the windowed maximum.
    fn bw(&self) -> u64 {
        if self.lt_use_bw {
            self.lt_bw
        } else {
            self.max_bw()
        }
    }

    /// `gain x rate`, 1% below.
    fn with_gain(rate: u64, gain: u64) -> u64 {
        (u128::from(rate) * u128::from(gain) / u128::from(UNIT) * u128::from(100 - PACING_MARGIN_PCT) / 100) as u64
    }

    /// The first rate: Startup's gain over the initial window per RTT (1 ms before one is
    /// known).
    fn init_pacing_rate(&mut self, srtt: Option<Duration>) {
        let rtt = match srtt {
            Some(s) => {
                self.has_seen_rtt = true;
                s.total_micros().max(1)
            }
            None => 1000,
        };
        let bw = self.cwnd as u64 * 1_000_000 / rtt;
        self.pacing_rate = Bbr::with_gain(bw, HIGH_GAIN);
    }

    /// Paces at `gain x bw`; before the pipe is full, only ever faster.
    fn set_pacing_rate(&mut self, bw: u64, gain: u64, srtt: Option<Duration>) {
        let rate = Bbr::with_gain(bw, gain);
        if !self.has_seen_rtt && srtt.is_some() {
            self.init_pacing_rate(srtt);
        }
        if self.full_bw_reached || rate > self.pacing_rate {
            self.pacing_rate = rate;
        }
    }

    /// Segments per burst at the pacing rate (Linux `bbr_tso_segs_goal`; our bursts are
    /// the pacer's quanta).
    fn burst_segs(&self) -> usize {
        let bytes = (self.pacing_rate >> 10).min(MAX_QUANTUM as u64) as usize;
        let min = if self.pacing_rate < 1_200_000 / 8 { 1 } else { 2 };
        (bytes / self.mss).clamp(min, 127)
    }

    /// Keeps the last good window before recovery or ProbeRTT cuts it.
    fn save_cwnd(&mut self) {
        if self.prev_ca < CaState::Recovery && self.mode != BbrMode::ProbeRtt {
            self.prior_cwnd = self.cwnd;
        } else {
            self.prior_cwnd = self.prior_cwnd.max(self.cwnd);
        }
    }

    /// `gain x bw x min_rtt`, rounded up to whole segments (10 before an RTT is known).
    fn bdp(&self, bw: u64, gain: u64) -> usize {
        let Some(min_rtt) = self.min_rtt else { return INIT_CWND_SEGS * self.mss };
        let w = u128::from(bw) * u128::from(min_rtt.total_micros()) * u128::from(gain);
        let per_seg = u128::from(UNIT) * 1_000_000 * self.mss as u128;
        w.div_ceil(per_seg) as usize * self.mss
    }

    /// Room for the bursts on both hosts (three of them), an even number of segments (for
    /// delayed ACKs), and two more segments in the probing phase (to get above a small BDP).
    fn quantization_budget(&self, cwnd: usize) -> usize {
        let mut segs = cwnd.div_ceil(self.mss) + 3 * self.burst_segs();
        segs = (segs + 1) & !1;
        if self.mode == BbrMode::ProbeBw && self.cycle_idx == 0 {
            segs += 2;
        }
        segs * self.mss
    }

    fn inflight(&self, bw: u64, gain: u64) -> usize {
        self.quantization_budget(self.bdp(bw, gain))
    }

    /// What will still be in the network when pacing's next departure leaves (Linux
    /// `bbr_packets_in_net_at_edt`).
    fn in_net_at_edt(&self, in_flight: usize, backlog: Duration) -> usize {
        let delivered_meanwhile = over(self.bw(), backlog) as usize;
        let mut at_edt = in_flight;
        if self.pacing_gain > UNIT {
            at_edt += self.burst_segs() * self.mss;
        }
        at_edt.saturating_sub(delivered_meanwhile)
    }

    /// Extra window for ACK aggregation (Linux `bbr_ack_aggregation_cwnd`).
    fn aggregation_cwnd(&self) -> usize {
        if !self.full_bw_reached {
            return 0;
        }
        let max = over(self.bw(), EXTRA_ACKED_MAX);
        self.extra_acked[0].max(self.extra_acked[1]).min(max) as usize
    }

    /// Packet conservation in the first round of recovery; the window from before it
    /// restored when recovery ends. Returns the window and whether conservation holds it.
    fn recover_or_restore(&mut self, s: &AckSample, acked: usize) -> (usize, bool) {
        let (prev, state) = (self.prev_ca, s.ca);
        let mut cwnd = self.cwnd;
        if s.rs.losses > 0 {
            cwnd = cwnd.saturating_sub(s.rs.losses).max(self.mss);
        }
        if state == CaState::Recovery && prev != CaState::Recovery {
            // The first round of recovery: send what is delivered.
            self.packet_conservation = true;
            self.next_rtt_delivered = s.delivered;
            cwnd = s.in_flight + acked;
        } else if prev >= CaState::Recovery && state < CaState::Recovery {
            cwnd = cwnd.max(self.prior_cwnd);
            self.packet_conservation = false;
        }
        self.prev_ca = state;
        if self.packet_conservation {
            return (cwnd.max(s.in_flight + acked), true);
        }
        (cwnd, false)
    }

    /// Grows the window by what was delivered towards the model's target, or cuts it to the
    /// target once the pipe has been filled.
    fn set_cwnd(&mut self, s: &AckSample, bw: u64, gain: u64) {
        let acked = s.rs.acked_sacked;
        if acked > 0 {
            let (mut cwnd, conserving) = self.recover_or_restore(s, acked);
            if !conserving {
                let target = self.quantization_budget(self.bdp(bw, gain) + self.aggregation_cwnd());
                if self.full_bw_reached {
                    cwnd = (cwnd + acked).min(target);
                } else if cwnd < target || s.delivered < (INIT_CWND_SEGS * self.mss) as u64 {
                    cwnd += acked;
                }
                cwnd = cwnd.max(CWND_MIN_SEGS * self.mss);
            }
            self.cwnd = cwnd;
        }
        if self.mode == BbrMode::ProbeRtt {
            self.cwnd = self.cwnd.min(CWND_MIN_SEGS * self.mss);
        }
    }

    /// Whether the gain-cycle phase is over: a `min_rtt` long, and for the probing phase
    /// also `1.25 x BDP` in flight (or a loss), for the draining one `1 x BDP` (or not).
    fn is_next_cycle_phase(&self, s: &AckSample) -> bool {
        let full_length = self.min_rtt.is_some_and(|m| since(s.delivered_at, self.cycle_stamp) > m);
        if self.pacing_gain == UNIT {
            return full_length;
        }
        let inflight = self.in_net_at_edt(s.prior_in_flight, s.pacing_backlog);
        let bw = self.max_bw();
        if self.pacing_gain > UNIT {
            return full_length && (s.rs.losses > 0 || inflight >= self.inflight(bw, self.pacing_gain));
        }
        full_length || inflight <= self.inflight(bw, UNIT)
    }

    fn advance_cycle_phase(&mut self) {
        self.cycle_idx = (self.cycle_idx + 1) % PACING_GAIN.len();
        self.cycle_stamp = self.delivered_at;
    }

    fn reset_probe_bw_mode(&mut self) {
        self.mode = BbrMode::ProbeBw;
        self.cycle_idx = PACING_GAIN.len() - 1 - self.random_below(CYCLE_RAND) as usize;
        self.advance_cycle_phase();
    }

    fn reset_mode(&mut self) {
        if self.full_bw_reached {
            self.reset_probe_bw_mode();
        } else {
            self.mode = BbrMode::Startup;
        }
    }

    fn reset_lt_interval(&mut self) {
        self.lt_last_stamp = self.delivered_at;
        self.lt_last_delivered = self.delivered;
        self.lt_last_lost = self.lost;
        self.lt_rtt_cnt = 0;
    }

    fn reset_lt(&mut self) {
        self.lt_bw = 0;
        self.lt_use_bw = false;
        self.lt_is_sampling = false;
        self.reset_lt_interval();
    }

    /// A long-term interval ended at `bw`: the second of two consistent ones means a
    /// policer.
    fn lt_interval_done(&mut self, bw: u64) {
        if self.lt_bw != 0 {
            let diff = bw.abs_diff(self.lt_bw);
            if diff * UNIT <= LT_BW_RATIO * self.lt_bw || Bbr::with_gain(diff, UNIT) <= LT_BW_DIFF {
                self.lt_bw = (bw + self.lt_bw) / 2;
                self.lt_use_bw = true;
                self.pacing_gain = UNIT;
                self.lt_rtt_cnt = 0;
                return;
            }
        }
        self.lt_bw = bw;
        self.reset_lt_interval();
    }

    /// Long-term sampling for a token-bucket policer (Linux `bbr_lt_bw_sampling`): from the
    /// first loss, intervals of 4 to 16 rounds ending in a loss; one with 20% of its
    /// deliveries lost gives a rate.
    fn lt_bw_sampling(&mut self, losses: bool, app_limited: bool) {
        if self.lt_use_bw {
            if self.mode == BbrMode::ProbeBw && self.round_start {
                self.lt_rtt_cnt += 1;
                if self.lt_rtt_cnt >= LT_BW_MAX_RTTS {
                    self.reset_lt();
                    self.reset_probe_bw_mode();
                }
            }
            return;
        }
        if !self.lt_is_sampling {
            if !losses {
                return;
            }
            self.reset_lt_interval();
            self.lt_is_sampling = true;
        }
        if app_limited {
            self.reset_lt();
            return;
        }
        if self.round_start {
            self.lt_rtt_cnt += 1;
        }
        if self.lt_rtt_cnt < LT_INTVL_MIN_RTTS {
            return;
        }
        if self.lt_rtt_cnt > 4 * LT_INTVL_MIN_RTTS {
            self.reset_lt();
            return;
        }
        if !losses {
            return;
        }
        let lost = self.lost.saturating_sub(self.lt_last_lost);
        let delivered = self.delivered.saturating_sub(self.lt_last_delivered);
        if delivered == 0 || lost * UNIT < LT_LOSS_THRESH * delivered {
            return;
        }
        let t = since(self.delivered_at, self.lt_last_stamp);
        if t < Duration::from_millis(1) {
            return;
        }
        self.lt_interval_done((u128::from(delivered) * 1_000_000 / u128::from(t.total_micros())) as u64);
    }

    /// A new round, the long-term sampler, and the sample into the bandwidth filter
    /// (application-limited ones only if they raise it).
    fn update_bw(&mut self, s: &AckSample) {
        self.round_start = false;
        let (Some(delivered), Some(interval)) = (s.rs.delivered, s.rs.interval) else { return };
        if interval == Duration::ZERO {
            return;
        }
        if s.rs.prior_delivered >= self.next_rtt_delivered {
            self.next_rtt_delivered = s.delivered;
            self.rtt_cnt += 1;
            self.round_start = true;
            self.packet_conservation = false;
        }
        self.lt_bw_sampling(s.rs.losses > 0, s.rs.app_limited);
        let bw = (u128::from(delivered) * 1_000_000 / u128::from(interval.total_micros())) as u64;
        if !s.rs.app_limited || bw >= self.max_bw() {
            self.bw.running_max(BW_RTTS, self.rtt_cnt as i64, bw);
        }
    }

    /// The most data delivered beyond `bw` over an epoch (Linux
    /// `bbr_update_ack_aggregation`).
    fn update_ack_aggregation(&mut self, s: &AckSample) {
        let acked = s.rs.acked_sacked as u64;
        if acked == 0 || s.rs.delivered.is_none() || s.rs.interval.is_none() {
            return;
        }
        if self.round_start {
            self.extra_acked_win_rtts = (self.extra_acked_win_rtts + 1).min(31);
            if self.extra_acked_win_rtts >= EXTRA_ACKED_WIN_RTTS {
                self.extra_acked_win_rtts = 0;
                self.extra_acked_idx ^= 1;
                self.extra_acked[self.extra_acked_idx] = 0;
            }
        }
        let mut expected = over(self.bw(), since(s.delivered_at, self.ack_epoch_stamp));
        let reset = ACK_EPOCH_RESET_SEGS * self.mss as u64;
        if self.ack_epoch_acked <= expected || self.ack_epoch_acked + acked >= reset {
            self.ack_epoch_acked = 0;
            self.ack_epoch_stamp = s.delivered_at;
            expected = 0;
        }
        self.ack_epoch_acked = (self.ack_epoch_acked + acked).min(reset);
        let extra = (self.ack_epoch_acked - expected).min(self.cwnd as u64);
        if extra > self.extra_acked[self.extra_acked_idx] {
            self.extra_acked[self.extra_acked_idx] = extra;
        }
    }

    /// Startup has filled the pipe when three rounds brought less than 25% more bandwidth.
    fn check_full_bw_reached(&mut self, s: &AckSample) {
        if self.full_bw_reached || !self.round_start || s.rs.app_limited {
            return;
        }
        if self.max_bw() >= self.full_bw * FULL_BW_THRESH / UNIT {
            self.full_bw = self.max_bw();
            self.full_bw_cnt = 0;
            return;
        }
        self.full_bw_cnt += 1;
        self.full_bw_reached = self.full_bw_cnt >= FULL_BW_CNT;
    }

    fn check_drain(&mut self, s: &AckSample) {
        if self.mode == BbrMode::Startup && self.full_bw_reached {
            self.mode = BbrMode::Drain;
            self.ssthresh = self.inflight(self.max_bw(), UNIT);
        }
        if self.mode == BbrMode::Drain
            && self.in_net_at_edt(s.in_flight, s.pacing_backlog) <= self.inflight(self.max_bw(), UNIT)
        {
            self.reset_probe_bw_mode();
        }
    }

    fn check_probe_rtt_done(&mut self, now: Instant) {
        if self.probe_rtt_done.is_none_or(|d| now <= d) {
            return;
        }
        self.min_rtt_stamp = now;
        self.cwnd = self.cwnd.max(self.prior_cwnd);
        self.reset_mode();
    }

    /// The minimum RTT, and ProbeRTT when it has not been seen again for 10 s.
    fn update_min_rtt(&mut self, s: &AckSample) {
        if self.min_rtt.is_none() {
            if let Some(m) = s.min_rtt {
                (self.min_rtt, self.min_rtt_stamp) = (Some(m), s.now);
            }
        }
        let expired = s.now > self.min_rtt_stamp + MIN_RTT_WIN;
        if let Some(rtt) = s.rtt {
            if self.min_rtt.is_none_or(|m| rtt <= m) || expired {
                (self.min_rtt, self.min_rtt_stamp) = (Some(rtt), s.now);
            }
        }
        if expired && !self.idle_restart && self.mode != BbrMode::ProbeRtt {
            self.mode = BbrMode::ProbeRtt;
            self.save_cwnd();
            self.probe_rtt_done = None;
        }
        if self.mode == BbrMode::ProbeRtt {
            // Hold the window at the minimum for 200 ms and a round.
            if self.probe_rtt_done.is_none() && s.in_flight <= CWND_MIN_SEGS * self.mss {
                self.probe_rtt_done = Some(s.now + PROBE_RTT_TIME);
                self.probe_rtt_round_done = false;
                self.next_rtt_delivered = s.delivered;
            } else if self.probe_rtt_done.is_some() {
                if self.round_start {
                    self.probe_rtt_round_done = true;
                }
                if self.probe_rtt_round_done {
                    self.check_probe_rtt_done(s.now);
                }
            }
        }
        if s.rs.delivered.is_some_and(|d| d > 0) {
            self.idle_restart = false;
        }
    }

    fn update_gains(&mut self) {
        (self.pacing_gain, self.cwnd_gain) = match self.mode {
            BbrMode::Startup => (HIGH_GAIN, HIGH_GAIN),
            BbrMode::Drain => (DRAIN_GAIN, HIGH_GAIN),
            BbrMode::ProbeBw => (if self.lt_use_bw { UNIT } else { PACING_GAIN[self.cycle_idx] }, CWND_GAIN),
            BbrMode::ProbeRtt => (UNIT, UNIT),
        };
    }
}

impl CongestionControl for Bbr {
    fn cwnd(&self) -> usize {
        self.cwnd
    }

    fn ssthresh(&self) -> usize {
        self.ssthresh
    }

    fn on_ack(&mut self, _a: &AckInfo) -> SsEvent {
        SsEvent::None
    }

    fn on_congestion(&mut self, _now: Instant, _flight: usize, _mss: usize) {
        // Linux `bbr_ssthresh`: remember the window; BBR does not cut it for a loss.
        self.save_cwnd();
    }

    fn on_recovery_end(&mut self, _now: Instant, _mss: usize) {}

    fn on_rto(&mut self, _now: Instant, _flight: usize, mss: usize, reduce: bool) {
        if reduce {
            self.save_cwnd();
        }
        // Everything outstanding is marked lost: one segment in flight.
        self.mss = mss.max(1);
        self.cwnd = self.mss;
        // Linux `bbr_set_state(TCP_CA_Loss)`: a timeout ends a round, and is a loss for
        // the long-term sampler.
        self.prev_ca = CaState::Loss;
        self.full_bw = 0;
        self.round_start = true;
        self.lt_bw_sampling(true, false);
    }

    fn undo(&mut self) {
        // A spurious slow-down: the pipe may not be full after all.
        self.full_bw = 0;
        self.full_bw_cnt = 0;
        self.reset_lt();
    }

    fn model_based(&self) -> bool {
        true
    }

    fn on_sample(&mut self, s: &AckSample) -> ModelEvents {
        let (full, mode, lt) = (self.full_bw_reached, self.mode, self.lt_use_bw);
        self.mss = s.mss.max(1);
        (self.delivered, self.delivered_at, self.lost) = (s.delivered, s.delivered_at, s.lost);
        self.update_bw(s);
        self.update_ack_aggregation(s);
        if self.mode == BbrMode::ProbeBw && self.is_next_cycle_phase(s) {
            self.advance_cycle_phase();
        }
        self.check_full_bw_reached(s);
        self.check_drain(s);
        self.update_min_rtt(s);
        self.update_gains();
        let bw = self.bw();
        self.set_pacing_rate(bw, self.pacing_gain, s.srtt);
        self.set_cwnd(s, bw, self.cwnd_gain);
        ModelEvents {
            pipe_full: self.full_bw_reached && !full,
            probe_rtt: self.mode == BbrMode::ProbeRtt && mode != BbrMode::ProbeRtt,
            policer: self.lt_use_bw && !lt,
        }
    }

    fn wants_app_limited(&self) -> bool {
        self.mode == BbrMode::ProbeRtt
    }

    fn pacing_rate(&self) -> Option<u64> {
        Some(self.pacing_rate)
    }

    fn on_tx_start(&mut self, now: Instant, app_limited: bool) {
        if !app_limited {
            return;
        }
        self.idle_restart = true;
        self.ack_epoch_stamp = now;
        self.ack_epoch_acked = 0;
        match self.mode {
            // No need to probe for more than the estimate after idle.
            BbrMode::ProbeBw => self.set_pacing_rate(self.bw(), UNIT, None),
            BbrMode::ProbeRtt => self.check_probe_rtt_done(now),
            _ => {}
        }
    }

    fn bbr_info(&self) -> Option<BbrInfo> {
        Some(self.info())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::rate::RateSample;

    const MSS: usize = 1000;
    const MIN_RTT: Duration = Duration::from_millis(10);

    /// Drives a controller with ACKs of a path of 10 ms minimum RTT.
    struct Drive {
        b: Bbr,
        now: Instant,
        delivered: u64,
        lost: u64,
    }

    impl Drive {
        fn new() -> Drive {
            Drive { b: Bbr::new(10 * MSS, MSS, 1), now: Instant::from_secs(1), delivered: 0, lost: 0 }
        }

        /// An ACK `dt` after the last one delivering `acked` bytes, its sample measuring
        /// `bw` over one minimum RTT, starting a round if `round`.
        #[allow(clippy::too_many_arguments)]
        fn ack(
            &mut self,
            dt: Duration,
            round: bool,
            bw: u64,
            acked: usize,
            in_flight: usize,
            ca: CaState,
            losses: usize,
        ) {
            self.now += dt;
            let prior = if round { self.delivered } else { self.b.next_rtt_delivered.saturating_sub(1) };
            self.delivered += acked as u64;
            self.lost += losses as u64;
            let rs = RateSample {
                delivered: Some(over(bw, MIN_RTT)),
                interval: Some(MIN_RTT),
                prior_delivered: prior,
                app_limited: false,
                acked_sacked: acked,
                losses,
            };
            let s = AckSample {
                now: self.now,
                mss: MSS,
                rs,
                delivered: self.delivered,
                delivered_at: self.now,
                lost: self.lost,
                in_flight,
                prior_in_flight: in_flight + acked,
                rtt: Some(MIN_RTT + Duration::from_millis(1)),
                min_rtt: Some(MIN_RTT),
                srtt: Some(MIN_RTT),
                ca,
                pacing_backlog: Duration::ZERO,
            };
            self.b.on_sample(&s);
        }

        /// One round at `bw`: a round-starting ACK, `dt` after the last.
        fn round(&mut self, bw: u64, in_flight: usize) {
            self.ack(MIN_RTT, true, bw, 10 * MSS, in_flight, CaState::Open, 0);
        }
    }

    #[test]
    fn startup_ends_when_bandwidth_plateaus_then_drain_then_probe_bw() {
        let mut d = Drive::new();
        for bw in [1_000_000, 2_000_000, 4_000_000] {
            d.round(bw, 100_000);
            assert_eq!((d.b.mode, d.b.pacing_gain), (BbrMode::Startup, HIGH_GAIN));
        }
        // Three rounds below 1.25 x the last plateau: the pipe is full.
        for i in 0..3 {
            assert!(!d.b.full_bw_reached, "after {i} flat rounds");
            d.round(4_500_000, 100_000);
        }
        assert!(d.b.full_bw_reached);
        assert_eq!((d.b.mode, d.b.pacing_gain), (BbrMode::Drain, DRAIN_GAIN), "100 kB in flight is above one BDP");
        // One BDP is 45 segments; with the quanta (3 bursts of 12 segments at Startup's
        // pacing rate, 2.89 x 4.5 MB/s x 0.99 = 12.9 MB/s, 12.5 kB a millisecond), rounded
        // to an even count: 82 segments.
        assert_eq!(d.b.ssthresh, 82 * MSS);
        d.round(4_500_000, 50_000);
        assert_eq!(d.b.mode, BbrMode::ProbeBw, "the queue is drained");
        assert_ne!(d.b.cycle_idx, 1, "never starts in the draining phase");
        assert_eq!(d.b.pacing_gain, PACING_GAIN[d.b.cycle_idx]);
        assert_eq!(d.b.info().bw, 4_500_000);
        // The pacing rate is the gain times the bandwidth, 1% below.
        assert_eq!(d.b.pacing_rate, 4_500_000 * PACING_GAIN[d.b.cycle_idx] / UNIT * 99 / 100);
    }

    /// Startup, Drain, then ProbeBW at `bw` with `in_flight`.
    fn steady(bw: u64) -> Drive {
        let mut d = Drive::new();
        for _ in 0..5 {
            d.round(bw, 20_000);
        }
        assert_eq!(d.b.mode, BbrMode::ProbeBw);
        d
    }

    #[test]
    fn probe_bw_cycles_through_the_eight_gains_one_min_rtt_each() {
        let mut d = steady(5_000_000);
        let mut gains = Vec::new();
        for _ in 0..16 {
            // Each phase ends after a minimum RTT; the probing one also needs 1.25 x BDP in
            // flight, the draining one ends at once.
            d.ack(MIN_RTT + Duration::from_millis(1), false, 5_000_000, MSS, 200_000, CaState::Open, 0);
            gains.push(d.b.pacing_gain);
        }
        let start = gains.iter().position(|&g| g == PACING_GAIN[0]).expect("a probing phase");
        for (i, g) in gains[start..].iter().enumerate() {
            assert_eq!(*g, PACING_GAIN[i % 8], "phase {i} of {gains:?}");
        }
        // The window grows by what is delivered up to 2 x BDP (100 segments) plus the
        // aggregation seen (10 segments per ACK of 10 in `steady`) and three bursts of
        // about 5 segments, then holds there.
        for _ in 0..300 {
            d.ack(MIN_RTT + Duration::from_millis(1), false, 5_000_000, MSS, 200_000, CaState::Open, 0);
        }
        assert!((110 * MSS..=130 * MSS).contains(&d.b.cwnd), "cwnd {}", d.b.cwnd);
    }

    #[test]
    fn probe_rtt_every_ten_seconds_then_back_with_the_window() {
        let mut d = steady(5_000_000);
        for _ in 0..300 {
            d.round(5_000_000, 60_000);
        }
        let before = d.b.cwnd;
        assert_eq!(d.b.mode, BbrMode::ProbeBw);
        // 10 s with RTT samples above the minimum.
        let mut n = 0;
        while d.b.mode != BbrMode::ProbeRtt {
            d.ack(Duration::from_millis(11), false, 5_000_000, MSS, 60_000, CaState::Open, 0);
            n += 1;
            assert!(n < 1000, "no ProbeRTT after {} s", n * 11 / 1000);
        }
        assert!(n * 11 >= 10_000 - 11 * 300, "ProbeRTT after {} ms", n * 11);
        assert_eq!(d.b.cwnd, CWND_MIN_SEGS * MSS);
        assert!(d.b.wants_app_limited());
        // The flight drains to 4 segments; then 200 ms and a round at the minimum.
        d.ack(Duration::from_millis(1), false, 5_000_000, MSS, 4 * MSS, CaState::Open, 0);
        let done = d.b.probe_rtt_done.expect("200 ms started");
        d.round(5_000_000, 4 * MSS);
        assert_eq!(d.b.mode, BbrMode::ProbeRtt, "a round, but not 200 ms yet");
        while d.now <= done {
            d.ack(Duration::from_millis(20), false, 5_000_000, MSS, 4 * MSS, CaState::Open, 0);
        }
        d.ack(Duration::from_millis(1), false, 5_000_000, MSS, 4 * MSS, CaState::Open, 0);
        assert_eq!(d.b.mode, BbrMode::ProbeBw);
        assert!(d.b.cwnd >= before, "the window from before: {} < {before}", d.b.cwnd);
        assert!(!d.b.wants_app_limited());
    }

    #[test]
    fn recovery_conserves_packets_for_a_round_then_restores_the_window() {
        let mut d = steady(5_000_000);
        for _ in 0..20 {
            d.round(5_000_000, 100_000);
        }
        let before = d.b.cwnd;
        d.b.on_congestion(d.now, 100_000, MSS);
        // The first ACK of recovery: what is in flight plus what it delivered.
        d.ack(Duration::from_millis(1), false, 5_000_000, 2 * MSS, 30_000, CaState::Recovery, 3 * MSS);
        assert_eq!(d.b.cwnd, 32_000);
        d.ack(Duration::from_millis(1), false, 5_000_000, MSS, 40_000, CaState::Recovery, 0);
        assert_eq!(d.b.cwnd, 41_000, "conservation: never below in flight plus delivered");
        // A round later it grows by what is delivered.
        d.ack(Duration::from_millis(10), true, 5_000_000, 2 * MSS, 10_000, CaState::Recovery, 0);
        assert_eq!(d.b.cwnd, 43_000);
        // Recovery over: the window from before it (and this ACK's delivery if below the
        // target).
        d.ack(Duration::from_millis(1), false, 5_000_000, MSS, 10_000, CaState::Open, 0);
        assert!((before..=before + MSS).contains(&d.b.cwnd), "{} for {before}", d.b.cwnd);
    }

    #[test]
    fn a_timeout_leaves_one_segment_and_slow_starts_back() {
        let mut d = steady(5_000_000);
        let before = d.b.cwnd;
        d.b.on_rto(d.now, 100_000, MSS, true);
        assert_eq!(d.b.cwnd, MSS);
        d.ack(Duration::from_millis(10), false, 5_000_000, MSS, 0, CaState::Loss, 0);
        assert_eq!(d.b.cwnd, 4 * MSS, "at least 4 segments once something is delivered");
        d.ack(Duration::from_millis(10), false, 5_000_000, 4 * MSS, 0, CaState::Loss, 0);
        assert_eq!(d.b.cwnd, 8 * MSS);
        d.ack(Duration::from_millis(10), false, 5_000_000, MSS, 0, CaState::Open, 0);
        assert!(d.b.cwnd >= before, "{} < {before}", d.b.cwnd);
    }

    #[test]
    fn a_policer_is_detected_by_two_lossy_intervals_at_one_rate() {
        let mut d = steady(5_000_000);
        assert!(!d.b.lt_use_bw);
        // A policer at 2 MB/s: every round 25% of what is delivered is lost, the rest comes at
        // 2 MB/s (the deliveries of a round of 10 ms: 20 kB).
        let mut rounds = 0;
        while !d.b.lt_use_bw {
            d.ack(MIN_RTT, true, 2_000_000, 20_000, 20_000, CaState::Recovery, 5_000);
            rounds += 1;
            assert!(rounds < 40, "no policer seen after {rounds} rounds");
        }
        assert!(rounds >= 8, "two intervals of at least 4 rounds: {rounds}");
        let info = d.b.info();
        assert!(info.lt_use_bw && info.bw.abs_diff(2_000_000) < 100_000, "{info:?}");
        assert_eq!(d.b.pacing_gain, UNIT, "no probing above a policer");
        // 48 rounds later it probes again.
        for _ in 0..48 {
            d.ack(MIN_RTT, true, 2_000_000, 20_000, 20_000, CaState::Open, 0);
        }
        assert!(!d.b.lt_use_bw);
    }
}
