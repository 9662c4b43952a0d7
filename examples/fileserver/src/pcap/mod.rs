//! Packet capture of the bypassed traffic: every frame the stack receives and sends, as
//! pcapng (`--pcap FILE`, and `GET /pcap?seconds=N` on the control port). AF_XDP traffic
//! never reaches the kernel's taps, so `tcpdump -i` on the host sees none of it; this
//! writes what `tcpdump -r` and `tshark -r` read.
//!
//! ```text
//!   worker: RX frame / TX packet ─► Tap::record: first snaplen bytes, as an Enhanced
//!           Packet Block, appended to the worker's chunk (256 KiB, from a bounded pool)
//!        └─ full, idle or 100 ms old ─► try_send ─► writer thread ─► FILE (rotated at
//!           --pcap-max-bytes: FILE.1 ... FILE.(K-1)) and live /pcap captures
//!   no free chunk, or the writer's queue full: the packets are dropped and counted
//! ```
//!
//! Costs: with neither `--pcap` nor a control port a worker has no [`Tap`] at all (one
//! branch on an `Option` per packet). With a control port but no capture running, one
//! relaxed atomic load per turn. With a capture running, a copy of at most the snap length
//! per packet into a chunk, and one channel send per chunk; the data path never waits
//! for the disk. Timestamps are the turn's wall clock (one read per turn, nanosecond
//! resolution in the file, every packet of a turn stamped alike).
//!
//! Checksums the socket leaves to TX metadata offload appear as the kernel's own capture
//! shows offloaded ones: the TCP checksum field holds the pseudo-header sum.

pub mod pcapng;
mod tap;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

use anyhow::{Context, Result};

pub use self::pcapng::Direction;
pub use self::tap::Tap;
use self::writer::{Msg, Rotating, Writer};

/// Bytes of one chunk of records.
const CHUNK_BYTES: usize = 256 << 10;
/// Chunks at most, over every worker (16 MiB: what a stalled disk can make us hold).
const MAX_CHUNKS: usize = 64;
/// Longest live capture (`/pcap?seconds=N`).
pub const MAX_LIVE_SECONDS: u64 = 60;
/// Live captures at once.
pub const MAX_LIVE: usize = 2;
/// Bytes one live capture keeps at most; packets beyond are dropped and counted.
pub const MAX_LIVE_BYTES: usize = 64 << 20;

/// `--pcap`, `--pcap-snaplen`, `--pcap-max-bytes`, `--pcap-files`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapOpts {
    /// The file to write; `None`: only live captures from the control port.
    pub file: Option<PathBuf>,
    /// Bytes kept of each frame.
    pub snaplen: u32,
    /// A file is rotated before it would grow past this.
    pub max_bytes: u64,
    /// Files kept: FILE and FILE.1 .. FILE.(files - 1).
    pub files: u32,
}

impl PcapOpts {
    /// Refuses settings that cannot work.
    pub fn check(&self) -> Result<(), String> {
        if !(64..=262_144).contains(&self.snaplen) {
            return Err(format!("--pcap-snaplen {}: give 64 to 262144 bytes", self.snaplen));
        }
        if self.max_bytes < 1 << 20 {
            return Err(format!("--pcap-max-bytes {}: give at least 1 MiB (1048576)", self.max_bytes));
        }
        if !(1..=1000).contains(&self.files) {
            return Err(format!("--pcap-files {}: keep 1 to 1000 files", self.files));
        }
        Ok(())
    }
}

/// Counters of the capture.
#[derive(Debug, Default)]
struct Counters {
    /// Packets recorded by the taps.
    packets: AtomicU64,
    /// Packets dropped: no free chunk, or the writer's queue was full.
    dropped: AtomicU64,
    /// Bytes written to files.
    file_bytes: AtomicU64,
    /// Files rotated.
    rotations: AtomicU64,
    /// Failed writes (the file is given up after the first; logged).
    write_errors: AtomicU64,
    /// Live captures answered.
    live: AtomicU64,
    /// Packets a live capture could not keep ([`MAX_LIVE_BYTES`]).
    live_dropped: AtomicU64,
}

/// One live capture: the blocks of packets stamped in `[from, until)`.
#[derive(Debug)]
pub struct Live {
    from_ns: u64,
    until_ns: u64,
    bytes: Vec<u8>,
    dropped: u64,
}

/// What the taps, the writer thread and the control port share.
#[derive(Debug)]
pub struct Capture {
    snaplen: usize,
    iface: String,
    /// Whether taps record: a file is written, or a live capture runs.
    active: AtomicBool,
    to_writer: SyncSender<Msg>,
    free: Mutex<Vec<Vec<u8>>>,
    /// Chunks allocated so far (at most [`MAX_CHUNKS`]).
    allocated: AtomicU64,
    file: bool,
    live: Mutex<Vec<Arc<Mutex<Live>>>>,
    counters: Counters,
}

