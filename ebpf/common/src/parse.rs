//! The steering program's packet classification, as a `no_std` function over any
//! bounds-checked byte source: the XDP program runs it over the packet (`XdpContext`), and
//! the fuzz target runs the very same code over a byte slice and checks it against
//! smoltcp's parse of those bytes.
//!
//! ```text
//!  Ethernet ─► up to 2 VLAN tags (802.1ad / 802.1Q) ─► IPv4 | IPv6 (+ up to 4 extension headers)
//!     ├─ TCP/UDP, whole ──────────────────────► Transport: flow = (dst addr, dst port, proto)
//!     ├─ ICMP error quoting TCP/UDP we sent ──► IcmpError: flow = (quoted src addr, src port)
//!     ├─ first fragment (it has the ports) ───► FirstFragment: flow, and frag = fragment key
//!     ├─ later fragment (no ports) ───────────► Fragment: frag only
//!     └─ anything else ───────────────────────► Pass (ARP, echo, other protocols) / Malformed
//! ```
//!
//! Fragments and ICMP errors of a steered flow must reach the user-space stack: left to
//! the kernel, which has no socket for the flow, a reassembled fragment draws a RST and a
//! "fragmentation needed" never lowers the path MTU. Later fragments carry no ports, so the
//! program remembers the fragment key (addresses, IP ID, protocol) of each first fragment
//! it steered and steers later fragments whose key it remembers; fragments of every other
//! flow stay with the kernel.
//!
//! The result is written into one caller-owned [`Classified`] (an out-parameter, not a
//! returned enum): the eBPF stack is 512 bytes, and one record filled in place keeps the
//! program's frame small whatever path the parse takes.

use crate::{FlowKey, FragKey, IPPROTO_TCP, IPPROTO_UDP};

/// Bounds-checked reads of packet bytes. Every access the classifier makes goes through
/// [`Bytes::load`], so in the XDP program the verifier sees one bound check per read.
pub trait Bytes {
    /// The `N` bytes at `offset`, or `None` if the packet is shorter.
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]>;
}

impl Bytes for [u8] {
    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let end = offset.checked_add(N)?;
        let src = self.get(offset..end)?;
        let mut out = [0u8; N];
        out.copy_from_slice(src);
        Some(out)
    }
}

/// What kind of packet it is, for the steering decision.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kind {
    /// Well-formed and not for the steering table: the kernel's.
    #[default]
    Pass,
    /// Headers shorter than they claim or inconsistent: the kernel's, counted.
    Malformed,
    /// A whole TCP or UDP packet: steer if `flow` is in the table.
    Transport,
    /// An ICMP or ICMPv6 error quoting a packet from `flow`: steer if `flow` is in the table.
    IcmpError,
    /// The first fragment of a TCP or UDP packet: steer if `flow` is in the table, and then
    /// remember `frag` so the later fragments follow.
    FirstFragment,
    /// A later fragment: steer if `frag` was remembered.
    Fragment,
}

/// The classification of a packet; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Classified {
    /// The verdict.
    pub kind: Kind,
    /// VLAN tags crossed (0, 1 or 2).
    pub vlan_tags: u8,
    /// The steering-table key, for `Transport`, `IcmpError` and `FirstFragment`.
    pub flow: FlowKey,
    /// The fragment key, for `FirstFragment` and `Fragment`.
    pub frag: FragKey,
}

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPV6_HLEN: usize = 40;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_FRAGMENT: u8 = 44;
const NEXTHDR_DEST: u8 = 60;
/// Extension headers followed before giving up (and passing).
pub const MAX_EXT_HEADERS: usize = 4;

#[inline(always)]
fn be16<B: Bytes + ?Sized>(b: &B, off: usize) -> Option<u16> {
    b.load::<2>(off).map(u16::from_be_bytes)
}

/// The byte at `off`, read as the first of two: every field read this way is followed by
/// at least one more header byte, and no 1-byte bound check reaches the XDP program, where
/// LLVM turns `p + 1 > end` into `p >= end`, a form the verifier draws no range from.
#[inline(always)]
fn byte<B: Bytes + ?Sized>(b: &B, off: usize) -> Option<u8> {
    b.load::<2>(off).map(|[v, _]| v)
}

