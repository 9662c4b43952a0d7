//! Constants of libfabric 1.17 (`rdma/fabric.h`, `fi_errno.h`, `fi_eq.h`, ...), by the
//! header's names. `layout_check` compares a sample of them with the headers' values.
#![allow(missing_docs)]

pub const fn fi_version(major: u32, minor: u32) -> u32 {
    (major << 16) | minor
}

// Capabilities and operation flags.
pub const FI_MSG: u64 = 1 << 1;
pub const FI_RMA: u64 = 1 << 2;
pub const FI_TAGGED: u64 = 1 << 3;
pub const FI_ATOMIC: u64 = 1 << 4;
pub const FI_MULTICAST: u64 = 1 << 5;
pub const FI_COLLECTIVE: u64 = 1 << 6;
pub const FI_READ: u64 = 1 << 8;
pub const FI_WRITE: u64 = 1 << 9;
pub const FI_RECV: u64 = 1 << 10;
pub const FI_SEND: u64 = 1 << 11;
pub const FI_TRANSMIT: u64 = FI_SEND;
pub const FI_REMOTE_READ: u64 = 1 << 12;
pub const FI_REMOTE_WRITE: u64 = 1 << 13;
pub const FI_MULTI_RECV: u64 = 1 << 16;
pub const FI_REMOTE_CQ_DATA: u64 = 1 << 17;
pub const FI_MORE: u64 = 1 << 18;
pub const FI_PEEK: u64 = 1 << 19;
pub const FI_TRIGGER: u64 = 1 << 20;
pub const FI_FENCE: u64 = 1 << 21;
pub const FI_COMPLETION: u64 = 1 << 24;
pub const FI_INJECT: u64 = 1 << 25;
pub const FI_INJECT_COMPLETE: u64 = 1 << 26;
pub const FI_TRANSMIT_COMPLETE: u64 = 1 << 27;
pub const FI_DELIVERY_COMPLETE: u64 = 1 << 28;
pub const FI_MATCH_COMPLETE: u64 = 1 << 31;
pub const FI_HMEM: u64 = 1 << 47;
pub const FI_LOCAL_COMM: u64 = 1 << 51;
pub const FI_REMOTE_COMM: u64 = 1 << 52;
pub const FI_SHARED_AV: u64 = 1 << 53;
pub const FI_PROV_ATTR_ONLY: u64 = 1 << 54;
pub const FI_NUMERICHOST: u64 = 1 << 55;
pub const FI_RMA_EVENT: u64 = 1 << 56;
pub const FI_SOURCE: u64 = 1 << 57;
pub const FI_NAMED_RX_CTX: u64 = 1 << 58;
pub const FI_DIRECTED_RECV: u64 = 1 << 59;
pub const FI_CLAIM: u64 = 1 << 59;
pub const FI_DISCARD: u64 = 1 << 58;
/// Bind flag: completions only for operations that ask (FI_COMPLETION).
pub const FI_SELECTIVE_COMPLETION: u64 = 1 << 59;
/// `fi_getinfo` flag that libfabric's utility providers (`ofi_rxd`, `ofi_rxm`) add when
/// they look for a core provider to layer over (`OFI_CORE_PROV_ONLY` in libfabric's
/// internal `include/ofi.h`; the same bit in 1.17 and today). Not in the installed headers,
/// so `layout_check` cannot compare it.
pub const OFI_CORE_PROV_ONLY: u64 = 1 << 59;

// Mode bits.
pub const FI_CONTEXT: u64 = 1 << 59;
pub const FI_MSG_PREFIX: u64 = 1 << 58;
pub const FI_LOCAL_MR: u64 = 1 << 55;
pub const FI_CONTEXT2: u64 = 1 << 52;

// Address formats.
pub const FI_FORMAT_UNSPEC: u32 = 0;
pub const FI_SOCKADDR: u32 = 1;
pub const FI_SOCKADDR_IN: u32 = 2;

pub const FI_ADDR_UNSPEC: u64 = u64::MAX;
pub const FI_ADDR_NOTAVAIL: u64 = u64::MAX;

// enum fi_av_type
pub const FI_AV_UNSPEC: i32 = 0;
pub const FI_AV_MAP: i32 = 1;
pub const FI_AV_TABLE: i32 = 2;

// mr_mode bits
pub const FI_MR_UNSPEC: i32 = 0;
pub const FI_MR_BASIC: i32 = 1;
pub const FI_MR_SCALABLE: i32 = 2;
pub const FI_MR_LOCAL: i32 = 1 << 2;

