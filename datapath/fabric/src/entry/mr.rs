//! Memory registration. The provider needs none (`mr_mode` 0): every byte is copied once
//! between the application's buffer and pool frames, because AF_XDP's UMEM is registered
//! once when the socket binds and an application buffer cannot join it afterwards. A
//! registration is accepted and keyed so applications that always register work.

use std::ffi::{c_int, c_void};
use std::sync::Arc;

use super::{boxed, guard, obj, stubs, take, EOTHER};
use crate::core::domain::{DomainShared, MrInfo};
use crate::ffi::consts::*;
use crate::ffi::types::*;

#[repr(C)]
#[derive(Debug)]
pub struct MrObj {
    pub fid: fid_mr,
    shared: Arc<DomainShared>,
    id: u64,
}

static FID_OPS: fi_ops = fi_ops {
    size: size_of::<fi_ops>(),
    close,
    bind: mr_bind,
    control: stubs::control,
    ops_open: stubs::ops_open,
    tostr: None,
    ops_set: None,
};

pub static MR_OPS: fi_ops_mr = fi_ops_mr { size: size_of::<fi_ops_mr>(), reg, regv, regattr };

fn register(dom: *mut fid, iov: &[iovec], requested_key: u64, out: *mut *mut fid_mr, context: *mut c_void) -> c_int {
    // SAFETY: libfabric passes the domain fid the registration is on.
    let Some(d) = (unsafe { super::domain::domain(dom.cast()) }) else { return -FI_EINVAL };
    if out.is_null() || iov.len() > crate::core::info::IOV_LIMIT {
        return -FI_EINVAL;
    }
    let mut st = d.shared.lock();
    let id = st.id();
    let key = if requested_key == FI_ADDR_UNSPEC { id } else { requested_key };
    let (addr, len) = iov.first().map_or((0, 0), |v| (v.iov_base as usize, v.iov_len));
    st.mrs.insert(id, MrInfo { addr, len: iov.iter().map(|v| v.iov_len).sum::<usize>().max(len), key });
    let o = boxed(MrObj {
        fid: fid_mr { fid: fid { fclass: FI_CLASS_MR, context, ops: &FID_OPS }, mem_desc: std::ptr::null_mut(), key },
        shared: d.shared.clone(),
        id,
    });
    // SAFETY: `o` is ours and alive; its descriptor is its own address.
    unsafe { (*o).fid.mem_desc = o.cast() };
    // SAFETY: checked non-null.
    unsafe { *out = o.cast() };
    FI_SUCCESS
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn reg(
    dom: *mut fid,
    buf: *const c_void,
    len: usize,
    _access: u64,
    _offset: u64,
    requested_key: u64,
    _flags: u64,
    out: *mut *mut fid_mr,
    context: *mut c_void,
) -> c_int {
    let v = iovec { iov_base: buf as *mut c_void, iov_len: len };
    guard(EOTHER, || register(dom, std::slice::from_ref(&v), requested_key, out, context))
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn regv(
    dom: *mut fid,
    iov: *const iovec,
    count: usize,
    _access: u64,
    _offset: u64,
    requested_key: u64,
    _flags: u64,
    out: *mut *mut fid_mr,
    context: *mut c_void,
) -> c_int {
    guard(EOTHER, || {
        if iov.is_null() && count > 0 {
            return -FI_EINVAL;
        }
        // SAFETY: the caller passes `count` iovecs.
        let v = if count == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(iov, count) } };
        register(dom, v, requested_key, out, context)
    })
}

unsafe extern "C" fn regattr(dom: *mut fid, attr: *const fi_mr_attr, _flags: u64, out: *mut *mut fid_mr) -> c_int {
    guard(EOTHER, || {
        // SAFETY: valid or null.
        let Some(a) = (unsafe { attr.as_ref() }) else { return -FI_EINVAL };
        if a.mr_iov.is_null() && a.iov_count > 0 {
            return -FI_EINVAL;
        }
        // SAFETY: `iov_count` iovecs.
        let v = if a.iov_count == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(a.mr_iov, a.iov_count) } };
        register(dom, v, a.requested_key, out, a.context)
    })
}

unsafe extern "C" fn mr_bind(_f: *mut fid, _b: *mut fid, _flags: u64) -> c_int {
    FI_SUCCESS
}

unsafe extern "C" fn close(f: *mut fid) -> c_int {
    guard(EOTHER, || {
        // SAFETY: a live fid of ours.
        let Some(m) = (unsafe { obj::<MrObj>(f, FI_CLASS_MR, &FID_OPS) }) else { return -FI_EINVAL };
        m.shared.lock().mrs.remove(&m.id);
        // SAFETY: as above; closed once.
        drop(unsafe { take::<MrObj>(f, FI_CLASS_MR, &FID_OPS) });
        FI_SUCCESS
    })
}
