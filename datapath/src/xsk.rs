//! One AF_XDP socket over a [`Pool`]: UMEM registration in unaligned chunk mode, the four
//! rings, zero-copy bind with fallback to copy mode, multi-buffer detection, and batched
//! receive, transmit, completion and refill.
//!
//! Frames move like this, and the pool knows at each step who holds them:
//!
//! ```text
//!  pool ─lease_free_frames─► fill ring ─kernel─► rx ring ─reclaim─► RxFrame (application)
//!    ▲                                                                    │ push (lease_read)
//!    └──── release ◄── completion ring ◄──kernel── tx ring ◄── TxBatch ◄──┘
//! ```

use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use umem::{BufSlice, Pool, UmemAddr};
use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, Socket, SocketConfig, Umem, UmemConfig, User};

use crate::txring::TxRing;

use crate::caps::{self, Cap};
use crate::ring::Cursor;
use crate::{Error, Interface};

const SOL_XDP: libc::c_int = 283;
const XDP_OPTIONS: libc::c_int = 8;
const XDP_OPTIONS_ZEROCOPY: u32 = 1;
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
const XDP_USE_SG: u16 = 1 << 4;
const XDP_UMEM_UNALIGNED_CHUNK_FLAG: u32 = 1 << 0;
/// `XDP_PKT_CONTD`: more fragments of this packet follow.
pub const XDP_PKT_CONTD: u32 = 1 << 0;
/// Headroom the kernel keeps in front of received data (`XDP_PACKET_HEADROOM`).
pub const XDP_PACKET_HEADROOM: u32 = 256;
/// In unaligned mode the kernel puts the data offset in the top 16 bits of an address.
const UNALIGNED_OFFSET_SHIFT: u32 = 48;
const ADDR_MASK: u64 = (1 << UNALIGNED_OFFSET_SHIFT) - 1;
const SO_BUSY_POLL: libc::c_int = 46;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// How to bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BindPolicy {
    /// Zero-copy; copy mode (with a log line) when the driver cannot.
    #[default]
    PreferZeroCopy,
    /// Zero-copy or fail.
    ZeroCopy,
    /// Copy mode.
    Copy,
}

/// How the socket ended up bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// The NIC DMAs straight into the pool.
    ZeroCopy,
    /// The kernel copies between its buffers and the pool (veth, drivers without AF_XDP
    /// zero-copy). No copy happens in this process either way.
    Copy,
}

impl std::fmt::Display for BindMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        })
    }
}

/// Busy-polling settings (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusyPoll {
    /// Microseconds to busy-poll in a blocking call.
    pub usecs: u32,
    /// Packets per busy-poll round.
    pub budget: u32,
}

/// Socket settings. Ring sizes are powers of two.
#[derive(Clone, Debug)]
pub struct XskConfig {
    /// The rx queue to bind.
    pub queue: u32,
    /// RX ring entries.
    pub rx_size: u32,
    /// TX ring entries.
    pub tx_size: u32,
    /// Fill ring entries.
    pub fill_size: u32,
    /// Completion ring entries.
    pub comp_size: u32,
    /// Zero-copy or copy.
    pub bind: BindPolicy,
    /// Ask for multi-buffer (`XDP_USE_SG`); falls back to single-buffer with a log line.
    pub multi_buffer: bool,
    /// Busy polling, if wanted.
    pub busy_poll: Option<BusyPoll>,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            queue: 0,
            rx_size: 2048,
            tx_size: 2048,
            fill_size: 2048,
            comp_size: 2048,
            bind: BindPolicy::default(),
            multi_buffer: true,
            busy_poll: None,
        }
    }
}

/// A received buffer: the packet's bytes (or one fragment of them) in a pool frame.
#[derive(Debug)]
pub struct RxFrame {
    /// The bytes, in their frame. Unique: writable in place with `get_mut`.
    pub data: BufSlice,
    /// More fragments of the same packet follow (multi-buffer).
    pub more: bool,
}

