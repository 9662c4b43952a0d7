//! The connection table of one worker: slots reused through a free list, each with a
//! generation, so an id of a closed connection never names the one that reused its slot
//! (a block read finishing for a closed connection, a stale readiness event).
//!
//! The table also says which connections have work, so a loop turn touches only those:
//! a ready list (fed by readiness, block completions and accepts, each connection at most
//! once per turn), a retry list (connections that waited for pool memory, served on the
//! next turn) and one timer per connection in a [`Wheel`] (its head, idle or write
//! deadline). Nothing here is proportional to idle connections, and after warm-up nothing
//! allocates.

use stack::{Duration, Instant};

use super::wheel::Wheel;

/// Resolution of the HTTP timers.
pub const TIMER_TICK: Duration = Duration::from_millis(10);

/// A connection in a [`Table`]: slot and generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    idx: u32,
    gen: u32,
}

impl SessionId {
    /// The slot (reused by later connections; see [`Table::id_at`]).
    pub fn index(self) -> usize {
        self.idx as usize
    }
}

#[derive(Debug)]
struct Slot<T> {
    gen: u32,
    val: Option<T>,
    /// In the ready list.
    queued: bool,
}

/// Connections by [`SessionId`], with their ready list and timers.
#[derive(Debug)]
pub struct Table<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
    ready: Vec<SessionId>,
    retry: Vec<SessionId>,
    wheel: Wheel,
    expired: Vec<usize>,
}

