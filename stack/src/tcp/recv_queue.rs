//! The receive side: in-order payload as slices of the received frames, ready for the
//! application, and out-of-order segments kept by reference within a bounded budget.
//!
//! Memory is counted the way Linux counts `truesize` against `rcvbuf`: each queued entry
//! at the size of the pool frame or block it pins, not at its payload, because a one-byte
//! segment pins a whole frame. The budget bounds both queues; the window advertised is
//! what the rest of it holds at the payload-per-frame ratio the peer's segments show
//! ([`RecvQueue::window`]). Small in-order payloads are copied into a compact frame of
//! the same pool (counted in `rx_bytes_coalesced`, apart from `payload_bytes_copied`,
//! which counts transmit copies), as is any in-order payload that arrives while the
//! queues are over budget. Out-of-order entries above a new segment are pruned to make
//! room for it (Linux's `tcp_prune_ofo_queue`), and all of them can be dropped when the
//! pool runs short ([`RecvQueue::prune_ooo`]).

use std::collections::VecDeque;

use umem::BufSlice;

use crate::counters::Counters;
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

/// The payload-per-pool-byte ratio assumed before the first segment (Linux's
/// `TCP_DEFAULT_SCALING_RATIO`): a half, in 1/65536ths.
const DEFAULT_RATIO: u32 = 1 << 15;

/// Received data.
#[derive(Debug)]
pub struct RecvQueue {
    ready: VecDeque<BufSlice>,
    ready_len: u32,
    /// Non-overlapping, sorted by sequence number (all above `rcv_nxt`).
    ooo: Vec<(Seq, BufSlice)>,
    ooo_len: u32,
    max_ooo_segments: u32,
    /// Left edge of the most recently received out-of-order block (for SACK ordering).
    last_ooo: Option<Seq>,
    /// Pool bytes the entries of both queues pin (each at its slot's size).
    mem: u32,
    /// The best payload-to-slot ratio a received segment showed, in 1/65536ths.
    ratio: u32,
    /// Whether `ratio` was observed (or hinted) rather than assumed.
    ratio_known: bool,
    /// The last ready entry is a compact frame of ours, open for more bytes.
    tail_compact: bool,
}

/// Pool bytes `s` pins: its whole slot.
fn truesize(s: &BufSlice) -> u32 {
    s.buf().capacity() as u32
}

/// `len` payload bytes in a slot of `size`, in 1/65536ths.
fn ratio_of(len: usize, size: usize) -> u32 {
    ((len.min(size) as u64) << 16).checked_div(size as u64).unwrap_or(0) as u32
}

impl RecvQueue {
    /// A queue keeping at most `max_ooo_segments` out-of-order segments (each pins a frame).
    pub fn new(max_ooo_segments: usize) -> Self {
        RecvQueue {
            ready: VecDeque::new(),
            ready_len: 0,
            ooo: Vec::new(),
            ooo_len: 0,
            max_ooo_segments: max_ooo_segments.min(u32::MAX as usize) as u32,
            last_ooo: None,
            mem: 0,
            ratio: DEFAULT_RATIO,
            ratio_known: false,
            tail_compact: false,
        }
    }

    /// Bytes of heap the queue holds (by capacity).
    pub fn heap_bytes(&self) -> usize {
        self.ready.capacity() * size_of::<BufSlice>() + self.ooo.capacity() * size_of::<(Seq, BufSlice)>()
    }

    /// Bytes ready for the application.
    pub fn ready_len(&self) -> usize {
        self.ready_len as usize
    }

    /// Bytes held out of order.
    pub fn ooo_len(&self) -> usize {
        self.ooo_len as usize
    }

