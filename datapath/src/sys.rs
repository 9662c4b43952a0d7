//! The AF_XDP system interface: the kernel's structures (`linux/if_xdp.h`, Linux 6.18) and
//! the calls that take them, on one owned socket descriptor. Everything above this module
//! (rings, batches, the socket) works with these safe wrappers; the ring mappings are in
//! [`crate::rings`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub(crate) const SOL_XDP: libc::c_int = 283;
pub(crate) const XDP_MMAP_OFFSETS: libc::c_int = 1;
pub(crate) const XDP_RX_RING: libc::c_int = 2;
pub(crate) const XDP_TX_RING: libc::c_int = 3;
pub(crate) const XDP_UMEM_REG: libc::c_int = 4;
pub(crate) const XDP_UMEM_FILL_RING: libc::c_int = 5;
pub(crate) const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
pub(crate) const XDP_STATISTICS: libc::c_int = 7;
pub(crate) const XDP_OPTIONS: libc::c_int = 8;
/// Packets one copy-mode `sendto` may send (Linux 6.17+).
pub(crate) const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// `XDP_OPTIONS`: the socket is bound zero-copy.
pub(crate) const XDP_OPTIONS_ZEROCOPY: u32 = 1;

/// Bind flags (`sockaddr_xdp.sxdp_flags`).
pub(crate) const XDP_COPY: u16 = 1 << 1;
pub(crate) const XDP_ZEROCOPY: u16 = 1 << 2;
pub(crate) const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
pub(crate) const XDP_USE_SG: u16 = 1 << 4;

/// UMEM flags (`xdp_umem_reg.flags`).
pub(crate) const XDP_UMEM_UNALIGNED_CHUNK_FLAG: u32 = 1 << 0;
/// `tx_metadata_len` is valid (Linux 6.8+; older kernels refuse the flag with EINVAL).
pub(crate) const XDP_UMEM_TX_METADATA_LEN: u32 = 1 << 2;

/// Descriptor options: more fragments of this packet follow.
pub const XDP_PKT_CONTD: u32 = 1 << 0;
/// Descriptor options: the `tx_metadata_len` bytes in front of the packet hold a
/// `struct xsk_tx_metadata` (first descriptor of a packet only).
pub(crate) const XDP_TX_METADATA: u32 = 1 << 1;

/// `xsk_tx_metadata.flags`: finish the L4 checksum from `csum_start` / `csum_offset`.
pub(crate) const XDP_TXMD_FLAGS_CHECKSUM: u64 = 1 << 1;
/// `sizeof(struct xsk_tx_metadata)` since Linux 6.14 (flags, then a 16-byte union); the
/// checksum request lies in its first 12 bytes, which every 6.8+ kernel reads the same.
pub(crate) const XSK_TX_METADATA_LEN: u32 = 24;

/// Page offsets of the four rings for `mmap`.
pub(crate) const XDP_PGOFF_RX_RING: libc::off_t = 0;
pub(crate) const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
pub(crate) const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
pub(crate) const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

/// `XDP_RING_NEED_WAKEUP` in a ring's flags word.
pub(crate) const XDP_RING_NEED_WAKEUP: u32 = 1;

const SO_BUSY_POLL: libc::c_int = 46;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// `struct xdp_desc`: one RX or TX descriptor.
#[doc(alias = "xdp_desc")]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// `struct xdp_ring_offset`: where one ring's words lie in its mapping.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RingOffsets {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `struct xdp_mmap_offsets` (with flags: Linux 5.4+).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MmapOffsets {
    pub rx: RingOffsets,
    pub tx: RingOffsets,
    pub fill: RingOffsets,
    pub comp: RingOffsets,
}

/// `struct xdp_umem_reg` as of Linux 6.8 (`tx_metadata_len` after `flags`; no padding).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

/// `struct sockaddr_xdp`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct SockaddrXdp {
    family: u16,
    flags: u16,
    ifindex: u32,
    queue_id: u32,
    shared_umem_fd: u32,
}

/// `struct xdp_statistics` (all fields: Linux 5.9+).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Statistics {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

/// Plain data the kernel may read or fill byte for byte: `repr(C)`, no padding, every bit
/// pattern valid.
trait Pod: Copy {}
impl Pod for u32 {}
impl Pod for MmapOffsets {}
impl Pod for UmemReg {}
impl Pod for Statistics {}

const _: () = assert!(size_of::<XdpDesc>() == 16);
const _: () = assert!(size_of::<RingOffsets>() == 32 && size_of::<MmapOffsets>() == 128);
const _: () = assert!(size_of::<UmemReg>() == 32);
const _: () = assert!(size_of::<SockaddrXdp>() == 16);
const _: () = assert!(size_of::<Statistics>() == 48);

/// One AF_XDP socket descriptor, closed on drop.
#[derive(Debug)]
pub(crate) struct XskFd(OwnedFd);

