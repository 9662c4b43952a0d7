//! `cargo xtask bench conns`: the file server on AF_XDP against nginx (`sendfile on`)
//! where connections are many or short, on the same veth pair, in the same run:
//!
//! * 1 KiB files with a new connection per request: wrk sending `Connection: close` on
//!   every request, and `ab -n N -c 32` (no `-k`, so HTTP/1.0 without keep-alive);
//! * 16 KiB files over 100, 1,000 and 10,000 keep-alive connections (wrk, its descriptor
//!   limit raised; nginx's `worker_connections` raised to fit).
//!
//! Each run starts once the server has let go of the connections of the run before it
//! (the client holds none but in TIME-WAIT). Each server runs pinned to CPU 1 and every
//! client to CPU 0; the client's veth has RPS
//! to CPU 0, so its receive processing runs on its side, as on two hosts. Requests/s,
//! failed requests and ratios ours/nginx go to the terminal and `target/bench/conns.md`.
//! Nothing is asserted about speed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::client::Prng;
use crate::ladder::{lua, target_dir};
use crate::loadgen::{Ab, Wrk};
use crate::netns::{Netns, SRV_ADDR};
use crate::nginx::{Nginx, NginxMode};
use crate::nstest::Bins;
use crate::tcptest::xdp_server;
use crate::util::{cmd_ok, output, which, Daemon};

/// Options of `cargo xtask bench conns`.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnsOpts {
    /// Seconds of each wrk run (after a 1 s warm-up per set).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Requests of the `ab` run (32 at once).
    #[arg(long, default_value_t = 200_000)]
    pub ab_requests: u64,
    /// wrk connections of the `Connection: close` run.
    #[arg(long, default_value_t = 16)]
    pub close_connections: u32,
    /// Keep-alive connection counts of the 16 KiB runs.
    #[arg(long, value_delimiter = ',', default_values_t = [100u32, 1000, 10000])]
    pub connections: Vec<u32>,
    /// A short run: 2 s per wrk run and at most 20,000 ab requests.
    #[arg(long)]
    pub quick: bool,
}

const PORT: u16 = 8080;
/// Files in each set.
const SET: usize = 256;
const SERVER_CPU: usize = 1;
const CLIENT_CPU: &str = "0";

/// Descriptors a client needs beside its connections.
const CLIENT_FDS: u64 = 64;

/// The hard `RLIMIT_NOFILE` of this process (its children inherit it).
fn nofile_hard() -> Option<u64> {
    limits_nofile_hard(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// The hard limit on the `Max open files` line of /proc/PID/limits.
fn limits_nofile_hard(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let v = line.trim_start_matches("Max open files").split_whitespace().nth(1)?;
    if v == "unlimited" {
        return Some(u64::MAX);
    }
    v.parse().ok()
}

/// One workload.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Load {
    /// wrk over the 1 KiB set with `Connection: close`, this many connections.
    Close(u32),
    /// `ab -n N -c 32` on one 1 KiB file.
    Ab(u64),
    /// wrk over the 16 KiB set on this many keep-alive connections.
    KeepAlive(u32),
}

impl Load {
    fn label(&self) -> String {
        match self {
            Load::Close(c) => format!("1 KiB, `Connection: close`, wrk -t1 -c{c}"),
            Load::Ab(n) => format!("1 KiB, `ab -n {n} -c 32` (no keep-alive)"),
            Load::KeepAlive(c) => format!("16 KiB, {c} keep-alive connections, wrk -t1 -c{c}"),
        }
    }
}

/// One measurement: requests/s and failed requests.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rate {
    req_s: f64,
    failed: u64,
}

impl From<Wrk> for Rate {
    fn from(w: Wrk) -> Rate {
        Rate { req_s: w.req_s(), failed: w.errors + w.non2xx }
    }
}

/// What `ab` did not complete counts as failed, beside what it says failed.
fn ab_rate(a: &Ab, asked: u64) -> Rate {
    Rate { req_s: a.req_s(), failed: a.failed + a.non2xx + asked.saturating_sub(a.complete) }
}

/// The files and wrk scripts under /var/tmp, removed on drop.
struct Data {
    dir: PathBuf,
    www: PathBuf,
    close_1k: PathBuf,
    keep_16k: PathBuf,
}

