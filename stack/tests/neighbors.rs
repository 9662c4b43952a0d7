//! ARP, ICMP echo and NDP: replies are built in the received frame and go straight back to
//! the sender's MAC; a TCP transfer over IPv6 resolves its peer with neighbour discovery.

mod common;

use common::*;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet, Icmpv4Repr,
    IpProtocol, Ipv4Packet, Ipv4Repr,
};
use stack::sim::Stream;
use stack::{Duration, Instant};

fn host() -> OurHost {
    OurHost::new(2, tcp_config(), true, Role::Recv { total: 0 }, Stream::new(0))
}

#[test]
fn arp_request_is_answered_in_place() {
    let mut h = host();
    let req = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: mac(9),
        source_protocol_addr: ip(9),
        target_hardware_addr: smoltcp::wire::EthernetAddress([0; 6]),
        target_protocol_addr: ip(2),
    };
    let mut f = vec![0u8; 42];
    EthernetRepr {
        src_addr: mac(9),
        dst_addr: smoltcp::wire::EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    req.emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    let frame = h.link.rx_frame(&f).expect("frame");
    h.stack.handle_frame(Instant::ZERO, frame);
    h.stack.poll(Instant::ZERO, &mut h.link);
    assert_eq!(h.link.tx.len(), 1);
    let reply = &h.link.tx[0];
    let eth = EthernetFrame::new_checked(&reply[..]).expect("eth");
    assert_eq!(eth.dst_addr(), mac(9));
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).expect("arp")).expect("repr");
    let ArpRepr::EthernetIpv4 { operation, source_hardware_addr, source_protocol_addr, target_hardware_addr, .. } = arp
    else {
        panic!("not an ARP reply")
    };
    assert_eq!(operation, ArpOperation::Reply);
    assert_eq!((source_hardware_addr, source_protocol_addr, target_hardware_addr), (mac(2), ip(2), mac(9)));
    assert_eq!(h.stack.counters().arp_replies_sent, 1);
    // The reply used the received frame: its slot is free again, no other frame was taken.
    assert_eq!(h.link.pool.stats().frames_free, h.link.pool.stats().frames);
}

#[test]
fn icmp_echo_is_answered_in_place() {
    let mut h = host();
    let data = b"ping payload 0123456789";
    let icmp = Icmpv4Repr::EchoRequest { ident: 7, seq_no: 3, data };
    let ipr = Ipv4Repr {
        src_addr: ip(9),
        dst_addr: ip(2),
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let mut f = vec![0u8; 14 + 20 + icmp.buffer_len()];
    EthernetRepr { src_addr: mac(9), dst_addr: mac(2), ethertype: EthernetProtocol::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    ipr.emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]), &ChecksumCapabilities::default());
    icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut f[34..]), &ChecksumCapabilities::default());
    let frame = h.link.rx_frame(&f).expect("frame");
    h.stack.handle_frame(Instant::ZERO, frame);
    h.stack.poll(Instant::ZERO, &mut h.link);
    assert_eq!(h.link.tx.len(), 1);
    let r = &h.link.tx[0];
    let eth = EthernetFrame::new_checked(&r[..]).expect("eth");
    assert_eq!(eth.dst_addr(), mac(9));
    let ipp = Ipv4Packet::new_checked(eth.payload()).expect("ip");
    assert!(ipp.verify_checksum());
    assert_eq!((ipp.src_addr(), ipp.dst_addr()), (ip(2), ip(9)));
    let icmp =
        Icmpv4Repr::parse(&Icmpv4Packet::new_checked(ipp.payload()).expect("icmp"), &ChecksumCapabilities::default())
            .expect("repr");
    assert_eq!(icmp, Icmpv4Repr::EchoReply { ident: 7, seq_no: 3, data });
    assert_eq!(h.stack.counters().icmp_echo_replies, 1);
}

#[test]
fn tcp_over_ipv6_with_neighbour_discovery() {
    let total = 2 << 20;
    let stream = Stream::new(41);
    let mut a = OurHost::new(1, tcp_config(), true, Role::Send { total }, stream).client_v6(2);
    let mut b = OurHost::new(2, tcp_config(), true, Role::Recv { total }, stream).server();
    let mut wire = Wire::new(lossy_mix(0.01), 41);
    run(&mut a, &mut b, &mut wire, Duration::from_secs(600));
    assert_eq!(b.progress(), total);
    assert_eq!(a.stack.counters().ndp_solicits_sent, 1);
    assert_eq!(b.stack.counters().ndp_adverts_sent, 1);
    assert_eq!(a.stack.counters().payload_bytes_copied, 0);
}

fn arp_request(
    src_mac: smoltcp::wire::EthernetAddress,
    sha: smoltcp::wire::EthernetAddress,
    spa: smoltcp::wire::Ipv4Address,
) -> Vec<u8> {
    let req = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: smoltcp::wire::EthernetAddress([0; 6]),
        target_protocol_addr: ip(2),
    };
    let mut f = vec![0u8; 42];
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: smoltcp::wire::EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    req.emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

fn deliver(h: &mut OurHost, f: &[u8]) {
    let frame = h.link.rx_frame(f).expect("frame");
    h.stack.handle_frame(Instant::ZERO, frame);
}

fn known(h: &mut OurHost, a: IpAddress) -> Option<smoltcp::wire::EthernetAddress> {
    h.stack.neighbors_mut().lookup(Instant::ZERO, &a)
}

