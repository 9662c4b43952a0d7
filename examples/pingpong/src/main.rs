//! `pingpong`: message round-trip latency over the AF_XDP message endpoint
//! (`datapath_msg`), or over kernel UDP sockets speaking the same message header.
//!
//! * client (`--peer`): sends one message, waits for it to come back, repeats; prints a
//!   latency histogram (p50, p99, p99.9, max) and a `RESULT` line. With `--check N` it
//!   instead sends N messages of mixed sizes (1 B .. 64 KiB), several in flight, and
//!   verifies every reply (sequence and content hash).
//! * server (`--server`): sends every message back to its sender, in the frames it arrived
//!   in (no copy); `--verify` also checks each against the `--check` stream.
//! * `--kernel block|busy-poll|spin`: the same over a kernel UDP socket (the baseline):
//!   blocking receive, with `SO_BUSY_POLL`, or a non-blocking socket in a spin loop. A
//!   kernel client or server interoperates with an AF_XDP one.
#![forbid(unsafe_code)]

mod common;

use std::collections::VecDeque;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use common::{kernel_frame, kernel_recv, kernel_socket, print_stats, EpArgs, KernelMode};
use datapath::Shutdown;
use datapath_msg::wire::MSG_HDR_LEN;
use datapath_msg::{Endpoint, Msg, MsgBuf, Pattern, PeerId, SendError};

/// Message round-trip latency: AF_XDP message endpoint or kernel UDP sockets.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    ep: EpArgs,
    /// Client: the server's address and port.
    #[arg(long, conflicts_with = "server")]
    peer: Option<SocketAddrV4>,
    /// Server: send every message back to its sender.
    #[arg(long)]
    server: bool,
    /// Use a kernel UDP socket instead of AF_XDP, receiving as MODE says.
    #[arg(long, value_enum)]
    kernel: Option<KernelMode>,
    /// Client: message size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Client: measured round trips.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Client: round trips before measuring.
    #[arg(long, default_value_t = 1_000)]
    warmup: u64,
    /// Client: stop measuring after this many seconds even if --count is not reached.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Client: instead of timing, send N mixed-size messages and verify every reply.
    #[arg(long)]
    check: Option<u64>,
    /// Client with --check: messages in flight.
    #[arg(long, default_value_t = 8)]
    depth: u64,
    /// Server: verify incoming messages against the --check stream (per sender, in order).
    #[arg(long)]
    verify: bool,
    /// Seed of the --check stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Server: exit after this many seconds (0: at SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0)]
    duration: u64,
    /// Client: seconds to wait for a reply before counting it lost (--check: failing).
    #[arg(long, default_value_t = 2.0)]
    reply_timeout: f64,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("pingpong: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    if cli.peer.is_none() && !cli.server {
        bail!("say --server, or --peer ADDR:PORT for a client (see --help)");
    }
    match (cli.kernel, cli.server) {
        (Some(mode), true) => kernel_server(&cli, mode),
        (Some(mode), false) => kernel_client(&cli, mode),
        (None, true) => xdp_server(&cli),
        (None, false) => xdp_client(&cli),
    }
}

/// Prints the latency report and the machine-readable line.
fn report(what: &str, size: usize, mut rtts: Vec<u64>, lost: u64) {
    rtts.sort_unstable();
    let p = |q| percentile(&rtts, q) as f64 / 1000.0;
    println!("pingpong {what}: {} round trips of {size} B, {lost} lost", rtts.len());
    println!("  p50 {:.2} us   p99 {:.2} us   p99.9 {:.2} us   max {:.2} us", p(50.0), p(99.0), p(99.9), p(100.0));
    println!(
        "RESULT size={size} count={} p50_ns={} p99_ns={} p999_ns={} max_ns={} lost={lost}",
        rtts.len(),
        percentile(&rtts, 50.0),
        percentile(&rtts, 99.0),
        percentile(&rtts, 99.9),
        percentile(&rtts, 100.0)
    );
}

fn xdp_client(cli: &Cli) -> Result<()> {
    let mut ep = cli.ep.bind("pingpong client", false)?;
    let peer = ep.add_peer(cli.peer.context("--peer")?)?;
    println!("ready");
    if let Some(n) = cli.check {
        return xdp_check(cli, &mut ep, peer, n);
    }
    let size = cli.size;
    let timeout = Duration::from_secs_f64(cli.reply_timeout);
    let mut rtts = Vec::with_capacity(cli.count as usize);
    let mut got: Vec<Msg> = Vec::new();
    let mut lost = 0;
    let end = Instant::now() + Duration::from_secs_f64(cli.seconds);
    for i in 0..cli.warmup + cli.count {
        if Instant::now() > end {
            break;
        }
        let mut m = ep.alloc(size)?;
        m.write_at(0, &i.to_le_bytes()[..size.min(8)]);
        let t0 = Instant::now();
        send_blocking(&mut ep, peer, m, timeout)?;
        ep.flush();
        // Wait for this message's reply; late replies to earlier (lost) ones are skipped.
        let mut done = false;
        while !done {
            got.clear();
            if ep.recv_wait(&mut got, timeout.saturating_sub(t0.elapsed())) == 0 {
                lost += 1;
                break;
            }
            for m in got.drain(..) {
                if m.len() == size && first_u64(&m, size) == i & mask(size) {
                    done = true;
                }
            }
        }
        if done && i >= cli.warmup {
            rtts.push(t0.elapsed().as_nanos() as u64);
        }
    }
    report("AF_XDP", size, rtts, lost);
    print_stats("pingpong client", &ep);
    Ok(())
}

