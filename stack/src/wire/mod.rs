//! Wire formats: smoltcp's packet views for Ethernet, ARP, IPv4/IPv6 and ICMP, plus what a
//! zero-copy TCP needs on top: a payload-free [`TcpHeader`], sequence arithmetic and a
//! checksum summed over fragments.

mod checksum;
mod frame;
mod quote;
mod seq;
mod tcp;

pub use checksum::{finish_partial, Checksum, PartialChecksum};
pub use frame::{
    parse_frame, parse_tcp, pseudo_header, IpInfo, Parsed, Route, HOP_LIMIT, IPV4_HEADER_LEN, IPV6_HEADER_LEN, L3,
};
pub use quote::{quoted_tcp_v4, quoted_tcp_v6, QuotedTcp};
pub use seq::Seq;
pub use tcp::{SackBlocks, TcpFlags, TcpHeader, TcpOptions, TCP_HEADER_LEN, TCP_MAX_HEADER_LEN};

/// Why a received frame was dropped at the wire level. Each maps to a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than an Ethernet header.
    #[error("truncated Ethernet header")]
    Ethernet,
    /// Neither ARP, IPv4 nor IPv6.
    #[error("unsupported ethertype")]
    Ethertype,
    /// A VLAN-tagged frame (802.1Q or 802.1ad): the stack has no VLAN configured.
    #[error("VLAN-tagged frame")]
    Vlan,
    /// Malformed ARP.
    #[error("malformed ARP packet")]
    Arp,
    /// Malformed IPv4 header (length fields, version).
    #[error("malformed IPv4 header")]
    Ipv4,
    /// IPv4 header checksum mismatch.
    #[error("bad IPv4 header checksum")]
    Ipv4Checksum,
    /// An IPv4 fragment (not reassembled).
    #[error("IPv4 fragment")]
    Ipv4Fragment,
    /// An IPv6 fragment (not reassembled).
    #[error("IPv6 fragment")]
    Ipv6Fragment,
    /// Malformed IPv6 header.
    #[error("malformed IPv6 header")]
    Ipv6,
    /// An IPv6 extension header (not supported).
    #[error("IPv6 extension header")]
    Ipv6Extension,
    /// TCP checksum mismatch.
    #[error("bad TCP checksum")]
    TcpChecksum,
    /// TCP data offset below 5 words or beyond the segment, or segment shorter than a header.
    #[error("bad TCP data offset")]
    TcpDataOffset,
    /// Truncated or malformed TCP options.
    #[error("malformed TCP options")]
    TcpOptions,
    /// A zero port.
    #[error("TCP port 0")]
    TcpPort,
    /// An impossible flag combination (SYN with FIN or RST).
    #[error("invalid TCP flags")]
    TcpFlags,
    /// Malformed UDP datagram or bad checksum.
    #[error("malformed UDP datagram")]
    Udp,
    /// Malformed ICMP message or bad checksum.
    #[error("malformed ICMP message")]
    Icmp,
}