/// A neighbour advertisement for `target` at `lladdr`, from fd00::9 with `hop_limit`.
fn advert(target: smoltcp::wire::Ipv6Address, lladdr: smoltcp::wire::EthernetAddress, hop_limit: u8) -> Vec<u8> {
    use smoltcp::wire::{Icmpv6Packet, Icmpv6Repr, Ipv6Packet, Ipv6Repr, NdiscNeighborFlags, NdiscRepr};
    let na = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
        flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
        target_addr: target,
        lladdr: Some(lladdr.into()),
    });
    let (src, dst) = (ip6(9), ip6(2));
    let mut f = vec![0u8; 14 + 40 + na.buffer_len()];
    EthernetRepr { src_addr: lladdr, dst_addr: mac(2), ethertype: EthernetProtocol::Ipv6 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv6Repr { src_addr: src, dst_addr: dst, next_header: IpProtocol::Icmpv6, payload_len: na.buffer_len(), hop_limit }
        .emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
    na.emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(&mut f[54..]), &ChecksumCapabilities::default());
    f
}

use smoltcp::wire::IpAddress;

#[test]
fn ndp_is_accepted_only_with_hop_limit_255_and_only_when_expected() {
    let mut h = host();
    let target = IpAddress::Ipv6(ip6(9));
    // Unsolicited: an advertisement for an address we never asked for updates nothing.
    deliver(&mut h, &advert(ip6(9), mac(9), 255));
    assert_eq!(known(&mut h, target), None);
    assert_eq!(h.stack.counters().neighbor_refused, 1);
    // Asked for, but from beyond a router (hop limit decremented): dropped.
    assert!(h.stack.neighbors_mut().should_request(Instant::ZERO, target));
    deliver(&mut h, &advert(ip6(9), mac(9), 64));
    assert_eq!(known(&mut h, target), None, "an NDP message from off the link was believed");
    assert_eq!(h.stack.counters().ndp_bad_hop_limit, 1);
    // Asked for, on the link: learned.
    deliver(&mut h, &advert(ip6(9), mac(9), 255));
    assert_eq!(known(&mut h, target), Some(mac(9)));
}

#[test]
fn learning_needs_a_verified_checksum_and_a_connection() {
    use stack::wire::{Route, Seq, TcpFlags, TcpHeader};
    let mut h = host();
    let route =
        Route { src_mac: mac(9), dst_mac: mac(2), src_ip: IpAddress::Ipv4(ip(9)), dst_ip: IpAddress::Ipv4(ip(2)) };
    let hdr = TcpHeader { src_port: 4000, dst_port: 4001, seq: Seq(1), flags: TcpFlags::ACK, ..Default::default() };
    let mut f = vec![0u8; 128];
    let n = route.emit_tcp(&mut f, &hdr, std::iter::empty());
    f.truncate(n);
    let mut bad = f.clone();
    bad[14 + 20 + 16] ^= 0x55;
    deliver(&mut h, &bad);
    assert_eq!(h.stack.counters().tcp_bad_checksum, 1);
    assert_eq!(known(&mut h, IpAddress::Ipv4(ip(9))), None, "learned from a segment whose checksum failed");
    // A good checksum, but no connection of ours: nothing to learn either (ARP does it).
    deliver(&mut h, &f);
    assert_eq!(known(&mut h, IpAddress::Ipv4(ip(9))), None);
}

#[test]
fn static_entries_are_never_overwritten() {
    let mut h = host();
    let a = IpAddress::Ipv4(ip(9));
    assert!(h.stack.neighbors_mut().add_static(a, mac(9)));
    let spoofer = smoltcp::wire::EthernetAddress([2, 0, 0, 0, 0, 0x66]);
    deliver(&mut h, &arp_request(spoofer, spoofer, ip(9)));
    assert_eq!(known(&mut h, a), Some(mac(9)), "ARP overwrote a static entry");
    assert_eq!(h.stack.counters().neighbor_refused, 1);
    // The request is still answered (to the asker).
    h.stack.poll(Instant::ZERO, &mut h.link);
    assert_eq!(h.link.tx.len(), 1);
    // Static entries do not expire.
    assert_eq!(h.stack.neighbors_mut().lookup(Instant::from_secs(1_000_000), &a), Some(mac(9)));
}

#[test]
fn group_source_macs_are_no_peer_and_ipv4_headers_must_say_version_4() {
    let mut h = host();
    let multicast = smoltcp::wire::EthernetAddress([0x01, 0, 0x5e, 0, 0, 9]);
    deliver(&mut h, &arp_request(multicast, mac(9), ip(9)));
    deliver(&mut h, &arp_request(smoltcp::wire::EthernetAddress::BROADCAST, mac(9), ip(9)));
    assert_eq!(h.stack.counters().rx_bad_src_mac, 2);
    // An ARP payload naming a group MAC as its sender.
    deliver(&mut h, &arp_request(mac(9), multicast, ip(9)));
    assert_eq!(known(&mut h, IpAddress::Ipv4(ip(9))), None);
    h.stack.poll(Instant::ZERO, &mut h.link);
    assert!(h.link.tx.is_empty(), "answered a frame from a group address");

    // An IPv4 ethertype carrying a header that says version 6 (checksum fixed up).
    let icmp = Icmpv4Repr::EchoRequest { ident: 1, seq_no: 1, data: b"x" };
    let ipr = Ipv4Repr {
        src_addr: ip(9),
        dst_addr: ip(2),
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let mut f = vec![0u8; 14 + 20 + icmp.buffer_len()];
    EthernetRepr { src_addr: mac(9), dst_addr: mac(2), ethertype: EthernetProtocol::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    ipr.emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]), &ChecksumCapabilities::default());
    icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut f[34..]), &ChecksumCapabilities::default());
    let mut ipp = Ipv4Packet::new_unchecked(&mut f[14..34]);
    ipp.set_version(6);
    ipp.fill_checksum();
    deliver(&mut h, &f);
    assert_eq!(h.stack.counters().rx_bad_ipv4, 1);
    assert_eq!(h.stack.counters().icmp_echo_replies, 0);
}
