//! The control port: a kernel TCP socket served by a thread of its own, so no client of it
//! can ever hold up a worker. It reads one request head, hands its path to the backend's
//! [`Render`] (for the AF_XDP backend, [`super::endpoints`]: `/metrics`, `/connections`,
//! `/health`) and writes the [`Answer`]. The workers publish snapshots
//! ([`super::publish`]); this thread sums and renders them when asked.
//!
//! Everything a client can make it hold is bounded and counted: at most
//! [`MAX_CONNECTIONS`] connections at once (a new one evicts the oldest that has not yet
//! sent a whole request; if every one is already being answered, the new one is closed),
//! [`TIMEOUT`] for the whole exchange, and [`MAX_REQUEST`] bytes of request head.
//!
//! ```text
//!   accept ─► read head (≤ 4 KiB, ≤ 5 s) ─► render(path, stats) ─► write ─► close
//!      │                                 └─ /pcap?seconds=N: capture N s (≤ 60), then write
//!      └─ full: evict the oldest reader, or refuse
//! ```
//!
//! `GET /pcap?seconds=N` answers with a pcapng of the next N seconds of traffic (see
//! [`crate::pcap`]; at most [`crate::pcap::MAX_LIVE`] at once), answered 0.3 s after the
//! window closes (so the last chunks reach it), the connection's timeout running from then.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::pcap::{Capture, Live};

/// Connections held at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Time a connection has to send its request and take the answer (the server's setting).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request head read.
pub const MAX_REQUEST: usize = 4096;

/// How long after its window a live capture is answered: the workers hand over chunks at
/// most 100 ms old, and the writer needs a moment to copy them.
const LIVE_GRACE: Duration = Duration::from_millis(300);

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// Counters of the control port itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ControlStats {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered.
    pub answered: u64,
    /// Connections closed by the timeout.
    pub timeouts: u64,
    /// Idle connections closed to make room for a new one.
    pub evicted: u64,
    /// New connections closed because every slot was busy answering.
    pub refused: u64,
    /// Request heads over [`MAX_REQUEST`].
    pub too_long: u64,
}

impl ControlStats {
    /// The counters as `name value` pairs for the metrics text.
    pub fn series(&self) -> Vec<(String, u64)> {
        vec![
            ("control_connections_total".into(), self.connections),
            ("control_answered_total".into(), self.answered),
            ("control_timeouts_total".into(), self.timeouts),
            ("control_evicted_total".into(), self.evicted),
            ("control_refused_total".into(), self.refused),
            ("control_too_long_total".into(), self.too_long),
        ]
    }
}

/// An answer of the control port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// 200, 404 or 503.
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Answer {
    /// Plain text with `status`.
    pub fn text(status: u16, body: String) -> Answer {
        Answer { status, content_type: "text/plain; charset=utf-8", body }
    }

    /// The Prometheus text exposition format.
    pub fn metrics(body: String) -> Answer {
        Answer { status: 200, content_type: "text/plain; version=0.0.4; charset=utf-8", body }
    }

    fn bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            404 => "Not Found",
            503 => "Service Unavailable",
            _ => "Status",
        };
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            self.status,
            self.content_type,
            self.body.len(),
            self.body
        )
        .into_bytes()
    }
}

/// What answers a request: given its path (without the query) and the control port's own
/// counters.
pub type Render = Box<dyn Fn(&str, &ControlStats) -> Answer + Send>;

/// The running control thread; [`Control::stop`] ends and joins it.
#[derive(Debug)]
pub struct Control {
    addr: SocketAddr,
    waker: Arc<Waker>,
    thread: JoinHandle<ControlStats>,
}

