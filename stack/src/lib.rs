//! `stack`: the TCP/IP layer, sans-I/O, over frames of the `umem` pool.
//!
//! ```text
//!   datapath RX ──► Stack::handle_frame(now, BufSlice) ──► ARP / ICMP / NDP: reply rewritten
//!                        │                                  in the same frame, queued for TX
//!                        ├─► TCP engine ──► in-order payload = slices of received frames
//!                        │                  (Stack::read), out-of-order kept by reference
//!                        └─► UDP ─────────► datagrams = slices of received frames
//!
//!   app ── Stack::write_frames(h, &[BufSlice]) ──► send queue of references to file blocks
//!
//!   Stack::dispatch(now, &mut impl Link) ──► Link::transmit(&[header frame, payload, ...])
//!        header frame: Ethernet + IP + TCP built here, checksum summed over all fragments
//!        payload: ranges of file blocks by reference (AF_XDP multi-buffer); copied behind
//!        the header and counted in `payload_bytes_copied` only without multi-buffer
//! ```
//!
//! Wire formats and checksums come from `smoltcp::wire`; smoltcp's own `TcpSocket` copies
//! every payload byte twice, so TCP is an engine of ours ([`tcp`]) whose send queue holds
//! [`umem::BufSlice`]s. A frame's reference is dropped only when the peer has acknowledged
//! every byte of it.
//!
//! Nothing here does I/O or reads a clock: inputs are [`Stack::handle_frame`] and
//! [`Stack::handle_timeout`], output is [`Stack::dispatch`], and [`Stack::poll_at`] says when
//! to call again. A run-to-completion loop looks like:
//!
//! ```ignore
//! loop {
//!     let now = Instant::from_micros(clock_us());
//!     for frame in rx_batch() { stack.handle_frame(now, frame); }
//!     if let Some(c) = stack.accept(listener) { conns.push(c); }
//!     for &c in &conns {
//!         while let Some(bytes) = stack.read(c, usize::MAX)? { /* use, then drop */ }
//!         stack.write_frames(c, &blocks_ready_for(c))?;
//!     }
//!     stack.poll(now, &mut link); // timers + transmit
//!     sleep_or_busy_poll_until(stack.poll_at());
//! }
//! ```
//!
//! [`sim`] ships the test devices: a seeded lossy / reordering / duplicating wire with a
//! virtual clock, a [`Link`] over a pool, and a smoltcp `phy::Device` for a reference peer.
#![forbid(unsafe_code)]

pub mod counters;
pub mod iface;
pub mod sim;
pub mod tcp;
pub mod wheel;
pub mod wire;

pub use counters::Counters;
pub use iface::{
    ConnHandle, Full, Link, ListenHandle, MemoryUse, Readiness, SocketError, Stack, StackConfig, UdpHandle,
};
pub use smoltcp::time::{Duration, Instant};
