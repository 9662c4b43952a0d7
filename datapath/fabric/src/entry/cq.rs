//! Completion queues. Progress is manual: every read drives the endpoints bound to the
//! queue. A blocking read (`fi_cq_sread`) waits in `ppoll` on their AF_XDP descriptors,
//! outside the domain lock, waking at least every retransmission-timer slice while data
//! is unacknowledged, so timers run even when nothing arrives.

use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{boxed, guard, obj, stubs, take, EOTHER, EOTHER_SZ};
use crate::core::cq::{prov_errno, Completion, CqCore};
use crate::core::domain::DomainShared;
use crate::ffi::consts::*;
use crate::ffi::types::*;

#[repr(C)]
#[derive(Debug)]
pub struct CqObj {
    pub fid: fid_cq,
    pub shared: Arc<DomainShared>,
    pub id: u64,
    format: c_int,
    api: u32,
}

pub static FID_OPS: fi_ops = fi_ops {
    size: size_of::<fi_ops>(),
    close,
    bind: stubs::bind,
    control: stubs::control,
    ops_open: stubs::ops_open,
    tostr: None,
    ops_set: None,
};

static CQ_OPS: fi_ops_cq = fi_ops_cq {
    size: size_of::<fi_ops_cq>(),
    read,
    readfrom,
    readerr,
    sread,
    sreadfrom,
    signal: stubs::cq_signal,
    strerror,
};

/// `fi_cq_open`.
///
/// # Safety
///
/// Called by libfabric with the pointers its API documents: live objects of this
/// provider, valid attribute structures, and a writable result pointer.
pub unsafe extern "C" fn open(
    d: *mut fid_domain,
    attr: *mut fi_cq_attr,
    out: *mut *mut fid_cq,
    context: *mut c_void,
) -> c_int {
    guard(EOTHER, || {
        // SAFETY: libfabric passes a live domain fid.
        let Some(dom) = (unsafe { super::domain::domain(d.cast()) }) else { return -FI_EINVAL };
        // SAFETY: valid or null.
        let Some(a) = (unsafe { attr.as_ref() }) else { return -FI_EINVAL };
        if out.is_null() {
            return -FI_EINVAL;
        }
        let format = match a.format {
            FI_CQ_FORMAT_UNSPEC => FI_CQ_FORMAT_CONTEXT,
            f @ (FI_CQ_FORMAT_CONTEXT | FI_CQ_FORMAT_MSG | FI_CQ_FORMAT_DATA | FI_CQ_FORMAT_TAGGED) => f,
            _ => return -FI_ENOSYS,
        };
        // Blocking reads wait on the endpoints' own descriptors; no other wait object.
        if !matches!(a.wait_obj, FI_WAIT_NONE | FI_WAIT_UNSPEC) || a.wait_cond != FI_CQ_COND_NONE {
            return -FI_ENOSYS;
        }
        let mut st = dom.shared.lock();
        let id = st.id();
        st.cqs.insert(id, CqCore::default());
        let o = boxed(CqObj {
            fid: fid_cq { fid: fid { fclass: FI_CLASS_CQ, context, ops: &FID_OPS }, ops: &CQ_OPS },
            shared: dom.shared.clone(),
            id,
            format,
            api: dom.api,
        });
        // SAFETY: checked non-null.
        unsafe { *out = o.cast() };
        FI_SUCCESS
    })
}

/// The queue behind a `fid *` (for `fi_ep_bind`).
///
/// # Safety
///
/// `f` must be null or a live fid.
pub unsafe fn cq<'a>(f: *const fid) -> Option<&'a CqObj> {
    // SAFETY: forwarded.
    unsafe { obj(f, FI_CLASS_CQ, &FID_OPS) }
}

unsafe extern "C" fn close(f: *mut fid) -> c_int {
    guard(EOTHER, || {
        // SAFETY: a live fid of ours.
        let Some(c) = (unsafe { cq(f) }) else { return -FI_EINVAL };
        {
            let mut st = c.shared.lock();
            if st.eps.values().any(|e| e.tx_cq == Some(c.id) || e.rx_cq == Some(c.id)) {
                return -FI_EBUSY;
            }
            st.cqs.remove(&c.id);
        }
        // SAFETY: as above; closed once.
        drop(unsafe { take::<CqObj>(f, FI_CLASS_CQ, &FID_OPS) });
        FI_SUCCESS
    })
}

fn entry_size(format: c_int) -> usize {
    match format {
        FI_CQ_FORMAT_CONTEXT => 8,
        FI_CQ_FORMAT_MSG => 24,
        FI_CQ_FORMAT_DATA => 40,
        _ => size_of::<fi_cq_tagged_entry>(),
    }
}

/// Writes `done` into the caller's array in the queue's format. The formats are prefixes
/// of `fi_cq_tagged_entry`, so each entry is that structure cut to the format's size.
///
/// # Safety
///
/// `buf` must have room for `done.len()` entries of `format`; `src` null or room for as many.
unsafe fn write_out(format: c_int, buf: *mut c_void, src: *mut fi_addr_t, done: &[Completion]) {
    let size = entry_size(format);
    for (i, c) in done.iter().enumerate() {
        let e = fi_cq_tagged_entry {
            op_context: c.op_context as *mut c_void,
            flags: c.flags,
            len: c.len,
            buf: c.buf as *mut c_void,
            data: c.data,
            tag: c.tag,
        };
        // SAFETY: room for entry `i` of `size` bytes by the contract; `e` is at least
        // `size` bytes; the caller's memory does not overlap our local.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&e as *const fi_cq_tagged_entry).cast::<u8>(),
                (buf as *mut u8).add(i * size),
                size,
            );
            if !src.is_null() {
                *src.add(i) = c.src;
            }
        }
    }
}

