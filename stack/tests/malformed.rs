//! Malformed and hostile input is dropped and counted, never panics, and the stack keeps
//! serving: bad checksums, bad data offsets, truncated options, RSTs with wrong sequence
//! numbers, SYNs on a live connection, broken IP headers, random garbage, and a flood of
//! 100,000 SYNs followed by a normal connection.

mod common;

use common::*;
use smoltcp::wire::IpAddress;
use stack::sim::{Rng, SimLink, Stream};
use stack::tcp::State;
use stack::wire::{Checksum, Route, Seq, TcpFlags, TcpHeader, TcpOptions};
use stack::{Counters, Duration, Instant};

const TOTAL: u64 = 1 << 20;

fn tcp_frame(route: &Route, hdr: &TcpHeader, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let hl = route.emit_tcp(&mut buf, hdr, std::iter::once(payload));
    buf.truncate(hl);
    buf.extend_from_slice(payload);
    buf
}

/// Recomputes the TCP checksum of an IPv4 frame after an edit.
fn fix_tcp_checksum(frame: &mut [u8], route: &Route) {
    let l4 = 14 + 20;
    frame[l4 + 16..l4 + 18].fill(0);
    let len = frame.len() - l4;
    let mut c = Checksum::with_sum(stack::wire::pseudo_header(
        &route.src_ip,
        &route.dst_ip,
        smoltcp::wire::IpProtocol::Tcp,
        len,
    ));
    c.add(&frame[l4..]);
    let v = c.finish();
    frame[l4 + 16..l4 + 18].copy_from_slice(&v.to_be_bytes());
}

fn inject(host: &mut OurHost, now: Instant, frame: &[u8]) {
    let f = host.link.rx_frame(frame).expect("frame");
    host.stack.handle_frame(now, f);
}

fn route_a_to_b() -> Route {
    Route { src_mac: mac(1), dst_mac: mac(2), src_ip: IpAddress::Ipv4(ip(1)), dst_ip: IpAddress::Ipv4(ip(2)) }
}

