//! Errors of the datapath. Each names what failed and what the user can do about it.

use std::io;

/// What can go wrong while setting up or running the datapath.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The process lacks a capability the operation needs.
    #[error("{what} needs {cap}, which this process lacks; run as root (e.g. `sudo`) or grant it with `setcap {cap_lower}+ep`")]
    MissingCapability {
        /// The capability, e.g. `CAP_NET_ADMIN`.
        cap: &'static str,
        /// The same, lower case, for the `setcap` hint.
        cap_lower: &'static str,
        /// What needed it.
        what: &'static str,
    },

    /// No such network interface.
    #[error(
        "no network interface named {0:?} (see `ip link`); in a namespace, run inside it with `ip netns exec NS ...`"
    )]
    NoInterface(String),

    /// The interface's MAC address could not be read.
    #[error("the MAC address of {iface}: {why}; is it an Ethernet device (`ip link show {iface}`)?")]
    Mac {
        /// The interface.
        iface: String,
        /// What went wrong.
        why: String,
    },

    /// The interface's MTU does not fit one frame and multi-buffer is not available.
    #[error(
        "MTU {mtu} of {iface} does not fit a {frame_size}-byte frame (at most {max_mtu} without \
         multi-buffer); lower it with `ip link set {iface} mtu {max_mtu}`, or use a device and \
         kernel with AF_XDP multi-buffer (XDP_USE_SG)"
    )]
    MtuTooLarge {
        /// The interface.
        iface: String,
        /// Its MTU.
        mtu: u32,
        /// The frame size of the pool.
        frame_size: u32,
        /// The largest MTU that fits.
        max_mtu: u32,
    },

    /// The queue is already bound by another AF_XDP socket.
    #[error("queue {queue} of {iface} already has an AF_XDP socket bound (another process, or an earlier socket of this one); stop it or pick another queue with --queue")]
    QueueBusy {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
    },

    /// The queue index is past the interface's queues.
    #[error("{iface} has no queue {queue} (it has {queues}); pick one with --queue")]
    NoQueue {
        /// The interface.
        iface: String,
        /// The queue asked for.
        queue: u32,
        /// Its rx queue count.
        queues: u32,
    },

    /// Another XDP program is attached to the interface.
    #[error("{iface} already has an XDP program attached; remove it (`ip link set {iface} xdp off`) or stop the process that owns it")]
    XdpBusy {
        /// The interface.
        iface: String,
    },

    /// Loading or attaching the XDP program failed.
    #[error("XDP program: {what}: {source}")]
    Program {
        /// The step that failed.
        what: &'static str,
        /// aya's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Registering the pool with AF_XDP was refused for lack of locked memory.
    #[error("registering the pool with AF_XDP ({call}) failed: {source}; the pool's pages are charged to RLIMIT_MEMLOCK (now {limit}) unless the process has CAP_IPC_LOCK: run as root or `ulimit -l unlimited`")]
    Memlock {
        /// The failing call.
        call: &'static str,
        /// RLIMIT_MEMLOCK as text.
        limit: String,
        /// The error.
        source: io::Error,
    },

    /// Any other failing system call.
    #[error("{call} failed: {source}")]
    Syscall {
        /// The call, e.g. `bind(AF_XDP)`.
        call: &'static str,
        /// The error from the kernel.
        source: io::Error,
    },

    /// The pool.
    #[error(transparent)]
    Pool(#[from] umem::Error),
}

impl Error {
    pub(crate) fn sys(call: &'static str, errno: i32) -> Self {
        Error::Syscall { call, source: io::Error::from_raw_os_error(errno.abs()) }
    }

    pub(crate) fn program(what: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Program { what, source: Box::new(e) }
    }
}