/// One non-blocking read: progress, then successes at the head.
fn read_once(c: &CqObj, buf: *mut c_void, count: usize, src: *mut fi_addr_t) -> isize {
    if buf.is_null() && count > 0 {
        return -(FI_EINVAL as isize);
    }
    let mut st = c.shared.lock();
    st.progress_cq(c.id);
    let Some(q) = st.cqs.get_mut(&c.id) else { return -(FI_EINVAL as isize) };
    // The empty poll, the common one while spinning, allocates nothing.
    if q.error_at_head() {
        return -(FI_EAVAIL as isize);
    }
    if q.is_empty() || count == 0 {
        return -(FI_EAGAIN as isize);
    }
    let mut done = Vec::with_capacity(count.min(64));
    q.take_ok(count, &mut done);
    // SAFETY: the caller passes room for `count >= done.len()` entries (and source addresses).
    unsafe { write_out(c.format, buf, src, &done) };
    done.len() as isize
}

unsafe extern "C" fn read(q: *mut fid_cq, buf: *mut c_void, count: usize) -> isize {
    // SAFETY: forwarded.
    unsafe { readfrom(q, buf, count, std::ptr::null_mut()) }
}

unsafe extern "C" fn readfrom(q: *mut fid_cq, buf: *mut c_void, count: usize, src: *mut fi_addr_t) -> isize {
    guard(EOTHER_SZ, || {
        // SAFETY: a live fid of ours.
        let Some(c) = (unsafe { cq(q.cast()) }) else { return -(FI_EINVAL as isize) };
        read_once(c, buf, count, src)
    })
}

unsafe extern "C" fn sread(
    q: *mut fid_cq,
    buf: *mut c_void,
    count: usize,
    cond: *const c_void,
    timeout: c_int,
) -> isize {
    // SAFETY: forwarded.
    unsafe { sreadfrom(q, buf, count, std::ptr::null_mut(), cond, timeout) }
}

unsafe extern "C" fn sreadfrom(
    q: *mut fid_cq,
    buf: *mut c_void,
    count: usize,
    src: *mut fi_addr_t,
    _cond: *const c_void,
    timeout: c_int,
) -> isize {
    guard(EOTHER_SZ, || {
        // SAFETY: a live fid of ours.
        let Some(c) = (unsafe { cq(q.cast()) }) else { return -(FI_EINVAL as isize) };
        let end = (timeout >= 0).then(|| Instant::now() + Duration::from_millis(timeout as u64));
        loop {
            let r = read_once(c, buf, count, src);
            if r != -(FI_EAGAIN as isize) {
                return r;
            }
            let left = end.map_or(Duration::from_secs(1), |e| e.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return -(FI_EAGAIN as isize);
            }
            let (fds, slice) = c.shared.lock().wait_set(c.id);
            crate::ffi::sys::poll_readable(&fds, slice.map_or(left, |s| s.min(left)));
        }
    })
}

unsafe extern "C" fn readerr(q: *mut fid_cq, buf: *mut fi_cq_err_entry, _flags: u64) -> isize {
    guard(EOTHER_SZ, || {
        // SAFETY: a live fid of ours.
        let Some(c) = (unsafe { cq(q.cast()) }) else { return -(FI_EINVAL as isize) };
        if buf.is_null() {
            return -(FI_EINVAL as isize);
        }
        let Some(e) = c.shared.lock().cqs.get_mut(&c.id).and_then(CqCore::take_err) else {
            return -(FI_EAGAIN as isize);
        };
        let err = e.err.unwrap_or(crate::core::cq::CompErr { err: FI_EOTHER, olen: 0, prov_errno: 0 });
        // SAFETY: `buf` is the caller's fi_cq_err_entry. Before API 1.5 it ends before
        // `err_data_size`, which is then left alone.
        unsafe {
            let b = &mut *buf;
            b.op_context = e.op_context as *mut c_void;
            b.flags = e.flags;
            b.len = e.len;
            b.buf = e.buf as *mut c_void;
            b.data = e.data;
            b.tag = e.tag;
            b.olen = err.olen;
            b.err = err.err;
            b.prov_errno = err.prov_errno;
            b.err_data = std::ptr::null_mut();
            if c.api >= fi_version(1, 5) {
                b.err_data_size = 0;
            }
        }
        1
    })
}

unsafe extern "C" fn strerror(
    _q: *mut fid_cq,
    code: c_int,
    _err_data: *const c_void,
    buf: *mut c_char,
    len: usize,
) -> *const c_char {
    guard(std::ptr::null(), || {
        let text = prov_errno::describe(code);
        if !buf.is_null() && len > 0 {
            let n = text.len().min(len - 1);
            // SAFETY: `buf` has `len` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast(), n);
                *buf.add(n) = 0;
            }
            return buf as *const c_char;
        }
        match code {
            prov_errno::TRUNCATED => c"afxdp: message longer than the posted receive buffer (truncated)".as_ptr(),
            prov_errno::CANCELED => c"afxdp: operation cancelled (fi_cancel)".as_ptr(),
            prov_errno::CLOSED => c"afxdp: endpoint closed before the operation completed".as_ptr(),
            _ => c"afxdp: no such provider error".as_ptr(),
        }
    })
}
