//! Reliability over UDP, eRPC-style: every reliable datagram has a per-peer sequence number;
//! the receiver acknowledges with a cumulative number plus a selective bitmap; the sender
//! keeps each unacknowledged datagram *by reference* (its frames, not a copy of its bytes),
//! retransmits on a timeout or when three datagrams sent after it were selectively
//! acknowledged past it, and drops its references when the acknowledgement comes.
//!
//! **Passes count only datagrams sent later** (RACK's rule, RFC 8985, by transmission
//! order instead of time). A retransmission is passed only by what was sent after it, so
//! the acknowledgements of the rest of its original burst, still arriving, do not make it
//! "lost" again every three acknowledgements: that storm retransmitted each lost datagram
//! some twenty times under 1% loss.
//!
//! Both halves are sans-I/O state machines: time comes in as `now`, datagrams go out as
//! return values. The window (at most [`SACK_BITS`] datagrams) is the flow control: a
//! sender never has more than `window` datagrams outstanding, so a receiver with the same
//! window can hold every one of them for in-order delivery.
//!
//! **Acknowledgements prove receipt.** Sequence numbers start at a random initial number
//! per peer (as TCP's do, RFC 6528), carried to the receiver in every data datagram's
//! `base` field, so a sender accepts only acknowledgements that name sequence numbers it
//! actually sent and still waits for: a cumulative number between the oldest outstanding
//! and the next, and selective bits below the next. Anything else is refused whole and
//! counted ([`BadAck`]); a blind spoofer would have to guess a 32-bit number.
//!
//! **The timer runs from the last progress** (RFC 6298 5.3: restarted by every
//! acknowledgement of new data), not from each datagram's own send. A burst of a whole
//! window leaves the kernel at the copy-mode rate (about 2.5 us a frame here, so 1.3 ms
//! for 512), and per-datagram timers of 500 us expired on the tail of every large message
//! while its acknowledgements were still streaming in: a thousand spurious retransmissions
//! per 50 MiB. Losses with later datagrams acknowledged are fast-retransmitted; the timer
//! is for the tail, after which nothing acknowledges anything.
//!
//! **Retransmission gives up.** A datagram sent `max_tries` times without an
//! acknowledgement ends the peer's reliable state: [`TxWindow::expired`] says so, and the
//! engine reports the peer lost.

use std::time::{Duration, Instant};

use super::wire::SACK_BITS;

/// Sequence numbers compare modulo 2^32.
fn diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// One datagram sent and not yet acknowledged.
#[derive(Debug)]
struct Inflight<T> {
    dgram: T,
    sent: Instant,
    tries: u32,
    /// Its place in transmission order (sends and retransmissions numbered together).
    xmit: u64,
    /// Acknowledgements of datagrams transmitted after it, since it was last sent.
    passed: u32,
}

/// The sending half for one peer.
#[derive(Debug)]
pub struct TxWindow<T> {
    slots: Vec<Option<Inflight<T>>>,
    /// Oldest unacknowledged sequence number.
    base: u32,
    /// Next sequence number to assign.
    next: u32,
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    rto_min: Duration,
    max_tries: u32,
    /// When an acknowledgement last acknowledged something new.
    progress: Option<Instant>,
    /// Transmissions so far (the next `Inflight::xmit`).
    xmits: u64,
}

/// Timer constants: the RTO starts here, is never below `rto_min`, never above this.
const RTO_INITIAL: Duration = Duration::from_millis(5);
/// The largest retransmission timeout (after backing off).
pub const RTO_MAX: Duration = Duration::from_millis(200);
/// Selective acknowledgements past a hole that trigger a fast retransmit.
const FAST_RETX_AFTER: u32 = 3;

/// Why an acknowledgement was refused (nothing of it was applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadAck {
    /// The cumulative number is past the next sequence number: it acknowledges datagrams
    /// never sent.
    Unsent,
    /// A selective bit names a datagram never sent, or the bitmap is longer than any window.
    UnsentSack,
}

/// What [`TxWindow::expired`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The sequence numbers pushed are due for retransmission.
    Due,
    /// A datagram reached the retry limit: the peer does not answer.
    GaveUp,
}

