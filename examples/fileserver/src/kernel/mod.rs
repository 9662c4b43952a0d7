//! The kernel-socket backend: the same HTTP behaviour as the AF_XDP backend, on ordinary
//! TCP sockets with an epoll loop (mio), and one of several ways of moving file bytes to
//! the socket. Each way is a rung of the copy ladder:
//!
//! | method | how | payload copies by the CPU |
//! |---|---|---|
//! | `read-write` | `pread` into a buffer, `write` it | 2 (kernel->user, user->kernel) |
//! | `mmap` | map the file, `write` from the mapping | 1 (mapping->socket) |
//! | `sendfile` | `sendfile(2)` from the page cache | 0 |
//! | `splice` | file -> pipe -> socket with `splice(2)` | 0 |
//!
//! The per-connection state is bounded: a 16 KiB request buffer, at most 16 pipelined
//! responses queued, one 64 KiB staging buffer for `read-write`, one pipe for `splice`.
//! Slow or idle clients are closed on timers (head, idle, write) without holding others up.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use rustix::fs::OFlags;
use rustix::pipe::{PipeFlags, SpliceFlags};
use umem::FileMap;

use crate::http::{self, Parsed};
use crate::metrics::Metrics;
use crate::root::Root;

/// How file bytes reach the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// pread into a user buffer, then write (2 CPU copies).
    ReadWrite,
    /// mmap the file, write from the mapping (1 CPU copy).
    Mmap,
    /// sendfile(2) from the page cache (no CPU copy in user space).
    Sendfile,
    /// splice(2) file -> pipe -> socket (no CPU copy in user space).
    Splice,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::ReadWrite => "read-write",
            Method::Mmap => "mmap",
            Method::Sendfile => "sendfile",
            Method::Splice => "splice",
        }
    }
}

/// Limits and timers.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// A request head must arrive within this (slowloris).
    pub head_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub idle_timeout: Duration,
    /// A response that makes no progress for this long is abandoned.
    pub write_timeout: Duration,
}

const INBUF: usize = 16 * 1024;
const MAX_QUEUED: usize = 16;
const STAGE: usize = 64 * 1024;
const LISTENER: Token = Token(0);
const METRICS: Token = Token(1);

struct Body {
    file: File,
    pos: u64,
    end: u64,
    stage: Vec<u8>,
    stage_off: usize,
    map: Option<FileMap>,
}

struct Pending {
    head: Vec<u8>,
    head_off: usize,
    body: Option<Body>,
    close: bool,
}

struct Conn {
    sock: TcpStream,
    metrics_port: bool,
    inbuf: Vec<u8>,
    queue: VecDeque<Pending>,
    pipe: Option<(OwnedFd, OwnedFd, usize)>,
    closing: bool,
    last_progress: Instant,
    head_started: Option<Instant>,
}

/// The server loop's state.
pub struct Server {
    method: Method,
    root: Root,
    limits: Limits,
    poll: Poll,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    pub metrics: Metrics,
}

impl Server {
    /// Binds the listeners; nothing is served until `run`.
    pub fn bind(addr: SocketAddr, metrics: Option<SocketAddr>, method: Method, root: Root, limits: Limits) -> Result<Server> {
        let poll = Poll::new().context("epoll_create")?;
        let mut listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let metrics_listener = match metrics {
            Some(m) => {
                let mut l = TcpListener::bind(m).with_context(|| format!("binding the control port {m}"))?;
                poll.registry().register(&mut l, METRICS, Interest::READABLE)?;
                Some(l)
            }
            None => None,
        };
        Ok(Server { method, root, limits, poll, listener, metrics_listener, conns: Vec::new(), free: Vec::new(), metrics: Metrics::default() })
    }

