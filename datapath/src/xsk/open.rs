//! Opening a socket: our own `socket(AF_XDP)` and `XDP_UMEM_REG` (so that TX metadata can be
//! asked for: the UMEM can be registered once per socket, and whoever registers it sets
//! `tx_metadata_len`), the four rings, then the bind, trying zero-copy before copy mode and
//! multi-buffer before single-buffer.

use umem::{Buf, Pool};

use super::{BindMode, BindPolicy, TxChecksumOffload, XskConfig, XskSocket, XskStats, XDP_PACKET_HEADROOM};
use crate::batch::TxRules;
use crate::caps::{self, Cap};
use crate::netdev::{self, XskFeatures};
use crate::ring::Cursor;
use crate::rings::{CompRing, FillRing, RxRing, TxRing};
use crate::sys::{self, UmemReg, XskFd};
use crate::{Error, Interface};

/// The rings and descriptor of a socket that bound.
struct Parts {
    rx: RxRing,
    tx: TxRing,
    fill: FillRing,
    comp: CompRing,
    fd: XskFd,
    /// `tx_metadata_len` registered (0: none).
    meta_len: u32,
    /// The kernel refused TX metadata (EINVAL: Linux < 6.8).
    meta_refused: bool,
}

/// Which step of opening a socket failed, with its errno.
#[derive(Debug)]
struct Failed {
    call: &'static str,
    errno: i32,
}

fn fail(call: &'static str) -> impl Fn(std::io::Error) -> Failed {
    move |e| Failed { call, errno: e.raw_os_error().unwrap_or(libc::EINVAL) }
}

