//! Loss recovery against a receiver that, like Linux, advertises a slightly different
//! window in nearly every ACK (its receive buffer autotunes while out-of-order data waits).
//! A SACK-carrying ACK that reports new data above the cumulative ACK is a duplicate ACK
//! whatever its window says (RFC 6675 `DupAck`); counting only ACKs with an unchanged
//! window left every loss to the retransmission timer.

mod common;

use common::*;
use smoltcp::wire::IpAddress;
use stack::sim::Stream;
use stack::wire::Checksum;
use stack::{Duration, Instant};

const TOTAL: u64 = 8 << 20;

/// A host whose pure ACKs leave with the window field lowered by 0..=3 units, in turn.
struct WindowJitter {
    inner: OurHost,
    turn: u16,
}

impl WindowJitter {
    fn jitter(&mut self, f: &mut [u8]) {
        if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
            return;
        }
        let l4 = 14 + usize::from(f[14] & 0x0f) * 4;
        let hl = usize::from(f[l4 + 12] >> 4) * 4;
        if f.len() != l4 + hl {
            return; // carries payload
        }
        self.turn = (self.turn + 1) % 4;
        let w = u16::from_be_bytes([f[l4 + 14], f[l4 + 15]]).saturating_sub(self.turn);
        f[l4 + 14..l4 + 16].copy_from_slice(&w.to_be_bytes());
        let src = IpAddress::Ipv4(smoltcp::wire::Ipv4Address::new(f[26], f[27], f[28], f[29]));
        let dst = IpAddress::Ipv4(smoltcp::wire::Ipv4Address::new(f[30], f[31], f[32], f[33]));
        f[l4 + 16..l4 + 18].fill(0);
        let mut c =
            Checksum::with_sum(stack::wire::pseudo_header(&src, &dst, smoltcp::wire::IpProtocol::Tcp, f.len() - l4));
        c.add(&f[l4..]);
        let v = c.finish();
        f[l4 + 16..l4 + 18].copy_from_slice(&v.to_be_bytes());
    }
}

impl Host for WindowJitter {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        self.inner.receive(now, frame);
    }
    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        let start = out.len();
        self.inner.poll(now, out);
        for f in &mut out[start..] {
            self.jitter(f);
        }
    }
    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.inner.poll_at(now)
    }
    fn done(&self) -> bool {
        self.inner.done()
    }
    fn progress(&self) -> u64 {
        self.inner.progress()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[test]
fn losses_are_repaired_by_fast_recovery_when_ack_windows_change() {
    let stream = Stream::new(41);
    let mut a = OurHost::new(1, tcp_config(), true, Role::Send { total: TOTAL }, stream).client(2);
    let b = OurHost::new(2, tcp_config(), true, Role::Recv { total: TOTAL }, stream).server();
    let mut b = WindowJitter { inner: b, turn: 0 };
    let mut wire = Wire::new(faults(0.01), 41);
    run(&mut a, &mut b, &mut wire, Duration::from_secs(600));
    let c = a.stack.counters();
    assert!(c.tcp_retransmits > 0, "the wire lost nothing");
    assert!(
        c.tcp_fast_recoveries >= 5,
        "{} fast recoveries for {} retransmissions",
        c.tcp_fast_recoveries,
        c.tcp_retransmits
    );
    assert!(
        c.tcp_rto_expired * 5 <= c.tcp_fast_recoveries,
        "{} RTOs against {} fast recoveries: losses wait for the timer",
        c.tcp_rto_expired,
        c.tcp_fast_recoveries
    );
}

/// Lost ACKs at the tail of a small flight leave nothing to clock the sender: without a
/// tail loss probe (RFC 8985 section 7) each such loss waits for the retransmission timer
/// (200 ms at least); a probe after about two round trips repairs it. The same seeded run
/// with and without probes.
fn small_flights(tlp: bool) -> (stack::Counters, Instant) {
    let stream = Stream::new(42);
    let cfg = stack::tcp::TcpConfig { tail_loss_probe: tlp, ..tcp_config() };
    let mut a = OurHost::new(1, cfg, true, Role::Send { total: TOTAL / 2 }, stream).client(2);
    // A small receive window keeps the flight at a few segments, as a small congestion
    // window would: the last ACK of a flight is then often the only one. The buffer counts
    // the 4 KiB frames segments arrive in: six segments' worth is six frames.
    let small = stack::tcp::TcpConfig { recv_buffer: 6 * 4096, ..tcp_config() };
    let b = OurHost::new(2, small, true, Role::Recv { total: TOTAL / 2 }, stream).server();
    let mut b = WindowJitter { inner: b, turn: 0 };
    let mut wire =
        Wire { ab: stack::sim::Channel::new(faults(0.02), 42), ba: stack::sim::Channel::new(faults(0.2), 43) };
    let took = run(&mut a, &mut b, &mut wire, Duration::from_secs(600));
    (a.stack.counters().clone(), took)
}

/// Probes answer a silent tail when nothing is being repaired (RFC 8985 section 7.2 does
/// not probe during fast recovery or after a timeout): those timeouts fall by half or
/// more, and the run is faster.
#[test]
fn lost_tail_acks_are_repaired_by_loss_probes_not_timeouts() {
    let (without, t0) = small_flights(false);
    let (with, t1) = small_flights(true);
    let tail = |c: &stack::Counters| c.tcp_rto_expired - c.tcp_recovery_failed;
    eprintln!(
        "without probes: {} RTOs ({} with nothing in repair) in {t0}; with: {} RTOs ({}), {} probes in {t1}",
        without.tcp_rto_expired,
        tail(&without),
        with.tcp_rto_expired,
        tail(&with),
        with.tcp_loss_probes
    );
    assert_eq!(without.tcp_loss_probes, 0);
    assert!(with.tcp_loss_probes > 0, "no loss probe sent");
    assert!(tail(&with) * 2 < tail(&without), "{} tail RTOs with probes, {} without", tail(&with), tail(&without));
    assert!(with.tcp_rto_expired < without.tcp_rto_expired);
    assert!(t1 < t0, "not faster with probes: {t1} vs {t0}");
}
