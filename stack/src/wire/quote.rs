//! The packet an ICMP error quotes: RFC 792 and RFC 4443 return the offending datagram's
//! IP header and at least its first 8 transport bytes, which for TCP are the ports and the
//! sequence number: enough to find the connection and check that the error is about data
//! it has in flight (RFC 5927 section 4.1).

use smoltcp::wire::{IpAddress, Ipv4Address, Ipv6Address};

use super::Seq;

/// The TCP segment an ICMP error quotes, as its sender (us) wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedTcp {
    /// Its source: our address.
    pub src: IpAddress,
    /// Its destination: the peer.
    pub dst: IpAddress,
    /// Our port.
    pub src_port: u16,
    /// The peer's port.
    pub dst_port: u16,
    /// Its sequence number.
    pub seq: Seq,
}

fn tcp_start(tcp: &[u8], src: IpAddress, dst: IpAddress) -> Option<QuotedTcp> {
    let t = tcp.get(..8)?;
    Some(QuotedTcp {
        src,
        dst,
        src_port: u16::from_be_bytes([t[0], t[1]]),
        dst_port: u16::from_be_bytes([t[2], t[3]]),
        seq: Seq(u32::from_be_bytes([t[4], t[5], t[6], t[7]])),
    })
}

/// The TCP segment quoted by an ICMPv4 error (`quote`: the bytes after the ICMP header),
/// or `None` if it is not a first fragment of a TCP segment or is cut short.
pub fn quoted_tcp_v4(quote: &[u8]) -> Option<QuotedTcp> {
    let h = quote.get(..20)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let frag_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    if h[0] >> 4 != 4 || ihl < 20 || h[9] != 6 || frag_offset != 0 {
        return None;
    }
    let src = Ipv4Address::new(h[12], h[13], h[14], h[15]);
    let dst = Ipv4Address::new(h[16], h[17], h[18], h[19]);
    tcp_start(quote.get(ihl..)?, IpAddress::Ipv4(src), IpAddress::Ipv4(dst))
}

/// The TCP segment quoted by an ICMPv6 error (`quote`: the bytes after the ICMPv6 header,
/// which for "packet too big" ends with the MTU), or `None` if the quoted packet does not
/// carry TCP right after its fixed header or is cut short.
pub fn quoted_tcp_v6(quote: &[u8]) -> Option<QuotedTcp> {
    let h = quote.get(..40)?;
    if h[0] >> 4 != 6 || h[6] != 6 {
        return None;
    }
    let addr = |b: &[u8]| {
        let mut o = [0u8; 16];
        o.copy_from_slice(b);
        IpAddress::Ipv6(Ipv6Address::from(o))
    };
    tcp_start(quote.get(40..)?, addr(&h[8..24]), addr(&h[24..40]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_parsed_and_short_or_foreign_ones_refused() {
        let mut v4 = vec![0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        v4.extend_from_slice(&[0, 80, 0x13, 0x88, 0, 0, 0x10, 0]);
        let q = quoted_tcp_v4(&v4).expect("quote");
        assert_eq!((q.src_port, q.dst_port, q.seq), (80, 5000, Seq(0x1000)));
        assert_eq!(q.src, IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1)));
        assert_eq!(quoted_tcp_v4(&v4[..27]), None, "fewer than 8 TCP bytes");
        let mut udp = v4.clone();
        udp[9] = 17;
        assert_eq!(quoted_tcp_v4(&udp), None);
        let mut later_fragment = v4.clone();
        later_fragment[7] = 1;
        assert_eq!(quoted_tcp_v4(&later_fragment), None);

        let mut v6 = vec![0x60, 0, 0, 0, 0x05, 0xa0, 6, 64];
        v6.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v6.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v6.extend_from_slice(&[0, 80, 0x13, 0x88, 0, 0, 0x20, 0]);
        let q = quoted_tcp_v6(&v6).expect("quote");
        assert_eq!((q.src_port, q.dst_port, q.seq), (80, 5000, Seq(0x2000)));
        let mut ext = v6.clone();
        ext[6] = 44;
        assert_eq!(quoted_tcp_v6(&ext), None);
        assert_eq!(quoted_tcp_v6(&v6[..47]), None);
    }
}
