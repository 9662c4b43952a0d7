//! Namespace tests and the benchmark of the message endpoint (`datapath_msg`), driving
//! the `pingpong` and `msgrate` examples. Their kernel-socket peers are modes of the same
//! binaries (`--kernel block|busy-poll|spin`), so this file adds no `xtask internal`
//! programs.
//!
//! The lossy test needs a middle namespace: AF_XDP transmits in copy mode with
//! `__dev_direct_xmit`, which skips the qdisc, so `tc netem` on an endpoint's own veth
//! would never see its datagrams. Both endpoints therefore talk through a bridge in a
//! third namespace whose two veth ends lose 1% of frames (each direction loses 1%):
//! `tc netem loss 1%` on their egress, or, on kernels built without `sch_netem` (this
//! project's machine), an nftables netdev-ingress rule `numgen random mod 100 < 1 drop`.
//! The three namespaces are a `netns::Impaired`.
//!
//! ```text
//!  server ns            middle ns (bridge, 1% loss on both ends)           client ns
//!  10.77.0.1 [AF_XDP] ── veth ── [loss] br0 [loss] ── veth ── [AF_XDP] 10.77.0.2
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};

use crate::netns::{Impaired, Netns, CLI_ADDR, SRV_ADDR};
use crate::util::{output, Daemon};

/// The release binaries the messaging tests and benchmark drive.
#[derive(Debug, Clone)]
pub struct MsgBins {
    /// `examples/pingpong`.
    pub pingpong: PathBuf,
    /// `examples/msgrate`.
    pub msgrate: PathBuf,
}

/// Registers the messaging namespace tests.
pub fn tests(suite: &mut crate::nstest::Suite, bins: &MsgBins) {
    suite.case("msg_reliable_100k_both_ways_netem_1pct_loss", || reliable_lossy(bins));
    suite.case("msg_kernel_udp_peer", || kernel_peer(bins));
    suite.case("msg_jumbo_multi_buffer", || jumbo(bins));
    suite.case("msg_error_too_large", || too_large(bins));
    suite.case("msg_error_unknown_peer", || unknown_peer(bins));
    suite.case("msg_tx_ring_full_is_back_pressure", || back_pressure(bins));
    suite.case("msg_two_queues_2x100k_concurrent", || two_queues(bins));
}

/// `key=value` from the last `RESULT` line of `text`.
fn result(text: &str, key: &str) -> Option<f64> {
    let line = text.lines().rev().find(|l| l.starts_with("RESULT"))?;
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')).and_then(|v| v.parse().ok())
}

/// A counter from an endpoint's printed block, e.g. `("datagrams", "retransmitted")`.
fn counter(text: &str, line: &str, word: &str) -> Option<u64> {
    let l = text.lines().rev().find(|l| l.trim_start().starts_with(line))?;
    let mut it = l.split_whitespace();
    while let Some(w) = it.next() {
        if w == word {
            return it.next()?.parse().ok();
        }
    }
    None
}

fn pingpong_server(cmd: &mut Command, bins: &MsgBins, args: &[&str]) -> Result<Daemon> {
    cmd.arg(&bins.pingpong).arg("--server").args(args).env("RUST_LOG", "warn");
    let mut d = Daemon::spawn("pingpong server", cmd)?;
    d.wait_line("ready", Duration::from_secs(20))?;
    Ok(d)
}

fn checked(cmd: &mut Command, what: &str) -> Result<String> {
    let (ok, text) = output(cmd.env("RUST_LOG", "warn"))?;
    if !ok {
        bail!("{what} failed:\n{text}");
    }
    Ok(text)
}

