//! Which capabilities the process has, read from `/proc/self/status`, so that a missing
//! one is named before a syscall fails with a bare EPERM.

use crate::Error;

/// A Linux capability the datapath needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cap {
    /// Attach XDP programs, set interface options.
    NetAdmin,
    /// Open AF_XDP sockets.
    NetRaw,
    /// Lock (pin) the pool beyond RLIMIT_MEMLOCK.
    IpcLock,
    /// Load BPF programs and create maps (or CAP_SYS_ADMIN).
    Bpf,
}

impl Cap {
    fn bit(self) -> u32 {
        match self {
            Cap::NetAdmin => 12,
            Cap::NetRaw => 13,
            Cap::IpcLock => 14,
            Cap::Bpf => 39,
        }
    }

    fn name(self) -> (&'static str, &'static str) {
        match self {
            Cap::NetAdmin => ("CAP_NET_ADMIN", "cap_net_admin"),
            Cap::NetRaw => ("CAP_NET_RAW", "cap_net_raw"),
            Cap::IpcLock => ("CAP_IPC_LOCK", "cap_ipc_lock"),
            Cap::Bpf => ("CAP_BPF", "cap_bpf"),
        }
    }
}

const CAP_SYS_ADMIN: u32 = 21;

/// The effective capability set (`CapEff`), or 0 when it cannot be read.
pub fn effective() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Whether the process has `cap` (CAP_BPF is also granted by CAP_SYS_ADMIN).
pub fn has(cap: Cap) -> bool {
    let eff = effective();
    let set = |bit: u32| eff & (1u64 << bit) != 0;
    set(cap.bit()) || (cap == Cap::Bpf && set(CAP_SYS_ADMIN))
}

/// `Ok` if the process has `cap`, else an error that names it and `what` needed it.
pub fn require(cap: Cap, what: &'static str) -> Result<(), Error> {
    if has(cap) {
        return Ok(());
    }
    let (name, lower) = cap.name();
    Err(Error::MissingCapability { cap: name, cap_lower: lower, what })
}

/// Checks, before anything is set up, every capability a datapath process needs: attaching
/// XDP, loading BPF, AF_XDP sockets and pinning the pool. The error names the first missing.
pub fn require_datapath() -> Result<(), Error> {
    require(Cap::NetAdmin, "attaching the XDP program")?;
    require(Cap::Bpf, "loading the XDP program")?;
    require(Cap::NetRaw, "opening an AF_XDP socket")?;
    require(Cap::IpcLock, "pinning the memory pool (mlock)")
}
