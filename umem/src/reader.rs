//! The block reader: asynchronous `READ_FIXED` reads of file ranges straight into the
//! pool's payload blocks, many in flight, completions handed back as [`BufSlice`]s.
//!
//! ```text
//!   submit(file, offset, len) ─► alloc block ─► lease_write ─► READ_FIXED ─► (disk DMA)
//!   poll / wait ◄── Completion { req, file, offset, data: BufSlice } ◄── reclaim ◄── CQE
//! ```
//!
//! While the kernel writes a block, the block is a write lease in the pool
//! ([`PoolStats::write_leases`](crate::PoolStats)), so the pool's counts say who holds it.
//!
//! **Alignment.** `O_DIRECT` needs the destination address, the file offset and the length
//! aligned ([`DioAlign`]). A request is widened to aligned bounds (offset rounded down,
//! length rounded up), lands at an aligned place in the block, and the completion's slice
//! covers exactly the bytes asked for, cut short at end of file.
//!
//! **Headroom.** With [`ReaderConfig::headroom`] = `h`, the read lands at
//! `align_up(h, mem_align)` into the block, so `h` bytes of packet header fit right in
//! front of the first payload byte of an aligned request: with 512-byte alignment and a
//! 66-byte Ethernet/IPv4/TCP header, data start at +512 and the header goes at +446.
//!
//! **Fallback.** A file whose file system refuses `O_DIRECT` is read buffered into the same
//! blocks (see [`dio`](crate::dio)), with a log line and [`ReaderStats::fallbacks`].
//!
//! The reader is polled from the run loop that owns the pool: no threads, no clock.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::dio::{self, Access, BufferedWhy, DioAlign, FileKey, OpenedFile};
use crate::error::Error;
use crate::pool::{BufSlice, Pool, UmemAddr};
use crate::uring::Ring;

/// Whether files are opened with `O_DIRECT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DirectIo {
    /// `O_DIRECT` where the file system allows it, buffered reads where it does not.
    #[default]
    Prefer,
    /// Buffered reads always (still into the pool's blocks, still through io_uring).
    Off,
}

/// How a [`BlockReader`] is set up.
#[derive(Clone, Debug)]
pub struct ReaderConfig {
    /// Reads in flight at most (the ring's submission entries); more wait in a queue.
    pub queue_depth: u32,
    /// Bytes kept free in front of the data in each block for a packet header; the data
    /// start at `align_up(headroom, mem_align)`.
    pub headroom: u32,
    /// `O_DIRECT` policy.
    pub direct: DirectIo,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig { queue_depth: 32, headroom: 0, direct: DirectIo::Prefer }
    }
}

/// An open file of a reader. Stale ids (closed files) are refused, never confused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    index: u32,
    gen: u32,
}

/// A submitted read, named again in its [`Completion`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReqId(pub u64);

/// What the reader knows about an open file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Identity and size at open time.
    pub key: FileKey,
    /// How it is read now.
    pub access: Access,
    /// Alignment reads of it use (1/1 for buffered files).
    pub align: DioAlign,
    /// The most bytes one aligned request may ask for (block size less headroom and
    /// alignment, rounded down to the offset alignment); the block cache's unit.
    pub block_len: u32,
}

impl FileInfo {
    /// Size in bytes at open time.
    pub fn size(&self) -> u64 {
        self.key.size
    }

    /// Whether reads bypass the page cache.
    pub fn is_direct(&self) -> bool {
        matches!(self.access, Access::Direct(_))
    }
}

/// A finished read: the bytes asked for (cut short at end of file) in a pool block.
#[derive(Debug)]
pub struct Completion {
    /// The request.
    pub req: ReqId,
    /// The file read.
    pub file: FileId,
    /// The file offset asked for.
    pub offset: u64,
    /// The bytes, or what went wrong. The slice's length is the valid length.
    pub result: Result<BufSlice, Error>,
}

