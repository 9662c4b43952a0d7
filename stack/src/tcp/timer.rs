//! Timers: retransmission (RFC 6298), delayed ACK, persist (zero-window probe), TIME-WAIT.

use smoltcp::time::Instant;

use super::conn::{Conn, ConnError, State};
use crate::counters::Counters;

impl Conn {
    /// The earliest deadline, if any timer runs.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.rst_pending || self.ack_now || self.probe_pending {
            return Some(Instant::ZERO);
        }
        [self.rto_at, self.ack_at, self.persist_at, self.time_wait_at]
            .into_iter()
            .flatten()
            .min()
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
        if self.rto_at.is_some_and(|t| t <= now) {
            self.rto_at = None;
            self.on_rto(now, ctr);
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
