//! Errors of the pool, each naming the failing call and what the user can do about it.

use std::io;
use std::path::PathBuf;

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
         or use 4 KiB pages (--hugepages off)"
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

    /// `io_uring_setup` failed: no ring, so no block reads.
    #[error(
        "io_uring_setup({entries} entries) failed: {source}; io_uring may be disabled \
         (sysctl kernel.io_uring_disabled must be 0, or 1 with the user in \
         kernel.io_uring_group) or, on kernels before 5.12, limited by RLIMIT_MEMLOCK"
    )]
    UringSetup {
        /// Submission queue entries asked for.
        entries: u32,
        /// The error from the kernel.
        source: io::Error,
    },

    /// `IORING_REGISTER_BUFFERS` refused the pool.
    #[error(
        "io_uring register_buffers ({iovecs} iovecs, {bytes} bytes) failed: {source}; \
         registering pins the pool and needs CAP_IPC_LOCK or an RLIMIT_MEMLOCK of at \
         least that size (now {limit}): run as root or `ulimit -l unlimited`"
    )]
    Register {
        /// Bytes registered.
        bytes: u64,
        /// Iovecs passed (one per <= 1 GiB slice).
        iovecs: usize,
        /// The soft `RLIMIT_MEMLOCK`, as text.
        limit: String,
        /// The error from the kernel.
        source: io::Error,
    },

    /// Every payload block is held: by reads in flight, the block cache, or send queues.
    #[error(
        "pool exhausted: {free} of {total} {what} free ({reading} held by reads in flight); \
         {hint}"
    )]
    PoolExhausted {
        /// What ran out (`payload blocks`).
        what: &'static str,
        /// Free slots of that kind (0, or too few for the request).
        free: u32,
        /// Slots of that kind in the pool.
        total: u32,
        /// Slots held by reads not yet completed.
        reading: u32,
        /// What the caller can do.
        hint: &'static str,
    },

    /// Opening a file for block reads failed.
    #[error("open {path:?} for block reads failed: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The error from the kernel.
        source: io::Error,
    },

    /// The path names something other than a regular file.
    #[error("{path:?} is not a regular file; only regular files can be read into blocks")]
    NotRegular {
        /// The path.
        path: PathBuf,
    },

    /// A read request the reader cannot serve as asked.
    #[error("block read request refused: {0}")]
    Request(&'static str),

    /// A read failed in the kernel (reported in its completion).
    #[error("{call} at file offset {offset} failed: {source}")]
    Read {
        /// The operation, e.g. `io_uring READ_FIXED`.
        call: &'static str,
        /// The requested file offset.
        offset: u64,
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

/// The soft `RLIMIT_MEMLOCK` as text (`unlimited`, `N bytes` or `unknown`), for the error
/// messages of everything whose memory is charged to it (mlock, io_uring and AF_XDP
/// registration).
pub fn memlock_limit() -> String {
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
