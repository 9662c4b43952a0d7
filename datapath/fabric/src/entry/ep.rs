//! Endpoints: `fi_endpoint`, bind/enable, `fi_getname`, and the message and tagged
//! operations (send, sendv, sendmsg, inject, senddata, injectdata; recv, recvv, recvmsg).

use std::ffi::{c_int, c_void};
use std::sync::Arc;

use super::info::{read_sin, write_sin};
use super::{boxed, guard, obj, stubs, take, EOTHER, EOTHER_SZ};
use crate::core::av::AvTable;
use crate::core::cq::CqCore;
use crate::core::domain::{DomainShared, IdMap};
use crate::core::ep::{EpCore, EpKind, EpParams};
use crate::core::info::{INJECT_SIZE, IOV_LIMIT, RX_SIZE, TX_SIZE};
use crate::core::matching::{PeekMode, PostedRecv};
use crate::core::proto::CHUNK;
use crate::ffi::consts::*;
use crate::ffi::iov::UserIov;
use crate::ffi::types::*;

#[repr(C)]
#[derive(Debug)]
pub struct EpObj {
    pub fid: fid_ep,
    shared: Arc<DomainShared>,
    id: u64,
}

static FID_OPS: fi_ops =
    fi_ops { size: size_of::<fi_ops>(), close, bind, control, ops_open: stubs::ops_open, tostr: None, ops_set: None };

static EP_OPS: fi_ops_ep = fi_ops_ep {
    size: size_of::<fi_ops_ep>(),
    cancel,
    getopt,
    setopt,
    tx_ctx: stubs::tx_ctx,
    rx_ctx: stubs::rx_ctx,
    rx_size_left,
    tx_size_left,
};

static CM_OPS: fi_ops_cm = fi_ops_cm {
    size: size_of::<fi_ops_cm>(),
    setname: stubs::setname,
    getname,
    getpeer: stubs::getpeer,
    connect: stubs::connect,
    listen: stubs::listen,
    accept: stubs::accept,
    reject: stubs::reject,
    shutdown: stubs::shutdown,
    join: stubs::join,
};

static MSG_OPS: fi_ops_msg = fi_ops_msg {
    size: size_of::<fi_ops_msg>(),
    recv,
    recvv,
    recvmsg,
    send,
    sendv,
    sendmsg,
    inject,
    senddata,
    injectdata,
};

static TAGGED_OPS: fi_ops_tagged = fi_ops_tagged {
    size: size_of::<fi_ops_tagged>(),
    recv: trecv,
    recvv: trecvv,
    recvmsg: trecvmsg,
    send: tsend,
    sendv: tsendv,
    sendmsg: tsendmsg,
    inject: tinject,
    senddata: tsenddata,
    injectdata: tinjectdata,
};

