//! The session over a scripted transport: a sink that takes so many bytes per call, and a
//! site that answers every path with a body of a length named in the path.

use std::time::{Duration, SystemTime};

use super::*;
use crate::http::{self, Status};

/// A body of `left` bytes of `byte`.
#[derive(Debug)]
struct Fake {
    byte: u8,
    left: usize,
}

/// Answers `/N` with N bytes of the path's last character; anything else 404.
struct Site;

impl Respond for Site {
    type Body = Fake;
    fn respond(&mut self, req: &http::Request, wall: SystemTime) -> (Head, Option<Fake>) {
        let Ok(n) = req.path[1..].parse::<usize>() else {
            return (http::answer_error(Status::NotFound, req.http11, !req.keep_alive, req.head_only, wall), None);
        };
        let head =
            Head { status: Status::Ok, bytes: format!("H{n}|").into_bytes(), body: None, close: !req.keep_alive };
        (head, Some(Fake { byte: req.path.as_bytes()[req.path.len() - 1], left: n }))
    }
}

/// Takes at most `room` bytes per flush; records what it got.
struct Wire {
    room: usize,
    got: Vec<u8>,
}

impl Wire {
    fn take(&mut self, want: usize) -> usize {
        let n = want.min(self.room);
        self.room -= n;
        n
    }
}

impl Sink<Fake> for Wire {
    fn send_head(&mut self, bytes: &[u8]) -> io::Result<Progress> {
        let n = self.take(bytes.len());
        self.got.extend_from_slice(&bytes[..n]);
        Ok(if n == bytes.len() { Progress::done(n) } else { Progress::blocked(n, Wait::Room) })
    }
    fn send_body(&mut self, b: &mut Fake) -> io::Result<Progress> {
        let n = self.take(b.left);
        self.got.extend(std::iter::repeat_n(b.byte, n));
        b.left -= n;
        Ok(if b.left == 0 { Progress::done(n) } else { Progress::blocked(n, Wait::Room) })
    }
}

fn at(ms: i64) -> Now {
    Now { mono: Instant::from_millis(ms), wall: SystemTime::UNIX_EPOCH }
}

