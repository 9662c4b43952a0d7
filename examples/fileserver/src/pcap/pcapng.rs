//! The pcapng format (draft-ietf-opsawg-pcapng): the three blocks a capture needs, written
//! little-endian, and a reader for them (tests, and the writer thread's walk over blocks).
//!
//! ```text
//!   Section Header ─ Interface Description (Ethernet, snaplen, ns timestamps) ─ Enhanced Packet ...
//!   block: type u32 │ total length u32 │ body, padded to 4 │ options │ total length u32
//! ```
//!
//! Each Enhanced Packet Block carries the `epb_flags` option with the packet's direction
//! (inbound or outbound), which `tcpdump -r` and `tshark` show.

/// Section Header Block.
pub const SHB: u32 = 0x0A0D_0D0A;
/// Interface Description Block.
pub const IDB: u32 = 1;
/// Enhanced Packet Block.
pub const EPB: u32 = 6;
/// The byte-order magic of a section header.
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// The fixed part of an Enhanced Packet Block: type, length, interface, timestamp (2),
/// captured length, original length, and the trailing length.
const EPB_FIXED: usize = 32;
/// `epb_flags` (8 bytes) and `opt_endofopt` (4 bytes).
const EPB_OPTIONS: usize = 12;

/// Which way a packet went, for `epb_flags` (bits 0-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received by the stack.
    Inbound,
    /// Sent by the stack.
    Outbound,
}

impl Direction {
    fn flags(self) -> u32 {
        match self {
            Direction::Inbound => 1,
            Direction::Outbound => 2,
        }
    }
}

fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// An option: code, length, value padded to 4.
fn put_option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    put_u16(out, code);
    put_u16(out, value.len().min(usize::from(u16::MAX)) as u16);
    out.extend_from_slice(&value[..value.len().min(usize::from(u16::MAX))]);
    out.resize(pad4(out.len()), 0);
}

/// Closes a block begun at `start` (its length field left as 0): the trailing length,
/// and the length at the front.
fn end_block(out: &mut Vec<u8>, start: usize) {
    let len = (out.len() - start + 4) as u32;
    put_u32(out, len);
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
}

/// A Section Header Block (version 1.0, section length unknown) naming the writer.
pub fn section_header(out: &mut Vec<u8>, app: &str) {
    let start = out.len();
    put_u32(out, SHB);
    put_u32(out, 0);
    put_u32(out, BYTE_ORDER_MAGIC);
    put_u16(out, 1);
    put_u16(out, 0);
    out.extend_from_slice(&(-1i64).to_le_bytes());
    put_option(out, 4, app.as_bytes()); // shb_userappl
    put_u32(out, 0); // opt_endofopt
    end_block(out, start);
}

/// An Interface Description Block: Ethernet, `snaplen`, nanosecond timestamps, `name`.
pub fn interface(out: &mut Vec<u8>, snaplen: u32, name: &str) {
    let start = out.len();
    put_u32(out, IDB);
    put_u32(out, 0);
    put_u16(out, LINKTYPE_ETHERNET);
    put_u16(out, 0);
    put_u32(out, snaplen);
    put_option(out, 2, name.as_bytes()); // if_name
    put_option(out, 9, &[9]); // if_tsresol: 10^-9 s
    put_u32(out, 0);
    end_block(out, start);
}

/// The bytes an Enhanced Packet Block of `captured` bytes takes.
pub fn packet_len(captured: usize) -> usize {
    EPB_FIXED + pad4(captured) + EPB_OPTIONS
}

