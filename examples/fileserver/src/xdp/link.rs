//! The stack's device seam over an AF_XDP socket: a packet's fragments become one TX
//! batch (header frame with `XDP_PKT_CONTD`, then payload descriptors into file blocks).
//!
//! On a zero-copy socket the NIC reads each descriptor by DMA, and the kernel refuses
//! (counts in `tx_invalid_descs`, never sends, never completes) one that runs from a page
//! into another that is not physically next to it. Payload fragments are therefore cut
//! where [`Pool::contiguous_span`] says: at every 4 KiB page on the small-page fallback,
//! and where a block straddles two 2 MiB hugepages. A copy-mode socket reads the pool by
//! virtual address, so there nothing is cut.

use datapath::{BindMode, PushError, XskSocket};
use stack::{Full, Link};
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
    /// The cut fragments of the packet being sent (reused).
    scratch: Vec<BufSlice>,
}

impl LinkState {
    /// The state for `sock`: cutting fragments if it is bound zero-copy.
    pub fn for_socket(sock: &XskSocket) -> LinkState {
        LinkState { split: sock.mode() == BindMode::ZeroCopy, ..LinkState::default() }
    }
}

/// `stack::Link` for one socket.
pub struct XskLink<'a> {
    pub sock: &'a mut XskSocket,
    pub mtu: usize,
    pub state: &'a mut LinkState,
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

    fn tx_room(&mut self) -> usize {
        let free = self.sock.tx_free() as usize;
        if self.state.split {
            free / 2
        } else {
            free
        }
    }

    fn alloc_frame(&mut self) -> Option<Buf> {
        self.sock.pool().alloc_frame()
    }

    fn transmit(&mut self, frags: &[BufSlice]) -> Result<(), Full> {
        let mut scratch = std::mem::take(&mut self.state.scratch);
        let cut = self.state.split && split_at_pages(self.sock.pool(), frags, &mut scratch) > 0;
        let out = if cut { &scratch[..] } else { frags };
        if cut {
            self.state.page_splits += (scratch.len() - frags.len()) as u64;
        }
        let mut batch = self.sock.tx_batch(out.len() as u32);
        let res = match batch.push(out) {
            Ok(()) => {
                batch.commit();
                Ok(())
            }
            Err(PushError::Full) => Err(Full),
            Err(e) => {
                self.state.refused += 1;
                log::warn!("transmit refused: {e}");
                Err(Full)
            }
        };
        scratch.clear();
        self.state.scratch = scratch;
        res
    }
}

/// Copies `frags` into `out` with every fragment that runs past the memory contiguous
/// with its start cut there, as often as needed; returns the number of cuts (0: `out` is
/// `frags` again, and the caller may send `frags` as they are).
pub fn split_at_pages(pool: &Pool, frags: &[BufSlice], out: &mut Vec<BufSlice>) -> usize {
    out.clear();
    let crosses = |f: &BufSlice| (f.len() as u64) > pool.contiguous_span(f.addr());
    if !frags.iter().any(crosses) {
        return 0;
    }
    let mut cuts = 0;
    for f in frags {
        let mut rest = f.clone();
        loop {
            let span = pool.contiguous_span(rest.addr());
            if (rest.len() as u64) <= span {
                out.push(rest);
                break;
            }
            out.push(rest.split_to(span as usize));
            cuts += 1;
        }
    }
    cuts
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

        // Inside one page: no cut, and the caller sends the fragments as they are.
        let inside = [header.clone(), block.slice(100..1548).unwrap()];
        assert_eq!(split_at_pages(&p, &inside, &mut out), 0);

        // A 1448-byte segment payload from 3000: 1096 bytes to the page edge, then 352.
        let across = [header.clone(), block.slice(3000..4448).unwrap(), block.slice(8000..8100).unwrap()];
        assert_eq!(split_at_pages(&p, &across, &mut out), 1);
        let lens: Vec<usize> = out.iter().map(BufSlice::len).collect();
        assert_eq!(lens, [66, 1096, 352, 100]);
        for f in &out[1..] {
            assert!(f.len() as u64 <= p.contiguous_span(f.addr()), "a piece still crosses at {:#x}", f.addr());
        }
        let joined: Vec<u8> = out[1..3].iter().flat_map(|f| f.as_bytes().to_vec()).collect();
        assert_eq!(joined, across[1].as_bytes(), "the pieces are the fragment, in order");

        // A fragment longer than a page is cut at every edge it crosses.
        let long = [block.slice(4000..4000 + 9000).unwrap()];
        assert_eq!(split_at_pages(&p, &long, &mut out), 3);
        assert_eq!(out.iter().map(BufSlice::len).sum::<usize>(), 9000);
        assert_eq!(out[0].len(), 96);
    }

    #[test]
    fn cut_fragments_hold_the_block_and_give_it_back() {
        let p = small_page_pool();
        let blocks = p.stats().blocks_free;
        let mut out = Vec::new();
        {
            let block = BufSlice::new(p.alloc_block().unwrap(), 0..64 << 10).unwrap();
            split_at_pages(&p, &[block.slice(4000..5000).unwrap()], &mut out);
        }
        assert_eq!(out.len(), 2);
        assert_eq!(p.stats().blocks_free, blocks - 1, "the pieces keep the block");
        out.clear();
        assert_eq!(p.stats().blocks_free, blocks, "and let it go");
    }
}
