//! io_uring with the whole pool registered once as fixed buffers.
//!
//! `IORING_REGISTER_BUFFERS` pins the pages once, so a `READ_FIXED` pays no per-I/O
//! `get_user_pages`. The kernel takes at most 1 GiB per iovec (more gives `EFAULT`) and at
//! most 16384 iovecs, so the pool is registered as one iovec per <= 1 GiB slice, never one
//! per frame. Slices are cut at slot boundaries: a read must lie inside one registered
//! buffer, and this way no frame or block ever spans two.
//!
//! ```text
//!   UMEM  0 ──── frames ──── blocks_base ── block ── block ── ... ── used_len
//!   iovec [0            <= 1 GiB       ) [1     <= 1 GiB, whole blocks     ) ...
//! ```
//!
//! Needs Linux 5.1 (`READ_FIXED`); pinning is capped by `RLIMIT_MEMLOCK` without
//! `CAP_IPC_LOCK`.

use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, squeue, types, IoUring};

use crate::error::{memlock_limit, Error};
use crate::pool::Pool;

/// The most bytes the kernel accepts in one registered iovec.
pub const MAX_IOVEC_LEN: u64 = 1 << 30;

/// The most iovecs the kernel accepts in one registration.
pub const MAX_IOVECS: usize = 16384;

/// How a pool is cut into registered buffers: slice `i` is `buf_index` `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedBuffers {
    /// Slice boundaries: slice `i` is `cuts[i]..cuts[i + 1]` (UMEM addresses).
    cuts: Vec<u64>,
}

impl FixedBuffers {
    /// The slices for `pool`: each at most [`MAX_IOVEC_LEN`], each a run of whole slots.
    pub fn plan(pool: &Pool) -> Result<FixedBuffers, Error> {
        Self::plan_layout(pool.blocks_base(), pool.used_len(), pool.block_size())
    }

    /// The slices for a pool whose frames fill `0..blocks_base` and whose blocks of
    /// `block_size` fill `blocks_base..len`. Frame sizes (2048, 4096) divide 1 GiB, so
    /// only the blocks need care.
    pub(crate) fn plan_layout(blocks_base: u64, len: u64, block_size: u32) -> Result<FixedBuffers, Error> {
        let block = u64::from(block_size);
        if len > blocks_base && (block == 0 || block > MAX_IOVEC_LEN) {
            return Err(Error::Config("block_size must be at most 1 GiB to register with io_uring"));
        }
        let mut cuts = vec![0];
        let mut at = 0;
        while at < len {
            let reach = (at + MAX_IOVEC_LEN).min(len);
            let next = if reach <= blocks_base || reach == len {
                reach
            } else {
                // The last block boundary within reach; at least one block past `at` (or
                // past blocks_base when `at` is still among the frames).
                blocks_base + (reach - blocks_base) / block * block
            };
            debug_assert!(next > at, "a slice must make progress");
            cuts.push(next);
            at = next;
        }
        if cuts.len() - 1 > MAX_IOVECS {
            return Err(Error::Config("pool needs more than 16384 io_uring iovecs"));
        }
        Ok(FixedBuffers { cuts })
    }

    /// Number of registered buffers (iovecs).
    pub fn len(&self) -> usize {
        self.cuts.len() - 1
    }

    /// Whether nothing is registered (an empty pool).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The UMEM range of registered buffer `index`.
    pub fn slice(&self, index: usize) -> Option<Range<u64>> {
        Some(*self.cuts.get(index)?..*self.cuts.get(index + 1)?)
    }

    /// The `buf_index` of the registered buffer that holds all of `addr..addr + len`.
    pub fn index_of(&self, addr: u64, len: u64) -> Option<u16> {
        // The slice whose start is the last cut <= addr.
        let i = self.cuts.partition_point(|&c| c <= addr).checked_sub(1)?;
        let end = *self.cuts.get(i + 1)?;
        let last = addr.checked_add(len)?;
        (last <= end).then(|| u16::try_from(i).ok()).flatten()
    }

    fn iovecs(&self, pool: &Pool) -> Vec<libc::iovec> {
        let base = pool.base_ptr().as_ptr();
        (0..self.len())
            .map(|i| libc::iovec {
                // The cuts lie within the pool's mapping (at most `used_len`), so the
                // offset pointer stays in bounds; nothing is dereferenced here.
                iov_base: base.wrapping_add(self.cuts[i] as usize).cast(),
                iov_len: (self.cuts[i + 1] - self.cuts[i]) as usize,
            })
            .collect()
    }
}

