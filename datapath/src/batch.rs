//! Transmit descriptors: the rules every descriptor of a socket must meet, writing a packet's
//! descriptors (with an optional checksum request in its TX metadata), and the batch guard
//! [`TxBatch`] (`reserve` -> `push` -> `commit`, rolled back on drop).
//!
//! With TX metadata registered (`tx_metadata_len` > 0) the kernel checks *every* TX
//! descriptor as if metadata lay in front of it: `addr - tx_metadata_len` must not wrap and
//! `len + tx_metadata_len` must fit a chunk. A descriptor the kernel finds invalid is
//! skipped and never completed, so its frame would never come back: [`TxRules::check`]
//! refuses such packets before they reach the ring.
//!
//! Only the first descriptor of a packet carries metadata (`XDP_TX_METADATA`): a
//! `struct xsk_tx_metadata` in the `tx_metadata_len` bytes right before its address, inside
//! the header frame.

use umem::{BufSlice, Pool, UmemAddr};

use crate::ring::Cursor;
use crate::rings::TxRing;
use crate::sys::{XdpDesc, XDP_PKT_CONTD, XDP_TXMD_FLAGS_CHECKSUM, XDP_TX_METADATA};
use crate::XskStats;

/// Why a packet was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The ring (or this batch's reservation) has no room for it now: retry after
    /// completions. This is back-pressure, not loss.
    #[error("TX ring full")]
    Full,
    /// More than one fragment, and the socket has no multi-buffer.
    #[error("multi-fragment packet on a socket without multi-buffer (XDP_USE_SG)")]
    NoMultiBuffer,
    /// A fragment is empty, longer than a chunk less the TX metadata, or starts within the
    /// TX metadata length of the UMEM's start.
    #[error("fragment length or address out of range")]
    BadLength,
    /// A checksum request on a socket whose UMEM has no TX metadata.
    #[error("checksum request on a socket without TX metadata (XDP_UMEM_TX_METADATA_LEN)")]
    NoTxMetadata,
    /// The header frame has no unshared room for TX metadata in front of the packet.
    #[error("no unshared room for TX metadata in front of the packet")]
    NoHeadroom,
    /// The checksum field would lie outside the first fragment.
    #[error("checksum request outside the first fragment")]
    BadChecksumRequest,
}

/// Where the device finishes a partial L4 checksum: it sums the packet from `start` to
/// its end (every fragment) and stores the complement at `start + offset`. The field must
/// hold the pseudo-header sum (Linux `CHECKSUM_PARTIAL`).
#[doc(alias = "xsk_tx_metadata.request")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxChecksum {
    /// Offset of the transport header from the packet's first byte (`csum_start`).
    pub start: u16,
    /// Offset of the checksum field from `start` (`csum_offset`: 16 for TCP, 6 for UDP).
    pub offset: u16,
}

/// What every transmit descriptor of one socket must satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxRules {
    /// Packets may be several descriptors (`XDP_USE_SG`).
    pub multi_buffer: bool,
    /// `tx_metadata_len` registered with the UMEM (0: none).
    pub meta_len: u32,
    /// The UMEM chunk size.
    pub chunk: u32,
}

impl TxRules {
    /// Whether the kernel would take `frags` as one packet.
    pub(crate) fn check(&self, frags: &[BufSlice]) -> Result<(), PushError> {
        if frags.len() > 1 && !self.multi_buffer {
            return Err(PushError::NoMultiBuffer);
        }
        if frags.is_empty() {
            return Err(PushError::BadLength);
        }
        let meta = u64::from(self.meta_len);
        for f in frags {
            if f.is_empty() || f.len() as u64 + meta > u64::from(self.chunk) || f.addr() < meta {
                return Err(PushError::BadLength);
            }
        }
        Ok(())
    }

    /// Writes a checksum request into the metadata area in front of `head` (which must be
    /// the packet's only reference to its frame).
    pub(crate) fn request_checksum(&self, head: &mut BufSlice, csum: TxChecksum) -> Result<(), PushError> {
        if self.meta_len == 0 {
            return Err(PushError::NoTxMetadata);
        }
        if usize::from(csum.start) + usize::from(csum.offset) + 2 > head.len() {
            return Err(PushError::BadChecksumRequest);
        }
        let meta = head.headroom_mut(self.meta_len as usize).ok_or(PushError::NoHeadroom)?;
        write_checksum_metadata(meta, csum);
        Ok(())
    }
}

