//! `cargo xtask bench ladder`: every rung of the copy ladder (the kernel backend's
//! methods), the AF_XDP backend and nginx, one after another on the same veth pair, with
//! the same clients and the same files, measured in the same run:
//!
//! * a large file (1 GiB) downloaded with curl warm (after a warm-up download) and cold
//!   (after `drop_caches`);
//! * wrk over 64 files of 1 MiB and over 256 files of 16 KiB (one connection per
//!   `--connections`, keep-alive, a Lua script cycling through the set).
//!
//! The server runs pinned to CPU 1 and the clients to CPU 0; the client veth's receive
//! processing is steered to CPU 0 with RPS, as on two hosts (veth would otherwise run the
//! client's TCP receive in softirq on the server's core), unless `--same-core`. For each
//! run it records throughput, the server namespace's user and system CPU seconds per GiB
//! sent and its context switches per request (both from /proc), and each rung's
//! throughput as a ratio to the `--versus` rung (`read-write` by default). With
//! `--ceiling` it first measures the AF_XDP transmit ceiling of the same veth pair
//! (`bench txceil`) and reports the AF_XDP server's packets per second as a share of it.
//! Figures are printed and written to `target/bench/ladder.md` and `ladder.svg`; nothing
//! is asserted about speed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use super::procstat::{clk_tck, Background, Usage};
use super::report::{self, Meta};
use super::METHODS;
use crate::client::Prng;
use crate::netns::{Netns, SRV_ADDR};
use crate::nginx::{Nginx, NginxMode};
use crate::nstest::Bins;
use crate::util::{cmd_ok, root, which, Daemon};

/// Options of `cargo xtask bench ladder` (flatten into the subcommand).
#[derive(clap::Args, Debug, Clone)]
pub struct BenchOpts {
    /// Seconds of each wrk run (the 1 MiB set and the 16 KiB set; best of two, after a
    /// 1 s warm-up).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Size of the large file in MiB (downloaded warm and cold).
    #[arg(long, default_value_t = 1024)]
    pub size_mib: u64,
    /// A short run (about 1.5 minutes): one 2 s wrk run per set, best of two downloads of a
    /// large file of at most 256 MiB.
    #[arg(long)]
    pub quick: bool,
    /// Only rungs whose name contains one of these comma-separated words (e.g. `sendfile`,
    /// `nginx,AF_XDP`); the read-write baseline always runs, for the ratios.
    #[arg(long)]
    pub only: Option<String>,
    /// MTU of the veth pair.
    #[arg(long, default_value_t = 1500)]
    pub mtu: u32,
    /// Name of the report files (`<name>.md`, `<name>.svg` under target/bench).
    #[arg(long, default_value = "ladder")]
    pub report: String,
    /// wrk connections (one wrk thread, on CPU 0); a comma-separated list runs both sets
    /// at each (e.g. `4,16,64`).
    #[arg(long, value_delimiter = ',', default_value = "4")]
    pub connections: Vec<u32>,
    /// Leave the client's receive processing in softirq on the server's core (veth's
    /// default) instead of steering it to the client's CPU with RPS.
    #[arg(long)]
    pub same_core: bool,
    /// The rung the ratios are computed against (a word of its name, e.g. `sendfile` for
    /// nginx sendfile); it always runs.
    #[arg(long, default_value = "read-write")]
    pub versus: String,
    /// Measure the AF_XDP transmit ceiling of this veth pair first (`bench txceil`) and
    /// report the AF_XDP server's packets per second as a share of it.
    #[arg(long)]
    pub ceiling: bool,
}

const PORT: u16 = 8080;
const SERVER_CPU: usize = 1;
const CLIENT_CPU: &str = "0";
/// Files in the 1 MiB set and in the 16 KiB set.
const SET_1M: usize = 64;
const SET_16K: usize = 256;
/// Background load (CPUs) above which a run counts as disturbed (marked in the table, and
/// measured again while no attempt was quiet).
pub(super) const QUIET: f64 = 0.05;
/// Attempts per measurement at most.
const MAX_TRIES: u32 = 4;

