//! `fi_prov_ini` (what libfabric looks up in `lib<name>-fi.so`), the provider's
//! `getinfo`, `fabric` and `cleanup`, and the provider's logger.

use std::ffi::{c_char, c_int};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use super::info::{alloc_info, complete, read_hints};
use super::{cstr, guard, EOTHER};
use crate::core::config::{Config, PROVIDER};
use crate::core::info::{offer, parse_node, PROV_VERSION};
use crate::ffi::consts::*;
use crate::ffi::types::*;

/// The provider structure libfabric keeps a pointer to (and writes its context into).
struct Prov(*mut fi_provider);
// SAFETY: the pointer is written once (OnceLock) and then only read; libfabric owns the
// pointee's `context` field, which Rust never touches.
unsafe impl Send for Prov {}
// SAFETY: as above.
unsafe impl Sync for Prov {}

static PROV: OnceLock<Prov> = OnceLock::new();
static NAME: &std::ffi::CStr = c"afxdp";

/// The entry point libfabric calls after `dlopen`.
#[no_mangle]
pub extern "C" fn fi_prov_ini() -> *mut fi_provider {
    guard(std::ptr::null_mut(), || {
        install_logger();
        PROV.get_or_init(|| {
            Prov(Box::into_raw(Box::new(fi_provider {
                version: PROV_VERSION,
                fi_version: fi_version(1, 17),
                context: fi_context { internal: [std::ptr::null_mut(); 4] },
                name: NAME.as_ptr(),
                getinfo,
                fabric: super::fabric::open,
                cleanup,
            })))
        })
        .0
    })
}

extern "C" fn cleanup() {}

/// Warns once that the provider is unconfigured, when the application asked for it.
static WARNED: AtomicBool = AtomicBool::new(false);

fn wants_us(prov_name: Option<&str>) -> bool {
    let named = |s: &str| s.split([';', ',']).any(|p| p.trim().trim_start_matches('^').eq_ignore_ascii_case(PROVIDER));
    prov_name.is_some_and(named) || std::env::var("FI_PROVIDER").is_ok_and(|v| named(&v))
}

/// `fi_getinfo` for this provider.
unsafe extern "C" fn getinfo(
    version: u32,
    node: *const c_char,
    service: *const c_char,
    flags: u64,
    hints: *const fi_info,
    out: *mut *mut fi_info,
) -> c_int {
    guard(EOTHER, || {
        if out.is_null() {
            return -FI_EINVAL;
        }
        // SAFETY: libfabric passes valid or null hints and strings.
        let mut h = unsafe { read_hints(hints) };
        let domain = h.as_ref().and_then(|h| h.domain.name.clone());
        let cfg = match Config::from_env(domain.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                let prov = h.as_ref().and_then(|h| h.prov_name.clone());
                if wants_us(prov.as_deref()) && !WARNED.swap(true, Ordering::Relaxed) {
                    log::warn!("{e}");
                } else {
                    log::debug!("{e}");
                }
                return -FI_ENODATA;
            }
        };
        if flags & OFI_CORE_PROV_ONLY != 0 && !cfg.layering {
            // A utility provider (ofi_rxd) asks for our DGRAM to build RDM on. Our own RDM
            // is faster (see the crate docs), and libfabric would list the layered one
            // first, where Open MPI and fi_pingpong take it: decline, as libfabric itself
            // does for providers with their own RDM (sockets, shm, efa, psm3).
            log::debug!("not offering DGRAM to a utility provider (FI_AFXDP_LAYERING=1 allows it)");
            return -FI_ENODATA;
        }
        // SAFETY: NUL-terminated strings or null.
        let (node, service) = unsafe { (cstr(node), cstr(service)) };
        if node.is_some() || service.is_some() {
            let Some(a) = parse_node(node, service) else { return -FI_ENODATA };
            let h = h.get_or_insert_with(crate::core::info::Info::empty);
            if flags & FI_SOURCE != 0 || node.is_none() {
                h.src = Some(a);
            } else {
                h.dest = Some(a);
            }
        }
        let infos = offer(&cfg, version, h.as_ref());
        let mut head: *mut fi_info = std::ptr::null_mut();
        for i in infos.iter().rev() {
            let p = alloc_info(i);
            // SAFETY: `p` comes from alloc_info.
            if !unsafe { complete(p) } {
                free_list(p);
                free_list(head);
                return -FI_ENOMEM;
            }
            // SAFETY: `p` is a fresh fi_info of ours.
            unsafe { (*p).next = head };
            head = p;
        }
        // SAFETY: `out` checked non-null.
        unsafe { *out = head };
        if head.is_null() {
            -FI_ENODATA
        } else {
            FI_SUCCESS
        }
    })
}

/// Frees a list made by `alloc_info` (on an error path, before libfabric owns it).
fn free_list(mut p: *mut fi_info) {
    while !p.is_null() {
        // SAFETY: every piece of a list from alloc_info was malloc'ed and is freed once.
        unsafe {
            let i = &mut *p;
            let next = i.next;
            libc::free(i.src_addr);
            libc::free(i.dest_addr);
            libc::free(i.tx_attr.cast());
            libc::free(i.rx_attr.cast());
            libc::free(i.ep_attr.cast());
            if !i.domain_attr.is_null() {
                libc::free((*i.domain_attr).name.cast());
            }
            libc::free(i.domain_attr.cast());
            if !i.fabric_attr.is_null() {
                libc::free((*i.fabric_attr).name.cast());
            }
            libc::free(i.fabric_attr.cast());
            libc::free(p.cast());
            p = next;
        }
    }
}

/// A logger writing `libfabric:<pid>:afxdp:<level>: ...` to stderr, at the level
/// `FI_AFXDP_LOG` names (default `warn`).
struct Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            // One write per line (stderr is unbuffered).
            let line =
                format!("libfabric:{}:afxdp:{}: {}\n", std::process::id(), r.level().as_str().to_lowercase(), r.args());
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

fn install_logger() {
    let level = std::env::var("FI_AFXDP_LOG").ok().and_then(|v| v.parse().ok()).unwrap_or(log::LevelFilter::Warn);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
