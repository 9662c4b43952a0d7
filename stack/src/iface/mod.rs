//! The interface: one MAC with IPv4 and/or IPv6 addresses, owning the connection table,
//! the listeners, the neighbour cache and the queue of control replies.
//!
//! Inputs are [`Stack::handle_frame`] (a received frame) and [`Stack::handle_timeout`];
//! the output is [`Stack::dispatch`], which builds every pending packet into frames from
//! the [`Link`] and hands them to it. [`Stack::poll_at`] says when timers next need a call.

mod api;
mod control;
mod link;
mod neighbor;
mod tcp_rx;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::BuildHasherDefault;

use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpEndpoint, IpProtocol, Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr};
use umem::{Buf, BufSlice};

pub use api::{ConnHandle, ListenHandle, Readiness, SocketError, UdpHandle};
pub use link::{Full, Link};
pub use neighbor::NeighborCache;

use crate::counters::Counters;
use crate::tcp::syn_cookie::SynCookies;
use crate::tcp::{Conn, FourTuple, OutSegment, TcpConfig};
use crate::wire::{parse_frame, Route, TcpHeader, L3};

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
    /// Most connections (any state, TIME-WAIT included).
    pub max_connections: usize,
    /// Most half-open (SYN-RECEIVED) connections; beyond it SYNs get SYN cookies.
    pub max_half_open: usize,
    /// Most established connections waiting in one listener's accept queue.
    pub backlog: usize,
    /// Secret for ISNs (RFC 6528) and SYN cookies. Fixed in tests for determinism.
    pub secret: u64,
    /// Copy payload behind the header even when the link can do multi-buffer.
    pub force_copy: bool,
    /// Ephemeral ports for active opens.
    pub ephemeral_ports: core::ops::Range<u16>,
    /// Most queued control replies (RST, ARP, ICMP).
    pub max_control_queue: usize,
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
            max_half_open: 1024,
            backlog: 1024,
            secret: 0x5eed_5eed_5eed_5eed,
            force_copy: false,
            ephemeral_ports: 32768..61000,
            max_control_queue: 4096,
            udp_queue: 1024,
        }
    }
}

type Fixed = BuildHasherDefault<std::hash::DefaultHasher>;

/// A connection slot.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) conn: Conn,
    /// The listener it arrived on, until accepted.
    pub(crate) listener: Option<u16>,
    /// Counted in the half-open total.
    pub(crate) half_open: bool,
    /// In its listener's accept queue.
    pub(crate) queued: bool,
    /// The application has a handle (accepted or connected).
    pub(crate) owned: bool,
    /// The application has given the handle up.
    pub(crate) released: bool,
    /// The MAC a passive open's SYN came from: replies go there without resolution.
    pub(crate) peer_mac: Option<EthernetAddress>,
}

#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) gen: u32,
    pub(crate) entry: Option<Entry>,
}

#[derive(Debug, Default)]
pub(crate) struct Listener {
    pub(crate) accept: VecDeque<ConnHandle>,
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
    pub(crate) counters: Counters,
    pub(crate) slots: Vec<Slot>,
    pub(crate) free: Vec<u32>,
    pub(crate) live: usize,
    pub(crate) half_open: usize,
    pub(crate) by_tuple: HashMap<FourTuple, u32, Fixed>,
    pub(crate) listeners: BTreeMap<u16, Listener>,
    pub(crate) neighbors: NeighborCache,
    pub(crate) control: VecDeque<Control>,
    pub(crate) cookies: SynCookies,
    pub(crate) next_port: u16,
    pub(crate) udp: BTreeMap<u16, api::UdpSocket>,
    out: OutSegment,
    frags: Vec<BufSlice>,
}

