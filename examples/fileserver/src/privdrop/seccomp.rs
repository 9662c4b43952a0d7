//! The seccomp allowlist: the system calls the file server makes once it is set up, and
//! no other. Built with `seccompiler` (rust-vmm's, as Firecracker uses: pure Rust, no C
//! library to install, a maintained BPF compiler), installed on every thread at once.
//!
//! A call outside the list is answered with `SECCOMP_RET_TRAP`: the kernel raises
//! `SIGSYS`, and `fileserver_sys::sigsys` writes a line naming the call and ends the
//! process. (`SECCOMP_RET_KILL_PROCESS` would end it too, but leave only an audit record
//! in the kernel log, not a line of ours.)
//!
//! The list was profiled (`strace -f -c`) over the namespace tests of both backends, every
//! copy method included: the data path (AF_XDP `sendto`/`recvfrom`/`poll`/`getsockopt`,
//! io_uring `io_uring_enter`), epoll and sockets (`epoll_wait`, `accept4`, `sendfile`,
//! `splice`, `pipe2`, `sendmsg`/`recvmsg` for `MSG_ZEROCOPY`), files (`openat2` beneath the
//! root, `openat` of `/proc/self/fd`, `statx`, `fstat`, `fcntl`, `mmap` of a file), memory
//! (`mmap`, `munmap`, `madvise`, `mremap`, `brk`) and the runtime (`futex`, signals,
//! `exit_group`). Three are narrowed by argument: `openat` only without write access,
//! creation or truncation (and `open`, which rustix uses on x86_64); `mmap` and `mprotect` never executable; `ioctl` only `FIONBIO`; `bpf` only `BPF_MAP_LOOKUP_ELEM`.
//! Not on it, among others: `fork`, `clone`, `clone3`, `execve`, `socket`, `connect`,
//! `bind`, `ptrace`, `mount`, `setuid` and the rest of the credential calls.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

/// System calls allowed whatever their arguments.
const ALLOWED: &[libc::c_long] = &[
    // Reading, writing, waiting.
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_close,
    libc::SYS_lseek,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_poll,
    libc::SYS_ppoll,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_epoll_ctl,
    libc::SYS_io_uring_enter,
    // Sockets already open: accepting on the listeners, moving bytes, options, statistics.
    #[cfg(target_arch = "x86_64")]
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_shutdown,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_sendfile,
    libc::SYS_splice,
    libc::SYS_pipe2,
    // Files beneath the root (openat2: RESOLVE_BENEATH; its flags sit behind a pointer).
    libc::SYS_openat2,
    libc::SYS_statx,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_fcntl,
    // Memory.
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_brk,
    // The runtime: locks, time, randomness, signals, the end.
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_getrandom,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// `bpf(2)` command `BPF_MAP_LOOKUP_ELEM` (linux/bpf.h; not in `libc`).
const BPF_MAP_LOOKUP_ELEM: u64 = 1;

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).context("a seccomp condition")
}

/// What the options on the command line add to the list.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extra {
    /// `--access-log FILE`: SIGHUP reopens FILE for appending, creating it.
    pub append_log: bool,
    /// `--pid-file`: removed at exit.
    pub remove_pid_file: bool,
    /// `--pcap FILE`: rotation renames FILE to FILE.1 .. and creates FILE afresh
    /// (truncating).
    pub rotate_capture: bool,
}

/// The rules: each allowed call, unconditionally or with the conditions it must meet.
pub fn rules(extra: Extra) -> Result<BTreeMap<i64, Vec<SeccompRule>>> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED.iter().map(|&nr| (nr, Vec::new())).collect();
    // openat: read-only opens (of /proc/self/fd/N, the way files beneath the root are
    // reopened), never for writing, creating or truncating.
    let write = (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u64;
    // With the access log on, also opening for appending (creating, never truncating).
    let append = (libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND) as u64;
    let opens = |arg: u8| -> Result<Vec<SeccompRule>> {
        let mut r = vec![SeccompRule::new(vec![cond(arg, SeccompCmpOp::MaskedEq(write), 0)?])?];
        if extra.append_log {
            r.push(SeccompRule::new(vec![cond(arg, SeccompCmpOp::MaskedEq(write), append)?])?);
        }
        if extra.rotate_capture {
            let create = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64;
            r.push(SeccompRule::new(vec![cond(arg, SeccompCmpOp::MaskedEq(write), create)?])?);
        }
        Ok(r)
    };
    rules.insert(libc::SYS_openat, opens(2)?);
    // (rustix opens by path with open(2) where the architecture has it.)
    #[cfg(target_arch = "x86_64")]
    rules.insert(libc::SYS_open, opens(1)?);
    if extra.remove_pid_file {
        rules.insert(libc::SYS_unlinkat, Vec::new());
        #[cfg(target_arch = "x86_64")]
        rules.insert(libc::SYS_unlink, Vec::new());
    }
    if extra.rotate_capture {
        for nr in [libc::SYS_renameat, libc::SYS_renameat2] {
            rules.insert(nr, Vec::new());
        }
        #[cfg(target_arch = "x86_64")]
        rules.insert(libc::SYS_rename, Vec::new());
    }
    // mmap, mprotect: never executable memory.
    let exec = libc::PROT_EXEC as u64;
    for nr in [libc::SYS_mmap, libc::SYS_mprotect] {
        rules.insert(nr, vec![SeccompRule::new(vec![cond(2, SeccompCmpOp::MaskedEq(exec), 0)?])?]);
    }
    // ioctl: only making a socket blocking or not.
    rules.insert(libc::SYS_ioctl, vec![SeccompRule::new(vec![cond(1, SeccompCmpOp::Eq, libc::FIONBIO)?])?]);
    // bpf: only reading a map element (the steering program's counters, refreshed by the
    // main thread on a descriptor opened before; nothing can be loaded or attached).
    rules.insert(libc::SYS_bpf, vec![SeccompRule::new(vec![cond(0, SeccompCmpOp::Eq, BPF_MAP_LOOKUP_ELEM)?])?]);
    // tgkill: only to this process (abort() signals itself).
    let pid = u64::from(std::process::id());
    rules.insert(libc::SYS_tgkill, vec![SeccompRule::new(vec![cond(0, SeccompCmpOp::Eq, pid)?])?]);
    Ok(rules)
}

