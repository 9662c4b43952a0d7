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
//!
//! ```text
//!   file ── mmap ──► FileMap ── write / send(MSG_ZEROCOPY) ──► kernel socket
//!                                        └── recvmsg(MSG_ERRQUEUE) ──► Notice { lo..=hi, copied }
//! ```
//!
//! Unsafe code is denied in the crate and allowed only in those modules; every unsafe
//! block there says why it holds (`// SAFETY:`). The pinned pool and everything else with
//! unsafe memory code live in `umem`; these serve only the file server, so they live next
//! to it.
#![deny(unsafe_code)]

pub mod filemap;
pub mod sigsys;
pub mod zerocopy;

pub use filemap::FileMap;
