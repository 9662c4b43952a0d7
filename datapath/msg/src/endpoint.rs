//! The endpoint: one AF_XDP socket, one pool, a table of peers, reassembly and (optionally)
//! reliability, driven by the caller's thread. See the module docs of [`super`].

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use umem::{BufSlice, HugePages, Pool, PoolConfig};

use super::buf::{Dgram, Msg, MsgBuf, Segs};
use super::reasm::{Reassembler, Reject};
use super::reliable::{Accept, RxWindow, TxWindow};
use super::wire::{self, Link, MsgHdr, NotUdp, HDR_LEN, MSG_HDR_LEN, SACK_BITS, UDP_LEN, UDP_OFF};
use super::{neigh, AllocError, MsgError, MsgStats, PeerId, SendError};
use datapath::{AttachPolicy, BindPolicy, Interface, Proto, RxFrame, SteerProgram, XskConfig, XskSocket};

/// How `recv_wait` waits when nothing has arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollMode {
    /// Spin on the rings (lowest latency; one core stays busy).
    Busy,
    /// Spin for `spin`, then sleep in `poll(2)` until traffic or a timer.
    Adaptive {
        /// How long to spin before sleeping.
        spin: Duration,
    },
    /// Sleep in `poll(2)` at once.
    Blocking,
}

/// Everything an endpoint is built from.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// The interface (e.g. a veth end).
    pub iface: String,
    /// Its rx queue to bind (the flow must arrive on it: RSS or a single-queue device).
    pub queue: u32,
    /// Our address and UDP port: the steering program sends this flow to the endpoint.
    pub local: SocketAddrV4,
    /// Frames in the endpoint's pool (4 KiB each).
    pub frames: u32,
    /// Hugepage policy of the pool.
    pub hugepages: HugePages,
    /// Largest message, in bytes. `alloc` refuses larger ones with `AllocError::TooLarge`;
    /// larger incoming ones are dropped and counted.
    pub max_msg: usize,
    /// Acknowledge and retransmit (both ends must agree).
    pub reliable: bool,
    /// Reliability window in datagrams per peer: a power of two, at most 1024.
    pub window: u32,
    /// Lower bound of the retransmission timeout.
    pub rto_min: Duration,
    /// How `recv_wait` waits.
    pub poll: PollMode,
    /// Compute UDP checksums (a read of the payload). Off sends 0, which IPv4 allows
    /// ("no checksum"); received checksums are not verified (see the module docs).
    pub udp_checksum: bool,
    /// Take messages from senders never added with `add_peer` (their MAC comes from
    /// their frames), up to `max_peers`.
    pub accept_unknown_peers: bool,
    /// Peers at most.
    pub max_peers: usize,
    /// Zero-copy or copy bind.
    pub bind: BindPolicy,
    /// XDP attach mode.
    pub attach: AttachPolicy,
    /// Ask for multi-buffer (datagrams larger than a frame at jumbo MTUs).
    pub multi_buffer: bool,
    /// Entries of each of the four AF_XDP rings.
    pub ring_size: u32,
    /// How long `add_peer` waits for ARP.
    pub resolve_timeout: Duration,
}

