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
//! It sleeps in `ppoll(2)` when a few turns found nothing to do (see [`super::idle`]), on
//! its socket, its io_uring and an eventfd that [`Worker::wake`] writes; `--busy` spins.
//!
//! The main thread puts the socket (by its descriptor) into the XSKMAP and steers the
//! port only after every worker reported [`Ready`], and sends "go" only after privileges
//! are dropped, so nothing is served as root.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use anyhow::{anyhow, bail, Context, Result};
use datapath::{BindMode, BindPolicy, Interface, TxChecksumOffload, XskConfig, XskSocket};
use fileserver_sys::poll::{self, Wait};
use rustix::event::EventfdFlags;
use smoltcp::wire::{EthernetAddress, Ipv4Cidr, Ipv6Cidr};
use stack::{Stack, StackConfig};
use umem::{Backing, BlockCache, BlockReader, Pool};

use super::idle::{self, Idle, SPIN_TURNS};
use super::link::{LinkState, XskLink};
use super::publish::{self, Publisher, Slot};
use super::{Core, XdpOpts};
use crate::metrics::Metrics;
use crate::pcap::{unix_ns, Direction, Tap};
use crate::root::Root;
use crate::session::Clock;

/// Descriptors taken from the RX ring per turn. The turn that answers them takes time in
/// which the kernel keeps filling the ring; what does not fit is dropped there (counted
/// as `xsk_rx_ring_full`), so a burst (thousands of clients at once) must be drained in
/// large batches.
const RX_BATCH: u32 = 256;

/// What one worker is given.
#[derive(Debug)]
pub struct Spec {
    /// The rx queue to bind.
    pub queue: u32,
    /// The CPU to pin the thread to.
    pub cpu: Option<usize>,
    pub iface: Interface,
    pub mac: [u8; 6],
    pub opts: XdpOpts,
    /// The SYN cookie and ISN secret, the same in every worker.
    pub secret: u64,
    pub root: Root,
    /// The packet capture's tap (`--pcap`, or a control port that can start one).
    pub tap: Option<Tap>,
}

/// What a worker reports once its socket exists, before it serves anything.
#[derive(Debug)]
pub struct Ready {
    /// The AF_XDP socket, for the XSKMAP (it lives as long as the worker).
    pub fd: RawFd,
    pub mode: BindMode,
    pub multi_buffer: bool,
    pub tx_checksum: TxChecksumOffload,
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
    /// Written to wake the worker from its sleep.
    wake: Arc<OwnedFd>,
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
        let wake =
            Arc::new(rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).context("eventfd")?);
        let (thread_slot, thread_wake) = (slot.clone(), wake.clone());
        let thread = std::thread::Builder::new()
            .name(format!("xdp-q{queue}"))
            .spawn(move || run(spec, &stop, &thread_slot, &thread_wake, &ready_tx, &go_rx))
            .with_context(|| format!("spawning the worker of queue {queue}"))?;
        Ok(Worker { queue, cpu, slot, ready, go: Some(go), wake, thread })
    }

    /// Wakes the worker if it sleeps (after `stop` is set, so that it sees it now).
    pub fn wake(&self) {
        let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
    }

    /// What [`Worker::wake`] writes to, for another thread (the control port) to wake it.
    pub fn waker(&self) -> Arc<OwnedFd> {
        self.wake.clone()
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
    wake: &OwnedFd,
    ready: &Sender<Result<Ready>>,
    go: &Receiver<()>,
) -> Result<Metrics> {
    let (queue, busy) = (spec.queue, spec.opts.busy);
    let mut spec = spec;
    let tap = spec.tap.take();
    let (mut core, mut sock, tx_size, facts) = match set_up(spec) {
        Ok(parts) => parts,
        Err(e) => {
            let _ = ready.send(Err(e));
            bail!("queue {queue}: setup failed");
        }
    };
    let _ = ready.send(Ok(facts));
    if go.recv().is_err() {
        // The server gave up before serving (another worker failed).
        return Ok(metrics(&core, &sock, &Loop::default()));
    }
    let mut l = Loop { busy, tx_size, link: LinkState::for_socket(&sock), ..Loop::default() };
    l.serve(&mut core, &mut sock, tap, stop, slot, wake);
    Ok(metrics(&core, &sock, &l))
}

