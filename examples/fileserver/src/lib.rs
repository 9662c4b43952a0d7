//! `fileserver`: a static HTTP/1.1 file server. Two backends drive one HTTP session
//! ([`session`]) per connection:
//!
//! * [`kernel`]: ordinary TCP sockets, with the file bytes moved by one chosen method
//!   (`read-write`, `mmap`, `sendfile`, `splice`, `msg-zerocopy`, `direct-uring`): the
//!   rungs of the copy ladder, to measure.
//! * [`xdp`]: AF_XDP over the pinned pool with the user-space TCP stack, one worker
//!   thread per rx queue, each with a pool of its own: file blocks read by io_uring
//!   `O_DIRECT` into the pool ([`blocks`]) and sent from there without a CPU copy. Its core ([`xdp::Core`]) owns no device: [`sim`] drives it over a simulated
//!   wire with a simulated client, with no root and no NIC.
//!
//! ```text
//!   kernel socket ─┐                       ┌─ write / sendfile / splice / MSG_ZEROCOPY
//!                  ├─► Session (http, root) ┤
//!   Stack (AF_XDP) ┘      queue, timers     └─ Stack::write_frames (blocks by reference)
//! ```
#![forbid(unsafe_code)]

pub mod access_log;
pub mod bench;
pub mod blocks;
mod held;
pub mod http;
pub mod kernel;
pub mod metrics;
pub mod options;
pub mod pidfile;
pub mod privdrop;
pub mod prom;
pub mod root;
pub mod session;
pub mod sim;
pub mod xdp;
