//! A reproducible message stream for tests and examples: message `i` has a size from a
//! fixed distribution (mostly small, some up to 64 KiB, including 1 B and 64 KiB) and
//! content that both ends compute from `(seed, i)`. The first 8 bytes (when there are 8)
//! carry `i`, so a message out of sequence is told apart from one with bad content.

use super::{Msg, MsgBuf};

/// The stream's parameters.
#[derive(Clone, Copy, Debug)]
pub struct Pattern {
    /// Seed shared by both ends.
    pub seed: u64,
    /// Largest size the distribution yields.
    pub max: usize,
}

/// How a received message differs from the expected one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// Another length.
    #[error("message #{index}: {got} bytes, expected {want}")]
    Length {
        /// Expected index.
        index: u64,
        /// Received length.
        got: usize,
        /// Expected length.
        want: usize,
    },
    /// Another sequence number in the first 8 bytes.
    #[error("message #{index}: carries sequence number {got} (out of order, lost or duplicated)")]
    Sequence {
        /// Expected index.
        index: u64,
        /// What it carries.
        got: u64,
    },
    /// Same length and sequence, other bytes.
    #[error("message #{index}: content hash {got:#018x}, expected {want:#018x}")]
    Content {
        /// Expected index.
        index: u64,
        /// Hash of what arrived.
        got: u64,
        /// Hash of what was sent.
        want: u64,
    },
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a, 64 bit, continued over runs.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

impl Pattern {
    /// The stream for `seed`, sizes capped at `max`.
    pub fn new(seed: u64, max: usize) -> Self {
        Pattern { seed, max }
    }

    /// Size of message `i`: 64 KiB every 1000th, 1 B next to it, up to 16 KiB every 50th,
    /// otherwise 1..=1024.
    pub fn size(&self, i: u64) -> usize {
        let h = splitmix(self.seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let s = match (i % 1000, i % 50) {
            (0, _) => 65_536,
            (1, _) => 1,
            (_, 7) => 1 + (h % 16_384) as usize,
            _ => 1 + (h % 1024) as usize,
        };
        s.min(self.max).max(1)
    }

    /// Byte `p` of message `i`.
    fn word(&self, i: u64, w: u64) -> [u8; 8] {
        if w == 0 {
            return i.to_le_bytes();
        }
        splitmix(self.seed.rotate_left(17) ^ i.wrapping_mul(0x9e37_79b9) ^ w.wrapping_mul(0xff51_afd7_ed55_8ccd))
            .to_le_bytes()
    }

    /// Runs `f` over the expected bytes of message `i`, as runs matching `lens`.
    fn expected(&self, i: u64, len: usize, mut f: impl FnMut(&[u8])) {
        let mut p = 0;
        while p < len {
            let w = self.word(i, (p / 8) as u64);
            let end = (p / 8 * 8 + 8).min(len);
            f(&w[p % 8..p % 8 + (end - p)]);
            p = end;
        }
    }

    /// Writes message `i`'s content into `m` (whose length should be `size(i)`).
    pub fn fill(&self, i: u64, m: &mut MsgBuf) {
        let mut p = 0usize;
        for chunk in m.chunks_mut() {
            for b in chunk.iter_mut() {
                *b = self.word(i, (p / 8) as u64)[p % 8];
                p += 1;
            }
        }
    }

    /// Hash of message `i`'s content.
    pub fn hash(&self, i: u64) -> u64 {
        let mut h = FNV_START;
        self.expected(i, self.size(i), |b| h = fnv(h, b));
        h
    }

    /// Checks that `m` is message `i`: length, sequence number and content hash.
    pub fn check(&self, i: u64, m: &Msg) -> Result<(), Mismatch> {
        let want = self.size(i);
        if m.len() != want {
            return Err(Mismatch::Length { index: i, got: m.len(), want });
        }
        let mut head = [0u8; 8];
        let mut h = FNV_START;
        let mut p = 0;
        for c in m.chunks() {
            for &b in c.iter().take(8usize.saturating_sub(p)) {
                head[p] = b;
                p += 1;
            }
            h = fnv(h, c);
        }
        if want >= 8 && u64::from_le_bytes(head) != i {
            return Err(Mismatch::Sequence { index: i, got: u64::from_le_bytes(head) });
        }
        let expect = self.hash(i);
        if h != expect {
            return Err(Mismatch::Content { index: i, got: h, want: expect });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_cover_the_extremes_and_stay_small_on_average() {
        let p = Pattern::new(1, 65_536);
        assert_eq!(p.size(0), 65_536);
        assert_eq!(p.size(1), 1);
        let total: usize = (0..100_000).map(|i| p.size(i)).sum();
        assert!(total < 100 << 20, "{total} bytes per 100k messages");
        assert!((0..100_000).all(|i| (1..=65_536).contains(&p.size(i))));
    }

    #[test]
    fn expected_runs_match_word_bytes() {
        let p = Pattern::new(3, 65_536);
        let mut v = Vec::new();
        p.expected(42, 21, |b| v.extend_from_slice(b));
        assert_eq!(v.len(), 21);
        assert_eq!(&v[..8], &42u64.to_le_bytes());
        assert_ne!(p.hash(42), p.hash(43));
    }
}
