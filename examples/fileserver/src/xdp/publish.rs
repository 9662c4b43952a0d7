//! How a worker's counters reach the control thread without the worker ever waiting: each
//! worker owns a [`Slot`] and, at most every [`PERIOD`] while busy (and once before it goes
//! to sleep, if anything changed), writes a fresh snapshot into it with `try_lock`. If the
//! control thread happens to hold the lock, the worker skips and tries on a later turn;
//! the control thread holds it only to clone one snapshot. Readers therefore see counters
//! at most [`PERIOD`] old while a worker is busy, and current ones while it sleeps.
//!
//! ```text
//!   worker turn ── Publisher::due ──► Slot::offer (try_lock, fill) ──► Slot::read (lock, clone) ◄── control thread
//! ```

use std::sync::Mutex;

use stack::{Duration, Instant};

use crate::metrics::Metrics;

/// The longest a busy worker's published counters lag behind.
pub const PERIOD: Duration = Duration::from_millis(100);

/// One worker's latest counters.
#[derive(Debug, Default)]
pub struct Slot {
    latest: Mutex<Option<Metrics>>,
}

impl Slot {
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
    /// last snapshot or the worker is about to sleep.
    pub fn due(&self, now: Instant, sleeping: bool) -> bool {
        self.dirty && (sleeping || self.last.is_none_or(|t| now >= t + PERIOD))
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
        assert!(p.due(t0 + Duration::from_millis(50), true), "before sleeping");
        assert!(p.due(t0 + PERIOD, false), "after the period");
        p.published(t0 + PERIOD);
        p.turn(false);
        assert!(!p.due(t0 + PERIOD * 5, true), "nothing changed: nothing to publish");
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
