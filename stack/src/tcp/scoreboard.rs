//! The sender's SACK scoreboard (RFC 6675): which bytes above `snd_una` the peer holds,
//! as ranges, so a block the receiver repeats in every ACK costs a range walk and only
//! what it newly covers reaches the per-segment retransmission queue.

use crate::wire::Seq;

/// Sorted, disjoint SACKed ranges `[left, right)` above the cumulative ACK.
#[derive(Debug, Default, Clone)]
pub struct Scoreboard {
    ranges: Vec<(Seq, Seq)>,
    sacked: usize,
}

/// At most this many disjoint ranges are tracked (more arrive only under heavy reordering;
/// the lowest are kept since they drive retransmission).
const MAX_RANGES: usize = 64;

impl Scoreboard {
    /// An empty scoreboard.
    pub const fn new() -> Self {
        Scoreboard { ranges: Vec::new(), sacked: 0 }
    }

    /// Records a SACK block, ignoring anything outside `(una, max]`, and calls `new` with
    /// each piece of it that was not SACKed before.
    pub fn add(&mut self, una: Seq, max: Seq, left: Seq, right: Seq, new: &mut dyn FnMut(Seq, Seq)) {
        let left = left.max(una);
        let right = right.min(max);
        if !left.lt(right) {
            return;
        }
        let i = self.ranges.partition_point(|r| r.1.lt(left));
        let mut l = left;
        let mut r = right;
        let mut j = i;
        let mut pos = left;
        while j < self.ranges.len() && self.ranges[j].0.le(r) {
            let (a, b) = self.ranges[j];
            if pos.lt(a.min(right)) {
                new(pos, a.min(right));
            }
            pos = pos.max(b);
            l = l.min(a);
            r = r.max(b);
            j += 1;
        }
        if pos.lt(right) {
            new(pos, right);
        }
        self.ranges.splice(i..j, [(l, r)]);
        if self.ranges.len() > MAX_RANGES {
            self.ranges.truncate(MAX_RANGES);
        }
        self.recount();
    }

    /// Forgets everything below the new cumulative ACK.
    pub fn ack(&mut self, una: Seq) {
        self.ranges.retain(|r| r.1.gt(una));
        if let Some(first) = self.ranges.first_mut() {
            first.0 = first.0.max(una);
        }
        self.recount();
    }

    fn recount(&mut self) {
        self.sacked = self.ranges.iter().map(|r| r.1.since(r.0) as usize).sum();
    }

    /// Bytes of heap the scoreboard holds (by capacity).
    pub fn heap_bytes(&self) -> usize {
        self.ranges.capacity() * size_of::<(Seq, Seq)>()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.sacked = 0;
    }

    /// Bytes SACKed.
    pub fn sacked(&self) -> usize {
        self.sacked
    }

    /// Whether nothing is SACKed.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The highest SACKed sequence number (right edge), if any.
    pub fn high(&self) -> Option<Seq> {
        self.ranges.last().map(|r| r.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_holes_and_acks() {
        let mut s = Scoreboard::default();
        let (una, max) = (Seq(1000), Seq(10_000));
        let mut new = Vec::new();
        let mut add = |s: &mut Scoreboard, l, r| {
            new.clear();
            s.add(una, max, Seq(l), Seq(r), &mut |a, b| new.push((a.0, b.0)));
            new.clone()
        };
        assert_eq!(add(&mut s, 3000, 4000), [(3000, 4000)]);
        assert_eq!(add(&mut s, 5000, 6000), [(5000, 6000)]);
        assert_eq!(add(&mut s, 3500, 5000), [(4000, 5000)]);
        assert_eq!(add(&mut s, 2000, 6500), [(2000, 3000), (6000, 6500)]);
        assert_eq!(add(&mut s, 3000, 6500), []);
        s.ack(Seq(3000));
        assert_eq!(s.sacked(), 3500);
        s.clear();
        s.add(una, max, Seq(3000), Seq(4000), &mut |_, _| {});
        s.add(una, max, Seq(5000), Seq(6000), &mut |_, _| {});
        s.add(una, max, Seq(3500), Seq(5000), &mut |_, _| {});
        assert_eq!(s.sacked(), 3000);
        s.add(una, max, Seq(7000), Seq(8000), &mut |_, _| {});
        assert_eq!(s.high(), Some(Seq(8000)));
        s.ack(Seq(5500));
        assert_eq!(s.sacked(), 1500);
        s.add(una, max, Seq(0), Seq(100), &mut |_, _| panic!("below una")); // ignored
        assert_eq!(s.sacked(), 1500);
    }
}
