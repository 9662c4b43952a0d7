//! When a worker may sleep, and for how long. A worker sleeps in `ppoll(2)` on its AF_XDP
//! socket (readable: frames arrived), its io_uring (readable: block reads finished) and
//! its wake-up eventfd (stop), with the next timer as the timeout, also while data is in
//! flight: new ACKs wake it through the socket, finished reads through the ring.
//!
//! Two things do not wake a `poll(2)` and so bound the sleep:
//!
//! * descriptors still in the TX ring: in copy mode the kernel sends only inside a
//!   `sendto`, so a ring the last kick did not drain (budget, `EAGAIN`) needs another
//!   turn at once;
//! * transmit completions: the kernel posts them as the skbs are freed (on veth, when the
//!   peer is done with them) without a wake-up. They matter only while something waits
//!   for the pool memory they return (a session on the retry list, or no free frame for
//!   the fill ring); then the sleep is at most [`MEMORY_WAIT`].
//!
//! Before sleeping, a worker turns [`SPIN_TURNS`] times with nothing to do, so a packet
//! microseconds behind the last one does not pay for a sleep and a wake-up.

use std::time::Duration as StdDuration;

use stack::Instant;

/// Idle turns before a worker sleeps.
pub const SPIN_TURNS: u32 = 16;
/// Longest sleep while pool memory is awaited from transmit completions.
pub const MEMORY_WAIT: StdDuration = StdDuration::from_micros(250);

/// What a worker knows after an idle turn.
#[derive(Debug, Clone, Copy)]
pub struct Idle {
    pub now: Instant,
    /// The stack's and the HTTP timers' next deadline.
    pub next_timer: Option<Instant>,
    /// Descriptors the kernel has not yet taken from the TX ring.
    pub tx_unsent: bool,
    /// Transmit descriptors not yet completed.
    pub tx_in_flight: bool,
    /// Something waits for pool memory (frames or blocks).
    pub memory_wait: bool,
}

/// How long to sleep: `None` to turn again at once, `Some(None)` until woken, else at most
/// the duration given.
pub fn sleep_for(i: &Idle) -> Option<Option<StdDuration>> {
    if i.tx_unsent {
        return None;
    }
    let timer = match i.next_timer {
        // (smoltcp's `Instant - Instant` is an absolute difference: check the order first.)
        Some(t) if t <= i.now => return None,
        Some(t) => Some(StdDuration::from_micros((t - i.now).total_micros())),
        None => None,
    };
    if i.memory_wait && i.tx_in_flight {
        return Some(Some(timer.map_or(MEMORY_WAIT, |t| t.min(MEMORY_WAIT))));
    }
    Some(timer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> Idle {
        Idle {
            now: Instant::from_millis(1000),
            next_timer: None,
            tx_unsent: false,
            tx_in_flight: false,
            memory_wait: false,
        }
    }

    #[test]
    fn with_nothing_pending_a_worker_sleeps_until_woken_or_its_timer() {
        assert_eq!(sleep_for(&idle()), Some(None));
        let i = Idle { next_timer: Some(Instant::from_millis(1040)), ..idle() };
        assert_eq!(sleep_for(&i), Some(Some(StdDuration::from_millis(40))));
        let i = Idle { tx_in_flight: true, ..i };
        assert_eq!(
            sleep_for(&i),
            Some(Some(StdDuration::from_millis(40))),
            "ACKs wake it: in flight is no reason to spin"
        );
    }

    #[test]
    fn a_due_timer_or_an_undrained_tx_ring_means_no_sleep() {
        assert_eq!(sleep_for(&Idle { next_timer: Some(Instant::from_millis(1000)), ..idle() }), None);
        assert_eq!(sleep_for(&Idle { next_timer: Some(Instant::from_millis(10)), ..idle() }), None);
        assert_eq!(sleep_for(&Idle { tx_unsent: true, ..idle() }), None);
    }

    #[test]
    fn memory_awaited_from_completions_bounds_the_sleep() {
        let i = Idle { memory_wait: true, tx_in_flight: true, ..idle() };
        assert_eq!(sleep_for(&i), Some(Some(MEMORY_WAIT)));
        let soon = Idle { next_timer: Some(Instant::from_micros(1_000_100)), ..i };
        assert_eq!(sleep_for(&soon), Some(Some(StdDuration::from_micros(100))));
        let nothing_to_complete = Idle { tx_in_flight: false, ..i };
        assert_eq!(sleep_for(&nothing_to_complete), Some(None), "only input can return memory then");
    }
}
