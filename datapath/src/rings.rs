//! The four rings of an AF_XDP socket, mapped from the kernel and driven by us: we produce
//! the fill and TX rings and consume the RX and completion rings.
//!
//! Indices are free-running `u32`s that wrap (as in [`crate::ring::Cursor`]). Each side
//! keeps a cached view of the other side's index and loads the shared one again only when
//! that view shows fewer entries than it wants, as libxdp's `xsk_prod_nb_free` and
//! `xsk_cons_nb_avail` do. (xdpilone's producer refreshed only at zero free slots, which
//! starved multi-descriptor packets.) So a TX producer that asks for the room of one packet
//! reads the kernel's consumer index only when the ring looks short of it.
//!
//! A ring can also sit on heap memory laid out as the kernel lays it out (tests): the test
//! plays the kernel's side.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::{self, RingOffsets, XdpDesc};

/// The TX ring: descriptors we produce, the kernel sends.
pub(crate) type TxRing = ProdRing<XdpDesc>;
/// The fill ring: frame addresses we hand the kernel for receiving.
pub(crate) type FillRing = ProdRing<u64>;
/// The RX ring: descriptors of received packets.
pub(crate) type RxRing = ConsRing<XdpDesc>;
/// The completion ring: addresses of sent descriptors.
pub(crate) type CompRing = ConsRing<u64>;

/// Where a ring's memory comes from.
enum Backing {
    /// The kernel's mapping of the socket's ring, unmapped on drop.
    Mmap { map: NonNull<u8>, len: usize },
    /// Heap memory standing in for it (tests), shared with the test's "kernel".
    #[cfg(test)]
    Heap { _mem: std::rc::Rc<dyn std::any::Any> },
}

/// One ring's shared words and entries.
struct Shared<T> {
    backing: Backing,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    entries: NonNull<T>,
    size: u32,
}

