//! `cargo xtask soak --minutes N`: the AF_XDP file server under mixed load and faults for
//! N minutes, then checked for anything it failed to give back.
//!
//! ```text
//!  server ns                  middle ns                       client ns
//!  fileserver (AF_XDP) ── veth ── xtask internal impair ── veth ── wrk, ab, curl,
//!   control port :9100            1% loss, 1% reordering          stallers, SYN bursts
//!   (loopback)                    each way
//! ```
//!
//! All at once, each client bounded in time and in count ([`load`]): wrk over small files
//! on 32 keep-alive connections; `ab` with a connection per request; 1 GiB downloads one
//! after another checked by sha256; random ranges compared with the source; downloads
//! killed mid-transfer; zero-window stallers (tiny `SO_RCVBUF`, never reading); a burst
//! of spoofed SYNs every minute. Every 10 s it samples the server: `VmRSS`, open
//! descriptors and pid from /proc, pools and tables from the control port. When the load
//! ends it waits for the connections to time out (TIME-WAIT included) and checks
//! ([`checks::checks`]): no sha256 or range mismatch, every pool frame and block back,
//! the connection table empty, resident memory within 5% of its value after the first
//! minute, descriptors back at their starting count, the same server process throughout,
//! and a clean exit on SIGTERM. It exits nonzero naming each failed check.

mod checks;
mod load;
pub mod stall;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use self::checks::{Check, Snapshot, Verdicts};
use self::load::{Ctx, BLOCK_KIB, PORT};
use crate::client::Prng;
use crate::netns::Impaired;
use crate::nstest::Bins;
use crate::tcptest::{counter, result, server_pid, xdp_server};
use crate::util::{output, which, Daemon};

