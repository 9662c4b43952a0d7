//! What a seccomp violation leaves behind: the filter answers a system call outside its
//! allowlist with `SECCOMP_RET_TRAP`, the kernel raises `SIGSYS` in the thread that made
//! it, and this handler writes one line naming the call to standard error and ends the
//! process (exit status 128 + `SIGSYS`), on every thread at once.
//!
//! ```text
//!   fork() ─► seccomp: not allowed ─► SIGSYS (si_syscall = 57) ─► on_sigsys:
//!       "fileserver: seccomp: system call 57 (fork) is not allowed; exiting" ─► _exit(159)
//! ```
//!
//! The handler only formats into a stack buffer, `write`s and `_exit`s: all
//! async-signal-safe, and all on the allowlist.
#![allow(unsafe_code)]

use std::io;

#[cfg(target_arch = "x86_64")]
mod x86_64;

/// Exit status of a process ended by a seccomp violation (as if killed by `SIGSYS`).
pub const EXIT_STATUS: i32 = 128 + libc::SIGSYS;

/// Byte offset of `si_syscall` in a 64-bit `siginfo_t`: `si_signo`, `si_errno`, `si_code`
/// and padding, then the union, whose `_sigsys` member is `{ void *call_addr; int syscall;
/// unsigned arch; }`.
#[cfg(target_pointer_width = "64")]
const SI_SYSCALL_OFFSET: usize = 24;

/// The name of system call `nr` on this architecture, if known.
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        let i = x86_64::NAMES.binary_search_by_key(&nr, |&(n, _)| i64::from(n)).ok()?;
        Some(x86_64::NAMES[i].1)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = nr;
        None
    }
}

/// Writes the report line for system call `nr` into `buf`; returns its length.
pub fn report(nr: i64, buf: &mut [u8; 160]) -> usize {
    let mut w = Writer { buf, len: 0 };
    w.put(b"fileserver: seccomp: system call ");
    w.num(nr);
    if let Some(name) = syscall_name(nr) {
        w.put(b" (");
        w.put(name.as_bytes());
        w.put(b")");
    }
    w.put(b" is not allowed; exiting\n");
    w.len
}

/// Formats without allocating (signal context).
struct Writer<'a> {
    buf: &'a mut [u8; 160],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn num(&mut self, v: i64) {
        if v < 0 {
            self.put(b"-");
        }
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut u = v.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (u % 10) as u8;
            u /= 10;
            if u == 0 {
                break;
            }
        }
        self.put(&digits[i..]);
    }
}

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel hands an SA_SIGINFO handler a valid siginfo_t; for a SIGSYS from
    // seccomp its union holds the `_sigsys` member, whose `syscall` field is an int at
    // SI_SYSCALL_OFFSET (the layout is fixed by the kernel's ABI for 64-bit targets).
    let nr = unsafe { info.cast::<u8>().add(SI_SYSCALL_OFFSET).cast::<libc::c_int>().read_unaligned() };
    let mut buf = [0u8; 160];
    let len = report(i64::from(nr), &mut buf);
    // SAFETY: write(2) from a buffer that lives across the call, then _exit(2): both
    // async-signal-safe, and neither returns into the code that made the call.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), len);
        libc::_exit(EXIT_STATUS);
    }
}

/// Installs the `SIGSYS` handler (before the filter, so the first violation is reported).
pub fn install_reporter() -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler is an
    // `extern "C"` function with the SA_SIGINFO signature, and it stays valid for the life
    // of the process.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_sigsys;
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Makes one `fork` system call, for the test that checks the filter: under it the call
/// never returns (the handler ends the process). Without a filter the child `_exit`s at
/// once and is reaped.
pub fn fork_once() -> io::Result<()> {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a raw fork(2). The child runs nothing but _exit(2) (async-signal-safe), so
    // it touches none of the state it shares with the parent.
    let pid = unsafe { libc::syscall(libc::SYS_fork) };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as above, through the C library's fork.
    let pid = unsafe { libc::fork() } as libc::c_long;
    match pid {
        0 => {
            // SAFETY: in the child: end it at once, running no destructor or handler.
            unsafe { libc::_exit(0) }
        }
        p if p < 0 => Err(io::Error::last_os_error()),
        p => {
            let mut status = 0;
            // SAFETY: waits for the child just forked; `status` is a valid out-pointer.
            unsafe { libc::waitpid(p as libc::pid_t, &mut status, 0) };
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_the_call() {
        let mut buf = [0u8; 160];
        let n = report(57, &mut buf);
        let line = std::str::from_utf8(&buf[..n]).unwrap();
        #[cfg(target_arch = "x86_64")]
        assert_eq!(line, "fileserver: seccomp: system call 57 (fork) is not allowed; exiting\n");
        assert!(line.contains(" 57"), "{line}");
        let n = report(9999, &mut buf);
        assert_eq!(&buf[..n], b"fileserver: seccomp: system call 9999 is not allowed; exiting\n");
    }

    #[test]
    fn names_come_from_the_architecture_table() {
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(syscall_name(libc::SYS_read), Some("read"));
            assert_eq!(syscall_name(libc::SYS_io_uring_enter), Some("io_uring_enter"));
            assert_eq!(syscall_name(libc::SYS_clone3), Some("clone3"));
            assert!(x86_64::NAMES.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        }
        assert_eq!(syscall_name(-1), None);
    }

    #[test]
    fn a_fork_without_a_filter_returns() {
        fork_once().unwrap();
    }
}
