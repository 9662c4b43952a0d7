//! The connection table and the lists that keep per-turn work proportional to what
//! changed, never to what is open:
//!
//! - the timer wheel files each connection once, at its earliest deadline
//!   ([`crate::tcp::Conn::next_deadline`]), so [`Stack::poll_at`] is O(1) and
//!   [`Stack::handle_timeout`] visits only connections whose timer is due;
//! - the ready list holds connections that may have a segment to send, so
//!   [`Stack::dispatch`] visits only those;
//! - the change list holds connections whose readiness may have changed for the
//!   application ([`Stack::next_changed`]);
//! - connections waiting for their next hop's MAC are parked by next hop and woken when it
//!   is learned (or retried once a second).
//!
//! Every event on a connection (segment, timer, application call, output) ends in
//! [`Stack::after_event`], the one place that re-files it in those lists, moves it to its
//! listener's accept queue and frees it when it is done.

use std::collections::VecDeque;

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpAddress};

use super::{ConnHandle, Stack};
use crate::tcp::{Conn, State, TimeWait, TimerKind};

/// How often connections whose next hop has no MAC retry (a resolution request goes out
/// with each retry, rate limited per address by the neighbour cache).
const UNROUTED_RETRY: Duration = Duration::from_secs(1);

/// A connection slot's occupant.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) conn: Conn,
    /// The listening port it arrived on, until accepted.
    pub(crate) listener: Option<u16>,
    /// The generation of that listener (a connection outliving its listener is reset).
    pub(crate) listener_gen: u32,
    /// Counted in the half-open total.
    pub(crate) half_open: bool,
    /// In its listener's accept queue.
    pub(crate) queued: bool,
    /// The application has a handle (accepted or connected).
    pub(crate) owned: bool,
    /// The application has given the handle up.
    pub(crate) released: bool,
    /// The MAC a passive open's SYN came from: replies go there without resolution.
    pub(crate) peer_mac: Option<EthernetAddress>,
}

/// A slot of the table. The list flags belong to the slot, not its occupant: a list may
/// still name a slot after its connection is gone, and the flag keeps the slot from being
/// listed twice.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) gen: u32,
    pub(crate) entry: Option<Entry>,
    /// Listed in `Stack::ready`.
    pub(crate) ready: bool,
    /// Listed in `Stack::changed`.
    pub(crate) changed: bool,
    /// Listed in `Stack::unrouted`.
    pub(crate) unrouted: bool,
    /// Listed in `Stack::ooo_conns`.
    pub(crate) ooo_listed: bool,
}

/// Memory the connection table holds; see [`Stack::memory`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Connections in any state but TIME-WAIT.
    pub connections: usize,
    /// Bytes for them: the slots (by the table's capacity, which never shrinks), each
    /// connection's heap ([`Conn::heap_bytes`]), the four-tuple index, the timer wheel and
    /// the lists. Frames they reference belong to the pool and are not counted.
    pub connection_bytes: usize,
    /// TIME-WAIT entries.
    pub time_wait: usize,
    /// Bytes for them: the entries (by capacity) and their four-tuple index.
    pub time_wait_bytes: usize,
}

/// Connections of the table by state and by what holds them, for diagnostics: a connection
/// that holds pool memory with no timer armed and no application handle is stuck for good
/// (see [`Stack::census`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// By [`State`], in the order of [`Census::STATES`].
    pub by_state: [usize; Census::STATES.len()],
    /// Waiting in an accept queue (not yet accepted).
    pub unaccepted: usize,
    /// Accepted or connected, the handle still held by the application.
    pub owned: usize,
    /// Closed or aborted by the application, still in the table.
    pub orphans: usize,
    /// Holding pool frames or blocks in a receive or send queue.
    pub holding_memory: usize,
    /// Holding pool memory with no timer armed, no application handle and no place in an
    /// accept queue: nothing will ever free them (a leak; always 0 unless there is a bug).
    pub stuck: usize,
}

impl Census {
    /// The states counted, in the order of [`Census::by_state`].
    pub const STATES: [State; 10] = [
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
        State::Closed,
    ];

    /// Connections in `state`.
    pub fn in_state(&self, state: State) -> usize {
        Census::STATES.iter().position(|s| *s == state).map_or(0, |i| self.by_state[i])
    }
}

/// A listening port.
#[derive(Debug, Default)]
pub(crate) struct Listener {
    pub(crate) accept: VecDeque<ConnHandle>,
    pub(crate) gen: u32,
}