/// `fi_endpoint`: binds the AF_XDP endpoint now, so `fi_getname` works at once.
///
/// # Safety
///
/// Called by libfabric with the pointers its API documents: live objects of this
/// provider, valid attribute structures, and a writable result pointer.
pub unsafe extern "C" fn open(
    d: *mut fid_domain,
    info: *mut fi_info,
    out: *mut *mut fid_ep,
    context: *mut c_void,
) -> c_int {
    guard(EOTHER, || {
        // SAFETY: libfabric passes a live domain fid.
        let Some(dom) = (unsafe { super::domain::domain(d.cast()) }) else { return -FI_EINVAL };
        // SAFETY: valid or null.
        let Some(i) = (unsafe { info.as_ref() }) else { return -FI_EINVAL };
        if out.is_null() {
            return -FI_EINVAL;
        }
        // SAFETY: the attribute pointers of a valid fi_info are valid or null.
        let (ep_attr, tx, rx) = unsafe { (i.ep_attr.as_ref(), i.tx_attr.as_ref(), i.rx_attr.as_ref()) };
        let kind = match ep_attr.map(|e| e.type_) {
            Some(FI_EP_DGRAM) => EpKind::Dgram,
            Some(FI_EP_RDM) => EpKind::Rdm,
            _ => return -FI_ENOSYS,
        };
        if kind == EpKind::Dgram && i.caps & FI_TAGGED != 0 {
            return -FI_EINVAL;
        }
        // SAFETY: src_addr holds src_addrlen bytes.
        let port = unsafe { read_sin(i.src_addr, i.src_addrlen) }.map(|s| s.port()).filter(|&p| p != 0);
        let cfg = &dom.shared.cfg;
        let params = EpParams {
            kind,
            port,
            tx_size: tx.map_or(TX_SIZE, |t| t.size).clamp(1, TX_SIZE),
            rx_size: rx.map_or(RX_SIZE, |r| r.size).clamp(1, RX_SIZE),
            directed: i.caps & FI_DIRECTED_RECV != 0 || rx.is_some_and(|r| r.caps & FI_DIRECTED_RECV != 0),
            tx_op_flags: tx.map_or(FI_COMPLETION, |t| t.op_flags),
            rx_op_flags: rx.map_or(FI_COMPLETION, |r| r.op_flags),
            max_msg: if kind == EpKind::Rdm { cfg.max_msg } else { CHUNK },
            inject_size: INJECT_SIZE,
        };
        let ep = match EpCore::open(cfg, params) {
            Ok(e) => e,
            Err(why) => {
                log::warn!("fi_endpoint: {why}");
                return -FI_ENODEV;
            }
        };
        if kind == EpKind::Rdm {
            dom.shared.start_timers();
        }
        let mut st = dom.shared.lock();
        let id = st.id();
        st.eps.insert(id, ep);
        let o = boxed(EpObj {
            fid: fid_ep {
                fid: fid { fclass: FI_CLASS_EP, context, ops: &FID_OPS },
                ops: &EP_OPS,
                cm: &CM_OPS,
                msg: &MSG_OPS,
                rma: &stubs::NO_RMA,
                tagged: if kind == EpKind::Rdm { &TAGGED_OPS } else { &stubs::NO_TAGGED },
                atomic: &stubs::NO_ATOMIC,
                collective: std::ptr::null(),
            },
            shared: dom.shared.clone(),
            id,
        });
        // SAFETY: checked non-null.
        unsafe { *out = o.cast() };
        FI_SUCCESS
    })
}

unsafe fn ep_obj<'a>(f: *const c_void) -> Option<&'a EpObj> {
    // SAFETY: libfabric passes a live fid.
    unsafe { obj(f.cast(), FI_CLASS_EP, &FID_OPS) }
}

/// Runs `f` on the endpoint with the domain's queues and address vectors, locked.
fn with_ep(e: *const c_void, f: impl FnOnce(&mut EpCore, &mut IdMap<CqCore>, &IdMap<AvTable>) -> isize) -> isize {
    // SAFETY: libfabric passes a live endpoint fid.
    let Some(o) = (unsafe { ep_obj(e) }) else { return -(FI_EINVAL as isize) };
    let mut st = o.shared.lock();
    let st = &mut *st;
    let Some(ep) = st.eps.get_mut(&o.id) else { return -(FI_EINVAL as isize) };
    f(ep, &mut st.cqs, &st.avs)
}

unsafe extern "C" fn close(f: *mut fid) -> c_int {
    guard(EOTHER, || {
        // SAFETY: a live fid of ours.
        let Some(o) = (unsafe { ep_obj(f.cast()) }) else { return -FI_EINVAL };
        {
            let mut st = o.shared.lock();
            let st = &mut *st;
            if let Some(mut ep) = st.eps.remove(&o.id) {
                ep.close(&mut st.cqs, &st.avs, o.shared.cfg.linger);
            }
        }
        // SAFETY: as above; closed once.
        drop(unsafe { take::<EpObj>(f, FI_CLASS_EP, &FID_OPS) });
        FI_SUCCESS
    })
}