/// Classifies an Ethernet frame; see the module docs.
pub fn classify<B: Bytes + ?Sized>(pkt: &B) -> Classified {
    let mut out = Classified::default();
    classify_into(pkt, &mut out);
    out
}

/// Classifies an Ethernet frame into `out` (which should start as `Default`).
#[inline(always)]
pub fn classify_into<B: Bytes + ?Sized>(pkt: &B, out: &mut Classified) {
    out.kind = match ethernet(pkt, out) {
        Some(kind) => kind,
        None => Kind::Malformed,
    };
}

#[inline(always)]
fn ethernet<B: Bytes + ?Sized>(pkt: &B, out: &mut Classified) -> Option<Kind> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = be16(pkt, 12)?;
    // Two tags at most (802.1ad outer, 802.1Q inner); unrolled for the verifier.
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = be16(pkt, l3 + 2)?;
        l3 += 4;
        out.vlan_tags += 1;
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            ethertype = be16(pkt, l3 + 2)?;
            l3 += 4;
            out.vlan_tags += 1;
        }
    }
    match ethertype {
        ETH_P_IP => ipv4(pkt, l3, out),
        ETH_P_IPV6 => ipv6(pkt, l3, out),
        _ => Some(Kind::Pass),
    }
}

/// Writes an IPv4 address, IPv4-mapped, into a 16-byte key field.
#[inline(always)]
fn mapped(dst: &mut [u8; 16], a: [u8; 4]) {
    *dst = [0; 16];
    dst[10] = 0xff;
    dst[11] = 0xff;
    dst[12..].copy_from_slice(&a);
}

/// The fixed fields of an IPv4 header at `l3`, or `None` inside if it is not one.
#[derive(Clone, Copy)]
struct V4 {
    ihl: usize,
    proto: u8,
    /// The fragment word (flags and offset).
    fo: u16,
}

impl V4 {
    /// More-fragments flag or a fragment offset.
    fn is_fragment(self) -> bool {
        self.fo & 0x3fff != 0
    }
    /// A fragment offset: not the first fragment.
    fn is_later(self) -> bool {
        self.fo & 0x1fff != 0
    }
}

#[inline(always)]
fn ipv4_header<B: Bytes + ?Sized>(pkt: &B, l3: usize) -> Option<Option<V4>> {
    let vihl = byte(pkt, l3)?;
    let ihl = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || ihl < 20 {
        return Some(None);
    }
    if usize::from(be16(pkt, l3 + 2)?) < ihl {
        return Some(None);
    }
    let fo = be16(pkt, l3 + 6)?;
    let proto = byte(pkt, l3 + 9)?;
    // The whole header must be present, options included.
    pkt.load::<2>(l3 + ihl - 2)?;
    Some(Some(V4 { ihl, proto, fo }))
}

#[inline(always)]
fn ipv4<B: Bytes + ?Sized>(pkt: &B, l3: usize, out: &mut Classified) -> Option<Kind> {
    let Some(h) = ipv4_header(pkt, l3)? else { return Some(Kind::Malformed) };
    let l4 = l3 + h.ihl;
    match h.proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            let dst = pkt.load::<4>(l3 + 16)?;
            if h.is_fragment() {
                let f = &mut out.frag;
                mapped(&mut f.src, pkt.load::<4>(l3 + 12)?);
                mapped(&mut f.dst, dst);
                let [a, b] = pkt.load::<2>(l3 + 4)?;
                f.id = [0, 0, a, b];
                f.proto = h.proto;
                if h.is_later() {
                    return Some(Kind::Fragment);
                }
            }
            mapped(&mut out.flow.addr, dst);
            out.flow.port = pkt.load::<2>(l4 + 2)?;
            out.flow.proto = h.proto;
            Some(if h.is_fragment() { Kind::FirstFragment } else { Kind::Transport })
        }
        IPPROTO_ICMP if !h.is_fragment() => {
            // Destination unreachable (fragmentation needed among its codes), source quench,
            // time exceeded, parameter problem: the errors that quote our packet.
            if !matches!(byte(pkt, l4)?, 3 | 4 | 11 | 12) {
                return Some(Kind::Pass);
            }
            // A quote too short to name the flow is the kernel's, not malformed.
            Some(quoted_v4(pkt, l4 + 8, out).unwrap_or(Kind::Pass))
        }
        _ => Some(Kind::Pass),
    }
}

