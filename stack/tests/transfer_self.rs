//! Our engine against itself over a simulated wire with loss, reordering and duplication:
//! a seeded pseudo-random stream arrives byte-exact, either side sending, at 0/1/5% loss,
//! and the whole run is deterministic under a fixed seed.

mod common;

use common::*;
use stack::sim::{ChannelStats, Stream};
use stack::{Counters, Duration, Instant};

const MIB: u64 = 1 << 20;

struct Outcome {
    time: Instant,
    sender: Counters,
    receiver: Counters,
    wire: (ChannelStats, ChannelStats),
}

/// `client_sends`: the active opener sends (else the listener sends).
fn transfer(total: u64, loss: f64, seed: u64, client_sends: bool) -> Outcome {
    let stream = Stream::new(seed);
    let (ra, rb) = if client_sends {
        (Role::Send { total }, Role::Recv { total })
    } else {
        (Role::Recv { total }, Role::Send { total })
    };
    let mut a = OurHost::new(1, tcp_config(), true, ra, stream).client(2);
    let mut b = OurHost::new(2, tcp_config(), true, rb, stream).server();
    let f = if loss > 0.0 { lossy_mix(loss) } else { faults(0.0) };
    let mut wire = Wire::new(f, seed);
    let time = run(&mut a, &mut b, &mut wire, Duration::from_secs(3600));
    check_link(&a.link);
    check_link(&b.link);
    for h in [&a, &b] {
        assert_eq!(h.stack.counters().payload_bytes_copied, 0, "multi-buffer path copied payload");
    }
    let (s, r) = if client_sends { (&a, &b) } else { (&b, &a) };
    assert!(s.link.multi_frag_packets > 0, "payload never left as separate fragments");
    eprintln!(
        "{total} B, loss {loss}, seed {seed}: {time}; sender rexmit {} fast-rec {} rto {}; wire {:?} / {:?}",
        s.stack.counters().tcp_retransmits,
        s.stack.counters().tcp_fast_recoveries,
        s.stack.counters().tcp_rto_expired,
        wire.ab.stats,
        wire.ba.stats
    );
    Outcome {
        time,
        sender: s.stack.counters().clone(),
        receiver: r.stack.counters().clone(),
        wire: (wire.ab.stats, wire.ba.stats),
    }
}

#[test]
fn self_0pct_client_sends() {
    transfer(8 * MIB, 0.0, 1, true);
}

#[test]
fn self_0pct_server_sends() {
    transfer(8 * MIB, 0.0, 2, false);
}

#[test]
fn self_1pct_client_sends() {
    let o = transfer(4 * MIB, 0.01, 3, true);
    assert!(o.sender.tcp_retransmits > 0);
    assert!(o.wire.0.reordered > 0 && o.wire.0.duplicated > 0);
}

#[test]
fn self_1pct_server_sends() {
    transfer(4 * MIB, 0.01, 4, false);
}

#[test]
fn self_5pct_client_sends() {
    let o = transfer(4 * MIB, 0.05, 5, true);
    assert!(o.receiver.tcp_ooo_kept > 0);
}

#[test]
fn self_5pct_server_sends() {
    transfer(4 * MIB, 0.05, 6, false);
}

#[test]
fn self_deterministic_under_fixed_seed() {
    let a = transfer(2 * MIB, 0.05, 7, true);
    let b = transfer(2 * MIB, 0.05, 7, true);
    assert_eq!(a.time, b.time);
    assert_eq!(a.sender, b.sender);
    assert_eq!(a.receiver, b.receiver);
    assert_eq!(a.wire, b.wire);
}

/// The larger case: 64 MiB at 1% loss with reordering and duplication.
#[test]
fn self_large_64mib_1pct() {
    transfer(64 * MIB, 0.01, 8, true);
}