unsafe extern "C" fn bind(f: *mut fid, b: *mut fid, flags: u64) -> c_int {
    guard(EOTHER, || {
        // SAFETY: a live fid of ours.
        let Some(o) = (unsafe { ep_obj(f.cast()) }) else { return -FI_EINVAL };
        if b.is_null() {
            return -FI_EINVAL;
        }
        // SAFETY: `b` is a live fid; whatever it is, its header is readable.
        let class = unsafe { (*b).fclass };
        let mut st = o.shared.lock();
        let Some(ep) = st.eps.get_mut(&o.id) else { return -FI_EINVAL };
        match class {
            FI_CLASS_CQ => {
                // SAFETY: class says CQ; `cq` checks it is ours.
                let Some(c) = (unsafe { super::cq::cq(b) }) else { return -FI_EINVAL };
                if !Arc::ptr_eq(&c.shared, &o.shared) {
                    return -FI_EINVAL; // another domain's queue
                }
                let selective = flags & FI_SELECTIVE_COMPLETION != 0;
                if flags & FI_TRANSMIT != 0 {
                    ep.tx_cq = Some(c.id);
                    ep.tx_selective = selective;
                }
                if flags & FI_RECV != 0 {
                    ep.rx_cq = Some(c.id);
                    ep.rx_selective = selective;
                }
                if flags & (FI_TRANSMIT | FI_RECV) == 0 {
                    return -FI_EBADFLAGS;
                }
                FI_SUCCESS
            }
            FI_CLASS_AV => {
                // SAFETY: class says AV; `obj` checks it is ours.
                let Some(a) = (unsafe { obj::<super::av::AvObj>(b, FI_CLASS_AV, &super::av::FID_OPS) }) else {
                    return -FI_EINVAL;
                };
                if !Arc::ptr_eq(&a.shared, &o.shared) {
                    return -FI_EINVAL;
                }
                ep.av = Some(a.id);
                FI_SUCCESS
            }
            // No events are raised; an EQ may be bound and stays quiet.
            FI_CLASS_EQ | FI_CLASS_MR => FI_SUCCESS,
            FI_CLASS_CNTR => -FI_ENOSYS,
            _ => -FI_EINVAL,
        }
    })
}

unsafe extern "C" fn control(f: *mut fid, command: c_int, _arg: *mut c_void) -> c_int {
    guard(EOTHER, || {
        let r = with_ep(f.cast(), |ep, _, _| {
            if command != FI_ENABLE {
                return -(FI_ENOSYS as isize);
            }
            if ep.av.is_none() {
                log::warn!("fi_enable: bind an address vector first (fi_ep_bind)");
                return -(FI_ENOAV as isize);
            }
            if ep.tx_cq.is_none() && ep.rx_cq.is_none() {
                return -(FI_ENOCQ as isize);
            }
            ep.enabled = true;
            0
        });
        r as c_int
    })
}

unsafe extern "C" fn cancel(f: *mut fid, context: *mut c_void) -> isize {
    guard(EOTHER_SZ, || {
        with_ep(f.cast(), |ep, cqs, _| if ep.cancel(cqs, context as usize) { 0 } else { -(FI_ENOENT as isize) })
    })
}

unsafe extern "C" fn getopt(_f: *mut fid, level: c_int, _name: c_int, _val: *mut c_void, _len: *mut usize) -> c_int {
    if level != FI_OPT_ENDPOINT {
        return -libc::ENOPROTOOPT;
    }
    -libc::ENOPROTOOPT
}

unsafe extern "C" fn setopt(_f: *mut fid, level: c_int, _name: c_int, _val: *const c_void, _len: usize) -> c_int {
    if level != FI_OPT_ENDPOINT {
        return -libc::ENOPROTOOPT;
    }
    -libc::ENOPROTOOPT
}

unsafe extern "C" fn rx_size_left(e: *mut fid_ep) -> isize {
    guard(EOTHER_SZ, || with_ep(e.cast(), |ep, _, _| ep.rx_left() as isize))
}

unsafe extern "C" fn tx_size_left(e: *mut fid_ep) -> isize {
    guard(EOTHER_SZ, || with_ep(e.cast(), |ep, _, _| ep.tx_left() as isize))
}

unsafe extern "C" fn getname(f: *mut fid, addr: *mut c_void, len: *mut usize) -> c_int {
    guard(EOTHER, || {
        if len.is_null() {
            return -FI_EINVAL;
        }
        let r = with_ep(f.cast(), |ep, _, _| {
            // SAFETY: `addr` has `*len` bytes or is null; `len` is valid.
            if unsafe { write_sin(ep.local(), addr, len) } {
                0
            } else {
                -(FI_ETOOSMALL as isize)
            }
        });
        r as c_int
    })
}

