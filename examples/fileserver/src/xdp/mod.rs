//! The AF_XDP backend: the steering program sends the server's TCP port to the AF_XDP
//! socket of the rx queue each packet arrived on, the user-space stack runs TCP over it,
//! and file blocks read by io_uring `O_DIRECT` into the pool leave as TCP payload by
//! reference: header frame + block range per segment (multi-buffer). Nothing copies
//! payload unless multi-buffer is missing, and then `payload_bytes_copied` says how much.
//!
//! One worker thread per rx queue (`--queues`), pinned to a core, runs everything for the
//! flows RSS puts on its queue, run-to-completion: RX batch -> stack -> HTTP -> block cache
//! (io_uring) -> stack -> TX batch -> completions. The main thread only sets up, waits and
//! tears down; the control port has a thread of its own ([`control`]).
//!
//! ```text
//!            NIC rx queue 0        rx queue 1        ...   (RSS)
//!                 │                    │
//!   XDP program ──┼─ XSKMAP[0] ────────┼─ XSKMAP[1]          rx_queue_index picks the socket
//!                 ▼                    ▼
//!   worker q0: socket, pool, io_uring, cache, Stack, Core   worker q1: its own of each ...
//!        └──── publish counters ─────────┴──► control thread ──► /metrics (summed + queue="N")
//!   main: attach, spawn, register sockets, steer, drop privileges, go; wait; stop, join, detach
//! ```
//!
//! # Why one pool (UMEM) per worker, not one shared UMEM
//!
//! `XDP_SHARED_UMEM` lets every queue's socket use one UMEM, but each (netdev, queue) still
//! needs its own fill and completion ring, and then frames leave one queue's completion
//! ring and must reach whichever worker refills next: the pool's free lists and every
//! frame's reference count become shared between cores. [`umem::Pool`] is single-threaded
//! by design (`Rc`/`Cell`: a reference count change is a plain add); a shared pool would
//! need atomic counts (a hot file's cached block is referenced by every worker that sends
//! it, so its count's cache line would move between cores on every segment) and a
//! concurrent free list on every allocation and release. What one pool per worker costs
//! instead is memory and setup time, both paid once: each worker maps, locks and
//! registers `--frames` + `--blocks` of its own (the startup block prints the size and the
//! time per worker), and a hot file is cached (and read from disk) once per worker.
//! Firedancer keeps one UMEM per tile for the same reasons.
//!
//! Measured here (2 cores shared with other work, so ranges; Linux 6.18, veth):
//!
//! * a count change pair (lease + release) costs 1.4-1.7 ns on a `Cell`, 23-47 ns on an
//!   uncontended atomic and 51-86 ns per thread when two threads change the same count
//!   (`cargo run --release -p fileserver --example refcount_cost`). At the ~480k frames/s
//!   copy-mode ceiling of one core that is 1-2% of the core uncontended and 2-4% for a
//!   hot block, before the shared free lists; on a zero-copy NIC at several million
//!   frames/s, several times that.
//! * setting up one worker's pool of 16384 frames + 1024 blocks of 256 KiB (320 MiB on
//!   2 MiB pages) took 88 ms on a quiet machine (mmap, fault-in and mlock 54 ms, UMEM
//!   registration and bind 29 ms, io_uring registration 5 ms) and up to 1.6 s per worker
//!   with four set up at once on a loaded machine. Memory is the pool times the workers:
//!   the default pool is 1600 MiB (6144 blocks, so that the cache holds a 1 GiB file), and
//!   `--queues 4` with the defaults holds 6400 MiB of hugepages, so size
//!   `--frames`/`--blocks`/`--cache-blocks` per worker for the queue count.

mod control;
mod core;
mod endpoints;
mod idle;
mod link;
mod peer;
mod publish;
mod rx;
mod sink;
#[cfg(test)]
mod tests;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use datapath::{AttachPolicy, Interface, ProgramCounters, Proto, SteerProgram, TxChecksumOffload};

use stack::tcp::CcAlgorithm;

use self::control::{Control, ControlStats};
pub use self::core::{Core, Turn, Work};
use self::endpoints::{Endpoints, WorkerView};
use self::publish::Slot;
pub(crate) use self::worker::size_table;
use self::worker::{Spec, Worker};
use crate::access_log::LogStats;
use crate::addrs::ServeAddrs;
use crate::metrics::Metrics;
use crate::options::{Limits, PoolOpts, Queues};
use crate::pcap::{Capture, Capturer, PcapOpts};
use crate::root::Root;

