//! One AF_XDP worker: a thread bound to one rx queue and pinned to one CPU, with its own
//! pool (UMEM), AF_XDP socket and rings, io_uring block reader and cache, and stack. It
//! shares nothing with the other workers on the per-packet path; all it publishes is a
//! snapshot of its counters ([`super::publish`]) now and then.
//!
//! ```text
//!   spawn ─► pin ─► pool, socket, io_uring, stack ─► Ready { socket fd } ─► wait for go
//!        ─► loop: RX batch ─► Core::turn ─► completions, refill, kick ─► publish ─► sleep?
//! ```
//!
//! The main thread puts the socket (by its descriptor) into the XSKMAP and steers the
//! port only after every worker reported [`Ready`], and sends "go" only after privileges
//! are dropped, so nothing is served as root.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use anyhow::{anyhow, bail, Context, Result};
use datapath::{BindMode, BindPolicy, Interface, XskConfig, XskSocket};
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};
use stack::{Stack, StackConfig};
use umem::{Backing, BlockCache, BlockReader, Pool};

use super::link::XskLink;
use super::publish::{Publisher, Slot};
use super::{Core, XdpOpts};
use crate::metrics::Metrics;
use crate::root::Root;
use crate::session::Clock;

/// What one worker is given.
#[derive(Debug)]
pub struct Spec {
    /// The rx queue to bind.
    pub queue: u32,
    /// The CPU to pin the thread to.
    pub cpu: Option<usize>,
    pub iface: Interface,
    pub mac: [u8; 6],
    pub addr: Ipv4Addr,
    pub opts: XdpOpts,
    /// The SYN cookie and ISN secret, the same in every worker.
    pub secret: u64,
    pub root: Root,
}

/// What a worker reports once its socket exists, before it serves anything.
#[derive(Debug)]
pub struct Ready {
    /// The AF_XDP socket, for the XSKMAP (it lives as long as the worker).
    pub fd: RawFd,
    pub mode: BindMode,
    pub multi_buffer: bool,
    pub backing: Backing,
    pub locked: bool,
    /// Bytes of the pool.
    pub pool_bytes: u64,
    /// Time to map, fault in and lock the pool.
    pub pool_time: StdDuration,
    /// Time to register the UMEM, create the rings and bind.
    pub socket_time: StdDuration,
    /// Time to create the io_uring and register the pool as its fixed buffers.
    pub uring_time: StdDuration,
}

/// A running worker (see the module docs).
#[derive(Debug)]
pub struct Worker {
    pub queue: u32,
    pub cpu: Option<usize>,
    /// Its latest counters.
    pub slot: Arc<Slot>,
    ready: Receiver<Result<Ready>>,
    go: Option<Sender<()>>,
    thread: JoinHandle<Result<Metrics>>,
}

impl Worker {
    /// Starts a worker thread; it sets up and reports [`Ready`], then waits for
    /// [`Worker::go`]. `stop` ends its loop.
    pub fn spawn(spec: Spec, stop: Arc<AtomicBool>) -> Result<Worker> {
        let (queue, cpu) = (spec.queue, spec.cpu);
        let slot = Arc::new(Slot::default());
        let (ready_tx, ready) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        let thread_slot = slot.clone();
        let thread = std::thread::Builder::new()
            .name(format!("xdp-q{queue}"))
            .spawn(move || run(spec, &stop, &thread_slot, &ready_tx, &go_rx))
            .with_context(|| format!("spawning the worker of queue {queue}"))?;
        Ok(Worker { queue, cpu, slot, ready, go: Some(go), thread })
    }

    /// Waits (at most `timeout`) until the worker has its socket.
    pub fn wait_ready(&self, timeout: StdDuration) -> Result<Ready> {
        match self.ready.recv_timeout(timeout) {
            Ok(r) => r.with_context(|| format!("worker of queue {}", self.queue)),
            Err(_) => bail!("the worker of queue {} did not set up within {timeout:?}", self.queue),
        }
    }

    /// Lets the worker serve.
    pub fn go(&mut self) {
        if let Some(go) = self.go.take() {
            let _ = go.send(());
        }
    }

    /// Whether the thread has ended (an error, or `stop`).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Joins the thread (after `stop` was set, or without "go"): its final counters.
    pub fn join(mut self) -> Result<Metrics> {
        self.go = None; // a worker still waiting for "go" returns at once
        let queue = self.queue;
        self.thread.join().map_err(|_| anyhow!("the worker of queue {queue} panicked"))?
    }
}

fn run(
    spec: Spec,
    stop: &AtomicBool,
    slot: &Slot,
    ready: &Sender<Result<Ready>>,
    go: &Receiver<()>,
) -> Result<Metrics> {
    let (queue, busy) = (spec.queue, spec.opts.busy);
    let (mut core, mut sock, facts) = match set_up(spec) {
        Ok(parts) => parts,
        Err(e) => {
            let _ = ready.send(Err(e));
            bail!("queue {queue}: setup failed");
        }
    };
    let _ = ready.send(Ok(facts));
    if go.recv().is_err() {
        // The server gave up before serving (another worker failed).
        return Ok(metrics(&core, &sock, 0));
    }
    Ok(serve(&mut core, &mut sock, busy, stop, slot))
}