/// The iovecs of a call as a [`UserIov`].
///
/// # Safety
///
/// `iov` must point to `count` iovecs whose buffers follow libfabric's posted-buffer
/// contract (valid until the operation completes).
unsafe fn iovs(iov: *const iovec, count: usize) -> Result<UserIov, isize> {
    if count > IOV_LIMIT || (iov.is_null() && count > 0) {
        return Err(-(FI_EINVAL as isize));
    }
    if count == 0 {
        return Ok(UserIov::default());
    }
    // SAFETY: `count` iovecs by the contract.
    let v = unsafe { std::slice::from_raw_parts(iov, count) };
    // SAFETY: the buffers' contract is the caller's.
    Ok(unsafe { UserIov::new(v) })
}

/// Posts a send of any kind; `flags` None takes the endpoint's default operation flags.
#[allow(clippy::too_many_arguments)]
fn post_send(
    e: *mut fid_ep,
    iov: UserIov,
    dest: fi_addr_t,
    tag: Option<u64>,
    data: Option<u64>,
    ctx: *mut c_void,
    flags: Option<u64>,
    inject: bool,
) -> isize {
    with_ep(e.cast(), |ep, cqs, avs| {
        if !ep.enabled {
            return -(FI_EOPBADSTATE as isize);
        }
        let flags = flags.unwrap_or(ep.params.tx_op_flags);
        // FI_INJECT on sendmsg: copy at the call (the buffer is free on return), and
        // still complete; fi_inject: copy and never complete.
        let copy_now = inject || flags & FI_INJECT != 0;
        match ep.send(cqs, avs, dest, iov, tag, data, ctx as usize, flags, copy_now, !inject) {
            Ok(()) => 0,
            Err(e) => e as isize,
        }
    })
}

/// Posts a receive of any kind.
#[allow(clippy::too_many_arguments)]
fn post_recv(
    e: *mut fid_ep,
    iov: UserIov,
    src: fi_addr_t,
    tagged: bool,
    tag: u64,
    ignore: u64,
    ctx: *mut c_void,
    flags: Option<u64>,
) -> isize {
    with_ep(e.cast(), |ep, cqs, avs| {
        if !ep.enabled {
            return -(FI_EOPBADSTATE as isize);
        }
        let flags = flags.unwrap_or(ep.params.rx_op_flags);
        let want_comp = !ep.rx_selective || flags & FI_COMPLETION != 0;
        let r = PostedRecv {
            ctx: ctx as usize,
            iov,
            src,
            tagged,
            tag,
            ignore,
            want_comp: want_comp || flags & FI_PEEK != 0,
        };
        if flags & FI_PEEK != 0 {
            let mode = match (flags & FI_CLAIM != 0, flags & FI_DISCARD != 0) {
                (true, true) => return -(FI_EINVAL as isize), // reserve it, or drop it: not both
                (true, false) => PeekMode::Claim,
                (false, true) => PeekMode::Discard,
                (false, false) => PeekMode::Look,
            };
            ep.peek(cqs, avs, r, mode);
            return 0;
        }
        if flags & FI_CLAIM != 0 {
            return match ep.claim(cqs, r, flags & FI_DISCARD != 0) {
                Ok(()) => 0,
                Err(e) => e as isize,
            };
        }
        if flags & FI_DISCARD != 0 {
            return -(FI_EINVAL as isize); // FI_DISCARD goes with FI_PEEK or FI_CLAIM
        }
        match ep.recv(cqs, r) {
            Ok(()) => 0,
            Err(e) => e as isize,
        }
    })
}

macro_rules! entry {
    ($body:expr) => {
        guard(EOTHER_SZ, || match $body {
            Ok(v) => v,
            Err(e) => e,
        })
    };
}

// SAFETY (every entry below): libfabric passes the caller's buffers under its
// posted-buffer contract, which is what `UserIov` asks for; `msg` pointers are valid.

