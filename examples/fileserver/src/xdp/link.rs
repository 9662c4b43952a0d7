//! The stack's device seam over an AF_XDP socket: a packet's fragments become descriptors
//! (header frame with `XDP_PKT_CONTD`, then payload descriptors into file blocks), written
//! into the TX ring as the stack hands them over and published together by
//! `XskSocket::poll` after the turn: one TX batch per turn, not one per packet, and nothing
//! allocated for either.
//!
//! Where the socket has TX checksum offload, the stack leaves each segment's checksum to
//! it: the header carries the pseudo-header sum and a checksum request sits in the TX
//! metadata in front of it (copy mode: the kernel marks the skb `CHECKSUM_PARTIAL`;
//! zero-copy: the NIC finishes it). No payload byte is read by this process then.
//!
//! On a zero-copy socket the NIC reads each descriptor by DMA, and the kernel refuses
//! (counts in `tx_invalid_descs`, never sends, never completes) one that runs from a page
//! into another that is not physically next to it. Payload fragments are therefore cut
//! where [`Pool::contiguous_span`] says: at every 4 KiB page on the small-page fallback,
//! and where a block straddles two 2 MiB hugepages. With TX metadata the kernel checks
//! each descriptor as if the metadata lay in front of it, so a descriptor may not start
//! within `tx_metadata_len` bytes after such an edge either: those bytes, to the end of the
//! fragment, are copied into a frame of their own (and counted). A copy-mode socket reads
//! the pool by virtual address, so there nothing is cut.
//!
//! With a packet capture running, each packet the ring took is also recorded by the tap
//! (its first snap-length bytes, see [`crate::pcap`]).

use datapath::{BindMode, PushError, TxChecksum, XskSocket};
use stack::{Full, Link, PartialChecksum, TxOffload};
use umem::{Buf, BufSlice, Pool};

/// Most descriptors the kernel takes for one packet (`MAX_SKB_FRAGS` + 1 on 6.x).
const KERNEL_MAX_FRAGS: usize = 17;

/// What the link keeps from one turn to the next.
#[derive(Debug, Default)]
pub struct LinkState {
    /// Cut payload fragments at page edges (a zero-copy socket).
    pub split: bool,
    /// Packets refused for a reason other than a full ring (should stay 0).
    pub refused: u64,
    /// Fragments cut in two at a page edge.
    pub page_splits: u64,
    /// Bytes copied into a frame because no descriptor may start where they lie (TX
    /// metadata in front of a page edge).
    pub page_edge_bytes_copied: u64,
    /// The cut fragments of the packet being sent (reused).
    scratch: Vec<BufSlice>,
}

impl LinkState {
    /// The state for `sock`: cutting fragments if it is bound zero-copy.
    pub fn for_socket(sock: &XskSocket) -> LinkState {
        LinkState { split: sock.mode() == BindMode::ZeroCopy, ..LinkState::default() }
    }
}

use crate::pcap::{Direction, Tap};

/// `stack::Link` for one socket.
pub struct XskLink<'a> {
    pub sock: &'a mut XskSocket,
    pub mtu: usize,
    pub state: &'a mut LinkState,
    /// The packet capture's tap, if there is one.
    pub tap: Option<&'a mut Tap>,
}

impl XskLink<'_> {
    /// Records a packet the ring took.
    fn record(&mut self, taken: bool, frags: &[BufSlice]) {
        if let (true, Some(t)) = (taken, &mut self.tap) {
            t.record(Direction::Outbound, frags.iter().map(BufSlice::as_bytes));
        }
    }

    fn outcome(&mut self, res: Result<(), PushError>) -> Result<(), Full> {
        match res {
            Ok(()) => Ok(()),
            Err(PushError::Full) => Err(Full),
            Err(e) => {
                self.state.refused += 1;
                log::warn!("transmit refused: {e}");
                Err(Full)
            }
        }
    }

    /// Cuts the payload of `frags` (all but the header, `frags[0]`) into `scratch` after a
    /// placeholder for the header; false if nothing needs cutting (or a frame for a copy
    /// could not be had, then `Err(Full)` inside).
    fn cut(&mut self, frags: &[BufSlice], scratch: &mut Vec<BufSlice>) -> Result<bool, Full> {
        scratch.clear();
        if !self.state.split || frags.len() < 2 {
            return Ok(false);
        }
        let meta = self.sock.tx_metadata_len() as usize;
        let pool = self.sock.pool();
        if frags[1..].iter().all(|f| fits(pool, meta, f)) {
            return Ok(false);
        }
        scratch.push(frags[1].clone());
        let done = split_at_pages(pool, meta, &frags[1..], scratch).ok_or(Full)?;
        self.state.page_splits += done.cuts as u64;
        self.state.page_edge_bytes_copied += done.copied as u64;
        Ok(true)
    }
}

