//! Loss recovery on the virtual clock, our engine at both ends:
//!
//! - a link that only reorders: once a D-SACK has shown a retransmission needless, every
//!   later window reduction is undone, and the reordering window grows until reordering
//!   causes no retransmission at all (RFC 8985 section 6.2, RFC 2883, RFC 3708);
//! - RACK finds a lost retransmission by time and sends it again, with no timeout;
//! - PRR (RFC 6937) holds what is sent on each ACK of a recovery to its bound;
//! - HyStart++ (RFC 9406) ends slow start before the bottleneck queue overflows, where
//!   classic slow start runs into the first loss.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use stack::sim::{Faults, Stream};
use stack::tcp::{CaState, RecoveryInfo, TcpConfig};
use stack::{Counters, Duration, Instant};

const MIB: u64 = 1 << 20;

/// A path of `owd_ms` one-way delay at 1 Gbit/s whose queue never overflows.
fn path(owd_ms: u64) -> Faults {
    Faults { latency: Duration::from_millis(owd_ms), queue_frames: 100_000, ..Faults::default() }
}

/// The sequence number of an outgoing IPv4 TCP frame with payload.
fn data_seq(f: &[u8]) -> Option<u32> {
    if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
        return None;
    }
    let l4 = 14 + usize::from(f[14] & 0x0f) * 4;
    let hl = usize::from(*f.get(l4 + 12)? >> 4) * 4;
    (f.len() > l4 + hl).then(|| u32::from_be_bytes([f[l4 + 4], f[l4 + 5], f[l4 + 6], f[l4 + 7]]))
}

/// Our sender: publishes its counters after every poll, and drops the outgoing data
/// segments `drop` picks.
struct Sender {
    inner: OurHost,
    seen: Rc<RefCell<Counters>>,
    drop: Box<dyn FnMut(u32) -> bool>,
}

impl Sender {
    fn new(inner: OurHost, drop: impl FnMut(u32) -> bool + 'static) -> (Self, Rc<RefCell<Counters>>) {
        let seen = Rc::new(RefCell::new(Counters::default()));
        (Sender { inner, seen: seen.clone(), drop: Box::new(drop) }, seen)
    }
}

impl Host for Sender {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        self.inner.receive(now, frame);
    }
    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        let start = out.len();
        self.inner.poll(now, out);
        let mut i = start;
        while i < out.len() {
            if data_seq(&out[i]).is_some_and(|s| (self.drop)(s)) {
                out.remove(i);
            } else {
                i += 1;
            }
        }
        *self.seen.borrow_mut() = self.inner.stack.counters().clone();
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

/// Window reductions: fast recoveries, loss probes that repaired a loss, timeouts.
fn reductions(c: &Counters) -> u64 {
    c.tcp_fast_recoveries + c.tcp_loss_probe_recoveries + c.tcp_rto_expired
}

