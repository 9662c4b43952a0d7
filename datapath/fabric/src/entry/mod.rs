//! The C entry points libfabric calls, one module per object kind. Each entry point is a
//! thin `unsafe extern "C" fn` that checks its pointers, runs its body under
//! [`guard`] (no panic ever crosses into C: a caught one returns `-FI_EOTHER`), and
//! calls the safe logic in [`crate::core`].
//!
//! Objects are `#[repr(C)]` structs whose first field is the libfabric header
//! (`fid_ep`, `fid_cq`, ...), boxed, so the `fid *` libfabric hands back is the box's
//! address. [`obj`] turns it back into a reference after checking the class and that the
//! `ops` table is ours (so another provider's object passed to `fi_ep_bind` is refused).

pub mod av;
pub mod cq;
pub mod domain;
pub mod ep;
pub mod eq;
pub mod fabric;
pub mod info;
pub mod mr;
pub mod prov;
pub mod stubs;

use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ffi::consts::*;
use crate::ffi::types::{fi_ops, fid};

/// Runs `f`, turning a panic into `err` (logged): nothing unwinds into C.
pub fn guard<R>(err: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log::error!("internal error (caught, returning an error code): {what}");
            err
        }
    }
}

/// `-FI_EOTHER` as an entry point returns it.
pub const EOTHER: c_int = -FI_EOTHER;
/// `-FI_EOTHER` for entry points returning `ssize_t`.
pub const EOTHER_SZ: isize = -(FI_EOTHER as isize);

/// Our object behind a `fid *`, if it is of class `class` and has our `ops` table.
///
/// # Safety
///
/// `f` must be null or point to a live `struct fid`; if its class and ops match, it must be
/// the first field of a live `T` (true of every object this provider creates).
pub unsafe fn obj<'a, T>(f: *const fid, class: usize, ops: &'static fi_ops) -> Option<&'a T> {
    if f.is_null() {
        return None;
    }
    // SAFETY: non-null and, by the contract, a live fid.
    let h = unsafe { &*f };
    if h.fclass != class || !std::ptr::eq(h.ops, ops) {
        return None;
    }
    // SAFETY: class and ops say it is one of ours, whose first field this header is.
    Some(unsafe { &*(f as *const T) })
}

/// Takes back a boxed object on `close`.
///
/// # Safety
///
/// As [`obj`]; additionally nothing may use the object after this (libfabric's contract
/// for `fi_close`).
pub unsafe fn take<T>(f: *mut fid, class: usize, ops: &'static fi_ops) -> Option<Box<T>> {
    // SAFETY: forwarded contract.
    unsafe { obj::<T>(f, class, ops) }?;
    // SAFETY: the object was made by `Box::into_raw` of a `Box<T>` (see `boxed`).
    Some(unsafe { Box::from_raw(f as *mut T) })
}

/// Boxes an object and returns its address for libfabric.
pub fn boxed<T>(o: T) -> *mut T {
    Box::into_raw(Box::new(o))
}

/// A C string argument, if non-null and UTF-8.
///
/// # Safety
///
/// `p` must be null or a NUL-terminated string alive for `'a`.
pub unsafe fn cstr<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        // SAFETY: by the contract.
        unsafe { CStr::from_ptr(p) }.to_str().ok()
    }
}

/// A static NUL-terminated string for C.
pub fn static_cstr(s: &'static CStr) -> *const c_char {
    s.as_ptr()
}
