//! The block cache: file blocks that stay in the pool and are shared, by reference count,
//! among every connection that sends them.
//!
//! ```text
//!   open(path) ── statx ──► FileKey (dev, ino, size, mtime, ctime) ── changed? drop old blocks
//!   get(file, i) ─► hit:  BufSlice (one more reference to the cached block)
//!                └► miss: one read per block, however many ask (later askers join it)
//!   poll/wait   ──► BlockDone { ticket, .. } for every asker; small files' blocks stay cached,
//!                   and a large file's when admission lets it in
//! ```
//!
//! * **Never stale.** Call [`BlockCache::open`] for every request: it costs one `statx`,
//!   and blocks are keyed by the file's [`FileKey`], so a file whose inode, size, mtime or
//!   ctime changed is read afresh (and its old blocks are dropped).
//! * **Shared, never freed under a sender.** A cached block is a [`BufSlice`]; a hit hands
//!   out another reference. Eviction (CLOCK) only drops the cache's reference: a block a
//!   send queue still holds stays alive until the send queue lets go, and the hand passes
//!   over such blocks when it needs memory, since evicting them would free none.
//! * **Large files stream, unless they are hot.** Files above
//!   [`CacheConfig::max_file_size`] (nginx's `directio` threshold) are read block by block
//!   past the cache the first time, so a scan of one-off downloads does not push out the
//!   small hot files. A large file requested again (lately) that fits in the cache is
//!   *admitted*: its blocks go in as they are read, each only if its file is requested
//!   more often than the file of the block it replaces (TinyLFU: the `admit` module),
//!   so repeated downloads are served from memory and the hot set stays.
//! * **Memory first.** When the pool has no free block for a read, the cache evicts an
//!   unshared block and retries; if every block is held elsewhere, the read fails with
//!   [`Error::PoolExhausted`].

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::admit::{self, Admission};
use crate::clock::Clock;
use crate::dio::{self, FileKey, FileMeta};
use crate::error::Error;
use crate::pool::BufSlice;
use crate::reader::{BlockReader, Completion, FileId, ReqId};

/// How a [`BlockCache`] behaves.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Blocks the cache may keep.
    pub capacity: u32,
    /// Files larger than this many bytes are *large*: streamed past the cache unless
    /// admitted.
    pub max_file_size: u64,
    /// Open files kept (least recently used idle ones are closed beyond this).
    pub max_open_files: usize,
    /// Whether a large file requested again, that fits in the cache, is admitted
    /// (frequency-based, TinyLFU); `false`: large files always stream.
    pub admit_large: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { capacity: 64, max_file_size: 4 << 20, max_open_files: 256, admit_large: true }
    }
}

/// One version of a file, as seen by one [`BlockCache::open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedFile {
    /// The version.
    pub key: FileKey,
    /// Bytes per block (the last block may be shorter).
    pub block_len: u32,
    /// Whether blocks read for this request go into the cache: a small file's always, a
    /// large file's when the request was admitted.
    pub cacheable: bool,
    /// Larger than [`CacheConfig::max_file_size`].
    pub large: bool,
}

impl CachedFile {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.key.size
    }

    /// Number of blocks (0 for an empty file).
    pub fn blocks(&self) -> u64 {
        match self.block_len {
            0 => 0,
            n => self.key.size.div_ceil(u64::from(n)),
        }
    }

    /// The file bytes block `index` holds, or `None` past the end.
    pub fn block_range(&self, index: u64) -> Option<Range<u64>> {
        let start = index.checked_mul(u64::from(self.block_len))?;
        (self.block_len > 0 && start < self.key.size)
            .then(|| start..(start + u64::from(self.block_len)).min(self.key.size))
    }
}

/// Names one asker's pending block in [`BlockDone`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// The answer to [`BlockCache::get`].
#[derive(Debug)]
pub enum Lookup {
    /// The block was cached: here it is (one more reference).
    Hit(BufSlice),
    /// It is being read; a [`BlockDone`] with this ticket will follow.
    Pending(Ticket),
}