/// 100,000 messages of 1 B .. 64 KiB from an AF_XDP client to an AF_XDP server and back,
/// through 1% loss each way; the server verifies each (sequence, content hash) and sends
/// it back in its own frames, the client verifies each reply.
fn reliable_lossy(bins: &MsgBins) -> Result<()> {
    let mut net = Impaired::up("l", 1500)?;
    net.bridge()?;
    net.lose(1)?;
    let mut srv = pingpong_server(
        net.in_server("taskset").args(["-c", "0"]),
        bins,
        &["--iface", &net.srv_if, "--local", &format!("{SRV_ADDR}:7000"), "--reliable", "--verify"],
    )?;
    let mut cli = net.in_client("taskset");
    cli.args(["-c", "1"]).arg(&bins.pingpong).args([
        "--iface",
        &net.cli_if,
        "--local",
        &format!("{CLI_ADDR}:7001"),
        "--peer",
        &format!("{SRV_ADDR}:7000"),
        "--reliable",
        "--check",
        "100000",
        "--depth",
        "16",
        "--reply-timeout",
        "10",
    ]);
    let text = checked(&mut cli, "pingpong --check 100000 through 1% loss")?;
    let (ok, stext) = srv.terminate(Duration::from_secs(10))?;
    ensure!(ok, "server did not exit cleanly:\n{stext}");
    ensure!(result(&text, "verified") == Some(100_000.0), "client did not verify 100000 replies:\n{text}");
    ensure!(
        stext.contains("verified        100000 messages, 0 mismatches"),
        "server did not verify 100000 messages:\n{stext}"
    );
    let (to_srv, to_cli) = net.drops()?;
    let retx_c = counter(&text, "datagrams", "retransmitted").unwrap_or(0);
    let retx_s = counter(&stext, "datagrams", "retransmitted").unwrap_or(0);
    ensure!(to_srv > 0 && to_cli > 0, "the lossy link dropped nothing ({to_srv}/{to_cli}): the loss was not exercised");
    ensure!(retx_c > 0 && retx_s > 0, "no retransmissions (client {retx_c}, server {retx_s}) despite loss");
    println!(
        "  100000 messages ({} bytes) each way verified in {:.1} s; the link dropped {to_srv} frames to the server and {to_cli} to the client; retransmitted: client {retx_c}, server {retx_s}",
        result(&text, "bytes").unwrap_or(0.0),
        result(&text, "seconds").unwrap_or(0.0)
    );
    Ok(())
}

