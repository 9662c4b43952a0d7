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
#![forbid(unsafe_code)]

#[path = "../../pingpong/src/common.rs"]
mod common;

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use common::{kernel_frame, kernel_recv, kernel_socket, print_stats, EpArgs, KernelMode};
use datapath::Shutdown;
use datapath_msg::wire::{MsgHdr, MSG_HDR_LEN};
use datapath_msg::{AllocError, Msg, SendError};

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
    match (cli.kernel, cli.send) {
        (None, true) => xdp_send(&cli),
        (None, false) => xdp_recv(&cli),
        (Some(m), true) => kernel_send(&cli, m),
        (Some(m), false) => kernel_recv_loop(&cli, m),
    }
}

fn limit(cli: &Cli) -> u64 {
    if cli.count == 0 {
        u64::MAX
    } else {
        cli.count
    }
}

fn xdp_send(cli: &Cli) -> Result<()> {
    let mut ep = cli.ep.bind("msgrate sender", false)?;
    let peer = ep.add_peer(cli.peer.context("--peer")?)?;
    println!("ready");
    let mut sink: Vec<Msg> = Vec::new();
    let (mut sent, mut waits) = (0u64, 0u64);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(cli.seconds);
    let mut since_flush = 0;
    'outer: while sent < limit(cli) && Instant::now() < end {
        let mut m = loop {
            match ep.alloc(cli.size) {
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
        m.write_at(0, &sent.to_le_bytes());
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
    let el = start.elapsed().as_secs_f64();
    // Reliable: stay until the receiver has acknowledged everything (bounded).
    let drain = Instant::now();
    while (ep.unacked() > 0 || ep.socket().tx_in_flight() > 0) && drain.elapsed() < Duration::from_secs(5) {
        ep.flush();
        ep.recv_wait(&mut sink, Duration::from_millis(1));
        sink.clear();
    }
    println!(
        "msgrate sender: {sent} messages of {} B in {el:.2} s = {:.0} msg/s ({waits} back-pressure waits)",
        cli.size,
        sent as f64 / el
    );
    println!("RESULT sent={sent} rate={:.0} waits={waits} unacked={}", sent as f64 / el, ep.unacked());
    print_stats("msgrate sender", &ep);
    Ok(())
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

fn xdp_recv(cli: &Cli) -> Result<()> {
    let mut ep = cli.ep.bind("msgrate receiver", true)?;
    let shutdown = Shutdown::install()?;
    println!("ready");
    let mut got = Vec::new();
    if ep.recv_wait(&mut got, Duration::from_secs_f64(cli.first_timeout)) == 0 {
        bail!("no message within {} s", cli.first_timeout);
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(cli.seconds);
    let mut s = Seqs::default();
    let mut last = start;
    loop {
        for m in got.drain(..) {
            s.saw(seq_of(&m));
        }
        let now = Instant::now();
        if s.got >= limit(cli)
            || now >= end
            || now.duration_since(last) > Duration::from_secs(2)
            || shutdown.requested()
        {
            break;
        }
        if ep.recv_wait(&mut got, Duration::from_millis(100)) > 0 {
            last = Instant::now();
        }
    }
    report("AF_XDP", cli.size, &s, last.duration_since(start).as_secs_f64().max(1e-9));
    print_stats("msgrate receiver", &ep);
    Ok(())
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
