//! `cargo xtask bench wan`: downloads through a wide-area path, our TCP against the
//! kernel's, cell by cell over a grid of round-trip times and loss rates (with reordering),
//! all through the same impairing forwarder (`xtask internal impair` in a middle
//! namespace; this kernel has no `sch_netem`).
//!
//! Each cell downloads the same file, once per congestion control (`--cc`, CUBIC and BBR
//! by default; BBR is this machine's default, and does not back off for random loss),
//! from `fileserver --backend kernel --method sendfile` running that controller and from
//! `fileserver --backend xdp --congestion` with the same one (our stack over AF_XDP),
//! each through a fresh forwarder with the same seed, so all meet the same loss model;
//! curl in the client namespace is the receiver every time. Ratios are like-for-like:
//! ours with a controller over the kernel with the same. Printed per cell: the rates and
//! their ratios, each sender's recovery counters, and what it retransmitted against what
//! the forwarder dropped on the way to the client.
//!
//! What the figures mean: the forwarder drops and reorders *frames*, and copies them with
//! AF_PACKET, so the server's veth has checksum offload (and with it TSO) turned off, as
//! the client's is: both senders then cross in one-segment frames and meet the same loss
//! per segment. The bytes per frame of each run are printed to show it.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::netns::{Impaired, SRV_ADDR};
use crate::nstest::Bins;
use crate::tcptest::{counter, result, xdp_server, Data};
use crate::util::{output, Daemon};

/// The bench's options.
#[derive(Debug, Clone, clap::Args)]
pub struct WanOpts {
    /// Size of the file downloaded in every cell, MiB.
    #[arg(long, default_value_t = 256)]
    pub size_mib: u64,
    /// Round-trip times, ms (the forwarder delays each way by half).
    #[arg(long, value_delimiter = ',', default_value = "0,10,50")]
    pub rtt_ms: Vec<f64>,
    /// Loss rates each way, percent.
    #[arg(long, value_delimiter = ',', default_value = "0,0.1,1,3")]
    pub loss_pct: Vec<f64>,
    /// Frames reordered each way, percent.
    #[arg(long, default_value_t = 1.0)]
    pub reorder_pct: f64,
    /// Longest a single download may take, seconds (a slower one is reported as partial).
    #[arg(long, default_value_t = 1800)]
    pub max_secs: u64,
    /// Seed of the forwarder's loss and reordering.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Congestion controls, one download each per cell from each server: the kernel's TCP
    /// with it (`net.ipv4.tcp_congestion_control` in the server namespace) and ours with
    /// it (`--congestion`; ours has cubic, bbr and reno, others run the kernel only).
    /// This machine's default is BBR, which does not back off for random loss.
    #[arg(long, alias = "kernel-cc", value_delimiter = ',', default_value = "cubic,bbr")]
    pub cc: Vec<String>,
}

/// One download through the forwarder.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    /// Bytes received and seconds taken (curl's figures).
    bytes: u64,
    secs: f64,
    /// Payload bytes the sender retransmitted (ours: exact; kernel: segments x MSS).
    retx_bytes: u64,
    /// What the forwarder did towards the client.
    frames: u64,
    dropped: u64,
    dropped_bytes: u64,
    send_errors: u64,
    /// Frames towards the client that the forwarder's packet socket could not take
    /// (`Impaired::socket_drops`): lost on the path as well, though not by the loss model.
    overflow: u64,
}

/// The IP bytes an overflowed frame is counted as: a full segment at the bench's MTU (the
/// kernel counts those drops in packets only, and nearly all of them are full data frames).
const OVERFLOW_FRAME_BYTES: u64 = 1500;

impl Run {
    fn rate(&self) -> f64 {
        self.bytes as f64 / self.secs.max(1e-9) / 1e6
    }

    /// Bytes the path lost towards the client: the loss model's and the overflows.
    fn lost_bytes(&self) -> u64 {
        self.dropped_bytes + self.overflow * OVERFLOW_FRAME_BYTES
    }
}

