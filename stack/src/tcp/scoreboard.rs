//! The sender's SACK scoreboard (RFC 6675): which bytes above `snd_una` the peer holds.

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
    /// Records a SACK block, ignoring anything outside `(una, max]`.
    pub fn add(&mut self, una: Seq, max: Seq, left: Seq, right: Seq) {
        let left = left.max(una);
        let right = right.min(max);
        if !left.lt(right) {
            return;
        }
        let i = self.ranges.partition_point(|r| r.1.lt(left));
        let mut l = left;
        let mut r = right;
        let mut j = i;
        while j < self.ranges.len() && self.ranges[j].0.le(r) {
            l = l.min(self.ranges[j].0);
            r = r.max(self.ranges[j].1);
            j += 1;
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

    /// Bytes SACKed at or above `seq`.
    pub fn sacked_above(&self, seq: Seq) -> usize {
        self.ranges.iter().filter(|r| r.1.gt(seq)).map(|r| r.1.since(r.0.max(seq)) as usize).sum()
    }

    /// If `seq` lies in a SACKed range, that range's right edge.
    pub fn covering(&self, seq: Seq) -> Option<Seq> {
        self.ranges.iter().find(|r| seq.in_range(r.0, r.1)).map(|r| r.1)
    }

    /// The first un-SACKed hole at or after `from` and below the highest SACKed byte:
    /// `[start, end)`.
    pub fn next_hole(&self, from: Seq) -> Option<(Seq, Seq)> {
        let mut pos = from;
        for r in &self.ranges {
            if r.1.le(pos) {
                continue;
            }
            if pos.lt(r.0) {
                return Some((pos, r.0));
            }
            pos = r.1;
        }
        None
    }

    /// The left edge of the first SACKed range after `seq` (where new data sent from `seq`
    /// must stop), if any.
    pub fn next_sacked_after(&self, seq: Seq) -> Option<Seq> {
        self.ranges.iter().find(|r| r.0.gt(seq)).map(|r| r.0)
    }

    /// Bytes in holes between `from` and the highest SACKed byte.
    pub fn hole_bytes_from(&self, from: Seq) -> usize {
        let Some(high) = self.high() else { return 0 };
        if !from.lt(high) {
            return 0;
        }
        high.since(from) as usize - self.sacked_above(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_holes_and_acks() {
        let mut s = Scoreboard::default();
        let (una, max) = (Seq(1000), Seq(10_000));
        s.add(una, max, Seq(3000), Seq(4000));
        s.add(una, max, Seq(5000), Seq(6000));
        s.add(una, max, Seq(3500), Seq(5000));
        assert_eq!(s.sacked(), 3000);
        assert_eq!(s.next_hole(una), Some((Seq(1000), Seq(3000))));
        assert_eq!(s.next_hole(Seq(3000)), None);
        s.add(una, max, Seq(7000), Seq(8000));
        assert_eq!(s.next_hole(Seq(2000)), Some((Seq(2000), Seq(3000))));
        assert_eq!(s.next_hole(Seq(3000)), Some((Seq(6000), Seq(7000))));
        assert_eq!(s.hole_bytes_from(una), 3000);
        assert_eq!(s.covering(Seq(3200)), Some(Seq(6000)));
        s.ack(Seq(5500));
        assert_eq!(s.sacked(), 1500);
        s.add(una, max, Seq(0), Seq(100)); // below una: ignored
        assert_eq!(s.sacked(), 1500);
    }
}
