//! What the steering program now delivers besides our flows' segments: IP fragments and
//! VLAN-tagged frames are dropped and counted (there is no reassembly); ICMP
//! "fragmentation needed" and ICMPv6 "packet too big" lower a connection's MSS when the
//! quoted segment is in flight (RFC 5927), never below the family's floor, and the
//! transfer goes on in smaller segments.

mod common;

use std::cell::Cell;

use common::pair::{config, Pair, Side};
use common::*;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv6Packet, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr,
    Ipv6Address, Ipv6Packet, Ipv6Repr,
};
use stack::wire::{parse_frame, parse_tcp, Checksum, Route, Seq, TcpFlags, TcpHeader, L3};
use stack::{ConnHandle, Duration};
use umem::BufSlice;

/// A connection from the client (host 1) to the server (host 2), accepted.
fn connect(p: &mut Pair, to: IpAddress) -> (ConnHandle, ConnHandle) {
    p.connect_accept(to, Duration::from_millis(100))
}

fn write(p: &mut Pair, h: ConnHandle, n: usize) {
    let mut left = n;
    while left > 0 {
        let k = left.min(4096);
        let mut b = p.slink.pool.alloc_frame().expect("frame");
        b.get_mut().expect("unique")[..k].fill(7);
        assert_eq!(p.server.write_frames(h, &[BufSlice::new(b, 0..k).expect("range")]).expect("write"), k);
        left -= k;
    }
}

/// ICMP "fragmentation needed" from the client's side, quoting a server segment of
/// `server_port -> client_port` at `seq`, with next-hop MTU `mtu`.
fn frag_needed(client_port: u16, seq: Seq, mtu: u16) -> Vec<u8> {
    let mut quote = vec![0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0];
    quote.extend_from_slice(&ip(2).octets());
    quote.extend_from_slice(&ip(1).octets());
    quote.extend_from_slice(&PORT.to_be_bytes());
    quote.extend_from_slice(&client_port.to_be_bytes());
    quote.extend_from_slice(&seq.0.to_be_bytes());
    let mut icmp = vec![3, 4, 0, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(&quote);
    let mut c = Checksum::default();
    c.add(&icmp);
    icmp[2..4].copy_from_slice(&c.finish().to_be_bytes());
    let ipr = Ipv4Repr {
        src_addr: ip(1),
        dst_addr: ip(2),
        next_header: IpProtocol::Icmp,
        payload_len: icmp.len(),
        hop_limit: 64,
    };
    let mut f = vec![0u8; 34];
    EthernetRepr { src_addr: mac(1), dst_addr: mac(2), ethertype: EthernetProtocol::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    ipr.emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]), &ChecksumCapabilities::default());
    f.extend_from_slice(&icmp);
    f
}

/// ICMPv6 "packet too big" quoting a server segment over IPv6.
fn too_big(client_port: u16, seq: Seq, mtu: u32) -> Vec<u8> {
    let (src, dst): (Ipv6Address, Ipv6Address) = (ip6(1), ip6(2));
    let mut icmp = vec![2, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(&[0x60, 0, 0, 0, 0x05, 0x8c, 6, 64]);
    icmp.extend_from_slice(&ip6(2).octets());
    icmp.extend_from_slice(&ip6(1).octets());
    icmp.extend_from_slice(&PORT.to_be_bytes());
    icmp.extend_from_slice(&client_port.to_be_bytes());
    icmp.extend_from_slice(&seq.0.to_be_bytes());
    Icmpv6Packet::new_unchecked(&mut icmp[..]).fill_checksum(&src, &dst);
    let mut f = vec![0u8; 54];
    EthernetRepr { src_addr: mac(1), dst_addr: mac(2), ethertype: EthernetProtocol::Ipv6 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    Ipv6Repr { src_addr: src, dst_addr: dst, next_header: IpProtocol::Icmpv6, payload_len: icmp.len(), hop_limit: 64 }
        .emit(&mut Ipv6Packet::new_unchecked(&mut f[14..54]));
    f.extend_from_slice(&icmp);
    f
}

fn server_payloads(p: &Pair) -> Vec<usize> {
    p.recorded
        .iter()
        .filter(|(to, _)| *to == Side::Client)
        .filter_map(|(_, f)| {
            let parsed = parse_frame(f).ok()?;
            let L3::Ip(ip) = parsed.l3 else { return None };
            parse_tcp(f, &ip).ok().map(|(_, r)| r.len())
        })
        .filter(|&n| n > 0)
        .collect()
}

/// Runs until the client has read `total` bytes.
fn read_all(p: &mut Pair, c: ConnHandle, total: usize) {
    let got = Cell::new(0usize);
    p.run_until(
        Duration::from_secs(60),
        &mut |p| {
            while let Some(s) = p.client.read(c, usize::MAX).expect("read") {
                got.set(got.get() + s.len());
            }
        },
        &mut |_| got.get() >= total,
    );
    assert_eq!(got.get(), total);
}

#[test]
fn fragmentation_needed_lowers_the_mss_only_for_segments_in_flight() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 2048);
    let (c, s) = connect(&mut p, IpAddress::Ipv4(ip(2)));
    let cport = p.client.conn(c).expect("conn").tuple().local.port;
    let full = p.server.conn(s).expect("conn").mss();
    assert_eq!(full, 1500 - 40 - 12, "timestamps on");
    write(&mut p, s, 256 << 10);
    p.turn(&mut |_| {});
    let una = p.server.conn(s).expect("conn").snd_una();

    // Outside what is in flight: before it, far beyond it, or for no connection.
    p.inject(Side::Server, &frag_needed(cport, una.sub(1), 1000));
    p.inject(Side::Server, &frag_needed(cport, una.add(1 << 20), 1000));
    p.inject(Side::Server, &frag_needed(cport ^ 1, una, 1000));
    // No MTU given (an RFC 792 router).
    p.inject(Side::Server, &frag_needed(cport, una, 0));
    assert_eq!(p.server.conn(s).expect("conn").mss(), full, "a forged message changed the MSS");
    let ctr = p.counters(Side::Server);
    assert_eq!((ctr.icmp_pmtu_received, ctr.icmp_pmtu_rejected, ctr.tcp_pmtu_lowered), (4, 4, 0));

    // In flight: the MSS follows the MTU, down to the floor and no further.
    p.inject(Side::Server, &frag_needed(cport, una.add(100), 1000));
    assert_eq!(p.server.conn(s).expect("conn").mss(), 1000 - 40 - 12);
    p.inject(Side::Server, &frag_needed(cport, una, 1400));
    assert_eq!(p.server.conn(s).expect("conn").mss(), 1000 - 40 - 12, "raised by a message");
    p.inject(Side::Server, &frag_needed(cport, una, 68));
    assert_eq!(p.server.conn(s).expect("conn").mss(), 552 - 40 - 12, "below the 552-byte floor");
    let ctr = p.counters(Side::Server);
    assert_eq!((ctr.icmp_pmtu_received, ctr.icmp_pmtu_rejected, ctr.tcp_pmtu_lowered), (7, 4, 2));

    // The transfer completes, every segment from here on within the new MSS.
    p.record = true;
    read_all(&mut p, c, 256 << 10);
    let sizes = server_payloads(&p);
    assert!(!sizes.is_empty());
    assert!(sizes.iter().all(|&n| n <= 500), "segments larger than the path takes: {sizes:?}");
}