impl Control {
    /// Binds `addr` and starts the thread; each connection gets `timeout` ([`TIMEOUT`]).
    /// `capture` serves `/pcap`.
    pub fn spawn(
        addr: SocketAddr,
        timeout: Duration,
        render: Render,
        capture: Option<Arc<Capture>>,
    ) -> Result<Control> {
        let poll = Poll::new().context("epoll_create (control port)")?;
        let mut listener =
            TcpListener::bind(addr).with_context(|| format!("binding the control port {addr} (--metrics-addr)"))?;
        let addr = listener.local_addr()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut server =
            Server { poll, listener, conns: Vec::new(), stats: ControlStats::default(), render, timeout, capture };
        let thread = crate::privdrop::spawn("control", move || {
            if let Err(e) = server.run() {
                log::error!("control port: {e}; it stops (the workers go on)");
            }
            server.stats
        })
        .context("spawning the control thread")?;
        Ok(Control { addr, waker, thread })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the thread and joins it; its final counters.
    pub fn stop(self) -> ControlStats {
        let _ = self.waker.wake();
        self.thread.join().unwrap_or_default()
    }
}

#[derive(Debug)]
enum Phase {
    /// Reading the request head.
    Reading(Vec<u8>),
    /// Writing the answer from this offset.
    Writing(Vec<u8>, usize),
    /// A live packet capture running until the instant.
    Capturing(Instant, Arc<Mutex<Live>>),
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    since: Instant,
    phase: Phase,
}

struct Server {
    poll: Poll,
    listener: TcpListener,
    /// Slot `i` is token `FIRST_CONN + i`; at most [`MAX_CONNECTIONS`].
    conns: Vec<Option<Conn>>,
    stats: ControlStats,
    render: Render,
    timeout: Duration,
    capture: Option<Arc<Capture>>,
}

impl Conn {
    /// When the connection is closed (or, capturing, when the capture ends).
    fn deadline(&self, timeout: Duration) -> Instant {
        match &self.phase {
            Phase::Capturing(until, _) => *until,
            _ => self.since + timeout,
        }
    }
}

impl Server {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(64);
        loop {
            let now = Instant::now();
            let next = self.conns.iter().flatten().map(|c| c.deadline(self.timeout)).min();
            let wait = next.map(|t| t.saturating_duration_since(now) + Duration::from_millis(1));
            match self.poll.poll(&mut events, wait) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in &events {
                match ev.token() {
                    WAKER => return Ok(()),
                    LISTENER => self.accept(),
                    Token(t) => self.progress(t - FIRST_CONN),
                }
            }
            self.expire(Instant::now());
        }
    }

    fn accept(&mut self) {
        loop {
            let mut stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and the like: leave the connection in the backlog for now.
                    log::warn!("control port: accept: {e}");
                    return;
                }
            };
            self.stats.connections += 1;
            let Some(slot) = self.free_slot() else {
                self.stats.refused += 1;
                continue; // dropped: closed
            };
            let token = Token(FIRST_CONN + slot);
            if self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE).is_err() {
                continue;
            }
            self.conns[slot] = Some(Conn { stream, since: Instant::now(), phase: Phase::Reading(Vec::new()) });
            // The request may be there already (edge-triggered: read now).
            self.progress(slot);
        }
    }

    /// A free slot: an empty one, a new one, or the oldest still reading (evicted).
    fn free_slot(&mut self) -> Option<usize> {
        if let Some(i) = self.conns.iter().position(Option::is_none) {
            return Some(i);
        }
        if self.conns.len() < MAX_CONNECTIONS {
            self.conns.push(None);
            return Some(self.conns.len() - 1);
        }
        let oldest = (0..self.conns.len())
            .filter(|&i| matches!(self.conns[i], Some(Conn { phase: Phase::Reading(_), .. })))
            .min_by_key(|&i| self.conns[i].as_ref().map(|c| c.since))?;
        self.close(oldest);
        self.stats.evicted += 1;
        Some(oldest)
    }

    fn close(&mut self, slot: usize) {
        if let Some(mut c) = self.conns[slot].take() {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    /// Reads and writes what the connection in `slot` allows now.
    fn progress(&mut self, slot: usize) {
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else { return };
        if let Phase::Reading(buf) = &mut c.phase {
            let mut chunk = [0u8; 1024];
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => return self.close(slot),
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return self.close(slot),
                }
                if head_complete(buf) {
                    break;
                }
                if buf.len() > MAX_REQUEST {
                    self.stats.too_long += 1;
                    return self.close(slot);
                }
            }
            if !head_complete(buf) {
                return;
            }
            self.stats.answered += 1;
            c.phase = match live_target(buf).map(|r| r.and_then(|n| start_live(self.capture.as_deref(), n))) {
                Some(Ok((n, live))) => Phase::Capturing(Instant::now() + Duration::from_secs(n) + LIVE_GRACE, live),
                Some(Err(why)) => {
                    Phase::Writing(answer("400 Bad Request", "text/plain", format!("{why}\n").into_bytes()), 0)
                }
                None => Phase::Writing((self.render)(request_path(buf), &self.stats).bytes(), 0),
            };
        }
        if let Phase::Writing(out, at) = &mut c.phase {
            while *at < out.len() {
                match c.stream.write(&out[*at..]) {
                    Ok(n) => *at += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return self.close(slot),
                }
            }
            let _ = c.stream.shutdown(std::net::Shutdown::Write);
            self.close(slot);
        }
    }

    /// Closes the connections whose time ran out, and answers the live captures that
    /// ended (at most [`MAX_CONNECTIONS`] to look at).
    fn expire(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            if let Some(c) = self.conns[i].as_mut().filter(|c| now >= c.deadline(self.timeout)) {
                if let Phase::Capturing(_, live) = &c.phase {
                    let (bytes, dropped) = self.capture.as_deref().map(|cap| cap.finish_live(live)).unwrap_or_default();
                    if dropped > 0 {
                        log::warn!("control port: a live capture dropped {dropped} packets (its size bound)");
                    }
                    c.phase = Phase::Writing(answer("200 OK", "application/x-pcapng", bytes), 0);
                    c.since = now;
                    self.progress(i);
                    continue;
                }
            }
            if self.conns[i].as_ref().is_some_and(|c| now >= c.deadline(self.timeout)) {
                self.close(i);
                self.stats.timeouts += 1;
            }
        }
    }
}

