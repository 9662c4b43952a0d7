//! Slow start with HyStart++ (RFC 9406), shared by every controller.
//!
//! Classic slow start doubles the window each round trip until a loss, which on a path
//! with a deep bottleneck queue overshoots by up to a window and loses much of it at once.
//! HyStart++ watches the smallest RTT of each round: when it rises by more than
//! `clamp(last round's minimum / 8, 4 ms, 16 ms)` the queue is filling, and the sender
//! moves to Conservative Slow Start (CSS: a quarter of the growth) for up to five rounds,
//! then to congestion avoidance with `ssthresh = cwnd`. If the RTT falls back below the
//! baseline during CSS the rise was noise and slow start resumes. It runs only in the
//! first slow start; after a loss or a timeout, slow start is the classic one.
//!
//! Growth per ACK is capped at `L = 8` segments (RFC 9406 section 4.2, for a sender that
//! does not pace).

use smoltcp::time::Duration;

use crate::wire::Seq;

const MIN_RTT_THRESH: Duration = Duration::from_millis(4);
const MAX_RTT_THRESH: Duration = Duration::from_millis(16);
const MIN_RTT_DIVISOR: u32 = 8;
const N_RTT_SAMPLE: u32 = 8;
const CSS_GROWTH_DIVISOR: usize = 4;
const CSS_ROUNDS: u32 = 5;
/// Most segments one ACK may grow the window by.
pub const L: usize = 8;

/// What slow start did on an ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsEvent {
    /// Nothing worth counting.
    None,
    /// The RTT rose: Conservative Slow Start began.
    EnteredCss,
    /// CSS ran its rounds: slow start is over (`ssthresh = cwnd`).
    Exited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Classic slow start, watching the RTT.
    Slow,
    /// Conservative slow start, `rounds` rounds done.
    Css { rounds: u8 },
    /// Not (or no longer) used.
    Off,
}

/// An RTT in microseconds, `NONE` when not measured (compact: every connection has one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Us(u32);

impl Us {
    const NONE: Us = Us(u32::MAX);

    fn of(d: Duration) -> Us {
        Us(d.total_micros().min(u64::from(u32::MAX - 1)) as u32)
    }

    fn get(self) -> Option<Duration> {
        (self != Us::NONE).then(|| Duration::from_micros(u64::from(self.0)))
    }
}

/// HyStart++ state for one connection.
#[derive(Debug, Clone)]
pub struct HyStart {
    phase: Phase,
    /// Whether `window_end` is set.
    in_round: bool,
    /// The round ends when this is acknowledged (`SND.NXT` at its start).
    window_end: Seq,
    last_round_min: Us,
    round_min: Us,
    css_baseline: Us,
    samples: u32,
}

/// The per-ACK inputs slow start needs.
#[derive(Debug, Clone, Copy)]
pub struct SsAck {
    /// Bytes newly delivered.
    pub acked: usize,
    /// Send MSS.
    pub mss: usize,
    /// This ACK's RTT sample, if it gave one.
    pub rtt: Option<Duration>,
    /// The cumulative ACK.
    pub ack: Seq,
    /// `SND.NXT` now.
    pub snd_nxt: Seq,
}

impl HyStart {
    /// HyStart++ for the first slow start, or off.
    pub fn new(enabled: bool) -> Self {
        HyStart {
            phase: if enabled { Phase::Slow } else { Phase::Off },
            in_round: false,
            window_end: Seq(0),
            last_round_min: Us::NONE,
            round_min: Us::NONE,
            css_baseline: Us::NONE,
            samples: 0,
        }
    }

    /// Stops for good (a loss, a timeout, or slow start ended).
    pub fn stop(&mut self) {
        self.phase = Phase::Off;
    }

    /// Whether in Conservative Slow Start.
    #[cfg(test)]
    pub fn in_css(&self) -> bool {
        matches!(self.phase, Phase::Css { .. })
    }