/// What the reader has done so far; `in_flight` and `queued` are blocks it holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Bytes landed by `O_DIRECT` reads.
    pub bytes_direct: u64,
    /// Bytes landed by buffered reads (fallback or [`DirectIo::Off`]).
    pub bytes_buffered: u64,
    /// Read operations completed with `O_DIRECT`.
    pub reads_direct: u64,
    /// Read operations completed buffered.
    pub reads_buffered: u64,
    /// Files that fell back to buffered reads because `O_DIRECT` was refused.
    pub fallbacks: u64,
    /// Reads re-issued: short reads continued, `EAGAIN`/`EINTR`, `EINVAL` fallback.
    pub retries: u64,
    /// Requests completed with an error.
    pub errors: u64,
    /// Blocks leased to reads in the ring now.
    pub in_flight: u32,
    /// Blocks leased to reads waiting for ring space now.
    pub queued: u32,
}

impl ReaderStats {
    /// Blocks the reader holds (in the ring or queued for it).
    pub fn blocks_held(&self) -> u32 {
        self.in_flight + self.queued
    }
}

#[derive(Debug)]
struct OpenFile {
    file: std::fs::File,
    info: FileInfo,
    gen: u32,
    pending: u32,
    closing: bool,
}

/// One request, from submission to completion. All offsets are bytes.
#[derive(Debug, Clone, Copy)]
struct Request {
    id: ReqId,
    file: FileId,
    /// File offset and length asked for.
    offset: u64,
    len: u32,
    /// UMEM address of the leased block.
    block: UmemAddr,
    /// Where in the block the read starts (aligned).
    data_off: u32,
    /// `offset - read_off`: the bytes read in front of the ones asked for.
    lead: u32,
    /// Aligned file offset and length of the read.
    read_off: u64,
    want: u32,
    /// Bytes landed so far.
    got: u32,
    /// Continuations that made no progress.
    stalls: u8,
    /// Whether the operation in flight was issued with `O_DIRECT`.
    direct: bool,
}

/// Asynchronous block reads into a pool. See the module docs.
#[derive(Debug)]
pub struct BlockReader {
    ring: Ring,
    cfg: ReaderConfig,
    files: Vec<Option<OpenFile>>,
    free_files: Vec<u32>,
    next_gen: u32,
    /// In the ring, by `user_data`.
    inflight: Vec<Option<Request>>,
    free_inflight: Vec<usize>,
    n_inflight: u32,
    backlog: VecDeque<Request>,
    /// Requests that could not be issued (never expected); failed on the next poll.
    orphans: Vec<Request>,
    next_req: u64,
    need_enter: bool,
    cqes: Vec<(u64, i32)>,
    stats: ReaderStats,
    /// Worst-case distance of a block's start from `mem`-alignment (see `block_len`).
    block_align: u64,
}

impl BlockReader {
    /// A reader over `pool`'s payload blocks, with its own ring and the pool registered.
    pub fn new(pool: &Pool, cfg: &ReaderConfig) -> Result<BlockReader, Error> {
        if pool.stats().blocks == 0 {
            return Err(Error::Config("the pool has no payload blocks (PoolConfig::blocks)"));
        }
        if cfg.queue_depth == 0 || cfg.queue_depth > 4096 {
            return Err(Error::Config("queue_depth must be 1..=4096"));
        }
        if cfg.headroom > pool.block_size() / 2 {
            return Err(Error::Config("headroom must be at most half a payload block"));
        }
        let ring = Ring::new(pool, cfg.queue_depth)?;
        let first = pool.base_ptr().as_ptr() as u64 + pool.blocks_base();
        let zeros = first.trailing_zeros().min(pool.block_size().trailing_zeros()).min(63);
        Ok(BlockReader {
            ring,
            cfg: cfg.clone(),
            files: Vec::new(),
            free_files: Vec::new(),
            next_gen: 0,
            inflight: Vec::new(),
            free_inflight: Vec::new(),
            n_inflight: 0,
            backlog: VecDeque::new(),
            orphans: Vec::new(),
            next_req: 0,
            need_enter: false,
            cqes: Vec::new(),
            stats: ReaderStats::default(),
            block_align: 1 << zeros,
        })
    }

