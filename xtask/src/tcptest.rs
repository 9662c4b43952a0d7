//! Namespace tests and the benchmark of our TCP engine (`stack`) against the Linux
//! kernel's TCP as the peer: `fileserver --backend xdp` serves, curl in the client
//! namespace downloads, and sha256 checks every byte.
//!
//! * 1 GiB through a lossy, reordering middle namespace (`xtask internal impair`: 1% of
//!   the IPv4 frames dropped and 1% reordered, each way, seeded), byte-exact, with `ss -ti`
//!   on the client showing window scaling, SACK and timestamps negotiated;
//! * `payload_bytes_copied` is 0 for a whole 1 GiB transfer with multi-buffer, and equals
//!   every payload byte sent (head, body, retransmissions) with `--force-copy`, at MTU
//!   1500 and 9000;
//! * `cargo xtask bench tcp`: one connection, our stack vs the kernel's `sendfile`, same
//!   veth pair, same client, MTU 1500 and 9000, printed as ratios.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::client::Prng;
use crate::netns::{Impaired, Netns, SRV_ADDR};
use crate::nstest::{Bins, Suite};
use crate::util::{output, Daemon};

/// Size of the big file (bytes).
const BIG: u64 = 1 << 30;

/// The files the tests serve, on disk under /var/tmp (ext4, so O_DIRECT works), removed
/// on drop.
pub(crate) struct Data {
    dir: PathBuf,
    pub(crate) www: PathBuf,
    size: u64,
    sha: String,
}

impl Data {
    pub(crate) fn create(tag: &str, size: u64) -> Result<Data> {
        let dir = PathBuf::from(format!("/var/tmp/zc-{tag}-{}", std::process::id()));
        let www = dir.join("www");
        std::fs::create_dir_all(&www).with_context(|| format!("creating {}", www.display()))?;
        let mut data = Data { dir, www, size, sha: String::new() };
        Prng::new(0x7c9).write_file(&data.www.join("big"), size)?;
        Prng::new(0x5a1).write_file(&data.www.join("small"), 64 << 10)?;
        data.sha = sha256_file(&data.www.join("big"))?;
        Ok(data)
    }
}

