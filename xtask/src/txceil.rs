//! `cargo xtask bench txceil`: the AF_XDP transmit ceiling of the veth pair from one core
//! (`examples/txceil`: prebuilt UDP packets, the TX ring kept full), at MTU 1500 (one
//! frame per packet) and 9000 (three descriptors per packet, multi-buffer). It is what any
//! AF_XDP sender can reach here; `bench files` reports the file server against it.
//!
//! The sender runs on CPU 1. The client veth's receive processing goes to CPU 0 with RPS
//! (as on two hosts) unless `--same-core`, which leaves it in softirq on the sender's
//! core, as veth does by default.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::netns::{Netns, CLI_ADDR, SRV_ADDR};
use crate::nstest::Bins;
use crate::util::output;

/// One measured ceiling.
#[derive(Debug, Clone, Copy)]
pub struct Ceiling {
    pub mtu: u32,
    pub packets_per_sec: f64,
    pub frames_per_sec: f64,
    pub gbit_per_sec: f64,
}

/// Measures the ceiling at `mtu` on a fresh veth pair.
pub fn measure(bins: &Bins, mtu: u32, seconds: f64, same_core: bool) -> Result<Ceiling> {
    let ns = Netns::up("x", mtu)?;
    if !same_core {
        ns.client_rps(0)?;
    }
    let mac = ns.client_mac()?;
    let (ok, text) = output(ns.in_server("taskset").args(["-c", "1"]).arg(&bins.txceil).args([
        "--iface",
        &ns.srv_if,
        "--src",
        SRV_ADDR,
        "--dst",
        CLI_ADDR,
        "--dst-mac",
        &mac,
        "--size",
        &mtu.to_string(),
        "--seconds",
        &seconds.to_string(),
    ]))?;
    anyhow::ensure!(ok, "txceil failed: {text}");
    let field = |k: &str| -> Result<f64> {
        text.lines()
            .rev()
            .find(|l| l.starts_with("RESULT"))
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix(k)?.strip_prefix('=')?.parse().ok()))
            .with_context(|| format!("no {k} in txceil's output:\n{text}"))
    };
    std::thread::sleep(Duration::from_millis(100));
    Ok(Ceiling {
        mtu,
        packets_per_sec: field("packets_per_sec")?,
        frames_per_sec: field("frames_per_sec")?,
        gbit_per_sec: field("gbit_per_sec")?,
    })
}

/// The benchmark: both MTUs, a table, and target/bench/txceil.md.
pub fn bench(bins: &Bins, seconds: f64, same_core: bool) -> Result<()> {
    let mut rows = Vec::new();
    for mtu in [1500, 9000] {
        let c = measure(bins, mtu, seconds, same_core)?;
        rows.push(c);
    }
    let mut md = String::from("| MTU | packets/s | descriptors/s | Gbit/s |\n|---:|---:|---:|---:|\n");
    for c in &rows {
        md.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.2} |\n",
            c.mtu, c.packets_per_sec, c.frames_per_sec, c.gbit_per_sec
        ));
    }
    let note = if same_core {
        "client receive in softirq on the sender's core (veth's default)"
    } else {
        "client receive moved to CPU 0 with RPS (two hosts)"
    };
    println!("AF_XDP transmit ceiling, sender on CPU 1, {note}, {seconds} s per MTU:\n\n{md}");
    let dir = crate::util::root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("txceil.md"), format!("AF_XDP transmit ceiling ({note})\n\n{md}"))?;
    Ok(())
}
