//! The fabric object: opens domains and event queues.

use std::ffi::{c_int, c_void};

use super::{boxed, cstr, guard, obj, stubs, take, EOTHER};
use crate::ffi::consts::*;
use crate::ffi::types::*;

/// A fabric (one per `fi_fabric` call).
#[repr(C)]
#[derive(Debug)]
pub struct FabricObj {
    pub fid: fid_fabric,
    pub name: String,
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

static FABRIC_OPS: fi_ops_fabric = fi_ops_fabric {
    size: size_of::<fi_ops_fabric>(),
    domain: super::domain::open,
    passive_ep: stubs::passive_ep,
    eq_open: super::eq::open,
    wait_open: stubs::wait_open,
    trywait: stubs::trywait,
    domain2,
};

/// The provider's `fabric` entry point (`fi_fabric`).
///
/// # Safety
///
/// Called by libfabric with the pointers its API documents: live objects of this
/// provider, valid attribute structures, and a writable result pointer.
pub unsafe extern "C" fn open(attr: *mut fi_fabric_attr, out: *mut *mut fid_fabric, context: *mut c_void) -> c_int {
    guard(EOTHER, || {
        if attr.is_null() || out.is_null() {
            return -FI_EINVAL;
        }
        // SAFETY: libfabric passes a valid attribute structure.
        let a = unsafe { &*attr };
        // SAFETY: a NUL-terminated string or null.
        let name = unsafe { cstr(a.name) }.unwrap_or("").to_owned();
        let o = boxed(FabricObj {
            fid: fid_fabric {
                fid: fid { fclass: FI_CLASS_FABRIC, context, ops: &FID_OPS },
                ops: &FABRIC_OPS,
                api_version: a.api_version,
            },
            name,
        });
        // SAFETY: `out` checked non-null.
        unsafe { *out = o.cast() };
        FI_SUCCESS
    })
}

/// The fabric behind a `fid_fabric *`.
///
/// # Safety
///
/// `f` must be null or a live fid.
pub unsafe fn fabric<'a>(f: *mut fid_fabric) -> Option<&'a FabricObj> {
    // SAFETY: forwarded.
    unsafe { obj(f.cast(), FI_CLASS_FABRIC, &FID_OPS) }
}

unsafe extern "C" fn close(f: *mut fid) -> c_int {
    // SAFETY: libfabric closes a live fid of ours.
    guard(EOTHER, || match unsafe { take::<FabricObj>(f, FI_CLASS_FABRIC, &FID_OPS) } {
        Some(_) => FI_SUCCESS,
        None => -FI_EINVAL,
    })
}

unsafe extern "C" fn domain2(
    f: *mut fid_fabric,
    info: *mut fi_info,
    dom: *mut *mut fid_domain,
    flags: u64,
    context: *mut c_void,
) -> c_int {
    if flags != 0 {
        return -FI_EBADFLAGS;
    }
    // SAFETY: forwarded arguments.
    unsafe { super::domain::open(f, info, dom, context) }
}
