//! Ethernet + IPv4/IPv6 framing: parsing a received frame down to its transport payload,
//! and writing the Ethernet/IP/TCP headers of an outgoing segment into a header frame.
//!
//! Parsing yields offsets into the frame, never copies, so the engine can keep the payload
//! as a slice of the received frame.

use core::ops::Range;

use smoltcp::wire::{
    checksum, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress,
    IpProtocol, Ipv4Packet, Ipv6Packet, Ipv6Repr, ETHERNET_HEADER_LEN,
};

use super::{Checksum, PartialChecksum, TcpHeader, WireError};

/// IPv4 header length as emitted (no options).
pub const IPV4_HEADER_LEN: usize = 20;
/// IPv6 fixed header length.
pub const IPV6_HEADER_LEN: usize = 40;
/// Hop limit of emitted packets.
pub const HOP_LIMIT: u8 = 64;

/// The network-layer content of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L3 {
    /// An ARP packet for IPv4 over Ethernet.
    Arp(ArpRepr),
    /// An IP packet.
    Ip(IpInfo),
}

/// An IP packet's addresses and where its transport payload lies in the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpInfo {
    /// Source address.
    pub src: IpAddress,
    /// Destination address.
    pub dst: IpAddress,
    /// Transport protocol (for IPv6, the first next-header).
    pub protocol: IpProtocol,
    /// Hop limit / TTL.
    pub hop_limit: u8,
    /// Offset of the IP header in the frame.
    pub l3: usize,
    /// The transport bytes, as a range of the frame (trailing Ethernet padding excluded).
    pub l4: Range<usize>,
}

impl IpInfo {
    /// The transport bytes of `frame`.
    pub fn l4_bytes<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        &frame[self.l4.clone()]
    }
}

/// A parsed Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Source MAC.
    pub src_mac: EthernetAddress,
    /// Destination MAC.
    pub dst_mac: EthernetAddress,
    /// What it carries.
    pub l3: L3,
}

/// Parses an Ethernet frame carrying ARP, IPv4 or IPv6, verifying the IPv4 header checksum.
/// Refused: VLAN-tagged frames, IP fragments (there is no reassembly: TCP segments leave
/// with DF set and an MSS that fits the path, so fragments of ours are an attack or a
/// misconfigured path, and are counted) and IPv6 extension headers.
pub fn parse_frame(frame: &[u8]) -> Result<Parsed, WireError> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| WireError::Ethernet)?;
    let (src_mac, dst_mac) = (eth.src_addr(), eth.dst_addr());
    let l3 = ETHERNET_HEADER_LEN;
    let l3 = match eth.ethertype() {
        EthernetProtocol::Arp => {
            let pkt = ArpPacket::new_checked(eth.payload()).map_err(|_| WireError::Arp)?;
            L3::Arp(ArpRepr::parse(&pkt).map_err(|_| WireError::Arp)?)
        }
        EthernetProtocol::Ipv4 => {
            let pkt = Ipv4Packet::new_checked(eth.payload()).map_err(|_| WireError::Ipv4)?;
            if pkt.version() != 4 {
                return Err(WireError::Ipv4);
            }
            let mut c = Checksum::new();
            c.add(&eth.payload()[..usize::from(pkt.header_len())]);
            if c.sum() != 0xffff {
                return Err(WireError::Ipv4Checksum);
            }
            if pkt.more_frags() || pkt.frag_offset() != 0 {
                return Err(WireError::Ipv4Fragment);
            }
            let hl = usize::from(pkt.header_len());
            let total = usize::from(pkt.total_len());
            L3::Ip(IpInfo {
                src: pkt.src_addr().into(),
                dst: pkt.dst_addr().into(),
                protocol: pkt.next_header(),
                hop_limit: pkt.hop_limit(),
                l3,
                l4: l3 + hl..l3 + total,
            })
        }
        EthernetProtocol::Ipv6 => {
            let pkt = Ipv6Packet::new_checked(eth.payload()).map_err(|_| WireError::Ipv6)?;
            if pkt.version() != 6 {
                return Err(WireError::Ipv6);
            }
            let plen = usize::from(pkt.payload_len());
            L3::Ip(IpInfo {
                src: pkt.src_addr().into(),
                dst: pkt.dst_addr().into(),
                protocol: pkt.next_header(),
                hop_limit: pkt.hop_limit(),
                l3,
                l4: l3 + IPV6_HEADER_LEN..l3 + IPV6_HEADER_LEN + plen,
            })
        }
        EthernetProtocol::Unknown(0x8100 | 0x88a8) => return Err(WireError::Vlan),
        _ => return Err(WireError::Ethertype),
    };
    if let L3::Ip(ip) = &l3 {
        if ip.protocol == IpProtocol::Ipv6Frag {
            return Err(WireError::Ipv6Fragment);
        }
        if ip.protocol == IpProtocol::HopByHop
            || ip.protocol == IpProtocol::Ipv6Route
            || ip.protocol == IpProtocol::Ipv6Opts
        {
            return Err(WireError::Ipv6Extension);
        }
    }
    Ok(Parsed { src_mac, dst_mac, l3 })
}

