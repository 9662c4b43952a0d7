//! One list of every structure, field and constant of [`super::types`] and
//! [`super::consts`] whose layout matters, from which the `layout_check` test builds both
//! sides: a C program printing `sizeof`/`offsetof` and the values from the installed
//! headers, and the same keys computed by Rust. A mismatch names the field.

use std::mem::{offset_of, size_of};

use super::consts::*;
use super::types::*;

macro_rules! layout {
    (
        structs { $($ty:ident { $($rf:ident = $cf:literal),* $(,)? })* }
        consts { $($c:ident),* $(,)? }
    ) => {
        /// (key, value) as Rust sees them.
        pub fn rust() -> Vec<(String, u64)> {
            let mut v = Vec::new();
            $(
                v.push((concat!(stringify!($ty), " sizeof").to_string(), size_of::<$ty>() as u64));
                $( v.push((concat!(stringify!($ty), " ", $cf).to_string(), offset_of!($ty, $rf) as u64)); )*
            )*
            $( v.push((concat!("const ", stringify!($c)).to_string(), $c as u64)); )*
            v
        }

        /// A C program printing the same keys from the headers.
        pub fn c_source() -> String {
            let mut s = String::from(
                "#include <stdio.h>\n#include <stddef.h>\n#include <rdma/fabric.h>\n#include <rdma/fi_domain.h>\n\
                 #include <rdma/fi_endpoint.h>\n#include <rdma/fi_eq.h>\n#include <rdma/fi_tagged.h>\n\
                 #include <rdma/fi_cm.h>\n#include <rdma/fi_rma.h>\n#include <rdma/fi_atomic.h>\n\
                 #include <rdma/fi_errno.h>\n#include <rdma/providers/fi_prov.h>\nint main(void) {\n",
            );
            $(
                s.push_str(&format!("printf(\"%s %llu\\n\", \"{} sizeof\", (unsigned long long)sizeof(struct {}));\n", stringify!($ty), stringify!($ty)));
                $( s.push_str(&format!("printf(\"%s %llu\\n\", \"{} {}\", (unsigned long long)offsetof(struct {}, {}));\n", stringify!($ty), $cf, stringify!($ty), $cf)); )*
            )*
            $( s.push_str(&format!("printf(\"%s %llu\\n\", \"const {}\", (unsigned long long)({}));\n", stringify!($c), stringify!($c))); )*
            s.push_str("return 0;\n}\n");
            s
        }
    };
}

