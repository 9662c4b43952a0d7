//! Pacing on the virtual clock: the departures of a bulk transfer follow the connection's
//! pacing rate, in bursts of at most one quantum (about 1 ms of data, at most 64 KiB), and
//! without pacing the same transfer leaves in window-sized bursts.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use stack::sim::{Channel, Faults, Stream};
use stack::tcp::TcpConfig;
use stack::{Duration, Instant};

const MIB: u64 = 1 << 20;
const MSS: usize = 1448;

/// The payload bytes of an outgoing IPv4 TCP frame.
fn payload_len(f: &[u8]) -> usize {
    if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
        return 0;
    }
    let l4 = 14 + usize::from(f[14] & 0x0f) * 4;
    let hl = f.get(l4 + 12).map_or(0, |b| usize::from(b >> 4) * 4);
    f.len().saturating_sub(l4 + hl)
}

/// One poll of the sender that sent data: when, the bytes, and the highest pacing rate in
/// force around it.
#[derive(Debug, Clone, Copy)]
struct Departure {
    at: Instant,
    bytes: usize,
    rate: u64,
}

/// Our sender, logging its departures.
struct Logged {
    inner: OurHost,
    log: Rc<RefCell<Vec<Departure>>>,
}

impl Logged {
    fn rate(&self) -> u64 {
        self.inner.conn.and_then(|h| self.inner.stack.conn(h)).map_or(0, |c| c.pacing_rate())
    }
}

impl Host for Logged {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        self.inner.receive(now, frame);
    }
    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        let before = self.rate();
        let start = out.len();
        self.inner.poll(now, out);
        let bytes: usize = out[start..].iter().map(|f| payload_len(f)).sum();
        if bytes > 0 {
            let rate = before.max(self.rate());
            self.log.borrow_mut().push(Departure { at: now, bytes, rate });
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

/// 16 MiB over a clean 100 Mbit/s path of 20 ms RTT with a deep queue, whose ACKs come
/// back in batches every 4 ms (as from a receiver or link that aggregates): without pacing
/// each batch lets a burst out. Returns the sender's departures and its count of waits for
/// pacing.
fn transfer(pacing: bool) -> (Vec<Departure>, u64) {
    let total = 16 * MIB;
    let stream = Stream::new(61);
    let tcp = TcpConfig { pacing, ..tcp_config() };
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut a = Logged { inner: OurHost::new(1, tcp, true, Role::Send { total }, stream).client(2), log: log.clone() };
    let rx = TcpConfig { recv_buffer: 8 << 20, ..tcp_config() };
    let mut b = OurHost::new(2, rx, true, Role::Recv { total }, stream).server();
    let f = Faults {
        latency: Duration::from_millis(10),
        rate_bps: 100_000_000,
        queue_frames: 100_000,
        ..Faults::default()
    };
    let mut wire = Wire::new(f, 61);
    wire.ba = Channel::new(Faults { batch: Duration::from_millis(4), ..f }, 62);
    run(&mut a, &mut b, &mut wire, Duration::from_secs(600));
    let waits = a.inner.stack.counters().tcp_pacing_waits;
    let log = log.borrow().clone();
    (log, waits)
}

/// The quantum at `rate`: what one departure may send (the stack's rule, restated).
fn quantum(rate: u64) -> usize {
    ((rate >> 10).min(64 << 10) as usize).max(2 * MSS)
}

/// Where `log` breaks pacing: a departure of more than a quantum and a segment at the
/// rate then in force, or, from any departure on, more bytes than the highest rate in
/// force allows for the time since, beyond one quantum and a segment, and half a quantum
/// more (of the time a late wake, here one by an ACK, may make up).
fn violations(log: &[Departure]) -> Vec<String> {
    let mut v = Vec::new();
    // Past the departures of the first ten segments, which leave unpaced.
    let mut sent = 0;
    let first = log
        .iter()
        .take_while(|d| {
            let before = sent;
            sent += d.bytes;
            before < 10 * MSS
        })
        .count();
    // Until the application closed (the connection is then out of its sight).
    let last = log.iter().rposition(|d| d.rate > 0).map_or(0, |i| i + 1);
    let log = &log[first.min(last)..last];
    for (i, d) in log.iter().enumerate() {
        let q = quantum(d.rate);
        let bytes = d.bytes;
        if bytes > q + MSS {
            v.push(format!("{bytes} B left at {} at {} B/s: more than a quantum of {q}", d.at, d.rate));
        }
        let (mut sum, mut rate) = (0usize, d.rate);
        for e in &log[i..] {
            if e.at - d.at > Duration::from_millis(5) {
                break;
            }
            rate = rate.max(e.rate);
            sum += e.bytes;
            let q = quantum(rate);
            let allowed = (rate as f64 * (e.at - d.at).total_micros() as f64 / 1e6) as usize + q + q / 2 + MSS;
            if sum > allowed {
                v.push(format!("{sum} B from {} to {} at up to {rate} B/s: allowed {allowed}", d.at, e.at));
                break;
            }
        }
    }
    v
}

#[test]
fn bulk_departures_follow_the_pacing_rate_in_quanta() {
    let (log, waits) = transfer(true);
    let largest = log.iter().map(|d| d.bytes).max().unwrap_or(0);
    eprintln!(
        "{} polls sent data, {waits} waits for pacing; largest burst {largest} B; rates {}..{} B/s",
        log.len(),
        log.iter().map(|d| d.rate).filter(|&r| r > 0).min().unwrap_or(0),
        log.iter().map(|d| d.rate).max().unwrap_or(0)
    );
    assert!(waits > 100, "pacing hardly engaged: {waits} waits");
    let v = violations(&log);
    assert!(v.is_empty(), "{} departures break the pacing rate, first: {:?}", v.len(), v.first());
}

#[test]
fn without_pacing_the_same_check_fails() {
    let (log, waits) = transfer(false);
    let largest = log.iter().map(|d| d.bytes).max().unwrap_or(0);
    // Checked against the pacing rate the connection keeps, enforced or not.
    let v = violations(&log);
    eprintln!("unpaced: largest burst {largest} B, {waits} waits, {} violations, first: {:?}", v.len(), v.first());
    assert_eq!(waits, 0);
    assert!(v.len() > 10, "the check passes unpaced too: it shows nothing");
}
