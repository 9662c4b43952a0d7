//! The `msg-zerocopy` rung: `send(MSG_ZEROCOPY)` from a file mapping, with the kernel's
//! completion notifications read from the socket's error queue (see `fileserver_sys::zerocopy`).
//!
//! Every successful send call gets the socket's next id. A body's mapping is kept (shared
//! with an `Rc`) until the notification for its last call arrived, so the pages the kernel
//! pinned stay the pages it was given. Notifications flagged `copied` are counted: on veth
//! and loopback the receiving socket is local and the kernel copies on delivery, which is
//! exactly what this rung measures.

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;

use fileserver_sys::zerocopy::{self, Notice};
use fileserver_sys::FileMap;
use mio::net::TcpStream;

use super::body::{Body, Source};
use crate::metrics::Metrics;
use crate::session::{Progress, Wait};

/// What the kernel told us, server-wide.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ZcStats {
    /// Successful `MSG_ZEROCOPY` send calls.
    pub sends: u64,
    /// Send calls whose completion was notified.
    pub completed: u64,
    /// Of those, calls the kernel copied after all (`SO_EE_CODE_ZEROCOPY_COPIED`).
    pub copied_calls: u64,
    /// Bytes of those calls.
    pub copied_bytes: u64,
    /// Bytes sent with a plain write because `MSG_ZEROCOPY` gave `ENOBUFS` (too many
    /// notifications outstanding) or the socket refused `SO_ZEROCOPY`.
    pub plain_bytes: u64,
    /// Calls still unconfirmed when their connection closed.
    pub unconfirmed_at_close: u64,
    /// Error-queue reads that failed.
    pub reap_errors: u64,
}

#[derive(Debug)]
struct Sent {
    id: u32,
    len: u64,
    done: bool,
}

/// One connection's zero-copy bookkeeping.
#[derive(Debug)]
pub(super) struct ZcConn {
    /// `SO_ZEROCOPY` is on (else bodies go out with plain writes, counted).
    enabled: bool,
    next: u32,
    /// Unconfirmed calls, oldest first (ids consecutive).
    sent: VecDeque<Sent>,
    /// Mappings of finished bodies, with the id of their last call.
    retired: VecDeque<(u32, Rc<FileMap>)>,
    notes: Vec<Notice>,
}

impl ZcConn {
    pub fn new(sock: BorrowedFd<'_>) -> ZcConn {
        let enabled = match zerocopy::enable(sock) {
            Ok(()) => true,
            Err(e) => {
                log::warn!("{e}; this connection's bodies go out with plain writes");
                false
            }
        };
        ZcConn { enabled, next: 0, sent: VecDeque::new(), retired: VecDeque::new(), notes: Vec::new() }
    }

    /// Whether any call is unconfirmed.
    pub fn busy(&self) -> bool {
        !self.sent.is_empty()
    }

    /// Reads the notifications that arrived and lets go of mappings fully confirmed.
    pub fn reap(&mut self, sock: BorrowedFd<'_>, st: &mut ZcStats) {
        if self.sent.is_empty() {
            return;
        }
        self.notes.clear();
        if let Err(e) = zerocopy::reap(sock, &mut self.notes) {
            st.reap_errors += 1;
            log::debug!("recvmsg(MSG_ERRQUEUE): {e}");
        }
        for n in &self.notes {
            let Some(first) = self.sent.front().map(|s| s.id) else { break };
            let offset = n.lo.wrapping_sub(first) as usize;
            for s in self.sent.iter_mut().skip(offset).take(n.calls() as usize) {
                if !s.done {
                    s.done = true;
                    st.completed += 1;
                    if n.copied {
                        st.copied_calls += 1;
                        st.copied_bytes += s.len;
                    }
                }
            }
        }
        while self.sent.front().is_some_and(|s| s.done) {
            self.sent.pop_front();
        }
        let oldest = self.sent.front().map(|s| s.id);
        while let Some(&(last, _)) = self.retired.front() {
            // Confirmed when no unconfirmed call is at or before `last`.
            let confirmed = oldest.is_none_or(|o| (last.wrapping_sub(o) as i32) < 0);
            if !confirmed {
                break;
            }
            self.retired.pop_front();
        }
    }

    /// Counts what is still unconfirmed as the connection closes. The kernel keeps its own
    /// references to the pages it pinned, so dropping the mappings now frees nothing it uses.
    pub fn close(&mut self, st: &mut ZcStats) {
        st.unconfirmed_at_close += self.sent.iter().filter(|s| !s.done).count() as u64;
    }
}

/// Sends body bytes with `MSG_ZEROCOPY` until the body is complete (its mapping is then
/// retired until confirmed) or the socket is full.
pub(super) fn send(
    sock: &mut TcpStream,
    b: &mut Body,
    zc: &mut ZcConn,
    st: &mut ZcStats,
    m: &mut Metrics,
) -> std::io::Result<Progress> {
    let Source::Map(map) = &b.src else { return Err(std::io::Error::other("msg-zerocopy body without a mapping")) };
    let map = map.clone();
    let start = b.pos;
    let sent = |b: &Body| (b.pos - start) as usize;
    loop {
        if b.pos == b.end {
            if let Some(last) = b.zc_last.take() {
                zc.retired.push_back((last, map));
            }
            return Ok(Progress::done(sent(b)));
        }
        let bytes = map.as_slice().get(b.pos as usize..b.end as usize).ok_or(ErrorKind::UnexpectedEof)?;
        let res =
            if zc.enabled { zerocopy::send(sock.as_fd(), bytes, false) } else { Err(ErrorKind::Unsupported.into()) };
        match res {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                let id = zc.next;
                zc.next = id.wrapping_add(1);
                zc.sent.push_back(Sent { id, len: n as u64, done: false });
                b.zc_last = Some(id);
                b.pos += n as u64;
                st.sends += 1;
                m.bytes_sent += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Progress::blocked(sent(b), Wait::Room)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::NOBUFS.raw_os_error())
                    || e.kind() == ErrorKind::Unsupported =>
            {
                // Too many notifications outstanding (or no SO_ZEROCOPY): this chunk goes
                // out through the socket buffer, like `mmap`.
                zc.reap(sock.as_fd(), st);
                match sock.write(bytes) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        b.pos += n as u64;
                        st.plain_bytes += n as u64;
                        m.bytes_copied += n as u64;
                        m.bytes_sent += n as u64;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Progress::blocked(sent(b), Wait::Room)),
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}