impl Capture {
    /// Empty chunk to record into, if the bound allows one.
    fn take_chunk(&self) -> Option<Vec<u8>> {
        if let Some(c) = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Some(c);
        }
        let n = self.allocated.fetch_add(1, Ordering::Relaxed);
        if n >= MAX_CHUNKS as u64 {
            self.allocated.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Vec::with_capacity(CHUNK_BYTES))
    }

    fn give_back(&self, mut chunk: Vec<u8>) {
        chunk.clear();
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(chunk);
    }

    fn refresh_active(&self, live: &[Arc<Mutex<Live>>]) {
        self.active.store(self.file || !live.is_empty(), Ordering::Relaxed);
    }

    /// Starts a live capture of the next `seconds` (1 to [`MAX_LIVE_SECONDS`], at most
    /// [`MAX_LIVE`] at once); [`Capture::finish_live`] takes it after that.
    pub fn start_live(&self, now: SystemTime, seconds: u64) -> Result<Arc<Mutex<Live>>, String> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.len() >= MAX_LIVE {
            return Err(format!("{MAX_LIVE} captures run already; try again when one ends"));
        }
        let from_ns = unix_ns(now);
        let mut bytes = Vec::new();
        let pre = pcapng::preamble(self.snaplen as u32, &self.iface);
        bytes.extend_from_slice(&pre);
        let l = Arc::new(Mutex::new(Live { from_ns, until_ns: from_ns + seconds * 1_000_000_000, bytes, dropped: 0 }));
        live.push(l.clone());
        self.refresh_active(&live);
        Ok(l)
    }

    /// Ends a live capture: its pcapng bytes and the packets it dropped.
    pub fn finish_live(&self, l: &Arc<Mutex<Live>>) -> (Vec<u8>, u64) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|x| !Arc::ptr_eq(x, l));
        self.refresh_active(&live);
        drop(live);
        self.counters.live.fetch_add(1, Ordering::Relaxed);
        let mut g = l.lock().unwrap_or_else(|e| e.into_inner());
        (std::mem::take(&mut g.bytes), g.dropped)
    }

    /// The counters as `name value` pairs for the metrics text.
    pub fn series(&self) -> Vec<(String, u64)> {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("pcap_packets_total".into(), get(&c.packets)),
            ("pcap_dropped_total".into(), get(&c.dropped)),
            ("pcap_file_bytes_total".into(), get(&c.file_bytes)),
            ("pcap_rotations_total".into(), get(&c.rotations)),
            ("pcap_write_errors_total".into(), get(&c.write_errors)),
            ("pcap_live_captures_total".into(), get(&c.live)),
            ("pcap_live_dropped_total".into(), get(&c.live_dropped)),
        ]
    }
}

/// Nanoseconds since the Unix epoch (0 before it).
pub fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The capture and its writer thread; [`Capturer::stop`] writes what is left and joins.
#[derive(Debug)]
pub struct Capturer {
    pub shared: Arc<Capture>,
    thread: Option<JoinHandle<()>>,
}

impl Capturer {
    /// Opens `opts.file` (if any; before privileges are dropped) and starts the writer
    /// thread. `iface` names the interface in the files.
    pub fn start(opts: &PcapOpts, iface: &str) -> Result<Capturer> {
        opts.check().map_err(anyhow::Error::msg)?;
        let preamble = pcapng::preamble(opts.snaplen, iface);
        let file = match &opts.file {
            Some(path) => Some(Rotating::create(path.clone(), opts.max_bytes, opts.files, preamble.clone())?),
            None => None,
        };
        let (to_writer, rx) = mpsc::sync_channel(MAX_CHUNKS);
        let shared = Arc::new(Capture {
            snaplen: opts.snaplen as usize,
            iface: iface.into(),
            active: AtomicBool::new(file.is_some()),
            to_writer,
            free: Mutex::new(Vec::new()),
            allocated: AtomicU64::new(0),
            file: file.is_some(),
            live: Mutex::new(Vec::new()),
            counters: Counters::default(),
        });
        let mut w = Writer { rx, shared: shared.clone(), file };
        let thread = crate::privdrop::spawn("pcap", move || w.run()).context("spawning the capture writer thread")?;
        Ok(Capturer { shared, thread: Some(thread) })
    }

    /// A tap for one worker.
    pub fn tap(&self) -> Tap {
        Tap::new(self.shared.clone())
    }

    /// Stops the writer after what the taps handed over (end them first) and joins it.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Capturer {
    fn drop(&mut self) {
        let _ = self.shared.to_writer.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The seconds of a `/pcap?seconds=N` request target: `None` if the path is not `/pcap`,
/// `Some(Err)` if N is missing or out of range.
pub fn live_request(target: &str) -> Option<Result<u64, String>> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/pcap" {
        return None;
    }
    let n = query.split('&').find_map(|kv| kv.strip_prefix("seconds="));
    Some(match n.map(str::parse::<u64>) {
        Some(Ok(n)) if (1..=MAX_LIVE_SECONDS).contains(&n) => Ok(n),
        _ => Err(format!("give /pcap?seconds=N with N from 1 to {MAX_LIVE_SECONDS}")),
    })
}

#[cfg(test)]
mod tests;