/// The AF_XDP endpoint against kernel UDP sockets: a kernel echo server returns 10,000
/// mixed-size messages (multi-datagram ones too) datagram by datagram, verified; then a
/// kernel sender's messages arrive at an AF_XDP receiver and an AF_XDP sender's at a
/// kernel receiver.
fn kernel_peer(bins: &MsgBins) -> Result<()> {
    let ns = Netns::up("k", 1500)?;
    // The endpoint verifies UDP checksums; the server's kernel would leave them to the
    // veth (CHECKSUM_PARTIAL) and AF_XDP would see them unfinished, so it sends full ones,
    // as a wire would carry (`Netns::up` does the same for the client).
    crate::util::run(ns.in_server("ethtool").args(["-K", &ns.srv_if, "tx", "off"]).stdout(std::process::Stdio::null()))
        .context("ethtool -K (server veth) tx off")?;
    let srv_addr = format!("{SRV_ADDR}:7100");
    let mut srv = pingpong_server(&mut ns.in_server("env"), bins, &["--kernel", "block", "--local", &srv_addr])?;
    let text = checked(
        ns.in_client(&bins.pingpong).args([
            "--iface",
            &ns.cli_if,
            "--local",
            &format!("{CLI_ADDR}:7101"),
            "--peer",
            &srv_addr,
            "--check",
            "10000",
            "--depth",
            "1",
        ]),
        "AF_XDP pingpong --check against a kernel echo",
    )?;
    ensure!(result(&text, "verified") == Some(10_000.0), "not all replies verified:\n{text}");
    drop(srv.terminate(Duration::from_secs(5)));
    println!("  AF_XDP client <-> kernel UDP echo: 10000 messages of 1 B..64 KiB verified");

    // Kernel sender -> AF_XDP receiver (1000 messages, paced by the count; veth loses none).
    let mut rx = Daemon::spawn(
        "msgrate receiver",
        ns.in_server(&bins.msgrate)
            .args([
                "--recv",
                "--iface",
                &ns.srv_if,
                "--local",
                &format!("{SRV_ADDR}:7200"),
                "--count",
                "1000",
                "--seconds",
                "10",
            ])
            .env("RUST_LOG", "warn"),
    )?;
    rx.wait_line("ready", Duration::from_secs(20))?;
    checked(
        ns.in_client(&bins.msgrate).args([
            "--send",
            "--kernel",
            "block",
            "--local",
            &format!("{CLI_ADDR}:7201"),
            "--peer",
            &format!("{SRV_ADDR}:7200"),
            "--count",
            "1000",
            "--size",
            "256",
        ]),
        "kernel msgrate sender",
    )?;
    rx.wait_line("done", Duration::from_secs(15))?;
    let (ok, rtext) = rx.terminate(Duration::from_secs(15))?;
    ensure!(ok, "AF_XDP receiver failed:\n{rtext}");
    ensure!(
        result(&rtext, "msgs").unwrap_or(0.0) > 0.0,
        "AF_XDP receiver got nothing from the kernel sender:\n{rtext}"
    );
    println!("  kernel sender -> AF_XDP receiver: {} of 1000 messages", result(&rtext, "msgs").unwrap_or(0.0));

    // AF_XDP sender -> kernel receiver.
    let mut rx = Daemon::spawn(
        "kernel receiver",
        ns.in_server(&bins.msgrate).args([
            "--recv",
            "--kernel",
            "block",
            "--local",
            &format!("{SRV_ADDR}:7300"),
            "--count",
            "1000",
            "--seconds",
            "10",
        ]),
    )?;
    rx.wait_line("ready", Duration::from_secs(10))?;
    checked(
        ns.in_client(&bins.msgrate).args([
            "--send",
            "--iface",
            &ns.cli_if,
            "--local",
            &format!("{CLI_ADDR}:7301"),
            "--peer",
            &format!("{SRV_ADDR}:7300"),
            "--count",
            "1000",
            "--size",
            "256",
            "--batch",
            "1",
        ]),
        "AF_XDP msgrate sender",
    )?;
    rx.wait_line("done", Duration::from_secs(15))?;
    let (_, rtext) = rx.terminate(Duration::from_secs(15))?;
    ensure!(
        result(&rtext, "msgs").unwrap_or(0.0) > 0.0,
        "kernel receiver got nothing from the AF_XDP sender:\n{rtext}"
    );
    println!("  AF_XDP sender -> kernel receiver: {} of 1000 messages", result(&rtext, "msgs").unwrap_or(0.0));
    Ok(())
}

/// MTU 9000 with multi-buffer: a datagram spans three frames (header frame + two more).
fn jumbo(bins: &MsgBins) -> Result<()> {
    let ns = Netns::up("mj", 9000)?;
    let mut srv = pingpong_server(
        ns.in_server("taskset").args(["-c", "0"]),
        bins,
        &["--iface", &ns.srv_if, "--local", &format!("{SRV_ADDR}:7000"), "--reliable", "--verify"],
    )?;
    let text = checked(
        ns.in_client("taskset").args(["-c", "1"]).arg(&bins.pingpong).args([
            "--iface",
            &ns.cli_if,
            "--local",
            &format!("{CLI_ADDR}:7001"),
            "--peer",
            &format!("{SRV_ADDR}:7000"),
            "--reliable",
            "--check",
            "5000",
        ]),
        "pingpong --check at MTU 9000",
    )?;
    let (_, stext) = srv.terminate(Duration::from_secs(10))?;
    ensure!(
        text.contains("multi-buffer    yes") && text.contains("8948 B of message per datagram"),
        "expected multi-buffer datagrams of 8948 B:\n{text}"
    );
    ensure!(result(&text, "verified") == Some(5000.0), "not all replies verified:\n{text}");
    ensure!(stext.contains("verified        5000 messages, 0 mismatches"), "server verification:\n{stext}");
    println!("  5000 messages of 1 B..64 KiB in 8948-byte multi-buffer datagrams, verified both ways");
    Ok(())
}

fn expect_error(cmd: &mut Command, expect: &str) -> Result<()> {
    let (ok, text) = output(cmd.env("RUST_LOG", "warn"))?;
    ensure!(!ok, "expected failure, but it succeeded:\n{text}");
    ensure!(!text.contains("panicked"), "it panicked:\n{text}");
    ensure!(text.contains(expect), "error does not say {expect:?}:\n{text}");
    println!("  {}", text.lines().find(|l| l.contains("error")).unwrap_or("").trim());
    Ok(())
}

