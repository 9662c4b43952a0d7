//! A hashed timer wheel with one timer per connection slot: arm, re-arm and cancel in
//! O(1) (intrusive lists threaded through a per-slot array, no allocation once the slots
//! exist), and expiry that visits only the buckets of the ticks that passed and, in them,
//! the timers that are due (plus any set more than a whole turn of the wheel ahead, which
//! the wheel's size makes rare: it spans the longest HTTP timeout).
//!
//! ```text
//!   buckets: [t0]─►slot 7─►slot 2   [t1]   [t2]─►slot 5   ...   (tick = deadline / TICK)
//!   expire(now): the overdue bucket, then cursor ──► every tick up to now: unlink the due
//!                slots, report them
//! ```
//!
//! A deadline armed after its tick was already passed goes to an extra "overdue" bucket
//! that every expiry empties first.
//!
//! Timers fire at their deadline or up to one tick later, never earlier.

use std::cell::Cell;

use stack::{Duration, Instant};

const NIL: u32 = u32::MAX;
/// Most buckets (a timer further ahead than this many ticks waits more than one turn).
const MAX_BUCKETS: usize = 1 << 16;
/// Buckets [`Wheel::next_at`] looks ahead before it gives a conservative answer.
const LOOKAHEAD: i64 = 64;

#[derive(Debug, Clone, Copy)]
struct Node {
    /// The deadline, in ticks.
    at: i64,
    prev: u32,
    next: u32,
    /// The bucket the node is linked in, or NIL when not armed.
    bucket: u32,
}

const UNARMED: Node = Node { at: 0, prev: NIL, next: NIL, bucket: NIL };

/// One timer per slot index; see the module docs.
#[derive(Debug)]
pub struct Wheel {
    tick_us: i64,
    /// Bucket lists; the last one is the overdue bucket.
    heads: Box<[u32]>,
    mask: usize,
    nodes: Vec<Node>,
    /// The first tick not yet expired.
    cursor: i64,
    armed: usize,
    /// [`Wheel::next_at`]'s last answer, until a timer or the cursor moves: a worker asks
    /// every loop turn, and most turns change no timer.
    next: Cell<Option<Option<Instant>>>,
}

impl Wheel {
    /// A wheel of `tick` resolution whose turn covers at least `span`.
    pub fn new(tick: Duration, span: Duration) -> Wheel {
        let tick_us = (tick.total_micros() as i64).max(1);
        let buckets = ((span.total_micros() as i64 / tick_us + 2) as usize).next_power_of_two().min(MAX_BUCKETS);
        Wheel {
            tick_us,
            heads: vec![NIL; buckets + 1].into_boxed_slice(),
            mask: buckets - 1,
            nodes: Vec::new(),
            cursor: 0,
            armed: 0,
            next: Cell::new(None),
        }
    }

