//! Loss recovery per ACK, in the order Linux's `tcp_ack` runs it: what the SACK blocks and
//! the cumulative ACK delivered (retransmission queue, RTT samples, RACK, reordering), then
//! D-SACKs and the tail loss probe's outcome (RFC 8985 section 7.4), undo of a spurious
//! reduction, RACK loss detection (entering fast recovery), leaving recovery, and the
//! window: PRR (RFC 6937) in fast recovery, the controller otherwise. Also the marking
//! after a retransmission timeout, and, for peers without SACK, NewReno (RFC 6582) by
//! duplicate ACKs.

use smoltcp::time::{Duration, Instant};

use super::cc::{AckInfo, AckSample};
use super::conn::{CaState, Conn};
use super::dsack::dsack_block;
use super::hystart::SsEvent;
use super::pacing::Pacer;
use super::prr::Prr;
use super::rack::Rack;
use super::rate::{Newest, Rate, RateSample};
use super::rtx_queue::{RtxQueue, Seg, EVER_RETRANS};
use super::scoreboard::Scoreboard;
use super::timer::TimerKind;
use super::undo::Undo;
use crate::counters::Counters;
use crate::wire::{Seq, TcpHeader};

/// The loss-recovery state of a connection that has sent data: its retransmission queue
/// and SACK scoreboard, RACK, PRR, undo and the pacer. Boxed, and made on the first
/// transmission of data, so an idle connection (or one that has only received) does not
/// carry it.
#[derive(Debug)]
pub(super) struct Loss {
    pub(super) rtx: RtxQueue,
    pub(super) scoreboard: Scoreboard,
    pub(super) rack: Rack,
    pub(super) prr: Prr,
    /// The window PRR allows in fast recovery (pipe plus `sndcnt` at the last ACK).
    pub(super) prr_cwnd: usize,
    pub(super) undo: Undo,
    pub(super) pacer: Pacer,
    pub(super) rate: Rate,
    /// Sequence space the peer acknowledged since data was first sent (Linux
    /// `tcpi_bytes_acked`; kept here so a connection that never sent carries nothing).
    pub(super) bytes_acked: u64,
    /// Data segments retransmitted, whatever the cause (Linux `tcpi_total_retrans`).
    pub(super) retransmits: u32,
}

impl Loss {
    const EMPTY: Loss = Loss {
        rtx: RtxQueue::new(),
        scoreboard: Scoreboard::new(),
        rack: Rack::new(),
        prr: Prr::ZERO,
        prr_cwnd: 0,
        undo: Undo::NONE,
        pacer: Pacer::new(),
        rate: Rate::new(),
        bytes_acked: 0,
        retransmits: 0,
    };
}

/// What a connection with no loss state reads.
static NO_LOSS: Loss = Loss::EMPTY;

impl Conn {
    /// The loss-recovery state, to read.
    pub(super) fn ls(&self) -> &Loss {
        self.loss.as_deref().unwrap_or(&NO_LOSS)
    }

    /// The loss-recovery state, to change (made when first needed).
    pub(super) fn lm(&mut self) -> &mut Loss {
        self.loss.get_or_insert_with(|| Box::new(Loss::EMPTY))
    }
}

/// What one ACK delivered.
#[derive(Debug, Clone, Copy)]
pub(super) struct AckEvent {
    /// `snd_una` before it.
    pub(super) prior_una: Seq,
    /// The highest SACKed sequence number before it.
    pub(super) prior_fack: Option<Seq>,
    /// Bytes newly acknowledged or SACKed.
    pub(super) delivered: usize,
    /// Send time of the oldest never-retransmitted segment it cumulatively acknowledged,
    /// of the oldest it SACKed, and of the newest of either (Linux `first_ackt`,
    /// `first_sackt`, `last_ackt`).
    first_acked: Option<Instant>,
    first_sacked: Option<Instant>,
    last_clean: Option<Instant>,
    /// The lowest never-retransmitted segment delivered below the highest SACK: it
    /// arrived after data sent later (reordering).
    reorder_low: Option<Seq>,
    /// Its D-SACK block.
    pub(super) dsack: Option<(Seq, Seq)>,
    /// Its SACK blocks reported data not SACKed before.
    pub(super) sacked_new: bool,
    /// The most recently sent segment it delivered, for the rate sample.
    newest: Newest,
    /// Bytes ever marked lost before it.
    prior_lost: u64,
    /// Bytes in flight before it.
    prior_in_flight: usize,
}

