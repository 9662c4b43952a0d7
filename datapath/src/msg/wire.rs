//! The bytes on the wire: Ethernet + IPv4 + UDP, then the 24-byte message header that every
//! datagram of a message carries, then payload (or, for an acknowledgement, a SACK bitmap).
//!
//! ```text
//!  0      1      2      3      4            8        10        12          16      20      24
//!  │ ver  │ kind │flags │ rsvd │ msg_id u32 │frag u16│frags u16│msg_len u32│seq u32│rsvd u32│
//! ```
//!
//! All fields big-endian. `seq` is the per-peer datagram sequence number when the
//! `RELIABLE` flag is set (0 otherwise). An `Ack` datagram carries in `seq` the next
//! sequence number its sender expects (everything before it arrived) and, after the
//! header, a bitmap: bit `i` (LSB first within each byte) set means `seq + 1 + i` arrived.
//! Parsing reads; it never copies.

use std::net::Ipv4Addr;

use crate::csum::Checksum;

/// Ethernet header bytes.
pub const ETH_LEN: usize = 14;
/// IPv4 header bytes (no options: what we send).
pub const IPV4_LEN: usize = 20;
/// UDP header bytes.
pub const UDP_LEN: usize = 8;
/// The message header's bytes.
pub const MSG_HDR_LEN: usize = 24;
/// Every header in front of a datagram's payload, as sent.
pub const HDR_LEN: usize = ETH_LEN + IPV4_LEN + UDP_LEN + MSG_HDR_LEN;
/// Offset of the UDP header in a frame we send.
pub const UDP_OFF: usize = ETH_LEN + IPV4_LEN;
/// Largest SACK bitmap, in bits: the largest reliability window.
pub const SACK_BITS: usize = 1024;
/// Header version.
pub const VERSION: u8 = 1;

/// The datagram carries part of a message.
pub const KIND_DATA: u8 = 0;
/// The datagram acknowledges reliable datagrams.
pub const KIND_ACK: u8 = 1;
/// Padding: ignored by the receiver (see `Endpoint`'s TX queue).
pub const KIND_PAD: u8 = 2;
/// `seq` is meaningful: the sender retransmits until acknowledged.
pub const FLAG_RELIABLE: u8 = 1;

/// The message header, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MsgHdr {
    /// [`KIND_DATA`] or [`KIND_ACK`].
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
}

impl MsgHdr {
    /// Parses the first [`MSG_HDR_LEN`] bytes; `None` if short or of another version.
    pub fn parse(b: &[u8]) -> Option<MsgHdr> {
        let b: &[u8; MSG_HDR_LEN] = b.get(..MSG_HDR_LEN)?.try_into().ok()?;
        if b[0] != VERSION {
            return None;
        }
        Some(MsgHdr {
            kind: b[1],
            flags: b[2],
            msg_id: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            frag: u16::from_be_bytes([b[8], b[9]]),
            frags: u16::from_be_bytes([b[10], b[11]]),
            msg_len: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
            seq: u32::from_be_bytes([b[16], b[17], b[18], b[19]]),
        })
    }

    /// Writes the header into the first [`MSG_HDR_LEN`] bytes of `b` (which must be that long).
    pub fn emit(&self, b: &mut [u8]) {
        let b = &mut b[..MSG_HDR_LEN];
        b[0] = VERSION;
        b[1] = self.kind;
        b[2] = self.flags;
        b[3] = 0;
        b[4..8].copy_from_slice(&self.msg_id.to_be_bytes());
        b[8..10].copy_from_slice(&self.frag.to_be_bytes());
        b[10..12].copy_from_slice(&self.frags.to_be_bytes());
        b[12..16].copy_from_slice(&self.msg_len.to_be_bytes());
        b[16..20].copy_from_slice(&self.seq.to_be_bytes());
        b[20..24].copy_from_slice(&[0; 4]);
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

/// Writes Ethernet, IPv4 (DF, TTL 64, header checksum) and UDP headers (checksum 0: see
/// [`udp_checksum`]) for `udp_payload` bytes into the first [`UDP_OFF`] + 8 bytes of `b`.
pub fn emit_udp4(b: &mut [u8], link: &Link, udp_payload: usize, ip_id: u16) {
    let b = &mut b[..UDP_OFF + UDP_LEN];
    b[0..6].copy_from_slice(&link.dst_mac);
    b[6..12].copy_from_slice(&link.src_mac);
    b[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut b[ETH_LEN..UDP_OFF];
    let total = (IPV4_LEN + UDP_LEN + udp_payload) as u16;
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6..8].copy_from_slice(&[0x40, 0x00]); // DF, offset 0
    ip[8] = 64;
    ip[9] = 17;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&link.src_ip.octets());
    ip[16..20].copy_from_slice(&link.dst_ip.octets());
    let mut c = Checksum::new();
    c.add(ip);
    let sum = c.finish();
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let udp = &mut b[UDP_OFF..];
    udp[0..2].copy_from_slice(&link.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&link.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&((UDP_LEN + udp_payload) as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
}

/// The UDP checksum of a datagram whose headers (as written by [`emit_udp4`]) start `head`
/// and whose UDP payload continues in `rest`, over the pseudo-header. Reads, never copies.
/// Returns 0xffff for a computed 0 (0 on the wire means "no checksum").
pub fn udp_checksum<'a>(head: &[u8], rest: impl IntoIterator<Item = &'a [u8]>) -> u16 {
    let mut c = Checksum::new();
    c.add(&head[ETH_LEN + 12..ETH_LEN + 20]);
    c.add_u16(17);
    c.add(&head[UDP_OFF + 4..UDP_OFF + 6]);
    c.add(&head[UDP_OFF..]);
    for r in rest {
        c.add(r);
    }
    match c.finish() {
        0 => 0xffff,
        s => s,
    }
}

/// What a received frame's headers say, for a UDP/IPv4 datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxUdp4 {
    /// Sender's MAC (where replies go).
    pub src_mac: [u8; 6],
    /// Sender's address.
    pub src_ip: Ipv4Addr,
    /// Destination address.
    pub dst_ip: Ipv4Addr,
    /// Sender's port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Offset of the UDP payload in the frame.
    pub payload_off: usize,
    /// UDP payload length (from the UDP header: the frame may be padded).
    pub payload_len: usize,
}

/// Why a frame is not a datagram for us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotUdp4 {
    /// Not IPv4/UDP, or truncated or inconsistent.
    Malformed,
    /// An IP fragment (we never send them; reassembling them is the kernel's business).
    IpFragment,
}