/// Counters of one socket: the socket's own and the kernel's (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Descriptors received.
    pub rx_descs: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Descriptors queued for transmit.
    pub tx_descs: u64,
    /// Bytes queued for transmit.
    pub tx_bytes: u64,
    /// Transmit descriptors the kernel completed.
    pub tx_completed: u64,
    /// Packets refused because the TX ring was full (back-pressure, not loss).
    pub tx_ring_full: u64,
    /// Refills that found no free frame in the pool.
    pub fill_starved: u64,
    /// `sendto` calls that kicked the kernel's transmit.
    pub tx_wakeups: u64,
    /// Kicks that failed with something other than EAGAIN/EBUSY.
    pub tx_wakeup_errors: u64,
    /// Addresses from the kernel that named no leased frame (should stay 0).
    pub bad_addrs: u64,
    /// Kernel: packets dropped for reasons other than a full ring.
    pub rx_dropped: u64,
    /// Kernel: invalid RX descriptors.
    pub rx_invalid_descs: u64,
    /// Kernel: invalid TX descriptors.
    pub tx_invalid_descs: u64,
    /// Kernel: packets dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Kernel: times the fill ring was empty when a packet arrived.
    pub rx_fill_ring_empty: u64,
    /// Kernel: times the TX ring was empty when the kernel looked.
    pub tx_ring_empty: u64,
}

/// One AF_XDP socket bound to one queue. Dropping it unbinds and unregisters.
pub struct XskSocket {
    // Declaration order is drop order: rings, then the socket and UMEM, then the pool the
    // kernel was pointed at.
    rx: RingRx,
    tx: TxRing,
    fq: DeviceQueue,
    user: User,
    _umem: Umem,
    fd: RawFd,
    iface: Interface,
    queue: u32,
    mode: BindMode,
    multi_buffer: bool,
    tx_inflight: Cursor,
    tx_size: u32,
    stats: XskStats,
    scratch: Vec<UmemAddr>,
    pool: Pool,
}

impl std::fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskSocket")
            .field("iface", &self.iface.name)
            .field("queue", &self.queue)
            .field("mode", &self.mode)
            .field("multi_buffer", &self.multi_buffer)
            .finish()
    }
}

struct Parts {
    rx: RingRx,
    tx: TxRing,
    fq: DeviceQueue,
    user: User,
    umem: Umem,
}

/// Which step of opening a socket failed, with its errno.
#[derive(Debug)]
struct Failed {
    call: &'static str,
    errno: i32,
}

impl XskSocket {
    /// Registers `pool` as a UMEM, creates the rings and binds to `cfg.queue` of `iface`.
    pub fn open(pool: &Pool, iface: &Interface, cfg: &XskConfig) -> Result<XskSocket, Error> {
        caps::require(Cap::NetRaw, "opening an AF_XDP socket")?;
        if cfg.queue >= iface.rx_queues {
            return Err(Error::NoQueue { iface: iface.name.clone(), queue: cfg.queue, queues: iface.rx_queues });
        }
        let modes: &[BindMode] = match cfg.bind {
            BindPolicy::PreferZeroCopy => &[BindMode::ZeroCopy, BindMode::Copy],
            BindPolicy::ZeroCopy => &[BindMode::ZeroCopy],
            BindPolicy::Copy => &[BindMode::Copy],
        };
        let sgs: &[bool] = if cfg.multi_buffer { &[true, false] } else { &[false] };
        let mut last = None;
        for &mode in modes {
            for &sg in sgs {
                let mut flags = SocketConfig::XDP_BIND_NEED_WAKEUP;
                flags |= match mode {
                    BindMode::ZeroCopy => SocketConfig::XDP_BIND_ZEROCOPY,
                    BindMode::Copy => SocketConfig::XDP_BIND_COPY,
                };
                if sg {
                    flags |= XDP_USE_SG;
                }
                match Self::try_open(pool, iface, cfg, flags) {
                    Ok(parts) => return Self::finish(pool, iface, cfg, parts, mode, sg),
                    Err(f) => {
                        let err = Self::classify(iface, cfg, &f)?;
                        log::info!(
                            "{}/{}: {mode} bind{} refused ({err}); trying the next mode",
                            iface.name,
                            cfg.queue,
                            if sg { " with multi-buffer" } else { "" },
                        );
                        last = Some(f);
                    }
                }
            }
        }
        let f = last.unwrap_or(Failed { call: "bind(AF_XDP)", errno: libc::EINVAL });
        Err(Error::sys(f.call, f.errno))
    }

