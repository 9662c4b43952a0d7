//! Least privilege: once everything that needs root is open (root directory, listening
//! sockets, XDP program, AF_XDP sockets, registered pool), the process gives up what it
//! no longer needs, in this order:
//!
//! 1. the capability bounding set is emptied (while still root: it takes `CAP_SETPCAP`),
//!    so nothing executed could ever regain a capability;
//! 2. with `--user`, every uid and gid becomes that user's, which clears the capability
//!    sets;
//! 3. `no_new_privs`, so no exec can raise privileges again;
//! 4. the process stays not dumpable (changing uid made it so; without `--user` it is
//!    made so), so no process of the same uid can ptrace it or open its `/proc` entries
//!    while it holds the AF_XDP socket, the flow map and the pool (`--dumpable` for
//!    debugging);
//! 5. a seccomp allowlist of the system calls the run loop makes ([`seccomp`]) goes on
//!    every thread at once (`SECCOMP_FILTER_FLAG_TSYNC`); a call outside it ends the
//!    process with a line naming it (`--no-seccomp` for debugging).
//!
//! Credentials and the bounding set are per thread: confine the process before starting
//! threads that should not keep root, or from each. The seccomp filter covers every
//! thread alive when it is installed, and threads started later inherit it, so install
//! it once every thread exists (new threads need `clone`, which it refuses).

pub mod seccomp;

use anyhow::{bail, Context, Result};
use rustix::process::{Gid, Uid};
use rustix::thread::CapabilitySet;

/// What to give up, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Confine {
    /// Become this user (name or uid).
    pub user: Option<String>,
    /// Leave the seccomp filter off.
    pub no_seccomp: bool,
    /// Leave the process dumpable (ptrace-able by its uid).
    pub dumpable: bool,
}

/// Looks `user` up in /etc/passwd: (uid, gid).
fn lookup(user: &str) -> Result<(u32, u32)> {
    if let Ok(uid) = user.parse::<u32>() {
        return Ok((uid, uid));
    }
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && f[0] == user {
            return Ok((f[2].parse()?, f[3].parse()?));
        }
    }
    bail!("--user {user}: no such user in /etc/passwd")
}

/// Gives up what `c` says; returns the lines for the startup block (`privileges`, then
/// `sandbox`). Call once, after setup, with every thread started.
pub fn confine(c: &Confine) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let root = rustix::process::geteuid().is_root();
    let bounding = if root { clear_bounding_set()? } else { false };
    if let Some(user) = &c.user {
        lines.push(format!("  privileges      {}", drop_to(user)?));
    }
    rustix::thread::set_no_new_privs(true).context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    let dumpable = match c.dumpable {
        true => rustix::process::DumpableBehavior::Dumpable,
        false => rustix::process::DumpableBehavior::NotDumpable,
    };
    rustix::process::set_dumpable_behavior(dumpable).context("prctl(PR_SET_DUMPABLE)")?;
    let filter = match c.no_seccomp {
        true => "no seccomp filter (--no-seccomp)".to_owned(),
        false => format!("seccomp allowlist of {} system calls on every thread", seccomp::install()?),
    };
    lines.push(format!(
        "  sandbox         {filter}, {}, no_new_privs, {}",
        if bounding { "capability bounding set empty" } else { "capability bounding set kept (not root)" },
        if c.dumpable { "dumpable (--dumpable)" } else { "not dumpable" },
    ));
    Ok(lines)
}

/// Empties the calling thread's capability bounding set; true if it is empty now.
fn clear_bounding_set() -> Result<bool> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(CapabilitySet::all().bits().ilog2())
        .min(63);
    for cap in 0..=last {
        let one = CapabilitySet::from_bits_retain(1 << cap);
        rustix::thread::remove_capability_from_bounding_set(one)
            .with_context(|| format!("prctl(PR_CAPBSET_DROP, {cap})"))?;
    }
    Ok((0..=last).all(|cap| {
        !rustix::thread::capability_is_in_bounding_set(CapabilitySet::from_bits_retain(1 << cap)).unwrap_or(true)
    }))
}

/// Drops to `user`; returns a line saying what happened.
fn drop_to(user: &str) -> Result<String> {
    if !rustix::process::geteuid().is_root() {
        return Ok("not root: nothing to drop".into());
    }
    let (uid, gid) = lookup(user)?;
    if uid == 0 {
        bail!("--user {user} is root; name an unprivileged user (e.g. nobody)");
    }
    rustix::thread::set_thread_groups(&[]).context("setgroups([])")?;
    rustix::thread::set_thread_res_gid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(gid))
        .context("setresgid")?;
    rustix::thread::set_thread_res_uid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid))
        .context("setresuid")?;
    if rustix::process::geteuid().is_root() {
        bail!("still root after setresuid");
    }
    Ok(format!("dropped privileges: now uid {uid} gid {gid} ({user}), no capabilities, no_new_privs"))
}

/// The test hook of the filter: with `FILESERVER_TEST_FORBIDDEN_SYSCALL=1` the run loop
/// calls `fork` once, which the filter answers by ending the process with a line naming
/// it. Without the variable, nothing.
pub fn forbidden_syscall_hook() {
    if std::env::var_os("FILESERVER_TEST_FORBIDDEN_SYSCALL").is_some_and(|v| v == "1") {
        log::warn!("FILESERVER_TEST_FORBIDDEN_SYSCALL=1: calling fork once");
        if let Err(e) = fileserver_sys::sigsys::fork_once() {
            log::warn!("fork: {e}");
        }
    }
}
