//! Segment generation: SYN / SYN-ACK, retransmissions (what RACK or the retransmission
//! timer marked lost, oldest loss first; without SACK, NewReno's and go-back-N), tail loss
//! probes, new data within the send and congestion windows, FIN, window probes and ACKs.
//! Retransmissions and new data leave when pacing lets them (`pacing.rs`). Payload goes
//! out as slices of the send queue; nothing is copied here.

use smoltcp::time::Instant;

use super::conn::{CaState, Conn, OutSegment, Probe, State};
use super::rtx_queue::{Seg, BY_RTO};
use super::timer::TimerKind;
use crate::counters::Counters;
use crate::wire::{SackBlocks, Seq, TcpFlags, TcpHeader, TcpOptions};

impl Conn {
    /// Produces the next segment to send, if any. Call until it returns false.
    pub fn poll_segment(&mut self, now: Instant, out: &mut OutSegment, ctr: &mut Counters) -> bool {
        out.payload.clear();
        out.retransmit = false;
        out.dsack = false;
        let sent = self.next_segment(now, out, ctr);
        if sent && out.dsack {
            ctr.tcp_dsacks_sent += 1;
        }
        sent
    }

    fn next_segment(&mut self, now: Instant, out: &mut OutSegment, ctr: &mut Counters) -> bool {
        if self.rst_pending {
            self.rst_pending = false;
            // At SND.NXT, or at the right edge of the peer's window if SND.NXT lies past it
            // (a peer that shrank its window, say to zero, drops a RST beyond the edge
            // without a word; Linux's `tcp_acceptable_seq`).
            let edge = self.snd_una.add(self.snd_wnd);
            let seq = if self.snd_nxt.le(edge) { self.snd_nxt } else { edge };
            out.hdr = self.base_header(seq, TcpFlags::RST | TcpFlags::ACK);
            out.hdr.ack = self.rcv_nxt;
            out.hdr.window = 0;
            return true;
        }
        let sent = match self.state {
            State::Closed => false,
            State::SynSent | State::SynReceived => self.poll_handshake(now, out),
            _ => self.poll_data(now, out, ctr),
        };
        if sent {
            return true;
        }
        self.arm_persist(now);
        if self.state.synchronized() && (self.ack_now || self.probe_pending || self.ka_pending) {
            let probe = std::mem::take(&mut self.probe_pending);
            let keepalive = std::mem::take(&mut self.ka_pending);
            // A window (or keep-alive) probe is an ACK one byte left of the window: it
            // elicits an ACK that carries the current window without consuming sequence
            // space.
            let seq = if probe || keepalive { self.snd_una.sub(1) } else { self.snd_nxt };
            if probe {
                ctr.tcp_window_probes += 1;
            }
            self.fill_header(now, out, seq, TcpFlags::ACK);
            return true;
        }
        false
    }

    fn base_header(&self, seq: Seq, flags: TcpFlags) -> TcpHeader {
        TcpHeader {
            src_port: self.tuple.local.port,
            dst_port: self.tuple.remote.port,
            seq,
            ack: Seq(0),
            flags,
            window: 0,
            options: TcpOptions::default(),
        }
    }

    /// The window to advertise (scaled), never moving the right edge left.
    fn window_to_advertise(&mut self) -> u16 {
        let avail = self.rcv_window_avail() as u32;
        let cur = if self.rcv_adv.gt(self.rcv_nxt) { self.rcv_adv.since(self.rcv_nxt) } else { 0 };
        // Receiver-side silly window avoidance (RFC 9293 3.8.6.2.2).
        let step = ((self.cfg.recv_buffer / 2).min(self.mss)) as u32;
        let mut wnd = if avail > cur && avail - cur < step { cur } else { avail.max(cur) };
        wnd = wnd.min(65535 << self.rcv_wscale);
        let mut field = (wnd >> self.rcv_wscale) as u16;
        // The scaled field rounds down; where that would pull the right edge left of what
        // was offered, round up instead (as Linux's tcp_select_window does).
        if self.rcv_nxt.add(u32::from(field) << self.rcv_wscale).lt(self.rcv_adv) && field < u16::MAX {
            field += 1;
        }
        let right = self.rcv_nxt.add(u32::from(field) << self.rcv_wscale);
        if right.gt(self.rcv_adv) {
            self.rcv_adv = right;
        }
        field
    }

    /// The SACK blocks the next header carries (a D-SACK block first when one is owed,
    /// then the receive queue's), and whether the first is that D-SACK; none unless SACK
    /// was agreed and there is something to report.
    fn sack_to_send(&self) -> (SackBlocks, bool) {
        let mut blocks = SackBlocks::default();
        if !(self.sack_ok && (self.recvq.has_ooo() || self.dsack.is_some())) {
            return (blocks, false);
        }
        let max = if self.ts_ok { 3 } else { 4 };
        match self.dsack {
            Some((l, r)) => {
                blocks.push(l, r);
                for &(a, b) in self.recvq.sack_blocks(max - 1).as_slice() {
                    blocks.push(a, b);
                }
                (blocks, true)
            }
            None => (self.recvq.sack_blocks(max), false),
        }
    }