    /// Whether any out-of-order data is held.
    pub fn has_ooo(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// Pool bytes both queues pin: every entry at the size of its frame or block.
    pub fn mem(&self) -> usize {
        self.mem as usize
    }

    /// The window to offer with a budget of `budget` pool bytes: what the unused part
    /// holds at the best payload-per-slot ratio seen (a half before any data).
    pub fn window(&self, budget: usize) -> usize {
        let free = budget.saturating_sub(self.mem as usize) as u64;
        ((free * u64::from(self.ratio)) >> 16) as usize
    }

    /// Takes the next ready slice.
    pub fn pop(&mut self) -> Option<BufSlice> {
        let s = self.ready.pop_front()?;
        self.ready_len -= s.len() as u32;
        self.mem -= truesize(&s);
        if self.ready.is_empty() {
            self.tail_compact = false;
        }
        Some(s)
    }

    /// Takes up to `max` bytes of the next ready slice (splitting it).
    pub fn pop_max(&mut self, max: usize) -> Option<BufSlice> {
        let front = self.ready.front_mut()?;
        if front.len() > max {
            let head = front.split_to(max);
            self.ready_len -= head.len() as u32;
            return Some(head);
        }
        self.pop()
    }

    /// Drops every out-of-order entry (the pool is short: they are only a promise); the
    /// peer retransmits what it does not see acknowledged. Returns how many there were.
    pub fn prune_ooo(&mut self) -> usize {
        let n = self.ooo.len();
        for (_, p) in self.ooo.drain(..) {
            self.mem -= truesize(&p);
        }
        self.ooo_len = 0;
        self.last_ooo = None;
        n
    }

    /// Drops everything held (the application closed and will read no more): returns
    /// the bytes dropped.
    pub fn clear(&mut self) -> usize {
        let dropped = self.ready_len() + self.ooo_len();
        *self = RecvQueue::new(self.max_ooo_segments as usize);
        dropped
    }

    /// Files `payload` (starting at `seq`) given the next expected sequence number, with
    /// `budget` pool bytes for both queues; the caller has already trimmed it to the
    /// receive window. `rcv_nxt` advances by `InOrder::advanced`. Copies into compact
    /// frames and prunes are counted in `ctr`.
    pub fn insert(
        &mut self,
        rcv_nxt: Seq,
        seq: Seq,
        mut payload: BufSlice,
        budget: usize,
        ctr: &mut Counters,
    ) -> Insert {
        // Trim what we already have.
        if seq.lt(rcv_nxt) {
            let dup = rcv_nxt.since(seq) as usize;
            if dup >= payload.len() {
                return Insert::Duplicate;
            }
            payload.advance(dup);
            return self.insert(rcv_nxt, rcv_nxt, payload, budget, ctr);
        }
        if payload.is_empty() {
            return Insert::Duplicate;
        }
        self.observe(&payload);
        if seq == rcv_nxt {
            let mut next = rcv_nxt.add_len(payload.len());
            let mut advanced = payload.len();
            self.push_ready(payload, budget, ctr);
            let filled = !self.ooo.is_empty();
            // Pull what became contiguous (these entries are already counted in `mem`).
            while let Some((s, _)) = self.ooo.first() {
                if s.gt(next) {
                    break;
                }
                let (s, mut p) = self.ooo.remove(0);
                self.ooo_len -= p.len() as u32;
                let skip = next.since(s) as usize;
                if skip < p.len() {
                    p.advance(skip);
                    next = next.add_len(p.len());
                    advanced += p.len();
                    self.ready_len += p.len() as u32;
                    self.ready.push_back(p);
                    self.tail_compact = false;
                } else {
                    self.mem -= truesize(&p);
                }
            }
            if self.ooo.is_empty() {
                self.last_ooo = None;
            }
            return Insert::InOrder { advanced, filled };
        }
        self.insert_ooo(seq, payload, budget, ctr)
    }

    /// Sets the payload-per-slot ratio to assume before data arrives: full segments of
    /// `mss` bytes in slots of `truesize` (known from the frame a SYN came in).
    pub fn set_ratio_hint(&mut self, mss: usize, truesize: usize) {
        if mss > 0 && truesize > 0 {
            self.ratio = ratio_of(mss, truesize);
            self.ratio_known = true;
        }
    }

    /// Learns the payload-per-slot ratio from a received segment (the best one seen).
    fn observe(&mut self, p: &BufSlice) {
        let r = ratio_of(p.len(), truesize(p) as usize);
        if !self.ratio_known || r > self.ratio {
            self.ratio = r;
            self.ratio_known = true;
        }
    }

    /// Appends an in-order payload: copied into the compact tail frame when it is small
    /// for the slot it pins (a quarter of a frame or less) or the queues are over budget,
    /// else kept by reference.
    fn push_ready(&mut self, s: BufSlice, budget: usize, ctr: &mut Counters) {
        self.ready_len += s.len() as u32;
        let frame = s.buf().pool().frame_size() as usize;
        let small = s.len() * 4 <= frame && s.len() * 4 <= truesize(&s) as usize;
        let over = (self.mem + truesize(&s)) as usize > budget && s.len() <= frame;
        if (small || over) && self.coalesce(&s) {
            ctr.tcp_rx_coalesced += 1;
            ctr.rx_bytes_coalesced += s.len() as u64;
            return;
        }
        self.mem += truesize(&s);
        self.ready.push_back(s);
        self.tail_compact = false;
    }

    /// Copies `s` behind the compact tail frame, or into a new one from `s`'s pool; false
    /// if neither has room (the pool is out of frames).
    fn coalesce(&mut self, s: &BufSlice) -> bool {
        if self.tail_compact {
            if let Some(tail) = self.ready.back_mut() {
                let at = tail.len();
                let fits = tail.offset() + at + s.len() <= truesize(tail) as usize;
                // Only while no one else holds the frame (the application may hold a piece).
                if fits && tail.buf().is_unique() && tail.set_len(at + s.len()) {
                    if let Some(b) = tail.get_mut() {
                        b[at..].copy_from_slice(s.as_bytes());
                        return true;
                    }
                    tail.truncate(at);
                }
            }
        }
        let Some(mut b) = s.buf().pool().alloc_frame() else { return false };
        let Some(dst) = b.get_mut().and_then(|d| d.get_mut(..s.len())) else { return false };
        dst.copy_from_slice(s.as_bytes());
        let Some(c) = BufSlice::new(b, 0..s.len()) else { return false };
        self.mem += truesize(&c);
        self.ready.push_back(c);
        self.tail_compact = true;
        true
    }

    fn insert_ooo(&mut self, seq: Seq, payload: BufSlice, budget: usize, ctr: &mut Counters) -> Insert {
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
        // Room in the budget (every piece counted at its slot) and in the count: made by
        // dropping what lies above the new data, which is further from being useful.
        let need: usize = pieces.iter().map(|(_, p)| truesize(p) as usize).sum();
        while self.mem as usize + need > budget || self.ooo.len() + pieces.len() > self.max_ooo_segments as usize {
            match self.ooo.last() {
                Some((s, _)) if s.gt(seq) => {
                    if let Some((_, p)) = self.ooo.pop() {
                        self.ooo_len -= p.len() as u32;
                        self.mem -= truesize(&p);
                        ctr.tcp_ooo_pruned += 1;
                    }
                }
                _ => return Insert::OverBudget,
            }
        }
        for (s, p) in pieces {
            let i = self.ooo.partition_point(|(x, _)| x.lt(s));
            self.ooo_len += p.len() as u32;
            self.mem += truesize(&p);
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

    /// No budget to speak of.
    const ANY: usize = usize::MAX;

    fn seg(p: &umem::Pool, tag: u8, len: usize) -> BufSlice {
        let mut b = p.alloc_frame().unwrap();
        b.get_mut().unwrap().fill(tag);
        BufSlice::new(b, 0..len).unwrap()
    }

    #[test]
    fn reorders_and_sacks() {
        let p = pool();
        let c = &mut Counters::default();
        let mut q = RecvQueue::new(8);
        let mut nxt = Seq(1000);
        assert_eq!(q.insert(nxt, Seq(1200), seg(&p, 2, 100), ANY, c), Insert::OutOfOrder);
        assert_eq!(q.insert(nxt, Seq(1400), seg(&p, 4, 100), ANY, c), Insert::OutOfOrder);
        assert_eq!(q.insert(nxt, Seq(1150), seg(&p, 9, 100), ANY, c), Insert::OutOfOrder);
        let s = q.sack_blocks(4);
        assert_eq!(s.as_slice(), &[(Seq(1150), Seq(1300)), (Seq(1400), Seq(1500))]);
        assert_eq!(q.held_overlap(Seq(1180), Seq(1260)), Some((Seq(1180), Seq(1260))));
        assert_eq!(q.held_overlap(Seq(1280), Seq(1450)), Some((Seq(1280), Seq(1300))));
        assert_eq!(q.held_overlap(Seq(1300), Seq(1400)), None);
        assert_eq!(q.held_overlap(Seq(1000), Seq(1150)), None);
        assert_eq!(q.insert(nxt, Seq(1200), seg(&p, 7, 50), ANY, c), Insert::Duplicate);
        match q.insert(nxt, Seq(1000), seg(&p, 0, 200), ANY, c) {
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
        let c = &mut Counters::default();
        let mut q = RecvQueue::new(2);
        let nxt = Seq(0);
        assert_eq!(q.insert(nxt, Seq(100), seg(&p, 1, 10), ANY, c), Insert::OutOfOrder);
        assert_eq!(q.insert(nxt, Seq(200), seg(&p, 1, 10), ANY, c), Insert::OutOfOrder);
        assert_eq!(q.insert(nxt, Seq(300), seg(&p, 1, 10), ANY, c), Insert::OverBudget);
        // Below what is held: the highest entry makes room.
        assert_eq!(q.insert(nxt, Seq(50), seg(&p, 1, 10), ANY, c), Insert::OutOfOrder);
        assert_eq!(c.tcp_ooo_pruned, 1);
        assert_eq!(q.sack_blocks(4).as_slice(), &[(Seq(50), Seq(60)), (Seq(100), Seq(110))]);
    }

    #[test]
    fn memory_counts_the_frames_pinned_not_the_payload() {
        let p = pool();
        let c = &mut Counters::default();
        let mut q = RecvQueue::new(512);
        let budget = 4 * 4096;
        let nxt = Seq(0);
        for i in 0..4u32 {
            assert_eq!(q.insert(nxt, Seq(10 + 2 * i), seg(&p, 1, 1), budget, c), Insert::OutOfOrder);
        }
        assert_eq!((q.mem(), q.ooo_len()), (4 * 4096, 4));
        assert_eq!(q.insert(nxt, Seq(100), seg(&p, 1, 1), budget, c), Insert::OverBudget, "four bytes fill 16 KiB");
        assert_eq!(p.stats().frames_free, 64 - 4);
        assert_eq!(q.window(budget), 0);
        // Dropped under pressure: every frame back.
        assert_eq!(q.prune_ooo(), 4);
        assert_eq!((q.mem(), p.stats().frames_free), (0, 64));
        // The window: the free budget at the payload-per-frame ratio the segments showed.
        assert_eq!(q.insert(nxt, Seq(5000), seg(&p, 1, 2048), budget, c), Insert::OutOfOrder);
        assert_eq!(q.window(budget), 3 * 4096 / 2);
    }

    #[test]
    fn small_in_order_payloads_share_a_compact_frame() {
        let p = pool();
        let c = &mut Counters::default();
        let mut q = RecvQueue::new(8);
        let mut nxt = Seq(0);
        for i in 0..100u8 {
            assert!(matches!(q.insert(nxt, nxt, seg(&p, i, 1), ANY, c), Insert::InOrder { advanced: 1, .. }));
            nxt = nxt.add(1);
        }
        assert_eq!((q.mem(), q.ready_len()), (4096, 100), "one frame for 100 one-byte segments");
        assert_eq!(p.stats().frames_free, 63);
        assert_eq!((c.tcp_rx_coalesced, c.rx_bytes_coalesced), (100, 100));
        // The application takes part of it: the next bytes go to a new compact frame.
        let head = q.pop_max(10).unwrap();
        assert_eq!(head.as_bytes(), &(0..10).collect::<Vec<u8>>()[..]);
        assert!(matches!(q.insert(nxt, nxt, seg(&p, 100, 1), ANY, c), Insert::InOrder { .. }));
        assert_eq!(q.mem(), 2 * 4096);
        let rest: Vec<u8> = std::iter::from_fn(|| q.pop()).flat_map(|s| s.as_bytes().to_vec()).collect();
        assert_eq!(rest, (10..=100).collect::<Vec<u8>>());
        drop(head);
        assert_eq!((q.mem(), p.stats().frames_free), (0, 64));
        // A full-size segment stays where it arrived (by reference).
        let big = seg(&p, 7, 1448);
        let addr = big.addr();
        assert!(matches!(q.insert(nxt, nxt, big, ANY, c), Insert::InOrder { .. }));
        assert_eq!(q.pop().unwrap().addr(), addr);
        assert_eq!(c.rx_bytes_coalesced, 101);
        // Over budget, even a full-size segment is copied into a compact frame.
        let c2 = &mut Counters::default();
        let mut q = RecvQueue::new(8);
        let nxt = Seq(0);
        assert!(matches!(q.insert(nxt, nxt, seg(&p, 1, 1448), 4096, c2), Insert::InOrder { .. }));
        assert!(matches!(q.insert(nxt.add(1448), nxt.add(1448), seg(&p, 2, 1448), 4096, c2), Insert::InOrder { .. }));
        assert_eq!((q.mem(), c2.rx_bytes_coalesced), (2 * 4096, 1448));
    }
}