impl EndpointConfig {
    /// Defaults for `iface` and `local`.
    pub fn new(iface: &str, local: SocketAddrV4) -> Self {
        EndpointConfig {
            iface: iface.into(),
            queue: 0,
            local,
            frames: 8192,
            hugepages: HugePages::Prefer,
            max_msg: 256 * 1024,
            reliable: false,
            window: 512,
            rto_min: Duration::from_micros(500),
            poll: PollMode::Busy,
            udp_checksum: true,
            accept_unknown_peers: true,
            max_peers: 1024,
            bind: BindPolicy::PreferZeroCopy,
            attach: AttachPolicy::PreferDriver,
            multi_buffer: true,
            ring_size: 2048,
            resolve_timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug)]
struct Peer {
    link: Link,
    next_msg: u32,
    tx: Option<TxWindow<Vec<BufSlice>>>,
    rx: Option<RxWindow<Dgram>>,
}

const RX_BATCH: u32 = 64;

/// A message endpoint over AF_XDP: see the [module docs](super).
pub struct Endpoint {
    // Drop order: the program detaches before the socket closes.
    program: Option<SteerProgram>,
    sock: XskSocket,
    pool: Pool,
    cfg: EndpointConfig,
    mac: [u8; 6],
    dg_payload: usize,
    peers: Vec<Peer>,
    by_addr: HashMap<SocketAddrV4, PeerId>,
    reasm: Reassembler,
    ready: VecDeque<Msg>,
    rxq: Vec<RxFrame>,
    gather: Vec<BufSlice>,
    acks: Vec<usize>,
    /// Datagrams (their segments) accepted by `send` and not yet on the TX ring, with the
    /// peer index they go to. Bounded by the ring size: `send` refuses beyond it.
    txq: VecDeque<(usize, Vec<BufSlice>)>,
    scratch_seqs: Vec<u32>,
    sack: Vec<u8>,
    next_timers: Instant,
    stats: MsgStats,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local", &self.cfg.local)
            .field("iface", &self.cfg.iface)
            .field("peers", &self.peers.len())
            .field("reliable", &self.cfg.reliable)
            .finish()
    }
}

impl Endpoint {
    /// Creates the pool, opens the AF_XDP socket, attaches the steering program and steers
    /// UDP to `cfg.local` into the socket.
    pub fn bind(cfg: &EndpointConfig) -> Result<Endpoint, MsgError> {
        datapath::caps::require_datapath()?;
        let iface = Interface::by_name(&cfg.iface)?;
        let pool =
            Pool::new(&PoolConfig { frames: cfg.frames, hugepages: cfg.hugepages, ..PoolConfig::frames(cfg.frames) })?;
        let xcfg = XskConfig {
            queue: cfg.queue,
            rx_size: cfg.ring_size,
            tx_size: cfg.ring_size,
            fill_size: cfg.ring_size,
            comp_size: cfg.ring_size,
            bind: cfg.bind,
            multi_buffer: cfg.multi_buffer,
            busy_poll: None,
        };
        let sock = XskSocket::open(&pool, &iface, &xcfg)?;
        let mut program = SteerProgram::attach(&iface, cfg.attach)?;
        program.register(cfg.queue, &sock)?;
        program.steer(Proto::Udp, (*cfg.local.ip()).into(), cfg.local.port())?;
        Self::with_socket(sock, Some(program), cfg)
    }

