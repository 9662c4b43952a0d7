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
