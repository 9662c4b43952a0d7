//! `struct fi_info` in and out: hints read into [`Info`], offers written as lists that
//! libfabric's `fi_freeinfo` can free (every piece from `calloc`/`strdup`, as its own
//! `fi_dupinfo` allocates them).

use std::ffi::{c_char, CString};
use std::net::{Ipv4Addr, SocketAddrV4};

use super::cstr;
use crate::core::info::{DomainAttr, EpAttr, Info};
use crate::ffi::consts::*;
use crate::ffi::types::*;

/// Reads a `sockaddr_in` (or an AF_INET `sockaddr`) of `len` bytes.
///
/// # Safety
///
/// `p` must be null or point to `len` readable bytes.
pub unsafe fn read_sin(p: *const std::ffi::c_void, len: usize) -> Option<SocketAddrV4> {
    if p.is_null() || len < size_of::<libc::sockaddr_in>() {
        return None;
    }
    // SAFETY: `len` bytes are readable, enough for a sockaddr_in; read unaligned.
    let sin: libc::sockaddr_in = unsafe { std::ptr::read_unaligned(p as *const libc::sockaddr_in) };
    (i32::from(sin.sin_family) == libc::AF_INET)
        .then(|| SocketAddrV4::new(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), u16::from_be(sin.sin_port)))
}

/// A `sockaddr_in` for `a`.
pub fn sin_of(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
        sin_zero: [0; 8],
    }
}

/// Writes `a` as a `sockaddr_in` into `buf` of `*len` bytes; sets `*len` to the size.
/// `false` (and nothing written) if the buffer is too small.
///
/// # Safety
///
/// `buf` must be null or writable for `*len` bytes; `len` must be valid.
pub unsafe fn write_sin(a: SocketAddrV4, buf: *mut std::ffi::c_void, len: *mut usize) -> bool {
    let need = size_of::<libc::sockaddr_in>();
    // SAFETY: `len` is valid by the contract.
    let have = unsafe { *len };
    // SAFETY: as above.
    unsafe { *len = need };
    if buf.is_null() || have < need {
        return false;
    }
    // SAFETY: `buf` has room for `need` bytes; written unaligned.
    unsafe { std::ptr::write_unaligned(buf as *mut libc::sockaddr_in, sin_of(a)) };
    true
}

/// The application's hints.
///
/// # Safety
///
/// `h` must be null or a valid `fi_info` whose non-null pointers are valid.
pub unsafe fn read_hints(h: *const fi_info) -> Option<Info> {
    if h.is_null() {
        return None;
    }
    // SAFETY: non-null and valid by the contract.
    let h = unsafe { &*h };
    let mut i = Info::empty();
    i.caps = h.caps;
    i.mode = h.mode;
    i.addr_format = h.addr_format;
    // SAFETY: src_addr/dest_addr hold src_addrlen/dest_addrlen bytes.
    i.src = unsafe { read_sin(h.src_addr, h.src_addrlen) };
    // SAFETY: as above.
    i.dest = unsafe { read_sin(h.dest_addr, h.dest_addrlen) };
    if !h.tx_attr.is_null() {
        // SAFETY: valid by the contract.
        i.tx = unsafe { *h.tx_attr };
    }
    if !h.rx_attr.is_null() {
        // SAFETY: valid by the contract.
        i.rx = unsafe { *h.rx_attr };
    }
    if !h.ep_attr.is_null() {
        // SAFETY: valid by the contract.
        let e = unsafe { &*h.ep_attr };
        i.ep = EpAttr {
            type_: e.type_,
            protocol: e.protocol,
            protocol_version: e.protocol_version,
            max_msg_size: e.max_msg_size,
            msg_prefix_size: e.msg_prefix_size,
            max_order_raw_size: e.max_order_raw_size,
            max_order_war_size: e.max_order_war_size,
            max_order_waw_size: e.max_order_waw_size,
            mem_tag_format: e.mem_tag_format,
            tx_ctx_cnt: e.tx_ctx_cnt,
            rx_ctx_cnt: e.rx_ctx_cnt,
        };
    }
    if !h.domain_attr.is_null() {
        // SAFETY: valid by the contract.
        let d = unsafe { &*h.domain_attr };
        i.domain = DomainAttr {
            // SAFETY: a NUL-terminated string or null.
            name: unsafe { cstr(d.name) }.map(str::to_owned),
            threading: d.threading,
            control_progress: d.control_progress,
            data_progress: d.data_progress,
            resource_mgmt: d.resource_mgmt,
            av_type: d.av_type,
            mr_mode: d.mr_mode,
            mr_key_size: d.mr_key_size,
            cq_data_size: d.cq_data_size,
            cq_cnt: d.cq_cnt,
            ep_cnt: d.ep_cnt,
            tx_ctx_cnt: d.tx_ctx_cnt,
            rx_ctx_cnt: d.rx_ctx_cnt,
            max_ep_tx_ctx: d.max_ep_tx_ctx,
            max_ep_rx_ctx: d.max_ep_rx_ctx,
            max_ep_stx_ctx: d.max_ep_stx_ctx,
            max_ep_srx_ctx: d.max_ep_srx_ctx,
            cntr_cnt: d.cntr_cnt,
            mr_iov_limit: d.mr_iov_limit,
            caps: d.caps,
            mode: d.mode,
            max_err_data: d.max_err_data,
            mr_cnt: d.mr_cnt,
        };
    }
    if !h.fabric_attr.is_null() {
        // SAFETY: valid by the contract.
        let f = unsafe { &*h.fabric_attr };
        // SAFETY: NUL-terminated strings or null.
        i.fabric_name = unsafe { cstr(f.name) }.map(str::to_owned);
        // SAFETY: as above.
        i.prov_name = unsafe { cstr(f.prov_name) }.map(str::to_owned);
    }
    Some(i)
}

