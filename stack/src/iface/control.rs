//! ARP, ICMP echo, NDP and UDP: replies are rewritten in the received frame (no new frame,
//! no copy) and sent straight to the sender's MAC.

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Message,
    Icmpv4Packet, Icmpv6Message, Icmpv6Packet, Icmpv6Repr, IpAddress, IpEndpoint, IpProtocol, Ipv4Address, Ipv4Packet,
    Ipv6Address, Ipv6Packet, NdiscNeighborFlags, NdiscRepr, UdpPacket,
};
use umem::{Buf, BufSlice};

use super::{Control, Stack};
use crate::wire::{pseudo_header, Checksum, IpInfo, Parsed, Route, WireError, HOP_LIMIT};

/// The solicited-node multicast address of `a` (RFC 4291 2.7.1).
pub(crate) fn solicited_node(a: Ipv6Address) -> Ipv6Address {
    let o = a.octets();
    Ipv6Address::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]))
}

fn multicast_mac(a: Ipv6Address) -> EthernetAddress {
    let o = a.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

const ALL_NODES: Ipv6Address = Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

impl Stack {
    pub(crate) fn handle_arp(&mut self, now: Instant, repr: ArpRepr, mut frame: BufSlice) {
        let ArpRepr::EthernetIpv4 {
            operation, source_hardware_addr, source_protocol_addr, target_protocol_addr, ..
        } = repr
        else {
            self.counters.rx_bad_arp += 1;
            return;
        };
        let Some(ours) = self.cfg.ipv4.map(|c| c.address()) else {
            self.counters.rx_other_host += 1;
            return;
        };
        if target_protocol_addr != ours {
            self.counters.rx_other_host += 1;
            return;
        }
        if !super::neighbor::is_peer_mac(&source_hardware_addr) {
            self.counters.neighbor_refused += 1;
            return;
        }
        let sender = IpAddress::Ipv4(source_protocol_addr);
        if source_protocol_addr.is_unspecified() {
            // An address probe (RFC 5227): answered, nothing to learn.
        } else if source_protocol_addr == ours
            || source_protocol_addr.is_broadcast()
            || source_protocol_addr.is_multicast()
            || !self.on_link(&sender)
        {
            // No neighbour holds such an address: a conflict or a forgery.
            self.counters.neighbor_refused += 1;
            return;
        } else {
            self.learn_neighbor(now, sender, source_hardware_addr);
        }
        if operation != ArpOperation::Request {
            return;
        }
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: self.cfg.mac,
            source_protocol_addr: ours,
            target_hardware_addr: source_hardware_addr,
            target_protocol_addr: source_protocol_addr,
        };
        let eth =
            EthernetRepr { src_addr: self.cfg.mac, dst_addr: source_hardware_addr, ethertype: EthernetProtocol::Arp };
        let len = 14 + reply.buffer_len();
        let Some(buf) = frame.get_mut().and_then(|b| b.get_mut(..len)) else { return };
        eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        reply.emit(&mut ArpPacket::new_unchecked(&mut buf[14..]));
        frame.truncate(len);
        self.counters.arp_replies_sent += 1;
        self.push_control(Control::Frame(frame));
    }

    pub(crate) fn handle_icmpv4(&mut self, ip: IpInfo, mut frame: BufSlice) {
        let Ok(pkt) = Icmpv4Packet::new_checked(ip.l4_bytes(frame.as_bytes())) else {
            self.counters.wire(WireError::Icmp);
            return;
        };
        if !pkt.verify_checksum() {
            self.counters.wire(WireError::Icmp);
            return;
        }
        if pkt.msg_type() == Icmpv4Message::DstUnreachable && pkt.msg_code() == 4 {
            // Fragmentation needed and DF set (RFC 1191): the next-hop MTU in bytes 6..8.
            let b = ip.l4_bytes(frame.as_bytes());
            let mtu = u32::from(u16::from_be_bytes([b[6], b[7]]));
            let quoted = crate::wire::quoted_tcp_v4(pkt.data());
            return self.handle_pmtu(mtu, quoted);
        }
        if pkt.msg_type() != Icmpv4Message::EchoRequest {
            return;
        }
        let end = ip.l4.end;
        let mac = self.cfg.mac;
        let Some(buf) = frame.get_mut() else { return };
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        let peer = eth.src_addr();
        eth.set_src_addr(mac);
        eth.set_dst_addr(peer);
        let mut ipp = Ipv4Packet::new_unchecked(&mut buf[ip.l3..end]);
        let (s, d) = (ipp.src_addr(), ipp.dst_addr());
        ipp.set_src_addr(d);
        ipp.set_dst_addr(s);
        ipp.set_hop_limit(HOP_LIMIT);
        ipp.fill_checksum();
        let mut icmp = Icmpv4Packet::new_unchecked(&mut buf[ip.l4.clone()]);
        icmp.set_msg_type(Icmpv4Message::EchoReply);
        icmp.fill_checksum();
        frame.truncate(end);
        self.counters.icmp_echo_replies += 1;
        self.push_control(Control::Frame(frame));
    }

    pub(crate) fn handle_icmpv6(&mut self, now: Instant, parsed: &Parsed, ip: IpInfo, mut frame: BufSlice) {
        let (IpAddress::Ipv6(src), IpAddress::Ipv6(dst)) = (ip.src, ip.dst) else { return };
        let Some(ours) = self.cfg.ipv6.map(|c| c.address()) else {
            self.counters.rx_other_host += 1;
            return;
        };
        if dst != ours && dst != solicited_node(ours) && dst != ALL_NODES {
            self.counters.rx_other_host += 1;
            return;
        }
        let bytes = frame.as_bytes();
        let Ok(pkt) = Icmpv6Packet::new_checked(ip.l4_bytes(bytes)) else {
            self.counters.wire(WireError::Icmp);
            return;
        };
        if pkt.msg_type() == Icmpv6Message::PktTooBig {
            // Parsed here, not by `Icmpv6Repr`, which wants the whole quoted packet: an
            // error quotes only as much of it as fits in the minimum MTU.
            if dst != ours || !pkt.verify_checksum(&src, &dst) {
                self.counters.wire(WireError::Icmp);
                return;
            }
            let quoted = crate::wire::quoted_tcp_v6(pkt.payload());
            return self.handle_pmtu(pkt.pkt_too_big_mtu(), quoted);
        }
        let Ok(repr) = Icmpv6Repr::parse(&src, &dst, &pkt, &ChecksumCapabilities::default()) else {
            self.counters.wire(WireError::Icmp);
            return;
        };
        if matches!(repr, Icmpv6Repr::Ndisc(_)) && ip.hop_limit != 255 {
            // RFC 4861: a router would have decremented it, so it came from off the link.
            self.counters.ndp_bad_hop_limit += 1;
            return;
        }
        match repr {
            Icmpv6Repr::EchoRequest { .. } if dst == ours => {
                let end = ip.l4.end;
                let mac = self.cfg.mac;
                let Some(buf) = frame.get_mut() else { return };
                let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
                let peer = eth.src_addr();
                eth.set_src_addr(mac);
                eth.set_dst_addr(peer);
                let mut ipp = Ipv6Packet::new_unchecked(&mut buf[ip.l3..end]);
                ipp.set_src_addr(ours);
                ipp.set_dst_addr(src);
                ipp.set_hop_limit(HOP_LIMIT);
                let mut icmp = Icmpv6Packet::new_unchecked(&mut buf[ip.l4.clone()]);
                icmp.set_msg_type(Icmpv6Message::EchoReply);
                icmp.fill_checksum(&ours, &src);
                frame.truncate(end);
                self.counters.icmp_echo_replies += 1;
                self.push_control(Control::Frame(frame));
            }
            Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, lladdr }) if target_addr == ours => {
                if src.is_unspecified() {
                    return;
                }
                let peer_mac = lladdr
                    .filter(|l| l.len() == 6)
                    .map(|l| EthernetAddress::from_bytes(l.as_bytes()))
                    .unwrap_or(parsed.src_mac);
                if !super::neighbor::is_peer_mac(&peer_mac) || src.is_multicast() {
                    self.counters.neighbor_refused += 1;
                    return;
                }
                self.learn_neighbor(now, IpAddress::Ipv6(src), peer_mac);
                let na = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
                    flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
                    target_addr: ours,
                    lladdr: Some(self.cfg.mac.into()),
                });
                let l4 = ip.l4.start;
                let len = na.buffer_len();
                if !frame.set_len(l4 + len) {
                    return;
                }
                let route = Route {
                    src_mac: self.cfg.mac,
                    dst_mac: peer_mac,
                    src_ip: IpAddress::Ipv6(ours),
                    dst_ip: IpAddress::Ipv6(src),
                };
                let Some(buf) = frame.get_mut() else { return };
                route.emit_l2_l3(buf, IpProtocol::Icmpv6, len);
                Ipv6Packet::new_unchecked(&mut buf[ip.l3..]).set_hop_limit(255);
                na.emit(
                    &ours,
                    &src,
                    &mut Icmpv6Packet::new_unchecked(&mut buf[l4..l4 + len]),
                    &ChecksumCapabilities::default(),
                );
                self.counters.ndp_adverts_sent += 1;
                self.push_control(Control::Frame(frame));
            }
            Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert { flags, target_addr, lladdr: Some(l) }) if l.len() == 6 => {
                let (target, mac) = (IpAddress::Ipv6(target_addr), EthernetAddress::from_bytes(l.as_bytes()));
                // RFC 4861 section 7.2.5: an advertisement updates what we asked for or
                // already hold, and replaces a known address only with the override flag.
                let known = self.neighbors.lookup(now, &target);
                if !self.neighbors.expects(now, &target)
                    || known.is_some_and(|m| m != mac && !flags.contains(NdiscNeighborFlags::OVERRIDE))
                {
                    self.counters.neighbor_refused += 1;
                    return;
                }
                self.learn_neighbor(now, target, mac);
            }
            _ => {}
        }
    }

    pub(crate) fn handle_udp(&mut self, now: Instant, parsed: &Parsed, ip: IpInfo, frame: BufSlice) {
        let seg = ip.l4_bytes(frame.as_bytes());
        let Ok(pkt) = UdpPacket::new_checked(seg) else {
            self.counters.wire(WireError::Udp);
            return;
        };
        let ulen = usize::from(pkt.len());
        let v6 = matches!(ip.src, IpAddress::Ipv6(_));
        if ulen < 8 || ulen > seg.len() || ((pkt.checksum() != 0 || v6) && !pkt.verify_checksum(&ip.src, &ip.dst)) {
            self.counters.wire(WireError::Udp);
            return;
        }
        let (sport, dport) = (pkt.src_port(), pkt.dst_port());
        let cap = self.cfg.udp_queue;
        let Some(sock) = self.udp.get_mut(&dport) else {
            self.counters.udp_no_socket += 1;
            return;
        };
        if sock.rx.len() >= cap {
            self.counters.udp_queue_full += 1;
            return;
        }
        let start = ip.l4.start + 8;
        let Some(payload) = frame.slice(start..ip.l4.start + ulen) else { return };
        sock.rx.push_back((IpEndpoint::new(ip.src, sport), payload));
        if self.on_link(&ip.src) {
            self.learn_neighbor(now, ip.src, parsed.src_mac);
        }
    }

    pub(crate) fn build_arp_request(&mut self, target: Ipv4Address, frame: &mut Buf) -> Option<usize> {
        let ours = self.cfg.ipv4?.address();
        let req = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: self.cfg.mac,
            source_protocol_addr: ours,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        let eth = EthernetRepr {
            src_addr: self.cfg.mac,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        };
        let len = 14 + req.buffer_len();
        let buf = frame.get_mut()?.get_mut(..len)?;
        eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        req.emit(&mut ArpPacket::new_unchecked(&mut buf[14..]));
        self.counters.arp_requests_sent += 1;
        Some(len)
    }

    pub(crate) fn build_neighbor_solicit(&mut self, target: Ipv6Address, frame: &mut Buf) -> Option<usize> {
        let ours = self.cfg.ipv6?.address();
        let dst = solicited_node(target);
        let ns =
            Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr: target, lladdr: Some(self.cfg.mac.into()) });
        let len = ns.buffer_len();
        let route = Route {
            src_mac: self.cfg.mac,
            dst_mac: multicast_mac(dst),
            src_ip: IpAddress::Ipv6(ours),
            dst_ip: IpAddress::Ipv6(dst),
        };
        let buf = frame.get_mut()?;
        let l4 = route.emit_l2_l3(buf, IpProtocol::Icmpv6, len);
        Ipv6Packet::new_unchecked(&mut buf[14..]).set_hop_limit(255);
        ns.emit(
            &ours,
            &dst,
            &mut Icmpv6Packet::new_unchecked(buf.get_mut(l4..l4 + len)?),
            &ChecksumCapabilities::default(),
        );
        self.counters.ndp_solicits_sent += 1;
        Some(l4 + len)
    }
}