impl<T> TxWindow<T> {
    /// A window of `size` datagrams (a power of two, at most `SACK_BITS`) whose first
    /// sequence number is `isn`; a datagram is sent at most `max_tries` times.
    pub fn new(size: u32, rto_min: Duration, isn: u32, max_tries: u32) -> Self {
        TxWindow {
            slots: (0..size).map(|_| None).collect(),
            base: isn,
            next: isn,
            srtt: None,
            rttvar: Duration::ZERO,
            rto: RTO_INITIAL.max(rto_min),
            rto_min,
            max_tries: max_tries.max(1),
            progress: None,
            xmits: 0,
        }
    }

    fn slot(&self, seq: u32) -> usize {
        (seq as usize) & (self.slots.len() - 1)
    }

    /// Datagrams that can be sent now.
    pub fn room(&self) -> u32 {
        self.slots.len() as u32 - self.next.wrapping_sub(self.base)
    }

    /// Datagrams outstanding.
    pub fn in_flight(&self) -> u32 {
        self.next.wrapping_sub(self.base)
    }

    /// The sequence number the next [`TxWindow::sent`] will get.
    pub fn next_seq(&self) -> u32 {
        self.next
    }

    /// The oldest sequence number not yet acknowledged (the `base` data datagrams carry).
    pub fn base(&self) -> u32 {
        self.base
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// Records a datagram sent at `now` with sequence number `next_seq()`; the window keeps
    /// `dgram` until it is acknowledged. The caller checked `room() > 0`.
    pub fn sent(&mut self, now: Instant, dgram: T) -> u32 {
        let seq = self.next;
        debug_assert!(self.room() > 0, "sent into a full window");
        let i = self.slot(seq);
        self.slots[i] = Some(Inflight { dgram, sent: now, tries: 1, xmit: self.xmits, passed: 0 });
        self.xmits += 1;
        self.next = seq.wrapping_add(1);
        seq
    }

    /// Handles an acknowledgement: everything before `cum` arrived, and `seq = cum + 1 + i`
    /// for each set bit `i` of `sack`. Returns how many datagrams it newly acknowledged and
    /// pushes onto `fast` the sequence numbers due for a fast retransmit. An
    /// acknowledgement naming anything never sent is refused whole; one older than the
    /// window's base (reordered, stale) changes nothing.
    pub fn on_ack(&mut self, now: Instant, cum: u32, sack: &[u8], fast: &mut Vec<u32>) -> Result<u32, BadAck> {
        if diff(cum, self.next) > 0 {
            return Err(BadAck::Unsent);
        }
        if sack.len() > SACK_BITS / 8 {
            return Err(BadAck::UnsentSack);
        }
        // The highest selectively acknowledged sequence number must have been sent.
        if let Some((byte_i, &byte)) = sack.iter().enumerate().rev().find(|(_, b)| **b != 0) {
            let bit = 7 - byte.leading_zeros() as usize;
            let top = cum.wrapping_add(1 + (byte_i * 8 + bit) as u32);
            if diff(top, self.next) >= 0 {
                return Err(BadAck::UnsentSack);
            }
        }
        if diff(cum, self.base) < 0 {
            return Ok(0); // stale: everything it says is already known
        }
        let mut acked = 0;
        // The latest transmission among the datagrams this acknowledges anew.
        let mut newest = None;
        while self.base != cum {
            let i = self.slot(self.base);
            if let Some(f) = self.slots[i].take() {
                self.sample(now, &f);
                newest = newest.max(Some(f.xmit));
                acked += 1;
            }
            self.base = self.base.wrapping_add(1);
        }
        let mut highest = None;
        for (byte_i, &byte) in sack.iter().enumerate() {
            if byte == 0 {
                continue;
            }
            for bit in 0..8 {
                if byte & (1 << bit) == 0 {
                    continue;
                }
                let seq = cum.wrapping_add(1 + (byte_i * 8 + bit) as u32);
                let i = self.slot(seq);
                if let Some(f) = self.slots[i].take() {
                    self.sample(now, &f);
                    newest = newest.max(Some(f.xmit));
                    acked += 1;
                }
                highest = Some(seq);
            }
        }
        if acked > 0 {
            self.progress = Some(now);
        }
        if let (Some(h), Some(newest)) = (highest, newest) {
            // A hole below the highest selectively acknowledged datagram was passed if this
            // acknowledges something transmitted after the hole's own last transmission.
            let mut seq = self.base;
            while diff(seq, h) < 0 {
                let i = self.slot(seq);
                if let Some(f) = self.slots[i].as_mut().filter(|f| f.xmit < newest) {
                    f.passed += 1;
                    if f.passed == FAST_RETX_AFTER {
                        fast.push(seq);
                    }
                }
                seq = seq.wrapping_add(1);
            }
        }
        Ok(acked)
    }

    /// Karn's rule: only datagrams sent once give an RTT sample. RFC 6298 smoothing.
    fn sample(&mut self, now: Instant, f: &Inflight<T>) {
        if f.tries != 1 {
            return;
        }
        let r = now.saturating_duration_since(f.sent);
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                let d = s.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + d) / 4;
                self.srtt = Some((s * 7 + r) / 8);
            }
        }
        let s = self.srtt.unwrap_or(r);
        self.rto = (s + self.rttvar * 4).clamp(self.rto_min, RTO_MAX);
    }

    /// Pushes onto `due` every outstanding datagram whose timer expired at `now`: an RTO
    /// (backed off exponentially per retry) since it was last sent and since the last
    /// acknowledgement of anything new. Or says that one has been sent `max_tries` times
    /// already and the peer is not answering.
    pub fn expired(&self, now: Instant, due: &mut Vec<u32>) -> Expired {
        let mut seq = self.base;
        while seq != self.next {
            if let Some(f) = &self.slots[self.slot(seq)] {
                let wait = self.rto.saturating_mul(1 << (f.tries - 1).min(6)).min(RTO_MAX);
                let since = self.progress.map_or(f.sent, |p| p.max(f.sent));
                if now.saturating_duration_since(since) >= wait {
                    if f.tries >= self.max_tries {
                        return Expired::GaveUp;
                    }
                    due.push(seq);
                }
            }
            seq = seq.wrapping_add(1);
        }
        Expired::Due
    }

    /// The datagram `seq`, if still unacknowledged, for retransmitting.
    pub fn get(&self, seq: u32) -> Option<&T> {
        if diff(seq, self.base) < 0 || diff(seq, self.next) >= 0 {
            return None;
        }
        self.slots[self.slot(seq)].as_ref().map(|f| &f.dgram)
    }

    /// Records that `seq` was sent again at `now`.
    pub fn resent(&mut self, now: Instant, seq: u32) {
        if self.get(seq).is_none() {
            return;
        }
        let i = self.slot(seq);
        if let Some(f) = self.slots[i].as_mut() {
            f.sent = now;
            f.tries += 1;
            f.xmit = self.xmits;
            f.passed = 0;
        }
        self.xmits += 1;
    }
}

