//! The kernel backend's side of a session: request bytes read from the socket
//! ([`KernelTransport`]), requests answered with bodies in the form the method wants
//! ([`KernelSite`]), and responses written to the socket with it ([`KernelSink`]).

use std::io::{self, ErrorKind, Read, Write};
use std::rc::Rc;
use std::time::SystemTime;

use fileserver_sys::FileMap;
use mio::net::TcpStream;

use super::body::{self, Body, Pipe, Source};
use super::direct::{self, Direct};
use super::method::Method;
use super::zerocopy::{self, ZcConn, ZcStats};
use crate::http::{self, ByteRange, Head, Request};
use crate::metrics::Metrics;
use crate::root::{Opened, Root};
use crate::session::table::SessionId;
use crate::session::{file_answer, Input, Progress, Respond, Session, Sink, Transport, Wait};
use stack::Instant;

/// Bytes read from a socket per call.
const READ_CHUNK: usize = 4096;

/// One connection's socket, and what answering and sending on it need.
pub(super) struct KernelTransport<'a> {
    pub sock: &'a mut TcpStream,
    pub pipe: &'a mut Option<Pipe>,
    pub zc: Option<&'a mut ZcConn>,
    pub zc_stats: &'a mut ZcStats,
    pub root: &'a Root,
    pub method: Method,
    pub direct: Option<&'a mut Direct>,
    /// The counters' text, on the control port.
    pub control: Option<&'a str>,
    pub id: SessionId,
}

impl Transport<Body> for KernelTransport<'_> {
    fn read(&mut self, now: Instant, session: &mut Session<Body>) -> io::Result<Input> {
        loop {
            if session.input_room() == 0 {
                return Ok(Input::Full);
            }
            match session.read_with(now, READ_CHUNK, |buf| self.sock.read(buf)) {
                Ok(0) => {
                    session.end_of_input();
                    return Ok(Input::Drained);
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Input::Drained),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn respond(&mut self) -> impl Respond<Body = Body> + '_ {
        KernelSite { root: self.root, method: self.method, direct: self.direct.as_deref_mut(), control: self.control }
    }

    fn sink<'a>(&'a mut self, metrics: &'a mut Metrics) -> impl Sink<Body> + 'a {
        KernelSink {
            sock: self.sock,
            method: self.method,
            pipe: self.pipe,
            zc: self.zc.as_deref_mut(),
            zc_stats: self.zc_stats,
            direct: self.direct.as_deref_mut(),
            id: self.id,
            metrics,
        }
    }
}

/// Answers requests for one connection.
pub(super) struct KernelSite<'a> {
    pub root: &'a Root,
    pub method: Method,
    pub direct: Option<&'a mut Direct>,
    /// The counters' text, on the control port.
    pub control: Option<&'a str>,
}

impl Respond for KernelSite<'_> {
    type Body = Body;

    fn respond(&mut self, req: &Request, wall: SystemTime) -> (Head, Option<Body>) {
        if let Some(text) = self.control {
            return (http::answer_text(req, text, wall), None);
        }
        let (method, direct) = (self.method, self.direct.as_deref_mut());
        file_answer(self.root, req, wall, |o, r| open_body(method, direct, o, r))
    }
}

/// The body of a response as the method wants it; Err (logged) means 500.
fn open_body(method: Method, direct: Option<&mut Direct>, o: Opened, r: ByteRange) -> Result<Body, ()> {
    let src = if method.maps() {
        let map = FileMap::new(&o.file, r.end as usize).map_err(|e| log::warn!("{}: mmap: {e}", o.path))?;
        Source::Map(Rc::new(map))
    } else if let Some(d) = direct {
        Source::Blocks(d.blocks.open(o.file, r).map_err(|e| log::warn!("{}: {e}", o.path))?)
    } else {
        Source::File(o.file)
    };
    Ok(Body::new(src, r.start, r.end))
}

/// Writes one connection's responses to its socket.
pub(super) struct KernelSink<'a> {
    pub sock: &'a mut TcpStream,
    pub method: Method,
    pub pipe: &'a mut Option<Pipe>,
    pub zc: Option<&'a mut ZcConn>,
    pub zc_stats: &'a mut ZcStats,
    pub direct: Option<&'a mut Direct>,
    pub id: SessionId,
    pub metrics: &'a mut Metrics,
}

impl Sink<Body> for KernelSink<'_> {
    fn send_head(&mut self, bytes: &[u8]) -> io::Result<Progress> {
        let mut n = 0;
        while n < bytes.len() {
            match self.sock.write(&bytes[n..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(k) => n += k,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Progress::blocked(n, Wait::Room)),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Progress::done(n))
    }

    fn send_body(&mut self, b: &mut Body) -> io::Result<Progress> {
        match (self.method, self.direct.as_deref_mut(), self.zc.as_deref_mut()) {
            (Method::DirectUring, Some(d), _) => direct::send(d, self.id, self.sock, b, self.metrics),
            (Method::MsgZerocopy, _, Some(zc)) => zerocopy::send(self.sock, b, zc, self.zc_stats, self.metrics),
            (m, _, _) => body::send(m, self.sock, b, self.pipe, self.metrics),
        }
    }
}
