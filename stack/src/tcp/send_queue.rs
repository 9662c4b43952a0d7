//! The send queue: byte ranges of pool frames and file blocks, held by reference.
//!
//! The application appends [`BufSlice`]s; segments are cut out of them as more slices
//! sharing the same slots; acknowledged bytes are dropped from the front, and a slot's
//! reference goes with the last of its bytes. Nothing here ever copies a payload byte.

use std::cell::Cell;
use std::collections::VecDeque;

use umem::BufSlice;

/// Unacknowledged and unsent data, addressed by stream offset (0 = first byte ever queued).
#[derive(Debug, Default)]
pub struct SendQueue {
    /// `(stream offset of the slice's first byte, slice)`, contiguous, oldest first. The
    /// first one starts at the first unacknowledged byte ([`SendQueue::head`]).
    slices: VecDeque<(u64, BufSlice)>,
    /// Stream offset one past the last byte queued.
    tail: u64,
    /// Slices dropped from the front so far (wrapping): `slices[i]` is slice number
    /// `popped + i`.
    popped: u32,
    /// The number of the slice the last [`gather`](Self::gather) ended in. Sending moves
    /// forward, so the next one almost always starts there or in the slice after, and
    /// needs no search.
    hint: Cell<u32>,
}

impl SendQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of heap the queue holds (its ring of slices, by capacity).
    pub fn heap_bytes(&self) -> usize {
        self.slices.capacity() * size_of::<(u64, BufSlice)>()
    }

    /// Bytes queued (unacknowledged, sent or not).
    pub fn len(&self) -> usize {
        (self.tail - self.head()) as usize
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    /// Stream offset of the first queued byte.
    pub fn head(&self) -> u64 {
        self.slices.front().map_or(self.tail, |(start, _)| *start)
    }

    /// Stream offset one past the last queued byte.
    pub fn tail(&self) -> u64 {
        self.tail
    }

    /// Appends a range; an empty one is ignored.
    pub fn push(&mut self, slice: BufSlice) {
        if slice.is_empty() {
            return;
        }
        let len = slice.len() as u64;
        self.slices.push_back((self.tail, slice));
        self.tail += len;
    }

    /// Drops bytes before stream offset `upto` (acknowledged), releasing every slot whose
    /// bytes are all gone.
    pub fn ack_to(&mut self, upto: u64) {
        let upto = upto.min(self.tail);
        while let Some((start, s)) = self.slices.front_mut() {
            let end = *start + s.len() as u64;
            if end <= upto {
                self.slices.pop_front();
                self.popped = self.popped.wrapping_add(1);
            } else {
                if *start < upto {
                    s.advance((upto - *start) as usize);
                    *start = upto;
                }
                break;
            }
        }
    }

    /// Appends to `out` slices covering up to `len` bytes from stream offset `at`, using at
    /// most `max_frags` slices; returns the bytes covered (short at the queue's end or when
    /// the fragment limit is reached).
    pub fn gather(&self, at: u64, len: usize, max_frags: usize, out: &mut Vec<BufSlice>) -> usize {
        if at < self.head() || at >= self.tail || len == 0 {
            return 0;
        }
        // The slice holding `at`: where the last gather ended, the one after, or searched.
        let holds = |i: usize| self.slices.get(i).is_some_and(|(s, b)| *s <= at && at < *s + b.len() as u64);
        let h = self.hint.get().wrapping_sub(self.popped) as usize;
        let mut i = match (holds(h), holds(h + 1)) {
            (true, _) => h,
            (false, true) => h + 1,
            // The last slice starting at or before `at`.
            (false, false) => self.slices.partition_point(|(start, _)| *start <= at) - 1,
        };
        let mut pos = at;
        let end = (at + len as u64).min(self.tail);
        let mut n = 0;
        while pos < end && n < max_frags {
            let Some((start, s)) = self.slices.get(i) else { break };
            let off = (pos - start) as usize;
            let take = (s.len() - off).min((end - pos) as usize);
            if let Some(part) = s.slice(off..off + take) {
                out.push(part);
            }
            pos += take as u64;
            n += 1;
            self.hint.set(self.popped.wrapping_add(i as u32));
            i += 1;
        }
        (pos - at) as usize
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use umem::{HugePages, Pool, PoolConfig};

    pub(crate) fn pool() -> Pool {
        Pool::new(&PoolConfig {
            frame_size: 4096,
            frames: 64,
            block_size: 65536,
            blocks: 4,
            hugepages: HugePages::Off,
            lock: false,
        })
        .unwrap()
    }

    #[test]
    fn gather_and_ack_release_slots() {
        let p = pool();
        let mut q = SendQueue::new();
        for i in 0..3u8 {
            let mut b = p.alloc_frame().unwrap();
            b.get_mut().unwrap().fill(i);
            q.push(BufSlice::new(b, 100..1100).unwrap());
        }
        assert_eq!(q.len(), 3000);
        assert_eq!(p.stats().frames_free, 61);
        let mut out = Vec::new();
        assert_eq!(q.gather(900, 1200, 8, &mut out), 1200);
        assert_eq!(out.iter().map(BufSlice::len).collect::<Vec<_>>(), [100, 1000, 100]);
        assert_eq!(out[1].as_bytes()[0], 1);
        assert_eq!(out[2].as_bytes()[0], 2);
        out.clear();
        assert_eq!(q.gather(900, 1200, 2, &mut out), 1100);
        out.clear();
        q.ack_to(1500);
        assert_eq!(p.stats().frames_free, 62, "first frame released when fully acked");
        assert_eq!(q.gather(1500, 10_000, 8, &mut out), 1500);
        assert_eq!(out[0].len(), 500);
        out.clear();
        // Gathers that follow each other, and jumps back (a retransmission), after the
        // front moved: each finds its bytes.
        let mut q2 = SendQueue::new();
        for i in 0..6u8 {
            let mut b = p.alloc_frame().unwrap();
            b.get_mut().unwrap()[..100].fill(i);
            q2.push(BufSlice::new(b, 0..100).unwrap());
        }
        for (at, want) in [(0, 0), (40, 0), (100, 1), (250, 2), (120, 1), (599, 5), (300, 3)] {
            let mut o = Vec::new();
            assert_eq!(q2.gather(at, 30, 8, &mut o), 30.min(600 - at as usize), "at {at}");
            assert_eq!(o[0].as_bytes()[0], want, "at {at}");
            if at == 250 {
                q2.ack_to(100);
            }
        }
        drop(q2);
        q.ack_to(3000);
        assert!(q.is_empty());
        assert_eq!(p.stats().frames_free, 64);
    }

    #[test]
    fn head_follows_acks_and_slice_numbers_wrap() {
        let p = pool();
        let mut q = SendQueue::new();
        // Slice numbers close to wrapping: the counters must wrap, not overflow, and the
        // hint still finds the slices on both sides of the wrap.
        q.popped = u32::MAX - 1;
        q.hint.set(u32::MAX - 1);
        for i in 0..6u8 {
            let mut b = p.alloc_frame().unwrap();
            b.get_mut().unwrap()[..100].fill(i);
            q.push(BufSlice::new(b, 0..100).unwrap());
        }
        assert_eq!((q.head(), q.tail(), q.len()), (0, 600, 600));
        let mut o = Vec::new();
        for (at, want) in [(0, 0), (100, 1), (200, 2), (350, 3), (50, 0), (450, 4)] {
            o.clear();
            assert_eq!(q.gather(at, 30, 8, &mut o), 30, "at {at}");
            assert_eq!(o[0].as_bytes()[0], want, "at {at}");
        }
        q.ack_to(250);
        assert_eq!((q.head(), q.len()), (250, 350), "head is the first unacknowledged byte");
        assert_eq!(q.popped, 0, "two slices dropped across the wrap");
        assert_eq!(q.gather(200, 30, 8, &mut o), 0, "acknowledged bytes are gone");
        for (at, want) in [(250, 2), (300, 3), (550, 5), (260, 2)] {
            o.clear();
            assert_eq!(q.gather(at, 30, 8, &mut o), 30, "at {at}");
            assert_eq!(o[0].as_bytes()[0], want, "at {at}");
        }
        // Acknowledging past the tail (a peer's bogus ACK) empties the queue, no further.
        q.ack_to(10_000);
        assert!(q.is_empty());
        assert_eq!((q.head(), q.tail(), q.len()), (600, 600, 0));
        o.clear();
        assert_eq!(q.gather(600, 30, 8, &mut o), 0);
        drop(o);
        assert_eq!(p.stats().frames_free, 64);
    }
}
