//! The capture's writer thread: takes chunks of Enhanced Packet Blocks from the taps,
//! writes them to the file (rotating it at the size cap) and copies those inside a live
//! capture's window into it, then returns the chunk to the pool.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{pcapng, Capture, MAX_LIVE_BYTES};

/// What the taps send.
#[derive(Debug)]
pub enum Msg {
    Chunk(Vec<u8>),
    Stop,
}

/// The file is flushed after this long without a chunk (so it can be read while the
/// server runs).
const FLUSH_AFTER: Duration = Duration::from_millis(200);

/// FILE, rotated to FILE.1 .. FILE.(keep - 1) before it would pass `max_bytes`.
#[derive(Debug)]
pub struct Rotating {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    preamble: Vec<u8>,
    out: BufWriter<File>,
    written: u64,
}

/// `FILE.n` (`FILE` for 0).
pub(super) fn numbered(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl Rotating {
    /// Creates (truncates) `path` and writes the section header and interface.
    pub fn create(path: PathBuf, max_bytes: u64, keep: u32, preamble: Vec<u8>) -> Result<Rotating> {
        let out = open(&path, &preamble)?;
        Ok(Rotating { path, max_bytes, keep, written: preamble.len() as u64, preamble, out })
    }

    /// Writes one block, rotating first if it would take the file past the cap (a file
    /// always takes at least one packet, so a block larger than the cap cannot loop).
    fn write(&mut self, block: &[u8], rotations: &mut u64) -> Result<()> {
        let over = self.written + block.len() as u64 > self.max_bytes;
        if over && self.written > self.preamble.len() as u64 {
            self.rotate()?;
            *rotations += 1;
        }
        self.out.write_all(block).with_context(|| format!("writing {}", self.path.display()))?;
        self.written += block.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        self.out.flush().with_context(|| format!("writing {}", self.path.display()))?;
        if self.keep == 1 {
            // Only FILE is kept: start it again.
            let _ = std::fs::remove_file(&self.path);
        }
        for n in (1..self.keep).rev() {
            let (from, to) = (numbered(&self.path, n - 1), numbered(&self.path, n));
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("renaming {} to {}", from.display(), to.display())),
            }
        }
        self.out = open(&self.path, &self.preamble)?;
        self.written = self.preamble.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().with_context(|| format!("writing {}", self.path.display()))
    }
}

fn open(path: &Path, preamble: &[u8]) -> Result<BufWriter<File>> {
    let f = File::create(path).with_context(|| {
        format!("creating the capture file {} (--pcap; rotation creates files beside it as --user)", path.display())
    })?;
    let mut out = BufWriter::with_capacity(1 << 20, f);
    out.write_all(preamble).with_context(|| format!("writing {}", path.display()))?;
    Ok(out)
}

/// The thread's state.
pub struct Writer {
    pub rx: Receiver<Msg>,
    pub shared: Arc<Capture>,
    pub file: Option<Rotating>,
}

impl Writer {
    /// Until [`Msg::Stop`] (after which every chunk already sent has been written).
    pub fn run(&mut self) {
        loop {
            match self.rx.recv_timeout(FLUSH_AFTER) {
                Ok(Msg::Chunk(c)) => self.chunk(c),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self.flush(),
            }
        }
        while let Ok(Msg::Chunk(c)) = self.rx.try_recv() {
            self.chunk(c);
        }
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(f) = &mut self.file {
            if let Err(e) = f.flush() {
                self.give_up(e);
            }
        }
    }

    fn give_up(&mut self, e: anyhow::Error) {
        log::error!("packet capture: {e:#}; the file is no longer written");
        self.shared.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        self.file = None;
    }

    /// Writes the chunk's blocks to the file and the live captures, then frees it.
    fn chunk(&mut self, chunk: Vec<u8>) {
        let live = self.shared.live.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut rotations = 0;
        let mut written = 0u64;
        let mut at = 0;
        while at < chunk.len() {
            // The taps write whole blocks; a bad length would be a bug here, not input.
            let Ok(len) = pcapng::block_len(&chunk[at..]) else { break };
            let block = &chunk[at..at + len];
            at += len;
            if let Some(f) = &mut self.file {
                match f.write(block, &mut rotations) {
                    Ok(()) => written += len as u64,
                    Err(e) => self.give_up(e),
                }
            }
            let Some(ts) = pcapng::packet_time(block) else { continue };
            for l in &live {
                let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
                if ts < l.from_ns || ts >= l.until_ns {
                    continue;
                }
                if l.bytes.len() + len > MAX_LIVE_BYTES {
                    l.dropped += 1;
                    self.shared.counters.live_dropped.fetch_add(1, Ordering::Relaxed);
                } else {
                    l.bytes.extend_from_slice(block);
                }
            }
        }
        let c = &self.shared.counters;
        c.file_bytes.fetch_add(written, Ordering::Relaxed);
        c.rotations.fetch_add(rotations, Ordering::Relaxed);
        self.shared.give_back(chunk);
    }
}