/// How long and how often.
struct Plan {
    /// Seconds per wrk run.
    secs: u64,
    /// Attempts per large-file download (the fastest is kept).
    large: u32,
    /// Attempts per wrk run.
    wrk: u32,
    /// What is measured, in column order.
    workloads: Vec<Workload>,
}

/// A server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rung {
    Kernel(&'static str),
    Xdp,
    Nginx(NginxMode),
}

impl Rung {
    pub fn label(self) -> String {
        match self {
            Rung::Kernel(m) => m.to_owned(),
            Rung::Xdp => "AF_XDP (ours)".to_owned(),
            Rung::Nginx(m) => m.label().to_owned(),
        }
    }
}

/// What is measured (the sets with their wrk connection count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Workload {
    Warm,
    Cold,
    Set1M(u32),
    Set16K(u32),
}

/// The columns: both large-file downloads, then both sets at each connection count.
pub(super) fn workloads(connections: &[u32]) -> Vec<Workload> {
    let mut w = vec![Workload::Warm, Workload::Cold];
    for &c in connections {
        w.extend([Workload::Set1M(c.max(1)), Workload::Set16K(c.max(1))]);
    }
    w
}

/// One measurement.
#[derive(Clone, Debug)]
pub(super) struct Cell {
    pub bytes: u64,
    pub requests: u64,
    pub secs: f64,
    pub cpu_secs: f64,
    /// The user-space part of `cpu_secs`.
    pub user_secs: f64,
    pub ctxt: u64,
    /// Failed requests (wrk: socket errors and non-2xx answers).
    pub errors: u64,
    /// CPUs' worth of time other processes (or the hypervisor) took during the run.
    pub background: f64,
}

impl Cell {
    pub fn mb_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs.max(1e-9)
    }
    pub fn req_s(&self) -> f64 {
        self.requests as f64 / self.secs.max(1e-9)
    }
    pub fn cpu_per_gib(&self) -> f64 {
        self.cpu_secs / self.gib()
    }
    pub fn user_per_gib(&self) -> f64 {
        self.user_secs / self.gib()
    }
    pub fn sys_per_gib(&self) -> f64 {
        (self.cpu_secs - self.user_secs).max(0.0) / self.gib()
    }
    fn gib(&self) -> f64 {
        (self.bytes as f64 / (1u64 << 30) as f64).max(1e-12)
    }
    pub fn ctxt_per_req(&self) -> f64 {
        self.ctxt as f64 / self.requests.max(1) as f64
    }
}

/// A rung's results.
pub(super) struct Row {
    pub rung: Rung,
    pub cells: Vec<Result<Cell, String>>,
    /// What the server's own counters said (copies, O_DIRECT bytes, ...).
    pub note: String,
}

