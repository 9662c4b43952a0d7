//! What the provider offers (`fi_getinfo`), as plain Rust values, and the matching of an
//! application's hints against it. Every attribute states what the code does:
//! manual progress, in-order delivery per peer for RDM (FI_ORDER_SAS), completions when
//! the bytes are in frames (FI_INJECT_COMPLETE), one endpoint per domain (a domain is one
//! interface queue, which one AF_XDP socket owns), no RMA, atomics or memory keys needed.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::config::Config;
use super::proto::{CHUNK, HDR};
use crate::ffi::consts::*;
use crate::ffi::types::{fi_rx_attr, fi_tx_attr};

/// Provider version (0.1).
pub const PROV_VERSION: u32 = fi_version(0, 1);
/// Wire protocols: provider-specific numbers, so two incompatible kinds never match.
pub const PROTO_DGRAM: u32 = (1 << 31) | 1;
pub const PROTO_RDM: u32 = (1 << 31) | 2;

/// Capabilities of a DGRAM endpoint.
///
/// FI_LOCAL_COMM holds for an endpoint sending to itself (delivered inside the provider)
/// and between endpoints on one host whose interfaces reach each other (network
/// namespaces joined by veth, as the tests run); two processes cannot share one queue.
pub const DGRAM_CAPS: u64 = FI_MSG | FI_SEND | FI_RECV | FI_SOURCE | FI_REMOTE_CQ_DATA | COMM;
/// Capabilities of an RDM endpoint.
pub const RDM_CAPS: u64 =
    FI_MSG | FI_TAGGED | FI_SEND | FI_RECV | FI_SOURCE | FI_DIRECTED_RECV | FI_REMOTE_CQ_DATA | COMM;
const COMM: u64 = FI_LOCAL_COMM | FI_REMOTE_COMM;
const PRIMARY: u64 = FI_MSG | FI_TAGGED | FI_RMA | FI_ATOMIC | FI_COLLECTIVE;
/// Bytes an inject copies at the call (it returns with the buffer free).
pub const INJECT_SIZE: usize = 4096;
/// Sends queued per endpoint.
pub const TX_SIZE: usize = 1024;
/// Receives posted per endpoint.
pub const RX_SIZE: usize = 1024;
pub const IOV_LIMIT: usize = 8;
/// Transmit operation flags we honour.
const TX_OP_FLAGS: u64 = FI_COMPLETION | FI_INJECT | FI_INJECT_COMPLETE | FI_MORE;
const RX_OP_FLAGS: u64 = FI_COMPLETION | FI_MORE;

/// Endpoint attributes without pointers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EpAttr {
    pub type_: i32,
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
}

/// Domain attributes without pointers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainAttr {
    pub name: Option<String>,
    pub threading: i32,
    pub control_progress: i32,
    pub data_progress: i32,
    pub resource_mgmt: i32,
    pub av_type: i32,
    pub mr_mode: i32,
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
    pub max_err_data: usize,
    pub mr_cnt: usize,
}

/// One `fi_info`, or the application's hints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub caps: u64,
    pub mode: u64,
    pub addr_format: u32,
    pub src: Option<SocketAddrV4>,
    pub dest: Option<SocketAddrV4>,
    pub tx: fi_tx_attr,
    pub rx: fi_rx_attr,
    pub ep: EpAttr,
    pub domain: DomainAttr,
    pub fabric_name: Option<String>,
    pub prov_name: Option<String>,
    pub prov_version: u32,
}

impl PartialEq for fi_tx_attr {
    fn eq(&self, o: &Self) -> bool {
        (self.caps, self.mode, self.op_flags, self.msg_order, self.comp_order, self.inject_size)
            == (o.caps, o.mode, o.op_flags, o.msg_order, o.comp_order, o.inject_size)
            && (self.size, self.iov_limit, self.rma_iov_limit, self.tclass)
                == (o.size, o.iov_limit, o.rma_iov_limit, o.tclass)
    }
}
impl Eq for fi_tx_attr {}
impl PartialEq for fi_rx_attr {
    fn eq(&self, o: &Self) -> bool {
        (self.caps, self.mode, self.op_flags, self.msg_order, self.comp_order)
            == (o.caps, o.mode, o.op_flags, o.msg_order, o.comp_order)
            && (self.total_buffered_recv, self.size, self.iov_limit) == (o.total_buffered_recv, o.size, o.iov_limit)
    }
}
impl Eq for fi_rx_attr {}

