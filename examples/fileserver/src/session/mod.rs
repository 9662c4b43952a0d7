//! One HTTP/1.1 connection's server logic, whatever carries its bytes: request bytes in,
//! requests answered in order (pipelining), responses out through a [`Sink`], and the
//! head, idle and write timers. Both backends drive it; they differ only in how input
//! arrives and how a response's bytes leave:
//!
//! ```text
//!   socket read / Stack::read ──► Session::read_with / receive ──► http::parse
//!        ──► Respond::respond (root, validators, ranges, the body's source) ──► queue
//!   queue front ──► Sink::send_head, Sink::send_body ──► write, sendfile, splice, ...
//!                                                     or Stack::write_frames (blocks by reference)
//! ```
//!
//! A session holds no I/O handle and reads no clock: `now` is passed in. Its memory is
//! bounded: [`INBUF`] + [`http::MAX_HEAD`] request bytes and [`MAX_QUEUED`] responses.

mod answer;
pub mod table;
mod wheel;

use std::collections::VecDeque;
use std::io;
use std::time::SystemTime;

use stack::Instant;

use crate::access_log::{self, LogSender};
use crate::http::{self, Head, Parsed};
use crate::metrics::Metrics;
use crate::options::Limits;

pub use answer::file_answer;

/// Request bytes kept beyond one request head while answers are queued.
pub const INBUF: usize = 16 * 1024;
/// Pipelined responses queued per connection.
pub const MAX_QUEUED: usize = 16;

/// The time of a loop turn: read once per turn, passed down.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// The monotonic clock (timers).
    pub mono: Instant,
    /// The wall clock (`Date` headers).
    pub wall: SystemTime,
}

/// A loop's clock: the monotonic time since the loop started, and the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: std::time::Instant,
}

impl Clock {
    /// A clock whose monotonic time starts at zero now.
    pub fn start() -> Clock {
        Clock { epoch: std::time::Instant::now() }
    }

    /// A clock whose monotonic time counts from `epoch` (so another thread can read the
    /// same time base).
    pub fn since(epoch: std::time::Instant) -> Clock {
        Clock { epoch }
    }

    /// Reads both clocks (once per loop turn).
    pub fn now(&self) -> Now {
        Now { mono: Instant::from_micros(self.epoch.elapsed().as_micros() as i64), wall: SystemTime::now() }
    }
}

/// Which timer ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// The request head did not arrive in time (slowloris).
    Head,
    /// An idle keep-alive connection.
    Idle,
    /// A response made no progress.
    Write,
}

/// Why a sink stopped before it was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// No room towards the peer (socket buffer, send window): readiness wakes the session.
    Room,
    /// A block read is in flight: its completion wakes the session.
    Read,
    /// The pool had no free frame or block: try again on a later turn.
    Memory,
}

/// What a sink did with part of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes that went.
    pub bytes: usize,
    /// `None`: all of it went (the whole head, or the body to its end).
    pub wait: Option<Wait>,
}

impl Progress {
    /// All of it went.
    pub fn done(bytes: usize) -> Progress {
        Progress { bytes, wait: None }
    }

    /// `bytes` went; the rest waits.
    pub fn blocked(bytes: usize, wait: Wait) -> Progress {
        Progress { bytes, wait: Some(wait) }
    }
}

/// How a transport moves a response's bytes. `Err` means the connection is dead.
pub trait Sink<B> {
    /// Sends as much of `bytes` (the rest of a response head) as there is room for.
    fn send_head(&mut self, bytes: &[u8]) -> io::Result<Progress>;
    /// Moves the body on as far as it can.
    fn send_body(&mut self, body: &mut B) -> io::Result<Progress>;
}

/// How a backend answers a parsed request: the head, and the body's source if any.
pub trait Respond {
    /// The backend's body type.
    type Body;
    /// Answers `req` (see [`file_answer`] for the file case both backends share).
    fn respond(&mut self, req: &http::Request, wall: SystemTime) -> (Head, Option<Self::Body>);
}