impl<T: Copy> Shared<T> {
    /// Maps the ring of `fd` at page offset `pgoff`, laid out as `off` says, with `size`
    /// entries of `T`.
    ///
    /// # Safety
    /// `fd` is an AF_XDP socket that has this ring, created with `size` (a power of two)
    /// entries of `T`, and `off` is what the kernel reported for it.
    unsafe fn map(fd: RawFd, off: &RingOffsets, size: u32, pgoff: libc::off_t) -> io::Result<Shared<T>> {
        let len = off.desc as usize + size as usize * size_of::<T>();
        // SAFETY: maps the socket's ring at its documented page offset; the result is
        // checked before use. The mapping holds the socket's file, so the ring outlives
        // the descriptor being closed.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        // SAFETY: every offset the kernel reports lies inside the mapping of `len` bytes,
        // and the kernel aligns each word and the entry array.
        let at = |o: u64| unsafe { map.add(o as usize) };
        Ok(Shared {
            backing: Backing::Mmap { map, len },
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            entries: at(off.desc).cast(),
            size,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: a live, aligned u32 of the mapping, which lives as long as `self`.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn flags(&self) -> u32 {
        // SAFETY: as for `producer`; the kernel writes it.
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed)
    }

    /// Writes the entry at free-running index `idx`.
    fn write(&mut self, idx: u32, v: T) {
        let slot = (idx & (self.size - 1)) as usize;
        // SAFETY: `slot` < size, inside the entry array of the mapping. The caller (a
        // producer) writes only slots it reserved and has not published, which the kernel
        // does not read.
        unsafe { self.entries.add(slot).write(v) };
    }

    /// Reads the entry at free-running index `idx`.
    fn read(&self, idx: u32) -> T {
        let slot = (idx & (self.size - 1)) as usize;
        // SAFETY: `slot` < size, inside the entry array. The caller reads either slots the
        // kernel published to it and it has not released (a consumer), or slots it wrote
        // and has not published (a producer): the kernel writes neither meanwhile.
        unsafe { self.entries.add(slot).read() }
    }
}

impl<T> Drop for Shared<T> {
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

/// A ring we produce (fill, TX).
pub(crate) struct ProdRing<T> {
    ring: Shared<T>,
    /// Next index to write (reserved slots included).
    cached_prod: u32,
    /// Our last look at the kernel's consumer.
    cached_cons: u32,
}

impl<T: Copy> ProdRing<T> {
    /// Maps a producer ring of `fd`.
    ///
    /// # Safety
    /// As for [`Shared::map`]; and nothing else produces on this ring.
    pub(crate) unsafe fn map(fd: RawFd, off: &RingOffsets, size: u32, pgoff: libc::off_t) -> io::Result<Self> {
        // SAFETY: the caller's contract is `Shared::map`'s.
        let ring = unsafe { Shared::map(fd, off, size, pgoff) }?;
        let cached_prod = ring.producer().load(Ordering::Relaxed);
        let cached_cons = ring.consumer().load(Ordering::Acquire);
        Ok(ProdRing { ring, cached_prod, cached_cons })
    }

    /// Free slots, looking at the kernel's consumer again only when fewer than `want`
    /// seem free.
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let free = self.ring.size - self.cached_prod.wrapping_sub(self.cached_cons);
        if free >= want {
            return free;
        }
        self.cached_cons = self.ring.consumer().load(Ordering::Acquire);
        self.ring.size - self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Reserves up to `n` slots: (first index, count).
    pub(crate) fn reserve(&mut self, n: u32) -> (u32, u32) {
        let got = n.min(self.free(n));
        let start = self.cached_prod;
        self.cached_prod = self.cached_prod.wrapping_add(got);
        (start, got)
    }

    /// Gives back the last `n` reserved, unpublished slots.
    pub(crate) fn cancel(&mut self, n: u32) {
        self.cached_prod = self.cached_prod.wrapping_sub(n);
    }

    /// Writes the entry of reserved index `idx`.
    pub(crate) fn write(&mut self, idx: u32, v: T) {
        self.ring.write(idx, v);
    }

    /// Reads back the entry of reserved, unpublished index `idx` (to undo it).
    pub(crate) fn read_reserved(&self, idx: u32) -> T {
        self.ring.read(idx)
    }

    /// Publishes every reserved slot to the kernel.
    pub(crate) fn commit(&mut self) {
        self.ring.producer().store(self.cached_prod, Ordering::Release);
    }

    /// Entries published and not yet taken by the kernel.
    pub(crate) fn pending(&self) -> u32 {
        self.ring.producer().load(Ordering::Relaxed).wrapping_sub(self.ring.consumer().load(Ordering::Relaxed))
    }

    /// Whether the kernel asks for a wakeup to process the ring.
    pub(crate) fn needs_wakeup(&self) -> bool {
        self.ring.flags() & sys::XDP_RING_NEED_WAKEUP != 0
    }
}

/// A ring we consume (RX, completion).
pub(crate) struct ConsRing<T> {
    ring: Shared<T>,
    /// Our last look at the kernel's producer.
    cached_prod: u32,
    /// Next index to read (peeked entries included).
    cached_cons: u32,
}

impl<T: Copy> ConsRing<T> {
    /// Maps a consumer ring of `fd`.
    ///
    /// # Safety
    /// As for [`Shared::map`]; and nothing else consumes from this ring.
    pub(crate) unsafe fn map(fd: RawFd, off: &RingOffsets, size: u32, pgoff: libc::off_t) -> io::Result<Self> {
        // SAFETY: the caller's contract is `Shared::map`'s.
        let ring = unsafe { Shared::map(fd, off, size, pgoff) }?;
        let cached_prod = ring.producer().load(Ordering::Acquire);
        let cached_cons = ring.consumer().load(Ordering::Relaxed);
        Ok(ConsRing { ring, cached_prod, cached_cons })
    }

    /// Takes up to `max` published entries for reading: (first index, count). Looks at the
    /// kernel's producer again only when fewer than `max` seem available.
    pub(crate) fn peek(&mut self, max: u32) -> (u32, u32) {
        let mut avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail < max {
            self.cached_prod = self.ring.producer().load(Ordering::Acquire);
            avail = self.cached_prod.wrapping_sub(self.cached_cons);
        }
        let n = avail.min(max);
        let start = self.cached_cons;
        self.cached_cons = self.cached_cons.wrapping_add(n);
        (start, n)
    }

    /// Reads peeked index `idx`.
    pub(crate) fn read(&self, idx: u32) -> T {
        self.ring.read(idx)
    }

    /// Hands every peeked entry back to the kernel.
    pub(crate) fn release(&mut self) {
        self.ring.consumer().store(self.cached_cons, Ordering::Release);
    }
}

#[cfg(test)]
pub(crate) mod heap {
    //! Rings on heap memory laid out as the kernel's: producer, consumer and flags words,
    //! then the entries. The test is the kernel.

    use std::cell::UnsafeCell;
    use std::rc::Rc;

    use super::*;

    /// A ring's memory; the test's handle on the kernel's side.
    pub(crate) struct HeapRing<T> {
        producer: AtomicU32,
        consumer: AtomicU32,
        flags: AtomicU32,
        entries: Box<[UnsafeCell<T>]>,
    }

    impl<T: Copy> HeapRing<T> {
        /// The producer index the kernel sees.
        pub(crate) fn published(&self) -> u32 {
            self.producer.load(Ordering::Acquire)
        }

        /// The kernel consumes `n` entries.
        pub(crate) fn consume(&self, n: u32) {
            self.consumer.fetch_add(n, Ordering::Release);
        }

        /// The kernel produces `v` (a consumer ring).
        pub(crate) fn produce(&self, v: T) {
            let idx = self.producer.load(Ordering::Relaxed);
            let cell = &self.entries[(idx as usize) & (self.entries.len() - 1)];
            // SAFETY: single-threaded test; the slot is past the consumer's view until the
            // store below publishes it.
            unsafe { *cell.get() = v };
            self.producer.store(idx.wrapping_add(1), Ordering::Release);
        }

        /// The consumer index the kernel sees.
        pub(crate) fn released(&self) -> u32 {
            self.consumer.load(Ordering::Acquire)
        }

        /// The entry at free-running index `idx`.
        pub(crate) fn entry(&self, idx: u32) -> T {
            let cell = &self.entries[(idx as usize) & (self.entries.len() - 1)];
            // SAFETY: single-threaded test; the producer wrote this slot before publishing
            // it and writes nothing while this copy is taken.
            unsafe { *cell.get() }
        }
    }

    fn shared<T: Copy + Default + 'static>(size: u32, start: u32) -> (Shared<T>, Rc<HeapRing<T>>) {
        let mem = Rc::new(HeapRing {
            producer: AtomicU32::new(start),
            consumer: AtomicU32::new(start),
            flags: AtomicU32::new(sys::XDP_RING_NEED_WAKEUP),
            entries: (0..size).map(|_| UnsafeCell::new(T::default())).collect(),
        });
        let ring = Shared {
            producer: NonNull::from(&mem.producer),
            consumer: NonNull::from(&mem.consumer),
            flags: NonNull::from(&mem.flags),
            // UnsafeCell<T> has T's layout, so the cells are an array of entries.
            entries: NonNull::from(&mem.entries[0]).cast(),
            size,
            backing: Backing::Heap { _mem: mem.clone() },
        };
        (ring, mem)
    }

    /// A producer ring of `size` entries, its indices starting at `start`.
    pub(crate) fn prod<T: Copy + Default + 'static>(size: u32, start: u32) -> (ProdRing<T>, Rc<HeapRing<T>>) {
        let (ring, mem) = shared(size, start);
        (ProdRing { ring, cached_prod: start, cached_cons: start }, mem)
    }

    /// A consumer ring of `size` entries, its indices starting at `start`.
    pub(crate) fn cons<T: Copy + Default + 'static>(size: u32, start: u32) -> (ConsRing<T>, Rc<HeapRing<T>>) {
        let (ring, mem) = shared(size, start);
        (ConsRing { ring, cached_prod: start, cached_cons: start }, mem)
    }
}

