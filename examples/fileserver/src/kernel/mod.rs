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
//! Each connection is a [`Session`] (the HTTP logic both backends share) over a socket;
//! [`sink`] moves its responses with the method. The per-connection state is bounded: the
//! session's request buffer and response queue, one 64 KiB staging buffer for
//! `read-write`, one pipe for `splice`, at most 8 pool blocks ahead for `direct-uring`.
//! Slow or idle clients are closed on timers (head, idle, write) without holding others up.

mod body;
mod direct;
mod method;
mod sink;
mod zerocopy;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::blocks::{self, BlockStream, HasStreams};
use crate::metrics::Metrics;
use crate::options::{Limits, PoolOpts};
use crate::root::Root;
use crate::session::table::{SessionId, Table};
use crate::session::{Clock, Now, Served, Session, Timeout};
use body::{Body, Pipe};
use direct::Direct;
pub use method::Method;
use sink::KernelTransport;
use zerocopy::{ZcConn, ZcStats};

const LISTENER: Token = Token(0);
const METRICS: Token = Token(1);
const RING: Token = Token(2);
/// Tokens of connections start here.
const CONN0: usize = 3;
/// Rounds of "reap completions, drive the connections they wake" per loop turn.
const PUMP_ROUNDS: usize = 64;

#[derive(Debug)]
struct Conn {
    sock: TcpStream,
    /// A connection to the control port (answered with the counters).
    control: bool,
    session: Session<Body>,
    pipe: Option<Pipe>,
    zc: Option<ZcConn>,
}

impl HasStreams for Conn {
    fn streams_mut(&mut self) -> impl Iterator<Item = &mut BlockStream> {
        self.session.bodies_mut().filter_map(Body::stream_mut)
    }
}

/// The server loop's state.
#[derive(Debug)]
pub struct Server {
    method: Method,
    root: Root,
    limits: Limits,
    poll: Poll,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    /// The listener's congestion control, as the kernel names it.
    congestion: String,
    conns: Table<Conn>,
    direct: Option<Direct>,
    zc: ZcStats,
    /// Scratch for ids (reused, so a pass allocates nothing).
    ids: Vec<SessionId>,
    due: Vec<(SessionId, Timeout)>,
    clock: Clock,
    pub metrics: Metrics,
    /// The access log, if on.
    log: Option<crate::access_log::LogSender>,
}

