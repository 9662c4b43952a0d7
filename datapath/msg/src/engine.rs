//! The endpoint's protocol as a sans-I/O state machine: peers, message ids, reliability
//! windows, acknowledgements, retransmission timers and reassembly, over frames of a
//! [`Pool`], with no socket and no clock. [`Endpoint`](super::Endpoint) is the thin I/O
//! shell that drives one over an AF_XDP socket, as quinn drives quinn-proto over UDP.
//!
//! ```text
//!   send(now, peer, MsgBuf) ──┐                       ┌──► poll_transmit(room) ─► datagrams
//!   handle_datagram(now, fr) ─┼──► Engine (no I/O) ───┼──► poll_recv() ─────────► Msg
//!   handle_timeout(now) ──────┘                       ├──► poll_timeout() ──────► when to call
//!                                                     └──► stats()
//! ```
//!
//! Time comes in as `now` (any `Instant`: tests pass a virtual clock), packets come in as
//! the buffers they arrived in and go out as lists of frame slices, headers written in
//! place. [`crate::sim`] connects two engines over a simulated lossy link.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use umem::{BufSlice, Pool};

use super::buf::{Dgram, Msg, MsgBuf, Segs};
use super::reasm::{Reassembler, Reject};
use super::reliable::{Accept, RxWindow, TxWindow};
use super::wire::{self, Link, MsgHdr, NotUdp, HDR_LEN, MSG_HDR_LEN, SACK_BITS, UDP_LEN, UDP_OFF};
use super::{AllocError, MsgError, MsgStats, PeerId, SendError};

/// The protocol's settings (the I/O shell's are in [`EndpointConfig`](super::EndpointConfig),
/// which makes these with [`EndpointConfig::engine`](super::EndpointConfig::engine)).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Our address and UDP port.
    pub local: SocketAddrV4,
    /// Our MAC (the source of every frame we build).
    pub mac: [u8; 6],
    /// Payload bytes per datagram (the MTU less IPv4, UDP and message headers, and at most
    /// a frame less [`HDR_LEN`] without multi-buffer).
    pub datagram_payload: usize,
    /// Largest message, in bytes.
    pub max_msg: usize,
    /// Acknowledge and retransmit.
    pub reliable: bool,
    /// Reliability window in datagrams per peer: a power of two, at most [`SACK_BITS`].
    pub window: u32,
    /// Lower bound of the retransmission timeout.
    pub rto_min: Duration,
    /// Compute UDP checksums (0 on the wire otherwise).
    pub udp_checksum: bool,
    /// Take messages from senders never added with `add_peer`.
    pub accept_unknown_peers: bool,
    /// Peers at most.
    pub max_peers: usize,
    /// Datagrams `send` may queue for transmission (the TX ring's size): beyond it `send`
    /// refuses with `SendError::Full` unless the queue is empty.
    pub tx_queue: usize,
}

impl EngineConfig {
    /// The defaults of [`EndpointConfig::new`](super::EndpointConfig::new) for an engine
    /// at `local`, whose frames come from `mac` and carry `datagram_payload` bytes.
    pub fn new(local: SocketAddrV4, mac: [u8; 6], datagram_payload: usize) -> Self {
        super::EndpointConfig::new("", local).engine(mac, datagram_payload)
    }
}

#[derive(Debug)]
struct Peer {
    link: Link,
    next_msg: u32,
    tx: Option<TxWindow<Vec<BufSlice>>>,
    rx: Option<RxWindow<Dgram>>,
}

/// The sans-I/O message protocol: see the [module docs](self).
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    pool: Pool,
    peers: Vec<Peer>,
    by_addr: HashMap<SocketAddrV4, PeerId>,
    reasm: Reassembler,
    ready: VecDeque<Msg>,
    /// Peers (indices) that owe an acknowledgement.
    acks: Vec<usize>,
    /// Datagrams (their segments) accepted by `send` or due for retransmission and not yet
    /// handed out by `poll_transmit`.
    txq: VecDeque<Vec<BufSlice>>,
    scratch_seqs: Vec<u32>,
    sack: Vec<u8>,
    next_timers: Option<Instant>,
    stats: MsgStats,
}