impl Drop for Data {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sha256_file(path: &Path) -> Result<String> {
    let (ok, text) = output(Command::new("sha256sum").arg(path))?;
    ensure!(ok, "sha256sum {}: {text}", path.display());
    Ok(text.split_whitespace().next().unwrap_or("").to_owned())
}

/// A `name value` line of the server's counter report.
pub(crate) fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `key=value` from the last `RESULT` line.
pub(crate) fn result(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().rev().find(|l| l.starts_with("RESULT"))?;
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Starts `fileserver --backend xdp` (the default backend) through `cmd` (a command
/// running in the server namespace, maybe under taskset) and waits for `ready`.
pub(crate) fn xdp_server(
    mut cmd: Command,
    bins: &Bins,
    iface: &str,
    www: &Path,
    port: u16,
    extra: &[&str],
) -> Result<Daemon> {
    cmd.arg(&bins.fileserver)
        .args(["--iface", iface, "--addr", SRV_ADDR, "--port", &port.to_string(), "--root"])
        .arg(www)
        .args(extra)
        .env("RUST_LOG", "warn");
    let mut d = Daemon::spawn("fileserver (xdp)", &mut cmd)?;
    d.wait_line("ready", Duration::from_secs(30))?;
    Ok(d)
}

/// Downloads `url` with curl in the namespace of `cmd` (`ip netns exec NS bash`) and
/// returns the sha256 of the body.
fn sha_download(mut cmd: Command, url: &str, max_secs: u64) -> Result<String> {
    let (ok, text) =
        output(cmd.args(["-c", &format!("set -o pipefail; curl -sf --max-time {max_secs} {url} | sha256sum")]))?;
    ensure!(ok, "curl {url} failed: {text}");
    Ok(text.split_whitespace().next().unwrap_or("").to_owned())
}

/// Registers the TCP namespace tests. They share one 1 GiB file, written on first use.
pub fn tests(suite: &mut Suite, bins: &Bins) {
    let data: OnceCell<Data> = OnceCell::new();
    let get = || -> Result<&Data> {
        if let Some(d) = data.get() {
            return Ok(d);
        }
        let d = Data::create("tcp", BIG).context("writing the 1 GiB test file")?;
        Ok(data.get_or_init(|| d))
    };
    suite.case("tcp_kernel_client_1gib_1pct_loss_and_reordering", || lossy(bins, get()?, "1", "1", "cubic"));
    suite.case("tcp_kernel_client_1gib_1pct_loss_and_reordering_bbr", || lossy(bins, get()?, "1", "1", "bbr"));
    suite.case("tcp_payload_copied_zero_or_all_mtu1500", || copied(bins, get()?, 1500));
    suite.case("tcp_payload_copied_zero_or_all_mtu9000", || copied(bins, get()?, 9000));
    suite.case("tcp_malformed_segments_rst_and_100k_syn_flood_then_serving", || malformed(bins, get()?));
    suite.case("tcp_flood_ooo_one_byte_segments_then_1gib_and_pool_back", || {
        let d = get()?;
        crate::tcpflood::ooo_test(bins, &d.www, &d.sha)
    });
    suite.case("tcp_flood_70k_abandoned_in_fin_wait2_then_1gib_and_pool_back", || {
        let d = get()?;
        crate::tcpflood::fin_wait2_test(bins, &d.www, &d.sha)
    });
    drop(data);
}

/// The kernel's TCP (curl) downloads 1 GiB from our stack, running congestion control
/// `cc`, through the impairing middle.
fn lossy(bins: &Bins, data: &Data, loss: &str, reorder: &str, cc: &str) -> Result<()> {
    let net = Impaired::up("t", 1500)?;
    let mut imp = Daemon::spawn(
        "impair",
        net.in_middle(&bins.xtask).args([
            "internal",
            "impair",
            "--a",
            &net.mid_srv_if,
            "--b",
            &net.mid_cli_if,
            "--loss-pct",
            loss,
            "--reorder-pct",
            reorder,
            "--seed",
            "4",
            "--seconds",
            "600",
        ]),
    )?;
    imp.wait_line("ready", Duration::from_secs(10))?;
    let mut srv = xdp_server(net.in_server("env"), bins, &net.srv_if, &data.www, 80, &["--congestion", cc])?;

    let start = Instant::now();
    let url = format!("http://{SRV_ADDR}/big");
    let mut dl = net
        .in_client("bash")
        .args(["-c", &format!("set -o pipefail; curl -sf --max-time 500 {url} | sha256sum")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning curl")?;
    // `ss -tio` on the client while the download runs: the options the kernel negotiated
    // (`-o` is what makes iproute2 print `ts` and `sack`; `-i` alone shows only wscale).
    let mut ss = String::new();
    let done = loop {
        if let Some(status) = dl.try_wait()? {
            break status;
        }
        if !ss.contains("wscale:") {
            let (_, text) = output(net.in_client("ss").args(["-tinoH", "state", "established", "dst", SRV_ADDR]))?;
            if text.contains("wscale:") {
                ss = text;
            }
        }
        if start.elapsed() > Duration::from_secs(520) {
            let _ = dl.kill();
            let _ = dl.wait();
            bail!("the download did not finish in 520 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let secs = start.elapsed().as_secs_f64();
    let out = dl.wait_with_output()?;
    ensure!(done.success(), "curl failed after {secs:.1} s: {}", String::from_utf8_lossy(&out.stderr));
    let got = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned();
    ensure!(got == data.sha, "sha256 of the download {got} != {} (source)", data.sha);

    let (ok, stext) = srv.terminate(Duration::from_secs(20))?;
    let (_, itext) = imp.terminate(Duration::from_secs(10))?;
    let r = |k: &str| result(&itext, k).unwrap_or(0);
    let (dropped_c, dropped_s, reord_c, reord_s) =
        (r("to_client_dropped"), r("to_server_dropped"), r("to_client_reordered"), r("to_server_reordered"));
    let retx = counter(&stext, "fileserver_tcp_retransmits_total").unwrap_or(0);
    let line = ss.split_whitespace().collect::<Vec<_>>().join(" ");
    let (_, nstat) = output(net.in_client("nstat").args([
        "-saz",
        "TcpExtTCPOFOQueue",
        "TcpExtTCPDSACKOldSent",
        "TcpExtTCPDSACKOfoSent",
    ]))?;
    let nstat: Vec<String> = nstat
        .lines()
        .filter(|l| l.starts_with("TcpExt"))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join("="))
        .collect();
    println!(
        "  {} MiB byte-exact in {secs:.1} s ({:.0} MB/s) from our {cc} through {loss}% loss + {reorder}% reordering each way",
        data.size >> 20,
        data.size as f64 / secs / 1e6
    );
    println!(
        "  middle: to the client {} frames, {dropped_c} dropped, {reord_c} reordered; to the server {} frames, {dropped_s} dropped, {reord_s} reordered",
        r("to_client_frames"),
        r("to_server_frames")
    );
    println!(
        "  server: {retx} retransmissions, {} RTO expiries, {} fast recoveries, {} loss probes; client kernel: {}",
        counter(&stext, "fileserver_tcp_rto_expired_total").unwrap_or(0),
        counter(&stext, "fileserver_tcp_fast_recoveries_total").map_or("(not reported)".into(), |v| v.to_string()),
        counter(&stext, "fileserver_tcp_loss_probes_total").map_or("(not reported)".into(), |v| v.to_string()),
        nstat.join(" ")
    );
    let opts: Vec<&str> = line
        .split(' ')
        .filter(|w| *w == "ts" || *w == "sack" || w.starts_with("wscale:") || w.starts_with("mss:"))
        .collect();
    println!("  ss -tio (client, during the download): {}", opts.join(" "));

    ensure!(ok, "fileserver did not exit cleanly:\n{stext}");
    ensure!(
        dropped_c > 0 && dropped_s > 0,
        "the middle dropped nothing ({dropped_c} to the client, {dropped_s} to the server):\n{itext}"
    );
    ensure!(
        reord_c > 0 && reord_s > 0,
        "the middle reordered nothing ({reord_c} to the client, {reord_s} to the server):\n{itext}"
    );
    ensure!(retx > 0, "frames were dropped but the server retransmitted nothing:\n{stext}");
    let series = format!("fileserver_tcp_congestion_control{{algorithm=\"{cc}\"}}");
    ensure!(counter(&stext, &series) == Some(1), "the server's counters do not show {series} 1:\n{stext}");
    for want in ["wscale:", "sack", "ts"] {
        ensure!(
            line.split(' ').any(|w| w == want || (want.ends_with(':') && w.starts_with(want))),
            "`ss -tio` on the client does not show {want:?}: {line:?}"
        );
    }
    let link =
        crate::util::cmd_ok(Command::new("ip").args(["-n", &net.server, "-d", "link", "show", "dev", &net.srv_if]))
            .unwrap_or_default();
    ensure!(!link.contains("prog/xdp"), "XDP program left attached after the server exited:\n{link}");
    Ok(())
}

/// A 1 GiB download with multi-buffer (0 bytes copied) and with `--force-copy` (every
/// payload byte sent was copied, and counted).
fn copied(bins: &Bins, data: &Data, mtu: u32) -> Result<()> {
    let ns = Netns::up(if mtu > 1500 { "tj" } else { "tp" }, mtu)?;
    for force in [false, true] {
        let extra: &[&str] = if force { &["--force-copy"] } else { &[] };
        let mut srv = xdp_server(ns.in_server("env"), bins, &ns.srv_if, &data.www, 80, extra)?;
        let start = Instant::now();
        let got = sha_download(ns.in_client("bash"), &format!("http://{SRV_ADDR}/big"), 300);
        let secs = start.elapsed().as_secs_f64();
        let (ok, text) = srv.terminate(Duration::from_secs(20))?;
        let got = got.with_context(|| format!("server output:\n{text}"))?;
        ensure!(
            got == data.sha,
            "MTU {mtu}{}: sha256 {got} != {}",
            if force { ", --force-copy" } else { "" },
            data.sha
        );
        ensure!(ok, "fileserver did not exit cleanly:\n{text}");
        let c = |name: &str| counter(&text, name).with_context(|| format!("no {name} in the server's report:\n{text}"));
        let copied = c("fileserver_payload_bytes_copied_total")?;
        let tx = c("fileserver_tx_payload_bytes_total")?;
        let invalid = c("fileserver_xsk_tx_invalid_descs_total")?;
        ensure!(invalid == 0, "the kernel refused {invalid} TX descriptors:\n{text}");
        ensure!(tx >= data.size, "only {tx} payload bytes sent for a {} byte file", data.size);
        if force {
            ensure!(
                text.contains("multi-buffer    no"),
                "--force-copy: the startup block does not say multi-buffer no:\n{text}"
            );
            ensure!(copied == tx, "--force-copy: {copied} bytes copied but {tx} payload bytes sent");
        } else {
            ensure!(text.contains("multi-buffer    yes"), "multi-buffer was not available:\n{text}");
            ensure!(copied == 0, "{copied} payload bytes copied by the CPU with multi-buffer");
        }
        println!(
            "  MTU {mtu}, {}: 1 GiB sha256 ok in {secs:.1} s; payload sent {tx} B, copied {copied} B, retransmits {}",
            if force { "--force-copy" } else { "multi-buffer" },
            counter(&text, "fileserver_tcp_retransmits_total").unwrap_or(0)
        );
        // The kernel releases the AF_XDP socket of the exited process asynchronously.
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// Hostile input from the client namespace (`xtask internal tcp-craft`): 1000 each of
/// bad checksums, data offsets too small and too large, truncated options; RSTs with wrong
/// sequence numbers on a live connection (which must answer a challenge ACK and keep
/// serving); 100,000 SYNs from spoofed sources. Then a normal 1 GiB download is
/// byte-exact, and the server's report counts the drops.
fn malformed(bins: &Bins, data: &Data) -> Result<()> {
    let ns = Netns::up("tm", 1500)?;
    let mut srv = xdp_server(ns.in_server("env"), bins, &ns.srv_if, &data.www, 80, &[])?;
    let (ok, mac) = output(ns.in_server("cat").arg(format!("/sys/class/net/{}/address", ns.srv_if)))?;
    ensure!(ok, "reading the server's MAC: {mac}");
    // Frames a flood loses before the server sees them: the client veth's drops (its peer's
    // ring full) and the AF_XDP socket's. What reaches the stack must be counted there.
    let veth_drops = || -> u64 {
        output(ns.in_client("cat").arg(format!("/sys/class/net/{}/statistics/tx_dropped", ns.cli_if)))
            .ok()
            .and_then(|(_, t)| t.trim().parse().ok())
            .unwrap_or(0)
    };
    let drops_before = veth_drops();
    let start = Instant::now();
    let (ok, text) = output(ns.in_client(&bins.xtask).args([
        "internal",
        "tcp-craft",
        "--iface",
        &ns.cli_if,
        "--server",
        &format!("{SRV_ADDR}:80"),
        "--server-mac",
        mac.trim(),
        "--count",
        "1000",
        "--syns",
        "100000",
    ]))?;
    ensure!(ok, "tcp-craft failed:\n{text}");
    let crafted = start.elapsed().as_secs_f64();
    let veth_dropped = veth_drops().saturating_sub(drops_before);
    let got = sha_download(ns.in_client("bash"), &format!("http://{SRV_ADDR}/big"), 300)?;
    ensure!(got == data.sha, "the download after the hostile input differs: {got} != {}", data.sha);
    let (ok, stext) = srv.terminate(Duration::from_secs(20))?;
    ensure!(ok, "fileserver did not exit cleanly:\n{stext}");
    let bad_sum =
        counter(&stext, "fileserver_tcp_bad_checksum_total").context("no tcp_bad_checksum_total in the report")?;
    ensure!(bad_sum >= 1000, "only {bad_sum} bad checksums counted, 1000 sent");
    // Counters the report may carry (the server prints the stack's counters it knows). A
    // SYN the AF_XDP ring dropped never reached the stack.
    let rx_dropped = counter(&stext, "fileserver_xsk_rx_dropped_total").unwrap_or(0)
        + counter(&stext, "fileserver_xsk_rx_ring_full_total").unwrap_or(0)
        + counter(&stext, "fileserver_xsk_fill_ring_empty_total").unwrap_or(0)
        + veth_dropped;
    let mut seen = vec![format!("bad checksum {bad_sum}")];
    for (name, at_least) in [
        ("fileserver_tcp_bad_offset_total", 2000),
        ("fileserver_tcp_bad_options_total", 1000),
        ("fileserver_tcp_rst_bad_seq_total", 1),
        ("fileserver_tcp_rst_challenged_total", 1),
        // A spoofed SYN that collides with a half-open entry of the flood is challenged, and
        // a few random tuples land on other paths (TIME-WAIT, the crafted connection): at
        // least 99% of what reached the socket must be counted as SYNs.
        (
            "fileserver_tcp_syn_received_total",
            100_000u64.saturating_sub(rx_dropped + counter(&stext, "fileserver_tcp_syn_challenged_total").unwrap_or(0))
                * 99
                / 100,
        ),
        ("fileserver_tcp_syn_cookies_sent_total", 1),
    ] {
        if let Some(v) = counter(&stext, name) {
            ensure!(v >= at_least, "{name} is {v}, expected at least {at_least}");
            seen.push(format!(
                "{} {v}",
                name.trim_start_matches("fileserver_tcp_").trim_end_matches("_total").replace('_', " ")
            ));
        } else {
            seen.push(format!("{name}: not in the server's report"));
        }
    }
    println!("  {} (sent in {crafted:.1} s)", text.lines().find(|l| l.starts_with("RESULT")).unwrap_or("").trim());
    println!("  then 1 GiB byte-exact; server counted: {}", seen.join(", "));
    println!(
        "  server received {} frames in all; AF_XDP RX dropped {} (ring full {}); veth dropped {veth_dropped}",
        counter(&stext, "fileserver_stack_rx_frames_total").unwrap_or(0),
        counter(&stext, "fileserver_xsk_rx_dropped_total").unwrap_or(0),
        counter(&stext, "fileserver_xsk_rx_ring_full_total").unwrap_or(0)
    );
    Ok(())
}

/// One measured download.
#[derive(Debug, Clone, Copy)]
struct Sample {
    bytes_per_sec: f64,
    cpu_secs: f64,
}

/// User + system CPU seconds of `pid` so far.
fn cpu_secs(pid: u32, ticks: f64) -> Result<f64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed /proc/PID/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted after the `(comm)` field 2: utime, stime.
    let utime: f64 = f.get(11).context("no utime")?.parse()?;
    let stime: f64 = f.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) / ticks)
}

/// The pid of the (only) fileserver in namespace `ns`.
pub(crate) fn server_pid(ns: &str) -> Result<u32> {
    let (_, text) = output(Command::new("ip").args(["netns", "pids", ns]))?;
    text.split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .find(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "fileserver"))
        .with_context(|| format!("no fileserver process in namespace {ns}"))
}

/// `runs` downloads of `url` by curl pinned to CPU 0; each with the server's CPU time.
fn measure(ns: &Netns, url: &str, size: u64, pid: u32, runs: u32, ticks: f64) -> Result<Vec<Sample>> {
    let mut v = Vec::new();
    for _ in 0..runs {
        let before = cpu_secs(pid, ticks)?;
        let (ok, text) = output(ns.in_client("taskset").args([
            "-c",
            "0",
            "curl",
            "-s",
            "--max-time",
            "300",
            "-o",
            "/dev/null",
            "-w",
            "%{speed_download} %{size_download}",
            url,
        ]))?;
        let after = cpu_secs(pid, ticks)?;
        ensure!(ok, "curl {url}: {text}");
        let mut w = text.split_whitespace();
        let speed: f64 = w.next().context("no speed from curl")?.parse()?;
        let got: u64 = w.next().context("no size from curl")?.parse()?;
        ensure!(got == size, "curl {url}: {got} bytes, expected {size}");
        v.push(Sample { bytes_per_sec: speed, cpu_secs: after - before });
    }
    Ok(v)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// `cargo xtask bench tcp`: one connection downloading a `size_mib` file from our stack
/// over AF_XDP and from the kernel's TCP with `sendfile`, on the same veth pair, with the
/// same client, at MTU 1500 and 9000; `runs` downloads each; never asserts speed.
pub fn bench(bins: &Bins, size_mib: u64, runs: u32) -> Result<()> {
    ensure!((1..=16384).contains(&size_mib), "--size-mib must be 1..=16384");
    ensure!((1..=20).contains(&runs), "--runs must be 1..=20");
    let size = size_mib << 20;
    println!("writing a {size_mib} MiB file under /var/tmp ...");
    let data = Data::create("tcpbench", size)?;
    let ticks: f64 = crate::util::cmd_ok(Command::new("getconf").arg("CLK_TCK"))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(100.0);
    let mut rows = Vec::new();
    for mtu in [1500u32, 9000] {
        let ns = Netns::up(if mtu > 1500 { "bj" } else { "bs" }, mtu)?;
        // Receive processing of each side on its own CPU (veth runs the peer's receive on
        // the sender's CPU otherwise): the client's on CPU 0, the server's on CPU 1.
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.client,
                "sh",
                "-c",
                &format!("echo 1 > /sys/class/net/{}/queues/rx-0/rps_cpus", ns.cli_if),
            ])
            .status();
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.server,
                "sh",
                "-c",
                &format!("echo 2 > /sys/class/net/{}/queues/rx-0/rps_cpus", ns.srv_if),
            ])
            .status();

        // The kernel: sendfile from the page cache (warm: the file was just written, and
        // one untimed download comes first).
        let mut cmd = ns.in_server("taskset");
        cmd.args(["-c", "1"])
            .arg(&bins.fileserver)
            .args(["--backend", "kernel", "--method", "sendfile", "--addr", SRV_ADDR, "--port", "81", "--root"])
            .arg(&data.www);
        let mut k = Daemon::spawn("fileserver (kernel)", cmd.env("RUST_LOG", "warn"))?;
        k.wait_line("ready", Duration::from_secs(20))?;
        let url = format!("http://{SRV_ADDR}:81/big");
        let pid = server_pid(&ns.server)?;
        measure(&ns, &url, size, pid, 1, ticks)?;
        let kernel = measure(&ns, &url, size, pid, runs, ticks)?;
        drop(k.terminate(Duration::from_secs(10)));

        // Our stack: O_DIRECT io_uring reads into the pool, payload by reference.
        let mut cmd = ns.in_server("taskset");
        cmd.args(["-c", "1"]);
        let mut x = xdp_server(cmd, bins, &ns.srv_if, &data.www, 80, &[])?;
        let url = format!("http://{SRV_ADDR}:80/big");
        let pid = server_pid(&ns.server)?;
        measure(&ns, &url, size, pid, 1, ticks)?;
        let ours = measure(&ns, &url, size, pid, runs, ticks)?;
        let (_, text) = x.terminate(Duration::from_secs(20))?;
        let copied = counter(&text, "fileserver_payload_bytes_copied_total").unwrap_or(u64::MAX);
        let retx = counter(&text, "fileserver_tcp_retransmits_total").unwrap_or(0);
        rows.push((mtu, kernel, ours, copied, retx));
    }

    let gib = size as f64 / (1u64 << 30) as f64;
    println!();
    println!("bench tcp: one connection, {size_mib} MiB per download, curl (kernel TCP) on CPU 0, server on CPU 1, veth (AF_XDP copy mode), median of {runs} runs after one warm-up");
    println!("kernel = fileserver --backend kernel --method sendfile (page cache, warm); ours = fileserver --backend xdp (io_uring O_DIRECT into the pool, multi-buffer TX by reference)");
    println!();
    println!("| MTU | kernel sendfile (Gbit/s) | our stack (Gbit/s) | throughput ratio ours/kernel | kernel server CPU s/GiB | our server CPU s/GiB | CPU ratio kernel/ours | ours: copied B, retransmits |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---|");
    for (mtu, k, o, copied, retx) in &rows {
        let kbps = median(k.iter().map(|s| s.bytes_per_sec).collect());
        let obps = median(o.iter().map(|s| s.bytes_per_sec).collect());
        let kcpu = median(k.iter().map(|s| s.cpu_secs).collect()) / gib;
        let ocpu = median(o.iter().map(|s| s.cpu_secs).collect()) / gib;
        println!(
            "| {mtu} | {:.2} | {:.2} | {:.2} | {kcpu:.3} | {ocpu:.3} | {:.2} | {copied}, {retx} |",
            kbps * 8.0 / 1e9,
            obps * 8.0 / 1e9,
            obps / kbps.max(1.0),
            kcpu / ocpu.max(1e-9)
        );
    }
    println!();
    println!("Server CPU = utime + stime of the server process from /proc/PID/stat (its syscalls, including the copy-mode AF_XDP transmit in sendto); softirq work done on its CPU for other processes is not in it.");
    drop(data);
    Ok(())
}