/// Options of `cargo xtask soak`.
#[derive(clap::Args, Debug, Clone)]
pub struct SoakOpts {
    /// Minutes of load (then the drain: up to --drain-secs more).
    #[arg(long, default_value_t = 30)]
    pub minutes: u64,
    /// Seconds to wait after the load for every connection to time out (TIME-WAIT is 60 s).
    #[arg(long, default_value_t = 180)]
    pub drain_secs: u64,
    /// Spoofed SYNs in each minute's burst.
    #[arg(long, default_value_t = 20_000)]
    pub syns: u32,
    /// Seed of the forwarder's losses and of the clients' random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Size of the big file.
const BIG: u64 = 1 << 30;
/// Small files for wrk and the ranges.
const SMALL: usize = 200;
/// The server's control port (on its loopback).
const CONTROL: u16 = 9100;
/// Seconds without progress before the server drops a response (its --write-timeout).
const WRITE_TIMEOUT: u64 = 30;
/// Sample period.
const SAMPLE: Duration = Duration::from_secs(10);

/// The soak's files under /var/tmp (ext4: O_DIRECT works), removed on drop.
struct Data {
    dir: PathBuf,
    www: PathBuf,
    lua: PathBuf,
    big_sha: String,
}

impl Data {
    fn create() -> Result<Data> {
        let dir = PathBuf::from(format!("/var/tmp/zc-soak-{}", std::process::id()));
        let www = dir.join("www");
        std::fs::create_dir_all(www.join("small")).with_context(|| format!("creating {}", www.display()))?;
        let mut data = Data { lua: dir.join("small.lua"), dir, www, big_sha: String::new() };
        let mut rng = Prng::new(0x50a4);
        rng.write_file(&data.www.join("big"), BIG)?;
        for i in 0..SMALL {
            let size = 100 + rng.next_u64() % (16 << 10);
            rng.write_file(&data.www.join(format!("small/f{i:03}")), size)?;
        }
        load::write_lua(&data.lua, SMALL)?;
        data.big_sha = crate::fstest::sha256_file(&data.www.join("big"))?;
        Ok(data)
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the soak; fails naming every check that did not hold.
pub fn run(bins: &Bins, o: &SoakOpts) -> Result<()> {
    ensure!((1..=24 * 60).contains(&o.minutes), "--minutes must be 1..=1440");
    ensure!(o.drain_secs <= 3600 && o.syns <= 1_000_000, "--drain-secs at most 3600, --syns at most 1000000");
    for (tool, pkg) in [("wrk", "wrk"), ("ab", "apache2-utils"), ("curl", "curl")] {
        ensure!(which(tool).is_some(), "{tool} is not installed: run `cargo xtask setup` (Debian package {pkg})");
    }
    println!("soak: writing 1 GiB and {SMALL} small files under /var/tmp ...");
    let data = Data::create()?;
    let net = Impaired::up("k", 1500)?;
    let load_secs = o.minutes * 60;
    let mut imp = Daemon::spawn(
        "impair",
        net.in_middle(&bins.xtask)
            .args(["internal", "impair", "--a", &net.mid_srv_if, "--b", &net.mid_cli_if])
            .args(["--loss-pct", "1", "--reorder-pct", "1", "--seed", &o.seed.to_string()])
            .args(["--seconds", &(load_secs + o.drain_secs + 1200).to_string()]),
    )?;
    imp.wait_line("ready", Duration::from_secs(10))?;
    let wt = WRITE_TIMEOUT.to_string();
    let control_port = CONTROL.to_string();
    let extra = ["--metrics-port", &control_port, "--block-kib", &BLOCK_KIB.to_string(), "--write-timeout", &wt];
    let mut srv = xdp_server(net.in_server("env"), bins, &net.srv_if, &data.www, PORT, &extra)?;
    let pid = server_pid(&net.server)?;
    let (ok, mac) = output(net.in_server("cat").arg(format!("/sys/class/net/{}/address", net.srv_if)))?;
    ensure!(ok, "reading the server's MAC: {mac}");

    warm_up(&net, &data.www)?;
    let t0 = Instant::now();
    let start = sample(&net, pid, 0).context("the first sample")?;
    println!(
        "soak: server pid {pid}: {} KiB resident, {} descriptors, {} frames and {} blocks free; {} min of load, then up to {} s to drain",
        start.rss_kib, start.fds, start.frames_free, start.blocks_free, o.minutes, o.drain_secs
    );
    let c = Ctx {
        net: &net,
        www: data.www.clone(),
        big_sha: data.big_sha.clone(),
        small: SMALL,
        lua: data.lua.clone(),
        start: t0,
        deadline: t0 + Duration::from_secs(load_secs),
        seed: o.seed,
        xtask: bins.xtask.clone(),
    };
    let mut samples = Vec::new();
    let hold = Duration::from_secs(WRITE_TIMEOUT + 15);
    let outcome = std::thread::scope(|s| {
        let wrk = s.spawn(|| load::wrk(&c));
        let ab = s.spawn(|| load::ab(&c));
        let dl = s.spawn(|| load::downloads(&c));
        let rg = s.spawn(|| load::ranges(&c));
        let kl = s.spawn(|| load::killers(&c));
        let st = s.spawn(|| load::stallers(&c, 4, hold));
        let sy = s.spawn(|| load::syn_bursts(&c, mac.trim(), o.syns));
        // Sampled while the clients run, until the last of them (a download, a staller
        // batch) has finished.
        let mut k = 1;
        while [wrk.is_finished(), ab.is_finished(), dl.is_finished(), rg.is_finished()]
            .into_iter()
            .chain([kl.is_finished(), st.is_finished(), sy.is_finished()])
            .any(|f| !f)
        {
            std::thread::sleep((t0 + SAMPLE * k).saturating_duration_since(Instant::now()));
            k += 1;
            progress(&net, pid, t0, &mut samples);
        }
        (
            wrk.join().map_err(|_| anyhow::anyhow!("the wrk thread panicked")).and_then(|r| r),
            ab.join().unwrap_or_default(),
            dl.join().unwrap_or_default(),
            rg.join().unwrap_or_default(),
            kl.join().unwrap_or(0),
            st.join().unwrap_or((0, 0, 0)),
            sy.join().unwrap_or((0, 0)),
        )
    });
    let (wrk, ab, dl, rg, killed, (stallers, cut, stall_failed), (bursts, syns)) = outcome;
    let load_end = t0.elapsed().as_secs();

    // The drain: every connection times out (the stack's TIME-WAIT is 60 s).
    println!("soak: load done after {load_end} s; waiting for the connections to time out ...");
    let drain_end = Instant::now() + Duration::from_secs(o.drain_secs);
    let mut next = Instant::now();
    let end = loop {
        let snap = sample(&net, pid, t0.elapsed().as_secs());
        if let Ok(s) = &snap {
            if s.drained(&start) || Instant::now() >= drain_end {
                break snap?;
            }
        } else if Instant::now() >= drain_end {
            break snap?;
        }
        if Instant::now() >= next {
            progress(&net, pid, t0, &mut samples);
            next = Instant::now() + SAMPLE;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let drained_in = t0.elapsed().as_secs() - load_end;
    let alive = std::path::Path::new(&format!("/proc/{pid}")).exists() && server_pid(&net.server).ok() == Some(pid);
    let metrics = control(&net).unwrap_or_default();
    let (exited_ok, report) = srv.terminate(Duration::from_secs(30)).unwrap_or((false, String::new()));
    let (_, imp_text) = imp.terminate(Duration::from_secs(10)).unwrap_or((false, String::new()));

    let v = Verdicts {
        downloads_ok: dl.ok,
        sha_mismatches: dl.mismatched,
        downloads_failed: dl.failed,
        ranges_ok: rg.ok,
        range_mismatches: rg.mismatched,
        ranges_failed: rg.failed,
        stallers,
        stallers_cut: cut,
        write_timeouts: counter(&metrics, "fileserver_timeouts_total{phase=\"write\"}").unwrap_or(0),
    };
    let mut all = checks::checks(&start, &samples, &end, &v, alive);
    all.push(Check {
        name: "clean exit on SIGTERM",
        ok: exited_ok && !report.contains("panicked"),
        detail: if exited_ok { "exit status 0".into() } else { "the server failed or did not exit".into() },
    });

    let m = |name: &str| counter(&metrics, name).map_or("-".into(), |v| v.to_string());
    let r = |k: &str| result(&imp_text, k).unwrap_or(0);
    println!();
    println!(
        "soak summary: {} min of load, drained in {drained_in} s; 1% loss + 1% reordering each way (seed {})",
        o.minutes, o.seed
    );
    match &wrk {
        Ok(w) => println!(
            "  wrk, 32 keep-alive connections: {} requests ({:.0}/s), {} socket errors, {} non-2xx",
            w.requests,
            w.req_s(),
            w.errors,
            w.non2xx
        ),
        Err(e) => println!("  wrk, 32 keep-alive connections: failed: {e:#}"),
    }
    println!(
        "  ab -c 8, a connection per request: {} complete, {} failed, {} non-2xx; {} runs of 2000, {} cut short by a 30 s timeout",
        ab.complete, ab.failed, ab.non2xx, ab.runs, ab.aborted
    );
    println!("  1 GiB downloads: {} byte-exact, {} differ, {} failed", dl.ok, dl.mismatched, dl.failed);
    println!("  random ranges: {} byte-exact, {} differ, {} failed", rg.ok, rg.mismatched, rg.failed);
    println!("  downloads killed mid-transfer: {killed}");
    println!("  zero-window stallers: {stallers} opened ({stall_failed} failed to open), {cut} cut off by the server");
    println!("  SYN bursts: {bursts}, {syns} spoofed SYNs");
    println!(
        "  server: {} requests, {} body bytes, {} connections, {} refused; {} resets received, {} retransmits, {} RTO expiries",
        m("fileserver_requests_total"),
        m("fileserver_body_bytes_sent_total"),
        m("fileserver_connections_total"),
        m("fileserver_connections_refused_total"),
        m("fileserver_tcp_resets_received_total"),
        m("fileserver_tcp_retransmits_total"),
        m("fileserver_tcp_rto_expired_total"),
    );
    println!(
        "  server: timeouts head/idle/write {}/{}/{}; SYNs {} (cookies sent {}); table full {}",
        m("fileserver_timeouts_total{phase=\"head\"}"),
        m("fileserver_timeouts_total{phase=\"idle\"}"),
        m("fileserver_timeouts_total{phase=\"write\"}"),
        m("fileserver_tcp_syn_received_total"),
        m("fileserver_tcp_syn_cookies_sent_total"),
        m("fileserver_tcp_conn_table_full_total"),
    );
    println!(
        "  middle: to the server {} frames, {} dropped, {} reordered; to the client {} frames, {} dropped, {} reordered",
        r("to_server_frames"),
        r("to_server_dropped"),
        r("to_server_reordered"),
        r("to_client_frames"),
        r("to_client_dropped"),
        r("to_client_reordered")
    );
    println!(
        "  pool: frames free {} -> {}; blocks free + cached {} + {} -> {} + {}; descriptors {} -> {}",
        start.frames_free,
        end.frames_free,
        start.blocks_free,
        start.blocks_cached,
        end.blocks_free,
        end.blocks_cached,
        start.fds,
        end.fds
    );
    let mem: Vec<String> = samples.iter().map(|s| format!("{}s {}", s.at_secs, s.rss_kib / 1024)).collect();
    println!(
        "  resident memory (MiB) over time: start {}, {}, end {}",
        start.rss_kib / 1024,
        mem.join(", "),
        end.rss_kib / 1024
    );
    println!("checks:");
    for c in &all {
        println!("  {} {}: {}", if c.ok { "ok  " } else { "FAIL" }, c.name, c.detail);
    }
    let failed: Vec<&str> = all.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    if !failed.is_empty() {
        if !exited_ok {
            eprintln!("the server's output:\n{report}");
        }
        bail!("soak failed: {}", failed.join("; "));
    }
    drop(data);
    Ok(())
}

/// One request for every file before the first sample, so the files the soak serves
/// are all in the server's open-file cache (bounded: 256 files) and its small-file
/// blocks in the block cache: what stays open or cached then is the baseline the end is
/// held to, and anything above it a leak. The big file is opened with a 1-byte range.
fn warm_up(net: &Impaired, www: &std::path::Path) -> Result<()> {
    let base = format!("http://{}:{PORT}", crate::netns::SRV_ADDR);
    let mut cfg = String::new();
    for i in 0..SMALL {
        cfg.push_str(&format!("url = \"{base}/small/f{i:03}\"\noutput = \"/dev/null\"\n"));
    }
    // `next`: the range applies to the big file only.
    cfg.push_str(&format!("next\nurl = \"{base}/big\"\nrange = \"0-0\"\noutput = \"/dev/null\"\n"));
    let path = www.parent().unwrap_or(www).join("warm.curl");
    std::fs::write(&path, cfg).with_context(|| format!("writing {}", path.display()))?;
    let (ok, text) = output(net.in_client("curl").args(["-sf", "--max-time", "120", "--config"]).arg(&path))?;
    ensure!(ok, "warming up (one request per file) failed: {text}");
    // The warm-up connection closes; the server's side of it goes with it.
    std::thread::sleep(Duration::from_secs(2));
    Ok(())
}

/// The control port's text.
fn control(net: &Impaired) -> Result<String> {
    let (ok, text) =
        output(net.in_server("curl").args(["-s", "--max-time", "5", &format!("http://127.0.0.1:{CONTROL}/metrics")]))?;
    ensure!(ok, "the control port did not answer: {text}");
    Ok(text)
}

/// The server now: /proc and the control port.
fn sample(net: &Impaired, pid: u32, at_secs: u64) -> Result<Snapshot> {
    let pid_now = server_pid(&net.server).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("the server (pid {pid}) is gone"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS in /proc/PID/status")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).context("listing /proc/PID/fd")?.count() as u64;
    let text = control(net)?;
    Snapshot { at_secs, pid: pid_now, rss_kib, fds, ..Snapshot::default() }
        .with_metrics(&text)
        .map_err(anyhow::Error::msg)
}

/// Records a sample and prints a line of progress.
fn progress(net: &Impaired, pid: u32, t0: Instant, samples: &mut Vec<Snapshot>) {
    let at = t0.elapsed().as_secs();
    match sample(net, pid, at) {
        Ok(s) => {
            println!(
                "  {at:>5} s: {} KiB resident, {} fds, {} sessions, {} connections, {} TIME-WAIT, {} half-open, {} frames / {} blocks free",
                s.rss_kib, s.fds, s.sessions, s.tcp_conns, s.time_wait, s.half_open, s.frames_free, s.blocks_free
            );
            samples.push(s);
        }
        Err(e) => {
            println!("  {at:>5} s: sample failed: {e:#}");
            samples.push(Snapshot { at_secs: at, pid: server_pid(&net.server).unwrap_or(0), ..Snapshot::default() });
        }
    }
}
