//! The AF_XDP backend's core on a simulated network, in one process with no root and no
//! NIC: the server is a [`Core`] over a [`SimLink`] (the same code the AF_XDP socket
//! drives), the client is the user-space stack as an HTTP client, and a seeded wire
//! ([`Channel`]s) joins them on a virtual clock. File blocks are real io_uring reads
//! into the server's pool (unlocked, 4 KiB pages), so the whole path runs: frames ->
//! stack -> session -> block cache -> stack -> frames.
//!
//! ```text
//!   SimClient (Stack, connect/write/read) ──ab──► SimLink::rx_frame ──► Core::receive
//!   SimClient ◄──ba── SimLink::tx ◄── Core::turn(now, &mut SimLink)
//! ```

use std::path::Path;
use std::time::{Duration as StdDuration, SystemTime};

use smoltcp::wire::{EthernetAddress, IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr};
use stack::sim::{Channel, Faults, SimLink};
use stack::tcp::TcpConfig;
use stack::{ConnHandle, Duration, Instant, Stack, StackConfig};
use umem::{BlockCache, BlockReader, BufSlice, HugePages, Pool, PoolConfig};

use crate::options::{Limits, PoolOpts};
use crate::root::Root;
use crate::session::Now;
use crate::xdp::Core;

/// The server's port.
pub const PORT: u16 = 80;

fn ip(n: u8) -> Ipv4Address {
    Ipv4Address::new(10, 0, 0, n)
}

fn ip6(n: u8) -> Ipv6Address {
    Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n))
}

fn mac(n: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, n])
}

fn stack(n: u8, tcp: TcpConfig, secret: u64) -> Stack {
    let mut cfg = StackConfig::new(mac(n));
    cfg.ipv4 = Some(Ipv4Cidr::new(ip(n), 24));
    cfg.ipv6 = Some(Ipv6Cidr::new(ip6(n), 64));
    cfg.tcp = tcp;
    cfg.secret = secret;
    Stack::new(cfg)
}

/// How the simulated server is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Packet frames of the server's pool.
    pub frames: u32,
    /// The pool's blocks and the cache (`hugepages` and locking are ignored: the
    /// simulation runs without privileges).
    pub pool: PoolOpts,
    /// HTTP limits.
    pub limits: Limits,
    /// TCP settings of both ends ...
    pub tcp: TcpConfig,
    /// ... or of the client only, if set (a small receive buffer: a peer whose window
    /// shuts soon once it stops reading).
    pub client_tcp: Option<TcpConfig>,
    /// The wire, both directions.
    pub faults: Faults,
    /// Frames towards the server arrive as multi-buffer packets of fragments of this many
    /// bytes (as AF_XDP hands over a packet longer than an RX frame); 0: whole.
    pub rx_fragment: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            frames: 512,
            pool: PoolOpts {
                block_kib: 64,
                blocks: 16,
                hugepages: HugePages::Off,
                cache_blocks: 8,
                direct_threshold: 256 << 10,
                direct_io: true,
            },
            limits: Limits {
                max_connections: 64,
                head_timeout: StdDuration::from_secs(2),
                idle_timeout: StdDuration::from_secs(30),
                write_timeout: StdDuration::from_secs(30),
                conn_blocks: 32,
            },
            tcp: TcpConfig { time_wait: Duration::from_secs(1), ..TcpConfig::default() },
            client_tcp: None,
            faults: Faults::default(),
            rx_fragment: 0,
        }
    }
}

/// One client connection and what arrived on it.
#[derive(Debug)]
pub struct ClientConn {
    /// The client stack's handle.
    pub h: ConnHandle,
    /// Every byte received, in order.
    pub got: Vec<u8>,
    /// The server closed its side (FIN) or the connection ended.
    pub ended: bool,
    /// The connection was reset or failed.
    pub reset: bool,
    /// The client stopped reading (its receive window fills, then shuts).
    pub paused: bool,
}

/// The server, the client and the wire.
#[derive(Debug)]
pub struct SimNet {
    /// The server core.
    pub core: Core,
    /// The server's link (and pool).
    pub link: SimLink,
    /// The client's stack.
    pub client: Stack,
    client_link: SimLink,
    /// Client connections, in the order opened.
    pub conns: Vec<ClientConn>,
    /// Client -> server.
    pub ab: Channel,
    /// Server -> client.
    pub ba: Channel,
    /// The virtual clock.
    pub now: Instant,
    rx_fragment: usize,
}

