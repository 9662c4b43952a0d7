//! One TCP connection (RFC 9293): its state, its queues, and the application-facing calls.
//! Segment input is in `input.rs`, output in `output.rs`, timers in `timer.rs`.

use std::sync::Arc;

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpEndpoint;
use umem::BufSlice;

use super::bbr::BbrInfo;
use super::cc::CongestionControl;
use super::pacing;
use super::prr::Prr;
use super::recovery::Loss;
use super::recv_queue::RecvQueue;
use super::rtt::RttEstimator;
use super::send_queue::SendQueue;
use super::timer::Timers;
use super::TcpConfig;
use crate::wire::{Seq, TcpHeader};

/// Connection states (RFC 9293 section 3.3.2; LISTEN lives in the listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// SYN received and answered.
    SynReceived,
    /// Open both ways.
    Established,
    /// We closed; FIN queued or sent.
    FinWait1,
    /// Our FIN acknowledged; waiting for the peer's.
    FinWait2,
    /// Peer closed; we may still send.
    CloseWait,
    /// Both closed simultaneously; waiting for our FIN's ACK.
    Closing,
    /// Peer closed first, then we did; waiting for our FIN's ACK.
    LastAck,
    /// Waiting 2 MSL for stray segments.
    TimeWait,
    /// Gone (see [`Conn::error`] for why, if not a clean close).
    Closed,
}

impl State {
    /// Whether sequence numbers are synchronized (past the handshake).
    pub fn synchronized(self) -> bool {
        !matches!(self, State::SynSent | State::SynReceived | State::Closed)
    }
}

/// Where loss recovery stands (Linux `tcp_ca_state`, without its transient states), in
/// Linux's order (a later state is a deeper one).
#[doc(alias = "tcp_ca_state")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum CaState {
    /// No loss being repaired.
    #[default]
    Open,
    /// Fast recovery: losses found by RACK (or three duplicate ACKs without SACK) are
    /// being repaired, the window brought down by PRR.
    Recovery,
    /// After a retransmission timeout: what was outstanding is resent from one segment of
    /// window.
    Loss,
}

/// A snapshot of a connection's loss recovery, for tests and diagnostics (like the
/// kernel's `tcp_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryInfo {
    /// Where recovery stands.
    pub state: CaState,
    /// Bytes in the network (RFC 6675 pipe).
    pub pipe: usize,
    /// The window sending is held to now (PRR's during fast recovery).
    pub cwnd: usize,
    /// The slow-start threshold.
    pub ssthresh: usize,
    /// PRR's counts in fast recovery.
    pub prr: Option<Prr>,
    /// Bytes SACKed, marked lost, retransmitted and in flight.
    pub sacked: usize,
    /// Bytes marked lost.
    pub lost: usize,
    /// RACK's reordering-window multiplier.
    pub reo_wnd_mult: u32,
    /// The largest reordering degree seen, segments, at least 3 (Linux `reordering` in
    /// `ss -i`).
    pub reordering: u32,
    /// Send MSS.
    pub mss: usize,
    /// The pacing rate, bytes/s (0: not paced yet).
    pub pacing_rate: u64,
    /// The delivery rate of the last sample not limited by the application (or a faster
    /// one since), bytes/s, and whether it was (Linux `tcpi_delivery_rate`).
    pub delivery_rate: Option<(u64, bool)>,
}

/// A tail loss probe in flight (RFC 8985 section 7.3, `TLP.end_seq` and `TLP.is_retrans`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Probe {
    pub(super) end: Seq,
    pub(super) retrans: bool,
}

/// Why a connection ended abnormally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// The peer sent RST.
    #[error("connection reset by peer")]
    Reset,
    /// Retransmissions exhausted.
    #[error("connection timed out")]
    TimedOut,
    /// The peer refused the connection (RST to our SYN).
    #[error("connection refused")]
    Refused,
    /// Aborted locally.
    #[error("connection aborted")]
    Aborted,
}

/// Local and remote endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourTuple {
    /// Our address and port.
    pub local: IpEndpoint,
    /// The peer's address and port.
    pub remote: IpEndpoint,
}

