//! Errors of the pool, each naming the failing call and what the user can do about it.

use std::io;

/// What can go wrong while building or using a [`Pool`](crate::Pool).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot describe a usable pool.
    #[error("invalid pool configuration: {0}")]
    Config(&'static str),

    /// `MAP_HUGETLB` failed and the configuration required hugepages.
    #[error(
        "hugepages: {needed} x 2 MiB needed, {free} free ({total} reserved); \
         run `cargo xtask setup`, or `echo {suggest} > /proc/sys/vm/nr_hugepages`, \
         or pass --no-hugepages"
    )]
    NoHugepages {
        /// 2 MiB pages the pool needs.
        needed: usize,
        /// `HugePages_Free` from `/proc/meminfo`.
        free: usize,
        /// `HugePages_Total` from `/proc/meminfo`.
        total: usize,
        /// A reservation that would fit the pool.
        suggest: usize,
    },

    /// `mlock` failed: the pool cannot be pinned.
    #[error(
        "mlock of {bytes} bytes failed ({source}); pinning needs CAP_IPC_LOCK or an \
         RLIMIT_MEMLOCK of at least that size (now {limit}): run as root, \
         `ulimit -l unlimited`, or pass --no-lock"
    )]
    Mlock {
        /// Bytes that were to be locked.
        bytes: usize,
        /// The soft `RLIMIT_MEMLOCK`, as text (`unlimited` or bytes).
        limit: String,
        /// The error from the kernel.
        source: io::Error,
    },

    /// Any other system call that failed.
    #[error("{call} failed: {source}")]
    Syscall {
        /// The call, e.g. `mmap`.
        call: &'static str,
        /// The error from the kernel.
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn last(call: &'static str) -> Self {
        Error::Syscall { call, source: io::Error::last_os_error() }
    }
}

/// The soft `RLIMIT_MEMLOCK`, for error messages.
pub(crate) fn memlock_limit() -> String {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the valid, exclusively borrowed `lim`.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if rc != 0 {
        return "unknown".into();
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        "unlimited".into()
    } else {
        format!("{} bytes", lim.rlim_cur)
    }
}
