//! A file descriptor kept in reserve for when the process runs out of them. `accept`
//! failing with `EMFILE`/`ENFILE` leaves the connection in the listener's queue, and an
//! edge-triggered listener then stays readable with nobody able to take from it: every
//! client behind it hangs. With a descriptor in reserve (libev's and nginx's answer), the
//! reserve is closed, one waiting connection is accepted, told 503 and closed, and the
//! reserve is taken again; the connections already open are served as before.

use std::fs::File;
use std::io::{ErrorKind, Write};

use mio::net::TcpListener;

use crate::metrics::worth_logging;

/// What a shed connection is told.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n";

/// The reserve and what it did.
#[derive(Debug)]
pub(super) struct Reserve {
    fd: Option<File>,
    /// `accept` failures for want of a descriptor.
    pub exhausted: u64,
    /// Connections accepted with the reserve, answered 503 and closed.
    pub shed: u64,
}

impl Reserve {
    /// Takes the reserve descriptor.
    pub fn new() -> Reserve {
        Reserve { fd: spare(), exhausted: 0, shed: 0 }
    }

    /// Whether `e` (from `accept`) says the process or system is out of descriptors.
    pub fn is_exhaustion(e: &std::io::Error) -> bool {
        matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
    }

    /// After `accept` failed for want of a descriptor: frees the reserve, sheds one waiting
    /// connection (503, then closed), and takes the reserve again.
    pub fn shed(&mut self, l: &TcpListener) -> Shed {
        self.exhausted += 1;
        if worth_logging(self.exhausted) {
            log::warn!(
                "accept: out of file descriptors; shedding waiting connections with 503 ({} times so far)",
                self.exhausted
            );
        }
        if self.fd.take().is_none() {
            self.fd = spare();
            return Shed::NoReserve;
        }
        let shed = match l.accept() {
            Ok((mut s, _)) => {
                // Best effort: the socket is new, its buffer empty.
                let _ = s.write(BUSY);
                self.shed += 1;
                Shed::One
            }
            // (The kernel says EMFILE before it looks at the queue.)
            Err(e) if e.kind() == ErrorKind::WouldBlock => Shed::Empty,
            Err(_) => Shed::NoReserve,
        };
        self.fd = spare();
        shed
    }
}

/// What [`Reserve::shed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shed {
    /// One connection was told 503 and closed: more may wait.
    One,
    /// Nobody waits: the next arrival wakes the listener again.
    Empty,
    /// The reserve could not be used (it was not held, or the accept failed anyway):
    /// try again on a later turn.
    NoReserve,
}

fn spare() -> Option<File> {
    File::open("/dev/null").ok()
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::time::Duration;

    use super::*;
    use crate::privdrop::seccomp::tests::{in_child, is_child};

    #[test]
    fn out_of_descriptors_a_waiting_connection_is_told_503_not_left_hanging() {
        if !is_child() {
            let out = in_child(
                "kernel::reserve::tests::out_of_descriptors_a_waiting_connection_is_told_503_not_left_hanging",
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{}\n{err}", String::from_utf8_lossy(&out.stdout));
            return;
        }
        let l = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reserve = Reserve::new();
        assert!(reserve.fd.is_some());
        // No descriptor left: the limit just above the highest open one, the holes below
        // it filled. Then accept fails with EMFILE.
        let highest = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap();
        let lim = rustix::process::Rlimit {
            current: Some(highest + 1),
            maximum: rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum,
        };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, lim).unwrap();
        let mut filler = Vec::new();
        while let Ok(f) = File::open("/dev/null") {
            filler.push(f);
        }
        let e = l.accept().expect_err("accept found a free descriptor");
        assert!(Reserve::is_exhaustion(&e), "{e}");
        assert_eq!(reserve.shed(&l), Shed::One, "nothing shed");
        assert_eq!((reserve.exhausted, reserve.shed), (1, 1));
        let mut got = String::new();
        client.read_to_string(&mut got).unwrap();
        assert!(got.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{got:?}");
        assert!(reserve.fd.is_some(), "the reserve was taken again");
        // An empty queue: nothing to shed, and the reserve is kept.
        assert_eq!(reserve.shed(&l), Shed::Empty);
        assert!(reserve.fd.is_some());
    }
}
