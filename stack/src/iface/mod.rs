//! The interface: one MAC with IPv4 and/or IPv6 addresses, owning the connection table,
//! the listeners, the neighbour cache and the queue of control replies.
//!
//! Inputs are [`Stack::handle_frame`] (a received frame) and [`Stack::handle_timeout`];
//! the output is [`Stack::dispatch`], which builds every pending packet into frames from
//! the [`Link`] and hands them to it. [`Stack::poll_at`] says when timers next need a call.
//! None of them walks the connection table: the timer wheel, the ready list and the
//! change list (module `table`) hold what needs attention, TIME-WAIT is a table of its own.

mod api;
mod control;
mod link;
mod neighbor;
mod output;
mod pmtu;
mod pressure;
pub(crate) mod table;
mod tcp_rx;
mod time_wait;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpEndpoint, IpProtocol, Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr};
use umem::BufSlice;

pub use api::{ConnHandle, ListenHandle, Readiness, SocketError, UdpHandle};
pub use link::{Full, Link, TxOffload};
pub use neighbor::{Learned, NeighborCache};
pub use pressure::{PoolPressure, Pressure};
pub use table::{Census, MemoryUse};

use crate::counters::Counters;
use crate::keyed::{Keyed, Purpose, SipKey};
use crate::tcp::syn_cookie::SynCookies;
use crate::tcp::{FourTuple, OutSegment, TcpConfig};
use crate::wheel::TimerWheel;
use crate::wire::{parse_frame, Route, TcpHeader, L3};
use table::{Listener, Slot};
use time_wait::TimeWaitTable;

/// How the stack is set up.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Our MAC.
    pub mac: EthernetAddress,
    /// IPv4 address and prefix.
    pub ipv4: Option<Ipv4Cidr>,
    /// IPv4 default gateway.
    pub gateway4: Option<Ipv4Address>,
    /// IPv6 address and prefix.
    pub ipv6: Option<Ipv6Cidr>,
    /// IPv6 default gateway.
    pub gateway6: Option<Ipv6Address>,
    /// IP MTU (the advertised MSS follows from it).
    pub mtu: usize,
    /// TCP settings for new connections.
    pub tcp: TcpConfig,
    /// Most connections in any state but TIME-WAIT (those are compact entries, capped by
    /// `max_time_wait`). Beyond it SYNs are dropped (`tcp_conn_table_full`) and `connect`
    /// fails. Every per-connection structure (slots, four-tuple index, timer wheel, ready
    /// and change lists) is bounded by it; they grow on demand and keep their peak size.
    ///
    /// Memory (x86_64, measured by `tests/memory.rs` through [`Stack::memory`] on 8192 of
    /// each): an idle established connection takes about 800 bytes: its 568-byte slot
    /// (the `Conn` is 536), 64 bytes of heap (the CUBIC controller; NewReno's is 24), about
    /// 90 bytes of four-tuple index and 24 of timer-wheel node. Queues that have held data
    /// keep their capacity (16 to 32 bytes per slice or segment they held at once). A
    /// TIME-WAIT (or FIN-WAIT-2) entry takes about 180 bytes: a 90-byte entry and about 90
    /// bytes of index.
    /// Frames referenced by queues are the pool's and not counted here.
    pub max_connections: usize,
    /// Most TIME-WAIT entries (Linux `tcp_max_tw_buckets`); `None`: `max_connections`. At
    /// the cap the oldest entry is recycled for the new one (counted in
    /// `tcp_time_wait_recycled`).
    pub max_time_wait: Option<usize>,
    /// Most half-open (SYN-RECEIVED) connections; beyond it SYNs get SYN cookies.
    pub max_half_open: usize,
    /// Most established connections waiting in one listener's accept queue.
    pub backlog: usize,
    /// When the ACK that completes a SYN-cookie handshake finds the accept queue full:
    /// reset the connection (Linux `tcp_abort_on_overflow = 1`) instead of dropping the
    /// ACK and letting the peer's retransmission try again (the default, as in Linux).
    /// Either way `tcp_syn_cookies_overflow` counts it.
    pub abort_on_overflow: bool,
    /// The secret that keys initial sequence numbers (RFC 6528), timestamp offsets, SYN
    /// cookies and the hash maps indexed by what peers send (see [`crate::keyed`]). Drawn
    /// from the operating system's random source by [`StackConfig::new`]
    /// ([`StackConfig::random_secret`]); set a fixed one only for reproducible tests.
    pub secret: u64,
    /// Copy payload behind the header even when the link can do multi-buffer.
    pub force_copy: bool,
    /// Ephemeral ports for active opens.
    pub ephemeral_ports: core::ops::Range<u16>,
    /// Most queued control replies (RST, ARP, ICMP).
    pub max_control_queue: usize,
    /// What to do when the pool runs short of frames (pruning out-of-order queues, then
    /// refusing connections): see [`PoolPressure`].
    pub pressure: PoolPressure,
    /// Datagrams queued per UDP socket.
    pub udp_queue: usize,
}

