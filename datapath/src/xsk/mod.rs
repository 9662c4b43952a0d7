//! One AF_XDP socket over a [`Pool`]: UMEM registration in unaligned chunk mode (with TX
//! metadata when asked), the four rings, zero-copy bind with fallback to copy mode,
//! multi-buffer detection, and batched receive, transmit, completion and refill.
//!
//! Frames move like this, and the pool knows at each step who holds them:
//!
//! ```text
//!  pool ─lease_free_frames─► fill ring ─kernel─► rx ring ─reclaim─► RxFrame (application)
//!    ▲                                                                    │ queue_tx / TxBatch
//!    └──── release ◄── completion ring ◄──kernel── tx ring ◄──────────────┘ (lease_read)
//! ```
//!
//! Transmit has two shapes: [`TxBatch`] (reserve, push, commit, rolled back on drop), and
//! [`XskSocket::queue_tx`], which writes a packet's descriptors at once and leaves them
//! unpublished until [`XskSocket::flush_tx`] or [`XskSocket::poll`], so that a run loop
//! hands the kernel one batch per turn without holding a guard across its stack.

mod config;
mod open;

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use umem::{Buf, BufSlice, Pool, UmemAddr};

pub use self::config::{BindMode, BindPolicy, BusyPoll, RxFrame, TxChecksumOffload, XskConfig, XskStats};
use crate::batch::{write_packet, PushError, TxBatch, TxChecksum, TxRules};
use crate::netdev::XskFeatures;
use crate::ring::Cursor;
use crate::rings::{CompRing, FillRing, RxRing, TxRing};
use crate::sys::{XskFd, XDP_PKT_CONTD, XDP_TX_METADATA};
use crate::Interface;

/// Headroom the kernel keeps in front of received data (`XDP_PACKET_HEADROOM`).
pub const XDP_PACKET_HEADROOM: u32 = 256;
/// In unaligned mode the kernel puts the data offset in the top 16 bits of an address.
const UNALIGNED_OFFSET_SHIFT: u32 = 48;
const ADDR_MASK: u64 = (1 << UNALIGNED_OFFSET_SHIFT) - 1;

/// One AF_XDP socket bound to one queue. Dropping it unbinds and unregisters.
pub struct XskSocket {
    // Declaration order is drop order: rings, then the socket (and its UMEM), then the
    // frames and the pool the kernel was pointed at.
    rx: RxRing,
    tx: TxRing,
    fill: FillRing,
    comp: CompRing,
    fd: XskFd,
    iface: Interface,
    queue: u32,
    mode: BindMode,
    rules: TxRules,
    tx_checksum: TxChecksumOffload,
    features: Option<XskFeatures>,
    tx_inflight: Cursor,
    /// Descriptors written by `queue_tx` and not yet published.
    tx_queued: u32,
    tx_size: u32,
    stats: XskStats,
    scratch: Vec<UmemAddr>,
    /// Frame 0, kept from use while TX metadata is on (see `open`).
    _low_frame: Option<Buf>,
    pool: Pool,
}

impl std::fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskSocket")
            .field("iface", &self.iface.name)
            .field("queue", &self.queue)
            .field("mode", &self.mode)
            .field("multi_buffer", &self.rules.multi_buffer)
            .field("tx_checksum", &self.tx_checksum)
            .finish()
    }
}

impl XskSocket {
    /// The bind mode in force.
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// Whether multi-buffer packets (`XDP_USE_SG`) can be sent and received.
    pub fn multi_buffer(&self) -> bool {
        self.rules.multi_buffer
    }

    /// Whether checksum requests ([`XskSocket::queue_tx_with_checksum`]) are honoured.
    pub fn tx_checksum_offload(&self) -> bool {
        self.tx_checksum.is_on()
    }

    /// Who finishes requested checksums, or why nobody does.
    pub fn tx_checksum(&self) -> TxChecksumOffload {
        self.tx_checksum
    }

    /// Bytes of TX metadata in front of every descriptor (0: none). Every fragment must
    /// start at least this far into the UMEM and be at most a frame less this long; a
    /// header frame that carries a checksum request has it in these bytes.
    pub fn tx_metadata_len(&self) -> u32 {
        self.rules.meta_len
    }