impl SimNet {
    /// A server for the files beneath `root`, and a client with no connections yet.
    pub fn new(root: &Path, cfg: &SimConfig) -> anyhow::Result<SimNet> {
        let pool =
            Pool::new(&PoolConfig { hugepages: HugePages::Off, lock: false, ..cfg.pool.pool_config(cfg.frames) })?;
        let reader = BlockReader::new(&pool, &cfg.pool.reader_config())?;
        let cache = BlockCache::new(reader, &cfg.pool.cache_config());
        let mut server = stack(1, cfg.tcp.clone(), 0x5e);
        let listener = server.listen(PORT).map_err(|e| anyhow::anyhow!("listen: {e}"))?;
        let core = Core::new(server, listener, cache, Root::open(root)?, cfg.limits.clone());
        let client_pool = Pool::new(&PoolConfig {
            frame_size: 4096,
            frames: 2048,
            block_size: 4096,
            blocks: 0,
            hugepages: HugePages::Off,
            lock: false,
        })?;
        Ok(SimNet {
            core,
            link: SimLink::new(pool, true),
            client: stack(2, cfg.client_tcp.clone().unwrap_or_else(|| cfg.tcp.clone()), 0xc1),
            client_link: SimLink::new(client_pool, true),
            conns: Vec::new(),
            ab: Channel::new(cfg.faults, 1),
            ba: Channel::new(cfg.faults, 2),
            now: Instant::ZERO,
            rx_fragment: cfg.rx_fragment,
        })
    }

    /// Hands the server one packet as AF_XDP would: in fragments of `piece` bytes, all
    /// but the last flagged as having more (`piece` 0: one fragment).
    pub fn inject(&mut self, packet: &[u8], piece: usize) {
        let piece = if piece == 0 { packet.len().max(1) } else { piece };
        let n = packet.len().div_ceil(piece);
        for (i, chunk) in packet.chunks(piece).enumerate() {
            if let Some(s) = self.link.rx_frame(chunk) {
                self.core.receive_fragment(self.now, s, i + 1 < n);
            }
        }
    }

    /// Opens a client connection to the server's IPv4 address; returns its index in
    /// [`SimNet::conns`].
    pub fn connect(&mut self) -> usize {
        self.connect_to(IpAddress::Ipv4(ip(1)))
    }

    /// Opens a client connection to the server's IPv6 address (both ends are dual stack;
    /// the client finds the server's MAC by neighbour discovery).
    pub fn connect_v6(&mut self) -> usize {
        self.connect_to(IpAddress::Ipv6(ip6(1)))
    }

    fn connect_to(&mut self, server: IpAddress) -> usize {
        let to = IpEndpoint::new(server, PORT);
        let h = self.client.connect(self.now, to).expect("the client stack has room for a connection");
        self.conns.push(ClientConn { h, got: Vec::new(), ended: false, reset: false, paused: false });
        self.conns.len() - 1
    }

    /// Queues `bytes` on client connection `c` (sent once it is established); false if
    /// the client's send queue or pool had no room for all of them.
    pub fn send(&mut self, c: usize, bytes: &[u8]) -> bool {
        let h = self.conns[c].h;
        for chunk in bytes.chunks(self.client_link.pool.frame_size() as usize) {
            let Some(mut f) = self.client_link.pool.alloc_frame() else { return false };
            let Some(buf) = f.get_mut() else { return false };
            buf[..chunk.len()].copy_from_slice(chunk);
            let Some(s) = BufSlice::new(f, 0..chunk.len()) else { return false };
            if self.client.write_frames(h, &[s]) != Ok(chunk.len()) {
                return false;
            }
        }
        true
    }

    /// Closes client connection `c` (FIN after what is queued).
    pub fn close(&mut self, c: usize) {
        let _ = self.client.close(self.conns[c].h);
    }