impl Stack {
    /// Bookkeeping after a connection saw input, a timer or an application call: half-open
    /// accounting, the accept queue, freeing finished connections, its timer in the wheel,
    /// and the ready list if it has something to send.
    pub(crate) fn after_event(&mut self, idx: u32) {
        self.settle(idx, true);
    }

    /// [`Stack::after_event`]; `may_ready` is false right after output, where a connection
    /// that sent what it could leaves the ready list until its next event (its "maybe"
    /// from [`Conn::wants_output`] would keep it there for nothing).
    pub(crate) fn settle(&mut self, idx: u32, may_ready: bool) {
        let slot = &mut self.slots[idx as usize];
        let gen = slot.gen;
        let Some(e) = slot.entry.as_mut() else { return };
        let mut changed = false;
        if let Some(port) = e.listener {
            // Not accepted, and its listener is gone: reset it (RFC 9293 3.10.4, ABORT of a
            // listener's pending connections).
            if !e.owned && self.listeners.get(&port).is_none_or(|l| l.gen != e.listener_gen) {
                if e.conn.state() != State::Closed {
                    e.conn.abort();
                    changed = true;
                }
            } else if !e.queued && e.conn.state().synchronized() {
                e.queued = true;
                if let Some(l) = self.listeners.get_mut(&port) {
                    l.accept.push_back(ConnHandle { idx, gen });
                }
            }
        }
        let state = e.conn.state();
        if e.half_open && state != State::SynReceived {
            e.half_open = false;
            self.half_open -= 1;
        }
        let orphan = e.released || (!e.owned && e.listener.is_some());
        if e.conn.is_finished() && orphan {
            self.free_slot(idx);
            return;
        }
        if state == State::TimeWait && orphan && !e.conn.wants_output() {
            // Its last ACK is out: keep only what TIME-WAIT needs, free the connection.
            let tw = TimeWait::from_conn(&e.conn);
            let expires = e.conn.timers().get(TimerKind::TimeWait).unwrap_or(Instant::ZERO);
            self.free_slot(idx);
            let cap = self.time_wait_cap();
            self.counters.tcp_time_wait += 1;
            self.counters.tcp_time_wait_recycled += self.time_wait.insert(tw, expires, cap);
            return;
        }
        if state == State::FinWait2 && orphan && !e.conn.wants_output() {
            // Everything we sent is acknowledged and nobody reads: what is left to do (take
            // the peer's FIN, or time out) needs only a compact entry.
            let tw = TimeWait::from_fin_wait2(&e.conn);
            let expires = e.conn.timers().get(TimerKind::FinWait2).unwrap_or(Instant::ZERO);
            self.free_slot(idx);
            let cap = self.time_wait_cap();
            self.counters.tcp_fin_wait2_entries += 1;
            self.counters.tcp_time_wait_recycled += self.time_wait.insert(tw, expires, cap);
            return;
        }
        match e.conn.next_deadline() {
            Some(at) => self.wheel.schedule(idx, at),
            None => {
                self.wheel.cancel(idx);
            }
        }
        if (may_ready || changed) && !slot.ready && e.conn.wants_output() {
            slot.ready = true;
            self.ready.push_back(idx);
        }
    }

    /// What the connection table holds in memory. Walks the table (each connection's heap):
    /// for metrics and diagnostics, not for every turn.
    pub fn memory(&self) -> MemoryUse {
        let heap: usize = self.slots.iter().filter_map(|s| s.entry.as_ref()).map(|e| e.conn.heap_bytes()).sum();
        let unrouted: usize = self.unrouted.values().map(|v| v.capacity() * size_of::<ConnHandle>()).sum();
        MemoryUse {
            connections: self.live,
            connection_bytes: self.slots.capacity() * size_of::<Slot>()
                + self.free.capacity() * size_of::<u32>()
                + heap
                + super::hash_map_bytes(&self.by_tuple)
                + self.wheel.heap_bytes()
                + (self.ready.capacity() + self.changed.capacity() + self.fired.capacity()) * size_of::<u32>()
                + super::hash_map_bytes(&self.unrouted)
                + unrouted,
            time_wait: self.time_wait.len(),
            time_wait_bytes: self.time_wait.heap_bytes(),
        }
    }

