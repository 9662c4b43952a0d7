//! Least privilege: once everything that needs root is open (root directory, listening
//! sockets, XDP program, AF_XDP sockets, registered pool), the process gives up what it
//! no longer needs:
//!
//! 1. before any thread is spawned ([`before_threads`]): `no_new_privs`, so no exec can
//!    raise privileges again, and an empty capability bounding set (while still root: it
//!    takes `CAP_SETPCAP`), so nothing could ever regain a capability. Both are per
//!    thread and inherited by the threads spawned after.
//! 2. once every thread exists ([`confine`]): with `--user`, every uid and gid becomes
//!    that user's, for every thread (the C library's process-wide calls,
//!    [`fileserver_sys::creds`]), which clears the capability sets, and every thread in
//!    `/proc/self/task` is checked; the process stays not dumpable (changing uid made it
//!    so; without `--user` it is made so), so no process of the same uid can ptrace it or
//!    open its `/proc` entries while it holds the AF_XDP socket, the flow map and the
//!    pool (`--dumpable` for debugging); and a seccomp allowlist of the system calls the
//!    run loop makes ([`seccomp`]) goes on every thread at once
//!    (`SECCOMP_FILTER_FLAG_TSYNC`); a call outside it ends the process with a line naming
//!    it (`--no-seccomp` for debugging). Threads spawned later would inherit the filter,
//!    but it refuses `clone`: install it when every thread exists, and *has started*: a
//!    thread just created still runs its start-up calls (the C library's `set_robust_list`
//!    and `rseq`, Rust's `prctl(PR_SET_NAME)` and `sigaltstack`) with every signal blocked,
//!    so the filter reaching it first kills the process without a word ("Bad system call").
//!    Threads are spawned with [`spawn`], which returns once the thread runs its body.

pub mod seccomp;

use anyhow::{bail, Context, Result};
use rustix::thread::CapabilitySet;

/// Spawns a thread named `name` running `f`, and returns once the thread is running
/// `f`, past its start-up system calls (see the module docs: [`confine`] may follow at
/// once).
pub fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let handle = std::thread::Builder::new().name(name.into()).spawn(move || {
        let _ = tx.send(());
        f()
    })?;
    // The sender goes with the thread: an error here means the thread ended before it sent.
    let _ = rx.recv();
    Ok(handle)
}

/// What to give up, from the command line.
#[derive(Debug, Clone, Default)]
pub struct Confine {
    /// Become this user (name or uid).
    pub user: Option<String>,
    /// Leave the seccomp filter off.
    pub no_seccomp: bool,
    /// Leave the process dumpable (ptrace-able by its uid).
    pub dumpable: bool,
    /// What the filter must allow besides the run loop's calls.
    pub extra: seccomp::Extra,
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

/// Sets `no_new_privs` and empties the capability bounding set (as root) on the calling
/// thread; threads spawned after inherit both. Call before spawning threads.
pub fn before_threads() -> Result<()> {
    no_new_privs()?;
    if rustix::process::geteuid().is_root() {
        clear_bounding_set()?;
    }
    Ok(())
}

/// Sets `no_new_privs` on the calling thread (threads spawned after inherit it).
pub fn no_new_privs() -> Result<()> {
    rustix::thread::set_no_new_privs(true).context("prctl(PR_SET_NO_NEW_PRIVS)")
}

/// Gives up what `c` says; returns the lines for the startup block (`privileges`, then
/// `sandbox`). Call once, after setup, with every thread started (and after
/// [`before_threads`], before they were).
pub fn confine(c: &Confine) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let bounding = rustix::process::geteuid().is_root() && clear_bounding_set()?;
    no_new_privs()?;
    if let Some(user) = &c.user {
        lines.push(format!("  privileges      {}", drop_to(user, bounding)?));
    }
    let dumpable = match c.dumpable {
        true => rustix::process::DumpableBehavior::Dumpable,
        false => rustix::process::DumpableBehavior::NotDumpable,
    };
    rustix::process::set_dumpable_behavior(dumpable).context("prctl(PR_SET_DUMPABLE)")?;
    let filter = match c.no_seccomp {
        true => "no seccomp filter (--no-seccomp)".to_owned(),
        false => format!("seccomp allowlist of {} system calls on every thread", seccomp::install(c.extra)?),
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

/// Drops every thread to `user`; returns a line saying what happened. `bounding`: the
/// bounding set was emptied, so every thread must show it empty.
fn drop_to(user: &str, bounding: bool) -> Result<String> {
    if !rustix::process::geteuid().is_root() {
        return Ok("not root: nothing to drop".into());
    }
    let (uid, gid) = lookup(user)?;
    if uid == 0 {
        bail!("--user {user} is root; name an unprivileged user (e.g. nobody)");
    }
    fileserver_sys::creds::set_groups(&[]).context("setgroups([])")?;
    fileserver_sys::creds::set_res_gid(gid).context("setresgid")?;
    fileserver_sys::creds::set_res_uid(uid).context("setresuid")?;
    if rustix::process::geteuid().is_root() {
        bail!("still root after setresuid");
    }
    let threads = check_threads(uid, bounding)?;
    Ok(format!(
        "dropped privileges: now uid {uid} gid {gid} ({user}), no capabilities, no_new_privs, all {threads} thread(s)"
    ))
}

/// Checks that every thread runs as `uid` with no effective capabilities, `no_new_privs`
/// and (if `bounding`) an empty bounding set; returns how many threads there are.
fn check_threads(uid: u32, bounding: bool) -> Result<usize> {
    let mut n = 0;
    for t in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task")? {
        let t = t?;
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else { continue }; // it exited
        let field = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).map(str::trim).unwrap_or("");
        let uids: Vec<&str> = field("Uid:").split_whitespace().collect();
        let tid = t.file_name().to_string_lossy().into_owned();
        if uids.is_empty() || uids.iter().any(|u| u.parse::<u32>().ok() != Some(uid)) {
            bail!("thread {tid} still has uids {uids:?} after dropping to {uid}");
        }
        if u64::from_str_radix(field("CapEff:"), 16).ok() != Some(0) {
            bail!("thread {tid} kept capabilities {}", field("CapEff:"));
        }
        if field("NoNewPrivs:") != "1" {
            bail!("thread {tid} has no no_new_privs (set it before spawning threads)");
        }
        if bounding && u64::from_str_radix(field("CapBnd:"), 16).ok() != Some(0) {
            bail!("thread {tid} kept a bounding set {} (empty it before spawning threads)", field("CapBnd:"));
        }
        n += 1;
    }
    Ok(n)
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

#[cfg(test)]
mod tests {
    /// The name is set by the thread itself (`prctl(PR_SET_NAME)`, one of its start-up
    /// calls): once `spawn` returns it is there, so the start-up is over.
    #[test]
    fn spawn_returns_once_the_thread_is_past_its_start_up() {
        for i in 0..20 {
            let name = format!("zc-spawn-{i}");
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let t = super::spawn(&name, move || rx.recv()).expect("spawn");
            let names: Vec<String> = std::fs::read_dir("/proc/self/task")
                .expect("/proc/self/task")
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
                .map(|c| c.trim().to_owned())
                .collect();
            assert!(names.contains(&name), "{name} not among {names:?}");
            drop(tx);
            let _ = t.join();
        }
    }
}