/// Writes a UDP datagram's headers into `frame`; with `copy`, the payload too (returning
/// the copied byte count as the second value), else the payload slices go to `frags`.
pub(crate) fn build_udp(
    route: &Route,
    src_port: u16,
    dst_port: u16,
    payload: &[BufSlice],
    frame: &mut Buf,
    copy: bool,
    frags: &mut Vec<BufSlice>,
) -> Option<(usize, usize)> {
    let plen: usize = payload.iter().map(BufSlice::len).sum();
    let ulen = 8 + plen;
    if ulen > usize::from(u16::MAX) {
        return None;
    }
    let buf = frame.get_mut()?;
    let l4 = route.emit_l2_l3(buf, IpProtocol::Udp, ulen);
    let h = buf.get_mut(l4..l4 + 8)?;
    h[0..2].copy_from_slice(&src_port.to_be_bytes());
    h[2..4].copy_from_slice(&dst_port.to_be_bytes());
    h[4..6].copy_from_slice(&(ulen as u16).to_be_bytes());
    h[6..8].fill(0);
    let mut c = Checksum::with_sum(pseudo_header(&route.src_ip, &route.dst_ip, IpProtocol::Udp, ulen));
    c.add(h);
    for p in payload {
        c.add(p.as_bytes());
    }
    let sum = match c.finish() {
        0 => 0xffff,
        s => s,
    };
    buf[l4 + 6..l4 + 8].copy_from_slice(&sum.to_be_bytes());
    let mut len = l4 + 8;
    let mut copied = 0;
    if copy {
        for p in payload {
            buf.get_mut(len..len + p.len())?.copy_from_slice(p.as_bytes());
            len += p.len();
            copied += p.len();
        }
    } else {
        frags.extend(payload.iter().cloned());
    }
    Some((len, copied))
}