/// The packet an ICMP error quotes, at `inner`: ours if it is TCP or UDP (not a later
/// fragment), keyed by its source.
#[inline(always)]
fn quoted_v4<B: Bytes + ?Sized>(pkt: &B, inner: usize, out: &mut Classified) -> Option<Kind> {
    let Some(q) = ipv4_header(pkt, inner)? else { return Some(Kind::Pass) };
    if q.proto != IPPROTO_TCP && q.proto != IPPROTO_UDP || q.is_later() {
        return Some(Kind::Pass);
    }
    mapped(&mut out.flow.addr, pkt.load::<4>(inner + 12)?);
    out.flow.port = pkt.load::<2>(inner + q.ihl)?;
    out.flow.proto = q.proto;
    Some(Kind::IcmpError)
}

/// The end of an IPv6 header chain.
#[derive(Clone, Copy)]
struct Chain {
    /// The upper-layer protocol.
    proto: u8,
    /// Where its header starts.
    off: usize,
    /// Where the fragment header is, if this is a (non-atomic) fragment.
    frag_at: Option<usize>,
    /// A fragment with a non-zero offset (no upper-layer header here).
    later: bool,
}

/// Follows IPv6 extension headers from `next` at `off`, or `None` inside for a chain
/// longer than [`MAX_EXT_HEADERS`].
#[inline(always)]
fn ipv6_chain<B: Bytes + ?Sized>(pkt: &B, mut next: u8, mut off: usize) -> Option<Option<Chain>> {
    let mut frag_at = None;
    let mut i = 0;
    while i < MAX_EXT_HEADERS {
        match next {
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => {
                let [nh, len] = pkt.load::<2>(off)?;
                next = nh;
                off += (usize::from(len) + 1) * 8;
            }
            NEXTHDR_FRAGMENT => {
                let [nh, _] = pkt.load::<2>(off)?;
                // Offset (13 bits) and the M flag: an atomic fragment (both 0) is whole.
                let fo = be16(pkt, off + 2)?;
                let at = off;
                next = nh;
                off += 8;
                if fo & 0xfff9 != 0 {
                    frag_at = Some(at);
                }
                if fo & 0xfff8 != 0 {
                    // What follows is the middle of the packet, not more headers.
                    return Some(Some(Chain { proto: next, off, frag_at, later: true }));
                }
            }
            _ => return Some(Some(Chain { proto: next, off, frag_at, later: false })),
        }
        i += 1;
    }
    match next {
        NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST | NEXTHDR_FRAGMENT => Some(None),
        _ => Some(Some(Chain { proto: next, off, frag_at, later: false })),
    }
}

#[inline(always)]
fn ipv6<B: Bytes + ?Sized>(pkt: &B, l3: usize, out: &mut Classified) -> Option<Kind> {
    if byte(pkt, l3)? >> 4 != 6 {
        return Some(Kind::Malformed);
    }
    let next = byte(pkt, l3 + 6)?;
    let Some(c) = ipv6_chain(pkt, next, l3 + IPV6_HLEN)? else { return Some(Kind::Pass) };
    match c.proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            if let Some(at) = c.frag_at {
                let f = &mut out.frag;
                f.src = pkt.load::<16>(l3 + 8)?;
                f.dst = pkt.load::<16>(l3 + 24)?;
                f.id = pkt.load::<4>(at + 4)?;
                f.proto = c.proto;
                if c.later {
                    return Some(Kind::Fragment);
                }
            }
            out.flow.addr = pkt.load::<16>(l3 + 24)?;
            out.flow.port = pkt.load::<2>(c.off + 2)?;
            out.flow.proto = c.proto;
            Some(if c.frag_at.is_some() { Kind::FirstFragment } else { Kind::Transport })
        }
        IPPROTO_ICMPV6 if c.frag_at.is_none() => {
            // Destination unreachable, packet too big, time exceeded, parameter problem.
            if !matches!(byte(pkt, c.off)?, 1..=4) {
                return Some(Kind::Pass);
            }
            Some(quoted_v6(pkt, c.off + 8, out).unwrap_or(Kind::Pass))
        }
        _ => Some(Kind::Pass),
    }
}

