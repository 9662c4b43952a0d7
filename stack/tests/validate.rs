//! RFC 5961 and RFC 7323 against blind injection: an ACK older than a window is refused
//! with a challenge ACK (section 5); challenge ACKs and the duplicate ACKs dropped
//! segments draw are rate-limited per connection and per TIME-WAIT entry (section 7),
//! except for the peer's data retransmissions; PAWS drops old timestamps and, once
//! timestamps are in use, segments without one, and forgets `TS.Recent` after 24 days.

mod common;

use common::pair::{config, Pair, Side};
use common::*;
use smoltcp::wire::IpAddress;
use stack::wire::{parse_frame, parse_tcp, Route, TcpFlags, TcpHeader, TcpOptions, L3};
use stack::{ConnHandle, Duration};

fn connect(p: &mut Pair) -> (ConnHandle, ConnHandle) {
    p.connect_accept(IpAddress::Ipv4(ip(2)), Duration::from_millis(100))
}

fn route() -> Route {
    Route { src_mac: mac(1), dst_mac: mac(2), src_ip: IpAddress::Ipv4(ip(1)), dst_ip: IpAddress::Ipv4(ip(2)) }
}

fn frame(hdr: &TcpHeader, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let hl = route().emit_tcp(&mut buf, hdr, std::iter::once(payload));
    buf.truncate(hl);
    buf.extend_from_slice(payload);
    buf
}

/// A segment from the client as the server expects it next: in sequence, acknowledging
/// everything, with the client's current timestamp.
fn next_from_client(p: &Pair, s: ConnHandle) -> TcpHeader {
    let c = p.server.conn(s).expect("conn");
    let t = c.tuple();
    TcpHeader {
        src_port: t.remote.port,
        dst_port: t.local.port,
        seq: c.rcv_nxt(),
        ack: c.snd_nxt(),
        flags: TcpFlags::ACK | TcpFlags::PSH,
        window: 1000,
        options: TcpOptions { timestamp: Some((c.ts_recent().expect("timestamps"), 0)), ..Default::default() },
    }
}

/// Segments the server sent to the client since the last call (ACKs included).
fn sent_to_client(p: &mut Pair) -> Vec<TcpHeader> {
    p.turn(&mut |_| {});
    let out = p
        .recorded
        .iter()
        .filter(|(to, _)| *to == Side::Client)
        .filter_map(|(_, f)| {
            let parsed = parse_frame(f).ok()?;
            let L3::Ip(ip) = parsed.l3 else { return None };
            parse_tcp(f, &ip).ok().map(|(h, _)| h)
        })
        .collect();
    p.recorded.clear();
    out
}

#[test]
fn an_ack_older_than_a_window_is_refused_with_a_challenge() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 1024);
    let (_c, s) = connect(&mut p);
    p.record = true;
    let good = next_from_client(&p, s);
    let stale = TcpHeader { ack: good.ack.sub(1 << 30), ..good };
    p.inject(Side::Server, &frame(&stale, b"evil"));
    assert_eq!(p.server.readiness(s).readable, 0, "data with a blind, stale ACK was taken");
    let ctr = p.counters(Side::Server);
    assert_eq!((ctr.tcp_ack_too_old, ctr.tcp_challenge_acks), (1, 1));
    let sent = sent_to_client(&mut p);
    assert_eq!(sent.len(), 1, "one challenge ACK");
    assert_eq!((sent[0].flags, sent[0].ack), (TcpFlags::ACK, good.seq));
    // An old duplicate ACK within a window is fine, as is the current one.
    let dup = TcpHeader { ack: good.ack.sub(1), ..good };
    p.inject(Side::Server, &frame(&dup, b"ok"));
    assert_eq!(p.server.readiness(s).readable, 2);
    assert_eq!(p.counters(Side::Server).tcp_ack_too_old, 1);
}