impl Data {
    fn create() -> Result<Data> {
        let dir = PathBuf::from(format!("/var/tmp/zc-conns-{}", std::process::id()));
        let www = dir.join("www");
        let d = Data { close_1k: dir.join("k1-close.lua"), keep_16k: dir.join("k16.lua"), www, dir };
        let mut rng = Prng::new(0xc0_55);
        for (sub, size) in [("k1", 1u64 << 10), ("k16", 16 << 10)] {
            std::fs::create_dir_all(d.www.join(sub)).with_context(|| format!("creating {}", d.www.display()))?;
            for i in 0..SET {
                rng.write_file(&d.www.join(format!("{sub}/f{i:03}")), size)?;
            }
        }
        std::fs::write(&d.close_1k, lua("/k1/f", SET, true))?;
        std::fs::write(&d.keep_16k, lua("/k16/f", SET, false))?;
        Ok(d)
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server under test (one of the two), stopped on drop.
struct Server {
    _nginx: Option<Nginx>,
    _ours: Option<Daemon>,
}

/// Runs the table and writes `target/bench/conns.md`.
pub fn bench(bins: &Bins, o: &ConnsOpts) -> Result<()> {
    for (tool, pkg) in [("wrk", "wrk"), ("ab", "apache2-utils")] {
        ensure!(which(tool).is_some(), "{tool} is not installed: run `cargo xtask setup` (Debian package {pkg})");
    }
    ensure!(!o.connections.is_empty(), "--connections needs at least one count");
    ensure!(
        o.connections.iter().chain([&o.close_connections]).all(|&c| (1..=60_000).contains(&c)),
        "connection counts must be 1..=60000"
    );
    // Raising the hard limit needs CAP_SYS_RESOURCE, which a container may not grant.
    let hard = nofile_hard().context("reading the descriptor limit from /proc/self/limits")?;
    let need = u64::from(o.connections.iter().copied().max().unwrap_or(0)) + CLIENT_FDS;
    ensure!(
        need <= hard,
        "{need} descriptors are needed for the most connections but the hard limit is {hard}: raise it (`ulimit -Hn`, as root with CAP_SYS_RESOURCE) or pass fewer --connections"
    );
    let secs = if o.quick { o.seconds.min(2) } else { o.seconds }.max(1);
    let ab_n = if o.quick { o.ab_requests.min(20_000) } else { o.ab_requests }.max(1);
    let most = *o.connections.iter().max().unwrap_or(&100);
    let mut loads = vec![Load::Close(o.close_connections), Load::Ab(ab_n)];
    loads.extend(o.connections.iter().map(|&c| Load::KeepAlive(c)));

    let started = Instant::now();
    let data = Data::create()?;
    let ns = Netns::up("n", 1500)?;
    ns.client_rps(0)?;
    let mut cols: Vec<(&str, Vec<Result<Rate, String>>)> = Vec::new();
    for name in ["nginx sendfile", "ours (AF_XDP)"] {
        println!("bench conns: {name} on CPU {SERVER_CPU} ...");
        let server = start(name, bins, &ns, &data.www, most);
        let cells = match &server {
            Ok(_) => loads
                .iter()
                .map(|l| {
                    let r = measure(&ns, &data, l, secs);
                    match &r {
                        Ok(r) => println!("  {:<52} {:>9.0} req/s, {} failed", l.label(), r.req_s, r.failed),
                        Err(e) => println!("  {:<52} failed: {e:#}", l.label()),
                    }
                    r.map_err(|e| format!("{e:#}"))
                })
                .collect(),
            Err(e) => {
                println!("  could not start: {e:#}");
                loads.iter().map(|_| Err(format!("could not start: {e:#}"))).collect()
            }
        };
        drop(server);
        cols.push((name, cells));
        // The kernel releases the exited server's sockets and TIME-WAIT entries by itself.
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(data);
    let md = report(&loads, &cols, secs, started.elapsed().as_secs_f64());
    let out = target_dir().join("bench");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("conns.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    println!();
    print!("{md}");
    println!("written: {}", path.display());
    Ok(())
}

fn start(name: &str, bins: &Bins, ns: &Netns, www: &Path, most: u32) -> Result<Server> {
    if name.starts_with("nginx") {
        let n = Nginx::start_for(ns, www, PORT, NginxMode::Sendfile, Some(SERVER_CPU), most)?;
        return Ok(Server { _nginx: Some(n), _ours: None });
    }
    let mut cmd = ns.in_server("taskset");
    cmd.args(["-c", &SERVER_CPU.to_string()]);
    let max = (most + 1024).to_string();
    let d = xdp_server(cmd, bins, &ns.srv_if, www, PORT, &["--max-connections", &max])?;
    Ok(Server { _nginx: None, _ours: Some(d) })
}

/// Longest wait for a server to let go of the last run's connections.
const SETTLE: Duration = Duration::from_secs(60);

/// Waits (at most [`SETTLE`]) until the client holds no connection to the server in any
/// state but TIME-WAIT, so a run never starts while the server is still closing the
/// last one's (10,000 at once take a while); returns the connections still held.
fn settle(ns: &Netns) -> usize {
    let end = Instant::now() + SETTLE;
    let filter = format!("( dport = :{PORT} )");
    loop {
        let held = cmd_ok(ns.in_client("ss").args(["-Htn", "state", "connected", "exclude", "time-wait", &filter]))
            .map_or(0, |t| t.lines().filter(|l| !l.trim().is_empty()).count());
        if held == 0 || Instant::now() >= end {
            return held;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One run of `load` (after a 1 s warm-up for the wrk sets), each started once the
/// server has let go of the connections before it.
fn measure(ns: &Netns, data: &Data, load: &Load, secs: u64) -> Result<Rate> {
    let settled = |what: &str| {
        let held = settle(ns);
        if held > 0 {
            println!("  ({held} connections still not closed {} s after the {what})", SETTLE.as_secs());
        }
    };
    settled("previous run");
    match *load {
        Load::Close(c) => {
            let _ = wrk(ns, &data.close_1k, c, 1);
            settled("warm-up");
            wrk(ns, &data.close_1k, c, secs).map(Rate::from)
        }
        Load::Ab(n) => {
            let url = format!("http://{SRV_ADDR}:{PORT}/k1/f000");
            let cmd = format!("exec taskset -c {CLIENT_CPU} ab -q -r -s 10 -n {n} -c 32 {url}");
            let (_, text) = output(ns.in_client("bash").args(["-c", &cmd]))?;
            Ab::parse(&text).map(|a| ab_rate(&a, n))
        }
        Load::KeepAlive(c) => {
            let _ = wrk(ns, &data.keep_16k, c, 1);
            settled("warm-up");
            wrk(ns, &data.keep_16k, c, secs).map(Rate::from)
        }
    }
}

/// wrk with one thread on the client CPU, its descriptor limit raised to the hard limit
/// (checked beforehand to fit `conns`).
fn wrk(ns: &Netns, script: &Path, conns: u32, secs: u64) -> Result<Wrk> {
    let cmd = format!(
        "ulimit -Sn $(ulimit -Hn) && exec taskset -c {CLIENT_CPU} wrk -t1 -c{conns} -d{secs}s --timeout 5s -s '{}' http://{SRV_ADDR}:{PORT}/",
        script.display()
    );
    let (_, text) = output(ns.in_client("bash").args(["-c", &cmd]))?;
    let w = Wrk::parse(&text)?;
    ensure!(w.requests > 0, "wrk completed no request: {}", text.trim());
    Ok(w)
}

/// The table: each load, both servers, the ratio, the failures; then ours at the most
/// connections against ours at the fewest.
fn report(loads: &[Load], cols: &[(&str, Vec<Result<Rate, String>>)], secs: u64, elapsed: f64) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Many and short connections: the file server on AF_XDP vs nginx\n");
    let _ = writeln!(
        o,
        "Linux {}, veth (AF_XDP copy mode), MTU 1500; each server pinned to CPU {SERVER_CPU}, every client to CPU {CLIENT_CPU}, client RPS to CPU {CLIENT_CPU} (as two hosts); wrk runs {secs} s after a 1 s warm-up; {elapsed:.0} s in all. nginx: {}, one worker, `sendfile on`. Failed: wrk's socket errors and non-2xx answers; ab's failed, non-2xx and unfinished requests.\n",
        cmd_ok(Command::new("uname").arg("-r")).unwrap_or_default().trim(),
        Nginx::version().unwrap_or_else(|| "version unknown".into()),
    );
    let _ = writeln!(o, "| workload | nginx req/s | ours req/s | ours/nginx | failed nginx | failed ours |");
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
    let cell = |c: usize, i: usize| cols.get(c).and_then(|(_, v)| v.get(i));
    for (i, l) in loads.iter().enumerate() {
        let (n, x) = (cell(0, i), cell(1, i));
        let rate = |c: Option<&Result<Rate, String>>| match c {
            Some(Ok(r)) => format!("{:.0}", r.req_s),
            Some(Err(e)) => format!("failed: {}", e.lines().next().unwrap_or("")),
            None => "-".into(),
        };
        let failed = |c: Option<&Result<Rate, String>>| match c {
            Some(Ok(r)) => r.failed.to_string(),
            _ => "-".into(),
        };
        let ratio = match (n, x) {
            (Some(Ok(n)), Some(Ok(x))) => format!("{:.2}x", x.req_s / n.req_s.max(1e-9)),
            _ => "-".into(),
        };
        let _ = writeln!(o, "| {} | {} | {} | {ratio} | {} | {} |", l.label(), rate(n), rate(x), failed(n), failed(x));
    }
    if let Some(line) = scaling(loads, cols.get(1).map(|c| c.1.as_slice()).unwrap_or(&[])) {
        let _ = writeln!(o, "\n{line}");
    }
    o
}

/// Ours at the most keep-alive connections against ours at the fewest.
fn scaling(loads: &[Load], ours: &[Result<Rate, String>]) -> Option<String> {
    let kept: Vec<(u32, f64)> = loads
        .iter()
        .zip(ours)
        .filter_map(|(l, r)| match (l, r) {
            (Load::KeepAlive(c), Ok(r)) => Some((*c, r.req_s)),
            _ => None,
        })
        .collect();
    let lo = kept.iter().min_by_key(|k| k.0)?;
    let hi = kept.iter().max_by_key(|k| k.0)?;
    (hi.0 > lo.0).then(|| {
        format!(
            "Ours at {} keep-alive connections: {:.2}x of ours at {} ({:.0} vs {:.0} req/s).",
            hi.0,
            hi.1 / lo.1.max(1e-9),
            lo.0,
            hi.1,
            lo.1
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(req_s: f64, failed: u64) -> Result<Rate, String> {
        Ok(Rate { req_s, failed })
    }

    #[test]
    fn ab_counts_unfinished_requests_as_failed() {
        let a = Ab { complete: 190, failed: 2, non2xx: 1, secs: 2.0 };
        assert_eq!(ab_rate(&a, 200), Rate { req_s: 95.0, failed: 13 });
    }

    #[test]
    fn the_table_has_a_ratio_per_load_and_ours_scaling() {
        let loads = vec![Load::Close(16), Load::Ab(1000), Load::KeepAlive(100), Load::KeepAlive(10_000)];
        let cols = vec![
            ("nginx sendfile", vec![ok(4000.0, 0), ok(3000.0, 0), ok(10_000.0, 0), ok(9000.0, 1)]),
            ("ours (AF_XDP)", vec![ok(2000.0, 0), Err("ab printed no summary".into()), ok(8000.0, 0), ok(6000.0, 13)]),
        ];
        let md = report(&loads, &cols, 2, 30.0);
        assert!(md.contains("| 1 KiB, `Connection: close`, wrk -t1 -c16 | 4000 | 2000 | 0.50x | 0 | 0 |"), "{md}");
        assert!(
            md.contains(
                "| 1 KiB, `ab -n 1000 -c 32` (no keep-alive) | 3000 | failed: ab printed no summary | - | 0 | - |"
            ),
            "{md}"
        );
        assert!(md.contains("10000 keep-alive connections, wrk -t1 -c10000 | 9000 | 6000 | 0.67x | 1 | 13 |"), "{md}");
        assert!(md.contains("Ours at 10000 keep-alive connections: 0.75x of ours at 100"), "{md}");
    }

    #[test]
    fn the_hard_descriptor_limit_is_read_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             63432                63432                processes \n\
                    Max open files            1024                 20000                files     \n";
        assert_eq!(limits_nofile_hard(text), Some(20000));
        assert_eq!(limits_nofile_hard("Max open files unlimited unlimited files\n"), Some(u64::MAX));
        assert_eq!(limits_nofile_hard("Max processes 1 2 processes\n"), None);
    }

    #[test]
    fn no_scaling_line_without_two_keep_alive_levels() {
        assert_eq!(scaling(&[Load::KeepAlive(100)], &[ok(1.0, 0)]), None);
        assert_eq!(scaling(&[Load::KeepAlive(100), Load::KeepAlive(1000)], &[ok(1.0, 0), Err("x".into())]), None);
    }
}