/// Parses Ethernet + IPv4 + UDP at the start of `b` (the first buffer of a packet);
/// `total` is the packet's length over all its buffers.
pub fn parse_udp4(b: &[u8], total: usize) -> Result<RxUdp4, NotUdp4> {
    use NotUdp4::*;
    if b.len() < UDP_OFF || b[12..14] != [0x08, 0x00] || b[ETH_LEN] >> 4 != 4 || b[ETH_LEN + 9] != 17 {
        return Err(Malformed);
    }
    let ihl = usize::from(b[ETH_LEN] & 0x0f) * 4;
    let l4 = ETH_LEN + ihl;
    if ihl < IPV4_LEN || b.len() < l4 + UDP_LEN {
        return Err(Malformed);
    }
    let frag = u16::from_be_bytes([b[ETH_LEN + 6], b[ETH_LEN + 7]]);
    if frag & 0x3fff != 0 {
        return Err(IpFragment);
    }
    let udp_len = usize::from(u16::from_be_bytes([b[l4 + 4], b[l4 + 5]]));
    if udp_len < UDP_LEN || l4 + udp_len > total {
        return Err(Malformed);
    }
    let ip4 = |o: usize| Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
    Ok(RxUdp4 {
        src_mac: b[6..12].try_into().map_err(|_| Malformed)?,
        src_ip: ip4(ETH_LEN + 12),
        dst_ip: ip4(ETH_LEN + 16),
        src_port: u16::from_be_bytes([b[l4], b[l4 + 1]]),
        dst_port: u16::from_be_bytes([b[l4 + 2], b[l4 + 3]]),
        payload_off: l4 + UDP_LEN,
        payload_len: udp_len - UDP_LEN,
    })
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
        };
        let mut b = [0xaa; MSG_HDR_LEN];
        h.emit(&mut b);
        assert_eq!(MsgHdr::parse(&b), Some(h));
        assert!(MsgHdr::parse(&b[..23]).is_none());
        b[0] = 2;
        assert!(MsgHdr::parse(&b).is_none());
    }

    #[test]
    fn udp4_headers_parse_back_and_checksum_verifies() {
        let payload: Vec<u8> = (0..301u32).map(|i| (i * 13) as u8).collect();
        let mut frame = vec![0u8; UDP_OFF + UDP_LEN];
        emit_udp4(&mut frame, &link(), payload.len(), 9);
        // IPv4 header checksum verifies to 0.
        let mut c = Checksum::new();
        c.add(&frame[ETH_LEN..UDP_OFF]);
        assert_eq!(c.finish(), 0);
        let sum = udp_checksum(&frame, [&payload[..100], &payload[100..]]);
        frame[UDP_OFF + 6..UDP_OFF + 8].copy_from_slice(&sum.to_be_bytes());
        // The receiver's check: pseudo-header + UDP header (with checksum) + payload sums to 0.
        let mut v = Checksum::new();
        v.add(&frame[ETH_LEN + 12..ETH_LEN + 20]);
        v.add_u16(17);
        v.add_u16((UDP_LEN + payload.len()) as u16);
        v.add(&frame[UDP_OFF..]);
        v.add(&payload);
        assert_eq!(v.finish(), 0);

        let mut whole = frame.clone();
        whole.extend_from_slice(&payload);
        whole.extend_from_slice(&[0; 5]); // Ethernet padding is ignored
        let rx = parse_udp4(&whole, whole.len()).expect("parses");
        assert_eq!(rx.src_ip, link().src_ip);
        assert_eq!(rx.dst_port, 40000);
        assert_eq!(rx.src_mac, link().src_mac);
        assert_eq!(rx.payload_off, UDP_OFF + UDP_LEN);
        assert_eq!(rx.payload_len, payload.len());
    }

    #[test]
    fn refuses_truncated_fragments_and_other_protocols() {
        let mut frame = vec![0u8; UDP_OFF + UDP_LEN + 10];
        emit_udp4(&mut frame, &link(), 10, 1);
        assert_eq!(parse_udp4(&frame[..30], 30), Err(NotUdp4::Malformed));
        assert_eq!(parse_udp4(&frame, frame.len() - 1), Err(NotUdp4::Malformed));
        let mut f = frame.clone();
        f[ETH_LEN + 6] = 0x20; // MF
        assert_eq!(parse_udp4(&f, f.len()), Err(NotUdp4::IpFragment));
        let mut t = frame.clone();
        t[ETH_LEN + 9] = 6;
        assert_eq!(parse_udp4(&t, t.len()), Err(NotUdp4::Malformed));
    }
}
