//! The XDP program's classifier (`steer_common::parse`, the very code the program runs)
//! against a second reading of the same bytes through smoltcp's wire views: whenever
//! smoltcp can parse the frame, both must agree on the verdict and on every key byte.
//!
//! The classifier steers by the headers present in the frame and leaves length checks to
//! the stack (which drops what does not add up), so the reference reads what follows an IP
//! header up to the end of the frame too, not only up to the IP total length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smoltcp::wire::{EthernetFrame, IpProtocol, Ipv4Packet, Ipv6ExtHeader, Ipv6FragmentHeader, Ipv6Packet};
use steer_common::parse::{classify, Classified, Kind, MAX_EXT_HEADERS};
use steer_common::{FlowKey, FragKey};

fuzz_target!(|data: &[u8]| {
    let got = classify(data);
    if let Some(want) = reference(data) {
        assert_eq!(got.kind, want.kind, "verdict for {data:02x?}");
        assert_eq!(got.vlan_tags, want.vlan_tags);
        if matches!(want.kind, Kind::Transport | Kind::IcmpError | Kind::FirstFragment) {
            assert_eq!(got.flow, want.flow, "flow key for {data:02x?}");
        }
        if matches!(want.kind, Kind::FirstFragment | Kind::Fragment) {
            assert_eq!(got.frag, want.frag, "fragment key for {data:02x?}");
        }
    }
});

/// What the classifier must say, read with smoltcp; `None` where smoltcp cannot parse the
/// frame (truncated, lengths that disagree), which only requires the classifier not to panic.
fn reference(data: &[u8]) -> Option<Classified> {
    let eth = EthernetFrame::new_checked(data).ok()?;
    let mut out = Classified::default();
    // smoltcp has no 802.1Q: strip up to two tags by hand, then read the rest with smoltcp.
    let mut ethertype = u16::from(eth.ethertype());
    let mut rest = eth.payload();
    for _ in 0..2 {
        if ethertype != 0x8100 && ethertype != 0x88a8 {
            break;
        }
        if rest.len() < 4 {
            return None;
        }
        ethertype = u16::from_be_bytes([rest[2], rest[3]]);
        rest = &rest[4..];
        out.vlan_tags += 1;
    }
    out.kind = match ethertype {
        0x0800 => ipv4(rest, &mut out)?,
        0x86dd => ipv6(rest, &mut out)?,
        _ => Kind::Pass,
    };
    Some(out)
}

fn is_l4(p: IpProtocol) -> bool {
    matches!(p, IpProtocol::Tcp | IpProtocol::Udp)
}

fn ipv4(buf: &[u8], out: &mut Classified) -> Option<Kind> {
    if buf.first().is_some_and(|v| v >> 4 != 4) {
        return Some(Kind::Malformed);
    }
    let p = Ipv4Packet::new_checked(buf).ok()?;
    let proto = p.next_header();
    let frag = p.more_frags() || p.frag_offset() != 0;
    let payload = &buf[usize::from(p.header_len())..];
    if is_l4(proto) {
        if frag {
            let [a, b] = p.ident().to_be_bytes();
            out.frag = FragKey::v4(p.src_addr().octets(), p.dst_addr().octets(), [0, 0, a, b], proto.into());
            if p.frag_offset() != 0 {
                return Some(Kind::Fragment);
            }
        }
        let port = u16::from_be_bytes(payload.get(2..4)?.try_into().ok()?);
        out.flow = FlowKey::v4(p.dst_addr().octets(), port, proto.into());
        return Some(if frag { Kind::FirstFragment } else { Kind::Transport });
    }
    // An ICMP message shorter than its 8-byte header is left open (the classifier may call
    // it malformed or pass it).
    if proto != IpProtocol::Icmp || frag || !matches!(payload.get(..8)?[0], 3 | 4 | 11 | 12) {
        return Some(Kind::Pass);
    }
    // The quoted packet is truncated by design: read its header fields directly. A quote
    // too short to name the flow is the kernel's.
    Some(quoted_v4(payload.get(8..).unwrap_or_default(), out).unwrap_or(Kind::Pass))
}