fn limits() -> Limits {
    Limits {
        max_connections: 10,
        head_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(5),
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n")
}

#[test]
fn pipelined_requests_are_answered_in_order_through_a_narrow_sink() {
    let mut s: Session<Fake> = Session::new(Instant::ZERO);
    let mut m = Metrics::default();
    let input = format!("{}{}{}", get("/3"), get("/nope"), get("/5"));
    s.receive(Instant::ZERO, input.as_bytes());
    s.answer(at(0), &mut Site, &mut m);
    assert_eq!(m.requests, 3);
    let mut wire = Wire { room: 0, got: Vec::new() };
    let mut t = 0;
    while !(wire.got.ends_with(b"55555")) {
        t += 10;
        wire.room = 4;
        let f = s.flush(Instant::from_millis(t), &mut wire).unwrap();
        assert!(t < 10_000, "stuck: {:?} {f:?}", String::from_utf8_lossy(&wire.got));
    }
    let text = String::from_utf8(wire.got).unwrap();
    assert!(text.starts_with("H3|333HTTP/1.1 404 Not Found\r\n"), "{text}");
    assert!(text.ends_with("H5|55555"), "{text}");
    assert!(!s.is_done(), "keep-alive");
    // Progress moves the write timer; with nothing queued the idle timer runs.
    assert_eq!(s.deadline(&limits()), (Instant::from_millis(t) + stack::Duration::from_secs(30), Timeout::Idle));
}

#[test]
fn connection_close_answers_then_reads_no_more() {
    let mut s: Session<Fake> = Session::new(Instant::ZERO);
    let mut m = Metrics::default();
    let input = format!("GET /2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n{}", get("/4"));
    s.receive(Instant::ZERO, input.as_bytes());
    s.answer(at(0), &mut Site, &mut m);
    assert_eq!(m.requests, 1, "the request after the close is not answered");
    assert_eq!(s.input_room(), 0);
    let mut wire = Wire { room: 100, got: Vec::new() };
    s.flush(Instant::ZERO, &mut wire).unwrap();
    assert_eq!(wire.got, b"H2|22");
    assert!(s.is_done());
}

#[test]
fn timers_follow_the_phase_and_a_dribbled_head_does_not_restart_its_timer() {
    let l = limits();
    let mut s: Session<Fake> = Session::new(Instant::ZERO);
    let mut m = Metrics::default();
    assert_eq!(s.deadline(&l).1, Timeout::Idle);
    s.receive(Instant::from_millis(100), b"GET /1 HT");
    s.answer(at(100), &mut Site, &mut m);
    s.receive(Instant::from_millis(1500), b"TP/1.1\r\n");
    s.answer(at(1500), &mut Site, &mut m);
    assert_eq!(s.deadline(&l), (Instant::from_millis(2100), Timeout::Head), "counted from the first byte");
    s.receive(Instant::from_millis(1900), b"Host: h\r\n\r\n");
    s.answer(at(1900), &mut Site, &mut m);
    assert_eq!(s.deadline(&l), (Instant::from_millis(6900), Timeout::Write), "a response is queued");
    let mut wire = Wire { room: 100, got: Vec::new() };
    s.flush(Instant::from_millis(2000), &mut wire).unwrap();
    assert_eq!(s.deadline(&l), (Instant::from_millis(32_000), Timeout::Idle));
}

#[test]
fn the_queue_bounds_input_and_end_of_input_still_answers_what_is_complete() {
    let mut s: Session<Fake> = Session::new(Instant::ZERO);
    let mut m = Metrics::default();
    let many: String = (0..MAX_QUEUED + 2).map(|_| get("/1")).collect();
    s.receive(Instant::ZERO, many.as_bytes());
    s.end_of_input();
    s.answer(at(0), &mut Site, &mut m);
    assert_eq!(m.requests as usize, MAX_QUEUED);
    assert!(s.backpressured());
    assert_eq!(s.input_room(), 0, "a full queue takes no more input");
    let mut wire = Wire { room: 1000, got: Vec::new() };
    assert_eq!(s.flush(Instant::ZERO, &mut wire).unwrap().finished, MAX_QUEUED);
    assert!(!s.is_done(), "two complete requests are still unanswered");
    s.answer(at(0), &mut Site, &mut m);
    s.flush(Instant::ZERO, &mut wire).unwrap();
    assert_eq!(m.requests as usize, MAX_QUEUED + 2);
    assert!(s.is_done(), "the peer closed and everything was answered");
}

#[test]
fn a_partial_head_at_end_of_input_closes() {
    let mut s: Session<Fake> = Session::new(Instant::ZERO);
    let mut m = Metrics::default();
    s.receive(Instant::ZERO, b"GET /1 HTTP/1.1\r\nHo");
    s.end_of_input();
    s.answer(at(0), &mut Site, &mut m);
    assert_eq!(m.requests, 0);
    assert!(s.is_done());
}

#[test]
fn read_with_fills_in_place_and_never_reads_into_no_room() {
    let mut s: Session<Fake> = Session::new(Instant::ZERO);
    let req = get("/7");
    let n = s
        .read_with(Instant::from_millis(5), 4096, |buf| {
            buf[..req.len()].copy_from_slice(req.as_bytes());
            Ok(req.len())
        })
        .unwrap();
    assert_eq!(n, req.len());
    let mut m = Metrics::default();
    s.answer(at(5), &mut Site, &mut m);
    assert_eq!(m.requests, 1);
    s.abort();
    let r = s.read_with(Instant::ZERO, 4096, |_| panic!("read called with no room"));
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::WouldBlock);
    assert!(s.is_done());
}

/// A transport over an input script and a [`Wire`].
struct Script {
    input: Vec<u8>,
    at: usize,
    wire: Wire,
    fail_read: bool,
}

impl Transport<Fake> for Script {
    fn read(&mut self, now: Instant, session: &mut Session<Fake>) -> io::Result<Input> {
        if self.fail_read {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        while session.input_room() > 0 {
            if self.at == self.input.len() {
                return Ok(Input::Drained);
            }
            let n = session.input_room().min(self.input.len() - self.at).min(100);
            session.receive(now, &self.input[self.at..self.at + n]);
            self.at += n;
        }
        Ok(Input::Full)
    }
    fn respond(&mut self) -> impl Respond<Body = Fake> + '_ {
        Site
    }
    fn sink<'a>(&'a mut self, _metrics: &'a mut Metrics) -> impl Sink<Fake> + 'a {
        &mut self.wire
    }
}

