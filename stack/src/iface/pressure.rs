//! Pool pressure: what the stack does when the pool its frames come from runs short, as
//! Linux does when `tcp_mem` is exceeded, but counted in frames. The stack reads the
//! pool's free frames through the frames it is handed (every received frame holds a
//! reference to its pool), so no application has to report them.
//!
//! Below [`PoolPressure::prune_below`] of the pool free, out-of-order queues are dropped,
//! those of the connections that began holding one longest ago first, until the pool is
//! back above the mark: out-of-order data is only a promise (the peer keeps it until it
//! is acknowledged), and a peer that sends out of order and stops is what pins frames.
//! Below [`PoolPressure::refuse_below`] after that, new connections are refused: SYNs and
//! cookie ACKs are dropped, and the peers retry. Each step is counted.
//!
//! The connections holding out-of-order data are kept in a list as they start to, so a
//! prune visits only those, never the table.

use super::{Stack, StackConfig};

/// The pool-pressure marks, as shares of the pool's frames that are free.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolPressure {
    /// Below this share free, out-of-order queues are pruned (`tcp_pressure_prunes`).
    pub prune_below: f64,
    /// Below this share free after pruning, new connections are refused
    /// (`tcp_pressure_refused`).
    pub refuse_below: f64,
}

impl Default for PoolPressure {
    /// An eighth of the pool free (the AF_XDP fill ring holds about as much again), then a
    /// sixteenth.
    fn default() -> Self {
        PoolPressure { prune_below: 1.0 / 8.0, refuse_below: 1.0 / 16.0 }
    }
}

/// How short the pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pressure {
    /// Enough frames free.
    None,
    /// Below the prune mark.
    Prune,
    /// Below the refuse mark.
    Refuse,
}

impl StackConfig {
    fn mark(share: f64, frames: u32) -> u64 {
        (share * f64::from(frames)) as u64
    }
}

impl Stack {
    /// How short the pool that received frames come from is now (`None` before the first
    /// frame).
    pub fn pressure(&self) -> Pressure {
        let Some(pool) = &self.rx_pool else { return Pressure::None };
        let s = pool.stats();
        let free = u64::from(s.frames_free);
        let p = self.cfg.pressure;
        if free < StackConfig::mark(p.refuse_below, s.frames) {
            Pressure::Refuse
        } else if free < StackConfig::mark(p.prune_below, s.frames) {
            Pressure::Prune
        } else {
            Pressure::None
        }
    }

    /// Lists `idx` as holding out-of-order data, if it does and is not listed yet.
    pub(crate) fn note_ooo(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        if !slot.ooo_listed && slot.entry.as_ref().is_some_and(|e| e.conn.has_ooo()) {
            slot.ooo_listed = true;
            self.ooo_conns.push_back(idx);
        }
    }

    /// Under pressure, drops out-of-order queues until the pool is above the prune mark
    /// or none is left; returns the pressure after.
    pub(crate) fn relieve_pressure(&mut self) -> Pressure {
        let mut level = self.pressure();
        while level != Pressure::None {
            let Some(idx) = self.ooo_conns.pop_front() else { break };
            let slot = &mut self.slots[idx as usize];
            slot.ooo_listed = false;
            let Some(e) = slot.entry.as_mut() else { continue };
            let n = e.conn.prune_ooo();
            if n > 0 {
                self.counters.tcp_pressure_prunes += 1;
                self.counters.tcp_ooo_pruned += n as u64;
                level = self.pressure();
            }
        }
        level
    }

    /// Whether a new connection may be made now: prunes first, refuses (counted) if the
    /// pool is still below the refuse mark.
    pub(crate) fn admit_new(&mut self) -> bool {
        if self.relieve_pressure() == Pressure::Refuse {
            self.counters.tcp_pressure_refused += 1;
            return false;
        }
        true
    }
}