fn too_large(bins: &MsgBins) -> Result<()> {
    let ns = Netns::up("mt", 1500)?;
    expect_error(
        ns.in_client(&bins.pingpong).args([
            "--iface",
            &ns.cli_if,
            "--local",
            &format!("{CLI_ADDR}:7001"),
            "--peer",
            &format!("{SRV_ADDR}:7000"),
            "--max-msg",
            "65536",
            "--size",
            "65537",
            "--count",
            "1",
        ]),
        "a message of 65537 bytes is larger than this endpoint's maximum of 65536",
    )
}

fn unknown_peer(bins: &MsgBins) -> Result<()> {
    let ns = Netns::up("mu", 1500)?;
    let base = ["--iface", &ns.cli_if, "--local", "10.77.0.2:7001", "--count", "1"];
    expect_error(
        ns.in_client(&bins.pingpong).args(base).args(["--peer", "192.0.2.1:7000"]),
        "is not reachable through",
    )?;
    // The kernel releases the previous process's AF_XDP socket asynchronously.
    std::thread::sleep(Duration::from_millis(500));
    expect_error(
        ns.in_client(&bins.pingpong).args(base).args(["--peer", "10.77.0.99:7000"]),
        "no ARP answer from 10.77.0.99",
    )
}

/// A 64-entry TX ring and 60,000-byte messages (42 datagrams each): the sender is refused
/// again and again (the message comes back) and every message still arrives.
fn back_pressure(bins: &MsgBins) -> Result<()> {
    let ns = Netns::up("mp", 1500)?;
    let mut rx = Daemon::spawn(
        "msgrate receiver",
        ns.in_server(&bins.msgrate)
            .args([
                "--recv",
                "--reliable",
                "--iface",
                &ns.srv_if,
                "--local",
                &format!("{SRV_ADDR}:7000"),
                "--count",
                "2000",
                "--seconds",
                "30",
                "--size",
                "60000",
            ])
            .env("RUST_LOG", "warn"),
    )?;
    rx.wait_line("ready", Duration::from_secs(20))?;
    let text = checked(
        ns.in_client(&bins.msgrate).args([
            "--send",
            "--reliable",
            "--iface",
            &ns.cli_if,
            "--local",
            &format!("{CLI_ADDR}:7001"),
            "--peer",
            &format!("{SRV_ADDR}:7000"),
            "--count",
            "2000",
            "--size",
            "60000",
            "--ring",
            "64",
            "--seconds",
            "30",
        ]),
        "msgrate sender with a 64-entry ring",
    )?;
    rx.wait_line("done", Duration::from_secs(40))?;
    let (_, rtext) = rx.terminate(Duration::from_secs(40))?;
    let waits = result(&text, "waits").unwrap_or(0.0);
    ensure!(result(&text, "sent") == Some(2000.0), "sender did not send 2000:\n{text}");
    ensure!(waits > 0.0, "the sender never met a full ring:\n{text}");
    ensure!(
        result(&rtext, "msgs") == Some(2000.0) && result(&rtext, "lost") == Some(0.0),
        "receiver did not get all 2000 in order:\n{rtext}"
    );
    println!("  2000 messages of 60000 B through a 64-entry TX ring: {waits} back-pressure waits, 0 lost");
    Ok(())
}

/// `key=value` from the `RESULT queue=Q ...` line of `text`.
fn queue_result(text: &str, queue: u32, key: &str) -> Option<f64> {
    let tag = format!("RESULT queue={queue} ");
    let line = text.lines().find(|l| l.starts_with(&tag))?;
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')).and_then(|v| v.parse().ok())
}

/// A counter of the endpoint on `queue` from a multi-queue run's printed blocks (each
/// headed `... qQ: endpoint counters`).
fn queue_counter(text: &str, queue: u32, line: &str, word: &str) -> Option<u64> {
    let head = format!(" q{queue}: endpoint counters");
    let block: String = text
        .lines()
        .skip_while(|l| !l.ends_with(&head))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| format!("{l}\n"))
        .collect();
    counter(&block, line, word)
}