/// Pins the thread, builds the pool, socket, reader, cache, stack and core.
fn set_up(spec: Spec) -> Result<(Core, XskSocket, u32, Ready)> {
    let Spec { queue, cpu, iface, mac, opts, secret, root, .. } = spec;
    if let Some(cpu) = cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set)
            .with_context(|| format!("pinning the worker of queue {queue} to CPU {cpu} (see --cpus)"))?;
    }
    let t0 = StdInstant::now();
    let pool = Pool::new(&opts.pool.pool_config(opts.frames)).context("creating the pool")?;
    let t1 = StdInstant::now();
    let xcfg = XskConfig {
        queue,
        bind: BindPolicy::PreferZeroCopy,
        tx_checksum_offload: opts.tx_offload,
        rx_size: opts.rx_ring,
        fill_size: opts.rx_ring,
        ..XskConfig::default()
    };
    let sock = XskSocket::open(&pool, &iface, &xcfg)?;
    let t2 = StdInstant::now();
    let reader = BlockReader::new(&pool, &opts.pool.reader_config()).context("creating the io_uring block reader")?;
    if opts.pool.direct_io {
        crate::blocks::align::check(&reader, crate::blocks::align::of_root(&root)).map_err(anyhow::Error::msg)?;
    }
    let t3 = StdInstant::now();
    let cache = BlockCache::new(reader, &opts.pool.cache_config());
    let access_log = opts.access_log.clone();
    let mut cfg = StackConfig::new(EthernetAddress(mac));
    cfg.ipv4 = opts.addrs.v4.map(|(a, p)| Ipv4Cidr::new(a, p));
    cfg.ipv6 = opts.addrs.v6.map(|(a, p)| Ipv6Cidr::new(a, p));
    cfg.mtu = iface.mtu as usize;
    cfg.force_copy = opts.force_copy;
    cfg.secret = secret;
    cfg.tcp.congestion = opts.congestion;
    size_table(&mut cfg, opts.limits.max_connections);
    let mut stack = Stack::new(cfg);
    let listener = stack.listen(opts.port).map_err(|e| anyhow!("listen on {}: {e}", opts.port))?;
    let ready = Ready {
        fd: sock.as_raw_fd(),
        mode: sock.mode(),
        multi_buffer: sock.multi_buffer(),
        tx_checksum: sock.tx_checksum(),
        backing: pool.backing(),
        locked: pool.locked(),
        pool_bytes: pool.used_len(),
        pool_time: t1 - t0,
        socket_time: t2 - t1,
        uring_time: t3 - t2,
    };
    let mut core = Core::new(stack, listener, cache, root, opts.limits.clone());
    if let Some(tx) = access_log {
        core.log_to(tx);
    }
    Ok((core, sock, xcfg.tx_size, ready))
}

/// The loop's settings and counters.
#[derive(Debug, Default)]
struct Loop {
    /// Never sleep (`--busy`).
    busy: bool,
    /// Entries of the TX ring.
    tx_size: u32,
    /// The link's state: page-edge cuts on a zero-copy socket, and what it refused.
    link: LinkState,
    turns: u64,
    sleeps: u64,
    /// Sleeps bounded by [`idle::MEMORY_WAIT`].
    memory_sleeps: u64,
    wait_errors: u64,
}

