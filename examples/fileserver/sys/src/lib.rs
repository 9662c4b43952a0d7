//! `fileserver-sys`: the system interfaces the file server needs and no safe crate
//! offers, so that the file server itself (like every example) keeps
//! `#![forbid(unsafe_code)]`:
//!
//! * [`filemap`]: a read-only `mmap` of a file (the `mmap` and `msg-zerocopy` rungs of
//!   the copy ladder send from it).
//! * [`zerocopy`]: `SO_ZEROCOPY`, `send(MSG_ZEROCOPY)` and the completion notifications
//!   from the socket's error queue (`sock_extended_err` control messages), which rustix
//!   does not parse.
//! * [`sigsys`]: the `SIGSYS` handler that names a system call the seccomp filter
//!   refused, and the test hook that makes one.
//! * [`poll`]: `ppoll(2)` over raw descriptors (the AF_XDP socket and the io_uring expose
//!   only `AsRawFd`), with a microsecond timeout: how an AF_XDP worker sleeps.
//! * [`creds`]: credential changes for every thread of the process (the C library's
//!   `setresuid` family; the raw calls change one thread), to drop privileges once the
//!   AF_XDP workers exist.
//!
//! ```text
//!   file ── mmap ──► FileMap ── write / send(MSG_ZEROCOPY) ──► kernel socket
//!                                        └── recvmsg(MSG_ERRQUEUE) ──► Notice { lo..=hi, copied }
//!   worker: ppoll([AF_XDP socket, io_uring, eventfd], next timer)
//! ```
//!
//! Unsafe code is denied in the crate and allowed only in those modules; every unsafe
//! block there says why it holds (`// SAFETY:`). The pinned pool and everything else with
//! unsafe memory code live in `umem`.
#![deny(unsafe_code)]

pub mod creds;
pub mod filemap;
pub mod poll;
pub mod sigsys;
pub mod zerocopy;

pub use filemap::FileMap;
