//! Test harness: hosts (our stack, or smoltcp's Interface + TcpSocket) running a bulk
//! sender or a verifying receiver of a seeded stream, joined by a simulated wire, driven
//! by a virtual clock until both are done.
#![allow(dead_code)]

pub mod pair;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp as smol_tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv4Cidr};
use stack::sim::{Channel, Faults, SimLink, SmolDevice, Stream};
use stack::tcp::TcpConfig;
use stack::{ConnHandle, Duration, Instant, Link, ListenHandle, Stack, StackConfig};
use umem::{BufSlice, HugePages, Pool, PoolConfig};

pub const PORT: u16 = 5001;
pub const BLOCK: usize = 64 * 1024;

pub fn ip(n: u8) -> Ipv4Address {
    Ipv4Address::new(10, 0, 0, n)
}

pub fn ip6(n: u8) -> smoltcp::wire::Ipv6Address {
    smoltcp::wire::Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n))
}

pub fn mac(n: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, n])
}

pub fn pool(frames: u32, blocks: u32) -> Pool {
    Pool::new(&PoolConfig {
        frame_size: 4096,
        frames,
        block_size: BLOCK as u32,
        blocks,
        hugepages: HugePages::Off,
        lock: false,
    })
    .expect("pool")
}

/// What a host's application does.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// Sends `total` bytes of the stream, then closes.
    Send { total: u64 },
    /// Receives and verifies `total` bytes, then expects end of stream and closes.
    Recv { total: u64 },
}

pub trait Host {
    fn receive(&mut self, now: Instant, frame: &[u8]);
    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>);
    fn poll_at(&mut self, now: Instant) -> Option<Instant>;
    fn done(&self) -> bool;
    /// Application bytes moved (sent and acknowledged, or received and verified).
    fn progress(&self) -> u64;
    fn describe(&self) -> String;
}

/// Our stack with an application.
pub struct OurHost {
    pub stack: Stack,
    pub link: SimLink,
    pub conn: Option<ConnHandle>,
    listen: Option<ListenHandle>,
    connect_to: Option<IpEndpoint>,
    role: Role,
    stream: Stream,
    pos: u64,
    closed: bool,
    finished: bool,
}

impl OurHost {
    pub fn new(n: u8, tcp: TcpConfig, multi_buffer: bool, role: Role, stream: Stream) -> Self {
        Self::with_mtu(n, tcp, multi_buffer, role, stream, 1500)
    }

    /// A host whose stack and link have IP MTU `mtu` (jumbo frames beyond one 4 KiB frame
    /// are sent as several fragments, and received into a payload block).
    pub fn with_mtu(n: u8, tcp: TcpConfig, multi_buffer: bool, role: Role, stream: Stream, mtu: usize) -> Self {
        let mut cfg = StackConfig::new(mac(n));
        cfg.mtu = mtu;
        cfg.ipv4 = Some(Ipv4Cidr::new(ip(n), 24));
        cfg.ipv6 = Some(smoltcp::wire::Ipv6Cidr::new(ip6(n), 64));
        cfg.tcp = tcp;
        cfg.secret = 0x1234 + u64::from(n);
        let blocks = (cfg.tcp.send_buffer / BLOCK + 4) as u32;
        // Jumbo frames are received into blocks: room for the receive and out-of-order queues.
        let rx_blocks = if mtu + 14 > 4096 { 1024 } else { 0 };
        let mut link = SimLink::new(pool(8192, blocks + rx_blocks), multi_buffer);
        link.mtu = mtu;
        OurHost {
            stack: Stack::new(cfg),
            link,
            conn: None,
            listen: None,
            connect_to: None,
            role,
            stream,
            pos: 0,
            closed: false,
            finished: false,
        }
    }

    pub fn server(mut self) -> Self {
        self.listen = Some(self.stack.listen(PORT).expect("listen"));
        self
    }

    pub fn client(mut self, peer: u8) -> Self {
        self.connect_to = Some(IpEndpoint::new(IpAddress::Ipv4(ip(peer)), PORT));
        self
    }

