//! Which connection a received frame is for: its source endpoint, peeked from the
//! Ethernet, IP and TCP headers (smoltcp's views, no checksum work; the stack checks
//! everything when it takes the frame). The core wakes the session of that peer, so a
//! turn serves only connections that got input.
//!
//! This stands in for a stack call that reports the connections whose readiness changed
//! (the stack knows exactly; this is one extra header parse per frame).

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpEndpoint, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
};

/// The TCP source endpoint of an Ethernet frame, if it carries TCP over IPv4 or IPv6.
pub fn source(frame: &[u8]) -> Option<IpEndpoint> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let (src, l4): (IpAddress, &[u8]) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != IpProtocol::Tcp {
                return None;
            }
            (ip.src_addr().into(), ip.payload())
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != IpProtocol::Tcp {
                return None;
            }
            (ip.src_addr().into(), ip.payload())
        }
        _ => return None,
    };
    let tcp = TcpPacket::new_checked(l4).ok()?;
    Some(IpEndpoint::new(src, tcp.src_port()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{EthernetAddress, EthernetRepr, Ipv4Address, Ipv4Repr, TcpRepr, TcpSeqNumber};

    #[test]
    fn the_source_of_a_tcp_frame_and_nothing_else() {
        let (src, dst) = (Ipv4Address::new(10, 0, 0, 2), Ipv4Address::new(10, 0, 0, 1));
        let tcp = TcpRepr {
            src_port: 40001,
            dst_port: 80,
            control: smoltcp::wire::TcpControl::Syn,
            seq_number: TcpSeqNumber(1),
            ack_number: None,
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let ip =
            Ipv4Repr { src_addr: src, dst_addr: dst, next_header: IpProtocol::Tcp, payload_len: 20, hop_limit: 64 };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf = vec![0u8; 14 + 20 + 20];
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut f);
        let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
        let caps = smoltcp::phy::ChecksumCapabilities::default();
        ip.emit(&mut p, &caps);
        tcp.emit(&mut TcpPacket::new_unchecked(p.payload_mut()), &src.into(), &dst.into(), &caps);
        assert_eq!(source(&buf), Some(IpEndpoint::new(src.into(), 40001)));
        assert_eq!(source(&buf[..30]), None, "truncated");
        buf[12] = 0x08;
        buf[13] = 0x06;
        assert_eq!(source(&buf), None, "ARP");
    }
}