/// Two endpoint pairs on a veth pair with two queues, one pair per queue and thread,
/// exchanging 100,000 messages each (1 B .. 64 KiB, reliable) at the same time; the
/// receivers check every message by sequence and content hash. veth delivers what an
/// AF_XDP socket sends on TX queue `q` to the peer's RX queue `q`, so each pair stays on
/// its queue end to end: every endpoint sees only its own flow (nothing `not ours`), and
/// its socket carried the traffic.
fn two_queues(bins: &MsgBins) -> Result<()> {
    const N: u64 = 100_000;
    let ns = Netns::up_with_queues("mq", 1500, 2)?;
    let link = ns.server_link();
    ensure!(link.contains("numtxqueues 2") && link.contains("numrxqueues 2"), "the veth has not 2 queues:\n{link}");
    let n = N.to_string();
    let common = ["--queues", "2", "--reliable", "--verify", "--count", &n, "--seconds", "300", "--poll", "adaptive"];
    let mut rx = Daemon::spawn(
        "msgrate receivers",
        ns.in_server(&bins.msgrate)
            .args(["--recv", "--iface", &ns.srv_if, "--local", &format!("{SRV_ADDR}:7400"), "--first-timeout", "60"])
            .args(common)
            .env("RUST_LOG", "warn"),
    )?;
    rx.wait_line("ready", Duration::from_secs(30))?;
    let text = checked(
        ns.in_client(&bins.msgrate)
            .args([
                "--send",
                "--iface",
                &ns.cli_if,
                "--local",
                &format!("{CLI_ADDR}:7400"),
                "--peer",
                &format!("{SRV_ADDR}:7400"),
            ])
            .args(common),
        "msgrate --send --queues 2",
    )?;
    rx.wait_line("done", Duration::from_secs(120))?;
    let (ok, rtext) = rx.terminate(Duration::from_secs(10))?;
    ensure!(ok, "the receivers failed:\n{rtext}");
    let mut spans = Vec::new();
    let mut descs = Vec::new();
    for q in 0..2 {
        let got = |k: &str| queue_result(&rtext, q, k);
        ensure!(queue_result(&text, q, "sent") == Some(N as f64), "sender on queue {q} did not send {N}:\n{text}");
        ensure!(
            got("msgs") == Some(N as f64) && got("verified") == Some(N as f64) && got("mismatches") == Some(0.0),
            "receiver on queue {q} did not verify {N} messages by sequence and content hash:\n{rtext}"
        );
        for (who, t) in [("receiver", &rtext), ("sender", &text)] {
            let not_ours = queue_counter(t, q, "dropped", "ours");
            ensure!(not_ours == Some(0), "the {who} on queue {q} saw another queue's flow ({not_ours:?}):\n{t}");
            let rx_descs = queue_counter(t, q, "socket", "rx").unwrap_or(0);
            ensure!(rx_descs > 0, "the {who}'s socket on queue {q} received nothing:\n{t}");
            descs.push(rx_descs);
        }
        spans.push((got("first_ms").unwrap_or(0.0), got("last_ms").unwrap_or(0.0)));
    }
    let (a, b) = (spans[0], spans[1]);
    ensure!(a.0 < b.1 && b.0 < a.1, "the two pairs did not run at the same time: {a:?} and {b:?} (ms)");
    println!(
        "  2 pairs x {N} messages (1 B..64 KiB) on queues 0 and 1 at once, each verified by sequence and content hash; queue 0 ran {:.0}..{:.0} ms, queue 1 {:.0}..{:.0} ms",
        a.0, a.1, b.0, b.1
    );
    println!(
        "  RX descriptors per queue: receiver q0 {} q1 {}, sender (acknowledgements) q0 {} q1 {}",
        descs[0], descs[2], descs[1], descs[3]
    );
    Ok(())
}

/// One latency measurement.
struct Rtt {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    lost: f64,
}

