//! `afxdp`: a libfabric (OFI) provider over the AF_XDP message endpoint
//! ([`datapath_msg`]), so unmodified libfabric applications - `fi_pingpong`, Open MPI's
//! `mtl ofi` - send their messages through the kernel-bypass datapath.
//!
//! ```text
//!  MPI / fi_pingpong ── libfabric core (dlopen libafxdp-fi.so, fi_prov_ini)
//!        │  fi_tsend / fi_trecv / fi_cq_read
//!        ▼
//!  entry (C ABI, catch_unwind) ─► core: matching, chunks, CQs, AVs ─► datapath_msg::Endpoint
//!                                                          (pool frames, reliable for RDM)
//!        NIC/veth ◄── AF_XDP TX ring ◄─────────────────────────────────────┘
//!           └──► XDP steer (our UDP port) ─► AF_XDP RX ring ─► Endpoint::recv ─► matching
//! ```
//!
//! Layers: `ffi` holds the hand-written `#[repr(C)]` subset of libfabric 1.17's
//! structures (checked against the installed headers by the `layout_check` test),
//! `entry` the `extern "C"` entry points (the only other place with `unsafe`), and `core`
//! the provider in safe Rust.
//!
//! **What it offers.** `FI_EP_DGRAM` with `FI_MSG` (messages up to 64 KiB, unreliable:
//! the endpoint's datagrams, reassembled) and `FI_EP_RDM` with `FI_MSG | FI_TAGGED`
//! (reliable, in order per peer, messages up to `FI_AFXDP_MAX_MSG`), `FI_SOURCE`,
//! `FI_DIRECTED_RECV`, `FI_REMOTE_CQ_DATA`, `FI_PEEK` (with `FI_CLAIM` and `FI_DISCARD`,
//! which `MPI_Improbe`/`MPI_Mrecv` use); address vectors of both kinds over
//! `sockaddr_in`; completion queues in all four formats with manual progress and blocking
//! reads (`fi_cq_sread` waits in `ppoll` on the AF_XDP socket); memory registration that
//! is accepted but not required. Everything else answers `-FI_ENOSYS`. Reliable sends must
//! arrive even if the application stops driving the endpoint (it may block on its own
//! sockets after its last send, as `fi_pingpong` does), so a domain with an RDM endpoint
//! runs a timer thread that drives an endpoint left undriven for 1 ms while it has
//! datagrams unacknowledged or an acknowledgement owed, and `fi_close` lingers until its
//! datagrams are acknowledged.
//!
//! **RDM natively, not through `ofi_rxd`.** libfabric's `ofi_rxd` builds RDM over this
//! provider's DGRAM endpoints by itself (`fi_info -p afxdp` lists `afxdp;ofi_rxd`); this
//! provider instead runs RDM on the message endpoint's own reliable mode (selective
//! acknowledgement, retransmission by frame reference): one header and one acknowledgement
//! path instead of two, 64 KiB per endpoint message instead of rxd's packets, no rxd
//! handshake per peer. Chosen by measurement, `fi_pingpong -e rdm` on this project's veth
//! pair in the same run (`cargo xtask bench fabric` prints both rows): at 64 B, native
//! 4.90 and 6.29 us/xfer against rxd's 9.20 and 10.29 (MTU 1500 and 9000), and at 64 KiB
//! 463 and 1,219 MB/s against 397 and 617. So when a utility provider asks to layer
//! over us (`fi_getinfo` with libfabric's `OFI_CORE_PROV_ONLY`), the provider declines,
//! as libfabric itself does for the core providers that have their own RDM; otherwise
//! libfabric lists `afxdp;ofi_rxd` first and Open MPI and `fi_pingpong` take it.
//! `FI_AFXDP_LAYERING=1` allows the layering (for comparison).
//!
//! **Copies.** AF_XDP's UMEM is registered once when the socket binds, and an
//! application's buffer cannot join it afterwards; so each send copies the bytes once
//! into the frames that go on the wire and each receive copies them once out of the
//! frames they arrived in (counted; `FI_AFXDP_STATS=1` prints the counters at close).
//! Registration therefore saves nothing here, and `mr_mode` is 0.
//!
//! **Binding.** `FI_AFXDP_IFACE` (or the domain name asked for) and `FI_AFXDP_QUEUE`
//! choose the interface queue; see [`core::config`] for the rest. One endpoint per
//! process per queue: an AF_XDP socket owns its queue.

pub mod core;
pub mod entry;
pub mod ffi;
