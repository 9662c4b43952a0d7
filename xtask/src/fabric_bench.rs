//! `cargo xtask bench fabric`: the libfabric provider against libfabric's own kernel-socket
//! providers and Open MPI's `btl tcp`, side by side on one veth pair (see [`bench`]).

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::fabric::{mpi_check, mpi_result, mpirun, rows, wait_listen, Child, Ends, MpiPath, Provider, Side};
use crate::netns::{Netns, SRV_ADDR};
use crate::util::root;

/// One `fi_pingpong` configuration of the benchmark.
struct PpRow {
    label: &'static str,
    prov: &'static str,
    ep: &'static str,
    /// Let libfabric's rxd layer over our DGRAM (`FI_AFXDP_LAYERING=1`; rows that use it).
    rxd: bool,
}

const PP_ROWS: &[PpRow] = &[
    PpRow { label: "afxdp DGRAM", prov: "afxdp", ep: "dgram", rxd: false },
    PpRow { label: "udp DGRAM (kernel)", prov: "udp", ep: "dgram", rxd: false },
    PpRow { label: "afxdp RDM (native)", prov: "afxdp", ep: "rdm", rxd: false },
    PpRow { label: "afxdp;ofi_rxd RDM", prov: "afxdp;ofi_rxd", ep: "rdm", rxd: true },
    PpRow { label: "tcp;ofi_rxm RDM (kernel)", prov: "tcp;ofi_rxm", ep: "rdm", rxd: false },
];

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// Median over `runs` of one `fi_pingpong` row at `size` bytes: (usec/xfer, MB/s).
fn pp_measure(e: &Ends, dir: &Path, row: &PpRow, size: usize, iters: u32, runs: u32) -> Result<(f64, f64)> {
    let (mut lat, mut bw) = (Vec::new(), Vec::new());
    let (size, iters) = (size.to_string(), iters.to_string());
    for _ in 0..runs {
        let args = ["-p", row.prov, "-e", row.ep, "-S", &size, "-I", &iters];
        let pin = |side: Side| {
            let mut c = e.cmd(side, dir, "taskset");
            c.args(["-c", if side == Side::Server { "0" } else { "1" }, "fi_pingpong"]).args(args);
            if row.rxd {
                c.env("FI_AFXDP_LAYERING", "1");
            }
            c
        };
        let srv = Child::spawn("bench fi_pingpong server", &mut pin(Side::Server))?;
        wait_listen(&e.server, 47592, Duration::from_secs(10))?;
        let mut c = pin(Side::Client);
        c.arg(SRV_ADDR);
        let (ok, text) = Child::spawn("bench fi_pingpong client", &mut c)?.wait(Duration::from_secs(120))?;
        let _ = srv.wait(Duration::from_secs(10))?;
        ensure!(ok == Some(true), "{} {}: fi_pingpong failed:\n{text}", row.label, args.join(" "));
        let r = rows(&text);
        let r = r.last().with_context(|| format!("no result row:\n{text}"))?;
        lat.push(r.usec_per_xfer);
        bw.push(r.mb_per_s);
    }
    Ok((median(&mut lat), median(&mut bw)))
}

