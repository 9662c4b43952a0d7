//! Namespace tests of the file server on a multi-queue veth pair (4 TX and 4 RX queues on
//! both ends): `--queues 4` on 2 CPUs, one worker per queue. The client's kernel spreads
//! its connections over its TX queues, and veth hands what is sent on TX queue `q` to the
//! peer's RX queue `q`, so every worker gets flows, as RSS would spread them on a NIC.
//!
//! * 64 parallel clients x 200 small files plus 4 parallel 1 GiB downloads, byte-exact;
//!   every queue served traffic; no TCP reset from either kernel (nstat), no packet of a
//!   served flow dropped for want of a socket (`xdp_no_socket`);
//! * the same load against a server bound to queue 0 only fails that check (so the check
//!   can fail), and a real kernel reset moves the nstat counters the check reads;
//! * the control port answers while 20 idle connections sit on it and a 1 GiB download
//!   runs, and the download does not stall (issue 12 item 5);
//! * at exit: every worker copied 0 payload bytes with multi-buffer, every thread joined,
//!   XDP detached.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::fstest::{sha256_file, DataSet};
use crate::netns::{Netns, SRV_ADDR};
use crate::nstest::{Bins, Suite};
use crate::util::Daemon;

/// Queues on both veth ends, and workers of the server.
const QUEUES: u32 = 4;
/// Small files in the data set (see `DataSet`).
const SMALL: usize = 200;
/// The control port, on the server namespace's loopback.
const CONTROL: &str = "http://127.0.0.1:9100/metrics";

/// Starts the file server in `ns` with `queues` workers on CPUs 0 and 1.
fn start(bins: &Bins, ns: &Netns, data: &DataSet, queues: u32) -> Result<Daemon> {
    let mut cmd = ns.in_server("taskset");
    cmd.args(["-c", "0,1"]).arg(&bins.fileserver);
    cmd.args(["--iface", &ns.srv_if, "--addr", SRV_ADDR, "--port", "80", "--root"])
        .arg(&data.www)
        .args(["--queues", &queues.to_string(), "--cpus", "0,1"])
        .args(["--frames", "8192", "--blocks", "256", "--cache-blocks", "128", "--block-kib", "256"])
        .args(["--metrics-port", "9100", "--user", "nobody"])
        .env("RUST_LOG", "warn");
    let mut d = Daemon::spawn("fileserver", &mut cmd)?;
    d.wait_line("ready", Duration::from_secs(60))?;
    Ok(d)
}

/// `name value` of a metrics text (`name` with its labels).
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The control port's text, fetched in the server namespace within `max`.
fn fetch_metrics(ns: &Netns, max: Duration) -> Result<String> {
    let out = ns
        .in_server("curl")
        .args(["-sf", "--max-time", &format!("{:.1}", max.as_secs_f64()), CONTROL])
        .stderr(Stdio::piped())
        .output()?;
    ensure!(out.status.success(), "GET {CONTROL}: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A namespace's TCP counters (`nstat -asz`: absolute, history untouched).
fn nstat(ns: &str) -> Result<HashMap<String, u64>> {
    let out = Command::new("ip").args(["netns", "exec", ns, "nstat", "-asz"]).output().context("nstat")?;
    ensure!(out.status.success(), "nstat in {ns}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_owned(), f.next()?.parse().ok()?))
        })
        .collect())
}

/// The counters that move when a kernel resets a connection: in the client namespace a
/// reset arriving on an established connection (`TcpEstabResets`) or on a connect
/// (`TcpAttemptFails`), in the server namespace a reset the server's kernel sent
/// (`TcpOutRsts`: our stack's own segments never pass through it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resets {
    client: HashMap<String, u64>,
    server: HashMap<String, u64>,
}

const CLIENT_RESETS: [&str; 2] = ["TcpEstabResets", "TcpAttemptFails"];
const SERVER_RESETS: [&str; 1] = ["TcpOutRsts"];

impl Resets {
    fn sample(ns: &Netns) -> Result<Resets> {
        Ok(Resets { client: nstat(&ns.client)?, server: nstat(&ns.server)? })
    }