/// Lays out `struct xsk_tx_metadata` with a checksum request at the start of `meta`
/// (host byte order, as the kernel reads it) and zeroes the rest: `flags` (u64), then the
/// `request` union member `{ csum_start: u16, csum_offset: u16, launch_time: u64 }`.
pub(crate) fn write_checksum_metadata(meta: &mut [u8], csum: TxChecksum) {
    meta.fill(0);
    meta[0..8].copy_from_slice(&XDP_TXMD_FLAGS_CHECKSUM.to_ne_bytes());
    meta[8..10].copy_from_slice(&csum.start.to_ne_bytes());
    meta[10..12].copy_from_slice(&csum.offset.to_ne_bytes());
}

/// Writes the descriptors of one packet at ring indices `idx..`, the first with
/// `first_options` (plus `XDP_PKT_CONTD` when more follow), and leases each fragment's frame
/// to the kernel until it completes.
pub(crate) fn write_packet(ring: &mut TxRing, idx: u32, frags: &[BufSlice], first_options: u32, stats: &mut XskStats) {
    let last = frags.len() - 1;
    for (i, f) in frags.iter().enumerate() {
        let mut options = if i < last { XDP_PKT_CONTD } else { 0 };
        if i == 0 {
            options |= first_options;
        }
        ring.write(idx.wrapping_add(i as u32), XdpDesc { addr: f.addr(), len: f.len() as u32, options });
        f.buf().lease_read();
        stats.tx_bytes += f.len() as u64;
    }
}

/// A batch of transmit descriptors: `push` packets, then `commit`. Dropping it without
/// committing takes back every descriptor and lease it made.
#[must_use = "nothing is sent until the batch is committed"]
pub struct TxBatch<'a> {
    ring: &'a mut TxRing,
    start: u32,
    pool: &'a Pool,
    stats: &'a mut XskStats,
    inflight: &'a mut Cursor,
    rules: TxRules,
    capacity: u32,
    used: u32,
    committed: bool,
    refused: u64,
}

impl std::fmt::Debug for TxBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxBatch").field("capacity", &self.capacity).field("used", &self.used).finish()
    }
}

impl<'a> TxBatch<'a> {
    /// Reserves up to `max` slots of `ring` for a batch whose descriptors lease frames of
    /// `pool` and follow `rules`, and counts into `stats` and `inflight` what it commits.
    pub(crate) fn new(
        ring: &'a mut TxRing,
        pool: &'a Pool,
        stats: &'a mut XskStats,
        inflight: &'a mut Cursor,
        rules: TxRules,
        max: u32,
    ) -> TxBatch<'a> {
        let (start, capacity) = ring.reserve(max);
        TxBatch { ring, start, pool, stats, inflight, rules, capacity, used: 0, committed: false, refused: 0 }
    }

    /// Descriptors still free in this batch.
    pub fn remaining(&self) -> u32 {
        self.capacity - self.used
    }

    /// Queues a packet made of `frags` (one fragment unless multi-buffer). The kernel takes
    /// a reference to each fragment's frame until it completes; the caller keeps its own.
    pub fn push(&mut self, frags: &[BufSlice]) -> Result<(), PushError> {
        self.rules.check(frags)?;
        self.room_for(frags)?;
        write_packet(self.ring, self.start.wrapping_add(self.used), frags, 0, self.stats);
        self.used += frags.len() as u32;
        Ok(())
    }

    /// Queues a packet whose L4 checksum the device finishes (see [`TxChecksum`]): the
    /// request goes into the TX metadata in front of `frags[0]`, whose frame must have no
    /// other reference.
    pub fn push_with_checksum(&mut self, frags: &mut [BufSlice], csum: TxChecksum) -> Result<(), PushError> {
        self.rules.check(frags)?;
        self.room_for(frags)?;
        self.rules.request_checksum(&mut frags[0], csum)?;
        write_packet(self.ring, self.start.wrapping_add(self.used), frags, XDP_TX_METADATA, self.stats);
        self.used += frags.len() as u32;
        Ok(())
    }

    fn room_for(&mut self, frags: &[BufSlice]) -> Result<(), PushError> {
        if frags.len() as u32 > self.remaining() {
            self.refused += 1;
            return Err(PushError::Full);
        }
        Ok(())
    }

    /// Hands the queued descriptors to the kernel. (Call `XskSocket::kick` or `poll` to
    /// make a copy-mode socket send them.)
    pub fn commit(mut self) -> u32 {
        self.ring.cancel(self.capacity - self.used);
        self.ring.commit();
        self.committed = true;
        self.inflight.produce(self.used);
        self.stats.tx_descs += u64::from(self.used);
        self.used
    }
}