/// Settings of the AF_XDP backend.
#[derive(Debug, Clone)]
pub struct XdpOpts {
    pub iface: String,
    /// The IPv4 and/or IPv6 address served, with their prefix lengths.
    pub addrs: ServeAddrs,
    pub port: u16,
    /// The first rx queue to bind.
    pub queue: u32,
    /// How many rx queues to bind, one worker each.
    pub queues: Queues,
    /// CPUs to pin the workers to, in order (round-robin); default: the CPUs the process
    /// may run on.
    pub cpus: Option<Vec<usize>>,
    /// Packet frames in each worker's pool (RX, TX headers, control packets).
    pub frames: u32,
    /// Descriptors of each AF_XDP socket's RX ring and of its fill ring (`--rx-ring`).
    pub rx_ring: u32,
    /// Each worker's pool of blocks and its cache.
    pub pool: PoolOpts,
    pub force_copy: bool,
    /// Congestion control of the served connections (`--congestion`).
    pub congestion: CcAlgorithm,
    /// Ask the AF_XDP socket for TX checksum offload (`--no-tx-offload` clears it).
    pub tx_offload: bool,
    pub skb: bool,
    pub busy: bool,
    /// The control port (kernel TCP).
    pub metrics_addr: Option<SocketAddr>,
    /// The packet capture (`--pcap`; `/pcap` on the control port uses its snap length).
    pub pcap: PcapOpts,
    /// What to give up once set up (user, seccomp, dumpable).
    pub confine: crate::privdrop::Confine,
    pub limits: Limits,
    /// The access log's sender, if `--access-log` is on.
    pub access_log: Option<crate::access_log::LogSender>,
    /// Where to write the pid once set up (`--pid-file`).
    pub pid_file: Option<PathBuf>,
}

/// How long a worker may take to set up (map and lock its pool, bind, register).
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