impl XskSocket {
    /// Registers `pool` as a UMEM, creates the rings and binds to `cfg.queue` of `iface`.
    pub fn open(pool: &Pool, iface: &Interface, cfg: &XskConfig) -> Result<XskSocket, Error> {
        caps::require(Cap::NetRaw, "opening an AF_XDP socket")?;
        if cfg.queue >= iface.rx_queues {
            return Err(Error::NoQueue { iface: iface.name.clone(), queue: cfg.queue, queues: iface.rx_queues });
        }
        let features = match netdev::xsk_features(iface.index) {
            Ok(f) => f,
            Err(e) => {
                log::debug!("{}: netdev xsk-features not read: {e}", iface.name);
                None
            }
        };
        // With TX metadata the kernel checks `addr - tx_metadata_len` of every descriptor,
        // which wraps for the first bytes of the UMEM: hold frame 0 out of circulation.
        let mut low_frame = None;
        let mut off_why = "not asked for";
        if cfg.tx_checksum_offload {
            match pool.alloc_frame().filter(|f| f.addr() == 0) {
                Some(f) => low_frame = Some(f),
                None => off_why = "frame 0 of the pool is in use (open the socket before using the pool)",
            }
        }
        let modes: &[BindMode] = match cfg.bind {
            BindPolicy::PreferZeroCopy => &[BindMode::ZeroCopy, BindMode::Copy],
            BindPolicy::ZeroCopy => &[BindMode::ZeroCopy],
            BindPolicy::Copy => &[BindMode::Copy],
        };
        let sgs: &[bool] = if cfg.multi_buffer { &[true, false] } else { &[false] };
        let mut last = None;
        for &mode in modes {
            // Zero-copy: only a driver that finishes checksum requests makes metadata worth
            // its constraints. Copy mode: the kernel always honours them.
            let device_csum = features.is_some_and(XskFeatures::tx_checksum);
            let want_meta = low_frame.is_some() && (mode == BindMode::Copy || device_csum);
            for &sg in sgs {
                let mut flags = sys::XDP_USE_NEED_WAKEUP;
                flags |= match mode {
                    BindMode::ZeroCopy => sys::XDP_ZEROCOPY,
                    BindMode::Copy => sys::XDP_COPY,
                };
                if sg {
                    flags |= sys::XDP_USE_SG;
                }
                match try_open(pool, iface, cfg, flags, want_meta) {
                    Ok(parts) => {
                        let why = match (parts.meta_refused, mode, cfg.tx_checksum_offload) {
                            (true, _, _) => "the kernel refused TX metadata (XDP_UMEM_TX_METADATA_LEN needs Linux 6.8+)",
                            (false, BindMode::ZeroCopy, true) if low_frame.is_some() => {
                                "zero-copy, and the device finishes no checksum requests (xsk-features lacks tx-checksum)"
                            }
                            _ => off_why,
                        };
                        let low = if parts.meta_len > 0 { low_frame } else { None };
                        return finish(pool, iface, cfg, parts, mode, sg, features, low, why);
                    }
                    Err(f) => {
                        let err = classify(iface, cfg, &f)?;
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
}

/// Turns a failure that no other mode would fix into an error; `Ok` means "try the next
/// mode" and carries the reason.
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

/// Registers the UMEM (with TX metadata if `want_meta`, falling back to none on EINVAL),
/// creates and maps the four rings, and binds with `bind_flags`.
fn try_open(
    pool: &Pool,
    iface: &Interface,
    cfg: &XskConfig,
    bind_flags: u16,
    want_meta: bool,
) -> Result<Parts, Failed> {
    let fd = XskFd::new().map_err(fail("socket(AF_XDP)"))?;
    let area = pool.area();
    let mut reg = UmemReg {
        addr: area.cast::<u8>().as_ptr() as u64,
        len: area.len() as u64,
        chunk_size: pool.frame_size(),
        headroom: 0,
        flags: sys::XDP_UMEM_UNALIGNED_CHUNK_FLAG,
        tx_metadata_len: 0,
    };
    let (mut meta_len, mut meta_refused) = (0, false);
    if want_meta {
        reg.flags |= sys::XDP_UMEM_TX_METADATA_LEN;
        reg.tx_metadata_len = sys::XSK_TX_METADATA_LEN;
    }
    // SAFETY: `pool.area()` is one page-aligned mapping, valid for its whole length for as
    // long as the pool lives; the socket keeps a clone of the pool and drops it after the
    // descriptor (field order of XskSocket).
    match unsafe { fd.register_umem(&reg) } {
        Ok(()) => meta_len = reg.tx_metadata_len,
        Err(e) if want_meta && e.raw_os_error() == Some(libc::EINVAL) => {
            // Linux < 6.8 knows no XDP_UMEM_TX_METADATA_LEN; a refused registration leaves
            // no state behind, so the same socket registers again without it.
            meta_refused = true;
            reg.flags &= !sys::XDP_UMEM_TX_METADATA_LEN;
            reg.tx_metadata_len = 0;
            // SAFETY: as above.
            unsafe { fd.register_umem(&reg) }.map_err(fail("setsockopt(XDP_UMEM_REG)"))?;
        }
        Err(e) => return Err(fail("setsockopt(XDP_UMEM_REG)")(e)),
    }
    fd.create_ring(sys::XDP_UMEM_FILL_RING, cfg.fill_size).map_err(fail("setsockopt(XDP_UMEM_FILL_RING)"))?;
    fd.create_ring(sys::XDP_UMEM_COMPLETION_RING, cfg.comp_size)
        .map_err(fail("setsockopt(XDP_UMEM_COMPLETION_RING)"))?;
    fd.create_ring(sys::XDP_RX_RING, cfg.rx_size).map_err(fail("setsockopt(XDP_RX_RING)"))?;
    fd.create_ring(sys::XDP_TX_RING, cfg.tx_size).map_err(fail("setsockopt(XDP_TX_RING)"))?;
    let off = fd.mmap_offsets().map_err(fail("getsockopt(XDP_MMAP_OFFSETS)"))?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    // Each ring was just created on this socket with the size given (setsockopt refuses
    // sizes that are not powers of two), `off` is the kernel's layout for it, and the
    // socket is the only producer / consumer of each.
    // SAFETY: as just said, for the fill ring.
    let fill = unsafe { FillRing::map(raw, &off.fill, cfg.fill_size, sys::XDP_UMEM_PGOFF_FILL_RING) };
    let fill = fill.map_err(fail("mmap(fill ring)"))?;
    // SAFETY: as above.
    let comp = unsafe { CompRing::map(raw, &off.comp, cfg.comp_size, sys::XDP_UMEM_PGOFF_COMPLETION_RING) }
        .map_err(fail("mmap(completion ring)"))?;
    // SAFETY: as above.
    let rx =
        unsafe { RxRing::map(raw, &off.rx, cfg.rx_size, sys::XDP_PGOFF_RX_RING) }.map_err(fail("mmap(rx ring)"))?;
    // SAFETY: as above.
    let tx =
        unsafe { TxRing::map(raw, &off.tx, cfg.tx_size, sys::XDP_PGOFF_TX_RING) }.map_err(fail("mmap(tx ring)"))?;
    fd.bind(iface.index, cfg.queue, bind_flags).map_err(fail("bind(AF_XDP)"))?;
    Ok(Parts { rx, tx, fill, comp, fd, meta_len, meta_refused })
}

/// Reads what the bind gave, applies the socket options, and builds the socket.
#[allow(clippy::too_many_arguments)]
fn finish(
    pool: &Pool,
    iface: &Interface,
    cfg: &XskConfig,
    parts: Parts,
    asked: BindMode,
    multi_buffer: bool,
    features: Option<XskFeatures>,
    low_frame: Option<Buf>,
    off_why: &'static str,
) -> Result<XskSocket, Error> {
    let fd = parts.fd;
    let mode = match fd.get_u32(sys::SOL_XDP, sys::XDP_OPTIONS) {
        Ok(opts) if opts & sys::XDP_OPTIONS_ZEROCOPY != 0 => BindMode::ZeroCopy,
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
    if let Err(e) = fd.set_u32(sys::SOL_XDP, sys::XDP_MAX_TX_SKB_BUDGET, cfg.tx_size) {
        log::debug!("XDP_MAX_TX_SKB_BUDGET not set: {e}");
    }
    if let Some(bp) = cfg.busy_poll {
        fd.set_busy_poll(bp.usecs, bp.budget).map_err(|(call, source)| Error::Syscall { call, source })?;
    }
    let tx_checksum = match (parts.meta_len, mode) {
        (0, _) => TxChecksumOffload::Off(off_why),
        (_, BindMode::Copy) => TxChecksumOffload::Kernel,
        (_, BindMode::ZeroCopy) => TxChecksumOffload::Device,
    };
    log::info!(
        "{}/{}: AF_XDP socket bound, {mode} mode, multi-buffer {}, rings rx/tx/fill/comp {}/{}/{}/{}, \
         TX metadata {} B, checksum offload {tx_checksum}, device xsk-features {}",
        iface.name,
        cfg.queue,
        if multi_buffer { "on" } else { "off" },
        cfg.rx_size,
        cfg.tx_size,
        cfg.fill_size,
        cfg.comp_size,
        parts.meta_len,
        features.map_or_else(|| "unknown".to_string(), |f| f.to_string()),
    );
    let mut sock = XskSocket {
        rx: parts.rx,
        tx: parts.tx,
        fill: parts.fill,
        comp: parts.comp,
        fd,
        iface: iface.clone(),
        queue: cfg.queue,
        mode,
        rules: TxRules { multi_buffer, meta_len: parts.meta_len, chunk: pool.frame_size() },
        tx_checksum,
        features,
        tx_inflight: Cursor::new(cfg.tx_size.next_power_of_two().max(cfg.comp_size) * 2, 0),
        tx_queued: 0,
        tx_size: cfg.tx_size,
        stats: XskStats::default(),
        scratch: vec![umem::UmemAddr::default(); cfg.fill_size as usize],
        _low_frame: low_frame,
        pool: pool.clone(),
    };
    sock.refill();
    Ok(sock)
}
