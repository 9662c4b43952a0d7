//! Timers: retransmission (RFC 6298; in SYN-SENT and SYN-RECEIVED it retransmits the
//! handshake), delayed ACK, persist (zero-window probe), RACK's reorder timer and the
//! tail loss probe (RFC 8985), TIME-WAIT, FIN-WAIT-2 and keep-alive; and the pacer's next
//! departure (`pacing.rs`), which is kept with the pacer rather than as a kind here, so
//! that only a connection that has sent data pays for it.
//!
//! Every state has a bounded lifetime once the application has let go:
//!
//! | state | bound |
//! |---|---|
//! | SYN-SENT, SYN-RECEIVED | `syn_retries` handshake retransmissions |
//! | ESTABLISHED, CLOSE-WAIT | the application's (it holds the handle); `max_retries` retransmissions, or zero-window probes nobody answers; keep-alive if enabled |
//! | FIN-WAIT-1, CLOSING, LAST-ACK | `orphan_retries` retransmissions, or zero-window probes answered with a zero window |
//! | FIN-WAIT-2 | `fin_wait2_timeout` |
//! | TIME-WAIT | `time_wait`, and the stack's TIME-WAIT cap |
//!
//! A connection keeps one deadline per [`TimerKind`] in [`Timers`]; the stack files each
//! connection once in its timer wheel, at [`Conn::next_deadline`] (the earliest of them),
//! and calls [`Conn::handle_timeout`] when that passes, which runs every kind that is due.
//!
//! Adding a timer kind (say a RACK reorder timer) takes three steps, all in this file: a
//! variant of [`TimerKind`], its place in [`TimerKind::ALL`] (the order in which kinds due
//! at the same time run), and an arm in [`Conn::on_timer`]. Arm it with
//! `self.timers.set(kind, at)` and stop it with `self.timers.clear(kind)`; the stack
//! re-files the connection in its wheel after every event, so nothing else changes.

use smoltcp::time::{Duration, Instant};

use super::conn::{CaState, Conn, ConnError, State};
use crate::counters::Counters;

/// What a connection's timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// 2 MSL in TIME-WAIT.
    TimeWait,
    /// A delayed ACK is due.
    DelayedAck,
    /// Zero-window probe (persist timer).
    Persist,
    /// RACK's reorder timer (RFC 8985 section 6.3): a segment sent before a delivered one
    /// becomes lost when its reordering window runs out.
    Reorder,
    /// Tail loss probe (RFC 8985 section 7.2 probe timeout).
    LossProbe,
    /// Retransmission timeout (RFC 6298), handshake retransmission included.
    Retransmit,
    /// FIN-WAIT-2 waited long enough for the peer's FIN.
    FinWait2,
    /// Idle long enough for a keep-alive probe (or the next one).
    KeepAlive,
}

impl TimerKind {
    /// How many kinds there are.
    pub const COUNT: usize = 8;
    /// Every kind, in the order they run when several are due at once.
    pub const ALL: [TimerKind; TimerKind::COUNT] = [
        TimerKind::TimeWait,
        TimerKind::DelayedAck,
        TimerKind::Persist,
        TimerKind::Reorder,
        TimerKind::LossProbe,
        TimerKind::Retransmit,
        TimerKind::FinWait2,
        TimerKind::KeepAlive,
    ];
}

/// Not armed.
const OFF: i64 = i64::MAX;

/// One deadline per [`TimerKind`] (microseconds, `OFF` when stopped: 8 bytes a kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timers {
    at: [i64; TimerKind::COUNT],
}

impl Default for Timers {
    fn default() -> Self {
        Timers { at: [OFF; TimerKind::COUNT] }
    }
}

impl Timers {
    /// The deadline of `kind`, if armed.
    pub fn get(&self, kind: TimerKind) -> Option<Instant> {
        let t = self.at[kind as usize];
        (t != OFF).then(|| Instant::from_micros(t))
    }

    /// Whether `kind` is armed.
    pub fn is_set(&self, kind: TimerKind) -> bool {
        self.at[kind as usize] != OFF
    }

    /// Arms (or moves) `kind` to fire at `at`.
    pub fn set(&mut self, kind: TimerKind, at: Instant) {
        self.at[kind as usize] = at.total_micros().min(OFF - 1);
    }

    /// Stops `kind`.
    pub fn clear(&mut self, kind: TimerKind) {
        self.at[kind as usize] = OFF;
    }

    /// Stops every kind.
    pub fn clear_all(&mut self) {
        self.at = [OFF; TimerKind::COUNT];
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        let t = *self.at.iter().min().unwrap_or(&OFF);
        (t != OFF).then(|| Instant::from_micros(t))
    }

