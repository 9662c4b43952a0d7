//! One HTTP connection over the user-space stack: requests in, responses out as references
//! to file blocks in the pool. Responses go strictly in order (pipelining); the front one
//! keeps blocks requested ahead of what the stack has taken: as many as its congestion
//! window and send room cover, within fixed bounds.

use std::collections::VecDeque;

use stack::ConnHandle;
use umem::{BufSlice, CachedFile, FileKey};

/// A block asked of the cache, in file order.
pub struct Wanted {
    pub block: u64,
    pub data: Option<BufSlice>,
}

/// One response in the making.
pub struct Resp {
    /// Ready bytes in order: the head, then body ranges of blocks.
    pub out: VecDeque<BufSlice>,
    /// The body's file (None: no body).
    pub file: Option<CachedFile>,
    pub start: u64,
    pub end: u64,
    /// Next block to ask for.
    pub next_block: u64,
    /// Blocks asked for, not yet moved to `out`.
    pub wanted: VecDeque<Wanted>,
    /// Close the connection after this response.
    pub close: bool,
}

impl Resp {
    pub fn key(&self) -> Option<FileKey> {
        self.file.as_ref().map(|f| f.key)
    }

    /// Everything has been handed to the stack.
    pub fn done(&self) -> bool {
        self.out.is_empty()
            && self.wanted.is_empty()
            && self.file.as_ref().is_none_or(|f| self.next_block >= end_block(f, self.end))
    }
}

/// One past the last block that holds bytes below `end`.
pub fn end_block(f: &CachedFile, end: u64) -> u64 {
    if end == 0 {
        return 0;
    }
    (end - 1) / u64::from(f.block_len) + 1
}

/// A connection's state.
pub struct XConn {
    pub h: ConnHandle,
    pub inbuf: Vec<u8>,
    pub resps: VecDeque<Resp>,
    /// No more requests are read (error answered with close, or the client half-closed).
    pub closing: bool,
    pub last_progress: std::time::Instant,
    pub head_started: Option<std::time::Instant>,
}