impl AckEvent {
    pub(super) fn new(prior_una: Seq, prior_fack: Option<Seq>, prior_lost: u64, prior_in_flight: usize) -> Self {
        AckEvent {
            newest: Newest::default(),
            prior_lost,
            prior_in_flight,
            prior_una,
            prior_fack,
            delivered: 0,
            first_acked: None,
            first_sacked: None,
            last_clean: None,
            reorder_low: None,
            dsack: None,
            sacked_new: false,
        }
    }

    /// Records one delivered segment (Linux `tcp_sacktag_one`, `tcp_clean_rtx_queue`).
    /// `echo`: when the segment whose timestamp the ACK echoes was sent (ms).
    fn note(
        &mut self,
        rack: Option<&mut Rack>,
        now: Instant,
        min_rtt: Option<Duration>,
        echo: Option<u32>,
        s: &Seg,
        sacked: bool,
    ) {
        self.delivered += s.len();
        self.newest.note(s);
        if let Some(rack) = rack {
            // An ACK echoing a timestamp older than the retransmission answers the
            // original: it says nothing about when the retransmission arrived.
            let sent_ms = s.xmit.total_millis() as u32;
            let for_original = s.has(EVER_RETRANS) && echo.is_some_and(|e| (e.wrapping_sub(sent_ms) as i32) < 0);
            if !for_original {
                rack.on_delivered(now, s, min_rtt);
            }
        }
        if s.has(EVER_RETRANS) {
            return;
        }
        let t = s.xmit;
        let first = if sacked { &mut self.first_sacked } else { &mut self.first_acked };
        *first = Some(first.map_or(t, |x| x.min(t)));
        self.last_clean = Some(self.last_clean.map_or(t, |x| x.max(t)));
        if self.prior_fack.is_some_and(|f| s.start.lt(f)) {
            self.reorder_low = Some(self.reorder_low.map_or(s.start, |x| x.min(s.start)));
        }
    }
}

impl Conn {
    /// The ACK's SACK blocks: a D-SACK apart, the rest into the scoreboard, and what they
    /// newly cover into the retransmission queue.
    pub(super) fn take_sack_blocks(&mut self, now: Instant, hdr: &TcpHeader, ev: &mut AckEvent, ctr: &mut Counters) {
        let blocks = hdr.options.sack.as_slice();
        let mut rest = blocks;
        if let Some(d) = dsack_block(blocks, hdr.ack) {
            ev.dsack = Some(d);
            ctr.tcp_dsacks_received += 1;
            rest = &blocks[1..];
        }
        if rest.is_empty() || self.loss.is_none() {
            // Nothing to mark (no data was ever sent, so nothing can be SACKed).
            return;
        }
        let una = hdr.ack.max(self.snd_una);
        let max = self.snd_max;
        let min_rtt = self.rtt.min_rtt();
        let echo = self.echoed_ms(hdr);
        let Loss { rtx, rack, scoreboard, .. } = self.lm();
        for &(l, r) in rest {
            scoreboard.add(una, max, l, r, &mut |a, b| {
                ev.sacked_new = true;
                rtx.sack(a, b, &mut |s| ev.note(Some(&mut *rack), now, min_rtt, echo, s, true));
            });
        }
    }

    /// The cumulative ACK reached `hdr.ack`: releases it from the retransmission queue.
    pub(super) fn ack_rtx(&mut self, now: Instant, hdr: &TcpHeader, ev: &mut AckEvent) {
        let min_rtt = self.rtt.min_rtt();
        let echo = self.echoed_ms(hdr);
        let sack = self.sack_ok;
        let Loss { rtx, rack, .. } = self.lm();
        rtx.ack(hdr.ack, &mut |s| ev.note(sack.then_some(&mut *rack), now, min_rtt, echo, s, false));
    }

    /// The ACK's delivery-rate sample (Linux `tcp_rate_gen`), once loss detection has run.
    fn rate_sample(&mut self, now: Instant, ev: &AckEvent) -> RateSample {
        let min_rtt = self.rtt.min_rtt();
        let Some(l) = self.loss.as_deref_mut() else { return RateSample::default() };
        let lost = l.rtx.lost_total().saturating_sub(ev.prior_lost) as usize;
        l.rate.on_ack(now, &ev.newest, ev.delivered, lost, min_rtt)
    }

