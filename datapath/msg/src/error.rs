//! Errors of the message endpoint. Setting up ([`MsgError`]) names the failing step and
//! what to do; the hot path ([`SendError`], [`AllocError`]) hands the message back and
//! allocates nothing.

use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::MsgBuf;

/// What can go wrong setting up an endpoint or adding a peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MsgError {
    /// The AF_XDP socket or the XDP program.
    #[error(transparent)]
    Datapath(#[from] datapath::Error),

    /// The pool.
    #[error("creating the endpoint's frame pool: {0}")]
    Pool(#[from] umem::Error),

    /// A configuration value is out of range.
    #[error("endpoint configuration: {0}")]
    Config(String),

    /// Reading a kernel table failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },

    /// A kernel table had an unexpected format.
    #[error("{path} does not hold {what}")]
    Parse {
        /// The file.
        path: String,
        /// What was expected.
        what: &'static str,
    },

    /// No route through the endpoint's interface reaches the peer.
    #[error("peer {peer} is not reachable through {iface} (no route in `ip route show dev {iface}`); add a route or an address in its subnet to {iface}, or bind the endpoint to the interface that reaches it")]
    NoRoute {
        /// The peer.
        peer: Ipv4Addr,
        /// The endpoint's interface.
        iface: String,
    },

    /// The kernel could not resolve the peer's (or its gateway's) MAC address.
    #[error("peer {peer}: no ARP answer from {hop} on {iface} within {waited:?}; is the peer up and its address right? (`ip neigh show dev {iface}`, `ping -I {iface} {hop}`)")]
    Unresolved {
        /// The peer.
        peer: Ipv4Addr,
        /// The next hop that was asked for (the peer or its gateway).
        hop: Ipv4Addr,
        /// The endpoint's interface.
        iface: String,
        /// How long it waited.
        waited: Duration,
    },

    /// The peer table is full.
    #[error("the endpoint already has {max} peers (EndpointConfig::max_peers)")]
    TooManyPeers {
        /// The limit.
        max: usize,
    },

    /// Another endpoint of this process already has the address.
    #[error(
        "{local} on {iface} is already bound by another endpoint of this process; give each endpoint its own port"
    )]
    AddrInUse {
        /// The address.
        local: std::net::SocketAddrV4,
        /// The interface.
        iface: String,
    },

    /// A system call of the setup failed.
    #[error("{call} failed: {source}")]
    Syscall {
        /// The call.
        call: &'static str,
        /// The error.
        source: io::Error,
    },
}

/// Why `Endpoint::alloc` gave no buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The message is larger than the endpoint's maximum (bad input, not back-pressure).
    #[error(
        "a message of {len} bytes is larger than this endpoint's maximum of {max} (EndpointConfig::max_msg, --max-msg)"
    )]
    TooLarge {
        /// Bytes asked for.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Not enough free frames now: messages in flight, received messages not yet dropped,
    /// or a pool too small (back-pressure: poll and retry, or give the pool more frames).
    #[error("the pool has fewer than the {need} free frames this message needs; poll (completions, acknowledgements) and retry, drop received messages, or give the pool more frames")]
    PoolEmpty {
        /// Frames the message needs.
        need: usize,
    },
}

/// Why `Endpoint::send` did not take a message. The message comes back: nothing is
/// dropped that the caller cannot see.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The TX ring, or the peer's reliability window, has no room for the whole message
    /// now. Back-pressure: `poll` (or `recv`) and send it again.
    #[error("TX ring or reliability window full; poll and retry")]
    Full(MsgBuf),
    /// The peer id names no peer of this endpoint.
    #[error("unknown peer: add it with Endpoint::add_peer first")]
    UnknownPeer(MsgBuf),
}

impl SendError {
    /// The message that was not sent.
    pub fn into_inner(self) -> MsgBuf {
        match self {
            SendError::Full(m) | SendError::UnknownPeer(m) => m,
        }
    }
}