pub fn run(
    opts: XdpOpts,
    root: Root,
    root_path: PathBuf,
    stop: &Arc<AtomicBool>,
    dump: &Arc<AtomicBool>,
) -> Result<()> {
    datapath::caps::require_datapath()?;
    opts.addrs.check_own().map_err(anyhow::Error::msg)?;
    let iface = Interface::by_name(&opts.iface)?;
    let mac = iface.mac()?;
    let queues = opts.queues.resolve(opts.queue, iface.rx_queues).map_err(anyhow::Error::msg)?;
    let cpus = assign_cpus(opts.cpus.as_deref(), queues.len())?;
    let secret = secret()?;
    // no_new_privs and the emptied bounding set are per thread, inherited by every thread
    // spawned from here on.
    crate::privdrop::before_threads()?;
    // Opened before privileges are dropped; a control port can start live captures.
    let capturer = match opts.pcap.file.is_some() || opts.metrics_addr.is_some() {
        true => Some(Capturer::start(&opts.pcap, &iface.name)?),
        false => None,
    };
    let mut program =
        SteerProgram::attach(&iface, if opts.skb { AttachPolicy::Skb } else { AttachPolicy::PreferDriver })?;

    let mut workers = Vec::new();
    for (&queue, &cpu) in queues.iter().zip(&cpus) {
        let spec = Spec {
            queue,
            cpu: Some(cpu),
            iface: iface.clone(),
            mac,
            opts: opts.clone(),
            secret,
            root: root.try_clone()?,
            tap: capturer.as_ref().map(Capturer::tap),
        };
        match Worker::spawn(spec, stop.clone()) {
            Ok(w) => workers.push(w),
            Err(e) => return Err(abandon(workers, e)),
        }
    }
    let mut ready = Vec::new();
    for w in &workers {
        match w.wait_ready(SETUP_TIMEOUT) {
            Ok(r) => ready.push(r),
            Err(e) => return Err(abandon(workers, e)),
        }
    }
    for (w, r) in workers.iter().zip(&ready) {
        if let Err(e) = program.register(w.queue, &r.fd) {
            return Err(abandon(workers, e.into()));
        }
    }
    for addr in opts.addrs.all() {
        if let Err(e) = program.steer(Proto::Tcp, addr, opts.port) {
            return Err(abandon(workers, e.into()));
        }
    }
    let slots: Vec<(u32, Arc<Slot>)> = workers.iter().map(|w| (w.queue, w.slot.clone())).collect();
    let prog_counters = Arc::new(Mutex::new(ProgramCounters::default()));
    let log = opts.access_log.as_ref().map(|l| l.stats());
    let control = match opts.metrics_addr {
        Some(addr) => {
            let pcap = capturer.as_ref().map(|c| c.shared.clone());
            let endpoints = Endpoints {
                workers: workers
                    .iter()
                    .map(|w| WorkerView { queue: w.queue, slot: w.slot.clone(), wake: w.waker() })
                    .collect(),
                prog: prog_counters.clone(),
                log: log.clone(),
                pcap: pcap.clone(),
            };
            let render = Box::new(move |path: &str, cs: &ControlStats| endpoints.answer(path, cs));
            match Control::spawn(addr, control::TIMEOUT, render, pcap) {
                Ok(c) => Some(c),
                Err(e) => return Err(abandon(workers, e)),
            }
        }
        None => None,
    };

    println!("fileserver on {} serving {}", opts.addrs.urls(opts.port), root_path.display());
    println!("  backend         AF_XDP + user-space TCP");
    println!("  interface       {} (MTU {}, {})", iface.name, iface.mtu, describe_queues(&queues, iface.rx_queues));
    println!("  XDP attach      {}", program.mode());
    println!("  AF_XDP bind     {}", ready[0].mode);
    let multi = ready.iter().all(|r| r.multi_buffer) && !opts.force_copy;
    println!(
        "  multi-buffer    {}",
        if multi { "yes (payload sent by reference)" } else { "no (payload copied behind headers, counted)" }
    );
    println!(
        "  checksums       {}",
        match ready[0].tx_checksum {
            TxChecksumOffload::Kernel =>
                "offloaded (AF_XDP TX metadata; copy mode: the kernel marks CHECKSUM_PARTIAL)".into(),
            TxChecksumOffload::Device => "offloaded (AF_XDP TX metadata; the NIC finishes them)".into(),
            TxChecksumOffload::Off(why) => format!("software ({why})"),
        }
    );
    println!("  congestion      {}", describe_cc(opts.congestion));
    println!("  hugepages       {}", ready[0].backing);
    match (&opts.pcap.file, &control) {
        (Some(f), _) => println!(
            "  packet capture  {} (pcapng, snaplen {}, rotated at {} bytes, {} files kept)",
            f.display(),
            opts.pcap.snaplen,
            opts.pcap.max_bytes,
            opts.pcap.files
        ),
        (None, Some(_)) => println!("  packet capture  off (GET /pcap?seconds=N on the control port captures N s)"),
        (None, None) => println!("  packet capture  off"),
    }
    println!(
        "  pool            {} frames + {} blocks x {} KiB per worker, {}",
        opts.frames,
        opts.pool.blocks,
        opts.pool.block_kib,
        if ready.iter().all(|r| r.locked) { "locked" } else { "not locked" }
    );
    println!("  file reads      {} per worker", opts.pool.describe_reads());
    let total: u64 = ready.iter().map(|r| r.pool_bytes).sum();
    println!("  workers         {} ({} MiB of pools in all)", workers.len(), total >> 20);
    for (w, r) in workers.iter().zip(&ready) {
        println!(
            "  worker q{:<2}      CPU {}, {} bind, pool {} MiB set up in {:.1} ms (pool {:.1} ms, AF_XDP {:.1} ms, io_uring {:.1} ms)",
            w.queue,
            w.cpu.map_or("any".into(), |c| c.to_string()),
            r.mode,
            r.pool_bytes >> 20,
            ms(r.pool_time + r.socket_time + r.uring_time),
            ms(r.pool_time),
            ms(r.socket_time),
            ms(r.uring_time)
        );
    }
    if let Some(c) = &control {
        println!(
            "  control port    http://{}/metrics, /connections, /health (kernel stack, its own thread)",
            c.local_addr()
        );
    }
    let pid_file = match opts.pid_file.as_deref().map(crate::pidfile::PidFile::create).transpose() {
        Ok(p) => p,
        Err(e) => {
            control.map(Control::stop);
            return Err(abandon(workers, e));
        }
    };
    if let Some(p) = &pid_file {
        println!("  pid file        {} ({})", p.path().display(), std::process::id());
    }
    // Every thread exists now: this is the one place privileges are dropped and the
    // seccomp filter goes on (on every thread at once).
    match crate::privdrop::confine(&opts.confine) {
        Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
        Err(e) => {
            control.map(Control::stop);
            return Err(abandon(workers, e));
        }
    }
    println!("ready");
    for w in &mut workers {
        w.go();
    }
    crate::privdrop::forbidden_syscall_hook();

    let pcap = capturer.as_ref().map(|c| c.shared.clone());
    let failed = wait(&workers, &slots, &prog_counters, (log.as_deref(), pcap.as_deref()), &program, stop, dump);
    stop.store(true, Ordering::Relaxed);
    for w in &workers {
        w.wake();
    }
    println!("fileserver: stopping");
    let mut finals = Vec::new();
    let mut errors = Vec::new();
    let spawned = workers.len();
    for w in workers {
        let q = w.queue;
        match w.join() {
            Ok(m) => finals.push((q, m)),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let cstats = control.map(Control::stop);
    // The workers' taps handed their last chunks over when they ended.
    let captured = capturer.map(Capturer::stop).is_some();
    if let Ok(c) = program.counters() {
        *prog_counters.lock().unwrap_or_else(|e| e.into_inner()) = c;
    }
    drop(program);
    print!("{}", render(&finals, &prog_counters, cstats.as_ref(), log.as_deref(), pcap.as_deref()));
    drop(pid_file);
    let left = threads_now().unwrap_or(0);
    println!(
        "  threads         {spawned} worker(s){}{} joined, {left} left; XDP detached",
        if cstats.is_some() { " and the control thread" } else { "" },
        if captured { " and the capture writer" } else { "" }
    );
    if failed || !errors.is_empty() {
        bail!("a worker stopped: {}", errors.join("; "));
    }
    Ok(())
}

/// Threads of the process now (`Threads:` of /proc/self/status: one file read, which the
/// seccomp allowlist permits, where listing /proc/self/task would need getdents64).
fn threads_now() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok())
}