/// An io_uring instance with a pool registered as its fixed buffers.
///
/// The ring keeps a handle to the pool, so the registered memory outlives the
/// registration. Dropping the ring closes it; whoever has reads in flight must reap them
/// first (the [`BlockReader`](crate::BlockReader) does in its `Drop`).
pub struct Ring {
    // Declared before `pool`: the ring closes before the pool's handle is dropped.
    ring: IoUring,
    fixed: FixedBuffers,
    pool: Pool,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("entries", &self.ring.params().sq_entries())
            .field("fixed", &self.fixed)
            .finish_non_exhaustive()
    }
}

impl AsRawFd for Ring {
    /// The ring's descriptor, to wait for completions in an event loop (epoll reports it
    /// readable when completions are posted).
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

impl Ring {
    /// A ring of `entries` submission entries (twice as many completion entries) with the
    /// whole of `pool` registered as fixed buffers.
    pub fn new(pool: &Pool, entries: u32) -> Result<Ring, Error> {
        let fixed = FixedBuffers::plan(pool)?;
        let ring = IoUring::builder()
            .setup_cqsize(entries.saturating_mul(2))
            .build(entries)
            .map_err(|source| Error::UringSetup { entries, source })?;
        let iovecs = fixed.iovecs(pool);
        // SAFETY: every iovec lies inside the pool's mapping (`FixedBuffers::plan` cuts
        // `0..used_len`), and the mapping outlives the registration: the ring holds a
        // handle to the pool and is dropped (unregistering everything) before it.
        let registered = unsafe { ring.submitter().register_buffers(&iovecs) };
        registered.map_err(|source| Error::Register {
            bytes: pool.used_len(),
            iovecs: iovecs.len(),
            limit: memlock_limit(),
            source,
        })?;
        log::debug!(
            "io_uring: {} entries, pool registered as {} fixed buffers ({} MiB)",
            ring.params().sq_entries(),
            fixed.len(),
            pool.used_len() >> 20
        );
        Ok(Ring { ring, fixed, pool: pool.clone() })
    }

    /// How the pool is registered.
    pub fn fixed(&self) -> &FixedBuffers {
        &self.fixed
    }

    /// The registered pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Submission queue entries.
    pub fn entries(&self) -> u32 {
        self.ring.params().sq_entries()
    }

    /// The io_uring itself, to push entries and reap completions.
    pub fn io_uring(&mut self) -> &mut IoUring {
        &mut self.ring
    }

    /// A `READ_FIXED` of `len` bytes at file `offset` of `fd` into UMEM `addr..addr+len`,
    /// or `None` when that range is not inside one registered buffer. Building the entry
    /// is safe; pushing it is the caller's `unsafe` promise that the range and the file
    /// stay valid until the completion arrives.
    pub fn read_fixed(&self, fd: RawFd, addr: u64, len: u32, offset: u64) -> Option<squeue::Entry> {
        let index = self.fixed.index_of(addr, u64::from(len))?;
        let buf = self.pool.base_ptr().as_ptr().wrapping_add(addr as usize);
        Some(opcode::ReadFixed::new(types::Fd(fd), buf, len, index).offset(offset).build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    #[test]
    fn small_pool_is_one_iovec() {
        let f = FixedBuffers::plan_layout(16 * MIB, 80 * MIB, MIB as u32).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f.slice(0), Some(0..80 * MIB));
        assert_eq!(f.index_of(79 * MIB, MIB), Some(0));
        assert_eq!(f.index_of(79 * MIB, MIB + 1), None);
    }

    #[test]
    fn four_gib_pool_is_cut_at_one_gib() {
        let len = 16 * MIB + 4 * GIB;
        let f = FixedBuffers::plan_layout(16 * MIB, len, MIB as u32).unwrap();
        assert_eq!(f.len(), 5);
        for i in 0..f.len() {
            let s = f.slice(i).unwrap();
            assert!(s.end - s.start <= GIB);
        }
        assert_eq!(f.index_of(GIB, MIB), Some(1));
        assert_eq!(f.index_of(len - MIB, MIB), Some(4));
        assert_eq!(f.index_of(len, 1), None);
    }

    #[test]
    fn no_block_straddles_a_cut() {
        // 100 frames of 4 KiB put the blocks off any power-of-two boundary.
        let base = 100 * 4096;
        let block = 3 * MIB as u32;
        let len = base + 2000 * u64::from(block);
        let f = FixedBuffers::plan_layout(base, len, block).unwrap();
        for b in 0..2000u64 {
            let addr = base + b * u64::from(block);
            assert!(f.index_of(addr, u64::from(block)).is_some(), "block {b} straddles");
        }
        for i in 0..f.len() {
            let s = f.slice(i).unwrap();
            assert!(s.end - s.start <= GIB);
        }
    }

    #[test]
    fn huge_frame_area_is_cut_too() {
        let f = FixedBuffers::plan_layout(3 * GIB, 3 * GIB, 0).unwrap();
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn oversized_block_is_refused() {
        assert!(FixedBuffers::plan_layout(0, 4 * GIB, u32::MAX).is_err());
    }
}
