//! The `direct-uring` rung: file blocks read with io_uring `READ_FIXED` and `O_DIRECT`
//! into a pinned, registered pool (umem's [`BlockCache`] over a [`BlockReader`], the same
//! as the AF_XDP backend), then written from the pool to the kernel socket: no page cache,
//! one CPU copy (into the socket buffer).
//!
//! ```text
//!   file ── READ_FIXED, O_DIRECT ──► pool block ── write(2) ──► socket buffer ──► NIC
//! ```
//!
//! Small files (up to `--direct-threshold`) stay cached in the pool; larger ones stream
//! through it. The ring's descriptor is in the epoll set, so completions wake the loop.

use std::collections::{HashMap, VecDeque};

use crate::held::HeldFiles;
use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;

use anyhow::{Context, Result};
use mio::net::TcpStream;
use umem::{BlockCache, BlockDone, BufSlice, CachedFile, Lookup, Pool};

use super::body::{Body, Source};
use crate::metrics::Metrics;
use crate::options::PoolOpts;

/// Blocks asked ahead per response (bounds one connection's share of the pool).
const AHEAD: usize = 8;

/// A block of a response: asked for, read, or failed.
pub(super) enum Want {
    Pending(u64),
    Ready(BufSlice),
    Failed(String),
}

/// A response body read block by block through the cache.
pub(super) struct Stream {
    file: CachedFile,
    next_block: u64,
    /// One past the last block the body needs.
    last_block: u64,
    wanted: VecDeque<(u64, Want)>,
}

/// The pool, the cache and who waits for which read.
pub(super) struct Direct {
    cache: BlockCache,
    pool: Pool,
    /// Cache tickets -> the connection waiting for them.
    waiting: HashMap<u64, usize>,
    done: Vec<BlockDone>,
    /// Connections that found every block in use; retried on the next loop turn.
    pub starved: Vec<usize>,
    /// Served files, one descriptor per inode (see [`crate::held`]).
    held: HeldFiles,
    opts: PoolOpts,
}

impl Direct {
    pub fn new(opts: &PoolOpts) -> Result<Direct> {
        let pool = Pool::new(&opts.pool_config(1)).context(
            "creating the pinned pool for direct-uring (smaller: --blocks, --block-kib; no hugepages: --hugepages off)",
        )?;
        let reader =
            umem::BlockReader::new(&pool, &opts.reader_config()).context("creating the io_uring block reader")?;
        let cache = BlockCache::new(reader, &opts.cache_config());
        Ok(Direct {
            cache,
            pool,
            waiting: HashMap::new(),
            done: Vec::new(),
            starved: Vec::new(),
            held: HeldFiles::default(),
            opts: opts.clone(),
        })
    }

    /// The ring's descriptor (readable when reads completed).
    pub fn ring_fd(&self) -> std::os::fd::RawFd {
        self.cache.reader().ring().as_raw_fd()
    }

    /// Whether reads are in flight or queued.
    pub fn reading(&self) -> bool {
        !self.cache.reader().is_idle()
    }

    /// One line for the startup block.
    pub fn describe(&self) -> String {
        format!(
            "{} blocks x {} KiB, {}, {}; reads {}",
            self.opts.blocks,
            self.opts.block_kib,
            self.pool.backing(),
            if self.pool.locked() { "locked" } else { "not locked" },
            self.opts.describe_reads(),
        )
    }

    /// Starts a body: the file (already opened beneath the root) through the cache,
    /// reopened via this process's descriptor so no path is looked up again.
    ///
    /// The cache knows files by path and takes a path whose file changed as a sign to drop
    /// the old blocks. Descriptor numbers are reused for other files from one request to
    /// the next, so each inode keeps one descriptor (the first one that served it, up to
    /// 256 files, least recently used closed first) and thereby one stable path, like
    /// nginx's `open_file_cache`. An inode rewritten in place is still seen afresh (the
    /// cache's key has size, mtime and ctime).
    pub fn open(&mut self, file: File, start: u64, end: u64) -> Result<Stream, umem::Error> {
        let f = self.held.open(&mut self.cache, file)?;
        if f.block_len == 0 {
            return Err(umem::Error::Request("the file has no block size (empty?)"));
        }
        let bl = u64::from(f.block_len);
        Ok(Stream { file: f, next_block: start / bl, last_block: end.div_ceil(bl), wanted: VecDeque::new() })
    }