impl Stack {
    /// A stack with no connections.
    pub fn new(cfg: StackConfig) -> Stack {
        let cookies = SynCookies::new(cfg.secret);
        let next_port = cfg.ephemeral_ports.start;
        Stack {
            cfg,
            counters: Counters::default(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            half_open: 0,
            by_tuple: HashMap::default(),
            listeners: BTreeMap::new(),
            neighbors: NeighborCache::default(),
            control: VecDeque::new(),
            cookies,
            next_port,
            udp: BTreeMap::new(),
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

    /// Connections in the table (any state).
    pub fn connection_count(&self) -> usize {
        self.live
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
        let parsed = match parse_frame(frame.as_bytes()) {
            Ok(p) => p,
            Err(e) => {
                self.counters.wire(e);
                return;
            }
        };
        let for_us = parsed.dst_mac == self.cfg.mac || parsed.dst_mac.is_broadcast() || parsed.dst_mac.is_multicast();
        if !for_us {
            self.counters.rx_not_for_us += 1;
            return;
        }
        match parsed.l3 {
            L3::Arp(repr) => self.handle_arp(now, repr, frame),
            L3::Ip(ref ip) => {
                if ip.protocol == IpProtocol::Icmpv6 {
                    return self.handle_icmpv6(now, &parsed, ip.clone(), frame);
                }
                if !self.is_our_ip(&ip.dst) {
                    self.counters.rx_not_for_us += 1;
                    return;
                }
                match ip.protocol {
                    IpProtocol::Tcp => {
                        if self.on_link(&ip.src) {
                            self.neighbors.learn(now, ip.src, parsed.src_mac);
                        }
                        self.handle_tcp(now, parsed.src_mac, ip.clone(), frame)
                    }
                    IpProtocol::Udp => self.handle_udp(now, &parsed, ip.clone(), frame),
                    IpProtocol::Icmp => self.handle_icmpv4(ip.clone(), frame),
                    _ => self.counters.rx_unknown_protocol += 1,
                }
            }
        }
    }

    /// The earliest time [`Stack::handle_timeout`] or [`Stack::dispatch`] has work;
    /// `Some(Instant::ZERO)`-like past times mean "now".
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.control.is_empty() {
            return Some(Instant::ZERO);
        }
        self.slots.iter().filter_map(|s| s.entry.as_ref()).filter_map(|e| e.conn.poll_at()).min()
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let Some(e) = self.slots[i].entry.as_mut() else { continue };
            if e.conn.poll_at().is_some_and(|t| t <= now) {
                e.conn.handle_timeout(now, &mut self.counters);
                self.after_event(i as u32);
            }
        }
    }

    /// Timers, then output: the usual call of a run loop after receiving a batch.
    pub fn poll<L: Link>(&mut self, now: Instant, link: &mut L) -> usize {
        self.handle_timeout(now);
        self.dispatch(now, link)
    }

    /// Builds and transmits everything pending: control replies, then each connection's
    /// segments. Returns the frames sent. Stops early when the link is full or out of
    /// frames (the rest goes next time; TCP treats a refused segment as lost).
    pub fn dispatch<L: Link>(&mut self, now: Instant, link: &mut L) -> usize {
        let mut sent = 0;
        let copy = self.cfg.force_copy || !link.multi_buffer();
        while let Some(c) = self.control.pop_front() {
            match self.send_control(now, c, link, copy) {
                Ok(true) => sent += 1,
                Ok(false) => {}
                Err(c) => {
                    self.control.push_front(c);
                    return sent;
                }
            }
        }
        for i in 0..self.slots.len() {
            while let Some(e) = self.slots[i].entry.as_ref() {
                if !e.conn.wants_output() {
                    break;
                }
                let tuple = e.conn.tuple();
                let route = match e.peer_mac {
                    Some(mac) => Route {
                        src_mac: self.cfg.mac,
                        dst_mac: mac,
                        src_ip: tuple.local.addr,
                        dst_ip: tuple.remote.addr,
                    },
                    None => match self.route_to(now, tuple.local.addr, tuple.remote.addr) {
                        Some(r) => r,
                        None => break,
                    },
                };
                let Some(frame) = link.alloc_frame() else {
                    self.counters.tx_no_frame += 1;
                    return sent;
                };
                // Back-pressure: stop before polling a segment the ring could not take. A
                // segment is a header frame plus its payload slices, each cut at the frame
                // size (or, copied, as many frames as the payload fills).
                let cap = frame.capacity().max(1);
                if link.tx_room() < 2 + self.cfg.tcp.max_payload_frags + link.mtu() / cap {
                    return sent;
                }
                let Some(e) = self.slots[i].entry.as_mut() else { break };
                if !e.conn.poll_segment(now, &mut self.out, &mut self.counters) {
                    break;
                }
                match emit_segment(&route, &self.out, frame, copy, link, &mut self.frags) {
                    Some(copied) => {
                        self.counters.payload_bytes_copied += copied as u64;
                    }
                    None => {
                        self.counters.tx_no_frame += 1;
                        self.frags.clear();
                        continue;
                    }
                }
                let plen = self.out.payload_len();
                let res = link.transmit(&self.frags);
                self.frags.clear();
                self.out.payload.clear();
                if res.is_err() {
                    self.counters.tx_link_full += 1;
                    self.after_event(i as u32);
                    return sent;
                }
                sent += 1;
                self.counters.tx_frames += 1;
                self.counters.tcp_tx_segments += 1;
                self.counters.tx_payload_bytes += plen as u64;
            }
            self.after_event(i as u32);
        }
        sent
    }

    /// Builds and sends one control packet; `Err` gives it back when the link is full.
    fn send_control<L: Link>(&mut self, now: Instant, c: Control, link: &mut L, copy: bool) -> Result<bool, Control> {
        if let Control::Frame(f) = c {
            return match link.transmit(std::slice::from_ref(&f)) {
                Ok(()) => {
                    self.counters.tx_frames += 1;
                    Ok(true)
                }
                Err(Full) => Err(Control::Frame(f)),
            };
        }
        let Some(mut frame) = link.alloc_frame() else {
            self.counters.tx_no_frame += 1;
            return Err(c);
        };
        let built = match &c {
            Control::Tcp { route, hdr } => {
                let Some(buf) = frame.get_mut() else { return Ok(false) };
                let n = route.emit_tcp(buf, hdr, core::iter::empty());
                self.counters.tcp_tx_segments += 1;
                Some(n)
            }
            Control::Udp { route, src_port, dst_port, payload } => {
                control::build_udp(route, *src_port, *dst_port, payload, &mut frame, copy, &mut self.frags).map(
                    |(n, copied)| {
                        self.counters.payload_bytes_copied += copied as u64;
                        n
                    },
                )
            }
            Control::ArpRequest(ip) => self.build_arp_request(*ip, &mut frame),
            Control::NeighborSolicit(ip) => self.build_neighbor_solicit(*ip, &mut frame),
            Control::Frame(_) => None,
        };
        let _ = now;
        let Some(n) = built else {
            self.frags.clear();
            return Ok(false);
        };
        let Some(head) = BufSlice::new(frame, 0..n) else { return Ok(false) };
        self.frags.insert(0, head);
        let res = link.transmit(&self.frags);
        self.frags.clear();
        match res {
            Ok(()) => {
                self.counters.tx_frames += 1;
                Ok(true)
            }
            Err(Full) => {
                self.counters.tx_link_full += 1;
                Ok(false)
            }
        }
    }

    /// Bookkeeping after a connection saw input or a timer: half-open accounting, the
    /// accept queue, freeing finished connections.
    pub(crate) fn after_event(&mut self, idx: u32) {
        let gen = self.slots[idx as usize].gen;
        let Some(e) = self.slots[idx as usize].entry.as_mut() else { return };
        let state = e.conn.state();
        if e.half_open && state != crate::tcp::State::SynReceived {
            e.half_open = false;
            self.half_open -= 1;
        }
        if let Some(port) = e.listener {
            if !e.queued && state.synchronized() {
                e.queued = true;
                if let Some(l) = self.listeners.get_mut(&port) {
                    l.accept.push_back(ConnHandle { idx, gen });
                }
            }
        }
        let free = e.conn.is_finished() && (e.released || (!e.owned && e.listener.is_some()));
        if free {
            self.free_slot(idx);
        }
    }

    pub(crate) fn free_slot(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        if let Some(e) = slot.entry.take() {
            if e.half_open {
                self.half_open -= 1;
            }
            self.by_tuple.remove(&e.conn.tuple());
            slot.gen = slot.gen.wrapping_add(1);
            self.free.push(idx);
            self.live -= 1;
        }
    }

    pub(crate) fn insert_conn(
        &mut self,
        conn: Conn,
        listener: Option<u16>,
        half_open: bool,
        peer_mac: Option<EthernetAddress>,
    ) -> ConnHandle {
        let tuple = conn.tuple();
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[idx as usize];
        slot.entry = Some(Entry {
            conn,
            listener,
            half_open,
            queued: false,
            owned: listener.is_none(),
            released: false,
            peer_mac,
        });
        if half_open {
            self.half_open += 1;
        }
        self.live += 1;
        self.by_tuple.insert(tuple, idx);
        ConnHandle { idx, gen: slot.gen }
    }

    /// An ISN per RFC 6528: a keyed hash of the four-tuple plus a 4 µs clock.
    pub(crate) fn isn(&self, now: Instant, tuple: &FourTuple) -> crate::wire::Seq {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut h = DefaultHasher::new();
        self.cfg.secret.hash(&mut h);
        tuple.hash(&mut h);
        let m = (now.total_micros().max(0) / 4) as u32;
        crate::wire::Seq((h.finish() as u32).wrapping_add(m))
    }

    /// A free local endpoint for an active open to `remote`.
    pub(crate) fn ephemeral(&mut self, local: IpAddress, remote: IpEndpoint) -> Option<IpEndpoint> {
        let r = self.cfg.ephemeral_ports.clone();
        let span = r.end.saturating_sub(r.start).max(1);
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p + 1 >= r.end { r.start } else { p + 1 };
            let local = IpEndpoint::new(local, p);
            if !self.by_tuple.contains_key(&FourTuple { local, remote }) && !self.listeners.contains_key(&p) {
                return Some(local);
            }
        }
        None
    }
}

