//! One response body as a stream of block slices: blocks asked of the cache ahead of the
//! transport, and the bytes of the range, in file order, as slices of those blocks.

use std::collections::VecDeque;
use std::io;

use umem::{BufSlice, CachedFile, Lookup, Ticket};

use super::Blocks;
use crate::http::ByteRange;
use crate::session::table::SessionId;
use crate::session::Wait;

/// A block asked of the cache.
#[derive(Debug)]
enum Want {
    Pending(Ticket),
    Ready(BufSlice),
    Failed(umem::Error),
}

/// The bytes `start..end` of a file, block by block.
#[derive(Debug)]
pub struct BlockStream {
    file: CachedFile,
    range: ByteRange,
    /// Next block to ask for.
    next_block: u64,
    /// One past the last block holding bytes of the range.
    last_block: u64,
    /// Blocks asked for and not yet moved to `ready`, in order.
    wanted: VecDeque<(u64, Want)>,
    /// The range's bytes ready to send, in order (slices of blocks).
    ready: VecDeque<BufSlice>,
}

impl BlockStream {
    /// A stream of `range` of `file`.
    pub fn new(file: CachedFile, range: ByteRange) -> Result<BlockStream, umem::Error> {
        if file.block_len == 0 {
            return Err(umem::Error::Request("the file has no block size (empty?)"));
        }
        let bl = u64::from(file.block_len);
        Ok(BlockStream {
            file,
            range,
            next_block: range.start / bl,
            last_block: range.end.div_ceil(bl),
            wanted: VecDeque::new(),
            ready: VecDeque::new(),
        })
    }

    /// Bytes per block of the file.
    pub fn block_len(&self) -> usize {
        self.file.block_len as usize
    }

    /// Asks for blocks until it holds `ahead` (asked for, or arrived and not yet sent),
    /// and moves those that arrived, in order, into the ready slices. A failed read is an error (the response cannot be
    /// completed); a pool with no free block is not (see [`BlockStream::stalled_on`]):
    /// `Ok(true)` says the pool ran out.
    pub fn feed(&mut self, blocks: &mut Blocks, owner: SessionId, ahead: usize) -> io::Result<bool> {
        let mut starved = false;
        while self.blocks_held() < ahead && self.next_block < self.last_block {
            let w = match blocks.get(owner, &self.file, self.next_block) {
                Ok(Lookup::Hit(data)) => Want::Ready(data),
                Ok(Lookup::Pending(t)) => Want::Pending(t),
                // Every block is held (send queues, the cache, reads): a later turn.
                Err(umem::Error::PoolExhausted { .. }) => {
                    starved = true;
                    break;
                }
                Err(e) => return Err(io::Error::other(e)),
            };
            self.wanted.push_back((self.next_block, w));
            self.next_block += 1;
        }
        while let Some((block, w)) = self.wanted.front() {
            match w {
                Want::Pending(_) => break,
                Want::Failed(e) => return Err(io::Error::other(format!("reading block {block}: {e}"))),
                Want::Ready(_) => {}
            }
            let Some((block, Want::Ready(data))) = self.wanted.pop_front() else { break };
            let Some(span) = self.file.block_range(block) else { continue };
            let lo = self.range.start.max(span.start) - span.start;
            let hi = self.range.end.min(span.end).saturating_sub(span.start);
            match data.slice(lo as usize..hi as usize) {
                Some(s) if !s.is_empty() => self.ready.push_back(s),
                Some(_) => {}
                // The block is shorter than the file says: the file shrank under us.
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
        Ok(starved)
    }

    /// Blocks this stream holds: asked for (in flight or arrived) and ready to send.
    pub fn blocks_held(&self) -> usize {
        self.wanted.len() + self.ready.len()
    }

    /// Whether blocks remain to be asked for.
    pub fn wants_more(&self) -> bool {
        self.next_block < self.last_block
    }

    /// Hands the finished read for `ticket` to its block.
    pub fn deliver(&mut self, ticket: Ticket, result: Result<BufSlice, umem::Error>) {
        if let Some((_, w)) = self.wanted.iter_mut().find(|(_, w)| matches!(w, Want::Pending(t) if *t == ticket)) {
            *w = match result {
                Ok(data) => Want::Ready(data),
                Err(e) => Want::Failed(e),
            };
        }
    }

    /// Whether a block of this stream waits for `ticket`.
    pub fn waits_for(&self, ticket: Ticket) -> bool {
        self.wanted.iter().any(|(_, w)| matches!(w, Want::Pending(t) if *t == ticket))
    }

    /// The tickets this stream waits for.
    #[cfg(test)]
    pub fn pending_tickets(&self) -> Vec<Ticket> {
        self.wanted
            .iter()
            .filter_map(|(_, w)| match w {
                Want::Pending(t) => Some(*t),
                _ => None,
            })
            .collect()
    }

    /// The ready slices, in order (for a transport that takes a batch).
    pub fn ready_mut(&mut self) -> &[BufSlice] {
        self.ready.make_contiguous()
    }

    /// The first ready slice.
    pub fn front(&self) -> Option<&BufSlice> {
        self.ready.front()
    }

    /// Drops the first `n` ready bytes: the transport took them.
    pub fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.ready.front_mut() else { return };
            if front.len() <= n {
                n -= front.len();
                self.ready.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// Every byte of the range has been handed on.
    pub fn is_done(&self) -> bool {
        self.ready.is_empty() && self.wanted.is_empty() && self.next_block >= self.last_block
    }

    /// What the stream waits for when nothing is ready: a read in flight, or a free block.
    pub fn stalled_on(&self) -> Wait {
        if self.wanted.is_empty() {
            Wait::Memory
        } else {
            Wait::Read
        }
    }
}
