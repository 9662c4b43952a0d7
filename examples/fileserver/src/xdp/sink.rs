//! The AF_XDP backend's side of a session: request bytes from the user-space stack
//! ([`StackTransport`]), requests answered with block streams ([`XdpSite`]), and
//! responses handed to the stack by reference ([`StackSink`]): the head copied into
//! frames of its own (headers are built by the CPU), body bytes as slices of the pool
//! blocks the file was read into (never copied).

use std::io;
use std::time::SystemTime;

use stack::{ConnHandle, Instant, Stack};
use umem::{BufSlice, Pool};

use crate::blocks::{BlockStream, Blocks};
use crate::http::{Head, Request};
use crate::metrics::Metrics;
use crate::root::Root;
use crate::session::table::SessionId;
use crate::session::{file_answer, Delivery, Input, Progress, Respond, Session, Sink, Transport, Wait};

/// Blocks asked ahead of the stack per response: at least this many ...
const AHEAD_MIN: usize = 2;
/// ... and at most this many (bounds per-connection pool use).
const AHEAD_MAX: usize = 16;
/// Blocks' worth of bytes the stack may hold not yet sent (Linux's `tcp_notsent_lowat`):
/// more is handed over as the stack sends, so a peer whose window stays shut pins this
/// much and its read-ahead, not a whole send buffer.
const NOTSENT_BLOCKS: usize = 2;

/// One connection of the stack, and what answering and sending on it need.
pub(super) struct StackTransport<'a> {
    pub stack: &'a mut Stack,
    pub h: ConnHandle,
    pub id: SessionId,
    pub root: &'a Root,
    pub blocks: &'a mut Blocks,
    pub frames: &'a mut Vec<BufSlice>,
    pub stats: &'a mut SinkStats,
    /// The connection's `snd_una` when last asked (acknowledgements are progress).
    pub una: &'a mut Option<u32>,
    /// The connection was refused a block (its allowance, or an empty pool).
    pub waited: bool,
}

/// Bytes the connection's send queue holds that were never sent.
fn unsent(k: &stack::tcp::Conn) -> usize {
    let in_flight = k.snd_nxt().0.wrapping_sub(k.snd_una().0) as usize;
    k.send_queued().saturating_sub(in_flight)
}

/// Blocks under `queued` bytes of a send queue (a slice may start mid-block: one more).
pub(super) fn stack_blocks(queued: usize, block_len: usize) -> usize {
    match queued {
        0 => 0,
        q => q.div_ceil(block_len.max(1)) + 1,
    }
}

impl Transport<BlockStream> for StackTransport<'_> {
    fn read(&mut self, now: Instant, session: &mut Session<BlockStream>) -> io::Result<Input> {
        // Request bytes are copied out of the frames (they are headers, not payload).
        while session.input_room() > 0 {
            match self.stack.read(self.h, session.input_room()).map_err(io::Error::other)? {
                Some(s) => session.receive(now, s.as_bytes()),
                None => {
                    if self.stack.readiness(self.h).read_closed {
                        session.end_of_input();
                    }
                    return Ok(Input::Drained);
                }
            }
        }
        Ok(Input::Full)
    }

    fn respond(&mut self) -> impl Respond<Body = BlockStream> + '_ {
        XdpSite { root: self.root, blocks: self.blocks }
    }

    fn sink<'a>(&'a mut self, metrics: &'a mut Metrics) -> impl Sink<BlockStream> + 'a {
        StackSink {
            stack: self.stack,
            h: self.h,
            blocks: self.blocks,
            id: self.id,
            frames: self.frames,
            metrics,
            stats: self.stats,
            waited: &mut self.waited,
        }
    }

    fn delivery(&mut self) -> Delivery {
        let Some(k) = self.stack.conn(self.h) else { return Delivery::default() };
        let una = k.snd_una().0;
        let acked = self.una.is_some_and(|u| u != una);
        *self.una = Some(una);
        Delivery { acked, pending: k.send_queued() > 0 }
    }
}

/// Answers requests with streams of file blocks.
pub(super) struct XdpSite<'a> {
    pub root: &'a Root,
    pub blocks: &'a mut Blocks,
}

impl Respond for XdpSite<'_> {
    type Body = BlockStream;

    fn respond(&mut self, req: &Request, wall: SystemTime) -> (Head, Option<BlockStream>) {
        let blocks = &mut *self.blocks;
        file_answer(self.root, req, wall, |o, r| blocks.open(o.file, r).map_err(|e| log::warn!("{}: {e}", o.path)))
    }
}

/// Counters of the AF_XDP sink.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct SinkStats {
    /// Times a response head waited because the pool had no free frame.
    pub head_frame_waits: u64,
}

/// Hands one connection's responses to the stack.
pub(super) struct StackSink<'a> {
    pub stack: &'a mut Stack,
    pub h: ConnHandle,
    pub blocks: &'a mut Blocks,
    pub id: SessionId,
    /// Scratch for head frames (reused, so a pass allocates nothing).
    pub frames: &'a mut Vec<BufSlice>,
    pub metrics: &'a mut Metrics,
    pub stats: &'a mut SinkStats,
    /// Set when the connection was refused a block.
    pub waited: &'a mut bool,
}

