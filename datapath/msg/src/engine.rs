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

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::time::Instant;

use umem::{BufSlice, Pool};

use super::buf::{Msg, MsgBuf};
use super::peers::{Peer, PeerTable};
use super::reasm::{ReasmLimits, Reassembler, MIN_DATAGRAM_PAYLOAD};
use super::reliable::{Expired, TxWindow};
use super::wire::{self, Link, MsgHdr, HDR_LEN, MSG_HDR_LEN, SACK_BITS, UDP_LEN, UDP_OFF};
use super::{AllocError, Event, MsgError, MsgStats, PeerId, SendError};

mod config;
#[cfg(test)]
mod hostile;
mod rx;
#[cfg(test)]
mod tests;

pub use config::{random_seed, EngineConfig};

/// Events waiting for the application at most; older ones are dropped and counted.
pub const MAX_EVENTS: usize = 1024;

/// Datagrams queued at most for a reply that goes before the acknowledgements.
const SHORT_QUEUE: usize = 4;

/// The sans-I/O message protocol: see the [module docs](self).
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    pool: Pool,
    peers: PeerTable,
    reasm: Reassembler,
    ready: VecDeque<Msg>,
    events: VecDeque<Event>,
    /// Peers that owe an urgent acknowledgement.
    acks: Vec<PeerId>,
    /// Peers that owe one that may wait until `ack_at`.
    acks_later: Vec<PeerId>,
    ack_at: Option<Instant>,
    /// Datagrams (their segments, with their peer) accepted by `send` or due for
    /// retransmission and not yet handed out by `poll_transmit`.
    txq: VecDeque<(PeerId, Vec<BufSlice>)>,
    /// Peers with timed state (datagrams unacknowledged or held): the timers walk these
    /// only, never the whole table.
    timed: Vec<PeerId>,
    scratch_seqs: Vec<u32>,
    sack: Vec<u8>,
    next_timers: Option<Instant>,
    isn: u64,
    stats: MsgStats,
}

