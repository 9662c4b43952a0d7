//! The bytes on the wire: Ethernet + IPv4 + UDP, then the 24-byte message header that every
//! datagram of a message carries, then payload (or, for an acknowledgement, a SACK bitmap).
//!
//! ```text
//!  0      1      2      3      4            8        10        12          16      20      24
//!  │ ver  │ kind │flags │ rsvd │ msg_id u32 │frag u16│frags u16│msg_len u32│seq u32│base u32│
//! ```
//!
//! All fields big-endian. `seq` is the per-peer datagram sequence number when the
//! `RELIABLE` flag is set (0 otherwise), and `base` the oldest sequence number its sender
//! still waits to have acknowledged (a receiver that has no state for the sender starts
//! there). An `Ack` datagram carries in `seq` the next sequence number its sender expects
//! (everything before it arrived) and, after the header, a bitmap: bit `i` (LSB first
//! within each byte) set means `seq + 1 + i` arrived.
//!
//! Ethernet, IP and UDP go through smoltcp's packet views and `stack::wire` (the same
//! header writer, pseudo-header and checksum the TCP stack uses); the message header is a
//! view of the same kind, [`MsgHeader`]. Parsing reads; it never copies. A packet may
//! arrive in several buffers (multi-buffer): [`parse_udp`] reads the headers from the first
//! and checks the lengths against the whole, and [`udp_sum`] runs over all of them.

use std::net::{IpAddr, Ipv4Addr};

use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet, UdpPacket,
    ETHERNET_HEADER_LEN, UDP_HEADER_LEN,
};
use stack::wire::{pseudo_header, Checksum, Route, IPV4_HEADER_LEN, IPV6_HEADER_LEN};

/// Ethernet header bytes.
pub const ETH_LEN: usize = ETHERNET_HEADER_LEN;
/// IPv4 header bytes (no options: what we send).
pub const IPV4_LEN: usize = IPV4_HEADER_LEN;
/// UDP header bytes.
pub const UDP_LEN: usize = UDP_HEADER_LEN;
/// The message header's bytes.
pub const MSG_HDR_LEN: usize = 24;
/// Every header in front of a datagram's payload, as sent.
pub const HDR_LEN: usize = ETH_LEN + IPV4_LEN + UDP_LEN + MSG_HDR_LEN;
/// The least payload a sender puts in a datagram that is not a message's last: what the
/// IPv4 minimum MTU (576) leaves after the IPv4, UDP and message headers. An engine
/// refuses a smaller datagram payload, and a receiver refuses a message claiming more
/// datagrams than its length needs at this size.
pub const MIN_DATAGRAM_PAYLOAD: usize = 576 - IPV4_LEN - UDP_LEN - MSG_HDR_LEN;
/// Offset of the UDP header in a frame we send.
pub const UDP_OFF: usize = ETH_LEN + IPV4_LEN;
/// Largest SACK bitmap, in bits: the largest reliability window.
pub const SACK_BITS: usize = 1024;
/// Header version. Version 2 carries `base` (random initial sequence numbers); a version 1
/// endpoint drops it as a bad header, and this one drops version 1.
pub const VERSION: u8 = 2;

/// The datagram carries part of a message.
pub const KIND_DATA: u8 = 0;
/// The datagram acknowledges reliable datagrams.
pub const KIND_ACK: u8 = 1;
/// Padding: ignored by the receiver.
pub const KIND_PAD: u8 = 2;
/// `seq` is meaningful: the sender retransmits until acknowledged.
pub const FLAG_RELIABLE: u8 = 1;

mod field {
    use std::ops::Range;
    pub const VERSION: usize = 0;
    pub const KIND: usize = 1;
    pub const FLAGS: usize = 2;
    pub const RSVD: usize = 3;
    pub const MSG_ID: Range<usize> = 4..8;
    pub const FRAG: Range<usize> = 8..10;
    pub const FRAGS: Range<usize> = 10..12;
    pub const MSG_LEN: Range<usize> = 12..16;
    pub const SEQ: Range<usize> = 16..20;
    pub const BASE: Range<usize> = 20..24;
}

