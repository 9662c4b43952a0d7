//! The engine's settings.

use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddrV4;
use std::time::Duration;

use crate::reliable::RTO_MAX;

/// The protocol's settings (the I/O shell's are in [`EndpointConfig`](crate::EndpointConfig),
/// which makes these with [`EndpointConfig::engine`](crate::EndpointConfig::engine)).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Our address and UDP port.
    pub local: SocketAddrV4,
    /// Our MAC (the source of every frame we build).
    pub mac: [u8; 6],
    /// Payload bytes per datagram (the MTU less IPv4, UDP and message headers, and at most
    /// a frame less [`HDR_LEN`](crate::wire::HDR_LEN) without multi-buffer); at least
    /// [`MIN_DATAGRAM_PAYLOAD`](crate::wire::MIN_DATAGRAM_PAYLOAD) (MTU 576).
    pub datagram_payload: usize,
    /// Largest message, in bytes.
    pub max_msg: usize,
    /// Acknowledge and retransmit.
    pub reliable: bool,
    /// Reliability window in datagrams per peer: a power of two, at most [`SACK_BITS`](crate::wire::SACK_BITS).
    pub window: u32,
    /// Lower bound of the retransmission timeout.
    pub rto_min: Duration,
    /// Times a reliable datagram is retransmitted before the peer is given up on
    /// ([`Event::PeerLost`](crate::Event::PeerLost)).
    pub max_retries: u32,
    /// Compute UDP checksums (0 on the wire otherwise).
    pub udp_checksum: bool,
    /// Verify received UDP checksums (a read of the payload); failures are dropped and
    /// counted in `bad_checksum`. A datagram sent with checksum 0 carries none.
    pub verify_checksum: bool,
    /// Take messages from senders never added with `add_peer` (learned peers, evicted
    /// when idle to make room).
    pub accept_unknown_peers: bool,
    /// Peers at most.
    pub max_peers: usize,
    /// Unreliable partial messages at most (a reliable peer has at most one).
    pub max_partial: usize,
    /// Time without progress after which an unreliable partial message expires.
    pub partial_timeout: Duration,
    /// Datagrams `send` may queue for transmission (the TX ring's size): beyond it `send`
    /// refuses with `SendError::Full` unless the queue is empty.
    pub tx_queue: usize,
    /// Seed of the initial sequence numbers (random by default: acknowledgements can only
    /// be forged by whoever sees the traffic).
    pub seed: u64,
}

impl EngineConfig {
    /// The defaults of [`EndpointConfig::new`](crate::EndpointConfig::new) for an engine
    /// at `local`, whose frames come from `mac` and carry `datagram_payload` bytes.
    pub fn new(local: SocketAddrV4, mac: [u8; 6], datagram_payload: usize) -> Self {
        crate::EndpointConfig::new("", local).engine(mac, datagram_payload)
    }

    /// How long an acknowledgement that is not urgent may wait (see `RxWindow`): well
    /// below the sender's smallest retransmission timeout.
    pub fn ack_delay(&self) -> Duration {
        ACK_DELAY.min(self.rto_min / 4)
    }

    /// How long a reliable partial message or out-of-order datagram waits without
    /// progress: past it, its sender has given up retransmitting.
    pub fn reliable_timeout(&self) -> Duration {
        RTO_MAX.saturating_mul(self.max_retries.saturating_add(2)).max(self.partial_timeout)
    }
}

/// The longest an acknowledgement waits for more datagrams to cover.
const ACK_DELAY: Duration = Duration::from_micros(50);

/// A random seed from the process's hash keys (which std draws from the OS).
pub fn random_seed() -> u64 {
    RandomState::new().hash_one(std::process::id())
}

pub(super) fn splitmix(z: &mut u64) -> u64 {
    *z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut x = *z;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
