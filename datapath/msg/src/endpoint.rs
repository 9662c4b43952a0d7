//! The endpoint: the thin I/O shell around an [`Engine`]. It owns one AF_XDP socket (and
//! its pool), feeds received packets and the clock into the engine, and moves what the
//! engine wants transmitted onto the TX ring. Everything the protocol decides is in
//! [`super::engine`]; this file only does I/O. See the module docs of [`super`].

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use umem::{BufSlice, HugePages, Pool, PoolConfig};

use super::engine::{random_seed, Engine, EngineConfig};
use super::steering::Steering;
use super::wire::{self, HDR_LEN, MSG_HDR_LEN, UDP_LEN};
use super::{neigh, AllocError, Event, Msg, MsgBuf, MsgError, MsgStats, PeerId, SendError};
use datapath::{
    AttachMode, AttachPolicy, BindPolicy, Interface, ProgramCounters, RxFrame, SteerProgram, XskConfig, XskSocket,
};

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
    /// Its rx queue to bind (the flow must arrive on it: RSS, an `ethtool -N` rule or a
    /// single-queue device; on veth, the queue the peer sends from). One endpoint per queue.
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
    /// Retransmissions of one datagram before its peer is given up on and reported lost
    /// ([`Event::PeerLost`](super::Event::PeerLost)). The timeout backs off to 200 ms, so
    /// the default of 30 gives up after about 5 s of silence.
    pub max_retries: u32,
    /// How `recv_wait` waits.
    pub poll: PollMode,
    /// Compute UDP checksums (a read of the payload). Off sends 0, which IPv4 allows
    /// ("no checksum").
    pub udp_checksum: bool,
    /// Verify received UDP checksums (a read of the payload); failures are dropped and
    /// counted (`MsgStats::bad_checksum`). See the module docs for kernel senders on veth.
    pub verify_checksum: bool,
    /// Take messages from senders never added with `add_peer` (their MAC comes from their
    /// frames), up to `max_peers`, evicting idle learned peers to make room. Off by
    /// default: datagrams from unknown sources are dropped and counted. A server that
    /// answers whoever asks turns it on.
    pub accept_unknown_peers: bool,
    /// Peers at most.
    pub max_peers: usize,
    /// Unreliable partial messages held at most.
    pub max_partial: usize,
    /// Time without a datagram after which an unreliable partial message expires
    /// (reliable ones wait until their sender would have given up).
    pub partial_timeout: Duration,
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
    /// The protocol's settings for an engine whose frames come from `mac` and carry
    /// `datagram_payload` bytes each.
    pub fn engine(&self, mac: [u8; 6], datagram_payload: usize) -> EngineConfig {
        EngineConfig {
            local: self.local,
            mac,
            datagram_payload,
            max_msg: self.max_msg,
            reliable: self.reliable,
            window: self.window,
            rto_min: self.rto_min,
            max_retries: self.max_retries,
            udp_checksum: self.udp_checksum,
            verify_checksum: self.verify_checksum,
            accept_unknown_peers: self.accept_unknown_peers,
            max_peers: self.max_peers,
            max_partial: self.max_partial,
            partial_timeout: self.partial_timeout,
            tx_queue: self.ring_size as usize,
            seed: random_seed(),
        }
    }

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
            max_retries: 30,
            poll: PollMode::Busy,
            udp_checksum: true,
            verify_checksum: true,
            accept_unknown_peers: false,
            max_peers: 1024,
            max_partial: 64,
            partial_timeout: Duration::from_millis(500),
            bind: BindPolicy::PreferZeroCopy,
            attach: AttachPolicy::PreferDriver,
            multi_buffer: true,
            ring_size: 2048,
            resolve_timeout: Duration::from_secs(2),
        }
    }
}

const RX_BATCH: u32 = 64;

/// How the endpoint's flow reaches it.
enum Program {
    /// Its share of the interface's program (`Endpoint::bind`).
    Shared(Steering),
    /// A program the caller attached and gave to the endpoint (`with_socket`).
    Owned(Box<SteerProgram>),
    /// The caller attached a program and steers (`with_socket` with `None`).
    Caller,
}