/// An Enhanced Packet Block on interface 0: the packet is the concatenation of `frags`
/// (`orig` bytes in all), of which the first `snaplen` are kept; `ts_ns` is nanoseconds
/// since the Unix epoch. Returns the bytes captured.
pub fn packet<'a, I>(out: &mut Vec<u8>, ts_ns: u64, dir: Direction, frags: I, snaplen: usize) -> usize
where
    I: Iterator<Item = &'a [u8]> + Clone,
{
    let orig: usize = frags.clone().map(<[u8]>::len).sum();
    let cap = orig.min(snaplen);
    let start = out.len();
    out.reserve(packet_len(cap));
    put_u32(out, EPB);
    put_u32(out, 0);
    put_u32(out, 0);
    put_u32(out, (ts_ns >> 32) as u32);
    put_u32(out, ts_ns as u32);
    put_u32(out, cap as u32);
    put_u32(out, u32::try_from(orig).unwrap_or(u32::MAX));
    let mut left = cap;
    for f in frags {
        let n = f.len().min(left);
        out.extend_from_slice(&f[..n]);
        left -= n;
        if left == 0 {
            break;
        }
    }
    out.resize(pad4(out.len()), 0);
    put_option(out, 2, &dir.flags().to_le_bytes()); // epb_flags
    put_u32(out, 0);
    end_block(out, start);
    cap
}

/// One block as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block<'a> {
    pub kind: u32,
    /// The body between the length fields.
    pub body: &'a [u8],
}

/// An Enhanced Packet Block's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub interface: u32,
    pub ts_ns: u64,
    pub orig_len: u32,
    pub data: &'a [u8],
    /// `epb_flags`, if present.
    pub flags: Option<u32>,
}

impl Packet<'_> {
    /// The direction from `epb_flags`.
    pub fn direction(&self) -> Option<Direction> {
        match self.flags? & 3 {
            1 => Some(Direction::Inbound),
            2 => Some(Direction::Outbound),
            _ => None,
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The length of the block at the start of `buf`, checked (a multiple of 4, at least 12,
/// within `buf`, the same at both ends).
pub fn block_len(buf: &[u8]) -> Result<usize, String> {
    let len = u32_at(buf, 4).ok_or("truncated block header")? as usize;
    if len < 12 || !len.is_multiple_of(4) {
        return Err(format!("block length {len} is not a multiple of 4 of at least 12"));
    }
    let tail = u32_at(buf, len - 4).ok_or_else(|| format!("block of {len} bytes runs past the end"))?;
    if tail as usize != len {
        return Err(format!("block length {len} at the front, {tail} at the back"));
    }
    Ok(len)
}

/// Every block of `buf`, each checked with [`block_len`]; a section must come first.
pub fn blocks(buf: &[u8]) -> Result<Vec<Block<'_>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let len = block_len(&buf[at..]).map_err(|e| format!("at offset {at}: {e}"))?;
        let kind = u32_at(buf, at).ok_or("truncated")?;
        if out.is_empty() && kind != SHB {
            return Err(format!("the first block is of type {kind:#x}, not a section header"));
        }
        if kind == SHB && u32_at(buf, at + 8) != Some(BYTE_ORDER_MAGIC) {
            return Err(format!("section header at {at} without the byte-order magic"));
        }
        out.push(Block { kind, body: &buf[at + 8..at + len - 4] });
        at += len;
    }
    Ok(out)
}

/// An Enhanced Packet Block's fields from its body; `None` if it is malformed.
pub fn parse_packet(body: &[u8]) -> Option<Packet<'_>> {
    let cap = u32_at(body, 12)? as usize;
    let data = body.get(20..20 + cap)?;
    let ts_ns = (u64::from(u32_at(body, 4)?) << 32) | u64::from(u32_at(body, 8)?);
    let mut flags = None;
    let mut at = 20 + pad4(cap);
    while at + 4 <= body.len() {
        let code = u16::from_le_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_le_bytes([body[at + 2], body[at + 3]]));
        if code == 0 {
            break;
        }
        let value = body.get(at + 4..at + 4 + len)?;
        if code == 2 && len == 4 {
            flags = Some(u32::from_le_bytes(value.try_into().ok()?));
        }
        at += 4 + pad4(len);
    }
    Some(Packet { interface: u32_at(body, 0)?, ts_ns, orig_len: u32_at(body, 16)?, data, flags })
}