/// `cargo xtask bench fabric`: `fi_pingpong` latency (its usec/xfer: half a round trip,
/// averaged over the run; the median of `runs` runs) and MB/s with our provider against
/// libfabric's own kernel-socket providers (udp for DGRAM, tcp;ofi_rxm for RDM) and
/// against ofi_rxd layered on our DGRAM, on one veth pair in one run; then the MPI
/// ping-pong (`mpi_check`, p50 of half round trips) over our provider against Open MPI's
/// `btl tcp`. Server on CPU 0, client on CPU 1. All of it at each MTU in `mtus`: the
/// kernel's TCP crosses veth in 64 KiB GSO packets whatever the MTU, while every AF_XDP
/// frame costs copy mode a trip through the kernel, so the MTU decides how many trips a
/// message takes. Writes target/bench/fabric.md.
pub fn bench(prov: &Provider, runs: u32, iters: u32, mtus: &[u32]) -> Result<()> {
    let dir = prov.dir()?;
    let prog = mpi_check()?;
    let runs = runs.max(1);
    let big_iters = (iters / 10).max(10);
    let mut md = String::from("# bench fabric\n\n");
    md.push_str(&format!(
        "One veth pair (copy-mode AF_XDP), server on CPU 0, client on CPU 1. fi_pingpong: median of {runs} runs of its usec/xfer (half a round trip, averaged over the run) and MB/s; {iters} iterations at 64 B, {big_iters} at the large size: 64 KiB for RDM, 1472 B for DGRAM (the udp provider's max_msg_size). Ratios are ours over the kernel path of the same endpoint type: below 1 is better for latency, above 1 for MB/s.\n"
    ));
    for &mtu in mtus {
        println!("MTU {mtu}:");
        md.push_str(&bench_mtu(&dir, &prog, mtu, runs, iters, big_iters)?);
    }
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("fabric.md"), &md)?;
    println!("{md}\nwritten to target/bench/fabric.md");
    Ok(())
}

/// Every row at one MTU; returns its part of the report.
fn bench_mtu(dir: &Path, prog: &Path, mtu: u32, runs: u32, iters: u32, big_iters: u32) -> Result<String> {
    let ns = Netns::up("fb", mtu)?;
    let e = Ends::from(&ns);
    let mut md = format!("\n## MTU {mtu}\n\n");
    md.push_str("| path | 64 B usec/xfer | vs kernel | large MB/s | vs kernel |\n|---|---:|---:|---:|---:|\n");
    let mut res = Vec::new();
    for row in PP_ROWS {
        let big = if row.ep == "dgram" { 1472 } else { 65536 };
        let (lat, _) = pp_measure(&e, dir, row, 64, iters, runs)?;
        let (_, bw) = pp_measure(&e, dir, row, big, big_iters, runs)?;
        println!("  {:<28} 64 B {lat:>9.2} us/xfer   {big} B {bw:>9.1} MB/s", row.label);
        res.push((row, lat, bw));
    }
    let base =
        |ep: &str| res.iter().find(|(r, _, _)| r.ep == ep && r.label.contains("kernel")).map(|(_, l, b)| (*l, *b));
    for (row, lat, bw) in &res {
        let (bl, bb) = base(row.ep).unwrap_or((f64::NAN, f64::NAN));
        md.push_str(&format!("| {} | {lat:.2} | {:.2}x | {bw:.1} | {:.2}x |\n", row.label, lat / bl, bw / bb));
    }
    md.push_str("\nMPI ping-pong (`mpi_check`, 2 ranks, one per namespace): p50 of half round trips.\n\n");
    md.push_str("| size | pml cm + mtl ofi (afxdp) us | pml ob1 + btl tcp us | ratio |\n|---:|---:|---:|---:|\n");
    let mpi_iters = (iters / 10).max(20).to_string();
    let (ok, ours) = mpirun(&e, dir, MpiPath::Afxdp, prog, &[&mpi_iters], Duration::from_secs(600))?;
    ensure!(ok == Some(true), "MPI over afxdp failed:\n{ours}");
    let (ok, tcp) = mpirun(&e, dir, MpiPath::BtlTcp, prog, &[&mpi_iters], Duration::from_secs(600))?;
    ensure!(ok == Some(true), "MPI over btl tcp failed:\n{tcp}");
    for size in ["1", "64", "1024", "16384", "65536", "1048576"] {
        let a = mpi_result(&ours, "pingpong", size, "p50_us").unwrap_or(f64::NAN);
        let b = mpi_result(&tcp, "pingpong", size, "p50_us").unwrap_or(f64::NAN);
        println!("  MPI ping-pong {size:>8} B: afxdp {a:>9.2} us   btl tcp {b:>9.2} us   ratio {:.2}", a / b);
        md.push_str(&format!("| {size} | {a:.2} | {b:.2} | {:.2}x |\n", a / b));
    }
    Ok(md)
}
