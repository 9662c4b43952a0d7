//! How a worker's counters reach the control thread without the worker ever waiting: each
//! worker owns a [`Slot`] and, at most every [`PERIOD`] while busy (and before it goes to
//! sleep, if anything changed, but at most every [`SLEEP_GAP`]), writes a fresh snapshot
//! into it with `try_lock`. If the control thread happens to hold the lock, the worker
//! skips and tries on a later turn; the control thread holds it only to clone one
//! snapshot. Readers therefore see counters at most [`PERIOD`] old while a worker is busy,
//! and at most [`SLEEP_GAP`] old while it sleeps: a worker that skipped its snapshot
//! before sleeping sleeps no longer than until it may take one ([`Publisher::wake_by`]).
//! A snapshot costs a few hundred formatted names and a census of the connection table,
//! so a worker that sleeps between bursts thousands of times a second (a connection per
//! request) must not take one each time.
//!
//! ```text
//!   worker turn ── Publisher::due ──► Slot::offer (try_lock, fill) ──► Slot::read (lock, clone) ◄── control thread
//!        ├─ Slot::beat (one relaxed store) ───────────────────────────► Slot::stuck_for   ◄── /health
//!        └─ Slot::wants_connections? ─► Slot::offer_connections ─────► Slot::connections ◄── /connections
//! ```
//!
//! The slot also carries the worker's heartbeat (the time of its last loop turn, and
//! whether it sleeps in `ppoll` now), and, only when the control port asks for it, a
//! snapshot of its connections: the control thread raises a flag and wakes the worker,
//! which fills the snapshot (at most [`MAX_CONNECTIONS`] rows, with `try_lock`) on its next
//! turn. Nothing is walked per turn unless asked.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use stack::tcp::ConnInfo;
use stack::{Duration, Instant};

use crate::metrics::Metrics;

/// Most connections one worker lists in a snapshot (the rest are counted).
pub const MAX_CONNECTIONS: usize = 1024;

/// A worker's connections at one moment.
#[derive(Debug, Clone)]
pub struct Connections {
    /// Snapshots taken so far (the reader waits for this to move).
    pub generation: u64,
    /// When it was taken, on the slot's clock (see [`Slot::epoch`]).
    pub at: Instant,
    pub rows: Vec<ConnInfo>,
    /// Connections not listed (beyond [`MAX_CONNECTIONS`]).
    pub more: usize,
}

impl Default for Connections {
    fn default() -> Self {
        Connections { generation: 0, at: Instant::ZERO, rows: Vec::new(), more: 0 }
    }
}

/// The longest a busy worker's published counters lag behind.
pub const PERIOD: Duration = Duration::from_millis(100);

/// The least time between two snapshots taken before sleeping.
pub const SLEEP_GAP: Duration = Duration::from_millis(10);

/// One worker's latest counters, heartbeat and (when asked) connections.
#[derive(Debug)]
pub struct Slot {
    latest: Mutex<Option<Metrics>>,
    /// The time base the worker's loop clock counts from.
    epoch: std::time::Instant,
    /// Loop time of the worker's last turn, microseconds since `epoch`.
    beat: AtomicU64,
    /// The worker waits in `ppoll` (or for "go"): idle, not stuck.
    sleeping: AtomicBool,
    want_connections: AtomicBool,
    connections: Mutex<Connections>,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            latest: Mutex::default(),
            epoch: std::time::Instant::now(),
            beat: AtomicU64::new(0),
            sleeping: AtomicBool::new(true),
            want_connections: AtomicBool::new(false),
            connections: Mutex::default(),
        }
    }
}

impl Slot {
    /// The time base of the worker's clock ([`crate::session::Clock::since`]).
    pub fn epoch(&self) -> std::time::Instant {
        self.epoch
    }

    /// The worker turned its loop at `now` (its clock).
    pub fn beat(&self, now: Instant) {
        self.beat.store(now.total_micros().max(0) as u64, Ordering::Relaxed);
    }

    /// The worker goes to sleep (`true`) or woke up, or left its loop (`false`).
    pub fn set_sleeping(&self, sleeping: bool) {
        self.sleeping.store(sleeping, Ordering::Relaxed);
    }

    /// How long the worker has been neither turning its loop nor asleep, if longer than
    /// `limit` (then it is stuck: in a long turn, or gone).
    pub fn stuck_for(&self, limit: std::time::Duration) -> Option<std::time::Duration> {
        if self.sleeping.load(Ordering::Relaxed) {
            return None;
        }
        let last = std::time::Duration::from_micros(self.beat.load(Ordering::Relaxed));
        let since = self.epoch.elapsed().saturating_sub(last);
        (since > limit).then_some(since)
    }

    /// Asks the worker for a snapshot of its connections (wake it afterwards); returns
    /// the generation to wait past.
    pub fn ask_connections(&self) -> u64 {
        let g = self.connections.lock().unwrap_or_else(|e| e.into_inner()).generation;
        self.want_connections.store(true, Ordering::Relaxed);
        g
    }

    /// Whether the control port asked for connections.
    pub fn wants_connections(&self) -> bool {
        self.want_connections.load(Ordering::Relaxed)
    }