/// A block that was asked for and has been read (or failed).
#[derive(Debug)]
pub struct BlockDone {
    /// The asker's ticket.
    pub ticket: Ticket,
    /// The file version.
    pub key: FileKey,
    /// The block index.
    pub block: u64,
    /// The block's bytes (exactly the file's bytes, shorter for the last block).
    pub result: Result<BufSlice, Error>,
}

/// Cache counters.
///
/// For the blocks of large files they add up:
/// `large_hits + admitted_blocks + admission_losses + streamed` = blocks of large files
/// asked for (less failed reads), and `large_hit_bytes + large_read_bytes` = their bytes;
/// `admissions + rejections` = requests of large files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Blocks served from the cache.
    pub hits: u64,
    /// Blocks of cacheable requests not in the cache (a read started or was joined).
    pub misses: u64,
    /// Misses that joined a read already in flight for the same block.
    pub joined: u64,
    /// Blocks of large files read past the cache (requests that were not admitted).
    pub streamed: u64,
    /// Requests of large files admitted: requested before, lately, and no larger than
    /// the cache.
    pub admissions: u64,
    /// Requests of large files streamed past the cache: the first request lately, a file
    /// larger than the cache, or admission off.
    pub rejections: u64,
    /// Blocks of admitted requests put in the cache.
    pub admitted_blocks: u64,
    /// Blocks of admitted requests not kept: the block they would have replaced belongs
    /// to a file requested at least as often, or every block is held by a sender.
    pub admission_losses: u64,
    /// Blocks of large files served without a disk read of their own (cache hits, and
    /// joins of a read in flight).
    pub large_hits: u64,
    /// Bytes of large files served that way, from memory.
    pub large_hit_bytes: u64,
    /// Bytes of large files read from disk (streamed or admitted).
    pub large_read_bytes: u64,
    /// Times the admission counts were halved (aging: every ten cache capacities of
    /// bytes asked).
    pub admission_resets: u64,
    /// Blocks the cache let go of to make room (for its capacity or for a read).
    pub evictions: u64,
    /// Blocks dropped because their file changed.
    pub invalidations: u64,
    /// Blocks in the cache now.
    pub cached: u32,
    /// Of those, blocks also held by someone else now (send queues, completions).
    pub cached_shared: u32,
}

/// Who holds the pool's payload blocks now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockUsage {
    /// Payload blocks in the pool.
    pub total: u32,
    /// Free.
    pub free: u32,
    /// Leased to reads in flight or queued.
    pub reading: u32,
    /// Held by the cache (some also by send queues: [`CacheStats::cached_shared`]).
    pub cached: u32,
    /// Held only by the application: send queues, completions not yet consumed.
    pub elsewhere: u32,
}

#[derive(Debug)]
struct Loading {
    key: FileKey,
    block: u64,
    waiters: Vec<Ticket>,
    /// Whether the block goes into the cache when it lands.
    insert: bool,
    /// Whether it belongs to a large file (admission decides on insert; counted apart).
    large: bool,
}

#[derive(Debug)]
struct OpenEntry {
    file: FileId,
    last_use: u64,
}

/// A block cache over a [`BlockReader`]. See the module docs.
#[derive(Debug)]
pub struct BlockCache {
    reader: BlockReader,
    cfg: CacheConfig,
    blocks: Clock<(FileKey, u64), BufSlice>,
    /// Reads in flight, and which of them load a cacheable block.
    loading: HashMap<ReqId, Loading>,
    by_block: HashMap<(FileKey, u64), ReqId>,
    open: HashMap<FileKey, OpenEntry>,
    by_path: HashMap<PathBuf, FileKey>,
    uses: u64,
    next_ticket: u64,
    scratch: Vec<Completion>,
    admit: Admission,
    stats: CacheStats,
}