    /// Turns a failure that no other mode would fix into an error; `Ok` means "try the
    /// next mode" and carries the reason.
    fn classify(iface: &Interface, cfg: &XskConfig, f: &Failed) -> Result<std::io::Error, Error> {
        let io = std::io::Error::from_raw_os_error(f.errno);
        match (f.call, f.errno) {
            ("bind(AF_XDP)", libc::EBUSY) => Err(Error::QueueBusy { iface: iface.name.clone(), queue: cfg.queue }),
            ("bind(AF_XDP)", libc::ENODEV | libc::ENETDOWN) => {
                Err(Error::Syscall { call: "bind(AF_XDP) (is the interface up?)", source: io })
            }
            ("bind(AF_XDP)", _) => Ok(io),
            ("socket(AF_XDP)", libc::EPERM | libc::EACCES) => Err(Error::MissingCapability {
                cap: "CAP_NET_RAW",
                cap_lower: "cap_net_raw",
                what: "opening an AF_XDP socket",
            }),
            ("setsockopt(XDP_UMEM_REG)", libc::ENOMEM | libc::EPERM | libc::ENOBUFS) => {
                Err(Error::Memlock { call: f.call, limit: umem::error::memlock_limit(), source: io })
            }
            (call, errno) => Err(Error::sys(call, errno)),
        }
    }

    fn try_open(pool: &Pool, iface: &Interface, cfg: &XskConfig, bind_flags: u16) -> Result<Parts, Failed> {
        let fail = |call| move |e: xdpilone::Errno| Failed { call, errno: e.get_raw().abs() };
        let ucfg = UmemConfig {
            fill_size: cfg.fill_size,
            complete_size: cfg.comp_size,
            frame_size: pool.frame_size(),
            headroom: 0,
            flags: XDP_UMEM_UNALIGNED_CHUNK_FLAG,
        };
        // SAFETY: `pool.area()` is one page-aligned mapping, valid for its whole length
        // for as long as the pool lives; the socket keeps a clone of the pool and drops it
        // after the UMEM (field order of XskSocket).
        let umem = unsafe { Umem::new(ucfg, pool.area()) }.map_err(fail("setsockopt(XDP_UMEM_REG)"))?;
        let mut info = IfInfo::invalid();
        info.from_ifindex(iface.index).map_err(fail("if_indextoname"))?;
        info.set_queue(cfg.queue);
        let sock = Socket::with_shared(&info, &umem).map_err(fail("socket(AF_XDP)"))?;
        let fq = umem.fq_cq(&sock).map_err(fail("setsockopt(XDP_UMEM_FILL_RING)"))?;
        let scfg =
            SocketConfig { rx_size: NonZeroU32::new(cfg.rx_size), tx_size: NonZeroU32::new(cfg.tx_size), bind_flags };
        let user = umem.rx_tx(&sock, &scfg).map_err(fail("setsockopt(XDP_RX_RING)"))?;
        let rx = user.map_rx().map_err(fail("mmap(rx ring)"))?;
        // SAFETY: the socket's TX ring was just created with `cfg.tx_size` entries (a power
        // of two, or setsockopt would have failed), the fd lives in `user`, which the
        // socket keeps and drops after the ring, and nothing else produces on it.
        let tx = unsafe { TxRing::map(user.as_raw_fd(), cfg.tx_size) }
            .map_err(|e| Failed { call: "mmap(tx ring)", errno: e.raw_os_error().unwrap_or(libc::EINVAL) })?;
        umem.bind(&user).map_err(fail("bind(AF_XDP)"))?;
        Ok(Parts { rx, tx, fq, user, umem })
    }

