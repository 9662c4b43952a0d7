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
//!        (or, where the link finishes it, the pseudo-header sum: Link::transmit_partial)
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
//! to call again. None of them walks the connection table: timers sit in a wheel
//! ([`wheel`]), output in a ready list, and [`Stack::next_changed`] tells the application
//! which connections changed, so a turn costs what happened, not what is open. Closed
//! connections wait out TIME-WAIT as compact entries. A run-to-completion loop, here two
//! hosts over [`sim`] links on a virtual clock:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use smoltcp::wire::{EthernetAddress, IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};
//! use stack::sim::SimLink;
//! use stack::{Duration, Instant, Stack, StackConfig};
//! use umem::{BufSlice, HugePages, Pool, PoolConfig};
//!
//! // A host: a stack, and a link whose frames come from a pool of its own.
//! let host = |n: u8| -> Result<(Stack, SimLink), umem::Error> {
//!     let mut cfg = StackConfig::new(EthernetAddress([2, 0, 0, 0, 0, n]));
//!     cfg.ipv4 = Some(Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, n), 24));
//!     let pool = Pool::new(&PoolConfig {
//!         frame_size: 2048,
//!         frames: 256,
//!         hugepages: HugePages::Off,
//!         lock: false,
//!         ..PoolConfig::default()
//!     })?;
//!     Ok((Stack::new(cfg), SimLink::new(pool, true)))
//! };
//! let (mut server, mut slink) = host(1)?;
//! let (mut client, mut clink) = host(2)?;
//! let listener = server.listen(80)?;
//! let mut now = Instant::ZERO;
//! let to = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1)), 80);
//! let conn = client.connect(now, to)?;
//! let mut reply = Vec::new();
//! while !client.readiness(conn).read_closed {
//!     // The wire: what one side sent lands in a frame of the other's pool (the NIC's DMA).
//!     for f in std::mem::take(&mut clink.tx) {
//!         server.handle_frame(now, slink.rx_frame(&f).expect("a free frame"));
//!     }
//!     for f in std::mem::take(&mut slink.tx) {
//!         client.handle_frame(now, clink.rx_frame(&f).expect("a free frame"));
//!     }
//!     // The server answers each connection with a block of its pool, by reference.
//!     while let Some(h) = server.accept(listener) {
//!         let mut block = slink.pool.alloc_frame().expect("a free frame");
//!         block.get_mut().expect("not shared")[..5].copy_from_slice(b"hello");
//!         server.write_frames(h, &[BufSlice::new(block, 0..5).expect("in range")])?;
//!         server.close(h)?;
//!     }
//!     // The client reads what changed.
//!     while let Some(h) = client.next_changed() {
//!         while let Some(bytes) = client.read(h, usize::MAX)? {
//!             reply.extend_from_slice(bytes.as_bytes());
//!         }
//!     }
//!     // Timers and output; then sleep until a frame arrives or a stack has work (here:
//!     // move the virtual clock; frames take 10 µs on the wire).
//!     server.poll(now, &mut slink);
//!     client.poll(now, &mut clink);
//!     let step = now + Duration::from_micros(10);
//!     now = match [server.poll_at(), client.poll_at()].into_iter().flatten().min() {
//!         Some(t) if clink.tx.is_empty() && slink.tx.is_empty() => t.max(step),
//!         _ => step,
//!     };
//!     assert!(now < Instant::from_secs(5), "stalled");
//! }
//! assert_eq!(reply, b"hello");
//! client.close(conn)?;
//! # Ok(())
//! # }
//! ```
//!
//! What the stack does not do, on purpose: IP reassembly (TCP leaves with DF set and an
//! MSS that fits the path, so a fragment of one of our flows is an attack or a broken
//! path; fragments are dropped and counted in `rx_ipv4_fragments` / `rx_ipv6_fragments`),
//! VLANs (tagged frames are counted in `rx_vlan`) and IPv6 extension headers. Path MTU
//! comes from ICMP "fragmentation needed" / "packet too big" about segments in flight
//! ([`tcp::pmtu`]).
//!
//! [`sim`] ships the test devices: a seeded lossy / reordering / duplicating wire with a
//! virtual clock, a [`Link`] over a pool, and a smoltcp `phy::Device` for a reference peer.
#![forbid(unsafe_code)]

pub mod counters;
pub mod iface;
pub mod keyed;
pub mod sim;
pub mod tcp;
pub mod wheel;
pub mod wire;

pub use counters::Counters;
pub use iface::{
    Census, ConnHandle, Full, Link, ListenHandle, MemoryUse, PoolPressure, Pressure, Readiness, SocketError, Stack,
    StackConfig, TxOffload, UdpHandle,
};
pub use smoltcp::time::{Duration, Instant};
pub use wire::PartialChecksum;