impl Engine {
    /// An engine over `pool` (messages are allocated from it, acknowledgements built in
    /// it); fails on settings that cannot work together.
    pub fn new(cfg: EngineConfig, pool: Pool) -> Result<Engine, MsgError> {
        let dg = cfg.datagram_payload;
        if dg < MIN_DATAGRAM_PAYLOAD {
            return Err(MsgError::Config(format!(
                "a datagram payload of {dg} B is below the {MIN_DATAGRAM_PAYLOAD} B an MTU of 576 (the IPv4 minimum) leaves; raise the MTU"
            )));
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
        if cfg.max_peers == 0 {
            return Err(MsgError::Config("max_peers is 0: the endpoint could talk to no one".into()));
        }
        let lim = ReasmLimits {
            // A reliable peer has at most one partial message.
            max_partial: if cfg.reliable { cfg.max_peers } else { cfg.max_partial.max(1) },
            max_msg: cfg.max_msg,
            timeout: cfg.partial_timeout,
            reliable_timeout: cfg.reliable_timeout(),
        };
        Ok(Engine {
            reasm: Reassembler::new(lim),
            pool,
            peers: PeerTable::new(cfg.max_peers),
            ready: VecDeque::new(),
            events: VecDeque::new(),
            acks: Vec::new(),
            acks_later: Vec::new(),
            ack_at: None,
            txq: VecDeque::new(),
            timed: Vec::new(),
            scratch_seqs: Vec::new(),
            sack: vec![0; SACK_BITS / 8],
            next_timers: None,
            isn: cfg.seed,
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

    /// Peers in the table.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Partial messages held for reassembly.
    pub fn partials(&self) -> usize {
        self.reasm.pending()
    }

    /// Adds a peer whose next hop is at `mac` (resolving it is the shell's business);
    /// adding a known peer returns its id (and makes a learned peer one the application
    /// holds, never evicted). A full table evicts an idle learned peer, or refuses.
    pub fn add_peer(&mut self, addr: SocketAddrV4, mac: [u8; 6]) -> Result<PeerId, MsgError> {
        if let Some(id) = self.peers.lookup(&addr) {
            if let Some(p) = self.peers.get_mut(id) {
                p.learned = false;
            }
            return Ok(id);
        }
        self.insert(addr, mac, false).ok_or(MsgError::TooManyPeers { max: self.cfg.max_peers })
    }

    fn insert(&mut self, addr: SocketAddrV4, mac: [u8; 6], learned: bool) -> Option<PeerId> {
        if self.peers.is_full() {
            let victim = self.peers.victim()?;
            self.evict(victim);
        }
        let link = Link {
            src_mac: self.cfg.mac,
            dst_mac: mac,
            src_ip: *self.cfg.local.ip(),
            dst_ip: *addr.ip(),
            src_port: self.cfg.local.port(),
            dst_port: addr.port(),
        };
        let isn = (config::splitmix(&mut self.isn) >> 32) as u32;
        let (w, rto, tries) = (self.cfg.window, self.cfg.rto_min, self.cfg.max_retries.saturating_add(1));
        let tx = self.cfg.reliable.then(|| TxWindow::new(w, rto, isn, tries));
        let peer =
            Peer { addr, link, next_msg: 0, tx, rx: None, learned, referenced: true, last_rx: None, timed: false };
        self.peers.insert(peer)
    }

    fn evict(&mut self, id: PeerId) {
        let Some(p) = self.peers.remove(id) else { return };
        self.reasm.drop_peer(id);
        self.stats.peers_evicted += 1;
        log::debug!("{}: evicted idle peer {} to make room", self.cfg.local, p.addr);
        self.event(Event::PeerEvicted { peer: id, addr: p.addr });
    }

    fn event(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(e);
    }

    /// The peer at `addr`, if it is in the table.
    pub fn peer(&self, addr: SocketAddrV4) -> Option<PeerId> {
        self.peers.lookup(&addr)
    }

    /// A peer's address (`None` for an id that names no peer).
    pub fn peer_addr(&self, p: PeerId) -> Option<SocketAddrV4> {
        self.peers.get(p).map(|p| p.addr)
    }

    /// Reliable datagrams sent and not yet acknowledged, over all peers.
    pub fn unacked(&self) -> u32 {
        self.timed.iter().filter_map(|&id| self.peers.get(id)?.tx.as_ref()).map(|t| t.in_flight()).sum()
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
        let ndg = m.datagrams();
        let can_queue = self.can_queue(ndg);
        let Some(p) = self.peers.get_mut(peer) else {
            self.stats.unknown_peer_sends += 1;
            return Err(SendError::UnknownPeer(m));
        };
        if !can_queue {
            log::trace!("send: {} datagrams wait for the TX ring", self.txq.len());
            self.stats.send_full += 1;
            return Err(SendError::Full(m));
        }
        if p.tx.as_ref().is_some_and(|t| t.room() < ndg as u32) {
            log::trace!("send: window full ({} datagrams in flight)", p.tx.as_ref().map_or(0, |t| t.in_flight()));
            self.stats.send_full += 1;
            return Err(SendError::Full(m));
        }
        p.referenced = true;
        let msg_id = p.next_msg;
        let (reliable, first_seq, base) = match &p.tx {
            Some(t) => (true, t.next_seq(), t.base()),
            None => (false, 0, 0),
        };
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
                base,
            };
            write_headers(&mut m.s.segs[r.clone()], &p.link, &hdr, payload, self.cfg.udp_checksum);
        }
        let mut segs = m.s.segs.into_iter();
        for r in ranges {
            let dgram: Vec<BufSlice> = segs.by_ref().take(r.len()).collect();
            if let Some(tx) = p.tx.as_mut() {
                tx.sent(now, dgram.clone());
            }
            self.txq.push_back((peer, dgram));
        }
        p.next_msg = msg_id.wrapping_add(1);
        if reliable && !p.timed {
            p.timed = true;
            self.timed.push(peer);
        }
        self.stats.msgs_sent += 1;
        self.stats.bytes_sent += m.len as u64;
        self.stats.dgrams_sent += ndg as u64;
        self.arm(now);
        Ok(())
    }

    /// The next datagram to transmit if it has at most `room` buffers: data and
    /// retransmissions in order, and acknowledgements: before the data when much is queued
    /// (the peer's window keeps moving), after it when little is (a short reply goes first:
    /// its peer waits on it, and in copy mode every packet ahead of it in the same system
    /// call costs a trip through the kernel). `None` when nothing waits or the next datagram
    /// does not fit (it stays first in line).
    pub fn poll_transmit(&mut self, room: u32) -> Option<Vec<BufSlice>> {
        if room == 0 {
            return None;
        }
        if self.txq.len() > SHORT_QUEUE {
            if let Some(ack) = self.next_ack() {
                return Some(ack);
            }
        }
        while let Some((peer, d)) = self.txq.front() {
            if self.peers.get(*peer).is_none() {
                // Its peer left (lost or evicted): nobody is there to take it.
                self.txq.pop_front();
                continue;
            }
            if d.len() as u32 > room {
                break;
            }
            return self.txq.pop_front().map(|(_, d)| d);
        }
        self.next_ack()
    }

    /// The next complete message received.
    pub fn poll_recv(&mut self) -> Option<Msg> {
        self.ready.pop_front()
    }

    /// The next event for the application (a peer lost or evicted).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Engine::handle_timeout`] wants to run next (`None`: nothing is timed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.next_timers, self.ack_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether an acknowledgement is owed and not yet sent (driving the engine sends it).
    pub fn owes_acks(&self) -> bool {
        !self.acks.is_empty() || !self.acks_later.is_empty()
    }

    /// Runs the timers due at `now`: retransmissions (and giving up after the retry
    /// limit), expiry of partial messages and of datagrams held for silent peers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ack_at.is_some_and(|t| now >= t) {
            self.ack_at = None;
            for id in std::mem::take(&mut self.acks_later) {
                if let Some(rx) = self.peers.get_mut(id).and_then(|p| p.rx.as_mut()).filter(|r| r.ack_due && !r.urgent)
                {
                    rx.urgent = true;
                    self.acks.push(id);
                }
            }
        }
        if self.next_timers.is_none_or(|t| now < t) {
            return;
        }
        self.next_timers = None;
        self.reasm.expire(now);
        let silent = self.cfg.reliable_timeout();
        let mut timed = std::mem::take(&mut self.timed);
        let mut due = std::mem::take(&mut self.scratch_seqs);
        timed.retain(|&id| {
            let Some(p) = self.peers.get_mut(id) else { return false };
            if let Some(rx) = p.rx.as_mut().filter(|r| r.held() > 0) {
                if p.last_rx.is_none_or(|t| now.saturating_duration_since(t) >= silent) {
                    self.stats.held_expired += rx.clear() as u64;
                }
            }
            due.clear();
            if let Some(tx) = p.tx.as_ref().filter(|t| t.in_flight() > 0) {
                if tx.expired(now, &mut due) == Expired::GaveUp {
                    self.lose(id);
                    return false;
                }
            }
            self.stats.timeouts += due.len() as u64;
            self.retransmit(now, id, &due);
            let Some(p) = self.peers.get_mut(id) else { return false };
            p.timed = p.busy();
            p.timed
        });
        timed.append(&mut self.timed); // any made timed meanwhile
        self.timed = timed;
        self.scratch_seqs = due;
        self.arm(now);
    }

