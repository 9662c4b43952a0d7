//! Receive memory is counted in the pool frames segments pin, not in payload bytes: a
//! peer sending one-byte segments out of order holds at most `recv_buffer` of frames per
//! connection; one-byte segments in order share compact frames; when the pool runs low,
//! out-of-order queues are pruned, then new connections refused, each counted; and the
//! pool never runs dry, so the stack keeps receiving.

mod common;

use common::pair::{config, Pair, Side};
use common::*;
use smoltcp::wire::{IpAddress, IpEndpoint};
use stack::wire::{Route, TcpFlags, TcpHeader, TcpOptions};
use stack::{ConnHandle, Duration, Pressure};
use umem::BufSlice;

/// `n` connections from the client, accepted by the server (which never reads them).
fn open(p: &mut Pair, n: usize) -> Vec<(ConnHandle, ConnHandle)> {
    let l = p.server.listen(PORT).expect("listen");
    let to = IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT);
    let clients: Vec<ConnHandle> = (0..n).map(|_| p.client.connect(p.now, to).expect("connect")).collect();
    let servers = std::cell::RefCell::new(Vec::new());
    p.run_until(
        Duration::from_secs(5),
        &mut |p| {
            while let Some(s) = p.server.accept(l) {
                servers.borrow_mut().push(s);
            }
        },
        &mut |_| servers.borrow().len() == n,
    );
    let servers = servers.into_inner();
    p.run_for(Duration::from_millis(50), &mut |_| {});
    // Match each server handle to its client by port.
    clients
        .into_iter()
        .map(|c| {
            let port = p.client.conn(c).expect("conn").tuple().local.port;
            let s = servers
                .iter()
                .copied()
                .find(|&s| p.server.conn(s).is_some_and(|k| k.tuple().remote.port == port))
                .expect("accepted");
            (c, s)
        })
        .collect()
}

/// Sends `count` one-byte segments out of order to server connection `s`, as its peer
/// would (every other byte, the first one missing), straight onto the server.
fn ooo_bytes(p: &mut Pair, s: ConnHandle, count: u32) {
    let (hdr, route) = {
        let c = p.server.conn(s).expect("conn");
        let t = c.tuple();
        let hdr = TcpHeader {
            src_port: t.remote.port,
            dst_port: t.local.port,
            seq: c.rcv_nxt(),
            ack: c.snd_nxt(),
            flags: TcpFlags::ACK,
            window: 1000,
            options: TcpOptions { timestamp: Some((c.ts_recent().expect("ts"), 0)), ..Default::default() },
        };
        (hdr, Route { src_mac: mac(1), dst_mac: mac(2), src_ip: t.remote.addr, dst_ip: t.local.addr })
    };
    for i in 0..count {
        let h = TcpHeader { seq: hdr.seq.add(1 + 2 * i), ..hdr };
        let mut f = vec![0u8; 256];
        let n = route.emit_tcp(&mut f, &h, std::iter::once(&b"x"[..]));
        f.truncate(n);
        f.push(b'x');
        p.inject(Side::Server, &f);
        let now = p.now;
        p.server.poll(now, &mut p.slink);
        p.slink.tx.clear();
    }
}

fn frames_held(p: &Pair) -> u32 {
    let s = p.slink.pool.stats();
    s.frames - s.frames_free
}

#[test]
fn one_byte_segments_out_of_order_hold_at_most_the_budget_in_frames() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 8192);
    let conns = open(&mut p, 8);
    let budget_frames = (stack::tcp::TcpConfig::default().recv_buffer / 4096) as u32;
    for &(_, s) in &conns {
        ooo_bytes(&mut p, s, 512);
        assert!(p.server.conn(s).expect("conn").recv_memory() <= budget_frames as usize * 4096);
    }
    let held = frames_held(&p);
    assert!(held <= 8 * budget_frames + 16, "{held} frames held by 8 connections of 1-byte segments");
    let c = p.counters(Side::Server);
    assert_eq!(c.tcp_ooo_kept, 8 * u64::from(budget_frames));
    assert_eq!(c.tcp_ooo_dropped, 8 * (512 - u64::from(budget_frames)));
    assert_eq!(p.server.pressure(), Pressure::None);
    let (_, s) = conns[0];
    assert_eq!(p.server.conn(s).expect("conn").recv_memory(), budget_frames as usize * 4096);
    // Aborting them gives every frame back.
    for (_, s) in conns {
        p.server.abort(s).expect("abort");
    }
    p.run_for(Duration::from_millis(10), &mut |_| {});
    assert!(frames_held(&p) < 8, "{} frames still held", frames_held(&p));
}

