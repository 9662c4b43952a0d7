//! Our engine against smoltcp's Interface + TcpSocket as the peer (no SACK, no
//! timestamps on that side: our NewReno path and option fallback are exercised), over a
//! simulated wire with loss, reordering and duplication, both directions.

mod common;

use common::*;
use stack::sim::Stream;
use stack::{Duration, Instant};

const MIB: u64 = 1 << 20;
const SMOL_BUF: usize = 256 * 1024;

/// `ours_sends`: our stack sends to smoltcp (else smoltcp sends to us). Our side is the
/// client when it sends and the server when it receives, so both opens are covered.
fn transfer(total: u64, loss: f64, seed: u64, ours_sends: bool) -> (Instant, u64) {
    let stream = Stream::new(seed);
    let f = if loss > 0.0 { lossy_mix(loss) } else { faults(0.0) };
    let mut wire = Wire::new(f, seed);
    let (time, ours) = if ours_sends {
        let mut a = OurHost::new(1, tcp_config(), true, Role::Send { total }, stream).client(2);
        let mut b = SmolHost::new(2, Role::Recv { total }, stream, SMOL_BUF).server();
        let t = run(&mut a, &mut b, &mut wire, Duration::from_secs(3600));
        check_link(&a.link);
        (t, a)
    } else {
        let mut a = SmolHost::new(1, Role::Send { total }, stream, SMOL_BUF).client(2);
        let mut b = OurHost::new(2, tcp_config(), true, Role::Recv { total }, stream).server();
        let t = run(&mut a, &mut b, &mut wire, Duration::from_secs(3600));
        check_link(&b.link);
        (t, b)
    };
    let c = ours.stack.counters();
    assert_eq!(c.payload_bytes_copied, 0);
    eprintln!(
        "smoltcp peer, {total} B, loss {loss}, ours_sends {ours_sends}: {time}; rexmit {} fast-rec {} rto {}; wire {:?} / {:?}",
        c.tcp_retransmits, c.tcp_fast_recoveries, c.tcp_rto_expired, wire.ab.stats, wire.ba.stats
    );
    (time, c.tcp_retransmits)
}

#[test]
fn smoltcp_0pct_ours_sends() {
    transfer(4 * MIB, 0.0, 11, true);
}

#[test]
fn smoltcp_0pct_smoltcp_sends() {
    transfer(4 * MIB, 0.0, 12, false);
}

#[test]
fn smoltcp_1pct_ours_sends() {
    transfer(2 * MIB, 0.01, 13, true);
}

#[test]
fn smoltcp_1pct_smoltcp_sends() {
    transfer(2 * MIB, 0.01, 14, false);
}

#[test]
fn smoltcp_5pct_ours_sends() {
    transfer(2 * MIB, 0.05, 15, true);
}

#[test]
fn smoltcp_5pct_smoltcp_sends() {
    transfer(2 * MIB, 0.05, 16, false);
}

#[test]
fn smoltcp_deterministic_under_fixed_seed() {
    assert_eq!(transfer(MIB, 0.05, 17, true), transfer(MIB, 0.05, 17, true));
}