/// Runs the benchmark.
pub fn bench(bins: &Bins, opts: &BenchOpts) -> Result<()> {
    ensure!(which("wrk").is_some(), "wrk is not installed: run `cargo xtask setup` (Debian package wrk)");
    let workloads = workloads(&opts.connections);
    let plan = if opts.quick {
        Plan { secs: 2, large: 2, wrk: 1, workloads }
    } else {
        Plan { secs: opts.seconds.max(1), large: 3, wrk: 2, workloads }
    };
    let size_mib = if opts.quick { opts.size_mib.min(256) } else { opts.size_mib }.max(1);
    let started = Instant::now();
    println!("bench ladder: writing the data set ({size_mib} MiB file, {SET_1M} x 1 MiB, {SET_16K} x 16 KiB) ...");
    let data = Data::create(size_mib)?;
    let ceiling = if opts.ceiling {
        println!("bench {}: the AF_XDP transmit ceiling at MTU {} (bench txceil, 3 s) ...", opts.report, opts.mtu);
        let c = crate::txceil::measure(bins, opts.mtu, 3.0, opts.same_core)?;
        println!("  {:.0} packets/s, {:.2} Gbit/s", c.packets_per_sec, c.gbit_per_sec);
        Some(c)
    } else {
        None
    };
    let ns = Netns::up("L", opts.mtu)?;
    if !opts.same_core {
        ns.client_rps(0)?;
    }
    let placement = if opts.same_core {
        "client receive in softirq on the server's core (veth's default)"
    } else {
        "client receive steered to CPU 0 with RPS (two hosts)"
    };
    println!("bench {}: veth MTU {}, {placement}", opts.report, opts.mtu);
    let clk = clk_tck();
    let mut rungs: Vec<Rung> = METHODS.iter().map(|m| Rung::Kernel(m)).collect();
    rungs.extend([Rung::Nginx(NginxMode::Sendfile), Rung::Nginx(NginxMode::DirectAio), Rung::Xdp]);
    let versus = opts.versus.trim();
    ensure!(
        rungs.iter().any(|r| r.label().contains(versus)),
        "--versus {versus:?} names no rung (rungs: {})",
        rungs.iter().map(|r| r.label()).collect::<Vec<_>>().join(", ")
    );
    if let Some(f) = &opts.only {
        rungs.retain(|r| {
            r.label().contains(versus) || f.split(',').any(|w| !w.is_empty() && r.label().contains(w.trim()))
        });
    }
    let mut rows = Vec::new();
    for rung in rungs {
        println!("bench ladder: {} ...", rung.label());
        let row = run_rung(bins, &ns, &data, rung, &plan, clk);
        for (w, c) in plan.workloads.iter().zip(&row.cells) {
            match c {
                Ok(c) => println!(
                    "  {:<24} {:>8.1} MB/s {:>9.1} req/s {:>7.3}+{:.3} user+sys CPU s/GiB {:>8.2} ctxt/req  others {:>3.0}% CPU{}",
                    report::workload_title(*w),
                    c.mb_s(),
                    c.req_s(),
                    c.user_per_gib(),
                    c.sys_per_gib(),
                    c.ctxt_per_req(),
                    c.background * 100.0,
                    if c.errors > 0 { format!("  ({} errors)", c.errors) } else { String::new() }
                ),
                Err(e) => println!("  {:<24} failed: {e}", report::workload_title(*w)),
            }
        }
        rows.push(row);
    }
    drop(ns);
    drop(data);
    let meta = Meta {
        kernel: cmd_ok(Command::new("uname").arg("-r")).unwrap_or_default().trim().to_owned(),
        cpu: cpu_model(),
        nginx: Nginx::version().unwrap_or_else(|| "not installed".into()),
        secs: plan.secs,
        large_tries: plan.large,
        wrk_tries: plan.wrk,
        size_mib,
        workloads: plan.workloads.clone(),
        versus: versus.to_owned(),
        placement: placement.to_owned(),
        mtu: opts.mtu,
        ceiling,
        elapsed: started.elapsed().as_secs_f64(),
        command: format!("cargo xtask {}", std::env::args().skip(1).collect::<Vec<_>>().join(" ")),
    };
    let md = report::markdown(&rows, &meta);
    let svg = report::svg(&rows, &meta);
    let out = target_dir().join("bench");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let (md_path, svg_path) = (out.join(format!("{}.md", opts.report)), out.join(format!("{}.svg", opts.report)));
    std::fs::write(&md_path, &md)?;
    std::fs::write(&svg_path, &svg)?;
    println!();
    print!("{md}");
    println!();
    println!("written: {} and {}", md_path.display(), svg_path.display());
    Ok(())
}