    /// The end of an ACK (Linux `tcp_rate_gen` and `tcp_cong_control`): the rate sample,
    /// and for a model-based controller the window and pacing rate from it, in every
    /// state (loss-based ones have had their window from PRR or `grow`). `rtt`: the ACK's
    /// sample of the newest segment it delivered.
    pub(super) fn cong_control(&mut self, now: Instant, ev: &AckEvent, rtt: Option<Duration>, ctr: &mut Counters) {
        let rs = self.rate_sample(now, ev);
        if !self.cc.model_based() || self.loss.is_none() || self.snd_max == ev.prior_una {
            return;
        }
        let in_flight = self.flight();
        let l = self.ls();
        let s = AckSample {
            now,
            mss: self.mss,
            rs,
            delivered: l.rate.delivered(),
            delivered_at: l.rate.delivered_at(),
            lost: l.rtx.lost_total(),
            in_flight,
            prior_in_flight: ev.prior_in_flight,
            rtt,
            min_rtt: self.rtt.min_rtt(),
            srtt: self.rtt.srtt(),
            ca: self.ca,
            pacing_backlog: l.pacer.backlog(now),
        };
        let e = self.cc.on_sample(&s);
        ctr.tcp_bbr_pipe_full += u64::from(e.pipe_full);
        ctr.tcp_bbr_probe_rtts += u64::from(e.probe_rtt);
        ctr.tcp_bbr_policers += u64::from(e.policer);
        if self.cc.wants_app_limited() {
            self.lm().rate.mark_app_limited(in_flight);
        }
    }

    /// The application is about to queue data: if less than a segment was left to send,
    /// the sender was application-limited (Linux `tcp_rate_check_app_limited`, from
    /// `tcp_sendmsg`).
    pub(super) fn check_app_limited(&mut self) {
        if self.loss.is_none() || !self.state.synchronized() {
            return;
        }
        let unsent = self.sendq.tail().saturating_sub(self.data_off(self.snd_nxt.max(self.snd_una)));
        if unsent >= self.mss as u64 {
            return;
        }
        let (in_flight, cwnd) = (self.flight(), self.cwnd());
        let l = self.lm();
        let (lost, retrans) = (l.rtx.lost(), l.rtx.retrans());
        l.rate.check_app_limited(in_flight, cwnd, lost, retrans);
    }

    /// Reordering shown by this ACK (Linux `tcp_check_sack_reordering`): its degree, the
    /// distance in segments from the highest SACK down to the late segment.
    pub(super) fn note_reordering(&mut self, ev: &AckEvent, ctr: &mut Counters) {
        let Some(low) = ev.reorder_low else { return };
        let fack = self.ls().scoreboard.high().into_iter().chain(ev.prior_fack).fold(low, Seq::max);
        let degree = (fack.since(low) as usize).div_ceil(self.mss.max(1)) as u64;
        ctr.tcp_reordering_seen += 1;
        ctr.tcp_reordering_max = ctr.tcp_reordering_max.max(degree);
        self.lm().rack.note_reordering(degree);
    }

    /// The ACK's RTT samples (Linux `tcp_ack_update_rtt`): SRTT from the oldest
    /// never-retransmitted segment it delivered, the windowed minimum from the newest;
    /// the echoed timestamp only when it delivered nothing but retransmissions. Returns
    /// the newest sample (for RACK's minimum and HyStart++).
    pub(super) fn take_rtt_samples(&mut self, now: Instant, hdr: &TcpHeader, ev: &AckEvent) -> Option<Duration> {
        let mut seq_rtt = ev.first_acked.or(ev.first_sacked).map(|t| now - t);
        let mut ca_rtt = ev.last_clean.map(|t| now - t);
        if seq_rtt.is_none() && hdr.ack.gt(ev.prior_una) {
            if let (true, Some((_, tsecr))) = (self.ts_ok, hdr.options.timestamp) {
                seq_rtt = self.ts_rtt(now, tsecr);
                ca_rtt = seq_rtt;
            }
        }
        if let Some(s) = seq_rtt {
            self.rtt.sample(s);
        }
        if let Some(c) = ca_rtt {
            self.rtt.sample_min(now, c);
        }
        ca_rtt
    }