impl Engine {
    /// An engine over `pool` (messages are allocated from it, acknowledgements built in
    /// it); fails on settings that cannot work together.
    pub fn new(cfg: EngineConfig, pool: Pool) -> Result<Engine, MsgError> {
        let dg = cfg.datagram_payload;
        if dg == 0 {
            return Err(MsgError::Config("a datagram payload of 0 bytes (the MTU leaves no room)".into()));
        }
        let frags = cfg.max_msg.div_ceil(dg).max(1);
        if frags > usize::from(u16::MAX) || cfg.max_msg > u32::MAX as usize {
            return Err(MsgError::Config(format!(
                "max_msg {} needs {frags} datagrams; at most 65535 (raise the MTU or lower max_msg)",
                cfg.max_msg
            )));
        }
        if cfg.reliable
            && (!cfg.window.is_power_of_two() || cfg.window as usize > SACK_BITS || (frags as u32) > cfg.window)
        {
            return Err(MsgError::Config(format!(
                "reliability window {} must be a power of two of at most {SACK_BITS} and hold the largest message ({frags} datagrams of {dg} B for max_msg {}); raise --window or lower --max-msg",
                cfg.window, cfg.max_msg
            )));
        }
        Ok(Engine {
            reasm: Reassembler::new(64, cfg.max_msg, Duration::from_millis(500)),
            pool,
            peers: Vec::new(),
            by_addr: HashMap::new(),
            ready: VecDeque::new(),
            acks: Vec::new(),
            txq: VecDeque::new(),
            scratch_seqs: Vec::new(),
            sack: vec![0; SACK_BITS / 8],
            next_timers: None,
            stats: MsgStats::default(),
            cfg,
        })
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The pool messages live in.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Counters.
    pub fn stats(&self) -> MsgStats {
        let mut s = self.stats;
        s.reasm_expired = self.reasm.drops.expired;
        s.reasm_evicted = self.reasm.drops.evicted + self.reasm.drops.bad_length;
        s
    }

    /// Adds a peer whose next hop is at `mac` (resolving it is the shell's business);
    /// adding a known peer returns its id.
    pub fn add_peer(&mut self, addr: SocketAddrV4, mac: [u8; 6]) -> Result<PeerId, MsgError> {
        if let Some(&p) = self.by_addr.get(&addr) {
            return Ok(p);
        }
        if self.peers.len() >= self.cfg.max_peers {
            return Err(MsgError::TooManyPeers { max: self.cfg.max_peers });
        }
        let link = Link {
            src_mac: self.cfg.mac,
            dst_mac: mac,
            src_ip: *self.cfg.local.ip(),
            dst_ip: *addr.ip(),
            src_port: self.cfg.local.port(),
            dst_port: addr.port(),
        };
        let (w, rto) = (self.cfg.window, self.cfg.rto_min);
        let tx = self.cfg.reliable.then(|| TxWindow::new(w, rto));
        self.peers.push(Peer { link, next_msg: 0, tx, rx: None });
        let id = PeerId(self.peers.len() as u32 - 1);
        self.by_addr.insert(addr, id);
        Ok(id)
    }

    /// The peer at `addr`, if it is in the table.
    pub fn peer(&self, addr: SocketAddrV4) -> Option<PeerId> {
        self.by_addr.get(&addr).copied()
    }

    /// A peer's address.
    pub fn peer_addr(&self, p: PeerId) -> Option<SocketAddrV4> {
        self.peers.get(p.0 as usize).map(|p| SocketAddrV4::new(p.link.dst_ip, p.link.dst_port))
    }

    /// Reliable datagrams sent and not yet acknowledged, over all peers.
    pub fn unacked(&self) -> u32 {
        self.peers.iter().filter_map(|p| p.tx.as_ref()).map(|t| t.in_flight()).sum()
    }

    /// Datagrams waiting for `poll_transmit`.
    pub fn queued(&self) -> usize {
        self.txq.len()
    }

    /// Whether `send` would find room in the transmit queue for `datagrams` now.
    pub fn can_queue(&self, datagrams: usize) -> bool {
        self.txq.is_empty() || self.txq.len() + datagrams <= self.cfg.tx_queue
    }

    /// Frames for a `len`-byte message, to be filled in place and passed to [`Engine::send`].
    pub fn alloc(&mut self, len: usize) -> Result<MsgBuf, AllocError> {
        if len > self.cfg.max_msg {
            return Err(AllocError::TooLarge { len, max: self.cfg.max_msg });
        }
        MsgBuf::alloc(&self.pool, len, self.cfg.datagram_payload).ok_or_else(|| {
            self.stats.alloc_empty += 1;
            AllocError::PoolEmpty { need: len.div_ceil(self.pool.frame_size() as usize - HDR_LEN).max(1) }
        })
    }

    /// A received message turned into a buffer for sending, in the same frames.
    pub fn reply_buf(&self, m: Msg) -> Result<MsgBuf, Msg> {
        m.into_buf(self.cfg.datagram_payload)
    }

    /// Copies a message's payload into one vector (counted in `copied_bytes`).
    pub fn copy_to_vec(&mut self, m: &Msg) -> Vec<u8> {
        let mut v = Vec::with_capacity(m.len());
        for c in m.chunks() {
            v.extend_from_slice(c);
        }
        self.stats.copied_bytes += v.len() as u64;
        v
    }

    /// Takes the message for sending (all of it or none of it): writes every datagram's
    /// headers in place and queues the datagrams for [`Engine::poll_transmit`]. With
    /// reliability on, the engine keeps references to the frames until the peer
    /// acknowledges them.
    pub fn send(&mut self, now: Instant, peer: PeerId, mut m: MsgBuf) -> Result<(), SendError> {
        if peer.0 as usize >= self.peers.len() {
            self.stats.unknown_peer_sends += 1;
            return Err(SendError::UnknownPeer(m));
        }
        let ndg = m.datagrams();
        if !self.can_queue(ndg) {
            log::trace!("send: {} datagrams wait for the TX ring", self.txq.len());
            self.stats.send_full += 1;
            return Err(SendError::Full(m));
        }
        let p = &mut self.peers[peer.0 as usize];
        if p.tx.as_ref().is_some_and(|t| t.room() < ndg as u32) {
            log::trace!("send: window full ({} datagrams in flight)", p.tx.as_ref().map_or(0, |t| t.in_flight()));
            self.stats.send_full += 1;
            return Err(SendError::Full(m));
        }
        let msg_id = p.next_msg;
        let reliable = p.tx.is_some();
        let first_seq = p.tx.as_ref().map_or(0, |t| t.next_seq());
        let ranges: Vec<_> = m.s.datagrams().collect();
        for (d, r) in ranges.iter().enumerate() {
            let payload: usize = m.s.segs[r.clone()].iter().map(BufSlice::len).sum::<usize>() - HDR_LEN;
            let hdr = MsgHdr {
                kind: wire::KIND_DATA,
                flags: if reliable { wire::FLAG_RELIABLE } else { 0 },
                msg_id,
                frag: d as u16,
                frags: ndg as u16,
                msg_len: m.len as u32,
                seq: if reliable { first_seq.wrapping_add(d as u32) } else { 0 },
                base: 0,
            };
            write_headers(&mut m.s.segs[r.clone()], &p.link, &hdr, payload, self.cfg.udp_checksum);
        }
        let mut segs = m.s.segs.into_iter();
        for r in ranges {
            let dgram: Vec<BufSlice> = segs.by_ref().take(r.len()).collect();
            if let Some(tx) = p.tx.as_mut() {
                tx.sent(now, dgram.clone());
            }
            self.txq.push_back(dgram);
        }
        p.next_msg = msg_id.wrapping_add(1);
        self.stats.msgs_sent += 1;
        self.stats.bytes_sent += m.len as u64;
        self.stats.dgrams_sent += ndg as u64;
        self.arm(now);
        Ok(())
    }

    /// The next datagram to transmit if it has at most `room` buffers: acknowledgements
    /// first, then data and retransmissions in order. `None` when nothing waits or the
    /// next datagram does not fit (it stays first in line).
    pub fn poll_transmit(&mut self, room: u32) -> Option<Vec<BufSlice>> {
        if room == 0 {
            return None;
        }
        if let Some(ack) = self.next_ack() {
            return Some(ack);
        }
        if self.txq.front()?.len() as u32 > room {
            return None;
        }
        self.txq.pop_front()
    }

    /// The next complete message received.
    pub fn poll_recv(&mut self) -> Option<Msg> {
        self.ready.pop_front()
    }

    /// When [`Engine::handle_timeout`] wants to run next (`None`: nothing is timed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_timers
    }