/// Writes the headers of `seg` into `frame` and fills `frags` with what to transmit: the
/// header frame, then the payload slices, each cut at the frame size (an AF_XDP descriptor
/// may not be longer than a UMEM chunk, so a 9000-byte segment is a header frame and three
/// payload descriptors). In copy mode (forced, no multi-buffer, or more pieces than the
/// link takes) the payload is copied behind the header, continuing into further frames
/// from the link when it does not fit one (multi-buffer only). Returns the bytes copied, or
/// `None` if the frames are too small or none are left.
fn emit_segment<L: Link>(
    route: &Route,
    seg: &OutSegment,
    mut frame: Buf,
    copy: bool,
    link: &mut L,
    frags: &mut Vec<BufSlice>,
) -> Option<usize> {
    let cap = frame.capacity().max(1);
    let multi = link.multi_buffer();
    let pieces: usize = seg.payload.iter().map(|p| p.len().div_ceil(cap)).sum();
    let copy = copy || !multi || 1 + pieces > link.max_frags();
    let hl = route.emit_tcp(frame.get_mut()?, &seg.hdr, seg.payload.iter().map(BufSlice::as_bytes));
    if !copy {
        frags.push(BufSlice::new(frame, 0..hl)?);
        for p in &seg.payload {
            let mut off = 0;
            while off < p.len() {
                let n = (p.len() - off).min(cap);
                frags.push(p.slice(off..off + n)?);
                off += n;
            }
        }
        return Some(0);
    }
    let mut len = hl;
    let mut copied = 0;
    for p in &seg.payload {
        let mut src = p.as_bytes();
        while !src.is_empty() {
            if len == frame.capacity() {
                if !multi {
                    return None;
                }
                let next = link.alloc_frame()?;
                frags.push(BufSlice::new(std::mem::replace(&mut frame, next), 0..len)?);
                len = 0;
            }
            let buf = frame.get_mut()?;
            let n = src.len().min(buf.len() - len);
            buf[len..len + n].copy_from_slice(&src[..n]);
            len += n;
            copied += n;
            src = &src[n..];
        }
    }
    frags.push(BufSlice::new(frame, 0..len)?);
    Some(copied)
}
