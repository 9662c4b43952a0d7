//! `Conn::info`, the `tcp_info`-like snapshot: during a transfer over a lossy simulated
//! wire the sender's bytes acknowledged grow, its retransmissions match the stack's count,
//! and its RTT, window and queues are those of a live connection.

mod common;

use common::*;
use stack::sim::Stream;
use stack::tcp::{ConnInfo, State};
use stack::{Duration, Instant};

const MIB: u64 = 1 << 20;

fn info(h: &OurHost) -> ConnInfo {
    h.conn.and_then(|c| h.stack.conn(c)).map(|c| c.info()).expect("the connection")
}

#[test]
fn bytes_acked_grows_and_retransmits_are_the_connections() {
    let total = 24 * MIB; // beyond the 4 MiB send buffer, so the sender has not closed yet
    let stream = Stream::new(11);
    let mut a = OurHost::new(1, tcp_config(), true, Role::Send { total }, stream).client(2);
    let mut b = OurHost::new(2, tcp_config(), true, Role::Recv { total }, stream).server();
    let mut wire = Wire::new(lossy_mix(0.01), 11);
    let mut now = Instant::ZERO;
    let mut seen = Vec::new();
    // Quarters of the transfer; the sender closes once its last bytes are queued.
    for quarter in 1..=3u64 {
        run_until(&mut a, &mut b, &mut wire, &mut now, Duration::from_secs(600), &mut |_, r| {
            r.progress() >= quarter * total / 4
        });
        let i = info(&a);
        assert_eq!(i.state, State::Established);
        assert!(i.srtt.is_some() && i.rto >= Duration::from_millis(200), "{i:?}");
        assert!(i.cwnd >= i.mss && i.mss > 0, "{i:?}");
        assert!(i.send_queue > 0 && i.in_flight <= i.send_queue, "{i:?}");
        assert_eq!(i.remote.port, b.stack.conn(b.conn.unwrap()).unwrap().tuple().local.port);
        seen.push(i);
    }
    for w in seen.windows(2) {
        assert!(w[1].bytes_acked > w[0].bytes_acked, "bytes acked did not grow: {:?}", w);
    }
    // Acknowledged data was received: at most what the receiver holds, plus the SYN.
    assert!(seen[2].bytes_acked <= b.progress() + 1 + info(&b).recv_queue as u64, "{:?}", seen[2]);
    assert!(seen[2].bytes_acked >= 3 * total / 4 - 256 * 1024, "{:?}", seen[2]);
    let rexmit = u64::from(info(&a).retransmits);
    assert!(rexmit > 0, "1% loss and no retransmission");
    assert_eq!(rexmit, a.stack.counters().tcp_retransmits, "one connection: its count is the stack's");
    assert_eq!(info(&b).retransmits, 0, "the receiver sent no data");
}