// enum fi_progress
pub const FI_PROGRESS_UNSPEC: i32 = 0;
pub const FI_PROGRESS_AUTO: i32 = 1;
pub const FI_PROGRESS_MANUAL: i32 = 2;

// enum fi_threading
pub const FI_THREAD_UNSPEC: i32 = 0;
pub const FI_THREAD_SAFE: i32 = 1;

// enum fi_resource_mgmt
pub const FI_RM_UNSPEC: i32 = 0;
pub const FI_RM_DISABLED: i32 = 1;
pub const FI_RM_ENABLED: i32 = 2;

// Ordering.
pub const FI_ORDER_NONE: u64 = 0;
pub const FI_ORDER_SAS: u64 = 1 << 8;

// enum fi_ep_type
pub const FI_EP_UNSPEC: i32 = 0;
pub const FI_EP_MSG: i32 = 1;
pub const FI_EP_DGRAM: i32 = 2;
pub const FI_EP_RDM: i32 = 3;

pub const FI_PROTO_UNSPEC: u32 = 0;
pub const FI_PROTO_UDP: u32 = 5;

// fid classes
pub const FI_CLASS_FABRIC: usize = 1;
pub const FI_CLASS_DOMAIN: usize = 2;
pub const FI_CLASS_EP: usize = 3;
pub const FI_CLASS_AV: usize = 11;
pub const FI_CLASS_MR: usize = 12;
pub const FI_CLASS_EQ: usize = 13;
pub const FI_CLASS_CQ: usize = 14;
pub const FI_CLASS_CNTR: usize = 15;

// fi_control commands
pub const FI_GETWAIT: i32 = 5;
pub const FI_ENABLE: i32 = 6;
pub const FI_GETWAITOBJ: i32 = 16;

// enum fi_wait_obj
pub const FI_WAIT_NONE: i32 = 0;
pub const FI_WAIT_UNSPEC: i32 = 1;
pub const FI_WAIT_SET: i32 = 2;
pub const FI_WAIT_FD: i32 = 3;

// enum fi_cq_format
pub const FI_CQ_FORMAT_UNSPEC: i32 = 0;
pub const FI_CQ_FORMAT_CONTEXT: i32 = 1;
pub const FI_CQ_FORMAT_MSG: i32 = 2;
pub const FI_CQ_FORMAT_DATA: i32 = 3;
pub const FI_CQ_FORMAT_TAGGED: i32 = 4;

pub const FI_CQ_COND_NONE: i32 = 0;

// fi_getopt / fi_setopt
pub const FI_OPT_ENDPOINT: i32 = 0;
pub const FI_OPT_MIN_MULTI_RECV: i32 = 0;
pub const FI_OPT_CM_DATA_SIZE: i32 = 1;

/// Historical FI_TAG_GENERIC: every tag bit usable.
pub const FI_TAG_GENERIC: u64 = 0xAAAA_AAAA_AAAA_AAAA;

// Error numbers (positive; entry points return them negated).
pub const FI_SUCCESS: i32 = 0;
pub const FI_EPERM: i32 = libc::EPERM;
pub const FI_ENOENT: i32 = libc::ENOENT;
pub const FI_EIO: i32 = libc::EIO;
pub const FI_EAGAIN: i32 = libc::EAGAIN;
pub const FI_ENOMEM: i32 = libc::ENOMEM;
pub const FI_EBUSY: i32 = libc::EBUSY;
pub const FI_ENODEV: i32 = libc::ENODEV;
pub const FI_EINVAL: i32 = libc::EINVAL;
pub const FI_ENOSYS: i32 = libc::ENOSYS;
pub const FI_ENOMSG: i32 = libc::ENOMSG;
pub const FI_ENODATA: i32 = libc::ENODATA;
pub const FI_EMSGSIZE: i32 = libc::EMSGSIZE;
pub const FI_EADDRNOTAVAIL: i32 = libc::EADDRNOTAVAIL;
pub const FI_ETIMEDOUT: i32 = libc::ETIMEDOUT;
pub const FI_ECANCELED: i32 = libc::ECANCELED;
pub const FI_EOTHER: i32 = 256;
pub const FI_ETOOSMALL: i32 = 257;
pub const FI_EOPBADSTATE: i32 = 258;
pub const FI_EAVAIL: i32 = 259;
pub const FI_EBADFLAGS: i32 = 260;
pub const FI_ENOEQ: i32 = 261;
pub const FI_ENOCQ: i32 = 263;
pub const FI_ETRUNC: i32 = 265;
pub const FI_ENOAV: i32 = 267;