    /// Fills `out.hdr` for a segment at `seq` with `flags` plus ACK, window, timestamps
    /// and SACK blocks, and records that an ACK went out.
    fn fill_header(&mut self, now: Instant, out: &mut OutSegment, seq: Seq, flags: TcpFlags) {
        let mut h = self.base_header(seq, flags | TcpFlags::ACK);
        h.ack = self.rcv_nxt;
        h.window = self.window_to_advertise();
        if self.ts_ok {
            h.options.timestamp = Some((self.now_ms(now), self.ts_recent));
        }
        let (sack, dsack) = self.sack_to_send();
        h.options.sack = sack;
        if dsack {
            self.dsack = None;
            out.dsack = true;
        }
        out.hdr = h;
        self.ack_now = false;
        self.timers.clear(TimerKind::DelayedAck);
        self.unacked_segs = 0;
        self.last_ack_sent = self.rcv_nxt;
    }

    fn poll_handshake(&mut self, now: Instant, out: &mut OutSegment) -> bool {
        if self.snd_nxt != self.iss {
            return false;
        }
        let passive = self.state == State::SynReceived;
        let mut h = self.base_header(self.iss, TcpFlags::SYN);
        h.window = self.rcv_window_avail().min(65535) as u16;
        h.options.mss = Some(self.local_mss);
        let offer = !passive;
        if self.cfg.window_scaling && (offer || self.snd_wscale != 0 || self.rcv_wscale != 0) {
            h.options.window_scale = Some(self.rcv_wscale);
        }
        if self.cfg.sack && (offer || self.sack_ok) {
            h.options.sack_permitted = true;
        }
        if self.cfg.timestamps && (offer || self.ts_ok) {
            h.options.timestamp = Some((self.now_ms(now), if passive { self.ts_recent } else { 0 }));
        }
        if passive {
            h.flags |= TcpFlags::ACK;
            h.ack = self.rcv_nxt;
            self.last_ack_sent = self.rcv_nxt;
            self.rcv_adv = self.rcv_nxt.add(u32::from(h.window));
        }
        out.hdr = h;
        out.retransmit = self.snd_max != self.iss;
        self.snd_nxt = self.iss.add(1);
        self.snd_max = self.snd_max.max(self.snd_nxt);
        if !out.retransmit {
            self.rtt_probe = Some((self.snd_nxt, now));
        } else {
            self.rtt_probe = None;
        }
        if !self.timers.is_set(TimerKind::Retransmit) {
            self.timers.set(TimerKind::Retransmit, now + self.rtt.rto());
        }
        true
    }

    /// Emits `[seq, seq + len)` of the send queue (plus FIN when it ends there, if `fin`).
    fn emit_range(&mut self, now: Instant, out: &mut OutSegment, seq: Seq, len: usize, fin: bool) -> usize {
        // `mss` has room for the timestamps only: SACK blocks in this header take payload
        // room (as Linux's tcp_current_mss), or the frame outgrows the link's MTU.
        let sack = self.sack_to_send().0.option_len();
        let len = len.min(self.mss.saturating_sub(sack).max(1));
        let off = self.data_off(seq);
        let got = if len > 0 { self.sendq.gather(off, len, self.cfg.max_payload_frags, &mut out.payload) } else { 0 };
        let end = seq.add_len(got);
        let mut flags = TcpFlags::PSH;
        let mut seg_end = end;
        if fin && self.fin_seq() == Some(end) {
            flags |= TcpFlags::FIN;
            seg_end = end.add(1);
        }
        if got == 0 && !flags.has(TcpFlags::FIN) {
            return 0;
        }
        if !flags.has(TcpFlags::FIN) && off + (got as u64) < self.sendq.tail() {
            flags = TcpFlags(0);
        }
        self.fill_header(now, out, seq, flags);
        out.retransmit = seq.lt(self.snd_max);
        let n = seg_end.since(seq) as usize;
        let (snd_max, recovering) = (self.snd_max, self.ca == CaState::Recovery);
        let tsval = (out.retransmit && self.ts_ok).then(|| self.now_ms(now));
        let (rate, mss) = (self.pacing_rate(), self.mss);
        if self.flight() == 0 {
            let app_limited = self.ls().rate.is_app_limited();
            self.cc.on_tx_start(now, app_limited);
        }
        let l = self.lm();
        l.pacer.on_sent(now, got, rate, mss);
        let (tx, app_limited) = l.rate.on_send(now, l.rtx.is_empty());
        l.rtx.on_transmit(now, seq, seg_end, snd_max, tx, app_limited);
        if out.retransmit {
            l.undo.on_retransmit(tsval, 1);
        }
        if recovering {
            l.prr.on_sent(n);
        }
        if seg_end.gt(self.snd_max) {
            self.snd_max = seg_end;
        }
        if !self.timers.is_set(TimerKind::Retransmit) {
            self.timers.set(TimerKind::Retransmit, now + self.rtt.rto());
        }
        seg_end.since(seq) as usize
    }