/// Pins the thread, builds the pool, socket, reader, cache, stack and core.
fn set_up(spec: Spec) -> Result<(Core, XskSocket, Ready)> {
    let Spec { queue, cpu, iface, mac, addr, opts, secret, root } = spec;
    if let Some(cpu) = cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set)
            .with_context(|| format!("pinning the worker of queue {queue} to CPU {cpu} (see --cpus)"))?;
    }
    let t0 = StdInstant::now();
    let pool = Pool::new(&opts.pool.pool_config(opts.frames)).context("creating the pool")?;
    let t1 = StdInstant::now();
    let sock =
        XskSocket::open(&pool, &iface, &XskConfig { queue, bind: BindPolicy::PreferZeroCopy, ..XskConfig::default() })?;
    let t2 = StdInstant::now();
    let reader = BlockReader::new(&pool, &opts.pool.reader_config()).context("creating the io_uring block reader")?;
    let t3 = StdInstant::now();
    let cache = BlockCache::new(reader, &opts.pool.cache_config());
    let mut cfg = StackConfig::new(EthernetAddress(mac));
    cfg.ipv4 = Some(Ipv4Cidr::new(addr, opts.prefix));
    cfg.mtu = iface.mtu as usize;
    cfg.force_copy = opts.force_copy;
    cfg.secret = secret;
    let mut stack = Stack::new(cfg);
    let listener = stack.listen(opts.port).map_err(|e| anyhow!("listen on {}: {e}", opts.port))?;
    let ready = Ready {
        fd: sock.as_raw_fd(),
        mode: sock.mode(),
        multi_buffer: sock.multi_buffer(),
        backing: pool.backing(),
        locked: pool.locked(),
        pool_bytes: pool.used_len(),
        pool_time: t1 - t0,
        socket_time: t2 - t1,
        uring_time: t3 - t2,
    };
    let core = Core::new(stack, listener, cache, root, opts.limits.clone());
    Ok((core, sock, ready))
}

/// The run-to-completion loop, until `stop`; the final counters.
fn serve(core: &mut Core, sock: &mut XskSocket, busy: bool, stop: &AtomicBool, slot: &Slot) -> Metrics {
    let mtu = sock.interface().mtu as usize;
    let clock = Clock::start();
    let mut rx = Vec::with_capacity(64);
    let mut refused = 0u64;
    let mut idle = 0u32;
    let mut publisher = Publisher::default();
    while !stop.load(Ordering::Relaxed) {
        let now = clock.now();
        rx.clear();
        let n = sock.recv(&mut rx, 64);
        for f in rx.drain(..) {
            if f.more {
                // Requests and ACKs fit one frame; a multi-buffer RX packet is not ours.
                core.metrics.rx_multi_dropped += 1;
                continue;
            }
            core.receive(now.mono, f.data);
        }
        let turn = core.turn(now, &mut XskLink { sock, mtu, refused: &mut refused });
        sock.poll();
        let worked = n > 0 || turn.sent > 0 || turn.completed > 0;
        idle = if worked { 0 } else { idle + 1 };
        publisher.turn(worked);
        let sleep = !busy && idle > 512 && !core.blocks().reading() && sock.tx_in_flight() == 0;
        if publisher.due(now.mono, sleep) && slot.offer(|| metrics(core, sock, refused)) {
            publisher.published(now.mono);
        }
        if sleep {
            // Sleep until a packet arrives or the next timer, at most 10 ms.
            // (smoltcp's `Instant - Instant` is an absolute difference: a past time means now.)
            let wait = core.poll_at().map_or(StdDuration::from_millis(10), |t| match t > now.mono {
                true => StdDuration::from_micros((t - now.mono).total_micros().min(10_000)),
                false => StdDuration::ZERO,
            });
            if !wait.is_zero() {
                sock.wait(wait);
            }
        }
    }
    metrics(core, sock, refused)
}

/// The core's counters with the AF_XDP socket's.
fn metrics(core: &Core, sock: &XskSocket, refused: u64) -> Metrics {
    let mut m: Metrics = core.metrics();
    let xs = sock.stats();
    m.extra.extend([
        ("xsk_rx_dropped_total".into(), xs.rx_dropped),
        ("xsk_rx_ring_full_total".into(), xs.rx_ring_full),
        ("xsk_fill_ring_empty_total".into(), xs.rx_fill_ring_empty),
        ("xsk_tx_ring_full_total".into(), xs.tx_ring_full),
        ("xsk_tx_invalid_descs_total".into(), xs.tx_invalid_descs),
        ("xsk_tx_descs_total".into(), xs.tx_descs),
        ("xsk_tx_completed_total".into(), xs.tx_completed),
        ("xsk_tx_wakeups_total".into(), xs.tx_wakeups),
        ("xsk_tx_wakeup_errors_total".into(), xs.tx_wakeup_errors),
        ("xsk_tx_refused_total".into(), refused),
    ]);
    m
}