    /// One round: deliver what arrived, let both ends work, put what they sent on the wire.
    pub fn step(&mut self) {
        let now = self.now;
        while let Some(f) = self.ab.recv(now) {
            self.inject(&f, self.rx_fragment);
        }
        while let Some(f) = self.ba.recv(now) {
            if let Some(s) = self.client_link.rx_frame(&f) {
                self.client.handle_frame(now, s);
            }
        }
        let wall = SystemTime::UNIX_EPOCH + StdDuration::from_secs(1_700_000_000 + now.secs() as u64);
        self.core.turn(Now { mono: now, wall }, &mut self.link);
        for f in self.link.tx.drain(..) {
            self.ba.send(now, f);
        }
        for c in &mut self.conns {
            if c.ended {
                continue;
            }
            while !c.paused {
                let Ok(Some(s)) = self.client.read(c.h, usize::MAX) else { break };
                c.got.extend_from_slice(s.as_bytes());
            }
            let r = self.client.readiness(c.h);
            if r.error.is_some() {
                c.reset = true;
            }
            c.ended = r.read_closed || r.closed || r.error.is_some();
        }
        self.client.poll(now, &mut self.client_link);
        for f in self.client_link.tx.drain(..) {
            self.ab.send(now, f);
        }
    }

    /// The state of both ends, for a failing test's message.
    pub fn describe(&self) -> String {
        let b = self.core.blocks();
        format!(
            "at {}: poll_at {:?} / {:?}, server {} connections {:?}, stack {:?}, pool {:?}, blocks {:?}, reader idle {}, {:?}; client {:?}",
            self.now,
            self.core.poll_at(),
            self.core.stack().poll_at(),
            self.core.open_connections(),
            self.core.describe_connections(),
            self.core.stack().counters(),
            self.link.pool.stats(),
            b.cache().usage(),
            !b.reading(),
            self.core.work(),
            self.conns.iter().map(|c| (c.got.len(), c.ended, self.client.readiness(c.h))).collect::<Vec<_>>(),
        )
    }

    /// Steps for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// Steps until `done` holds; false if `limit` of virtual time passed first (or 60 s of
    /// real time, or the network went quiet with nothing scheduled).
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&SimNet) -> bool) -> bool {
        let end = self.now + limit;
        let started = std::time::Instant::now();
        loop {
            self.step();
            if done(self) {
                return true;
            }
            let mut next = [self.core.poll_at(), self.client.poll_at(), self.ab.next_at(), self.ba.next_at()]
                .into_iter()
                .flatten()
                .min();
            if self.core.blocks().reading() {
                // Reads complete in real time: give them some, keeping the virtual clock
                // nearly still.
                std::thread::sleep(StdDuration::from_micros(50));
                next = Some(next.map_or(self.now, |t| t.min(self.now)));
            }
            let Some(next) = next else { return false };
            self.now = next.max(self.now + Duration::from_micros(1));
            if self.now >= end || started.elapsed() > StdDuration::from_secs(60) {
                return false;
            }
        }
    }
}

/// A response parsed from the bytes a client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Splits received bytes into responses (each with a `Content-Length`; `head` says which
/// of them answered a HEAD, whose bodies are not sent). Err on anything malformed or cut.
pub fn responses(buf: &[u8], head: &[bool]) -> Result<Vec<Response>, String> {
    let mut out = Vec::new();
    walk(buf, head, |status, headers, body| {
        let headers = headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
            .collect();
        out.push(Response { status, headers, body: body.to_vec() })
    })?;
    Ok(out)
}

/// How many whole responses `buf` holds (0 if anything is malformed), without copying.
pub fn complete_responses(buf: &[u8], head: &[bool]) -> usize {
    let mut n = 0;
    let _ = walk(buf, head, |_, _, _| n += 1);
    n
}

/// Calls `each` with every whole response's status, headers and body.
fn walk(
    mut buf: &[u8],
    head: &[bool],
    mut each: impl FnMut(u16, &[httparse::Header<'_>], &[u8]),
) -> Result<(), String> {
    let mut i = 0;
    while !buf.is_empty() {
        let mut hs = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut hs);
        let n = match r.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Err(format!("a cut response head after {i} responses")),
            Err(e) => return Err(format!("response {i}: {e}")),
        };
        let status = r.code.unwrap_or(0);
        let len: usize = r
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
            .ok_or_else(|| format!("response {i} has no Content-Length"))?;
        let len = if head.get(i).copied().unwrap_or(false) || status == 304 { 0 } else { len };
        if buf.len() < n + len {
            return Err(format!("response {i} body cut at {} of {len} bytes", buf.len() - n));
        }
        each(status, r.headers, &buf[n..n + len]);
        buf = &buf[n + len..];
        i += 1;
    }
    Ok(())
}
