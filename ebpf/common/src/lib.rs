//! Shared by the steering XDP program (`steer-ebpf`) and its loader (`datapath`): map names,
//! the flow key, and the counter indices. `#[repr(C)]` and no padding, so both sides agree
//! on every byte.
#![no_std]

pub mod parse;

/// The `XSKMAP`: rx queue index -> AF_XDP socket.
pub const MAP_XSKS: &str = "XSKS";
/// The steering table: [`FlowKey`] -> [`FlowAction`].
pub const MAP_FLOWS: &str = "FLOWS";
/// Per-CPU counters, indexed by [`Counter`].
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Fragment keys of steered first fragments (an LRU map), so later fragments follow.
pub const MAP_FRAGS: &str = "FRAGS";
/// Entries in the fragment map (packets in reassembly at once).
pub const MAX_FRAGS: u32 = 4096;
/// The program's name in the object file.
pub const PROGRAM: &str = "steer";

/// Entries in the XSKMAP: the highest rx queue index that can be served, plus one.
pub const MAX_QUEUES: u32 = 64;
/// Entries in the steering table.
pub const MAX_FLOWS: u32 = 1024;

/// IP protocol numbers the program steers.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol numbers the program steers.
pub const IPPROTO_UDP: u8 = 17;

/// A destination the program redirects to AF_XDP: address, port and protocol.
///
/// IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`). An all-zero `addr` matches
/// every destination address (of either family) for that port and protocol.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// Destination address, IPv6 or IPv4-mapped, in network order.
    pub addr: [u8; 16],
    /// Destination port, in network order.
    pub port: [u8; 2],
    /// [`IPPROTO_TCP`] or [`IPPROTO_UDP`].
    pub proto: u8,
    /// Always zero (keeps the key free of padding).
    pub pad: u8,
}

impl FlowKey {
    /// The key for an IPv4 destination.
    pub const fn v4(addr: [u8; 4], port: u16, proto: u8) -> Self {
        let [a, b, c, d] = addr;
        FlowKey {
            addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d],
            port: port.to_be_bytes(),
            proto,
            pad: 0,
        }
    }

    /// The key for an IPv6 destination.
    pub const fn v6(addr: [u8; 16], port: u16, proto: u8) -> Self {
        FlowKey { addr, port: port.to_be_bytes(), proto, pad: 0 }
    }

    /// The same key with the address wildcarded.
    pub const fn any_addr(self) -> Self {
        FlowKey { addr: [0; 16], ..self }
    }
}

/// What all fragments of one IP packet share: addresses (IPv4-mapped for IPv4), the
/// identification (16 bits for IPv4 in the low half, 32 for IPv6) and the protocol.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FragKey {
    /// Source address, network order.
    pub src: [u8; 16],
    /// Destination address, network order.
    pub dst: [u8; 16],
    /// Identification, network order.
    pub id: [u8; 4],
    /// [`IPPROTO_TCP`] or [`IPPROTO_UDP`].
    pub proto: u8,
    /// Always zero (keeps the key free of padding).
    pub pad: [u8; 3],
}

impl FragKey {
    /// The key of an IPv4 fragment.
    pub const fn v4(src: [u8; 4], dst: [u8; 4], id: [u8; 4], proto: u8) -> Self {
        let [a, b, c, d] = src;
        let [e, f, g, h] = dst;
        FragKey {
            src: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d],
            dst: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, e, f, g, h],
            id,
            proto,
            pad: [0; 3],
        }
    }

    /// The key of an IPv6 fragment.
    pub const fn v6(src: [u8; 16], dst: [u8; 16], id: [u8; 4], proto: u8) -> Self {
        FragKey { src, dst, id, proto, pad: [0; 3] }
    }
}

/// What to do with a matching packet. One action today; the value is a struct so the map
/// format can grow without changing its key.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowAction {
    /// Reserved, zero.
    pub flags: u32,
}

/// Indices into the per-CPU counter array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Every packet the program ran on.
    Seen = 0,
    /// Packets redirected into an AF_XDP socket.
    Redirected = 1,
    /// Packets left to the kernel (not ours: ARP, ICMP, other ports, fragments).
    Passed = 2,
    /// Packets whose headers were truncated or inconsistent (left to the kernel to drop).
    Malformed = 3,
    /// Packets of a steered flow that arrived on an rx queue with no socket: dropped, not
    /// passed, since the kernel has no socket for the flow and would answer with a RST.
    NoSocket = 4,
    /// IP fragments of steered flows redirected (first and later fragments).
    Fragments = 5,
    /// ICMP / ICMPv6 errors quoting a steered flow's packet, redirected (path MTU).
    IcmpErrors = 6,
    /// Packets redirected that carried one or two VLAN tags.
    Vlan = 7,
}

/// Number of [`Counter`] entries.
pub const COUNTERS: u32 = 8;

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; COUNTERS as usize] = [
        Counter::Seen,
        Counter::Redirected,
        Counter::Passed,
        Counter::Malformed,
        Counter::NoSocket,
        Counter::Fragments,
        Counter::IcmpErrors,
        Counter::Vlan,
    ];

    /// A short name for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Seen => "seen",
            Counter::Redirected => "redirected",
            Counter::Passed => "passed",
            Counter::Malformed => "malformed",
            Counter::NoSocket => "no_socket",
            Counter::Fragments => "fragments",
            Counter::IcmpErrors => "icmp_errors",
            Counter::Vlan => "vlan",
        }
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: FlowKey is repr(C), Copy, has no padding (16 + 2 + 1 + 1 bytes, align 1), and
    // every bit pattern is a valid value.
    unsafe impl aya::Pod for super::FlowKey {}
    // SAFETY: FlowAction is repr(C), Copy, one u32: no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::FlowAction {}
    // SAFETY: FragKey is repr(C), Copy, has no padding (16 + 16 + 4 + 1 + 3 bytes, align 1),
    // and every bit pattern is a valid value.
    unsafe impl aya::Pod for super::FragKey {}
}

const _: () = assert!(size_of::<FlowKey>() == 20);
const _: () = assert!(size_of::<FlowAction>() == 4);
const _: () = assert!(size_of::<FragKey>() == 40);