impl StackConfig {
    /// A configuration with defaults for everything but the addresses.
    pub fn new(mac: EthernetAddress) -> Self {
        StackConfig {
            mac,
            ipv4: None,
            gateway4: None,
            ipv6: None,
            gateway6: None,
            mtu: 1500,
            tcp: TcpConfig::default(),
            max_connections: 65536,
            max_time_wait: None,
            max_half_open: 1024,
            backlog: 1024,
            abort_on_overflow: false,
            secret: StackConfig::random_secret().unwrap_or_else(|_| fallback_secret(&mac)),
            force_copy: false,
            ephemeral_ports: 32768..61000,
            max_control_queue: 4096,
            pressure: PoolPressure::default(),
            udp_queue: 1024,
        }
    }
}

impl StackConfig {
    /// 64 random bits from the operating system (`getrandom(2)`), for
    /// [`StackConfig::secret`].
    pub fn random_secret() -> std::io::Result<u64> {
        getrandom::u64().map_err(|e| std::io::Error::other(format!("getrandom: {e}")))
    }
}

/// Without `getrandom(2)` (never seen on Linux 3.17 and later): the standard library's
/// per-process random hash keys, which it draws from the same source or its fallbacks.
fn fallback_secret(mac: &EthernetAddress) -> u64 {
    use std::hash::BuildHasher;
    std::hash::RandomState::new().hash_one(mac.0)
}

/// Heap bytes of a hash map (hashbrown: a power-of-two number of buckets, at most 7/8
/// full, each a key, a value and a control byte).
pub(crate) fn hash_map_bytes<K, V, S>(m: &HashMap<K, V, S>) -> usize {
    let cap = m.capacity();
    if cap == 0 {
        return 0;
    }
    let buckets = if cap < 8 { (cap + 1).next_power_of_two() } else { (cap * 8 / 7).next_power_of_two() };
    buckets * (size_of::<(K, V)>() + 1)
}

/// A control packet waiting for a frame.
#[derive(Debug)]
pub(crate) enum Control {
    /// A frame already built (an ARP or ICMP reply rewritten in the received frame).
    Frame(BufSlice),
    /// A TCP segment with no connection behind it (RST, SYN-cookie SYN-ACK).
    Tcp { route: Route, hdr: TcpHeader },
    /// A UDP datagram.
    Udp { route: Route, src_port: u16, dst_port: u16, payload: Vec<BufSlice> },
    /// Resolve an IPv4 address.
    ArpRequest(Ipv4Address),
    /// Resolve an IPv6 address.
    NeighborSolicit(Ipv6Address),
}