impl BlockCache {
    /// A cache that reads through `reader`.
    pub fn new(reader: BlockReader, cfg: &CacheConfig) -> BlockCache {
        let bytes = u64::from(cfg.capacity) * u64::from(reader.pool().block_size());
        BlockCache {
            admit: Admission::new(cfg.capacity, bytes),
            reader,
            cfg: cfg.clone(),
            blocks: Clock::new(),
            loading: HashMap::new(),
            by_block: HashMap::new(),
            open: HashMap::new(),
            by_path: HashMap::new(),
            uses: 0,
            next_ticket: 0,
            scratch: Vec::new(),
            stats: CacheStats::default(),
        }
    }

    /// The reader underneath (for its counters and pool).
    pub fn reader(&self) -> &BlockReader {
        &self.reader
    }

    /// Looks `path` up afresh (one `statx`; an `open` the first time a version is seen).
    /// Call it for every request: this is what keeps a changed file from being served
    /// stale.
    pub fn open(&mut self, path: &Path) -> Result<CachedFile, Error> {
        let meta = dio::statx_path(path)?;
        self.open_with(path, meta)
    }

    /// [`open`](Self::open) with the `statx` already taken by the caller, on a descriptor
    /// of the file `path` names ([`dio::statx_fd`] on the one just opened to serve the
    /// request): one path walk less. Take `meta` afresh for every request, as `open`
    /// would, or a changed file is served stale.
    pub fn open_with(&mut self, path: &Path, meta: FileMeta) -> Result<CachedFile, Error> {
        if !meta.regular {
            return Err(Error::NotRegular { path: path.to_owned() });
        }
        let mut key = meta.key;
        self.uses += 1;
        if let Some(e) = self.open.get_mut(&key) {
            e.last_use = self.uses;
        } else {
            let file = self.reader.open(path)?;
            // What was opened is what will be read: trust its statx over the path's.
            key = self.reader.info(file).map_or(key, |i| i.key);
            match self.open.get_mut(&key) {
                Some(e) => {
                    // The file changed between the two statx calls, back to a known version.
                    self.reader.close(file);
                    e.last_use = self.uses;
                }
                None => {
                    self.open.insert(key, OpenEntry { file, last_use: self.uses });
                }
            }
        }
        match self.by_path.get(path) {
            Some(old) if *old == key => {}
            Some(&old) => {
                self.invalidate(old);
                self.by_path.insert(path.to_owned(), key);
            }
            None => {
                self.by_path.insert(path.to_owned(), key);
            }
        }
        self.trim_open_files();
        let entry = &self.open[&key];
        let block_len = self.reader.info(entry.file).map_or(0, |i| i.block_len);
        let lately = self.admit.record(admit::file_hash(&key));
        let large = key.size > self.cfg.max_file_size;
        let cacheable = !large || {
            let blocks = key.size.div_ceil(u64::from(block_len.max(1)));
            let admitted = self.cfg.admit_large && lately >= 2 && blocks <= u64::from(self.cfg.capacity);
            match admitted {
                true => self.stats.admissions += 1,
                false => self.stats.rejections += 1,
            }
            admitted
        };
        Ok(CachedFile { key, block_len, cacheable, large })
    }

    /// Drops everything known about one version of a file.
    fn invalidate(&mut self, old: FileKey) {
        let n = self.blocks.remove_where(|(k, _)| *k == old);
        self.stats.invalidations += n as u64;
        for l in self.loading.values_mut().filter(|l| l.key == old) {
            l.insert = false;
        }
        self.by_block.retain(|(k, _), _| *k != old);
        if let Some(e) = self.open.remove(&old) {
            self.reader.close(e.file);
        }
    }

    fn trim_open_files(&mut self) {
        while self.open.len() > self.cfg.max_open_files.max(1) {
            let Some((&key, _)) = self.open.iter().min_by_key(|(_, e)| e.last_use) else {
                return;
            };
            if let Some(e) = self.open.remove(&key) {
                // Reads in flight finish first (the reader defers the close).
                self.reader.close(e.file);
            }
        }
    }