impl Drop for TxBatch<'_> {
    fn drop(&mut self) {
        self.stats.tx_ring_full += self.refused;
        if !self.committed {
            // The leases are named by the descriptors written; take them back, then the slots.
            for i in 0..self.used {
                let d = self.ring.read_reserved(self.start.wrapping_add(i));
                let _ = self.pool.release(UmemAddr::new(d.addr));
            }
            self.ring.cancel(self.capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use umem::{HugePages, PoolConfig};

    use super::*;
    use crate::rings::heap::{self, HeapRing};

    const PLAIN: TxRules = TxRules { multi_buffer: true, meta_len: 0, chunk: 4096 };
    const META: TxRules = TxRules { multi_buffer: true, meta_len: 24, chunk: 4096 };

    fn pool() -> Pool {
        Pool::new(&PoolConfig { frames: 16, hugepages: HugePages::Off, lock: false, ..PoolConfig::default() })
            .expect("a heap pool")
    }

    /// A slice of `len` bytes at offset `off` of a fresh frame (never frame 0, whose first
    /// bytes no descriptor may use once TX metadata is on).
    fn slice_at(pool: &Pool, off: usize, len: usize) -> BufSlice {
        let mut f = pool.alloc_frame().expect("a frame");
        if f.addr() == 0 {
            f = pool.alloc_frame().expect("a frame");
        }
        BufSlice::new(f, off..off + len).expect("a slice")
    }

    fn slice(pool: &Pool, len: usize) -> BufSlice {
        slice_at(pool, 0, len)
    }

    struct Guard {
        ring: TxRing,
        mem: std::rc::Rc<HeapRing<XdpDesc>>,
        pool: Pool,
        stats: XskStats,
        inflight: Cursor,
    }

    fn guard(size: u32, start: u32) -> Guard {
        let (ring, mem) = heap::prod(size, start);
        Guard { ring, mem, pool: pool(), stats: XskStats::default(), inflight: Cursor::new(64, 0) }
    }

    impl Guard {
        fn batch(&mut self, rules: TxRules, max: u32) -> TxBatch<'_> {
            TxBatch::new(&mut self.ring, &self.pool, &mut self.stats, &mut self.inflight, rules, max)
        }
    }

    #[test]
    fn dropping_a_batch_rolls_back_its_slots_and_leases() {
        let start = u32::MAX - 2; // the reservation wraps
        let mut g = guard(8, start);
        let (a, b, c) = (slice(&g.pool, 100), slice(&g.pool, 4000), slice(&g.pool, 60));
        {
            let mut batch = g.batch(PLAIN, 8);
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
        let mut batch = g.batch(PLAIN, 8);
        batch.push(std::slice::from_ref(&c)).unwrap();
        assert_eq!(batch.commit(), 1);
        assert_eq!(g.mem.published(), start.wrapping_add(1));
        assert_eq!(g.mem.entry(start).addr, c.addr(), "the first slot holds the committed packet");
    }

    #[test]
    fn commit_publishes_exactly_what_was_pushed_and_gives_the_rest_back() {
        let mut g = guard(8, 5);
        let (a, b, c) = (slice(&g.pool, 100), slice(&g.pool, 4000), slice(&g.pool, 60));
        let mut batch = g.batch(PLAIN, 8);
        batch.push(&[a.clone(), b.clone()]).unwrap();
        batch.push(std::slice::from_ref(&c)).unwrap();
        assert_eq!(batch.commit(), 3);
        assert_eq!(g.mem.published(), 8);
        let d: Vec<XdpDesc> = (5..8).map(|i| g.mem.entry(i)).collect();
        assert_eq!((d[0].addr, d[0].len, d[0].options), (a.addr(), 100, XDP_PKT_CONTD), "fragment: more follow");
        assert_eq!((d[1].addr, d[1].len, d[1].options), (b.addr(), 4000, 0), "the packet's last fragment");
        assert_eq!((d[2].addr, d[2].len, d[2].options), (c.addr(), 60, 0));
        assert_eq!(g.ring.free(5), 5, "the five unused slots came back");
        assert_eq!((g.stats.tx_descs, g.stats.tx_bytes, g.inflight.len()), (3, 4160, 3));
        assert_eq!(g.pool.stats().read_leases, 3, "the kernel holds a lease per descriptor");
        assert_eq!(g.batch(PLAIN, 8).remaining(), 5, "a new batch gets what is left");
    }

    #[test]
    fn pushes_that_cannot_go_are_refused_and_counted() {
        let mut g = guard(8, 0);
        let (a, b, c) = (slice(&g.pool, 10), slice(&g.pool, 10), slice(&g.pool, 10));
        {
            let mut batch = g.batch(PLAIN, 2);
            assert_eq!(batch.push(&[a.clone(), b.clone(), c.clone()]), Err(PushError::Full));
            assert_eq!(batch.push(&[]), Err(PushError::BadLength));
            let empty = a.slice(0..0).expect("an empty slice");
            assert_eq!(batch.push(&[empty]), Err(PushError::BadLength));
            batch.push(&[a.clone(), b.clone()]).expect("two fit two");
            batch.commit();
        }
        assert_eq!(g.stats.tx_ring_full, 1, "the refused packet is counted as back-pressure");
        let single = TxRules { multi_buffer: false, ..PLAIN };
        assert_eq!(g.batch(single, 4).push(&[a.clone(), b.clone()]), Err(PushError::NoMultiBuffer));
    }

    #[test]
    fn with_tx_metadata_no_descriptor_reaches_into_the_metadata_the_kernel_assumes() {
        let mut g = guard(8, 0);
        let p = g.pool.clone();
        let mut batch = g.batch(META, 8);
        // A whole chunk leaves no room for the metadata the kernel checks in front of it.
        assert_eq!(batch.push(&[slice(&p, 4096)]), Err(PushError::BadLength));
        assert!(batch.push(&[slice(&p, 4072)]).is_ok(), "a chunk less the metadata fits");
        // Frame 0 at offset 0: `addr - tx_metadata_len` would wrap.
        let zero = loop {
            let f = p.alloc_frame().expect("frame 0 is among the free ones");
            if f.addr() == 0 {
                break f;
            }
        };
        assert_eq!(batch.push(&[BufSlice::new(zero.clone(), 0..64).unwrap()]), Err(PushError::BadLength));
        assert!(batch.push(&[BufSlice::new(zero, 24..64).unwrap()]).is_ok(), "24 bytes in is past the metadata");
        drop(batch);
        assert!(g.batch(PLAIN, 1).push(&[slice(&p, 4096)]).is_ok(), "without metadata a whole chunk is fine");
    }

    #[test]
    fn a_checksum_request_goes_in_front_of_the_first_fragment_only() {
        let mut g = guard(8, 0);
        let p = g.pool.clone();
        let mut head = slice_at(&p, 24, 66);
        head.headroom_mut(24).unwrap().fill(0xee); // stale bytes of an earlier use
        let payload = slice(&p, 1448);
        let mut frags = [head, payload];
        let csum = TxChecksum { start: 34, offset: 16 };
        let mut batch = g.batch(META, 8);
        batch.push_with_checksum(&mut frags, csum).expect("queued");
        assert_eq!(batch.commit(), 2);
        let (d0, d1) = (g.mem.entry(0), g.mem.entry(1));
        assert_eq!(d0.options, XDP_PKT_CONTD | XDP_TX_METADATA, "the first descriptor carries metadata");
        assert_eq!(d1.options, 0, "later fragments do not");
        assert_eq!(d0.addr, frags[0].addr(), "the descriptor names the packet, not the metadata");
        let frame = frags[0].buf().as_slice();
        let meta = &frame[..24];
        assert_eq!(u64::from_ne_bytes(meta[0..8].try_into().unwrap()), XDP_TXMD_FLAGS_CHECKSUM);
        assert_eq!(u16::from_ne_bytes(meta[8..10].try_into().unwrap()), 34, "csum_start");
        assert_eq!(u16::from_ne_bytes(meta[10..12].try_into().unwrap()), 16, "csum_offset");
        assert_eq!(&meta[12..], &[0; 12], "the rest of the metadata is zero");
    }

    #[test]
    fn checksum_requests_that_cannot_be_honoured_are_refused_before_the_ring() {
        let mut g = guard(8, 0);
        let p = g.pool.clone();
        let csum = TxChecksum { start: 34, offset: 16 };
        let mut batch = g.batch(META, 8);
        let mut no_room = [slice_at(&p, 8, 66)];
        assert_eq!(batch.push_with_checksum(&mut no_room, csum), Err(PushError::NoHeadroom));
        let mut shared = [slice_at(&p, 24, 66)];
        let other = shared[0].clone();
        assert_eq!(batch.push_with_checksum(&mut shared, csum), Err(PushError::NoHeadroom));
        drop(other);
        let mut short = [slice_at(&p, 24, 51)];
        assert_eq!(batch.push_with_checksum(&mut short, csum), Err(PushError::BadChecksumRequest));
        assert_eq!(batch.remaining(), 8, "nothing was queued");
        drop(batch);
        assert_eq!(g.pool.stats().read_leases, 0, "and nothing leased");
        let mut fine = [slice_at(&p, 24, 66)];
        assert_eq!(g.batch(PLAIN, 8).push_with_checksum(&mut fine, csum), Err(PushError::NoTxMetadata));
    }
}
