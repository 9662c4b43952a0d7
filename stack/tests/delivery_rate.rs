//! Delivery-rate estimation end to end, on the virtual clock: a bulk sender's samples
//! measure the bottleneck, and a sender that runs out of data marks its samples
//! application-limited.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use stack::sim::{Faults, Stream};
use stack::tcp::{RecoveryInfo, TcpConfig};
use stack::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// The sender's connection state after each of its polls.
type Seen = Rc<RefCell<Vec<(Instant, RecoveryInfo)>>>;

/// Our sender, keeping its connection's state after every poll.
fn watched(host: OurHost) -> (Spy<OurHost>, Seen) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let spy = Spy::new(host, move |now, h: &OurHost| {
        if let Some(c) = h.connection() {
            log.borrow_mut().push((now, c.recovery_info()));
        }
    });
    (spy, seen)
}

#[test]
fn a_bulk_senders_samples_measure_the_bottleneck() {
    let total = 16 * MIB;
    let stream = Stream::new(71);
    let host = OurHost::new(1, tcp_config(), true, Role::Send { total }, stream).client(2);
    let (mut a, seen) = watched(host);
    let rx = TcpConfig { recv_buffer: 8 << 20, ..tcp_config() };
    let mut b = OurHost::new(2, rx, true, Role::Recv { total }, stream).server();
    let f = Faults {
        latency: Duration::from_millis(10),
        rate_bps: 100_000_000,
        queue_frames: 100_000,
        ..Faults::default()
    };
    let mut wire = Wire::new(f, 71);
    run(&mut a, &mut b, &mut wire, Duration::from_secs(600));
    // What the bottleneck carries of payload: 1448 of every 1448 + 66 header + 24 framing
    // bytes (the sim's per-frame overhead).
    let bottleneck = 100e6 / 8.0 * 1448.0 / 1538.0;
    let seen = seen.borrow();
    let rates: Vec<(u64, bool)> =
        seen.iter().filter(|(t, _)| *t > Instant::from_millis(500)).filter_map(|(_, i)| i.delivery_rate).collect();
    let (lo, hi) = rates.iter().fold((u64::MAX, 0), |(lo, hi), &(r, _)| (lo.min(r), hi.max(r)));
    eprintln!("{} samples after 0.5 s: {lo}..{hi} B/s, bottleneck {bottleneck:.0} B/s", rates.len());
    assert!(rates.len() > 100);
    assert!(rates.iter().all(|&(_, app)| !app), "a bulk sender is never application-limited");
    assert!(lo as f64 > 0.9 * bottleneck && hi as f64 <= 1.02 * bottleneck, "{lo}..{hi} B/s for {bottleneck:.0}");
}

/// A send buffer of 64 KiB on a path whose BDP is 250 kB: the sender runs out of data
/// every round trip, so its samples are application-limited and show what it offered
/// (about the buffer per RTT), not the bottleneck.
#[test]
fn a_sender_short_of_data_marks_its_samples_application_limited() {
    let total = 4 * MIB;
    let stream = Stream::new(72);
    let small = TcpConfig { send_buffer: 64 << 10, ..tcp_config() };
    let host = OurHost::new(1, small, true, Role::Send { total }, stream).client(2);
    let (mut a, seen) = watched(host);
    let mut b = OurHost::new(2, tcp_config(), true, Role::Recv { total }, stream).server();
    let f = Faults {
        latency: Duration::from_millis(10),
        rate_bps: 100_000_000,
        queue_frames: 100_000,
        ..Faults::default()
    };
    let mut wire = Wire::new(f, 72);
    run(&mut a, &mut b, &mut wire, Duration::from_secs(600));
    let seen = seen.borrow();
    let rates: Vec<(u64, bool)> =
        seen.iter().filter(|(t, _)| *t > Instant::from_millis(500)).filter_map(|(_, i)| i.delivery_rate).collect();
    let limited = rates.iter().filter(|r| r.1).count();
    let hi = rates.iter().map(|r| r.0).max().unwrap_or(0);
    eprintln!("{} samples after 0.5 s, {limited} application-limited, up to {hi} B/s", rates.len());
    assert!(rates.len() > 100 && limited * 10 >= rates.len() * 9, "{limited} of {} application-limited", rates.len());
    // 64 KiB per 20 ms is 3.3 MB/s, a quarter of the bottleneck.
    assert!(hi < 5_000_000, "{hi} B/s");
}