#[test]
fn packet_too_big_lowers_the_mss_over_ipv6_but_not_below_1280() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 2048);
    let (c, s) = connect(&mut p, IpAddress::Ipv6(ip6(2)));
    let cport = p.client.conn(c).expect("conn").tuple().local.port;
    assert_eq!(p.server.conn(s).expect("conn").mss(), 1500 - 60 - 12);
    write(&mut p, s, 128 << 10);
    p.turn(&mut |_| {});
    let una = p.server.conn(s).expect("conn").snd_una();
    p.inject(Side::Server, &too_big(cport, una.sub(10), 1300));
    assert_eq!(p.counters(Side::Server).icmp_pmtu_rejected, 1);
    p.inject(Side::Server, &too_big(cport, una, 600));
    assert_eq!(p.server.conn(s).expect("conn").mss(), 1280 - 60 - 12);
    assert_eq!(p.counters(Side::Server).tcp_pmtu_lowered, 1);
    read_all(&mut p, c, 128 << 10);
}

#[test]
fn fragments_and_vlan_tags_are_dropped_and_counted() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 256);
    p.server.listen(PORT).expect("listen");
    let route =
        Route { src_mac: mac(1), dst_mac: mac(2), src_ip: IpAddress::Ipv4(ip(1)), dst_ip: IpAddress::Ipv4(ip(2)) };
    let syn = TcpHeader { src_port: 4000, dst_port: PORT, seq: Seq(1), flags: TcpFlags::SYN, ..Default::default() };
    let mut f = vec![0u8; 128];
    let n = route.emit_tcp(&mut f, &syn, std::iter::empty());
    f.truncate(n);

    // A first fragment (more fragments set) and a later one.
    for (mf, offset) in [(true, 0u16), (false, 185)] {
        let mut g = f.clone();
        let mut ipp = Ipv4Packet::new_unchecked(&mut g[14..34]);
        ipp.set_more_frags(mf);
        ipp.set_frag_offset(offset * 8);
        ipp.fill_checksum();
        p.inject(Side::Server, &g);
    }
    // An 802.1Q tag in front of the same packet.
    let mut v = f[..12].to_vec();
    v.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
    v.extend_from_slice(&f[12..]);
    p.inject(Side::Server, &v);
    // An IPv6 packet whose next header is a fragment header.
    let mut g = vec![0u8; 14 + 40 + 8 + 20];
    EthernetRepr { src_addr: mac(1), dst_addr: mac(2), ethertype: EthernetProtocol::Ipv6 }
        .emit(&mut EthernetFrame::new_unchecked(&mut g[..]));
    Ipv6Repr { src_addr: ip6(1), dst_addr: ip6(2), next_header: IpProtocol::Ipv6Frag, payload_len: 28, hop_limit: 64 }
        .emit(&mut Ipv6Packet::new_unchecked(&mut g[14..54]));
    g[54] = 6;
    p.inject(Side::Server, &g);

    let c = p.counters(Side::Server);
    assert_eq!(c.rx_ipv4_fragments, 2);
    assert_eq!(c.rx_vlan, 1);
    assert_eq!(c.rx_ipv6_fragments, 1);
    assert_eq!(c.tcp_syn_received, 0, "a fragment or a tagged frame reached TCP");
    // The unfragmented SYN is taken.
    p.inject(Side::Server, &f);
    assert_eq!(p.counters(Side::Server).tcp_syn_received, 1);
}