    /// What the device reports for AF_XDP TX metadata (`None`: the kernel did not say).
    pub fn xsk_features(&self) -> Option<XskFeatures> {
        self.features
    }

    /// The queue bound.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The interface bound.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// The pool this socket's frames come from.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// TX ring slots free now, after a fresh look at the kernel's consumer index (costly
    /// per packet: see [`XskSocket::tx_room`]).
    pub fn tx_free(&mut self) -> u32 {
        self.tx.free(self.tx_size)
    }

    /// TX ring slots free, looking at the kernel's consumer index again only when fewer
    /// than `want` seem free: at least `want` if the ring has that many.
    pub fn tx_room(&mut self, want: u32) -> u32 {
        self.tx.free(want)
    }

    /// Transmit descriptors handed to the kernel and not yet completed.
    pub fn tx_in_flight(&self) -> u32 {
        self.tx_inflight.len()
    }

    /// Puts free frames into the fill ring; returns how many.
    pub fn refill(&mut self) -> u32 {
        let (start, room) = self.fill.reserve(self.scratch.len() as u32);
        if room == 0 {
            return 0;
        }
        let n = self.pool.lease_free_frames(&mut self.scratch[..room as usize]) as u32;
        if n < room {
            self.stats.fill_starved += 1;
            self.fill.cancel(room - n);
        }
        for (i, a) in self.scratch[..n as usize].iter().enumerate() {
            self.fill.write(start.wrapping_add(i as u32), a.get());
        }
        self.fill.commit();
        if n > 0 && self.fill.needs_wakeup() {
            self.fd.wake_fill();
        }
        n
    }

    /// Receives up to `max` descriptors into `out`; returns how many.
    pub fn recv(&mut self, out: &mut Vec<RxFrame>, max: u32) -> u32 {
        let (start, avail) = self.rx.peek(max);
        let mut n = 0;
        for i in 0..avail {
            let desc = self.rx.read(start.wrapping_add(i));
            let base = desc.addr & ADDR_MASK;
            let data = base + (desc.addr >> UNALIGNED_OFFSET_SHIFT);
            let Ok(buf) = self.pool.reclaim(UmemAddr::new(base)) else {
                self.stats.bad_addrs += 1;
                continue;
            };
            let off = (data - buf.addr()) as usize;
            match BufSlice::new(buf, off..off + desc.len as usize) {
                Some(slice) => {
                    self.stats.rx_bytes += u64::from(desc.len);
                    out.push(RxFrame { data: slice, more: desc.options & XDP_PKT_CONTD != 0 });
                    n += 1;
                }
                None => self.stats.bad_addrs += 1,
            }
        }
        self.rx.release();
        self.stats.rx_descs += u64::from(n);
        n
    }

    /// Waits until the socket has something to receive or `timeout` passes (`poll(2)`).
    pub fn wait(&self, timeout: Duration) -> bool {
        self.fd.wait_readable(timeout)
    }

