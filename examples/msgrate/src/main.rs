//! `msgrate`: one-way message rate over the AF_XDP message endpoint (`datapath_msg`), or
//! over kernel UDP sockets speaking the same message header.
//!
//! * `--send --peer ADDR:PORT`: sends messages of `--size` bytes as fast as the endpoint
//!   takes them for `--seconds` (or `--count` messages), flushing every `--batch`; a full
//!   ring or window is waited out (back-pressure), never dropped. Each message carries its
//!   sequence number in its first 8 bytes.
//! * `--recv`: counts messages from the first one on for `--seconds` (or until `--count`),
//!   and the sequence numbers that never came; prints `RESULT msgs=.. rate=.. lost=..`.
//! * `--kernel block|busy-poll|spin`: the same over a kernel UDP socket (the baseline; a
//!   kernel sender makes one `send` per message).
//! * `--queues N`: N pairs at once, pair `i` on queue `queue + i` with ports `port + i` at
//!   both ends, each endpoint on its own thread (one endpoint per queue and thread, as an
//!   HPC layer runs one per rank). On veth the receiver's queue is the sender's, so pair
//!   `i` stays on queue `i` end to end. Each pair reports `RESULT queue=i ...`; the last
//!   `RESULT` line sums them.
//! * `--verify` (with `--reliable`): messages follow the check stream (1 B .. 64 KiB,
//!   sequence number and content that both ends compute) and the receiver verifies each,
//!   in order, by sequence and content hash.
#![forbid(unsafe_code)]

#[path = "../../pingpong/src/common.rs"]
mod common;

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use common::{kernel_frame, kernel_recv, kernel_socket, stats_text, EpArgs, KernelMode};
use datapath::Shutdown;
use datapath_msg::wire::{MsgHdr, MSG_HDR_LEN};
use datapath_msg::{AllocError, Msg, Pattern, SendError};

/// One-way message rate: AF_XDP message endpoint or kernel UDP sockets.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    ep: EpArgs,
    /// Send to this address and port.
    #[arg(long, requires = "peer", conflicts_with = "recv")]
    send: bool,
    /// Receive and count.
    #[arg(long)]
    recv: bool,
    /// Sender: the receiver's address and port.
    #[arg(long)]
    peer: Option<SocketAddrV4>,
    /// Use a kernel UDP socket instead of AF_XDP, receiving as MODE says.
    #[arg(long, value_enum)]
    kernel: Option<KernelMode>,
    /// Message size in bytes (at least 8: the sequence number).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Sender: seconds to send; receiver: seconds to count from the first message.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Stop after this many messages (0: no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Sender: messages per flush (one wakeup of the kernel).
    #[arg(long, default_value_t = 32)]
    batch: u32,
    /// Receiver: seconds to wait for the first message.
    #[arg(long, default_value_t = 20.0)]
    first_timeout: f64,
    /// Pairs of endpoints at once, each on its own queue and thread.
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// Send the check stream (mixed sizes) and verify every message on receipt, in order.
    #[arg(long, requires = "reliable")]
    verify: bool,
    /// Seed of the --verify stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("msgrate: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    if cli.send == cli.recv {
        bail!("say --send (with --peer) or --recv (see --help)");
    }
    if cli.size < 8 {
        bail!("--size must be at least 8 (each message carries its sequence number)");
    }
    if cli.queues == 0 || (cli.queues > 1 && cli.kernel.is_some()) {
        bail!("--queues takes 1 or more AF_XDP pairs (not with --kernel)");
    }
    match (cli.kernel, cli.send) {
        (None, true) => xdp_send_all(&cli),
        (None, false) => xdp_recv_all(&cli),
        (Some(m), true) => kernel_send(&cli, m),
        (Some(m), false) => kernel_recv_loop(&cli, m),
    }
}

/// The endpoint options of pair `i`: queue and local port `i` further on.
fn pair_args(cli: &Cli, i: u32) -> EpArgs {
    let mut ep = cli.ep.clone();
    ep.queue += i;
    ep.local.set_port(ep.local.port() + i as u16);
    ep
}

fn pair_peer(cli: &Cli, i: u32) -> Result<SocketAddrV4> {
    let mut p = cli.peer.context("--peer")?;
    p.set_port(p.port() + i as u16);
    Ok(p)
}

fn limit(cli: &Cli) -> u64 {
    if cli.count == 0 {
        u64::MAX
    } else {
        cli.count
    }
}

/// What one sender did.
struct SendReport {
    sent: u64,
    waits: u64,
    unacked: u32,
    seconds: f64,
    stats: String,
}

