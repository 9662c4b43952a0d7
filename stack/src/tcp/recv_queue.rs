//! The receive side: in-order payload as slices of the received frames, ready for the
//! application, and out-of-order segments kept by reference within a bounded budget.

use std::collections::VecDeque;

use umem::BufSlice;

use crate::wire::{SackBlocks, Seq};

/// What [`RecvQueue::insert`] did with a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Payload appended in order; `advanced` bytes added to the ready queue (including any
    /// out-of-order data it made contiguous); `filled` when it closed a gap.
    InOrder { advanced: usize, filled: bool },
    /// Kept out of order.
    OutOfOrder,
    /// Nothing new (a duplicate).
    Duplicate,
    /// Out of order but over budget: dropped.
    OverBudget,
}

/// Received data.
#[derive(Debug)]
pub struct RecvQueue {
    ready: VecDeque<BufSlice>,
    ready_len: usize,
    /// Non-overlapping, sorted by sequence number (all above `rcv_nxt`).
    ooo: Vec<(Seq, BufSlice)>,
    ooo_len: usize,
    max_ooo_segments: usize,
    /// Left edge of the most recently received out-of-order block (for SACK ordering).
    last_ooo: Option<Seq>,
}

impl RecvQueue {
    /// A queue keeping at most `max_ooo_segments` out-of-order segments (each pins a frame).
    pub fn new(max_ooo_segments: usize) -> Self {
        RecvQueue {
            ready: VecDeque::new(),
            ready_len: 0,
            ooo: Vec::new(),
            ooo_len: 0,
            max_ooo_segments,
            last_ooo: None,
        }
    }

    /// Bytes of heap the queue holds (by capacity).
    pub fn heap_bytes(&self) -> usize {
        self.ready.capacity() * size_of::<BufSlice>() + self.ooo.capacity() * size_of::<(Seq, BufSlice)>()
    }

    /// Bytes ready for the application.
    pub fn ready_len(&self) -> usize {
        self.ready_len
    }

    /// Bytes held out of order.
    pub fn ooo_len(&self) -> usize {
        self.ooo_len
    }

