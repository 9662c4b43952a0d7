//! What a turn of the run loop costs: idle connections cost nothing (no timer, no output,
//! no visit), a poll visits only connections with a due timer or something to send, the
//! application learns which connections changed, a listener's pending connections are
//! reset without a table walk, a connection waiting for its next hop neither spins nor
//! is forgotten, and output takes no frame the link has no room for.

mod common;

use common::pair::{config, Pair, Side};
use common::*;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpEndpoint,
};
use stack::sim::SimLink;
use stack::tcp::ConnError;
use stack::wire::{Route, Seq, TcpFlags, TcpHeader, TcpOptions};
use stack::{ConnHandle, Duration, Instant, Link, Stack};
use umem::{Buf, BufSlice};

/// Opens `n` connections from the client to the server's `PORT`; returns the client's and
/// the server's handles, paired by index.
fn open(p: &mut Pair, n: usize) -> (Vec<ConnHandle>, Vec<ConnHandle>) {
    let l = p.server.listen(PORT).expect("listen");
    let to = IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT);
    let now = p.now;
    let client: Vec<ConnHandle> = (0..n).map(|_| p.client.connect(now, to).expect("connect")).collect();
    let server = std::cell::RefCell::new(Vec::new());
    p.run_until(
        Duration::from_secs(10),
        &mut |p| {
            while let Some(h) = p.server.accept(l) {
                server.borrow_mut().push(h);
            }
        },
        &mut |p| server.borrow().len() == n && client.iter().all(|&h| p.client.readiness(h).connected),
    );
    let mut server = server.into_inner();
    // Pair them by port.
    let port = |s: &Stack, h: ConnHandle, local: bool| {
        let t = s.conn(h).expect("conn").tuple();
        if local {
            t.local.port
        } else {
            t.remote.port
        }
    };
    server.sort_by_key(|&h| {
        let rp = port(&p.server, h, false);
        client.iter().position(|&c| port(&p.client, c, true) == rp).expect("peer")
    });
    (client, server)
}

fn small_frame(link: &SimLink, bytes: &[u8]) -> BufSlice {
    let mut b = link.pool.alloc_frame().expect("frame");
    b.get_mut().expect("unique")[..bytes.len()].copy_from_slice(bytes);
    BufSlice::new(b, 0..bytes.len()).expect("range")
}

fn drain_changed(s: &mut Stack) -> Vec<ConnHandle> {
    std::iter::from_fn(|| s.next_changed()).collect()
}

#[test]
fn idle_connections_cost_nothing_per_poll() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 4096);
    let (client, server) = open(&mut p, 300);
    p.run_for(Duration::from_secs(1), &mut |_| {});
    // Established and idle: no timer, nothing to send.
    assert_eq!(p.client.poll_at(), None);
    assert_eq!(p.server.poll_at(), None);
    let before = (p.counters(Side::Client).conn_visits, p.counters(Side::Server).conn_visits);
    for _ in 0..100 {
        p.turn(&mut |_| {});
    }
    assert_eq!((p.counters(Side::Client).conn_visits, p.counters(Side::Server).conn_visits), before);

    // One connection talks: each poll visits only it.
    let data = small_frame(&p.slink, b"one connection among many");
    assert_eq!(p.server.write_frames(server[123], &[data]).expect("write"), 25);
    p.max_visits = 0;
    let h = client[123];
    p.run_until(Duration::from_secs(1), &mut |_| {}, &mut |p| p.client.readiness(h).readable == 25);
    p.run_for(Duration::from_secs(1), &mut |_| {});
    assert!(p.max_visits <= 2, "a poll visited {} connections", p.max_visits);
    assert!(p.counters(Side::Server).conn_visits > before.1);
}

#[test]
fn next_changed_lists_only_what_changed() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 4096);
    let (client, server) = open(&mut p, 50);
    p.run_for(Duration::from_secs(1), &mut |_| {});
    let connected = drain_changed(&mut p.client);
    assert_eq!(connected.len(), 50, "every handshake is a change for the client");
    drain_changed(&mut p.server);

    let data = small_frame(&p.slink, b"hello");
    p.server.write_frames(server[7], &[data]).expect("write");
    p.run_for(Duration::from_millis(100), &mut |_| {});
    assert_eq!(drain_changed(&mut p.client), vec![client[7]]);
    // The server heard only an ACK (delayed), on that connection.
    assert_eq!(drain_changed(&mut p.server), vec![server[7]]);
    // Many events, one listing.
    p.server.close(server[7]).expect("close");
    p.client.close(client[7]).expect("close");
    p.run_for(Duration::from_millis(10), &mut |_| {});
    assert!(drain_changed(&mut p.client).is_empty(), "a closed handle is not listed");
}

fn tcp_frame(route: &Route, hdr: &TcpHeader) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let n = route.emit_tcp(&mut buf, hdr, std::iter::empty());
    buf.truncate(n);
    buf
}