/// One sender per queue, each on its own thread.
fn xdp_send_all(cli: &Cli) -> Result<()> {
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel();
    let reports: Vec<Result<SendReport>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..cli.queues)
            .map(|i| {
                let (tx, stop) = (tx.clone(), &stop);
                sc.spawn(move || {
                    let r = xdp_send(cli, i, &tx, stop);
                    if r.is_err() {
                        stop.store(true, Ordering::Relaxed);
                        let _ = tx.send(false);
                    }
                    r
                })
            })
            .collect();
        // "ready" once every pair has its endpoint and peer.
        let all = (0..cli.queues).all(|_| rx.recv().unwrap_or(false));
        if all {
            println!("ready");
        } else {
            stop.store(true, Ordering::Relaxed);
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("sender thread panicked"))))
            .collect()
    });
    let mut total = (0u64, 0u64, 0u32, 0f64);
    for (i, r) in reports.into_iter().enumerate() {
        let r = r.with_context(|| format!("sender on queue {}", cli.ep.queue + i as u32))?;
        let q = cli.ep.queue + i as u32;
        let tag = if cli.queues > 1 { format!(" (queue {q})") } else { String::new() };
        println!(
            "msgrate sender{tag}: {} messages in {:.2} s = {:.0} msg/s ({} back-pressure waits)",
            r.sent,
            r.seconds,
            r.sent as f64 / r.seconds,
            r.waits
        );
        if cli.queues > 1 {
            println!(
                "RESULT queue={q} sent={} rate={:.0} waits={} unacked={}",
                r.sent,
                r.sent as f64 / r.seconds,
                r.waits,
                r.unacked
            );
        }
        print!("{}", r.stats);
        total = (total.0 + r.sent, total.1 + r.waits, total.2 + r.unacked, total.3.max(r.seconds));
    }
    let (sent, waits, unacked, el) = total;
    println!("RESULT sent={sent} rate={:.0} waits={waits} unacked={unacked}", sent as f64 / el);
    Ok(())
}

