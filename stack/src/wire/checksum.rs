//! The Internet checksum (RFC 1071) over a packet held in several fragments.
//!
//! A TCP segment leaves as a header frame plus payload ranges of file blocks; its checksum is
//! summed over all of them in place (a read, never a copy). A fragment that starts at an odd
//! byte offset of the segment contributes its own sum byte-swapped (RFC 1071 section 2(B)),
//! so fragments of any length combine.

use smoltcp::wire::checksum;

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
        let s = checksum::data(data);
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
    fn many_odd_fragments() {
        let data: Vec<u8> = (0..4099u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut c = Checksum::new();
        for chunk in data.chunks(3) {
            c.add(chunk);
        }
        assert_eq!(c.finish(), whole(&data));
    }
}
