//! Where a DMA descriptor into the pool must end: at the edge of the page it starts in,
//! whatever the backing (4 KiB pages, or 2 MiB hugepages a block may straddle). No root
//! needed: the small-page pool is not locked, and the hugepage pool is skipped with a
//! printed reason when no hugepage is free.

use umem::{Backing, HugePages, Pool, PoolConfig, HUGEPAGE_SIZE};

fn pool(hugepages: HugePages, block_size: u32, blocks: u32) -> Option<Pool> {
    let cfg = PoolConfig { frame_size: 4096, frames: 4, block_size, blocks, hugepages, lock: false };
    match Pool::new(&cfg) {
        Ok(p) => Some(p),
        Err(e) if hugepages == HugePages::Require => {
            println!("skipped: no 2 MiB hugepage for the test pool ({e})");
            None
        }
        Err(e) => panic!("pool: {e}"),
    }
}

#[test]
fn on_small_pages_a_span_ends_at_the_next_4_kib_page() {
    let p = pool(HugePages::Off, 64 << 10, 4).unwrap();
    assert_eq!(p.backing(), Backing::Small4K);
    let page = p.backing().page_size() as u64;
    assert_eq!(page, 4096);
    let b = p.alloc_block().unwrap().addr();
    assert_eq!(p.contiguous_span(b), page, "a block starts on a page");
    assert_eq!(p.contiguous_span(b + 1), page - 1);
    assert_eq!(p.contiguous_span(b + page - 1), 1);
    assert_eq!(p.contiguous_span(b + 5 * page + 100), page - 100);
    // Every address's span ends exactly on a page edge, never past one.
    for off in (0..64 << 10).step_by(97) {
        let addr = b + off;
        let end = p.base_ptr().as_ptr() as u64 + addr + p.contiguous_span(addr);
        assert_eq!(end % page, 0, "span from {addr:#x}");
        assert!(p.contiguous_span(addr) <= page);
    }
}

#[test]
fn on_hugepages_a_block_straddling_two_hugepages_is_cut_at_the_2_mib_edge() {
    // Blocks of 768 KiB: the third starts at 4 frames + 1.5 MiB and crosses the 2 MiB edge.
    let Some(p) = pool(HugePages::Require, 768 << 10, 4) else { return };
    assert_eq!(p.backing(), Backing::Huge2M);
    let huge = HUGEPAGE_SIZE as u64;
    assert_eq!(p.base_ptr().as_ptr() as u64 % huge, 0, "a hugetlb mapping starts on a hugepage");
    let blocks: Vec<_> = (0..4).map(|_| p.alloc_block().unwrap()).collect();
    let straddler = blocks.iter().find(|b| b.addr() / huge != (b.addr() + b.capacity() as u64 - 1) / huge).unwrap();
    let edge = (straddler.addr() / huge + 1) * huge;
    assert_eq!(p.contiguous_span(straddler.addr()), edge - straddler.addr(), "to the edge, not the block's end");
    assert_eq!(p.contiguous_span(edge - 10), 10);
    assert_eq!(p.contiguous_span(edge), huge, "a whole hugepage after the edge");
    // Inside a hugepage a 4 KiB boundary is no boundary.
    assert!(p.contiguous_span(blocks[0].addr() + 4095) > 4096);
}