    /// One ACK in slow start: grows `cwnd`, and returns what happened. On
    /// [`SsEvent::Exited`] the caller sets `ssthresh = cwnd`.
    pub fn on_ack(&mut self, cwnd: &mut usize, a: &SsAck) -> SsEvent {
        let grow = a.acked.min(L * a.mss);
        if self.phase == Phase::Off {
            *cwnd += grow;
            return SsEvent::None;
        }
        let mut ev = SsEvent::None;
        // A new round when the last one's data are acknowledged.
        let round_over = !self.in_round || a.ack.ge(self.window_end);
        if round_over {
            self.in_round = true;
            self.window_end = a.snd_nxt;
            self.last_round_min = self.round_min;
            self.round_min = Us::NONE;
            self.samples = 0;
            if let Phase::Css { rounds } = &mut self.phase {
                *rounds += 1;
                if u32::from(*rounds) >= CSS_ROUNDS {
                    self.phase = Phase::Off;
                    return SsEvent::Exited;
                }
            }
        }
        if let Some(rtt) = a.rtt {
            self.round_min = Us::of(self.round_min.get().map_or(rtt, |m| m.min(rtt)));
            self.samples += 1;
        }
        let (cur, enough) = (self.round_min.get(), self.samples >= N_RTT_SAMPLE);
        match self.phase {
            Phase::Slow => {
                *cwnd += grow;
                if let (true, Some(cur), Some(last)) = (enough, cur, self.last_round_min.get()) {
                    let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                    if cur >= last + thresh {
                        self.css_baseline = Us::of(cur);
                        self.phase = Phase::Css { rounds: 0 };
                        ev = SsEvent::EnteredCss;
                    }
                }
            }
            Phase::Css { .. } => {
                *cwnd += grow / CSS_GROWTH_DIVISOR;
                if let (true, Some(cur), Some(base)) = (enough, cur, self.css_baseline.get()) {
                    if cur < base {
                        // The RTT rise was not a queue: back to slow start.
                        self.css_baseline = Us::NONE;
                        self.phase = Phase::Slow;
                    }
                }
            }
            Phase::Off => {}
        }
        ev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives rounds of `per_round` ACKs of one MSS with RTT `rtt(round)`.
    fn rounds(h: &mut HyStart, cwnd: &mut usize, n: u32, rtt: impl Fn(u32) -> u64) -> Vec<(u32, SsEvent)> {
        let mss = 1000;
        let mut seq = Seq(0);
        let mut evs = Vec::new();
        for r in 0..n {
            // One round: an ACK of one MSS for each segment of the window, while the
            // sender keeps `cwnd` in flight beyond the ACK.
            let acks = *cwnd / mss;
            for _ in 0..acks {
                seq = seq.add_len(mss);
                let snd_nxt = seq.add_len(*cwnd);
                let a = SsAck { acked: mss, mss, rtt: Some(Duration::from_millis(rtt(r))), ack: seq, snd_nxt };
                let e = h.on_ack(cwnd, &a);
                if e != SsEvent::None {
                    evs.push((r, e));
                }
            }
        }
        evs
    }

    #[test]
    fn flat_rtt_stays_in_slow_start() {
        let mut h = HyStart::new(true);
        let mut cwnd = 10_000;
        let evs = rounds(&mut h, &mut cwnd, 6, |_| 20);
        assert!(evs.is_empty(), "{evs:?}");
        assert_eq!(cwnd, 640_000, "doubling every round");
    }

    #[test]
    fn rising_rtt_enters_css_then_exits_after_five_rounds() {
        let mut h = HyStart::new(true);
        let mut cwnd = 10_000;
        // The queue starts to build in round 3: +5 ms (above the 4 ms threshold).
        let evs = rounds(&mut h, &mut cwnd, 12, |r| if r >= 3 { 25 } else { 20 });
        assert_eq!(evs.first(), Some(&(3, SsEvent::EnteredCss)), "{evs:?}");
        assert_eq!(evs.get(1), Some(&(8, SsEvent::Exited)), "{evs:?}");
    }

    #[test]
    fn css_returns_to_slow_start_when_rtt_falls() {
        let mut h = HyStart::new(true);
        let mut cwnd = 10_000;
        let evs = rounds(&mut h, &mut cwnd, 5, |r| if r == 3 { 25 } else { 20 });
        assert_eq!(evs, [(3, SsEvent::EnteredCss)]);
        assert!(!h.in_css(), "round 4's RTT is below the CSS baseline");
    }

    #[test]
    fn off_is_classic_slow_start_capped_at_l() {
        let mut h = HyStart::new(false);
        let mut cwnd = 10_000;
        let a = SsAck { acked: 20_000, mss: 1000, rtt: None, ack: Seq(20_000), snd_nxt: Seq(30_000) };
        assert_eq!(h.on_ack(&mut cwnd, &a), SsEvent::None);
        assert_eq!(cwnd, 18_000, "at most L segments per ACK");
    }
}
