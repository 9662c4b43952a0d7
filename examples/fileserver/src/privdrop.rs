//! Least privilege: once everything that needs root is open (root directory, listening
//! sockets, XDP program, AF_XDP sockets, registered pool), become an unprivileged user.
//! Changing every uid away from 0 clears the capability sets too, and `no_new_privs` stops
//! any way back. The AF_XDP backend runs worker threads, so the credential calls are the C
//! library's process-wide ones ([`fileserver_sys::creds`]), and the drop checks every
//! thread in `/proc/self/task` afterwards. `no_new_privs` is per thread and inherited:
//! set it with [`no_new_privs`] before spawning threads.

use anyhow::{bail, Context, Result};

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

/// Drops to `user`; returns a line saying what happened.
pub fn drop_to(user: &str) -> Result<String> {
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
    no_new_privs()?;
    if rustix::process::geteuid().is_root() {
        bail!("still root after setresuid");
    }
    let threads = check_threads(uid)?;
    // Changing credentials made the process non-dumpable, which hands /proc/self/fd to
    // root; the block cache reopens files through it, so take it back.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::Dumpable)
        .context("prctl(PR_SET_DUMPABLE)")?;
    Ok(format!(
        "dropped privileges: now uid {uid} gid {gid} ({user}), no capabilities, no_new_privs, all {threads} thread(s)"
    ))
}

/// Sets `no_new_privs` on the calling thread (threads spawned after inherit it).
pub fn no_new_privs() -> Result<()> {
    rustix::thread::set_no_new_privs(true).context("prctl(PR_SET_NO_NEW_PRIVS)")
}

/// Checks that every thread runs as `uid` with no effective capabilities and
/// `no_new_privs`; returns how many threads there are.
fn check_threads(uid: u32) -> Result<usize> {
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
        n += 1;
    }
    Ok(n)
}
