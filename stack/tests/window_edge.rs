//! The right edge of the window a receiver offers never moves left (RFC 9293 3.8.6),
//! including where window scaling rounds the field: found by the stack_frames fuzz target,
//! which saw an edge move back by less than one scaling unit.

mod common;

use common::pair::{config, Pair, Side};
use common::*;
use smoltcp::wire::{EthernetFrame, IpAddress, IpEndpoint, IpProtocol, Ipv4Packet, TcpOption, TcpPacket};
use stack::{ConnHandle, Duration};
use umem::BufSlice;

fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[test]
fn the_offered_right_edge_never_moves_left_while_the_reader_lags() {
    // The client (host 1) reads slowly and in odd amounts; its 3 MiB buffer (pool memory:
    // about 1 MiB of window in 1448-byte segments a 4 KiB frame) means a window scale of
    // 6, so most windows are not multiples of the scaling unit.
    let mut p = Pair::new(config(1, |c| c.tcp.recv_buffer = 3 << 20), config(2, |_| {}), 2048);
    let l = p.server.listen(PORT).expect("listen");
    let c = p.client.connect(p.now, IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT)).expect("connect");
    p.record = true;
    p.run_until(Duration::from_secs(5), &mut |_| {}, &mut |p| {
        p.client.readiness(c).connected && p.server.acceptable(l)
    });
    let s: ConnHandle = p.server.accept(l).expect("accepted");
    let mut sent = 0usize;
    let mut step = 0usize;
    // Turns come at least every 3 ms of virtual time, so the reader keeps reading (and the
    // window reopening) after the sender has filled it, whatever the sender's pace.
    let mut app = |p: &mut Pair| {
        step += 1;
        while sent < 3 << 20 && p.server.readiness(s).writable >= 1777 {
            let mut b = p.slink.pool.alloc_frame().expect("frame");
            b.get_mut().expect("unique")[..1777].fill(3);
            sent += p.server.write_frames(s, &[BufSlice::new(b, 0..1777).expect("range")]).expect("write");
        }
        // Read 333 bytes every third turn.
        if step.is_multiple_of(3) {
            let _ = p.client.read(c, 333);
        }
    };
    for _ in 0..1000 {
        p.run_for(Duration::from_millis(3), &mut app);
    }
    let mut wscale = 0u8;
    let mut last: Option<u32> = None;
    let mut checked = 0;
    for (to, f) in &p.recorded {
        if *to != Side::Server {
            continue;
        }
        let e = EthernetFrame::new_unchecked(&f[..]);
        let ip = Ipv4Packet::new_unchecked(e.payload());
        if ip.next_header() != IpProtocol::Tcp {
            continue;
        }
        let t = TcpPacket::new_unchecked(ip.payload());
        if t.syn() {
            let mut o = t.options();
            while let Ok((rest, opt)) = TcpOption::parse(o) {
                if let TcpOption::WindowScale(w) = opt {
                    wscale = w;
                }
                if rest.is_empty() {
                    break;
                }
                o = rest;
            }
            continue;
        }
        let right = (t.ack_number().0 as u32).wrapping_add(u32::from(t.window_len()) << wscale);
        if let Some(prev) = last {
            assert!(!lt(right, prev), "the right edge moved back from {prev} to {right}");
        }
        last = Some(right);
        checked += 1;
    }
    assert!(wscale > 0, "window scaling in use");
    assert!(checked > 20, "only {checked} ACKs seen");
}
