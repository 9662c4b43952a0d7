//! 100,000 connections opened and closed through the stack on a virtual clock, as an HTTP
//! server with `Connection: close` sees them, next to 2,000 idle keep-alive connections:
//! what one poll visits (counted by `Counters::conn_visits`, not timed) follows the
//! connections that had something to do, never the 100,000 entries sitting in TIME-WAIT
//! nor the idle ones; TIME-WAIT entries expire on time, each visited once; and once the
//! last timer has run every pool frame is back and nothing is left to do.

mod common;

use std::cell::RefCell;

use common::pair::{config, Pair, Side};
use common::*;
use smoltcp::wire::{IpAddress, IpEndpoint};
use stack::tcp::TcpConfig;
use stack::{ConnHandle, Duration, Stack};
use umem::BufSlice;

const CHURN: usize = 100_000;
const IDLE: usize = 2_000;
/// Connections in flight at once during the churn.
const WINDOW: usize = 256;
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";

fn endpoint(n: usize) -> IpEndpoint {
    // Alternate address families: with an odd number of ephemeral ports, no four-tuple
    // repeats before 110,002 connections.
    if n.is_multiple_of(2) {
        IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT)
    } else {
        IpEndpoint::new(IpAddress::Ipv6(ip6(2)), PORT)
    }
}

fn respond(p: &mut Pair, h: ConnHandle) {
    let mut b = p.slink.pool.alloc_frame().expect("server pool");
    b.get_mut().expect("unique")[..RESPONSE.len()].copy_from_slice(RESPONSE);
    let s = BufSlice::new(b, 0..RESPONSE.len()).expect("range");
    assert_eq!(p.server.write_frames(h, &[s]).expect("write"), RESPONSE.len());
}

/// Reads everything `h` has; true at end of stream.
fn drain(s: &mut Stack, h: ConnHandle, got: &mut usize) -> bool {
    while let Some(b) = s.read(h, usize::MAX).expect("read") {
        *got += b.len();
    }
    s.readiness(h).read_closed
}

fn frames_all_back(p: &Pair) {
    for (side, link) in [(Side::Client, &p.clink), (Side::Server, &p.slink)] {
        let st = link.pool.stats();
        assert_eq!(st.frames_free, st.frames, "{side:?} pool: frames still held");
    }
}