    /// Submits queued reads and collects finished ones: each result goes to the body that
    /// asked for it. Returns the connections to drive.
    pub fn poll(&mut self, mut deliver: impl FnMut(usize, u64, Want)) -> Vec<usize> {
        self.done.clear();
        if let Err(e) = self.cache.poll(&mut self.done) {
            log::warn!("block reads: {e}");
        }
        let mut woken = Vec::new();
        for d in self.done.drain(..) {
            let Some(idx) = self.waiting.remove(&d.ticket.0) else { continue };
            let want = match d.result {
                Ok(data) => Want::Ready(data),
                Err(e) => Want::Failed(e.to_string()),
            };
            deliver(idx, d.ticket.0, want);
            woken.push(idx);
        }
        woken.sort_unstable();
        woken.dedup();
        woken
    }

    /// Asks for the blocks ahead of the body.
    fn feed(&mut self, idx: usize, s: &mut Stream) -> std::io::Result<()> {
        while s.wanted.len() < AHEAD && s.next_block < s.last_block {
            let w = match self.cache.get(&s.file, s.next_block) {
                Ok(Lookup::Hit(data)) => Want::Ready(data),
                Ok(Lookup::Pending(t)) => {
                    self.waiting.insert(t.0, idx);
                    Want::Pending(t.0)
                }
                // Every block is held (by other responses or the cache): later.
                Err(umem::Error::PoolExhausted { .. }) => break,
                Err(e) => return Err(std::io::Error::other(e)),
            };
            s.wanted.push_back((s.next_block, w));
            s.next_block += 1;
        }
        Ok(())
    }

    /// Counters for the metrics dump.
    pub fn counters(&self, out: &mut Vec<(String, u64)>) {
        let rs = self.cache.reader().stats();
        let cs = self.cache.stats();
        let ps = self.pool.stats();
        out.extend([
            ("read_bytes_direct_total".into(), rs.bytes_direct),
            ("read_bytes_buffered_total".into(), rs.bytes_buffered),
            ("reads_direct_total".into(), rs.reads_direct),
            ("reads_buffered_total".into(), rs.reads_buffered),
            ("read_direct_fallback_files_total".into(), rs.fallbacks),
            ("read_errors_total".into(), rs.errors),
            ("cache_hits_total".into(), cs.hits),
            ("cache_misses_total".into(), cs.misses),
            ("cache_streamed_total".into(), cs.streamed),
            ("cache_evictions_total".into(), cs.evictions),
            ("pool_blocks_free".into(), u64::from(ps.blocks_free)),
        ]);
    }
}

impl Stream {
    /// Hands a finished read to the block that waits for `ticket`.
    pub fn deliver(&mut self, ticket: u64, want: &mut Option<Want>) {
        for (_, w) in self.wanted.iter_mut() {
            if matches!(w, Want::Pending(t) if *t == ticket) {
                if let Some(v) = want.take() {
                    *w = v;
                }
                return;
            }
        }
    }
}

/// Writes body bytes from the pool. Ok(true): complete; Ok(false): the socket is full or
/// a block is still being read (a completion drives the connection again).
pub(super) fn send(
    d: &mut Direct,
    idx: usize,
    sock: &mut TcpStream,
    b: &mut Body,
    m: &mut Metrics,
) -> std::io::Result<bool> {
    let Source::Blocks(s) = &mut b.src else { return Err(std::io::Error::other("direct-uring body without blocks")) };
    loop {
        if b.pos >= b.end {
            return Ok(true);
        }
        d.feed(idx, s)?;
        let Some((block, w)) = s.wanted.front() else {
            d.starved.push(idx);
            return Ok(false);
        };
        let data = match w {
            Want::Pending(_) => return Ok(false),
            Want::Failed(e) => return Err(std::io::Error::other(format!("reading block {block}: {e}"))),
            Want::Ready(data) => data,
        };
        let range = s.file.block_range(*block).ok_or(ErrorKind::UnexpectedEof)?;
        let stop = b.end.min(range.end);
        let lo = (b.pos - range.start) as usize;
        let hi = (stop - range.start) as usize;
        let bytes = data.as_bytes().get(lo..hi).ok_or(ErrorKind::UnexpectedEof)?;
        match sock.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                b.pos += n as u64;
                m.bytes_sent += n as u64;
                m.bytes_copied += n as u64;
                if b.pos >= stop {
                    s.wanted.pop_front();
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}