/// Only reordering (2% of frames up to 3 ms late, RTT 10 ms), no loss. Reordered
/// segments deeper than the initial window (a quarter of the min RTT) are retransmitted
/// needlessly at first; their D-SACKs undo each reduction and widen the window, after
/// which reordering costs nothing.
#[test]
fn reordering_alone_costs_no_window_once_dsacks_are_seen() {
    let total = 32 * MIB;
    let stream = Stream::new(51);
    let f = Faults { reorder: 0.02, reorder_delay: Duration::from_millis(3), ..path(5) };
    let host = OurHost::new(1, tcp_config(), true, Role::Send { total }, stream).client(2);
    let (mut a, seen) = Sender::new(host, |_| false);
    let mut b = OurHost::new(2, tcp_config(), true, Role::Recv { total }, stream).server();
    let mut wire = Wire::new(f, 51);
    let mut now = Instant::ZERO;
    let limit = Duration::from_secs(600);
    run_until(&mut a, &mut b, &mut wire, &mut now, limit, &mut |_, _| seen.borrow().tcp_dsacks_received > 0);
    let first = seen.borrow().clone();
    run_until(&mut a, &mut b, &mut wire, &mut now, limit, &mut |_, b| b.progress() >= total / 2);
    let half = seen.borrow().clone();
    run_until(&mut a, &mut b, &mut wire, &mut now, limit, &mut |a, b| a.done() && b.done());
    let end = seen.borrow().clone();
    eprintln!(
        "first D-SACK at {} retransmissions, {} reductions; at half: {} retransmissions; at the end: {} retransmissions, {} reductions, {} undone, {} D-SACKs, reordering seen {} times (deepest {} segments); wire {:?}",
        first.tcp_retransmits,
        reductions(&first),
        half.tcp_retransmits,
        end.tcp_retransmits,
        reductions(&end),
        end.tcp_spurious_recoveries,
        end.tcp_dsacks_received,
        end.tcp_reordering_seen,
        end.tcp_reordering_max,
        wire.ab.stats
    );
    for s in [wire.ab.stats, wire.ba.stats] {
        assert_eq!((s.lost, s.queue_drops, s.duplicated), (0, 0, 0), "the link must only reorder: {s:?}");
        assert!(s.reordered > 0);
    }
    assert!(reductions(&first) > 0, "reordering never cost a reduction: the test shows nothing");
    let after = reductions(&end) - reductions(&first);
    let undone = end.tcp_spurious_recoveries - first.tcp_spurious_recoveries;
    assert!(after <= undone, "{after} window reductions after the first D-SACK, {undone} undone");
    assert_eq!(end.tcp_rto_expired, 0);
    assert_eq!(
        end.tcp_retransmits, half.tcp_retransmits,
        "reordering still causes retransmissions in the second half: the reordering window did not grow"
    );
}

/// One segment is dropped twice, the original and its first retransmission, on a path
/// that loses nothing else. RACK sees the retransmission lost once data sent after it is
/// SACKed, and sends it a third time, long before the retransmission timer.
#[test]
fn rack_finds_a_lost_retransmission_without_a_timeout() {
    // Long enough that new data follows the retransmission.
    let total = 48 * MIB;
    let stream = Stream::new(52);
    // Windows well above the path's BDP (1.25 MB), and room at the receiver for what
    // arrives out of order behind the hole, so data sent after the retransmission can
    // show it lost: with a buffer full behind the hole at snd_una nothing newer would be
    // sent or SACKed, and only the timer could tell.
    let big = TcpConfig { send_buffer: 16 << 20, recv_buffer: 16 << 20, max_ooo_segments: 6000, ..tcp_config() };
    let host = OurHost::new(1, big.clone(), true, Role::Send { total }, stream).client(2);
    let (mut count, mut target) = (0u32, None);
    let dropped = Rc::new(RefCell::new(0u32));
    let drops = dropped.clone();
    let (mut a, seen) = Sender::new(host, move |seq| {
        count += 1;
        if count == 2000 {
            target = Some(seq);
        }
        let hit = target == Some(seq) && *drops.borrow() < 2;
        if hit {
            *drops.borrow_mut() += 1;
        }
        hit
    });
    let mut b = OurHost::new(2, big, true, Role::Recv { total }, stream).server();
    let mut wire = Wire::new(path(5), 52);
    let took = run(&mut a, &mut b, &mut wire, Duration::from_secs(600));
    let c = seen.borrow().clone();
    let dropped = *dropped.borrow();
    eprintln!(
        "{took}: dropped {dropped}; {} retransmissions (RACK {}), {} lost retransmissions, {} RTOs, {} probes",
        c.tcp_retransmits, c.tcp_rack_retransmits, c.tcp_lost_retransmits, c.tcp_rto_expired, c.tcp_loss_probes
    );
    assert_eq!(dropped, 2, "the original and its first retransmission");
    assert_eq!(c.tcp_lost_retransmits, 1, "RACK did not see the retransmission lost");
    assert_eq!(c.tcp_rack_retransmits, 2, "the segment went out three times, the last two by RACK");
    assert_eq!(c.tcp_rto_expired, 0, "the lost retransmission waited for the timer");
}

/// The PRR check: our sender, polled after every frame it receives, compares what it
/// sent in answer to that ACK with RFC 6937's `sndcnt`, computed here from its state.
struct PrrWatch {
    inner: OurHost,
    pending: Vec<Vec<u8>>,
    seen: Rc<RefCell<PrrSeen>>,
    /// Outgoing first transmissions dropped: one burst of `burst` after `burst_at`.
    sent: u32,
    burst_at: u32,
    burst: u32,
    /// The highest sequence number sent (above it: a first transmission).
    high: Option<u32>,
}

