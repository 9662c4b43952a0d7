//! What the server side cost, from /proc: CPU time (utime + stime) and context switches
//! (voluntary + involuntary, every thread) of every process in the server namespace, so
//! the file server, nginx's master and worker, and nginx's aio threads are all counted.
//! Softirq work the kernel does on the server's behalf on another CPU is not in these.

use std::collections::{HashMap, HashSet};
use std::process::Command;

use crate::util::cmd_ok;

/// A sample of the server namespace's processes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// utime + stime, clock ticks.
    pub ticks: u64,
    /// utime alone (user space: our code, or nginx's), clock ticks.
    pub user_ticks: u64,
    /// Context switches, voluntary + involuntary.
    pub ctxt: u64,
}

impl Usage {
    /// Now, for every process in namespace `ns`.
    pub fn of_netns(ns: &str) -> Usage {
        let pids = cmd_ok(Command::new("ip").args(["netns", "pids", ns])).unwrap_or_default();
        pids.split_whitespace().filter_map(|p| p.parse::<u32>().ok()).map(of_pid).fold(Usage::default(), |a, b| Usage {
            ticks: a.ticks + b.ticks,
            user_ticks: a.user_ticks + b.user_ticks,
            ctxt: a.ctxt + b.ctxt,
        })
    }

    /// `self - before`, saturating (a process that exited in between loses its share).
    pub fn since(self, before: Usage) -> Usage {
        Usage {
            ticks: self.ticks.saturating_sub(before.ticks),
            user_ticks: self.user_ticks.saturating_sub(before.user_ticks),
            ctxt: self.ctxt.saturating_sub(before.ctxt),
        }
    }

    /// CPU seconds.
    pub fn cpu_secs(&self, clk_tck: u64) -> f64 {
        self.ticks as f64 / clk_tck.max(1) as f64
    }

    /// User-space CPU seconds (the rest of [`Usage::cpu_secs`] is system time).
    pub fn user_secs(&self, clk_tck: u64) -> f64 {
        self.user_ticks as f64 / clk_tck.max(1) as f64
    }
}

fn of_pid(pid: u32) -> Usage {
    let (user_ticks, sys_ticks) =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().map_or((0, 0), |s| stat_user_sys(&s));
    let mut ctxt = 0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("status")) {
                ctxt += status_ctxt(&s);
            }
        }
    }
    Usage { ticks: user_ticks + sys_ticks, user_ticks, ctxt }
}

/// utime + stime from a /proc/PID/stat line (fields 14 and 15; the command name, field 2,
/// may contain spaces and parentheses, so count from the last `)`).
fn stat_ticks(stat: &str) -> u64 {
    let (u, s) = stat_user_sys(stat);
    u + s
}

/// (utime, stime) from a /proc/PID/stat line.
fn stat_user_sys(stat: &str) -> (u64, u64) {
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return (0, 0) };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 -> index 11, stime index 12.
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (get(11), get(12))
}

fn status_ctxt(status: &str) -> u64 {
    status
        .lines()
        .filter(|l| l.starts_with("voluntary_ctxt_switches:") || l.starts_with("nonvoluntary_ctxt_switches:"))
        .filter_map(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

/// Everything else the machine did: CPU time of user processes outside the benchmark's
/// namespaces (other work on a shared machine) plus time the hypervisor stole. A run with
/// much of it is measured again.
#[derive(Debug, Default)]
pub struct Background {
    ticks: HashMap<u32, u64>,
    steal: u64,
}

impl Background {
    /// Now; processes in the namespaces `ours` and this process are left out.
    pub fn sample(ours: &[&str]) -> Background {
        let mut skip: HashSet<u32> = HashSet::from([std::process::id()]);
        for ns in ours {
            let pids = cmd_ok(Command::new("ip").args(["netns", "pids", ns])).unwrap_or_default();
            skip.extend(pids.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
        let mut ticks = HashMap::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if skip.contains(&pid) {
                continue;
            }
            // Kernel threads have an empty command line; softirq work for our own traffic
            // runs in some of them, so they are not "someone else".
            let user = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty());
            if !user {
                continue;
            }
            if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                ticks.insert(pid, stat_ticks(&s));
            }
        }
        let steal = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(8)).and_then(|v| v.parse().ok()))
            .unwrap_or(0);
        Background { ticks, steal }
    }

    /// Ticks used by others between `before` and `self` (processes started in between
    /// count from zero; processes that ended in between are lost).
    pub fn since(&self, before: &Background) -> u64 {
        let procs: u64 =
            self.ticks.iter().map(|(pid, t)| t.saturating_sub(before.ticks.get(pid).copied().unwrap_or(0))).sum();
        procs + self.steal.saturating_sub(before.steal)
    }
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux when that fails).
pub fn clk_tck() -> u64 {
    cmd_ok(Command::new("getconf").arg("CLK_TCK")).and_then(|s| s.trim().parse().ok()).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_and_status() {
        let stat = "1234 (file server) S 1 1234 1234 0 -1 4194560 500 0 0 0 37 12 0 0 20 0 1 0 100 0 0";
        assert_eq!(stat_ticks(stat), 49);
        assert_eq!(stat_user_sys(stat), (37, 12));
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(status_ctxt(status), 13);
        assert!(of_pid(std::process::id()).ctxt > 0, "this process has been switched out before");
    }
}
