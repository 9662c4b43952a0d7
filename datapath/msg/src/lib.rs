//! `datapath-msg`: messaging for HPC layers, an embeddable, zero-copy message endpoint over
//! AF_XDP.
//!
//! ```text
//!  app ── alloc(len) ─► MsgBuf (pool frames, header room) ── fill in place ── send(peer)
//!                                                                              │ headers written
//!                                                                              ▼ in front, no copy
//!  NIC/veth ◄── TX ring ◄── one descriptor per datagram (several with multi-buffer) ──┘
//!     │                      reliable: the peer's window keeps a reference until acked
//!     └──► XDP steer (UDP to local addr:port) ─► RX ring ─► datagrams ─► [reorder window]
//!                                                  ─► reassembly ─► Msg (the same frames)
//! ```
//!
//! An [`Endpoint`] binds one interface queue and one IPv4 address/UDP port. A message of up
//! to [`EndpointConfig::max_msg`] bytes travels as datagrams of at most
//! [`Endpoint::datagram_payload`] bytes (MTU 1500: 1448 B; MTU 9000 with multi-buffer:
//! 8948 B), each carrying a 24-byte header ([`wire`]). Sending fills frames obtained from
//! the pool; receiving hands out the frames the kernel wrote, as slices ([`Msg::chunks`],
//! [`Msg::slices`]). Dropping a [`Msg`] returns its frames; [`Endpoint::reply_buf`] turns it
//! into a reply in the same frames. The one copy on offer, [`Endpoint::copy_to_vec`], is
//! explicit and counted.
//!
//! **Sans-I/O core, thin I/O shell.** The protocol (peers, reliability, reassembly,
//! timers) is an [`Engine`]: a state machine with no socket and no clock, fed with
//! `handle_datagram(now, buffers)`, `handle_timeout(now)` and `send(now, peer, msg)`, and
//! drained with `poll_transmit`, `poll_recv` and `poll_timeout`, as quinn-proto is. The
//! [`Endpoint`] is the shell that drives one engine over one AF_XDP socket (as quinn drives
//! quinn-proto over quinn-udp): it reads the clock once per turn, hands the engine what
//! the RX ring brought and puts what the engine emits on the TX ring. [`sim`] joins two
//! engines over a lossy, reordering link on a virtual clock for tests without root.
//!
//! **One endpoint per queue and thread.** A NIC spreads flows over its RX queues and an
//! AF_XDP socket sees only its own queue, so an HPC layer runs one endpoint per queue, each
//! on its own thread with its own pool (as it runs one per rank or thread). Endpoints of
//! one process on one interface share its steering program (the first `bind` attaches it,
//! the last one to go detaches it); each steers its own address and port, and receives
//! what arrives on its queue: route each flow to its queue with RSS or an `ethtool -N`
//! rule (`flow-type udp4 dst-port P action Q`). On veth the queue is the sender's: what an
//! endpoint on queue `q` sends arrives on the peer's queue `q`. A datagram for another
//! endpoint that lands on this queue is counted as `not_ours`. `msgrate --queues N` runs N
//! pairs this way.
//!
//! **Polling.** [`Endpoint::recv`] never waits. [`Endpoint::recv_wait`] waits as
//! [`PollMode`] says: `Busy` spins (one core), `Adaptive` spins then sleeps in `poll(2)`,
//! `Blocking` sleeps at once. There are no threads: the caller's loop drives everything,
//! and an endpoint (like its pool) stays on one thread.
//!
//! **Peers** are IPv4 address/port pairs. [`Endpoint::add_peer`] resolves the MAC once,
//! from the kernel's neighbour table (the steering program passes ARP to the kernel),
//! prodding the kernel to resolve it when absent ([`neigh`]); it fails clearly for an
//! unreachable or silent peer. Datagrams from senders never added are dropped and counted
//! unless [`EndpointConfig::accept_unknown_peers`] is on (a server answering whoever asks):
//! then a sender is learned from its first datagram (its frame's source MAC). The table
//! holds at most [`EndpointConfig::max_peers`]; when it is full, an idle learned peer is
//! evicted (CLOCK: one not heard from since the last sweep, with nothing unacknowledged or
//! held), counted and reported ([`Event::PeerEvicted`]); peers the application added are
//! never evicted. A [`PeerId`] carries its slot's generation, so the id of a peer that
//! left names nothing. Nothing on the fast path asks the kernel.
//!
//! **Reliability** ([`EndpointConfig::reliable`]) is selective acknowledgement and
//! retransmission over UDP, as eRPC does ([`reliable`]): per-peer datagram sequence
//! numbers, acknowledgements (cumulative + 1024-bit SACK bitmap) at once for a hole, a
//! duplicate, a completed message or every 32 datagrams and otherwise delayed at most
//! 50 us, retransmission on timeout (RTT-estimated, backed off, restarted by every
//! acknowledgement of new data) or after three datagrams transmitted later were
//! acknowledged, a window that bounds datagrams in flight, and in-order delivery per
//! peer. Unacknowledged datagrams are held as references to their frames and released on
//! acknowledgement: a retransmission re-posts the same descriptors, it copies nothing.
//! Sequence numbers start at a random number per peer, which every data datagram carries
//! (`base`), so an acknowledgement is taken only if it names datagrams actually sent and
//! outstanding; others are refused whole and counted (`bad_acks`). A datagram
//! retransmitted [`EndpointConfig::max_retries`] times without an acknowledgement ends
//! the peer: its unacknowledged frames go back to the pool and [`Endpoint::poll_event`]
//! reports [`Event::PeerLost`]. Only a reliable endpoint keeps reliable state: reliable
//! datagrams at an unreliable endpoint (and the other way round) make no state and are
//! counted (`mode_mismatch`). Why not carry messages over the zero-copy TCP engine: messages keep their boundaries
//! without framing a byte stream, a lost datagram holds up only delivery to that peer (not
//! the sender's other peers), the receiver gets the frames the datagrams arrived in, there
//! is no handshake before the first message, and the latency path (one datagram each way
//! for a small message) is the same as unreliable mode plus one acknowledgement.
//!
//! **Back-pressure, never silent loss.** `alloc` refuses a message over the maximum
//! ([`AllocError::TooLarge`]) and says when the pool is short ([`AllocError::PoolEmpty`]);
//! `send` gives the message back when the TX ring or the peer's window cannot take all of
//! it ([`SendError::Full`]) or the peer is unknown ([`SendError::UnknownPeer`]). Whatever
//! the endpoint drops on receive (malformed, bad checksum, unknown peer, the other mode,
//! partial messages that expire) is counted in [`MsgStats`].
//!
//! **Bounds.** Everything a peer can make the endpoint hold is bounded, timed out and
//! counted: peers ([`EndpointConfig::max_peers`], eviction), partial messages
//! ([`EndpointConfig::max_partial`] unreliable ones, one per reliable peer; each expires
//! after [`EndpointConfig::partial_timeout`] without progress, a reliable one once its
//! sender would have given up), the vector a partial message needs (its datagram count may
//! not exceed what its length needs at the smallest datagram a sender can use, so a forged
//! count cannot size it), out-of-order datagrams (the window; released when their sender
//! stays silent as long), unacknowledged datagrams (the window and the retry limit), and
//! events ([`engine::MAX_EVENTS`]).
//!
//! **Checksums.** UDP checksums are computed in software (a read of the payload; there is
//! no TX checksum offload through xdpilone); [`EndpointConfig::udp_checksum`] off sends 0.
//! Received checksums are verified over every buffer of the datagram (a read), failures
//! dropped and counted (`bad_checksum`); a datagram sent with checksum 0 carries none.
//! One case needs care: a *kernel* UDP sender on the same host through veth leaves its
//! checksum to the device (`CHECKSUM_PARTIAL`), and AF_XDP hands the frame over with the
//! checksum unfinished, so it fails verification. Turn that veth's TX checksum offload off
//! (`ethtool -K IF tx off`, as the namespace tests do) or set
//! [`EndpointConfig::verify_checksum`] off. Frames from a physical NIC or from another
//! endpoint carry full checksums.
//!
//! **Where this crate sits.** It is a protocol over the datapath, as `stack` is, so it is a
//! crate of its own (`datapath/msg`) depending on `datapath` (sockets, rings, the steering
//! program), `stack` (the wire layer: smoltcp's views, the IPv4 header writer and the one
//! Internet checksum) and `umem` (frames), rather than a module of `datapath`: `datapath`
//! stays the kernel-bypass layer that parses no protocol and depends on neither, and
//! `stack` never imports `datapath`. Until this split the endpoint was `datapath::msg`;
//! the same items are now at `datapath_msg::` (a re-export from `datapath` would be a
//! dependency cycle).
//!
//! ```text
//!   examples (pingpong, msgrate, udp-echo), HPC layers
//!        │
//!   datapath-msg ──► stack (wire) ──► umem
//!        └─────────► datapath ──────► umem
//! ```
//!
//! Limits: IPv4 only; no session handshake: a reliable receiver starts a peer's sequence
//! where the first datagram it sees says (`base`), so a restarted or re-added peer is
//! only resynchronised if the other side has forgotten it too (evicted, lost, or a fresh
//! endpoint); both ends must use the same window and mode. Header version 2 (with
//! `base`) does not interoperate with version 1.
//!
//! ```no_run
//! use std::time::Duration;
//! use datapath_msg::{Endpoint, EndpointConfig, PollMode};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut cfg = EndpointConfig::new("veth0", "10.77.0.2:7001".parse()?);
//! cfg.reliable = true;
//! cfg.poll = PollMode::Adaptive { spin: Duration::from_micros(50) };
//! let mut ep = Endpoint::bind(&cfg)?;
//! let server = ep.add_peer("10.77.0.1:7000".parse()?)?; // ARP once, here
//!
//! let mut m = ep.alloc(5)?; // frames of the pool, header room reserved
//! m.write_at(0, b"hello"); // or fill `m.chunks_mut()` in place
//! ep.send(server, m).map_err(|e| e.to_string())?; // full ring or window: the message comes back
//! ep.flush();
//!
//! let mut got = Vec::new();
//! ep.recv_wait(&mut got, Duration::from_secs(1));
//! for msg in got.drain(..) {
//!     let bytes: usize = msg.chunks().map(<[u8]>::len).sum(); // no copy
//!     println!("{} bytes from {:?}", bytes, ep.peer_addr(msg.peer()));
//!     // dropping `msg` gives its frames back to the pool
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