    /// Takes one received packet, in the buffers it arrived in (several with multi-buffer).
    pub fn handle_datagram(&mut self, now: Instant, mut frags: Vec<BufSlice>) {
        let total: usize = frags.iter().map(BufSlice::len).sum();
        let Some(first) = frags.first() else { return };
        let rx = match wire::parse_udp(first.as_bytes(), total) {
            Ok(rx) => rx,
            Err(NotUdp::IpFragment) => {
                self.stats.ip_fragments += 1;
                return;
            }
            Err(NotUdp::Malformed | NotUdp::IpChecksum) => {
                self.stats.not_ours += 1;
                return;
            }
        };
        let (IpAddr::V4(src_ip), IpAddr::V4(dst_ip)) = (rx.src, rx.dst) else {
            self.stats.not_ours += 1;
            return;
        };
        let local = self.cfg.local;
        if rx.dst_port != local.port() || (!local.ip().is_unspecified() && dst_ip != *local.ip()) {
            self.stats.not_ours += 1;
            return;
        }
        let hdr_end = rx.payload_off() + MSG_HDR_LEN;
        let Some(hdr) = (rx.payload_len() >= MSG_HDR_LEN && frags[0].len() >= hdr_end)
            .then(|| MsgHdr::parse(&frags[0].as_bytes()[rx.payload_off()..]))
            .flatten()
        else {
            self.stats.bad_header += 1;
            return;
        };
        let payload = rx.payload_len() - MSG_HDR_LEN;
        // Trim to exactly [HDR_LEN bytes of headers | payload]: IP options go in front,
        // Ethernet padding behind.
        frags[0].advance(hdr_end - HDR_LEN);
        let mut keep = HDR_LEN + payload;
        frags.retain_mut(|f| {
            let k = keep.min(f.len());
            f.truncate(k);
            keep -= k;
            k > 0
        });
        if frags.is_empty() {
            self.stats.bad_header += 1;
            return;
        }
        let src = SocketAddrV4::new(src_ip, rx.src_port);
        let peer = match self.by_addr.get(&src) {
            Some(&p) => p,
            None if self.cfg.accept_unknown_peers => match self.add_peer(src, rx.src_mac) {
                Ok(p) => {
                    log::info!("{}: new peer {src} ({})", self.cfg.local, datapath::fmt_mac(&rx.src_mac));
                    p
                }
                Err(_) => {
                    self.stats.unknown_peer_drops += 1;
                    return;
                }
            },
            None => {
                self.stats.unknown_peer_drops += 1;
                return;
            }
        };
        self.stats.dgrams_recv += 1;
        match hdr.kind {
            wire::KIND_ACK => self.on_ack(now, peer, &hdr, &frags[0].as_bytes()[HDR_LEN..]),
            wire::KIND_PAD => self.stats.pads_recv += 1,
            wire::KIND_DATA => {
                let mut first = vec![false; frags.len()];
                first[0] = true;
                let d = Dgram { hdr, s: Segs { segs: frags, first }, payload };
                if hdr.reliable() {
                    self.reliable_data(now, peer, d);
                } else {
                    feed(&mut self.reasm, &mut self.ready, &mut self.stats, now, peer, d);
                }
            }
            _ => self.stats.bad_header += 1,
        }
        self.arm(now);
    }