fn be16(b: &[u8], r: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

fn be32(b: &[u8], r: std::ops::Range<usize>) -> u32 {
    u32::from_be_bytes([b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3]])
}

/// A view of the message header over bytes, in smoltcp's style: [`MsgHeader::new_checked`]
/// makes sure every field is in bounds, setters exist for writable buffers.
#[derive(Debug, Clone, Copy)]
pub struct MsgHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MsgHeader<T> {
    /// A view without checks: accessors panic on a buffer shorter than [`MSG_HDR_LEN`].
    pub fn new_unchecked(buffer: T) -> Self {
        MsgHeader { buffer }
    }

    /// A view of a buffer at least [`MSG_HDR_LEN`] long; `None` otherwise.
    pub fn new_checked(buffer: T) -> Option<Self> {
        (buffer.as_ref().len() >= MSG_HDR_LEN).then_some(MsgHeader { buffer })
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    /// Datagram kind.
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }
    /// Flags.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    /// The sender's message id.
    pub fn msg_id(&self) -> u32 {
        be32(self.buffer.as_ref(), field::MSG_ID)
    }
    /// This datagram's index in the message.
    pub fn frag(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FRAG)
    }
    /// The message's datagram count.
    pub fn frags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FRAGS)
    }
    /// The message's length.
    pub fn msg_len(&self) -> u32 {
        be32(self.buffer.as_ref(), field::MSG_LEN)
    }
    /// Sequence number, or cumulative acknowledgement.
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }
    /// The sender's oldest unacknowledged sequence number.
    pub fn base(&self) -> u32 {
        be32(self.buffer.as_ref(), field::BASE)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MsgHeader<T> {
    fn put(&mut self, r: std::ops::Range<usize>, v: &[u8]) {
        self.buffer.as_mut()[r].copy_from_slice(v);
    }
    /// Sets the version.
    pub fn set_version(&mut self, v: u8) {
        self.buffer.as_mut()[field::VERSION] = v;
    }
    /// Sets the kind.
    pub fn set_kind(&mut self, v: u8) {
        self.buffer.as_mut()[field::KIND] = v;
    }
    /// Sets the flags (and clears the reserved byte).
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
        self.buffer.as_mut()[field::RSVD] = 0;
    }
    /// Sets the message id.
    pub fn set_msg_id(&mut self, v: u32) {
        self.put(field::MSG_ID, &v.to_be_bytes());
    }
    /// Sets the datagram index.
    pub fn set_frag(&mut self, v: u16) {
        self.put(field::FRAG, &v.to_be_bytes());
    }
    /// Sets the datagram count.
    pub fn set_frags(&mut self, v: u16) {
        self.put(field::FRAGS, &v.to_be_bytes());
    }
    /// Sets the message length.
    pub fn set_msg_len(&mut self, v: u32) {
        self.put(field::MSG_LEN, &v.to_be_bytes());
    }
    /// Sets the sequence number.
    pub fn set_seq(&mut self, v: u32) {
        self.put(field::SEQ, &v.to_be_bytes());
    }
    /// Sets the base.
    pub fn set_base(&mut self, v: u32) {
        self.put(field::BASE, &v.to_be_bytes());
    }
}

/// The message header, parsed: the one bridge between its bytes and its meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MsgHdr {
    /// [`KIND_DATA`], [`KIND_ACK`] or [`KIND_PAD`].
    pub kind: u8,
    /// [`FLAG_RELIABLE`] or 0.
    pub flags: u8,
    /// The sender's id of the message (per peer, increasing).
    pub msg_id: u32,
    /// This datagram's index among the message's datagrams.
    pub frag: u16,
    /// How many datagrams the message has (at least 1).
    pub frags: u16,
    /// The message's length in bytes.
    pub msg_len: u32,
    /// Datagram sequence number (reliable), or the cumulative ack (ack datagrams).
    pub seq: u32,
    /// Reliable data: the sender's oldest unacknowledged sequence number (0 otherwise).
    pub base: u32,
}

