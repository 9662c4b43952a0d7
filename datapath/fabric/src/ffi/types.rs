//! The subset of libfabric 1.17's C structures this provider reads or fills, written by
//! hand from `rdma/fabric.h`, `fi_domain.h`, `fi_endpoint.h`, `fi_eq.h`, `fi_tagged.h`,
//! `fi_cm.h`, `fi_rma.h`, `fi_atomic.h` and `providers/fi_prov.h`. Field order and types
//! follow the headers; `layout_check` (a unit test) compiles a C file against the installed
//! headers and compares every size and offset listed in `super::layout`.
//!
//! C enums are `int` here (`c_int`), as the ABI passes them. Function pointers are
//! `Option<...>` only where the provider leaves them NULL.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

pub type fi_addr_t = u64;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct iovec {
    pub iov_base: *mut c_void,
    pub iov_len: usize,
}

#[repr(C)]
#[derive(Debug)]
pub struct fid {
    pub fclass: usize,
    pub context: *mut c_void,
    pub ops: *const fi_ops,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_ops {
    pub size: usize,
    pub close: unsafe extern "C" fn(*mut fid) -> c_int,
    pub bind: unsafe extern "C" fn(*mut fid, *mut fid, u64) -> c_int,
    pub control: unsafe extern "C" fn(*mut fid, c_int, *mut c_void) -> c_int,
    pub ops_open: unsafe extern "C" fn(*mut fid, *const c_char, u64, *mut *mut c_void, *mut c_void) -> c_int,
    pub tostr: Option<unsafe extern "C" fn(*const fid, *mut c_char, usize) -> c_int>,
    pub ops_set: Option<unsafe extern "C" fn(*mut fid, *const c_char, u64, *mut c_void, *mut c_void) -> c_int>,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct fi_tx_attr {
    pub caps: u64,
    pub mode: u64,
    pub op_flags: u64,
    pub msg_order: u64,
    pub comp_order: u64,
    pub inject_size: usize,
    pub size: usize,
    pub iov_limit: usize,
    pub rma_iov_limit: usize,
    pub tclass: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct fi_rx_attr {
    pub caps: u64,
    pub mode: u64,
    pub op_flags: u64,
    pub msg_order: u64,
    pub comp_order: u64,
    pub total_buffered_recv: usize,
    pub size: usize,
    pub iov_limit: usize,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct fi_ep_attr {
    pub type_: c_int,
    pub protocol: u32,
    pub protocol_version: u32,
    pub max_msg_size: usize,
    pub msg_prefix_size: usize,
    pub max_order_raw_size: usize,
    pub max_order_war_size: usize,
    pub max_order_waw_size: usize,
    pub mem_tag_format: u64,
    pub tx_ctx_cnt: usize,
    pub rx_ctx_cnt: usize,
    pub auth_key_size: usize,
    pub auth_key: *mut u8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct fi_domain_attr {
    pub domain: *mut fid_domain,
    pub name: *mut c_char,
    pub threading: c_int,
    pub control_progress: c_int,
    pub data_progress: c_int,
    pub resource_mgmt: c_int,
    pub av_type: c_int,
    pub mr_mode: c_int,
    pub mr_key_size: usize,
    pub cq_data_size: usize,
    pub cq_cnt: usize,
    pub ep_cnt: usize,
    pub tx_ctx_cnt: usize,
    pub rx_ctx_cnt: usize,
    pub max_ep_tx_ctx: usize,
    pub max_ep_rx_ctx: usize,
    pub max_ep_stx_ctx: usize,
    pub max_ep_srx_ctx: usize,
    pub cntr_cnt: usize,
    pub mr_iov_limit: usize,
    pub caps: u64,
    pub mode: u64,
    pub auth_key: *mut u8,
    pub auth_key_size: usize,
    pub max_err_data: usize,
    pub mr_cnt: usize,
    pub tclass: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct fi_fabric_attr {
    pub fabric: *mut fid_fabric,
    pub name: *mut c_char,
    pub prov_name: *mut c_char,
    pub prov_version: u32,
    pub api_version: u32,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_info {
    pub next: *mut fi_info,
    pub caps: u64,
    pub mode: u64,
    pub addr_format: u32,
    pub src_addrlen: usize,
    pub dest_addrlen: usize,
    pub src_addr: *mut c_void,
    pub dest_addr: *mut c_void,
    pub handle: *mut fid,
    pub tx_attr: *mut fi_tx_attr,
    pub rx_attr: *mut fi_rx_attr,
    pub ep_attr: *mut fi_ep_attr,
    pub domain_attr: *mut fi_domain_attr,
    pub fabric_attr: *mut fi_fabric_attr,
    pub nic: *mut c_void,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_context {
    pub internal: [*mut c_void; 4],
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_provider {
    pub version: u32,
    pub fi_version: u32,
    pub context: fi_context,
    pub name: *const c_char,
    pub getinfo:
        unsafe extern "C" fn(u32, *const c_char, *const c_char, u64, *const fi_info, *mut *mut fi_info) -> c_int,
    pub fabric: unsafe extern "C" fn(*mut fi_fabric_attr, *mut *mut fid_fabric, *mut c_void) -> c_int,
    pub cleanup: unsafe extern "C" fn(),
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_ops_fabric {
    pub size: usize,
    pub domain: unsafe extern "C" fn(*mut fid_fabric, *mut fi_info, *mut *mut fid_domain, *mut c_void) -> c_int,
    pub passive_ep: unsafe extern "C" fn(*mut fid_fabric, *mut fi_info, *mut *mut c_void, *mut c_void) -> c_int,
    pub eq_open: unsafe extern "C" fn(*mut fid_fabric, *mut fi_eq_attr, *mut *mut fid_eq, *mut c_void) -> c_int,
    pub wait_open: unsafe extern "C" fn(*mut fid_fabric, *mut c_void, *mut *mut c_void) -> c_int,
    pub trywait: unsafe extern "C" fn(*mut fid_fabric, *mut *mut fid, c_int) -> c_int,
    pub domain2: unsafe extern "C" fn(*mut fid_fabric, *mut fi_info, *mut *mut fid_domain, u64, *mut c_void) -> c_int,
}

#[repr(C)]
#[derive(Debug)]
pub struct fid_fabric {
    pub fid: fid,
    pub ops: *const fi_ops_fabric,
    pub api_version: u32,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_ops_domain {
    pub size: usize,
    pub av_open: unsafe extern "C" fn(*mut fid_domain, *mut fi_av_attr, *mut *mut fid_av, *mut c_void) -> c_int,
    pub cq_open: unsafe extern "C" fn(*mut fid_domain, *mut fi_cq_attr, *mut *mut fid_cq, *mut c_void) -> c_int,
    pub endpoint: unsafe extern "C" fn(*mut fid_domain, *mut fi_info, *mut *mut fid_ep, *mut c_void) -> c_int,
    pub scalable_ep: unsafe extern "C" fn(*mut fid_domain, *mut fi_info, *mut *mut fid_ep, *mut c_void) -> c_int,
    pub cntr_open: unsafe extern "C" fn(*mut fid_domain, *mut c_void, *mut *mut c_void, *mut c_void) -> c_int,
    pub poll_open: unsafe extern "C" fn(*mut fid_domain, *mut c_void, *mut *mut c_void) -> c_int,
    pub stx_ctx: unsafe extern "C" fn(*mut fid_domain, *mut fi_tx_attr, *mut *mut c_void, *mut c_void) -> c_int,
    pub srx_ctx: unsafe extern "C" fn(*mut fid_domain, *mut fi_rx_attr, *mut *mut fid_ep, *mut c_void) -> c_int,
    pub query_atomic: unsafe extern "C" fn(*mut fid_domain, c_int, c_int, *mut c_void, u64) -> c_int,
    pub query_collective: unsafe extern "C" fn(*mut fid_domain, c_int, *mut c_void, u64) -> c_int,
    pub endpoint2: unsafe extern "C" fn(*mut fid_domain, *mut fi_info, *mut *mut fid_ep, u64, *mut c_void) -> c_int,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_ops_mr {
    pub size: usize,
    pub reg: unsafe extern "C" fn(
        *mut fid,
        *const c_void,
        usize,
        u64,
        u64,
        u64,
        u64,
        *mut *mut fid_mr,
        *mut c_void,
    ) -> c_int,
    pub regv:
        unsafe extern "C" fn(*mut fid, *const iovec, usize, u64, u64, u64, u64, *mut *mut fid_mr, *mut c_void) -> c_int,
    pub regattr: unsafe extern "C" fn(*mut fid, *const fi_mr_attr, u64, *mut *mut fid_mr) -> c_int,
}

#[repr(C)]
#[derive(Debug)]
pub struct fid_domain {
    pub fid: fid,
    pub ops: *const fi_ops_domain,
    pub mr: *const fi_ops_mr,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_av_attr {
    pub type_: c_int,
    pub rx_ctx_bits: c_int,
    pub count: usize,
    pub ep_per_node: usize,
    pub name: *const c_char,
    pub map_addr: *mut c_void,
    pub flags: u64,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_ops_av {
    pub size: usize,
    pub insert: unsafe extern "C" fn(*mut fid_av, *const c_void, usize, *mut fi_addr_t, u64, *mut c_void) -> c_int,
    pub insertsvc:
        unsafe extern "C" fn(*mut fid_av, *const c_char, *const c_char, *mut fi_addr_t, u64, *mut c_void) -> c_int,
    pub insertsym: unsafe extern "C" fn(
        *mut fid_av,
        *const c_char,
        usize,
        *const c_char,
        usize,
        *mut fi_addr_t,
        u64,
        *mut c_void,
    ) -> c_int,
    pub remove: unsafe extern "C" fn(*mut fid_av, *mut fi_addr_t, usize, u64) -> c_int,
    pub lookup: unsafe extern "C" fn(*mut fid_av, fi_addr_t, *mut c_void, *mut usize) -> c_int,
    pub straddr: unsafe extern "C" fn(*mut fid_av, *const c_void, *mut c_char, *mut usize) -> *const c_char,
    pub av_set: unsafe extern "C" fn(*mut fid_av, *mut c_void, *mut *mut c_void, *mut c_void) -> c_int,
}

#[repr(C)]
#[derive(Debug)]
pub struct fid_av {
    pub fid: fid,
    pub ops: *const fi_ops_av,
}

#[repr(C)]
#[derive(Debug)]
pub struct fid_mr {
    pub fid: fid,
    pub mem_desc: *mut c_void,
    pub key: u64,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_mr_attr {
    pub mr_iov: *const iovec,
    pub iov_count: usize,
    pub access: u64,
    pub offset: u64,
    pub requested_key: u64,
    pub context: *mut c_void,
    pub auth_key_size: usize,
    pub auth_key: *mut u8,
    pub iface: c_int,
    pub device: u64,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_eq_attr {
    pub size: usize,
    pub flags: u64,
    pub wait_obj: c_int,
    pub signaling_vector: c_int,
    pub wait_set: *mut c_void,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_eq_err_entry {
    pub fid: *mut fid,
    pub context: *mut c_void,
    pub data: u64,
    pub err: c_int,
    pub prov_errno: c_int,
    pub err_data: *mut c_void,
    pub err_data_size: usize,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_ops_eq {
    pub size: usize,
    pub read: unsafe extern "C" fn(*mut fid_eq, *mut u32, *mut c_void, usize, u64) -> isize,
    pub readerr: unsafe extern "C" fn(*mut fid_eq, *mut fi_eq_err_entry, u64) -> isize,
    pub write: unsafe extern "C" fn(*mut fid_eq, u32, *const c_void, usize, u64) -> isize,
    pub sread: unsafe extern "C" fn(*mut fid_eq, *mut u32, *mut c_void, usize, c_int, u64) -> isize,
    pub strerror: unsafe extern "C" fn(*mut fid_eq, c_int, *const c_void, *mut c_char, usize) -> *const c_char,
}

#[repr(C)]
#[derive(Debug)]
pub struct fid_eq {
    pub fid: fid,
    pub ops: *const fi_ops_eq,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct fi_cq_attr {
    pub size: usize,
    pub flags: u64,
    pub format: c_int,
    pub wait_obj: c_int,
    pub signaling_vector: c_int,
    pub wait_cond: c_int,
    pub wait_set: *mut c_void,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct fi_cq_tagged_entry {
    pub op_context: *mut c_void,
    pub flags: u64,
    pub len: usize,
    pub buf: *mut c_void,
    pub data: u64,
    pub tag: u64,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_cq_err_entry {
    pub op_context: *mut c_void,
    pub flags: u64,
    pub len: usize,
    pub buf: *mut c_void,
    pub data: u64,
    pub tag: u64,
    pub olen: usize,
    pub err: c_int,
    pub prov_errno: c_int,
    pub err_data: *mut c_void,
    pub err_data_size: usize,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_ops_cq {
    pub size: usize,
    pub read: unsafe extern "C" fn(*mut fid_cq, *mut c_void, usize) -> isize,
    pub readfrom: unsafe extern "C" fn(*mut fid_cq, *mut c_void, usize, *mut fi_addr_t) -> isize,
    pub readerr: unsafe extern "C" fn(*mut fid_cq, *mut fi_cq_err_entry, u64) -> isize,
    pub sread: unsafe extern "C" fn(*mut fid_cq, *mut c_void, usize, *const c_void, c_int) -> isize,
    pub sreadfrom: unsafe extern "C" fn(*mut fid_cq, *mut c_void, usize, *mut fi_addr_t, *const c_void, c_int) -> isize,
    pub signal: unsafe extern "C" fn(*mut fid_cq) -> c_int,
    pub strerror: unsafe extern "C" fn(*mut fid_cq, c_int, *const c_void, *mut c_char, usize) -> *const c_char,
}

#[repr(C)]
#[derive(Debug)]
pub struct fid_cq {
    pub fid: fid,
    pub ops: *const fi_ops_cq,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_msg {
    pub msg_iov: *const iovec,
    pub desc: *mut *mut c_void,
    pub iov_count: usize,
    pub addr: fi_addr_t,
    pub context: *mut c_void,
    pub data: u64,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_msg_tagged {
    pub msg_iov: *const iovec,
    pub desc: *mut *mut c_void,
    pub iov_count: usize,
    pub addr: fi_addr_t,
    pub tag: u64,
    pub ignore: u64,
    pub context: *mut c_void,
    pub data: u64,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_ops_ep {
    pub size: usize,
    pub cancel: unsafe extern "C" fn(*mut fid, *mut c_void) -> isize,
    pub getopt: unsafe extern "C" fn(*mut fid, c_int, c_int, *mut c_void, *mut usize) -> c_int,
    pub setopt: unsafe extern "C" fn(*mut fid, c_int, c_int, *const c_void, usize) -> c_int,
    pub tx_ctx: unsafe extern "C" fn(*mut fid_ep, c_int, *mut fi_tx_attr, *mut *mut fid_ep, *mut c_void) -> c_int,
    pub rx_ctx: unsafe extern "C" fn(*mut fid_ep, c_int, *mut fi_rx_attr, *mut *mut fid_ep, *mut c_void) -> c_int,
    pub rx_size_left: unsafe extern "C" fn(*mut fid_ep) -> isize,
    pub tx_size_left: unsafe extern "C" fn(*mut fid_ep) -> isize,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_ops_cm {
    pub size: usize,
    pub setname: unsafe extern "C" fn(*mut fid, *mut c_void, usize) -> c_int,
    pub getname: unsafe extern "C" fn(*mut fid, *mut c_void, *mut usize) -> c_int,
    pub getpeer: unsafe extern "C" fn(*mut fid_ep, *mut c_void, *mut usize) -> c_int,
    pub connect: unsafe extern "C" fn(*mut fid_ep, *const c_void, *const c_void, usize) -> c_int,
    pub listen: unsafe extern "C" fn(*mut c_void) -> c_int,
    pub accept: unsafe extern "C" fn(*mut fid_ep, *const c_void, usize) -> c_int,
    pub reject: unsafe extern "C" fn(*mut c_void, *mut fid, *const c_void, usize) -> c_int,
    pub shutdown: unsafe extern "C" fn(*mut fid_ep, u64) -> c_int,
    pub join: unsafe extern "C" fn(*mut fid_ep, *const c_void, u64, *mut *mut c_void, *mut c_void) -> c_int,
}

type Ep = *mut fid_ep;
type Ctx = *mut c_void;
type Desc = *mut c_void;

#[repr(C)]
#[derive(Debug)]
pub struct fi_ops_msg {
    pub size: usize,
    pub recv: unsafe extern "C" fn(Ep, *mut c_void, usize, Desc, fi_addr_t, Ctx) -> isize,
    pub recvv: unsafe extern "C" fn(Ep, *const iovec, *mut Desc, usize, fi_addr_t, Ctx) -> isize,
    pub recvmsg: unsafe extern "C" fn(Ep, *const fi_msg, u64) -> isize,
    pub send: unsafe extern "C" fn(Ep, *const c_void, usize, Desc, fi_addr_t, Ctx) -> isize,
    pub sendv: unsafe extern "C" fn(Ep, *const iovec, *mut Desc, usize, fi_addr_t, Ctx) -> isize,
    pub sendmsg: unsafe extern "C" fn(Ep, *const fi_msg, u64) -> isize,
    pub inject: unsafe extern "C" fn(Ep, *const c_void, usize, fi_addr_t) -> isize,
    pub senddata: unsafe extern "C" fn(Ep, *const c_void, usize, Desc, u64, fi_addr_t, Ctx) -> isize,
    pub injectdata: unsafe extern "C" fn(Ep, *const c_void, usize, u64, fi_addr_t) -> isize,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_ops_tagged {
    pub size: usize,
    pub recv: unsafe extern "C" fn(Ep, *mut c_void, usize, Desc, fi_addr_t, u64, u64, Ctx) -> isize,
    pub recvv: unsafe extern "C" fn(Ep, *const iovec, *mut Desc, usize, fi_addr_t, u64, u64, Ctx) -> isize,
    pub recvmsg: unsafe extern "C" fn(Ep, *const fi_msg_tagged, u64) -> isize,
    pub send: unsafe extern "C" fn(Ep, *const c_void, usize, Desc, fi_addr_t, u64, Ctx) -> isize,
    pub sendv: unsafe extern "C" fn(Ep, *const iovec, *mut Desc, usize, fi_addr_t, u64, Ctx) -> isize,
    pub sendmsg: unsafe extern "C" fn(Ep, *const fi_msg_tagged, u64) -> isize,
    pub inject: unsafe extern "C" fn(Ep, *const c_void, usize, fi_addr_t, u64) -> isize,
    pub senddata: unsafe extern "C" fn(Ep, *const c_void, usize, Desc, u64, fi_addr_t, u64, Ctx) -> isize,
    pub injectdata: unsafe extern "C" fn(Ep, *const c_void, usize, u64, fi_addr_t, u64) -> isize,
}

#[repr(C)]
#[derive(Debug)]
pub struct fi_ops_rma {
    pub size: usize,
    pub read: unsafe extern "C" fn(Ep, *mut c_void, usize, Desc, fi_addr_t, u64, u64, Ctx) -> isize,
    pub readv: unsafe extern "C" fn(Ep, *const iovec, *mut Desc, usize, fi_addr_t, u64, u64, Ctx) -> isize,
    pub readmsg: unsafe extern "C" fn(Ep, *const c_void, u64) -> isize,
    pub write: unsafe extern "C" fn(Ep, *const c_void, usize, Desc, fi_addr_t, u64, u64, Ctx) -> isize,
    pub writev: unsafe extern "C" fn(Ep, *const iovec, *mut Desc, usize, fi_addr_t, u64, u64, Ctx) -> isize,
    pub writemsg: unsafe extern "C" fn(Ep, *const c_void, u64) -> isize,
    pub inject: unsafe extern "C" fn(Ep, *const c_void, usize, fi_addr_t, u64, u64) -> isize,
    pub writedata: unsafe extern "C" fn(Ep, *const c_void, usize, Desc, u64, fi_addr_t, u64, u64, Ctx) -> isize,
    pub injectdata: unsafe extern "C" fn(Ep, *const c_void, usize, u64, fi_addr_t, u64, u64) -> isize,
}

/// `struct fi_ops_atomic`: every entry point this provider fills answers `-FI_ENOSYS`, so
/// each is declared with the arguments the header gives it (`fi_datatype`/`fi_op` as int).
#[repr(C)]
#[derive(Debug)]
pub struct fi_ops_atomic {
    pub size: usize,
    pub write: unsafe extern "C" fn(Ep, *const c_void, usize, Desc, fi_addr_t, u64, u64, c_int, c_int, Ctx) -> isize,
    pub writev:
        unsafe extern "C" fn(Ep, *const c_void, *mut Desc, usize, fi_addr_t, u64, u64, c_int, c_int, Ctx) -> isize,
    pub writemsg: unsafe extern "C" fn(Ep, *const c_void, u64) -> isize,
    pub inject: unsafe extern "C" fn(Ep, *const c_void, usize, fi_addr_t, u64, u64, c_int, c_int) -> isize,
    pub readwrite: unsafe extern "C" fn(
        Ep,
        *const c_void,
        usize,
        Desc,
        *mut c_void,
        Desc,
        fi_addr_t,
        u64,
        u64,
        c_int,
        c_int,
        Ctx,
    ) -> isize,
    pub readwritev: unsafe extern "C" fn(
        Ep,
        *const c_void,
        *mut Desc,
        usize,
        *mut c_void,
        *mut Desc,
        usize,
        fi_addr_t,
        u64,
        u64,
        c_int,
        c_int,
        Ctx,
    ) -> isize,
    pub readwritemsg: unsafe extern "C" fn(Ep, *const c_void, *mut c_void, *mut Desc, usize, u64) -> isize,
    pub compwrite: unsafe extern "C" fn(
        Ep,
        *const c_void,
        usize,
        Desc,
        *const c_void,
        Desc,
        *mut c_void,
        Desc,
        fi_addr_t,
        u64,
        u64,
        c_int,
        c_int,
        Ctx,
    ) -> isize,
    pub compwritev: unsafe extern "C" fn(
        Ep,
        *const c_void,
        *mut Desc,
        usize,
        *const c_void,
        *mut Desc,
        usize,
        *mut c_void,
        *mut Desc,
        usize,
        fi_addr_t,
        u64,
        u64,
        c_int,
        c_int,
        Ctx,
    ) -> isize,
    pub compwritemsg: unsafe extern "C" fn(
        Ep,
        *const c_void,
        *const c_void,
        *mut Desc,
        usize,
        *mut c_void,
        *mut Desc,
        usize,
        u64,
    ) -> isize,
    pub writevalid: unsafe extern "C" fn(Ep, c_int, c_int, *mut usize) -> c_int,
    pub readwritevalid: unsafe extern "C" fn(Ep, c_int, c_int, *mut usize) -> c_int,
    pub compwritevalid: unsafe extern "C" fn(Ep, c_int, c_int, *mut usize) -> c_int,
}

#[repr(C)]
#[derive(Debug)]
pub struct fid_ep {
    pub fid: fid,
    pub ops: *const fi_ops_ep,
    pub cm: *const fi_ops_cm,
    pub msg: *const fi_ops_msg,
    pub rma: *const fi_ops_rma,
    pub tagged: *const fi_ops_tagged,
    pub atomic: *const fi_ops_atomic,
    /// Left NULL: `fi_ops_collective` needs FI_COLLECTIVE, which no fi_info of ours offers.
    pub collective: *const c_void,
}
