//! SYN cookies under attack: a cookie is checked only while cookies were recently sent
//! (a stack that sent none refuses one even if it is genuine for its secret), its MSS
//! bits are covered by its MAC, and a valid cookie ACK that finds the accept queue full
//! is dropped (the peer retransmits) or, with `abort_on_overflow`, reset; both counted.

mod common;

use common::pair::{config, Pair, Side};
use common::*;
use smoltcp::wire::{IpAddress, IpEndpoint};
use stack::wire::{parse_frame, parse_tcp, Route, Seq, TcpFlags, TcpHeader, L3};
use stack::{ConnHandle, Duration};

fn header(f: &[u8]) -> Option<TcpHeader> {
    let parsed = parse_frame(f).ok()?;
    let L3::Ip(ip) = parsed.l3 else { return None };
    parse_tcp(f, &ip).ok().map(|(h, _)| h)
}

/// Rebuilds the IPv4 TCP frame `f` (no payload) with header `h`.
fn rebuild(f: &[u8], h: &TcpHeader) -> Vec<u8> {
    let parsed = parse_frame(f).expect("frame");
    let L3::Ip(ip) = parsed.l3 else { panic!("not IP") };
    let route = Route { src_mac: parsed.src_mac, dst_mac: parsed.dst_mac, src_ip: ip.src, dst_ip: ip.dst };
    let mut out = vec![0u8; 128];
    let n = route.emit_tcp(&mut out, h, std::iter::empty());
    out.truncate(n);
    out
}

/// A server that answers every SYN with a cookie; the client connects, and its final ACK
/// is recorded but never delivered. Returns the pair, the client's handle and that ACK.
fn cookie_handshake_ack(server_secret: u64) -> (Pair, ConnHandle, Vec<u8>) {
    let mut p = Pair::new(
        config(1, |_| {}),
        config(2, |c| {
            c.max_half_open = 0;
            c.secret = server_secret;
        }),
        1024,
    );
    p.server.listen(PORT).expect("listen");
    p.record = true;
    let c = p.client.connect(p.now, IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT)).expect("connect");
    p.run_until(Duration::from_secs(5), &mut |_| {}, &mut |p| p.counters(Side::Server).tcp_syn_cookies_sent == 1);
    p.blackhole = Some(Side::Server);
    p.run_until(Duration::from_secs(5), &mut |_| {}, &mut |p| p.client.readiness(c).connected);
    let ack = p
        .recorded
        .iter()
        .rev()
        .find(|(to, f)| *to == Side::Server && header(f).is_some_and(|h| h.flags == TcpFlags::ACK))
        .map(|(_, f)| f.clone())
        .expect("the client's ACK");
    p.blackhole = None;
    (p, c, ack)
}

#[test]
fn a_genuine_cookie_is_refused_by_a_stack_that_sent_none_recently() {
    let secret = 0x0c00_c1e5;
    let (mut p, _, ack) = cookie_handshake_ack(secret);
    // The stack that sent the cookie takes it.
    p.inject(Side::Server, &ack);
    assert_eq!(p.counters(Side::Server).tcp_syn_cookies_accepted, 1);
    assert_eq!(p.server.connection_count(), 1);

    // A stack with the same secret that has sent no cookie refuses it without checking.
    let mut q = Pair::new(config(1, |_| {}), config(2, |c| c.secret = secret), 1024);
    q.server.listen(PORT).expect("listen");
    q.inject(Side::Server, &ack);
    let c = q.counters(Side::Server);
    assert_eq!(c.tcp_syn_cookies_accepted, 0, "a cookie accepted while none was sent");
    assert_eq!(c.tcp_syn_cookies_not_recent, 1);
    assert_eq!(c.tcp_syn_cookies_invalid, 0, "not even checked");
    assert_eq!(q.server.connection_count(), 0);

    // And the stack that sent it stops checking once no cookie went out for 128 s.
    p.run_for(Duration::from_secs(130), &mut |_| {});
    let before = p.counters(Side::Server).tcp_syn_cookies_not_recent;
    let mut h = header(&ack).expect("ack");
    h.src_port = h.src_port.wrapping_add(1);
    p.inject(Side::Server, &rebuild(&ack, &h));
    assert_eq!(p.counters(Side::Server).tcp_syn_cookies_not_recent, before + 1);
}

#[test]
fn the_mss_bits_of_a_cookie_cannot_be_altered() {
    let (mut p, _, ack) = cookie_handshake_ack(7);
    let h = header(&ack).expect("ack");
    let cookie = h.ack.sub(1).0;
    for idx in 0..8u32 {
        if idx == (cookie >> 24) & 7 {
            continue;
        }
        let forged = TcpHeader { ack: Seq((cookie & !(7 << 24)) | (idx << 24)).add(1), ..h };
        p.inject(Side::Server, &rebuild(&ack, &forged));
    }
    let c = p.counters(Side::Server);
    assert_eq!(c.tcp_syn_cookies_accepted, 0, "a cookie with other MSS bits was accepted");
    assert_eq!(c.tcp_syn_cookies_invalid, 7);
    p.inject(Side::Server, &ack);
    assert_eq!(p.counters(Side::Server).tcp_syn_cookies_accepted, 1, "the genuine one still is");
}

/// Two connections through cookies to a server whose accept queue holds one, which the
/// application never drains. Returns the server's counters and the second connection's
/// final state on the client.
fn overflow(abort: bool) -> (stack::Counters, stack::Readiness) {
    let mut p = Pair::new(
        config(1, |_| {}),
        config(2, |c| {
            c.max_half_open = 0;
            c.backlog = 1;
            c.abort_on_overflow = abort;
        }),
        1024,
    );
    p.server.listen(PORT).expect("listen");
    let to = IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT);
    let a = p.client.connect(p.now, to).expect("connect");
    let b = p.client.connect(p.now, to).expect("connect");
    p.run_for(Duration::from_millis(50), &mut |_| {});
    assert_eq!(p.counters(Side::Client).tcp_established, 2, "both handshakes completed on the client");
    assert!(p.client.readiness(a).connected);
    p.run_for(Duration::from_secs(2), &mut |_| {});
    (p.counters(Side::Server).clone(), p.client.readiness(b))
}

#[test]
fn a_cookie_ack_that_finds_the_accept_queue_full_is_dropped_or_reset() {
    let (c, b) = overflow(false);
    assert_eq!(c.tcp_syn_cookies_accepted, 1);
    assert_eq!(c.tcp_syn_cookies_overflow, 1);
    assert_eq!(c.tcp_accept_queue_full, 1);
    assert!(b.error.is_none(), "dropped silently: the peer may retry");

    let (c, b) = overflow(true);
    assert_eq!(c.tcp_syn_cookies_overflow, 1);
    assert_eq!(b.error, Some(stack::tcp::ConnError::Reset), "reset, as tcp_abort_on_overflow does");
}
