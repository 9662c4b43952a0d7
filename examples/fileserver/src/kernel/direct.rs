//! The `direct-uring` rung: file blocks read with io_uring `READ_FIXED` and `O_DIRECT`
//! into a pinned, registered pool (the same [`Blocks`] over umem's block cache as the
//! AF_XDP backend), then written from the pool to the kernel socket: no page cache, one
//! CPU copy (into the socket buffer).
//!
//! ```text
//!   file ── READ_FIXED, O_DIRECT ──► pool block ── write(2) ──► socket buffer ──► NIC
//! ```
//!
//! Small files (up to `--direct-threshold`) stay cached in the pool; larger ones stream
//! through it until requested again (then they are admitted if they fit). The ring's descriptor is in the epoll set, so completions wake the loop.

use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;

use anyhow::{Context, Result};
use mio::net::TcpStream;
use umem::{BlockCache, Pool};

use super::body::{Body, Source};
use crate::blocks::Blocks;
use crate::metrics::Metrics;
use crate::options::PoolOpts;
use crate::root::Root;
use crate::session::table::SessionId;
use crate::session::{Progress, Wait};

/// Blocks asked ahead per response (bounds one connection's share of the pool).
const AHEAD: usize = 8;

/// The pool, the cache and who waits for which read.
#[derive(Debug)]
pub(super) struct Direct {
    pub blocks: Blocks,
    pool: Pool,
    opts: PoolOpts,
}

impl Direct {
    pub fn new(opts: &PoolOpts, root: &Root) -> Result<Direct> {
        let pool = Pool::new(&opts.pool_config(1)).context(
            "creating the pinned pool for direct-uring (smaller: --blocks, --block-kib; no hugepages: --hugepages off)",
        )?;
        let reader =
            umem::BlockReader::new(&pool, &opts.reader_config()).context("creating the io_uring block reader")?;
        if opts.direct_io {
            crate::blocks::align::check(&reader, crate::blocks::align::of_root(root)).map_err(anyhow::Error::msg)?;
        }
        let cache = BlockCache::new(reader, &opts.cache_config());
        Ok(Direct { blocks: Blocks::new(cache), pool, opts: opts.clone() })
    }

    /// The ring's descriptor (readable when reads completed).
    pub fn ring_fd(&self) -> std::os::fd::RawFd {
        self.blocks.cache().reader().ring().as_raw_fd()
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

    /// Counters for the metrics dump.
    pub fn counters(&self, out: &mut Vec<(String, u64)>) {
        self.blocks.counters(out);
        out.push(("pool_blocks_free".into(), u64::from(self.pool.stats().blocks_free)));
    }
}

/// Writes body bytes from the pool until the body is complete, the socket is full, or a
/// block is still being read (its completion drives the connection again).
pub(super) fn send(
    d: &mut Direct,
    id: SessionId,
    sock: &mut TcpStream,
    b: &mut Body,
    m: &mut Metrics,
) -> std::io::Result<Progress> {
    let Source::Blocks(s) = &mut b.src else { return Err(std::io::Error::other("direct-uring body without blocks")) };
    let mut sent = 0;
    loop {
        s.feed(&mut d.blocks, id, AHEAD)?;
        let Some(data) = s.front() else {
            if s.is_done() {
                return Ok(Progress::done(sent));
            }
            return Ok(Progress::blocked(sent, s.stalled_on()));
        };
        match sock.write(data.as_bytes()) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                s.consume(n);
                b.pos += n as u64;
                sent += n;
                m.bytes_sent += n as u64;
                m.bytes_copied += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Progress::blocked(sent, Wait::Room)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