impl<T> Table<T> {
    /// A table whose timers reach `span` ahead without a second turn of the wheel (the
    /// longest timeout).
    pub fn new(span: std::time::Duration) -> Table<T> {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            ready: Vec::new(),
            retry: Vec::new(),
            wheel: Wheel::new(TIMER_TICK, Duration::from_micros(span.as_micros() as u64)),
            expired: Vec::new(),
        }
    }

    /// Connections in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a connection; its id is new even if its slot is not.
    pub fn insert(&mut self, val: T) -> SessionId {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { gen: 0, val: None, queued: false });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[idx as usize];
        slot.val = Some(val);
        self.len += 1;
        SessionId { idx, gen: slot.gen }
    }

    /// The connection `id` names, if it is still open.
    pub fn get(&self, id: SessionId) -> Option<&T> {
        self.slots.get(id.idx as usize).filter(|s| s.gen == id.gen).and_then(|s| s.val.as_ref())
    }

    /// The connection `id` names, if it is still open.
    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut T> {
        self.slots.get_mut(id.idx as usize).filter(|s| s.gen == id.gen).and_then(|s| s.val.as_mut())
    }

    /// The id of the connection now in slot `index` (a readiness token names a slot).
    pub fn id_at(&self, index: usize) -> Option<SessionId> {
        let s = self.slots.get(index)?;
        s.val.as_ref().map(|_| SessionId { idx: index as u32, gen: s.gen })
    }

    /// Removes the connection and its timer; its id (and every copy of it) goes stale.
    pub fn remove(&mut self, id: SessionId) -> Option<T> {
        let slot = self.slots.get_mut(id.idx as usize).filter(|s| s.gen == id.gen)?;
        let val = slot.val.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        // A stale entry may stay in the ready list; the generation filters it out.
        slot.queued = false;
        self.wheel.cancel(id.idx as usize);
        self.free.push(id.idx);
        self.len -= 1;
        Some(val)
    }

    /// Every open connection (for counters and shutdown, never for a loop turn).
    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.val.as_ref().map(|v| (SessionId { idx: i as u32, gen: s.gen }, v)))
    }

    /// Marks `id` as having work this turn.
    pub fn wake(&mut self, id: SessionId) {
        let Some(s) = self.slots.get_mut(id.idx as usize) else { return };
        if s.gen == id.gen && s.val.is_some() && !s.queued {
            s.queued = true;
            self.ready.push(id);
        }
    }

    /// Marks `id` to be served on the next turn (it waits for pool memory, which frees as
    /// other work completes rather than by an event for this connection).
    pub fn retry_later(&mut self, id: SessionId) {
        self.retry.push(id);
    }

    /// Whether connections wait for a retry.
    pub fn has_retries(&self) -> bool {
        !self.retry.is_empty()
    }

    /// Starts a loop turn: the connections waiting for a retry have work again.
    pub fn begin_turn(&mut self) {
        let mut retry = std::mem::take(&mut self.retry);
        for id in retry.drain(..) {
            self.wake(id);
        }
        self.retry = retry;
    }

    /// Moves the connections with work into `out`, each once.
    pub fn take_ready(&mut self, out: &mut Vec<SessionId>) {
        for id in self.ready.drain(..) {
            if let Some(s) = self.slots.get_mut(id.idx as usize).filter(|s| s.gen == id.gen && s.queued) {
                s.queued = false;
                out.push(id);
            }
        }
    }

    /// Sets `id`'s timer to `at`.
    pub fn arm(&mut self, id: SessionId, at: Instant) {
        if self.get(id).is_some() {
            self.wheel.arm(id.idx as usize, at);
        }
    }

    /// Appends to `out` the connections whose deadline has passed at `now`, each with
    /// what `deadline` says about it (when, and which timer), and spends their timers.
    /// Only timers the wheel finds due are looked at; one whose connection's deadline has
    /// moved on is armed again. Returns the timer entries the wheel looked at.
    pub fn expire<W>(
        &mut self,
        now: Instant,
        deadline: impl Fn(&T) -> (Instant, W),
        out: &mut Vec<(SessionId, W)>,
    ) -> usize {
        let visited = self.wheel.expire(now, &mut self.expired);
        for idx in self.expired.drain(..) {
            let s = &self.slots[idx];
            let Some(val) = s.val.as_ref() else { continue };
            let (at, why) = deadline(val);
            if at <= now {
                out.push((SessionId { idx: idx as u32, gen: s.gen }, why));
            } else {
                self.wheel.arm(idx, at);
            }
        }
        visited
    }

    /// When the next timer is due (or a time before it).
    pub fn next_timer(&self) -> Option<Instant> {
        self.wheel.next_at()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table<&'static str> {
        Table::new(std::time::Duration::from_secs(30))
    }

    #[test]
    fn a_reused_slot_gets_a_new_id() {
        let mut t = table();
        let a = t.insert("a");
        assert_eq!(t.remove(a), Some("a"));
        let b = t.insert("b");
        assert_eq!(a.index(), b.index(), "the slot is reused");
        assert_ne!(a, b);
        assert_eq!(t.get(a), None, "the old id names nothing");
        assert_eq!(t.remove(a), None);
        assert_eq!(t.get(b), Some(&"b"));
        assert_eq!(t.id_at(b.index()), Some(b));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn the_ready_list_holds_each_connection_once_and_never_a_stale_one() {
        let mut t = table();
        let a = t.insert("a");
        let b = t.insert("b");
        t.wake(a);
        t.wake(b);
        t.wake(a);
        t.retry_later(b);
        let mut out = Vec::new();
        t.take_ready(&mut out);
        assert_eq!(out, [a, b], "each once");
        out.clear();
        t.take_ready(&mut out);
        assert!(out.is_empty(), "a retry waits for the next turn");
        t.begin_turn();
        t.take_ready(&mut out);
        assert_eq!(out, [b], "the retry");
        out.clear();
        t.wake(a);
        t.remove(a);
        let c = t.insert("c");
        t.wake(c);
        t.take_ready(&mut out);
        assert_eq!(out, [c], "a's stale entry is dropped, c (same slot) is served");
    }

    #[test]
    fn timers_name_the_connection_that_armed_them() {
        let mut t = table();
        let a = t.insert("a");
        let b = t.insert("b");
        t.arm(a, Instant::from_millis(100));
        t.arm(b, Instant::from_millis(50));
        t.remove(a);
        let c = t.insert("c");
        let mut out = Vec::new();
        t.expire(Instant::from_millis(200), |v| (Instant::from_millis(50), *v), &mut out);
        assert_eq!(out, [(b, "b")], "a's timer went with it; c armed none");
        assert!(t.next_timer().is_none());
        t.arm(c, Instant::from_millis(300));
        assert_eq!(t.next_timer(), Some(Instant::from_millis(300)));
    }

    #[test]
    fn a_deadline_that_moved_on_is_armed_again_not_reported() {
        let mut t = table();
        let a = t.insert("a");
        t.arm(a, Instant::from_millis(100));
        let mut out = Vec::new();
        // The connection made progress since: its deadline is now 400 ms.
        t.expire(Instant::from_millis(150), |_| (Instant::from_millis(400), ()), &mut out);
        assert!(out.is_empty());
        t.expire(Instant::from_millis(400), |_| (Instant::from_millis(400), ()), &mut out);
        assert_eq!(out, [(a, ())]);
    }
}