use std::net::SocketAddrV4;

mod buf;
mod endpoint;
pub mod engine;
mod error;
pub mod neigh;
pub mod pattern;
mod peers;
mod reasm;
pub mod reliable;
pub mod sim;
mod steering;
pub mod wire;

pub use buf::{Msg, MsgBuf};
/// `SO_BUSY_POLL` on a kernel socket (the baselines' busy-poll mode); it lives in
/// `datapath` with the other socket options.
pub use datapath::set_busy_poll;
pub use endpoint::{Endpoint, EndpointConfig, PollMode};
pub use engine::{Engine, EngineConfig};
pub use error::{AllocError, MsgError, SendError};
pub use pattern::{Mismatch, Pattern};

/// A peer of an endpoint: a slot of its table and the slot's generation, so the id of a
/// peer that left (evicted, lost) names nothing rather than the slot's next tenant.
/// Meaningless to other endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerId {
    pub(crate) slot: u32,
    pub(crate) gen: u32,
}

impl PeerId {
    /// The id as one number (e.g. a libfabric `fi_addr_t`); [`PeerId::from_u64`] turns it
    /// back. Any number is safe to turn back: one that names no peer is refused where used.
    pub fn as_u64(self) -> u64 {
        u64::from(self.gen) << 32 | u64::from(self.slot)
    }