#[test]
fn a_hundred_thousand_connections_then_polls_visit_only_what_is_due() {
    let tcp = TcpConfig::default(); // TIME-WAIT 60 s, as in production
    let client_cfg = config(1, |c| {
        c.tcp = tcp.clone();
        c.ephemeral_ports = 10_000..65_001;
    });
    let server_cfg = config(2, |c| {
        c.tcp = tcp.clone();
        c.max_connections = 131_072; // also the TIME-WAIT cap
    });
    let mut p = Pair::new(client_cfg, server_cfg, 8192);
    let l = p.server.listen(PORT).expect("listen");

    // 2,000 idle keep-alive connections, held open throughout.
    let idle_c = RefCell::new(Vec::new());
    let idle_s = RefCell::new(Vec::new());
    p.run_until(
        Duration::from_secs(10),
        &mut |p| {
            idle_s.borrow_mut().extend(std::iter::from_fn(|| p.server.accept(l)));
            let mut c = idle_c.borrow_mut();
            if c.len() < IDLE && c.len() == idle_s.borrow().len() {
                for _ in 0..500 {
                    let n = c.len();
                    c.push(p.client.connect(p.now, endpoint(n)).expect("connect"));
                }
            }
        },
        &mut |_| idle_s.borrow().len() == IDLE,
    );
    let (idle_c, idle_s) = (idle_c.into_inner(), idle_s.into_inner());
    p.run_for(Duration::from_millis(100), &mut |_| {});

    // The churn: the server answers each connection and closes first (TIME-WAIT is its),
    // the client reads the answer and closes.
    let started = RefCell::new(0usize);
    let open: RefCell<Vec<(ConnHandle, usize)>> = RefCell::new(Vec::new());
    let received = RefCell::new(0usize);
    p.max_visits = 0;
    let t0 = p.now;
    p.run_until(
        Duration::from_secs(50),
        &mut |p| {
            while let Some(h) = p.server.accept(l) {
                respond(p, h);
                p.server.close(h).expect("close");
            }
            open.borrow_mut().retain_mut(|(h, got)| {
                let done = drain(&mut p.client, *h, got);
                if done {
                    assert_eq!(*got, RESPONSE.len());
                    *received.borrow_mut() += 1;
                    p.client.close(*h).expect("close");
                }
                !done
            });
            let mut n = started.borrow_mut();
            while open.borrow().len() < WINDOW && *n < CHURN {
                let h = p.client.connect(p.now, endpoint(*n)).expect("connect");
                open.borrow_mut().push((h, 0));
                *n += 1;
            }
        },
        &mut |p| *received.borrow() == CHURN && p.server.time_wait_count() == CHURN,
    );
    let churn_time = p.now - t0;
    let c = p.counters(Side::Server).clone();
    eprintln!(
        "churn: {CHURN} connections in {churn_time} virtual, {} turns, at most {} visits in one poll",
        p.turns, p.max_visits
    );
    assert!(churn_time < Duration::from_secs(50), "TIME-WAIT entries would expire before the churn ends");
    assert_eq!(p.server.time_wait_count(), CHURN);
    assert_eq!(p.server.connection_count(), IDLE);
    assert_eq!(c.tcp_time_wait, CHURN as u64);
    assert_eq!((c.tcp_time_wait_recycled, c.tcp_time_wait_reopened), (0, 0));
    // A poll's work follows the connections in flight, not the idle ones or the growing
    // TIME-WAIT table: on either side at most WINDOW open plus WINDOW closing, each seen
    // by a timer and by output.
    assert!(p.max_visits <= 4 * WINDOW as u64, "a poll visited {} entries during the churn", p.max_visits);

    // Quiet, with 100,000 entries in TIME-WAIT and 2,000 idle connections: a poll visits
    // nothing, and nothing is due before the first TIME-WAIT expiry.
    let before = p.counters(Side::Server).conn_visits;
    for _ in 0..10 {
        p.turn(&mut |_| {});
    }
    assert_eq!(p.counters(Side::Server).conn_visits, before, "an idle turn visited entries");
    let next = p.server.poll_at().expect("TIME-WAIT expiries are scheduled");
    assert!(next > p.now + Duration::from_secs(5), "next event {next} at {}", p.now);
    // One idle connection makes a request and gets an answer: each poll visits it alone.
    p.max_visits = 0;
    let (hc, hs) =
        (idle_c[777], idle_s.iter().copied().find(|&h| peer(&p, h) == local(&p, idle_c[777])).expect("pair"));
    respond(&mut p, hs);
    let mut got = 0;
    p.run_until(Duration::from_secs(1), &mut |_| {}, &mut |p| p.client.readiness(hc).readable == RESPONSE.len());
    p.run_for(Duration::from_millis(100), &mut |p| {
        drain(&mut p.client, hc, &mut got);
    });
    assert_eq!(got, RESPONSE.len());
    assert!(p.max_visits <= 2, "with 100,000 in TIME-WAIT a poll visited {} entries", p.max_visits);

    // TIME-WAIT ends 60 s after each close; each expiry is one visit.
    let before = p.counters(Side::Server).conn_visits;
    p.max_visits = 0;
    p.run_for(Duration::from_secs(61), &mut |_| {});
    assert_eq!(p.server.time_wait_count(), 0);
    assert_eq!(p.counters(Side::Server).conn_visits - before, CHURN as u64, "visits beyond the expiries");

    // The idle connections close too; once the last timer has run nothing is held.
    for &h in &idle_s {
        p.server.close(h).expect("close");
    }
    let open = RefCell::new(idle_c);
    p.run_for(Duration::from_secs(1), &mut |p| {
        open.borrow_mut().retain(|&h| {
            let mut got = 0;
            let done = drain(&mut p.client, h, &mut got);
            if done {
                p.client.close(h).expect("close");
            }
            !done
        })
    });
    assert!(open.borrow().is_empty());
    assert_eq!(p.server.time_wait_count(), IDLE);
    p.run_for(Duration::from_secs(61), &mut |_| {});
    for side in [Side::Client, Side::Server] {
        let s = p.stack(side);
        assert_eq!((s.connection_count(), s.time_wait_count()), (0, 0), "{side:?} still holds entries");
        assert_eq!(s.poll_at(), None, "{side:?} still has timers");
    }
    frames_all_back(&p);
}

fn peer(p: &Pair, server_h: ConnHandle) -> u16 {
    p.server.conn(server_h).expect("conn").tuple().remote.port
}

fn local(p: &Pair, client_h: ConnHandle) -> u16 {
    p.client.conn(client_h).expect("conn").tuple().local.port
}
