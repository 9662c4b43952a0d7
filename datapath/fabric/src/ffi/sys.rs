//! The few system calls the provider makes itself: the interface's IPv4 address
//! (`getifaddrs`), and waiting on the endpoints' AF_XDP descriptors (`dup`, `poll`).

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The first IPv4 address of `iface` and its prefix length.
pub fn ipv4_of(iface: &str) -> Option<(Ipv4Addr, u8)> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out-pointer; on success the list is freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        // SAFETY: ifa_addr is non-null and points to a sockaddr of at least sa_family.
        let family = unsafe { (*ifa.ifa_addr).sa_family };
        if name.to_bytes() != iface.as_bytes() || i32::from(family) != libc::AF_INET {
            continue;
        }
        // SAFETY: the family is AF_INET, so ifa_addr points to a sockaddr_in.
        let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
        let addr = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
        let prefix = if ifa.ifa_netmask.is_null() {
            32
        } else {
            // SAFETY: for an AF_INET address the netmask is a sockaddr_in too.
            let m = unsafe { &*(ifa.ifa_netmask as *const libc::sockaddr_in) };
            u32::from_be(m.sin_addr.s_addr).count_ones() as u8
        };
        found = Some((addr, prefix));
        break;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    found
}

/// A duplicate of `fd` that the caller owns (so a waiter never polls a closed number).
pub fn dup(fd: &impl AsRawFd) -> Option<OwnedFd> {
    // SAFETY: dup of a descriptor the caller keeps open for the call.
    let n = unsafe { libc::dup(fd.as_raw_fd()) };
    // SAFETY: a non-negative result is a new descriptor nobody else owns.
    (n >= 0).then(|| unsafe { OwnedFd::from_raw_fd(n) })
}

/// Waits up to `timeout` for any of `fds` to become readable; returns whether one did.
pub fn poll_readable(fds: &[RawFd], timeout: Duration) -> bool {
    let mut p: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    if p.is_empty() {
        std::thread::sleep(timeout);
        return false;
    }
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `p` is a valid array of pollfd of the given length and `ts` a valid timespec,
    // both borrowed for the call; no signal mask is passed.
    let rc = unsafe { libc::ppoll(p.as_mut_ptr(), p.len() as libc::nfds_t, &ts, std::ptr::null()) };
    rc > 0
}