/// The controller, for the startup block.
fn describe_cc(cc: CcAlgorithm) -> String {
    let what = match cc {
        CcAlgorithm::Cubic => "RFC 9438 with HyStart++, PRR in recovery",
        CcAlgorithm::NewReno => "NewReno, RFC 5681 / 6582, with HyStart++, PRR in recovery",
        CcAlgorithm::Bbr => "BBR v1: paced at its model of the bottleneck, random loss does not slow it",
    };
    format!("{} ({what})", cc.name())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Stops workers that were set up but never served, after `e`; returns `e`.
fn abandon(workers: Vec<Worker>, e: anyhow::Error) -> anyhow::Error {
    for w in workers {
        let _ = w.join();
    }
    e
}

/// The main thread's wait: until `stop`, or a worker ends on its own (then `true`).
/// Meanwhile it refreshes the program's counters for the control port and dumps the
/// counters on SIGUSR1 (with the access log's and the packet capture's, if any).
fn wait(
    workers: &[Worker],
    slots: &[(u32, Arc<Slot>)],
    prog: &Mutex<ProgramCounters>,
    (log, pcap): (Option<&LogStats>, Option<&Capture>),
    program: &SteerProgram,
    stop: &AtomicBool,
    dump: &AtomicBool,
) -> bool {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if let Ok(c) = program.counters() {
            *prog.lock().unwrap_or_else(|e| e.into_inner()) = c;
        }
        if dump.swap(false, Ordering::Relaxed) {
            print!("{}", render_now(slots, prog, None, log, pcap));
        }
        if let Some(w) = workers.iter().find(|w| w.is_finished()) {
            if stop.load(Ordering::Relaxed) {
                break; // it saw the stop first
            }
            log::error!("the worker of queue {} stopped; stopping the server", w.queue);
            return true;
        }
    }
    false
}

/// The counters now: every worker's latest snapshot.
fn render_now(
    slots: &[(u32, Arc<Slot>)],
    prog: &Mutex<ProgramCounters>,
    cs: Option<&ControlStats>,
    log: Option<&LogStats>,
    pcap: Option<&Capture>,
) -> String {
    let per: Vec<(u32, Metrics)> = slots.iter().map(|(q, s)| (*q, s.read().unwrap_or_default())).collect();
    render(&per, prog, cs, log, pcap)
}

/// The counters as text (SIGUSR1 and exit): the sum over workers with the program's, the
/// control port's, the access log's and the packet capture's, then each worker's with a
/// `queue` label.
fn render(
    per_queue: &[(u32, Metrics)],
    prog: &Mutex<ProgramCounters>,
    cs: Option<&ControlStats>,
    log: Option<&LogStats>,
    pcap: Option<&Capture>,
) -> String {
    let mut out = summed(per_queue, prog, cs, log, pcap).render("xdp");
    for (q, m) in per_queue {
        m.write_series(&mut out, Some(&format!("queue=\"{q}\"")));
    }
    out
}