unsafe extern "C" fn recv(
    e: *mut fid_ep,
    buf: *mut c_void,
    len: usize,
    _desc: *mut c_void,
    src: fi_addr_t,
    ctx: *mut c_void,
) -> isize {
    // SAFETY: see above.
    let iov = unsafe { UserIov::single(buf, len) };
    entry!(Ok::<isize, isize>(post_recv(e, iov, src, false, 0, 0, ctx, None)))
}

unsafe extern "C" fn recvv(
    e: *mut fid_ep,
    iov: *const iovec,
    _desc: *mut *mut c_void,
    count: usize,
    src: fi_addr_t,
    ctx: *mut c_void,
) -> isize {
    // SAFETY: see above.
    entry!(unsafe { iovs(iov, count) }.map(|v| post_recv(e, v, src, false, 0, 0, ctx, None)))
}

unsafe extern "C" fn recvmsg(e: *mut fid_ep, msg: *const fi_msg, flags: u64) -> isize {
    // SAFETY: see above.
    let Some(m) = (unsafe { msg.as_ref() }) else { return -(FI_EINVAL as isize) };
    // SAFETY: see above.
    entry!(unsafe { iovs(m.msg_iov, m.iov_count) }.map(|v| post_recv(
        e,
        v,
        m.addr,
        false,
        0,
        0,
        m.context,
        Some(flags)
    )))
}

unsafe extern "C" fn send(
    e: *mut fid_ep,
    buf: *const c_void,
    len: usize,
    _desc: *mut c_void,
    dest: fi_addr_t,
    ctx: *mut c_void,
) -> isize {
    // SAFETY: see above.
    let iov = unsafe { UserIov::single(buf, len) };
    entry!(Ok::<isize, isize>(post_send(e, iov, dest, None, None, ctx, None, false)))
}

unsafe extern "C" fn sendv(
    e: *mut fid_ep,
    iov: *const iovec,
    _desc: *mut *mut c_void,
    count: usize,
    dest: fi_addr_t,
    ctx: *mut c_void,
) -> isize {
    // SAFETY: see above.
    entry!(unsafe { iovs(iov, count) }.map(|v| post_send(e, v, dest, None, None, ctx, None, false)))
}

unsafe extern "C" fn sendmsg(e: *mut fid_ep, msg: *const fi_msg, flags: u64) -> isize {
    // SAFETY: see above.
    let Some(m) = (unsafe { msg.as_ref() }) else { return -(FI_EINVAL as isize) };
    let data = (flags & FI_REMOTE_CQ_DATA != 0).then_some(m.data);
    // SAFETY: see above.
    entry!(unsafe { iovs(m.msg_iov, m.iov_count) }.map(|v| post_send(
        e,
        v,
        m.addr,
        None,
        data,
        m.context,
        Some(flags),
        false
    )))
}

unsafe extern "C" fn inject(e: *mut fid_ep, buf: *const c_void, len: usize, dest: fi_addr_t) -> isize {
    // SAFETY: see above (an inject's buffer is read before the call returns).
    let iov = unsafe { UserIov::single(buf, len) };
    entry!(Ok::<isize, isize>(post_send(e, iov, dest, None, None, std::ptr::null_mut(), None, true)))
}

unsafe extern "C" fn senddata(
    e: *mut fid_ep,
    buf: *const c_void,
    len: usize,
    _desc: *mut c_void,
    data: u64,
    dest: fi_addr_t,
    ctx: *mut c_void,
) -> isize {
    // SAFETY: see above.
    let iov = unsafe { UserIov::single(buf, len) };
    entry!(Ok::<isize, isize>(post_send(e, iov, dest, None, Some(data), ctx, None, false)))
}