fn mask(size: usize) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

fn first_u64(m: &Msg, size: usize) -> u64 {
    let mut b = [0u8; 8];
    let mut p = 0;
    for c in m.chunks() {
        for &x in c.iter().take(8 - p) {
            b[p] = x;
            p += 1;
        }
        if p == 8 {
            break;
        }
    }
    u64::from_le_bytes(b) & mask(size)
}

/// Sends, waiting out back-pressure (a full ring or window) by driving the endpoint.
fn send_blocking(ep: &mut Endpoint, peer: PeerId, mut m: MsgBuf, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut parked = Vec::new();
    loop {
        match ep.send(peer, m) {
            Ok(()) => return Ok(()),
            Err(SendError::Full(back)) => {
                if start.elapsed() > timeout {
                    bail!("TX ring or window still full after {timeout:?}; is the peer acknowledging?");
                }
                m = back;
                ep.flush();
                // Drive acknowledgements; messages that arrive meanwhile are not ours to drop.
                ep.recv(&mut parked);
                parked.clear();
            }
            Err(e) => bail!("{e}"),
        }
    }
}

/// `--check N`: N pattern messages, `depth` in flight, every reply verified in order.
fn xdp_check(cli: &Cli, ep: &mut Endpoint, peer: PeerId, n: u64) -> Result<()> {
    let pat = Pattern::new(cli.seed, ep.max_msg());
    let timeout = Duration::from_secs_f64(cli.reply_timeout);
    let start = Instant::now();
    let (mut sent, mut verified, mut bytes) = (0u64, 0u64, 0u64);
    let mut got = Vec::new();
    let mut pending: VecDeque<Msg> = VecDeque::new();
    let mut last_progress = Instant::now();
    while verified < n {
        while sent < n && sent - verified < cli.depth {
            let mut m = ep.alloc(pat.size(sent))?;
            pat.fill(sent, &mut m);
            match ep.send(peer, m) {
                Ok(()) => sent += 1,
                Err(SendError::Full(_)) => break, // retried (refilled) next round
                Err(e) => bail!("{e}"),
            }
        }
        ep.flush();
        got.clear();
        ep.recv_wait(&mut got, Duration::from_millis(10));
        pending.extend(got.drain(..));
        while let Some(m) = pending.pop_front() {
            pat.check(verified, &m).with_context(|| format!("reply #{verified} from the server"))?;
            bytes += m.len() as u64;
            verified += 1;
            last_progress = Instant::now();
        }
        if last_progress.elapsed() > timeout {
            print_stats("pingpong client", ep);
            bail!(
                "no reply to message #{verified} ({} B) within {timeout:?} ({verified} of {n} verified)",
                pat.size(verified)
            );
        }
    }
    // Let the last acknowledgements reach us before the endpoint goes.
    let drain = Instant::now();
    while ep.unacked() > 0 && drain.elapsed() < Duration::from_secs(2) {
        got.clear();
        ep.recv_wait(&mut got, Duration::from_millis(1));
    }
    let el = start.elapsed().as_secs_f64();
    println!(
        "check: {n} messages ({bytes} bytes) sent and their replies verified (sequence and content hash) in {el:.2} s"
    );
    println!("RESULT verified={verified} bytes={bytes} seconds={el:.3}");
    print_stats("pingpong client", ep);
    Ok(())
}