/// The stack: see the module docs.
#[derive(Debug)]
pub struct Stack {
    pub(crate) cfg: StackConfig,
    /// `cfg.tcp`, shared with every connection.
    pub(crate) tcp: Arc<TcpConfig>,
    pub(crate) counters: Counters,
    pub(crate) slots: Vec<Slot>,
    pub(crate) free: Vec<u32>,
    pub(crate) live: usize,
    pub(crate) half_open: usize,
    pub(crate) by_tuple: HashMap<FourTuple, u32, Keyed>,
    pub(crate) listeners: BTreeMap<u16, Listener>,
    pub(crate) neighbors: NeighborCache,
    pub(crate) control: VecDeque<Control>,
    pub(crate) cookies: SynCookies,
    pub(crate) next_port: u16,
    pub(crate) udp: BTreeMap<u16, api::UdpSocket>,
    pub(crate) listener_gen: u32,
    /// Connections in TIME-WAIT, as compact entries.
    pub(crate) time_wait: TimeWaitTable,
    /// Each connection filed once, at its earliest deadline (by slot index).
    pub(crate) wheel: TimerWheel,
    /// Slot indices the wheel handed out (kept to reuse its allocation).
    pub(crate) fired: Vec<u32>,
    /// Connections that may have a segment to send.
    pub(crate) ready: VecDeque<u32>,
    /// Connections whose readiness may have changed for the application.
    pub(crate) changed: VecDeque<u32>,
    /// Connections waiting for their next hop's MAC, by next hop.
    pub(crate) unrouted: HashMap<IpAddress, Vec<ConnHandle>, Keyed>,
    pub(crate) unrouted_retry: Option<Instant>,
    /// Keys of the ISN and timestamp-offset functions (sub-keys of `cfg.secret`).
    isn_key: SipKey,
    ts_key: SipKey,
    /// The link's frame size, once a frame has been seen.
    frame_cap: Option<usize>,
    /// The size of the slot the last TCP segment arrived in (0 before any): what a
    /// received segment pins, for the windows of new connections.
    pub(crate) rx_truesize: usize,
    /// The pool received frames come from (learned from the first), watched for pressure.
    pub(crate) rx_pool: Option<umem::Pool>,
    /// Connections that started holding out-of-order data, oldest first (pressure.rs).
    pub(crate) ooo_conns: VecDeque<u32>,
    out: OutSegment,
    frags: Vec<BufSlice>,
}

