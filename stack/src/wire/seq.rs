//! TCP sequence numbers: 32-bit, compared modulo 2^32 (RFC 9293 section 3.4).

use core::fmt;

/// A sequence number. Comparisons are circular: `a.lt(b)` when `b` is less than 2^31 ahead.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u32);

impl Seq {
    /// `self + n`.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }

    /// `self + n` for a length that fits the sequence space.
    pub fn add_len(self, n: usize) -> Seq {
        self.add(n as u32)
    }

    /// `self - n`.
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, n: u32) -> Seq {
        Seq(self.0.wrapping_sub(n))
    }

    /// The distance from `from` up to `self` (meaningful when `from <= self`).
    pub fn since(self, from: Seq) -> u32 {
        self.0.wrapping_sub(from.0)
    }

    fn diff(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// `self < other`, circularly.
    pub fn lt(self, other: Seq) -> bool {
        self.diff(other) < 0
    }

    /// `self <= other`, circularly.
    pub fn le(self, other: Seq) -> bool {
        self.diff(other) <= 0
    }

    /// `self > other`, circularly.
    pub fn gt(self, other: Seq) -> bool {
        self.diff(other) > 0
    }

    /// `self >= other`, circularly.
    pub fn ge(self, other: Seq) -> bool {
        self.diff(other) >= 0
    }

    /// The later of two.
    pub fn max(self, other: Seq) -> Seq {
        if self.ge(other) {
            self
        } else {
            other
        }
    }

    /// The earlier of two.
    pub fn min(self, other: Seq) -> Seq {
        if self.le(other) {
            self
        } else {
            other
        }
    }

    /// `lo <= self < hi`.
    pub fn in_range(self, lo: Seq, hi: Seq) -> bool {
        self.ge(lo) && self.lt(hi)
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Seq;

    #[test]
    fn wraps() {
        let a = Seq(u32::MAX - 10);
        let b = a.add(20);
        assert!(a.lt(b) && b.gt(a) && a.le(a) && b.ge(b));
        assert_eq!(b.since(a), 20);
        assert_eq!(a.max(b), b);
        assert!(Seq(5).in_range(a, b));
    }
}