    /// Gives up on a peer that does not acknowledge: drops its state and tells the
    /// application.
    fn lose(&mut self, id: PeerId) {
        let Some(p) = self.peers.remove(id) else { return };
        let unacked = p.tx.as_ref().map_or(0, |t| t.in_flight());
        self.reasm.drop_peer(id);
        self.stats.peers_lost += 1;
        log::warn!(
            "{}: peer {} acknowledged nothing through {} retransmissions; giving up on it ({unacked} datagrams unacknowledged)",
            self.cfg.local,
            p.addr,
            self.cfg.max_retries
        );
        self.event(Event::PeerLost { peer: id, addr: p.addr, unacked });
    }

    /// Schedules the next timer run while anything is timed: datagrams awaiting
    /// acknowledgement or held for reordering, partial messages.
    fn arm(&mut self, now: Instant) {
        if self.next_timers.is_some() {
            return;
        }
        if !self.timed.is_empty() || self.reasm.pending() > 0 {
            self.next_timers = Some(now + self.cfg.rto_min / 2);
        }
    }

    /// Queues again, by reference, the datagrams `seqs` of `peer` (those still unacked).
    fn retransmit(&mut self, now: Instant, peer: PeerId, seqs: &[u32]) {
        let Some(tx) = self.peers.get_mut(peer).and_then(|p| p.tx.as_mut()) else { return };
        for &seq in seqs {
            let Some(segs) = tx.get(seq) else { continue };
            self.txq.push_back((peer, segs.clone()));
            tx.resent(now, seq);
            self.stats.retransmits += 1;
        }
    }

    /// Builds the next acknowledgement owed, if a frame is free for it.
    fn next_ack(&mut self) -> Option<Vec<BufSlice>> {
        while let Some(&id) = self.acks.last() {
            let Some(p) = self.peers.get_mut(id).filter(|p| p.rx.as_ref().is_some_and(|r| r.ack_due)) else {
                self.acks.pop();
                continue;
            };
            let Some(buf) = self.pool.alloc_frame() else {
                self.stats.acks_deferred += 1;
                return None;
            };
            self.acks.pop();
            let rxw = p.rx.as_mut()?;
            let (cum, used) = rxw.ack(&mut self.sack);
            let mut seg = BufSlice::new(buf, 0..HDR_LEN + used)?;
            let hdr = MsgHdr { kind: wire::KIND_ACK, seq: cum, ..MsgHdr::default() };
            if let Some(b) = seg.get_mut() {
                b[HDR_LEN..].copy_from_slice(&self.sack[..used]);
            }
            write_headers(std::slice::from_mut(&mut seg), &p.link, &hdr, used, self.cfg.udp_checksum);
            self.stats.acks_sent += 1;
            return Some(vec![seg]);
        }
        None
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
