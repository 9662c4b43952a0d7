//! The TX ring, mapped and produced by us.
//!
//! xdpilone's producer refreshes its view of the kernel's consumer only when that view
//! shows no free slot at all, so a packet of several descriptors (multi-buffer) can be
//! refused again and again while the ring is in fact nearly empty. This producer refreshes
//! whenever its view has fewer free slots than asked for, as libxdp's
//! `xsk_prod_nb_free` does. The ring itself is still created by xdpilone
//! (`setsockopt(XDP_TX_RING)`); only the mapping and the index arithmetic are ours.
//!
//! The batch guard over this ring, [`TxBatch`](crate::TxBatch) (`reserve` -> `push` ->
//! `commit`, rolled back on drop), is tested here without a socket or root: the ring can
//! also sit on heap memory laid out as the kernel lays it out, with the test playing the
//! kernel's consumer.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use xdpilone::xdp::{XdpDesc, XdpMmapOffsets};

const SOL_XDP: libc::c_int = 283;
const XDP_MMAP_OFFSETS: libc::c_int = 1;
const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
const XDP_RING_NEED_WAKEUP: u32 = 1;

/// Where the ring's memory comes from.
enum Backing {
    /// The kernel's mapping of the socket's ring, unmapped on drop.
    Mmap { map: NonNull<u8>, len: usize },
    /// Heap memory standing in for it (tests), shared with the test's "kernel".
    #[cfg(test)]
    Heap { _mem: std::rc::Rc<tests::HeapTxMem> },
}

