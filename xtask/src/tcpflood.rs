//! Resource attacks on the server's TCP, crafted from the client namespace with an
//! `AF_PACKET` socket (pnet's datalink channel), from spoofed addresses the client's kernel
//! does not own (so it never answers the server in our place):
//!
//! * `xtask internal tcp-flood ooo`: connections that each send one-byte segments out of
//!   order (every other byte, the first one never), then fall silent: each segment would
//!   pin a 4 KiB frame of the server's pool if receive memory were counted in payload;
//! * `xtask internal tcp-flood fin-wait2`: connections that request a small file with
//!   `Connection: close`, acknowledge the server's FIN and then fall silent, leaving the
//!   server in FIN-WAIT-2 (several source addresses when ports run out).
//!
//! And the namespace tests that run them against `fileserver --backend xdp`, each followed
//! by a 1 GiB download checked by sha256, then a wait for the server's timeouts, after
//! which its pool's free frames and blocks must be back at their starting counts. Every
//! wait has a deadline and every flood is a count.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender};

use crate::client::Prng;
use crate::netns::{Netns, SRV_ADDR};
use crate::nstest::Bins;
use crate::util::{output, Daemon};

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// MSS 1460, the only option our SYNs carry (no timestamps, SACK or window scaling, so
/// every segment is plain).
const MSS_OPTION: [u8; 4] = [2, 4, 0x05, 0xb4];

/// The first spoofed source address (10.77.0.3, .4, ...).
const SPOOF_BASE: u8 = 3;

/// One segment to send.
struct Seg<'a> {
    src: SocketAddrV4,
    seq: u32,
    ack: u32,
    flags: u8,
    options: &'a [u8],
    payload: &'a [u8],
}

/// A segment the server sent.
#[derive(Debug, Clone, Copy)]
struct Reply {
    to: SocketAddrV4,
    flags: u8,
    seq: u32,
    len: u32,
}