impl MsgHdr {
    /// Parses the first [`MSG_HDR_LEN`] bytes; `None` if short or of another version.
    pub fn parse(b: &[u8]) -> Option<MsgHdr> {
        let h = MsgHeader::new_checked(b)?;
        if h.version() != VERSION {
            return None;
        }
        Some(MsgHdr {
            kind: h.kind(),
            flags: h.flags(),
            msg_id: h.msg_id(),
            frag: h.frag(),
            frags: h.frags(),
            msg_len: h.msg_len(),
            seq: h.seq(),
            base: h.base(),
        })
    }

    /// Writes the header into the first [`MSG_HDR_LEN`] bytes of `b` (which must be that long).
    pub fn emit(&self, b: &mut [u8]) {
        let mut h = MsgHeader::new_unchecked(&mut b[..MSG_HDR_LEN]);
        h.set_version(VERSION);
        h.set_kind(self.kind);
        h.set_flags(self.flags);
        h.set_msg_id(self.msg_id);
        h.set_frag(self.frag);
        h.set_frags(self.frags);
        h.set_msg_len(self.msg_len);
        h.set_seq(self.seq);
        h.set_base(self.base);
    }

    /// Whether the datagram asks for acknowledgement.
    pub fn reliable(&self) -> bool {
        self.flags & FLAG_RELIABLE != 0
    }
}

/// Addresses of one direction of a flow: what goes into the Ethernet/IP/UDP headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Our MAC.
    pub src_mac: [u8; 6],
    /// The next hop's MAC.
    pub dst_mac: [u8; 6],
    /// Our address.
    pub src_ip: Ipv4Addr,
    /// The peer's address.
    pub dst_ip: Ipv4Addr,
    /// Our port.
    pub src_port: u16,
    /// The peer's port.
    pub dst_port: u16,
}

impl Link {
    fn route(&self) -> Route {
        Route {
            src_mac: EthernetAddress(self.src_mac),
            dst_mac: EthernetAddress(self.dst_mac),
            src_ip: IpAddress::Ipv4(self.src_ip),
            dst_ip: IpAddress::Ipv4(self.dst_ip),
        }
    }
}

/// Writes Ethernet, IPv4 (`stack::wire::Route`: DF, TTL 64, header checksum) and UDP
/// headers (checksum 0: see [`udp_checksum`]) for `udp_payload` bytes into the first
/// [`UDP_OFF`] + [`UDP_LEN`] bytes of `b`.
pub fn emit_udp4(b: &mut [u8], link: &Link, udp_payload: usize) {
    let l4 = link.route().emit_l2_l3(b, IpProtocol::Udp, UDP_LEN + udp_payload);
    debug_assert_eq!(l4, UDP_OFF);
    let mut udp = UdpPacket::new_unchecked(&mut b[UDP_OFF..UDP_OFF + UDP_LEN]);
    udp.set_src_port(link.src_port);
    udp.set_dst_port(link.dst_port);
    udp.set_len((UDP_LEN + udp_payload) as u16);
    udp.set_checksum(0);
}

/// The UDP checksum of a datagram whose headers (as written by [`emit_udp4`]) start `head`
/// and whose UDP payload continues in `rest`, over the pseudo-header. Reads, never copies.
/// Returns 0xffff for a computed 0 (0 on the wire means "no checksum").
pub fn udp_checksum<'a>(head: &[u8], rest: impl IntoIterator<Item = &'a [u8]>) -> u16 {
    let ip = Ipv4Packet::new_unchecked(&head[ETH_LEN..UDP_OFF]);
    let (src, dst) = (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()));
    let udp_len = usize::from(UdpPacket::new_unchecked(&head[UDP_OFF..UDP_OFF + UDP_LEN]).len());
    let mut c = Checksum::with_sum(pseudo_header(&src, &dst, IpProtocol::Udp, udp_len));
    c.add(&head[UDP_OFF..]);
    for r in rest {
        c.add(r);
    }
    match c.finish() {
        0 => 0xffff,
        s => s,
    }
}

