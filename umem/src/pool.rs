//! The pool: one region cut into packet frames and payload blocks, with reference-counted
//! handles whose ownership is explicit.
//!
//! Every slot (a frame or a block) is in exactly one of these states:
//!
//! | state | refs | leases | how it gets there |
//! |---|---|---|---|
//! | free | 0 | 0 | never used, or the last reference dropped |
//! | held by the application | > leases | any | [`Pool::alloc_frame`], [`Pool::reclaim`], [`Buf::clone`] |
//! | leased to the kernel for writing (fill ring, io_uring read) | 1 | 1 | [`Buf::lease_write`] |
//! | leased to the kernel for reading (TX ring) | >= 1 | >= 1 | [`Buf::lease_read`] |
//!
//! A lease is a reference that the kernel holds, named by the slot's UMEM address. A write
//! lease requires the only reference (nobody may read bytes the kernel is writing); read
//! leases may be shared by any number of descriptors and application handles. The counts
//! live in the pool, so a handle is a pointer and an index; it is `!Send`, like the
//! run-to-completion loop that owns the pool.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::ptr::NonNull;
use std::rc::Rc;

use crate::error::Error;
use crate::region::{Backing, HugePages, Region};

/// How a pool is cut up and backed.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Bytes per packet frame (the AF_XDP chunk size): 2048 or 4096.
    pub frame_size: u32,
    /// Number of packet frames.
    pub frames: u32,
    /// Bytes per payload block (file blocks land here): a multiple of `frame_size`.
    pub block_size: u32,
    /// Number of payload blocks (0 for a pool of frames only).
    pub blocks: u32,
    /// Hugepage policy.
    pub hugepages: HugePages,
    /// Lock the pages (`mlock`) so they stay resident.
    pub lock: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            frame_size: 4096,
            frames: 4096,
            block_size: 1 << 20,
            blocks: 0,
            hugepages: HugePages::Prefer,
            lock: true,
        }
    }
}

impl PoolConfig {
    /// Frames only, no payload blocks.
    pub fn frames(frames: u32) -> Self {
        PoolConfig { frames, ..Self::default() }
    }