    /// The pool the reader fills.
    pub fn pool(&self) -> &Pool {
        self.ring.pool()
    }

    /// The ring, to see how the pool is registered.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Counters.
    pub fn stats(&self) -> ReaderStats {
        let mut s = self.stats;
        s.in_flight = self.n_inflight;
        s.queued = self.backlog.len() as u32;
        s
    }

    /// Whether no read is in flight or queued.
    pub fn is_idle(&self) -> bool {
        self.n_inflight == 0 && self.backlog.is_empty() && self.orphans.is_empty()
    }

    /// Opens `path` for reads (`O_DIRECT` unless refused or [`DirectIo::Off`]).
    pub fn open(&mut self, path: &Path) -> Result<FileId, Error> {
        let opened = dio::open_for_blocks(path, self.cfg.direct == DirectIo::Prefer)?;
        Ok(self.adopt(opened, path))
    }

    fn adopt(&mut self, opened: OpenedFile, path: &Path) -> FileId {
        let OpenedFile { file, meta, access } = opened;
        if let Access::Buffered(why @ (BufferedWhy::OpenRefused | BufferedWhy::Unsupported)) = access {
            self.note_fallback(path.display(), why);
        }
        let align = match access {
            Access::Direct(a) => a,
            Access::Buffered(_) => DioAlign::BUFFERED,
        };
        let info = FileInfo { key: meta.key, access, align, block_len: self.block_len(align) };
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        let entry = OpenFile { file, info, gen, pending: 0, closing: false };
        let index = match self.free_files.pop() {
            Some(i) => {
                self.files[i as usize] = Some(entry);
                i
            }
            None => {
                self.files.push(Some(entry));
                (self.files.len() - 1) as u32
            }
        };
        FileId { index, gen }
    }

    fn note_fallback(&mut self, what: impl std::fmt::Display, why: BufferedWhy) {
        self.stats.fallbacks += 1;
        let reason = match why {
            BufferedWhy::OpenRefused => "open(O_DIRECT) gave EINVAL",
            BufferedWhy::Unsupported => "statx reports no direct I/O for it",
            BufferedWhy::ReadRefused => "a direct read gave EINVAL",
            BufferedWhy::Asked => "asked",
        };
        // One warning per reader, then debug lines: a directory of such files would flood.
        if self.stats.fallbacks == 1 {
            log::warn!("{what}: {reason}; reading it buffered into the same blocks");
        } else {
            log::debug!("{what}: {reason}; reading it buffered ({} files so far)", self.stats.fallbacks);
        }
    }

    /// The payload bytes one block holds for a file of this alignment, in the worst case
    /// over all blocks: block size less the aligned headroom and any misalignment of the
    /// block itself, rounded down to the offset alignment.
    pub fn block_len(&self, a: DioAlign) -> u32 {
        let mem = u64::from(a.mem);
        let slack = mem.saturating_sub(self.block_align);
        let front = u64::from(self.cfg.headroom).next_multiple_of(mem) + slack;
        let room = u64::from(self.pool().block_size()).saturating_sub(front);
        (room / u64::from(a.offset) * u64::from(a.offset)) as u32
    }

    /// What the reader knows about `file`, or `None` for a closed or unknown id.
    pub fn info(&self, file: FileId) -> Option<&FileInfo> {
        self.file(file).map(|f| &f.info)
    }

    fn file(&self, id: FileId) -> Option<&OpenFile> {
        self.files.get(id.index as usize)?.as_ref().filter(|f| f.gen == id.gen && !f.closing)
    }

    /// Closes `file`; reads in flight finish first (their completions still arrive).
    pub fn close(&mut self, file: FileId) {
        let Some(Some(f)) = self.files.get_mut(file.index as usize) else { return };
        if f.gen != file.gen {
            return;
        }
        f.closing = true;
        if f.pending == 0 {
            self.files[file.index as usize] = None;
            self.free_files.push(file.index);
        }
    }