    /// Timers armed.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.armed
    }

    /// Whether no timer is armed.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.armed == 0
    }

    fn bucket(&self, tick: i64) -> u32 {
        (tick as usize & self.mask) as u32
    }

    fn overdue(&self) -> u32 {
        (self.heads.len() - 1) as u32
    }

    /// Sets slot `idx`'s timer to `at` (replacing any it had).
    pub fn arm(&mut self, idx: usize, at: Instant) {
        if idx >= self.nodes.len() {
            self.nodes.resize(idx + 1, UNARMED);
        }
        // Rounded up: a timer never fires before its deadline.
        let tick = (at.total_micros() + self.tick_us - 1).div_euclid(self.tick_us);
        let n = self.nodes[idx];
        if n.bucket != NIL && n.at == tick {
            return;
        }
        self.cancel(idx);
        // A deadline whose tick was already expired goes where the next expiry looks first.
        let bucket = if tick < self.cursor { self.overdue() } else { self.bucket(tick) };
        let head = self.heads[bucket as usize];
        if head != NIL {
            self.nodes[head as usize].prev = idx as u32;
        }
        self.nodes[idx] = Node { at: tick, prev: NIL, next: head, bucket };
        self.heads[bucket as usize] = idx as u32;
        self.armed += 1;
        self.next.set(None);
    }

    /// Cancels slot `idx`'s timer, if armed.
    pub fn cancel(&mut self, idx: usize) {
        let Some(&n) = self.nodes.get(idx) else { return };
        if n.bucket == NIL {
            return;
        }
        match n.prev {
            NIL => self.heads[n.bucket as usize] = n.next,
            p => self.nodes[p as usize].next = n.next,
        }
        if n.next != NIL {
            self.nodes[n.next as usize].prev = n.prev;
        }
        self.nodes[idx] = UNARMED;
        self.armed -= 1;
        self.next.set(None);
    }

    /// Unlinks every timer due at `now` and appends its slot to `out`; returns how many
    /// timer entries it looked at (due or not), for tests that count work.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<usize>) -> usize {
        let now_tick = now.total_micros().div_euclid(self.tick_us);
        let mut visited = self.expire_bucket(self.overdue() as usize, now_tick, out);
        if now_tick < self.cursor {
            return visited;
        }
        if self.armed > 0 {
            let ticks = (now_tick - self.cursor + 1).min(self.mask as i64 + 1);
            for k in 0..ticks {
                let b = self.bucket(self.cursor + k) as usize;
                visited += self.expire_bucket(b, now_tick, out);
            }
        }
        if self.cursor != now_tick + 1 {
            self.cursor = now_tick + 1;
            self.next.set(None);
        }
        visited
    }

    fn expire_bucket(&mut self, b: usize, now_tick: i64, out: &mut Vec<usize>) -> usize {
        let mut visited = 0;
        let mut i = self.heads[b];
        while i != NIL {
            let n = self.nodes[i as usize];
            visited += 1;
            if n.at <= now_tick {
                self.cancel(i as usize);
                out.push(i as usize);
            }
            i = n.next;
        }
        visited
    }

    /// A time by which the next timer is due: exact when one is due within a few dozen
    /// ticks, else that horizon (early is harmless: the caller finds nothing and asks again).
    pub fn next_at(&self) -> Option<Instant> {
        if let Some(known) = self.next.get() {
            return known;
        }
        let at = self.find_next();
        self.next.set(Some(at));
        at
    }

    fn find_next(&self) -> Option<Instant> {
        if self.armed == 0 {
            return None;
        }
        if self.heads[self.overdue() as usize] != NIL {
            return Some(Instant::from_micros((self.cursor - 1) * self.tick_us));
        }
        let mut soonest = self.cursor + LOOKAHEAD;
        for k in 0..LOOKAHEAD.min(self.mask as i64 + 1) {
            let mut i = self.heads[self.bucket(self.cursor + k) as usize];
            while i != NIL {
                let n = self.nodes[i as usize];
                soonest = soonest.min(n.at.max(self.cursor));
                i = n.next;
            }
            if soonest <= self.cursor + k {
                break;
            }
        }
        Some(Instant::from_micros(soonest * self.tick_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: i64) -> Instant {
        Instant::from_millis(n)
    }

    fn wheel() -> Wheel {
        Wheel::new(Duration::from_millis(10), Duration::from_secs(1))
    }

    #[test]
    fn timers_fire_at_their_deadline_never_before() {
        let mut w = wheel();
        w.arm(3, ms(25));
        w.arm(1, ms(10));
        let mut out = Vec::new();
        w.expire(ms(9), &mut out);
        assert!(out.is_empty());
        w.expire(ms(10), &mut out);
        assert_eq!(out, [1]);
        out.clear();
        w.expire(ms(29), &mut out);
        assert!(out.is_empty(), "25 ms rounds up to the 30 ms tick");
        w.expire(ms(30), &mut out);
        assert_eq!(out, [3]);
        assert!(w.is_empty());
    }

    #[test]
    fn rearming_moves_and_cancelling_removes() {
        let mut w = wheel();
        w.arm(0, ms(100));
        w.arm(1, ms(100));
        w.arm(2, ms(100));
        w.arm(1, ms(500));
        w.cancel(2);
        w.cancel(2);
        assert_eq!(w.len(), 2);
        let mut out = Vec::new();
        w.expire(ms(200), &mut out);
        assert_eq!(out, [0]);
        out.clear();
        w.expire(ms(500), &mut out);
        assert_eq!(out, [1]);
    }

    #[test]
    fn a_deadline_in_the_past_fires_on_the_next_expiry() {
        let mut w = wheel();
        let mut out = Vec::new();
        w.expire(ms(1000), &mut out);
        w.arm(4, ms(5));
        w.expire(ms(1000), &mut out);
        assert_eq!(out, [4]);
    }

    #[test]
    fn timers_beyond_one_turn_wait_their_round() {
        let mut w = Wheel::new(Duration::from_millis(10), Duration::from_millis(100));
        w.arm(0, ms(5_000));
        let mut out = Vec::new();
        for t in (0..5_000).step_by(7) {
            w.expire(ms(t), &mut out);
        }
        assert!(out.is_empty());
        w.expire(ms(5_000), &mut out);
        assert_eq!(out, [0]);
    }

    #[test]
    fn expiry_looks_only_at_what_is_due() {
        // 10,000 timers 30 s ahead and one 20 ms ahead: the early expiry touches one.
        let mut w = Wheel::new(Duration::from_millis(10), Duration::from_secs(30));
        for i in 0..10_000 {
            w.arm(i, ms(30_000 + i as i64));
        }
        w.arm(10_000, ms(20));
        let mut out = Vec::new();
        let visited = (0..=20).map(|t| w.expire(ms(t), &mut out)).sum::<usize>();
        assert_eq!(out, [10_000]);
        assert_eq!(visited, 1, "idle timers were visited");
        assert_eq!(w.next_at(), Some(ms(670)), "nothing due within the look-ahead of the cursor (30 ms)");
    }

    #[test]
    fn random_operations_match_a_plain_model() {
        let mut rng = stack::sim::Rng::new(7);
        let mut w = wheel();
        let mut model: Vec<Option<i64>> = vec![None; 64];
        let mut now = 0i64;
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let idx = rng.below(64) as usize;
            match rng.below(4) {
                0 | 1 => {
                    let at = now + rng.below(3_000) as i64 - 100;
                    w.arm(idx, ms(at));
                    // Rounded up to the 10 ms tick, as the wheel does.
                    model[idx] = Some((at + 9).div_euclid(10) * 10);
                }
                2 => {
                    w.cancel(idx);
                    model[idx] = None;
                }
                _ => {
                    now += rng.below(50) as i64;
                    out.clear();
                    w.expire(ms(now), &mut out);
                    out.sort_unstable();
                    let mut due: Vec<usize> = (0..64).filter(|&i| model[i].is_some_and(|t| t <= now)).collect();
                    due.sort_unstable();
                    assert_eq!(out, due, "at {now} ms");
                    for i in due {
                        model[i] = None;
                    }
                }
            }
            assert_eq!(w.len(), model.iter().flatten().count());
            // The remembered answer is the one a fresh look would give.
            assert_eq!(w.next_at(), w.find_next());
        }
    }
}