/// A segment to send: header plus payload by reference.
#[derive(Debug, Default)]
pub struct OutSegment {
    /// The TCP header (checksum filled in by the frame builder).
    pub hdr: TcpHeader,
    /// Payload ranges, in order.
    pub payload: Vec<BufSlice>,
    /// Whether any of this segment was sent before.
    pub retransmit: bool,
    /// Whether its first SACK block reports a duplicate (D-SACK, RFC 2883).
    pub dsack: bool,
}

impl OutSegment {
    /// Payload length.
    pub fn payload_len(&self) -> usize {
        self.payload.iter().map(BufSlice::len).sum()
    }
}

/// A TCP connection: the transmission control block and its queues.
#[derive(Debug)]
pub struct Conn {
    /// Shared by every connection of a stack (one pointer, not a copy, per connection).
    pub(super) cfg: Arc<TcpConfig>,
    pub(super) tuple: FourTuple,
    pub(super) state: State,
    pub(super) error: Option<ConnError>,

    // Send sequence space.
    pub(super) iss: Seq,
    pub(super) snd_una: Seq,
    pub(super) snd_nxt: Seq,
    pub(super) snd_max: Seq,
    pub(super) snd_wnd: u32,
    pub(super) max_snd_wnd: u32,
    pub(super) snd_wl1: Seq,
    pub(super) snd_wl2: Seq,
    pub(super) sendq: SendQueue,
    pub(super) fin_queued: bool,

    // Receive sequence space.
    pub(super) irs: Seq,
    pub(super) rcv_nxt: Seq,
    pub(super) rcv_adv: Seq,
    pub(super) recvq: RecvQueue,
    pub(super) fin_received: bool,
    /// Sequence number of a FIN that arrived ahead of missing data.
    pub(super) rcv_fin: Option<Seq>,

    // Negotiated options.
    /// Payload bytes per full segment (options excluded).
    pub(super) mss: usize,
    /// The MSS we advertise.
    pub(super) local_mss: u16,
    pub(super) snd_wscale: u8,
    pub(super) rcv_wscale: u8,
    pub(super) sack_ok: bool,
    pub(super) ts_ok: bool,
    pub(super) ts_recent: u32,
    pub(super) ts_offset: u32,
    pub(super) last_ack_sent: Seq,

    // Loss recovery and congestion control.
    pub(super) rtt: RttEstimator,
    /// The handshake's RTT sample (data segments are timed from the retransmission queue).
    pub(super) rtt_probe: Option<(Seq, Instant)>,
    pub(super) cc: Box<dyn CongestionControl>,
    pub(super) ca: CaState,
    /// The episode (recovery or timeout) ends when `snd_una` reaches this.
    pub(super) recover: Seq,
    /// Every unacknowledged segment sent and what is known about it, RACK, PRR and undo:
    /// made on the first data sent (see `recovery.rs`).
    pub(super) loss: Option<Box<Loss>>,
    /// The window limited sending since the last check (RFC 7661: no growth otherwise).
    pub(super) cwnd_limited: bool,
    // Without SACK: NewReno (RFC 6582) by duplicate ACKs and window inflation.
    pub(super) dupacks: u32,
    pub(super) rexmit_pending: bool,
    pub(super) inflation: usize,
    pub(super) retries: u32,
    /// The tail loss probe in flight, if any.
    pub(super) tlp: Option<Probe>,

    // Timers (deadlines, one per kind).
    pub(super) timers: Timers,
    pub(super) persist_backoff: u16,
    /// Keep-alive or zero-window probes sent since the peer was last heard from (Linux
    /// `icsk_probes_out`; the two never run at once: keep-alive waits while data is queued).
    pub(super) ka_probes: u32,
    /// Closed by the application: nobody waits on it, so its lifetime is bounded tighter.
    pub(super) orphaned: bool,

    // Output flags.
    pub(super) ack_now: bool,
    pub(super) probe_pending: bool,
    pub(super) ka_pending: bool,
    pub(super) tlp_pending: bool,
    pub(super) rst_pending: bool,
    pub(super) unacked_segs: u16,
    /// A duplicate segment to report in the next ACK's first SACK block (RFC 2883).
    pub(super) dsack: Option<(Seq, Seq)>,