    /// The id that [`PeerId::as_u64`] gave `v` for.
    pub fn from_u64(v: u64) -> PeerId {
        PeerId { slot: v as u32, gen: (v >> 32) as u32 }
    }
}

/// Something the application should know about, from `Endpoint::poll_event` (or
/// `Engine::poll_event`). At most [`engine::MAX_EVENTS`] wait; older ones are dropped and
/// counted in `MsgStats::events_dropped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A reliable datagram to `peer` went unacknowledged through
    /// `EndpointConfig::max_retries` retransmissions: the endpoint gave up. The `unacked`
    /// datagrams still outstanding were dropped (their frames went back to the pool), so
    /// messages sent to it may not have arrived, and the peer left the table: its id now
    /// names nothing (`send` says `SendError::UnknownPeer`). Add it again to start afresh.
    PeerLost {
        /// The peer (its id is stale now).
        peer: PeerId,
        /// Its address.
        addr: SocketAddrV4,
        /// Datagrams it never acknowledged.
        unacked: u32,
    },
    /// A peer learned from its datagrams was evicted from the full table, idle, to make
    /// room for another (counted in `MsgStats::peers_evicted`).
    PeerEvicted {
        /// The peer (its id is stale now).
        peer: PeerId,
        /// Its address.
        addr: SocketAddrV4,
    },
}