/// The path of a request head's request line (`GET /metrics?x HTTP/1.1` -> `/metrics`);
/// `/` when there is none.
fn request_path(head: &[u8]) -> &str {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let target = line.split(|&b| b == b' ').nth(1).unwrap_or(b"/");
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    std::str::from_utf8(path).ok().filter(|p| !p.is_empty()).unwrap_or("/")
}

/// An answer that closes the connection.
fn answer(status: &str, content_type: &str, body: Vec<u8>) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// `/pcap?seconds=N` in the request line of `head`: its seconds, or why not.
fn live_target(head: &[u8]) -> Option<Result<u64, String>> {
    let line = head.split(|&b| b == b'\n').next()?;
    let target = std::str::from_utf8(line).ok()?.split_whitespace().nth(1)?;
    crate::pcap::live_request(target)
}

/// Starts a live capture of `n` seconds, if the server has a capture.
fn start_live(capture: Option<&Capture>, n: u64) -> Result<(u64, Arc<Mutex<Live>>), String> {
    let cap = capture.ok_or("this server has no packet capture")?;
    cap.start_live(std::time::SystemTime::now(), n).map(|l| (n, l))
}

/// Whether `buf` holds a whole request head (`\r\n\r\n`, or bare `\n\n`).
fn head_complete(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream as StdStream;

    fn start(timeout: Duration) -> Control {
        let render: Render = Box::new(|path: &str, s: &ControlStats| match path {
            "/missing" => Answer::text(404, "no\n".into()),
            _ => Answer::metrics(format!("path {path}\nanswered {}\nevicted {}\n", s.answered, s.evicted)),
        });
        Control::spawn("127.0.0.1:0".parse().unwrap(), timeout, render, None).unwrap()
    }

    fn fetch(addr: SocketAddr) -> String {
        fetch_path(addr, "/metrics")
    }

    fn fetch_path(addr: SocketAddr, path: &str) -> String {
        let mut s = StdStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn idle_connections_cannot_lock_out_a_fetch() {
        let c = start(TIMEOUT);
        let idle: Vec<StdStream> =
            (0..MAX_CONNECTIONS + 4).map(|_| StdStream::connect(c.local_addr()).unwrap()).collect();
        let half: Vec<StdStream> = (0..3)
            .map(|_| {
                let mut s = StdStream::connect(c.local_addr()).unwrap();
                s.write_all(b"GET /metr").unwrap();
                s
            })
            .collect();
        let start = Instant::now();
        for _ in 0..3 {
            let got = fetch(c.local_addr());
            assert!(got.starts_with("HTTP/1.1 200 OK") && got.contains("answered"), "{got}");
        }
        assert!(start.elapsed() < Duration::from_secs(2), "fetches took {:?}", start.elapsed());
        drop((idle, half));
        let stats = c.stop();
        assert_eq!(stats.answered, 3);
        assert!(stats.evicted >= 7, "{stats:?}: 23 idle connections and 3 fetches into 16 slots");
        assert_eq!(stats.refused, 0, "{stats:?}");
    }

    #[test]
    fn a_long_head_is_cut_off_and_counted() {
        let c = start(TIMEOUT);
        let mut s = StdStream::connect(c.local_addr()).unwrap();
        let _ = s.write_all(&vec![b'a'; MAX_REQUEST + 2048]);
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(out.is_empty(), "no answer to a head over the limit");
        assert_eq!(c.stop().too_long, 1);
    }

    #[test]
    fn idle_connections_time_out_and_are_counted() {
        let c = start(Duration::from_millis(200));
        let mut idle: Vec<StdStream> = (0..3).map(|_| StdStream::connect(c.local_addr()).unwrap()).collect();
        for s in &mut idle {
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut b = [0u8; 1];
            assert_eq!(s.read(&mut b).unwrap_or(0), 0, "closed by the server, no answer");
        }
        assert!(fetch(c.local_addr()).starts_with("HTTP/1.1 200 OK"));
        let stats = c.stop();
        assert_eq!((stats.timeouts, stats.answered, stats.connections), (3, 1, 4), "{stats:?}");
    }

    fn get(addr: SocketAddr, target: &str) -> Vec<u8> {
        let mut s = StdStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn pcap_answers_a_capture_of_the_seconds_asked() {
        let opts = crate::pcap::PcapOpts { file: None, snaplen: 128, max_bytes: 1 << 20, files: 1 };
        let cap = crate::pcap::Capturer::start(&opts, "veth9").unwrap();
        let render: Render = Box::new(|_: &str, _: &ControlStats| Answer::metrics("metrics\n".into()));
        let c = Control::spawn("127.0.0.1:0".parse().unwrap(), TIMEOUT, render, Some(cap.shared.clone())).unwrap();
        let t0 = Instant::now();
        let got = get(c.local_addr(), "/pcap?seconds=1");
        let took = t0.elapsed();
        let at = got.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
        let head = String::from_utf8_lossy(&got[..at]);
        assert!(head.starts_with("HTTP/1.1 200 OK") && head.contains("application/x-pcapng"), "{head}");
        assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(3), "answered after {took:?}");
        let blocks = crate::pcap::pcapng::blocks(&got[at..]).unwrap();
        assert_eq!(blocks.len(), 2, "a section and its interface; no traffic was tapped");
        assert!(String::from_utf8_lossy(&get(c.local_addr(), "/pcap?seconds=61")).starts_with("HTTP/1.1 400"));
        assert!(String::from_utf8_lossy(&get(c.local_addr(), "/metrics")).ends_with("metrics\n"));
        c.stop();
        cap.stop();
        // A server without a capture says so.
        let bare = start(TIMEOUT);
        let got = get(bare.local_addr(), "/pcap?seconds=1");
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 400"), "{}", String::from_utf8_lossy(&got));
        bare.stop();
    }

    #[test]
    fn the_path_picks_the_answer() {
        let c = start(TIMEOUT);
        let got = fetch_path(c.local_addr(), "/connections?x=1");
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n") && got.contains("\r\n\r\npath /connections\n"), "{got}");
        assert!(got.contains("Content-Type: text/plain; version=0.0.4"), "{got}");
        let got = fetch_path(c.local_addr(), "/missing");
        assert!(got.starts_with("HTTP/1.1 404 Not Found\r\n") && got.ends_with("\r\n\r\nno\n"), "{got}");
        c.stop();
        assert_eq!(request_path(b"GET / HTTP/1.0\r\n\r\n"), "/");
        assert_eq!(request_path(b"GET\r\n\r\n"), "/");
        assert_eq!(request_path(b"GET /health HTTP/1.1\r\n"), "/health");
        assert_eq!(request_path(b"GET /\xff HTTP/1.1\r\n"), "/");
    }

    #[test]
    fn head_ends_are_found() {
        assert!(head_complete(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(head_complete(b"GET /\n\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n"));
    }
}