/// The pseudo-header sum for a transport checksum (as smoltcp's `pseudo_header` gives it;
/// for IPv4 summed here in six adds, as it is asked for every segment both ways).
pub fn pseudo_header(src: &IpAddress, dst: &IpAddress, proto: IpProtocol, len: usize) -> u16 {
    match (src, dst) {
        (IpAddress::Ipv4(s), IpAddress::Ipv4(d)) => {
            let (s, d) = (s.octets(), d.octets());
            let w = |a: u8, b: u8| u32::from(u16::from_be_bytes([a, b]));
            let sum = w(s[0], s[1]) + w(s[2], s[3]) + w(d[0], d[1]) + w(d[2], d[3]);
            fold(sum + u32::from(u8::from(proto)) + u32::from(len as u16))
        }
        _ => checksum::pseudo_header(src, dst, proto, len as u32),
    }
}

/// A sum of 16-bit words folded to 16 bits with end-around carry.
fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Parses and checks the TCP segment of an IP packet: returns the header and the payload
/// range (in frame offsets). The checksum is verified over the whole segment.
pub fn parse_tcp(frame: &[u8], ip: &IpInfo) -> Result<(TcpHeader, Range<usize>), WireError> {
    let seg = ip.l4_bytes(frame);
    let mut c = Checksum::with_sum(pseudo_header(&ip.src, &ip.dst, IpProtocol::Tcp, seg.len()));
    c.add(seg);
    if c.sum() != 0xffff {
        // Check the header shape first so a short segment is reported as such.
        TcpHeader::parse(seg)?;
        return Err(WireError::TcpChecksum);
    }
    let (hdr, hlen) = TcpHeader::parse(seg)?;
    Ok((hdr, ip.l4.start + hlen..ip.l4.end))
}

/// Link and network addresses of one direction of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Our MAC.
    pub src_mac: EthernetAddress,
    /// The next hop's MAC.
    pub dst_mac: EthernetAddress,
    /// Our address.
    pub src_ip: IpAddress,
    /// The peer's address.
    pub dst_ip: IpAddress,
}

impl Route {
    /// Ethernet + IP header length for this route.
    pub fn l3_header_len(&self) -> usize {
        ETHERNET_HEADER_LEN
            + match self.dst_ip {
                IpAddress::Ipv4(_) => IPV4_HEADER_LEN,
                IpAddress::Ipv6(_) => IPV6_HEADER_LEN,
            }
    }

