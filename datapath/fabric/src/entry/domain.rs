//! The domain object: one interface (and queue) of this process; opens address vectors,
//! completion queues, endpoints and memory registrations.

use std::ffi::{c_int, c_void};
use std::sync::Arc;

use super::{boxed, cstr, guard, obj, stubs, take, EOTHER};
use crate::core::config::Config;
use crate::core::domain::DomainShared;
use crate::ffi::consts::*;
use crate::ffi::types::*;

#[repr(C)]
#[derive(Debug)]
pub struct DomainObj {
    pub fid: fid_domain,
    pub shared: Arc<DomainShared>,
    /// The application's API version (the fabric's), for structure sizes.
    pub api: u32,
}

static FID_OPS: fi_ops = fi_ops {
    size: size_of::<fi_ops>(),
    close,
    bind: stubs::bind,
    control: stubs::control,
    ops_open: stubs::ops_open,
    tostr: None,
    ops_set: None,
};

static DOMAIN_OPS: fi_ops_domain = fi_ops_domain {
    size: size_of::<fi_ops_domain>(),
    av_open: super::av::open,
    cq_open: super::cq::open,
    endpoint: super::ep::open,
    scalable_ep: stubs::scalable_ep,
    cntr_open: stubs::cntr_open,
    poll_open: stubs::poll_open,
    stx_ctx: stubs::stx_ctx,
    srx_ctx: stubs::srx_ctx,
    query_atomic: stubs::query_atomic,
    query_collective: stubs::query_collective,
    endpoint2,
};

/// `fi_domain`.
///
/// # Safety
///
/// Called by libfabric with the pointers its API documents: live objects of this
/// provider, valid attribute structures, and a writable result pointer.
pub unsafe extern "C" fn open(
    fabric: *mut fid_fabric,
    info: *mut fi_info,
    out: *mut *mut fid_domain,
    context: *mut c_void,
) -> c_int {
    guard(EOTHER, || {
        // SAFETY: libfabric passes a live fabric fid.
        let Some(fab) = (unsafe { super::fabric::fabric(fabric) }) else { return -FI_EINVAL };
        if out.is_null() {
            return -FI_EINVAL;
        }
        // SAFETY: valid or null fi_info and its attributes.
        let name = unsafe { info.as_ref().and_then(|i| i.domain_attr.as_ref()).and_then(|d| cstr(d.name)) };
        let cfg = match Config::from_env(name) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("fi_domain: {e}");
                return -FI_ENODEV;
            }
        };
        if name.is_some_and(|n| n != cfg.iface) {
            log::warn!("fi_domain: domain {:?} is not FI_AFXDP_IFACE={}", name, cfg.iface);
            return -FI_ENODEV;
        }
        let o = boxed(DomainObj {
            fid: fid_domain {
                fid: fid { fclass: FI_CLASS_DOMAIN, context, ops: &FID_OPS },
                ops: &DOMAIN_OPS,
                mr: &super::mr::MR_OPS,
            },
            shared: Arc::new(DomainShared::new(cfg)),
            api: fab.fid.api_version,
        });
        // SAFETY: checked non-null.
        unsafe { *out = o.cast() };
        FI_SUCCESS
    })
}

/// The domain behind a `fid_domain *` (or a `fid *` of one).
///
/// # Safety
///
/// `d` must be null or a live fid.
pub unsafe fn domain<'a>(d: *const c_void) -> Option<&'a DomainObj> {
    // SAFETY: forwarded.
    unsafe { obj(d.cast(), FI_CLASS_DOMAIN, &FID_OPS) }
}

unsafe extern "C" fn close(f: *mut fid) -> c_int {
    guard(EOTHER, || {
        // SAFETY: libfabric closes a live fid of ours.
        let Some(d) = (unsafe { domain(f.cast()) }) else { return -FI_EINVAL };
        if !d.shared.lock().is_empty() {
            return -FI_EBUSY;
        }
        // SAFETY: as above; nothing uses it after close.
        drop(unsafe { take::<DomainObj>(f, FI_CLASS_DOMAIN, &FID_OPS) });
        FI_SUCCESS
    })
}

unsafe extern "C" fn endpoint2(
    d: *mut fid_domain,
    info: *mut fi_info,
    ep: *mut *mut fid_ep,
    flags: u64,
    context: *mut c_void,
) -> c_int {
    if flags != 0 {
        return -FI_EBADFLAGS;
    }
    // SAFETY: forwarded arguments.
    unsafe { super::ep::open(d, info, ep, context) }
}
