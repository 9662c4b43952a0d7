//! TIME-WAIT as compact entries: a closed connection leaves its four-tuple and a few
//! sequence numbers, no connection and no frame; a retransmitted FIN is acknowledged and
//! restarts the wait; a new SYN for the four-tuple is accepted when its timestamp (or
//! sequence number) says it is new (RFC 6191) and dropped otherwise; the table has a cap at
//! which the oldest entry is recycled.

mod common;

use std::cell::RefCell;

use common::pair::{config, Pair, Side};
use common::*;
use smoltcp::wire::{IpAddress, IpEndpoint};
use stack::tcp::FourTuple;
use stack::wire::{parse_frame, parse_tcp, Seq, TcpFlags, TcpHeader, L3};
use stack::{ConnHandle, Duration, ListenHandle, Stack};

/// The server's view of a client connection's four-tuple.
fn server_tuple(client: &Stack, h: ConnHandle) -> FourTuple {
    let t = client.conn(h).expect("conn").tuple();
    FourTuple { local: t.remote, remote: t.local }
}

/// Opens `n` connections, at most `window` at a time. The server closes each as soon as
/// it accepts it (as an HTTP server answering `Connection: close` does), the client closes
/// on end of stream, so TIME-WAIT is on the server. Returns the server-side four-tuples in
/// order of opening.
fn churn(p: &mut Pair, l: ListenHandle, n: usize, window: usize) -> Vec<FourTuple> {
    let to = IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT);
    let tuples = RefCell::new(Vec::new());
    let open = RefCell::new(Vec::<ConnHandle>::new());
    p.run_until(
        Duration::from_secs(30),
        &mut |p| {
            while let Some(h) = p.server.accept(l) {
                p.server.close(h).expect("close");
            }
            open.borrow_mut().retain(|&h| {
                if p.client.readiness(h).read_closed {
                    p.client.close(h).expect("close");
                    false
                } else {
                    true
                }
            });
            while open.borrow().len() < window && tuples.borrow().len() < n {
                let h = p.client.connect(p.now, to).expect("connect");
                tuples.borrow_mut().push(server_tuple(&p.client, h));
                open.borrow_mut().push(h);
            }
        },
        &mut |p| {
            tuples.borrow().len() == n
                && open.borrow().is_empty()
                && p.server.connection_count() == 0
                && p.client.connection_count() == 0
        },
    );
    tuples.into_inner()
}

fn frames_all_free(p: &Pair) -> bool {
    let (c, s) = (p.clink.pool.stats(), p.slink.pool.stats());
    c.frames_free == c.frames && s.frames_free == s.frames
}

#[test]
fn closed_connections_leave_compact_entries_and_hold_no_frame() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 1024);
    let l = p.server.listen(PORT).expect("listen");
    let tuples = churn(&mut p, l, 200, 16);
    assert_eq!(p.server.time_wait_count(), 200);
    assert_eq!(p.server.connection_count(), 0, "no connection is kept for TIME-WAIT");
    assert_eq!(p.counters(Side::Server).tcp_time_wait, 200);
    assert!(tuples.iter().all(|t| p.server.is_time_wait(t)));
    assert_eq!(p.client.time_wait_count(), 0, "the side that closed second has no TIME-WAIT");
    assert!(frames_all_free(&p), "a TIME-WAIT entry pins a frame");
    // They expire after 2 MSL (1 s in these tests), and only then.
    let first = p.counters(Side::Server).conn_visits;
    p.run_for(Duration::from_millis(900), &mut |_| {});
    assert!(p.server.time_wait_count() > 0);
    p.run_for(Duration::from_millis(200), &mut |_| {});
    assert_eq!(p.server.time_wait_count(), 0);
    assert_eq!(p.server.poll_at(), None);
    assert_eq!(p.counters(Side::Server).conn_visits - first, 200, "one visit per expiry");
}

/// The client's FIN to the server, as recorded on the wire.
fn client_fin(p: &Pair) -> Vec<u8> {
    p.recorded
        .iter()
        .filter(|(to, _)| *to == Side::Server)
        .map(|(_, f)| f.clone())
        .find(|f| tcp_flags(f).is_some_and(|fl| fl.has(TcpFlags::FIN)))
        .expect("a FIN from the client")
}

fn tcp_flags(f: &[u8]) -> Option<TcpFlags> {
    let parsed = parse_frame(f).ok()?;
    let L3::Ip(ip) = parsed.l3 else { return None };
    parse_tcp(f, &ip).ok().map(|(h, _)| h.flags)
}

fn tcp_header(f: &[u8]) -> TcpHeader {
    let parsed = parse_frame(f).expect("frame");
    let L3::Ip(ip) = parsed.l3 else { panic!("not IP") };
    parse_tcp(f, &ip).expect("tcp").0
}