fn calloc<T>() -> *mut T {
    // SAFETY: calloc of one T; the result is checked by the caller.
    unsafe { libc::calloc(1, size_of::<T>()) as *mut T }
}

fn strdup(s: &str) -> *mut c_char {
    let Ok(c) = CString::new(s) else { return std::ptr::null_mut() };
    // SAFETY: `c` is a valid C string; strdup copies it with malloc.
    unsafe { libc::strdup(c.as_ptr()) }
}

fn sin_box(a: SocketAddrV4) -> *mut std::ffi::c_void {
    let p = calloc::<libc::sockaddr_in>();
    if !p.is_null() {
        // SAFETY: freshly allocated room for one sockaddr_in.
        unsafe { p.write(sin_of(a)) };
    }
    p.cast()
}

/// One `fi_info` for libfabric (freed by its `fi_freeinfo`); null when out of memory.
pub fn alloc_info(i: &Info) -> *mut fi_info {
    let info = calloc::<fi_info>();
    if info.is_null() {
        return info;
    }
    let tx = calloc::<fi_tx_attr>();
    let rx = calloc::<fi_rx_attr>();
    let ep = calloc::<fi_ep_attr>();
    let dom = calloc::<fi_domain_attr>();
    let fab = calloc::<fi_fabric_attr>();
    // SAFETY: `info` is a zeroed fi_info; every pointer stored is ours or null, and
    // fi_freeinfo frees each with free().
    unsafe {
        let o = &mut *info;
        o.caps = i.caps;
        o.mode = i.mode;
        o.addr_format = i.addr_format;
        o.tx_attr = tx;
        o.rx_attr = rx;
        o.ep_attr = ep;
        o.domain_attr = dom;
        o.fabric_attr = fab;
        if let Some(s) = i.src {
            o.src_addr = sin_box(s);
            o.src_addrlen = if o.src_addr.is_null() { 0 } else { size_of::<libc::sockaddr_in>() };
        }
        if let Some(d) = i.dest {
            o.dest_addr = sin_box(d);
            o.dest_addrlen = if o.dest_addr.is_null() { 0 } else { size_of::<libc::sockaddr_in>() };
        }
        if tx.is_null() || rx.is_null() || ep.is_null() || dom.is_null() || fab.is_null() {
            return info; // fi_freeinfo frees what exists; the caller treats it as ENOMEM
        }
        *tx = i.tx;
        *rx = i.rx;
        let e = &mut *ep;
        e.type_ = i.ep.type_;
        e.protocol = i.ep.protocol;
        e.protocol_version = i.ep.protocol_version;
        e.max_msg_size = i.ep.max_msg_size;
        e.msg_prefix_size = i.ep.msg_prefix_size;
        e.max_order_raw_size = i.ep.max_order_raw_size;
        e.max_order_war_size = i.ep.max_order_war_size;
        e.max_order_waw_size = i.ep.max_order_waw_size;
        e.mem_tag_format = i.ep.mem_tag_format;
        e.tx_ctx_cnt = i.ep.tx_ctx_cnt;
        e.rx_ctx_cnt = i.ep.rx_ctx_cnt;
        let d = &mut *dom;
        let a = &i.domain;
        d.name = a.name.as_deref().map_or(std::ptr::null_mut(), strdup);
        d.threading = a.threading;
        d.control_progress = a.control_progress;
        d.data_progress = a.data_progress;
        d.resource_mgmt = a.resource_mgmt;
        d.av_type = a.av_type;
        d.mr_mode = a.mr_mode;
        d.mr_key_size = a.mr_key_size;
        d.cq_data_size = a.cq_data_size;
        d.cq_cnt = a.cq_cnt;
        d.ep_cnt = a.ep_cnt;
        d.tx_ctx_cnt = a.tx_ctx_cnt;
        d.rx_ctx_cnt = a.rx_ctx_cnt;
        d.max_ep_tx_ctx = a.max_ep_tx_ctx;
        d.max_ep_rx_ctx = a.max_ep_rx_ctx;
        d.max_ep_stx_ctx = a.max_ep_stx_ctx;
        d.max_ep_srx_ctx = a.max_ep_srx_ctx;
        d.cntr_cnt = a.cntr_cnt;
        d.mr_iov_limit = a.mr_iov_limit;
        d.caps = a.caps;
        d.mode = a.mode;
        d.max_err_data = a.max_err_data;
        d.mr_cnt = a.mr_cnt;
        let f = &mut *fab;
        f.name = i.fabric_name.as_deref().map_or(std::ptr::null_mut(), strdup);
        // prov_name stays NULL: the core fills it in (and asserts a core provider left it so).
        f.prov_version = i.prov_version;
    }
    info
}

/// Whether `alloc_info` got every piece.
///
/// # Safety
///
/// `p` must come from [`alloc_info`].
pub unsafe fn complete(p: *const fi_info) -> bool {
    if p.is_null() {
        return false;
    }
    // SAFETY: from alloc_info, valid.
    let i = unsafe { &*p };
    ![i.tx_attr.cast::<u8>(), i.rx_attr.cast(), i.ep_attr.cast(), i.domain_attr.cast(), i.fabric_attr.cast()]
        .iter()
        .any(|p| p.is_null())
}

/// The endpoint attributes an `fi_endpoint` call passes.
///
/// # Safety
///
/// `p` must be null or a valid `fi_info`.
pub unsafe fn ep_type_of(p: *const fi_info) -> i32 {
    // SAFETY: valid or null by the contract.
    unsafe { p.as_ref().and_then(|i| i.ep_attr.as_ref()).map_or(FI_EP_UNSPEC, |e| e.type_) }
}