impl<B, S: Sink<B>> Sink<B> for &mut S {
    fn send_head(&mut self, bytes: &[u8]) -> io::Result<Progress> {
        (**self).send_head(bytes)
    }
    fn send_body(&mut self, body: &mut B) -> io::Result<Progress> {
        (**self).send_body(body)
    }
}

#[test]
fn serve_reads_on_while_answering_makes_room() {
    let n = 3 * MAX_QUEUED;
    let input: String = (0..n).map(|_| get("/2")).collect();
    let mut t =
        Script { input: input.into_bytes(), at: 0, wire: Wire { room: usize::MAX, got: Vec::new() }, fail_read: false };
    let mut s: Session<Fake> = Session::new(Instant::ZERO);
    let mut m = Metrics::default();
    assert_eq!(s.serve(at(0), &mut t, &mut m), Served::Open { retry: false });
    assert_eq!(m.requests as usize, n, "every request answered in one call, past the queue's bound");
    assert_eq!(t.wire.got, "H2|22".repeat(n).into_bytes());

    // With no room towards the peer the queue fills, input stops, and serving resumes later.
    let input: String = (0..n).map(|_| get("/1")).collect();
    let mut t = Script { input: input.into_bytes(), at: 0, wire: Wire { room: 0, got: Vec::new() }, fail_read: false };
    let mut s: Session<Fake> = Session::new(Instant::ZERO);
    let mut m = Metrics::default();
    assert_eq!(s.serve(at(0), &mut t, &mut m), Served::Open { retry: false });
    assert_eq!(m.requests as usize, MAX_QUEUED);
    t.wire.room = usize::MAX;
    s.serve(at(1), &mut t, &mut m);
    assert_eq!(m.requests as usize, n);
    assert_eq!(t.wire.got.len(), 4 * n);
}

#[test]
fn serve_says_how_the_connection_ends() {
    let mut s: Session<Fake> = Session::new(Instant::ZERO);
    let mut m = Metrics::default();
    let mut t = Script { input: Vec::new(), at: 0, wire: Wire { room: 0, got: Vec::new() }, fail_read: true };
    assert_eq!(s.serve(at(0), &mut t, &mut m), Served::ReadFailed);
    let close = b"GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".to_vec();
    let mut t = Script { input: close, at: 0, wire: Wire { room: 100, got: Vec::new() }, fail_read: false };
    let mut s: Session<Fake> = Session::new(Instant::ZERO);
    assert_eq!(s.serve(at(0), &mut t, &mut m), Served::Done);
}

#[test]
fn finished_responses_are_timed_and_logged_with_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let reopen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log = access_log::AccessLog::start(access_log::Target::File(path.clone()), 64, reopen).unwrap();
    let input = "GET /5 HTTP/1.1\r\nHost: h\r\nUser-Agent: a \"b\"\r\n\r\nGET /nope HTTP/1.1\r\nHost: h\r\nReferer: http://r/\r\n\r\n";
    let mut t =
        Script { input: input.as_bytes().to_vec(), at: 0, wire: Wire { room: 5, got: Vec::new() }, fail_read: false };
    let mut s: Session<Fake> = Session::new(Instant::ZERO);
    s.log_to(log.sender(), "192.0.2.7".into());
    let mut m = Metrics::default();
    s.serve(at(0), &mut t, &mut m);
    assert_eq!(m.request_time.count(), 0, "nothing finished: the wire took 5 bytes");
    t.wire.room = 3;
    s.serve(at(3), &mut t, &mut m); // the head and 5 body bytes are 8 bytes: /5 finishes at 3 ms
    t.wire.room = usize::MAX;
    s.serve(at(40), &mut t, &mut m);
    assert_eq!(m.request_time.count(), 2);
    let buckets: Vec<u64> = m.request_time.cumulative().map(|b| b.1).collect();
    assert_eq!(buckets[crate::prom::BUCKETS_US.partition_point(|&b| b < 3_000)], 1, "3 ms: {buckets:?}");
    assert_eq!(buckets[crate::prom::BUCKETS_US.partition_point(|&b| b < 40_000)], 2, "40 ms: {buckets:?}");
    log.finish();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "192.0.2.7 - - [01/Jan/1970:00:00:00 +0000] \"GET /5 HTTP/1.1\" 200 5 \"-\" \"a \\x22b\\x22\"",
            "192.0.2.7 - - [01/Jan/1970:00:00:00 +0000] \"GET /nope HTTP/1.1\" 404 14 \"http://r/\" \"-\"",
        ]
    );
}
