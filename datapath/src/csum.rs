//! The Internet checksum (RFC 1071), incrementally over several byte runs (fragments of one
//! packet may have odd lengths). Computed in software because AF_XDP TX metadata (checksum
//! offload) is not available through xdpilone yet; it reads the payload, never copies it.

/// A running one's-complement sum.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checksum {
    sum: u64,
    /// An odd byte carried over from the previous run, to pair with the next one.
    odd: Option<u8>,
}

impl Checksum {
    /// An empty sum.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes, continuing the 16-bit word alignment of what came before.
    pub fn add(&mut self, mut bytes: &[u8]) {
        if let Some(hi) = self.odd.take() {
            let Some((&lo, rest)) = bytes.split_first() else {
                self.odd = Some(hi);
                return;
            };
            self.sum += u64::from(u16::from_be_bytes([hi, lo]));
            bytes = rest;
        }
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let v = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            // Fold the 64-bit word as four 16-bit words, keeping carries.
            let (s, carry) = self.sum.overflowing_add(v);
            self.sum = s + u64::from(carry);
        }
        let mut words = chunks.remainder().chunks_exact(2);
        for w in &mut words {
            self.sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [b] = words.remainder() {
            self.odd = Some(*b);
        }
    }

    /// Adds one 16-bit word.
    pub fn add_u16(&mut self, v: u16) {
        self.add(&v.to_be_bytes());
    }

    /// The checksum: the complement of the folded sum.
    pub fn finish(mut self) -> u16 {
        if let Some(hi) = self.odd.take() {
            self.sum += u64::from(u16::from_be_bytes([hi, 0]));
        }
        let mut s = self.sum;
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::Checksum;

    fn reference(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], 0]) };
            s += u32::from(w);
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is 0xddf2 (checksum 0x220d).
        let mut c = Checksum::new();
        c.add(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(c.finish(), !0xddf2);
    }

    #[test]
    fn split_runs_match_one_run() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = reference(&data);
        for cut in [0, 1, 2, 3, 7, 8, 9, 500, 1000, 1001] {
            for cut2 in [cut, (cut + 5).min(1001)] {
                let mut c = Checksum::new();
                c.add(&data[..cut]);
                c.add(&data[cut..cut2]);
                c.add(&data[cut2..]);
                assert_eq!(c.finish(), whole, "cuts at {cut} and {cut2}");
            }
        }
    }
}
