//! `umem`: the pinned memory pool at the bottom of the stack.
//!
//! ```text
//!   file ── io_uring READ_FIXED, O_DIRECT ──► payload block ─┐
//!                                                           │   one region: hugepage-backed,
//!   NIC ◄── AF_XDP TX: [header frame | CONTD] [block range] ┘   mlocked, registered once with
//!   NIC ──► AF_XDP RX ──► packet frame ──► stack               AF_XDP and with io_uring
//! ```
//!
//! A [`Pool`] is one anonymous mapping (2 MiB hugepages, or 4 KiB pages with
//! `MADV_HUGEPAGE` and a logged warning), cut into packet *frames* (the AF_XDP chunk size)
//! and larger payload *blocks* (where file blocks land). Frames and blocks are handed out as
//! reference-counted [`Buf`] handles; a byte range of one is a [`BufSlice`]. The kernel's
//! share in a slot is a *lease* (see [`pool`] for the states), so the pool always knows who
//! holds every slot and nothing is freed while a descriptor still names it.
//!
//! Handles are `!Send`: a pool belongs to one run-to-completion thread, as a DPDK lcore's
//! mempool cache does. Build one pool per thread.
//!
//! File blocks come in through three layers, each usable alone:
//!
//! * [`uring`]: an io_uring with the whole pool registered once as fixed buffers (one
//!   iovec per <= 1 GiB slice), so reads pay no per-I/O page pinning.
//! * [`reader`]: the [`BlockReader`]: `O_DIRECT` `READ_FIXED` reads into payload blocks,
//!   many in flight, aligned as [`dio`] (`statx` `STATX_DIOALIGN`) says, buffered where the
//!   file system refuses `O_DIRECT`; completions are [`BufSlice`]s of exactly the file's
//!   bytes.
//! * [`cache`]: the [`BlockCache`]: blocks of small files stay in the pool, shared by
//!   reference count among every sender; large files stream past it; a changed file is
//!   never served stale.
//!
//! ```no_run
//! # fn main() -> Result<(), umem::Error> {
//! use umem::{BlockCache, BlockReader, CacheConfig, Lookup, Pool, PoolConfig, ReaderConfig};
//! let pool = Pool::new(&PoolConfig { blocks: 64, ..PoolConfig::frames(1024) })?;
//! let reader = BlockReader::new(&pool, &ReaderConfig { headroom: 66, ..Default::default() })?;
//! let mut cache = BlockCache::new(reader, &CacheConfig::default());
//! let file = cache.open("/srv/www/index.html".as_ref())?; // once per request: one statx
//! let mut done = Vec::new();
//! for i in 0..file.blocks() {
//!     match cache.get(&file, i)? {
//!         Lookup::Hit(bytes) => { /* queue `bytes` for sending */ }
//!         Lookup::Pending(_ticket) => { cache.wait(&mut done)?; }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Needs Linux 6.1 for `STATX_DIOALIGN` (older kernels get an assumed 4096 alignment) and
//! io_uring enabled (`kernel.io_uring_disabled` = 0).

mod admit;
pub mod cache;
mod clock;
pub mod dio;
pub mod error;
pub mod pool;
pub mod reader;
pub mod region;
pub mod uring;

pub use cache::{BlockCache, BlockDone, BlockUsage, CacheConfig, CacheStats, CachedFile, Lookup, Ticket};
pub use dio::{Access, BufferedWhy, DioAlign, DioSupport, FileKey, FileMeta};
pub use error::Error;
pub use pool::{BadAddr, Buf, BufSlice, Pool, PoolConfig, PoolStats, UmemAddr};
pub use reader::{BlockReader, Completion, DirectIo, FileId, FileInfo, ReaderConfig, ReaderStats, ReqId};
pub use region::{hugepage_counts, Backing, HugePages, HUGEPAGE_SIZE};
pub use uring::{FixedBuffers, Ring};