/// `cargo xtask bench wan`.
pub fn bench(bins: &Bins, opts: &WanOpts) -> Result<()> {
    ensure!((1..=16384).contains(&opts.size_mib), "--size-mib must be 1..=16384");
    ensure!(!opts.rtt_ms.is_empty() && !opts.loss_pct.is_empty(), "give at least one --rtt-ms and one --loss-pct");
    ensure!(opts.rtt_ms.iter().all(|r| (0.0..=2000.0).contains(r)), "--rtt-ms values must be 0..=2000");
    ensure!(opts.loss_pct.iter().all(|l| (0.0..=50.0).contains(l)), "--loss-pct values must be 0..=50");
    ensure!(!opts.cc.is_empty(), "give at least one --cc");
    for cc in &opts.cc {
        ensure!(
            cc.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "--cc: {cc:?} is not a congestion control name"
        );
    }
    let size = opts.size_mib << 20;
    println!("writing a {} MiB file under /var/tmp ...", opts.size_mib);
    let data = Data::create("wan", size)?;
    let net = Impaired::up("w", 1500)?;
    // Full checksums from the server's kernel too, as a wire would carry: the forwarder
    // copies frames and fills in nothing, so a checksum left to offload never gets
    // computed. (It also turns TSO off: both senders cross in one-segment frames.)
    crate::util::run(
        net.in_server("ethtool").args(["-K", &net.srv_if, "tx", "off"]).stdout(std::process::Stdio::null()),
    )
    .context("ethtool -K (server veth) tx off")?;
    let _allowed = AllowedCc::widen(&opts.cc)?;
    let mut kernel = kernel_server(&net, bins, &data.www)?;
    let mut rows = Vec::new();
    for &rtt in &opts.rtt_ms {
        for &loss in &opts.loss_pct {
            println!("cell: RTT {rtt} ms, loss {loss}% each way, reordering {}% each way", opts.reorder_pct);
            let mut ks = Vec::new();
            let mut os = Vec::new();
            for cc in &opts.cc {
                set_kernel_cc(&net, cc)?;
                let k = download(&net, bins, opts, rtt, loss, size, Side::Kernel(cc))?;
                let o = if OURS_CC.contains(&cc.as_str()) {
                    Some(download(&net, bins, opts, rtt, loss, size, Side::Ours(&data.www, cc))?)
                } else {
                    None
                };
                match &o {
                    Some(o) => println!(
                        "  {cc}: kernel {:.1} MB/s, ours {:.1} MB/s ({:.2}x); forwarder dropped {} / {} frames towards the client (+ {} / {} its socket overflowed); retransmitted/lost bytes: kernel {}, ours {}",
                        k.rate(),
                        o.rate(),
                        o.rate() / k.rate().max(1e-9),
                        k.dropped,
                        o.dropped,
                        k.overflow,
                        o.overflow,
                        ratio(k.retx_bytes, k.lost_bytes()),
                        ratio(o.retx_bytes, o.lost_bytes())
                    ),
                    None => println!("  {cc}: kernel {:.1} MB/s (ours has no {cc})", k.rate()),
                }
                ks.push(k);
                os.push(o);
            }
            rows.push((rtt, loss, ks, os));
        }
    }
    let _ = kernel.terminate(Duration::from_secs(10));
    print_table(opts, size, &rows);
    Ok(())
}

const ALLOWED_CC: &str = "/proc/sys/net/ipv4/tcp_allowed_congestion_control";

/// Namespaces other than the first may only choose a congestion control from the host's
/// `tcp_allowed_congestion_control`; this adds the bench's for the run and puts the list
/// back when dropped.
struct AllowedCc {
    before: Option<String>,
}