#[test]
fn malformed_segments_are_counted_and_the_connection_survives() {
    let stream = Stream::new(31);
    let mut a = OurHost::new(1, tcp_config(), true, Role::Send { total: TOTAL }, stream).client(2);
    let mut b = OurHost::new(2, tcp_config(), true, Role::Recv { total: TOTAL }, stream).server();
    let mut wire = Wire::new(faults(0.0), 31);
    let mut now = Instant::ZERO;
    run_until(&mut a, &mut b, &mut wire, &mut now, Duration::from_secs(60), &mut |_, b| b.progress() > 100_000);

    let h = b.conn.expect("accepted");
    let (tuple, rcv_nxt, snd_nxt, ts) = {
        let c = b.stack.conn(h).expect("conn");
        (c.tuple(), c.rcv_nxt(), c.snd_nxt(), c.ts_recent().expect("timestamps in use"))
    };
    let route = route_a_to_b();
    let base = TcpHeader {
        src_port: tuple.remote.port,
        dst_port: tuple.local.port,
        seq: rcv_nxt,
        ack: snd_nxt,
        flags: TcpFlags::ACK,
        window: 1000,
        // Timestamps are in use: a segment without one is dropped before the checks below
        // (RFC 7323 section 3.2; counted, see the end).
        options: TcpOptions { timestamp: Some((ts, 0)), ..Default::default() },
    };
    let before: Counters = b.stack.counters().clone();

    // Bad checksum.
    let mut f = tcp_frame(&route, &base, b"hello");
    let last = f.len() - 1;
    f[last] ^= 0xff;
    inject(&mut b, now, &f);
    // Data offset 4 words (below the minimum), checksum fixed.
    let mut f = tcp_frame(&route, &base, b"hello");
    f[14 + 20 + 12] = 4 << 4;
    fix_tcp_checksum(&mut f, &route);
    inject(&mut b, now, &f);
    // Data offset 15 words in a 25-byte segment.
    let mut f = tcp_frame(&route, &base, b"hello");
    f[14 + 20 + 12] = 15 << 4;
    fix_tcp_checksum(&mut f, &route);
    inject(&mut b, now, &f);
    // Truncated option: a timestamp claiming 10 bytes with 2 left.
    let mut f = tcp_frame(&route, &TcpHeader { options: TcpOptions::default(), ..base }, &[]);
    f[14 + 20 + 12] = 6 << 4;
    f.extend_from_slice(&[1, 1, 8, 10]);
    let ip_len = (f.len() - 14) as u16;
    f[14 + 2..14 + 4].copy_from_slice(&ip_len.to_be_bytes());
    let mut ipp = smoltcp::wire::Ipv4Packet::new_unchecked(&mut f[14..]);
    ipp.fill_checksum();
    fix_tcp_checksum(&mut f, &route);
    inject(&mut b, now, &f);
    // RST far outside the window.
    let rst = TcpHeader { seq: rcv_nxt.add(1 << 30), flags: TcpFlags::RST, ..base };
    inject(&mut b, now, &tcp_frame(&route, &rst, &[]));
    // RST inside the window but not at rcv_nxt: challenge ACK.
    let rst = TcpHeader { seq: rcv_nxt.add(1000), flags: TcpFlags::RST, ..base };
    inject(&mut b, now, &tcp_frame(&route, &rst, &[]));
    // SYN on the established connection: challenge ACK.
    let syn = TcpHeader { seq: rcv_nxt, flags: TcpFlags::SYN, ..base };
    inject(&mut b, now, &tcp_frame(&route, &syn, &[]));
    // Data far outside the window.
    let far = TcpHeader { seq: rcv_nxt.add(1 << 31), ..base };
    inject(&mut b, now, &tcp_frame(&route, &far, b"junk"));
    // ACK of data never sent.
    let ack = TcpHeader { ack: snd_nxt.add(1 << 20), ..base };
    inject(&mut b, now, &tcp_frame(&route, &ack, &[]));
    // Broken IP: bad header checksum, truncated header, truncated Ethernet.
    // Without a timestamp: dropped whatever else it says.
    let bare = TcpHeader { options: TcpOptions::default(), ..base };
    inject(&mut b, now, &tcp_frame(&route, &bare, b"data"));
    let mut f = tcp_frame(&route, &base, &[]);
    f[14 + 8] ^= 1;
    inject(&mut b, now, &f);
    inject(&mut b, now, &f[..14 + 10]);
    inject(&mut b, now, &f[..8]);

    let c = b.stack.counters();
    assert_eq!(c.tcp_bad_checksum - before.tcp_bad_checksum, 1);
    assert_eq!(c.tcp_bad_offset - before.tcp_bad_offset, 2);
    assert_eq!(c.tcp_bad_options - before.tcp_bad_options, 1);
    assert_eq!(c.tcp_rst_bad_seq - before.tcp_rst_bad_seq, 1);
    assert_eq!(c.tcp_rst_challenged - before.tcp_rst_challenged, 1);
    assert_eq!(c.tcp_syn_challenged - before.tcp_syn_challenged, 1);
    assert!(c.tcp_out_of_window > before.tcp_out_of_window);
    assert_eq!(c.tcp_ack_unsent - before.tcp_ack_unsent, 1);
    assert_eq!(c.rx_bad_ipv4_checksum - before.rx_bad_ipv4_checksum, 1);
    assert_eq!(c.rx_bad_ipv4 - before.rx_bad_ipv4, 1);
    assert_eq!(c.rx_bad_ethernet - before.rx_bad_ethernet, 1);
    assert_eq!(c.tcp_ts_missing - before.tcp_ts_missing, 1);
    assert_eq!(c.tcp_resets_received, 0);
    assert_eq!(b.stack.conn(h).map(|c| c.state()), Some(State::Established));

    // The transfer completes byte-exact.
    run_until(&mut a, &mut b, &mut wire, &mut now, Duration::from_secs(600), &mut |a, b| a.done() && b.done());
    assert_eq!(b.progress(), TOTAL);
}

