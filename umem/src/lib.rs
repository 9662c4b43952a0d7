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

pub mod error;
pub mod pool;
pub mod region;

pub use error::Error;
pub use pool::{BadAddr, Buf, BufSlice, Pool, PoolConfig, PoolStats};
pub use region::{hugepage_counts, Backing, HugePages, HUGEPAGE_SIZE};