    /// Stops `kind` and returns true if it is due at `now`.
    fn take_due(&mut self, kind: TimerKind, now: Instant) -> bool {
        let due = self.at[kind as usize] <= now.total_micros();
        if due {
            self.at[kind as usize] = OFF;
        }
        due
    }
}

impl Conn {
    /// The earliest time the connection needs attention: now if a segment is pending, else
    /// its next timer.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.rst_pending || self.ack_now || self.probe_pending || self.ka_pending || self.tlp_pending {
            return Some(Instant::ZERO);
        }
        self.next_deadline()
    }

    /// The earliest armed timer, or the departure pacing waits for: where the stack files
    /// the connection in its wheel.
    pub fn next_deadline(&self) -> Option<Instant> {
        let pace = self.loss.as_ref().and_then(|l| l.pacer.wake_at());
        match (self.timers.next(), pace) {
            (Some(t), Some(p)) => Some(t.min(p)),
            (t, p) => t.or(p),
        }
    }

    /// The connection's timers.
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, ctr: &mut Counters) {
        // A departure pacing waited for: nothing to do but send, and the stack puts the
        // connection on its ready list after any timer.
        if let Some(l) = self.loss.as_mut() {
            l.pacer.take_wake(now);
        }
        for kind in TimerKind::ALL {
            if self.timers.take_due(kind, now) {
                self.on_timer(kind, now, ctr);
            }
        }
    }

    /// One expired timer.
    fn on_timer(&mut self, kind: TimerKind, now: Instant, ctr: &mut Counters) {
        match kind {
            TimerKind::TimeWait => {
                if self.state == State::TimeWait {
                    self.state = State::Closed;
                }
            }
            TimerKind::DelayedAck => self.ack_now = true,
            TimerKind::Persist => {
                // RFC 1122 4.2.2.17 keeps probing as long as the peer answers; an orphan,
                // with no application to give up on it, is dropped after a bound.
                if self.orphaned && u32::from(self.persist_backoff) >= self.cfg.orphan_retries {
                    ctr.tcp_orphan_drops += 1;
                    self.fail(ConnError::TimedOut);
                    return;
                }
                // Probes nobody answers: the peer vanished behind its zero window. Linux
                // gives up after `tcp_retries2` of them, owned connection or not.
                if self.ka_probes >= self.cfg.max_retries {
                    ctr.tcp_timeouts += 1;
                    ctr.tcp_probe_timeouts += 1;
                    self.fail(ConnError::TimedOut);
                    return;
                }
                self.ka_probes += 1;
                self.persist_backoff = self.persist_backoff.saturating_add(1);
                self.probe_pending = true;
            }
            TimerKind::Reorder => self.on_reorder_timeout(now, ctr),
            TimerKind::LossProbe => {
                if self.tlp_allowed() {
                    self.tlp_pending = true;
                    // The probe goes instead of a timeout; the retransmission timer
                    // restarts behind it (RFC 8985 section 7.3).
                    self.timers.set(TimerKind::Retransmit, now + self.rtt.rto());
                }
            }
            TimerKind::Retransmit => self.on_rto(now, ctr),
            TimerKind::FinWait2 => {
                if self.state == State::FinWait2 {
                    ctr.tcp_fin_wait2_timeouts += 1;
                    self.fail(ConnError::TimedOut);
                }
            }
            TimerKind::KeepAlive => self.on_keepalive(now, ctr),
        }
    }

    /// The peer showed it is alive (an acceptable segment): restart the keep-alive clock.
    pub(super) fn heard_from_peer(&mut self, now: Instant) {
        self.ka_probes = 0;
        if let Some(ka) = self.cfg.keepalive {
            if matches!(self.state, State::Established | State::CloseWait) {
                self.timers.set(TimerKind::KeepAlive, now + ka.idle);
            }
        }
    }

    /// Keep-alive (RFC 9293 3.8.4): probe an idle connection; reset it when `probes` go
    /// unanswered. While data are outstanding the retransmission timer watches instead.
    fn on_keepalive(&mut self, now: Instant, ctr: &mut Counters) {
        let Some(ka) = self.cfg.keepalive else { return };
        if !matches!(self.state, State::Established | State::CloseWait) {
            return;
        }
        if self.snd_una != self.snd_max || !self.sendq.is_empty() {
            self.timers.set(TimerKind::KeepAlive, now + ka.idle);
            return;
        }
        if self.ka_probes >= ka.probes {
            ctr.tcp_keepalive_timeouts += 1;
            self.rst_pending = true;
            self.fail(ConnError::TimedOut);
            return;
        }
        self.ka_probes += 1;
        ctr.tcp_keepalive_probes += 1;
        self.ka_pending = true;
        self.timers.set(TimerKind::KeepAlive, now + ka.interval);
    }

    /// Whether a tail loss probe may be sent: data outstanding, SACK on (the probe's ACK
    /// tells what arrived), no recovery or timeout under way, no probe in flight
    /// (RFC 8985 section 7.3: one until its ACK comes).
    fn tlp_allowed(&self) -> bool {
        self.cfg.tail_loss_probe
            && self.sack_ok
            && self.state.synchronized()
            && self.ca == CaState::Open
            && self.retries == 0
            && self.tlp.is_none()
            && self.snd_nxt == self.snd_max
            && self.snd_max.gt(self.snd_una)
    }

    /// Arms the probe timeout after new data went out or an ACK advanced (RFC 8985
    /// section 7.2): two smoothed RTTs, plus the worst-case delayed ACK (200 ms) when one
    /// segment is in flight, else 2 ms (Linux `TCP_TIMEOUT_MIN`: the probe must not race
    /// the ACK it is waiting for); no later than the retransmission timer would fire, so
    /// a probe rather than a timeout answers a lost tail.
    pub(super) fn arm_tlp(&mut self, now: Instant) {
        self.timers.clear(TimerKind::LossProbe);
        if !self.tlp_allowed() {
            return;
        }
        let Some(srtt) = self.rtt.srtt() else { return };
        let margin = if self.snd_max.since(self.snd_una) as usize <= self.mss {
            self.cfg.min_rto
        } else {
            Duration::from_millis(2)
        };
        let mut at = now + srtt + srtt + margin;
        if let Some(rto) = self.timers.get(TimerKind::Retransmit) {
            at = at.min(rto);
        }
        self.timers.set(TimerKind::LossProbe, at);
    }

    fn on_rto(&mut self, now: Instant, ctr: &mut Counters) {
        log::debug!(
            "retransmission timeout at {now}: {:?} {:?}, {} B outstanding, pipe {}, {} SACKed, {} lost, rto {}, retries {}",
            self.state,
            self.ca,
            self.snd_max.since(self.snd_una),
            self.ls().rtx.pipe(),
            self.ls().rtx.sacked(),
            self.ls().rtx.lost(),
            self.rtt.rto(),
            self.retries
        );
        ctr.tcp_rto_expired += 1;
        self.retries += 1;
        self.rtt.backoff();
        self.rtt_probe = None;
        match self.state {
            State::SynSent | State::SynReceived => {
                if self.retries > self.cfg.syn_retries {
                    ctr.tcp_timeouts += 1;
                    self.fail(ConnError::TimedOut);
                } else {
                    self.snd_nxt = self.iss;
                }
            }
            State::Closed | State::TimeWait => {}
            _ => {
                if self.snd_una == self.snd_max {
                    return;
                }
                let limit = if self.orphaned {
                    self.cfg.orphan_retries.min(self.cfg.max_retries)
                } else {
                    self.cfg.max_retries
                };
                // An orphan's retries are also bounded in time, as if its RTO had started
                // at `min_rto` (Linux `retransmits_timed_out` with `tcp_model_timeout`):
                // after a slow handshake its RTO starts large, and `orphan_retries` of
                // those, backed off up to `max_rto`, would hold its send queue's frames
                // for a quarter of an hour after the peer vanished.
                let out_of_time =
                    self.orphaned && self.rtt.backed_off_time(self.retries) >= self.cfg.retries_time(limit);
                if self.retries > limit || out_of_time {
                    ctr.tcp_timeouts += 1;
                    if self.orphaned {
                        ctr.tcp_orphan_drops += 1;
                    }
                    self.fail(ConnError::TimedOut);
                    return;
                }
                self.enter_loss(now, ctr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_keep_one_deadline_per_kind() {
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        t.set(TimerKind::Retransmit, Instant::from_millis(300));
        t.set(TimerKind::DelayedAck, Instant::from_millis(40));
        assert_eq!(t.next(), Some(Instant::from_millis(40)));
        assert!(!t.take_due(TimerKind::DelayedAck, Instant::from_millis(39)));
        assert!(t.take_due(TimerKind::DelayedAck, Instant::from_millis(40)));
        assert!(!t.is_set(TimerKind::DelayedAck));
        assert_eq!(t.next(), Some(Instant::from_millis(300)));
        t.set(TimerKind::Retransmit, Instant::from_millis(500));
        assert_eq!(t.get(TimerKind::Retransmit), Some(Instant::from_millis(500)));
        t.clear_all();
        assert_eq!(t.next(), None);
    }
}