#[test]
fn one_byte_segments_in_order_share_compact_frames() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 4096);
    let conns = open(&mut p, 1);
    let (c, s) = conns[0];
    // The client writes 2000 one-byte segments; the server application reads none.
    for _ in 0..2000 {
        let mut b = p.clink.pool.alloc_frame().expect("frame");
        b.get_mut().expect("unique")[0] = b'y';
        p.client.write_frames(c, &[BufSlice::new(b, 0..1).expect("range")]).expect("write");
        p.turn(&mut |_| {});
    }
    p.run_for(Duration::from_millis(100), &mut |_| {});
    assert_eq!(p.server.readiness(s).readable, 2000);
    let mem = p.server.conn(s).expect("conn").recv_memory();
    assert!(mem <= 2 * 4096, "{mem} bytes of frames for 2000 bytes");
    assert!(frames_held(&p) <= 4, "{} frames held", frames_held(&p));
    let ctr = p.counters(Side::Server);
    assert!(ctr.rx_bytes_coalesced >= 1990, "{} bytes coalesced", ctr.rx_bytes_coalesced);
    assert_eq!(ctr.payload_bytes_copied, 0, "receive copies are counted apart");
    // Every byte reads back, in order.
    let mut got = Vec::new();
    while let Some(b) = p.server.read(s, usize::MAX).expect("read") {
        got.extend_from_slice(b.as_bytes());
    }
    assert_eq!(got, vec![b'y'; 2000]);
}

#[test]
fn a_short_pool_prunes_out_of_order_queues_then_refuses_connections() {
    // 1024 frames: prune below 128 free, refuse below 64.
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 1024);
    let conns = open(&mut p, 6);
    for &(_, s) in &conns {
        ooo_bytes(&mut p, s, 256);
        let free = p.slink.pool.stats().frames_free;
        assert!(free >= 100, "the pool fell to {free} free frames");
    }
    let c = p.counters(Side::Server).clone();
    assert!(c.tcp_pressure_prunes > 0, "no connection pruned: {c:?}");
    assert!(c.tcp_ooo_pruned >= 256);
    assert_eq!(c.tcp_pressure_refused, 0, "pruning kept the pool above the refuse mark");
    // The oldest holders were pruned first.
    let (_, first) = conns[0];
    assert_eq!(p.server.conn(first).expect("conn").recv_memory(), 0);

    // Frames held elsewhere (say, by the application): pruning cannot help, SYNs are refused.
    for &(_, s) in &conns {
        p.server.abort(s).expect("abort");
    }
    p.run_for(Duration::from_millis(10), &mut |_| {});
    let free = p.slink.pool.stats().frames_free.saturating_sub(40);
    let hog: Vec<umem::Buf> = (0..free).filter_map(|_| p.slink.pool.alloc_frame()).collect();
    assert_eq!(p.server.pressure(), Pressure::Refuse);
    let to = IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT);
    let late = p.client.connect(p.now, to).expect("connect");
    p.run_for(Duration::from_millis(500), &mut |_| {});
    assert!(p.counters(Side::Server).tcp_pressure_refused > 0);
    assert!(!p.client.readiness(late).connected);
    // Once the frames come back, the client's retransmitted SYN gets in.
    drop(hog);
    p.run_for(Duration::from_secs(3), &mut |_| {});
    assert!(p.client.readiness(late).connected, "refused after the pool recovered");
}