    fn finish(
        pool: &Pool,
        iface: &Interface,
        cfg: &XskConfig,
        parts: Parts,
        asked: BindMode,
        multi_buffer: bool,
    ) -> Result<XskSocket, Error> {
        let fd = parts.user.as_raw_fd();
        let mode = match getsockopt_u32(fd, SOL_XDP, XDP_OPTIONS) {
            Ok(opts) if opts & XDP_OPTIONS_ZEROCOPY != 0 => BindMode::ZeroCopy,
            Ok(_) => BindMode::Copy,
            Err(_) => asked,
        };
        let max_mtu = pool.frame_size() - XDP_PACKET_HEADROOM - 14;
        if iface.mtu > max_mtu && !multi_buffer {
            return Err(Error::MtuTooLarge {
                iface: iface.name.clone(),
                mtu: iface.mtu,
                frame_size: pool.frame_size(),
                max_mtu,
            });
        }
        // Let one wakeup send a whole ring's worth in copy mode (Linux >= 6.17); older
        // kernels send 32 per call, which `kick` handles by calling again.
        if let Err(e) = setsockopt_u32(fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, cfg.tx_size) {
            log::debug!("XDP_MAX_TX_SKB_BUDGET not set: {e}");
        }
        if let Some(bp) = cfg.busy_poll {
            for (opt, val, name) in [
                (SO_PREFER_BUSY_POLL, 1, "SO_PREFER_BUSY_POLL"),
                (SO_BUSY_POLL, bp.usecs, "SO_BUSY_POLL"),
                (SO_BUSY_POLL_BUDGET, bp.budget, "SO_BUSY_POLL_BUDGET"),
            ] {
                setsockopt_u32(fd, libc::SOL_SOCKET, opt, val)
                    .map_err(|source| Error::Syscall { call: name, source })?;
            }
        }
        log::info!(
            "{}/{}: AF_XDP socket bound, {mode} mode, multi-buffer {}, rings rx/tx/fill/comp {}/{}/{}/{}",
            iface.name,
            cfg.queue,
            if multi_buffer { "on" } else { "off" },
            cfg.rx_size,
            cfg.tx_size,
            cfg.fill_size,
            cfg.comp_size
        );
        let mut sock = XskSocket {
            rx: parts.rx,
            tx: parts.tx,
            fq: parts.fq,
            user: parts.user,
            _umem: parts.umem,
            fd,
            iface: iface.clone(),
            queue: cfg.queue,
            mode,
            multi_buffer,
            tx_inflight: Cursor::new(cfg.tx_size.next_power_of_two().max(cfg.comp_size) * 2, 0),
            tx_size: cfg.tx_size,
            stats: XskStats::default(),
            scratch: vec![UmemAddr::default(); cfg.fill_size as usize],
            pool: pool.clone(),
        };
        sock.refill();
        Ok(sock)
    }

    /// The bind mode in force.
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// Whether multi-buffer packets (`XDP_USE_SG`) can be sent and received.
    pub fn multi_buffer(&self) -> bool {
        self.multi_buffer
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

    /// TX ring slots free now (a hint: the kernel may free more at any moment).
    pub fn tx_free(&mut self) -> u32 {
        self.tx.free(self.tx_size)
    }

    /// Transmit descriptors handed to the kernel and not yet completed.
    pub fn tx_in_flight(&self) -> u32 {
        self.tx_inflight.len()
    }

    /// Puts free frames into the fill ring; returns how many.
    pub fn refill(&mut self) -> u32 {
        let mut w = self.fq.fill(self.scratch.len() as u32);
        let room = w.capacity() as usize;
        if room == 0 {
            return 0;
        }
        let n = self.pool.lease_free_frames(&mut self.scratch[..room]);
        if n < room {
            self.stats.fill_starved += 1;
        }
        let put = w.insert(self.scratch[..n].iter().map(|a| a.get()));
        w.commit();
        drop(w);
        debug_assert_eq!(put as usize, n);
        if n > 0 && self.fq.needs_wakeup() {
            self.fq.wake();
        }
        n as u32
    }

    /// Receives up to `max` descriptors into `out`; returns how many.
    pub fn recv(&mut self, out: &mut Vec<RxFrame>, max: u32) -> u32 {
        let mut r = self.rx.receive(max);
        let mut n = 0;
        while let Some(desc) = r.read() {
            let base = desc.addr & ADDR_MASK;
            let data = base + (desc.addr >> UNALIGNED_OFFSET_SHIFT);
            let Ok(buf) = self.pool.reclaim(UmemAddr::new(base)) else {
                self.stats.bad_addrs += 1;
                continue;
            };
            let start = (data - buf.addr()) as usize;
            match BufSlice::new(buf, start..start + desc.len as usize) {
                Some(slice) => {
                    self.stats.rx_bytes += u64::from(desc.len);
                    out.push(RxFrame { data: slice, more: desc.options & XDP_PKT_CONTD != 0 });
                    n += 1;
                }
                None => self.stats.bad_addrs += 1,
            }
        }
        r.release();
        self.stats.rx_descs += u64::from(n);
        n
    }

    /// Waits until the socket has something to receive or `timeout` passes (`poll(2)`).
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd { fd: self.fd, events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, exclusively borrowed for the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        rc > 0 && pfd.revents & libc::POLLIN != 0
    }

    /// Starts a transmit batch of at most `max` descriptors.
    pub fn tx_batch(&mut self, max: u32) -> TxBatch<'_> {
        TxBatch::new(&mut self.tx, &self.pool, &mut self.stats, &mut self.tx_inflight, self.multi_buffer, max)
    }