/// Why a transport stopped reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// No more input now (or the peer closed: the transport said so with
    /// [`Session::end_of_input`]).
    Drained,
    /// The session had no room for more.
    Full,
}

/// One connection's transport as [`Session::serve`] drives it: input in, answers by the
/// backend, responses out.
pub trait Transport<B> {
    /// Moves request bytes into `session` while it has room. `Err`: the connection failed.
    fn read(&mut self, now: Instant, session: &mut Session<B>) -> io::Result<Input>;
    /// How requests are answered.
    fn respond(&mut self) -> impl Respond<Body = B> + '_;
    /// How responses leave.
    fn sink<'a>(&'a mut self, metrics: &'a mut Metrics) -> impl Sink<B> + 'a;
}

/// What [`Session::serve`] leaves the connection as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Open; `retry`: a response waits for pool memory (serve again next turn).
    Open { retry: bool },
    /// Done (answered with close, or the peer closed): close gracefully.
    Done,
    /// Reading failed: the connection is gone.
    ReadFailed,
    /// Sending failed mid-response: reset (a truncated body must not look complete).
    SendFailed,
}

/// A response in the queue.
#[derive(Debug)]
struct Response<B> {
    head: Vec<u8>,
    head_off: usize,
    body: Option<B>,
    close: bool,
    /// When its request's head was parsed.
    parsed: Instant,
    status: u16,
    /// Body bytes sent (an error's text body, which travels in `head`, counts).
    sent: u64,
    /// What the access log needs of the request (only while logging).
    log: Option<Box<access_log::Head>>,
}

/// A response sent to its last byte, for the request-time histogram and the access log.
#[derive(Debug)]
struct Finished {
    parsed: Instant,
    status: u16,
    sent: u64,
    log: Option<Box<access_log::Head>>,
}

/// A session's access log: where lines go, and its peer's address as logged.
#[derive(Debug)]
struct SessionLog {
    tx: LogSender,
    peer: std::sync::Arc<str>,
}

/// What [`Session::flush`] got done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Responses finished.
    pub finished: usize,
    /// Why the front response stopped (`None`: the queue is empty).
    pub wait: Option<Wait>,
}

/// One connection's HTTP state. `B` is the backend's body type.
#[derive(Debug)]
pub struct Session<B> {
    inbuf: Vec<u8>,
    queue: VecDeque<Response<B>>,
    /// No more requests are read: an answer closes the connection, or the peer closed.
    closing: bool,
    /// The peer closed its side (answer what is complete, then close).
    eof: bool,
    /// When the request head now at the front of `inbuf` began to arrive.
    head_started: Option<Instant>,
    /// The last time bytes moved either way.
    last_progress: Instant,
    /// Responses finished by the last flush, handed on by [`Session::serve`] (at most
    /// [`MAX_QUEUED`]).
    done: Vec<Finished>,
    /// The access log, if on.
    log: Option<Box<SessionLog>>,
}

impl<B> Session<B> {
    /// A session opened at `now`.
    pub fn new(now: Instant) -> Session<B> {
        Session {
            inbuf: Vec::new(),
            queue: VecDeque::new(),
            closing: false,
            eof: false,
            head_started: None,
            last_progress: now,
            done: Vec::new(),
            log: None,
        }
    }

    /// Logs this connection's requests to `tx`, with `peer` as the client address.
    pub fn log_to(&mut self, tx: LogSender, peer: std::sync::Arc<str>) {
        self.log = Some(Box::new(SessionLog { tx, peer }));
    }

    /// Request bytes the session takes now: 0 while closing or while the response queue
    /// is full (back-pressure: the transport leaves the rest where it is).
    pub fn input_room(&self) -> usize {
        if self.closing || self.queue.len() >= MAX_QUEUED {
            return 0;
        }
        (INBUF + http::MAX_HEAD).saturating_sub(self.inbuf.len())
    }

    /// Takes request bytes (at most [`Session::input_room`]; the caller asked).
    pub fn receive(&mut self, now: Instant, bytes: &[u8]) {
        let n = bytes.len().min(self.input_room());
        if n == 0 {
            return;
        }
        self.inbuf.extend_from_slice(&bytes[..n]);
        self.arrived(now);
    }

