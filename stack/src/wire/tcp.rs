//! The TCP header without its payload: what the engine reads from a received segment and
//! what it writes in front of payload it never touches.
//!
//! smoltcp's `TcpRepr` carries `payload: &[u8]` and copies it on `emit`; a zero-copy
//! segment needs the header alone, so [`TcpHeader`] is the same bridge between bytes and
//! meaning, minus the payload, plus up to four SACK blocks and the ECN/CWR bits.

use smoltcp::wire::{TcpOption, TcpPacket};

use super::{Seq, WireError};

/// TCP header flags.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer is significant (ignored on receive).
    pub const URG: TcpFlags = TcpFlags(0x20);

    /// Whether all of `other` is set.
    pub fn has(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl core::ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

/// Bytes of a SACK option beside its blocks: two NOPs, the kind and the length.
const SACK_OPTION_OVERHEAD: usize = 4;

/// Selective acknowledgment blocks (RFC 2018), `[left, right)` each.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct SackBlocks {
    len: u8,
    blocks: [(Seq, Seq); 4],
}

impl SackBlocks {
    /// Appends a block; returns false when four are already present.
    pub fn push(&mut self, left: Seq, right: Seq) -> bool {
        if self.len as usize == self.blocks.len() {
            return false;
        }
        self.blocks[self.len as usize] = (left, right);
        self.len += 1;
        true
    }

    /// The blocks.
    pub fn as_slice(&self) -> &[(Seq, Seq)] {
        &self.blocks[..self.len as usize]
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes these blocks take in a header: the option (kind, length, 8 per block) and
    /// the two NOPs that align it, as [`TcpHeader::emit`] writes it; 0 for none.
    pub fn option_len(&self) -> usize {
        match self.len {
            0 => 0,
            n => SACK_OPTION_OVERHEAD + 8 * usize::from(n),
        }
    }

    /// Keeps at most `n` blocks.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len as usize);
        // Clear what is cut, so that the derived equality (which sees the whole array)
        // compares only the blocks present.
        self.blocks[n..].fill((Seq(0), Seq(0)));
        self.len = n as u8;
    }
}

/// The options the engine speaks (RFC 9293, RFC 7323, RFC 2018).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct TcpOptions {
    /// Maximum segment size (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift (SYN only; capped at 14 on receive).
    pub window_scale: Option<u8>,
    /// SACK permitted (SYN only).
    pub sack_permitted: bool,
    /// Timestamps: `(tsval, tsecr)`.
    pub timestamp: Option<(u32, u32)>,
    /// SACK blocks.
    pub sack: SackBlocks,
}

/// Minimum TCP header length.
pub const TCP_HEADER_LEN: usize = 20;
/// Maximum TCP header length (15 words).
pub const TCP_MAX_HEADER_LEN: usize = 60;

/// A TCP header: ports, numbers, flags, window and options.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct TcpHeader {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: Seq,
    /// Acknowledgment number (meaningful with [`TcpFlags::ACK`]).
    pub ack: Seq,
    /// Flags.
    pub flags: TcpFlags,
    /// Window field as sent (unscaled).
    pub window: u16,
    /// Options.
    pub options: TcpOptions,
}

impl TcpHeader {
    /// Parses the header at the front of `segment` (the whole TCP segment, checksum already
    /// verified by the caller); returns it and its length. Bad data offset, truncated or
    /// malformed options and zero ports are errors.
    pub fn parse(segment: &[u8]) -> Result<(TcpHeader, usize), WireError> {
        let pkt = TcpPacket::new_checked(segment).map_err(|_| WireError::TcpDataOffset)?;
        let hlen = usize::from(pkt.header_len());
        if hlen < TCP_HEADER_LEN {
            return Err(WireError::TcpDataOffset);
        }
        if pkt.src_port() == 0 || pkt.dst_port() == 0 {
            return Err(WireError::TcpPort);
        }
        let mut flags = TcpFlags(0);
        for (set, f) in [
            (pkt.fin(), TcpFlags::FIN),
            (pkt.syn(), TcpFlags::SYN),
            (pkt.rst(), TcpFlags::RST),
            (pkt.psh(), TcpFlags::PSH),
            (pkt.ack(), TcpFlags::ACK),
            (pkt.urg(), TcpFlags::URG),
        ] {
            if set {
                flags |= f;
            }
        }
        if flags.has(TcpFlags::SYN) && (flags.has(TcpFlags::FIN) || flags.has(TcpFlags::RST)) {
            return Err(WireError::TcpFlags);
        }
        let mut options = TcpOptions::default();
        let mut rest = pkt.options();
        while !rest.is_empty() {
            let (next, opt) = TcpOption::parse(rest).map_err(|_| WireError::TcpOptions)?;
            match opt {
                TcpOption::EndOfList => break,
                TcpOption::NoOperation => {}
                TcpOption::MaxSegmentSize(v) => options.mss = Some(v),
                TcpOption::WindowScale(v) => options.window_scale = Some(v.min(14)),
                TcpOption::SackPermitted => options.sack_permitted = true,
                TcpOption::SackRange(blocks) => {
                    for (l, r) in blocks.into_iter().flatten() {
                        options.sack.push(Seq(l), Seq(r));
                    }
                }
                TcpOption::TimeStamp { tsval, tsecr } => options.timestamp = Some((tsval, tsecr)),
                TcpOption::Unknown { .. } => {}
            }
            rest = next;
        }
        let hdr = TcpHeader {
            src_port: pkt.src_port(),
            dst_port: pkt.dst_port(),
            seq: Seq(pkt.seq_number().0 as u32),
            ack: Seq(pkt.ack_number().0 as u32),
            flags,
            window: pkt.window_len(),
            options,
        };
        Ok((hdr, hlen))
    }

