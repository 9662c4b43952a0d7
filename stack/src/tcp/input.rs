//! Segment arrival (RFC 9293 section 3.10.7), with RFC 5961 RST/SYN handling, PAWS
//! (RFC 7323), the window update, and D-SACK reports of duplicates (RFC 2883). What an
//! ACK means for loss recovery is in `recovery.rs`.

use smoltcp::time::{Duration, Instant};
use umem::BufSlice;

use super::conn::{Conn, ConnError, State};
use super::dsack::duplicate_part;
use super::recovery::AckEvent;
use super::recv_queue::Insert;
use super::timer::TimerKind;
use crate::counters::Counters;
use crate::wire::{Seq, TcpFlags, TcpHeader};

/// A reply the connection asks the stack to send outside its own output (a RST for a
/// segment that does not belong to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Nothing.
    None,
    /// `<SEQ=seq><CTL=RST>` (RFC 9293 reset generation, ACK-bearing case).
    Rst {
        /// Sequence number of the RST.
        seq: Seq,
    },
}

impl Conn {
    /// Processes one received segment. `payload` is the segment's data as a slice of the
    /// received frame (kept by reference when accepted).
    pub fn handle_segment(
        &mut self,
        now: Instant,
        hdr: &TcpHeader,
        payload: Option<BufSlice>,
        ctr: &mut Counters,
    ) -> Reply {
        let plen = payload.as_ref().map_or(0, BufSlice::len);
        match self.state {
            State::Closed => Reply::None,
            State::SynSent => self.handle_syn_sent(now, hdr, ctr),
            _ => self.handle_synchronized(now, hdr, payload, plen, ctr),
        }
    }

    fn handle_syn_sent(&mut self, now: Instant, hdr: &TcpHeader, ctr: &mut Counters) -> Reply {
        let f = hdr.flags;
        if f.has(TcpFlags::ACK) && (hdr.ack.le(self.iss) || hdr.ack.gt(self.snd_max)) {
            if f.has(TcpFlags::RST) {
                ctr.tcp_rst_bad_seq += 1;
                return Reply::None;
            }
            ctr.tcp_ack_unsent += 1;
            return Reply::Rst { seq: hdr.ack };
        }
        if f.has(TcpFlags::RST) {
            if f.has(TcpFlags::ACK) {
                ctr.tcp_resets_received += 1;
                self.fail(ConnError::Refused);
            } else {
                ctr.tcp_rst_bad_seq += 1;
            }
            return Reply::None;
        }
        if !f.has(TcpFlags::SYN) {
            return Reply::None;
        }
        self.take_syn_options(hdr);
        self.irs = hdr.seq;
        self.rcv_nxt = hdr.seq.add(1);
        self.rcv_adv = self.rcv_nxt;
        self.snd_wl1 = hdr.seq;
        if f.has(TcpFlags::ACK) {
            self.snd_una = hdr.ack;
            self.snd_wl2 = hdr.ack;
            // The window of a SYN is never scaled.
            self.snd_wnd = u32::from(hdr.window);
            self.max_snd_wnd = self.snd_wnd;
            self.rtt_sample_on_handshake(now, hdr);
            self.state = State::Established;
            ctr.tcp_established += 1;
            self.timers.clear(TimerKind::Retransmit);
            self.retries = 0;
            self.ack_now = true;
            self.heard_from_peer(now);
        } else {
            // Simultaneous open: answer with SYN-ACK.
            self.snd_wnd = u32::from(hdr.window);
            self.state = State::SynReceived;
            self.snd_nxt = self.iss;
        }
        Reply::None
    }

    fn rtt_sample_on_handshake(&mut self, now: Instant, hdr: &TcpHeader) {
        let sample = match self.rtt_probe.take() {
            Some((seq, sent)) if hdr.ack.ge(seq) => Some(now - sent),
            _ => hdr.options.timestamp.filter(|_| self.ts_ok).and_then(|(_, ecr)| self.ts_rtt(now, ecr)),
        };
        if let Some(rtt) = sample {
            self.rtt.sample(rtt);
            self.rtt.sample_min(now, rtt);
        }
    }