    /// An RTT from an echoed timestamp: 1 ms resolution, so at least 1 ms (as Linux's
    /// `tcp_rtt_tsopt_us`; a 0 would claim an RTT the clock cannot see).
    pub(super) fn ts_rtt(&self, now: Instant, tsecr: u32) -> Option<Duration> {
        if tsecr == 0 {
            return None;
        }
        let ms = self.now_ms(now).wrapping_sub(tsecr);
        (ms < 1 << 30).then(|| Duration::from_millis(u64::from(ms.max(1))))
    }

    /// When the segment whose timestamp the ACK echoes was sent: our clock's
    /// milliseconds, modulo 2^32.
    fn echoed_ms(&self, hdr: &TcpHeader) -> Option<u32> {
        let (_, ecr) = hdr.options.timestamp.filter(|_| self.ts_ok)?;
        (ecr != 0).then(|| ecr.wrapping_sub(self.ts_offset))
    }

    /// Grows the window outside recovery.
    pub(super) fn grow(&mut self, now: Instant, ack: Seq, delivered: usize, rtt: Option<Duration>, ctr: &mut Counters) {
        if self.cc.model_based() {
            return;
        }
        let a = AckInfo {
            now,
            acked: delivered,
            mss: self.mss,
            srtt: self.rtt.srtt(),
            rtt,
            ack,
            snd_nxt: self.snd_nxt,
            cwnd_limited: self.cwnd_limited,
        };
        match self.cc.on_ack(&a) {
            SsEvent::EnteredCss => ctr.tcp_hystart_css += 1,
            SsEvent::Exited => ctr.tcp_hystart_exits += 1,
            SsEvent::None => {}
        }
    }

    /// Everything after the ACK's data were taken, with SACK (Linux
    /// `tcp_fastretrans_alert` and `tcp_cong_control`).
    pub(super) fn sack_recovery(
        &mut self,
        now: Instant,
        hdr: &TcpHeader,
        ev: &AckEvent,
        rtt: Option<Duration>,
        ctr: &mut Counters,
    ) {
        if !self.state.synchronized() || self.loss.is_none() {
            return;
        }
        let una_advanced = self.snd_una != ev.prior_una;
        let tsecr = hdr.options.timestamp.filter(|_| self.ts_ok).map(|t| t.1);
        let (una, nxt, mss) = (self.snd_una, self.snd_nxt, self.mss);
        self.lm().rack.update_reo_wnd(una, nxt, ev.dsack.is_some());
        if let Some((l, r)) = ev.dsack {
            self.lm().undo.on_dsack(l, r, mss);
        }
        self.probe_outcome(now, hdr.ack, ev, ctr);

        match self.ca {
            CaState::Recovery => {
                if una_advanced && self.snd_una.ge(self.recover) {
                    if self.lm().undo.may_undo(tsecr) {
                        self.undo_reduction(false, ctr);
                    } else {
                        self.end_recovery(now);
                    }
                } else if una_advanced && self.lm().undo.delayed(tsecr) && self.lm().rtx.retrans() == 0 {
                    // A partial ACK for the original transmission: the hole was filled by
                    // a late segment, not by a retransmission (Linux `tcp_try_undo_partial`).
                    self.undo_reduction(true, ctr);
                } else if self.lm().undo.all_spurious() {
                    self.undo_reduction(false, ctr);
                }
            }
            CaState::Loss => {
                if una_advanced && self.lm().undo.may_undo(tsecr) {
                    self.undo_reduction(true, ctr);
                } else if self.snd_una.ge(self.recover) {
                    self.ca = CaState::Open;
                    self.lm().rack.on_recovery_exit();
                }
            }
            CaState::Open => {
                if self.lm().undo.all_spurious() {
                    self.undo_reduction(false, ctr);
                }
            }
        }

        let newly_lost = if self.lm().rack.take_advanced() { self.rack_mark_lost(now, ctr) } else { 0 };

        if self.ca == CaState::Recovery && !self.cc.model_based() {
            let (ssthresh, mss) = (self.cc.ssthresh(), self.mss);
            let l = self.lm();
            let pipe = l.rtx.pipe();
            let safe = una_advanced && newly_lost == 0;
            let sndcnt = l.prr.on_ack(ev.delivered, pipe, ssthresh, mss, safe);
            l.prr_cwnd = pipe + sndcnt;
        } else if una_advanced || (ev.delivered > 0 && self.ls().rack.deep_reordering()) {
            self.grow(now, hdr.ack, ev.delivered, rtt, ctr);
        }
    }