/// What the receiving half did with a datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Accept {
    /// Held for in-order delivery (and possibly delivered with others: see `deliver`).
    New,
    /// Seen before (a retransmission after a lost acknowledgement): dropped, acknowledge again.
    Duplicate,
    /// Beyond the window: dropped; the sender will retransmit.
    OutOfWindow,
}

/// The receiving half for one peer: a reorder buffer of `window` datagrams.
///
/// **When to acknowledge.** Not every datagram: an acknowledgement is a packet of its own
/// (a TX descriptor, a system call in copy mode, an RX at the sender), and acknowledging
/// each receive batch of a busy receiver cost one per 1.6 datagrams. An acknowledgement is
/// *owed* (`ack_due`) once anything arrived, and *urgent* (`urgent`) when the sender must
/// hear at once: a datagram out of order or filling a hole (fast retransmit needs it), a
/// duplicate or one beyond the window (an acknowledgement was lost), every
/// [`RxWindow::ack_every`] new datagrams (the sender's window keeps moving), and, set by
/// the engine, when a message completes. Otherwise the engine delays it a little (delayed
/// ACK, as TCP's RFC 1122 4.2.3.2, but in microseconds).
#[derive(Debug)]
pub struct RxWindow<T> {
    slots: Vec<Option<T>>,
    /// Next sequence number expected (everything before it was delivered).
    cum: u32,
    held: usize,
    /// An acknowledgement should go out.
    pub ack_due: bool,
    /// ... at once (see the type's docs).
    pub urgent: bool,
    /// New datagrams since the last acknowledgement.
    pending: u32,
}