impl AllowedCc {
    fn widen(ccs: &[String]) -> Result<AllowedCc> {
        let before = std::fs::read_to_string(ALLOWED_CC).with_context(|| format!("reading {ALLOWED_CC}"))?;
        let mut list: Vec<&str> = before.split_whitespace().collect();
        let missing: Vec<&str> = ccs.iter().map(String::as_str).filter(|c| !list.contains(c)).collect();
        if missing.is_empty() {
            return Ok(AllowedCc { before: None });
        }
        list.extend(&missing);
        println!(
            "allowing {} in namespaces for this run (net.ipv4.tcp_allowed_congestion_control was \"{}\"; restored at the end)",
            missing.join(" "),
            before.trim()
        );
        std::fs::write(ALLOWED_CC, list.join(" ")).with_context(|| {
            format!(
                "writing {ALLOWED_CC} (is tcp_{} loaded? see tcp_available_congestion_control)",
                missing.join(", tcp_")
            )
        })?;
        Ok(AllowedCc { before: Some(before) })
    }
}

impl Drop for AllowedCc {
    fn drop(&mut self) {
        if let Some(b) = &self.before {
            let _ = std::fs::write(ALLOWED_CC, b.trim());
        }
    }
}

/// The congestion control of the server namespace's new kernel connections.
fn set_kernel_cc(net: &Impaired, cc: &str) -> Result<()> {
    let (ok, text) = output(net.in_server("sysctl").args(["-qw", &format!("net.ipv4.tcp_congestion_control={cc}")]))?;
    ensure!(
        ok,
        "setting the kernel's congestion control to {cc}: {text} (see net.ipv4.tcp_available_congestion_control; `modprobe tcp_{cc}`)"
    );
    Ok(())
}

fn ratio(a: u64, b: u64) -> String {
    if b == 0 {
        if a == 0 {
            "0 / 0".into()
        } else {
            format!("{a} B / 0")
        }
    } else {
        format!("{:.2}", a as f64 / b as f64)
    }
}

/// The congestion controls our stack has (`fileserver --congestion`).
const OURS_CC: [&str; 3] = ["cubic", "bbr", "reno"];

/// Which server a download is from, and the congestion control it runs.
enum Side<'a> {
    Kernel(&'a str),
    Ours(&'a Path, &'a str),
}

/// The kernel's file server on port 81 of the server namespace, for the whole run.
fn kernel_server(net: &Impaired, bins: &Bins, www: &Path) -> Result<Daemon> {
    let mut cmd = net.in_server(&bins.fileserver);
    cmd.args(["--backend", "kernel", "--method", "sendfile", "--addr", SRV_ADDR, "--port", "81", "--root"])
        .arg(www)
        .env("RUST_LOG", "warn");
    let mut d = Daemon::spawn("fileserver (kernel)", &mut cmd)?;
    d.wait_line("ready", Duration::from_secs(20))?;
    Ok(d)
}

/// The forwarder for one download.
fn forwarder(net: &Impaired, bins: &Bins, opts: &WanOpts, rtt: f64, loss: f64) -> Result<Daemon> {
    let (delay, loss, reorder) = ((rtt / 2.0).to_string(), loss.to_string(), opts.reorder_pct.to_string());
    let seconds = (opts.max_secs + 60).to_string();
    let seed = opts.seed.to_string();
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
            &loss,
            "--reorder-pct",
            &reorder,
            "--delay-ms",
            &delay,
            "--seed",
            &seed,
            "--seconds",
            &seconds,
        ]),
    )?;
    imp.wait_line("ready", Duration::from_secs(10))?;
    Ok(imp)
}

/// The server namespace's kernel TCP counters this bench reports.
const KERNEL_COUNTERS: [&str; 8] = [
    "TcpRetransSegs",
    "TcpExtTCPSackRecovery",
    "TcpExtTCPLossProbes",
    "TcpExtTCPTimeouts",
    "TcpExtTCPDSACKUndo",
    "TcpExtTCPFullUndo",
    "TcpExtTCPPartialUndo",
    "TcpExtTCPLossUndo",
];

/// [`KERNEL_COUNTERS`] now (absolute values, nstat's history untouched).
fn kernel_counters(net: &Impaired) -> Result<[u64; 8]> {
    let (ok, text) = output(net.in_server("nstat").args(["-saz"]).args(KERNEL_COUNTERS))?;
    ensure!(ok, "nstat in the server namespace: {text}");
    let mut v = [0; 8];
    for (i, name) in KERNEL_COUNTERS.iter().enumerate() {
        v[i] = text
            .lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == *name).then(|| w.next()?.parse().ok()).flatten()
            })
            .unwrap_or(0);
    }
    Ok(v)
}

