//! A hierarchical timer wheel (Varghese and Lauck's scheme, laid out as tokio's and Linux's
//! wheels are): insert, move and cancel in O(1), the next deadline in O(levels), and
//! expiry touching only the timers that are due (plus a bounded number of moves of each
//! timer down the levels on its way to expiry).
//!
//! Timers are named by a caller-chosen `u32` id (the stack uses a connection's slot index);
//! an id has at most one deadline, and scheduling it again moves it. Nodes live in one
//! vector indexed by id, linked into buckets as intrusive doubly linked lists, so nothing
//! is allocated per insert once the vector has grown to the highest id.
//!
//! Resolution is one tick = 1 µs, the resolution of [`Instant`], so a timer fires exactly
//! at its deadline: not rounded to a coarser clock. Level `l` has 64 slots of `64^l` ticks;
//! seven levels cover 2^42 µs (about 51 days). A deadline beyond that is parked in the top
//! level and re-placed as time approaches it; it still fires at its exact deadline.
//!
//! [`TimerWheel::next_expiry`] is exact unless the earliest timer of a bucket was cancelled
//! or moved; then it may be early (never late), and an [`TimerWheel::expire`] at that time
//! only moves timers between levels.

use smoltcp::time::Instant;

const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const LEVELS: usize = 7;
const BUCKETS: usize = LEVELS * SLOTS;
/// The bucket of timers whose deadline had already passed when scheduled.
const DUE: usize = BUCKETS;
/// One rotation of the top level, in ticks.
const HORIZON: u64 = 1 << (SLOT_BITS as usize * LEVELS);
const NIL: u32 = u32::MAX;
const UNLINKED: u16 = u16::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    /// The deadline, in ticks.
    tick: u64,
    next: u32,
    prev: u32,
    /// The bucket this node is linked into, or `UNLINKED`.
    bucket: u16,
}

impl Node {
    const EMPTY: Node = Node { tick: 0, next: NIL, prev: NIL, bucket: UNLINKED };
}

/// The wheel: see the module docs.
#[derive(Debug)]
pub struct TimerWheel {
    /// Every timer at or before this tick has been handed out by [`TimerWheel::expire`].
    elapsed: u64,
    nodes: Vec<Node>,
    heads: [u32; BUCKETS + 1],
    /// Per bucket, the earliest placement since it was last empty (a lower bound after a
    /// cancellation).
    mins: [u64; BUCKETS + 1],
    /// Per level, a bit per non-empty slot.
    occupied: [u64; LEVELS],
    len: usize,
}

impl Default for TimerWheel {
    fn default() -> Self {
        TimerWheel::new()
    }
}

fn tick_of(at: Instant) -> u64 {
    at.total_micros().max(0) as u64
}

fn instant_of(tick: u64) -> Instant {
    Instant::from_micros(tick.min(i64::MAX as u64) as i64)
}

fn slot_range(level: usize) -> u64 {
    1 << (level as u32 * SLOT_BITS)
}

fn level_range(level: usize) -> u64 {
    1 << ((level as u32 + 1) * SLOT_BITS)
}

/// The level of a timer at `when` seen from `elapsed`: the highest 6-bit digit in which
/// they differ (digit 0 for timers in the current 64-tick window).
fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = ((elapsed ^ when) | (SLOTS as u64 - 1)).min(HORIZON - 1);
    (63 - masked.leading_zeros() as usize) / SLOT_BITS as usize
}

fn slot_for(when: u64, level: usize) -> usize {
    (when >> (level as u32 * SLOT_BITS)) as usize & (SLOTS - 1)
}

impl TimerWheel {
    /// An empty wheel at time zero.
    pub fn new() -> Self {
        TimerWheel {
            elapsed: 0,
            nodes: Vec::new(),
            heads: [NIL; BUCKETS + 1],
            mins: [u64::MAX; BUCKETS + 1],
            occupied: [0; LEVELS],
            len: 0,
        }
    }