#[test]
fn exact_rst_resets() {
    let stream = Stream::new(32);
    let mut a = OurHost::new(1, tcp_config(), true, Role::Send { total: TOTAL }, stream).client(2);
    let mut b = OurHost::new(2, tcp_config(), true, Role::Recv { total: TOTAL }, stream).server();
    let mut wire = Wire::new(faults(0.0), 32);
    let mut now = Instant::ZERO;
    run_until(&mut a, &mut b, &mut wire, &mut now, Duration::from_secs(60), &mut |_, b| b.progress() > 10_000);
    let h = b.conn.expect("accepted");
    let c = b.stack.conn(h).expect("conn");
    let tuple = c.tuple();
    let rst = TcpHeader {
        src_port: tuple.remote.port,
        dst_port: tuple.local.port,
        seq: c.rcv_nxt(),
        flags: TcpFlags::RST,
        ..Default::default()
    };
    inject(&mut b, now, &tcp_frame(&route_a_to_b(), &rst, &[]));
    assert_eq!(b.stack.counters().tcp_resets_received, 1);
    assert_eq!(b.stack.readiness(h).error, Some(stack::tcp::ConnError::Reset));
}

/// Random garbage and randomly mutated valid frames (with the TCP checksum repaired, so
/// the mutation reaches the TCP parser and state machine): nothing panics.
#[test]
fn garbage_and_mutations_never_panic() {
    let stream = Stream::new(33);
    let mut a = OurHost::new(1, tcp_config(), true, Role::Send { total: TOTAL }, stream).client(2);
    let mut b = OurHost::new(2, tcp_config(), true, Role::Recv { total: TOTAL }, stream).server();
    let mut wire = Wire::new(faults(0.0), 33);
    let mut now = Instant::ZERO;
    run_until(&mut a, &mut b, &mut wire, &mut now, Duration::from_secs(60), &mut |_, b| b.progress() > 10_000);
    let h = b.conn.expect("accepted");
    let c = b.stack.conn(h).expect("conn");
    let tuple = c.tuple();
    let route = route_a_to_b();
    let mut rng = Rng::new(33);
    for i in 0..20_000u32 {
        if i % 2 == 0 {
            let len = rng.below(200) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            // Often make it look like IPv4 to reach deeper.
            if f.len() > 14 && rng.below(2) == 0 {
                f[12] = 0x08;
                f[13] = 0x00;
                f[..6].copy_from_slice(&mac(2).0);
            }
            inject(&mut b, now, &f);
        } else {
            let c = b.stack.conn(h).expect("conn");
            let hdr = TcpHeader {
                src_port: tuple.remote.port,
                dst_port: tuple.local.port,
                seq: c.rcv_nxt().add(rng.below(3000) as u32),
                ack: c.snd_nxt(),
                flags: TcpFlags::ACK,
                window: 1000,
                options: TcpOptions { timestamp: Some((1, 1)), ..Default::default() },
            };
            let mut f = tcp_frame(&route, &hdr, &[0u8; 32]);
            for _ in 0..1 + rng.below(3) {
                let at = 14 + 20 + rng.below(32) as usize;
                f[at] = rng.next_u64() as u8;
            }
            fix_tcp_checksum(&mut f, &route);
            inject(&mut b, now, &f);
        }
        if i % 1000 == 0 {
            b.stack.poll(now, &mut b.link);
            b.link.tx.clear();
        }
    }
    b.stack.poll(now, &mut b.link);
    b.link.tx.clear();
    // The attack reached every layer and was counted.
    let attacked = b.stack.counters().clone();
    assert!(attacked.rx_frames >= 20_000);
    assert!(attacked.rx_bad_ipv4 + attacked.rx_bad_ipv4_checksum > 0, "no garbage reached IPv4: {attacked:?}");
    let tcp_drops = attacked.tcp_bad_offset
        + attacked.tcp_bad_options
        + attacked.tcp_bad_flags
        + attacked.tcp_bad_port
        + attacked.tcp_out_of_window
        + attacked.tcp_paws_rejected;
    assert!(tcp_drops > 0, "no mutation reached TCP: {attacked:?}");

    // Mutations may legitimately reset the connection (an exact RST); the attacked stack
    // itself must still serve a fresh connection, byte-exact.
    let stream = Stream::new(34);
    let total = 64 << 10;
    b.serve_again(Role::Recv { total }, stream);
    let mut c2 = OurHost::new(3, tcp_config(), true, Role::Send { total }, stream).client(2);
    let mut wire = Wire::new(faults(0.0), 34);
    let mut t = now;
    run_until(&mut c2, &mut b, &mut wire, &mut t, Duration::from_secs(60), &mut |c, b| c.done() && b.done());
    assert_eq!(b.progress(), total);
    let after = b.stack.counters();
    assert_eq!(after.tcp_syn_received, attacked.tcp_syn_received + 1);
    assert_eq!(after.tcp_established, attacked.tcp_established + 1);
    assert!(after.tcp_rx_segments > attacked.tcp_rx_segments);
    drop(a);
}