    /// RACK's loss detection; arms or stops the reorder timer, enters fast recovery on a
    /// loss. Returns the bytes newly marked lost.
    pub(super) fn rack_mark_lost(&mut self, now: Instant, ctr: &mut Counters) -> usize {
        let srtt = self.rtt.srtt().unwrap_or(Duration::ZERO);
        let min_rtt = self.rtt.min_rtt().unwrap_or(srtt);
        let (ca, mss) = (self.ca, self.mss);
        let Loss { rtx, rack, .. } = self.lm();
        let reo = rack.reo_wnd(srtt, min_rtt, ca != CaState::Open, rtx.sacked(), mss);
        let (lost, again, wait) = rack.detect_loss(now, rtx, reo);
        ctr.tcp_lost_retransmits += again;
        match wait {
            Some(w) => self.timers.set(TimerKind::Reorder, now + w),
            None => self.timers.clear(TimerKind::Reorder),
        }
        if lost > 0 && self.ca == CaState::Open {
            self.enter_recovery(now, ctr);
        }
        lost
    }

    /// The reorder timer fired: look again, and let PRR send what the losses allow.
    pub(super) fn on_reorder_timeout(&mut self, now: Instant, ctr: &mut Counters) {
        if !self.sack_ok || !self.state.synchronized() || self.ls().rtx.is_empty() {
            return;
        }
        if self.rack_mark_lost(now, ctr) > 0 && self.ca == CaState::Recovery && !self.cc.model_based() {
            let (ssthresh, mss) = (self.cc.ssthresh(), self.mss);
            let l = self.lm();
            let pipe = l.rtx.pipe();
            let sndcnt = l.prr.on_ack(0, pipe, ssthresh, mss, false);
            l.prr_cwnd = pipe + sndcnt;
        }
    }

    /// Fast recovery begins (with SACK): reduce, start PRR and the undo bookkeeping.
    pub(super) fn enter_recovery(&mut self, now: Instant, ctr: &mut Counters) {
        ctr.tcp_fast_recoveries += 1;
        let flight = self.snd_max.since(self.snd_una) as usize;
        let (una, mss) = (self.snd_una, self.mss);
        let retrans_out = self.lm().rtx.retrans().div_ceil(mss.max(1)) as u32;
        self.lm().undo.start(una, retrans_out);
        self.cc.on_congestion(now, flight, self.mss);
        let l = self.lm();
        l.prr = Prr::start(flight);
        l.prr_cwnd = l.rtx.pipe();
        self.ca = CaState::Recovery;
        self.recover = self.snd_max;
        self.timers.clear(TimerKind::LossProbe);
        self.tlp_pending = false;
        self.tlp = None;
    }

    fn end_recovery(&mut self, now: Instant) {
        self.cc.on_recovery_end(now, self.mss);
        self.ca = CaState::Open;
        self.lm().rack.on_recovery_exit();
    }

    /// The reduction was spurious: restore the window (and, `unmark`, forget the loss
    /// marks so nothing more is resent).
    pub(super) fn undo_reduction(&mut self, unmark: bool, ctr: &mut Counters) {
        let was = self.ca;
        self.cc.undo();
        if unmark && self.sack_ok {
            self.lm().rtx.unmark_lost();
        }
        if !self.sack_ok && was == CaState::Loss {
            // Eifel response (RFC 4015): resume with new data, no go-back-N.
            self.snd_nxt = self.snd_max;
        }
        self.lm().undo.clear();
        self.ca = CaState::Open;
        self.inflation = 0;
        match was {
            CaState::Loss => {
                ctr.tcp_spurious_rtos += 1;
                self.lm().rack.on_recovery_exit();
            }
            CaState::Recovery => {
                ctr.tcp_spurious_recoveries += 1;
                self.lm().rack.on_recovery_exit();
            }
            CaState::Open => ctr.tcp_spurious_recoveries += 1,
        }
    }

    /// RFC 8985 section 7.4: what the ACK says about the tail loss probe in flight.
    fn probe_outcome(&mut self, now: Instant, ack: Seq, ev: &AckEvent, ctr: &mut Counters) {
        let Some(p) = self.tlp else { return };
        if ack.lt(p.end) {
            return;
        }
        if !p.retrans || ev.dsack.is_some_and(|(_, r)| r == p.end) {
            // New data, or the original and the probe both arrived: nothing was lost.
            self.tlp = None;
        } else if ack.gt(p.end) {
            // The probe repaired a loss: reduce the window once (Linux enters CWR).
            self.tlp = None;
            if self.ca == CaState::Open {
                ctr.tcp_loss_probe_recoveries += 1;
                let flight = self.snd_max.since(self.snd_una) as usize;
                self.cc.on_congestion(now, flight, self.mss);
            }
        } else if ev.prior_una == self.snd_una && ev.delivered == 0 {
            // A pure duplicate ACK: the probe was a duplicate.
            self.tlp = None;
        }
    }