impl Loop {
    /// The run-to-completion loop, until `stop`.
    fn serve(
        &mut self,
        core: &mut Core,
        sock: &mut XskSocket,
        mut tap: Option<Tap>,
        stop: &AtomicBool,
        slot: &Slot,
        wake: &OwnedFd,
    ) {
        let mtu = sock.interface().mtu as usize;
        // The slot's time base, so the control port can tell how long ago a turn was.
        let clock = Clock::since(slot.epoch());
        let mut rx = Vec::with_capacity(RX_BATCH as usize);
        let mut idle = 0u32;
        // The last RX fragment said more follow (a multi-buffer packet is in progress).
        let mut continuing = false;
        let mut publisher = Publisher::default();
        let ring = core.blocks().cache().reader().ring().as_raw_fd();
        let mut fds = [Wait::readable(sock.as_raw_fd()), Wait::readable(ring), Wait::readable(wake.as_raw_fd())];
        slot.set_sleeping(false);
        while !stop.load(Ordering::Relaxed) {
            let now = clock.now();
            // A turn that runs due timers changes what the counters say even when it sends
            // nothing (TIME-WAIT and half-open entries expire silently): it is published.
            let timers_due = core.poll_at().is_some_and(|t| t <= now.mono);
            self.turns += 1;
            slot.beat(now.mono);
            if slot.wants_connections() {
                slot.offer_connections(now.mono, |rows| core.connections(rows, publish::MAX_CONNECTIONS));
            }
            if let Some(t) = &mut tap {
                t.begin_turn(unix_ns(now.wall));
            }
            rx.clear();
            let n = sock.recv(&mut rx, RX_BATCH);
            for f in rx.drain(..) {
                // The capture records packets that came in one frame (requests and ACKs);
                // the pieces of a multi-buffer packet are joined or dropped by the core.
                let single = !f.more && !continuing;
                continuing = f.more;
                if let (true, Some(t)) = (single, &mut tap) {
                    t.record(Direction::Inbound, std::iter::once(f.data.as_bytes()));
                }
                core.receive_fragment(now.mono, f.data, f.more);
            }
            let turn = core.turn(now, &mut XskLink { sock, mtu, state: &mut self.link, tap: tap.as_mut() });
            let reaped = sock.complete();
            sock.poll();
            let worked = n > 0 || turn.sent > 0 || turn.completed > 0 || reaped > 0;
            idle = if worked { 0 } else { idle.saturating_add(1) };
            publisher.turn(worked || timers_due);
            let mut sleep = match self.busy || idle < SPIN_TURNS {
                true => None,
                false => idle::sleep_for(&Idle {
                    now: now.mono,
                    next_timer: core.poll_at(),
                    tx_unsent: sock.tx_free() < self.tx_size,
                    tx_in_flight: sock.tx_in_flight() > 0,
                    memory_wait: core.waiting_for_memory() || core.blocks().pool().stats().frames_free == 0,
                }),
            };
            if let Some(t) = &mut tap {
                t.end_turn(sleep.is_some());
            }
            if publisher.due(now.mono, sleep.is_some()) && slot.offer(|| metrics(core, sock, self)) {
                publisher.published(now.mono);
            }
            // A change left unpublished (the last snapshot was too recent) goes out once the
            // gap has passed: the sleep ends by then.
            if let (Some(timeout), Some(by)) = (&mut sleep, publisher.wake_by()) {
                let left = if by > now.mono { (by - now.mono).total_micros() } else { 0 };
                let left = StdDuration::from_micros(left);
                *timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            if let Some(timeout) = sleep {
                self.sleeps += 1;
                self.memory_sleeps += u64::from(timeout == Some(idle::MEMORY_WAIT));
                slot.set_sleeping(true);
                if let Err(e) = poll::wait(&mut fds, timeout) {
                    if self.wait_errors == 0 {
                        log::warn!("queue {}: ppoll: {e}", sock.queue());
                    }
                    self.wait_errors += 1;
                }
                slot.set_sleeping(false);
                if fds[2].revents != 0 {
                    // Woken by the eventfd: reset it, or every later ppoll returns at once.
                    let _ = rustix::io::read(wake, &mut [0u8; 8]);
                }
            }
        }
        // Out of the loop: no longer turning, and not asleep either.
        slot.set_sleeping(false);
    }
}

/// The core's counters with the AF_XDP socket's and the loop's.
fn metrics(core: &Core, sock: &XskSocket, l: &Loop) -> Metrics {
    let mut m: Metrics = core.metrics();
    // Payload copied where no descriptor may start is payload copied all the same.
    m.bytes_copied += l.link.page_edge_bytes_copied;
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
        ("xsk_tx_refused_total".into(), l.link.refused),
        ("xsk_tx_page_splits_total".into(), l.link.page_splits),
        ("xsk_tx_page_edge_bytes_copied_total".into(), l.link.page_edge_bytes_copied),
        ("loop_turns_total".into(), l.turns),
        ("loop_sleeps_total".into(), l.sleeps),
        ("loop_memory_sleeps_total".into(), l.memory_sleeps),
        ("loop_wait_errors_total".into(), l.wait_errors),
    ]);
    m
}

/// Sizes the stack's connection table for `max_connections` sessions: the table holds the
/// sessions, the orphans they leave while closing (at most one each at a time, bounded by
/// FIN-WAIT-2 and orphan timeouts), the half-open and the accept queue, so
/// `--max-connections` sizes all of it and nothing past it grows.
pub(crate) fn size_table(cfg: &mut StackConfig, max_connections: usize) {
    cfg.max_connections = max_connections.saturating_mul(2) + cfg.max_half_open + cfg.backlog;
}
