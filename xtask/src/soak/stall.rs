//! `xtask internal soak-stall`: zero-window stallers, run in the client namespace. Each
//! opens a kernel TCP connection with a tiny receive buffer (`SO_RCVBUF` set before the
//! handshake, so the window it offers stays small), asks for a large file, reads the first
//! bytes of the answer and then never reads again: its window falls to zero and the server
//! is left probing. After `--hold-secs` it looks at what became of each connection without
//! reading more than a little: closed or reset by the server (cut off, as a write timeout
//! should), or still open. Prints one `RESULT` line. Bounded: at most 256 connections,
//! every connect and read has a deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use socket2::{Domain, Socket, Type};

/// What became of one staller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// The server closed or reset it.
    Cut,
    /// Still open after the hold.
    Open,
}

/// Opens `conns` stallers on `path` of `server`, holds them `hold`, and reports.
pub fn run(server: SocketAddr, path: &str, conns: u32, hold: Duration, rcvbuf: usize) -> Result<()> {
    ensure!((1..=256).contains(&conns), "--conns must be 1..=256");
    ensure!(hold <= Duration::from_secs(600), "--hold-secs at most 600");
    let start = Instant::now();
    let mut socks = Vec::new();
    let mut failed = 0u32;
    for _ in 0..conns {
        match open(server, path, rcvbuf) {
            Ok(s) => socks.push(s),
            Err(e) => {
                failed += 1;
                eprintln!("soak-stall: {e:#}");
            }
        }
    }
    let opened = socks.len();
    std::thread::sleep(hold.saturating_sub(start.elapsed()));
    let fates: Vec<Fate> = socks.iter().map(fate).collect();
    let cut = fates.iter().filter(|f| **f == Fate::Cut).count();
    println!(
        "RESULT opened={opened} failed={failed} cut={cut} open={} held_secs={:.1}",
        opened - cut,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One staller: connected, the request sent, the first bytes of the answer read.
fn open(server: SocketAddr, path: &str, rcvbuf: usize) -> Result<Socket> {
    let s = Socket::new(Domain::for_address(server), Type::STREAM, None).context("socket")?;
    s.set_recv_buffer_size(rcvbuf).context("SO_RCVBUF")?;
    // Through a lossy path a SYN may need a retransmission or two.
    s.connect_timeout(&server.into(), Duration::from_secs(10)).with_context(|| format!("connect to {server}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    (&s).write_all(format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.ip()).as_bytes())?;
    let mut first = [0u8; 64];
    let n = (&s).read(&mut first).context("reading the first bytes of the answer")?;
    ensure!(first[..n].starts_with(b"HTTP/1.1 200"), "unexpected answer: {:?}", String::from_utf8_lossy(&first[..n]));
    Ok(s)
}

/// Whether the server cut `s` off: the queued bytes are read (a few KiB at most: the
/// buffer is tiny) until the connection shows a close or a reset, or nothing more is there.
fn fate(s: &Socket) -> Fate {
    if s.set_nonblocking(true).is_err() {
        return Fate::Open;
    }
    let mut buf = [0u8; 4096];
    // A bound: an open connection refills the little buffer as it is read.
    for _ in 0..64 {
        match (&*s).read(&mut buf) {
            Ok(0) => return Fate::Cut,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Fate::Open,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Fate::Cut,
        }
    }
    Fate::Open
}