impl Link for XskLink<'_> {
    fn mtu(&self) -> usize {
        self.mtu
    }

    fn multi_buffer(&self) -> bool {
        self.sock.multi_buffer()
    }

    fn max_frags(&self) -> usize {
        // A payload fragment (at most a frame) crosses at most one page edge: cut, it is
        // two descriptors. Leave room for that, or the stack copies the payload instead.
        match self.state.split {
            true => 1 + (KERNEL_MAX_FRAGS - 1) / 2,
            false => KERNEL_MAX_FRAGS,
        }
    }

    fn has_tx_room(&mut self, descs: usize) -> bool {
        // Cut at page edges, a payload fragment may take two descriptors.
        let descs = if self.state.split { descs.saturating_mul(2) } else { descs };
        // The kernel's consumer index is read again only when the cached view is short.
        let want = u32::try_from(descs).unwrap_or(u32::MAX);
        self.sock.tx_room(want) >= want
    }

    fn tx_offload(&self) -> TxOffload {
        TxOffload { checksum: self.sock.tx_checksum_offload(), headroom: self.sock.tx_metadata_len() as usize }
    }

    fn alloc_frame(&mut self) -> Option<Buf> {
        self.sock.pool().alloc_frame()
    }

    fn transmit(&mut self, frags: &[BufSlice]) -> Result<(), Full> {
        let mut scratch = std::mem::take(&mut self.state.scratch);
        let res = match self.cut(frags, &mut scratch) {
            Ok(false) => {
                let res = self.sock.queue_tx(frags);
                self.record(res.is_ok(), frags);
                self.outcome(res)
            }
            Ok(true) => {
                scratch[0] = frags[0].clone();
                let res = self.sock.queue_tx(&scratch);
                self.record(res.is_ok(), &scratch);
                self.outcome(res)
            }
            Err(full) => Err(full),
        };
        scratch.clear();
        self.state.scratch = scratch;
        res
    }

    fn transmit_partial(&mut self, frags: &mut [BufSlice], csum: PartialChecksum) -> Result<(), Full> {
        let csum = TxChecksum { start: csum.start, offset: csum.offset };
        let mut scratch = std::mem::take(&mut self.state.scratch);
        let res = match self.cut(frags, &mut scratch) {
            Ok(false) => {
                let res = self.sock.queue_tx_with_checksum(frags, csum);
                self.record(res.is_ok(), frags);
                self.outcome(res)
            }
            Ok(true) => {
                // Only the payload is cut: the header, whose frame must stay unshared for
                // the checksum request in front of it, is moved in and back, not cloned.
                std::mem::swap(&mut scratch[0], &mut frags[0]);
                let res = self.sock.queue_tx_with_checksum(&mut scratch, csum);
                self.record(res.is_ok(), &scratch);
                std::mem::swap(&mut scratch[0], &mut frags[0]);
                self.outcome(res)
            }
            Err(full) => Err(full),
        };
        scratch.clear();
        self.state.scratch = scratch;
        res
    }
}

/// What [`split_at_pages`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cuts {
    /// Fragments cut at a page edge.
    pub cuts: usize,
    /// Bytes copied into frames of their own.
    pub copied: usize,
}

/// Whether `f` is a valid zero-copy descriptor as it is, with `meta` bytes of TX metadata
/// checked in front of it: it starts at least `meta` bytes past a page edge and runs into
/// no further page.
pub fn fits(pool: &Pool, meta: usize, f: &BufSlice) -> bool {
    let span = pool.contiguous_span(f.addr());
    let into = pool.backing().page_size() as u64 - span;
    into >= meta as u64 && f.len() as u64 <= span
}

/// Appends `frags` to `out`, every fragment that runs past the memory contiguous with its
/// start cut there, as often as needed; bytes where no descriptor may start (the first
/// `meta` bytes of a page) are copied, to the end of their fragment, into frames of their
/// own, whose data begins `meta` bytes in. `None` if no frame could be had for a copy.
pub fn split_at_pages(pool: &Pool, meta: usize, frags: &[BufSlice], out: &mut Vec<BufSlice>) -> Option<Cuts> {
    let page = pool.backing().page_size() as u64;
    let room = (pool.frame_size() as usize).checked_sub(meta).filter(|&r| r > 0)?;
    let mut done = Cuts::default();
    for f in frags {
        let mut rest = f.clone();
        while !rest.is_empty() {
            let span = pool.contiguous_span(rest.addr());
            if page - span < meta as u64 {
                let piece = rest.split_to(rest.len().min(room));
                out.push(copy_to_frame(pool, meta, &piece)?);
                done.copied += piece.len();
            } else if rest.len() as u64 <= span {
                out.push(rest);
                break;
            } else {
                out.push(rest.split_to(span as usize));
                done.cuts += 1;
            }
        }
    }
    Some(done)
}

