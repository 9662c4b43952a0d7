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
//! TX checksum offload through AF_XDP TX metadata ([`XskConfig::tx_checksum_offload`])
//! needs 6.8 (`XDP_UMEM_TX_METADATA_LEN`), and in zero-copy mode a driver that reports
//! `tx-checksum` in its [`XskFeatures`]; [`XskSocket::tx_checksum`] says what is in force.
//! The socket, the UMEM registration and the four ring mappings are this crate's own
//! (`sys`, `rings`): xdpilone, used before, registers no TX metadata.
//!
//! An embedding (a messaging library, the TCP stack) owns one [`Pool`](umem::Pool) and one
//! [`XskSocket`] per queue per thread and runs: `recv` a batch, handle it, `tx_batch` /
//! `push` / `commit`, `poll`.
//!
//! This crate parses no protocol: the wire formats live in `stack::wire`, and the message
//! endpoint for HPC layers is the `datapath-msg` crate (`datapath/msg`), which sits on top
//! of this one and of `stack`.

mod batch;
pub mod caps;
mod error;
mod iface;
pub mod netdev;
mod program;
pub mod ring;
mod rings;
mod signals;
mod sockopt;
mod sys;
mod xsk;

pub use batch::{PushError, TxBatch, TxChecksum};
pub use error::Error;
pub use iface::{fmt_mac, parse_mac, Interface};
pub use netdev::XskFeatures;
pub use program::{AttachMode, AttachPolicy, ProgramCounters, Proto, SteerProgram};
pub use signals::Shutdown;
pub use sockopt::set_busy_poll;
pub use sys::XDP_PKT_CONTD;
pub use xsk::{
    BindMode, BindPolicy, BusyPoll, RxFrame, TxChecksumOffload, XskConfig, XskSocket, XskStats, XDP_PACKET_HEADROOM,
};