    /// Reaps completions (freeing what the kernel has sent), refills the fill ring, and
    /// kicks transmit if descriptors are waiting. Call once per loop iteration.
    pub fn poll(&mut self) {
        self.complete();
        self.refill();
        if self.tx.pending() > 0 && self.tx.needs_wakeup() {
            self.kick();
        }
    }

    /// Reaps completed transmit descriptors; returns how many.
    pub fn complete(&mut self) -> u32 {
        let mut c = self.fq.complete(self.scratch.len() as u32);
        let mut n = 0;
        while let Some(addr) = c.read() {
            if self.pool.release(UmemAddr::new(addr & ADDR_MASK)).is_err() {
                self.stats.bad_addrs += 1;
            }
            n += 1;
        }
        c.release();
        drop(c);
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
            // SAFETY: a zero-length send with no buffer and no address on our own socket.
            let rc = unsafe { libc::sendto(self.fd, std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
            if rc >= 0 {
                return;
            }
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
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
        if let Ok(k) = self.user.statistics_v2() {
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
        self.fd
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
    multi_buffer: bool,
    leased: Vec<u64>,
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
    /// A fragment is empty or longer than a frame.
    #[error("fragment length out of range")]
    BadLength,
}

impl<'a> TxBatch<'a> {
    /// Reserves up to `max` slots of `ring` for a batch whose descriptors lease frames of
    /// `pool`, and counts into `stats` and `inflight` what it commits.
    pub(crate) fn new(
        ring: &'a mut TxRing,
        pool: &'a Pool,
        stats: &'a mut XskStats,
        inflight: &'a mut Cursor,
        multi_buffer: bool,
        max: u32,
    ) -> TxBatch<'a> {
        let (start, capacity) = ring.reserve(max);
        TxBatch {
            ring,
            start,
            pool,
            stats,
            inflight,
            multi_buffer,
            leased: Vec::new(),
            capacity,
            used: 0,
            committed: false,
            refused: 0,
        }
    }

    /// Descriptors still free in this batch.
    pub fn remaining(&self) -> u32 {
        self.capacity - self.used
    }

    /// Queues a packet made of `frags` (one fragment unless multi-buffer). The kernel takes
    /// a reference to each fragment's frame until it completes; the caller keeps its own.
    pub fn push(&mut self, frags: &[BufSlice]) -> Result<(), PushError> {
        if frags.len() > 1 && !self.multi_buffer {
            return Err(PushError::NoMultiBuffer);
        }
        if frags.is_empty() || frags.iter().any(|f| f.is_empty()) {
            return Err(PushError::BadLength);
        }
        if frags.len() as u32 > self.remaining() {
            self.refused += 1;
            return Err(PushError::Full);
        }
        let last = frags.len() - 1;
        for (i, f) in frags.iter().enumerate() {
            let desc =
                XdpDesc { addr: f.addr(), len: f.len() as u32, options: if i < last { XDP_PKT_CONTD } else { 0 } };
            self.ring.write(self.start.wrapping_add(self.used + i as u32), desc);
            f.buf().lease_read();
            self.leased.push(f.addr());
            self.stats.tx_bytes += f.len() as u64;
        }
        self.used += frags.len() as u32;
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
            // Take the ring slots back, and the leases with them.
            self.ring.cancel(self.capacity);
            for &addr in &self.leased {
                let _ = self.pool.release(UmemAddr::new(addr));
            }
        }
    }
}

fn getsockopt_u32(fd: RawFd, level: libc::c_int, opt: libc::c_int) -> std::io::Result<u32> {
    let mut v: u32 = 0;
    let mut len = size_of::<u32>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writes of the sizes given.
    let rc = unsafe { libc::getsockopt(fd, level, opt, (&mut v as *mut u32).cast(), &mut len) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(v)
}

fn setsockopt_u32(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: u32) -> std::io::Result<()> {
    // SAFETY: `v` is valid for reads of its size for the call.
    let rc =
        unsafe { libc::setsockopt(fd, level, opt, (&v as *const u32).cast(), size_of::<u32>() as libc::socklen_t) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
