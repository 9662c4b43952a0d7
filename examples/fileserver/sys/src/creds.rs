//! Process-wide credential changes. The raw `setresuid`, `setresgid` and `setgroups`
//! system calls (and rustix's wrappers of them) change only the calling thread; the C
//! library's wrappers change every thread of the process (glibc signals each thread to
//! make the same call, as POSIX requires). A server that drops privileges after its
//! worker threads exist needs the latter, or the workers stay root.
#![allow(unsafe_code)]

use std::io;

/// `setgroups(groups)` for every thread.
pub fn set_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` is a valid slice of `gid_t` (u32) of the length given.
    let rc = unsafe { libc::setgroups(groups.len(), groups.as_ptr()) };
    check(rc)
}

/// `setresgid(gid, gid, gid)` for every thread.
pub fn set_res_gid(gid: u32) -> io::Result<()> {
    // SAFETY: plain integer arguments; no memory is passed.
    check(unsafe { libc::setresgid(gid, gid, gid) })
}

/// `setresuid(uid, uid, uid)` for every thread.
pub fn set_res_uid(uid: u32) -> io::Result<()> {
    // SAFETY: plain integer arguments; no memory is passed.
    check(unsafe { libc::setresuid(uid, uid, uid) })
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