#[derive(Debug, Default)]
struct PrrSeen {
    /// ACKs in recovery checked in the proportional part, and in slow-start reduction.
    proportional: u32,
    reduction: u32,
    /// Recovery episodes seen.
    episodes: u32,
    violations: Vec<String>,
}

impl PrrWatch {
    fn info(&self) -> Option<RecoveryInfo> {
        self.inner.conn.and_then(|h| self.inner.stack.conn(h)).map(|c| c.recovery_info())
    }

    fn check(&self, before: Option<RecoveryInfo>, mid: RecoveryInfo, after: RecoveryInfo, seen: &mut PrrSeen) {
        let (Some(m), Some(a)) = (mid.prr, after.prr) else { return };
        if mid.state != CaState::Recovery || after.state != CaState::Recovery || a.recover_fs != m.recover_fs {
            return;
        }
        let same = before
            .and_then(|b| b.prr)
            .filter(|b| b.recover_fs == m.recover_fs && before.is_some_and(|x| x.state == CaState::Recovery));
        if same.is_none() {
            seen.episodes += 1;
        }
        let delivered_now = m.delivered - same.map_or(0, |b| b.delivered);
        let (pipe, ssthresh, mss) = (mid.pipe, mid.ssthresh, mid.mss);
        let mut sndcnt = if pipe > ssthresh {
            seen.proportional += 1;
            ((m.delivered as u128 * ssthresh as u128).div_ceil(m.recover_fs as u128) as usize).saturating_sub(m.out)
        } else {
            seen.reduction += 1;
            (ssthresh - pipe).min(m.delivered.saturating_sub(m.out).max(delivered_now) + mss)
        };
        if m.out == 0 {
            sndcnt = sndcnt.max(mss);
        }
        let sent = a.out - m.out;
        // Segments are whole: the last one may go past a budget that is not a multiple
        // of the MSS.
        if sent > sndcnt + mss - 1 {
            seen.violations.push(format!(
                "sent {sent} B for sndcnt {sndcnt} (pipe {pipe}, ssthresh {ssthresh}, delivered {} of which {delivered_now} now, out {}, RecoverFS {})",
                m.delivered, m.out, m.recover_fs
            ));
        }
    }
}

impl Host for PrrWatch {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        let before = self.info();
        self.inner.receive(now, frame);
        // Timers due now run before the check, so what they allow is in `mid`.
        self.inner.stack.handle_timeout(now);
        let mid = self.info();
        let mut out = Vec::new();
        self.inner.poll(now, &mut out);
        let after = self.info();
        if let (Some(m), Some(a)) = (mid, after) {
            self.check(before, m, a, &mut self.seen.borrow_mut());
        }
        self.pending.append(&mut out);
    }
    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        out.append(&mut self.pending);
        self.inner.poll(now, out);
        out.retain(|f| {
            let Some(seq) = data_seq(f) else { return true };
            if self.high.is_some_and(|h| (seq.wrapping_sub(h) as i32) <= 0) {
                return true;
            }
            self.high = Some(seq);
            self.sent += 1;
            !(self.burst_at..self.burst_at + self.burst).contains(&self.sent)
        });
    }
    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        if !self.pending.is_empty() {
            return Some(now);
        }
        self.inner.poll_at(now)
    }
    fn done(&self) -> bool {
        self.inner.done()
    }
    fn progress(&self) -> u64 {
        self.inner.progress()
    }
    fn describe(&self) -> String {
        let c = self.inner.stack.counters();
        format!(
            "{} {:?}; rexmit {} rto {} rack {} lost-rexmit {} probes {}",
            self.inner.describe(),
            self.info(),
            c.tcp_retransmits,
            c.tcp_rto_expired,
            c.tcp_rack_retransmits,
            c.tcp_lost_retransmits,
            c.tcp_loss_probes
        )
    }
}

