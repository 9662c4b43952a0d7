//! Entry points libfabric's tables require that this provider does not implement: each
//! answers `-FI_ENOSYS` (none of their capabilities is offered in `fi_getinfo`, so only a
//! caller that ignored the attributes reaches them). Also the RMA, atomic and (for DGRAM)
//! tagged tables built from them, so no table pointer is ever NULL.

use std::ffi::{c_char, c_int, c_void};

use crate::ffi::consts::FI_ENOSYS;
use crate::ffi::types::*;

macro_rules! enosys {
    ($($name:ident($($t:ty),*) -> $r:ty;)*) => {
        $(
            #[allow(clippy::too_many_arguments)]
            pub extern "C" fn $name($(_: $t),*) -> $r {
                -(FI_ENOSYS as $r)
            }
        )*
    };
}

type Ep = *mut fid_ep;
type V = *mut c_void;
type Cv = *const c_void;
type A = fi_addr_t;

enosys! {
    bind(*mut fid, *mut fid, u64) -> c_int;
    control(*mut fid, c_int, V) -> c_int;
    ops_open(*mut fid, *const c_char, u64, *mut V, V) -> c_int;
    passive_ep(*mut fid_fabric, *mut fi_info, *mut V, V) -> c_int;
    wait_open(*mut fid_fabric, V, *mut V) -> c_int;
    trywait(*mut fid_fabric, *mut *mut fid, c_int) -> c_int;
    scalable_ep(*mut fid_domain, *mut fi_info, *mut Ep, V) -> c_int;
    cntr_open(*mut fid_domain, V, *mut V, V) -> c_int;
    poll_open(*mut fid_domain, V, *mut V) -> c_int;
    stx_ctx(*mut fid_domain, *mut fi_tx_attr, *mut V, V) -> c_int;
    srx_ctx(*mut fid_domain, *mut fi_rx_attr, *mut Ep, V) -> c_int;
    query_atomic(*mut fid_domain, c_int, c_int, V, u64) -> c_int;
    query_collective(*mut fid_domain, c_int, V, u64) -> c_int;
    tx_ctx(Ep, c_int, *mut fi_tx_attr, *mut Ep, V) -> c_int;
    rx_ctx(Ep, c_int, *mut fi_rx_attr, *mut Ep, V) -> c_int;
    setname(*mut fid, V, usize) -> c_int;
    getpeer(Ep, V, *mut usize) -> c_int;
    connect(Ep, Cv, Cv, usize) -> c_int;
    listen(V) -> c_int;
    accept(Ep, Cv, usize) -> c_int;
    reject(V, *mut fid, Cv, usize) -> c_int;
    shutdown(Ep, u64) -> c_int;
    join(Ep, Cv, u64, *mut V, V) -> c_int;
    av_insertsym(*mut fid_av, *const c_char, usize, *const c_char, usize, *mut A, u64, V) -> c_int;
    av_set(*mut fid_av, V, *mut V, V) -> c_int;
    cq_signal(*mut fid_cq) -> c_int;
    t_recv(Ep, V, usize, V, A, u64, u64, V) -> isize;
    t_recvv(Ep, *const iovec, *mut V, usize, A, u64, u64, V) -> isize;
    t_recvmsg(Ep, *const fi_msg_tagged, u64) -> isize;
    t_send(Ep, Cv, usize, V, A, u64, V) -> isize;
    t_sendv(Ep, *const iovec, *mut V, usize, A, u64, V) -> isize;
    t_sendmsg(Ep, *const fi_msg_tagged, u64) -> isize;
    t_inject(Ep, Cv, usize, A, u64) -> isize;
    t_senddata(Ep, Cv, usize, V, u64, A, u64, V) -> isize;
    t_injectdata(Ep, Cv, usize, u64, A, u64) -> isize;
    rma_read(Ep, V, usize, V, A, u64, u64, V) -> isize;
    rma_readv(Ep, *const iovec, *mut V, usize, A, u64, u64, V) -> isize;
    rma_readmsg(Ep, Cv, u64) -> isize;
    rma_write(Ep, Cv, usize, V, A, u64, u64, V) -> isize;
    rma_writev(Ep, *const iovec, *mut V, usize, A, u64, u64, V) -> isize;
    rma_writemsg(Ep, Cv, u64) -> isize;
    rma_inject(Ep, Cv, usize, A, u64, u64) -> isize;
    rma_writedata(Ep, Cv, usize, V, u64, A, u64, u64, V) -> isize;
    rma_injectdata(Ep, Cv, usize, u64, A, u64, u64) -> isize;
    at_write(Ep, Cv, usize, V, A, u64, u64, c_int, c_int, V) -> isize;
    at_writev(Ep, Cv, *mut V, usize, A, u64, u64, c_int, c_int, V) -> isize;
    at_writemsg(Ep, Cv, u64) -> isize;
    at_inject(Ep, Cv, usize, A, u64, u64, c_int, c_int) -> isize;
    at_readwrite(Ep, Cv, usize, V, V, V, A, u64, u64, c_int, c_int, V) -> isize;
    at_readwritev(Ep, Cv, *mut V, usize, V, *mut V, usize, A, u64, u64, c_int, c_int, V) -> isize;
    at_readwritemsg(Ep, Cv, V, *mut V, usize, u64) -> isize;
    at_compwrite(Ep, Cv, usize, V, Cv, V, V, V, A, u64, u64, c_int, c_int, V) -> isize;
    at_compwritev(Ep, Cv, *mut V, usize, Cv, *mut V, usize, V, *mut V, usize, A, u64, u64, c_int, c_int, V) -> isize;
    at_compwritemsg(Ep, Cv, Cv, *mut V, usize, V, *mut V, usize, u64) -> isize;
    at_valid(Ep, c_int, c_int, *mut usize) -> c_int;
}

/// Tagged operations of a DGRAM endpoint (FI_TAGGED is RDM only).
pub static NO_TAGGED: fi_ops_tagged = fi_ops_tagged {
    size: size_of::<fi_ops_tagged>(),
    recv: t_recv,
    recvv: t_recvv,
    recvmsg: t_recvmsg,
    send: t_send,
    sendv: t_sendv,
    sendmsg: t_sendmsg,
    inject: t_inject,
    senddata: t_senddata,
    injectdata: t_injectdata,
};

pub static NO_RMA: fi_ops_rma = fi_ops_rma {
    size: size_of::<fi_ops_rma>(),
    read: rma_read,
    readv: rma_readv,
    readmsg: rma_readmsg,
    write: rma_write,
    writev: rma_writev,
    writemsg: rma_writemsg,
    inject: rma_inject,
    writedata: rma_writedata,
    injectdata: rma_injectdata,
};

pub static NO_ATOMIC: fi_ops_atomic = fi_ops_atomic {
    size: size_of::<fi_ops_atomic>(),
    write: at_write,
    writev: at_writev,
    writemsg: at_writemsg,
    inject: at_inject,
    readwrite: at_readwrite,
    readwritev: at_readwritev,
    readwritemsg: at_readwritemsg,
    compwrite: at_compwrite,
    compwritev: at_compwritev,
    compwritemsg: at_compwritemsg,
    writevalid: at_valid,
    readwritevalid: at_valid,
    compwritevalid: at_valid,
};
