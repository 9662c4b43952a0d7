//! `cargo xtask bench echo`: datagrams per second through the AF_XDP echo against a kernel
//! UDP echo server, on the same veth pair, with the same client, in the same run.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::netns::{Netns, SRV_ADDR};
use crate::nstest::Bins;
use crate::util::{output, Daemon};

/// One measured rate.
struct Rate {
    pps: f64,
    lost: u64,
}

fn flood(ns: &Netns, bins: &Bins, port: u16, size: usize, secs: f64) -> Result<Rate> {
    let server = format!("{SRV_ADDR}:{port}");
    let mut cmd = ns.in_client("taskset");
    cmd.args(["-c", "0"]).arg(&bins.xtask).args([
        "internal",
        "udp-flood",
        "--server",
        &server,
        "--size",
        &size.to_string(),
        "--seconds",
        &secs.to_string(),
        "--window",
        "64",
    ]);
    let (ok, text) = output(&mut cmd)?;
    anyhow::ensure!(ok, "flood client failed:\n{text}");
    let line = text.lines().find(|l| l.starts_with("RESULT")).context("no RESULT line from the client")?;
    let field = |k: &str| line.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap_or("0").to_owned();
    Ok(Rate { pps: field("pps=").parse()?, lost: field("lost=").parse()? })
}

pub fn echo(bins: &Bins, secs: f64) -> Result<()> {
    let ns = Netns::up("x", 1500)?;
    let sizes = [64usize, 1024, 1472];
    let mut rows = Vec::new();
    for &size in &sizes {
        // Kernel baseline: a plain UDP echo server on CPU 1.
        let kernel = {
            let mut cmd = ns.in_server("taskset");
            cmd.args(["-c", "1"]).arg(&bins.xtask).args([
                "internal",
                "udp-kernel-echo",
                "--port",
                "7000",
                "--seconds",
                "600",
            ]);
            let mut d = Daemon::spawn("kernel echo", &mut cmd)?;
            d.wait_line("ready", Duration::from_secs(10))?;
            let r = flood(&ns, bins, 7000, size, secs)?;
            drop(d);
            r
        };
        // AF_XDP echo, busy-polling on CPU 1.
        let xdp = {
            let mut cmd = ns.in_server("taskset");
            cmd.args(["-c", "1"])
                .arg(&bins.echo)
                .args(["--iface", &ns.srv_if, "--addr", SRV_ADDR, "--port", "7001", "--busy"]);
            cmd.env("RUST_LOG", "warn");
            let mut d = Daemon::spawn("udp-echo", &mut cmd)?;
            d.wait_line("ready", Duration::from_secs(20))?;
            let r = flood(&ns, bins, 7001, size, secs)?;
            drop(d);
            r
        };
        rows.push((size, kernel, xdp));
    }
    println!();
    println!(
        "bench echo: {secs} s per run, 64 datagrams in flight, client on CPU 0, server on CPU 1, veth {}",
        ns.srv_if
    );
    println!("| size (B) | kernel UDP echo (dgram/s) | AF_XDP echo (dgram/s) | ratio AF_XDP/kernel | lost k/x |");
    println!("|---:|---:|---:|---:|---:|");
    for (size, k, x) in &rows {
        println!("| {size} | {:.0} | {:.0} | {:.2} | {}/{} |", k.pps, x.pps, x.pps / k.pps.max(1.0), k.lost, x.lost);
    }
    Ok(())
}