/// The compiled filter: the rules allowed, anything else trapped.
pub fn program(extra: Extra) -> Result<BpfProgram> {
    let arch = std::env::consts::ARCH.try_into().context("seccomp: unsupported architecture")?;
    let filter = SeccompFilter::new(rules(extra)?, SeccompAction::Trap, SeccompAction::Allow, arch)
        .context("building the seccomp filter")?;
    filter.try_into().context("compiling the seccomp filter")
}

/// Installs the `SIGSYS` reporter and the filter on every thread; returns how many system
/// calls the filter allows.
pub fn install(extra: Extra) -> Result<usize> {
    let n = rules(extra)?.len();
    let prog = program(extra)?;
    fileserver_sys::sigsys::install_reporter().context("installing the SIGSYS handler")?;
    seccompiler::apply_filter_all_threads(&prog)
        .context("installing the seccomp filter (SECCOMP_FILTER_FLAG_TSYNC); --no-seccomp runs without it")?;
    Ok(n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_and_leaves_out_what_the_server_never_needs() {
        let r = rules(Extra::default()).unwrap();
        for nr in [
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_bind,
            libc::SYS_ptrace,
            libc::SYS_setuid,
            libc::SYS_setresuid,
            libc::SYS_prctl,
            libc::SYS_mount,
            libc::SYS_unlinkat,
            libc::SYS_kill,
        ] {
            assert!(!r.contains_key(&nr), "system call {nr} is allowed");
        }
        #[cfg(target_arch = "x86_64")]
        assert!(!r.contains_key(&libc::SYS_fork));
        for nr in [libc::SYS_io_uring_enter, libc::SYS_sendto, libc::SYS_openat2, libc::SYS_exit_group] {
            assert!(r.contains_key(&nr), "system call {nr} is missing");
        }
        assert!(!program(Extra::default()).unwrap().is_empty());
        let ops = rules(Extra { append_log: true, remove_pid_file: true, rotate_capture: false }).unwrap();
        assert!(ops.contains_key(&libc::SYS_unlinkat), "--pid-file is removed at exit");
        assert_eq!(ops[&libc::SYS_openat].len(), 2, "--access-log is reopened for appending");
    }

    #[test]
    fn a_rotating_capture_may_rename_and_create_files_and_nothing_else_may() {
        let plain = rules(Extra::default()).unwrap();
        assert!(!plain.contains_key(&libc::SYS_renameat2) && !plain.contains_key(&libc::SYS_renameat));
        let ops = rules(Extra { rotate_capture: true, ..Extra::default() }).unwrap();
        assert!(ops.contains_key(&libc::SYS_renameat2) && ops.contains_key(&libc::SYS_renameat));
        assert_eq!(ops[&libc::SYS_openat].len(), 2, "--pcap FILE is created afresh at each rotation");
    }

    /// Runs one test of this binary in a child process with `FILESERVER_TEST_CHILD` set,
    /// for what is process-wide (a seccomp filter, a resource limit) and must not land on
    /// the test runner.
    pub(crate) fn in_child(test: &str) -> std::process::Output {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env("FILESERVER_TEST_CHILD", "1")
            .output()
            .unwrap()
    }

    /// Whether this is the child [`in_child`] started.
    pub(crate) fn is_child() -> bool {
        std::env::var_os("FILESERVER_TEST_CHILD").is_some()
    }

    #[test]
    fn a_forbidden_call_ends_the_process_with_a_line_naming_it() {
        if is_child() {
            install(Extra::default()).unwrap();
            fileserver_sys::sigsys::fork_once().unwrap();
            // Reached only if fork was allowed.
            std::process::exit(0);
        }
        let out = in_child("privdrop::seccomp::tests::a_forbidden_call_ends_the_process_with_a_line_naming_it");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(fileserver_sys::sigsys::EXIT_STATUS), "{err}");
        #[cfg(target_arch = "x86_64")]
        assert!(err.contains("fileserver: seccomp: system call 57 (fork) is not allowed; exiting"), "{err}");
    }
}