    // Hostile input (`validate.rs`).
    /// When `ts_recent` was last taken from a segment, in hours (it lapses after 24
    /// days).
    pub(super) ts_recent_at: u16,
    /// When the last ACK for a dropped segment went out, in 8 ms ticks (rate limit).
    pub(super) last_oow_ack: u16,
}

impl Conn {
    fn new(cfg: &Arc<TcpConfig>, tuple: FourTuple, iss: Seq, local_mss: u16, state: State) -> Conn {
        let mut rcv_wscale = 0;
        if cfg.window_scaling {
            while (cfg.recv_buffer >> rcv_wscale) > 65535 && rcv_wscale < 14 {
                rcv_wscale += 1;
            }
        }
        let mss = usize::from(local_mss);
        Conn {
            cfg: Arc::clone(cfg),
            tuple,
            state,
            error: None,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: Seq(0),
            snd_wl2: iss,
            sendq: SendQueue::new(),
            fin_queued: false,
            irs: Seq(0),
            rcv_nxt: Seq(0),
            rcv_adv: Seq(0),
            recvq: RecvQueue::new(cfg.max_ooo_segments),
            fin_received: false,
            rcv_fin: None,
            mss,
            local_mss,
            snd_wscale: 0,
            rcv_wscale,
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            // Per-connection timestamp offset (RFC 7323 section 7.1), derived from the ISS
            // unless the stack sets a per-four-tuple one (`Conn::set_ts_offset`).
            ts_offset: iss.0.rotate_left(13),
            last_ack_sent: Seq(0),
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            rtt_probe: None,
            cc: cfg.congestion.build(mss, cfg.hystart, iss.0),
            ca: CaState::Open,
            recover: iss,
            loss: None,
            cwnd_limited: false,
            dupacks: 0,
            rexmit_pending: false,
            inflation: 0,
            retries: 0,
            tlp: None,
            timers: Timers::default(),
            persist_backoff: 0,
            ka_probes: 0,
            orphaned: false,
            ack_now: false,
            probe_pending: false,
            ka_pending: false,
            tlp_pending: false,
            rst_pending: false,
            unacked_segs: 0,
            dsack: None,
            ts_recent_at: super::validate::UNTIL_UPDATED,
            last_oow_ack: super::validate::NEVER,
        }
    }

    /// An active open: the SYN goes out on the next poll.
    pub fn connect(cfg: &Arc<TcpConfig>, tuple: FourTuple, iss: Seq, local_mss: u16) -> Conn {
        Conn::new(cfg, tuple, iss, local_mss, State::SynSent)
    }

    /// A passive open from a received SYN: the SYN-ACK goes out on the next poll.
    pub fn accept_syn(cfg: &Arc<TcpConfig>, tuple: FourTuple, iss: Seq, local_mss: u16, syn: &TcpHeader) -> Conn {
        let mut c = Conn::new(cfg, tuple, iss, local_mss, State::SynReceived);
        c.take_syn_options(syn);
        c.irs = syn.seq;
        c.rcv_nxt = syn.seq.add(1);
        c.rcv_adv = c.rcv_nxt;
        c.snd_wnd = u32::from(syn.window);
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = syn.seq;
        c
    }

    /// A connection completed from a SYN cookie: the handshake's options are not known
    /// except the MSS the cookie carries, so no scaling, SACK or timestamps.
    pub fn from_cookie(
        cfg: &Arc<TcpConfig>,
        tuple: FourTuple,
        iss: Seq,
        local_mss: u16,
        peer_mss: u16,
        ack: &TcpHeader,
    ) -> Conn {
        let mut c = Conn::new(cfg, tuple, iss, local_mss, State::Established);
        c.rcv_wscale = 0;
        c.mss = usize::from(peer_mss.min(local_mss));
        c.cc = cfg.congestion.build(c.mss, cfg.hystart, iss.0);
        c.irs = ack.seq.sub(1);
        c.rcv_nxt = ack.seq;
        c.rcv_adv = ack.seq;
        c.snd_una = iss.add(1);
        c.snd_nxt = iss.add(1);
        c.snd_max = iss.add(1);
        c.snd_wnd = u32::from(ack.window);
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = ack.seq;
        c.snd_wl2 = ack.ack;
        c
    }