/// The timestamp of the Enhanced Packet Block at the start of `block` (`None` for another
/// block type).
pub fn packet_time(block: &[u8]) -> Option<u64> {
    if u32_at(block, 0)? != EPB {
        return None;
    }
    Some((u64::from(u32_at(block, 12)?) << 32) | u64::from(u32_at(block, 16)?))
}

/// A section header and the one interface: what every file and every `/pcap` answer
/// starts with.
pub fn preamble(snaplen: u32, iface: &str) -> Vec<u8> {
    let mut out = Vec::new();
    section_header(&mut out, concat!("fileserver ", env!("CARGO_PKG_VERSION")));
    interface(&mut out, snaplen, iface);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_read_back_with_lengths_alignment_and_direction() {
        let mut out = preamble(256, "veth0");
        let frame: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        // A packet in two fragments, cut at the snap length; one shorter than it, of an odd size.
        assert_eq!(
            packet(&mut out, 0x1_0000_0002, Direction::Outbound, [&frame[..66], &frame[66..]].into_iter(), 256),
            256
        );
        assert_eq!(packet(&mut out, 7, Direction::Inbound, [&frame[..61]].into_iter(), 256), 61);
        assert_eq!(packet(&mut out, 8, Direction::Inbound, std::iter::empty(), 256), 0);
        assert_eq!(out.len() % 4, 0);
        let b = blocks(&out).unwrap();
        assert_eq!(b.iter().map(|b| b.kind).collect::<Vec<_>>(), [SHB, IDB, EPB, EPB, EPB]);
        // The section header: magic, version 1.0, unknown length.
        assert_eq!(u32_at(b[0].body, 0), Some(BYTE_ORDER_MAGIC));
        assert_eq!(&b[0].body[4..8], &[1, 0, 0, 0]);
        assert_eq!(&b[0].body[8..16], &[0xff; 8]);
        // The interface: Ethernet, the snap length, nanoseconds.
        assert_eq!(&b[1].body[0..4], &[1, 0, 0, 0]);
        assert_eq!(u32_at(b[1].body, 4), Some(256));
        assert!(b[1].body.windows(5).any(|w| w == [9, 0, 1, 0, 9]), "if_tsresol 9");
        let p = parse_packet(b[2].body).unwrap();
        assert_eq!((p.interface, p.ts_ns, p.orig_len, p.data), (0, 0x1_0000_0002, 300, &frame[..256]));
        assert_eq!(p.direction(), Some(Direction::Outbound));
        let p = parse_packet(b[3].body).unwrap();
        assert_eq!((p.orig_len, p.data, p.direction()), (61, &frame[..61], Some(Direction::Inbound)));
        assert_eq!(b[3].body.len() + 12, packet_len(61), "61 bytes padded to 64");
        assert_eq!(packet_len(61), 32 + 64 + 12);
        assert_eq!(packet_time(&out[out.len() - packet_len(0)..]), Some(8));
        assert_eq!(packet_time(&out), None, "a section header has no time");
    }

    #[test]
    fn broken_lengths_are_refused() {
        let mut out = preamble(64, "x");
        packet(&mut out, 1, Direction::Inbound, [&[1u8, 2, 3][..]].into_iter(), 64);
        assert!(blocks(&out).is_ok());
        let n = out.len();
        assert!(blocks(&out[..n - 1]).is_err(), "truncated");
        let mut bad = out.clone();
        bad[n - 4] ^= 4; // the trailing length of the packet
        assert!(blocks(&bad).unwrap_err().contains("at the back"));
        let mut bad = out.clone();
        bad[4] = 13; // the section header's length: not a multiple of 4
        assert!(blocks(&bad).is_err());
        let first_packet = blocks(&out).unwrap()[..2].iter().map(|b| b.body.len() + 12).sum::<usize>();
        assert!(blocks(&out[first_packet..]).unwrap_err().contains("not a section header"));
    }
}