impl Server {
    /// Binds the listeners and sets up what the method needs (the pinned pool and the
    /// io_uring for `direct-uring`); nothing is served until `run`.
    /// `congestion`: the served connections' congestion control (`TCP_CONGESTION` on the
    /// listener, which accepted connections inherit); `None` leaves the kernel's default.
    pub fn bind(
        addr: SocketAddr,
        metrics: Option<SocketAddr>,
        method: Method,
        direct: &PoolOpts,
        root: Root,
        limits: Limits,
        congestion: Option<&str>,
    ) -> Result<Server> {
        let timers = limits.longest_timeout();
        let poll = Poll::new().context("epoll_create")?;
        let mut listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        if let Some(cc) = congestion {
            rustix::net::sockopt::set_tcp_congestion(&listener, cc).with_context(|| {
                format!(
                    "setting TCP_CONGESTION {cc} on the listener: is tcp_{cc} loaded (net.ipv4.tcp_available_congestion_control), \
                     and allowed to unprivileged sockets (net.ipv4.tcp_allowed_congestion_control)?"
                )
            })?;
        }
        let congestion = rustix::net::sockopt::tcp_congestion(&listener).context("reading TCP_CONGESTION")?;
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
            conns: Table::new(timers),
            direct,
            zc: ZcStats::default(),
            ids: Vec::new(),
            due: Vec::new(),
            clock: Clock::start(),
            metrics: Metrics::default(),
            congestion,
            log: None,
        })
    }

    /// Lines for the startup block, beyond the method's name.
    pub fn describe(&self) -> Vec<String> {
        let mut v = vec![
            format!("  moves bytes by  {}", self.method.describe()),
            format!("  congestion      {} (the kernel's)", self.congestion),
        ];
        if let Some(d) = &self.direct {
            v.push(format!("  pool            {}", d.describe()));
        }
        v
    }

    /// Serves until `stop` is set; prints the counters whenever `dump` is set.
    pub fn run(&mut self, stop: &Arc<AtomicBool>, dump: &Arc<AtomicBool>) -> Result<()> {
        let mut events = Events::with_capacity(256);
        let mut now = self.clock.now();
        while !stop.load(Ordering::Relaxed) {
            let timeout = match &self.direct {
                _ if self.conns.has_retries() => Duration::from_millis(2),
                // The ring's descriptor wakes the loop; this is only a safety net.
                Some(d) if d.blocks.reading() => Duration::from_millis(20),
                _ => Duration::from_millis(200),
            };
            // Wake for the next HTTP timer (the wheel knows it to within a few ticks),
            // reckoned from the last turn's clock (waking early is harmless).
            let timeout = self.conns.next_timer().map_or(timeout, |t| {
                let until = if t > now.mono { (t - now.mono).total_micros() } else { 0 };
                timeout.min(Duration::from_micros(until))
            });
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("epoll_wait"),
            }
            now = self.clock.now();
            self.conns.begin_turn();
            for ev in &events {
                match ev.token() {
                    LISTENER => self.accept(now, false),
                    METRICS => self.accept(now, true),
                    RING => {}
                    Token(t) => {
                        if let Some(id) = self.conns.id_at(t - CONN0) {
                            self.drive(now, id);
                        }
                    }
                }
            }
            self.pump(now);
            self.timers(now);
            if dump.swap(false, Ordering::Relaxed) {
                print!("{}", self.render());
            }
        }
        Ok(())
    }

    /// `direct-uring`: submits reads, hands finished blocks to their bodies and drives the
    /// connections that can move again, until no read completes in a round.
    fn pump(&mut self, now: Now) {
        let mut ids = std::mem::take(&mut self.ids);
        for _ in 0..PUMP_ROUNDS {
            let Server { direct, conns, .. } = self;
            if let Some(d) = direct.as_mut() {
                d.blocks.poll(|d| {
                    let id = d.0;
                    if blocks::deliver(conns, d) {
                        conns.wake(id);
                    }
                });
            }
            conns.take_ready(&mut ids);
            if ids.is_empty() {
                break;
            }
            for id in ids.drain(..) {
                self.drive(now, id);
            }
        }
        ids.clear();
        self.ids = ids;
    }

    fn accept(&mut self, now: Now, control: bool) {
        loop {
            let l = if control { self.metrics_listener.as_ref() } else { Some(&self.listener) };
            let Some(l) = l else { return };
            let (sock, peer) = match l.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("accept: {e}");
                    return;
                }
            };
            if self.conns.len() >= self.limits.max_connections {
                self.metrics.refused_connections += 1;
                continue;
            }
            let _ = sock.set_nodelay(true);
            let zc = (self.method == Method::MsgZerocopy && !control).then(|| ZcConn::new(sock.as_fd()));
            let mut session = Session::new(now.mono);
            if let (Some(tx), false) = (&self.log, control) {
                session.log_to(tx.clone(), Arc::from(peer.ip().to_string()));
            }
            let id = self.conns.insert(Conn { sock, control, session, pipe: None, zc });
            let Some(c) = self.conns.get_mut(id) else { continue };
            let token = Token(id.index() + CONN0);
            if let Err(e) = self.poll.registry().register(&mut c.sock, token, Interest::READABLE | Interest::WRITABLE) {
                log::warn!("epoll_ctl: {e}");
                self.conns.remove(id);
                continue;
            }
            self.metrics.connections += 1;
            self.metrics.connections_open += 1;
            self.drive(now, id);
        }
    }

    /// Logs every request of connections accepted from now on to `tx`.
    pub fn log_to(&mut self, tx: crate::access_log::LogSender) {
        self.log = Some(tx);
    }

    /// Reads what there is, answers complete requests, writes what it can.
    fn drive(&mut self, now: Now, id: SessionId) {
        let text = match self.conns.get(id) {
            Some(c) if c.control => Some(self.exposition()),
            Some(_) => None,
            None => return,
        };
        let Server { conns, direct, root, method, metrics, zc, limits, .. } = self;
        let Some(Conn { sock, session, pipe, zc: czc, .. }) = conns.get_mut(id) else { return };
        if let Some(z) = czc.as_mut() {
            z.reap(sock.as_fd(), zc);
        }
        let mut t = KernelTransport {
            sock,
            pipe,
            zc: czc.as_mut(),
            zc_stats: zc,
            root,
            method: *method,
            direct: direct.as_mut(),
            control: text.as_deref(),
            id,
        };
        let served = session.serve(now, &mut t, metrics);
        let deadline = session.deadline(limits).0;
        match served {
            Served::Open { retry } => {
                conns.arm(id, deadline);
                if retry {
                    conns.retry_later(id);
                }
            }
            Served::Done | Served::ReadFailed | Served::SendFailed => self.close(id),
        }
    }

    fn close(&mut self, id: SessionId) {
        let Some(mut c) = self.conns.remove(id) else { return };
        let _ = self.poll.registry().deregister(&mut c.sock);
        if let Some(zc) = c.zc.as_mut() {
            zc.reap(c.sock.as_fd(), &mut self.zc);
            zc.close(&mut self.zc);
        }
        self.metrics.connections_open -= 1;
    }

    /// Closes the connections whose deadline passed (the wheel names only those).
    fn timers(&mut self, now: Now) {
        let mut due = std::mem::take(&mut self.due);
        let limits = &self.limits;
        self.conns.expire(now.mono, |c| c.session.deadline(limits), &mut due);
        for (id, why) in due.drain(..) {
            self.metrics.timed_out(why);
            self.close(id);
        }
        self.due = due;
    }

    /// The counters as text, with the method's own (what the kernel reported, what the
    /// reader did): SIGUSR1 and exit.
    pub fn render(&self) -> String {
        self.current().render(self.method.name())
    }

    /// The counters in the Prometheus text format: the control port's answer.
    pub fn exposition(&self) -> String {
        let mut e = crate::prom::Exposition::default();
        self.current().expose(&mut e, None);
        e.render()
    }

    /// The counters with the method's own.
    fn current(&self) -> Metrics {
        let mut m = self.metrics.clone();
        match self.method {
            Method::MsgZerocopy => {
                let z = &self.zc;
                let busy = self.conns.iter().filter_map(|(_, c)| c.zc.as_ref()).filter(|z| z.busy()).count();
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
        m.extra.push((format!("tcp_congestion_control{{algorithm=\"{}\"}}", self.congestion), 1));
        if let Some(l) = &self.log {
            m.extra.extend(l.stats().series());
        }
        m
    }
}