    fn poll_data(&mut self, now: Instant, out: &mut OutSegment, ctr: &mut Counters) -> bool {
        if matches!(self.state, State::TimeWait) {
            return false;
        }
        let mss = self.mss;
        let cwnd = self.cwnd();

        // Without SACK: retransmission of the first unacknowledged segment (fast
        // retransmit, NewReno partial ACK).
        if self.rexmit_pending {
            if self.paced_out(now, ctr) {
                return false;
            }
            self.rexmit_pending = false;
            let outstanding = self.snd_max.since(self.snd_una) as usize;
            let fin_out = self.fin_sent();
            let data_out = outstanding.saturating_sub(usize::from(fin_out));
            let len = data_out.min(mss);
            if len > 0 || fin_out {
                let n = self.emit_range(now, out, self.snd_una, len, true);
                if n > 0 {
                    ctr.tcp_retransmits += 1;
                    self.lm().retransmits += 1;
                    ctr.tcp_dupack_retransmits += 1;
                    ctr.tcp_retransmitted_bytes += out.payload_len() as u64;
                    return true;
                }
            }
        }

        // With SACK: what RACK or the timer marked lost, oldest loss first, as the window
        // (PRR's in fast recovery) allows; the receive window does not hold it back.
        if self.sack_ok && self.flight() < cwnd {
            if let Some(seg) = self.loss.as_mut().and_then(|l| l.rtx.next_lost()) {
                if self.paced_out(now, ctr) {
                    return false;
                }
                if self.retransmit_seg(now, out, &seg, ctr) {
                    return true;
                }
            }
        }

        // Tail loss probe (RFC 8985 section 7.3): one new segment past the congestion
        // window if the receive window has room, else the last segment again; its ACK
        // (with SACK) shows what was lost.
        if std::mem::take(&mut self.tlp_pending) && self.snd_max.gt(self.snd_una) && self.ca == CaState::Open {
            ctr.tcp_loss_probes += 1;
            let off = self.data_off(self.snd_nxt);
            let unsent = (self.sendq.tail().saturating_sub(off)) as usize;
            let wnd_end = self.snd_una.add(self.snd_wnd);
            let wnd_room = if wnd_end.gt(self.snd_nxt) { wnd_end.since(self.snd_nxt) as usize } else { 0 };
            if unsent > 0
                && wnd_room > 0
                && self.snd_nxt == self.snd_max
                && self.fin_seq().is_none_or(|f| self.snd_nxt.lt(f))
            {
                let seq = self.snd_nxt;
                let n = self.emit_range(now, out, seq, unsent.min(mss).min(wnd_room), true);
                if n > 0 {
                    self.snd_nxt = seq.add_len(n);
                    self.tlp = Some(Probe { end: self.snd_nxt, retrans: false });
                    return true;
                }
            }
            let data_end = if self.fin_sent() { self.snd_max.sub(1) } else { self.snd_max };
            let len = (data_end.since(self.snd_una) as usize).min(mss);
            let seq = data_end.sub(len as u32);
            let n = self.emit_range(now, out, seq, len, true);
            if n > 0 {
                ctr.tcp_retransmits += 1;
                self.lm().retransmits += 1;
                ctr.tcp_tlp_retransmits += 1;
                ctr.tcp_retransmitted_bytes += out.payload_len() as u64;
                self.tlp = Some(Probe { end: self.snd_nxt, retrans: true });
                return true;
            }
        }

        // New data (or, without SACK after a timeout, go-back-N from snd_una).
        let fin_seq = self.fin_seq();
        if fin_seq.is_some_and(|f| self.snd_nxt.gt(f)) {
            return false;
        }
        let off = self.data_off(self.snd_nxt);
        let unsent = (self.sendq.tail().saturating_sub(off)) as usize;
        let fin_pending = fin_seq.is_some();
        if unsent == 0 && !fin_pending {
            self.cwnd_limited = false;
            return false;
        }
        let wnd_end = self.snd_una.add(self.snd_wnd);
        let wnd_room = if wnd_end.gt(self.snd_nxt) { wnd_end.since(self.snd_nxt) as usize } else { 0 };
        let flight = self.flight();
        let cwnd_room = cwnd.saturating_sub(flight);
        let want = unsent.min(mss);
        self.cwnd_limited = cwnd_room < want && wnd_room >= want.max(1);
        let len = want.min(wnd_room).min(cwnd_room);
        if len == 0 {
            if unsent == 0 && cwnd_room > 0 {
                // A bare FIN.
                let seq = self.snd_nxt;
                let n = self.emit_range(now, out, seq, 0, true);
                if n > 0 {
                    self.snd_nxt = seq.add_len(n);
                    return true;
                }
            }
            return false;
        }
        // Sender-side silly window avoidance: wait for a full segment while data are in
        // flight (their ACKs will open the window).
        if len < mss && len < unsent && flight > 0 {
            return false;
        }
        if self.paced_out(now, ctr) {
            return false;
        }
        let seq = self.snd_nxt;
        let n = self.emit_range(now, out, seq, len, true);
        if n == 0 {
            return false;
        }
        if out.retransmit {
            ctr.tcp_retransmits += 1;
            self.lm().retransmits += 1;
            ctr.tcp_rto_retransmits += 1;
            ctr.tcp_retransmitted_bytes += out.payload_len() as u64;
        }
        self.snd_nxt = seq.add_len(n);
        if !out.retransmit {
            self.arm_tlp(now);
        }
        true
    }