fn xdp_send(cli: &Cli, pair: u32, ready: &mpsc::Sender<bool>, stop: &AtomicBool) -> Result<SendReport> {
    let args = pair_args(cli, pair);
    let mut ep = args.bind("msgrate sender", false)?;
    let peer = ep.add_peer(pair_peer(cli, pair)?)?;
    let _ = ready.send(true);
    let pat = Pattern::new(cli.seed, ep.max_msg());
    let mut sink: Vec<Msg> = Vec::new();
    let (mut sent, mut waits) = (0u64, 0u64);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(cli.seconds);
    let mut since_flush = 0;
    'outer: while sent < limit(cli) && Instant::now() < end && !stop.load(Ordering::Relaxed) {
        let size = if cli.verify { pat.size(sent) } else { cli.size };
        let mut m = loop {
            match ep.alloc(size) {
                Ok(m) => break m,
                Err(AllocError::PoolEmpty { .. }) => {
                    waits += 1;
                    ep.flush();
                    ep.recv(&mut sink);
                    sink.clear();
                    if Instant::now() >= end {
                        break 'outer;
                    }
                }
                Err(e) => bail!("{e}"),
            }
        };
        if cli.verify {
            pat.fill(sent, &mut m);
        } else {
            m.write_at(0, &sent.to_le_bytes());
        }
        loop {
            match ep.send(peer, m) {
                Ok(()) => break,
                Err(SendError::Full(back)) => {
                    // Back-pressure: hand the ring to the kernel, take acknowledgements.
                    waits += 1;
                    m = back;
                    ep.flush();
                    ep.recv(&mut sink);
                    sink.clear();
                    if Instant::now() >= end {
                        break 'outer;
                    }
                }
                Err(e) => bail!("{e}"),
            }
        }
        sent += 1;
        since_flush += 1;
        if since_flush >= cli.batch {
            since_flush = 0;
            ep.flush();
            ep.recv(&mut sink);
            sink.clear();
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    // Reliable: stay until the receiver has acknowledged everything (bounded).
    let drain = Instant::now();
    while (ep.unacked() > 0 || ep.socket().tx_in_flight() > 0) && drain.elapsed() < Duration::from_secs(5) {
        ep.flush();
        ep.recv_wait(&mut sink, Duration::from_millis(1));
        sink.clear();
    }
    if let Some(e) = ep.poll_event() {
        bail!("{e:?}");
    }
    let tag = if cli.queues > 1 { format!("msgrate sender q{}", args.queue) } else { "msgrate sender".into() };
    Ok(SendReport { sent, waits, unacked: ep.unacked(), seconds, stats: stats_text(&tag, &ep) })
}

/// Counts sequence numbers: received, and holes below the highest seen.
#[derive(Default)]
struct Seqs {
    got: u64,
    next: u64,
    reordered: u64,
    lost: u64,
}

impl Seqs {
    fn saw(&mut self, seq: u64) {
        self.got += 1;
        if seq >= self.next {
            self.lost += seq - self.next;
            self.next = seq + 1;
        } else {
            // Came after a later one: it was counted as lost, it is not.
            self.reordered += 1;
            self.lost = self.lost.saturating_sub(1);
        }
    }
}

fn report(what: &str, size: usize, s: &Seqs, el: f64) {
    println!(
        "msgrate receiver ({what}): {} messages of {size} B in {el:.2} s = {:.0} msg/s, {} missing, {} out of order",
        s.got,
        s.got as f64 / el,
        s.lost,
        s.reordered
    );
    println!(
        "RESULT msgs={} rate={:.0} lost={} reordered={} seconds={el:.3}",
        s.got,
        s.got as f64 / el,
        s.lost,
        s.reordered
    );
    println!("done");
}

fn seq_of(m: &Msg) -> u64 {
    let mut b = [0u8; 8];
    let mut p = 0;
    for c in m.chunks() {
        for &x in c.iter().take(8 - p) {
            b[p] = x;
            p += 1;
        }
    }
    u64::from_le_bytes(b)
}

/// What one receiver saw.
struct RecvReport {
    seqs: Seqs,
    verified: u64,
    mismatches: u64,
    /// Milliseconds from the common start to the first and the last message.
    first_ms: f64,
    last_ms: f64,
    stats: String,
}

/// One receiver per queue, each on its own thread.
fn xdp_recv_all(cli: &Cli) -> Result<()> {
    let shutdown = Shutdown::install()?;
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let (tx, rx) = mpsc::channel();
    let reports: Vec<Result<RecvReport>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..cli.queues)
            .map(|i| {
                let (tx, stop, shutdown) = (tx.clone(), &stop, &shutdown);
                sc.spawn(move || {
                    let r = xdp_recv(cli, i, t0, &tx, stop, shutdown);
                    if r.is_err() {
                        stop.store(true, Ordering::Relaxed);
                        let _ = tx.send(false);
                    }
                    r
                })
            })
            .collect();
        if (0..cli.queues).all(|_| rx.recv().unwrap_or(false)) {
            println!("ready");
        } else {
            stop.store(true, Ordering::Relaxed);
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("receiver thread panicked"))))
            .collect()
    });
    let mut total = Seqs::default();
    let (mut verified, mut mismatches, mut first, mut last) = (0u64, 0u64, f64::MAX, 0f64);
    for (i, r) in reports.into_iter().enumerate() {
        let q = cli.ep.queue + i as u32;
        let r = r.with_context(|| format!("receiver on queue {q}"))?;
        let el = ((r.last_ms - r.first_ms) / 1000.0).max(1e-9);
        if cli.queues > 1 {
            println!(
                "RESULT queue={q} msgs={} rate={:.0} lost={} reordered={} verified={} mismatches={} first_ms={:.1} last_ms={:.1}",
                r.seqs.got,
                r.seqs.got as f64 / el,
                r.seqs.lost,
                r.seqs.reordered,
                r.verified,
                r.mismatches,
                r.first_ms,
                r.last_ms
            );
        }
        print!("{}", r.stats);
        total.got += r.seqs.got;
        total.lost += r.seqs.lost;
        total.reordered += r.seqs.reordered;
        verified += r.verified;
        mismatches += r.mismatches;
        first = first.min(r.first_ms);
        last = last.max(r.last_ms);
    }
    if cli.verify {
        println!(
            "msgrate receiver: verified {verified} messages by sequence and content hash, {mismatches} mismatches"
        );
    }
    report("AF_XDP", cli.size, &total, ((last - first) / 1000.0).max(1e-9));
    Ok(())
}