    /// Starts reading `len` bytes at `offset` of `file` into a free block. The read is
    /// queued if the ring is full; the block is taken now, so a full pool fails here with
    /// [`Error::PoolExhausted`] (drop handles, or let the cache evict, and try again).
    /// `offset % align.offset + len` must be at most [`FileInfo::block_len`].
    pub fn submit(&mut self, file: FileId, offset: u64, len: u32) -> Result<ReqId, Error> {
        let f = self.file(file).ok_or(Error::Request("unknown or closed FileId"))?;
        let a = f.info.align;
        let lead = (offset % u64::from(a.offset)) as u32;
        let span = u64::from(lead) + u64::from(len);
        if span > u64::from(f.info.block_len) {
            return Err(Error::Request("offset % alignment + len exceeds one block's payload (FileInfo::block_len)"));
        }
        let want = span.next_multiple_of(u64::from(a.offset)) as u32;
        let pool = self.ring.pool();
        let Some(buf) = pool.alloc_block() else {
            let s = pool.stats();
            return Err(Error::PoolExhausted {
                what: "payload blocks",
                free: s.blocks_free,
                total: s.blocks,
                reading: self.n_inflight + self.backlog.len() as u32,
                hint: "blocks are held by completions, send queues or the block cache: drop \
                       them or let the cache evict, or make PoolConfig::blocks larger",
            });
        };
        let mem = u64::from(a.mem);
        let start = pool.base_ptr().as_ptr() as u64 + buf.addr();
        let data_off = ((start + u64::from(self.cfg.headroom)).next_multiple_of(mem) - start) as u32;
        debug_assert!(u64::from(data_off) + u64::from(want) <= buf.capacity() as u64);
        let Ok(block) = buf.lease_write() else {
            return Err(Error::Request("a freshly allocated block was shared"));
        };
        let id = ReqId(self.next_req);
        self.next_req += 1;
        let req = Request {
            id,
            file,
            offset,
            len,
            block,
            data_off,
            lead,
            read_off: offset - u64::from(lead),
            want,
            got: 0,
            stalls: 0,
            direct: false,
        };
        if let Some(Some(f)) = self.files.get_mut(file.index as usize) {
            f.pending += 1;
        }
        self.backlog.push_back(req);
        self.issue();
        Ok(id)
    }

    /// Moves queued requests into the ring while it has room.
    fn issue(&mut self) {
        while self.n_inflight < self.ring.entries() {
            let Some(mut req) = self.backlog.pop_front() else { break };
            let Some(Some(f)) = self.files.get(req.file.index as usize) else {
                // Not expected: a file with pending requests is never removed.
                self.orphans.push(req);
                continue;
            };
            req.direct = f.info.is_direct();
            let dest = req.block.get() + u64::from(req.data_off + req.got);
            let Some(sqe) =
                self.ring.read_fixed(f.file.as_raw_fd(), dest, req.want - req.got, req.read_off + u64::from(req.got))
            else {
                // Not expected: every block lies inside one registered buffer.
                self.orphans.push(req);
                continue;
            };
            let slot = match self.free_inflight.pop() {
                Some(s) => s,
                None => {
                    self.inflight.push(None);
                    self.inflight.len() - 1
                }
            };
            let sqe = sqe.user_data(slot as u64);
            // SAFETY: the destination range lies in a block the pool leased to this read
            // (no handle to it exists until `reclaim` after the completion), inside the
            // registered pool that the ring keeps alive; the file stays open while it has
            // pending requests (`close` defers, `Drop` reaps everything first).
            let pushed = unsafe { self.ring.io_uring().submission().push(&sqe) };
            if pushed.is_err() {
                self.free_inflight.push(slot);
                self.backlog.push_front(req);
                break;
            }
            self.inflight[slot] = Some(req);
            self.n_inflight += 1;
            self.need_enter = true;
        }
    }