    /// A server that keeps its stack (and whatever it went through) and serves the next
    /// connection it accepts with `role`.
    pub fn serve_again(&mut self, role: Role, stream: Stream) {
        assert!(self.listen.is_some(), "not a server");
        self.conn = None;
        self.role = role;
        self.stream = stream;
        self.pos = 0;
        self.closed = false;
        self.finished = false;
    }

    pub fn client_v6(mut self, peer: u8) -> Self {
        self.connect_to = Some(IpEndpoint::new(IpAddress::Ipv6(ip6(peer)), PORT));
        self
    }

    fn app(&mut self, now: Instant) {
        if self.conn.is_none() {
            if let Some(to) = self.connect_to.take() {
                self.conn = Some(self.stack.connect(now, to).expect("connect"));
            } else if let Some(l) = self.listen {
                self.conn = self.stack.accept(l);
            }
        }
        let Some(h) = self.conn else { return };
        if self.finished {
            return;
        }
        let r = self.stack.readiness(h);
        assert!(r.error.is_none(), "connection failed: {:?}", r.error);
        match self.role {
            Role::Send { total } => {
                while self.pos < total && r.connected {
                    let space = self.stack.send_space(h);
                    if space == 0 {
                        break;
                    }
                    let Some(mut block) = self.link.pool.alloc_block() else { break };
                    let n = (total - self.pos).min(space as u64).min(BLOCK as u64) as usize;
                    self.stream.fill(self.pos, &mut block.get_mut().expect("unique")[..n]);
                    let slice = BufSlice::new(block, 0..n).expect("range");
                    let took = self.stack.write_frames(h, &[slice]).expect("write");
                    assert_eq!(took, n);
                    self.pos += n as u64;
                }
                if self.pos == total && !self.closed {
                    self.stack.close(h).expect("close");
                    self.closed = true;
                    self.finished = true;
                }
            }
            Role::Recv { total } => {
                while let Some(s) = self.stack.read(h, usize::MAX).expect("read") {
                    if let Err(at) = self.stream.verify(self.pos, s.as_bytes()) {
                        panic!("stream mismatch at byte {at}");
                    }
                    self.pos += s.len() as u64;
                    assert!(self.pos <= total, "more bytes than sent");
                }
                if self.stack.readiness(h).read_closed {
                    assert_eq!(self.pos, total, "end of stream before all bytes");
                    self.stack.close(h).expect("close");
                    self.closed = true;
                    self.finished = true;
                }
            }
        }
    }
}

impl Host for OurHost {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        if let Some(f) = self.link.rx_frame(frame) {
            self.stack.handle_frame(now, f);
        }
    }

    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        self.app(now);
        self.stack.poll(now, &mut self.link);
        out.append(&mut self.link.tx);
    }

    fn poll_at(&mut self, _now: Instant) -> Option<Instant> {
        self.stack.poll_at()
    }

    fn done(&self) -> bool {
        match self.role {
            // The close was issued after the last write; done when the connection (owned
            // by the stack now) has no live connections left except TIME-WAIT, i.e. the
            // peer acknowledged everything.
            Role::Send { .. } => self.finished && self.stack.counters().tcp_established > 0 && self.sender_acked(),
            Role::Recv { .. } => self.finished,
        }
    }

    fn progress(&self) -> u64 {
        self.pos
    }

    fn describe(&self) -> String {
        let c = self.conn.and_then(|h| self.stack.conn(h)).map(|c| format!("{:?} {:?}", c.state(), c.negotiated()));
        format!(
            "ours pos={} finished={} conn={c:?} live={} pool={:?}",
            self.pos,
            self.finished,
            self.stack.connection_count(),
            self.link.pool.stats()
        )
    }
}

impl OurHost {
    fn sender_acked(&self) -> bool {
        // After close() the handle is released; every queued block comes back to the pool
        // once acknowledged, so "all blocks free" means "all acknowledged".
        let s = self.link.pool.stats();
        s.blocks_free == s.blocks
    }
}