    /// Bytes [`TcpHeader::emit`] writes: 20 plus options padded to words (SACK blocks beyond
    /// what fits in 40 option bytes are dropped).
    pub fn header_len(&self) -> usize {
        TCP_HEADER_LEN + self.options_len().0
    }

    /// Options length and how many SACK blocks fit.
    fn options_len(&self) -> (usize, usize) {
        let o = &self.options;
        let mut len: usize = 0;
        if o.mss.is_some() {
            len += 4;
        }
        if o.window_scale.is_some() {
            len += 4;
        }
        match (o.sack_permitted, o.timestamp.is_some()) {
            (_, true) => len += 12,
            (true, false) => len += 4,
            (false, false) => {}
        }
        let room = (40 - len).saturating_sub(SACK_OPTION_OVERHEAD) / 8;
        let n = o.sack.as_slice().len().min(room);
        if n > 0 {
            len += SACK_OPTION_OVERHEAD + 8 * n;
        }
        (len, n)
    }

    /// Writes the header into `buf` (at least [`TcpHeader::header_len`] bytes) with a zero
    /// checksum; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let (olen, nsack) = self.options_len();
        let hlen = TCP_HEADER_LEN + olen;
        let buf = &mut buf[..hlen];
        buf[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        buf[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[4..8].copy_from_slice(&self.seq.0.to_be_bytes());
        let ack = if self.flags.has(TcpFlags::ACK) { self.ack.0 } else { 0 };
        buf[8..12].copy_from_slice(&ack.to_be_bytes());
        buf[12] = ((hlen / 4) as u8) << 4;
        buf[13] = self.flags.0;
        buf[14..16].copy_from_slice(&self.window.to_be_bytes());
        buf[16..20].fill(0);
        let o = &self.options;
        let mut p = TCP_HEADER_LEN;
        if let Some(mss) = o.mss {
            buf[p] = 2;
            buf[p + 1] = 4;
            buf[p + 2..p + 4].copy_from_slice(&mss.to_be_bytes());
            p += 4;
        }
        if let Some(ws) = o.window_scale {
            buf[p..p + 4].copy_from_slice(&[1, 3, 3, ws]);
            p += 4;
        }
        match (o.sack_permitted, o.timestamp) {
            (sp, Some((tsval, tsecr))) => {
                if sp {
                    buf[p..p + 2].copy_from_slice(&[4, 2]);
                } else {
                    buf[p..p + 2].copy_from_slice(&[1, 1]);
                }
                buf[p + 2] = 8;
                buf[p + 3] = 10;
                buf[p + 4..p + 8].copy_from_slice(&tsval.to_be_bytes());
                buf[p + 8..p + 12].copy_from_slice(&tsecr.to_be_bytes());
                p += 12;
            }
            (true, None) => {
                buf[p..p + 4].copy_from_slice(&[1, 1, 4, 2]);
                p += 4;
            }
            (false, None) => {}
        }
        if nsack > 0 {
            buf[p..p + 4].copy_from_slice(&[1, 1, 5, (2 + 8 * nsack) as u8]);
            p += 4;
            for &(l, r) in &o.sack.as_slice()[..nsack] {
                buf[p..p + 4].copy_from_slice(&l.0.to_be_bytes());
                buf[p + 4..p + 8].copy_from_slice(&r.0.to_be_bytes());
                p += 8;
            }
        }
        debug_assert_eq!(p, hlen);
        hlen
    }

    /// Sequence space the segment occupies given its payload length (SYN and FIN count one).
    pub fn seq_len(&self, payload: usize) -> usize {
        payload + usize::from(self.flags.has(TcpFlags::SYN)) + usize::from(self.flags.has(TcpFlags::FIN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_sack_blocks_equal_the_same_blocks_pushed() {
        // Found by the tcp_header fuzz target: truncation left the cut blocks in place.
        let mut a = SackBlocks::default();
        for i in 0..4 {
            a.push(Seq(i), Seq(i + 1));
        }
        a.truncate(2);
        let mut b = SackBlocks::default();
        b.push(Seq(0), Seq(1));
        b.push(Seq(1), Seq(2));
        assert_eq!(a, b);
        assert_eq!(a.as_slice().len(), 2);
    }

    fn sample() -> TcpHeader {
        let mut sack = SackBlocks::default();
        sack.push(Seq(100), Seq(200));
        sack.push(Seq(300), Seq(400));
        sack.push(Seq(500), Seq(600));
        TcpHeader {
            src_port: 80,
            dst_port: 40000,
            seq: Seq(0xdead_beef),
            ack: Seq(7),
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 512,
            options: TcpOptions { timestamp: Some((1, 2)), sack, ..Default::default() },
        }
    }

    #[test]
    fn roundtrip_data_segment_with_ts_and_three_sack_blocks() {
        let h = sample();
        let mut buf = [0u8; 60];
        let n = h.emit(&mut buf);
        assert_eq!(n, 20 + 12 + 4 + 24);
        let (p, hl) = TcpHeader::parse(&buf[..n]).unwrap();
        assert_eq!(hl, n);
        assert_eq!(p, h);
    }

    #[test]
    fn roundtrip_syn_options() {
        let h = TcpHeader {
            src_port: 1,
            dst_port: 2,
            seq: Seq(9),
            flags: TcpFlags::SYN,
            window: 65535,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamp: Some((3, 0)),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut buf = [0u8; 60];
        let n = h.emit(&mut buf);
        assert_eq!(n, 40);
        // Cross-check with smoltcp's parser.
        let pkt = TcpPacket::new_checked(&buf[..n]).unwrap();
        let s = pkt.options_summary().unwrap();
        assert_eq!(s.max_segment_size, Some(1460));
        assert_eq!(s.window_scale, Some(7));
        assert!(s.sack_permitted);
        assert_eq!(s.timestamp, Some((3, 0)));
        assert_eq!(TcpHeader::parse(&buf[..n]).unwrap().0, h);
    }

    #[test]
    fn four_sack_blocks_without_timestamps() {
        let mut h = sample();
        h.options.timestamp = None;
        h.options.sack.push(Seq(700), Seq(800));
        let mut buf = [0u8; 60];
        let n = h.emit(&mut buf);
        assert_eq!(n, 20 + 4 + 32);
        // smoltcp keeps three blocks of four.
        let (p, _) = TcpHeader::parse(&buf[..n]).unwrap();
        assert_eq!(p.options.sack.as_slice(), &h.options.sack.as_slice()[..3]);
    }

    #[test]
    fn malformed_headers_are_errors() {
        let h = sample();
        let mut buf = [0u8; 60];
        let n = h.emit(&mut buf);
        // Data offset below 5 words.
        let mut b = buf;
        b[12] = 4 << 4;
        assert_eq!(TcpHeader::parse(&b[..n]), Err(WireError::TcpDataOffset));
        // Data offset beyond the segment.
        let mut b = buf;
        b[12] = 15 << 4;
        assert_eq!(TcpHeader::parse(&b[..40]), Err(WireError::TcpDataOffset));
        // Truncated option: the timestamp claims 10 bytes, 3 remain.
        let mut b = [0u8; 24];
        b[..20].copy_from_slice(&buf[..20]);
        b[12] = 6 << 4;
        b[20..24].copy_from_slice(&[8, 10, 0, 0]);
        assert_eq!(TcpHeader::parse(&b), Err(WireError::TcpOptions));
        // Too short for a header.
        assert!(TcpHeader::parse(&buf[..10]).is_err());
        // SYN+RST.
        let mut b = buf;
        b[13] = 0x06;
        assert_eq!(TcpHeader::parse(&b[..n]), Err(WireError::TcpFlags));
    }
}
