//! `cargo xtask demo`: the main job end to end. Fresh namespaces, a data set (small files
//! and one large file), the file server on AF_XDP, curl downloading from the client
//! namespace with a progress bar, sha256 checked, throughput and copy counters printed,
//! everything torn down.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::fstest::DataSet;
use crate::netns::{Netns, CLI_ADDR, SRV_ADDR};
use crate::nstest::Bins;
use crate::util::Daemon;

pub fn run(bins: &Bins) -> Result<()> {
    println!("demo: writing a data set (200 small files and a 1 GiB file) under /var/tmp ...");
    let data = DataSet::create("demo", true)?;
    let ns = Netns::up("d", 1500)?;
    println!(
        "demo: server namespace {} ({SRV_ADDR}), client namespace {} ({CLI_ADDR}), veth {} <-> {}",
        ns.server, ns.client, ns.srv_if, ns.cli_if
    );
    let mut cmd = ns.in_server(&bins.fileserver);
    cmd.args([
        "--iface",
        &ns.srv_if,
        "--addr",
        SRV_ADDR,
        "--port",
        "80",
        "--metrics-port",
        "9100",
        "--user",
        "nobody",
        "--root",
    ])
    .arg(&data.www)
    .env("RUST_LOG", "warn");
    println!("demo: starting {} ...", cmd_line(&cmd));
    let mut server = Daemon::spawn("fileserver", &mut cmd)?;
    server.wait_line("ready", Duration::from_secs(30))?;
    for line in server.lines_so_far() {
        println!("  | {line}");
    }

    let url = format!("http://{SRV_ADDR}/big1g");
    println!("demo: curl {url} from the client namespace:");
    let start = Instant::now();
    let status = ns
        .in_client("bash")
        .args(["-c", &format!("set -o pipefail; curl --fail --progress-bar {url} | sha256sum > /tmp/zc-demo-sha")])
        .stderr(Stdio::inherit())
        .status()?;
    let secs = start.elapsed().as_secs_f64();
    ensure!(status.success(), "the download failed");
    let got = std::fs::read_to_string("/tmp/zc-demo-sha").unwrap_or_default();
    let _ = std::fs::remove_file("/tmp/zc-demo-sha");
    let got = got.split_whitespace().next().unwrap_or("").to_owned();
    let want = Command::new("sha256sum").arg(data.www.join("big1g")).output()?;
    let want = String::from_utf8_lossy(&want.stdout).split_whitespace().next().unwrap_or("").to_owned();
    ensure!(got == want, "sha256 mismatch: got {got}, want {want}");
    println!("demo: 1 GiB in {secs:.2} s = {:.2} Gbit/s; sha256 {got} matches the source", 8.0 / secs);

    println!("demo: 200 small files over one keep-alive connection ...");
    let mut cfg = String::new();
    for i in 0..200 {
        cfg.push_str(&format!("url = \"http://{SRV_ADDR}/small/f{i:03}.txt\"\noutput = \"/dev/null\"\n"));
    }
    let cfg_path = data.dir.join("demo.curl");
    std::fs::write(&cfg_path, cfg)?;
    let start = Instant::now();
    let ok = ns.in_client("curl").args(["-sf", "--config"]).arg(&cfg_path).status()?.success();
    ensure!(ok, "small-file downloads failed");
    println!("demo: 200 files in {:.0} ms", start.elapsed().as_secs_f64() * 1e3);

    // The control port listens on the server namespace's loopback (--metrics-port).
    let metrics = ns.in_server("curl").args(["-sf", "http://127.0.0.1:9100/metrics"]).output()?;
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    println!("demo: the server's counters (control port 127.0.0.1:9100 in the server namespace, kernel stack):");
    // Sample lines only (the Prometheus text also has `# HELP` and `# TYPE` lines).
    let samples = || metrics.lines().filter(|l| !l.starts_with('#'));
    for l in samples().filter(|l| {
        [
            "requests_total",
            "responses_total",
            "body_bytes_sent",
            "payload_bytes_copied",
            "tx_payload_bytes",
            "retransmits",
            "cache_hits",
            "cache_misses",
            "read_bytes_direct",
            "xsk_rx_dropped",
        ]
        .iter()
        .any(|k| l.contains(k))
    }) {
        println!("  | {l}");
    }
    let (ok, _) = server.terminate(Duration::from_secs(20)).context("stopping the server")?;
    ensure!(ok, "the server did not exit cleanly");
    println!(
        "demo: payload bytes copied by the CPU: {}",
        samples().find(|l| l.contains("payload_bytes_copied")).unwrap_or("?")
    );
    drop(ns);
    drop(data);
    println!("demo: done; namespaces and data removed");
    Ok(())
}

fn cmd_line(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}
