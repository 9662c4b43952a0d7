//! A worker's side of the capture: records packets into a chunk of its own and hands full
//! chunks to the writer thread without ever waiting (see the parent module).

use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;
use std::sync::Arc;

use super::writer::Msg;
use super::{pcapng, Capture, Direction, CHUNK_BYTES};

/// A chunk is handed over once it is this old, so a quiet link's packets still reach the file.
const MAX_AGE_NS: u64 = 100_000_000;

/// One worker's tap.
#[derive(Debug)]
pub struct Tap {
    shared: Arc<Capture>,
    /// Records not yet handed over (capacity 0: none taken from the pool).
    chunk: Vec<u8>,
    /// Packets in `chunk`.
    in_chunk: u64,
    /// The turn's timestamp when the first record of `chunk` was written.
    since_ns: Option<u64>,
    /// Whether this turn records (the shared flag, read once per turn).
    on: bool,
    /// The turn's timestamp, ns since the Unix epoch.
    ts_ns: u64,
}

impl Tap {
    pub(super) fn new(shared: Arc<Capture>) -> Tap {
        Tap { shared, chunk: Vec::new(), in_chunk: 0, since_ns: None, on: false, ts_ns: 0 }
    }

    /// Starts a turn stamped `ts_ns`: whether it records at all.
    pub fn begin_turn(&mut self, ts_ns: u64) -> bool {
        self.on = self.shared.active.load(Ordering::Relaxed);
        self.ts_ns = ts_ns;
        self.on
    }

    /// Records one packet, the concatenation of `frags`, if this turn records.
    pub fn record<'a, I>(&mut self, dir: Direction, frags: I)
    where
        I: Iterator<Item = &'a [u8]> + Clone,
    {
        if !self.on {
            return;
        }
        let orig: usize = frags.clone().map(<[u8]>::len).sum();
        let need = pcapng::packet_len(orig.min(self.shared.snaplen));
        if self.chunk.capacity() > 0 && self.chunk.len() + need > CHUNK_BYTES {
            self.hand_over();
        }
        if self.chunk.capacity() == 0 {
            match self.shared.take_chunk() {
                Some(c) => self.chunk = c,
                None => {
                    self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        pcapng::packet(&mut self.chunk, self.ts_ns, dir, frags, self.shared.snaplen);
        self.in_chunk += 1;
        self.since_ns.get_or_insert(self.ts_ns);
    }

    /// Ends a turn: hands the chunk over if the worker is about to sleep, the capture
    /// stopped, or the chunk is 100 ms old.
    pub fn end_turn(&mut self, sleeping: bool) {
        if self.in_chunk > 0
            && (sleeping || !self.on || self.since_ns.is_some_and(|t| self.ts_ns.saturating_sub(t) >= MAX_AGE_NS))
        {
            self.hand_over();
        }
    }

    /// Hands the chunk to the writer (on the way out, too); a full queue drops it, counted.
    pub fn hand_over(&mut self) {
        if self.in_chunk == 0 {
            return;
        }
        let chunk = std::mem::take(&mut self.chunk);
        let n = std::mem::take(&mut self.in_chunk);
        self.since_ns = None;
        match self.shared.to_writer.try_send(Msg::Chunk(chunk)) {
            Ok(()) => {
                self.shared.counters.packets.fetch_add(n, Ordering::Relaxed);
            }
            Err(TrySendError::Full(Msg::Chunk(c)) | TrySendError::Disconnected(Msg::Chunk(c))) => {
                self.shared.counters.dropped.fetch_add(n, Ordering::Relaxed);
                let mut c = c;
                c.clear();
                self.chunk = c;
            }
            Err(_) => {}
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.hand_over();
        if self.chunk.capacity() > 0 {
            self.shared.give_back(std::mem::take(&mut self.chunk));
        }
    }
}