impl<T> RxWindow<T> {
    /// A reorder buffer of `size` datagrams (a power of two, at most `SACK_BITS`) expecting
    /// `start` first: the `base` of the sender's first datagram seen.
    pub fn new(size: u32, start: u32) -> Self {
        RxWindow {
            slots: (0..size).map(|_| None).collect(),
            cum: start,
            held: 0,
            ack_due: false,
            urgent: false,
            pending: 0,
        }
    }

    /// New in-order datagrams after which an acknowledgement is urgent: a quarter of the
    /// window, at most 32 (a 64 KiB message at MTU 1500 is 46 datagrams).
    pub fn ack_every(&self) -> u32 {
        (self.slots.len() as u32 / 4).clamp(1, 32)
    }

    /// Whether a datagram `seq` that says its sender waits for acknowledgement of `base`
    /// onwards can start a window: `seq` lies within one window of `base`.
    pub fn can_start(size: u32, seq: u32, base: u32) -> bool {
        let d = diff(seq, base);
        d >= 0 && (d as u32) < size
    }

    fn slot(&self, seq: u32) -> usize {
        (seq as usize) & (self.slots.len() - 1)
    }

    /// Takes datagram `seq`; in-order datagrams come out of `deliver`.
    pub fn accept(&mut self, seq: u32, dgram: T) -> Accept {
        self.ack_due = true;
        let d = diff(seq, self.cum);
        if d < 0 {
            self.urgent = true;
            return Accept::Duplicate;
        }
        if d as usize >= self.slots.len() {
            self.urgent = true;
            return Accept::OutOfWindow;
        }
        let i = self.slot(seq);
        if self.slots[i].is_some() {
            self.urgent = true;
            return Accept::Duplicate;
        }
        self.slots[i] = Some(dgram);
        self.held += 1;
        self.pending += 1;
        // Past a hole, or filling one (others wait behind it), or many since the last.
        if d != 0 || self.held > 1 || self.pending >= self.ack_every() {
            self.urgent = true;
        }
        Accept::New
    }

    /// The next in-order datagram, if it arrived.
    pub fn deliver(&mut self) -> Option<T> {
        let i = self.slot(self.cum);
        let d = self.slots[i].take()?;
        self.held -= 1;
        self.cum = self.cum.wrapping_add(1);
        Some(d)
    }

    /// The acknowledgement to send: the cumulative number, and the bitmap written into
    /// `sack` (cleared first); returns the bitmap bytes in use.
    pub fn ack(&mut self, sack: &mut [u8]) -> (u32, usize) {
        self.ack_due = false;
        self.urgent = false;
        self.pending = 0;
        sack.fill(0);
        let mut used = 0;
        if self.held > 0 {
            let n = (self.slots.len() - 1).min(sack.len() * 8);
            for i in 0..n {
                let seq = self.cum.wrapping_add(1 + i as u32);
                if self.slots[self.slot(seq)].is_some() {
                    sack[i / 8] |= 1 << (i % 8);
                    used = i / 8 + 1;
                }
            }
        }
        (self.cum, used)
    }

