//! The RST of an abort lands where the peer accepts it. A receiver that shrank its window
//! to zero (Linux does when it prunes a tiny receive buffer) accepts a RST only at exactly
//! its `RCV.NXT` (RFC 5961 §3.2; outside the window it is dropped without a word), so a
//! RST at `SND.NXT` beyond the window end leaves a zero-window staller hanging. Like
//! Linux's `tcp_acceptable_seq`, the RST is sent at `SND.NXT` or, if that lies past the
//! window the peer offers, at the window's right edge.

mod common;

use common::pair::{config, Pair, Side};
use common::*;
use smoltcp::wire::{IpAddress, IpEndpoint};
use stack::tcp::ConnError;
use stack::wire::{pseudo_header, Checksum};
use stack::Duration;
use umem::BufSlice;

/// Offset of the TCP header in an untagged IPv4 frame without IP options.
const L4: usize = 14 + 20;

fn seq_of(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[L4 + 4..L4 + 8].try_into().expect("4 bytes"))
}

fn ack_of(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[L4 + 8..L4 + 12].try_into().expect("4 bytes"))
}

fn flags_of(frame: &[u8]) -> u8 {
    frame[L4 + 13]
}

fn payload_len(frame: &[u8]) -> usize {
    frame.len() - L4 - usize::from(frame[L4 + 12] >> 4) * 4
}

/// Sets the window field of a TCP/IPv4 frame and fixes its checksum.
fn set_window(frame: &mut [u8], window: u16) {
    frame[L4 + 14..L4 + 16].copy_from_slice(&window.to_be_bytes());
    frame[L4 + 16..L4 + 18].fill(0);
    let src = IpAddress::Ipv4(smoltcp::wire::Ipv4Address::from_octets(frame[26..30].try_into().expect("4 bytes")));
    let dst = IpAddress::Ipv4(smoltcp::wire::Ipv4Address::from_octets(frame[30..34].try_into().expect("4 bytes")));
    let mut c = Checksum::with_sum(pseudo_header(&src, &dst, smoltcp::wire::IpProtocol::Tcp, frame.len() - L4));
    c.add(&frame[L4..]);
    let v = c.finish();
    frame[L4 + 16..L4 + 18].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn an_abort_after_the_peer_shrank_its_window_resets_at_the_window_edge() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 1024);
    let l = p.server.listen(PORT).expect("listen");
    let c = p.client.connect(p.now, IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT)).expect("connect");
    p.run_until(Duration::from_secs(5), &mut |_| {}, &mut |p| {
        p.client.readiness(c).connected && p.server.acceptable(l)
    });
    let s = p.server.accept(l).expect("accepted");
    p.run_for(Duration::from_millis(100), &mut |_| {});

    // The client's last word: an ACK of everything so far, with an open window.
    p.record = true;
    p.run_for(Duration::from_millis(10), &mut |_| {});
    let mut b = p.slink.pool.alloc_frame().expect("frame");
    b.get_mut().expect("unique")[..1000].fill(1);
    p.server.write_frames(s, &[BufSlice::new(b, 0..1000).expect("range")]).expect("write");
    p.run_for(Duration::from_millis(500), &mut |_| {});
    let last_ack = p
        .recorded
        .iter()
        .rev()
        .find(|(to, f)| *to == Side::Server && payload_len(f) == 0 && flags_of(f) & 0x10 != 0)
        .map(|(_, f)| f.clone())
        .expect("the client acknowledged the data");
    let rcv_nxt = ack_of(&last_ack);

    // Now the server's data vanishes on the way, and the client's window shrinks to zero
    // (a window-only update of the same ACK, as a pruning Linux receiver sends).
    p.blackhole = Some(Side::Client);
    for _ in 0..4 {
        let mut b = p.slink.pool.alloc_frame().expect("frame");
        b.get_mut().expect("unique")[..1400].fill(2);
        p.server.write_frames(s, &[BufSlice::new(b, 0..1400).expect("range")]).expect("write");
    }
    p.run_for(Duration::from_millis(1), &mut |_| {});
    let mut shrunk = last_ack.clone();
    set_window(&mut shrunk, 0);
    p.inject(Side::Server, &shrunk);

    p.recorded.clear();
    p.blackhole = None;
    p.server.abort(s).expect("abort");
    p.run_for(Duration::from_millis(10), &mut |_| {});
    let rst = p
        .recorded
        .iter()
        .find(|(to, f)| *to == Side::Client && flags_of(f) & 0x04 != 0)
        .map(|(_, f)| f.clone())
        .expect("the abort sent a RST");
    assert_eq!(seq_of(&rst), rcv_nxt, "the RST sits at the client's RCV.NXT, the zero window's edge");
    assert_eq!(p.client.readiness(c).error, Some(ConnError::Reset), "and the client took it");
}
