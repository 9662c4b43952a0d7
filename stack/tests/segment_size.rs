//! A data segment that carries SACK blocks has less room for payload: the MSS makes room
//! for the timestamps only, so each block (and the option's NOPs) comes out of the
//! payload, or the frame outgrows the MTU and the link drops it (veth counts it as a TX
//! drop; a NIC refuses it). That happens whenever data flows both ways and one direction
//! loses a segment: a server that received a request out of order answers with blocks.

mod common;

use common::pair::{config, Pair, Side};
use common::*;
use smoltcp::wire::IpAddress;
use stack::{ConnHandle, Duration};
use umem::BufSlice;

const L4: usize = 14 + 20;

fn header_len(frame: &[u8]) -> usize {
    usize::from(frame[L4 + 12] >> 4) * 4
}

/// Whether a TCP/IPv4 frame carries payload and a SACK option.
fn data_with_sack(frame: &[u8]) -> bool {
    let hl = header_len(frame);
    if frame.len() <= L4 + hl {
        return false;
    }
    let opts = &frame[L4 + 20..L4 + hl];
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return false,
            1 => i += 1,
            5 => return true,
            _ => i += usize::from(opts.get(i + 1).copied().unwrap_or(1)).max(2),
        }
    }
    false
}

fn write(p: &mut Pair, side: Side, h: ConnHandle, n: usize) {
    let mut left = n;
    while left > 0 {
        let k = left.min(4096);
        let pool = if side == Side::Client { &p.clink.pool } else { &p.slink.pool };
        let mut b = pool.alloc_frame().expect("frame");
        b.get_mut().expect("unique")[..k].fill(3);
        let took = p.stack(side).write_frames(h, &[BufSlice::new(b, 0..k).expect("range")]).expect("write");
        assert_eq!(took, k);
        left -= k;
    }
}

fn run(timestamps: bool) {
    let cfg = |n| {
        config(n, |c| {
            c.tcp.timestamps = timestamps;
        })
    };
    let mut p = Pair::new(cfg(1), cfg(2), 1024);
    // A 10 ms round trip: the client's loss probe waits long enough for the test.
    p.latency = Duration::from_millis(5);
    let (c, s) = p.connect_accept(IpAddress::Ipv4(ip(2)), Duration::from_millis(10));
    // The client's first segment is lost; the next ones reach the server out of order.
    // (Full segments: Nagle holds back nothing.)
    let mss = p.client.conn(c).expect("connected").mss();
    p.blackhole = Some(Side::Server);
    write(&mut p, Side::Client, c, mss);
    p.turn(&mut |_| {});
    p.blackhole = None;
    write(&mut p, Side::Client, c, 3 * mss);
    p.turn(&mut |_| {});
    p.run_for(Duration::from_millis(6), &mut |_| {});
    // Now the server sends full segments while its receive queue has holes to report.
    p.record = true;
    write(&mut p, Side::Server, s, 64 << 10);
    p.run_for(Duration::from_secs(2), &mut |_| {});

    let mtu = p.slink.mtu;
    let to_client: Vec<_> = p.recorded.iter().filter(|(to, _)| *to == Side::Client).map(|(_, f)| f).collect();
    let with_blocks = to_client.iter().filter(|f| data_with_sack(f)).count();
    assert!(with_blocks > 0, "no data segment carried SACK blocks: the test lost its point");
    let longest = to_client.iter().map(|f| f.len()).max().unwrap_or(0);
    assert!(longest <= mtu + 14, "a {longest} B frame on a {mtu} B MTU link");
    check_link(&p.slink);
    check_link(&p.clink);
    // And everything arrived: four segments one way, 64 KiB the other.
    let mut got = 0;
    while let Ok(Some(b)) = p.server.read(s, usize::MAX) {
        got += b.len();
    }
    assert_eq!(got, 4 * mss);
    let mut got = 0;
    while let Ok(Some(b)) = p.client.read(c, usize::MAX) {
        got += b.len();
    }
    assert_eq!(got, 64 << 10);
}

#[test]
fn segments_with_sack_blocks_fit_the_mtu_with_timestamps() {
    run(true);
}

#[test]
fn segments_with_sack_blocks_fit_the_mtu_without_timestamps() {
    run(false);
}