    /// Block `index` of `file`: from the cache, or read (once, however many ask).
    pub fn get(&mut self, file: &CachedFile, index: u64) -> Result<Lookup, Error> {
        let range = file.block_range(index).ok_or(Error::Request("block index past end of file"))?;
        let bytes = range.end - range.start;
        self.admit.age(bytes);
        let id = (file.key, index);
        // A request that was not admitted still takes what an earlier one left cached.
        if let Some(b) = self.blocks.get(&id) {
            self.stats.hits += 1;
            if file.large {
                self.stats.large_hits += 1;
                self.stats.large_hit_bytes += bytes;
            }
            return Ok(Lookup::Hit(b.clone()));
        }
        if file.cacheable {
            self.stats.misses += 1;
            if let Some(&req) = self.by_block.get(&id) {
                let ticket = self.ticket();
                if let Some(l) = self.loading.get_mut(&req) {
                    l.waiters.push(ticket);
                    self.stats.joined += 1;
                    if file.large {
                        self.stats.large_hits += 1;
                        self.stats.large_hit_bytes += bytes;
                    }
                    return Ok(Lookup::Pending(ticket));
                }
            }
        } else {
            self.stats.streamed += 1;
        }
        let entry = self.open.get_mut(&file.key).ok_or(Error::Request(
            "the file was closed (changed, or beyond max_open_files): call BlockCache::open again",
        ))?;
        self.uses += 1;
        entry.last_use = self.uses;
        let fid = entry.file;
        let len = (range.end - range.start) as u32;
        let req = self.submit_evicting(fid, range.start, len)?;
        let ticket = self.ticket();
        let l =
            Loading { key: file.key, block: index, waiters: vec![ticket], insert: file.cacheable, large: file.large };
        self.loading.insert(req, l);
        if file.cacheable {
            self.by_block.insert(id, req);
        }
        Ok(Lookup::Pending(ticket))
    }

    fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        Ticket(self.next_ticket)
    }

    /// Submits a read; when the pool is out of blocks, evicts unshared cached blocks (which
    /// frees them) until the read fits or nothing more can be freed.
    fn submit_evicting(&mut self, file: FileId, offset: u64, len: u32) -> Result<ReqId, Error> {
        loop {
            match self.reader.submit(file, offset, len) {
                Err(Error::PoolExhausted { .. }) if self.evict_unshared() => continue,
                other => return other,
            }
        }
    }

    fn evict_unshared(&mut self) -> bool {
        let evicted = self.blocks.evict(|_, b| shared(b), false).is_some();
        if evicted {
            self.stats.evictions += 1;
        }
        evicted
    }

    /// Submits what is queued and appends every block that landed to `out`, without
    /// blocking; returns how many were appended.
    pub fn poll(&mut self, out: &mut Vec<BlockDone>) -> Result<usize, Error> {
        let mut done = std::mem::take(&mut self.scratch);
        let r = self.reader.poll(&mut done);
        let n = self.deliver(&mut done, out);
        self.scratch = done;
        r.map(|_| n)
    }

    /// Like [`poll`](Self::poll), but blocks until at least one block lands, unless no
    /// read is in flight (then returns 0 at once).
    pub fn wait(&mut self, out: &mut Vec<BlockDone>) -> Result<usize, Error> {
        let mut done = std::mem::take(&mut self.scratch);
        let mut n = 0;
        let mut r = Ok(0);
        while n == 0 && r.is_ok() && !self.reader.is_idle() {
            r = self.reader.wait(&mut done);
            n += self.deliver(&mut done, out);
        }
        self.scratch = done;
        r.map(|_| n)
    }

    fn deliver(&mut self, done: &mut Vec<Completion>, out: &mut Vec<BlockDone>) -> usize {
        let before = out.len();
        for c in done.drain(..) {
            let Some(l) = self.loading.remove(&c.req) else {
                debug_assert!(false, "a completion the cache did not ask for");
                continue;
            };
            if l.insert {
                self.by_block.remove(&(l.key, l.block));
            }
            match c.result {
                Ok(data) => {
                    if l.large {
                        self.stats.large_read_bytes += data.len() as u64;
                    }
                    for &ticket in &l.waiters {
                        let result = Ok(data.clone());
                        out.push(BlockDone { ticket, key: l.key, block: l.block, result });
                    }
                    match (l.insert, l.large) {
                        (true, false) => self.insert((l.key, l.block), data),
                        (true, true) => self.admit_block((l.key, l.block), data),
                        (false, _) => {}
                    }
                }
                Err(e) => {
                    for &ticket in &l.waiters[1..] {
                        let result = Err(dup(&e));
                        out.push(BlockDone { ticket, key: l.key, block: l.block, result });
                    }
                    let ticket = l.waiters[0];
                    out.push(BlockDone { ticket, key: l.key, block: l.block, result: Err(e) });
                }
            }
        }
        out.len() - before
    }

    /// A small file's block: in it goes, CLOCK making room.
    fn insert(&mut self, id: (FileKey, u64), data: BufSlice) {
        if self.cfg.capacity == 0 {
            return;
        }
        while self.blocks.len() >= self.cfg.capacity as usize {
            if self.blocks.evict(|_, b| shared(b), true).is_none() {
                break;
            }
            self.stats.evictions += 1;
        }
        self.blocks.insert(id, data);
    }

    /// An admitted large file's block: in it goes while there is room; in a full cache
    /// only in place of a block of a file requested less often (TinyLFU). The file's own
    /// blocks and blocks held by senders are never the victim.
    fn admit_block(&mut self, id: (FileKey, u64), data: BufSlice) {
        let want = self.admit.estimate(admit::file_hash(&id.0));
        while self.blocks.len() >= self.cfg.capacity as usize {
            let victim = self.blocks.select(|k, b| k.0 == id.0 || shared(b)).copied();
            let Some(victim) = victim.filter(|v| self.admit.estimate(admit::file_hash(&v.0)) < want) else {
                self.stats.admission_losses += 1;
                return;
            };
            let gone = self.blocks.evict_selected();
            debug_assert!(gone.is_some_and(|(k, _)| k == victim));
            self.stats.evictions += 1;
        }
        self.blocks.insert(id, data);
        self.stats.admitted_blocks += 1;
    }

    /// Drops every cached block (blocks held by send queues live on in them).
    pub fn clear(&mut self) {
        let n = self.blocks.remove_where(|_| true);
        self.stats.evictions += n as u64;
    }

    /// Counters, with the cached and shared counts as of now.
    pub fn stats(&self) -> CacheStats {
        let mut s = self.stats;
        s.admission_resets = self.admit.resets;
        s.cached = self.blocks.len() as u32;
        s.cached_shared = self.blocks.values().filter(|b| b.buf().refs() > 1).count() as u32;
        s
    }

    /// Who holds the pool's payload blocks now.
    pub fn usage(&self) -> BlockUsage {
        let p = self.reader.pool().stats();
        let reading = self.reader.stats().blocks_held();
        let cached = self.blocks.len() as u32;
        BlockUsage {
            total: p.blocks,
            free: p.blocks_free,
            reading,
            cached,
            elsewhere: p.blocks.saturating_sub(p.blocks_free + reading + cached),
        }
    }
}

/// Whether a cached block is also held elsewhere (evicting it would free no memory).
fn shared(b: &BufSlice) -> bool {
    b.buf().refs() > 1
}

/// A copy of a read error for the second and later askers of the same block.
fn dup(e: &Error) -> Error {
    match e {
        Error::Read { call, offset, source } => Error::Read {
            call,
            offset: *offset,
            source: match source.raw_os_error() {
                Some(errno) => io::Error::from_raw_os_error(errno),
                None => io::Error::new(source.kind(), source.to_string()),
            },
        },
        Error::Request(what) => Error::Request(what),
        _ => Error::Request("the read of this block failed (see the first asker's error)"),
    }
}