fn run_rung(bins: &Bins, ns: &Netns, data: &Data, rung: Rung, t: &Plan, clk: u64) -> Row {
    let n = t.workloads.len();
    let mut row = Row { rung, cells: vec![Err("not run".into()); n], note: String::new() };
    let server = match Server::start(bins, ns, data, rung) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("could not start: {e:#}");
            println!("  {msg}");
            row.cells = vec![Err(msg); n];
            return row;
        }
    };
    let big = format!("http://{SRV_ADDR}:{PORT}/big");
    let text = |r: Result<Cell>| r.map_err(|e| format!("{e:#}"));
    let _ = download(ns, &big, data.size, clk);
    for (i, w) in t.workloads.iter().enumerate() {
        println!("  {}:", report::workload_title(*w));
        let cell = match *w {
            Workload::Warm => best_of(ns, clk, t.large, || download(ns, &big, data.size, clk)),
            Workload::Cold => {
                best_of(ns, clk, t.large, || drop_caches().and_then(|()| download(ns, &big, data.size, clk)))
            }
            Workload::Set1M(c) | Workload::Set16K(c) => {
                let lua = if matches!(w, Workload::Set1M(_)) { &data.lua_1m } else { &data.lua_16k };
                let _ = wrk(ns, lua, 1, c, clk);
                best_of(ns, clk, t.wrk, || wrk(ns, lua, t.secs, c, clk))
            }
        };
        row.cells[i] = text(cell);
    }
    row.note = server.stop();
    row
}

/// Runs `measure` `tries` times and keeps the fastest attempt (interference on a shared
/// machine only ever slows a run down). It also notes how much else the machine did
/// during each attempt; while even the fastest was disturbed, it tries again, up to
/// [`MAX_TRIES`] in all.
fn best_of(ns: &Netns, clk: u64, tries: u32, measure: impl Fn() -> Result<Cell>) -> Result<Cell> {
    let ours = [ns.server.as_str(), ns.client.as_str()];
    let mut best: Option<Cell> = None;
    let mut last_err = None;
    let mut n = 0;
    while n < tries || (n < MAX_TRIES && best.as_ref().is_none_or(|b| b.background > QUIET)) {
        n += 1;
        let before = Background::sample(&ours);
        let start = Instant::now();
        let mut cell = match measure() {
            Ok(c) => c,
            Err(e) => {
                println!("    attempt {n}: failed: {e:#}");
                last_err = Some(e);
                continue;
            }
        };
        let others = Background::sample(&ours).since(&before) as f64 / clk.max(1) as f64;
        cell.background = others / start.elapsed().as_secs_f64().max(1e-3);
        println!(
            "    attempt {n}: {:.1} MB/s, {:.0} req/s (others took {:.0}% of a CPU)",
            cell.mb_s(),
            cell.req_s(),
            cell.background * 100.0
        );
        if best.as_ref().is_none_or(|b| cell.mb_s() > b.mb_s()) {
            best = Some(cell);
        }
    }
    match (best, last_err) {
        (Some(b), _) => Ok(b),
        (None, Some(e)) => Err(e),
        (None, None) => bail!("no attempt was made"),
    }
}

/// The server of one rung, stopped on drop.
enum Server {
    Fs(Daemon, Rung),
    Nginx(Nginx),
}

impl Server {
    fn start(bins: &Bins, ns: &Netns, data: &Data, rung: Rung) -> Result<Server> {
        let mut cmd = ns.in_server("taskset");
        cmd.args(["-c", &SERVER_CPU.to_string()]).arg(&bins.fileserver).arg("--root").arg(&data.www);
        cmd.args(["--addr", SRV_ADDR, "--port", &PORT.to_string()]).env("RUST_LOG", "warn");
        match rung {
            Rung::Kernel(m) => {
                cmd.args(["--backend", "kernel", "--method", m]);
            }
            Rung::Xdp => {
                cmd.args(["--backend", "xdp", "--iface", &ns.srv_if]);
            }
            Rung::Nginx(mode) => return Ok(Server::Nginx(Nginx::start(ns, &data.www, PORT, mode, Some(SERVER_CPU))?)),
        }
        let mut d = Daemon::spawn("fileserver", &mut cmd)?;
        d.wait_line("ready", Duration::from_secs(30))?;
        Ok(Server::Fs(d, rung))
    }