impl Info {
    /// All zeros: what empty hints say.
    pub fn empty() -> Info {
        let tx = fi_tx_attr {
            caps: 0,
            mode: 0,
            op_flags: 0,
            msg_order: 0,
            comp_order: 0,
            inject_size: 0,
            size: 0,
            iov_limit: 0,
            rma_iov_limit: 0,
            tclass: 0,
        };
        let rx = fi_rx_attr {
            caps: 0,
            mode: 0,
            op_flags: 0,
            msg_order: 0,
            comp_order: 0,
            total_buffered_recv: 0,
            size: 0,
            iov_limit: 0,
        };
        Info {
            caps: 0,
            mode: 0,
            addr_format: FI_FORMAT_UNSPEC,
            src: None,
            dest: None,
            tx,
            rx,
            ep: EpAttr::default(),
            domain: DomainAttr::default(),
            fabric_name: None,
            prov_name: None,
            prov_version: 0,
        }
    }
}

/// What this provider offers for `kind` (FI_EP_DGRAM or FI_EP_RDM) on `cfg`.
pub fn template(cfg: &Config, kind: i32, api: u32) -> Info {
    let rdm = kind == FI_EP_RDM;
    let caps = if rdm { RDM_CAPS } else { DGRAM_CAPS };
    let order = if rdm { FI_ORDER_SAS } else { FI_ORDER_NONE };
    let mut i = Info::empty();
    i.caps = caps;
    i.addr_format = FI_SOCKADDR_IN;
    i.src = Some(SocketAddrV4::new(cfg.addr, cfg.port.unwrap_or(0)));
    i.tx = fi_tx_attr {
        caps: caps & !(FI_RECV | FI_SOURCE | FI_DIRECTED_RECV),
        op_flags: FI_COMPLETION,
        msg_order: order,
        comp_order: FI_ORDER_NONE,
        inject_size: INJECT_SIZE,
        size: TX_SIZE,
        iov_limit: IOV_LIMIT,
        ..i.tx
    };
    i.rx = fi_rx_attr {
        caps: caps & !FI_SEND,
        op_flags: FI_COMPLETION,
        msg_order: order,
        comp_order: FI_ORDER_NONE,
        size: RX_SIZE,
        iov_limit: IOV_LIMIT,
        ..i.rx
    };
    i.ep = EpAttr {
        type_: kind,
        protocol: if rdm { PROTO_RDM } else { PROTO_DGRAM },
        protocol_version: 1,
        max_msg_size: if rdm { cfg.max_msg } else { CHUNK },
        mem_tag_format: if rdm { FI_TAG_GENERIC } else { 0 },
        tx_ctx_cnt: 1,
        rx_ctx_cnt: 1,
        ..EpAttr::default()
    };
    i.domain = DomainAttr {
        name: Some(cfg.iface.clone()),
        threading: FI_THREAD_SAFE,
        control_progress: FI_PROGRESS_MANUAL,
        data_progress: FI_PROGRESS_MANUAL,
        resource_mgmt: FI_RM_ENABLED,
        av_type: FI_AV_UNSPEC,
        // No registration needed; before API 1.5 the field must name a mode.
        mr_mode: if api < fi_version(1, 5) { FI_MR_SCALABLE } else { 0 },
        mr_key_size: 8,
        cq_data_size: 8,
        cq_cnt: 64,
        ep_cnt: 1,
        tx_ctx_cnt: 1,
        rx_ctx_cnt: 1,
        max_ep_tx_ctx: 1,
        max_ep_rx_ctx: 1,
        mr_iov_limit: IOV_LIMIT,
        caps: COMM,
        mr_cnt: 1 << 16,
        ..DomainAttr::default()
    };
    i.fabric_name = Some(cfg.fabric_name());
    i.prov_version = PROV_VERSION;
    i
}

fn subset(want: u64, have: u64) -> bool {
    want & !have == 0
}

