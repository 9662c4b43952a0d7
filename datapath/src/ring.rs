//! Ring index arithmetic, as the kernel's AF_XDP rings do it: producer and consumer are
//! free-running `u32`s that wrap, a slot is `index & mask`, and `producer - consumer`
//! (wrapping) is the fill level. Valid while fewer than 2^31 entries are outstanding.
//! (The TX ring's tests put a ring on heap memory laid out as the kernel's: see
//! `txring.rs`.)

/// Producer and consumer positions of a ring of `size` (a power of two) entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    producer: u32,
    consumer: u32,
    mask: u32,
}

impl Cursor {
    /// A ring of `size` entries starting at `start` (tests start near `u32::MAX`).
    ///
    /// # Panics
    /// If `size` is not a power of two in `1..=2^31`.
    pub fn new(size: u32, start: u32) -> Cursor {
        assert!(size.is_power_of_two() && size <= 1 << 31, "ring size must be a power of two");
        Cursor { producer: start, consumer: start, mask: size - 1 }
    }

    /// Entries in the ring.
    pub fn size(&self) -> u32 {
        self.mask + 1
    }

    /// Entries produced and not yet consumed.
    pub fn len(&self) -> u32 {
        self.producer.wrapping_sub(self.consumer)
    }

    /// Whether nothing is outstanding.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries that can be produced now.
    pub fn free(&self) -> u32 {
        self.size() - self.len()
    }

    /// The array slot of free-running index `idx`.
    pub fn slot(&self, idx: u32) -> usize {
        (idx & self.mask) as usize
    }

    /// Reserves up to `n` entries for producing: returns the first index and the count
    /// (0 when full: a full ring is a count, not an error).
    pub fn produce(&mut self, n: u32) -> (u32, u32) {
        let n = n.min(self.free());
        let start = self.producer;
        self.producer = self.producer.wrapping_add(n);
        (start, n)
    }

    /// Takes up to `n` entries for consuming: the first index and the count.
    pub fn consume(&mut self, n: u32) -> (u32, u32) {
        let n = n.min(self.len());
        let start = self.consumer;
        self.consumer = self.consumer.wrapping_add(n);
        (start, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_wraps_past_u32_max() {
        let mut c = Cursor::new(8, u32::MAX - 2);
        assert_eq!(c.produce(5), (u32::MAX - 2, 5));
        assert_eq!(c.len(), 5);
        assert_eq!(c.free(), 3);
        // Indices u32::MAX-2 .. 1 map to slots 5, 6, 7, 0, 1.
        let slots: Vec<usize> = (0..5).map(|i| c.slot((u32::MAX - 2).wrapping_add(i))).collect();
        assert_eq!(slots, [5, 6, 7, 0, 1]);
        assert_eq!(c.produce(10), (2, 3), "only the free entries are handed out");
        assert_eq!(c.produce(1).1, 0, "a full ring is a count of zero");
        assert_eq!(c.consume(6), (u32::MAX - 2, 6));
        assert_eq!(c.len(), 2);
        assert_eq!(c.consume(9), (3, 2));
        assert!(c.is_empty());
    }
}