impl XskFd {
    /// `socket(AF_XDP, SOCK_RAW)`.
    pub(crate) fn new() -> io::Result<XskFd> {
        // SAFETY: a plain socket call; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor we just opened and nothing else owns.
        Ok(XskFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Registers the UMEM (`XDP_UMEM_REG`).
    ///
    /// # Safety
    /// `reg.addr .. reg.addr + reg.len` is one page-aligned mapping that stays valid (and is
    /// not unmapped) for as long as this socket lives: the kernel pins it, reads and writes it.
    pub(crate) unsafe fn register_umem(&self, reg: &UmemReg) -> io::Result<()> {
        self.set(SOL_XDP, XDP_UMEM_REG, reg)
    }

    /// Creates one ring of `entries` (`XDP_RX_RING`, `XDP_TX_RING`, `XDP_UMEM_FILL_RING`,
    /// `XDP_UMEM_COMPLETION_RING`).
    pub(crate) fn create_ring(&self, opt: libc::c_int, entries: u32) -> io::Result<()> {
        self.set(SOL_XDP, opt, &entries)
    }

    /// Where the rings lie in their mappings.
    pub(crate) fn mmap_offsets(&self) -> io::Result<MmapOffsets> {
        let (off, len) = self.get::<MmapOffsets>(SOL_XDP, XDP_MMAP_OFFSETS)?;
        if len != size_of::<MmapOffsets>() {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "XDP_MMAP_OFFSETS without flags (Linux < 5.4)"));
        }
        Ok(off)
    }

    /// Binds to `queue` of interface `ifindex`.
    pub(crate) fn bind(&self, ifindex: u32, queue: u32, flags: u16) -> io::Result<()> {
        let sa = SockaddrXdp { family: libc::AF_XDP as u16, flags, ifindex, queue_id: queue, shared_umem_fd: 0 };
        // SAFETY: `sa` is a valid sockaddr_xdp of the size passed, read by the call only.
        let rc = unsafe {
            libc::bind(self.raw(), (&sa as *const SockaddrXdp).cast(), size_of::<SockaddrXdp>() as libc::socklen_t)
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The kernel's counters (`XDP_STATISTICS`); fields a kernel lacks stay 0.
    pub(crate) fn statistics(&self) -> io::Result<Statistics> {
        self.get::<Statistics>(SOL_XDP, XDP_STATISTICS).map(|(s, _)| s)
    }

    /// A `u32` option.
    pub(crate) fn get_u32(&self, level: libc::c_int, opt: libc::c_int) -> io::Result<u32> {
        self.get::<u32>(level, opt).map(|(v, _)| v)
    }

    /// Sets a `u32` option.
    pub(crate) fn set_u32(&self, level: libc::c_int, opt: libc::c_int, v: u32) -> io::Result<()> {
        self.set(level, opt, &v)
    }

    /// Sets `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL` and `SO_BUSY_POLL_BUDGET`; on failure,
    /// names the option.
    pub(crate) fn set_busy_poll(&self, usecs: u32, budget: u32) -> Result<(), (&'static str, io::Error)> {
        for (opt, val, name) in [
            (SO_PREFER_BUSY_POLL, 1, "SO_PREFER_BUSY_POLL"),
            (SO_BUSY_POLL, usecs, "SO_BUSY_POLL"),
            (SO_BUSY_POLL_BUDGET, budget, "SO_BUSY_POLL_BUDGET"),
        ] {
            self.set_u32(libc::SOL_SOCKET, opt, val).map_err(|e| (name, e))?;
        }
        Ok(())
    }

    /// Waits until the socket is readable or `timeout` passes (`poll(2)`).
    pub(crate) fn wait_readable(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd { fd: self.raw(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, exclusively borrowed for the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        rc > 0 && pfd.revents & libc::POLLIN != 0
    }

    /// A `poll` with no events and no wait: makes the driver look at the fill ring (what
    /// `XDP_RING_NEED_WAKEUP` on the fill ring asks for).
    pub(crate) fn wake_fill(&self) {
        let mut pfd = libc::pollfd { fd: self.raw(), events: 0, revents: 0 };
        // SAFETY: one valid pollfd, exclusively borrowed for the call.
        unsafe { libc::poll(&mut pfd, 1, 0) };
    }

    /// A zero-length `sendto`: makes the kernel process the TX ring. Returns the errno on
    /// failure.
    pub(crate) fn wake_tx(&self) -> Result<(), i32> {
        // SAFETY: a zero-length send with no buffer and no address on our own socket.
        let rc = unsafe { libc::sendto(self.raw(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
        if rc >= 0 {
            return Ok(());
        }
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    fn set<T: Pod>(&self, level: libc::c_int, opt: libc::c_int, v: &T) -> io::Result<()> {
        // SAFETY: `v` is plain data valid for reads of its size for the duration of the call.
        let rc = unsafe {
            libc::setsockopt(self.raw(), level, opt, (v as *const T).cast(), size_of::<T>() as libc::socklen_t)
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads an option into a zeroed `T`; returns it with the length the kernel wrote.
    fn get<T: Pod + Default>(&self, level: libc::c_int, opt: libc::c_int) -> io::Result<(T, usize)> {
        let mut v = T::default();
        let mut len = size_of::<T>() as libc::socklen_t;
        // SAFETY: `v` is plain data, writable for `len` bytes, and any bytes the kernel
        // writes into it form a valid `T` (Pod).
        let rc = unsafe { libc::getsockopt(self.raw(), level, opt, (&mut v as *mut T).cast(), &mut len) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((v, len as usize))
    }
}

impl AsRawFd for XskFd {
    fn as_raw_fd(&self) -> RawFd {
        self.raw()
    }
}