impl Stack {
    /// A stack with no connections.
    pub fn new(cfg: StackConfig) -> Stack {
        let cookies = SynCookies::new(cfg.secret);
        let next_port = cfg.ephemeral_ports.start;
        let keyed = Keyed::new(cfg.secret);
        let (isn_key, ts_key) =
            (SipKey::derive(cfg.secret, Purpose::Isn), SipKey::derive(cfg.secret, Purpose::TsOffset));
        Stack {
            tcp: Arc::new(cfg.tcp.clone()),
            cfg,
            counters: Counters::default(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            half_open: 0,
            by_tuple: HashMap::with_hasher(keyed),
            listeners: BTreeMap::new(),
            neighbors: NeighborCache::with_hasher(keyed),
            control: VecDeque::new(),
            cookies,
            next_port,
            udp: BTreeMap::new(),
            listener_gen: 0,
            time_wait: TimeWaitTable::new(keyed),
            wheel: TimerWheel::new(),
            fired: Vec::new(),
            ready: VecDeque::new(),
            changed: VecDeque::new(),
            unrouted: HashMap::with_hasher(keyed),
            unrouted_retry: None,
            isn_key,
            ts_key,
            frame_cap: None,
            rx_truesize: 0,
            rx_pool: None,
            ooo_conns: VecDeque::new(),
            out: OutSegment::default(),
            frags: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    /// Counters since creation.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Copy payload behind headers even on a multi-buffer link (tests, or a device whose
    /// multi-buffer support is broken).
    pub fn set_force_copy(&mut self, on: bool) {
        self.cfg.force_copy = on;
    }

    /// The neighbour cache (e.g. to add static entries).
    pub fn neighbors_mut(&mut self) -> &mut NeighborCache {
        &mut self.neighbors
    }

    /// Connections in the table, in any state but TIME-WAIT.
    pub fn connection_count(&self) -> usize {
        self.live
    }

    /// Four-tuples in TIME-WAIT (compact entries, not connections).
    pub fn time_wait_count(&self) -> usize {
        self.time_wait.len() - self.time_wait.fin_wait2_len()
    }

    /// Orphans in FIN-WAIT-2 (compact entries, not connections: closed by the
    /// application, everything sent acknowledged, waiting for the peer's FIN).
    pub fn fin_wait2_count(&self) -> usize {
        self.time_wait.fin_wait2_len()
    }

    /// Whether `tuple` (ours, the peer's) is in TIME-WAIT.
    pub fn is_time_wait(&self, tuple: &FourTuple) -> bool {
        self.time_wait.find(tuple).and_then(|t| self.time_wait.get(t)).is_some_and(|tw| !tw.is_fin_wait2())
    }

    /// The TIME-WAIT cap in force.
    pub(crate) fn time_wait_cap(&self) -> usize {
        self.cfg.max_time_wait.unwrap_or(self.cfg.max_connections)
    }

    /// Half-open connections.
    pub fn half_open_count(&self) -> usize {
        self.half_open
    }

    pub(crate) fn is_our_ip(&self, ip: &IpAddress) -> bool {
        match ip {
            IpAddress::Ipv4(a) => self.cfg.ipv4.is_some_and(|c| c.address() == *a),
            IpAddress::Ipv6(a) => self.cfg.ipv6.is_some_and(|c| c.address() == *a),
        }
    }

    pub(crate) fn our_ip_for(&self, dst: &IpAddress) -> Option<IpAddress> {
        match dst {
            IpAddress::Ipv4(_) => self.cfg.ipv4.map(|c| IpAddress::Ipv4(c.address())),
            IpAddress::Ipv6(_) => self.cfg.ipv6.map(|c| IpAddress::Ipv6(c.address())),
        }
    }

    /// Whether `ip` is on our link (else it goes via the gateway).
    pub(crate) fn on_link(&self, ip: &IpAddress) -> bool {
        match ip {
            IpAddress::Ipv4(a) => self.cfg.ipv4.is_some_and(|c| c.contains_addr(a)),
            IpAddress::Ipv6(a) => {
                a.segments()[0] & 0xffc0 == 0xfe80 || self.cfg.ipv6.is_some_and(|c| c.contains_addr(a))
            }
        }
    }

    pub(crate) fn next_hop(&self, ip: &IpAddress) -> Option<IpAddress> {
        if self.on_link(ip) {
            return Some(*ip);
        }
        match ip {
            IpAddress::Ipv4(_) => self.cfg.gateway4.map(IpAddress::Ipv4),
            IpAddress::Ipv6(_) => self.cfg.gateway6.map(IpAddress::Ipv6),
        }
    }

    /// The route to `remote`, or `None` (with a resolution request queued) while the next
    /// hop's MAC is unknown.
    pub(crate) fn route_to(&mut self, now: Instant, local: IpAddress, remote: IpAddress) -> Option<Route> {
        let hop = self.next_hop(&remote)?;
        match self.neighbors.lookup(now, &hop) {
            Some(mac) => Some(Route { src_mac: self.cfg.mac, dst_mac: mac, src_ip: local, dst_ip: remote }),
            None => {
                self.counters.tx_neighbor_missing += 1;
                if self.neighbors.should_request(now, hop) {
                    let c = match hop {
                        IpAddress::Ipv4(a) => Control::ArpRequest(a),
                        IpAddress::Ipv6(a) => Control::NeighborSolicit(a),
                    };
                    self.push_control(c);
                }
                None
            }
        }
    }

    pub(crate) fn push_control(&mut self, c: Control) {
        if self.control.len() >= self.cfg.max_control_queue {
            self.counters.tx_control_dropped += 1;
            return;
        }
        self.control.push_back(c);
    }

    /// The MSS we advertise towards `remote`.
    pub(crate) fn local_mss(&self, remote: &IpAddress) -> u16 {
        let ip = match remote {
            IpAddress::Ipv4(_) => 20,
            IpAddress::Ipv6(_) => 40,
        };
        (self.cfg.mtu.saturating_sub(ip + 20)).clamp(536, 65535) as u16
    }

    /// Takes one received Ethernet frame. The frame is kept by reference where its payload
    /// is queued for the application (TCP in order or out of order, UDP), rewritten in place
    /// for ARP and ICMP echo replies, and dropped otherwise. Malformed frames are counted.
    pub fn handle_frame(&mut self, now: Instant, frame: BufSlice) {
        self.counters.rx_frames += 1;
        if self.rx_pool.is_none() {
            self.rx_pool = Some(frame.buf().pool());
        }
        let parsed = match parse_frame(frame.as_bytes()) {
            Ok(p) => p,
            Err(e) => {
                self.counters.wire(e);
                return;
            }
        };
        let for_us = parsed.dst_mac == self.cfg.mac || parsed.dst_mac.is_broadcast() || parsed.dst_mac.is_multicast();
        if !for_us {
            self.counters.rx_other_host += 1;
            return;
        }
        if !neighbor::is_peer_mac(&parsed.src_mac) {
            // No station sends from a group or all-zero address (IEEE 802): forged.
            self.counters.rx_bad_src_mac += 1;
            return;
        }
        match parsed.l3 {
            L3::Arp(repr) => self.handle_arp(now, repr, frame),
            L3::Ip(ref ip) => {
                if ip.protocol == IpProtocol::Icmpv6 {
                    return self.handle_icmpv6(now, &parsed, ip.clone(), frame);
                }
                if !self.is_our_ip(&ip.dst) {
                    self.counters.rx_other_host += 1;
                    return;
                }
                match ip.protocol {
                    IpProtocol::Tcp => self.handle_tcp(now, parsed.src_mac, ip.clone(), frame),
                    IpProtocol::Udp => self.handle_udp(now, &parsed, ip.clone(), frame),
                    IpProtocol::Icmp => self.handle_icmpv4(ip.clone(), frame),
                    _ => self.counters.rx_unknown_protocol += 1,
                }
            }
        }
    }

    /// The earliest time [`Stack::handle_timeout`] or [`Stack::dispatch`] has work; a past
    /// time (such as `Instant::ZERO`) means "now". O(1): it reads the heads of the control
    /// queue, the ready list and the timer wheel.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.control.is_empty() || !self.ready.is_empty() {
            return Some(Instant::ZERO);
        }
        [self.wheel.next_expiry(), self.time_wait.next_expiry(), self.unrouted_retry].into_iter().flatten().min()
    }

    /// Runs every timer due at `now`, visiting only the connections whose timers are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.expire(now, &mut fired);
        for &idx in &fired {
            self.counters.conn_visits += 1;
            let Some(e) = self.slots[idx as usize].entry.as_mut() else { continue };
            e.conn.handle_timeout(now, &mut self.counters);
            self.note_changed(idx);
            self.after_event(idx);
        }
        fired.clear();
        self.fired = fired;
        while let Some(kind) = self.time_wait.pop_expired(now) {
            self.counters.conn_visits += 1;
            if kind == time_wait::Expired::FinWait2 {
                self.counters.tcp_fin_wait2_timeouts += 1;
            }
        }
        if self.unrouted_retry.is_some_and(|t| t <= now) {
            self.retry_unrouted();
        }
    }