    /// Starts a transmit batch of at most `max` descriptors (publishing first what
    /// `queue_tx` left unpublished).
    pub fn tx_batch(&mut self, max: u32) -> TxBatch<'_> {
        self.flush_tx();
        TxBatch::new(&mut self.tx, &self.pool, &mut self.stats, &mut self.tx_inflight, self.rules, max)
    }

    /// Writes the descriptors of a packet made of `frags` into the TX ring, unpublished:
    /// the kernel sees them at the next [`XskSocket::flush_tx`] or [`XskSocket::poll`]. The
    /// kernel takes a reference to each fragment's frame until it completes. A full ring
    /// is [`PushError::Full`] (counted in `tx_ring_full`), never a partial packet.
    pub fn queue_tx(&mut self, frags: &[BufSlice]) -> Result<(), PushError> {
        self.rules.check(frags)?;
        let start = self.reserve_packet(frags.len() as u32)?;
        write_packet(&mut self.tx, start, frags, 0, &mut self.stats);
        self.tx_queued += frags.len() as u32;
        Ok(())
    }

    /// As [`XskSocket::queue_tx`], for a packet whose L4 checksum the kernel or the NIC
    /// finishes (see [`TxChecksum`]): the request goes into the TX metadata in front of
    /// `frags[0]`, whose frame must have no other reference. Needs
    /// [`XskSocket::tx_checksum_offload`].
    pub fn queue_tx_with_checksum(&mut self, frags: &mut [BufSlice], csum: TxChecksum) -> Result<(), PushError> {
        if !self.tx_checksum.is_on() {
            return Err(PushError::NoTxMetadata);
        }
        self.rules.check(frags)?;
        let n = frags.len() as u32;
        let start = self.reserve_packet(n)?;
        if let Err(e) = self.rules.request_checksum(&mut frags[0], csum) {
            self.tx.cancel(n);
            return Err(e);
        }
        write_packet(&mut self.tx, start, frags, XDP_TX_METADATA, &mut self.stats);
        self.tx_queued += n;
        Ok(())
    }

    /// Reserves `n` slots for one packet, or none.
    fn reserve_packet(&mut self, n: u32) -> Result<u32, PushError> {
        let (start, got) = self.tx.reserve(n);
        if got < n {
            self.tx.cancel(got);
            self.stats.tx_ring_full += 1;
            return Err(PushError::Full);
        }
        Ok(start)
    }

    /// Publishes what `queue_tx` wrote; returns how many descriptors. (Copy mode still
    /// needs [`XskSocket::kick`], which [`XskSocket::poll`] does.)
    pub fn flush_tx(&mut self) -> u32 {
        let n = std::mem::take(&mut self.tx_queued);
        if n > 0 {
            self.tx.commit();
            self.tx_inflight.produce(n);
            self.stats.tx_descs += u64::from(n);
        }
        n
    }

    /// Publishes queued descriptors, reaps completions (freeing what the kernel has sent),
    /// refills the fill ring, and kicks transmit if descriptors are waiting. Call once per
    /// loop iteration.
    pub fn poll(&mut self) {
        self.flush_tx();
        self.complete();
        self.refill();
        if self.tx.pending() > 0 && self.tx.needs_wakeup() {
            self.kick();
        }
    }

    /// Reaps completed transmit descriptors; returns how many.
    pub fn complete(&mut self) -> u32 {
        let (start, n) = self.comp.peek(self.scratch.len() as u32);
        for i in 0..n {
            let addr = self.comp.read(start.wrapping_add(i));
            if self.pool.release(UmemAddr::new(addr & ADDR_MASK)).is_err() {
                self.stats.bad_addrs += 1;
            }
        }
        self.comp.release();
        self.tx_inflight.consume(n);
        self.stats.tx_completed += u64::from(n);
        n
    }

    /// Tells the kernel there is something to send (`sendto`, needed every batch in copy
    /// mode). Calls again while the kernel says it stopped early (EAGAIN), a bounded
    /// number of times.
    pub fn kick(&mut self) {
        for _ in 0..64 {
            self.stats.tx_wakeups += 1;
            let errno = match self.fd.wake_tx() {
                Ok(()) => return,
                Err(errno) => errno,
            };
            match errno {
                libc::EAGAIN | libc::EBUSY | libc::ENOBUFS => {
                    if self.tx.pending() == 0 {
                        return;
                    }
                    // Reap completions so the kernel has room to go on.
                    self.complete();
                }
                _ => {
                    self.stats.tx_wakeup_errors += 1;
                    log::debug!("sendto(AF_XDP): {}", std::io::Error::from_raw_os_error(errno));
                    return;
                }
            }
        }
    }

    /// The socket's counters, with the kernel's `XDP_STATISTICS` read now.
    pub fn stats(&self) -> XskStats {
        let mut s = self.stats;
        if let Ok(k) = self.fd.statistics() {
            s.rx_dropped = k.rx_dropped;
            s.rx_invalid_descs = k.rx_invalid_descs;
            s.tx_invalid_descs = k.tx_invalid_descs;
            s.rx_ring_full = k.rx_ring_full;
            s.rx_fill_ring_empty = k.rx_fill_ring_empty_descs;
            s.tx_ring_empty = k.tx_ring_empty_descs;
        }
        s
    }
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
