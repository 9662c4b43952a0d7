//! Timers: retransmission (RFC 6298), delayed ACK, persist (zero-window probe), TIME-WAIT.

use smoltcp::time::{Duration, Instant};

use super::conn::{Conn, ConnError, State};
use crate::counters::Counters;

impl Conn {
    /// The earliest deadline, if any timer runs.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.rst_pending || self.ack_now || self.probe_pending || self.tlp_pending {
            return Some(Instant::ZERO);
        }
        [self.rto_at, self.tlp_at, self.ack_at, self.persist_at, self.time_wait_at].into_iter().flatten().min()
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, ctr: &mut Counters) {
        if self.time_wait_at.is_some_and(|t| t <= now) {
            self.time_wait_at = None;
            if self.state == State::TimeWait {
                self.state = State::Closed;
            }
        }
        if self.ack_at.is_some_and(|t| t <= now) {
            self.ack_at = None;
            self.ack_now = true;
        }
        if self.persist_at.is_some_and(|t| t <= now) {
            self.persist_at = None;
            self.persist_backoff += 1;
            self.probe_pending = true;
        }
        if self.tlp_at.is_some_and(|t| t <= now) {
            self.tlp_at = None;
            if self.tlp_allowed() {
                self.tlp_pending = true;
                self.tlp_fired = true;
            }
        }
        if self.rto_at.is_some_and(|t| t <= now) {
            self.rto_at = None;
            self.on_rto(now, ctr);
        }
    }

    /// Whether a tail loss probe may be sent: data outstanding, SACK on (the probe's ACK
    /// tells what arrived), no recovery or timeout under way, none sent since the last
    /// ACK that advanced `snd_una`.
    fn tlp_allowed(&self) -> bool {
        self.cfg.tail_loss_probe
            && self.sack_ok
            && self.state.synchronized()
            && !self.in_recovery
            && self.retries == 0
            && !self.tlp_fired
            && self.snd_nxt == self.snd_max
            && self.snd_max.gt(self.snd_una)
    }

    /// Arms the probe timeout after new data went out or an ACK advanced (RFC 8985
    /// section 7.2): two smoothed RTTs plus a margin for the peer's delayed ACK (10 ms, or
    /// a whole delayed-ACK timeout when one segment is in flight, as Linux does), and only
    /// when that comes before the retransmission timeout.
    pub(super) fn arm_tlp(&mut self, now: Instant) {
        self.tlp_at = None;
        if !self.tlp_allowed() {
            return;
        }
        let Some(srtt) = self.rtt.srtt() else { return };
        let margin = if self.snd_max.since(self.snd_una) as usize <= self.mss {
            self.cfg.min_rto
        } else {
            Duration::from_millis(10)
        };
        let at = now + srtt + srtt + margin;
        if self.rto_at.is_none_or(|r| at < r) {
            self.tlp_at = Some(at);
        }
    }

    fn on_rto(&mut self, now: Instant, ctr: &mut Counters) {
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
                if self.retries > self.cfg.max_retries {
                    ctr.tcp_timeouts += 1;
                    self.fail(ConnError::TimedOut);
                    return;
                }
                let flight = self.snd_max.since(self.snd_una) as usize;
                self.cc.on_rto(now, flight, self.mss);
                self.tlp_at = None;
                self.tlp_pending = false;
                self.in_recovery = false;
                self.inflation = 0;
                self.dupacks = 0;
                self.recover = self.snd_max;
                self.rexmit_pending = false;
                self.rexmit_nxt = self.snd_una;
                self.rexmit_marks.clear();
                self.snd_nxt = self.snd_una;
            }
        }
    }
}