    /// The retransmission timer expired with data outstanding (RFC 6298 5.4 to 5.6, RFC
    /// 6675 section 5.1): one segment of window, and, with SACK, everything not SACKed
    /// is lost and resent in order; without SACK, go-back-N.
    pub(super) fn enter_loss(&mut self, now: Instant, ctr: &mut Counters) {
        if self.ca != CaState::Open {
            ctr.tcp_recovery_failed += 1;
        }
        let reduce = self.ca == CaState::Open || self.snd_una.ge(self.recover);
        if reduce {
            let una = self.snd_una;
            self.lm().undo.start(una, 0);
        }
        if self.ca == CaState::Open && self.ls().rtx.sacked() >= 3 * self.mss {
            self.lm().rack.on_timeout_in_disorder();
        }
        let flight = self.snd_max.since(self.snd_una) as usize;
        self.cc.on_rto(now, flight, self.mss, reduce);
        self.ca = CaState::Loss;
        self.recover = self.snd_max;
        self.timers.clear(TimerKind::LossProbe);
        self.timers.clear(TimerKind::Reorder);
        self.tlp_pending = false;
        self.tlp = None;
        self.inflation = 0;
        self.dupacks = 0;
        self.rexmit_pending = false;
        if self.sack_ok {
            self.lm().rtx.mark_all_lost();
        } else {
            self.snd_nxt = self.snd_una;
        }
    }

    /// A new cumulative ACK without SACK: NewReno's partial and full ACKs (RFC 6582), the
    /// Eifel undo after a timeout, and window growth.
    pub(super) fn reno_on_new_ack(
        &mut self,
        now: Instant,
        hdr: &TcpHeader,
        acked: usize,
        rtt: Option<Duration>,
        ctr: &mut Counters,
    ) {
        let ack = hdr.ack;
        let tsecr = hdr.options.timestamp.filter(|_| self.ts_ok).map(|t| t.1);
        match self.ca {
            CaState::Recovery if ack.ge(self.recover) => {
                self.ca = CaState::Open;
                self.inflation = 0;
                self.cc.on_recovery_end(now, self.mss);
            }
            CaState::Recovery => {
                // NewReno partial ACK (RFC 6582 3.2 step 3).
                self.rexmit_pending = true;
                self.inflation = self.inflation.saturating_sub(acked) + self.mss;
            }
            CaState::Loss if self.ls().undo.may_undo(tsecr) => self.undo_reduction(true, ctr),
            CaState::Loss | CaState::Open => {
                if self.ca == CaState::Loss && ack.ge(self.recover) {
                    self.ca = CaState::Open;
                }
                self.inflation = 0;
                self.grow(now, ack, acked, rtt, ctr);
            }
        }
    }

    /// A duplicate ACK without SACK.
    pub(super) fn on_dup_ack(&mut self, now: Instant, ctr: &mut Counters) {
        self.dupacks += 1;
        if self.ca == CaState::Recovery {
            self.inflation += self.mss;
            return;
        }
        // RFC 6582: no new recovery until everything sent before the last one is acked.
        if self.dupacks >= 3 && self.snd_una.ge(self.recover) {
            ctr.tcp_fast_recoveries += 1;
            let flight = self.snd_max.since(self.snd_una) as usize;
            let una = self.snd_una;
            self.lm().undo.start(una, 0);
            self.cc.on_congestion(now, flight, self.mss);
            self.ca = CaState::Recovery;
            self.timers.clear(TimerKind::LossProbe);
            self.tlp_pending = false;
            self.recover = self.snd_max;
            self.rexmit_pending = true;
            self.inflation = 3 * self.mss;
        } else if self.dupacks <= 2 {
            // Limited transmit (RFC 3042): a new segment for each of the first two
            // duplicate ACKs keeps the ACK clock going in small windows.
            self.inflation = self.dupacks as usize * self.mss;
        }
    }
}