    /// The stack could not route the segment it would send (no MAC for the next hop yet).
    /// A SYN that cannot leave counts as sent and lost: the retransmission timer runs, so a
    /// connection to an address that never resolves times out after `syn_retries`.
    pub fn on_no_route(&mut self, now: Instant) {
        if self.state == State::SynSent && !self.timers.is_set(TimerKind::Retransmit) {
            self.timers.set(TimerKind::Retransmit, now + self.rtt.rto());
        }
    }

    /// Whether pacing holds data back at `now`; if so, the connection is to be woken at
    /// the next departure. Tail loss probes, bare FINs and ACKs are not held back.
    fn paced_out(&mut self, now: Instant, ctr: &mut Counters) -> bool {
        if !self.cfg.pacing || self.ls().pacer.may_send(now) {
            return false;
        }
        ctr.tcp_pacing_waits += 1;
        self.lm().pacer.arm();
        true
    }

    /// Retransmits (up to one MSS of) a segment marked lost, counted by what marked it.
    fn retransmit_seg(&mut self, now: Instant, out: &mut OutSegment, seg: &Seg, ctr: &mut Counters) -> bool {
        let fin_in = self.fin_sent() && seg.end == self.snd_max;
        let data = seg.len() - usize::from(fin_in);
        let n = self.emit_range(now, out, seg.start, data.min(self.mss), true);
        if n == 0 {
            return false;
        }
        ctr.tcp_retransmits += 1;
        self.lm().retransmits += 1;
        ctr.tcp_retransmitted_bytes += out.payload_len() as u64;
        if seg.has(BY_RTO) {
            ctr.tcp_rto_retransmits += 1;
        } else {
            ctr.tcp_rack_retransmits += 1;
        }
        true
    }

    /// Whether [`Conn::poll_segment`] may produce something (cheap; may say yes spuriously).
    pub fn wants_output(&self) -> bool {
        if self.rst_pending
            || self.ack_now
            || self.probe_pending
            || self.ka_pending
            || self.rexmit_pending
            || self.tlp_pending
        {
            return true;
        }
        match self.state {
            State::Closed | State::TimeWait => false,
            State::SynSent | State::SynReceived => self.snd_nxt == self.iss,
            _ => {
                self.ls().rtx.has_lost_pending()
                    || self.ca == CaState::Recovery
                    || self.snd_nxt.lt(self.snd_max)
                    || self.sendq.tail() > self.data_off(self.snd_nxt.max(self.snd_una))
                    || (self.fin_queued && !self.fin_sent())
            }
        }
    }

    /// Starts the persist timer when a zero window blocks what is to be sent and nothing
    /// is in flight to bring a window update: queued data, or data and FIN to send again
    /// after a timeout pulled `snd_nxt` back to `snd_una` (then no retransmission timer
    /// runs until something leaves, and with a zero window nothing can).
    fn arm_persist(&mut self, now: Instant) {
        if !self.state.synchronized() || self.snd_wnd != 0 || self.timers.is_set(TimerKind::Persist) {
            return;
        }
        if self.snd_nxt != self.snd_una || self.timers.is_set(TimerKind::Retransmit) {
            return;
        }
        let unsent = self.sendq.tail() > self.data_off(self.snd_nxt.max(self.snd_una)) || self.snd_nxt.lt(self.snd_max);
        if unsent {
            let d = self.rtt.rto().total_micros() << self.persist_backoff.min(10);
            let d = smoltcp::time::Duration::from_micros(d).min(self.cfg.max_rto);
            self.timers.set(TimerKind::Persist, now + d);
        }
    }
}