    /// The timestamp offset of `tuple` (RFC 7323 section 7.1): a keyed hash of the
    /// four-tuple, the same for every incarnation of it.
    pub(crate) fn ts_offset(&self, tuple: &FourTuple) -> u32 {
        self.ts_key.hash_one(tuple) as u32
    }

    /// An ISN per RFC 6528: `M + F(local, remote, secret)`, with `M` a clock ticking every
    /// 4 µs and `F` SipHash-2-4 of the four-tuple under a sub-key of the stack's secret.
    pub(crate) fn isn(&self, now: Instant, tuple: &FourTuple) -> crate::wire::Seq {
        let m = (now.total_micros().max(0) / 4) as u32;
        crate::wire::Seq((self.isn_key.hash_one(tuple) as u32).wrapping_add(m))
    }

    /// The window a SYN-ACK offers without a connection behind it (a SYN cookie's): what
    /// the receive budget holds in full segments in the frames segments arrive in.
    pub(crate) fn initial_window(&self, remote: &IpAddress) -> usize {
        let b = self.cfg.tcp.recv_buffer;
        match self.rx_truesize {
            0 => b / 2,
            t => b / t * usize::from(self.local_mss(remote)).min(t),
        }
    }

    /// A free local endpoint for an active open to `remote`.
    pub(crate) fn ephemeral(&mut self, local: IpAddress, remote: IpEndpoint) -> Option<IpEndpoint> {
        let r = self.cfg.ephemeral_ports.clone();
        let span = r.end.saturating_sub(r.start).max(1);
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p + 1 >= r.end { r.start } else { p + 1 };
            let local = IpEndpoint::new(local, p);
            let tuple = FourTuple { local, remote };
            if !self.by_tuple.contains_key(&tuple)
                && !self.time_wait.contains(&tuple)
                && !self.listeners.contains_key(&p)
            {
                return Some(local);
            }
        }
        None
    }
}
