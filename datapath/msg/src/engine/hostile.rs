//! Hostile and broken peers (issue: unknown sources, a bounded peer table, state only for
//! reliable endpoints, partial messages that expire, forged datagram counts, spoofed
//! acknowledgements, peers that never answer, corrupt datagrams), each on a virtual clock.

use std::net::SocketAddrV4;
use std::time::Duration;

use super::*;
use crate::sim::{carry, heap_pool, Impairment, Pair, A_ADDR, B_ADDR};
use crate::wire::{MsgHeader, UDP_OFF};
use crate::Pattern;

fn template(reliable: bool) -> EngineConfig {
    let mut c = EngineConfig::new(A_ADDR.parse().unwrap(), [0; 6], 1448);
    c.reliable = reliable;
    c.max_msg = 65_536;
    c.seed = 0x0bad_cafe;
    c
}

fn addr(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

/// An engine at `local` that knows `to` as a peer; returns it and the peer id.
fn sender(local: &str, to: &str, reliable: bool) -> (Engine, PeerId) {
    let mut c = template(reliable);
    c.local = addr(local);
    c.mac = [2, 0, 0, 0, 0, 0x33];
    let mut e = Engine::new(c, heap_pool(512)).unwrap();
    let p = e.add_peer(addr(to), [2, 0, 0, 0, 0, 0xb]).unwrap();
    (e, p)
}

/// The datagrams `e` emits for one `len`-byte message to `p`.
fn datagrams(e: &mut Engine, p: PeerId, len: usize, now: Instant) -> Vec<Vec<BufSlice>> {
    let m = e.alloc(len).unwrap();
    e.send(now, p, m).unwrap();
    std::iter::from_fn(|| e.poll_transmit(u32::MAX)).collect()
}

fn receiver(reliable: bool, accept_unknown: bool, max_peers: usize) -> Engine {
    let mut c = template(reliable);
    c.local = addr(B_ADDR);
    c.accept_unknown_peers = accept_unknown;
    c.max_peers = max_peers;
    Engine::new(c, heap_pool(1024)).unwrap()
}

#[test]
fn unknown_sources_are_dropped_unless_asked_for() {
    let now = Instant::now();
    let (mut c, to_b) = sender("10.99.0.3:9000", B_ADDR, false);
    let d = datagrams(&mut c, to_b, 100, now);
    let mut b = receiver(false, false, 16);
    assert!(!EngineConfig::new(addr(B_ADDR), [0; 6], 1448).accept_unknown_peers, "off by default");
    carry(&mut b, now, &d[0]);
    assert_eq!(b.stats().unknown_peer_drops, 1);
    assert_eq!((b.peer_count(), b.poll_recv().is_none()), (0, true), "no peer made, nothing delivered");

    let mut b = receiver(false, true, 16);
    carry(&mut b, now, &d[0]);
    assert_eq!(b.poll_recv().map(|m| m.len()), Some(100));
    assert!(b.peer(addr("10.99.0.3:9000")).is_some(), "learned from its datagram");
}

#[test]
fn a_full_table_evicts_idle_learned_peers_counts_it_and_keeps_added_ones() {
    let now = Instant::now();
    let mut b = receiver(false, true, 4);
    let kept = b.add_peer(addr("10.99.0.200:1"), [2; 6]).unwrap();
    let mut got = 0;
    for i in 0..10u16 {
        let (mut c, to_b) = sender(&format!("10.99.1.{}:9000", i + 1), B_ADDR, false);
        for d in datagrams(&mut c, to_b, 10, now) {
            carry(&mut b, now, &d);
        }
        got += std::iter::from_fn(|| b.poll_recv()).count();
        assert!(b.peer_count() <= 4, "bounded: {} peers", b.peer_count());
    }
    assert_eq!(got, 10, "every sender's message got through");
    let s = b.stats();
    assert_eq!(s.peers_evicted, 7, "3 learned fit beside the added one; 7 had to make room");
    let evicted = std::iter::from_fn(|| b.poll_event()).filter(|e| matches!(e, Event::PeerEvicted { .. })).count();
    assert_eq!(evicted, 7);
    assert_eq!(b.peer_addr(kept), Some(addr("10.99.0.200:1")), "a peer the application added stays");
}

#[test]
fn an_unreliable_endpoint_makes_no_reliable_state() {
    let now = Instant::now();
    let (mut a, to_b) = sender(A_ADDR, B_ADDR, true);
    let mut b = receiver(false, true, 16);
    for d in datagrams(&mut a, to_b, 10_000, now) {
        carry(&mut b, now, &d);
    }
    let s = b.stats();
    assert_eq!(s.mode_mismatch, 7, "all seven reliable datagrams refused");
    assert_eq!((b.peer_count(), b.partials(), b.poll_timeout()), (0, 0, None), "no peer, partial or timer made");
    assert!(b.poll_transmit(u32::MAX).is_none(), "no acknowledgement sent");
    assert_eq!(b.pool().stats().frames_free, 1024, "no frame held");
}

#[test]
fn partial_messages_expire_and_give_their_frames_back() {
    let t0 = Instant::now();
    let (mut a, to_b) = sender(A_ADDR, B_ADDR, false);
    let mut b = receiver(false, true, 16);
    let d = datagrams(&mut a, to_b, 10_000, t0);
    for x in &d[..6] {
        carry(&mut b, t0, x); // the seventh is lost
    }
    assert_eq!(b.partials(), 1);
    let held = 1024 - b.pool().stats().frames_free;
    assert_eq!(held, 6);
    let timeout = b.config().partial_timeout;
    let mut now = t0;
    while now < t0 + timeout + Duration::from_millis(1) {
        now += Duration::from_millis(1);
        if b.poll_timeout().is_some_and(|t| now >= t) {
            b.handle_timeout(now);
        }
    }
    assert_eq!((b.partials(), b.stats().reasm_expired), (0, 1));
    assert_eq!(b.pool().stats().frames_free, 1024, "the partial's frames came back");
    assert_eq!(b.poll_timeout(), None, "nothing left to time");
}

/// Rewrites a datagram's message header with `f` and fixes its UDP checksum.
fn forge(d: &[BufSlice], f: impl FnOnce(&mut MsgHeader<&mut [u8]>)) -> Vec<u8> {
    let mut bytes: Vec<u8> = d.iter().flat_map(|s| s.as_bytes().to_vec()).collect();
    f(&mut MsgHeader::new_unchecked(&mut bytes[UDP_OFF + UDP_LEN..]));
    bytes[UDP_OFF + 6..UDP_OFF + 8].fill(0);
    let rx = wire::parse_udp(&bytes, bytes.len()).unwrap();
    let sum = wire::udp_sum(&rx, [&bytes[..]]).finish();
    bytes[UDP_OFF + 6..UDP_OFF + 8].copy_from_slice(&sum.to_be_bytes());
    bytes
}

fn carry_bytes(to: &mut Engine, now: Instant, bytes: &[u8]) {
    let frags = crate::sim::copy_into(to.pool(), bytes).expect("frames");
    to.handle_datagram(now, frags);
}

#[test]
fn a_forged_datagram_count_is_refused_before_it_sizes_anything() {
    let now = Instant::now();
    let (mut a, to_b) = sender(A_ADDR, B_ADDR, false);
    let mut b = receiver(false, true, 16);
    let d = datagrams(&mut a, to_b, 100, now);
    // 100 bytes claiming 65,535 datagrams, and 65,536 bytes claiming 65,535 (at least
    // 524 bytes per datagram, a 64 KiB message has at most 126).
    carry_bytes(&mut b, now, &forge(&d[0], |h| h.set_frags(u16::MAX)));
    carry_bytes(
        &mut b,
        now,
        &forge(&d[0], |h| {
            h.set_frags(u16::MAX);
            h.set_msg_len(65_536);
        }),
    );
    assert_eq!(b.stats().bad_header, 2);
    assert_eq!(b.partials(), 0, "no partial message, no vector");
    assert_eq!(b.pool().stats().frames_free, 1024);
}

#[test]
fn spoofed_acknowledgements_free_nothing() {
    let t0 = Instant::now();
    let mut p = Pair::new(&template(true), 1024, Impairment::none(Duration::from_micros(10)), 11);
    let to_b = p.a.peer(addr(B_ADDR)).unwrap();
    for _ in 0..3 {
        let m = p.a.alloc(100).unwrap();
        p.a.send(t0, to_b, m).unwrap();
    }
    let sent: Vec<_> = std::iter::from_fn(|| p.a.poll_transmit(u32::MAX)).collect();
    assert_eq!(p.a.unacked(), 3);
    // A genuine acknowledgement from b, to use as the spoofer's template.
    carry(&mut p.b, t0, &sent[0]);
    let ack = p.b.poll_transmit(u32::MAX).expect("b acknowledges");
    let isn_plus_1 = MsgHdr::parse(&ack[0].as_bytes()[UDP_OFF + UDP_LEN..]).unwrap().seq;
    // A blind spoofer guessing the sequence space starts at 0 acknowledges "all three".
    carry_bytes(&mut p.a, t0, &forge(&ack, |h| h.set_seq(3)));
    // One who somehow knows the start still cannot acknowledge what was never sent.
    carry_bytes(&mut p.a, t0, &forge(&ack, |h| h.set_seq(isn_plus_1.wrapping_add(5))));
    assert_eq!(p.a.unacked(), 3, "nothing was freed");
    assert!(p.a.stats().bad_acks >= 1, "{:?}", p.a.stats());
    // The genuine one frees exactly what b received.
    carry(&mut p.a, t0, &ack);
    assert_eq!(p.a.unacked(), 2);
}

#[test]
fn retransmission_gives_up_after_the_retry_limit_and_reports_the_peer_lost() {
    let mut t = template(true);
    t.max_retries = 5;
    let silent = Impairment { loss: 100.0, ..Impairment::none(Duration::from_micros(10)) };
    let mut p = Pair::new(&t, 1024, silent, 12);
    let free = p.a.pool().stats().frames_free;
    let to_b = p.a.peer(addr(B_ADDR)).unwrap();
    let pat = Pattern::new(1, 65_536);
    for i in 0..3 {
        let mut m = p.a.alloc(pat.size(i + 2)).unwrap();
        pat.fill(i + 2, &mut m);
        p.a.send(p.now, to_b, m).unwrap();
    }
    p.tick = Duration::from_millis(1);
    let mut lost = None;
    for _ in 0..10_000 {
        p.step();
        if let Some(e) = p.a.poll_event() {
            lost = Some(e);
            break;
        }
    }
    let Some(Event::PeerLost { peer, addr: at, unacked }) = lost else { panic!("no PeerLost: {lost:?}") };
    assert_eq!((peer, at, unacked), (to_b, addr(B_ADDR), 3));
    let s = p.a.stats();
    assert_eq!(s.peers_lost, 1);
    assert_eq!(s.retransmits, 3 * 5, "each datagram sent again exactly max_retries times");
    let m = p.a.alloc(10).unwrap();
    assert!(matches!(p.a.send(p.now, to_b, m), Err(SendError::UnknownPeer(_))), "the lost peer's id names nothing");
    p.run_until(1000, |p| p.a.queued() == 0);
    assert_eq!(p.a.pool().stats().frames_free, free, "its unacknowledged frames came back");
    assert_eq!(p.a.poll_timeout(), None);
}

#[test]
fn corrupt_datagrams_are_dropped_and_counted_and_reliability_recovers_them() {
    let imp = Impairment { corrupt: 10.0, ..Impairment::none(Duration::from_micros(10)) };
    let mut p = Pair::new(&template(true), 2048, imp, 13);
    let pat = Pattern::new(2, 65_536);
    p.stream(&pat, 300, 8, 1_000_000).unwrap_or_else(|e| panic!("{e}"));
    for (i, m) in p.b_got.iter().enumerate() {
        pat.check(i as u64, m).unwrap_or_else(|e| panic!("{e}"));
    }
    let (a, b) = (p.a.stats(), p.b.stats());
    assert!(
        b.bad_checksum > 0 && a.bad_checksum > 0,
        "corruption was caught both ways: {} / {}",
        b.bad_checksum,
        a.bad_checksum
    );
    assert!(a.retransmits > 0);

    // Without verification, corruption would reach the application.
    let mut t = template(false);
    t.verify_checksum = false;
    let mut q = Pair::new(&t, 2048, imp, 14);
    q.stream(&pat, 300, 8, 1_000_000).unwrap_or_else(|e| panic!("{e}"));
    let bad = q.b_got.iter().enumerate().filter(|(i, m)| pat.check(*i as u64, m).is_err()).count();
    assert!(bad > 0, "the link did corrupt messages");
    assert_eq!(q.b.stats().bad_checksum, 0);
}
