//! The Internet checksum (RFC 1071) over a packet held in several fragments.
//!
//! A TCP segment leaves as a header frame plus payload ranges of file blocks; its checksum is
//! summed over all of them in place (a read, never a copy). A fragment that starts at an odd
//! byte offset of the segment contributes its own sum byte-swapped (RFC 1071 section 2(B)),
//! so fragments of any length combine.
//!
//! A device that offers to finish checksums (Linux `CHECKSUM_PARTIAL`, AF_XDP TX metadata)
//! gets a [`PartialChecksum`]: the stack writes only the pseudo-header sum into the field
//! and reads no payload; [`finish_partial`] is what the device then does, for devices that
//! cannot and for tests.

use smoltcp::wire::checksum;
use umem::BufSlice;

/// A running one's-complement sum over consecutive fragments of one packet.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checksum {
    sum: u32,
    odd: bool,
}

impl Checksum {
    /// An empty sum.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts from a partial sum such as a pseudo-header's.
    pub fn with_sum(sum: u16) -> Self {
        Checksum { sum: u32::from(sum), odd: false }
    }

    /// Adds the next fragment.
    pub fn add(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let s = sum(data);
        let s = if self.odd { s.swap_bytes() } else { s };
        self.sum += u32::from(s);
        self.odd ^= data.len() % 2 == 1;
    }

    /// The folded sum (not complemented).
    pub fn sum(&self) -> u16 {
        checksum::combine(&[(self.sum >> 16) as u16, self.sum as u16])
    }

    /// The value to write into a checksum field.
    pub fn finish(&self) -> u16 {
        !self.sum()
    }
}

/// The folded one's-complement sum of `data` in network byte order: what smoltcp's
/// `checksum::data` returns, eight bytes per add instead of two. Native-endian 64-bit
/// words are summed into a 128-bit accumulator (an add and an add-with-carry each), and
/// the carries fold back at the end (RFC 1071 section 4.1: the sum may be taken in wider
/// words and folded).
fn sum(data: &[u8]) -> u16 {
    let (words, mut tail) = data.as_chunks::<8>();
    let mut acc: u128 = 0;
    for w in words {
        acc += u128::from(u64::from_ne_bytes(*w));
    }
    if let [a, b, c, d, more @ ..] = tail {
        acc += u128::from(u32::from_ne_bytes([*a, *b, *c, *d]));
        tail = more;
    }
    if let [a, b, more @ ..] = tail {
        acc += u128::from(u16::from_ne_bytes([*a, *b]));
        tail = more;
    }
    if let [a] = tail {
        acc += u128::from(u16::from_ne_bytes([*a, 0]));
    }
    let mut s = (acc & u128::from(u64::MAX)) + (acc >> 64);
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    u16::to_be(s as u16)
}

/// Where a device finishes a partial transport checksum: it sums the packet from `start`
/// to its end, over every fragment, and stores the complement at `start + offset`. The
/// field holds the pseudo-header sum (not complemented) until then.
#[doc(alias = "CHECKSUM_PARTIAL")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialChecksum {
    /// Offset of the transport header from the packet's first byte (`csum_start`).
    pub start: u16,
    /// Offset of the checksum field from `start` (`csum_offset`: 16 for TCP).
    pub offset: u16,
}

/// Finishes a partial checksum the way a NIC does: sums `frags` from `csum.start` to the
/// end and writes the complement into the field, which must lie in `frags[0]`. False (and
/// nothing written) if it does not, or if `frags[0]` shares its frame.
pub fn finish_partial(frags: &mut [BufSlice], csum: PartialChecksum) -> bool {
    let (start, field) = (usize::from(csum.start), usize::from(csum.start) + usize::from(csum.offset));
    let Some((head, rest)) = frags.split_first_mut() else { return false };
    if field + 2 > head.len() {
        return false;
    }
    let mut c = Checksum::new();
    c.add(&head.as_bytes()[start..]);
    for f in rest.iter() {
        c.add(f.as_bytes());
    }
    let Some(bytes) = head.get_mut() else { return false };
    bytes[field..field + 2].copy_from_slice(&c.finish().to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(data: &[u8]) -> u16 {
        !checksum::data(data)
    }

    #[test]
    fn fragments_match_contiguous_sum_for_every_split() {
        let data: Vec<u8> = (0..257u32).map(|i| (i.wrapping_mul(131) >> 1) as u8).collect();
        let want = whole(&data);
        for a in 0..data.len() {
            for b in [a, a + 1, a + 7, data.len()] {
                let b = b.min(data.len());
                let mut c = Checksum::new();
                c.add(&data[..a]);
                c.add(&data[a..b]);
                c.add(&data[b..]);
                assert_eq!(c.finish(), want, "split at {a}/{b}");
            }
        }
    }

    #[test]
    fn the_wide_sum_equals_smoltcps_for_every_length_and_pattern() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut random = vec![0u8; 4200];
        for b in &mut random {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        for data in [random, vec![0xff; 4200], vec![0; 4200], vec![0x80; 4200]] {
            for len in (0..200).chain([1459, 1460, 1461, 4095, 4096, 4097, 4199, 4200]) {
                for start in [0, 1, 3] {
                    let d = &data[start.min(len)..len];
                    assert_eq!(sum(d), checksum::data(d), "len {len} from {start}");
                }
            }
        }
        // 64 KiB of 0xff: many carries, still folded right.
        let big = vec![0xffu8; 65536 + 3];
        assert_eq!(sum(&big), checksum::data(&big));
    }

    #[test]
    fn many_odd_fragments() {
        let data: Vec<u8> = (0..4099u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut c = Checksum::new();
        for chunk in data.chunks(3) {
            c.add(chunk);
        }
        assert_eq!(c.finish(), whole(&data));
    }
}