    /// The connection table by state and by what holds each connection ([`Census`]).
    /// Walks the table: for metrics and diagnostics, not for every turn.
    pub fn census(&self) -> Census {
        let mut c = Census::default();
        for e in self.slots.iter().filter_map(|s| s.entry.as_ref()) {
            if let Some(i) = Census::STATES.iter().position(|s| *s == e.conn.state()) {
                c.by_state[i] += 1;
            }
            let held = e.conn.recv_memory() > 0 || e.conn.send_queued() > 0;
            let owned = e.owned && !e.released;
            if owned {
                c.owned += 1;
            } else if e.released {
                c.orphans += 1;
            } else {
                c.unaccepted += 1;
            }
            if held {
                c.holding_memory += 1;
                if !owned && (e.released || !e.queued) && e.conn.next_deadline().is_none() {
                    c.stuck += 1;
                }
            }
        }
        c
    }

    /// Lists `idx` for [`Stack::next_changed`] if the application holds it.
    pub(crate) fn note_changed(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        if !slot.changed && slot.entry.as_ref().is_some_and(|e| e.owned && !e.released) {
            slot.changed = true;
            self.changed.push_back(idx);
        }
    }

    /// The next connection whose [`Stack::readiness`] may have changed since it was last
    /// returned here: a segment arrived for it (data, an ACK that freed send space, a FIN,
    /// a RST) or one of its timers ran. Each connection is listed once however many events
    /// it saw, so a loop that serves only these touches only what changed. Connections the
    /// application changed itself (write, read, close) are not listed.
    pub fn next_changed(&mut self) -> Option<ConnHandle> {
        while let Some(idx) = self.changed.pop_front() {
            let slot = &mut self.slots[idx as usize];
            slot.changed = false;
            if slot.entry.as_ref().is_some_and(|e| e.owned && !e.released) {
                return Some(ConnHandle { idx, gen: slot.gen });
            }
        }
        None
    }

    /// Parks `idx` until `hop`'s MAC is learned (or the next retry).
    pub(crate) fn park_unrouted(&mut self, now: Instant, idx: u32, hop: IpAddress) {
        let slot = &mut self.slots[idx as usize];
        if !slot.unrouted {
            slot.unrouted = true;
            self.unrouted.entry(hop).or_default().push(ConnHandle { idx, gen: slot.gen });
        }
        if self.unrouted_retry.is_none() {
            self.unrouted_retry = Some(now + UNROUTED_RETRY);
        }
    }

    /// Records a neighbour and wakes the connections waiting for it.
    pub(crate) fn learn_neighbor(&mut self, now: Instant, ip: IpAddress, mac: EthernetAddress) {
        if self.neighbors.learn(now, ip, mac) != super::Learned::Yes {
            self.counters.neighbor_refused += 1;
            return;
        }
        if !self.unrouted.is_empty() {
            if let Some(list) = self.unrouted.remove(&ip) {
                self.wake(list);
            }
        }
    }

    /// Retries every parked connection (their resolution requests go out again).
    pub(crate) fn retry_unrouted(&mut self) {
        self.unrouted_retry = None;
        for (_, list) in std::mem::take(&mut self.unrouted) {
            self.wake(list);
        }
    }

    fn wake(&mut self, list: Vec<ConnHandle>) {
        for h in list {
            let slot = &mut self.slots[h.idx as usize];
            if slot.gen != h.gen || slot.entry.is_none() {
                continue;
            }
            slot.unrouted = false;
            if !slot.ready {
                slot.ready = true;
                self.ready.push_back(h.idx);
            }
        }
    }

    pub(crate) fn free_slot(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        if let Some(e) = slot.entry.take() {
            if e.half_open {
                self.half_open -= 1;
            }
            self.by_tuple.remove(&e.conn.tuple());
            slot.gen = slot.gen.wrapping_add(1);
            slot.unrouted = false;
            self.wheel.cancel(idx);
            self.free.push(idx);
            self.live -= 1;
        }
    }

    /// Puts `conn` in a free slot and files it (a SYN or SYN-ACK to send).
    pub(crate) fn insert_conn(
        &mut self,
        conn: Conn,
        listener: Option<u16>,
        half_open: bool,
        peer_mac: Option<EthernetAddress>,
    ) -> ConnHandle {
        let tuple = conn.tuple();
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let listener_gen = listener.and_then(|p| self.listeners.get(&p)).map_or(0, |l| l.gen);
        let slot = &mut self.slots[idx as usize];
        slot.entry = Some(Entry {
            conn,
            listener,
            listener_gen,
            half_open,
            queued: false,
            owned: listener.is_none(),
            released: false,
            peer_mac,
        });
        if half_open {
            self.half_open += 1;
        }
        self.live += 1;
        self.by_tuple.insert(tuple, idx);
        let h = ConnHandle { idx, gen: slot.gen };
        self.after_event(idx);
        h
    }
}
