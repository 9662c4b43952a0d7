//! `cargo xtask bench pipeline`: the file server's whole user-space path (HTTP session,
//! block cache, TCP, TX descriptors, ACK processing) in one process over a simulated NIC
//! and a cheap client (`fileserver::bench`, the `pipeline` binary), pinned to CPU 1: no
//! kernel in the loop, so the figure is what our code costs per segment and per request,
//! which is what carries to a zero-copy NIC. A cached large file (admitted to the block
//! cache by its first two requests) at MTU 1500 and 9000, and small files over several
//! keep-alive connections; server and client time are measured apart and the rates are
//! on the server's time.

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};

use crate::nstest::release_bin;
use crate::util::{output, root};

/// What to run.
#[derive(clap::Args, Debug, Clone)]
pub struct Opts {
    /// Size of the large file, MiB (cached: at most the default cache, 1152 MiB).
    #[arg(long, default_value_t = 1024)]
    pub large_mib: u64,
    /// Timed downloads of the large file.
    #[arg(long, default_value_t = 3)]
    pub downloads: u64,
    /// Timed requests of 16 KiB files, in all.
    #[arg(long, default_value_t = 300_000)]
    pub requests: u64,
    /// Keep-alive connections for the small files.
    #[arg(long, default_value_t = 16)]
    pub connections: u32,
    /// The client ACKs every this many segments (and at the end of each batch).
    #[arg(long, default_value_t = 4)]
    pub ack_every: u32,
    /// The server sums every TCP checksum itself (by default they are left to the NIC
    /// through TX metadata, as the file server does where the socket has it).
    #[arg(long)]
    pub no_tx_offload: bool,
    /// A short run (a 256 MiB file, one download, 30,000 requests).
    #[arg(long)]
    pub quick: bool,
}

/// One MTU's figures.
struct Row {
    mtu: u32,
    large: Fields,
    small: Fields,
}

/// The `key=value` fields of one `RESULT` line.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, k: &str) -> Result<f64> {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse().ok())
            .with_context(|| format!("no {k} in the pipeline's RESULT line"))
    }
}

pub fn bench(opts: &Opts) -> Result<()> {
    let bin = release_bin(&root(), "pipeline")?;
    let dir = PathBuf::from(format!("/var/tmp/zc-pipeline-{}", std::process::id()));
    let (large_mib, downloads, requests) =
        if opts.quick { (256, 1, 30_000) } else { (opts.large_mib, opts.downloads, opts.requests) };
    let mut rows = Vec::new();
    let run = (|| -> Result<()> {
        for mtu in [1500, 9000] {
            println!("pipeline at MTU {mtu} ...");
            let mut cmd = std::process::Command::new("taskset");
            cmd.args(["-c", "1"]).arg(&bin).arg("--dir").arg(&dir).args([
                "--mtu",
                &mtu.to_string(),
                "--large-mib",
                &large_mib.to_string(),
                "--downloads",
                &downloads.to_string(),
                "--requests",
                &requests.to_string(),
                "--connections",
                &opts.connections.to_string(),
                "--ack-every",
                &opts.ack_every.to_string(),
            ]);
            if opts.no_tx_offload {
                cmd.arg("--no-tx-offload");
            }
            let (ok, text) = output(&mut cmd)?;
            ensure!(ok, "pipeline failed:\n{text}");
            print!(
                "{}",
                text.lines().filter(|l| !l.starts_with("RESULT")).map(|l| format!("  {l}\n")).collect::<String>()
            );
            let result = |w: &str| -> Result<Fields> {
                let line = text
                    .lines()
                    .find(|l| l.starts_with("RESULT") && l.contains(&format!("workload={w} ")))
                    .with_context(|| format!("no {w} RESULT in:\n{text}"))?;
                Ok(Fields(
                    line.split_whitespace()
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                ))
            };
            let row = Row { mtu, large: result("large")?, small: result("small")? };
            for (w, f) in [("large", &row.large), ("small", &row.small)] {
                for k in ["retransmits", "copied", "disk_bytes", "out_of_order", "bad"] {
                    ensure!(f.get(k)? == 0.0, "MTU {mtu} {w}: {k} = {} (expected 0)", f.get(k)?);
                }
            }
            rows.push(row);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    run?;

    let mut md = String::from(
        "| MTU | large file Gbit/s | ns per segment | segments per ACK | client / server time | 16 KiB requests/s | ns per request | client / server time |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &rows {
        let (l, s) = (&r.large, &r.small);
        md.push_str(&format!(
            "| {} | {:.2} | {:.0} | {:.1} | {:.2} | {:.0} | {:.0} | {:.2} |\n",
            r.mtu,
            l.get("gbit_per_sec")?,
            l.get("ns_per_segment")?,
            l.get("segments")? / l.get("acks")?.max(1.0),
            l.get("client_s")? / l.get("server_s")?.max(1e-9),
            s.get("requests_per_sec")?,
            s.get("server_s")? * 1e9 / s.get("responses")?.max(1.0),
            s.get("client_s")? / s.get("server_s")?.max(1e-9),
        ));
    }
    let checksums = match opts.no_tx_offload {
        true => "TCP checksums summed by the server",
        false => "TCP checksums left to the NIC (TX metadata), as the file server does where it can",
    };
    let note = format!(
        "one core (CPU 1), no kernel in the loop; {checksums}; a {large_mib} MiB file from the block cache, {downloads} \
         download(s) on one connection; {requests} requests over {} keep-alive connections cycling through \
         256 files of 16 KiB; the client ACKs every {} segments and at the end of each batch; rates are on \
         the server's time (client time shown apart); 0 retransmissions, 0 payload bytes copied, 0 bytes \
         read from disk in every timed run. Moonshots: 40 Gbit/s at MTU 1500, 150 Gbit/s at 9000, 500,000 \
         requests/s.",
        opts.connections, opts.ack_every
    );
    println!("\nthe file server's user-space path ({note})\n\n{md}");
    let out = crate::util::target_dir();
    let out = out.join("bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("pipeline.md"), format!("The file server's user-space path ({note})\n\n{md}"))?;
    println!("written: {}", out.join("pipeline.md").display());
    Ok(())
}