    /// Sets the timestamp clock's offset (RFC 7323 section 7.1) before the first segment.
    /// A keyed hash of the four-tuple keeps timestamps rising across incarnations of one
    /// four-tuple, which lets the peer accept a new SYN while it holds the old one in
    /// TIME-WAIT (RFC 6191).
    pub fn set_ts_offset(&mut self, offset: u32) {
        self.ts_offset = offset;
    }

    /// Applies the options of the peer's SYN (or SYN-ACK).
    pub(super) fn take_syn_options(&mut self, syn: &TcpHeader) {
        let o = &syn.options;
        let peer_mss = o.mss.unwrap_or(536);
        if let (true, Some(ws)) = (self.cfg.window_scaling, o.window_scale) {
            self.snd_wscale = ws;
        } else {
            self.snd_wscale = 0;
            self.rcv_wscale = 0;
        }
        self.sack_ok = self.cfg.sack && o.sack_permitted;
        self.ts_ok = self.cfg.timestamps && o.timestamp.is_some();
        if let Some((tsval, _)) = o.timestamp {
            self.ts_recent = tsval;
        }
        let mut mss = usize::from(peer_mss.min(self.local_mss));
        if self.ts_ok {
            mss = mss.saturating_sub(12);
        }
        self.mss = mss.max(64);
        self.cc = self.cfg.congestion.build(self.mss, self.cfg.hystart, self.iss.0);
    }