/// smoltcp's Interface and TcpSocket as the peer.
pub struct SmolHost {
    pub iface: Interface,
    pub dev: SmolDevice,
    pub sockets: SocketSet<'static>,
    pub handle: SocketHandle,
    role: Role,
    stream: Stream,
    pos: u64,
    closed: bool,
    finished: bool,
    connect_to: Option<IpEndpoint>,
}

impl SmolHost {
    pub fn new(n: u8, role: Role, stream: Stream, buf: usize) -> Self {
        let mut dev = SmolDevice::default();
        let mut cfg = Config::new(HardwareAddress::Ethernet(mac(n)));
        cfg.random_seed = u64::from(n);
        let mut iface = Interface::new(cfg, &mut dev, Instant::ZERO);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(ip(n)), 24)).expect("addr");
        });
        let mut sock = smol_tcp::Socket::new(
            smol_tcp::SocketBuffer::new(vec![0u8; buf]),
            smol_tcp::SocketBuffer::new(vec![0u8; buf]),
        );
        sock.set_nagle_enabled(false);
        sock.set_ack_delay(Some(Duration::from_millis(10)));
        let mut sockets = SocketSet::new(Vec::new());
        let handle = sockets.add(sock);
        SmolHost { iface, dev, sockets, handle, role, stream, pos: 0, closed: false, finished: false, connect_to: None }
    }

    pub fn server(mut self) -> Self {
        self.sockets.get_mut::<smol_tcp::Socket>(self.handle).listen(PORT).expect("listen");
        self
    }

    pub fn client(mut self, peer: u8) -> Self {
        self.connect_to = Some(IpEndpoint::new(IpAddress::Ipv4(ip(peer)), PORT));
        self
    }

    fn app(&mut self) {
        if let Some(to) = self.connect_to.take() {
            let cx = self.iface.context();
            self.sockets.get_mut::<smol_tcp::Socket>(self.handle).connect(cx, to, 40000).expect("connect");
        }
        let s = self.sockets.get_mut::<smol_tcp::Socket>(self.handle);
        if self.finished {
            return;
        }
        match self.role {
            Role::Send { total } => {
                while self.pos < total && s.can_send() {
                    let stream = self.stream;
                    let pos = self.pos;
                    let n = s
                        .send(|buf| {
                            let n = (total - pos).min(buf.len() as u64) as usize;
                            stream.fill(pos, &mut buf[..n]);
                            (n, n)
                        })
                        .expect("send");
                    if n == 0 {
                        break;
                    }
                    self.pos += n as u64;
                }
                if self.pos == total && !self.closed {
                    s.close();
                    self.closed = true;
                }
                if self.closed && s.send_queue() == 0 && !s.may_send() {
                    self.finished = true;
                }
            }
            Role::Recv { total } => {
                while s.can_recv() {
                    let stream = self.stream;
                    let pos = self.pos;
                    let n = s
                        .recv(|buf| {
                            if let Err(at) = stream.verify(pos, buf) {
                                panic!("stream mismatch at byte {at}");
                            }
                            (buf.len(), buf.len())
                        })
                        .expect("recv");
                    self.pos += n as u64;
                    assert!(self.pos <= total);
                }
                if !s.may_recv()
                    && s.state() != smol_tcp::State::Listen
                    && s.state() != smol_tcp::State::SynReceived
                    && s.state() != smol_tcp::State::SynSent
                    && s.state() != smol_tcp::State::Closed
                {
                    assert_eq!(self.pos, total, "end of stream before all bytes");
                    if !self.closed {
                        s.close();
                        self.closed = true;
                    }
                    self.finished = true;
                }
            }
        }
    }
}

impl Host for SmolHost {
    fn receive(&mut self, _now: Instant, frame: &[u8]) {
        self.dev.rx.push_back(frame.to_vec());
    }

    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        self.app();
        self.iface.poll(now, &mut self.dev, &mut self.sockets);
        out.append(&mut self.dev.tx);
    }

    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.iface.poll_at(now, &self.sockets)
    }

    fn done(&self) -> bool {
        self.finished
    }

    fn progress(&self) -> u64 {
        self.pos
    }

    fn describe(&self) -> String {
        let s = self.sockets.get::<smol_tcp::Socket>(self.handle);
        format!("smoltcp pos={} finished={} state={} sendq={}", self.pos, self.finished, s.state(), s.send_queue())
    }
}