/// One download of the big file by curl in the client namespace, through a fresh forwarder.
fn download(net: &Impaired, bins: &Bins, opts: &WanOpts, rtt: f64, loss: f64, size: u64, side: Side) -> Result<Run> {
    let mut imp = forwarder(net, bins, opts, rtt, loss)?;
    let (port, mut srv, before, cc) = match side {
        Side::Kernel(cc) => (81, None, kernel_counters(net)?, cc),
        Side::Ours(www, cc) => {
            let s = xdp_server(net.in_server("env"), bins, &net.srv_if, www, 80, &["--congestion", cc])?;
            (80, Some(s), [0; 8], cc)
        }
    };
    let url = format!("http://{SRV_ADDR}:{port}/big");
    let (_, text) = output(net.in_client("curl").args([
        "-s",
        "--max-time",
        &opts.max_secs.to_string(),
        "-o",
        "/dev/null",
        "-w",
        "%{size_download} %{time_total}",
        &url,
    ]))?;
    let mut w = text.split_whitespace();
    let bytes: u64 = w.next().and_then(|v| v.parse().ok()).with_context(|| format!("curl {url}: {text}"))?;
    let secs: f64 = w.next().and_then(|v| v.parse().ok()).with_context(|| format!("curl {url}: {text}"))?;
    if bytes < size {
        println!("  {url}: only {bytes} of {size} bytes in {secs:.1} s (partial: the rate below is of what arrived)");
    }
    let retx_bytes = match srv.as_mut() {
        None => {
            let after = kernel_counters(net)?;
            let d: Vec<u64> = after.iter().zip(before).map(|(a, b)| a.saturating_sub(b)).collect();
            println!(
                "  kernel {cc}: {} retransmitted segments, {} SACK recoveries, {} loss probes, {} timeouts; undone: {} by D-SACK, {} full, {} partial, {} after a timeout",
                d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
            );
            d[0] * 1448
        }
        Some(s) => {
            let (ok, report) = s.terminate(Duration::from_secs(20))?;
            ensure!(ok, "fileserver (xdp) did not exit cleanly:\n{report}");
            let series = format!("fileserver_tcp_congestion_control{{algorithm=\"{cc}\"}}");
            ensure!(counter(&report, &series).is_some(), "our server did not run {cc}: no {series} in\n{report}");
            let c = |k: &str| counter(&report, &format!("fileserver_{k}_total")).unwrap_or(0);
            println!(
                "  ours {cc}: {} retransmissions, {} RTO expiries, {} fast recoveries, {} loss probes, {} segments refused by a full TX ring; AF_XDP receive dropped {} (ring full {}, fill ring empty {}); frames received {}",
                c("tcp_retransmits"),
                c("tcp_rto_expired"),
                c("tcp_fast_recoveries"),
                c("tcp_loss_probes"),
                c("stack_tx_link_full"),
                c("xsk_rx_dropped"),
                c("xsk_rx_ring_full"),
                c("xsk_fill_ring_empty"),
                c("stack_rx_frames")
            );
            // Payload sent beyond one copy of what the server wrote (head and body).
            let sent = counter(&report, "fileserver_tx_payload_bytes_total").unwrap_or(0);
            let written = counter(&report, "fileserver_body_bytes_sent_total").unwrap_or(bytes);
            sent.saturating_sub(written)
        }
    };
    // Read while the forwarder's sockets are still open.
    let (overflow, overflow_to_srv) = net.socket_drops()?;
    let (_, itext) = imp.terminate(Duration::from_secs(10))?;
    let r = |k: &str| result(&itext, k).unwrap_or(0);
    println!(
        "  forwarder: to the client {} frames ({} dropped, {} overflowed its socket, {} reordered), to the server {} frames ({} dropped, {} overflowed, {} reordered)",
        r("to_client_frames"),
        r("to_client_dropped"),
        overflow,
        r("to_client_reordered"),
        r("to_server_frames"),
        r("to_server_dropped"),
        overflow_to_srv,
        r("to_server_reordered")
    );
    // The kernel releases the AF_XDP socket of the exited server asynchronously.
    if srv.is_some() {
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(Run {
        bytes,
        secs,
        retx_bytes,
        frames: r("to_client_frames"),
        dropped: r("to_client_dropped"),
        dropped_bytes: r("to_client_dropped_bytes"),
        send_errors: r("to_client_send_errors"),
        overflow,
    })
}

/// One cell: RTT, loss, and per congestion control the kernel's run and ours (if ours has it).
type Row = (f64, f64, Vec<Run>, Vec<Option<Run>>);

fn print_table(opts: &WanOpts, size: u64, rows: &[Row]) {
    println!();
    println!(
        "bench wan: one download of {} MiB per server, congestion control and cell, curl (kernel TCP) in the client namespace, through `xtask internal impair` (delay RTT/2 each way, loss each way, {}% reordering each way, seed {})",
        size >> 20,
        opts.reorder_pct,
        opts.seed
    );
    println!(
        "kernel CC = fileserver --backend kernel --method sendfile with CC; ours CC = fileserver --backend xdp --congestion CC (our TCP over AF_XDP); ours/CC compares the same controller"
    );
    println!(
        "retx/lost: payload bytes the server resent over IP bytes lost towards the client: those the forwarder dropped, plus {OVERFLOW_FRAME_BYTES} B for each frame its packet socket could not take (socket overflow; sk_drops) (kernel: TcpRetransSegs x 1448; ours: payload sent beyond one copy of the response)"
    );
    println!();
    let ccs = &opts.cc;
    let mut head = String::from("| RTT ms | loss % |");
    let mut rule = String::from("|---:|---:|");
    for cc in ccs {
        head += &format!(" kernel {cc} MB/s | ours {cc} MB/s | ours/{cc} |");
        rule += "---:|---:|---:|";
    }
    for cc in ccs {
        head += &format!(" retx/lost kernel {cc} | retx/lost ours {cc} |");
        rule += "---:|---:|";
    }
    head += " socket overflow (kernel, ours) | bytes per frame (kernel, ours) |";
    rule += "---|---|";
    println!("{head}");
    println!("{rule}");
    let per_frame = |r: &Run| (r.bytes / r.frames.max(1)).to_string();
    for (rtt, loss, ks, os) in rows {
        let mut line = format!("| {rtt} | {loss} |");
        for (k, o) in ks.iter().zip(os) {
            match o {
                Some(o) => {
                    line += &format!(" {:.1} | {:.1} | {:.2} |", k.rate(), o.rate(), o.rate() / k.rate().max(1e-9))
                }
                None => line += &format!(" {:.1} | - | - |", k.rate()),
            }
        }
        for (k, o) in ks.iter().zip(os) {
            let ours = o.as_ref().map_or("-".into(), |o| ratio(o.retx_bytes, o.lost_bytes()));
            line += &format!(" {} | {ours} |", ratio(k.retx_bytes, k.lost_bytes()));
        }
        let ko: Vec<String> = ks.iter().map(|k| k.overflow.to_string()).collect();
        let oo: Vec<String> = os.iter().flatten().map(|o| o.overflow.to_string()).collect();
        line += &format!(" {} / {} |", ko.join(", "), oo.join(", "));
        let kf: Vec<String> = ks.iter().map(per_frame).collect();
        let of: Vec<String> = os.iter().flatten().map(per_frame).collect();
        line += &format!(" {} / {} |", kf.join(", "), of.join(", "));
        println!("{line}");
    }
    println!();
    println!(
        "bytes per frame: file bytes over frames the forwarder carried to the client (about 1448: one segment per frame); send errors of the forwarder (kernel, ours) are counted as extra loss: {:?}",
        rows.iter()
            .map(|r| (r.2.iter().map(|k| k.send_errors).sum::<u64>(), r.3.iter().flatten().map(|o| o.send_errors).sum::<u64>()))
            .collect::<Vec<_>>()
    );
}