/// 1% random loss both ways and, once, a burst of 40 new segments lost at once (the pipe then
/// falls far below ssthresh): on every ACK of every recovery, what goes out stays within
/// PRR's bound, proportional while the pipe is above ssthresh, no faster than slow start
/// below it.
#[test]
fn prr_holds_what_recovery_sends_to_its_bound() {
    let total = 16 * MIB;
    let stream = Stream::new(53);
    let seen = Rc::new(RefCell::new(PrrSeen::default()));
    let mut a = PrrWatch {
        inner: OurHost::new(1, tcp_config(), true, Role::Send { total }, stream).client(2),
        pending: Vec::new(),
        seen: seen.clone(),
        sent: 0,
        burst_at: 3000,
        burst: 40,
        high: None,
    };
    let mut b = OurHost::new(2, tcp_config(), true, Role::Recv { total }, stream).server();
    let mut wire = Wire::new(Faults { loss: 0.01, ..path(5) }, 53);
    run(&mut a, &mut b, &mut wire, Duration::from_secs(600));
    let c = a.inner.stack.counters();
    let s = seen.borrow();
    eprintln!(
        "{} recoveries ({} seen here), ACKs checked: {} proportional, {} slow-start reduction; {} violations",
        c.tcp_fast_recoveries,
        s.episodes,
        s.proportional,
        s.reduction,
        s.violations.len()
    );
    assert!(s.episodes >= 10 && s.proportional > 50 && s.reduction > 10, "too few recoveries to tell: {s:?}");
    assert!(s.violations.is_empty(), "{} ACKs over PRR's bound, first: {:?}", s.violations.len(), s.violations.first());
}

/// Runs a clean 100 Mbit/s path of 20 ms RTT whose bottleneck queue holds 2000 frames
/// until slow start ends (by HyStart++ or by a loss). Returns the sender's counters then
/// and the frames the queue had dropped.
fn slow_start_end(hystart: bool) -> (Counters, u64) {
    let total = 24 * MIB;
    let stream = Stream::new(54);
    let tcp = TcpConfig { hystart, ..tcp_config() };
    let host = OurHost::new(1, tcp, true, Role::Send { total }, stream).client(2);
    let (mut a, seen) = Sender::new(host, |_| false);
    // A receive window well above what the path and its queue hold.
    let rx = TcpConfig { recv_buffer: 8 << 20, ..tcp_config() };
    let mut b = OurHost::new(2, rx, true, Role::Recv { total }, stream).server();
    let f =
        Faults { latency: Duration::from_millis(10), rate_bps: 100_000_000, queue_frames: 2000, ..Faults::default() };
    let mut wire = Wire::new(f, 54);
    let mut now = Instant::ZERO;
    let limit = Duration::from_secs(600);
    run_until(&mut a, &mut b, &mut wire, &mut now, limit, &mut |_, _| {
        let c = seen.borrow();
        c.tcp_hystart_exits > 0 || c.tcp_retransmits > 0 || c.tcp_rto_expired > 0
    });
    let at_end = (seen.borrow().clone(), wire.ab.stats.queue_drops);
    run_until(&mut a, &mut b, &mut wire, &mut now, limit, &mut |a, b| a.done() && b.done());
    at_end
}

#[test]
fn hystart_ends_slow_start_before_the_queue_overflows() {
    let (with, drops_with) = slow_start_end(true);
    let (without, drops_without) = slow_start_end(false);
    eprintln!(
        "HyStart++: exits {}, CSS {}, retransmissions {}, queue drops {drops_with}; classic: exits {}, retransmissions {}, recoveries {}, queue drops {drops_without}",
        with.tcp_hystart_exits,
        with.tcp_hystart_css,
        with.tcp_retransmits,
        without.tcp_hystart_exits,
        without.tcp_retransmits,
        without.tcp_fast_recoveries
    );
    assert_eq!(with.tcp_hystart_exits, 1, "HyStart++ did not end slow start");
    assert_eq!((with.tcp_retransmits, drops_with), (0, 0), "a loss came first");
    assert_eq!(without.tcp_hystart_exits, 0);
    assert!(drops_without > 0 && without.tcp_retransmits > 0, "classic slow start should run into the queue's end");
}