    /// Serves until `stop` is set; prints the counters whenever `dump` is set.
    pub fn run(&mut self, stop: &Arc<AtomicBool>, dump: &Arc<AtomicBool>) -> Result<()> {
        let mut events = Events::with_capacity(256);
        while !stop.load(Ordering::Relaxed) {
            match self.poll.poll(&mut events, Some(Duration::from_millis(200))) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("epoll_wait"),
            }
            for ev in &events {
                match ev.token() {
                    LISTENER => self.accept(false),
                    METRICS => self.accept(true),
                    Token(t) => self.drive(t - 2),
                }
            }
            self.timers();
            if dump.swap(false, Ordering::Relaxed) {
                print!("{}", self.metrics.render(self.method.name()));
            }
        }
        Ok(())
    }

    fn accept(&mut self, metrics_port: bool) {
        loop {
            let l = if metrics_port { self.metrics_listener.as_ref() } else { Some(&self.listener) };
            let Some(l) = l else { return };
            let (mut sock, _) = match l.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("accept: {e}");
                    return;
                }
            };
            let open = self.conns.len() - self.free.len();
            if open >= self.limits.max_connections {
                self.metrics.refused_connections += 1;
                continue;
            }
            let idx = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            if let Err(e) = self.poll.registry().register(&mut sock, Token(idx + 2), Interest::READABLE | Interest::WRITABLE) {
                log::warn!("epoll_ctl: {e}");
                self.free.push(idx);
                continue;
            }
            let _ = sock.set_nodelay(true);
            self.metrics.connections += 1;
            self.metrics.connections_open += 1;
            self.conns[idx] = Some(Conn {
                sock,
                metrics_port,
                inbuf: Vec::with_capacity(INBUF),
                queue: VecDeque::new(),
                pipe: None,
                closing: false,
                last_progress: Instant::now(),
                head_started: None,
            });
            self.drive(idx);
        }
    }

    /// Reads what there is, answers complete requests, writes what it can.
    fn drive(&mut self, idx: usize) {
        let Some(mut c) = self.conns.get_mut(idx).and_then(Option::take) else { return };
        let alive = loop {
            let read_more = self.read(&mut c);
            self.answer(&mut c);
            let wrote = match self.flush(&mut c) {
                Ok(progress) => progress,
                Err(()) => break false,
            };
            if c.closing && c.queue.is_empty() {
                break false;
            }
            // Reading stopped for back-pressure and writing made room: read again.
            if !(read_more && wrote) {
                break read_more || !c.queue.is_empty() || !c.closing;
            }
        };
        if alive {
            self.conns[idx] = Some(c);
        } else {
            self.close(idx, c);
        }
    }

    fn close(&mut self, idx: usize, mut c: Conn) {
        let _ = self.poll.registry().deregister(&mut c.sock);
        self.metrics.connections_open -= 1;
        self.free.push(idx);
    }

    /// Reads into the request buffer. Returns true if it stopped for back-pressure (queue
    /// full) rather than for lack of data.
    fn read(&mut self, c: &mut Conn) -> bool {
        if c.closing {
            return false;
        }
        loop {
            if c.queue.len() >= MAX_QUEUED {
                return true;
            }
            let len = c.inbuf.len();
            if len >= INBUF + http::MAX_HEAD {
                return false;
            }
            c.inbuf.resize(len + 4096, 0);
            match c.sock.read(&mut c.inbuf[len..]) {
                Ok(0) => {
                    c.inbuf.truncate(len);
                    c.closing = true;
                    return false;
                }
                Ok(n) => {
                    c.inbuf.truncate(len + n);
                    if c.head_started.is_none() {
                        c.head_started = Some(Instant::now());
                    }
                    c.last_progress = Instant::now();
                    // Answer as we go so the buffer stays small under pipelining.
                    self.answer(c);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    c.inbuf.truncate(len);
                    return false;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => c.inbuf.truncate(len),
                Err(_) => {
                    c.inbuf.truncate(len);
                    c.closing = true;
                    c.queue.clear();
                    return false;
                }
            }
        }
    }

    /// Turns complete requests at the front of the buffer into queued responses.
    fn answer(&mut self, c: &mut Conn) {
        while !c.closing && c.queue.len() < MAX_QUEUED && !c.inbuf.is_empty() {
            let now = SystemTime::now();
            let (head, consumed, body) = match http::parse(&c.inbuf) {
                Parsed::Partial => return,
                Parsed::Error { status, consumed, close, http11 } => {
                    (http::answer_error(status, http11, close, false, now), consumed, None)
                }
                Parsed::Request(req, consumed) if c.metrics_port => {
                    let text = self.metrics.render(self.method.name());
                    (http::answer_text(&req, &text, now), consumed, None)
                }
                Parsed::Request(req, consumed) => match self.root.resolve(&req.path, OFlags::empty()) {
                    Ok(o) => {
                        let head = http::answer_file(&req, &o.path, &o.v, now);
                        let body = head.body.map(|r| self.body(o, r));
                        (head, consumed, body)
                    }
                    Err(status) => {
                        (http::answer_error(status, req.http11, !req.keep_alive, req.head_only, now), consumed, None)
                    }
                },
            };
            self.metrics.count(head.status);
            c.inbuf.drain(..consumed.min(c.inbuf.len()));
            c.head_started = (!c.inbuf.is_empty()).then(Instant::now);
            if head.close {
                c.closing = true;
            }
            c.queue.push_back(Pending { head: head.bytes, head_off: 0, body, close: head.close });
        }
    }

    fn body(&self, o: crate::root::Opened, r: http::ByteRange) -> Body {
        let map = if self.method == Method::Mmap {
            FileMap::new(&o.file, r.end as usize).map_err(|e| log::warn!("{}: {e}", o.path)).ok()
        } else {
            None
        };
        Body { file: o.file, pos: r.start, end: r.end, stage: Vec::new(), stage_off: 0, map }
    }

    /// Writes queued responses. Ok(true) if a response finished; Err on a dead socket.
    fn flush(&mut self, c: &mut Conn) -> Result<bool, ()> {
        let mut finished = false;
        while let Some(p) = c.queue.front_mut() {
            while p.head_off < p.head.len() {
                match c.sock.write(&p.head[p.head_off..]) {
                    Ok(n) => {
                        p.head_off += n;
                        c.last_progress = Instant::now();
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(finished),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return Err(()),
                }
            }
            if let Some(body) = p.body.as_mut() {
                match send_body(self.method, &mut c.sock, body, &mut c.pipe, &mut self.metrics) {
                    Ok(true) => c.last_progress = Instant::now(),
                    Ok(false) => return Ok(finished),
                    Err(e) => {
                        log::debug!("sending body: {e}");
                        return Err(());
                    }
                }
            }
            let close = p.close;
            c.queue.pop_front();
            finished = true;
            if close {
                c.closing = true;
                c.queue.clear();
                return Ok(true);
            }
        }
        Ok(finished)
    }

    fn timers(&mut self) {
        let now = Instant::now();
        for idx in 0..self.conns.len() {
            let Some(c) = self.conns[idx].as_ref() else { continue };
            let expired = if !c.queue.is_empty() {
                (now - c.last_progress > self.limits.write_timeout).then_some(&mut self.metrics.timeouts_write)
            } else if let Some(t) = c.head_started {
                (now - t > self.limits.head_timeout).then_some(&mut self.metrics.timeouts_head)
            } else {
                (now - c.last_progress > self.limits.idle_timeout).then_some(&mut self.metrics.timeouts_idle)
            };
            if let Some(counter) = expired {
                *counter += 1;
                if let Some(c) = self.conns[idx].take() {
                    self.close(idx, c);
                }
            }
        }
    }
}

/// Moves body bytes with the chosen method. Ok(true): the body is complete; Ok(false):
/// the socket is full (try again when writable).
fn send_body(
    method: Method,
    sock: &mut TcpStream,
    b: &mut Body,
    pipe: &mut Option<(OwnedFd, OwnedFd, usize)>,
    m: &mut Metrics,
) -> std::io::Result<bool> {
    loop {
        let done = match method {
            Method::ReadWrite => {
                if b.stage_off == b.stage.len() {
                    if b.pos == b.end {
                        return Ok(true);
                    }
                    let n = STAGE.min((b.end - b.pos) as usize);
                    b.stage.resize(n, 0);
                    b.stage_off = 0;
                    let got = b.file.read_at(&mut b.stage[..n], b.pos)?;
                    if got == 0 {
                        return Err(ErrorKind::UnexpectedEof.into());
                    }
                    b.stage.truncate(got);
                    b.pos += got as u64;
                    m.bytes_copied += got as u64;
                }
                match sock.write(&b.stage[b.stage_off..]) {
                    Ok(n) => {
                        b.stage_off += n;
                        m.bytes_copied += n as u64;
                        m.bytes_sent += n as u64;
                        false
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            Method::Mmap => {
                if b.pos == b.end {
                    return Ok(true);
                }
                let Some(map) = b.map.as_ref() else { return Err(ErrorKind::Other.into()) };
                match sock.write(&map.as_slice()[b.pos as usize..b.end as usize]) {
                    Ok(n) => {
                        b.pos += n as u64;
                        m.bytes_copied += n as u64;
                        m.bytes_sent += n as u64;
                        false
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
            Method::Sendfile => {
                if b.pos == b.end {
                    return Ok(true);
                }
                let want = (b.end - b.pos).min(1 << 30) as usize;
                match rustix::fs::sendfile(&*sock, &b.file, Some(&mut b.pos), want) {
                    Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                    Ok(n) => {
                        m.bytes_sent += n as u64;
                        false
                    }
                    Err(rustix::io::Errno::AGAIN) => return Ok(false),
                    Err(e) => return Err(e.into()),
                }
            }
            Method::Splice => {
                if pipe.is_none() {
                    let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
                    *pipe = Some((r, w, 0));
                }
                let Some((r, w, inpipe)) = pipe.as_mut() else { unreachable!() };
                if *inpipe == 0 {
                    if b.pos == b.end {
                        return Ok(true);
                    }
                    let want = (b.end - b.pos).min(STAGE as u64) as usize;
                    let n = rustix::pipe::splice(&b.file, Some(&mut b.pos), &*w, None, want, SpliceFlags::MOVE | SpliceFlags::NONBLOCK)?;
                    if n == 0 {
                        return Err(ErrorKind::UnexpectedEof.into());
                    }
                    *inpipe = n;
                }
                match rustix::pipe::splice(&*r, None, &*sock, None, *inpipe, SpliceFlags::MOVE | SpliceFlags::NONBLOCK | SpliceFlags::MORE) {
                    Ok(n) => {
                        *inpipe -= n;
                        m.bytes_sent += n as u64;
                        false
                    }
                    Err(rustix::io::Errno::AGAIN) => return Ok(false),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if done {
            return Ok(true);
        }
    }
}