    /// An endpoint over a socket the caller opened (and a program the caller attached and
    /// steers `cfg.local` with, if `program` is `None`). `cfg.iface`, `queue`, `frames`,
    /// `hugepages`, `bind`, `attach`, `multi_buffer` and `ring_size` are not used.
    pub fn with_socket(
        sock: XskSocket,
        program: Option<SteerProgram>,
        cfg: &EndpointConfig,
    ) -> Result<Endpoint, MsgError> {
        let iface = sock.interface().clone();
        let pool = sock.pool().clone();
        let fs = pool.frame_size() as usize;
        let mut dg_payload = (iface.mtu as usize).saturating_sub(wire::IPV4_LEN + UDP_LEN).min(65_507)
            - MSG_HDR_LEN.min(iface.mtu as usize);
        if !sock.multi_buffer() {
            dg_payload = dg_payload.min(fs - HDR_LEN);
        }
        if dg_payload == 0 {
            return Err(MsgError::Config(format!("MTU {} of {} leaves no room for a payload", iface.mtu, iface.name)));
        }
        let frags = cfg.max_msg.div_ceil(dg_payload).max(1);
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
                "reliability window {} must be a power of two of at most {SACK_BITS} and hold the largest message ({frags} datagrams of {dg_payload} B for max_msg {}); raise --window or lower --max-msg",
                cfg.window, cfg.max_msg
            )));
        }
        let frames_per_msg = cfg.max_msg.div_ceil(fs - HDR_LEN).max(1) as u32;
        if pool.stats().frames < cfg.ring_size + 2 * frames_per_msg {
            return Err(MsgError::Config(format!(
                "a pool of {} frames is too small for a {}-entry fill ring plus two {}-byte messages; give it more frames (--frames)",
                pool.stats().frames, cfg.ring_size, cfg.max_msg
            )));
        }
        let mac = iface.mac()?;
        log::info!(
            "msg endpoint {} on {}/{}: {} B per datagram, max message {} B, {}",
            cfg.local,
            iface.name,
            sock.queue(),
            dg_payload,
            cfg.max_msg,
            if cfg.reliable { format!("reliable (window {} datagrams)", cfg.window) } else { "unreliable".into() }
        );
        Ok(Endpoint {
            program,
            pool,
            mac,
            dg_payload,
            peers: Vec::new(),
            by_addr: HashMap::new(),
            reasm: Reassembler::new(64, cfg.max_msg, Duration::from_millis(500)),
            ready: VecDeque::new(),
            rxq: Vec::with_capacity(RX_BATCH as usize),
            gather: Vec::new(),
            acks: Vec::new(),
            txq: VecDeque::new(),
            scratch_seqs: Vec::new(),
            sack: vec![0; SACK_BITS / 8],
            next_timers: Instant::now(),
            stats: MsgStats::default(),
            cfg: cfg.clone(),
            sock,
        })
    }

    /// Our address.
    pub fn local(&self) -> SocketAddrV4 {
        self.cfg.local
    }

    /// The largest message.
    pub fn max_msg(&self) -> usize {
        self.cfg.max_msg
    }

    /// Payload bytes per datagram (the MTU less IPv4, UDP and message headers).
    pub fn datagram_payload(&self) -> usize {
        self.dg_payload
    }

    /// The AF_XDP socket (mode, multi-buffer, kernel statistics).
    pub fn socket(&self) -> &XskSocket {
        &self.sock
    }

    /// The steering program, when the endpoint attached it.
    pub fn program(&self) -> Option<&SteerProgram> {
        self.program.as_ref()
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

    /// Adds a peer, resolving its MAC through the kernel's neighbour table (ARP once, here,
    /// never on the fast path). Adding a known peer returns its id.
    pub fn add_peer(&mut self, addr: SocketAddrV4) -> Result<PeerId, MsgError> {
        if let Some(&p) = self.by_addr.get(&addr) {
            return Ok(p);
        }
        let mac = neigh::resolve(&self.cfg.iface, *addr.ip(), self.cfg.resolve_timeout)?;
        self.insert_peer(addr, mac)
    }

    fn insert_peer(&mut self, addr: SocketAddrV4, mac: [u8; 6]) -> Result<PeerId, MsgError> {
        if self.peers.len() >= self.cfg.max_peers {
            return Err(MsgError::TooManyPeers { max: self.cfg.max_peers });
        }
        let link = Link {
            src_mac: self.mac,
            dst_mac: mac,
            src_ip: *self.cfg.local.ip(),
            dst_ip: *addr.ip(),
            src_port: self.cfg.local.port(),
            dst_port: addr.port(),
        };
        let (w, rto) = (self.cfg.window, self.cfg.rto_min);
        let reliable = self.cfg.reliable;
        self.peers.push(Peer { link, next_msg: 0, tx: reliable.then(|| TxWindow::new(w, rto)), rx: None });
        let id = PeerId(self.peers.len() as u32 - 1);
        self.by_addr.insert(addr, id);
        Ok(id)
    }

    /// A peer's address.
    pub fn peer_addr(&self, p: PeerId) -> Option<SocketAddrV4> {
        self.peers.get(p.0 as usize).map(|p| SocketAddrV4::new(p.link.dst_ip, p.link.dst_port))
    }

    /// Reliable datagrams sent and not yet acknowledged, over all peers.
    pub fn unacked(&self) -> u32 {
        self.peers.iter().filter_map(|p| p.tx.as_ref()).map(|t| t.in_flight()).sum()
    }

    /// Frames for a `len`-byte message, to be filled in place and passed to [`Endpoint::send`].
    pub fn alloc(&mut self, len: usize) -> Result<MsgBuf, AllocError> {
        if len > self.cfg.max_msg {
            return Err(AllocError::TooLarge { len, max: self.cfg.max_msg });
        }
        MsgBuf::alloc(&self.pool, len, self.dg_payload).ok_or_else(|| {
            self.stats.alloc_empty += 1;
            AllocError::PoolEmpty { need: len.div_ceil(self.pool.frame_size() as usize - HDR_LEN).max(1) }
        })
    }

    /// A received message turned into a buffer for sending, in the same frames (a reply
    /// written in place, without a copy); `Err` gives it back when that cannot be done.
    pub fn reply_buf(&self, m: Msg) -> Result<MsgBuf, Msg> {
        m.into_buf(self.dg_payload)
    }

    /// Copies a message's payload into one contiguous vector. The one copy this API makes,
    /// counted in `MsgStats::copied_bytes`; prefer [`Msg::chunks`].
    pub fn copy_to_vec(&mut self, m: &Msg) -> Vec<u8> {
        let mut v = Vec::with_capacity(m.len());
        for c in m.chunks() {
            v.extend_from_slice(c);
        }
        self.stats.copied_bytes += v.len() as u64;
        v
    }

    /// Takes the message for sending (all of it or none of it) and puts as many of its
    /// datagrams on the TX ring as fit; [`Endpoint::flush`] or the next `recv` hands them to
    /// the kernel and queues the rest. With reliability on, the endpoint keeps references
    /// to the frames until the peer acknowledges them.
    pub fn send(&mut self, peer: PeerId, mut m: MsgBuf) -> Result<(), SendError> {
        let now = Instant::now();
        if peer.0 as usize >= self.peers.len() {
            self.stats.unknown_peer_sends += 1;
            return Err(SendError::UnknownPeer(m));
        }
        let ndg = m.datagrams();
        if !self.txq.is_empty() && self.txq.len() + ndg > self.cfg.ring_size as usize {
            // Give the ring to the kernel and look again before refusing.
            self.push_tx();
            self.sock.poll();
            self.push_tx();
            if !self.txq.is_empty() && self.txq.len() + ndg > self.cfg.ring_size as usize {
                log::trace!("send: {} datagrams wait for the TX ring", self.txq.len());
                self.stats.send_full += 1;
                return Err(SendError::Full(m));
            }
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
        let i = peer.0 as usize;
        let mut segs = m.s.segs.into_iter();
        for r in ranges {
            let dgram: Vec<BufSlice> = segs.by_ref().take(r.len()).collect();
            if let Some(tx) = p.tx.as_mut() {
                tx.sent(now, dgram.clone());
            }
            self.txq.push_back((i, dgram));
        }
        p.next_msg = msg_id.wrapping_add(1);
        self.stats.msgs_sent += 1;
        self.stats.bytes_sent += m.len as u64;
        self.stats.dgrams_sent += ndg as u64;
        self.push_tx();
        Ok(())
    }

    /// Moves queued datagrams onto the TX ring, whole, in order, as far as they fit (the
    /// socket's reservation re-reads the kernel's consumer, so the room it reports is real).
    fn push_tx(&mut self) {
        if self.txq.is_empty() {
            return;
        }
        let mut batch = self.sock.tx_batch(self.cfg.ring_size);
        while let Some((_, d)) = self.txq.front() {
            if d.len() as u32 > batch.remaining() {
                break;
            }
            if batch.push(d).is_err() {
                // Only a bug could get here (room checked, segments non-empty): count it
                // rather than loop.
                self.stats.bad_header += 1;
            }
            self.txq.pop_front();
        }
        batch.commit();
    }

    /// Hands queued datagrams to the kernel, reaps completions and refills the fill ring.
    pub fn flush(&mut self) {
        self.push_tx();
        self.sock.poll();
        self.push_tx();
    }

    /// Drives the endpoint once without waiting (transmit, receive, acknowledgements,
    /// retransmissions) and moves the messages that completed into `out`; returns how many.
    pub fn recv(&mut self, out: &mut Vec<Msg>) -> usize {
        self.push_tx();
        self.sock.poll();
        let now = Instant::now();
        self.rx_batch(now);
        self.send_acks();
        if now >= self.next_timers {
            self.timers(now);
        }
        let n = self.ready.len();
        out.extend(self.ready.drain(..));
        n
    }

    /// Like [`Endpoint::recv`], waiting up to `timeout` for at least one message the way
    /// `EndpointConfig::poll` says. Returns 0 on timeout.
    pub fn recv_wait(&mut self, out: &mut Vec<Msg>, timeout: Duration) -> usize {
        let start = Instant::now();
        loop {
            let n = self.recv(out);
            if n > 0 {
                return n;
            }
            let el = start.elapsed();
            if el >= timeout {
                return 0;
            }
            let sleep = match self.cfg.poll {
                PollMode::Busy => false,
                PollMode::Adaptive { spin } => el >= spin,
                PollMode::Blocking => true,
            };
            if sleep {
                // Wake for the next timer if datagrams await acknowledgement.
                let limit = if self.unacked() > 0 { self.cfg.rto_min } else { timeout };
                self.sock.wait((timeout - el).min(limit));
            } else {
                std::hint::spin_loop();
            }
        }
    }

    fn rx_batch(&mut self, now: Instant) {
        let mut rxq = std::mem::take(&mut self.rxq);
        rxq.clear();
        self.sock.recv(&mut rxq, RX_BATCH);
        for f in rxq.drain(..) {
            self.gather.push(f.data);
            if f.more {
                continue;
            }
            let frags = std::mem::take(&mut self.gather);
            self.datagram(now, frags);
        }
        self.rxq = rxq;
    }

    fn datagram(&mut self, now: Instant, mut frags: Vec<BufSlice>) {
        let total: usize = frags.iter().map(BufSlice::len).sum();
        let rx = match wire::parse_udp(frags[0].as_bytes(), total) {
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
            None if self.cfg.accept_unknown_peers => match self.insert_peer(src, rx.src_mac) {
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
            self.txq.push_back((i, segs.clone()));
            tx.resent(now, seq);
            self.stats.retransmits += 1;
        }
        self.push_tx();
    }

    fn send_acks(&mut self) {
        while let Some(i) = self.acks.pop() {
            let Some(rxw) = self.peers[i].rx.as_mut() else { continue };
            if !rxw.ack_due {
                continue;
            }
            let Some(buf) = self.pool.alloc_frame() else {
                self.stats.acks_deferred += 1;
                self.acks.push(i);
                return;
            };
            let (cum, used) = rxw.ack(&mut self.sack);
            let Some(mut seg) = BufSlice::new(buf, 0..HDR_LEN + used) else { return };
            let hdr = MsgHdr { kind: wire::KIND_ACK, seq: cum, ..MsgHdr::default() };
            if let Some(b) = seg.get_mut() {
                b[HDR_LEN..].copy_from_slice(&self.sack[..used]);
            }
            let link = self.peers[i].link;
            write_headers(std::slice::from_mut(&mut seg), &link, &hdr, used, self.cfg.udp_checksum);
            let mut batch = self.sock.tx_batch(1);
            if batch.push(std::slice::from_ref(&seg)).is_err() {
                drop(batch);
                if let Some(rxw) = self.peers[i].rx.as_mut() {
                    rxw.ack_due = true;
                }
                self.stats.acks_deferred += 1;
                self.acks.push(i);
                return;
            }
            batch.commit();
            self.stats.acks_sent += 1;
        }
    }

    fn timers(&mut self, now: Instant) {
        self.next_timers = now + self.cfg.rto_min / 2;
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
    }
}

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
