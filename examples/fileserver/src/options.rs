//! Settings both backends share: the HTTP limits and timers of every connection, and the
//! pinned pool with its block cache (the AF_XDP backend, and the kernel backend's
//! `direct-uring` rung).

use std::time::Duration;

use umem::{CacheConfig, DirectIo, HugePages, PoolConfig, ReaderConfig};

/// Limits and timers of connections.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most connections open at once; more are accepted and closed.
    pub max_connections: usize,
    /// A request head must arrive within this (slowloris).
    pub head_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub idle_timeout: Duration,
    /// A response that makes no progress (bytes acknowledged) for this long is abandoned.
    pub write_timeout: Duration,
    /// Most payload blocks one connection holds (read ahead plus unacknowledged), and
    /// the budget its fair share is cut from when the pool runs short (AF_XDP backend).
    pub conn_blocks: u32,
}

impl Limits {
    /// The longest of the timeouts (how far ahead the timer wheel must reach).
    pub fn longest_timeout(&self) -> Duration {
        self.head_timeout.max(self.idle_timeout).max(self.write_timeout)
    }
}

/// The pool of payload blocks and the block cache over it.
#[derive(Clone, Debug)]
pub struct PoolOpts {
    /// Size of a payload block (a file read lands in one), KiB.
    pub block_kib: u32,
    /// Payload blocks in the pool.
    pub blocks: u32,
    /// Hugepage policy of the pool.
    pub hugepages: HugePages,
    /// Blocks the cache may keep (at most half of `blocks`, so streams always find room).
    pub cache_blocks: u32,
    /// Files larger than this stream past the cache.
    pub direct_threshold: u64,
    /// `O_DIRECT` reads where the file system allows (else buffered io_uring reads).
    pub direct_io: bool,
}

impl PoolOpts {
    /// The pool: `frames` packet frames of 4 KiB, then the payload blocks; locked.
    pub fn pool_config(&self, frames: u32) -> PoolConfig {
        PoolConfig {
            frame_size: 4096,
            frames,
            block_size: self.block_kib * 1024,
            blocks: self.blocks,
            hugepages: self.hugepages,
            lock: true,
        }
    }

    /// The block reader: 32 reads in flight, no headroom (headers go in frames of their own).
    pub fn reader_config(&self) -> ReaderConfig {
        ReaderConfig {
            queue_depth: 32,
            headroom: 0,
            direct: if self.direct_io { DirectIo::Prefer } else { DirectIo::Off },
        }
    }

    /// Blocks the cache keeps: `cache_blocks`, at most half the pool's blocks.
    pub fn cache_capacity(&self) -> u32 {
        self.cache_blocks.min(self.blocks / 2)
    }

    /// The block cache.
    pub fn cache_config(&self) -> CacheConfig {
        CacheConfig { capacity: self.cache_capacity(), max_file_size: self.direct_threshold, max_open_files: 256 }
    }

    /// How files are read, for the startup block.
    pub fn describe_reads(&self) -> String {
        format!(
            "io_uring {} (cache {} blocks, files over {} bytes stream uncached)",
            if self.direct_io { "O_DIRECT where the file system allows" } else { "buffered (--no-direct-io)" },
            self.cache_capacity(),
            self.direct_threshold
        )
    }
}
