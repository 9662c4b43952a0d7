//! Response bodies read block by block through umem's [`BlockCache`] into the pinned pool,
//! for both backends that serve from the pool (AF_XDP, and the kernel's `direct-uring`).
//!
//! ```text
//!   Blocks::open(file, range) ──► BlockStream ── feed ──► cache.get(block) ── hit ──► ready
//!                                                                    └─ miss: Ticket ──► waiting
//!   Blocks::poll ──► BlockDone { ticket } ──► waiting[ticket] = SessionId ──► that session's stream
//! ```
//!
//! Waiters are keyed by the cache's ticket and name their connection by [`SessionId`]
//! (slot and generation): a read that finishes, or fails, after its connection closed
//! reaches nobody, even when a new connection already took the slot.

mod stream;

use std::collections::HashMap;
use std::fs::File;

use umem::{BlockCache, BlockDone, BufSlice, CachedFile, Lookup, Pool, Ticket};

use crate::held::HeldFiles;
use crate::http::ByteRange;
use crate::session::table::{SessionId, Table};

pub use stream::BlockStream;

/// A finished block read for one session: the ticket it waited on and the bytes, or why
/// the read failed.
pub type Delivery = (SessionId, Ticket, Result<BufSlice, umem::Error>);

/// The block cache of one worker and who waits for which read.
#[derive(Debug)]
pub struct Blocks {
    cache: BlockCache,
    /// Served files, one descriptor per inode (see [`crate::held`]).
    held: HeldFiles,
    /// Cache tickets -> the session that asked.
    waiting: HashMap<Ticket, SessionId>,
    done: Vec<BlockDone>,
}

impl Blocks {
    /// Bodies through `cache`.
    pub fn new(cache: BlockCache) -> Blocks {
        Blocks { cache, held: HeldFiles::default(), waiting: HashMap::new(), done: Vec::new() }
    }

    /// The cache (for counters).
    pub fn cache(&self) -> &BlockCache {
        &self.cache
    }

    /// The pool the blocks (and header frames) come from.
    pub fn pool(&self) -> &Pool {
        self.cache.reader().pool()
    }

    /// Whether reads are in flight or queued.
    pub fn reading(&self) -> bool {
        !self.cache.reader().is_idle()
    }

    /// Starts a body: `range` of `file` (opened beneath the root), through the cache.
    pub fn open(&mut self, file: File, range: ByteRange) -> Result<BlockStream, umem::Error> {
        let f = self.held.open(&mut self.cache, file)?;
        BlockStream::new(f, range)
    }

    /// Block `index` of `file` for session `owner`.
    fn get(&mut self, owner: SessionId, file: &CachedFile, index: u64) -> Result<Lookup, umem::Error> {
        let l = self.cache.get(file, index)?;
        if let Lookup::Pending(t) = l {
            self.waiting.insert(t, owner);
        }
        Ok(l)
    }

    /// Submits queued reads and hands every finished one to `deliver`, with the session
    /// that waits for it; returns how many reads finished.
    pub fn poll(&mut self, mut deliver: impl FnMut(Delivery)) -> usize {
        let mut done = std::mem::take(&mut self.done);
        if let Err(e) = self.cache.poll(&mut done) {
            log::warn!("block reads: {e}");
        }
        let n = done.len();
        for d in done.drain(..) {
            if let Some(d) = self.route(d) {
                deliver(d);
            }
        }
        self.done = done;
        n
    }

    /// The session a finished read is for, if anyone still waits for its ticket.
    pub fn route(&mut self, d: BlockDone) -> Option<Delivery> {
        let owner = self.waiting.remove(&d.ticket)?;
        Some((owner, d.ticket, d.result))
    }

    /// Counters of the cache and the reader.
    pub fn counters(&self, out: &mut Vec<(String, u64)>) {
        let rs = self.cache.reader().stats();
        let cs = self.cache.stats();
        out.extend([
            ("cache_hits_total".into(), cs.hits),
            ("cache_misses_total".into(), cs.misses),
            ("cache_evictions_total".into(), cs.evictions),
            ("cache_streamed_total".into(), cs.streamed),
            ("cache_admissions_total".into(), cs.admissions),
            ("cache_rejections_total".into(), cs.rejections),
            ("cache_admitted_blocks_total".into(), cs.admitted_blocks),
            ("cache_admission_losses_total".into(), cs.admission_losses),
            ("cache_admission_resets_total".into(), cs.admission_resets),
            ("cache_large_hits_total".into(), cs.large_hits),
            ("cache_large_hit_bytes_total".into(), cs.large_hit_bytes),
            ("cache_large_read_bytes_total".into(), cs.large_read_bytes),
            ("cache_cached_blocks".into(), u64::from(cs.cached)),
            ("cache_bytes".into(), u64::from(cs.cached) * u64::from(self.pool().block_size())),
            ("read_bytes_direct_total".into(), rs.bytes_direct),
            ("read_bytes_buffered_total".into(), rs.bytes_buffered),
            ("reads_direct_total".into(), rs.reads_direct),
            ("reads_buffered_total".into(), rs.reads_buffered),
            ("read_direct_fallback_files_total".into(), rs.fallbacks),
            ("read_errors_total".into(), rs.errors),
        ]);
    }
}

/// A connection whose responses may be block streams.
pub trait HasStreams {
    /// The block streams of its queued responses, front first.
    fn streams_mut(&mut self) -> impl Iterator<Item = &mut BlockStream>;
}

/// Hands a finished read to the stream that waits for its ticket, in the connection the
/// delivery names; false if there is none (the connection or its response is gone).
pub fn deliver<T: HasStreams>(conns: &mut Table<T>, (id, ticket, result): Delivery) -> bool {
    let Some(c) = conns.get_mut(id) else { return false };
    for s in c.streams_mut() {
        if s.waits_for(ticket) {
            s.deliver(ticket, result);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests;
