//! The send queue: byte ranges of pool frames and file blocks, held by reference.
//!
//! The application appends [`BufSlice`]s; segments are cut out of them as more slices
//! sharing the same slots; acknowledged bytes are dropped from the front, and a slot's
//! reference goes with the last of its bytes. Nothing here ever copies a payload byte.

use std::collections::VecDeque;

use umem::BufSlice;

/// Unacknowledged and unsent data, addressed by stream offset (0 = first byte ever queued).
#[derive(Debug, Default)]
pub struct SendQueue {
    /// `(stream offset of the slice's first byte, slice)`, contiguous, oldest first.
    slices: VecDeque<(u64, BufSlice)>,
    /// Stream offset of the first byte still queued (the first unacknowledged byte).
    head: u64,
    /// Stream offset one past the last byte queued.
    tail: u64,
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
        (self.tail - self.head) as usize
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.tail == self.head
    }

    /// Stream offset of the first queued byte.
    pub fn head(&self) -> u64 {
        self.head
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
            } else {
                if *start < upto {
                    s.advance((upto - *start) as usize);
                    *start = upto;
                }
                break;
            }
        }
        self.head = self.head.max(upto);
    }

    /// Appends to `out` slices covering up to `len` bytes from stream offset `at`, using at
    /// most `max_frags` slices; returns the bytes covered (short at the queue's end or when
    /// the fragment limit is reached).
    pub fn gather(&self, at: u64, len: usize, max_frags: usize, out: &mut Vec<BufSlice>) -> usize {
        if at < self.head || at >= self.tail || len == 0 {
            return 0;
        }
        // The last slice starting at or before `at`.
        let mut i = self.slices.partition_point(|(start, _)| *start <= at) - 1;
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
        q.ack_to(3000);
        assert!(q.is_empty());
        assert_eq!(p.stats().frames_free, 64);
    }
}