    /// What moved since `before`, as `ns:Name+N`.
    fn since(&self, before: &Resets) -> Vec<String> {
        let mut moved = Vec::new();
        for (side, names, now, then) in [
            ("client", &CLIENT_RESETS[..], &self.client, &before.client),
            ("server", &SERVER_RESETS[..], &self.server, &before.server),
        ] {
            for n in names {
                let d = now.get(*n).copied().unwrap_or(0).saturating_sub(then.get(*n).copied().unwrap_or(0));
                if d > 0 {
                    moved.push(format!("{side}:{n}+{d}"));
                }
            }
        }
        moved
    }
}

/// The load of the main test.
struct Load {
    clients: usize,
    files: usize,
    big: usize,
    /// curl --max-time of each client, seconds.
    max_time: u64,
}

/// Runs `load` from the client namespace and checks everything the multi-queue server
/// promises: every byte right, every queue served, no kernel reset, no packet dropped for
/// want of a socket. `Err` names the first promise broken.
fn serve_everywhere(ns: &Netns, data: &DataSet, load: &Load) -> Result<String> {
    let dl = data.dir.join("dl-mq");
    let _ = std::fs::remove_dir_all(&dl);
    std::fs::create_dir_all(&dl)?;
    let before = Resets::sample(ns)?;
    let base = format!("http://{SRV_ADDR}");
    let start = Instant::now();
    let mut small: Vec<Child> = Vec::new();
    for c in 0..load.clients {
        let out = dl.join(format!("c{c:02}"));
        std::fs::create_dir_all(&out)?;
        let mut cfg = String::new();
        for i in 0..load.files {
            let f = (i + c) % SMALL;
            cfg.push_str(&format!("url = \"{base}/small/f{f:03}.txt\"\noutput = \"{}/f{f:03}.txt\"\n", out.display()));
        }
        let path = dl.join(format!("c{c:02}.curl"));
        std::fs::write(&path, cfg)?;
        small.push(
            ns.in_client("curl")
                // (--fail-early: curl otherwise exits with the status of its last transfer.)
                .args(["-sf", "--fail-early", "--connect-timeout", "5", "--max-time", &load.max_time.to_string()])
                .arg("--config")
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()?,
        );
    }
    let mut big: Vec<Child> = (0..load.big)
        .map(|_| {
            ns.in_client("bash")
                .args([
                    "-c",
                    &format!("set -o pipefail; curl -sf --max-time {} {base}/big1g | sha256sum", load.max_time),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    let mut failed = 0;
    let mut first_err = String::new();
    for child in small {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            failed += 1;
            if first_err.is_empty() {
                first_err = format!("{} {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
            }
        }
    }
    let want = sha256_file(&data.www.join("big1g"))?;
    let mut big_ok = 0;
    for child in big.drain(..) {
        let out = child.wait_with_output()?;
        let got = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned();
        if out.status.success() && got == want {
            big_ok += 1;
        } else if first_err.is_empty() {
            first_err = format!("1 GiB download: {} sha256 {got:?}", out.status);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    ensure!(
        failed == 0 && big_ok == load.big,
        "{failed} of {} small-file clients and {} of {} 1 GiB downloads failed (first: {first_err})",
        load.clients,
        load.big - big_ok,
        load.big
    );
    for c in 0..load.clients {
        for i in 0..load.files {
            let name = format!("f{:03}.txt", (i + c) % SMALL);
            let got = std::fs::read(dl.join(format!("c{c:02}")).join(&name))
                .with_context(|| format!("client {c}: {name} was not downloaded"))?;
            ensure!(got == std::fs::read(data.www.join("small").join(&name))?, "client {c}: {name} differs");
        }
    }
    let text = fetch_metrics(ns, Duration::from_secs(5))?;
    let mut per_queue = Vec::new();
    for q in 0..QUEUES {
        let req = metric(&text, &format!("fileserver_requests_total{{queue=\"{q}\"}}")).unwrap_or(0);
        let rx = metric(&text, &format!("fileserver_stack_rx_frames_total{{queue=\"{q}\"}}")).unwrap_or(0);
        ensure!(req > 0 && rx > 0, "queue {q} served nothing ({req} requests, {rx} frames received)");
        per_queue.push(format!("q{q} {req} req"));
    }
    let no_socket = metric(&text, "fileserver_xdp_no_socket_total").context("no xdp_no_socket_total")?;
    ensure!(no_socket == 0, "{no_socket} packets of the served port arrived on a queue with no socket");
    let resets = Resets::sample(ns)?.since(&before);
    ensure!(resets.is_empty(), "kernel TCP resets: {}", resets.join(", "));
    Ok(format!(
        "{} clients x {} files and {} x 1 GiB byte-exact in {secs:.1} s; {}; no reset, no drop",
        load.clients,
        load.files,
        load.big,
        per_queue.join(", ")
    ))
}

pub fn tests(suite: &mut Suite, bins: &Bins) {
    let mut env = None;
    suite.case("multiqueue_server_4_workers_on_2_cpus_start", || {
        let data = DataSet::create("mq", true).context("writing the data set")?;
        let ns = Netns::up_with_queues("q", 1500, QUEUES)?;
        let server = start(bins, &ns, &data, QUEUES)?;
        let lines = server.lines_so_far().join("\n");
        ensure!(lines.contains("workers         4"), "not 4 workers:\n{lines}");
        ensure!(lines.contains("queues 0-3 of 4"), "not every queue:\n{lines}");
        // Main, 4 workers, the control port's thread and the packet capture's writer (it
        // runs with a control port, for `/pcap`).
        ensure!(lines.contains("all 7 thread(s)"), "privileges not dropped on every thread:\n{lines}");
        env = Some((data, ns, server));
        Ok(())
    });
    let Some((data, ns, mut server)) = env else { return };

    suite.case("multiqueue_kernel_resets_move_the_counters_checked", || {
        // Port 81 is not steered: the server's kernel answers the SYN with a reset.
        let before = Resets::sample(&ns)?;
        let ok = ns.in_client("curl").args(["-s", "--max-time", "3", "http://10.77.0.1:81/"]).status()?.success();
        ensure!(!ok, "something answered on port 81");
        let moved = Resets::sample(&ns)?.since(&before);
        ensure!(
            moved.iter().any(|m| m.starts_with("server:TcpOutRsts")) && moved.iter().any(|m| m.starts_with("client:")),
            "a kernel reset did not show in the counters the tests check: {moved:?}"
        );
        println!("  a refused connect moved {}", moved.join(", "));
        Ok(())
    });

    suite.case("multiqueue_64_clients_and_4_big_downloads_on_every_queue_no_reset", || {
        let r = serve_everywhere(&ns, &data, &Load { clients: 64, files: SMALL, big: 4, max_time: 300 });
        if r.is_err() {
            // What the server counted, to tell why (timeouts, resets, blocks, refusals).
            if let Ok(text) = fetch_metrics(&ns, Duration::from_secs(5)) {
                for l in text.lines().filter(|l| !l.starts_with('#') && !l.contains("_bucket")) {
                    if l.rsplit(' ').next().is_some_and(|v| v != "0") {
                        println!("  server: {l}");
                    }
                }
            }
        }
        println!("  {}", r?);
        Ok(())
    });

    suite.case("multiqueue_control_port_answers_past_20_idle_connections_during_a_download", || {
        control_port_under_idle_connections(&ns, &data)
    });

    suite.case("multiqueue_every_worker_zero_copy_threads_joined_xdp_detached", || {
        let (ok, text) = server.terminate(Duration::from_secs(30))?;
        ensure!(ok, "fileserver did not exit cleanly:\n{text}");
        ensure!(text.contains("multi-buffer    yes"), "multi-buffer was not available:\n{text}");
        for q in 0..QUEUES {
            let copied = metric(&text, &format!("fileserver_payload_bytes_copied_total{{queue=\"{q}\"}}"))
                .with_context(|| format!("no copy counter of queue {q} in the exit report"))?;
            let sent = metric(&text, &format!("fileserver_tx_payload_bytes_total{{queue=\"{q}\"}}")).unwrap_or(0);
            ensure!(copied == 0, "worker {q} copied {copied} payload bytes");
            ensure!(sent > 0, "worker {q} sent no payload");
        }
        let joined = text.lines().find(|l| l.trim_start().starts_with("threads")).context("no threads line")?;
        ensure!(
            joined.contains("4 worker(s) and the control thread and the capture writer joined, 1 left"),
            "{joined}"
        );
        ensure!(!ns.server_link().contains("prog/xdp"), "XDP program left attached");
        println!("  {}", joined.trim());
        Ok(())
    });

    suite.case("multiqueue_check_fails_when_only_queue_0_is_served", || {
        let mut one = start(bins, &ns, &data, 1)?;
        let r = serve_everywhere(&ns, &data, &Load { clients: 16, files: 20, big: 0, max_time: 8 });
        let (_, text) = one.terminate(Duration::from_secs(30))?;
        let dropped = metric(&text, "fileserver_xdp_no_socket_total").unwrap_or(0);
        match r {
            Ok(s) => bail!("the check passed with one queue served of four: {s}"),
            Err(e) => println!("  with --queues 1 the check fails: {e:#}"),
        }
        ensure!(dropped > 0, "no packet counted as dropped for want of a socket");
        println!("  {dropped} packets of flows on queues 1-3 dropped by the XDP program (no socket)");
        Ok(())
    });
    drop(ns);
    drop(data);
}

/// 20 idle connections on the control port (from the server namespace) while a 1 GiB
/// download runs: /metrics still answers within a second, again and again, and the
/// counters it shows keep moving (the workers never wait for the control port); then
/// another 1 GiB download, checked by sha256.
fn control_port_under_idle_connections(ns: &Netns, data: &DataSet) -> Result<()> {
    let want = sha256_file(&data.www.join("big1g"))?;
    let download = || -> Result<Child> {
        Ok(ns
            .in_client("bash")
            .args(["-c", &format!("set -o pipefail; curl -sf --max-time 120 http://{SRV_ADDR}/big1g | sha256sum")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?)
    };
    let before = fetch_metrics(ns, Duration::from_secs(2))?;
    let mut dl = download()?;
    let idle = ns
        .in_server("bash")
        .args(["-c", "for i in $(seq 20); do (exec 3<>/dev/tcp/127.0.0.1/9100; sleep 12) & done; wait"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _idle = KillOnDrop(idle);
    std::thread::sleep(Duration::from_millis(300));
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    while dl.try_wait()?.is_none() && samples.len() < 50 {
        let t = Instant::now();
        let text = fetch_metrics(ns, Duration::from_secs(1)).context("/metrics during the download")?;
        let took = t.elapsed();
        let sent = metric(&text, "fileserver_tx_payload_bytes_total").context("no tx_payload_bytes_total")?;
        samples.push((took, sent));
        // More than one publishing period (100 ms) between fetches.
        std::thread::sleep(Duration::from_millis(150));
    }
    let out = dl.wait_with_output()?;
    let got = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned();
    ensure!(out.status.success() && got == want, "the download during the idle connections: sha256 {got:?}");
    ensure!(samples.len() >= 3, "only {} fetches while the download ran", samples.len());
    // The last fetch may come after the download's last byte.
    let moved = samples.windows(2).filter(|w| w[1].1 > w[0].1).count();
    ensure!(moved + 2 >= samples.len(), "the payload counter stalled between fetches: {samples:?}");
    let slowest = samples.iter().map(|s| s.0).max().unwrap_or_default();
    let after = fetch_metrics(ns, Duration::from_secs(2))?;
    let evicted = metric(&after, "fileserver_control_evicted_total").unwrap_or(0)
        - metric(&before, "fileserver_control_evicted_total").unwrap_or(0);
    ensure!(evicted >= 4, "20 idle connections into 16 slots evicted only {evicted}");
    let out = download()?.wait_with_output()?;
    let got = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned();
    ensure!(out.status.success() && got == want, "the download after the idle connections: sha256 {got:?}");
    println!(
        "  {} fetches of /metrics during the download, slowest {slowest:.0?}, counters moving; {evicted} idle evicted; both downloads byte-exact",
        samples.len()
    );
    Ok(())
}

/// Kills a child (and waits for it) when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
