//! `ppoll(2)` over raw descriptors with a microsecond timeout: the AF_XDP worker waits on
//! its AF_XDP socket, its io_uring and a wake-up eventfd at once, and neither the socket
//! nor the ring hands out a `BorrowedFd` (both expose `AsRawFd` only). A descriptor that
//! is closed is reported as `POLLNVAL`, never touched, so raw numbers are memory-safe here.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Readable (`POLLIN`).
pub const READABLE: i16 = libc::POLLIN;

/// One descriptor to wait on, and what happened to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    /// The descriptor.
    pub fd: RawFd,
    /// Events wanted (`READABLE`).
    pub events: i16,
    /// Events that happened (filled in by [`wait`]).
    pub revents: i16,
}

impl Wait {
    /// Waits for `fd` to be readable.
    pub fn readable(fd: RawFd) -> Wait {
        Wait { fd, events: READABLE, revents: 0 }
    }
}

/// Waits until one of `fds` is ready or `timeout` passes (`None`: no limit). Returns how
/// many are ready; 0 on timeout or when a signal interrupted the wait (`EINTR`: the caller
/// looks at its flags and turns again).
pub fn wait(fds: &mut [Wait], timeout: Option<Duration>) -> io::Result<usize> {
    let mut pfds = [libc::pollfd { fd: -1, events: 0, revents: 0 }; 8];
    if fds.len() > pfds.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "at most 8 descriptors"));
    }
    for (p, w) in pfds.iter_mut().zip(fds.iter()) {
        *p = libc::pollfd { fd: w.fd, events: w.events, revents: 0 };
    }
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `pfds` holds `fds.len()` initialized pollfds, exclusively borrowed for the
    // call; `ts_ptr` is null or points at a timespec that outlives the call; no signal
    // mask is passed.
    let rc = unsafe { libc::ppoll(pfds.as_mut_ptr(), fds.len() as libc::nfds_t, ts_ptr, std::ptr::null()) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::EINTR) { Ok(0) } else { Err(e) };
    }
    for (w, p) in fds.iter_mut().zip(pfds.iter()) {
        w.revents = p.revents;
    }
    Ok(rc as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::time::Instant;

    #[test]
    fn a_readable_pipe_wakes_the_wait_and_an_empty_one_times_out() {
        let (r, mut w) = io::pipe().unwrap();
        let mut fds = [Wait::readable(r.as_raw_fd())];
        let start = Instant::now();
        assert_eq!(wait(&mut fds, Some(Duration::from_millis(20))).unwrap(), 0);
        assert!(start.elapsed() >= Duration::from_millis(15), "returned early: {:?}", start.elapsed());
        assert_eq!(fds[0].revents, 0);
        w.write_all(b"x").unwrap();
        assert_eq!(wait(&mut fds, None).unwrap(), 1);
        assert_ne!(fds[0].revents & READABLE, 0);
    }

    #[test]
    fn sub_millisecond_timeouts_are_kept() {
        let (r, _w) = io::pipe().unwrap();
        let mut fds = [Wait::readable(r.as_raw_fd())];
        let start = Instant::now();
        for _ in 0..10 {
            wait(&mut fds, Some(Duration::from_micros(300))).unwrap();
        }
        // ppoll keeps microseconds: ten waits of 300 us take at least 3 ms, where a
        // millisecond poll(2) timeout would round each to 0 and spin.
        let took = start.elapsed();
        assert!(took >= Duration::from_micros(2500), "{took:?}");
    }
}