    /// Whether input waits only because the response queue is full.
    pub fn backpressured(&self) -> bool {
        !self.closing && self.queue.len() >= MAX_QUEUED
    }

    /// Lets `read` fill up to `max` bytes of free input room in place (a socket read);
    /// returns what it returned (`Ok(0)` is the caller's end of stream). With no room,
    /// `read` is not called and the answer is `WouldBlock`.
    pub fn read_with(
        &mut self,
        now: Instant,
        max: usize,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let len = self.inbuf.len();
        let n = max.min(self.input_room());
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.inbuf.resize(len + n, 0);
        let got = read(&mut self.inbuf[len..]);
        let took = *got.as_ref().unwrap_or(&0);
        self.inbuf.truncate(len + took.min(n));
        if took > 0 {
            self.arrived(now);
        }
        got
    }

    fn arrived(&mut self, now: Instant) {
        self.head_started.get_or_insert(now);
        self.last_progress = now;
    }

    /// The peer closed its sending side: complete requests are still answered.
    pub fn end_of_input(&mut self) {
        self.eof = true;
    }

    /// The connection failed: nothing more is sent.
    pub fn abort(&mut self) {
        self.closing = true;
        self.queue.clear();
    }

    /// Turns complete requests at the front of the input into queued responses. Returns
    /// true if requests wait behind a full queue.
    pub fn answer<R: Respond<Body = B>>(&mut self, now: Now, site: &mut R, metrics: &mut Metrics) -> bool {
        let mut full = false;
        while !self.closing && !self.inbuf.is_empty() {
            if self.queue.len() >= MAX_QUEUED {
                full = true;
                break;
            }
            let (head, consumed, body) = match http::parse(&self.inbuf) {
                Parsed::Partial => break,
                Parsed::Error { status, consumed, close, http11 } => {
                    (http::answer_error(status, http11, close, false, now.wall), consumed, None)
                }
                Parsed::Request(req, consumed) => {
                    let (head, body) = site.respond(&req, now.wall);
                    (head, consumed, body)
                }
            };
            self.push(now.mono, head, consumed, body, metrics);
        }
        if self.eof && !full {
            // Whatever is left is an incomplete request that can never complete.
            self.closing = true;
        }
        if self.inbuf.is_empty() {
            self.head_started = None;
        }
        full
    }