    fn validate(&self) -> Result<Layout, Error> {
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return Err(Error::Config("frame_size must be 2048 or 4096 (the AF_XDP chunk sizes)"));
        }
        if self.frames == 0 {
            return Err(Error::Config("a pool needs at least one frame"));
        }
        if self.blocks > 0 && (self.block_size == 0 || !self.block_size.is_multiple_of(self.frame_size)) {
            return Err(Error::Config("block_size must be a non-zero multiple of frame_size"));
        }
        let frames_len = u64::from(self.frames) * u64::from(self.frame_size);
        let blocks_len = u64::from(self.blocks) * u64::from(self.block_size);
        let total = frames_len + blocks_len;
        // UMEM addresses in unaligned mode carry 48 bits of address.
        if total >= 1 << 48 || usize::try_from(total).is_err() {
            return Err(Error::Config("pool larger than 2^48 bytes"));
        }
        Ok(Layout {
            frame_size: self.frame_size,
            frames: self.frames,
            block_size: self.block_size,
            blocks: self.blocks,
            blocks_base: frames_len,
            len: total,
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct Layout {
    frame_size: u32,
    frames: u32,
    block_size: u32,
    blocks: u32,
    blocks_base: u64,
    len: u64,
}

impl Layout {
    /// The slot holding UMEM address `addr`, if any.
    fn slot_of(&self, addr: u64) -> Option<u32> {
        if addr < self.blocks_base {
            Some((addr / u64::from(self.frame_size)) as u32)
        } else if addr < self.len {
            let idx = (addr - self.blocks_base) / u64::from(self.block_size);
            Some(self.frames + idx as u32)
        } else {
            None
        }
    }

    fn slot_range(&self, slot: u32) -> Range<u64> {
        if slot < self.frames {
            let start = u64::from(slot) * u64::from(self.frame_size);
            start..start + u64::from(self.frame_size)
        } else {
            let start = self.blocks_base + u64::from(slot - self.frames) * u64::from(self.block_size);
            start..start + u64::from(self.block_size)
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    refs: Cell<u32>,
    leases: Cell<u32>,
}

#[derive(Debug)]
struct Inner {
    region: Region,
    layout: Layout,
    slots: Box<[Slot]>,
    free_frames: RefCell<Vec<u32>>,
    free_blocks: RefCell<Vec<u32>>,
    write_leases: Cell<u64>,
    read_leases: Cell<u64>,
}

/// An address in the pool's UMEM: a byte offset from the start of the mapping, the way
/// AF_XDP descriptors (and, added to the base, io_uring fixed-buffer reads) name memory.
/// Leases are named by it: [`Buf::lease_write`] gives one, [`Pool::reclaim`] and
/// [`Pool::release`] take one back.
#[doc(alias = "xdp_desc.addr")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct UmemAddr(u64);

impl UmemAddr {
    /// The address `offset` bytes into the UMEM.
    pub const fn new(offset: u64) -> UmemAddr {
        UmemAddr(offset)
    }

    /// The offset, as a ring descriptor carries it.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for UmemAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// An address handed back by the kernel (or a caller) that names no leased slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("UMEM address {0} names no leased slot of this pool")]
pub struct BadAddr(pub UmemAddr);

/// Counts of where the pool's slots are; see the module docs for the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Packet frames in all.
    pub frames: u32,
    /// Packet frames free.
    pub frames_free: u32,
    /// Payload blocks in all.
    pub blocks: u32,
    /// Payload blocks free.
    pub blocks_free: u32,
    /// References the kernel holds for writing (fill ring, io_uring reads in flight).
    pub write_leases: u64,
    /// References the kernel holds for reading (TX descriptors not yet completed).
    pub read_leases: u64,
}

/// The pinned memory pool. Cloning it clones a handle to the same pool.
#[derive(Clone, Debug)]
pub struct Pool {
    inner: Rc<Inner>,
}

impl Pool {
    /// Maps, prefaults and (unless `cfg.lock` is false) locks a pool.
    pub fn new(cfg: &PoolConfig) -> Result<Pool, Error> {
        let layout = cfg.validate()?;
        let region = Region::map(layout.len as usize, cfg.hugepages, cfg.lock)?;
        let nslots = (layout.frames + layout.blocks) as usize;
        let slots = (0..nslots).map(|_| Slot::default()).collect();
        // Reversed so that allocation hands out low addresses first.
        let free_frames = (0..layout.frames).rev().collect();
        let free_blocks = (layout.frames..layout.frames + layout.blocks).rev().collect();
        log::info!(
            "pool: {} frames x {} B + {} blocks x {} B = {} MiB on {}{}",
            layout.frames,
            layout.frame_size,
            layout.blocks,
            layout.block_size,
            region.len() >> 20,
            region.backing(),
            if region.locked() { ", locked" } else { ", not locked" },
        );
        Ok(Pool {
            inner: Rc::new(Inner {
                region,
                layout,
                slots,
                free_frames: RefCell::new(free_frames),
                free_blocks: RefCell::new(free_blocks),
                write_leases: Cell::new(0),
                read_leases: Cell::new(0),
            }),
        })
    }

    /// The whole mapped area (a multiple of 2 MiB, at least the slots' size), for
    /// registering with AF_XDP and io_uring. Using the pointer is the caller's business.
    pub fn area(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.inner.region.as_ptr(), self.inner.region.len())
    }

    /// Bytes covered by frames and blocks (the part of [`Pool::area`] in use).
    pub fn used_len(&self) -> u64 {
        self.inner.layout.len
    }

    /// The first byte of the mapping: UMEM address `a` is at `base_ptr() + a`.
    pub fn base_ptr(&self) -> NonNull<u8> {
        self.inner.region.as_ptr()
    }

    /// The UMEM address of the first payload block (frames come first, blocks after them).
    pub fn blocks_base(&self) -> u64 {
        self.inner.layout.blocks_base
    }

    /// The frame (chunk) size.
    pub fn frame_size(&self) -> u32 {
        self.inner.layout.frame_size
    }

    /// The payload block size.
    pub fn block_size(&self) -> u32 {
        self.inner.layout.block_size
    }

    /// What backs the pool.
    pub fn backing(&self) -> Backing {
        self.inner.region.backing()
    }

    /// Bytes from UMEM address `addr` to the end of the page it lies in: the most that a
    /// DMA descriptor starting there may cover and still be physically contiguous (to the
    /// end of its 2 MiB hugepage, or of its 4 KiB page on the small-page fallback).
    ///
    /// A zero-copy NIC reads each AF_XDP descriptor by DMA, so the kernel refuses a
    /// descriptor that runs into a page not physically next to the one it starts in
    /// (`xp_desc_crosses_non_contig_pg`: counted in `tx_invalid_descs`, never sent, never
    /// completed). A sender cuts its fragments where this says. (A copy-mode socket reads
    /// the pool by virtual address, where any range is fine.)
    #[doc(alias = "xp_desc_crosses_non_contig_pg")]
    pub fn contiguous_span(&self, addr: u64) -> u64 {
        let page = self.backing().page_size() as u64;
        let at = self.base_ptr().as_ptr() as usize as u64 + addr;
        page - at % page
    }

    /// Whether the pool's pages are locked.
    pub fn locked(&self) -> bool {
        self.inner.region.locked()
    }

    /// A free packet frame, or `None` when every frame is in use.
    pub fn alloc_frame(&self) -> Option<Buf> {
        let slot = self.inner.free_frames.borrow_mut().pop()?;
        Some(self.take(slot))
    }

    /// A free payload block, or `None` when every block is in use.
    pub fn alloc_block(&self) -> Option<Buf> {
        let slot = self.inner.free_blocks.borrow_mut().pop()?;
        Some(self.take(slot))
    }

    fn take(&self, slot: u32) -> Buf {
        let s = &self.inner.slots[slot as usize];
        debug_assert_eq!(s.refs.get(), 0, "free list held a referenced slot");
        s.refs.set(1);
        Buf { pool: self.inner.clone(), slot }
    }

    /// Moves up to `out.len()` free frames straight into write leases (for the fill ring)
    /// and writes their addresses; returns how many. No handle is built on the way.
    pub fn lease_free_frames(&self, out: &mut [UmemAddr]) -> usize {
        let mut free = self.inner.free_frames.borrow_mut();
        let n = out.len().min(free.len());
        for addr in &mut out[..n] {
            let slot = free.pop().unwrap_or_default();
            let s = &self.inner.slots[slot as usize];
            s.refs.set(1);
            s.leases.set(1);
            *addr = UmemAddr(self.inner.layout.slot_range(slot).start);
        }
        self.inner.write_leases.set(self.inner.write_leases.get() + n as u64);
        n
    }

    /// Turns a write lease back into a handle: the kernel has finished writing the slot
    /// that holds `addr` (an RX descriptor, an io_uring completion).
    pub fn reclaim(&self, addr: UmemAddr) -> Result<Buf, BadAddr> {
        let slot = self.leased_slot(addr)?;
        let s = &self.inner.slots[slot as usize];
        s.leases.set(s.leases.get() - 1);
        self.inner.write_leases.set(self.inner.write_leases.get().saturating_sub(1));
        Ok(Buf { pool: self.inner.clone(), slot })
    }

    /// Ends a read lease: the kernel has finished reading `addr` (a TX completion).
    pub fn release(&self, addr: UmemAddr) -> Result<(), BadAddr> {
        let slot = self.leased_slot(addr)?;
        let s = &self.inner.slots[slot as usize];
        s.leases.set(s.leases.get() - 1);
        self.inner.read_leases.set(self.inner.read_leases.get().saturating_sub(1));
        self.inner.unref(slot);
        Ok(())
    }

    fn leased_slot(&self, addr: UmemAddr) -> Result<u32, BadAddr> {
        let slot = self.inner.layout.slot_of(addr.0).ok_or(BadAddr(addr))?;
        if self.inner.slots[slot as usize].leases.get() == 0 {
            return Err(BadAddr(addr));
        }
        Ok(slot)
    }

    /// Where the slots are now.
    pub fn stats(&self) -> PoolStats {
        let l = &self.inner.layout;
        PoolStats {
            frames: l.frames,
            frames_free: self.inner.free_frames.borrow().len() as u32,
            blocks: l.blocks,
            blocks_free: self.inner.free_blocks.borrow().len() as u32,
            write_leases: self.inner.write_leases.get(),
            read_leases: self.inner.read_leases.get(),
        }
    }

    /// Whether `other` is a handle to this same pool.
    pub fn same(&self, other: &Pool) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Inner {
    fn unref(&self, slot: u32) {
        let s = &self.slots[slot as usize];
        let refs = s.refs.get() - 1;
        s.refs.set(refs);
        if refs == 0 {
            if slot < self.layout.frames {
                self.free_frames.borrow_mut().push(slot);
            } else {
                self.free_blocks.borrow_mut().push(slot);
            }
        }
    }
}

/// A counted reference to one frame or block of a pool. Dropping the last reference frees
/// the slot; the pool stays alive while any handle does.
#[derive(Debug)]
pub struct Buf {
    pool: Rc<Inner>,
    slot: u32,
}

impl Buf {
    /// The slot's UMEM address (its offset from the start of the pool).
    pub fn addr(&self) -> u64 {
        self.pool.layout.slot_range(self.slot).start
    }

    /// The slot's size in bytes.
    pub fn capacity(&self) -> usize {
        let r = self.pool.layout.slot_range(self.slot);
        (r.end - r.start) as usize
    }

    /// Whether this is a packet frame (as opposed to a payload block).
    pub fn is_frame(&self) -> bool {
        self.slot < self.pool.layout.frames
    }

    /// References to the slot now: handles, slices and leases together.
    pub fn refs(&self) -> u32 {
        self.pool.slots[self.slot as usize].refs.get()
    }

    /// Whether this handle is the slot's only reference.
    pub fn is_unique(&self) -> bool {
        self.pool.slots[self.slot as usize].refs.get() == 1
    }

    /// The slot's bytes.
    pub fn as_slice(&self) -> &[u8] {
        let r = self.pool.layout.slot_range(self.slot);
        // SAFETY: the range lies inside the region (Layout::validate), which lives as long
        // as `self.pool`. Nobody writes it while this borrow lasts: writers need `&mut` on
        // the only reference (`get_mut`) or a write lease, and both need uniqueness, which
        // this handle's existence excludes for anyone else.
        unsafe {
            std::slice::from_raw_parts(
                self.pool.region.as_ptr().as_ptr().add(r.start as usize),
                (r.end - r.start) as usize,
            )
        }
    }

    /// The slot's bytes for writing, when this is the only reference.
    pub fn get_mut(&mut self) -> Option<&mut [u8]> {
        if !self.is_unique() {
            return None;
        }
        let r = self.pool.layout.slot_range(self.slot);
        // SAFETY: in bounds as in `as_slice`; this is the only reference to the slot and
        // it is borrowed mutably, so no other reader or writer exists (the kernel holds no
        // lease, as a lease is a reference).
        Some(unsafe {
            std::slice::from_raw_parts_mut(
                self.pool.region.as_ptr().as_ptr().add(r.start as usize),
                (r.end - r.start) as usize,
            )
        })
    }

    /// Hands the slot to the kernel for writing (fill ring, io_uring read), returning its
    /// address. Fails, giving the handle back, unless this is the only reference.
    pub fn lease_write(self) -> Result<UmemAddr, Buf> {
        if !self.is_unique() {
            return Err(self);
        }
        let addr = self.addr();
        let s = &self.pool.slots[self.slot as usize];
        s.leases.set(s.leases.get() + 1);
        self.pool.write_leases.set(self.pool.write_leases.get() + 1);
        // The reference passes to the lease; `Pool::reclaim` turns it back into a handle.
        std::mem::forget(self);
        Ok(UmemAddr(addr))
    }

    /// Adds a reference that the kernel holds for reading (a TX descriptor), ended by
    /// [`Pool::release`] with any address inside the slot.
    pub fn lease_read(&self) {
        let s = &self.pool.slots[self.slot as usize];
        s.refs.set(s.refs.get() + 1);
        s.leases.set(s.leases.get() + 1);
        self.pool.read_leases.set(self.pool.read_leases.get() + 1);
    }

    /// A handle to the pool this slot belongs to.
    pub fn pool(&self) -> Pool {
        Pool { inner: self.pool.clone() }
    }
}

impl Clone for Buf {
    fn clone(&self) -> Self {
        let s = &self.pool.slots[self.slot as usize];
        s.refs.set(s.refs.get() + 1);
        Buf { pool: self.pool.clone(), slot: self.slot }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        self.pool.unref(self.slot);
    }
}

/// A byte range of a slot, holding a reference to it: what a TCP send queue or an RX batch
/// holds instead of bytes.
#[derive(Debug, Clone)]
pub struct BufSlice {
    buf: Buf,
    off: u32,
    len: u32,
}

impl BufSlice {
    /// `range` of `buf`, or `None` if it does not fit in the slot.
    pub fn new(buf: Buf, range: Range<usize>) -> Option<BufSlice> {
        if range.start > range.end || range.end > buf.capacity() {
            return None;
        }
        Some(BufSlice { buf, off: range.start as u32, len: (range.end - range.start) as u32 })
    }

    /// The UMEM address of the first byte.
    pub fn addr(&self) -> u64 {
        self.buf.addr() + u64::from(self.off)
    }

    /// Offset of the range within its slot.
    pub fn offset(&self) -> usize {
        self.off as usize
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf.as_slice()[self.off as usize..(self.off + self.len) as usize]
    }

    /// The bytes for writing, when the slot has no other reference.
    pub fn get_mut(&mut self) -> Option<&mut [u8]> {
        let (off, len) = (self.off as usize, self.len as usize);
        self.buf.get_mut().map(|b| &mut b[off..off + len])
    }

    /// The `n` bytes in front of the range, for writing, when the slot has no other
    /// reference: where AF_XDP reads a packet's TX metadata. `None` if the range starts
    /// fewer than `n` bytes into its slot, or the slot is shared.
    pub fn headroom_mut(&mut self, n: usize) -> Option<&mut [u8]> {
        let off = self.off as usize;
        let start = off.checked_sub(n)?;
        self.buf.get_mut().map(|b| &mut b[start..off])
    }

    /// A sub-range (relative to this range), sharing the slot.
    pub fn slice(&self, range: Range<usize>) -> Option<BufSlice> {
        if range.start > range.end || range.end > self.len() {
            return None;
        }
        Some(BufSlice {
            buf: self.buf.clone(),
            off: self.off + range.start as u32,
            len: (range.end - range.start) as u32,
        })
    }

    /// Splits off the first `n` bytes (at most `len`), leaving the rest in `self`.
    pub fn split_to(&mut self, n: usize) -> BufSlice {
        let n = n.min(self.len()) as u32;
        let head = BufSlice { buf: self.buf.clone(), off: self.off, len: n };
        self.off += n;
        self.len -= n;
        head
    }

    /// Drops the first `n` bytes (at most `len`).
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.len()) as u32;
        self.off += n;
        self.len -= n;
    }

    /// Shortens the range to `n` bytes (no-op if already shorter).
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n as u32);
    }

    /// Grows the range to `n` bytes within the slot (for a receive that set the length).
    pub fn set_len(&mut self, n: usize) -> bool {
        if self.off as usize + n > self.buf.capacity() {
            return false;
        }
        self.len = n as u32;
        true
    }

    /// The slot handle.
    pub fn buf(&self) -> &Buf {
        &self.buf
    }

    /// Gives up the range, keeping the slot handle.
    pub fn into_buf(self) -> Buf {
        self.buf
    }
}
