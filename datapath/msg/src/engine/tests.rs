//! The engine driven on a virtual clock over `sim` links: no root, no socket.

use std::time::Duration;

use super::*;
use crate::sim::{Impairment, Pair, A_ADDR, B_ADDR};
use crate::Pattern;

fn template(reliable: bool, dg_payload: usize) -> EngineConfig {
    let mut c = EngineConfig::new(A_ADDR.parse().unwrap(), [0; 6], dg_payload);
    c.reliable = reliable;
    c.max_msg = 65_536;
    c.seed = 0x5eed_0f1a;
    c
}

fn peer_b(p: &Pair) -> PeerId {
    p.a.peer(B_ADDR.parse().unwrap()).expect("b is a peer of a")
}

fn stream(p: &mut Pair, pat: &Pattern, n: u64, depth: u64, max_steps: u64) -> u64 {
    p.stream(pat, n, depth, max_steps).unwrap_or_else(|e| panic!("{e}"))
}

fn check_all(pat: &Pattern, got: &[Msg]) {
    for (i, m) in got.iter().enumerate() {
        pat.check(i as u64, m).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn unreliable_messages_of_every_size_arrive_intact_and_frames_come_back() {
    let mut p = Pair::new(&template(false, 1448), 4096, Impairment::none(Duration::from_micros(10)), 1);
    let free = (p.a.pool().stats().frames_free, p.b.pool().stats().frames_free);
    let pat = Pattern::new(7, 65_536);
    stream(&mut p, &pat, 1200, 8, 100_000);
    check_all(&pat, &p.b_got);
    assert_eq!(p.b.stats().msgs_recv, 1200);
    assert!(p.b_got.iter().any(|m| m.len() == 65_536), "64 KiB messages (46 datagrams) went through");
    p.b_got.clear();
    assert_eq!((p.a.pool().stats().frames_free, p.b.pool().stats().frames_free), free, "every frame came back");
}

#[test]
fn jumbo_datagrams_span_several_frames() {
    // MTU 9000 with multi-buffer: 8948-byte datagrams, each three 4 KiB buffers on the wire.
    let mut p = Pair::new(&template(true, 8948), 4096, Impairment::none(Duration::from_micros(10)), 2);
    let pat = Pattern::new(8, 65_536);
    stream(&mut p, &pat, 500, 8, 100_000);
    check_all(&pat, &p.b_got);
    let big = p.b_got.iter().find(|m| m.len() == 65_536).expect("a 64 KiB message");
    assert!(big.slices().count() > 8, "its payload is in the frames of its datagrams");
}

#[test]
fn reliable_delivery_in_order_exactly_once_through_loss_duplication_and_reordering() {
    let imp = Impairment {
        loss: 5.0,
        duplicate: 2.0,
        reorder: 5.0,
        latency: Duration::from_micros(30),
        jitter: Duration::from_micros(200),
        corrupt: 0.0,
    };
    let mut p = Pair::new(&template(true, 1448), 8192, imp, 3);
    let pat = Pattern::new(9, 65_536);
    stream(&mut p, &pat, 3000, 32, 2_000_000);
    check_all(&pat, &p.b_got);
    let (a, b) = (p.a.stats(), p.b.stats());
    assert!(p.ab.lost > 0 && p.ba.lost > 0, "the link lost datagrams both ways");
    assert!(a.retransmits > 0, "lost data was sent again: {a:?}");
    assert!(b.dup_dgrams > 0, "duplicates were seen and dropped: {b:?}");
    assert_eq!(b.msgs_recv, 3000, "no message delivered twice");
    assert_eq!(p.a.unacked(), 0);
}

#[test]
fn a_reply_goes_back_in_the_frames_it_arrived_in() {
    let mut p = Pair::new(&template(true, 1448), 1024, Impairment::none(Duration::from_micros(10)), 4);
    let pat = Pattern::new(10, 65_536);
    stream(&mut p, &pat, 20, 1, 100_000);
    let to_a = p.b.peer(A_ADDR.parse().unwrap()).unwrap();
    for m in std::mem::take(&mut p.b_got) {
        let frames: Vec<u64> = m.slices().map(|s| s.buf().addr()).collect();
        let reply = p.b.reply_buf(m).expect("unique frames: a reply in place");
        let mut again: Vec<u64> = Vec::new();
        let mut r = reply;
        for c in r.chunks_mut() {
            again.push(c.as_ptr() as u64);
        }
        assert_eq!(frames.len(), again.len());
        p.b.send(p.now, to_a, r).expect("send the reply");
    }
    assert!(p.run_until(100_000, |p| p.a_got.len() == 20 && p.idle()));
    check_all(&pat, &p.a_got);
    assert_eq!(p.b.stats().copied_bytes, 0);
}

#[test]
fn an_idle_engine_has_no_timer_and_a_busy_one_does() {
    let mut p = Pair::new(&template(true, 1448), 1024, Impairment::none(Duration::from_micros(10)), 5);
    assert_eq!(p.a.poll_timeout(), None, "nothing in flight, nothing timed");
    let to = peer_b(&p);
    let m = p.a.alloc(100).unwrap();
    p.a.send(p.now, to, m).unwrap();
    assert!(p.a.poll_timeout().is_some(), "a reliable datagram in flight arms the timer");
    assert!(p.run_until(10_000, |p| p.b_got.len() == 1 && p.idle()));
    // One more turn runs the last timer, which finds nothing left to time.
    for _ in 0..100 {
        p.step();
    }
    assert_eq!((p.a.poll_timeout(), p.b.poll_timeout()), (None, None));
}

#[test]
fn full_window_and_full_queue_give_the_message_back() {
    let mut t = template(true, 1448);
    t.window = 64;
    let mut p = Pair::new(&t, 4096, Impairment::none(Duration::from_micros(10)), 6);
    let to = peer_b(&p);
    // 46 datagrams fit a 64-datagram window once, not twice.
    let m = p.a.alloc(65_536).unwrap();
    p.a.send(p.now, to, m).unwrap();
    let m = p.a.alloc(65_536).unwrap();
    match p.a.send(p.now, to, m) {
        Err(SendError::Full(back)) => assert_eq!(back.len(), 65_536, "the same message comes back"),
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(p.a.stats().send_full, 1);
    assert!(p.run_until(10_000, |p| p.b_got.len() == 1 && p.idle()));
    let m = p.a.alloc(65_536).unwrap();
    p.a.send(p.now, to, m).expect("room again once acknowledged");
}

#[test]
fn a_receiver_taking_one_datagram_per_turn_acknowledges_a_few_times_per_message() {
    let mut p = Pair::new(&template(true, 1448), 4096, Impairment::none(Duration::from_micros(10)), 7);
    let to = peer_b(&p);
    let (mut now, mut acks) = (p.now, 0);
    let m = p.a.alloc(65_536).unwrap();
    p.a.send(now, to, m).unwrap();
    let mut wire = Vec::new();
    while let Some(d) = p.a.poll_transmit(u32::MAX) {
        wire.push(d);
    }
    assert_eq!(wire.len(), 46, "64 KiB is 46 datagrams of 1448 B");
    // A busy receiver: one datagram per turn, transmitting after each, as `recv` does.
    for d in &wire {
        now += Duration::from_micros(1);
        assert!(crate::sim::carry(&mut p.b, now, d));
        while let Some(ack) = p.b.poll_transmit(u32::MAX) {
            acks += 1;
            assert!(crate::sim::carry(&mut p.a, now, &ack));
        }
        if p.b.poll_timeout().is_some_and(|t| now >= t) {
            p.b.handle_timeout(now);
        }
    }
    assert_eq!(p.b.poll_recv().map(|m| m.len()), Some(65_536));
    // One after 32 new datagrams, one when the message completed; it used to be 46.
    assert_eq!(acks, 2, "acknowledgements for one 46-datagram message");
    assert_eq!(p.a.unacked(), 0, "and they acknowledged all of it");
}

#[test]
fn a_partial_message_is_acknowledged_after_the_ack_delay() {
    let mut p = Pair::new(&template(true, 1448), 4096, Impairment::none(Duration::from_micros(10)), 8);
    let to = peer_b(&p);
    let now = p.now;
    let m = p.a.alloc(10 * 1448).unwrap();
    p.a.send(now, to, m).unwrap();
    let mut wire = Vec::new();
    while let Some(d) = p.a.poll_transmit(u32::MAX) {
        wire.push(d);
    }
    for d in &wire[..5] {
        assert!(crate::sim::carry(&mut p.b, now, d));
    }
    assert!(p.b.poll_transmit(u32::MAX).is_none(), "in order and few: the acknowledgement waits");
    assert!(p.b.owes_acks());
    let due = p.b.poll_timeout().expect("the delayed acknowledgement is timed");
    assert!(due <= now + Duration::from_micros(50) && due > now);
    p.b.handle_timeout(due);
    let ack = p.b.poll_transmit(u32::MAX).expect("sent once its delay ran out");
    assert!(crate::sim::carry(&mut p.a, due, &ack));
    assert_eq!(p.a.unacked(), 5, "it covered the five that arrived");
    assert!(!p.b.owes_acks());
    // A datagram past a hole is acknowledged at once (the sender's fast retransmit needs it).
    assert!(crate::sim::carry(&mut p.b, due, &wire[7]));
    assert!(p.b.poll_transmit(u32::MAX).is_some(), "out of order: at once");
}