impl Sink<BlockStream> for StackSink<'_> {
    fn send_head(&mut self, bytes: &[u8]) -> io::Result<Progress> {
        let want = bytes.len().min(self.stack.send_space(self.h));
        if want == 0 {
            return Ok(Progress::blocked(0, Wait::Room));
        }
        let placed = head_frames(self.blocks.pool(), &bytes[..want], self.frames);
        let taken = match placed {
            0 => 0,
            _ => self.stack.write_frames(self.h, self.frames).map_err(io::Error::other)?,
        };
        self.frames.clear();
        if taken == bytes.len() {
            Ok(Progress::done(taken))
        } else if placed < want {
            self.stats.head_frame_waits += 1;
            Ok(Progress::blocked(taken, Wait::Memory))
        } else {
            Ok(Progress::blocked(taken, Wait::Room))
        }
    }

    fn send_body(&mut self, s: &mut BlockStream) -> io::Result<Progress> {
        let bl = s.block_len().max(1);
        let lowat = NOTSENT_BLOCKS * bl;
        let mut moved = 0;
        let mut limited = false;
        loop {
            let (queued, unsent, cwnd) =
                self.stack.conn(self.h).map_or((0, 0, 0), |k| (k.send_queued(), unsent(k), k.cwnd()));
            // Read ahead by what the connection can send soon, within its allowance.
            let want = ((cwnd + lowat) / bl + 1).clamp(AHEAD_MIN, AHEAD_MAX);
            let held = s.blocks_held() + stack_blocks(queued, bl);
            let room = (self.blocks.budget.allowance() as usize).saturating_sub(held);
            let ahead = want.min(s.blocks_held() + room);
            if ahead < want && s.wants_more() && !limited {
                limited = true;
                *self.waited = true;
                self.blocks.budget.refused();
            }
            if s.feed(self.blocks, self.id, ahead)? {
                *self.waited = true;
                self.blocks.budget.stats.pool_waits += 1;
            }
            let ready = s.ready_mut();
            if ready.is_empty() {
                return Ok(match s.is_done() {
                    true => Progress::done(moved),
                    // At its allowance with bytes in flight: their acknowledgements wake it.
                    false if limited && queued > 0 => Progress::blocked(moved, Wait::Room),
                    false => Progress::blocked(moved, s.stalled_on()),
                });
            }
            if unsent >= lowat {
                return Ok(Progress::blocked(moved, Wait::Room));
            }
            // Slices go over while the unsent bytes stay under the mark.
            let mut n = 0;
            let mut offered = 0;
            while n < ready.len() && unsent + offered < lowat {
                offered += ready[n].len();
                n += 1;
            }
            let taken = self.stack.write_frames(self.h, &ready[..n]).map_err(io::Error::other)?;
            s.consume(taken);
            moved += taken;
            self.metrics.bytes_sent += taken as u64;
            if taken < offered {
                return Ok(Progress::blocked(moved, Wait::Room));
            }
        }
    }
}

/// Copies `bytes` into as many free frames of `pool` as they need, appending a slice of
/// each to `out`; returns the bytes placed (fewer than `bytes.len()` only when the pool
/// ran out of frames).
pub(super) fn head_frames(pool: &Pool, bytes: &[u8], out: &mut Vec<BufSlice>) -> usize {
    let mut placed = 0;
    while placed < bytes.len() {
        let Some(mut frame) = pool.alloc_frame() else { break };
        let Some(buf) = frame.get_mut() else { break };
        let n = (bytes.len() - placed).min(buf.len());
        buf[..n].copy_from_slice(&bytes[placed..placed + n]);
        let Some(s) = BufSlice::new(frame, 0..n) else { break };
        out.push(s);
        placed += n;
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;
    use umem::{HugePages, PoolConfig};

    fn pool(frames: u32) -> Pool {
        Pool::new(&PoolConfig {
            frame_size: 4096,
            frames,
            block_size: 4096,
            blocks: 0,
            hugepages: HugePages::Off,
            lock: false,
        })
        .unwrap()
    }

    #[test]
    fn a_head_longer_than_a_frame_spans_frames_whole() {
        let p = pool(8);
        let head: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut out = Vec::new();
        assert_eq!(head_frames(&p, &head, &mut out), head.len());
        assert_eq!(out.len(), 3, "10000 bytes in 4096-byte frames");
        assert!(out.iter().all(|s| s.len() <= 4096));
        let joined: Vec<u8> = out.iter().flat_map(|s| s.as_bytes().iter().copied()).collect();
        assert_eq!(joined, head, "nothing cut, nothing reordered");
    }

    #[test]
    fn a_pool_out_of_frames_places_what_fits_and_says_so() {
        let p = pool(2);
        let held = p.alloc_frame().unwrap();
        let mut out = Vec::new();
        assert_eq!(head_frames(&p, &[1u8; 6000], &mut out), 4096, "one free frame");
        drop(out);
        drop(held);
        assert_eq!(p.stats().frames_free, 2, "no frame lost");
    }
}
