//! `MSG_ZEROCOPY` sends on kernel TCP sockets and their completion notifications: the
//! "send with MSG_ZEROCOPY" rung of the copy ladder, for the file server's kernel backend.
//! rustix has neither `SO_ZEROCOPY` nor a parser for `sock_extended_err` control messages.
//!
//! ```text
//!   setsockopt(SO_ZEROCOPY, 1)                       once per socket
//!   send(buf, MSG_ZEROCOPY) -> n > 0                 the call gets the next id (0, 1, 2, ...)
//!   recvmsg(MSG_ERRQUEUE) -> [lo, hi] (+ COPIED)     the pages of calls lo..=hi are released
//! ```
//!
//! The kernel pins the pages of `buf` and transmits from them; the bytes must not change
//! until the notification for the call arrives (the kernel's page references keep the
//! memory itself alive, so unmapping early is memory-safe, only rewriting is wrong).
//! A notification with [`Notice::copied`] says the kernel copied after all (the route had
//! no scatter-gather, or the packet went to a local socket: loopback and veth peers copy
//! on delivery). Readiness of a notification is `EPOLLERR` on the socket.
//!
//! Needs Linux 4.14 for TCP.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `SO_EE_ORIGIN_ZEROCOPY` (linux/errqueue.h; not in the libc crate).
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
/// `SO_EE_CODE_ZEROCOPY_COPIED`: the kernel fell back to copying for this range.
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

/// One completion notification: the send calls `lo..=hi` are done with their pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    /// First call id covered.
    pub lo: u32,
    /// Last call id covered (inclusive; ids wrap at `u32::MAX`).
    pub hi: u32,
    /// The kernel copied the data of these calls instead of sending the pages.
    pub copied: bool,
}

impl Notice {
    /// How many send calls the notice covers.
    pub fn calls(&self) -> u32 {
        self.hi.wrapping_sub(self.lo).wrapping_add(1)
    }
}

/// Turns on `SO_ZEROCOPY` for a socket (needed before any `MSG_ZEROCOPY` send).
pub fn enable(sock: BorrowedFd<'_>) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads one c_int from a live local of exactly that size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ZEROCOPY,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("setsockopt(SO_ZEROCOPY): {e}")));
    }
    Ok(())
}

/// `send(buf, MSG_ZEROCOPY | MSG_DONTWAIT | MSG_NOSIGNAL)`; `more` adds `MSG_MORE`.
/// `Ok(n)` with `n > 0` means the call took an id (see the module docs); `WouldBlock`
/// when the socket buffer is full; `ENOBUFS` (see `raw_os_error()`) when too many
/// notifications are outstanding (`net.core.optmem_max`): reap, or send this one plainly.
pub fn send(sock: BorrowedFd<'_>, buf: &[u8], more: bool) -> io::Result<usize> {
    let mut flags = libc::MSG_ZEROCOPY | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    if more {
        flags |= libc::MSG_MORE;
    }
    // SAFETY: send reads `buf.len()` bytes from a live slice; the kernel takes its own page
    // references for what it keeps, so nothing it holds dangles when the slice goes away.
    let n = unsafe { libc::send(sock.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Reads every pending zero-copy notification from the socket's error queue into `out`
/// (never blocks); returns how many were appended. Other error-queue messages (there
/// should be none on a TCP socket without timestamping) are skipped.
pub fn reap(sock: BorrowedFd<'_>, out: &mut Vec<Notice>) -> io::Result<usize> {
    let before = out.len();
    // Room for a few control messages; each notification is one cmsghdr plus a
    // sock_extended_err (and, for ICMP errors, an address we ignore).
    let mut control = [MaybeUninit::<u64>::uninit(); 16];
    loop {
        // SAFETY: an all-zero msghdr is a valid "no name, no data" header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        // SAFETY: recvmsg writes at most `msg_controllen` bytes into `control`, which lives
        // across the call; no data iovecs are given.
        let rc = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(out.len() - before),
                io::ErrorKind::Interrupted => continue,
                _ => Err(e),
            };
        }
        // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR only walk inside the
        // `msg_controllen` bytes the kernel reported.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: `cmsg` is non-null and inside `control` (see above).
            let hdr = unsafe { &*cmsg };
            let is_recverr = (hdr.cmsg_level == libc::SOL_IP && hdr.cmsg_type == libc::IP_RECVERR)
                || (hdr.cmsg_level == libc::SOL_IPV6 && hdr.cmsg_type == libc::IPV6_RECVERR);
            // SAFETY: CMSG_LEN only computes a length.
            let need = unsafe { libc::CMSG_LEN(size_of::<libc::sock_extended_err>() as u32) } as usize;
            if is_recverr && hdr.cmsg_len >= need {
                // SAFETY: the message carries at least one sock_extended_err after its
                // header (length checked); the data may be unaligned, so read_unaligned.
                let ee = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::sock_extended_err>()) };
                if ee.ee_errno == 0 && ee.ee_origin == SO_EE_ORIGIN_ZEROCOPY {
                    out.push(Notice {
                        lo: ee.ee_info,
                        hi: ee.ee_data,
                        copied: ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0,
                    });
                }
            }
            // SAFETY: as for CMSG_FIRSTHDR; returns null past the last message.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn loopback_sends_are_notified_and_reported_copied() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let tx = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut rx, _) = l.accept().unwrap();
        enable(tx.as_fd()).unwrap();
        let data = vec![7u8; 256 << 10];
        let mut calls = 0u32;
        let mut sent = 0;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        while got.len() < data.len() {
            if sent < data.len() {
                match send(tx.as_fd(), &data[sent..], false) {
                    Ok(n) => {
                        sent += n;
                        calls += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("send: {e}"),
                }
            }
            let n = rx.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
        let mut notes = Vec::new();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while notes.iter().map(Notice::calls).sum::<u32>() < calls && std::time::Instant::now() < end {
            reap(tx.as_fd(), &mut notes).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(notes.iter().map(Notice::calls).sum::<u32>(), calls, "{notes:?}");
        assert_eq!(notes.first().map(|n| n.lo), Some(0));
        // Loopback delivers to a local socket: the kernel copies and says so.
        assert!(notes.iter().all(|n| n.copied), "{notes:?}");
    }
}