fn sum16(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut it = bytes.chunks_exact(2);
    for w in &mut it {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = it.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The raw socket and the addresses around it.
struct Wire {
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    mac: [u8; 6],
    server_mac: [u8; 6],
    server: SocketAddrV4,
    sent: u64,
    send_errors: u64,
}

impl Wire {
    fn open(iface: &str, server: SocketAddrV4, server_mac: &str) -> Result<Wire> {
        let ni = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == iface)
            .with_context(|| format!("no interface {iface} here"))?;
        let mac = ni.mac.with_context(|| format!("{iface} has no MAC"))?.octets();
        let cfg = Config {
            read_timeout: Some(Duration::from_millis(5)),
            read_buffer_size: 1 << 16,
            write_buffer_size: 1 << 16,
            promiscuous: false,
            ..Config::default()
        };
        let (tx, rx) = match pnet_datalink::channel(&ni, cfg)
            .with_context(|| format!("AF_PACKET socket on {iface} (needs CAP_NET_RAW)"))?
        {
            Channel::Ethernet(tx, rx) => (tx, rx),
            _ => bail!("{iface}: not an Ethernet channel"),
        };
        Ok(Wire { tx, rx, mac, server_mac: parse_mac(server_mac)?, server, sent: 0, send_errors: 0 })
    }

    /// An Ethernet + IPv4 + TCP frame from `s.src` to the server.
    fn frame(&self, s: &Seg) -> Vec<u8> {
        let tcp_len = 20 + s.options.len() + s.payload.len();
        let mut f = Vec::with_capacity(14 + 20 + tcp_len);
        f.extend_from_slice(&self.server_mac);
        f.extend_from_slice(&self.mac);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
        f[16..18].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        f.extend_from_slice(&s.src.ip().octets());
        f.extend_from_slice(&self.server.ip().octets());
        let ip_sum = fold(sum16(0, &f[14..34]));
        f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
        f.extend_from_slice(&s.src.port().to_be_bytes());
        f.extend_from_slice(&self.server.port().to_be_bytes());
        f.extend_from_slice(&s.seq.to_be_bytes());
        f.extend_from_slice(&s.ack.to_be_bytes());
        let words = ((20 + s.options.len()) / 4) as u8;
        f.extend_from_slice(&[words << 4, s.flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(s.options);
        f.extend_from_slice(s.payload);
        let mut pseudo = Vec::with_capacity(12);
        pseudo.extend_from_slice(&s.src.ip().octets());
        pseudo.extend_from_slice(&self.server.ip().octets());
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
        let sum = fold(sum16(sum16(0, &pseudo), &f[34..]));
        f[50..52].copy_from_slice(&sum.to_be_bytes());
        f
    }

    /// Sends `s`; a full socket buffer is counted (the segment counts as lost), not fatal.
    fn send(&mut self, s: &Seg) {
        let f = self.frame(s);
        match self.tx.send_to(&f, None) {
            Some(Ok(())) => self.sent += 1,
            _ => self.send_errors += 1,
        }
    }

    /// The next segment the server sent, if one comes within the read timeout.
    fn recv(&mut self) -> Option<Reply> {
        let f = self.rx.next().ok()?;
        if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
            return None;
        }
        let ihl = usize::from(f[14] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
        let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
        let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
        let tcp = f.get(14 + ihl..14 + total)?;
        let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
        if src != *self.server.ip() || sport != self.server.port() {
            return None;
        }
        let hl = usize::from(tcp[12] >> 4) * 4;
        Some(Reply {
            to: SocketAddrV4::new(dst, u16::from_be_bytes([tcp[2], tcp[3]])),
            flags: tcp[13],
            seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
            len: tcp.len().saturating_sub(hl) as u32,
        })
    }
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    ensure!(parts.len() == 6, "not a MAC address: {s:?}");
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).with_context(|| format!("not a MAC address: {s:?}"))?;
    }
    Ok(mac)
}

/// `conns` connections from 10.77.0.3, ports `first_port..`, each sending `segs` one-byte
/// segments out of order, then silence.
pub fn ooo(iface: &str, server: SocketAddrV4, server_mac: &str, conns: u32, segs: u32, first_port: u16) -> Result<()> {
    ensure!(conns <= 1024 && segs <= 4096, "--conns at most 1024, --segs at most 4096");
    let mut w = Wire::open(iface, server, server_mac)?;
    let mut rng = Prng::new(0x000f_100d);
    let ip = Ipv4Addr::new(10, 77, 0, SPOOF_BASE);
    let srcs: Vec<SocketAddrV4> = (0..conns).map(|i| SocketAddrV4::new(ip, first_port + i as u16)).collect();
    let isns: Vec<u32> = (0..conns).map(|_| rng.next_u64() as u32).collect();
    let mut srv_isn: HashMap<SocketAddrV4, u32> = HashMap::new();
    // Handshakes: a SYN each, again every second for those not answered, for 5 s.
    let end = Instant::now() + Duration::from_secs(5);
    let mut next_syn = Instant::now();
    while srv_isn.len() < srcs.len() && Instant::now() < end {
        if Instant::now() >= next_syn {
            for (s, &isn) in srcs.iter().zip(&isns) {
                if !srv_isn.contains_key(s) {
                    w.send(&Seg { src: *s, seq: isn, ack: 0, flags: SYN, options: &MSS_OPTION, payload: &[] });
                }
            }
            next_syn = Instant::now() + Duration::from_secs(1);
        }
        if let Some(r) = w.recv() {
            if r.flags & (SYN | ACK) == SYN | ACK && srcs.contains(&r.to) {
                srv_isn.insert(r.to, r.seq);
            }
        }
    }
    ensure!(srv_isn.len() == srcs.len(), "only {} of {conns} handshakes answered", srv_isn.len());
    let start = Instant::now();
    for (s, &isn) in srcs.iter().zip(&isns) {
        let ack = srv_isn[s].wrapping_add(1);
        let base = isn.wrapping_add(1);
        w.send(&Seg { src: *s, seq: base, ack, flags: ACK, options: &[], payload: &[] });
        // Bytes base+1, base+3, ...: never base, so none is ever in order.
        for k in 0..segs {
            w.send(&Seg { src: *s, seq: base.wrapping_add(1 + 2 * k), ack, flags: ACK, options: &[], payload: b"x" });
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // What the server said back (duplicate ACKs), briefly.
    let mut acks = 0u64;
    let drain = Instant::now() + Duration::from_millis(500);
    while Instant::now() < drain {
        if w.recv().is_some_and(|r| r.flags & ACK != 0 && srcs.contains(&r.to)) {
            acks += 1;
        }
    }
    println!(
        "RESULT conns={conns} segments={} sent={} send_errors={} acks_seen={acks} seconds={secs:.2}",
        u64::from(conns) * u64::from(segs),
        w.sent,
        w.send_errors
    );
    Ok(())
}

/// Where one crafted connection of the FIN-WAIT-2 flood stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    SynSent,
    /// Request sent; `rcv` is the next byte expected from the server.
    Requested,
    /// The server's FIN acknowledged: abandoned.
    Done,
    Failed,
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    phase: Phase,
    isn: u32,
    rcv: u32,
    at: Instant,
    tries: u8,
}

/// Source ports used per spoofed address.
const PER_ADDR: u32 = 20_000;
const FIRST_PORT: u32 = 20_000;

fn flow_addr(i: u32) -> SocketAddrV4 {
    let ip = Ipv4Addr::new(10, 77, 0, SPOOF_BASE + (i / PER_ADDR) as u8);
    SocketAddrV4::new(ip, (FIRST_PORT + i % PER_ADDR) as u16)
}

fn flow_index(a: &SocketAddrV4, conns: u32) -> Option<u32> {
    let o = a.ip().octets();
    if o[..3] != [10, 77, 0] || o[3] < SPOOF_BASE {
        return None;
    }
    let port = u32::from(a.port());
    if !(FIRST_PORT..FIRST_PORT + PER_ADDR).contains(&port) {
        return None;
    }
    let i = u32::from(o[3] - SPOOF_BASE) * PER_ADDR + (port - FIRST_PORT);
    (i < conns).then_some(i)
}

/// `conns` connections that GET `path` with `Connection: close`, acknowledge everything
/// up to the server's FIN, and fall silent; at most `window` at a time in progress.
pub fn fin_wait2(
    iface: &str,
    server: SocketAddrV4,
    server_mac: &str,
    conns: u32,
    path: &str,
    window: u32,
) -> Result<()> {
    ensure!(conns <= 200_000, "--conns at most 200000");
    ensure!(conns.div_ceil(PER_ADDR) <= 200, "too many connections for the spoofed addresses");
    let mut w = Wire::open(iface, server, server_mac)?;
    let mut rng = Prng::new(0xf1_4a17);
    let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.ip());
    let req = req.as_bytes();
    let now = Instant::now();
    let mut flows = vec![Flow { phase: Phase::Idle, isn: 0, rcv: 0, at: now, tries: 0 }; conns as usize];
    let (mut next, mut busy, mut done, mut failed) = (0u32, 0u32, 0u32, 0u32);
    let (mut resets, mut gave_up) = (0u32, 0u32);
    // Every flow below `oldest` has finished (done or failed).
    let mut oldest = 0u32;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(600);
    let mut last_sweep = start;
    while done + failed < conns {
        ensure!(Instant::now() < deadline, "flood not finished after 600 s: {done} done, {failed} failed");
        // Open new connections up to the window.
        while busy < window && next < conns {
            let f = &mut flows[next as usize];
            f.isn = rng.next_u64() as u32;
            f.phase = Phase::SynSent;
            f.at = Instant::now();
            let src = flow_addr(next);
            w.send(&Seg { src, seq: f.isn, ack: 0, flags: SYN, options: &MSS_OPTION, payload: &[] });
            busy += 1;
            next += 1;
        }
        // Replies.
        for _ in 0..512 {
            let Some(r) = w.recv() else { break };
            let Some(i) = flow_index(&r.to, conns) else { continue };
            let src = flow_addr(i);
            let f = &mut flows[i as usize];
            let mine = f.isn.wrapping_add(1);
            if r.flags & RST != 0 {
                if matches!(f.phase, Phase::SynSent | Phase::Requested) {
                    f.phase = Phase::Failed;
                    failed += 1;
                    resets += 1;
                    busy -= 1;
                }
                continue;
            }
            match f.phase {
                Phase::SynSent | Phase::Requested if r.flags & (SYN | ACK) == SYN | ACK => {
                    // (Again, if our request was lost.)
                    f.rcv = r.seq.wrapping_add(1);
                    f.phase = Phase::Requested;
                    f.at = Instant::now();
                    let seg = Seg { src, seq: mine, ack: f.rcv, flags: ACK | PSH, options: &[], payload: req };
                    w.send(&seg);
                }
                Phase::Requested if r.seq == f.rcv && (r.len > 0 || r.flags & FIN != 0) => {
                    f.rcv = f.rcv.wrapping_add(r.len + u32::from(r.flags & FIN != 0));
                    let seq = mine.wrapping_add(req.len() as u32);
                    w.send(&Seg { src, seq, ack: f.rcv, flags: ACK, options: &[], payload: &[] });
                    if r.flags & FIN != 0 {
                        f.phase = Phase::Done;
                        done += 1;
                        busy -= 1;
                    }
                }
                Phase::Done if r.flags & FIN != 0 => {
                    // The server did not get our last ACK: once more.
                    let seq = mine.wrapping_add(req.len() as u32);
                    w.send(&Seg { src, seq, ack: f.rcv, flags: ACK, options: &[], payload: &[] });
                }
                _ => {}
            }
        }
        // Retransmit what went unanswered for a second, then every two (bounded: ten tries,
        // so a flow waits out the server's own retransmissions, which back off).
        if last_sweep.elapsed() >= Duration::from_millis(250) {
            last_sweep = Instant::now();
            while oldest < next && matches!(flows[oldest as usize].phase, Phase::Done | Phase::Failed) {
                oldest += 1;
            }
            for i in oldest..next {
                let f = &mut flows[i as usize];
                let wait = Duration::from_secs(if f.tries == 0 { 1 } else { 2 });
                if !matches!(f.phase, Phase::SynSent | Phase::Requested) || f.at.elapsed() < wait {
                    continue;
                }
                if f.tries >= 10 {
                    f.phase = Phase::Failed;
                    failed += 1;
                    gave_up += 1;
                    busy -= 1;
                    continue;
                }
                f.tries += 1;
                f.at = Instant::now();
                let src = flow_addr(i);
                let mine = f.isn.wrapping_add(1);
                let seg = match f.phase {
                    Phase::SynSent => Seg { src, seq: f.isn, ack: 0, flags: SYN, options: &MSS_OPTION, payload: &[] },
                    _ => Seg { src, seq: mine, ack: f.rcv, flags: ACK | PSH, options: &[], payload: req },
                };
                w.send(&seg);
            }
        }
    }
    println!(
        "RESULT conns={conns} done={done} failed={failed} (reset {resets}, no answer {gave_up}) sent={} \
         send_errors={} seconds={:.1}",
        w.sent,
        w.send_errors,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

// The namespace tests.

/// A `name value` line of the server's counters.
fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The server's counters from its control port (on the kernel stack of its namespace:
/// loopback, or its address).
fn metrics(ns: &Netns, port: u16) -> Result<String> {
    for host in ["127.0.0.1", SRV_ADDR] {
        let url = format!("http://{host}:{port}/metrics");
        let (ok, text) = output(ns.in_server("curl").args(["-sf", "--max-time", "5", &url]))?;
        if ok {
            return Ok(text);
        }
    }
    bail!("the server's control port {port} did not answer")
}

/// `(pool_frames_free, pool_blocks_free)` from the counters.
fn pool_free(text: &str) -> Result<(u64, u64)> {
    Ok((
        counter(text, "fileserver_pool_frames_free").context("no pool_frames_free in the counters")?,
        counter(text, "fileserver_pool_blocks_free").context("no pool_blocks_free in the counters")?,
    ))
}

/// Waits (at most `limit`) until the pool's free frames are back at their count at
/// `start`, and its free blocks at least at theirs (the block cache may have given up a
/// block it held then, never more).
/// The longest an orphan lasts with the stack's default TCP settings, which the file
/// server keeps: `orphan_retries` (8) timeouts and the last one, backed off from the
/// initial RTO (1 s, before any RTT sample) and capped at `max_rto` (120 s): 367 s.
fn orphan_lifetime() -> Duration {
    const ORPHAN_RETRIES: u32 = 8;
    const INITIAL_RTO_SECS: u64 = 1;
    const MAX_RTO_SECS: u64 = 120;
    Duration::from_secs((0..=ORPHAN_RETRIES).map(|k| (INITIAL_RTO_SECS << k).min(MAX_RTO_SECS)).sum())
}

fn pool_back(ns: &Netns, port: u16, start: (u64, u64), limit: Duration) -> Result<(u64, u64)> {
    let end = Instant::now() + limit;
    loop {
        let now = pool_free(&metrics(ns, port)?)?;
        if now.0 == start.0 && now.1 >= start.1 {
            return Ok(now);
        }
        ensure!(
            Instant::now() < end,
            "the pool did not come back within {limit:?}: frames/blocks free {now:?}, at the start {start:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn start_server(ns: &Netns, bins: &Bins, www: &Path, extra: &[&str]) -> Result<Daemon> {
    let mut cmd = ns.in_server(&bins.fileserver);
    cmd.args(["--iface", &ns.srv_if, "--addr", SRV_ADDR, "--port", "80", "--root"])
        .arg(www)
        .args(extra)
        .env("RUST_LOG", "warn");
    let mut d = Daemon::spawn("fileserver (xdp)", &mut cmd)?;
    d.wait_line("ready", Duration::from_secs(30))?;
    Ok(d)
}

fn get(ns: &Netns, path: &str, max_secs: u64) -> Result<String> {
    let url = format!("http://{SRV_ADDR}{path}");
    let (ok, text) = output(
        ns.in_client("bash")
            .args(["-c", &format!("set -o pipefail; curl -sSf --max-time {max_secs} {url} | sha256sum")]),
    )?;
    ensure!(ok, "curl {url} failed: {text}");
    Ok(text.split_whitespace().next().unwrap_or("").to_owned())
}

fn server_mac(ns: &Netns) -> Result<String> {
    let (ok, mac) = output(ns.in_server("cat").arg(format!("/sys/class/net/{}/address", ns.srv_if)))?;
    ensure!(ok, "reading the server's MAC: {mac}");
    Ok(mac.trim().to_owned())
}

fn flood(ns: &Netns, bins: &Bins, args: &[&str]) -> Result<String> {
    let mut cmd: Command = ns.in_client(&bins.xtask);
    cmd.args(["internal", "tcp-flood"]).args(args);
    let (ok, text) = output(&mut cmd)?;
    ensure!(ok, "tcp-flood {args:?} failed:\n{text}");
    Ok(text.lines().find(|l| l.starts_with("RESULT")).unwrap_or("").trim().to_owned())
}

fn show(text: &str, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| match counter(text, &format!("fileserver_{n}")) {
            Some(v) => format!("{n} {v}"),
            None => format!("{n}: not in the report"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Out-of-order one-byte segments: 32 connections x 512 (the numbers), then 32 more
/// to take the pool to its prune mark. The server keeps answering throughout (with receive
/// memory counted in payload bytes the first wave alone held every frame and the fill ring
/// starved), the pool stays above a sixteenth free, 1 GiB downloads byte-exact, and once
/// the attackers' idle timeouts have run, the pool is back where it started.
pub fn ooo_test(bins: &Bins, www: &Path, sha: &str) -> Result<()> {
    let ns = Netns::up("to", 1500)?;
    let mut srv = start_server(&ns, bins, www, &["--metrics-port", "9100"])?;
    get(&ns, "/small", 10).context("warm-up")?;
    let start = pool_free(&metrics(&ns, 9100)?)?;
    let mac = server_mac(&ns)?;
    let server = format!("{SRV_ADDR}:80");
    let mut results = Vec::new();
    for (wave, first_port) in [(1, "30000"), (2, "31000")] {
        let r = flood(
            &ns,
            bins,
            &[
                "ooo",
                "--iface",
                &ns.cli_if,
                "--server",
                &server,
                "--server-mac",
                &mac,
                "--conns",
                "32",
                "--segs",
                "512",
                "--first-port",
                first_port,
            ],
        )?;
        let (frames, _) = pool_free(&metrics(&ns, 9100)?)?;
        // The pool pressure marks (an eighth, a sixteenth of all frames) hold.
        ensure!(frames >= 16384 / 16, "wave {wave} left only {frames} frames free ({r})");
        // Still serving while the attackers hold what they could.
        get(&ns, "/small", 5).with_context(|| format!("the server stopped answering after wave {wave} ({r})"))?;
        results.push(format!("wave {wave}: {r}; pool frames free {frames} (from {})", start.0));
    }
    let got = get(&ns, "/big", 300)?;
    ensure!(got == sha, "the download after the attack differs: {got} != {sha}");
    let back = pool_back(&ns, 9100, start, Duration::from_secs(90))?;
    let (ok, text) = srv.terminate(Duration::from_secs(20))?;
    ensure!(ok, "fileserver did not exit cleanly:\n{text}");
    // A connection that never sent a request byte ends by the idle (or head) timeout.
    let timeouts = counter(&text, "fileserver_timeouts_total{phase=\"head\"}").unwrap_or(0)
        + counter(&text, "fileserver_timeouts_total{phase=\"idle\"}").unwrap_or(0);
    ensure!(timeouts >= 64, "{timeouts} timeouts for 64 silent attackers:\n{results:?}\n{text}");
    for r in &results {
        println!("  {r}");
    }
    println!("  then 1 GiB byte-exact; pool back at {back:?} free frames/blocks");
    println!(
        "  server counted: {}",
        show(
            &text,
            &[
                "tcp_established_total",
                "timeouts_total{phase=\"idle\"}",
                "tcp_ooo_dropped_total",
                "tcp_ooo_pruned_total",
                "tcp_pressure_prunes_total",
                "tcp_pressure_refused_total",
                "xsk_fill_ring_empty_total",
            ]
        )
    );
    Ok(())
}

/// The counters that say where the pool's frames are: the stack's connections by state
/// and by what holds them, the AF_XDP socket's rings, and the server's own sessions.
const HOLDERS: &[&str] = &[
    "pool_frames_free",
    "pool_blocks_free",
    "connections_open",
    "tcp_connections",
    "tcp_half_open",
    "tcp_fin_wait2_entries",
    "tcp_time_wait_entries",
    "tcp_connections_by_state{state=\"Established\"}",
    "tcp_connections_by_state{state=\"FinWait1\"}",
    "tcp_connections_by_state{state=\"CloseWait\"}",
    "tcp_connections_by_state{state=\"LastAck\"}",
    "tcp_connections_by_state{state=\"Closed\"}",
    "tcp_connections_unaccepted",
    "tcp_connections_orphans",
    "tcp_connections_holding_memory",
    "tcp_connections_stuck",
    "xsk_tx_invalid_descs_total",
    "xsk_tx_ring_full_total",
    "xsk_rx_dropped_total",
    "stack_tx_no_frame_total",
    "head_frame_waits_total",
];

/// 70,000 connections abandoned in FIN-WAIT-2 (four spoofed source addresses, a small file
/// each with `Connection: close`): the server keeps them as compact entries, serves 1 GiB
/// byte-exact meanwhile, and its pool is back at its starting counts once they expire.
pub fn fin_wait2_test(bins: &Bins, www: &Path, sha: &str) -> Result<()> {
    let tiny = www.join("tiny");
    std::fs::write(&tiny, b"a small file, served and abandoned\n")
        .with_context(|| format!("writing {}", tiny.display()))?;
    let ns = Netns::up("tf", 1500)?;
    let mut srv = start_server(&ns, bins, www, &["--metrics-port", "9100"])?;
    get(&ns, "/tiny", 10).context("warm-up")?;
    let start = pool_free(&metrics(&ns, 9100)?)?;
    let mac = server_mac(&ns)?;
    let r = flood(
        &ns,
        bins,
        &[
            "fin-wait2",
            "--iface",
            &ns.cli_if,
            "--server",
            &format!("{SRV_ADDR}:80"),
            "--server-mac",
            &mac,
            "--conns",
            "70000",
            "--path",
            "/tiny",
        ],
    )?;
    let done = r
        .split_whitespace()
        .find_map(|w| w.strip_prefix("done=")?.parse::<u64>().ok())
        .context("no done= in the flood's result")?;
    ensure!(done >= 69_000, "only {done} of 70000 connections reached FIN-WAIT-2: {r}");
    let flood_end = Instant::now();
    let after_flood = metrics(&ns, 9100)?;
    println!("  {r}");
    println!("  after the flood: {}", show(&after_flood, HOLDERS));
    let got = get(&ns, "/big", 300)?;
    ensure!(got == sha, "the download after the flood differs: {got} != {sha}");
    let download_end = Instant::now();
    // Connections the flood gave up on time out too: an orphan retransmitting to a vanished
    // peer lasts up to `orphan_retries` backed-off timeouts.
    let back = pool_back(&ns, 9100, start, orphan_lifetime() + Duration::from_secs(30)).map_err(|e| {
        let held = metrics(&ns, 9100).map(|m| show(&m, HOLDERS)).unwrap_or_else(|e| format!("no counters: {e}"));
        e.context(format!("what holds the pool now: {held}"))
    })?;
    let back_after = download_end.elapsed();
    // The entries expire 60 s (the stack's fin_wait2_timeout) after the last of them.
    std::thread::sleep((flood_end + Duration::from_secs(65)).saturating_duration_since(Instant::now()));
    let (ok, text) = srv.terminate(Duration::from_secs(20))?;
    ensure!(ok, "fileserver did not exit cleanly:\n{text}");
    let ok200 = counter(&text, "fileserver_responses_total{status=\"200\"}").unwrap_or(0);
    ensure!(ok200 > done, "{ok200} responses for {done} abandoned connections and a download");
    println!(
        "  then 1 GiB byte-exact; pool back at {back:?} free frames/blocks {:.0} s after the download",
        back_after.as_secs_f64()
    );
    println!(
        "  server counted: {}",
        show(
            &text,
            &[
                "responses_total{status=\"200\"}",
                "tcp_established_total",
                "tcp_fin_wait2_entries_total",
                "tcp_fin_wait2_timeouts_total",
                "tcp_time_wait_recycled_total",
                "tcp_conn_table_full_total",
            ]
        )
    );
    Ok(())
}
