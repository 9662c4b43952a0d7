//! `datapath`: the kernel-bypass layer. It loads and attaches the steering XDP program,
//! opens AF_XDP sockets over a [`umem::Pool`], and moves frames through the rings in
//! batches without copying them.
//!
//! ```text
//!            ┌──────────── kernel ─────────────┐          ┌──────── this process ────────┐
//!  NIC ──► XDP steer ── FLOWS hit ─► XSKMAP ─► │ RX ring ─┼─► XskSocket::recv ─► RxFrame   │
//!             │ miss                           │          │                   (pool frame)│
//!             └─► XDP_PASS ─► kernel stack     │ TX ring ◄┼── TxBatch::push ◄── BufSlice  │
//!                  (ARP, ICMP, ssh, ...)       │ fill/completion rings ◄─► Pool leases    │
//!                                              └─────────────────────────────────┘
//! ```
//!
//! Minimum kernel: Linux 5.18 (`xdp.frags`, `XDP_STATISTICS` v2); multi-buffer AF_XDP
//! (`XDP_USE_SG`) needs 6.6. On veth the socket binds in copy mode (the kernel copies
//! between its skb and the pool; this process never copies); on drivers with AF_XDP
//! zero-copy (ice, mlx5, i40e) the NIC DMAs into the pool. [`XskSocket::mode`] says which.
//!
//! An embedding (a messaging library, the TCP stack) owns one [`Pool`](umem::Pool) and one
//! [`XskSocket`] per queue per thread and runs: `recv` a batch, handle it, `tx_batch` /
//! `push` / `commit`, `poll`.
//!
//! This crate parses no protocol: the wire formats live in `stack::wire`, and the message
//! endpoint for HPC layers is the `datapath-msg` crate (`datapath/msg`), which sits on top
//! of this one and of `stack`.

pub mod caps;
mod error;
mod iface;
mod program;
pub mod ring;
mod signals;
mod sockopt;
mod txring;
mod xsk;

pub use error::Error;
pub use iface::{fmt_mac, parse_mac, Interface};
pub use program::{AttachMode, AttachPolicy, ProgramCounters, Proto, SteerProgram};
pub use signals::Shutdown;
pub use sockopt::set_busy_poll;
pub use xsk::{
    BindMode, BindPolicy, BusyPoll, PushError, RxFrame, TxBatch, XskConfig, XskSocket, XskStats, XDP_PACKET_HEADROOM,
    XDP_PKT_CONTD,
};
