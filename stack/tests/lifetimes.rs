//! Every TCP state has a bounded lifetime once the application has let go, and each bound
//! is counted: FIN-WAIT-2 times out; an orphan whose peer keeps a zero window is dropped
//! after `orphan_retries` probes (while an owned connection keeps probing, RFC 1122);
//! retransmissions give up after `orphan_retries` (orphans) or `max_retries`; SYN-SENT and
//! SYN-RECEIVED after `syn_retries`; keep-alive resets a connection whose peer vanished.

mod common;

use common::pair::{config, Pair, Side};
use common::*;
use smoltcp::wire::{IpAddress, IpEndpoint};
use stack::tcp::{ConnError, KeepAlive};
use stack::{ConnHandle, Duration};
use umem::BufSlice;

/// One connection, accepted: `(client handle, server handle)`.
fn connect_one(p: &mut Pair) -> (ConnHandle, ConnHandle) {
    p.connect_accept(IpAddress::Ipv4(ip(2)), Duration::from_millis(100))
}

/// Writes `n` bytes from the server's pool (4 KiB frames).
fn write(p: &mut Pair, h: ConnHandle, n: usize) {
    let mut left = n;
    while left > 0 {
        let k = left.min(4096);
        let mut b = p.slink.pool.alloc_frame().expect("frame");
        b.get_mut().expect("unique")[..k].fill(7);
        let took = p.server.write_frames(h, &[BufSlice::new(b, 0..k).expect("range")]).expect("write");
        assert_eq!(took, k);
        left -= k;
    }
}

fn server_frames_free(p: &Pair) -> bool {
    let s = p.slink.pool.stats();
    s.frames_free == s.frames
}

#[test]
fn fin_wait_2_times_out() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |c| c.tcp.fin_wait2_timeout = Duration::from_secs(5)), 1024);
    let (_c, s) = connect_one(&mut p);
    // Our FIN is acknowledged; the peer's application never closes (CLOSE-WAIT forever).
    p.server.close(s).expect("close");
    p.run_for(Duration::from_millis(4800), &mut |_| {});
    // The orphan waits as a compact FIN-WAIT-2 entry, not a connection.
    assert_eq!((p.server.connection_count(), p.server.fin_wait2_count()), (0, 1));
    assert_eq!(p.counters(Side::Server).tcp_fin_wait2_entries, 1);
    assert_eq!(p.counters(Side::Server).tcp_fin_wait2_timeouts, 0);
    p.run_for(Duration::from_millis(400), &mut |_| {});
    assert_eq!(p.server.connection_count(), 0);
    assert_eq!(p.server.fin_wait2_count(), 0);
    assert_eq!(p.server.time_wait_count(), 0);
    assert_eq!(p.counters(Side::Server).tcp_fin_wait2_timeouts, 1);
    assert_eq!(p.server.poll_at(), None);
}

/// A client that never reads, with a small window: the server's data stall on a zero
/// window. Returns the pair and the server's handle.
fn stalled(orphan_retries: u32) -> (Pair, ConnHandle) {
    let mut p =
        Pair::new(config(1, |c| c.tcp.recv_buffer = 8192), config(2, |c| c.tcp.orphan_retries = orphan_retries), 1024);
    let (_c, s) = connect_one(&mut p);
    write(&mut p, s, 64 << 10);
    (p, s)
}

#[test]
fn an_orphan_facing_a_zero_window_is_dropped_after_orphan_retries_probes() {
    let (mut p, s) = stalled(3);
    p.server.close(s).expect("close");
    p.run_for(Duration::from_secs(120), &mut |_| {});
    let c = p.counters(Side::Server);
    assert_eq!(c.tcp_window_probes, 3, "probes before giving up");
    assert_eq!(c.tcp_orphan_drops, 1);
    assert_eq!(p.server.connection_count(), 0);
    assert!(server_frames_free(&p), "the dropped connection's frames are back");
}

#[test]
fn an_owned_connection_keeps_probing_a_zero_window() {
    let (mut p, s) = stalled(3);
    p.run_for(Duration::from_secs(120), &mut |_| {});
    let c = p.counters(Side::Server);
    assert!(c.tcp_window_probes > 3, "probes: {}", c.tcp_window_probes);
    assert_eq!(c.tcp_orphan_drops, 0);
    assert!(p.server.readiness(s).error.is_none());
}

#[test]
fn an_orphan_stops_retransmitting_after_orphan_retries() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |c| c.tcp.orphan_retries = 3), 1024);
    let (_c, s) = connect_one(&mut p);
    p.blackhole = Some(Side::Client);
    write(&mut p, s, 10_000);
    p.server.close(s).expect("close");
    p.run_for(Duration::from_secs(60), &mut |_| {});
    let c = p.counters(Side::Server);
    assert_eq!(c.tcp_rto_expired, 4, "three retransmission timeouts, then the one that gives up");
    assert_eq!((c.tcp_timeouts, c.tcp_orphan_drops), (1, 1));
    assert_eq!(p.server.connection_count(), 0);
    assert!(server_frames_free(&p));
}

#[test]
fn an_owned_connection_stops_retransmitting_after_max_retries() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |c| c.tcp.max_retries = 4), 1024);
    let (_c, s) = connect_one(&mut p);
    p.blackhole = Some(Side::Client);
    write(&mut p, s, 10_000);
    p.run_for(Duration::from_secs(60), &mut |_| {});
    let c = p.counters(Side::Server);
    assert_eq!(c.tcp_rto_expired, 5);
    assert_eq!((c.tcp_timeouts, c.tcp_orphan_drops), (1, 0));
    assert_eq!(p.server.readiness(s).error, Some(ConnError::TimedOut));
}