    /// The receive window for acceptability: what we advertised, or more if there is room.
    fn rcv_wnd(&self) -> u32 {
        let adv = if self.rcv_adv.gt(self.rcv_nxt) { self.rcv_adv.since(self.rcv_nxt) } else { 0 };
        adv.max(self.rcv_window_avail().min(u32::MAX as usize / 2) as u32)
    }

    fn acceptable(&self, seq: Seq, seg_len: usize) -> bool {
        let wnd = self.rcv_wnd();
        let nxt = self.rcv_nxt;
        match (seg_len, wnd) {
            (0, 0) => seq == nxt,
            (0, w) => seq.in_range(nxt, nxt.add(w)),
            (_, 0) => false,
            (l, w) => {
                let last = seq.add_len(l - 1);
                seq.in_range(nxt, nxt.add(w)) || last.in_range(nxt, nxt.add(w))
            }
        }
    }

    fn handle_synchronized(
        &mut self,
        now: Instant,
        hdr: &TcpHeader,
        payload: Option<BufSlice>,
        plen: usize,
        ctr: &mut Counters,
    ) -> Reply {
        let f = hdr.flags;
        let seg_len = hdr.seq_len(plen);

        // PAWS (RFC 7323 section 5).
        if self.paws_rejects(now, hdr, plen, ctr) {
            return Reply::None;
        }

        // Sequence acceptability.
        if !self.acceptable(hdr.seq, seg_len) {
            if f.has(TcpFlags::RST) {
                ctr.tcp_rst_bad_seq += 1;
                return Reply::None;
            }
            ctr.tcp_out_of_window += 1;
            if self.state == State::SynReceived {
                // A retransmitted SYN: say SYN-ACK again.
                if f.has(TcpFlags::SYN) && hdr.seq == self.irs {
                    self.snd_nxt = self.iss;
                }
                return Reply::None;
            }
            if self.state == State::TimeWait && f.has(TcpFlags::FIN) {
                self.timers.set(TimerKind::TimeWait, now + self.cfg.time_wait);
            }
            // Data we already have (a needless retransmission, or the network duplicated
            // it): say so in a D-SACK block (RFC 2883).
            let end = hdr.seq.add_len(plen);
            if self.sack_ok && plen > 0 && end.le(self.rcv_nxt) && self.rcv_nxt.since(end) < 1 << 30 {
                self.dsack = Some((hdr.seq, end));
            }
            self.oow_ack(now, hdr, plen, ctr);
            return Reply::None;
        }

        // RST (RFC 5961 section 3.2).
        if f.has(TcpFlags::RST) {
            if hdr.seq == self.rcv_nxt {
                ctr.tcp_resets_received += 1;
                self.fail(ConnError::Reset);
            } else {
                ctr.tcp_rst_challenged += 1;
                self.challenge_ack(now, hdr, plen, ctr);
            }
            return Reply::None;
        }

        // SYN in a synchronized state (RFC 5961 section 4).
        if f.has(TcpFlags::SYN) {
            ctr.tcp_syn_challenged += 1;
            self.challenge_ack(now, hdr, plen, ctr);
            return Reply::None;
        }

        if !f.has(TcpFlags::ACK) {
            ctr.tcp_no_ack += 1;
            return Reply::None;
        }

        if self.state == State::SynReceived {
            if hdr.ack.gt(self.snd_una) && hdr.ack.le(self.snd_max) {
                self.state = State::Established;
                ctr.tcp_established += 1;
                self.retries = 0;
                self.snd_wnd = u32::from(hdr.window) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = hdr.seq;
                self.snd_wl2 = hdr.ack;
                self.rtt_sample_on_handshake(now, hdr);
                self.snd_una = hdr.ack;
                self.snd_nxt = self.snd_nxt.max(hdr.ack);
                self.timers.clear(TimerKind::Retransmit);
            } else {
                ctr.tcp_ack_unsent += 1;
                return Reply::Rst { seq: hdr.ack };
            }
        }

        // Timestamp to echo (RFC 7323 section 4.3).
        self.update_ts_recent(now, hdr);

        self.heard_from_peer(now);
        if !self.process_ack(now, hdr, plen, ctr) {
            return Reply::None;
        }
        if self.state == State::Closed {
            return Reply::None;
        }

        // New data for an application that closed (so will never read it): reset
        // (RFC 1122 4.2.2.13; Linux's tcp_rcv_state_process, `TCPAbortOnData`).
        if self.orphaned
            && plen > 0
            && matches!(self.state, State::FinWait1 | State::FinWait2)
            && hdr.seq.add_len(plen).gt(self.rcv_nxt)
        {
            ctr.tcp_abort_on_data += 1;
            self.fail(ConnError::Aborted);
            return Reply::Rst { seq: hdr.ack };
        }

        // Payload.
        if let Some(p) = payload.filter(|p| !p.is_empty()) {
            if matches!(self.state, State::Established | State::FinWait1 | State::FinWait2) {
                self.take_payload(now, hdr.seq, p, ctr);
            }
        }

        // FIN, once everything before it has arrived (an early FIN is remembered).
        if f.has(TcpFlags::FIN) && !self.fin_received {
            let fin_at = hdr.seq.add_len(plen);
            if fin_at.ge(self.rcv_nxt) {
                self.rcv_fin = Some(fin_at);
            }
        }
        if !self.fin_received && self.rcv_fin == Some(self.rcv_nxt) {
            self.fin_received = true;
            self.rcv_nxt = self.rcv_nxt.add(1);
            self.ack_now = true;
            match self.state {
                State::Established => self.state = State::CloseWait,
                State::FinWait1 => self.state = State::Closing,
                State::FinWait2 => self.enter_time_wait(now),
                _ => {}
            }
        } else if f.has(TcpFlags::FIN) && self.state == State::TimeWait {
            self.ack_now = true;
            self.timers.set(TimerKind::TimeWait, now + self.cfg.time_wait);
        }
        Reply::None
    }

    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        // Everything we sent is acknowledged: no retransmission, probe or loss probe is
        // left to send (the stack then keeps only a compact TIME-WAIT entry).
        self.timers.clear_all();
        self.timers.set(TimerKind::TimeWait, now + self.cfg.time_wait);
        self.rexmit_pending = false;
        self.tlp_pending = false;
        self.probe_pending = false;
        self.ka_pending = false;
        self.sendq.ack_to(self.sendq.tail());
        self.loss = None;
    }

    /// ACK processing; false when the segment is to be dropped.
    fn process_ack(&mut self, now: Instant, hdr: &TcpHeader, plen: usize, ctr: &mut Counters) -> bool {
        // RFC 5961 section 5.
        if !self.ack_acceptable(now, hdr, plen, ctr) {
            return false;
        }
        let ack = hdr.ack;
        let wnd = u32::from(hdr.window) << self.snd_wscale;
        let mut ev =
            AckEvent::new(self.snd_una, self.ls().scoreboard.high(), self.ls().rtx.lost_total(), self.flight());
        if self.sack_ok {
            self.take_sack_blocks(now, hdr, &mut ev, ctr);
        }

        let old_wnd = self.snd_wnd;
        // Window update (RFC 9293 3.10.7.4, SND.WL1/WL2 rule).
        if self.snd_wl1.lt(hdr.seq) || (self.snd_wl1 == hdr.seq && self.snd_wl2.le(ack)) {
            self.snd_wnd = wnd;
            self.max_snd_wnd = self.max_snd_wnd.max(wnd);
            self.snd_wl1 = hdr.seq;
            self.snd_wl2 = ack;
            if wnd > 0 {
                self.timers.clear(TimerKind::Persist);
                self.persist_backoff = 0;
            }
        }

        let advanced = ack.gt(self.snd_una);
        if advanced {
            self.ack_rtx(now, hdr, &mut ev);
        }
        self.note_reordering(&ev, ctr);
        let rtt = self.take_rtt_samples(now, hdr, &ev);
        if advanced {
            self.on_new_ack(now, hdr, rtt, ctr);
        } else if !self.sack_ok
            && ack == self.snd_una
            && plen == 0
            && !hdr.flags.has(TcpFlags::FIN)
            && wnd == old_wnd
            && self.snd_max.gt(self.snd_una)
        {
            self.on_dup_ack(now, ctr);
        }
        if self.sack_ok {
            self.sack_recovery(now, hdr, &ev, rtt, ctr);
        }
        self.cong_control(now, &ev, rtt, ctr);
        true
    }

    fn on_new_ack(&mut self, now: Instant, hdr: &TcpHeader, rtt: Option<Duration>, ctr: &mut Counters) {
        let ack = hdr.ack;
        let acked = ack.since(self.snd_una) as usize;
        if let Some(l) = self.loss.as_deref_mut() {
            l.bytes_acked += acked as u64;
        }
        self.rtt.reset_backoff();
        self.retries = 0;

        // Release acknowledged data (and the frames it pinned).
        let fin_acked = self.fin_seq().is_some_and(|f| ack.gt(f));
        let upto = if fin_acked { self.sendq.tail() } else { self.data_off(ack).min(self.sendq.tail()) };
        self.sendq.ack_to(upto);
        self.snd_una = ack;
        if self.snd_nxt.lt(ack) {
            self.snd_nxt = ack;
        }
        self.lm().scoreboard.ack(ack);
        if !self.sack_ok {
            self.reno_on_new_ack(now, hdr, acked, rtt, ctr);
        }
        self.dupacks = 0;

        // Timers.
        if self.snd_una == self.snd_max {
            self.timers.clear(TimerKind::Retransmit);
            self.timers.clear(TimerKind::LossProbe);
            self.timers.clear(TimerKind::Reorder);
        } else {
            self.timers.set(TimerKind::Retransmit, now + self.rtt.rto());
            self.arm_tlp(now);
        }

        // Our FIN acknowledged.
        if fin_acked {
            match self.state {
                State::FinWait1 => {
                    self.state = State::FinWait2;
                    self.timers.set(TimerKind::FinWait2, now + self.cfg.fin_wait2_timeout);
                }
                State::Closing => self.enter_time_wait(now),
                State::LastAck => {
                    self.state = State::Closed;
                    self.timers.clear(TimerKind::Retransmit);
                }
                _ => {}
            }
        }
    }

    fn take_payload(&mut self, now: Instant, seq: Seq, mut p: BufSlice, ctr: &mut Counters) {
        // Trim to the window's right edge.
        let right = self.rcv_nxt.add(self.rcv_wnd());
        let end = seq.add_len(p.len());
        if end.gt(right) {
            let keep = if right.gt(seq) { right.since(seq) as usize } else { 0 };
            p.truncate(keep);
        }
        if self.sack_ok {
            let recvq = &self.recvq;
            if let Some(d) = duplicate_part(self.rcv_nxt, seq, seq.add_len(p.len()), |a, b| recvq.held_overlap(a, b)) {
                self.dsack = Some(d);
            }
        }
        match self.recvq.insert(self.rcv_nxt, seq, p, self.cfg.recv_buffer, ctr) {
            Insert::InOrder { advanced, filled } => {
                self.rcv_nxt = self.rcv_nxt.add_len(advanced);
                self.unacked_segs = self.unacked_segs.saturating_add(1);
                if filled || self.recvq.has_ooo() || self.cfg.delayed_ack.is_none() || self.unacked_segs >= 2 {
                    self.ack_now = true;
                } else if !self.timers.is_set(TimerKind::DelayedAck) {
                    if let Some(d) = self.cfg.delayed_ack {
                        self.timers.set(TimerKind::DelayedAck, now + d);
                    }
                }
            }
            Insert::OutOfOrder => {
                ctr.tcp_ooo_kept += 1;
                self.ack_now = true;
            }
            Insert::Duplicate => {
                ctr.tcp_dup_data += 1;
                self.ack_now = true;
            }
            Insert::OverBudget => {
                ctr.tcp_ooo_dropped += 1;
                self.ack_now = true;
            }
        }
    }
}
