//! The TX ring, mapped and produced by us.
//!
//! xdpilone's producer refreshes its view of the kernel's consumer only when that view
//! shows no free slot at all, so a packet of several descriptors (multi-buffer) can be
//! refused again and again while the ring is in fact nearly empty. This producer refreshes
//! whenever its view has fewer free slots than asked for, as libxdp's
//! `xsk_prod_nb_free` does. The ring itself is still created by xdpilone
//! (`setsockopt(XDP_TX_RING)`); only the mapping and the index arithmetic are ours.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use xdpilone::xdp::{XdpDesc, XdpMmapOffsets};

const SOL_XDP: libc::c_int = 283;
const XDP_MMAP_OFFSETS: libc::c_int = 1;
const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
const XDP_RING_NEED_WAKEUP: u32 = 1;

/// The mapped TX ring of one socket.
pub(crate) struct TxRing {
    map: NonNull<u8>,
    map_len: usize,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<XdpDesc>,
    size: u32,
    /// Next index to write (reserved slots included).
    cached_prod: u32,
    /// Our last look at the kernel's consumer.
    cached_cons: u32,
}

impl TxRing {
    /// Maps the TX ring of `fd`, which has `size` entries.
    ///
    /// # Safety
    /// `fd` is an AF_XDP socket whose TX ring was created with `size` (a power of two)
    /// entries, and it stays open while the returned ring lives. Nothing else produces on
    /// this ring.
    pub(crate) unsafe fn map(fd: RawFd, size: u32) -> io::Result<TxRing> {
        let mut off = XdpMmapOffsets::default();
        let mut len = size_of::<XdpMmapOffsets>() as libc::socklen_t;
        // SAFETY: `off` is writable for `len` bytes; the kernel fills the current layout.
        let rc = unsafe {
            libc::getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, (&mut off as *mut XdpMmapOffsets).cast(), &mut len)
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if len as usize != size_of::<XdpMmapOffsets>() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "XDP_MMAP_OFFSETS without flags (Linux < 5.4)"));
        }
        let t = off.tx;
        let map_len = t.desc as usize + size as usize * size_of::<XdpDesc>();
        // SAFETY: maps the kernel's TX ring of `fd` at its documented page offset; the
        // result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                XDP_PGOFF_TX_RING,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        // SAFETY: every offset the kernel reports lies inside the mapping of `map_len` bytes.
        let at = |o: u64| unsafe { map.add(o as usize) };
        let ring = TxRing {
            map,
            map_len,
            producer: at(t.producer).cast(),
            consumer: at(t.consumer).cast(),
            flags: at(t.flags).cast(),
            descs: at(t.desc).cast(),
            size,
            cached_prod: 0,
            cached_cons: 0,
        };
        let mut ring = ring;
        ring.cached_prod = ring.producer().load(Ordering::Relaxed);
        ring.cached_cons = ring.consumer().load(Ordering::Acquire);
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: a live, aligned u32 of the mapping, which lives as long as `self`.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    /// Free slots, looking at the kernel's consumer again when fewer than `want` seem free.
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let free = self.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.consumer().load(Ordering::Acquire);
        self.size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Reserves up to `n` slots: (first index, count).
    pub(crate) fn reserve(&mut self, n: u32) -> (u32, u32) {
        let got = n.min(self.free(n));
        let start = self.cached_prod;
        self.cached_prod = self.cached_prod.wrapping_add(got);
        (start, got)
    }

    /// Gives back the last `n` reserved, unwritten slots.
    pub(crate) fn cancel(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_sub(n);
    }

    /// Writes the descriptor of reserved index `idx`.
    pub(crate) fn write(&mut self, idx: u32, desc: XdpDesc) {
        let slot = (idx & (self.size - 1)) as usize;
        // SAFETY: `slot` < size, inside the descriptor array of the mapping; the slot is
        // reserved by us and not yet published, so the kernel does not read it.
        unsafe { self.descs.add(slot).write(desc) };
    }

    /// Publishes every reserved slot to the kernel.
    pub(crate) fn commit(&mut self) {
        self.producer().store(self.cached_prod, Ordering::Release);
    }

    /// Descriptors published and not yet taken by the kernel.
    pub(crate) fn pending(&self) -> u32 {
        self.producer().load(Ordering::Relaxed).wrapping_sub(self.consumer().load(Ordering::Relaxed))
    }

    /// Whether the kernel asks for a `sendto` to process the ring.
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SAFETY: a live, aligned u32 of the mapping, written by the kernel.
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }
}

impl Drop for TxRing {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `map`; no reference into it outlives `self`.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}