#[cfg(test)]
mod tests {
    use super::heap;

    #[test]
    fn a_short_view_refreshes_from_the_kernels_consumer_and_only_then() {
        let (mut ring, mem) = heap::prod::<u64>(8, 0);
        let (start, n) = ring.reserve(6);
        for i in 0..n {
            ring.write(start + i, u64::from(i));
        }
        ring.commit();
        mem.consume(4); // the kernel took four
        assert_eq!(ring.free(2), 2, "two free in our view is enough for two: no look at the kernel");
        // Not enough for four (xdpilone would refresh only at zero): look again.
        assert_eq!(ring.reserve(4), (6, 4), "the refreshed view has room for all four");
        ring.cancel(4);
        assert_eq!(ring.free(8), 6);
    }

    #[test]
    fn a_consumer_sees_what_was_published_across_the_wrap_and_releases_it() {
        let start = u32::MAX - 1;
        let (mut ring, mem) = heap::cons::<u64>(4, start);
        assert_eq!(ring.peek(4), (start, 0), "nothing published");
        for v in [10, 11, 12] {
            mem.produce(v);
        }
        let (first, n) = ring.peek(2);
        assert_eq!((first, n), (start, 2), "at most what was asked for");
        assert_eq!((ring.read(first), ring.read(first.wrapping_add(1))), (10, 11));
        assert_eq!(mem.released(), start, "nothing released before `release`");
        ring.release();
        assert_eq!(mem.released(), start.wrapping_add(2));
        let (first, n) = ring.peek(8);
        assert_eq!((first, n, ring.read(first)), (start.wrapping_add(2), 1, 12), "the third, past the wrap");
        ring.release();
        assert_eq!(mem.released(), start.wrapping_add(3));
    }
}
