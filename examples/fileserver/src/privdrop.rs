//! Least privilege: once everything that needs root is open (root directory, listening
//! sockets, XDP program, AF_XDP sockets, registered pool), become an unprivileged user.
//! Changing every uid away from 0 clears the capability sets too, and `no_new_privs` stops
//! any way back. The server is single-threaded, so per-thread credential calls cover it.

use anyhow::{bail, Context, Result};
use rustix::process::{Gid, Uid};

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
    rustix::thread::set_thread_groups(&[]).context("setgroups([])")?;
    rustix::thread::set_thread_res_gid(Gid::from_raw(gid), Gid::from_raw(gid), Gid::from_raw(gid))
        .context("setresgid")?;
    rustix::thread::set_thread_res_uid(Uid::from_raw(uid), Uid::from_raw(uid), Uid::from_raw(uid))
        .context("setresuid")?;
    rustix::thread::set_no_new_privs(true).context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    if rustix::process::geteuid().is_root() {
        bail!("still root after setresuid");
    }
    // Changing credentials made the process non-dumpable, which hands /proc/self/fd to
    // root; the block cache reopens files through it, so take it back.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::Dumpable)
        .context("prctl(PR_SET_DUMPABLE)")?;
    Ok(format!("dropped privileges: now uid {uid} gid {gid} ({user}), no capabilities, no_new_privs"))
}