    /// The connection's endpoints.
    pub fn tuple(&self) -> FourTuple {
        self.tuple
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Why the connection failed, if it did.
    pub fn error(&self) -> Option<ConnError> {
        self.error
    }

    /// Next sequence number expected from the peer.
    pub fn rcv_nxt(&self) -> Seq {
        self.rcv_nxt
    }

    /// Next sequence number to send.
    pub fn snd_nxt(&self) -> Seq {
        self.snd_nxt
    }

    /// Oldest unacknowledged sequence number.
    pub fn snd_una(&self) -> Seq {
        self.snd_una
    }

    /// Effective send MSS (payload bytes per full segment).
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// Congestion window in bytes: the one sending is held to now (PRR's during fast
    /// recovery).
    pub fn cwnd(&self) -> usize {
        if self.ca == CaState::Recovery && self.sack_ok && !self.cc.model_based() {
            self.ls().prr_cwnd
        } else {
            self.cc.cwnd() + self.inflation
        }
    }

    /// The pacing rate in bytes per second, 0 before an RTT is known (as Linux's
    /// `sk_pacing_rate`, it is kept whether or not [`TcpConfig::pacing`] enforces it): the
    /// controller's (BBR's model), or Linux's default for a loss-based controller,
    /// `max(cwnd, outstanding) / srtt` times 2 in slow start and 1.2 after
    /// (`tcp_update_pacing_rate`).
    pub fn pacing_rate(&self) -> u64 {
        if let Some(rate) = self.cc.pacing_rate() {
            return rate;
        }
        let outstanding = self.snd_max.since(self.snd_una) as usize;
        pacing::default_rate(self.cwnd(), self.cc.ssthresh(), outstanding, self.rtt.srtt())
    }

    /// Where loss recovery stands, with its numbers.
    pub fn recovery_info(&self) -> RecoveryInfo {
        RecoveryInfo {
            state: self.ca,
            pipe: self.flight(),
            cwnd: self.cwnd(),
            ssthresh: self.cc.ssthresh(),
            prr: (self.ca == CaState::Recovery && self.sack_ok).then_some(self.ls().prr),
            sacked: self.ls().rtx.sacked(),
            lost: self.ls().rtx.lost(),
            reo_wnd_mult: self.ls().rack.reo_wnd_mult(),
            reordering: self.ls().rack.reordering(),
            mss: self.mss,
            pacing_rate: self.pacing_rate(),
            delivery_rate: self.ls().rate.last_rate(),
        }
    }

    /// BBR's model of the path, if the connection runs BBR.
    pub fn bbr_info(&self) -> Option<BbrInfo> {
        self.cc.bbr_info()
    }

    /// Smoothed RTT, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// The peer's last timestamp (RFC 7323 `TS.Recent`), when timestamps are in use.
    pub fn ts_recent(&self) -> Option<u32> {
        self.ts_ok.then_some(self.ts_recent)
    }

    /// Whether SACK, timestamps and window scaling were negotiated: `(sack, ts, wscale)`.
    pub fn negotiated(&self) -> (bool, bool, Option<(u8, u8)>) {
        let ws = (self.snd_wscale != 0 || self.rcv_wscale != 0).then_some((self.snd_wscale, self.rcv_wscale));
        (self.sack_ok, self.ts_ok, ws)
    }

    /// Bytes of heap this connection holds beyond its own struct: the congestion
    /// controller and the capacity of its queues (which grow with use and are kept).
    /// Frames it references are the pool's, not counted here.
    pub fn heap_bytes(&self) -> usize {
        size_of_val(&*self.cc)
            + self.sendq.heap_bytes()
            + self.recvq.heap_bytes()
            + self.loss.as_ref().map_or(0, |l| size_of::<Loss>() + l.scoreboard.heap_bytes() + l.rtx.heap_bytes())
    }

    /// Whether the application has closed the connection.
    pub fn is_orphan(&self) -> bool {
        self.orphaned
    }

    /// Whether the application may still queue data.
    pub fn may_send(&self) -> bool {
        matches!(self.state, State::Established | State::CloseWait | State::SynReceived | State::SynSent)
            && !self.fin_queued
    }

    /// Bytes the application may queue now.
    pub fn send_space(&self) -> usize {
        if !self.may_send() {
            return 0;
        }
        self.cfg.send_buffer.saturating_sub(self.sendq.len())
    }

    /// Bytes queued and not yet acknowledged.
    pub fn send_queued(&self) -> usize {
        self.sendq.len()
    }

    /// Queues payload by reference; takes as much of `slices` as fits the send buffer
    /// (splitting the last one) and returns the bytes taken.
    pub fn send(&mut self, slices: &[BufSlice]) -> usize {
        self.check_app_limited();
        let mut space = self.send_space();
        let mut taken = 0;
        for s in slices {
            if space == 0 {
                break;
            }
            let part = if s.len() <= space { Some(s.clone()) } else { s.slice(0..space) };
            if let Some(part) = part {
                space -= part.len();
                taken += part.len();
                self.sendq.push(part);
            }
        }
        taken
    }

    /// Bytes ready to read.
    pub fn recv_ready(&self) -> usize {
        self.recvq.ready_len()
    }

    /// Whether the peer has closed its side and every byte has been read.
    pub fn recv_finished(&self) -> bool {
        self.fin_received && self.recvq.ready_len() == 0
    }

    /// Takes the next in-order payload slice (a range of a received frame).
    pub fn recv(&mut self, max: usize) -> Option<BufSlice> {
        let before = self.rcv_window_avail();
        let s = self.recvq.pop_max(max)?;
        self.maybe_window_update(before);
        Some(s)
    }

    /// Window bytes free in the receive buffer: what the pool memory left in the budget
    /// holds (see `recv_queue.rs`).
    pub(super) fn rcv_window_avail(&self) -> usize {
        self.recvq.window(self.cfg.recv_buffer)
    }

    /// Pool bytes the receive queues pin (each queued segment at its frame's size).
    pub fn recv_memory(&self) -> usize {
        self.recvq.mem()
    }

    /// Tells the receive side the size of the frames segments arrive in, so that the
    /// windows offered before the first data (the handshake's) already fit the memory
    /// budget ([`TcpConfig::recv_buffer`] counts frames, not payload).
    pub fn set_rx_frame_size(&mut self, truesize: usize) {
        self.recvq.set_ratio_hint(usize::from(self.local_mss), truesize);
    }

    /// Drops the out-of-order queue (the pool runs short); returns the segments dropped.
    pub fn prune_ooo(&mut self) -> usize {
        self.recvq.prune_ooo()
    }

    /// Whether out-of-order data is held.
    pub fn has_ooo(&self) -> bool {
        self.recvq.has_ooo()
    }

    /// Sends a window update when reading opened the window enough (RFC 9293 3.8.6.2.2).
    fn maybe_window_update(&mut self, before: usize) {
        if !self.state.synchronized() {
            return;
        }
        let advertised = if self.rcv_adv.gt(self.rcv_nxt) { self.rcv_adv.since(self.rcv_nxt) as usize } else { 0 };
        let now_avail = self.rcv_window_avail();
        let step = (self.cfg.recv_buffer / 2).min(2 * self.mss);
        if now_avail > before && now_avail >= advertised + step {
            self.ack_now = true;
        }
    }

    /// Closes our side: a FIN follows the queued data. The connection is then an orphan
    /// ([`TcpConfig::orphan_retries`] bounds it): nobody will read, so what was received
    /// and not read is dropped now (its frames go back to the pool), and new data from the
    /// peer resets the connection (RFC 1122 4.2.2.13, as Linux does). Returns the bytes
    /// dropped unread.
    pub fn close(&mut self) -> usize {
        self.orphaned = true;
        let dropped = self.recvq.clear();
        if self.state == State::SynSent {
            self.state = State::Closed;
        }
        self.shutdown();
        dropped
    }

    /// Shuts our sending side (`shutdown(SHUT_WR)`): a FIN follows the queued data, and
    /// nothing more can be queued. The application still owns the connection, so it goes
    /// on receiving and nothing is dropped; [`Conn::close`] later makes it an orphan.
    /// A server that answered `Connection: close` sends its FIN with the answer this way
    /// while it waits for the acknowledgement, so the peer need not wait for it (and the
    /// server, the side that closed first, holds the TIME-WAIT, as Linux servers do).
    /// Does nothing where our FIN is queued or sent already, or before we are synchronized.
    pub fn shutdown(&mut self) {
        match self.state {
            State::SynReceived | State::Established => {
                self.fin_queued = true;
                self.state = State::FinWait1;
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.state = State::LastAck;
            }
            _ => {}
        }
    }

    /// Aborts: a RST goes out (if synchronized) and the connection is closed.
    pub fn abort(&mut self) {
        if self.state.synchronized() || self.state == State::SynReceived {
            self.rst_pending = true;
        }
        self.fail(ConnError::Aborted);
    }

    /// Ends the connection with `err`, releasing every queued frame.
    pub(super) fn fail(&mut self, err: ConnError) {
        self.state = State::Closed;
        self.error.get_or_insert(err);
        self.sendq = SendQueue::new();
        self.recvq = RecvQueue::new(self.cfg.max_ooo_segments);
        self.loss = None;
        self.timers.clear_all();
        self.tlp_pending = false;
    }

    /// Sequence number of stream byte `off`.
    pub(super) fn data_seq(&self, off: u64) -> Seq {
        self.iss.add(1).add(off as u32)
    }

    /// Stream offset of sequence number `seq` (which must not be below the first unacked
    /// data byte).
    pub(super) fn data_off(&self, seq: Seq) -> u64 {
        let head = self.sendq.head();
        head + u64::from(seq.since(self.data_seq(head)))
    }

    /// Sequence number of our FIN, once the application has closed.
    pub(super) fn fin_seq(&self) -> Option<Seq> {
        self.fin_queued.then(|| self.data_seq(self.sendq.tail()))
    }

    /// Whether our FIN has been sent (and so occupies `snd_max - 1`).
    pub(super) fn fin_sent(&self) -> bool {
        self.fin_seq().is_some_and(|f| self.snd_max.gt(f))
    }

    pub(super) fn now_ms(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// Bytes in flight: with SACK, RFC 6675's `pipe` from the retransmission queue
    /// (outstanding - SACKed - lost + retransmitted); without, `snd_nxt - snd_una`.
    pub(super) fn flight(&self) -> usize {
        if self.sack_ok {
            self.ls().rtx.pipe()
        } else {
            self.snd_nxt.since(self.snd_una) as usize
        }
    }

    /// Whether the connection may be freed (closed, nothing left to send).
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed && !self.rst_pending
    }
}