    /// Writes Ethernet and IP headers for `l4_len` transport bytes of `proto`; returns the
    /// offset where the transport header goes.
    pub fn emit_l2_l3(&self, buf: &mut [u8], proto: IpProtocol, l4_len: usize) -> usize {
        let (ethertype, l3_len) = match self.dst_ip {
            IpAddress::Ipv4(_) => (EthernetProtocol::Ipv4, IPV4_HEADER_LEN),
            IpAddress::Ipv6(_) => (EthernetProtocol::Ipv6, IPV6_HEADER_LEN),
        };
        let eth = EthernetRepr { src_addr: self.src_mac, dst_addr: self.dst_mac, ethertype };
        eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..ETHERNET_HEADER_LEN]));
        let l3 = &mut buf[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + l3_len];
        match (self.src_ip, self.dst_ip) {
            (IpAddress::Ipv4(src_addr), IpAddress::Ipv4(dst_addr)) => {
                // Written field by field (what smoltcp's `Ipv4Repr::emit` writes: no options,
                // DSCP/ECN 0, ident 0, DF as Linux sets on TCP for PMTU discovery), with the
                // header checksum summed once: this runs for every segment.
                let total = (IPV4_HEADER_LEN + l4_len) as u16;
                l3[0] = 0x45;
                l3[1] = 0;
                l3[2..4].copy_from_slice(&total.to_be_bytes());
                l3[4..10].copy_from_slice(&[0, 0, 0x40, 0, HOP_LIMIT, proto.into()]);
                l3[10..12].fill(0);
                l3[12..16].copy_from_slice(&src_addr.octets());
                l3[16..20].copy_from_slice(&dst_addr.octets());
                let mut c = Checksum::new();
                c.add(l3);
                l3[10..12].copy_from_slice(&c.finish().to_be_bytes());
            }
            (IpAddress::Ipv6(src_addr), IpAddress::Ipv6(dst_addr)) => {
                let repr =
                    Ipv6Repr { src_addr, dst_addr, next_header: proto, payload_len: l4_len, hop_limit: HOP_LIMIT };
                repr.emit(&mut Ipv6Packet::new_unchecked(l3));
            }
            _ => unreachable_family(),
        }
        ETHERNET_HEADER_LEN + l3_len
    }

    /// Writes Ethernet, IP and TCP headers for a segment with `payload` (fragments that the
    /// caller will transmit behind the header, or copy there), with the TCP checksum summed
    /// over header and payload in place. Returns the total header length.
    pub fn emit_tcp<'p>(
        &self,
        buf: &mut [u8],
        tcp: &TcpHeader,
        payload: impl Iterator<Item = &'p [u8]> + Clone,
    ) -> usize {
        let plen: usize = payload.clone().map(<[u8]>::len).sum();
        let (l4, thl) = self.emit_tcp_headers(buf, tcp, plen);
        let mut c = Checksum::with_sum(pseudo_header(&self.src_ip, &self.dst_ip, IpProtocol::Tcp, thl + plen));
        c.add(&buf[l4..l4 + thl]);
        for p in payload {
            c.add(p);
        }
        buf[l4 + 16..l4 + 18].copy_from_slice(&c.finish().to_be_bytes());
        l4 + thl
    }

    /// As [`Route::emit_tcp`] for a device that finishes the checksum (Linux
    /// `CHECKSUM_PARTIAL`): the field gets the pseudo-header sum only and no payload byte is
    /// read. Returns the total header length and where the device is to finish.
    pub fn emit_tcp_partial(&self, buf: &mut [u8], tcp: &TcpHeader, payload_len: usize) -> (usize, PartialChecksum) {
        let (l4, thl) = self.emit_tcp_headers(buf, tcp, payload_len);
        let sum = pseudo_header(&self.src_ip, &self.dst_ip, IpProtocol::Tcp, thl + payload_len);
        buf[l4 + 16..l4 + 18].copy_from_slice(&sum.to_be_bytes());
        (l4 + thl, PartialChecksum { start: l4 as u16, offset: 16 })
    }

    /// Writes Ethernet, IP and TCP headers (checksum field zero); returns the TCP header's
    /// offset and length.
    fn emit_tcp_headers(&self, buf: &mut [u8], tcp: &TcpHeader, payload_len: usize) -> (usize, usize) {
        let thl = tcp.header_len();
        let l4 = self.emit_l2_l3(buf, IpProtocol::Tcp, thl + payload_len);
        tcp.emit(&mut buf[l4..]);
        (l4, thl)
    }
}