    /// Stops the server; a note from its exit counters.
    fn stop(self) -> String {
        match self {
            Server::Nginx(n) => {
                drop(n);
                format!("nginx {}", Nginx::version().unwrap_or_default())
            }
            Server::Fs(mut d, rung) => match d.terminate(Duration::from_secs(20)) {
                Ok((_, text)) => counters_note(&text, rung),
                Err(e) => format!("exit: {e:#}"),
            },
        }
    }
}

/// The interesting exit counters of a file server run, as one line.
fn counters_note(text: &str, rung: Rung) -> String {
    let c = |name: &str| -> u64 {
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
    };
    let sent = c("fileserver_body_bytes_sent_total ");
    let copied = c("fileserver_payload_bytes_copied_total ");
    let pct = |a: u64, b: u64| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let mut note = format!(
        "{:.1} GiB sent, {:.0}% of it copied by the server's CPU in user-space calls",
        gib(sent),
        pct(copied, sent)
    );
    match rung {
        Rung::Kernel("read-write") => {
            note = format!("{:.1} GiB sent; every byte copied twice (pread + write)", gib(sent))
        }
        Rung::Kernel("msg-zerocopy") => {
            let zc = c("fileserver_zerocopy_sends_total ");
            let kc = c("fileserver_zerocopy_kernel_copied_bytes_total ");
            let kcs = c("fileserver_zerocopy_kernel_copied_sends_total ");
            note += &format!(
                "; {zc} MSG_ZEROCOPY sends, kernel reported {kcs} of them copied ({:.0}% of bytes)",
                pct(kc, sent)
            );
            let plain = c("fileserver_zerocopy_plain_fallback_bytes_total ");
            if plain > 0 {
                note += &format!("; {:.0}% sent plainly after ENOBUFS", pct(plain, sent));
            }
        }
        Rung::Kernel("direct-uring") | Rung::Xdp => {
            note += &format!(
                "; {:.1} GiB read with O_DIRECT, {:.1} GiB buffered",
                gib(c("fileserver_read_bytes_direct_total ")),
                gib(c("fileserver_read_bytes_buffered_total "))
            );
        }
        _ => {}
    }
    if text.contains("multi-buffer    yes") {
        note += "; multi-buffer TX";
    }
    note
}