fn xdp_server(cli: &Cli) -> Result<()> {
    let mut ep = cli.ep.bind("pingpong server", true)?;
    let shutdown = Shutdown::install()?;
    let deadline = (cli.duration > 0).then(|| Instant::now() + Duration::from_secs(cli.duration));
    let pat = Pattern::new(cli.seed, ep.max_msg());
    let mut expect: std::collections::HashMap<PeerId, u64> = Default::default();
    let (mut echoed, mut verified, mut mismatches, mut copied) = (0u64, 0u64, 0u64, 0u64);
    let mut got = Vec::new();
    let mut backlog: VecDeque<(PeerId, MsgBuf)> = VecDeque::new();
    println!("ready");
    while !shutdown.requested() && deadline.is_none_or(|d| Instant::now() < d) {
        got.clear();
        ep.recv_wait(&mut got, Duration::from_millis(100));
        for m in got.drain(..) {
            let peer = m.peer();
            if cli.verify {
                let i = expect.entry(peer).or_insert(0);
                match pat.check(*i, &m) {
                    Ok(()) => verified += 1,
                    Err(e) => {
                        mismatches += 1;
                        if mismatches <= 5 {
                            eprintln!("pingpong server: {e}");
                        }
                    }
                }
                *i += 1;
            }
            // The reply is the message itself, headers rewritten in its own frames.
            let reply = match ep.reply_buf(m) {
                Ok(b) => b,
                Err(m) => {
                    copied += 1;
                    let v = ep.copy_to_vec(&m);
                    let mut b = ep.alloc(v.len())?;
                    b.write_at(0, &v);
                    b
                }
            };
            backlog.push_back((peer, reply));
        }
        // Replies wait (in order) while the ring or window is full: back-pressure, not loss.
        while let Some((peer, b)) = backlog.pop_front() {
            match ep.send(peer, b) {
                Ok(()) => echoed += 1,
                Err(SendError::Full(b)) => {
                    backlog.push_front((peer, b));
                    break;
                }
                Err(e) => bail!("{e}"),
            }
        }
        ep.flush();
    }
    println!("pingpong server: stopping");
    println!("  echoed          {echoed} messages ({copied} through a copy)");
    if cli.verify {
        println!("  verified        {verified} messages, {mismatches} mismatches");
    }
    print_stats("pingpong server", &ep);
    Ok(())
}

fn kernel_server(cli: &Cli, mode: KernelMode) -> Result<()> {
    let sock = kernel_socket(cli.ep.local, mode)?;
    let shutdown = Shutdown::install()?;
    let deadline = (cli.duration > 0).then(|| Instant::now() + Duration::from_secs(cli.duration));
    let mut buf = vec![0u8; 65_536];
    let mut echoed = 0u64;
    println!("pingpong server: kernel UDP socket {} ({mode:?})", cli.ep.local);
    println!("ready");
    while !shutdown.requested() && deadline.is_none_or(|d| Instant::now() < d) {
        if let Some((n, from)) = kernel_recv(&sock, mode, &mut buf, Duration::from_millis(100))? {
            // Datagrams go back as they came: the message header is valid both ways.
            sock.send_to(&buf[..n], from).context("send_to")?;
            echoed += 1;
        }
    }
    println!("pingpong server: stopping");
    println!("  echoed          {echoed} datagrams");
    Ok(())
}

fn kernel_client(cli: &Cli, mode: KernelMode) -> Result<()> {
    let peer = cli.peer.context("--peer")?;
    let size = cli.size;
    if cli.check.is_some() {
        bail!("--check runs over the AF_XDP endpoint; a kernel client only times one-datagram messages");
    }
    if size + MSG_HDR_LEN > 1472 {
        bail!("a kernel client sends one-datagram messages: at most {} B at MTU 1500", 1472 - MSG_HDR_LEN);
    }
    let sock = kernel_socket(cli.ep.local, mode)?;
    sock.connect(peer)?;
    let timeout = Duration::from_secs_f64(cli.reply_timeout);
    let mut out = vec![0u8; MSG_HDR_LEN + size];
    let mut back = vec![0u8; 65_536];
    let mut rtts = Vec::with_capacity(cli.count as usize);
    let mut lost = 0;
    println!("ready");
    let end = Instant::now() + Duration::from_secs_f64(cli.seconds);
    for i in 0..cli.warmup + cli.count {
        if Instant::now() > end {
            break;
        }
        kernel_frame(&mut out, i as u32, size);
        let n = size.min(8);
        out[MSG_HDR_LEN..MSG_HDR_LEN + n].copy_from_slice(&i.to_le_bytes()[..n]);
        let t0 = Instant::now();
        sock.send(&out).context("send")?;
        let mut done = false;
        while !done {
            match kernel_recv(&sock, mode, &mut back, timeout.saturating_sub(t0.elapsed()))? {
                None => {
                    lost += 1;
                    break;
                }
                Some((len, from)) => {
                    done = from == SocketAddr::V4(peer)
                        && len == out.len()
                        && back[MSG_HDR_LEN..MSG_HDR_LEN + n] == out[MSG_HDR_LEN..MSG_HDR_LEN + n];
                }
            }
        }
        if done && i >= cli.warmup {
            rtts.push(t0.elapsed().as_nanos() as u64);
        }
    }
    report(&format!("kernel UDP ({mode:?})"), size, rtts, lost);
    Ok(())
}

/// Percentiles of sorted nanosecond samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}