/// Why a template does not fit the hints (for the debug log), or the fitted info.
pub fn fit(t: &Info, h: &Info, cfg: &Config) -> Result<Info, &'static str> {
    let mut i = t.clone();
    if h.ep.type_ != FI_EP_UNSPEC && h.ep.type_ != t.ep.type_ {
        return Err("endpoint type");
    }
    if !subset(h.caps, t.caps) {
        return Err("capabilities");
    }
    if !matches!(h.addr_format, FI_FORMAT_UNSPEC | FI_SOCKADDR | FI_SOCKADDR_IN) {
        return Err("address format (we use FI_SOCKADDR_IN)");
    }
    if !subset(h.tx.caps, t.caps) || !subset(h.rx.caps, t.caps) {
        return Err("tx/rx capabilities");
    }
    if !subset(h.tx.msg_order, t.tx.msg_order) || !subset(h.rx.msg_order, t.rx.msg_order) {
        return Err("message order");
    }
    if !subset(h.tx.op_flags, TX_OP_FLAGS) || !subset(h.rx.op_flags, RX_OP_FLAGS) {
        return Err("operation flags (completions are FI_INJECT_COMPLETE)");
    }
    if h.tx.inject_size > t.tx.inject_size || h.tx.iov_limit > IOV_LIMIT || h.rx.iov_limit > IOV_LIMIT {
        return Err("inject size or iov limit");
    }
    if h.tx.size > TX_SIZE || h.rx.size > RX_SIZE || h.rx.total_buffered_recv > 0 {
        return Err("queue sizes");
    }
    if h.ep.max_msg_size > t.ep.max_msg_size {
        return Err("max_msg_size");
    }
    if h.ep.protocol != FI_PROTO_UNSPEC && h.ep.protocol != t.ep.protocol {
        return Err("protocol");
    }
    if h.ep.tx_ctx_cnt > 1 || h.ep.rx_ctx_cnt > 1 || h.ep.msg_prefix_size > 0 {
        return Err("contexts or prefix");
    }
    let d = &h.domain;
    if d.name.as_deref().is_some_and(|n| n != cfg.iface) {
        return Err("domain name (the interface)");
    }
    if d.control_progress == FI_PROGRESS_AUTO || d.data_progress == FI_PROGRESS_AUTO {
        return Err("progress (manual only)");
    }
    if d.cq_data_size > 8 || !subset(d.caps, COMM) {
        return Err("domain caps or cq data size");
    }
    if d.ep_cnt > 1 || d.max_ep_stx_ctx > 0 || d.max_ep_srx_ctx > 0 || d.cntr_cnt > 0 {
        return Err("domain counts (one endpoint per domain, no shared contexts or counters)");
    }
    if h.fabric_name.as_deref().is_some_and(|n| n != t.fabric_name.as_deref().unwrap_or("")) {
        return Err("fabric name (the interface's subnet)");
    }
    if let Some(s) = h.src {
        if !s.ip().is_unspecified() && *s.ip() != cfg.addr {
            return Err("source address (not the interface's)");
        }
        i.src = Some(SocketAddrV4::new(cfg.addr, s.port()));
    }
    i.dest = h.dest;
    if h.caps != 0 {
        let mut c = h.caps;
        if c & (FI_SEND | FI_RECV) == 0 {
            c |= t.caps & (FI_SEND | FI_RECV);
        }
        if c & PRIMARY == 0 {
            c |= t.caps & PRIMARY;
        }
        if c & COMM == 0 {
            c |= COMM;
        }
        i.caps = c;
        i.tx.caps &= i.caps;
        i.rx.caps &= i.caps;
    }
    if d.threading != FI_THREAD_UNSPEC {
        i.domain.threading = d.threading;
    }
    if d.av_type != FI_AV_UNSPEC {
        i.domain.av_type = d.av_type;
    }
    if d.resource_mgmt != FI_RM_UNSPEC {
        i.domain.resource_mgmt = d.resource_mgmt;
    }
    if h.tx.op_flags != 0 {
        i.tx.op_flags = h.tx.op_flags;
    }
    if h.rx.op_flags != 0 {
        i.rx.op_flags = h.rx.op_flags;
    }
    Ok(i)
}

/// The infos offered for `hints` (None: everything).
pub fn offer(cfg: &Config, api: u32, hints: Option<&Info>) -> Vec<Info> {
    let empty = Info::empty();
    let h = hints.unwrap_or(&empty);
    [FI_EP_DGRAM, FI_EP_RDM]
        .into_iter()
        .filter_map(|k| match fit(&template(cfg, k, api), h, cfg) {
            Ok(i) => Some(i),
            Err(why) => {
                log::debug!(
                    "fi_getinfo: {} does not fit the hints: {why} (hint caps {:#x}, offered {:#x})",
                    if k == FI_EP_RDM { "RDM" } else { "DGRAM" },
                    h.caps,
                    if k == FI_EP_RDM { RDM_CAPS } else { DGRAM_CAPS }
                );
                None
            }
        })
        .collect()
}

/// `node`/`service` of `fi_getinfo` as an address: numeric IPv4 or a name that resolves
/// to one; `service` a port number.
pub fn parse_node(node: Option<&str>, service: Option<&str>) -> Option<SocketAddrV4> {
    let port = match service {
        Some(s) => s.parse::<u16>().ok()?,
        None => 0,
    };
    let ip = match node {
        None => Ipv4Addr::UNSPECIFIED,
        Some(n) => match n.parse::<Ipv4Addr>() {
            Ok(ip) => ip,
            Err(_) => std::net::ToSocketAddrs::to_socket_addrs(&(n, port)).ok()?.find_map(|a| match a {
                std::net::SocketAddr::V4(a) => Some(*a.ip()),
                _ => None,
            })?,
        },
    };
    Some(SocketAddrV4::new(ip, port))
}