fn quoted_v4(q: &[u8], out: &mut Classified) -> Option<Kind> {
    let q0 = *q.first()?;
    let qihl = usize::from(q0 & 15) * 4;
    if q0 >> 4 != 4 || qihl < 20 || q.len() < qihl {
        return Some(Kind::Pass);
    }
    let qp = Ipv4Packet::new_unchecked(q);
    if usize::from(qp.total_len()) < qihl {
        return Some(Kind::Pass);
    }
    let qproto = qp.next_header();
    if !is_l4(qproto) || qp.frag_offset() != 0 {
        return Some(Kind::Pass);
    }
    let port = u16::from_be_bytes(q.get(qihl..qihl + 2)?.try_into().ok()?);
    out.flow = FlowKey::v4(qp.src_addr().octets(), port, qproto.into());
    Some(Kind::IcmpError)
}

/// Walks extension headers with smoltcp: (protocol, offset, fragment (ident, later)).
#[allow(clippy::type_complexity)]
fn chain(buf: &[u8], mut next: IpProtocol) -> Option<Option<(IpProtocol, usize, Option<(u32, bool)>)>> {
    let mut off = 0;
    let mut frag = None;
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                let h = Ipv6ExtHeader::new_checked(buf.get(off..)?).ok()?;
                next = h.next_header();
                off += (usize::from(h.header_len()) + 1) * 8;
            }
            IpProtocol::Ipv6Frag => {
                let h = Ipv6FragmentHeader::new_checked(buf.get(off + 2..)?).ok()?;
                next = IpProtocol::from(buf[off]);
                off += 8;
                let later = h.frag_offset() != 0;
                if later || h.more_frags() {
                    frag = Some((h.ident(), later));
                }
                if later {
                    return Some(Some((next, off, frag)));
                }
            }
            _ => return Some(Some((next, off, frag))),
        }
    }
    match next {
        IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts | IpProtocol::Ipv6Frag => Some(None),
        _ => Some(Some((next, off, frag))),
    }
}

fn ipv6(buf: &[u8], out: &mut Classified) -> Option<Kind> {
    if buf.first().is_some_and(|v| v >> 4 != 6) {
        return Some(Kind::Malformed);
    }
    let p = Ipv6Packet::new_checked(buf).ok()?;
    let payload = &buf[40..];
    let Some((proto, off, frag)) = chain(payload, p.next_header())? else { return Some(Kind::Pass) };
    if is_l4(proto) {
        if let Some((ident, later)) = frag {
            out.frag = FragKey::v6(p.src_addr().octets(), p.dst_addr().octets(), ident.to_be_bytes(), proto.into());
            if later {
                return Some(Kind::Fragment);
            }
        }
        let port = u16::from_be_bytes(payload.get(off + 2..off + 4)?.try_into().ok()?);
        out.flow = FlowKey::v6(p.dst_addr().octets(), port, proto.into());
        return Some(if frag.is_some() { Kind::FirstFragment } else { Kind::Transport });
    }
    if proto != IpProtocol::Icmpv6 || frag.is_some() {
        return Some(Kind::Pass);
    }
    if !matches!(payload.get(off..off + 8)?[0], 1..=4) {
        return Some(Kind::Pass);
    }
    Some(quoted_v6(payload.get(off + 8..).unwrap_or_default(), out).unwrap_or(Kind::Pass))
}

fn quoted_v6(q: &[u8], out: &mut Classified) -> Option<Kind> {
    if q.len() < 40 || q[0] >> 4 != 6 {
        return Some(Kind::Pass);
    }
    let qp = Ipv6Packet::new_unchecked(q);
    let Some((qproto, qoff, qfrag)) = chain(&q[40..], qp.next_header())? else { return Some(Kind::Pass) };
    if !is_l4(qproto) || qfrag.is_some_and(|(_, later)| later) {
        return Some(Kind::Pass);
    }
    let port = u16::from_be_bytes(q.get(40 + qoff..40 + qoff + 2)?.try_into().ok()?);
    out.flow = FlowKey::v6(qp.src_addr().octets(), port, qproto.into());
    Some(Kind::IcmpError)
}