/// Downloads `url` once from the client namespace with curl; the server namespace's CPU
/// and context switches around it.
fn download(ns: &Netns, url: &str, size: u64, clk: u64) -> Result<Cell> {
    let before = Usage::of_netns(&ns.server);
    let out = ns
        .in_client("taskset")
        .args([
            "-c",
            CLIENT_CPU,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "300",
            "-w",
            "%{size_download} %{time_total} %{http_code}",
            url,
        ])
        .output()?;
    let used = Usage::of_netns(&ns.server).since(before);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let f: Vec<&str> = text.split_whitespace().collect();
    ensure!(f.len() == 3, "curl printed {text:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    let bytes: u64 = f[0].parse()?;
    let secs: f64 = f[1].parse()?;
    ensure!(f[2] == "200" && bytes == size, "curl got status {} and {bytes} of {size} bytes", f[2]);
    Ok(Cell {
        bytes,
        requests: 1,
        secs,
        cpu_secs: used.cpu_secs(clk),
        user_secs: used.user_secs(clk),
        ctxt: used.ctxt,
        errors: 0,
        background: 0.0,
    })
}

/// One wrk run of `secs` seconds with `script`.
fn wrk(ns: &Netns, script: &Path, secs: u64, conns: u32, clk: u64) -> Result<Cell> {
    let before = Usage::of_netns(&ns.server);
    let out = ns
        .in_client("taskset")
        .args(["-c", CLIENT_CPU, "wrk", "-t1", &format!("-c{conns}"), &format!("-d{secs}s"), "--timeout", "5s", "-s"])
        .arg(script)
        .arg(format!("http://{SRV_ADDR}:{PORT}/"))
        .output()?;
    let used = Usage::of_netns(&ns.server).since(before);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some(line) = text.lines().find(|l| l.starts_with("RESULT ")) else {
        bail!("wrk printed no RESULT line: {}{}", text.trim(), String::from_utf8_lossy(&out.stderr).trim())
    };
    let field = |k: &str| -> u64 {
        line.split_whitespace().find_map(|w| w.strip_prefix(k)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let requests = field("requests=");
    ensure!(requests > 0, "wrk completed no request: {line}");
    Ok(Cell {
        bytes: field("bytes="),
        requests,
        secs: field("duration_us=") as f64 / 1e6,
        cpu_secs: used.cpu_secs(clk),
        user_secs: used.user_secs(clk),
        ctxt: used.ctxt,
        errors: field("errors=") + field("non2xx="),
        background: 0.0,
    })
}

fn drop_caches() -> Result<()> {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").context("echo 3 > /proc/sys/vm/drop_caches (needs root)")
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown CPU");
    format!("{} ({} CPUs)", model.trim(), info.lines().filter(|l| l.starts_with("processor")).count())
}

/// The target directory (CARGO_TARGET_DIR, or `target/` in the workspace).
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// The benchmark's files under /var/tmp (ext4: O_DIRECT works), removed on drop.
pub(super) struct Data {
    pub dir: PathBuf,
    pub www: PathBuf,
    pub size: u64,
    pub lua_1m: PathBuf,
    pub lua_16k: PathBuf,
    /// The 16 KiB set with `Connection: close` on every request (a connection each).
    pub lua_16k_close: PathBuf,
}

impl Data {
    pub fn create(size_mib: u64) -> Result<Data> {
        let dir = PathBuf::from(format!("/var/tmp/zc-ladder-bench-{}", std::process::id()));
        let www = dir.join("www");
        let size = size_mib << 20;
        let data = Data {
            lua_1m: dir.join("set1m.lua"),
            lua_16k: dir.join("set16k.lua"),
            lua_16k_close: dir.join("set16k-close.lua"),
            dir,
            www,
            size,
        };
        std::fs::create_dir_all(data.www.join("m1"))?;
        std::fs::create_dir_all(data.www.join("k16"))?;
        let mut rng = Prng::new(0x001a_dde7);
        rng.write_file(&data.www.join("big"), size)?;
        for i in 0..SET_1M {
            rng.write_file(&data.www.join(format!("m1/f{i:03}")), 1 << 20)?;
        }
        for i in 0..SET_16K {
            rng.write_file(&data.www.join(format!("k16/f{i:03}")), 16 << 10)?;
        }
        std::fs::write(&data.lua_1m, lua("/m1/f", SET_1M, false))?;
        std::fs::write(&data.lua_16k, lua("/k16/f", SET_16K, false))?;
        std::fs::write(&data.lua_16k_close, lua("/k16/f", SET_16K, true))?;
        Ok(data)
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A wrk script that cycles through `count` files named `prefix` + 3 digits (with
/// `Connection: close` on each request if `close`: wrk then connects anew for each), and
/// prints one machine-readable line at the end.
pub(crate) fn lua(prefix: &str, count: usize, close: bool) -> String {
    let headers = if close { r#", {["Connection"] = "close"}"# } else { "" };
    format!(
        r#"-- generated by cargo xtask bench ladder
local i = 0
request = function()
  local path = string.format("{prefix}%03d", i)
  i = (i + 1) % {count}
  return wrk.format("GET", path{headers})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d bytes=%d duration_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.bytes, summary.duration, e.connect + e.read + e.write + e.timeout, e.status))
end
"#
    )
}