#[test]
fn syn_flood_of_100k_then_a_normal_connection_works() {
    let stream = Stream::new(35);
    let mut b = OurHost::new(2, tcp_config(), true, Role::Recv { total: TOTAL }, stream).server();
    let mut rng = Rng::new(35);
    let now = Instant::ZERO;
    let mut sink = 0usize;
    for i in 0..100_000u32 {
        let src = smoltcp::wire::Ipv4Address::new(10, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8);
        let route = Route {
            src_mac: smoltcp::wire::EthernetAddress([2, 1, (i >> 16) as u8, (i >> 8) as u8, i as u8, 9]),
            dst_mac: mac(2),
            src_ip: IpAddress::Ipv4(src),
            dst_ip: IpAddress::Ipv4(ip(2)),
        };
        let syn = TcpHeader {
            src_port: 1024 + (rng.below(60000) as u16),
            dst_port: PORT,
            seq: Seq(rng.next_u64() as u32),
            flags: TcpFlags::SYN,
            window: 65535,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamp: Some((1, 0)),
                ..Default::default()
            },
            ..Default::default()
        };
        inject(&mut b, now, &tcp_frame(&route, &syn, &[]));
        if i % 512 == 511 {
            b.stack.poll(now, &mut b.link);
            sink += b.link.tx.len();
            b.link.tx.clear();
        }
    }
    b.stack.poll(now, &mut b.link);
    sink += b.link.tx.len();
    b.link.tx.clear();
    let c = b.stack.counters().clone();
    assert_eq!(c.tcp_syn_received, 100_000);
    let max_half_open = b.stack.config().max_half_open as u64;
    assert_eq!(b.stack.half_open_count() as u64, max_half_open);
    assert_eq!(c.tcp_syn_cookies_sent, 100_000 - max_half_open);
    assert!(sink as u64 >= 100_000 - c.tx_control_dropped, "every SYN answered unless the reply queue overflowed");
    eprintln!("flood: {c:?}");

    // A normal client now connects (through a SYN cookie while the queue is full) and
    // transfers byte-exact.
    let mut a = OurHost::new(1, tcp_config(), true, Role::Send { total: TOTAL }, stream).client(2);
    let mut wire = Wire::new(faults(0.0), 35);
    let mut t = now;
    run_until(&mut a, &mut b, &mut wire, &mut t, Duration::from_secs(600), &mut |a, b| a.done() && b.done());
    assert_eq!(b.progress(), TOTAL);
    assert_eq!(b.stack.counters().tcp_syn_cookies_accepted, 1);

    // The half-open entries time out and leave the table.
    let mut link = SimLink::new(pool(64, 0), true);
    let mut t2 = t;
    for _ in 0..400 {
        t2 += Duration::from_secs(1);
        b.stack.poll(t2, &mut link);
        link.tx.clear();
    }
    assert_eq!(b.stack.half_open_count(), 0);
    assert!(b.stack.counters().tcp_timeouts >= max_half_open);
}