#[cold]
fn unreachable_family() {
    // Routes are built by the stack with matching families; a mismatch is a bug there, and
    // the frame goes out with a zeroed IP header that every receiver drops.
    debug_assert!(false, "route mixes IPv4 and IPv6");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{finish_partial, Seq, TcpFlags, TcpOptions};
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{Ipv4Address, Ipv4Repr, Ipv6Address, TcpPacket, TcpRepr};

    fn route(v6: bool) -> Route {
        let (src_ip, dst_ip) = if v6 {
            (
                IpAddress::Ipv6(Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
                IpAddress::Ipv6(Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
            )
        } else {
            (IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1)), IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2)))
        };
        Route {
            src_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
            src_ip,
            dst_ip,
        }
    }

    fn header() -> TcpHeader {
        TcpHeader {
            src_port: 80,
            dst_port: 1234,
            seq: Seq(1000),
            ack: Seq(2000),
            flags: TcpFlags::ACK,
            window: 100,
            options: TcpOptions { timestamp: Some((5, 6)), ..Default::default() },
        }
    }

    #[test]
    fn fragments_build_a_segment_smoltcp_accepts() {
        for v6 in [false, true] {
            let r = route(v6);
            let payload: Vec<u8> = (0..1001u32).map(|i| i as u8).collect();
            let frags = [&payload[..333], &payload[333..334], &payload[334..]];
            let mut buf = vec![0u8; 2048];
            let hl = r.emit_tcp(&mut buf, &header(), frags.iter().copied());
            buf.truncate(hl);
            buf.extend_from_slice(&payload);
            let p = parse_frame(&buf).unwrap();
            let L3::Ip(ip) = p.l3 else { panic!("not IP") };
            assert_eq!(ip.src, r.src_ip);
            let seg = ip.l4_bytes(&buf);
            let pkt = TcpPacket::new_checked(seg).unwrap();
            assert!(pkt.verify_checksum(&ip.src, &ip.dst));
            let repr = TcpRepr::parse(&pkt, &ip.src, &ip.dst, &Default::default()).unwrap();
            assert_eq!(repr.payload, &payload[..]);
            let (h, range) = parse_tcp(&buf, &ip).unwrap();
            assert_eq!(h, header());
            assert_eq!(&buf[range], &payload[..]);
        }
    }

    /// A header emitted with a partial checksum and finished as a NIC would (over the
    /// header frame and every payload fragment) is the software-summed header, byte for
    /// byte, for IPv4 and IPv6 and for payloads split at odd offsets.
    #[test]
    fn a_partial_checksum_finished_like_a_nic_is_the_software_one() {
        use umem::{BufSlice, HugePages, Pool, PoolConfig};
        let pool =
            Pool::new(&PoolConfig { frames: 16, hugepages: HugePages::Off, lock: false, ..PoolConfig::default() })
                .expect("a heap pool");
        let payload: Vec<u8> = (0..3001u32).map(|i| (i * 7 + 1) as u8).collect();
        for v6 in [false, true] {
            for cuts in [&[][..], &[0, 3001][..], &[1, 1000, 1001, 3000][..]] {
                let r = route(v6);
                let mut bounds = vec![0];
                bounds.extend_from_slice(cuts);
                bounds.push(payload.len());
                let pieces: Vec<&[u8]> = bounds.windows(2).map(|w| &payload[w[0]..w[1]]).collect();
                let mut soft = [0u8; 128];
                let hl = r.emit_tcp(&mut soft, &header(), pieces.iter().copied());

                let mut frame = pool.alloc_frame().unwrap();
                let (phl, csum) = r.emit_tcp_partial(&mut frame.get_mut().unwrap()[24..], &header(), payload.len());
                assert_eq!((phl, usize::from(csum.start)), (hl, r.l3_header_len()));
                assert_eq!(csum.offset, 16, "the TCP checksum field");
                let field = 24 + usize::from(csum.start) + 16;
                assert_ne!(
                    frame.as_slice()[field..field + 2],
                    soft[field - 24..field - 22],
                    "before the NIC, the field holds the pseudo-header sum only"
                );
                let mut frags = vec![BufSlice::new(frame, 24..24 + phl).unwrap()];
                for p in &pieces {
                    let mut b = pool.alloc_frame().unwrap();
                    b.get_mut().unwrap()[..p.len()].copy_from_slice(p);
                    frags.push(BufSlice::new(b, 0..p.len()).unwrap());
                }
                assert!(finish_partial(&mut frags, csum));
                assert_eq!(frags[0].as_bytes(), &soft[..hl], "v6 {v6}, cuts {cuts:?}");
            }
        }
    }

    #[test]
    fn a_partial_checksum_outside_the_header_or_on_a_shared_frame_is_not_finished() {
        use umem::{BufSlice, HugePages, Pool, PoolConfig};
        let pool =
            Pool::new(&PoolConfig { frames: 4, hugepages: HugePages::Off, lock: false, ..PoolConfig::default() })
                .expect("a heap pool");
        let mut frame = pool.alloc_frame().unwrap();
        let (hl, csum) = route(false).emit_tcp_partial(frame.get_mut().unwrap(), &header(), 0);
        let mut short = [BufSlice::new(frame.clone(), 0..csum.start as usize + 17).unwrap()];
        drop(frame);
        assert!(!finish_partial(&mut short, csum), "the field's second byte lies past the fragment");
        let mut whole = [short[0].buf().clone()].map(|b| BufSlice::new(b, 0..hl).unwrap());
        assert!(!finish_partial(&mut whole, csum), "the frame is shared with `short`");
        drop(short);
        assert!(finish_partial(&mut whole, csum));
        assert!(!finish_partial(&mut [], csum), "no packet, nothing to finish");
    }

    #[test]
    fn the_ipv4_header_and_pseudo_header_are_what_smoltcp_writes() {
        let r = route(false);
        for (proto, l4_len) in
            [(IpProtocol::Tcp, 20), (IpProtocol::Tcp, 8960), (IpProtocol::Udp, 1), (IpProtocol::Tcp, 65515)]
        {
            let mut ours = [0u8; 34];
            assert_eq!(r.emit_l2_l3(&mut ours, proto, l4_len), 34);
            let mut theirs = [0u8; 34];
            let (IpAddress::Ipv4(src_addr), IpAddress::Ipv4(dst_addr)) = (r.src_ip, r.dst_ip) else { unreachable!() };
            let eth = EthernetRepr { src_addr: r.src_mac, dst_addr: r.dst_mac, ethertype: EthernetProtocol::Ipv4 };
            eth.emit(&mut EthernetFrame::new_unchecked(&mut theirs[..14]));
            let repr = Ipv4Repr { src_addr, dst_addr, next_header: proto, payload_len: l4_len, hop_limit: HOP_LIMIT };
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut theirs[14..]), &ChecksumCapabilities::default());
            assert_eq!(ours, theirs, "{proto} {l4_len}");
            assert!(Ipv4Packet::new_unchecked(&ours[14..]).verify_checksum());
            for (a, b) in [(r.src_ip, r.dst_ip), (IpAddress::v4(0, 0, 0, 0), IpAddress::v4(255, 255, 255, 255))] {
                assert_eq!(
                    pseudo_header(&a, &b, proto, l4_len),
                    checksum::pseudo_header(&a, &b, proto, l4_len as u32),
                    "{a} {b} {proto} {l4_len}"
                );
            }
        }
    }

    #[test]
    fn bad_checksum_and_bad_ip_are_errors() {
        let r = route(false);
        let mut buf = vec![0u8; 128];
        let hl = r.emit_tcp(&mut buf, &header(), core::iter::empty());
        buf.truncate(hl);
        let p = parse_frame(&buf).unwrap();
        let L3::Ip(ip) = p.l3 else { panic!() };
        let mut bad = buf.clone();
        bad[hl - 1] ^= 1;
        assert_eq!(parse_tcp(&bad, &ip), Err(WireError::TcpChecksum));
        let mut bad = buf.clone();
        bad[ETHERNET_HEADER_LEN + 8] ^= 1; // TTL: IP checksum breaks
        assert_eq!(parse_frame(&bad), Err(WireError::Ipv4Checksum));
        assert_eq!(parse_frame(&buf[..10]), Err(WireError::Ethernet));
        assert_eq!(parse_frame(&buf[..20]), Err(WireError::Ipv4));
    }
}