#[test]
fn challenge_and_duplicate_acks_for_dropped_segments_are_rate_limited() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 1024);
    let (_c, s) = connect(&mut p);
    p.record = true;
    let good = next_from_client(&p, s);
    // Ten in-window RSTs with a wrong sequence number, and ten SYNs: one challenge.
    for i in 0..10 {
        let rst = TcpHeader { seq: good.seq.add(100 + i), flags: TcpFlags::RST, ..good };
        p.inject(Side::Server, &frame(&rst, &[]));
        let syn = TcpHeader { flags: TcpFlags::SYN, ..good };
        p.inject(Side::Server, &frame(&syn, &[]));
    }
    let ctr = p.counters(Side::Server);
    assert_eq!((ctr.tcp_rst_challenged, ctr.tcp_syn_challenged), (10, 10));
    assert_eq!((ctr.tcp_challenge_acks, ctr.tcp_oow_acks_limited), (1, 19));
    assert_eq!(sent_to_client(&mut p).len(), 1);
    // Pure ACKs far out of the window: still within 500 ms of the challenge, none.
    for i in 0..5 {
        let oow = TcpHeader { seq: good.seq.add((1 << 30) + i), ..good };
        p.inject(Side::Server, &frame(&oow, &[]));
    }
    assert_eq!(sent_to_client(&mut p).len(), 0);
    // A retransmission of data already received is answered every time.
    for _ in 0..5 {
        let old = TcpHeader { seq: good.seq.sub(10), ..good };
        p.inject(Side::Server, &frame(&old, &[1; 10]));
        assert_eq!(sent_to_client(&mut p).len(), 1, "a data retransmission went unanswered");
    }
    // 500 ms later the next challenge goes out.
    p.run_for(Duration::from_millis(600), &mut |_| {});
    p.recorded.clear();
    let rst = TcpHeader { seq: good.seq.add(7), flags: TcpFlags::RST, ..good };
    p.inject(Side::Server, &frame(&rst, &[]));
    assert_eq!(sent_to_client(&mut p).len(), 1);
    assert_eq!(p.counters(Side::Server).tcp_challenge_acks, 2);
    assert!(p.server.readiness(s).error.is_none());
}

#[test]
fn paws_drops_old_timestamps_and_segments_without_one_until_ts_recent_lapses() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 1024);
    let (_c, s) = connect(&mut p);
    let good = next_from_client(&p, s);
    let (ts, _) = good.options.timestamp.expect("ts");
    let none = TcpHeader { options: TcpOptions::default(), ..good };
    p.inject(Side::Server, &frame(&none, b"no-ts"));
    let old =
        TcpHeader { options: TcpOptions { timestamp: Some((ts.wrapping_sub(10), 0)), ..Default::default() }, ..good };
    p.inject(Side::Server, &frame(&old, b"old-ts"));
    assert_eq!(p.server.readiness(s).readable, 0, "PAWS let data through");
    let ctr = p.counters(Side::Server);
    assert_eq!((ctr.tcp_ts_missing, ctr.tcp_paws_rejected), (1, 1));
    // 25 days of silence: TS.Recent is no longer believed (RFC 7323 section 5.5).
    p.run_for(Duration::from_secs(25 * 24 * 3600), &mut |_| {});
    p.inject(Side::Server, &frame(&old, b"old-ts"));
    assert_eq!(p.server.readiness(s).readable, 6);
    assert_eq!(p.counters(Side::Server).tcp_paws_rejected, 1);
}

#[test]
fn a_time_wait_entry_answers_a_flood_with_few_acks() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 1024);
    let (c, s) = connect(&mut p);
    p.record = true;
    // The server closes first and ends in TIME-WAIT; the client then forgets everything.
    p.server.close(s).expect("close");
    p.run_for(Duration::from_millis(10), &mut |_| {});
    p.client.close(c).expect("close");
    p.run_for(Duration::from_millis(10), &mut |_| {});
    assert_eq!(p.server.time_wait_count(), 1);
    let fin = p
        .recorded
        .iter()
        .find(|(to, f)| {
            *to == Side::Server
                && parse_frame(f).ok().is_some_and(|x| match x.l3 {
                    L3::Ip(ip) => parse_tcp(f, &ip).is_ok_and(|(h, _)| h.flags.has(TcpFlags::FIN)),
                    _ => false,
                })
        })
        .map(|(_, f)| f.clone())
        .expect("the client's FIN");
    p.recorded.clear();
    for _ in 0..10 {
        p.inject(Side::Server, &fin);
    }
    assert_eq!(sent_to_client(&mut p).len(), 1, "every copy of the FIN was answered");
    assert_eq!(p.counters(Side::Server).tcp_oow_acks_limited, 9);
}