#[test]
fn unlisten_resets_queued_and_half_open_connections() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 4096);
    let l = p.server.listen(PORT).expect("listen");
    let to = IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT);
    let now = p.now;
    let client: Vec<ConnHandle> = (0..3).map(|_| p.client.connect(now, to).expect("connect")).collect();
    p.run_for(Duration::from_millis(10), &mut |_| {});
    assert!(p.server.acceptable(l));
    // A half-open connection from a host that never completes the handshake.
    let route =
        Route { src_mac: mac(9), dst_mac: mac(2), src_ip: IpAddress::Ipv4(ip(9)), dst_ip: IpAddress::Ipv4(ip(2)) };
    let syn = TcpHeader {
        src_port: 4000,
        dst_port: PORT,
        seq: Seq(1000),
        flags: TcpFlags::SYN,
        window: 65535,
        options: TcpOptions { mss: Some(1460), ..Default::default() },
        ..Default::default()
    };
    let f = p.slink.rx_frame(&tcp_frame(&route, &syn)).expect("frame");
    p.server.handle_frame(p.now, f);
    assert_eq!(p.server.half_open_count(), 1);
    assert_eq!(p.server.connection_count(), 4);

    p.turn(&mut |_| {});
    assert_eq!(p.counters(Side::Server).tcp_tx_segments, 4, "three SYN-ACKs, then this one");

    p.server.unlisten(l);
    p.run_for(Duration::from_millis(10), &mut |_| {});
    for &h in &client {
        assert_eq!(p.client.readiness(h).error, Some(ConnError::Reset), "queued connection not reset");
    }
    assert_eq!(p.server.connection_count(), 1, "the half-open one waits for its next event");
    // Its SYN-ACK retransmission timer (1 s) is that event.
    p.run_for(Duration::from_secs(2), &mut |_| {});
    assert_eq!(p.server.connection_count(), 0);
    assert_eq!(p.server.half_open_count(), 0);
}

fn arp_reply(from: u8, to: u8) -> Vec<u8> {
    let rep = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: mac(from),
        source_protocol_addr: ip(from),
        target_hardware_addr: mac(to),
        target_protocol_addr: ip(to),
    };
    let mut f = vec![0u8; 42];
    EthernetRepr { src_addr: mac(from), dst_addr: mac(to), ethertype: EthernetProtocol::Arp }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    rep.emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

#[test]
fn a_connection_waiting_for_its_next_hop_neither_spins_nor_is_forgotten() {
    let mut s = Stack::new(config(1, |_| {}));
    let mut link = SimLink::new(pool(64, 0), true);
    let mut now = Instant::from_secs(10);
    let h = s.connect(now, IpEndpoint::new(IpAddress::Ipv4(ip(7)), PORT)).expect("connect");
    s.poll(now, &mut link);
    assert_eq!(s.counters().arp_requests_sent, 1);
    assert_eq!(s.counters().tcp_tx_segments, 0);
    // Parked: the next thing to do is a retry in a second, not "now".
    let next = s.poll_at().expect("a retry is scheduled");
    assert!(next > now && next <= now + Duration::from_secs(1), "poll_at {next}");
    let visits = s.counters().conn_visits;
    now = next;
    s.poll(now, &mut link);
    assert_eq!(s.counters().arp_requests_sent, 2, "the request is repeated");
    // One connection: its SYN's retransmission timer (the SYN counts as lost) and its
    // retry of the route.
    assert!(s.counters().conn_visits - visits <= 2);
    // The reply wakes it at once.
    let f = link.rx_frame(&arp_reply(7, 1)).expect("frame");
    s.handle_frame(now, f);
    s.poll(now, &mut link);
    assert_eq!(s.counters().tcp_tx_segments, 1, "the SYN went out");
    assert!(!s.readiness(h).closed);
}

/// A link whose transmit ring has `room` descriptors free; counts frame allocations.
struct Tight {
    inner: SimLink,
    room: usize,
    allocs: u64,
}

impl Link for Tight {
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
    fn multi_buffer(&self) -> bool {
        true
    }
    fn has_tx_room(&mut self, descs: usize) -> bool {
        self.room >= descs
    }
    fn alloc_frame(&mut self) -> Option<Buf> {
        self.allocs += 1;
        self.inner.alloc_frame()
    }
    fn transmit(&mut self, frags: &[BufSlice]) -> Result<(), stack::Full> {
        self.inner.transmit(frags)
    }
}

#[test]
fn output_takes_no_frame_the_link_has_no_room_for() {
    let mut s = Stack::new(config(1, |_| {}));
    let mut link = Tight { inner: SimLink::new(pool(64, 0), true), room: 0, allocs: 0 };
    let now = Instant::from_secs(1);
    s.neighbors_mut().learn(now, IpAddress::Ipv4(ip(2)), mac(2));
    s.connect(now, IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT)).expect("connect");
    // The first allocation tells the stack the frame size; from then on the room is
    // checked before a frame is taken.
    assert_eq!(s.dispatch(now, &mut link), 0);
    assert_eq!(link.allocs, 1);
    for _ in 0..10 {
        assert_eq!(s.dispatch(now, &mut link), 0);
    }
    assert_eq!(link.allocs, 1, "frames allocated with no room to send them");
    assert_eq!(s.poll_at(), Some(Instant::ZERO), "the SYN is still pending");
    assert_eq!(link.inner.pool.stats().frames_free, 64);
    link.room = 64;
    assert_eq!(s.dispatch(now, &mut link), 1);
    assert_eq!(link.allocs, 2);
}
