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
//! | `msg-zerocopy` | `send(MSG_ZEROCOPY)` from a mapping, completions from the error queue | 0 (the kernel reports when it copied after all) |
//! | `direct-uring` | io_uring `O_DIRECT` `READ_FIXED` into a pinned pool, `write` from it | 1 (pool->socket), no page cache |
//!
//! The per-connection state is bounded: a 16 KiB request buffer, at most 16 pipelined
//! responses queued, one 64 KiB staging buffer for `read-write`, one pipe for `splice`,
//! at most 8 pool blocks ahead for `direct-uring`. Slow or idle clients are closed on
//! timers (head, idle, write) without holding others up.

mod body;
mod direct;
mod method;
mod zerocopy;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustix::fs::OFlags;
use umem::FileMap;

use crate::http::{self, Parsed, Status};
use crate::metrics::Metrics;
use crate::options::{Limits, PoolOpts};
use crate::root::{Opened, Root};
use body::{Body, Pipe, Source};
use direct::Direct;
pub use method::Method;
use zerocopy::{ZcConn, ZcStats};

const INBUF: usize = 16 * 1024;
const MAX_QUEUED: usize = 16;
const LISTENER: Token = Token(0);
const METRICS: Token = Token(1);
const RING: Token = Token(2);
/// Tokens of connections start here.
const CONN0: usize = 3;
/// Rounds of "reap completions, drive the connections they wake" per loop turn.
const PUMP_ROUNDS: usize = 64;

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
    pipe: Option<Pipe>,
    zc: Option<ZcConn>,
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
    direct: Option<Direct>,
    zc: ZcStats,
    pub metrics: Metrics,
}

impl Server {
    /// Binds the listeners and sets up what the method needs (the pinned pool and the
    /// io_uring for `direct-uring`); nothing is served until `run`.
    pub fn bind(
        addr: SocketAddr,
        metrics: Option<SocketAddr>,
        method: Method,
        direct: &PoolOpts,
        root: Root,
        limits: Limits,
    ) -> Result<Server> {
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
        let direct = match method {
            Method::DirectUring => {
                let d = Direct::new(direct)?;
                poll.registry()
                    .register(&mut SourceFd(&d.ring_fd()), RING, Interest::READABLE)
                    .context("adding the io_uring to epoll")?;
                Some(d)
            }
            _ => None,
        };
        Ok(Server {
            method,
            root,
            limits,
            poll,
            listener,
            metrics_listener,
            conns: Vec::new(),
            free: Vec::new(),
            direct,
            zc: ZcStats::default(),
            metrics: Metrics::default(),
        })
    }

    /// Lines for the startup block, beyond the method's name.
    pub fn describe(&self) -> Vec<String> {
        let mut v = vec![format!("  moves bytes by  {}", self.method.describe())];
        if let Some(d) = &self.direct {
            v.push(format!("  pool            {}", d.describe()));
        }
        v
    }

    /// Serves until `stop` is set; prints the counters whenever `dump` is set.
    pub fn run(&mut self, stop: &Arc<AtomicBool>, dump: &Arc<AtomicBool>) -> Result<()> {
        let mut events = Events::with_capacity(256);
        while !stop.load(Ordering::Relaxed) {
            let timeout = match &self.direct {
                Some(d) if !d.starved.is_empty() => Duration::from_millis(2),
                // The ring's descriptor wakes the loop; this is only a safety net.
                Some(d) if d.reading() => Duration::from_millis(20),
                _ => Duration::from_millis(200),
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("epoll_wait"),
            }
            for ev in &events {
                match ev.token() {
                    LISTENER => self.accept(false),
                    METRICS => self.accept(true),
                    RING => {}
                    Token(t) => self.drive(t - CONN0),
                }
            }
            self.pump();
            self.timers();
            if dump.swap(false, Ordering::Relaxed) {
                print!("{}", self.render());
            }
        }
        Ok(())
    }

