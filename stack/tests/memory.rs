//! What a connection costs in memory when idle, and what a TIME-WAIT entry costs, measured
//! on 8192 of each through `Stack::memory` (slots, heap, indexes), and that
//! `max_connections` limits the table. The figures are printed (`--nocapture`) and quoted
//! in the docs of `StackConfig::max_connections`.

mod common;

use std::cell::RefCell;

use common::pair::{config, Pair, Side};
use common::*;
use smoltcp::wire::{IpAddress, IpEndpoint};
use stack::{ConnHandle, Duration, SocketError};

const N: usize = 8192;

#[test]
fn an_idle_connection_and_a_time_wait_entry_cost_what_the_docs_say() {
    let mut p = Pair::new(config(1, |_| {}), config(2, |_| {}), 4096);
    let l = p.server.listen(PORT).expect("listen");
    let to = IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT);
    // In batches below the half-open limit, as a client pool would.
    let client = RefCell::new(Vec::new());
    let server = RefCell::new(Vec::new());
    p.run_until(
        Duration::from_secs(10),
        &mut |p| {
            server.borrow_mut().extend(std::iter::from_fn(|| p.server.accept(l)));
            let mut c = client.borrow_mut();
            if c.len() < N && p.server.half_open_count() == 0 && c.len() == server.borrow().len() {
                for _ in 0..512 {
                    c.push(p.client.connect(p.now, to).expect("connect"));
                }
            }
        },
        &mut |_| server.borrow().len() == N,
    );
    let client = client.into_inner();
    p.run_for(Duration::from_secs(1), &mut |_| {});
    let m = p.server.memory();
    assert_eq!(m.connections, N);
    let per_conn = m.connection_bytes / N;
    eprintln!("idle established: {per_conn} bytes per connection ({m:?})");
    assert!(per_conn <= 800, "{per_conn} bytes per idle connection");

    for h in server.into_inner() {
        p.server.close(h).expect("close");
    }
    let open = RefCell::new(client);
    p.run_until(
        Duration::from_secs(10),
        &mut |p| {
            open.borrow_mut().retain(|&h| {
                let closing = p.client.readiness(h).read_closed;
                if closing {
                    p.client.close(h).expect("close");
                }
                !closing
            })
        },
        &mut |p| p.server.time_wait_count() == N,
    );
    let m = p.server.memory();
    assert_eq!((m.connections, m.time_wait), (0, N));
    let per_tw = m.time_wait_bytes / N;
    eprintln!("TIME-WAIT: {per_tw} bytes per entry ({m:?})");
    assert!(per_tw <= 200, "{per_tw} bytes per TIME-WAIT entry");
    assert!(per_tw * 3 < per_conn, "a TIME-WAIT entry is not much smaller than a connection");
    assert_eq!(p.counters(Side::Server).tcp_time_wait, N as u64);
}

#[test]
fn max_connections_limits_the_table() {
    let mut p = Pair::new(config(1, |c| c.max_connections = 10), config(2, |c| c.max_connections = 5), 1024);
    let l = p.server.listen(PORT).expect("listen");
    let to = IpEndpoint::new(IpAddress::Ipv4(ip(2)), PORT);
    let client: Vec<ConnHandle> = (0..10).map(|_| p.client.connect(p.now, to).expect("connect")).collect();
    assert_eq!(p.client.connect(p.now, to), Err(SocketError::TableFull));
    p.run_for(Duration::from_millis(100), &mut |_| {});
    assert_eq!(p.server.connection_count(), 5);
    assert_eq!(p.counters(Side::Server).tcp_conn_table_full, 5, "the SYNs beyond the table dropped, counted");
    // The refused ones retry their SYN; they get in once the first ones are gone.
    let accepted: Vec<ConnHandle> = std::iter::from_fn(|| p.server.accept(l)).collect();
    for h in accepted {
        p.server.abort(h).expect("abort");
    }
    p.run_for(Duration::from_secs(3), &mut |_| {});
    assert_eq!(p.server.connection_count(), 5);
    let connected = client.iter().filter(|&&h| p.client.readiness(h).connected).count();
    assert!(connected >= 5, "{connected}");
}
