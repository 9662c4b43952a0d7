//! `Stack::shutdown` closes our sending side only (`shutdown(SHUT_WR)`): the FIN follows
//! the queued data at once, without waiting for it to be acknowledged, and the connection
//! stays the application's, which goes on reading what the peer sends. A server that
//! answers `Connection: close` this way lets the client see the end with the answer, and
//! it is the server, having closed first, that holds the TIME-WAIT.

mod common;

use common::pair::{config, Pair, Side};
use common::*;
use smoltcp::wire::IpAddress;
use stack::tcp::State;
use stack::{ConnHandle, Duration};
use umem::BufSlice;

/// Offset of the TCP header in an untagged IPv4 frame without IP options.
const L4: usize = 14 + 20;
const FIN: u8 = 0x01;

fn payload_len(frame: &[u8]) -> usize {
    frame.len() - L4 - usize::from(frame[L4 + 12] >> 4) * 4
}

/// Queues `n` bytes of `fill` on `h` from `side`'s pool.
fn write(p: &mut Pair, side: Side, h: ConnHandle, n: usize, fill: u8) {
    let pool = if side == Side::Client { &p.clink.pool } else { &p.slink.pool };
    let mut b = pool.alloc_frame().expect("frame");
    b.get_mut().expect("unique")[..n].fill(fill);
    let took = p.stack(side).write_frames(h, &[BufSlice::new(b, 0..n).expect("range")]).expect("write");
    assert_eq!(took, n);
}

fn read_all(p: &mut Pair, side: Side, h: ConnHandle) -> Vec<u8> {
    let mut got = Vec::new();
    while let Ok(Some(s)) = p.stack(side).read(h, usize::MAX) {
        got.extend_from_slice(s.as_bytes());
    }
    got
}

#[test]
fn the_fin_follows_the_data_at_once_and_the_peer_can_still_be_read() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 1024);
    let (c, s) = p.connect_accept(IpAddress::Ipv4(ip(2)), Duration::from_millis(10));
    p.record = true;
    write(&mut p, Side::Server, s, 3000, 0x5a);
    p.server.shutdown(s).expect("shutdown");
    assert_eq!(p.server.conn(s).expect("still ours").state(), State::FinWait1);
    assert_eq!(p.server.readiness(s).writable, 0, "room to write after shutdown");
    p.run_for(Duration::from_millis(1), &mut |_| {});

    // The FIN left in the server's first burst, before the client had acknowledged any data.
    let first_reply = p.recorded.iter().position(|(to, f)| *to == Side::Server && payload_len(f) == 0);
    let fin = p.recorded.iter().position(|(to, f)| *to == Side::Client && f[L4 + 13] & FIN != 0);
    let fin = fin.expect("the server sent no FIN");
    assert!(first_reply.is_none_or(|r| fin < r), "the FIN waited for an ACK: {:?}", (fin, first_reply));
    assert_eq!(read_all(&mut p, Side::Client, c), vec![0x5a; 3000]);
    assert!(p.client.readiness(c).read_closed);

    // Half-closed, not orphaned: what the client sends now is read, not answered by a RST.
    write(&mut p, Side::Client, c, 700, 0xa5);
    p.run_for(Duration::from_millis(1), &mut |_| {});
    assert_eq!(read_all(&mut p, Side::Server, s), vec![0xa5; 700]);
    assert_eq!(p.server.counters().tcp_abort_on_data, 0);

    // The client closes second: TIME-WAIT is the server's, kept compact once it lets go.
    p.client.close(c).expect("close");
    p.run_for(Duration::from_millis(1), &mut |_| {});
    assert_eq!(p.server.conn(s).expect("still ours").state(), State::TimeWait);
    p.server.close(s).expect("close");
    p.run_for(Duration::from_millis(1), &mut |_| {});
    assert_eq!((p.server.time_wait_count(), p.server.connection_count()), (1, 0));
    assert_eq!((p.client.time_wait_count(), p.client.connection_count()), (0, 0));
}

#[test]
fn shutdown_twice_or_after_the_peer_closed_sends_one_fin() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 1024);
    let (c, s) = p.connect_accept(IpAddress::Ipv4(ip(2)), Duration::from_millis(10));
    p.client.close(c).expect("close");
    p.run_for(Duration::from_millis(1), &mut |_| {});
    assert_eq!(p.server.conn(s).expect("ours").state(), State::CloseWait);
    p.record = true;
    p.server.shutdown(s).expect("shutdown");
    p.server.shutdown(s).expect("shutdown again");
    assert_eq!(p.server.conn(s).expect("ours").state(), State::LastAck);
    p.run_for(Duration::from_millis(1), &mut |_| {});
    let fins = p.recorded.iter().filter(|(to, f)| *to == Side::Client && f[L4 + 13] & FIN != 0).count();
    assert_eq!(fins, 1);
    assert!(p.server.readiness(s).closed);
    p.server.close(s).expect("close");
    assert_eq!(p.server.connection_count(), 0);
}