    /// Fills the connection snapshot with `fill(rows)` (which returns how many it left
    /// out) unless the reader holds it now (then `false`: try on the next turn).
    pub fn offer_connections(&self, now: Instant, fill: impl FnOnce(&mut Vec<ConnInfo>) -> usize) -> bool {
        let Ok(mut g) = self.connections.try_lock() else { return false };
        g.rows.clear();
        g.more = fill(&mut g.rows);
        g.at = now;
        g.generation += 1;
        self.want_connections.store(false, Ordering::Relaxed);
        true
    }

    /// The latest connection snapshot.
    pub fn connections(&self) -> Connections {
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Fills the slot with `make()` unless a reader holds it now (then `false`: try later).
    /// Never blocks.
    pub fn offer(&self, make: impl FnOnce() -> Metrics) -> bool {
        match self.latest.try_lock() {
            Ok(mut g) => {
                *g = Some(make());
                true
            }
            Err(_) => false,
        }
    }

    /// The latest snapshot (`None` before the first).
    pub fn read(&self) -> Option<Metrics> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// When a worker publishes: see the module docs.
#[derive(Debug)]
pub struct Publisher {
    last: Option<Instant>,
    dirty: bool,
}

impl Default for Publisher {
    fn default() -> Self {
        Publisher { last: None, dirty: true }
    }
}

impl Publisher {
    /// Notes a turn: `worked` says whether it changed anything.
    pub fn turn(&mut self, worked: bool) {
        self.dirty |= worked;
    }

    /// Whether to publish now: something changed, and either [`PERIOD`] passed since the
    /// last snapshot or the worker is about to sleep and [`SLEEP_GAP`] passed.
    pub fn due(&self, now: Instant, sleeping: bool) -> bool {
        let gap = if sleeping { SLEEP_GAP } else { PERIOD };
        self.dirty && self.last.is_none_or(|t| now >= t + gap)
    }

    /// When a worker that goes to sleep with a change unpublished must wake to publish it.
    pub fn wake_by(&self) -> Option<Instant> {
        self.last.filter(|_| self.dirty).map(|t| t + SLEEP_GAP)
    }

    /// Records that a snapshot went out at `now`.
    pub fn published(&mut self, now: Instant) {
        self.last = Some(now);
        self.dirty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_workers_publish_each_period_and_before_sleeping_only_when_changed() {
        let t0 = Instant::from_millis(1000);
        let mut p = Publisher::default();
        assert!(p.due(t0, false), "the first snapshot goes out at once");
        p.published(t0);
        p.turn(true);
        assert!(!p.due(t0 + Duration::from_millis(50), false), "within the period");
        assert!(!p.due(t0 + Duration::from_millis(1), true), "before sleeping, within the gap");
        assert_eq!(p.wake_by(), Some(t0 + SLEEP_GAP), "so the sleep ends when the gap does");
        assert!(p.due(t0 + Duration::from_millis(50), true), "before sleeping");
        assert!(p.due(t0 + PERIOD, false), "after the period");
        p.published(t0 + PERIOD);
        p.turn(false);
        assert!(!p.due(t0 + PERIOD * 5, true), "nothing changed: nothing to publish");
        assert_eq!(p.wake_by(), None, "and no reason to wake");
    }

    #[test]
    fn a_worker_is_stuck_only_when_awake_and_silent() {
        let slot = Slot::default();
        let limit = std::time::Duration::from_millis(50);
        assert_eq!(slot.stuck_for(limit), None, "waiting for go counts as asleep");
        slot.set_sleeping(false);
        let now = || Instant::from_micros(slot.epoch().elapsed().as_micros() as i64);
        slot.beat(now());
        assert_eq!(slot.stuck_for(limit), None, "it just turned");
        std::thread::sleep(std::time::Duration::from_millis(80));
        assert!(slot.stuck_for(limit).is_some_and(|d| d >= limit), "awake and silent for 80 ms");
        slot.set_sleeping(true);
        assert_eq!(slot.stuck_for(limit), None, "asleep in ppoll: idle, not stuck");
        slot.set_sleeping(false);
        slot.beat(now());
        assert_eq!(slot.stuck_for(limit), None);
    }

    #[test]
    fn connections_are_filled_only_when_asked_and_the_generation_moves() {
        let slot = Slot::default();
        assert!(!slot.wants_connections());
        let g = slot.ask_connections();
        assert!(slot.wants_connections());
        let held = slot.connections.lock().unwrap();
        assert!(!slot.offer_connections(Instant::ZERO, |_| 0), "the reader holds it");
        drop(held);
        assert!(slot.wants_connections(), "still asked");
        assert!(slot.offer_connections(Instant::from_millis(5), |_rows| 7));
        assert!(!slot.wants_connections());
        let c = slot.connections();
        assert_eq!((c.generation, c.more, c.at), (g + 1, 7, Instant::from_millis(5)));
    }

    #[test]
    fn a_held_slot_is_skipped_not_waited_for() {
        let slot = Slot::default();
        assert!(slot.read().is_none());
        let with = |n| {
            let mut m = Metrics::default();
            m.requests = n;
            m
        };
        assert!(slot.offer(|| with(1)));
        let held = slot.latest.lock().unwrap();
        assert!(!slot.offer(|| with(2)), "the reader holds it");
        drop(held);
        assert_eq!(slot.read().map(|m| m.requests), Some(1));
    }
}