    fn push(&mut self, now: Instant, head: Head, consumed: usize, body: Option<B>, metrics: &mut Metrics) {
        metrics.count(head.status);
        let consumed = consumed.min(self.inbuf.len());
        let log = self.log.is_some().then(|| Box::new(access_log::Head::from_bytes(&self.inbuf[..consumed])));
        // An error's small text body travels with the head.
        let inline = match &log {
            Some(_) => head.bytes.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |p| head.bytes.len() - p - 4),
            None => 0,
        };
        self.inbuf.drain(..consumed);
        // The next request's head (if any bytes of it are here) starts now.
        self.head_started = (!self.inbuf.is_empty()).then_some(now);
        if head.close {
            self.closing = true;
        }
        self.queue.push_back(Response {
            head: head.bytes,
            head_off: 0,
            body,
            close: head.close,
            parsed: now,
            status: head.status.code(),
            sent: inline as u64,
            log,
        });
    }

    /// Sends queued responses in order until one has to wait or the queue is empty.
    pub fn flush<S: Sink<B>>(&mut self, now: Instant, sink: &mut S) -> io::Result<Flushed> {
        let mut finished = 0;
        while let Some(r) = self.queue.front_mut() {
            if r.head_off < r.head.len() {
                let p = sink.send_head(&r.head[r.head_off..])?;
                r.head_off = (r.head_off + p.bytes).min(r.head.len());
                if p.bytes > 0 {
                    self.last_progress = now;
                }
                if r.head_off < r.head.len() {
                    return Ok(Flushed { finished, wait: Some(p.wait.unwrap_or(Wait::Room)) });
                }
            }
            if let Some(b) = r.body.as_mut() {
                let p = sink.send_body(b)?;
                r.sent += p.bytes as u64;
                if p.bytes > 0 {
                    self.last_progress = now;
                }
                if let Some(w) = p.wait {
                    return Ok(Flushed { finished, wait: Some(w) });
                }
            }
            let close = r.close;
            if let Some(r) = self.queue.pop_front() {
                self.done.push(Finished { parsed: r.parsed, status: r.status, sent: r.sent, log: r.log });
            }
            finished += 1;
            if close {
                self.closing = true;
                self.queue.clear();
            }
        }
        Ok(Flushed { finished, wait: None })
    }

    /// Reads, answers and sends until the connection has to wait: for input, for room
    /// towards the peer, for a block read, or for pool memory.
    pub fn serve<T: Transport<B>>(&mut self, now: Now, t: &mut T, metrics: &mut Metrics) -> Served {
        let mut retry = false;
        loop {
            let input = match t.read(now.mono, self) {
                Ok(i) => i,
                Err(e) => {
                    log::debug!("reading: {e}");
                    return Served::ReadFailed;
                }
            };
            let waiting = self.answer(now, &mut t.respond(), metrics);
            let flushed = self.flush(now.mono, &mut t.sink(metrics));
            self.finished(now, metrics);
            let flushed = match flushed {
                Ok(f) => f,
                Err(e) => {
                    log::debug!("response aborted: {e}");
                    return Served::SendFailed;
                }
            };
            if self.is_done() {
                return Served::Done;
            }
            // Pool memory frees as other work completes, not by an event for this
            // connection: look again next turn.
            retry |= flushed.wait == Some(Wait::Memory);
            // Go on while sending made room for what waits: requests already read (behind
            // a full queue), or input that found no room.
            let answers = waiting && self.queue.len() < MAX_QUEUED;
            let reads = input == Input::Full && self.input_room() > 0;
            if !(answers || reads) {
                return Served::Open { retry };
            }
        }
    }

    /// Records the responses the last flush finished: their request time, and their
    /// access log lines (offered to the log thread, never waited for).
    fn finished(&mut self, now: Now, metrics: &mut Metrics) {
        for f in self.done.drain(..) {
            metrics.request_time.observe((now.mono - f.parsed).total_micros());
            if let (Some(l), Some(head)) = (&self.log, f.log) {
                let access_log::Head { request, referer, user_agent } = *head;
                l.tx.send(access_log::Entry {
                    peer: l.peer.clone(),
                    wall: now.wall,
                    request,
                    status: f.status,
                    body_bytes: f.sent,
                    referer,
                    user_agent,
                });
            }
        }
    }

    /// Buffered input, queued responses and state, in a line.
    pub fn describe(&self) -> String {
        format!(
            "input {} B, {} responses queued (front head {}/{}), closing {}, eof {}",
            self.inbuf.len(),
            self.queue.len(),
            self.queue.front().map_or(0, |r| r.head_off),
            self.queue.front().map_or(0, |r| r.head.len()),
            self.closing,
            self.eof
        )
    }

    /// Everything is answered and sent, and no more requests will be read: close.
    pub fn is_done(&self) -> bool {
        self.closing && self.queue.is_empty()
    }

    /// When the connection times out, and which timer that is: the write timer while
    /// responses are queued, the head timer while a request head is arriving, else idle.
    pub fn deadline(&self, limits: &Limits) -> (Instant, Timeout) {
        let after = |t: Instant, d: std::time::Duration| t + stack::Duration::from_micros(d.as_micros() as u64);
        if !self.queue.is_empty() {
            (after(self.last_progress, limits.write_timeout), Timeout::Write)
        } else if let Some(t) = self.head_started {
            (after(t, limits.head_timeout), Timeout::Head)
        } else {
            (after(self.last_progress, limits.idle_timeout), Timeout::Idle)
        }
    }

    /// The bodies of queued responses, front first (to hand them finished block reads).
    pub fn bodies_mut(&mut self) -> impl Iterator<Item = &mut B> {
        self.queue.iter_mut().filter_map(|r| r.body.as_mut())
    }
}

#[cfg(test)]
mod tests;