/// The mapped TX ring of one socket.
pub(crate) struct TxRing {
    backing: Backing,
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
            backing: Backing::Mmap { map, len: map_len },
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
        match self.backing {
            // SAFETY: exactly the mapping made in `map`; no reference into it outlives `self`.
            Backing::Mmap { map, len } => unsafe {
                libc::munmap(map.as_ptr().cast(), len);
            },
            #[cfg(test)]
            Backing::Heap { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::UnsafeCell;
    use std::rc::Rc;

    use umem::{BufSlice, HugePages, Pool, PoolConfig};

    use super::*;
    use crate::ring::Cursor;
    use crate::{PushError, TxBatch, XskStats, XDP_PKT_CONTD};

    /// A TX ring's memory on the heap, laid out as the kernel's: producer, consumer and
    /// flags words, then the descriptors. The test is the kernel: it reads what was
    /// published and moves the consumer.
    pub(super) struct HeapTxMem {
        producer: AtomicU32,
        consumer: AtomicU32,
        flags: AtomicU32,
        descs: Box<[UnsafeCell<XdpDesc>]>,
    }

    impl HeapTxMem {
        /// The producer index the kernel sees.
        fn published(&self) -> u32 {
            self.producer.load(Ordering::Acquire)
        }

        /// The kernel takes `n` descriptors.
        fn consume(&self, n: u32) {
            self.consumer.fetch_add(n, Ordering::Release);
        }

        /// The descriptor at free-running index `idx`.
        fn desc(&self, idx: u32) -> XdpDesc {
            let cell = &self.descs[(idx as usize) & (self.descs.len() - 1)];
            // SAFETY: single-threaded test; the producer wrote this slot before publishing
            // it and writes nothing while this copy is taken.
            unsafe { *cell.get() }
        }
    }

    /// A ring of `size` entries over heap memory, its indices starting at `start`.
    fn heap_ring(size: u32, start: u32) -> (TxRing, Rc<HeapTxMem>) {
        let mem = Rc::new(HeapTxMem {
            producer: AtomicU32::new(start),
            consumer: AtomicU32::new(start),
            flags: AtomicU32::new(XDP_RING_NEED_WAKEUP),
            descs: (0..size).map(|_| UnsafeCell::new(XdpDesc { addr: 0, len: 0, options: 0 })).collect(),
        });
        let ptr = |a: &AtomicU32| NonNull::from(a);
        let ring = TxRing {
            producer: ptr(&mem.producer),
            consumer: ptr(&mem.consumer),
            flags: ptr(&mem.flags),
            // UnsafeCell<T> has T's layout, so the cells are an array of descriptors.
            descs: NonNull::from(&mem.descs[0]).cast(),
            size,
            cached_prod: start,
            cached_cons: start,
            backing: Backing::Heap { _mem: mem.clone() },
        };
        (ring, mem)
    }

    fn pool() -> Pool {
        Pool::new(&PoolConfig { frames: 16, hugepages: HugePages::Off, lock: false, ..PoolConfig::default() })
            .expect("a heap pool")
    }

    fn slice(pool: &Pool, len: usize) -> BufSlice {
        BufSlice::new(pool.alloc_frame().expect("a frame"), 0..len).expect("a slice")
    }

    struct Guard {
        ring: TxRing,
        mem: Rc<HeapTxMem>,
        pool: Pool,
        stats: XskStats,
        inflight: Cursor,
    }

    fn guard(size: u32, start: u32) -> Guard {
        let (ring, mem) = heap_ring(size, start);
        Guard { ring, mem, pool: pool(), stats: XskStats::default(), inflight: Cursor::new(64, 0) }
    }

    impl Guard {
        fn batch(&mut self, max: u32) -> TxBatch<'_> {
            TxBatch::new(&mut self.ring, &self.pool, &mut self.stats, &mut self.inflight, true, max)
        }
    }

    #[test]
    fn dropping_a_batch_rolls_back_its_slots_and_leases() {
        let start = u32::MAX - 2; // the reservation wraps
        let mut g = guard(8, start);
        let (a, b, c) = (slice(&g.pool, 100), slice(&g.pool, 4000), slice(&g.pool, 60));
        {
            let mut batch = g.batch(8);
            assert_eq!(batch.remaining(), 8);
            batch.push(std::slice::from_ref(&a)).unwrap();
            batch.push(&[b.clone(), c.clone()]).unwrap();
            assert_eq!(batch.remaining(), 5);
            // Dropped without commit.
        }
        assert_eq!(g.mem.published(), start, "the kernel saw nothing");
        assert_eq!(g.ring.free(8), 8, "every reserved slot is free again");
        let ps = g.pool.stats();
        assert_eq!(ps.read_leases, 0, "the TX leases were given back");
        assert_eq!(ps.frames_free, 13, "only the test's own three slices hold frames");
        assert_eq!((g.stats.tx_descs, g.inflight.len()), (0, 0));
        // The next batch starts where the dropped one did.
        let mut batch = g.batch(8);
        batch.push(std::slice::from_ref(&c)).unwrap();
        assert_eq!(batch.commit(), 1);
        assert_eq!(g.mem.published(), start.wrapping_add(1));
        assert_eq!(g.mem.desc(start).addr, c.addr(), "the first slot holds the committed packet");
    }

    #[test]
    fn commit_publishes_exactly_what_was_pushed_and_gives_the_rest_back() {
        let mut g = guard(8, 5);
        let (a, b, c) = (slice(&g.pool, 100), slice(&g.pool, 4000), slice(&g.pool, 60));
        let mut batch = g.batch(8);
        batch.push(&[a.clone(), b.clone()]).unwrap();
        batch.push(std::slice::from_ref(&c)).unwrap();
        assert_eq!(batch.commit(), 3);
        assert_eq!(g.mem.published(), 8);
        let d: Vec<XdpDesc> = (5..8).map(|i| g.mem.desc(i)).collect();
        assert_eq!((d[0].addr, d[0].len, d[0].options), (a.addr(), 100, XDP_PKT_CONTD), "fragment: more follow");
        assert_eq!((d[1].addr, d[1].len, d[1].options), (b.addr(), 4000, 0), "the packet's last fragment");
        assert_eq!((d[2].addr, d[2].len, d[2].options), (c.addr(), 60, 0));
        assert_eq!(g.ring.free(5), 5, "the five unused slots came back");
        assert_eq!((g.stats.tx_descs, g.stats.tx_bytes, g.inflight.len()), (3, 4160, 3));
        assert_eq!(g.pool.stats().read_leases, 3, "the kernel holds a lease per descriptor");
        assert_eq!(g.batch(8).remaining(), 5, "a new batch gets what is left");
    }

    #[test]
    fn a_short_view_refreshes_from_the_kernels_consumer_and_only_then() {
        let mut g = guard(8, 0);
        let s = slice(&g.pool, 64);
        let mut batch = g.batch(8);
        for _ in 0..6 {
            batch.push(std::slice::from_ref(&s)).unwrap();
        }
        batch.commit();
        g.mem.consume(4); // the kernel sent four
                          // Two free in our view is enough for two: no look at the kernel's consumer.
        assert_eq!(g.ring.free(2), 2);
        // Not enough for four (xdpilone would refresh only at zero): look again.
        assert_eq!(g.batch(4).remaining(), 4, "the refreshed view has room for all four");
        assert_eq!(g.ring.free(8), 6);
    }

    #[test]
    fn pushes_that_cannot_go_are_refused_and_counted() {
        let mut g = guard(8, 0);
        let (a, b, c) = (slice(&g.pool, 10), slice(&g.pool, 10), slice(&g.pool, 10));
        {
            let mut batch = g.batch(2);
            assert_eq!(batch.push(&[a.clone(), b.clone(), c.clone()]), Err(PushError::Full));
            assert_eq!(batch.push(&[]), Err(PushError::BadLength));
            let empty = a.slice(0..0).expect("an empty slice");
            assert_eq!(batch.push(&[empty]), Err(PushError::BadLength));
            batch.push(&[a.clone(), b.clone()]).expect("two fit two");
            batch.commit();
        }
        assert_eq!(g.stats.tx_ring_full, 1, "the refused packet is counted as back-pressure");
        let mut single = TxBatch::new(&mut g.ring, &g.pool, &mut g.stats, &mut g.inflight, false, 4);
        assert_eq!(single.push(&[a.clone(), b.clone()]), Err(PushError::NoMultiBuffer));
    }
}