/// What an endpoint did, counted. Hot-path outcomes are counts, not errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsgStats {
    /// Messages sent.
    pub msgs_sent: u64,
    /// Messages received (complete, delivered).
    pub msgs_recv: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_recv: u64,
    /// Data datagrams sent (first transmissions).
    pub dgrams_sent: u64,
    /// Datagrams received for this endpoint (data and acknowledgements).
    pub dgrams_recv: u64,
    /// Datagrams sent again (timeouts and fast retransmits).
    pub retransmits: u64,
    /// Retransmissions triggered by selective acknowledgements.
    pub fast_retransmits: u64,
    /// Retransmission timers that expired.
    pub timeouts: u64,
    /// Acknowledgements sent.
    pub acks_sent: u64,
    /// Acknowledgements received.
    pub acks_recv: u64,
    /// Acknowledgements postponed (no frame or no TX room; sent on the next poll).
    pub acks_deferred: u64,
    /// Datagrams received twice (dropped; acknowledged again).
    pub dup_dgrams: u64,
    /// Reliable datagrams beyond the window (dropped; the sender retransmits).
    pub out_of_window: u64,
    /// `send` calls refused for a full TX ring or window (the message went back).
    pub send_full: u64,
    /// Padding datagrams received (ignored; older senders used them).
    pub pads_recv: u64,
    /// `alloc` calls refused for want of free frames.
    pub alloc_empty: u64,
    /// `send` calls naming no peer.
    pub unknown_peer_sends: u64,
    /// Datagrams from senders not in the table, dropped (table full or learning off).
    pub unknown_peer_drops: u64,
    /// Frames steered to us that were not UDP/IPv4 to our address and port.
    pub not_ours: u64,
    /// IP fragments (dropped: we never send them).
    pub ip_fragments: u64,
    /// ICMP messages steered to us: errors quoting our flow, such as port unreachable
    /// from a peer whose endpoint is gone (dropped).
    pub icmp: u64,
    /// Datagrams with a bad or inconsistent message header.
    pub bad_header: u64,
    /// Unreliable partial messages that expired (a datagram was lost).
    pub reasm_expired: u64,
    /// Partial messages evicted from a full reassembly table, or of inconsistent length.
    pub reasm_evicted: u64,
    /// Bytes copied by [`Endpoint::copy_to_vec`].
    pub copied_bytes: u64,
    /// Datagrams whose UDP checksum was wrong (dropped).
    pub bad_checksum: u64,
    /// Acknowledgements naming datagrams never sent (refused whole: spoofed or broken).
    pub bad_acks: u64,
    /// Datagrams of the other mode (reliable data or acknowledgements at an unreliable
    /// endpoint, unreliable data at a reliable one): dropped, no state made for them.
    pub mode_mismatch: u64,
    /// Learned peers evicted from a full table.
    pub peers_evicted: u64,
    /// Peers given up on after the retry limit.
    pub peers_lost: u64,
    /// Out-of-order datagrams held for a peer that went silent past the reliable timeout.
    pub held_expired: u64,
    /// Events dropped because the application did not take them.
    pub events_dropped: u64,
}