/// The sum over workers, with the program's, the control port's, the access log's and the
/// packet capture's counters.
fn summed(
    per_queue: &[(u32, Metrics)],
    prog: &Mutex<ProgramCounters>,
    cs: Option<&ControlStats>,
    log: Option<&LogStats>,
    pcap: Option<&Capture>,
) -> Metrics {
    let mut sum = Metrics::default();
    for (_, m) in per_queue {
        sum.add(m);
    }
    sum.extra.push(("workers".into(), per_queue.len() as u64));
    let p = *prog.lock().unwrap_or_else(|e| e.into_inner());
    sum.extra.extend([
        ("xdp_seen_total".into(), p.seen),
        ("xdp_redirected_total".into(), p.redirected),
        ("xdp_passed_total".into(), p.passed),
        ("xdp_malformed_total".into(), p.malformed),
        ("xdp_no_socket_total".into(), p.no_socket),
        ("xdp_fragments_total".into(), p.fragments),
        ("xdp_icmp_errors_total".into(), p.icmp_errors),
        ("xdp_vlan_total".into(), p.vlan),
    ]);
    if let Some(cs) = cs {
        sum.extra.extend(cs.series());
    }
    if let Some(l) = log {
        sum.extra.extend(l.series());
    }
    if let Some(p) = pcap {
        sum.extra.extend(p.series());
    }
    sum
}

/// The CPU of each of `n` workers: `--cpus` in order, else the CPUs this process may run
/// on (its affinity mask, as `taskset` set it), round-robin.
fn assign_cpus(cpus: Option<&[usize]>, n: usize) -> Result<Vec<usize>> {
    let allowed: Vec<usize> = match cpus {
        Some(list) if !list.is_empty() => list.to_vec(),
        Some(_) => bail!("--cpus is empty"),
        None => {
            let set = rustix::thread::sched_getaffinity(None).context("sched_getaffinity")?;
            (0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect()
        }
    };
    if allowed.is_empty() {
        bail!("no CPU to run the workers on");
    }
    Ok((0..n).map(|i| allowed[i % allowed.len()]).collect())
}

/// "queue 0", or "queues 0-3 of 8".
fn describe_queues(queues: &[u32], available: u32) -> String {
    match queues {
        [q] if available == 1 => format!("queue {q}"),
        [q] => format!("queue {q} of {available}"),
        [a, .., b] => format!("queues {a}-{b} of {available}"),
        [] => "no queue".into(),
    }
}

/// The SYN cookie and initial sequence number secret, shared by every worker's stack (a
/// flow whose packets move between queues, after `ethtool -X` changes RSS, still finds
/// its cookies valid).
fn secret() -> Result<u64> {
    let mut b = [0u8; 8];
    let n = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).context("getrandom")?;
    if n != b.len() {
        bail!("getrandom returned {n} of 8 bytes");
    }
    Ok(u64::from_ne_bytes(b))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn workers_take_the_cpus_given_round_robin() {
        assert_eq!(assign_cpus(Some(&[0, 1]), 4).unwrap(), [0, 1, 0, 1]);
        assert_eq!(assign_cpus(Some(&[3]), 2).unwrap(), [3, 3]);
        assert!(assign_cpus(Some(&[]), 1).is_err());
        let own = assign_cpus(None, 1).unwrap();
        assert!(rustix::thread::sched_getaffinity(None).unwrap().is_set(own[0]));
    }

    #[test]
    fn the_thread_count_is_read() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        // This test's thread and the one it spawned, whatever other tests run.
        assert!(threads_now().unwrap() >= 2);
        drop(tx);
        let _ = t.join();
    }

    #[test]
    fn queues_are_described_for_the_startup_block() {
        assert_eq!(describe_queues(&[0], 1), "queue 0");
        assert_eq!(describe_queues(&[2], 4), "queue 2 of 4");
        assert_eq!(describe_queues(&[0, 1, 2, 3], 4), "queues 0-3 of 4");
    }

    #[test]
    fn the_sum_comes_first_then_each_queue() {
        let prog = Mutex::new(ProgramCounters { no_socket: 7, ..ProgramCounters::default() });
        let m = |n| {
            let mut m = Metrics::default();
            m.requests = n;
            m
        };
        let cs = ControlStats { answered: 1, ..Default::default() };
        let text = render(&[(0, m(2)), (3, m(5))], &prog, Some(&cs), None, None);
        let sum = text.find("fileserver_requests_total 7\n").expect("the sum");
        let q0 = text.find("fileserver_requests_total{queue=\"0\"} 2\n").expect("queue 0");
        let q3 = text.find("fileserver_requests_total{queue=\"3\"} 5\n").expect("queue 3");
        assert!(sum < q0 && q0 < q3, "{text}");
        for want in
            ["fileserver_workers 2\n", "fileserver_xdp_no_socket_total 7\n", "fileserver_control_answered_total 1\n"]
        {
            assert!(text.contains(want), "{want:?} missing:\n{text}");
        }
    }
}
