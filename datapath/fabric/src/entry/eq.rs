//! Event queues. This provider raises no events of its own (no connections, address
//! vector inserts complete synchronously), but applications open one and may write
//! their own events into it (`fi_eq_write`), which reads return in order.

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{boxed, guard, stubs, take, EOTHER, EOTHER_SZ};
use crate::ffi::consts::*;
use crate::ffi::types::*;

/// Events written and not yet read, at most this many.
const EQ_MAX: usize = 4096;

#[repr(C)]
#[derive(Debug)]
pub struct EqObj {
    pub fid: fid_eq,
    q: Mutex<VecDeque<(u32, Vec<u8>)>>,
    cv: Condvar,
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

static EQ_OPS: fi_ops_eq = fi_ops_eq { size: size_of::<fi_ops_eq>(), read, readerr, write, sread, strerror };

/// `fi_eq_open`.
///
/// # Safety
///
/// Called by libfabric with the pointers its API documents: live objects of this
/// provider, valid attribute structures, and a writable result pointer.
pub unsafe extern "C" fn open(
    _fabric: *mut fid_fabric,
    attr: *mut fi_eq_attr,
    out: *mut *mut fid_eq,
    context: *mut c_void,
) -> c_int {
    guard(EOTHER, || {
        if out.is_null() {
            return -FI_EINVAL;
        }
        // SAFETY: valid or null.
        if let Some(a) = unsafe { attr.as_ref() } {
            if !matches!(a.wait_obj, FI_WAIT_NONE | FI_WAIT_UNSPEC) {
                return -FI_ENOSYS;
            }
        }
        let o = boxed(EqObj {
            fid: fid_eq { fid: fid { fclass: FI_CLASS_EQ, context, ops: &FID_OPS }, ops: &EQ_OPS },
            q: Mutex::new(VecDeque::new()),
            cv: Condvar::new(),
        });
        // SAFETY: checked non-null.
        unsafe { *out = o.cast() };
        FI_SUCCESS
    })
}

unsafe fn eq<'a>(e: *mut fid_eq) -> Option<&'a EqObj> {
    // SAFETY: libfabric passes a live fid.
    unsafe { super::obj(e.cast(), FI_CLASS_EQ, &FID_OPS) }
}

unsafe extern "C" fn close(f: *mut fid) -> c_int {
    // SAFETY: libfabric closes a live fid of ours.
    guard(EOTHER, || match unsafe { take::<EqObj>(f, FI_CLASS_EQ, &FID_OPS) } {
        Some(_) => FI_SUCCESS,
        None => -FI_EINVAL,
    })
}

fn pop(o: &EqObj, event: *mut u32, buf: *mut c_void, len: usize, peek: bool) -> isize {
    let mut q = o.q.lock().unwrap_or_else(PoisonError::into_inner);
    let Some((ev, data)) = q.front() else { return -(FI_EAGAIN as isize) };
    if len < data.len() {
        return -(FI_ETOOSMALL as isize);
    }
    let n = data.len();
    // SAFETY: `event` is null or writable; `buf` has room for `len >= n` bytes.
    unsafe {
        if !event.is_null() {
            *event = *ev;
        }
        if n > 0 && !buf.is_null() {
            std::ptr::copy_nonoverlapping(data.as_ptr(), buf.cast(), n);
        }
    }
    if !peek {
        q.pop_front();
    }
    n as isize
}

unsafe extern "C" fn read(e: *mut fid_eq, event: *mut u32, buf: *mut c_void, len: usize, flags: u64) -> isize {
    guard(EOTHER_SZ, || {
        // SAFETY: a live fid of ours.
        let Some(o) = (unsafe { eq(e) }) else { return -(FI_EINVAL as isize) };
        pop(o, event, buf, len, flags & FI_PEEK != 0)
    })
}

unsafe extern "C" fn readerr(_e: *mut fid_eq, _buf: *mut fi_eq_err_entry, _flags: u64) -> isize {
    -(FI_EAGAIN as isize)
}

unsafe extern "C" fn write(e: *mut fid_eq, event: u32, buf: *const c_void, len: usize, _flags: u64) -> isize {
    guard(EOTHER_SZ, || {
        // SAFETY: a live fid of ours.
        let Some(o) = (unsafe { eq(e) }) else { return -(FI_EINVAL as isize) };
        let mut data = vec![0u8; len];
        if len > 0 {
            if buf.is_null() {
                return -(FI_EINVAL as isize);
            }
            // SAFETY: the caller passes `len` readable bytes.
            unsafe { std::ptr::copy_nonoverlapping(buf.cast(), data.as_mut_ptr(), len) };
        }
        let mut q = o.q.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() >= EQ_MAX {
            return -(FI_EAGAIN as isize);
        }
        q.push_back((event, data));
        o.cv.notify_all();
        len as isize
    })
}

unsafe extern "C" fn sread(
    e: *mut fid_eq,
    event: *mut u32,
    buf: *mut c_void,
    len: usize,
    timeout: c_int,
    flags: u64,
) -> isize {
    guard(EOTHER_SZ, || {
        // SAFETY: a live fid of ours.
        let Some(o) = (unsafe { eq(e) }) else { return -(FI_EINVAL as isize) };
        let end = (timeout >= 0).then(|| Instant::now() + Duration::from_millis(timeout as u64));
        let mut q = o.q.lock().unwrap_or_else(PoisonError::into_inner);
        while q.is_empty() {
            let left = match end {
                Some(t) => t.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return -(FI_EAGAIN as isize);
            }
            q = o.cv.wait_timeout(q, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        drop(q);
        pop(o, event, buf, len, flags & FI_PEEK != 0)
    })
}

unsafe extern "C" fn strerror(
    _e: *mut fid_eq,
    _prov_errno: c_int,
    _err_data: *const c_void,
    _buf: *mut c_char,
    _len: usize,
) -> *const c_char {
    c"afxdp: this provider reports no event queue errors".as_ptr()
}