    /// Runs the timers due at `now`: retransmissions, expiry of partial messages.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_timers.is_none_or(|t| now < t) {
            return;
        }
        self.next_timers = None;
        self.reasm.expire(now);
        let mut due = std::mem::take(&mut self.scratch_seqs);
        for i in 0..self.peers.len() {
            due.clear();
            match self.peers[i].tx.as_ref() {
                Some(tx) if tx.in_flight() > 0 => tx.expired(now, &mut due),
                _ => continue,
            }
            self.stats.timeouts += due.len() as u64;
            self.retransmit(now, i, &due);
        }
        self.scratch_seqs = due;
        self.arm(now);
    }

    /// Schedules the next timer run while anything is timed: datagrams awaiting
    /// acknowledgement, partial messages.
    fn arm(&mut self, now: Instant) {
        if self.next_timers.is_some() {
            return;
        }
        if self.unacked() > 0 || self.reasm.pending() > 0 {
            self.next_timers = Some(now + self.cfg.rto_min / 2);
        }
    }

    fn reliable_data(&mut self, now: Instant, peer: PeerId, d: Dgram) {
        let w = self.cfg.window;
        let i = peer.0 as usize;
        let rxw = self.peers[i].rx.get_or_insert_with(|| RxWindow::new(w));
        if !rxw.ack_due {
            self.acks.push(i);
        }
        match rxw.accept(d.hdr.seq, d) {
            Accept::New => {}
            Accept::Duplicate => self.stats.dup_dgrams += 1,
            Accept::OutOfWindow => self.stats.out_of_window += 1,
        }
        while let Some(d) = rxw.deliver() {
            feed(&mut self.reasm, &mut self.ready, &mut self.stats, now, peer, d);
        }
    }

    fn on_ack(&mut self, now: Instant, peer: PeerId, hdr: &MsgHdr, sack: &[u8]) {
        self.stats.acks_recv += 1;
        let mut fast = std::mem::take(&mut self.scratch_seqs);
        fast.clear();
        if let Some(tx) = self.peers[peer.0 as usize].tx.as_mut() {
            tx.on_ack(now, hdr.seq, sack, &mut fast);
        }
        self.stats.fast_retransmits += fast.len() as u64;
        self.retransmit(now, peer.0 as usize, &fast);
        self.scratch_seqs = fast;
    }

    /// Queues again, by reference, the datagrams `seqs` of peer `i` (those still unacked).
    fn retransmit(&mut self, now: Instant, i: usize, seqs: &[u32]) {
        let Some(tx) = self.peers[i].tx.as_mut() else { return };
        for &seq in seqs {
            let Some(segs) = tx.get(seq) else { continue };
            self.txq.push_back(segs.clone());
            tx.resent(now, seq);
            self.stats.retransmits += 1;
        }
    }

    /// Builds the next acknowledgement owed, if a frame is free for it.
    fn next_ack(&mut self) -> Option<Vec<BufSlice>> {
        while let Some(&i) = self.acks.last() {
            let Some(rxw) = self.peers[i].rx.as_mut().filter(|r| r.ack_due) else {
                self.acks.pop();
                continue;
            };
            let Some(buf) = self.pool.alloc_frame() else {
                self.stats.acks_deferred += 1;
                return None;
            };
            self.acks.pop();
            let (cum, used) = rxw.ack(&mut self.sack);
            let mut seg = BufSlice::new(buf, 0..HDR_LEN + used)?;
            let hdr = MsgHdr { kind: wire::KIND_ACK, seq: cum, ..MsgHdr::default() };
            if let Some(b) = seg.get_mut() {
                b[HDR_LEN..].copy_from_slice(&self.sack[..used]);
            }
            let link = self.peers[i].link;
            write_headers(std::slice::from_mut(&mut seg), &link, &hdr, used, self.cfg.udp_checksum);
            self.stats.acks_sent += 1;
            return Some(vec![seg]);
        }
        None
    }
}