fn rtt_of(text: &str) -> Result<Rtt> {
    // A row of no round trips would print zeros and absurd ratios: say why instead.
    ensure!(result(text, "count").is_some_and(|n| n > 0.0), "no round trip completed:\n{text}");
    let us = |k: &str| result(text, k).map(|v| v / 1000.0).with_context(|| format!("no {k} in:\n{text}"));
    Ok(Rtt {
        p50: us("p50_ns")?,
        p99: us("p99_ns")?,
        p999: us("p999_ns")?,
        max: us("max_ns")?,
        lost: result(text, "lost").unwrap_or(0.0),
    })
}

/// `cargo xtask bench msg`: round-trip percentiles and one-way rates for 64 B and 1 KiB
/// messages; AF_XDP endpoints vs kernel UDP sockets (blocking, SO_BUSY_POLL, spinning), on
/// one veth pair, in one run. Servers/receivers on CPU 0, clients/senders on CPU 1.
pub fn bench(bins: &MsgBins, secs: f64) -> Result<()> {
    let ns = Netns::up("mx", 1500)?;
    let srv = |port: u16| format!("{SRV_ADDR}:{port}");
    let cli = |port: u16| format!("{CLI_ADDR}:{port}");
    let secs_s = format!("{secs}");
    let kernel_modes = ["block", "busy-poll", "spin"];
    let mut rtt_rows: Vec<(usize, String, Rtt)> = Vec::new();
    let mut rate_rows: Vec<(usize, String, f64, f64)> = Vec::new();
    for size in [64usize, 1024] {
        let sz = size.to_string();
        for (i, mode) in kernel_modes.iter().enumerate() {
            let port = 7100 + i as u16 * 2;
            let mut d = pingpong_server(
                ns.in_server("taskset").args(["-c", "0"]),
                bins,
                &["--kernel", mode, "--local", &srv(port)],
            )?;
            let text = checked(
                ns.in_client("taskset").args(["-c", "1"]).arg(&bins.pingpong).args([
                    "--kernel",
                    mode,
                    "--local",
                    &cli(port + 1),
                    "--peer",
                    &srv(port),
                    "--size",
                    &sz,
                    "--count",
                    "100000",
                    "--seconds",
                    &secs_s,
                ]),
                "kernel pingpong",
            )?;
            drop(d.terminate(Duration::from_secs(5)));
            rtt_rows.push((size, format!("kernel UDP, {mode}"), rtt_of(&text)?));
        }
        // AF_XDP both ends, busy-polling.
        let mut d = pingpong_server(
            ns.in_server("taskset").args(["-c", "0"]),
            bins,
            &["--iface", &ns.srv_if, "--local", &srv(7000)],
        )?;
        let text = checked(
            ns.in_client("taskset").args(["-c", "1"]).arg(&bins.pingpong).args([
                "--iface",
                &ns.cli_if,
                "--local",
                &cli(7001),
                "--peer",
                &srv(7000),
                "--size",
                &sz,
                "--count",
                "100000",
                "--seconds",
                &secs_s,
            ]),
            "AF_XDP pingpong",
        )?;
        drop(d.terminate(Duration::from_secs(5)));
        rtt_rows.push((size, "AF_XDP endpoint, busy".into(), rtt_of(&text)?));
        // AF_XDP client against the kernel's best server mode. The endpoint verifies UDP
        // checksums, and the server's kernel would leave them to the veth (see
        // `kernel_peer`): it sends full ones for this row, as onto a wire.
        let tx_offload = |on: &str| {
            crate::util::run(
                ns.in_server("ethtool").args(["-K", &ns.srv_if, "tx", on]).stdout(std::process::Stdio::null()),
            )
            .with_context(|| format!("ethtool -K (server veth) tx {on}"))
        };
        tx_offload("off")?;
        let mut d = pingpong_server(
            ns.in_server("taskset").args(["-c", "0"]),
            bins,
            &["--kernel", "spin", "--local", &srv(7150)],
        )?;
        let text = checked(
            ns.in_client("taskset").args(["-c", "1"]).arg(&bins.pingpong).args([
                "--iface",
                &ns.cli_if,
                "--local",
                &cli(7151),
                "--peer",
                &srv(7150),
                "--size",
                &sz,
                "--count",
                "100000",
                "--seconds",
                &secs_s,
            ]),
            "AF_XDP pingpong against a kernel spin echo",
        )?;
        drop(d.terminate(Duration::from_secs(5)));
        tx_offload("on")?;
        rtt_rows.push((size, "AF_XDP client, kernel spin echo".into(), rtt_of(&text)?));

        // One-way rate: receiver on CPU 0, sender on CPU 1.
        for (i, mode) in kernel_modes.iter().enumerate() {
            let port = 7200 + i as u16 * 2;
            let (rate, lost) = rate(
                &ns,
                bins,
                &["--kernel", mode, "--local", &srv(port)],
                &["--kernel", "block", "--local", &cli(port + 1), "--peer", &srv(port)],
                &sz,
                secs,
            )?;
            rate_rows.push((size, format!("kernel UDP, receiver {mode}"), rate, lost));
        }
        let (rate, lost) = rate(
            &ns,
            bins,
            &["--iface", &ns.srv_if, "--local", &srv(7250)],
            &["--iface", &ns.cli_if, "--local", &cli(7251), "--peer", &srv(7250)],
            &sz,
            secs,
        )?;
        rate_rows.push((size, "AF_XDP endpoint, busy".into(), rate, lost));
    }

    println!();
    println!("bench msg: veth {} (copy mode), servers/receivers on CPU 0, clients/senders on CPU 1, up to 100000 round trips or {secs} s per row", ns.srv_if);
    println!();
    println!("Round-trip time (us); ratio = kernel spin / this (above 1: faster than the kernel's best mode)");
    println!("| size (B) | path | p50 | p99 | p99.9 | max | lost | p50 ratio | p99 ratio |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for (size, name, r) in &rtt_rows {
        let best = rtt_rows.iter().find(|(s, n, _)| s == size && n == "kernel UDP, spin").map(|(_, _, r)| r);
        let (a, b) = best.map_or((0.0, 0.0), |k| (k.p50 / r.p50.max(1e-9), k.p99 / r.p99.max(1e-9)));
        println!(
            "| {size} | {name} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {a:.2} | {b:.2} |",
            r.p50, r.p99, r.p999, r.max, r.lost
        );
    }
    println!();
    println!("One-way message rate (messages/s received); ratio = this / best kernel mode");
    println!("| size (B) | path | msg/s | missing | ratio |");
    println!("|---:|---|---:|---:|---:|");
    for (size, name, rate, lost) in &rate_rows {
        let best = rate_rows
            .iter()
            .filter(|(s, n, _, _)| s == size && n.starts_with("kernel"))
            .map(|r| r.2)
            .fold(0.0, f64::max);
        println!("| {size} | {name} | {rate:.0} | {lost} | {:.2} |", rate / best.max(1.0));
    }
    Ok(())
}