/// What a received packet's headers say, for a UDP datagram over IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxUdp {
    /// Sender's MAC (where replies go).
    pub src_mac: [u8; 6],
    /// Sender's address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Sender's port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Offset of the UDP header in the packet.
    pub udp_off: usize,
    /// UDP length, header included (from the UDP header: the frame may be padded).
    pub udp_len: usize,
    /// The checksum field (0: none was sent, IPv4 only).
    pub checksum: u16,
}

impl RxUdp {
    /// Offset of the UDP payload in the packet.
    pub fn payload_off(&self) -> usize {
        self.udp_off + UDP_LEN
    }

    /// UDP payload bytes.
    pub fn payload_len(&self) -> usize {
        self.udp_len - UDP_LEN
    }
}

/// Why a packet is not a UDP datagram we can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotUdp {
    /// Not IP/UDP, or truncated or inconsistent lengths.
    Malformed,
    /// The IPv4 header checksum is wrong.
    IpChecksum,
    /// An IP fragment or an IPv6 extension header (we never send them; they are the
    /// kernel's business).
    IpFragment,
    /// An ICMP message (the steering program passes on errors that quote a steered flow,
    /// e.g. port unreachable once a peer's endpoint is gone).
    Icmp,
}

/// Parses Ethernet + IPv4/IPv6 + UDP at the start of `first` (the first buffer of a
/// packet, which must hold every header); `total` is the packet's length over all its
/// buffers. Verifies the IPv4 header checksum; the UDP checksum is [`udp_sum`]'s job.
pub fn parse_udp(first: &[u8], total: usize) -> Result<RxUdp, NotUdp> {
    use NotUdp::*;
    let eth = EthernetFrame::new_checked(first).map_err(|_| Malformed)?;
    let src_mac = eth.src_addr().0;
    let l3 = &first[ETH_LEN..];
    let (src, dst, l4, l4_end) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            // Views over the header alone: in a multi-buffer packet the rest of the
            // datagram is in later buffers, so smoltcp's whole-packet check cannot apply.
            if l3.len() < IPV4_HEADER_LEN {
                return Err(Malformed);
            }
            let hl = usize::from(Ipv4Packet::new_unchecked(l3).header_len());
            if hl < IPV4_HEADER_LEN || l3.len() < hl {
                return Err(Malformed);
            }
            let ip = Ipv4Packet::new_unchecked(&l3[..hl]);
            let total_len = usize::from(ip.total_len());
            if ip.version() != 4 || total_len < hl || ETH_LEN + total_len > total {
                return Err(Malformed);
            }
            if !ip.verify_checksum() {
                return Err(IpChecksum);
            }
            if ip.more_frags() || ip.frag_offset() != 0 {
                return Err(IpFragment);
            }
            match ip.next_header() {
                IpProtocol::Udp => {}
                IpProtocol::Icmp => return Err(Icmp),
                _ => return Err(Malformed),
            }
            (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()), ETH_LEN + hl, ETH_LEN + total_len)
        }
        EthernetProtocol::Ipv6 => {
            if l3.len() < IPV6_HEADER_LEN {
                return Err(Malformed);
            }
            let ip = Ipv6Packet::new_unchecked(&l3[..IPV6_HEADER_LEN]);
            let end = ETH_LEN + IPV6_HEADER_LEN + usize::from(ip.payload_len());
            if ip.version() != 6 || end > total {
                return Err(Malformed);
            }
            match ip.next_header() {
                IpProtocol::Udp => {}
                IpProtocol::Icmpv6 => return Err(Icmp),
                IpProtocol::Ipv6Frag | IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                    return Err(IpFragment)
                }
                _ => return Err(Malformed),
            }
            (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()), ETH_LEN + IPV6_HEADER_LEN, end)
        }
        _ => return Err(Malformed),
    };
    let udp = UdpPacket::new_unchecked(first.get(l4..l4 + UDP_LEN).ok_or(Malformed)?);
    let udp_len = usize::from(udp.len());
    if udp_len < UDP_LEN || l4 + udp_len > l4_end {
        return Err(Malformed);
    }
    Ok(RxUdp {
        src_mac,
        src,
        dst,
        src_port: udp.src_port(),
        dst_port: udp.dst_port(),
        udp_off: l4,
        udp_len,
        checksum: udp.checksum(),
    })
}