/// Header bytes the provider adds to each chunk (what `inject_size` leaves room for).
pub const OVERHEAD: usize = HDR;

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            iface: "veth0".into(),
            queue: 0,
            addr: "10.77.0.1".parse().unwrap(),
            prefix: 24,
            port: None,
            frames: 8192,
            max_msg: 1 << 30,
            unexpected_max: 1 << 26,
            mtu: 1500,
            linger: std::time::Duration::ZERO,
            layering: false,
        }
    }

    #[test]
    fn no_hints_gives_dgram_and_rdm() {
        let v = offer(&cfg(), fi_version(1, 17), None);
        assert_eq!(v.iter().map(|i| i.ep.type_).collect::<Vec<_>>(), vec![FI_EP_DGRAM, FI_EP_RDM]);
        assert_eq!(v[1].caps & FI_TAGGED, FI_TAGGED);
        assert_eq!(v[0].caps & FI_TAGGED, 0);
        assert_eq!(v[0].ep.max_msg_size, CHUNK);
        assert_eq!(v[0].domain.name.as_deref(), Some("veth0"));
        assert_eq!(v[0].fabric_name.as_deref(), Some("10.77.0.0/24"));
        assert_eq!(v[0].domain.mr_mode, 0);
        assert_eq!(offer(&cfg(), fi_version(1, 0), None)[0].domain.mr_mode, FI_MR_SCALABLE);
    }

    #[test]
    fn open_mpi_hints_fit_rdm_only() {
        let mut h = Info::empty();
        h.mode = FI_CONTEXT;
        h.ep.type_ = FI_EP_RDM;
        h.caps = FI_TAGGED;
        h.tx.msg_order = FI_ORDER_SAS;
        h.rx.msg_order = FI_ORDER_SAS;
        h.tx.op_flags = FI_COMPLETION;
        h.rx.op_flags = FI_COMPLETION;
        h.domain.av_type = FI_AV_MAP;
        h.domain.resource_mgmt = FI_RM_ENABLED;
        h.domain.control_progress = FI_PROGRESS_MANUAL;
        let v = offer(&cfg(), fi_version(1, 5), Some(&h));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].caps, FI_TAGGED | FI_SEND | FI_RECV | FI_LOCAL_COMM | FI_REMOTE_COMM);
        h.caps |= FI_DIRECTED_RECV | FI_LOCAL_COMM | FI_REMOTE_COMM; // what Open MPI 4.1.4 asks
        assert_eq!(offer(&cfg(), fi_version(1, 5), Some(&h)).len(), 1);
        assert_eq!(v[0].domain.av_type, FI_AV_MAP);
        h.caps |= FI_REMOTE_CQ_DATA;
        assert_eq!(offer(&cfg(), fi_version(1, 5), Some(&h)).len(), 1);
    }

    #[test]
    fn refusals() {
        let c = cfg();
        let t = template(&c, FI_EP_RDM, fi_version(1, 17));
        let with = |f: &dyn Fn(&mut Info)| {
            let mut h = Info::empty();
            f(&mut h);
            fit(&t, &h, &c)
        };
        assert_eq!(with(&|h| h.caps = FI_RMA), Err("capabilities"));
        assert_eq!(with(&|h| h.ep.type_ = FI_EP_MSG), Err("endpoint type"));
        assert_eq!(with(&|h| h.domain.data_progress = FI_PROGRESS_AUTO), Err("progress (manual only)"));
        assert_eq!(with(&|h| h.domain.name = Some("eth9".into())), Err("domain name (the interface)"));
        assert_eq!(with(&|h| h.addr_format = 3), Err("address format (we use FI_SOCKADDR_IN)"));
        assert!(with(&|h| h.tx.op_flags = FI_DELIVERY_COMPLETE).is_err());
        assert!(with(&|h| h.src = Some("10.77.0.9:5".parse().unwrap())).is_err());
        let ok = with(&|h| h.src = Some("0.0.0.0:5000".parse().unwrap())).unwrap();
        assert_eq!(ok.src, Some("10.77.0.1:5000".parse().unwrap()));
    }

    #[test]
    fn nodes() {
        assert_eq!(parse_node(Some("10.1.2.3"), Some("99")), Some("10.1.2.3:99".parse().unwrap()));
        assert_eq!(parse_node(None, Some("7")), Some("0.0.0.0:7".parse().unwrap()));
        assert_eq!(parse_node(Some("10.1.2.3"), Some("x")), None);
    }
}