    /// Hands queued entries to the kernel (one `io_uring_enter`), if any.
    fn flush(&mut self) -> Result<(), Error> {
        if !self.need_enter {
            return Ok(());
        }
        match self.ring.io_uring().submit() {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)) => {
                return Ok(());
            }
            Err(source) => return Err(Error::Syscall { call: "io_uring_enter", source }),
        }
        self.need_enter = !self.ring.io_uring().submission().is_empty();
        Ok(())
    }

    /// Submits what is queued and appends every finished read to `out` without blocking;
    /// returns how many were appended.
    pub fn poll(&mut self, out: &mut Vec<Completion>) -> Result<usize, Error> {
        let before = out.len();
        self.issue();
        self.flush()?;
        for req in std::mem::take(&mut self.orphans) {
            self.finish(req, Err(Error::Request("the read could not be issued")), out);
        }
        self.reap(out);
        self.issue();
        self.flush()?;
        Ok(out.len() - before)
    }

    /// Like [`poll`](Self::poll), but blocks until at least one read finishes, unless
    /// nothing is in flight or queued (then returns 0 at once).
    pub fn wait(&mut self, out: &mut Vec<Completion>) -> Result<usize, Error> {
        loop {
            let n = self.poll(out)?;
            if n > 0 || self.is_idle() {
                return Ok(n);
            }
            match self.ring.io_uring().submit_and_wait(1) {
                Ok(_) => self.need_enter = !self.ring.io_uring().submission().is_empty(),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)) => {}
                Err(source) => return Err(Error::Syscall { call: "io_uring_enter", source }),
            }
        }
    }

    fn reap(&mut self, out: &mut Vec<Completion>) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(self.ring.io_uring().completion().map(|c| (c.user_data(), c.result())));
        for &(slot, res) in &cqes {
            let Some(req) = self.inflight.get_mut(slot as usize).and_then(Option::take) else {
                debug_assert!(false, "completion for no request");
                continue;
            };
            self.free_inflight.push(slot as usize);
            self.n_inflight -= 1;
            self.complete_op(req, res, out);
        }
        cqes.clear();
        self.cqes = cqes;
    }

    /// One operation of `req` finished with `res`: continue it, retry it, or finish it.
    fn complete_op(&mut self, mut req: Request, res: i32, out: &mut Vec<Completion>) {
        let index = req.file.index as usize;
        if res < 0 {
            let errno = -res;
            if errno == libc::EINTR || errno == libc::EAGAIN {
                self.stats.retries += 1;
                self.backlog.push_front(req);
                return;
            }
            if errno == libc::EINVAL && req.direct {
                if let Some(Some(f)) = self.files.get_mut(index) {
                    if f.info.is_direct() {
                        if let Err(e) = dio::clear_direct(&f.file) {
                            return self.finish(req, Err(e), out);
                        }
                        f.info.access = Access::Buffered(BufferedWhy::ReadRefused);
                        self.note_fallback(format_args!("file {:?}", req.file), BufferedWhy::ReadRefused);
                    }
                }
                self.stats.retries += 1;
                self.backlog.push_front(req);
                return;
            }
            let source = std::io::Error::from_raw_os_error(errno);
            let err = Error::Read { call: "io_uring READ_FIXED", offset: req.offset, source };
            return self.finish(req, Err(err), out);
        }
        let n = res as u32;
        if req.direct {
            self.stats.bytes_direct += u64::from(n);
            self.stats.reads_direct += 1;
        } else {
            self.stats.bytes_buffered += u64::from(n);
            self.stats.reads_buffered += 1;
        }
        let prev = req.got;
        req.got = prev.saturating_add(n).min(req.want);
        let Some(f) = self.files.get(index).and_then(Option::as_ref) else {
            return self.finish(req, Err(Error::Request("a read's file vanished")), out);
        };
        let eof = n == 0 || req.read_off + u64::from(req.got) >= f.info.key.size;
        if req.got >= req.want || eof {
            return self.finish(req, Ok(()), out);
        }
        // A short read before the end of the file: continue from where it stopped (for
        // direct reads, from the last aligned byte, re-reading a few bytes).
        if req.direct {
            req.got -= req.got % f.info.align.offset;
        }
        if req.got <= prev {
            req.stalls += 1;
            if req.stalls > 8 {
                let err = Error::Request("short reads before end of file made no progress");
                return self.finish(req, Err(err), out);
            }
        }
        self.stats.retries += 1;
        self.backlog.push_front(req);
    }

    /// Ends `req`: reclaims its block and hands out the valid bytes (or the error).
    fn finish(&mut self, req: Request, res: Result<(), Error>, out: &mut Vec<Completion>) {
        let index = req.file.index as usize;
        if let Some(Some(f)) = self.files.get_mut(index) {
            f.pending -= 1;
            if f.closing && f.pending == 0 {
                self.files[index] = None;
                self.free_files.push(index as u32);
            }
        }
        let result = match self.ring.pool().reclaim(req.block) {
            Err(_) => Err(Error::Request("the pool lost a read's lease")),
            Ok(buf) => res.and_then(|()| {
                let valid = req.got.saturating_sub(req.lead).min(req.len) as usize;
                let start = (req.data_off + req.lead) as usize;
                BufSlice::new(buf, start..start + valid).ok_or(Error::Request("a read overran its block"))
            }),
        };
        if result.is_err() {
            self.stats.errors += 1;
        }
        out.push(Completion { req: req.id, file: req.file, offset: req.offset, result });
    }
}