    /// Datagrams held waiting for a hole to fill.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Gives up the held datagrams (their sender went away); returns how many.
    pub fn clear(&mut self) -> usize {
        let n = self.held;
        self.slots.iter_mut().for_each(|s| *s = None);
        self.held = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delivers the sender's datagrams through a link that drops some, acks per batch, and
    /// runs until everything arrived in order, exactly once.
    fn run_lossy(n: u32, window: u32, drop: impl Fn(u32, u32) -> bool) -> (Vec<u32>, u32) {
        let t0 = Instant::now();
        let mut now = t0;
        let isn = 0xffff_fff0; // wraps during the run
        let mut tx: TxWindow<u32> = TxWindow::new(window, Duration::from_micros(200), isn, u32::MAX);
        let mut rx: RxWindow<u32> = RxWindow::new(window, isn);
        let mut delivered = Vec::new();
        let mut next_payload = 0;
        let mut retx = 0;
        let mut sends = 0u32;
        let mut sack = vec![0u8; SACK_BITS / 8];
        let mut due = Vec::new();
        for _round in 0..100_000 {
            if delivered.len() as u32 == n {
                break;
            }
            let mut wire = Vec::new();
            while tx.room() > 0 && next_payload < n {
                let seq = tx.sent(now, next_payload);
                wire.push((seq, next_payload));
                next_payload += 1;
            }
            due.clear();
            tx.expired(now, &mut due);
            for &s in &due {
                if let Some(&p) = tx.get(s) {
                    tx.resent(now, s);
                    wire.push((s, p));
                    retx += 1;
                }
            }
            for (seq, p) in wire {
                sends += 1;
                if drop(seq, sends) {
                    continue;
                }
                rx.accept(seq, p);
                while let Some(d) = rx.deliver() {
                    delivered.push(d);
                }
            }
            now += Duration::from_micros(50);
            if rx.ack_due {
                let (cum, used) = rx.ack(&mut sack);
                due.clear();
                tx.on_ack(now, cum, &sack[..used], &mut due).expect("a true ack is taken");
                for &s in &due {
                    if let Some(&p) = tx.get(s) {
                        tx.resent(now, s);
                        rx.accept(s, p);
                        retx += 1;
                        while let Some(d) = rx.deliver() {
                            delivered.push(d);
                        }
                    }
                }
            }
            now += Duration::from_micros(50);
        }
        (delivered, retx)
    }

    #[test]
    fn lossless_in_order_no_retransmit() {
        let (d, retx) = run_lossy(5000, 256, |_, _| false);
        assert_eq!(d, (0..5000).collect::<Vec<_>>());
        assert_eq!(retx, 0);
    }

    #[test]
    fn every_datagram_arrives_once_in_order_despite_loss() {
        // Drop every 7th transmission (retransmissions too), across the u32 wrap-around of
        // the window positions as well.
        let (d, retx) = run_lossy(20_000, 512, |_, sends| sends % 7 == 0);
        assert_eq!(d, (0..20_000).collect::<Vec<_>>());
        assert!(retx > 0);
    }

    #[test]
    fn window_full_is_room_zero_and_ack_frees_it() {
        let now = Instant::now();
        let mut tx: TxWindow<()> = TxWindow::new(4, Duration::from_millis(1), 0, 8);
        for _ in 0..4 {
            tx.sent(now, ());
        }
        assert_eq!(tx.room(), 0);
        let mut fast = Vec::new();
        // 1 and 3 selectively acknowledged: 0 and 2 still out.
        assert_eq!(tx.on_ack(now, 0, &[0b101], &mut fast), Ok(2));
        assert_eq!(tx.room(), 0);
        assert_eq!(tx.on_ack(now, 4, &[], &mut fast), Ok(2));
        assert_eq!(tx.room(), 4);
        // A stale ack changes nothing.
        assert_eq!(tx.on_ack(now, 1, &[], &mut fast), Ok(0));
    }

    #[test]
    fn fast_retransmit_after_three_passes() {
        let now = Instant::now();
        let mut tx: TxWindow<u32> = TxWindow::new(16, Duration::from_millis(1), 0, 8);
        for i in 0..8 {
            tx.sent(now, i);
        }
        let mut fast = Vec::new();
        tx.on_ack(now, 0, &[0b1], &mut fast).unwrap(); // seq 1
        tx.on_ack(now, 0, &[0b11], &mut fast).unwrap(); // seq 2
        assert!(fast.is_empty());
        tx.on_ack(now, 0, &[0b111], &mut fast).unwrap(); // seq 3: third pass of the hole at 0
        assert_eq!(fast, vec![0]);
    }

    #[test]
    fn receiver_drops_duplicates_and_out_of_window() {
        let mut rx: RxWindow<u32> = RxWindow::new(8, 0);
        assert_eq!(rx.accept(1, 1), Accept::New);
        assert_eq!(rx.accept(1, 1), Accept::Duplicate);
        assert_eq!(rx.accept(8, 8), Accept::OutOfWindow);
        assert_eq!(rx.deliver(), None);
        let mut sack = [0u8; 2];
        assert_eq!(rx.ack(&mut sack), (0, 1));
        assert_eq!(sack[0], 0b1);
        assert_eq!(rx.accept(0, 0), Accept::New);
        assert_eq!(rx.deliver(), Some(0));
        assert_eq!(rx.deliver(), Some(1));
        assert_eq!(rx.accept(0, 0), Accept::Duplicate);
        assert_eq!(rx.held(), 0);
    }

    #[test]
    fn acks_naming_unsent_datagrams_free_nothing() {
        let now = Instant::now();
        let isn = 0x8000_1234;
        let mut tx: TxWindow<u32> = TxWindow::new(16, Duration::from_millis(1), isn, 8);
        for i in 0..4 {
            tx.sent(now, i);
        }
        let mut fast = Vec::new();
        // A spoofer guessing the sequence space starts at 0 (as it once did) hits nothing.
        assert_eq!(tx.on_ack(now, 4, &[], &mut fast), Err(BadAck::Unsent));
        // Past the next sequence number, cumulatively or selectively: refused whole.
        assert_eq!(tx.on_ack(now, isn + 5, &[], &mut fast), Err(BadAck::Unsent));
        assert_eq!(tx.on_ack(now, isn, &[0b1000], &mut fast), Err(BadAck::UnsentSack), "bit 3 is isn+4, unsent");
        let mut long = vec![0u8; SACK_BITS / 8 + 1];
        long[0] = 1;
        assert_eq!(tx.on_ack(now, isn, &long, &mut fast), Err(BadAck::UnsentSack), "a bitmap longer than any window");
        assert_eq!(tx.in_flight(), 4, "nothing was freed");
        for s in 0..4 {
            assert!(tx.get(isn + s).is_some());
        }
        // The true acknowledgement still works.
        assert_eq!(tx.on_ack(now, isn + 2, &[0b1], &mut fast), Ok(3));
        assert_eq!(tx.in_flight(), 2);
    }

    #[test]
    fn retransmission_gives_up_after_max_tries() {
        let t0 = Instant::now();
        let mut tx: TxWindow<u32> = TxWindow::new(16, Duration::from_millis(1), 7, 3);
        tx.sent(t0, 1);
        let mut due = Vec::new();
        let mut now = t0;
        let mut tries = 1;
        loop {
            now += RTO_MAX;
            due.clear();
            match tx.expired(now, &mut due) {
                Expired::Due => {
                    assert_eq!(due, vec![7]);
                    tx.resent(now, 7);
                    tries += 1;
                }
                Expired::GaveUp => break,
            }
            assert!(tries <= 3, "still retrying after 3 tries");
        }
        assert_eq!(tries, 3, "sent three times, then gave up");
    }

    #[test]
    fn a_window_starts_where_the_sender_says_within_one_window() {
        assert!(RxWindow::<()>::can_start(16, 100, 100));
        assert!(RxWindow::<()>::can_start(16, 115, 100));
        assert!(!RxWindow::<()>::can_start(16, 116, 100), "more than a window past its base");
        assert!(!RxWindow::<()>::can_start(16, 99, 100), "before its own base");
        assert!(RxWindow::<()>::can_start(16, 3, u32::MAX - 2), "across the wrap");
        let mut rx: RxWindow<u32> = RxWindow::new(16, 100);
        assert_eq!(rx.accept(101, 1), Accept::New);
        assert_eq!(rx.accept(99, 9), Accept::Duplicate, "before the start: already delivered elsewhere");
        assert_eq!(rx.accept(100, 0), Accept::New);
        assert_eq!((rx.deliver(), rx.deliver(), rx.deliver()), (Some(0), Some(1), None));
        rx.accept(105, 5);
        assert_eq!((rx.held(), rx.clear(), rx.held()), (1, 1, 0));
    }

    #[test]
    fn acknowledgements_are_urgent_only_when_the_sender_needs_them() {
        let mut rx: RxWindow<u32> = RxWindow::new(512, 0);
        let mut sack = [0u8; 8];
        assert_eq!(rx.ack_every(), 32);
        // In order: owed, not urgent, until the 32nd.
        for s in 0..31 {
            assert_eq!(rx.accept(s, s), Accept::New);
            assert!(rx.deliver().is_some());
            assert!(rx.ack_due && !rx.urgent, "urgent after {} in order", s + 1);
        }
        rx.accept(31, 31);
        assert!(rx.urgent, "32 new datagrams make it urgent");
        rx.deliver();
        rx.ack(&mut sack);
        assert!(!rx.ack_due && !rx.urgent);
        // A hole: the datagram past it is urgent, and so is the one that fills it.
        rx.accept(33, 33);
        assert!(rx.urgent);
        rx.ack(&mut sack);
        rx.accept(32, 32);
        assert!(rx.urgent, "filling a hole");
        while rx.deliver().is_some() {}
        rx.ack(&mut sack);
        // Duplicates and datagrams beyond the window: the sender lost an acknowledgement.
        rx.accept(10, 10);
        assert!(rx.urgent);
        rx.ack(&mut sack);
        rx.accept(34 + 512, 0);
        assert!(rx.urgent);
        // A small window acknowledges more often.
        assert_eq!(RxWindow::<u32>::new(8, 0).ack_every(), 2);
    }

    #[test]
    fn a_window_draining_slowly_but_steadily_never_times_out() {
        // 512 datagrams queued at t0 leave at 2.5 us each (copy mode); each is acknowledged
        // 20 us after it leaves. The RTO (500 us) is far shorter than the drain (1.28 ms).
        let t0 = Instant::now();
        let rto_min = Duration::from_micros(500);
        let mut tx: TxWindow<u32> = TxWindow::new(512, rto_min, 0, 8);
        for i in 0..512 {
            tx.sent(t0, i);
        }
        let (mut due, mut fast) = (Vec::new(), Vec::new());
        for i in 0..512u32 {
            let now = t0 + Duration::from_nanos(2500 * u64::from(i)) + Duration::from_micros(20);
            tx.expired(now, &mut due);
            assert!(due.is_empty(), "datagram(s) {due:?} timed out at {:?} while acknowledgements flowed", now - t0);
            tx.on_ack(now, i + 1, &[], &mut fast).unwrap();
        }
        assert_eq!(tx.in_flight(), 0);
        // A tail with no acknowledgement at all still times out, an RTO after the last progress.
        let t1 = t0 + Duration::from_millis(2);
        tx.sent(t1, 9);
        let last = t1 + Duration::from_micros(10);
        tx.expired(last + rto_min / 2, &mut due);
        assert!(due.is_empty());
        tx.expired(t1 + tx.rto(), &mut due);
        assert_eq!(due, vec![512], "the unacknowledged tail is due an RTO after its send");
    }

    #[test]
    fn a_retransmission_is_passed_only_by_datagrams_sent_after_it() {
        let now = Instant::now();
        let mut tx: TxWindow<u32> = TxWindow::new(16, Duration::from_millis(1), 0, 8);
        for i in 0..8 {
            tx.sent(now, i);
        }
        let mut fast = Vec::new();
        // 0 is lost: 1, 2, 3 pass it and it goes again.
        for top in 1..=3u8 {
            tx.on_ack(now, 0, &[(1u8 << top) - 1], &mut fast).unwrap();
        }
        assert_eq!(fast, vec![0]);
        tx.resent(now, 0);
        fast.clear();
        // The rest of the original burst (4..7, sent before the retransmission) arrives:
        // no second fast retransmit, however many acknowledgements it takes.
        for top in 4..=7u8 {
            tx.on_ack(now, 0, &[((1u16 << top) - 1) as u8], &mut fast).unwrap();
        }
        // A repeated acknowledgement acknowledges nothing new: no pass either.
        tx.on_ack(now, 0, &[0x7f], &mut fast).unwrap();
        assert!(fast.is_empty(), "the retransmission was declared lost again: {fast:?}");
        // Datagrams sent after it pass it: the retransmission itself was lost.
        for i in 8..11 {
            tx.sent(now, i);
        }
        tx.on_ack(now, 0, &[0xff], &mut fast).unwrap(); // 1..8: 8 is the first sent after it
        tx.on_ack(now, 0, &[0xff, 0b1], &mut fast).unwrap(); // 9
        assert!(fast.is_empty(), "two so far");
        tx.on_ack(now, 0, &[0xff, 0b11], &mut fast).unwrap(); // 10
        assert_eq!(fast, vec![0], "three acknowledgements of later transmissions");
    }
}
