//! The one socket option the kernel-socket baselines need and std lacks: `SO_BUSY_POLL`,
//! so that `pingpong --kernel busy-poll` measures the kernel's own busy polling.

use std::io;
use std::os::fd::AsRawFd;

/// Sets `SO_BUSY_POLL` (microseconds a blocking receive busy-polls the device queue
/// before sleeping) on a kernel socket. Needs CAP_NET_ADMIN to raise it above
/// `net.core.busy_read`.
pub fn set_busy_poll(sock: &impl AsRawFd, usecs: u32) -> io::Result<()> {
    let v = usecs as libc::c_int;
    // SAFETY: `v` is a live c_int for the duration of the call and its size is passed;
    // the fd is borrowed from a socket that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BUSY_POLL,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