/// A message endpoint over AF_XDP: see the [module docs](super).
pub struct Endpoint {
    // Drop order: the flow is unsteered (and the program detached) before the socket closes.
    program: Program,
    sock: XskSocket,
    engine: Engine,
    cfg: EndpointConfig,
    rxq: Vec<RxFrame>,
    /// Buffers of a multi-buffer packet being gathered (bounded by the kernel's fragment
    /// limit per packet).
    gather: Vec<BufSlice>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local", &self.cfg.local)
            .field("iface", &self.cfg.iface)
            .field("queue", &self.sock.queue())
            .field("reliable", &self.cfg.reliable)
            .finish()
    }
}

impl Endpoint {
    /// Creates the pool, opens the AF_XDP socket on `cfg.queue`, attaches the steering
    /// program (or shares the one another endpoint of this process attached to the same
    /// interface) and steers UDP to `cfg.local` into the socket. One endpoint per queue and
    /// thread: bind each on its own thread (the pool and the endpoint stay there).
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
            tx_checksum_offload: false,
        };
        // The socket first: a queue that is already taken is reported as such.
        let sock = XskSocket::open(&pool, &iface, &xcfg)?;
        let steering = Steering::bind(&iface, cfg.attach, cfg.queue, &sock, cfg.local)?;
        Self::build(sock, Program::Shared(steering), cfg)
    }

    /// An endpoint over a socket the caller opened (and a program the caller attached and
    /// steers `cfg.local` with, if `program` is `None`). `cfg.iface`, `queue`, `frames`,
    /// `hugepages`, `bind`, `attach`, `multi_buffer` and `ring_size` are not used.
    pub fn with_socket(
        sock: XskSocket,
        program: Option<SteerProgram>,
        cfg: &EndpointConfig,
    ) -> Result<Endpoint, MsgError> {
        Self::build(sock, program.map_or(Program::Caller, |p| Program::Owned(Box::new(p))), cfg)
    }

    fn build(sock: XskSocket, program: Program, cfg: &EndpointConfig) -> Result<Endpoint, MsgError> {
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
        let frames_per_msg = cfg.max_msg.div_ceil(fs - HDR_LEN).max(1) as u32;
        if pool.stats().frames < cfg.ring_size + 2 * frames_per_msg {
            return Err(MsgError::Config(format!(
                "a pool of {} frames is too small for a {}-entry fill ring plus two {}-byte messages; give it more frames (--frames)",
                pool.stats().frames, cfg.ring_size, cfg.max_msg
            )));
        }
        let engine = Engine::new(cfg.engine(iface.mac()?, dg_payload), pool)?;
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
            engine,
            rxq: Vec::with_capacity(RX_BATCH as usize),
            gather: Vec::new(),
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
        self.engine.config().datagram_payload
    }

    /// The AF_XDP socket (mode, multi-buffer, kernel statistics).
    pub fn socket(&self) -> &XskSocket {
        &self.sock
    }

    /// The queue bound.
    pub fn queue(&self) -> u32 {
        self.sock.queue()
    }

    /// How the steering program is attached (`None` when the caller attached and kept it).
    pub fn attach_mode(&self) -> Option<AttachMode> {
        match &self.program {
            Program::Shared(s) => Some(s.mode()),
            Program::Owned(p) => Some(p.mode()),
            Program::Caller => None,
        }
    }

    /// The steering program's counters, summed over every endpoint on the interface
    /// (`None` when the caller attached and kept the program).
    pub fn program_counters(&self) -> Option<Result<ProgramCounters, datapath::Error>> {
        match &self.program {
            Program::Shared(s) => Some(s.counters()),
            Program::Owned(p) => Some(p.counters()),
            Program::Caller => None,
        }
    }

    /// The protocol state machine this endpoint drives.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The pool messages live in.
    pub fn pool(&self) -> &Pool {
        self.engine.pool()
    }

    /// Counters.
    pub fn stats(&self) -> MsgStats {
        self.engine.stats()
    }

    /// Adds a peer, resolving its MAC through the kernel's neighbour table (ARP once, here,
    /// never on the fast path). Adding a known peer returns its id.
    pub fn add_peer(&mut self, addr: SocketAddrV4) -> Result<PeerId, MsgError> {
        if let Some(p) = self.engine.peer(addr) {
            return Ok(p);
        }
        let mac = neigh::resolve(&self.cfg.iface, *addr.ip(), self.cfg.resolve_timeout)?;
        self.engine.add_peer(addr, mac)
    }

    /// A peer's address.
    pub fn peer_addr(&self, p: PeerId) -> Option<SocketAddrV4> {
        self.engine.peer_addr(p)
    }

    /// Reliable datagrams sent and not yet acknowledged, over all peers.
    pub fn unacked(&self) -> u32 {
        self.engine.unacked()
    }

    /// Whether an acknowledgement is owed and waits (a little) for more datagrams to cover:
    /// the next `recv` or `flush` after [`Endpoint::next_timer`] sends it.
    pub fn owes_acks(&self) -> bool {
        self.engine.owes_acks()
    }

    /// When the endpoint next wants driving for its timers (retransmissions, a delayed
    /// acknowledgement); `None` when nothing is timed.
    pub fn next_timer(&self) -> Option<Instant> {
        self.engine.poll_timeout()
    }

    /// The next event (a peer lost after the retry limit, a learned peer evicted); poll it
    /// with `recv`, it is never an error of `send`.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.engine.poll_event()
    }

    /// Frames for a `len`-byte message, to be filled in place and passed to [`Endpoint::send`].
    pub fn alloc(&mut self, len: usize) -> Result<MsgBuf, AllocError> {
        self.engine.alloc(len)
    }

    /// A received message turned into a buffer for sending, in the same frames (a reply
    /// written in place, without a copy); `Err` gives it back when that cannot be done.
    pub fn reply_buf(&self, m: Msg) -> Result<MsgBuf, Msg> {
        self.engine.reply_buf(m)
    }

    /// Copies a message's payload into one contiguous vector. The one copy this API makes,
    /// counted in `MsgStats::copied_bytes`; prefer [`Msg::chunks`].
    pub fn copy_to_vec(&mut self, m: &Msg) -> Vec<u8> {
        self.engine.copy_to_vec(m)
    }

    /// Takes the message for sending (all of it or none of it) and puts as many of its
    /// datagrams on the TX ring as fit; [`Endpoint::flush`] or the next `recv` hands them to
    /// the kernel and queues the rest. With reliability on, the endpoint keeps references
    /// to the frames until the peer acknowledges them.
    pub fn send(&mut self, peer: PeerId, m: MsgBuf) -> Result<(), SendError> {
        if !self.engine.can_queue(m.datagrams()) {
            // Give the ring to the kernel and look again before refusing.
            self.push_tx();
            self.sock.poll();
            self.push_tx();
        }
        self.engine.send(Instant::now(), peer, m)?;
        self.push_tx();
        Ok(())
    }

    /// Moves what the engine has to transmit onto the TX ring, whole datagrams, in order,
    /// as far as they fit (the socket's reservation re-reads the kernel's consumer, so the
    /// room it reports is real).
    fn push_tx(&mut self) {
        let mut batch = self.sock.tx_batch(self.cfg.ring_size);
        while let Some(d) = self.engine.poll_transmit(batch.remaining()) {
            if batch.push(&d).is_err() {
                // Only a bug could get here (room checked, segments non-empty): count it
                // rather than loop.
                log::debug!("TX push refused a datagram of {} buffers", d.len());
            }
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
        if self.engine.poll_timeout().is_some_and(|t| now >= t) {
            self.engine.handle_timeout(now);
        }
        let before = out.len();
        while let Some(m) = self.engine.poll_recv() {
            out.push(m);
        }
        let n = out.len() - before;
        if n == 0 || self.engine.queued() > 0 {
            self.push_tx();
        }
        // Otherwise only acknowledgements wait, and the caller is about to act on the
        // messages: a reply it sends goes onto the ring ahead of them (see
        // `Engine::poll_transmit`), and its next `recv` or `flush` hands them over anyway.
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
            let now = Instant::now();
            let el = now.duration_since(start);
            if el >= timeout {
                return 0;
            }
            let sleep = match self.cfg.poll {
                PollMode::Busy => false,
                PollMode::Adaptive { spin } => el >= spin,
                PollMode::Blocking => true,
            };
            if sleep {
                // Wake for the engine's next timer, if it has one.
                let timer = self.engine.poll_timeout().map_or(timeout, |t| t.saturating_duration_since(now));
                self.sock.wait((timeout - el).min(timer));
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
            self.engine.handle_datagram(now, frags);
        }
        self.rxq = rxq;
    }
}
