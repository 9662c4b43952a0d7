//! Address vectors (`FI_AV_TABLE` and `FI_AV_MAP`): addresses are `sockaddr_in`.
//! Inserts complete at once (no event queue needed); binding an EQ for asynchronous
//! inserts is refused with `-FI_ENOSYS`.

use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;

use super::info::{read_sin, write_sin};
use super::{boxed, cstr, guard, obj, stubs, take, EOTHER};
use crate::core::av::AvTable;
use crate::core::domain::DomainShared;
use crate::core::info::parse_node;
use crate::ffi::consts::*;
use crate::ffi::types::*;

#[repr(C)]
#[derive(Debug)]
pub struct AvObj {
    pub fid: fid_av,
    pub shared: Arc<DomainShared>,
    pub id: u64,
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

static AV_OPS: fi_ops_av = fi_ops_av {
    size: size_of::<fi_ops_av>(),
    insert,
    insertsvc,
    insertsym: stubs::av_insertsym,
    remove,
    lookup,
    straddr,
    av_set: stubs::av_set,
};

/// `fi_av_open`.
///
/// # Safety
///
/// Called by libfabric with the pointers its API documents: live objects of this
/// provider, valid attribute structures, and a writable result pointer.
pub unsafe extern "C" fn open(
    d: *mut fid_domain,
    attr: *mut fi_av_attr,
    out: *mut *mut fid_av,
    context: *mut c_void,
) -> c_int {
    guard(EOTHER, || {
        // SAFETY: libfabric passes a live domain fid.
        let Some(dom) = (unsafe { super::domain::domain(d.cast()) }) else { return -FI_EINVAL };
        // SAFETY: valid or null.
        let Some(a) = (unsafe { attr.as_ref() }) else { return -FI_EINVAL };
        if out.is_null() || !matches!(a.type_, FI_AV_UNSPEC | FI_AV_MAP | FI_AV_TABLE) {
            return -FI_EINVAL;
        }
        if !a.name.is_null() || a.rx_ctx_bits != 0 {
            return -FI_ENOSYS; // named (shared) AVs and scalable endpoints are not offered
        }
        let mut st = dom.shared.lock();
        let id = st.id();
        st.avs.insert(id, AvTable::new(a.count));
        let o = boxed(AvObj {
            fid: fid_av { fid: fid { fclass: FI_CLASS_AV, context, ops: &FID_OPS }, ops: &AV_OPS },
            shared: dom.shared.clone(),
            id,
        });
        // SAFETY: checked non-null.
        unsafe { *out = o.cast() };
        FI_SUCCESS
    })
}

unsafe fn av<'a>(a: *mut fid_av) -> Option<&'a AvObj> {
    // SAFETY: libfabric passes a live fid.
    unsafe { obj(a.cast(), FI_CLASS_AV, &FID_OPS) }
}

unsafe extern "C" fn close(f: *mut fid) -> c_int {
    guard(EOTHER, || {
        // SAFETY: a live fid of ours.
        let Some(a) = (unsafe { obj::<AvObj>(f, FI_CLASS_AV, &FID_OPS) }) else { return -FI_EINVAL };
        {
            let mut st = a.shared.lock();
            if st.eps.values().any(|e| e.av == Some(a.id)) {
                return -FI_EBUSY;
            }
            st.avs.remove(&a.id);
        }
        // SAFETY: as above; closed once.
        drop(unsafe { take::<AvObj>(f, FI_CLASS_AV, &FID_OPS) });
        FI_SUCCESS
    })
}

const SIN: usize = size_of::<libc::sockaddr_in>();

unsafe extern "C" fn insert(
    a: *mut fid_av,
    addr: *const c_void,
    count: usize,
    fi_addr: *mut fi_addr_t,
    _flags: u64,
    _context: *mut c_void,
) -> c_int {
    guard(EOTHER, || {
        // SAFETY: a live fid of ours.
        let Some(o) = (unsafe { av(a) }) else { return -FI_EINVAL };
        if addr.is_null() && count > 0 {
            return -FI_EINVAL;
        }
        let mut st = o.shared.lock();
        let Some(t) = st.avs.get_mut(&o.id) else { return -FI_EINVAL };
        let mut n = 0;
        for i in 0..count {
            // SAFETY: the caller passes `count` addresses of the AV's format (sockaddr_in).
            let sa = unsafe { read_sin((addr as *const u8).add(i * SIN).cast(), SIN) };
            let got = sa.and_then(|s| t.insert(s));
            if got.is_some() {
                n += 1;
            } else {
                log::warn!("fi_av_insert: entry {i} is not an AF_INET sockaddr_in (or the AV is full)");
            }
            if !fi_addr.is_null() {
                // SAFETY: the caller passes room for `count` results.
                unsafe { *fi_addr.add(i) = got.unwrap_or(FI_ADDR_NOTAVAIL) };
            }
        }
        n as c_int
    })
}

unsafe extern "C" fn insertsvc(
    a: *mut fid_av,
    node: *const c_char,
    service: *const c_char,
    fi_addr: *mut fi_addr_t,
    flags: u64,
    context: *mut c_void,
) -> c_int {
    guard(EOTHER, || {
        // SAFETY: NUL-terminated strings or null.
        let Some(s) = parse_node(unsafe { cstr(node) }, unsafe { cstr(service) }) else { return -FI_EINVAL };
        let sin = super::info::sin_of(s);
        // SAFETY: one sockaddr_in, alive for the call.
        unsafe { insert(a, (&sin as *const libc::sockaddr_in).cast(), 1, fi_addr, flags, context) }
    })
}

unsafe extern "C" fn remove(a: *mut fid_av, fi_addr: *mut fi_addr_t, count: usize, _flags: u64) -> c_int {
    guard(EOTHER, || {
        // SAFETY: a live fid of ours.
        let Some(o) = (unsafe { av(a) }) else { return -FI_EINVAL };
        if fi_addr.is_null() && count > 0 {
            return -FI_EINVAL;
        }
        let mut st = o.shared.lock();
        let Some(t) = st.avs.get_mut(&o.id) else { return -FI_EINVAL };
        let mut ok = true;
        for i in 0..count {
            // SAFETY: `count` entries.
            ok &= t.remove(unsafe { *fi_addr.add(i) });
        }
        if ok {
            FI_SUCCESS
        } else {
            -FI_EINVAL
        }
    })
}

unsafe extern "C" fn lookup(a: *mut fid_av, fi_addr: fi_addr_t, addr: *mut c_void, addrlen: *mut usize) -> c_int {
    guard(EOTHER, || {
        // SAFETY: a live fid of ours.
        let Some(o) = (unsafe { av(a) }) else { return -FI_EINVAL };
        if addrlen.is_null() {
            return -FI_EINVAL;
        }
        let st = o.shared.lock();
        let Some(s) = st.avs.get(&o.id).and_then(|t| t.lookup(fi_addr)) else { return -FI_ENODATA };
        // SAFETY: `addr` has `*addrlen` bytes (or is null).
        if unsafe { write_sin(s, addr, addrlen) } {
            FI_SUCCESS
        } else {
            -FI_ETOOSMALL
        }
    })
}

unsafe extern "C" fn straddr(_a: *mut fid_av, addr: *const c_void, buf: *mut c_char, len: *mut usize) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: `addr` is one address of the AV's format.
        let text = match unsafe { read_sin(addr, SIN) } {
            Some(s) => format!("fi_sockaddr_in://{s}"),
            None => "fi_addr_format_unknown".to_string(),
        };
        if len.is_null() {
            return std::ptr::null();
        }
        // SAFETY: `len` is valid; `buf` has `*len` bytes.
        unsafe {
            let have = *len;
            *len = text.len() + 1;
            if !buf.is_null() && have > 0 {
                let n = text.len().min(have - 1);
                std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast(), n);
                *buf.add(n) = 0;
            }
        }
        buf
    })
}