    /// `direct-uring`: submits reads, hands finished blocks to their bodies and drives the
    /// connections that can move again, until no read completes in a round.
    fn pump(&mut self) {
        let mut retry = self.direct.as_mut().map(|d| std::mem::take(&mut d.starved)).unwrap_or_default();
        for _ in 0..PUMP_ROUNDS {
            let Server { direct, conns, .. } = self;
            let Some(d) = direct.as_mut() else { return };
            let mut woken = d.poll(|idx, ticket, want| {
                let Some(c) = conns.get_mut(idx).and_then(Option::as_mut) else { return };
                let mut want = Some(want);
                for p in c.queue.iter_mut() {
                    if let Some(Body { src: Source::Blocks(s), .. }) = p.body.as_mut() {
                        s.deliver(ticket, &mut want);
                    }
                }
            });
            woken.append(&mut retry);
            if woken.is_empty() {
                return;
            }
            woken.sort_unstable();
            woken.dedup();
            for idx in woken {
                self.drive(idx);
            }
        }
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
            if let Err(e) =
                self.poll.registry().register(&mut sock, Token(idx + CONN0), Interest::READABLE | Interest::WRITABLE)
            {
                log::warn!("epoll_ctl: {e}");
                self.free.push(idx);
                continue;
            }
            let _ = sock.set_nodelay(true);
            let zc = (self.method == Method::MsgZerocopy && !metrics_port).then(|| ZcConn::new(sock.as_fd()));
            self.metrics.connections += 1;
            self.metrics.connections_open += 1;
            self.conns[idx] = Some(Conn {
                sock,
                metrics_port,
                inbuf: Vec::with_capacity(INBUF),
                queue: VecDeque::new(),
                pipe: None,
                zc,
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
        if let Some(zc) = c.zc.as_mut() {
            zc.reap(c.sock.as_fd(), &mut self.zc);
        }
        let alive = loop {
            let read_more = self.read(&mut c);
            self.answer(&mut c);
            let wrote = match self.flush(idx, &mut c) {
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
        if let Some(zc) = c.zc.as_mut() {
            zc.reap(c.sock.as_fd(), &mut self.zc);
            zc.close(&mut self.zc);
        }
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
                    let text = self.render();
                    (http::answer_text(&req, &text, now), consumed, None)
                }
                Parsed::Request(req, consumed) => match self.root.resolve(&req.path, OFlags::empty()) {
                    Ok(o) => {
                        let head = http::answer_file(&req, &o.path, &o.v, now);
                        let body = match head.body {
                            Some(r) => match self.body(o, r) {
                                Ok(b) => Some(b),
                                Err(()) => {
                                    let h =
                                        http::answer_error(Status::InternalError, req.http11, true, req.head_only, now);
                                    self.push(c, h, consumed, None);
                                    continue;
                                }
                            },
                            None => None,
                        };
                        (head, consumed, body)
                    }
                    Err(status) => {
                        (http::answer_error(status, req.http11, !req.keep_alive, req.head_only, now), consumed, None)
                    }
                },
            };
            self.push(c, head, consumed, body);
        }
    }

    fn push(&mut self, c: &mut Conn, head: http::Head, consumed: usize, body: Option<Body>) {
        self.metrics.count(head.status);
        c.inbuf.drain(..consumed.min(c.inbuf.len()));
        c.head_started = (!c.inbuf.is_empty()).then(Instant::now);
        if head.close {
            c.closing = true;
        }
        c.queue.push_back(Pending { head: head.bytes, head_off: 0, body, close: head.close });
    }

    /// Prepares the body of a response as the method wants it; Err (logged) means 500.
    fn body(&mut self, o: Opened, r: http::ByteRange) -> Result<Body, ()> {
        let src = if self.method.maps() {
            let map = FileMap::new(&o.file, r.end as usize).map_err(|e| log::warn!("{}: {e}", o.path))?;
            Source::Map(Rc::new(map))
        } else if let Some(d) = self.direct.as_mut() {
            Source::Blocks(d.open(o.file, r.start, r.end).map_err(|e| log::warn!("{}: {}", o.path, e))?)
        } else {
            Source::File(o.file)
        };
        Ok(Body::new(src, r.start, r.end))
    }

    /// Writes queued responses. Ok(true) if a response finished; Err on a dead socket.
    fn flush(&mut self, idx: usize, c: &mut Conn) -> Result<bool, ()> {
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
            if let Some(b) = p.body.as_mut() {
                let before = b.pos;
                let sent = match (self.method, self.direct.as_mut(), c.zc.as_mut()) {
                    (Method::DirectUring, Some(d), _) => direct::send(d, idx, &mut c.sock, b, &mut self.metrics),
                    (Method::MsgZerocopy, _, Some(zc)) => {
                        zerocopy::send(&mut c.sock, b, zc, &mut self.zc, &mut self.metrics)
                    }
                    (m, _, _) => body::send(m, &mut c.sock, b, &mut c.pipe, &mut self.metrics),
                };
                if b.pos != before {
                    c.last_progress = Instant::now();
                }
                match sent {
                    Ok(true) => {}
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

    /// The counters as text, with the method's own (what the kernel reported, what the
    /// reader did).
    pub fn render(&self) -> String {
        let mut m = self.metrics.clone();
        match self.method {
            Method::MsgZerocopy => {
                let z = &self.zc;
                let busy = self.conns.iter().flatten().filter_map(|c| c.zc.as_ref()).filter(|z| z.busy()).count();
                m.extra = vec![
                    ("zerocopy_sends_total".into(), z.sends),
                    ("zerocopy_completed_total".into(), z.completed),
                    ("zerocopy_kernel_copied_sends_total".into(), z.copied_calls),
                    ("zerocopy_kernel_copied_bytes_total".into(), z.copied_bytes),
                    ("zerocopy_plain_fallback_bytes_total".into(), z.plain_bytes),
                    ("zerocopy_unconfirmed_at_close_total".into(), z.unconfirmed_at_close),
                    ("zerocopy_errqueue_errors_total".into(), z.reap_errors),
                    ("zerocopy_connections_awaiting_completions".into(), busy as u64),
                ];
            }
            Method::DirectUring => {
                if let Some(d) = &self.direct {
                    d.counters(&mut m.extra);
                }
            }
            _ => {}
        }
        m.render(self.method.name())
    }
}