/// Runs a msgrate receiver (CPU 0) and sender (CPU 1); returns (received msg/s, missing).
fn rate(ns: &Netns, bins: &MsgBins, rx_args: &[&str], tx_args: &[&str], size: &str, secs: f64) -> Result<(f64, f64)> {
    let mut rx_cmd = ns.in_server("taskset");
    rx_cmd
        .args(["-c", "0"])
        .arg(&bins.msgrate)
        .arg("--recv")
        .args(rx_args)
        .args(["--size", size, "--seconds", &secs.to_string()])
        .env("RUST_LOG", "warn");
    let mut rx = Daemon::spawn("msgrate receiver", &mut rx_cmd)?;
    rx.wait_line("ready", Duration::from_secs(20))?;
    checked(
        ns.in_client("taskset").args(["-c", "1"]).arg(&bins.msgrate).arg("--send").args(tx_args).args([
            "--size",
            size,
            "--seconds",
            &(secs + 1.0).to_string(),
        ]),
        "msgrate sender",
    )?;
    rx.wait_line("done", Duration::from_secs_f64(secs + 10.0))?;
    let (_, text) = rx.terminate(Duration::from_secs_f64(secs + 10.0))?;
    Ok((
        result(&text, "rate").with_context(|| format!("no rate from the receiver:\n{text}"))?,
        result(&text, "lost").unwrap_or(0.0),
    ))
}