#[test]
fn a_retransmitted_fin_is_acked_and_restarts_the_wait() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 1024);
    let l = p.server.listen(PORT).expect("listen");
    p.record = true;
    let tuples = churn(&mut p, l, 1, 1);
    let fin = client_fin(&p);
    p.recorded.clear();
    p.run_for(Duration::from_millis(600), &mut |_| {});
    // The peer missed our last ACK and sends its FIN again.
    let out_of_window = p.counters(Side::Server).tcp_out_of_window;
    p.inject(Side::Server, &fin);
    p.turn(&mut |_| {});
    // (The client forgot the connection and would answer the ACK with a RST, which ends
    // TIME-WAIT as in Linux without tcp_rfc1337; a peer resending its FIN still has it.)
    p.clear_wire();
    assert_eq!(p.counters(Side::Server).tcp_out_of_window, out_of_window + 1);
    let acks: Vec<TcpHeader> =
        p.recorded.iter().filter(|(to, _)| *to == Side::Client).map(|(_, f)| tcp_header(f)).collect();
    assert_eq!(acks.len(), 1, "one ACK answers the FIN");
    let h = tcp_header(&fin);
    assert_eq!(acks[0].flags, TcpFlags::ACK);
    assert_eq!((acks[0].ack, acks[0].seq), (h.seq.add(1), h.ack));
    // Restarted: still there 600 ms after the first wait would have ended.
    p.run_for(Duration::from_millis(900), &mut |_| {});
    assert!(p.server.is_time_wait(&tuples[0]));
    p.run_for(Duration::from_millis(200), &mut |_| {});
    assert!(!p.server.is_time_wait(&tuples[0]));
}

#[test]
fn a_new_syn_for_a_tuple_in_time_wait_reopens_it() {
    // One ephemeral port: the second connection reuses the first one's four-tuple while the
    // server still holds it in TIME-WAIT.
    let mut p = Pair::new(config(1, |c| c.ephemeral_ports = 40000..40001), config(2, |_| {}), 1024);
    let l = p.server.listen(PORT).expect("listen");
    let first = churn(&mut p, l, 1, 1);
    p.run_for(Duration::from_millis(5), &mut |_| {});
    let second = churn(&mut p, l, 1, 1);
    assert_eq!(first, second);
    let c = p.counters(Side::Server);
    assert_eq!(c.tcp_time_wait_reopened, 1, "the SYN's newer timestamp shows it is new");
    assert_eq!(c.tcp_established, 2);
    assert_eq!(c.tcp_time_wait, 2);
    assert_eq!(p.server.time_wait_count(), 1);
}

#[test]
fn an_old_duplicate_syn_leaves_time_wait_alone() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 1024);
    let l = p.server.listen(PORT).expect("listen");
    p.record = true;
    let tuples = churn(&mut p, l, 1, 1);
    // The first SYN of the connection, delivered again (a duplicate the network kept).
    let syn = p
        .recorded
        .iter()
        .find(|(to, f)| *to == Side::Server && tcp_flags(f) == Some(TcpFlags::SYN))
        .map(|(_, f)| f.clone())
        .expect("the SYN");
    let established = p.counters(Side::Server).tcp_established;
    p.inject(Side::Server, &syn);
    p.run_for(Duration::from_millis(10), &mut |_| {});
    let c = p.counters(Side::Server);
    assert_eq!(c.tcp_time_wait_syn_dropped, 1);
    assert_eq!(c.tcp_time_wait_reopened, 0);
    assert_eq!(c.tcp_established, established);
    assert!(p.server.is_time_wait(&tuples[0]));
    assert_eq!(p.server.connection_count(), 0);
    // Without timestamps in the SYN, the sequence number decides: one past the old
    // stream's end is new.
    let mut h = tcp_header(&syn);
    h.options.timestamp = None;
    h.seq = Seq(h.seq.0.wrapping_add(1 << 20));
    let parsed = parse_frame(&syn).expect("frame");
    let L3::Ip(ip) = parsed.l3 else { panic!("not IP") };
    let route = stack::wire::Route { src_mac: mac(1), dst_mac: mac(2), src_ip: ip.src, dst_ip: ip.dst };
    let mut f = vec![0u8; 128];
    let n = route.emit_tcp(&mut f, &h, std::iter::empty());
    f.truncate(n);
    p.inject(Side::Server, &f);
    assert_eq!(p.counters(Side::Server).tcp_time_wait_reopened, 1);
    assert!(!p.server.is_time_wait(&tuples[0]));
    assert_eq!(p.server.half_open_count(), 1);
}

#[test]
fn at_the_cap_the_oldest_entry_is_recycled() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |c| c.max_time_wait = Some(10)), 1024);
    let l = p.server.listen(PORT).expect("listen");
    let tuples = churn(&mut p, l, 25, 1);
    assert_eq!(p.server.time_wait_count(), 10);
    assert_eq!(p.counters(Side::Server).tcp_time_wait, 25);
    assert_eq!(p.counters(Side::Server).tcp_time_wait_recycled, 15);
    let kept: Vec<bool> = tuples.iter().map(|t| p.server.is_time_wait(t)).collect();
    assert_eq!(kept, [vec![false; 15], vec![true; 10]].concat(), "not the oldest recycled");
    assert!(frames_all_free(&p));

    // A cap of zero keeps none.
    let mut p = Pair::new(config(1, |_| {}), config(2, |c| c.max_time_wait = Some(0)), 1024);
    let l = p.server.listen(PORT).expect("listen");
    churn(&mut p, l, 5, 1);
    assert_eq!(p.server.time_wait_count(), 0);
    assert_eq!(p.counters(Side::Server).tcp_time_wait_recycled, 5);
}