unsafe extern "C" fn injectdata(e: *mut fid_ep, buf: *const c_void, len: usize, data: u64, dest: fi_addr_t) -> isize {
    // SAFETY: see above.
    let iov = unsafe { UserIov::single(buf, len) };
    entry!(Ok::<isize, isize>(post_send(e, iov, dest, None, Some(data), std::ptr::null_mut(), None, true)))
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn trecv(
    e: *mut fid_ep,
    buf: *mut c_void,
    len: usize,
    _desc: *mut c_void,
    src: fi_addr_t,
    tag: u64,
    ignore: u64,
    ctx: *mut c_void,
) -> isize {
    // SAFETY: see above.
    let iov = unsafe { UserIov::single(buf, len) };
    entry!(Ok::<isize, isize>(post_recv(e, iov, src, true, tag, ignore, ctx, None)))
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn trecvv(
    e: *mut fid_ep,
    iov: *const iovec,
    _desc: *mut *mut c_void,
    count: usize,
    src: fi_addr_t,
    tag: u64,
    ignore: u64,
    ctx: *mut c_void,
) -> isize {
    // SAFETY: see above.
    entry!(unsafe { iovs(iov, count) }.map(|v| post_recv(e, v, src, true, tag, ignore, ctx, None)))
}

unsafe extern "C" fn trecvmsg(e: *mut fid_ep, msg: *const fi_msg_tagged, flags: u64) -> isize {
    // SAFETY: see above.
    let Some(m) = (unsafe { msg.as_ref() }) else { return -(FI_EINVAL as isize) };
    // SAFETY: see above.
    entry!(unsafe { iovs(m.msg_iov, m.iov_count) }.map(|v| post_recv(
        e,
        v,
        m.addr,
        true,
        m.tag,
        m.ignore,
        m.context,
        Some(flags)
    )))
}

unsafe extern "C" fn tsend(
    e: *mut fid_ep,
    buf: *const c_void,
    len: usize,
    _desc: *mut c_void,
    dest: fi_addr_t,
    tag: u64,
    ctx: *mut c_void,
) -> isize {
    // SAFETY: see above.
    let iov = unsafe { UserIov::single(buf, len) };
    entry!(Ok::<isize, isize>(post_send(e, iov, dest, Some(tag), None, ctx, None, false)))
}

unsafe extern "C" fn tsendv(
    e: *mut fid_ep,
    iov: *const iovec,
    _desc: *mut *mut c_void,
    count: usize,
    dest: fi_addr_t,
    tag: u64,
    ctx: *mut c_void,
) -> isize {
    // SAFETY: see above.
    entry!(unsafe { iovs(iov, count) }.map(|v| post_send(e, v, dest, Some(tag), None, ctx, None, false)))
}

unsafe extern "C" fn tsendmsg(e: *mut fid_ep, msg: *const fi_msg_tagged, flags: u64) -> isize {
    // SAFETY: see above.
    let Some(m) = (unsafe { msg.as_ref() }) else { return -(FI_EINVAL as isize) };
    let data = (flags & FI_REMOTE_CQ_DATA != 0).then_some(m.data);
    // SAFETY: see above.
    entry!(unsafe { iovs(m.msg_iov, m.iov_count) }.map(|v| post_send(
        e,
        v,
        m.addr,
        Some(m.tag),
        data,
        m.context,
        Some(flags),
        false
    )))
}

unsafe extern "C" fn tinject(e: *mut fid_ep, buf: *const c_void, len: usize, dest: fi_addr_t, tag: u64) -> isize {
    // SAFETY: see above.
    let iov = unsafe { UserIov::single(buf, len) };
    entry!(Ok::<isize, isize>(post_send(e, iov, dest, Some(tag), None, std::ptr::null_mut(), None, true)))
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn tsenddata(
    e: *mut fid_ep,
    buf: *const c_void,
    len: usize,
    _desc: *mut c_void,
    data: u64,
    dest: fi_addr_t,
    tag: u64,
    ctx: *mut c_void,
) -> isize {
    // SAFETY: see above.
    let iov = unsafe { UserIov::single(buf, len) };
    entry!(Ok::<isize, isize>(post_send(e, iov, dest, Some(tag), Some(data), ctx, None, false)))
}

unsafe extern "C" fn tinjectdata(
    e: *mut fid_ep,
    buf: *const c_void,
    len: usize,
    data: u64,
    dest: fi_addr_t,
    tag: u64,
) -> isize {
    // SAFETY: see above.
    let iov = unsafe { UserIov::single(buf, len) };
    entry!(Ok::<isize, isize>(post_send(e, iov, dest, Some(tag), Some(data), std::ptr::null_mut(), None, true)))
}