layout! {
    structs {
        iovec { iov_base = "iov_base", iov_len = "iov_len" }
        fid { fclass = "fclass", context = "context", ops = "ops" }
        fi_ops { size = "size", close = "close", bind = "bind", control = "control", ops_open = "ops_open", tostr = "tostr", ops_set = "ops_set" }
        fi_tx_attr { caps = "caps", mode = "mode", op_flags = "op_flags", msg_order = "msg_order", comp_order = "comp_order", inject_size = "inject_size", size = "size", iov_limit = "iov_limit", rma_iov_limit = "rma_iov_limit", tclass = "tclass" }
        fi_rx_attr { caps = "caps", mode = "mode", op_flags = "op_flags", msg_order = "msg_order", comp_order = "comp_order", total_buffered_recv = "total_buffered_recv", size = "size", iov_limit = "iov_limit" }
        fi_ep_attr { type_ = "type", protocol = "protocol", protocol_version = "protocol_version", max_msg_size = "max_msg_size", msg_prefix_size = "msg_prefix_size", max_order_raw_size = "max_order_raw_size", max_order_war_size = "max_order_war_size", max_order_waw_size = "max_order_waw_size", mem_tag_format = "mem_tag_format", tx_ctx_cnt = "tx_ctx_cnt", rx_ctx_cnt = "rx_ctx_cnt", auth_key_size = "auth_key_size", auth_key = "auth_key" }
        fi_domain_attr { domain = "domain", name = "name", threading = "threading", control_progress = "control_progress", data_progress = "data_progress", resource_mgmt = "resource_mgmt", av_type = "av_type", mr_mode = "mr_mode", mr_key_size = "mr_key_size", cq_data_size = "cq_data_size", cq_cnt = "cq_cnt", ep_cnt = "ep_cnt", tx_ctx_cnt = "tx_ctx_cnt", rx_ctx_cnt = "rx_ctx_cnt", max_ep_tx_ctx = "max_ep_tx_ctx", max_ep_rx_ctx = "max_ep_rx_ctx", max_ep_stx_ctx = "max_ep_stx_ctx", max_ep_srx_ctx = "max_ep_srx_ctx", cntr_cnt = "cntr_cnt", mr_iov_limit = "mr_iov_limit", caps = "caps", mode = "mode", auth_key = "auth_key", auth_key_size = "auth_key_size", max_err_data = "max_err_data", mr_cnt = "mr_cnt", tclass = "tclass" }
        fi_fabric_attr { fabric = "fabric", name = "name", prov_name = "prov_name", prov_version = "prov_version", api_version = "api_version" }
        fi_info { next = "next", caps = "caps", mode = "mode", addr_format = "addr_format", src_addrlen = "src_addrlen", dest_addrlen = "dest_addrlen", src_addr = "src_addr", dest_addr = "dest_addr", handle = "handle", tx_attr = "tx_attr", rx_attr = "rx_attr", ep_attr = "ep_attr", domain_attr = "domain_attr", fabric_attr = "fabric_attr", nic = "nic" }
        fi_provider { version = "version", fi_version = "fi_version", context = "context", name = "name", getinfo = "getinfo", fabric = "fabric", cleanup = "cleanup" }
        fi_ops_fabric { size = "size", domain = "domain", passive_ep = "passive_ep", eq_open = "eq_open", wait_open = "wait_open", trywait = "trywait", domain2 = "domain2" }
        fid_fabric { fid = "fid", ops = "ops", api_version = "api_version" }
        fi_ops_domain { size = "size", av_open = "av_open", cq_open = "cq_open", endpoint = "endpoint", scalable_ep = "scalable_ep", cntr_open = "cntr_open", poll_open = "poll_open", stx_ctx = "stx_ctx", srx_ctx = "srx_ctx", query_atomic = "query_atomic", query_collective = "query_collective", endpoint2 = "endpoint2" }
        fi_ops_mr { size = "size", reg = "reg", regv = "regv", regattr = "regattr" }
        fid_domain { fid = "fid", ops = "ops", mr = "mr" }
        fi_av_attr { type_ = "type", rx_ctx_bits = "rx_ctx_bits", count = "count", ep_per_node = "ep_per_node", name = "name", map_addr = "map_addr", flags = "flags" }
        fi_ops_av { size = "size", insert = "insert", insertsvc = "insertsvc", insertsym = "insertsym", remove = "remove", lookup = "lookup", straddr = "straddr", av_set = "av_set" }
        fid_av { fid = "fid", ops = "ops" }
        fid_mr { fid = "fid", mem_desc = "mem_desc", key = "key" }
        fi_mr_attr { mr_iov = "mr_iov", iov_count = "iov_count", access = "access", offset = "offset", requested_key = "requested_key", context = "context", auth_key_size = "auth_key_size", auth_key = "auth_key", iface = "iface", device = "device" }
        fi_eq_attr { size = "size", flags = "flags", wait_obj = "wait_obj", signaling_vector = "signaling_vector", wait_set = "wait_set" }
        fi_eq_err_entry { fid = "fid", context = "context", data = "data", err = "err", prov_errno = "prov_errno", err_data = "err_data", err_data_size = "err_data_size" }
        fi_ops_eq { size = "size", read = "read", readerr = "readerr", write = "write", sread = "sread", strerror = "strerror" }
        fid_eq { fid = "fid", ops = "ops" }
        fi_cq_attr { size = "size", flags = "flags", format = "format", wait_obj = "wait_obj", signaling_vector = "signaling_vector", wait_cond = "wait_cond", wait_set = "wait_set" }
        fi_cq_tagged_entry { op_context = "op_context", flags = "flags", len = "len", buf = "buf", data = "data", tag = "tag" }
        fi_cq_err_entry { op_context = "op_context", flags = "flags", len = "len", buf = "buf", data = "data", tag = "tag", olen = "olen", err = "err", prov_errno = "prov_errno", err_data = "err_data", err_data_size = "err_data_size" }
        fi_ops_cq { size = "size", read = "read", readfrom = "readfrom", readerr = "readerr", sread = "sread", sreadfrom = "sreadfrom", signal = "signal", strerror = "strerror" }
        fid_cq { fid = "fid", ops = "ops" }
        fi_msg { msg_iov = "msg_iov", desc = "desc", iov_count = "iov_count", addr = "addr", context = "context", data = "data" }
        fi_msg_tagged { msg_iov = "msg_iov", desc = "desc", iov_count = "iov_count", addr = "addr", tag = "tag", ignore = "ignore", context = "context", data = "data" }
        fi_ops_ep { size = "size", cancel = "cancel", getopt = "getopt", setopt = "setopt", tx_ctx = "tx_ctx", rx_ctx = "rx_ctx", rx_size_left = "rx_size_left", tx_size_left = "tx_size_left" }
        fi_ops_cm { size = "size", setname = "setname", getname = "getname", getpeer = "getpeer", connect = "connect", listen = "listen", accept = "accept", reject = "reject", shutdown = "shutdown", join = "join" }
        fi_ops_msg { size = "size", recv = "recv", recvv = "recvv", recvmsg = "recvmsg", send = "send", sendv = "sendv", sendmsg = "sendmsg", inject = "inject", senddata = "senddata", injectdata = "injectdata" }
        fi_ops_tagged { size = "size", recv = "recv", recvv = "recvv", recvmsg = "recvmsg", send = "send", sendv = "sendv", sendmsg = "sendmsg", inject = "inject", senddata = "senddata", injectdata = "injectdata" }
        fi_ops_rma { size = "size", read = "read", readv = "readv", readmsg = "readmsg", write = "write", writev = "writev", writemsg = "writemsg", inject = "inject", writedata = "writedata", injectdata = "injectdata" }
        fi_ops_atomic { size = "size", write = "write", writev = "writev", writemsg = "writemsg", inject = "inject", readwrite = "readwrite", readwritev = "readwritev", readwritemsg = "readwritemsg", compwrite = "compwrite", compwritev = "compwritev", compwritemsg = "compwritemsg", writevalid = "writevalid", readwritevalid = "readwritevalid", compwritevalid = "compwritevalid" }
        fid_ep { fid = "fid", ops = "ops", cm = "cm", msg = "msg", rma = "rma", tagged = "tagged", atomic = "atomic", collective = "collective" }
    }
    consts {
        FI_MSG, FI_TAGGED, FI_RECV, FI_SEND, FI_MULTI_RECV, FI_REMOTE_CQ_DATA, FI_PEEK, FI_COMPLETION, FI_INJECT,
        FI_INJECT_COMPLETE, FI_TRANSMIT_COMPLETE, FI_DELIVERY_COMPLETE, FI_LOCAL_COMM, FI_REMOTE_COMM,
        FI_PROV_ATTR_ONLY, FI_SOURCE, FI_DIRECTED_RECV, FI_CLAIM, FI_DISCARD, FI_SELECTIVE_COMPLETION, FI_CONTEXT,
        FI_MSG_PREFIX, FI_LOCAL_MR, FI_CONTEXT2, FI_SOCKADDR_IN, FI_AV_MAP, FI_AV_TABLE, FI_MR_LOCAL,
        FI_PROGRESS_MANUAL, FI_THREAD_SAFE, FI_RM_ENABLED, FI_ORDER_SAS, FI_EP_DGRAM, FI_EP_RDM, FI_PROTO_UDP,
        FI_CLASS_FABRIC, FI_CLASS_DOMAIN, FI_CLASS_EP, FI_CLASS_AV, FI_CLASS_MR, FI_CLASS_EQ, FI_CLASS_CQ,
        FI_CLASS_CNTR, FI_GETWAIT, FI_ENABLE, FI_GETWAITOBJ, FI_WAIT_NONE, FI_WAIT_UNSPEC, FI_WAIT_FD,
        FI_CQ_FORMAT_CONTEXT, FI_CQ_FORMAT_MSG, FI_CQ_FORMAT_DATA, FI_CQ_FORMAT_TAGGED, FI_OPT_ENDPOINT,
        FI_OPT_MIN_MULTI_RECV, FI_EAGAIN, FI_ENOSYS, FI_ENOMSG, FI_ENODATA, FI_ECANCELED, FI_ETOOSMALL,
        FI_EOPBADSTATE, FI_EAVAIL, FI_EBADFLAGS, FI_ENOCQ, FI_ETRUNC, FI_ENOAV,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::process::Command;

    /// Compiles [`super::c_source`] against the installed libfabric headers with the
    /// system C compiler, runs it, and compares every key with Rust's value.
    #[test]
    fn layout_check() {
        assert!(
            std::path::Path::new("/usr/include/rdma/fabric.h").exists(),
            "libfabric headers missing: install libfabric-dev (`cargo xtask setup` does)"
        );
        let dir = std::env::temp_dir().join(format!("afxdp-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("layout.c");
        let exe = dir.join("layout");
        std::fs::write(&src, super::c_source()).unwrap();
        let out = Command::new("cc").arg("-o").arg(&exe).arg(&src).output().expect("running cc");
        assert!(out.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let run = Command::new(&exe).output().expect("running the layout program");
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8(run.stdout).unwrap();
        let c: BTreeMap<String, u64> = text
            .lines()
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect();
        let rust = super::rust();
        assert!(rust.len() > 250, "the list shrank: {}", rust.len());
        let mut bad = Vec::new();
        for (k, v) in &rust {
            match c.get(k) {
                Some(cv) if cv == v => {}
                other => bad.push(format!("{k}: rust {v}, C {other:?}")),
            }
        }
        assert!(bad.is_empty(), "layout differs from the headers:\n{}", bad.join("\n"));
    }
}
