//! How many payload blocks one connection may hold: its blocks read ahead, and those the
//! stack's send queue holds until the peer acknowledges them.
//!
//! Each connection has a budget (`--conn-blocks`). While no connection waits for a block,
//! that budget is its allowance. Once one waits (the pool ran out, or it reached its
//! allowance), the blocks streams may use are shared out: no connection is granted more
//! than `capacity / contenders` (at least [`MIN_SHARE`]), where contenders are the
//! connections that hold blocks or wait for one. A connection over its share gets no new
//! block until its peer's acknowledgements bring it under; it keeps what it holds (blocks
//! in flight cannot be taken back), and the write timer ends it if they never come.
//!
//! ```text
//!   held = blocks in the stream (read ahead, ready) + blocks under the send queue's bytes
//!   allowance = budget                                   while nobody waits
//!             = min(budget, max(MIN_SHARE, capacity / contenders))   while someone waits
//! ```
//!
//! Nothing here walks the connections: each connection's standing ([`Holding`]) is settled
//! when it is served, and the totals move by the difference.

/// The least share a connection is granted while others wait: one block being sent and
/// one being read.
pub const MIN_SHARE: u32 = 2;

/// What a connection holds and whether it waits, as last settled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    held: u32,
    waiting: bool,
}

impl Holding {
    /// Blocks held as last settled.
    pub fn held(&self) -> u32 {
        self.held
    }

    fn contends(&self) -> bool {
        self.held > 0 || self.waiting
    }
}

/// Counters of the budget.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStats {
    /// Times a connection at its full budget was refused another block.
    pub budget_waits: u64,
    /// Times a connection at its fair share (below its budget) was refused another block
    /// while others waited.
    pub share_waits: u64,
    /// Times a connection found no free block in the pool.
    pub pool_waits: u64,
}

/// The blocks of one worker's streams, shared out among its connections.
#[derive(Debug, Clone)]
pub struct Budget {
    per_conn: u32,
    capacity: u32,
    contenders: u32,
    waiting: u32,
    held: u64,
    /// What was refused, and why.
    pub stats: BudgetStats,
}

impl Budget {
    /// A budget of `per_conn` blocks per connection over `capacity` blocks for streams.
    pub fn new(per_conn: u32, capacity: u32) -> Budget {
        Budget {
            per_conn: per_conn.max(MIN_SHARE),
            capacity,
            contenders: 0,
            waiting: 0,
            held: 0,
            stats: BudgetStats::default(),
        }
    }

    /// The most blocks one connection may hold now.
    pub fn allowance(&self) -> u32 {
        if self.waiting == 0 {
            return self.per_conn;
        }
        (self.capacity / self.contenders.max(1)).max(MIN_SHARE).min(self.per_conn)
    }

    /// Counts a refusal: `held` reached [`Budget::allowance`].
    pub fn refused(&mut self) {
        if self.allowance() < self.per_conn {
            self.stats.share_waits += 1;
        } else {
            self.stats.budget_waits += 1;
        }
    }

    /// Records a connection's standing now: `held` blocks, and whether it waits for one.
    pub fn settle(&mut self, h: &mut Holding, held: u32, waiting: bool) {
        let new = Holding { held, waiting };
        self.contenders = self.contenders + u32::from(new.contends()) - u32::from(h.contends());
        self.waiting = self.waiting + u32::from(new.waiting) - u32::from(h.waiting);
        self.held = self.held + u64::from(new.held) - u64::from(h.held);
        *h = new;
    }

    /// A connection is gone: what it held is no longer its.
    pub fn release(&mut self, h: &mut Holding) {
        self.settle(h, 0, false);
    }

    /// Connections holding or waiting for blocks.
    pub fn contenders(&self) -> u32 {
        self.contenders
    }

    /// Connections waiting for a block.
    pub fn waiting(&self) -> u32 {
        self.waiting
    }

    /// Blocks held by all connections, as last settled.
    pub fn held(&self) -> u64 {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_the_allowance_until_someone_waits_then_blocks_are_shared() {
        let mut b = Budget::new(32, 100);
        let mut conns = [Holding::default(); 10];
        for c in conns.iter_mut() {
            b.settle(c, 8, false);
        }
        assert_eq!(b.allowance(), 32, "nobody waits");
        assert_eq!((b.contenders(), b.held()), (10, 80));
        b.settle(&mut conns[0], 8, true);
        assert_eq!(b.allowance(), 10, "100 blocks among 10 contenders");
        b.refused();
        assert_eq!(b.stats.share_waits, 1);
        // Many waiters: never below the least share.
        let mut more = [Holding::default(); 90];
        for c in more.iter_mut() {
            b.settle(c, 0, true);
        }
        assert_eq!(b.allowance(), MIN_SHARE);
        for c in more.iter_mut().chain(conns.iter_mut()) {
            b.release(c);
        }
        assert_eq!((b.contenders(), b.waiting(), b.held()), (0, 0, 0), "settled back to nothing");
        assert_eq!(b.allowance(), 32);
        b.refused();
        assert_eq!(b.stats.budget_waits, 1);
    }

    #[test]
    fn settling_twice_counts_once() {
        let mut b = Budget::new(4, 8);
        let mut h = Holding::default();
        b.settle(&mut h, 3, true);
        b.settle(&mut h, 3, true);
        assert_eq!((b.contenders(), b.waiting(), b.held()), (1, 1, 3));
        b.settle(&mut h, 0, false);
        assert_eq!((b.contenders(), b.waiting(), b.held()), (0, 0, 0));
    }
}