impl Drop for BlockReader {
    /// Waits for every read in flight, so no DMA targets a block after the reader is gone,
    /// and hands every leased block back to the pool.
    fn drop(&mut self) {
        let mut sink = Vec::new();
        // Queued requests never reached the kernel: end them without I/O.
        let queued: Vec<Request> = self.backlog.drain(..).chain(self.orphans.drain(..)).collect();
        for req in queued {
            self.finish(req, Err(Error::Request("reader dropped")), &mut sink);
        }
        while self.n_inflight > 0 {
            sink.clear();
            if let Err(e) = self.wait(&mut sink) {
                // The kernel may still write into leased blocks: keep the pool mapped
                // forever rather than risk a DMA into reused memory.
                log::error!("block reader dropped with reads in flight ({e}); leaking the pool");
                std::mem::forget(self.ring.pool().clone());
                return;
            }
            while let Some(req) = self.backlog.pop_front() {
                self.finish(req, Err(Error::Request("reader dropped")), &mut sink);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HugePages, PoolConfig};
    use std::os::fd::AsRawFd;

    fn pool() -> Pool {
        Pool::new(&PoolConfig {
            frame_size: 4096,
            frames: 4,
            block_size: 1 << 20,
            blocks: 2,
            hugepages: HugePages::Off,
            lock: false,
        })
        .unwrap()
    }

    #[test]
    fn block_len_leaves_room_for_headroom_and_alignment() {
        let p = pool();
        let r = BlockReader::new(&p, &ReaderConfig { headroom: 66, ..Default::default() }).unwrap();
        let a512 = DioAlign { mem: 512, offset: 512, reported: true };
        assert_eq!(r.block_len(a512), (1 << 20) - 512);
        assert_eq!(r.block_len(DioAlign::BUFFERED), (1 << 20) - 66);
        let r0 = BlockReader::new(&p, &ReaderConfig::default()).unwrap();
        assert_eq!(r0.block_len(a512), 1 << 20);
        let huge = ReaderConfig { headroom: 1 << 20, ..Default::default() };
        assert!(matches!(BlockReader::new(&p, &huge), Err(Error::Config(_))));
    }

    /// A file on the disk (O_DIRECT works) with `size` bytes of a simple pattern.
    fn disk_file(size: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
        let dir = tempfile::Builder::new().prefix("umem-unit-").tempdir_in("/var/tmp").unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        (dir, path, bytes)
    }

    /// Takes the next real completion out of the ring, leaving its request unfinished,
    /// so a test can hand `complete_op` a result the kernel would rarely give.
    fn intercept(r: &mut BlockReader) -> Request {
        loop {
            r.flush().unwrap();
            let cqe = r.ring.io_uring().completion().next();
            if let Some(c) = cqe {
                let slot = c.user_data() as usize;
                let req = r.inflight[slot].take().unwrap();
                r.free_inflight.push(slot);
                r.n_inflight -= 1;
                return req;
            }
            r.ring.io_uring().submit_and_wait(1).unwrap();
        }
    }

    fn finish_all(r: &mut BlockReader) -> Vec<Completion> {
        let mut out = Vec::new();
        while !r.is_idle() {
            r.wait(&mut out).unwrap();
        }
        out
    }

    #[test]
    fn einval_on_a_direct_read_falls_back_to_buffered() {
        let (_dir, path, bytes) = disk_file(3 << 20);
        let p = pool();
        let mut r = BlockReader::new(&p, &ReaderConfig::default()).unwrap();
        let f = r.open(&path).unwrap();
        assert!(r.info(f).unwrap().is_direct());
        r.submit(f, 1 << 20, 1 << 20).unwrap();
        let req = intercept(&mut r);
        let mut out = Vec::new();
        r.complete_op(req, -libc::EINVAL, &mut out);
        assert!(out.is_empty(), "retried, not failed");
        out = finish_all(&mut r);
        let got = out.pop().unwrap().result.unwrap();
        assert!(got.as_bytes() == &bytes[1 << 20..2 << 20]);
        let info = *r.info(f).unwrap();
        assert_eq!(info.access, Access::Buffered(BufferedWhy::ReadRefused));
        let fd = r.files[0].as_ref().unwrap().file.as_raw_fd();
        // SAFETY: F_GETFL on an fd the reader owns; reads flags only.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        assert_eq!(flags & libc::O_DIRECT, 0, "O_DIRECT cleared on the open file");
        let s = r.stats();
        assert_eq!((s.fallbacks, s.retries, s.errors), (1, 1, 0));
        assert_eq!(s.bytes_buffered, 1 << 20);
    }

    #[test]
    fn short_reads_before_eof_are_continued() {
        let (_dir, path, bytes) = disk_file((2 << 20) + 100);
        let p = pool();
        let mut r = BlockReader::new(&p, &ReaderConfig::default()).unwrap();
        let f = r.open(&path).unwrap();
        // An aligned short read, and an unaligned one (continued from the aligned byte).
        for short in [4096, 1000] {
            r.submit(f, 1 << 20, 1 << 20).unwrap();
            let req = intercept(&mut r);
            let mut out = Vec::new();
            r.complete_op(req, short, &mut out);
            assert!(out.is_empty(), "continued, not finished");
            out = finish_all(&mut r);
            let got = out.pop().unwrap().result.unwrap();
            assert!(got.as_bytes() == &bytes[1 << 20..2 << 20], "short read of {short}");
        }
        assert_eq!(r.stats().retries, 2);
        // Other errors reach the caller, and the block goes back to the pool.
        let start = p.stats();
        r.submit(f, 0, 4096).unwrap();
        let req = intercept(&mut r);
        let mut out = Vec::new();
        r.complete_op(req, -libc::EIO, &mut out);
        let err = out.pop().unwrap().result.unwrap_err();
        assert!(err.to_string().contains("READ_FIXED"), "{err}");
        assert_eq!(p.stats(), start);
    }

    #[test]
    fn a_pool_without_blocks_is_refused() {
        let p = Pool::new(&PoolConfig {
            frames: 4,
            blocks: 0,
            hugepages: HugePages::Off,
            lock: false,
            ..Default::default()
        })
        .unwrap();
        assert!(BlockReader::new(&p, &ReaderConfig::default()).is_err());
    }
}