/// What a [`Spy`] calls after each poll.
pub type Look<H> = Box<dyn FnMut(Instant, &H)>;

/// A host whose application state is looked at by `f` after each of its polls.
pub struct Spy<H> {
    pub inner: H,
    pub f: Look<H>,
}

impl<H: Host> Spy<H> {
    pub fn new(inner: H, f: impl FnMut(Instant, &H) + 'static) -> Self {
        Spy { inner, f: Box::new(f) }
    }
}

impl<H: Host> Host for Spy<H> {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        self.inner.receive(now, frame);
    }
    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        self.inner.poll(now, out);
        (self.f)(now, &self.inner);
    }
    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.inner.poll_at(now)
    }
    fn done(&self) -> bool {
        self.inner.done()
    }
    fn progress(&self) -> u64 {
        self.inner.progress()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

impl OurHost {
    /// The connection, while the application holds it.
    pub fn connection(&self) -> Option<&stack::tcp::Conn> {
        self.conn.and_then(|h| self.stack.conn(h))
    }
}

/// A wire between host A and host B.
pub struct Wire {
    pub ab: Channel,
    pub ba: Channel,
}

impl Wire {
    pub fn new(faults: Faults, seed: u64) -> Self {
        Wire { ab: Channel::new(faults, seed), ba: Channel::new(faults, seed ^ 0xa5a5_a5a5) }
    }
}

/// Runs until both hosts are done; returns the virtual time it took. Panics on a stall or
/// when `limit` of virtual time passes.
pub fn run(a: &mut dyn Host, b: &mut dyn Host, wire: &mut Wire, limit: Duration) -> Instant {
    let mut now = Instant::ZERO;
    run_until(a, b, wire, &mut now, limit, &mut |a, b| a.done() && b.done());
    now
}

/// Drives both hosts from `*now` until `cond` holds (checked after each round).
pub fn run_until(
    a: &mut dyn Host,
    b: &mut dyn Host,
    wire: &mut Wire,
    now: &mut Instant,
    limit: Duration,
    cond: &mut dyn FnMut(&dyn Host, &dyn Host) -> bool,
) {
    let mut out = Vec::new();
    let end = *now + limit;
    loop {
        while let Some(f) = wire.ab.recv(*now) {
            b.receive(*now, &f);
        }
        while let Some(f) = wire.ba.recv(*now) {
            a.receive(*now, &f);
        }
        a.poll(*now, &mut out);
        for f in out.drain(..) {
            wire.ab.send(*now, f);
        }
        b.poll(*now, &mut out);
        for f in out.drain(..) {
            wire.ba.send(*now, f);
        }
        if cond(&*a, &*b) {
            return;
        }
        let next = [a.poll_at(*now), b.poll_at(*now), wire.ab.next_at(), wire.ba.next_at()].into_iter().flatten().min();
        let Some(next) = next else {
            panic!("stalled at {now}: a: {}, b: {}", a.describe(), b.describe());
        };
        *now = next.max(*now + Duration::from_micros(1));
        assert!(*now < end, "not done after {limit}: a: {}, b: {}", a.describe(), b.describe());
    }
}

/// TCP settings for tests: defaults with a short TIME-WAIT.
pub fn tcp_config() -> TcpConfig {
    TcpConfig { time_wait: Duration::from_secs(1), ..TcpConfig::default() }
}

pub fn faults(loss: f64) -> Faults {
    Faults { loss, ..Faults::default() }
}

pub fn lossy_mix(loss: f64) -> Faults {
    Faults { loss, reorder: 0.02, duplicate: 0.01, ..Faults::default() }
}

pub fn check_link(l: &SimLink) {
    assert_eq!(l.frag_violations, 0, "packets with more fragments than the link allows");
    assert_eq!(l.oversize, 0, "packets longer than the MTU (largest {} B)", l.largest_packet);
    let _ = l.mtu();
}