    /// Whether any out-of-order data is held.
    pub fn has_ooo(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// Takes the next ready slice.
    pub fn pop(&mut self) -> Option<BufSlice> {
        let s = self.ready.pop_front()?;
        self.ready_len -= s.len();
        Some(s)
    }

    /// Takes up to `max` bytes of the next ready slice (splitting it).
    pub fn pop_max(&mut self, max: usize) -> Option<BufSlice> {
        let front = self.ready.front_mut()?;
        if front.len() > max {
            let head = front.split_to(max);
            self.ready_len -= head.len();
            return Some(head);
        }
        self.pop()
    }

    /// Files `payload` (starting at `seq`) given the next expected sequence number; the
    /// caller has already trimmed it to the receive window. `rcv_nxt` advances by
    /// `InOrder::advanced`.
    pub fn insert(&mut self, rcv_nxt: Seq, seq: Seq, mut payload: BufSlice) -> Insert {
        // Trim what we already have.
        if seq.lt(rcv_nxt) {
            let dup = rcv_nxt.since(seq) as usize;
            if dup >= payload.len() {
                return Insert::Duplicate;
            }
            payload.advance(dup);
            return self.insert(rcv_nxt, rcv_nxt, payload);
        }
        if payload.is_empty() {
            return Insert::Duplicate;
        }
        if seq == rcv_nxt {
            let mut next = rcv_nxt.add_len(payload.len());
            let mut advanced = payload.len();
            self.push_ready(payload);
            let filled = !self.ooo.is_empty();
            // Pull what became contiguous.
            while let Some((s, _)) = self.ooo.first() {
                if s.gt(next) {
                    break;
                }
                let (s, mut p) = self.ooo.remove(0);
                self.ooo_len -= p.len();
                let skip = next.since(s) as usize;
                if skip < p.len() {
                    p.advance(skip);
                    next = next.add_len(p.len());
                    advanced += p.len();
                    self.push_ready(p);
                }
            }
            if self.ooo.is_empty() {
                self.last_ooo = None;
            }
            return Insert::InOrder { advanced, filled };
        }
        self.insert_ooo(seq, payload)
    }

    fn push_ready(&mut self, s: BufSlice) {
        self.ready_len += s.len();
        self.ready.push_back(s);
    }

    fn insert_ooo(&mut self, seq: Seq, payload: BufSlice) -> Insert {
        // Cut the new range into the gaps between existing entries.
        let end = seq.add_len(payload.len());
        let mut pieces: Vec<(Seq, BufSlice)> = Vec::new();
        let mut pos = seq;
        for (s, p) in &self.ooo {
            let e = s.add_len(p.len());
            if e.le(pos) {
                continue;
            }
            if s.ge(end) {
                break;
            }
            if pos.lt(*s) {
                let a = pos.since(seq) as usize;
                let b = s.since(seq) as usize;
                if let Some(part) = payload.slice(a..b) {
                    pieces.push((pos, part));
                }
            }
            pos = pos.max(e);
            if pos.ge(end) {
                break;
            }
        }
        if pos.lt(end) {
            let a = pos.since(seq) as usize;
            if let Some(part) = payload.slice(a..payload.len()) {
                pieces.push((pos, part));
            }
        }
        if pieces.is_empty() {
            self.last_ooo = Some(seq);
            return Insert::Duplicate;
        }
        if self.ooo.len() + pieces.len() > self.max_ooo_segments {
            return Insert::OverBudget;
        }
        for (s, p) in pieces {
            let i = self.ooo.partition_point(|(x, _)| x.lt(s));
            self.ooo_len += p.len();
            self.ooo.insert(i, (s, p));
        }
        self.last_ooo = Some(seq);
        Insert::OutOfOrder
    }

    /// The first contiguous part of `[seq, end)` already held out of order, if any.
    pub fn held_overlap(&self, seq: Seq, end: Seq) -> Option<(Seq, Seq)> {
        let mut i = self.ooo.partition_point(|(s, p)| s.add_len(p.len()).le(seq));
        let (s, p) = self.ooo.get(i)?;
        let a = s.max(seq);
        let mut b = s.add_len(p.len());
        while b.lt(end) {
            i += 1;
            match self.ooo.get(i) {
                Some((s, p)) if *s == b => b = s.add_len(p.len()),
                _ => break,
            }
        }
        let b = b.min(end);
        a.lt(b).then_some((a, b))
    }

    /// SACK blocks for the out-of-order data: the block holding the most recent arrival
    /// first (RFC 2018), then the others from the lowest.
    pub fn sack_blocks(&self, max: usize) -> SackBlocks {
        let mut blocks: Vec<(Seq, Seq)> = Vec::new();
        for (s, p) in &self.ooo {
            let e = s.add_len(p.len());
            match blocks.last_mut() {
                Some(last) if last.1 == *s => last.1 = e,
                _ => blocks.push((*s, e)),
            }
        }
        let mut out = SackBlocks::default();
        let first = self.last_ooo.and_then(|l| blocks.iter().position(|(a, b)| l.ge(*a) && l.lt(*b)));
        if let Some(i) = first {
            out.push(blocks[i].0, blocks[i].1);
        }
        for (i, b) in blocks.iter().enumerate() {
            if out.as_slice().len() >= max {
                break;
            }
            if Some(i) != first {
                out.push(b.0, b.1);
            }
        }
        out.truncate(max);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::send_queue::tests::pool;

    fn seg(p: &umem::Pool, tag: u8, len: usize) -> BufSlice {
        let mut b = p.alloc_frame().unwrap();
        b.get_mut().unwrap().fill(tag);
        BufSlice::new(b, 0..len).unwrap()
    }

    #[test]
    fn reorders_and_sacks() {
        let p = pool();
        let mut q = RecvQueue::new(8);
        let mut nxt = Seq(1000);
        assert_eq!(q.insert(nxt, Seq(1200), seg(&p, 2, 100)), Insert::OutOfOrder);
        assert_eq!(q.insert(nxt, Seq(1400), seg(&p, 4, 100)), Insert::OutOfOrder);
        assert_eq!(q.insert(nxt, Seq(1150), seg(&p, 9, 100)), Insert::OutOfOrder);
        let s = q.sack_blocks(4);
        assert_eq!(s.as_slice(), &[(Seq(1150), Seq(1300)), (Seq(1400), Seq(1500))]);
        assert_eq!(q.held_overlap(Seq(1180), Seq(1260)), Some((Seq(1180), Seq(1260))));
        assert_eq!(q.held_overlap(Seq(1280), Seq(1450)), Some((Seq(1280), Seq(1300))));
        assert_eq!(q.held_overlap(Seq(1300), Seq(1400)), None);
        assert_eq!(q.held_overlap(Seq(1000), Seq(1150)), None);
        assert_eq!(q.insert(nxt, Seq(1200), seg(&p, 7, 50)), Insert::Duplicate);
        match q.insert(nxt, Seq(1000), seg(&p, 0, 200)) {
            Insert::InOrder { advanced, filled } => {
                assert_eq!(advanced, 300);
                assert!(filled);
                nxt = nxt.add_len(advanced);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(nxt, Seq(1300));
        let bytes: Vec<u8> = std::iter::from_fn(|| q.pop()).flat_map(|s| s.as_bytes().to_vec()).collect();
        assert_eq!(bytes.len(), 300);
        // The in-order segment covered 1000..1200, superseding the early 1150..1200.
        assert!(bytes[..200].iter().all(|&b| b == 0));
        assert!(bytes[200..].iter().all(|&b| b == 2));
        assert_eq!(q.ooo_len(), 100);
    }

    #[test]
    fn budget_bounds_out_of_order_segments() {
        let p = pool();
        let mut q = RecvQueue::new(2);
        let nxt = Seq(0);
        assert_eq!(q.insert(nxt, Seq(100), seg(&p, 1, 10)), Insert::OutOfOrder);
        assert_eq!(q.insert(nxt, Seq(200), seg(&p, 1, 10)), Insert::OutOfOrder);
        assert_eq!(q.insert(nxt, Seq(300), seg(&p, 1, 10)), Insert::OverBudget);
    }
}
