//! A response body on its way to the socket, and the page-cache rungs that move it:
//! `read-write`, `mmap`, `sendfile` and `splice` (`msg-zerocopy` and `direct-uring` have
//! modules of their own).

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use fileserver_sys::FileMap;
use mio::net::TcpStream;
use rustix::pipe::{PipeFlags, SpliceFlags};

use super::method::Method;
use crate::blocks::BlockStream;
use crate::metrics::Metrics;
use crate::session::{Progress, Wait};

/// Staging buffer of `read-write`, and the most one `splice` moves into the pipe.
pub(super) const STAGE: usize = 64 * 1024;

/// Where the body's bytes come from.
#[derive(Debug)]
pub(super) enum Source {
    /// `read-write`, `sendfile`, `splice`: the open file.
    File(File),
    /// `mmap`, `msg-zerocopy`: a mapping of the file (shared while zero-copy sends of it
    /// are unconfirmed).
    Map(Rc<FileMap>),
    /// `direct-uring`: blocks read into the pool.
    Blocks(BlockStream),
}

/// The bytes `pos..end` of a file still to send.
#[derive(Debug)]
pub(super) struct Body {
    pub pos: u64,
    pub end: u64,
    pub src: Source,
    stage: Vec<u8>,
    stage_off: usize,
    /// `msg-zerocopy`: id of the last zero-copy send of this body.
    pub zc_last: Option<u32>,
}

impl Body {
    pub fn new(src: Source, start: u64, end: u64) -> Body {
        Body { pos: start, end, src, stage: Vec::new(), stage_off: 0, zc_last: None }
    }

    /// The block stream of a `direct-uring` body.
    pub fn stream_mut(&mut self) -> Option<&mut BlockStream> {
        match &mut self.src {
            Source::Blocks(s) => Some(s),
            _ => None,
        }
    }
}

/// A connection's pipe for `splice`: (read end, write end, bytes in it).
pub(super) type Pipe = (OwnedFd, OwnedFd, usize);

/// Moves body bytes with one of the page-cache methods, until the body is complete or the
/// socket is full (try again when writable).
pub(super) fn send(
    method: Method,
    sock: &mut TcpStream,
    b: &mut Body,
    pipe: &mut Option<Pipe>,
    m: &mut Metrics,
) -> std::io::Result<Progress> {
    let mut sent = 0;
    loop {
        let progressed = match (method, &b.src) {
            (Method::ReadWrite, Source::File(file)) => {
                if b.stage_off == b.stage.len() {
                    if b.pos == b.end {
                        return Ok(Progress::done(sent));
                    }
                    let n = STAGE.min((b.end - b.pos) as usize);
                    b.stage.resize(n, 0);
                    b.stage_off = 0;
                    let got = file.read_at(&mut b.stage[..n], b.pos)?;
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
                        n
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Progress::blocked(sent, Wait::Room)),
                    Err(e) => return Err(e),
                }
            }
            (Method::Mmap, Source::Map(map)) => {
                if b.pos == b.end {
                    return Ok(Progress::done(sent));
                }
                let bytes = map.as_slice().get(b.pos as usize..b.end as usize).ok_or(ErrorKind::UnexpectedEof)?;
                match sock.write(bytes) {
                    Ok(n) => {
                        b.pos += n as u64;
                        m.bytes_copied += n as u64;
                        m.bytes_sent += n as u64;
                        n
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Progress::blocked(sent, Wait::Room)),
                    Err(e) => return Err(e),
                }
            }
            (Method::Sendfile, Source::File(file)) => {
                if b.pos == b.end {
                    return Ok(Progress::done(sent));
                }
                let want = (b.end - b.pos).min(1 << 30) as usize;
                match rustix::fs::sendfile(&*sock, file, Some(&mut b.pos), want) {
                    Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                    Ok(n) => {
                        m.bytes_sent += n as u64;
                        n
                    }
                    Err(rustix::io::Errno::AGAIN) => return Ok(Progress::blocked(sent, Wait::Room)),
                    Err(e) => return Err(e.into()),
                }
            }
            (Method::Splice, Source::File(file)) => {
                if pipe.is_none() {
                    let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
                    *pipe = Some((r, w, 0));
                }
                let Some((r, w, inpipe)) = pipe.as_mut() else { return Err(ErrorKind::Other.into()) };
                if *inpipe == 0 {
                    if b.pos == b.end {
                        return Ok(Progress::done(sent));
                    }
                    let want = (b.end - b.pos).min(STAGE as u64) as usize;
                    let n = rustix::pipe::splice(
                        file,
                        Some(&mut b.pos),
                        &*w,
                        None,
                        want,
                        SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
                    )?;
                    if n == 0 {
                        return Err(ErrorKind::UnexpectedEof.into());
                    }
                    *inpipe = n;
                }
                // SPLICE_F_MORE corks the socket like MSG_MORE: only while more of the body
                // follows, or the response's last partial segment waits for the cork timer.
                let more = if b.pos < b.end { SpliceFlags::MORE } else { SpliceFlags::empty() };
                match rustix::pipe::splice(
                    &*r,
                    None,
                    &*sock,
                    None,
                    *inpipe,
                    SpliceFlags::MOVE | SpliceFlags::NONBLOCK | more,
                ) {
                    Ok(n) => {
                        *inpipe -= n;
                        m.bytes_sent += n as u64;
                        n
                    }
                    Err(rustix::io::Errno::AGAIN) => return Ok(Progress::blocked(sent, Wait::Room)),
                    Err(e) => return Err(e.into()),
                }
            }
            _ => return Err(std::io::Error::other("body source does not match the method")),
        };
        if progressed == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
        sent += progressed;
    }
}