/// The packet an ICMPv6 error quotes, at `inner`; see [`quoted_v4`].
#[inline(always)]
fn quoted_v6<B: Bytes + ?Sized>(pkt: &B, inner: usize, out: &mut Classified) -> Option<Kind> {
    if byte(pkt, inner)? >> 4 != 6 {
        return Some(Kind::Pass);
    }
    let inext = byte(pkt, inner + 6)?;
    let Some(q) = ipv6_chain(pkt, inext, inner + IPV6_HLEN)? else { return Some(Kind::Pass) };
    if q.proto != IPPROTO_TCP && q.proto != IPPROTO_UDP || q.later {
        return Some(Kind::Pass);
    }
    out.flow.addr = pkt.load::<16>(inner + 8)?;
    out.flow.port = pkt.load::<2>(q.off)?;
    out.flow.proto = q.proto;
    Some(Kind::IcmpError)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    const SRV4: [u8; 4] = [10, 77, 0, 1];
    const CLI4: [u8; 4] = [10, 77, 0, 2];
    const SRV6: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const CLI6: [u8; 16] = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn eth(tags: &[u16], ethertype: u16) -> Vec<u8> {
        let mut f = std::vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        for t in tags {
            f.extend_from_slice(&t.to_be_bytes());
            f.extend_from_slice(&[0, 42]);
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], frag: u16, options: usize, payload: &[u8]) -> Vec<u8> {
        let ihl = 20 + options;
        let total = (ihl + payload.len()) as u16;
        let mut h = std::vec![0x40 | (ihl / 4) as u8, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[0x12, 0x34]);
        h.extend_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&[64, proto, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h.resize(ihl, 1);
        h.extend_from_slice(payload);
        h
    }

    fn ipv6(next: u8, src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
        let mut h = std::vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        h.extend_from_slice(&[next, 64]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h.extend_from_slice(payload);
        h
    }

    fn ports(src: u16, dst: u16) -> Vec<u8> {
        let mut l4 = Vec::new();
        l4.extend_from_slice(&src.to_be_bytes());
        l4.extend_from_slice(&dst.to_be_bytes());
        l4.resize(20, 0);
        l4
    }

    fn frame(tags: &[u16], ethertype: u16, l3: Vec<u8>) -> Vec<u8> {
        let mut f = eth(tags, ethertype);
        f.extend_from_slice(&l3);
        f
    }

    #[test]
    fn tcp_over_ipv4_with_and_without_vlan_tags() {
        for tags in [&[][..], &[ETH_P_8021Q][..], &[ETH_P_8021AD, ETH_P_8021Q][..]] {
            let f = frame(tags, ETH_P_IP, ipv4(IPPROTO_TCP, CLI4, SRV4, 0x4000, 0, &ports(40000, 80)));
            let c = classify(&f[..]);
            assert_eq!(c.kind, Kind::Transport);
            assert_eq!(c.vlan_tags as usize, tags.len());
            assert_eq!(c.flow, FlowKey::v4(SRV4, 80, IPPROTO_TCP));
        }
    }

    #[test]
    fn ipv4_options_are_skipped() {
        let f = frame(&[], ETH_P_IP, ipv4(IPPROTO_UDP, CLI4, SRV4, 0, 12, &ports(5, 4791)));
        assert_eq!(classify(&f[..]).flow, FlowKey::v4(SRV4, 4791, IPPROTO_UDP));
    }

    #[test]
    fn ipv4_fragments_first_then_later() {
        let first = frame(&[], ETH_P_IP, ipv4(IPPROTO_UDP, CLI4, SRV4, 0x2000, 0, &ports(5, 4791)));
        let c = classify(&first[..]);
        assert_eq!(c.kind, Kind::FirstFragment);
        assert_eq!(c.flow, FlowKey::v4(SRV4, 4791, IPPROTO_UDP));
        assert_eq!(c.frag, FragKey::v4(CLI4, SRV4, [0, 0, 0x12, 0x34], IPPROTO_UDP));
        // A later fragment's payload is not a UDP header: only the fragment key counts.
        let later = frame(&[], ETH_P_IP, ipv4(IPPROTO_UDP, CLI4, SRV4, 185, 0, &[0xee; 8]));
        let c = classify(&later[..]);
        assert_eq!(c.kind, Kind::Fragment);
        assert_eq!(c.frag, FragKey::v4(CLI4, SRV4, [0, 0, 0x12, 0x34], IPPROTO_UDP));
    }

    #[test]
    fn icmpv4_fragmentation_needed_steers_by_the_quoted_source() {
        // We (SRV4:80) sent a segment to CLI4:40000; a router says it was too big.
        let quoted = ipv4(IPPROTO_TCP, SRV4, CLI4, 0x4000, 0, &ports(80, 40000)[..8]);
        let mut icmp = std::vec![3, 4, 0, 0, 0, 0, 0x05, 0xdc];
        icmp.extend_from_slice(&quoted);
        let f = frame(&[], ETH_P_IP, ipv4(IPPROTO_ICMP, [192, 0, 2, 1], SRV4, 0, 0, &icmp));
        let c = classify(&f[..]);
        assert_eq!(c.kind, Kind::IcmpError);
        assert_eq!(c.flow, FlowKey::v4(SRV4, 80, IPPROTO_TCP));
        // An echo request stays with the kernel.
        let echo = frame(&[], ETH_P_IP, ipv4(IPPROTO_ICMP, CLI4, SRV4, 0, 0, &[8, 0, 0, 0, 0, 1, 0, 1]));
        assert_eq!(classify(&echo[..]).kind, Kind::Pass);
    }

    #[test]
    fn ipv6_extension_headers_and_fragments() {
        let mut hop = std::vec![IPPROTO_TCP, 0, 1, 4, 0, 0, 0, 0];
        hop.extend_from_slice(&ports(40000, 443));
        let f = frame(&[], ETH_P_IPV6, ipv6(NEXTHDR_HOP, CLI6, SRV6, &hop));
        let c = classify(&f[..]);
        assert_eq!((c.kind, c.flow), (Kind::Transport, FlowKey::v6(SRV6, 443, IPPROTO_TCP)));

        let mut first = std::vec![IPPROTO_UDP, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
        first.extend_from_slice(&ports(5, 4791));
        let c = classify(&frame(&[], ETH_P_IPV6, ipv6(NEXTHDR_FRAGMENT, CLI6, SRV6, &first))[..]);
        assert_eq!(c.kind, Kind::FirstFragment);
        assert_eq!(c.flow, FlowKey::v6(SRV6, 4791, IPPROTO_UDP));
        assert_eq!(c.frag, FragKey::v6(CLI6, SRV6, [0xde, 0xad, 0xbe, 0xef], IPPROTO_UDP));

        // Offset 1448, M = 0; what follows is payload even if it looks like a header.
        let later = [IPPROTO_UDP, 0, 0x05, 0xa8, 0xde, 0xad, 0xbe, 0xef, NEXTHDR_HOP, 0, 0, 0];
        let c = classify(&frame(&[], ETH_P_IPV6, ipv6(NEXTHDR_FRAGMENT, CLI6, SRV6, &later))[..]);
        assert_eq!((c.kind, c.frag.id), (Kind::Fragment, [0xde, 0xad, 0xbe, 0xef]));

        // An atomic fragment (offset 0, M = 0) is a whole packet.
        let mut atomic = std::vec![IPPROTO_TCP, 0, 0, 0, 1, 2, 3, 4];
        atomic.extend_from_slice(&ports(1, 80));
        let c = classify(&frame(&[], ETH_P_IPV6, ipv6(NEXTHDR_FRAGMENT, CLI6, SRV6, &atomic))[..]);
        assert_eq!(c.kind, Kind::Transport);
    }

    #[test]
    fn too_many_extension_headers_pass() {
        let mut chain = Vec::new();
        for _ in 0..=MAX_EXT_HEADERS {
            chain.extend_from_slice(&[NEXTHDR_DEST, 0, 1, 4, 0, 0, 0, 0]);
        }
        let f = frame(&[], ETH_P_IPV6, ipv6(NEXTHDR_DEST, CLI6, SRV6, &chain));
        assert_eq!(classify(&f[..]).kind, Kind::Pass);
    }

    #[test]
    fn icmpv6_packet_too_big_steers_by_the_quoted_source() {
        let quoted = ipv6(IPPROTO_TCP, SRV6, CLI6, &ports(443, 40000)[..8]);
        let mut icmp = std::vec![2, 0, 0, 0, 0, 0, 0x05, 0x00];
        icmp.extend_from_slice(&quoted);
        let f = frame(&[], ETH_P_IPV6, ipv6(IPPROTO_ICMPV6, [0xfe; 16], SRV6, &icmp));
        let c = classify(&f[..]);
        assert_eq!((c.kind, c.flow), (Kind::IcmpError, FlowKey::v6(SRV6, 443, IPPROTO_TCP)));
        // Neighbour discovery stays with the kernel.
        let ns = frame(&[], ETH_P_IPV6, ipv6(IPPROTO_ICMPV6, CLI6, SRV6, &[135, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(classify(&ns[..]).kind, Kind::Pass);
    }

    #[test]
    fn truncation_at_every_length_never_steers_a_whole_packet_wrongly() {
        let f = frame(&[ETH_P_8021Q], ETH_P_IP, ipv4(IPPROTO_TCP, CLI4, SRV4, 0, 8, &ports(1, 80)));
        for n in 0..f.len() {
            let c = classify(&f[..n]);
            // The port sits at offset 14 + 4 + 28 + 2: any shorter frame cannot be steered.
            if n < 14 + 4 + 28 + 4 {
                assert_ne!(c.kind, Kind::Transport, "length {n}");
            }
        }
        assert_eq!(classify(&f[..]).kind, Kind::Transport);
    }

    #[test]
    fn an_icmp_error_with_a_quote_too_short_to_name_the_flow_passes() {
        // Found by the fuzz target: such an error is the kernel's, not malformed.
        let quoted = ipv6(IPPROTO_TCP, SRV6, CLI6, &ports(443, 40000)[..8]);
        let mut icmp = std::vec![1, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted[..20]);
        let f = frame(&[], ETH_P_IPV6, ipv6(IPPROTO_ICMPV6, CLI6, SRV6, &icmp));
        assert_eq!(classify(&f[..]).kind, Kind::Pass);
        let quoted = ipv4(IPPROTO_TCP, SRV4, CLI4, 0, 0, &ports(80, 40000)[..8]);
        let mut icmp = std::vec![3, 4, 0, 0, 0, 0, 0x05, 0xdc];
        icmp.extend_from_slice(&quoted[..12]);
        let f = frame(&[], ETH_P_IP, ipv4(IPPROTO_ICMP, CLI4, SRV4, 0, 0, &icmp));
        assert_eq!(classify(&f[..]).kind, Kind::Pass);
    }

    #[test]
    fn arp_and_bad_versions() {
        assert_eq!(classify(&frame(&[], 0x0806, std::vec![0; 28])[..]).kind, Kind::Pass);
        let mut bad = ipv4(IPPROTO_TCP, CLI4, SRV4, 0, 0, &ports(1, 80));
        bad[0] = 0x65;
        assert_eq!(classify(&frame(&[], ETH_P_IP, bad)[..]).kind, Kind::Malformed);
        let mut short_ihl = ipv4(IPPROTO_TCP, CLI4, SRV4, 0, 0, &ports(1, 80));
        short_ihl[0] = 0x44;
        assert_eq!(classify(&frame(&[], ETH_P_IP, short_ihl)[..]).kind, Kind::Malformed);
    }
}