/// `piece` copied into a fresh frame, `meta` bytes in.
fn copy_to_frame(pool: &Pool, meta: usize, piece: &BufSlice) -> Option<BufSlice> {
    let mut frame = pool.alloc_frame()?;
    let range = meta..meta + piece.len();
    frame.get_mut()?.get_mut(range.clone())?.copy_from_slice(piece.as_bytes());
    BufSlice::new(frame, range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use umem::{HugePages, PoolConfig};

    fn small_page_pool() -> Pool {
        Pool::new(&PoolConfig {
            frame_size: 4096,
            frames: 8,
            block_size: 64 << 10,
            blocks: 2,
            hugepages: HugePages::Off,
            lock: false,
        })
        .unwrap()
    }

    #[test]
    fn fragments_crossing_a_page_edge_are_cut_there_and_nothing_else_is() {
        let p = small_page_pool();
        let mut block = p.alloc_block().unwrap();
        for (i, b) in block.get_mut().unwrap().iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let block = BufSlice::new(block, 0..64 << 10).unwrap();
        let header = BufSlice::new(p.alloc_frame().unwrap(), 0..66).unwrap();
        let mut out = Vec::new();

        // Inside one page: nothing to cut, and the caller sends the fragments as they are.
        let inside = [header.clone(), block.slice(100..1548).unwrap()];
        assert!(inside.iter().all(|f| fits(&p, 0, f)));
        assert_eq!(split_at_pages(&p, 0, &inside, &mut out), Some(Cuts::default()));
        assert_eq!(out.len(), 2);
        out.clear();

        // A 1448-byte segment payload from 3000: 1096 bytes to the page edge, then 352.
        let across = [header.clone(), block.slice(3000..4448).unwrap(), block.slice(8000..8100).unwrap()];
        assert!(!fits(&p, 0, &across[1]));
        assert_eq!(split_at_pages(&p, 0, &across, &mut out), Some(Cuts { cuts: 1, copied: 0 }));
        let lens: Vec<usize> = out.iter().map(BufSlice::len).collect();
        assert_eq!(lens, [66, 1096, 352, 100]);
        for f in &out[1..] {
            assert!(fits(&p, 0, f), "a piece still crosses at {:#x}", f.addr());
        }
        let joined: Vec<u8> = out[1..3].iter().flat_map(|f| f.as_bytes().to_vec()).collect();
        assert_eq!(joined, across[1].as_bytes(), "the pieces are the fragment, in order");
        out.clear();

        // A fragment longer than a page is cut at every edge it crosses.
        let long = [block.slice(4000..4000 + 9000).unwrap()];
        assert_eq!(split_at_pages(&p, 0, &long, &mut out).unwrap().cuts, 3);
        assert_eq!(out.iter().map(BufSlice::len).sum::<usize>(), 9000);
        assert_eq!(out[0].len(), 96);
    }

    #[test]
    fn with_tx_metadata_no_descriptor_starts_just_past_a_page_edge() {
        let p = small_page_pool();
        let mut block = p.alloc_block().unwrap();
        for (i, b) in block.get_mut().unwrap().iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let block = BufSlice::new(block, 0..64 << 10).unwrap();
        let frames = p.stats().frames_free;
        let meta = 24;
        let mut out = Vec::new();
        // Across an edge: up to the edge stays a descriptor, the rest is copied; a fragment
        // starting 10 bytes past an edge (its metadata would lie in the page before) is
        // copied whole; one well inside a page is left alone.
        let frags =
            [block.slice(3000..4448).unwrap(), block.slice(8202..8300).unwrap(), block.slice(9000..9100).unwrap()];
        assert!(!fits(&p, meta, &frags[1]) && fits(&p, meta, &frags[2]));
        assert_eq!(split_at_pages(&p, meta, &frags, &mut out), Some(Cuts { cuts: 1, copied: 352 + 98 }));
        let lens: Vec<usize> = out.iter().map(BufSlice::len).collect();
        assert_eq!(lens, [1096, 352, 98, 100]);
        for f in &out {
            assert!(fits(&p, meta, f), "a piece at {:#x} is not a valid descriptor", f.addr());
        }
        let joined: Vec<u8> = out.iter().flat_map(|f| f.as_bytes().to_vec()).collect();
        let want: Vec<u8> = frags.iter().flat_map(|f| f.as_bytes().to_vec()).collect();
        assert_eq!(joined, want, "the pieces are the fragments, in order");
        assert_eq!(p.stats().frames_free, frames - 2, "two frames hold the copies");
        out.clear();
        assert_eq!(p.stats().frames_free, frames, "and come back");
        // No frame for the copy: nothing is sent, nothing is held.
        let held: Vec<Buf> = std::iter::from_fn(|| p.alloc_frame()).collect();
        assert_eq!(split_at_pages(&p, meta, &frags[1..2], &mut out), None);
        drop((held, out));
        assert_eq!(p.stats().frames_free, frames);
    }

    #[test]
    fn cut_fragments_hold_the_block_and_give_it_back() {
        let p = small_page_pool();
        let blocks = p.stats().blocks_free;
        let mut out = Vec::new();
        {
            let block = BufSlice::new(p.alloc_block().unwrap(), 0..64 << 10).unwrap();
            split_at_pages(&p, 0, &[block.slice(4000..5000).unwrap()], &mut out);
        }
        assert_eq!(out.len(), 2);
        assert_eq!(p.stats().blocks_free, blocks - 1, "the pieces keep the block");
        out.clear();
        assert_eq!(p.stats().blocks_free, blocks, "and let it go");
    }
}