#[test]
fn handshakes_give_up_after_syn_retries() {
    // SYN-SENT: the server never answers.
    let mut p = Pair::new(config(1, |c| c.tcp.syn_retries = 2), config(2, |_| {}), 1024);
    p.blackhole = Some(Side::Server);
    let c = p.client.connect(p.now, IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT)).expect("connect");
    p.run_for(Duration::from_secs(30), &mut |_| {});
    assert_eq!(p.client.readiness(c).error, Some(ConnError::TimedOut));
    assert_eq!(p.counters(Side::Client).tcp_timeouts, 1);
    assert_eq!(p.counters(Side::Client).tcp_rto_expired, 3);

    // SYN-RECEIVED: the SYN-ACKs never arrive.
    let mut p = Pair::new(config(1, |c| c.tcp.syn_retries = 0), config(2, |c| c.tcp.syn_retries = 2), 1024);
    p.server.listen(PORT).expect("listen");
    let now = p.now;
    p.client.neighbors_mut().learn(now, IpAddress::Ipv4(ip(2)), mac(2));
    p.blackhole = Some(Side::Client);
    p.client.connect(p.now, IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT)).expect("connect");
    p.run_for(Duration::from_millis(10), &mut |_| {});
    assert_eq!(p.server.half_open_count(), 1);
    p.run_for(Duration::from_secs(30), &mut |_| {});
    assert_eq!(p.server.half_open_count(), 0);
    assert_eq!(p.server.connection_count(), 0);
    assert_eq!(p.counters(Side::Server).tcp_timeouts, 1);
}

#[test]
fn keepalive_probes_an_idle_peer_and_resets_a_vanished_one() {
    let ka = KeepAlive { idle: Duration::from_secs(10), interval: Duration::from_secs(1), probes: 3 };
    let mut p = Pair::new(config(1, |_| {}), config(2, |c| c.tcp.keepalive = Some(ka)), 1024);
    let (_c, s) = connect_one(&mut p);
    p.run_for(Duration::from_millis(9_500), &mut |_| {});
    assert_eq!(p.counters(Side::Server).tcp_keepalive_probes, 0);
    p.run_for(Duration::from_secs(1), &mut |_| {});
    assert_eq!(p.counters(Side::Server).tcp_keepalive_probes, 1);
    // Answered: the next probe comes a whole idle period later.
    p.run_for(Duration::from_secs(9), &mut |_| {});
    assert_eq!(p.counters(Side::Server).tcp_keepalive_probes, 1);
    p.run_for(Duration::from_secs(1), &mut |_| {});
    assert_eq!(p.counters(Side::Server).tcp_keepalive_probes, 2);
    assert!(p.server.readiness(s).error.is_none());

    p.blackhole = Some(Side::Client);
    p.run_for(Duration::from_secs(15), &mut |_| {});
    let c = p.counters(Side::Server);
    assert_eq!(c.tcp_keepalive_probes, 5, "three unanswered probes");
    assert_eq!(c.tcp_keepalive_timeouts, 1);
    assert_eq!(p.server.readiness(s).error, Some(ConnError::TimedOut));
}

/// The peer shrinks its window to zero while data are in flight, and the data are lost: a
/// retransmission timeout pulls `snd_nxt` back to `snd_una`, and with a zero window
/// nothing can leave to restart a timer. The persist timer must take over (found by the
/// stack_frames fuzz target: the orphan sat in FIN-WAIT-1 with no timer, forever).
#[test]
fn a_zero_window_after_a_timeout_still_has_a_timer_and_an_orphan_is_dropped() {
    use smoltcp::wire::{EthernetFrame, IpProtocol, Ipv4Packet, TcpPacket};
    let mut p = Pair::new(config(1, |_| {}), config(2, |c| c.tcp.orphan_retries = 3), 1024);
    let (_c, s) = connect_one(&mut p);
    // Keep one of the client's pure ACKs as a template.
    p.record = true;
    write(&mut p, s, 1000);
    p.run_for(Duration::from_millis(100), &mut |_| {});
    p.record = false;
    let (_, template) = p
        .recorded
        .iter()
        .rev()
        .find(|(to, f)| {
            *to == Side::Server && {
                let e = EthernetFrame::new_unchecked(&f[..]);
                let ip = Ipv4Packet::new_unchecked(e.payload());
                ip.next_header() == IpProtocol::Tcp && TcpPacket::new_unchecked(ip.payload()).payload().is_empty()
            }
        })
        .cloned()
        .expect("a client ACK");
    // Data the client never sees; then an ACK of nothing new, with a zero window.
    p.blackhole = Some(Side::Client);
    write(&mut p, s, 2000);
    p.run_for(Duration::from_millis(1), &mut |_| {});
    p.server.close(s).expect("close");
    let mut f = template.clone();
    {
        let mut e = EthernetFrame::new_unchecked(&mut f[..]);
        let mut ip = Ipv4Packet::new_unchecked(e.payload_mut());
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let mut t = TcpPacket::new_unchecked(ip.payload_mut());
        t.set_window_len(0);
        t.fill_checksum(&src.into(), &dst.into());
    }
    let frame = p.slink.rx_frame(&f).expect("frame");
    p.server.handle_frame(p.now, frame);
    p.run_for(Duration::from_secs(300), &mut |_| {});
    let c = p.counters(Side::Server);
    assert!(c.tcp_rto_expired >= 1, "the data timed out first: {c:?}");
    assert_eq!(c.tcp_orphan_drops, 1, "the orphan is dropped: {c:?}");
    assert_eq!(p.server.connection_count(), 0);
    assert_eq!(p.server.poll_at(), None);
    assert!(server_frames_free(&p), "the dropped connection's frames are back");
}