/// The running sum of a received datagram's UDP checksum: pseudo-header, then exactly
/// `udp_len` bytes from `udp_off` of the packet held in `bufs` (Ethernet padding left out).
/// The datagram verifies when `sum() == 0xffff`; to fill the field instead, zero it first
/// and write `finish()` (0xffff for a computed 0). Reads, never copies.
pub fn udp_sum<'a>(rx: &RxUdp, bufs: impl IntoIterator<Item = &'a [u8]>) -> Checksum {
    let (src, dst) = (IpAddress::from(rx.src), IpAddress::from(rx.dst));
    let mut c = Checksum::with_sum(pseudo_header(&src, &dst, IpProtocol::Udp, rx.udp_len));
    let mut skip = rx.udp_off;
    let mut left = rx.udp_len;
    for b in bufs {
        if left == 0 {
            break;
        }
        let s = skip.min(b.len());
        skip -= s;
        let take = left.min(b.len() - s);
        c.add(&b[s..s + take]);
        left -= take;
    }
    c
}

/// Whether a received datagram's UDP checksum is right (an IPv4 datagram sent with
/// checksum 0 carries none and passes; IPv6 requires one).
pub fn udp_verifies<'a>(rx: &RxUdp, bufs: impl IntoIterator<Item = &'a [u8]>) -> bool {
    if rx.checksum == 0 {
        return rx.src.is_ipv4();
    }
    udp_sum(rx, bufs).sum() == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(10, 77, 0, 1),
            dst_ip: Ipv4Addr::new(10, 77, 0, 2),
            src_port: 7000,
            dst_port: 40000,
        }
    }

    /// A whole frame: headers, `payload`, and `pad` bytes of Ethernet padding.
    fn frame(payload: &[u8], pad: usize) -> Vec<u8> {
        let mut f = vec![0u8; UDP_OFF + UDP_LEN];
        emit_udp4(&mut f, &link(), payload.len());
        let sum = udp_checksum(&f, [payload]);
        f[UDP_OFF + 6..UDP_OFF + 8].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(payload);
        f.extend(std::iter::repeat_n(0xee, pad));
        f
    }

    #[test]
    fn msg_hdr_round_trip() {
        let h = MsgHdr {
            kind: KIND_DATA,
            flags: FLAG_RELIABLE,
            msg_id: 7,
            frag: 3,
            frags: 46,
            msg_len: 65536,
            seq: u32::MAX,
            base: 0x1234_5678,
        };
        let mut b = [0xaa; MSG_HDR_LEN];
        h.emit(&mut b);
        assert_eq!(MsgHdr::parse(&b), Some(h));
        assert_eq!(b[3], 0, "the reserved byte is cleared");
        assert!(MsgHdr::parse(&b[..23]).is_none());
        b[0] = VERSION + 1;
        assert!(MsgHdr::parse(&b).is_none(), "another version is refused");
    }

    #[test]
    fn smoltcp_agrees_with_what_we_emit() {
        let payload: Vec<u8> = (0..301u32).map(|i| (i * 13) as u8).collect();
        let f = frame(&payload, 0);
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert!(ip.dont_frag());
        assert_eq!(ip.hop_limit(), 64);
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        let (src, dst) = (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()));
        assert!(udp.verify_checksum(&src, &dst), "smoltcp verifies our UDP checksum");
        assert_eq!(udp.payload(), &payload[..]);
    }

    #[test]
    fn parses_back_with_padding_and_over_buffers() {
        let payload: Vec<u8> = (0..301u32).map(|i| (i * 13) as u8).collect();
        let f = frame(&payload, 5);
        let rx = parse_udp(&f, f.len()).expect("parses");
        assert_eq!(rx.src, IpAddr::V4(link().src_ip));
        assert_eq!(rx.dst_port, 40000);
        assert_eq!(rx.src_mac, link().src_mac);
        assert_eq!(rx.payload_off(), UDP_OFF + UDP_LEN);
        assert_eq!(rx.payload_len(), payload.len(), "padding is not payload");
        assert!(udp_verifies(&rx, [&f[..]]));
        // The same packet in three buffers, cut anywhere behind the headers.
        for cut in [UDP_OFF + UDP_LEN, UDP_OFF + UDP_LEN + 1, 200, f.len() - 3] {
            let bufs = [&f[..cut], &f[cut..cut + 1], &f[cut + 1..]];
            let rx2 = parse_udp(bufs[0], f.len()).expect("first buffer holds the headers");
            assert_eq!(rx2, rx);
            assert!(udp_verifies(&rx2, bufs), "cut at {cut}");
        }
        // One flipped payload bit fails the checksum.
        let mut bad = f.clone();
        bad[UDP_OFF + UDP_LEN + 100] ^= 0x10;
        assert!(!udp_verifies(&parse_udp(&bad, bad.len()).unwrap(), [&bad[..]]));
        // Flipping a padding byte does not.
        let mut pad = f.clone();
        let n = pad.len();
        pad[n - 1] ^= 0xff;
        assert!(udp_verifies(&parse_udp(&pad, n).unwrap(), [&pad[..]]));
    }

    #[test]
    fn refuses_truncated_fragments_other_protocols_and_bad_sums() {
        let f = frame(&[7; 10], 0);
        assert_eq!(parse_udp(&f[..30], 30), Err(NotUdp::Malformed));
        assert_eq!(parse_udp(&f, f.len() - 1), Err(NotUdp::Malformed), "IP length past the packet");
        let mut frag = f.clone();
        frag[ETH_LEN + 6] |= 0x20; // MF
        Ipv4Packet::new_unchecked(&mut frag[ETH_LEN..UDP_OFF]).fill_checksum();
        assert_eq!(parse_udp(&frag, frag.len()), Err(NotUdp::IpFragment));
        let mut tcp = f.clone();
        tcp[ETH_LEN + 9] = 6;
        Ipv4Packet::new_unchecked(&mut tcp[ETH_LEN..UDP_OFF]).fill_checksum();
        assert_eq!(parse_udp(&tcp, tcp.len()), Err(NotUdp::Malformed));
        let mut icmp = f.clone();
        icmp[ETH_LEN + 9] = 1;
        Ipv4Packet::new_unchecked(&mut icmp[ETH_LEN..UDP_OFF]).fill_checksum();
        assert_eq!(parse_udp(&icmp, icmp.len()), Err(NotUdp::Icmp));
        let mut sum = f.clone();
        sum[ETH_LEN + 8] ^= 1; // TTL, checksum not refreshed
        assert_eq!(parse_udp(&sum, sum.len()), Err(NotUdp::IpChecksum));
        let mut ihl = f.clone();
        ihl[ETH_LEN] = 0x4f; // 60-byte header in a 52-byte frame
        assert_eq!(parse_udp(&ihl[..52], 52), Err(NotUdp::Malformed));
        let mut ulen = f.clone();
        ulen[UDP_OFF + 4..UDP_OFF + 6].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(parse_udp(&ulen, ulen.len()), Err(NotUdp::Malformed), "UDP length past the IP packet");
        // Every truncation of a valid frame is refused or parsed, never a panic.
        for n in 0..f.len() {
            let _ = parse_udp(&f[..n], f.len());
            let _ = parse_udp(&f[..n], n);
        }
    }

    #[test]
    fn zero_checksum_means_none_for_ipv4_only() {
        let mut f = frame(&[1, 2, 3], 0);
        f[UDP_OFF + 6..UDP_OFF + 8].copy_from_slice(&[0, 0]);
        let rx = parse_udp(&f, f.len()).unwrap();
        assert!(udp_verifies(&rx, [&f[..]]));
        let v6 = RxUdp { src: "fd77::1".parse().unwrap(), dst: "fd77::2".parse().unwrap(), ..rx };
        assert!(!udp_verifies(&v6, [&f[..]]));
    }
}