#[cfg(test)]
mod tests;

/// Gives a datagram to the reassembler and queues what it completes.
fn feed(
    reasm: &mut Reassembler,
    ready: &mut VecDeque<Msg>,
    stats: &mut MsgStats,
    now: Instant,
    peer: PeerId,
    d: Dgram,
) {
    match reasm.add(now, peer, d) {
        Ok(Some(m)) => {
            stats.msgs_recv += 1;
            stats.bytes_recv += m.len() as u64;
            ready.push_back(m);
        }
        Ok(None) => {}
        Err(Reject::Malformed) => stats.bad_header += 1,
        Err(Reject::Duplicate) => stats.dup_dgrams += 1,
    }
}

/// Writes Ethernet/IPv4/UDP and message headers into the header room of a datagram's first
/// segment, then the UDP checksum over all of it (a read of the payload).
fn write_headers(segs: &mut [BufSlice], link: &Link, hdr: &MsgHdr, payload: usize, checksum: bool) {
    let udp_payload = MSG_HDR_LEN + payload;
    let Some(b) = segs[0].get_mut() else { return };
    wire::emit_udp4(b, link, udp_payload);
    hdr.emit(&mut b[UDP_OFF + UDP_LEN..]);
    if !checksum {
        return;
    }
    let sum = wire::udp_checksum(segs[0].as_bytes(), segs[1..].iter().map(BufSlice::as_bytes));
    if let Some(b) = segs[0].get_mut() {
        b[UDP_OFF + 6..UDP_OFF + 8].copy_from_slice(&sum.to_be_bytes());
    }
}