fn xdp_recv(
    cli: &Cli,
    pair: u32,
    t0: Instant,
    ready: &mpsc::Sender<bool>,
    stop: &AtomicBool,
    shutdown: &Shutdown,
) -> Result<RecvReport> {
    let args = pair_args(cli, pair);
    let mut ep = args.bind("msgrate receiver", true)?;
    let _ = ready.send(true);
    let pat = Pattern::new(cli.seed, ep.max_msg());
    let mut got = Vec::new();
    let wait_first = Instant::now() + Duration::from_secs_f64(cli.first_timeout);
    while ep.recv_wait(&mut got, Duration::from_millis(100)) == 0 {
        if Instant::now() >= wait_first || stop.load(Ordering::Relaxed) || shutdown.requested() {
            bail!("no message within {} s", cli.first_timeout);
        }
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(cli.seconds);
    let mut s = Seqs::default();
    let (mut verified, mut mismatches) = (0u64, 0u64);
    let mut last = start;
    loop {
        for m in got.drain(..) {
            if cli.verify {
                // Reliable delivery is in order: message k is the k-th to arrive.
                match pat.check(s.got, &m) {
                    Ok(()) => verified += 1,
                    Err(e) => {
                        mismatches += 1;
                        if mismatches <= 5 {
                            eprintln!("msgrate receiver (queue {}): {e}", args.queue);
                        }
                    }
                }
                s.saw(s.got);
            } else {
                s.saw(seq_of(&m));
            }
        }
        let now = Instant::now();
        if s.got >= limit(cli)
            || now >= end
            || now.duration_since(last) > Duration::from_secs(2)
            || shutdown.requested()
            || stop.load(Ordering::Relaxed)
        {
            break;
        }
        if ep.recv_wait(&mut got, Duration::from_millis(100)) > 0 {
            last = Instant::now();
        }
    }
    // Let the last acknowledgements out before the endpoint goes.
    for _ in 0..10 {
        ep.flush();
        ep.recv_wait(&mut got, Duration::from_millis(1));
        got.clear();
    }
    let ms = |t: Instant| t.duration_since(t0).as_secs_f64() * 1000.0;
    let tag = if cli.queues > 1 { format!("msgrate receiver q{}", args.queue) } else { "msgrate receiver".into() };
    Ok(RecvReport {
        seqs: s,
        verified,
        mismatches,
        first_ms: ms(start),
        last_ms: ms(last),
        stats: stats_text(&tag, &ep),
    })
}

fn kernel_send(cli: &Cli, mode: KernelMode) -> Result<()> {
    if cli.size + MSG_HDR_LEN > 1472 {
        bail!("a kernel sender sends one-datagram messages: at most {} B at MTU 1500", 1472 - MSG_HDR_LEN);
    }
    let sock = kernel_socket(cli.ep.local, mode)?;
    sock.connect(cli.peer.context("--peer")?)?;
    sock.set_nonblocking(false)?;
    let mut out = vec![0u8; MSG_HDR_LEN + cli.size];
    println!("ready");
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(cli.seconds);
    let (mut sent, mut errs) = (0u64, 0u64);
    while sent < limit(cli) && Instant::now() < end {
        kernel_frame(&mut out, sent as u32, cli.size);
        out[MSG_HDR_LEN..MSG_HDR_LEN + 8].copy_from_slice(&sent.to_le_bytes());
        match sock.send(&out) {
            Ok(_) => sent += 1,
            Err(_) => errs += 1, // ENOBUFS and the like: counted, retried with the same number
        }
    }
    let el = start.elapsed().as_secs_f64();
    println!(
        "msgrate sender (kernel {mode:?}): {sent} messages in {el:.2} s = {:.0} msg/s, {errs} send errors",
        sent as f64 / el
    );
    println!("RESULT sent={sent} rate={:.0} waits={errs}", sent as f64 / el);
    Ok(())
}

fn kernel_recv_loop(cli: &Cli, mode: KernelMode) -> Result<()> {
    let sock = kernel_socket(cli.ep.local, mode)?;
    let mut buf = vec![0u8; 65_536];
    println!("ready");
    let mut s = Seqs::default();
    let first = kernel_recv(&sock, mode, &mut buf, Duration::from_secs_f64(cli.first_timeout))?;
    let Some((n, _)) = first else { bail!("no message within {} s", cli.first_timeout) };
    let take = |b: &[u8], s: &mut Seqs| {
        // One-datagram messages: the header, then the sequence number.
        if let Some(h) = MsgHdr::parse(b) {
            if h.frags == 1 && b.len() >= MSG_HDR_LEN + 8 {
                let mut q = [0u8; 8];
                q.copy_from_slice(&b[MSG_HDR_LEN..MSG_HDR_LEN + 8]);
                s.saw(u64::from_le_bytes(q));
            }
        }
    };
    take(&buf[..n], &mut s);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(cli.seconds);
    let mut last = start;
    while s.got < limit(cli) && Instant::now() < end {
        match kernel_recv(&sock, mode, &mut buf, Duration::from_secs(2))? {
            Some((n, _)) => {
                take(&buf[..n], &mut s);
                last = Instant::now();
            }
            None => break,
        }
    }
    report(&format!("kernel {mode:?}"), cli.size, &s, last.duration_since(start).as_secs_f64().max(1e-9));
    Ok(())
}