    /// Timers scheduled.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of heap the wheel holds (its node vector).
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<Node>()
    }

    /// Sets `id`'s deadline to `at` (inserting it, or moving it if it was scheduled). A
    /// deadline not after the last [`TimerWheel::expire`] fires on the next one.
    pub fn schedule(&mut self, id: u32, at: Instant) {
        let tick = tick_of(at);
        let i = id as usize;
        if i >= self.nodes.len() {
            self.nodes.resize(i + 1, Node::EMPTY);
        }
        if self.nodes[i].bucket != UNLINKED {
            if self.nodes[i].tick == tick {
                return;
            }
            self.unlink(id);
        }
        self.nodes[i].tick = tick;
        self.link(id);
    }

    /// Removes `id`'s deadline; returns whether it had one.
    pub fn cancel(&mut self, id: u32) -> bool {
        match self.nodes.get(id as usize) {
            Some(n) if n.bucket != UNLINKED => {
                self.unlink(id);
                true
            }
            _ => false,
        }
    }

    /// `id`'s deadline, if scheduled.
    pub fn deadline(&self, id: u32) -> Option<Instant> {
        self.nodes.get(id as usize).filter(|n| n.bucket != UNLINKED).map(|n| instant_of(n.tick))
    }

    /// When [`TimerWheel::expire`] next has something to do: the earliest deadline (or, after
    /// cancellations, possibly earlier; never later). A past time means "now".
    pub fn next_expiry(&self) -> Option<Instant> {
        if self.heads[DUE] != NIL {
            return Some(instant_of(self.elapsed));
        }
        let (level, slot, start) = self.next_slot()?;
        Some(instant_of(self.mins[level * SLOTS + slot].max(start)))
    }

    /// Appends to `fired` every id whose deadline is at or before `now`, unscheduling them.
    /// Ids come out in deadline order, except that ids due in the same tick come out in no
    /// particular order.
    pub fn expire(&mut self, now: Instant, fired: &mut Vec<u32>) {
        let now = tick_of(now);
        loop {
            let mut id = std::mem::replace(&mut self.heads[DUE], NIL);
            self.mins[DUE] = u64::MAX;
            while id != NIL {
                let next = self.nodes[id as usize].next;
                self.detach(id);
                fired.push(id);
                id = next;
            }
            let Some((level, slot, start)) = self.next_slot() else { break };
            if start > now {
                break;
            }
            // Everything below this slot has fired, so the wheel may stand at its start; its
            // timers then either fire (level 0) or move down a level.
            self.elapsed = start;
            let b = level * SLOTS + slot;
            let mut id = std::mem::replace(&mut self.heads[b], NIL);
            self.mins[b] = u64::MAX;
            self.occupied[level] &= !(1 << slot);
            while id != NIL {
                let next = self.nodes[id as usize].next;
                self.detach(id);
                if level == 0 && self.nodes[id as usize].tick <= start {
                    fired.push(id);
                } else {
                    self.link(id);
                }
                id = next;
            }
        }
        self.elapsed = self.elapsed.max(now);
    }

    /// The next non-empty slot: `(level, slot, start tick)`. Timers in a lower level always
    /// come before those of a higher one, so the lowest non-empty level holds the earliest.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        for level in 0..LEVELS {
            let occ = self.occupied[level];
            if occ == 0 {
                continue;
            }
            let here = slot_for(self.elapsed, level);
            let slot = (occ.rotate_right(here as u32).trailing_zeros() as usize + here) % SLOTS;
            let mut start = (self.elapsed & !(level_range(level) - 1)) + slot as u64 * slot_range(level);
            if start <= self.elapsed {
                // Only a far-future timer parked in the top level can sit "behind" the
                // current slot: it belongs to the next rotation.
                debug_assert_eq!(level, LEVELS - 1);
                start += level_range(level);
            }
            return Some((level, slot, start));
        }
        None
    }

    fn link(&mut self, id: u32) {
        let tick = self.nodes[id as usize].tick;
        let (b, place) = if tick <= self.elapsed {
            (DUE, self.elapsed)
        } else {
            let place = tick.min(self.elapsed + HORIZON - 1);
            let level = level_for(self.elapsed, place);
            let slot = slot_for(place, level);
            self.occupied[level] |= 1 << slot;
            (level * SLOTS + slot, place)
        };
        let head = self.heads[b];
        if head != NIL {
            self.nodes[head as usize].prev = id;
        }
        let n = &mut self.nodes[id as usize];
        n.next = head;
        n.prev = NIL;
        n.bucket = b as u16;
        self.heads[b] = id;
        self.mins[b] = self.mins[b].min(place);
        self.len += 1;
    }

    fn unlink(&mut self, id: u32) {
        let Node { next, prev, bucket, .. } = self.nodes[id as usize];
        let b = usize::from(bucket);
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.heads[b] = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        if self.heads[b] == NIL {
            self.mins[b] = u64::MAX;
            if b != DUE {
                self.occupied[b / SLOTS] &= !(1 << (b % SLOTS));
            }
        }
        self.detach(id);
    }

    /// Marks a node unlinked (its bucket's list is fixed up by the caller).
    fn detach(&mut self, id: u32) {
        let n = &mut self.nodes[id as usize];
        n.next = NIL;
        n.prev = NIL;
        n.bucket = UNLINKED;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::sim::Rng;

    fn us(t: u64) -> Instant {
        Instant::from_micros(t as i64)
    }

    fn expire(w: &mut TimerWheel, now: u64) -> Vec<u32> {
        let mut v = Vec::new();
        w.expire(us(now), &mut v);
        v
    }

    #[test]
    fn fires_at_the_deadline_not_before() {
        let mut w = TimerWheel::new();
        w.schedule(1, us(1_000));
        w.schedule(2, us(70_000));
        w.schedule(3, us(5_000_000));
        assert_eq!(w.len(), 3);
        assert_eq!(w.next_expiry(), Some(us(1_000)));
        assert!(expire(&mut w, 999).is_empty());
        assert_eq!(expire(&mut w, 1_000), vec![1]);
        assert_eq!(w.next_expiry(), Some(us(70_000)));
        assert!(expire(&mut w, 69_999).is_empty());
        assert_eq!(expire(&mut w, 4_000_000), vec![2]);
        assert_eq!(w.next_expiry(), Some(us(5_000_000)));
        assert!(expire(&mut w, 4_999_999).is_empty());
        assert_eq!(expire(&mut w, 9_000_000), vec![3]);
        assert!(w.is_empty());
        assert_eq!(w.next_expiry(), None);
    }

    #[test]
    fn expiry_order_follows_deadlines() {
        let mut w = TimerWheel::new();
        let ticks = [900_000u64, 3, 64, 63, 4096, 4095, 262_144, 17, 1 << 30, 65];
        for (i, &t) in ticks.iter().enumerate() {
            w.schedule(i as u32, us(t));
        }
        // One big step still hands them out in deadline order.
        let got = expire(&mut w, u64::from(u32::MAX) * 4);
        let mut want: Vec<u32> = (0..ticks.len() as u32).collect();
        want.sort_by_key(|&i| ticks[i as usize]);
        assert_eq!(got, want);
    }

    #[test]
    fn cancel_and_move() {
        let mut w = TimerWheel::new();
        w.schedule(7, us(500));
        w.schedule(8, us(600));
        assert!(w.cancel(7));
        assert!(!w.cancel(7));
        assert_eq!(w.deadline(7), None);
        assert_eq!(w.len(), 1);
        // Moving later, then earlier.
        w.schedule(8, us(90_000));
        assert_eq!(w.deadline(8), Some(us(90_000)));
        assert!(expire(&mut w, 1_000).is_empty());
        w.schedule(8, us(2_000));
        assert_eq!(w.next_expiry(), Some(us(2_000)));
        assert_eq!(expire(&mut w, 2_000), vec![8]);
        assert!(expire(&mut w, 200_000).is_empty());
        assert!(w.is_empty());
    }

    #[test]
    fn a_past_deadline_fires_on_the_next_expire() {
        let mut w = TimerWheel::new();
        assert!(expire(&mut w, 10_000).is_empty());
        w.schedule(1, us(5));
        w.schedule(2, us(10_000));
        assert_eq!(w.next_expiry(), Some(us(10_000)));
        let mut got = expire(&mut w, 10_000);
        got.sort();
        assert_eq!(got, vec![1, 2]);
    }

    #[test]
    fn wraps_across_slot_and_level_boundaries() {
        let mut w = TimerWheel::new();
        // Stand just before a level-0 and a level-1 boundary.
        assert!(expire(&mut w, 4_095).is_empty());
        w.schedule(1, us(4_096));
        w.schedule(2, us(4_097));
        w.schedule(3, us(4_096 + 64));
        w.schedule(4, us(262_143));
        w.schedule(5, us(262_144));
        assert_eq!(expire(&mut w, 4_096), vec![1]);
        assert_eq!(expire(&mut w, 4_160), vec![2, 3]);
        assert_eq!(w.next_expiry(), Some(us(262_143)));
        assert_eq!(expire(&mut w, 262_143), vec![4]);
        assert_eq!(expire(&mut w, 262_144), vec![5]);
    }

    #[test]
    fn far_future_timers_fire_exactly() {
        let mut w = TimerWheel::new();
        let far = 3 * HORIZON + 12_345;
        w.schedule(1, us(far));
        w.schedule(2, us(HORIZON + 1));
        let mut t = 0;
        let mut fired = Vec::new();
        // Walk the clock in uneven steps; each step may re-place the parked timers.
        while t < far - 1 {
            t = (t + HORIZON / 7 + 3).min(far - 1);
            w.expire(us(t), &mut fired);
            if t < HORIZON + 1 {
                assert!(fired.is_empty(), "fired early at {t}");
            }
            assert!(w.next_expiry().is_some_and(|e| e <= us(far)));
        }
        assert_eq!(fired, vec![2]);
        assert_eq!(w.deadline(1), Some(us(far)));
        assert_eq!(expire(&mut w, far), vec![1]);
    }

    /// Random schedules, moves and cancels against a model: each id fires at the first
    /// `expire` at or after its deadline, never before; `next_expiry` is never late.
    #[test]
    fn matches_a_model_under_random_operations() {
        let mut rng = Rng::new(99);
        let mut w = TimerWheel::new();
        let mut model: BTreeMap<u32, u64> = BTreeMap::new();
        let mut now = 0u64;
        for round in 0..20_000 {
            let id = rng.below(500) as u32;
            match rng.below(10) {
                0..=5 => {
                    // Mostly near deadlines, some far, some past.
                    let pick = rng.below(5) as usize;
                    let span = [100, 10_000, 1_000_000, 100_000_000, 1 << 44][pick];
                    let at = (now + rng.below(span)).saturating_sub(if rng.below(20) == 0 { 50 } else { 0 });
                    w.schedule(id, us(at));
                    model.insert(id, at.max(now));
                }
                6 => {
                    assert_eq!(w.cancel(id), model.remove(&id).is_some());
                }
                _ => {
                    if let Some(next) = w.next_expiry() {
                        let earliest = model.values().min().copied().expect("model has timers");
                        assert!(next <= us(earliest.max(now)), "round {round}: next_expiry {next} after {earliest}");
                    } else {
                        assert!(model.is_empty());
                    }
                    let pick = rng.below(3) as usize;
                    now += rng.below([50, 5_000, 500_000][pick]);
                    let mut got = expire(&mut w, now);
                    got.sort();
                    let want: Vec<u32> = model.iter().filter(|(_, &t)| t <= now).map(|(&i, _)| i).collect();
                    assert_eq!(got, want, "round {round} at {now}");
                    model.retain(|_, t| *t > now);
                }
            }
            assert_eq!(w.len(), model.len());
        }
    }
}
