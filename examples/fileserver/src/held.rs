//! Served files held open per inode, for the block cache.
//!
//! A file is resolved beneath the root (openat2), then opened in the block cache through
//! this process's descriptor, `/proc/self/fd/N`, so no path is looked up outside the root.
//! The cache knows files by path, so each inode keeps one descriptor, and with it one
//! stable path: a reused descriptor number would look like a changed file and throw
//! another file's cached blocks away (nginx's `open_file_cache` plays the same part). An
//! inode rewritten in place is still seen afresh: each request takes a `statx` of the
//! descriptor just opened for it (the cache's key has size, mtime and ctime), and hands
//! it to the cache, which so needs no walk of the `/proc` path.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;

use umem::{BlockCache, CachedFile};

/// Files held open at most; the least recently used goes first.
const MAX_HELD_FILES: usize = 256;

/// Open files by (device, inode), each with its `/proc/self/fd` path and the turn it was
/// last used.
#[derive(Debug, Default)]
pub struct HeldFiles {
    held: HashMap<(u64, u64), (File, PathBuf, u64)>,
    turn: u64,
}

impl HeldFiles {
    /// Opens `file` in `cache` through the descriptor held for its inode.
    pub fn open(&mut self, cache: &mut BlockCache, file: File) -> Result<CachedFile, umem::Error> {
        let meta = umem::dio::statx_fd(file.as_fd())?;
        let key = (meta.key.dev, meta.key.ino);
        self.turn += 1;
        if !self.held.contains_key(&key) && self.held.len() >= MAX_HELD_FILES {
            if let Some(old) = self.held.iter().min_by_key(|(_, (_, _, t))| *t).map(|(k, _)| *k) {
                self.held.remove(&old);
            }
        }
        let held = self.held.entry(key).or_insert_with(|| {
            let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
            (file, path, 0)
        });
        held.2 = self.turn;
        cache.open_with(&held.1, meta)
    }
}
