//! `pipeline`: the file server's user-space path in one process over a simulated NIC and
//! a cheap client (see `fileserver::bench`). Prints `RESULT` lines that
//! `cargo xtask bench pipeline` tabulates. Pin it to one core (`taskset -c 1`).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use fileserver::bench::{self, Bench, Options};

/// The file server's whole user-space path (HTTP, block cache, TCP, TX descriptors, ACK
/// processing) over a simulated link: Gbit/s and ns per segment for a cached large file,
/// requests/s for small files; server and client time apart.
#[derive(Parser, Debug)]
struct Args {
    /// Directory for the files (on a file system with O_DIRECT; reused when present).
    #[arg(long, default_value = "/var/tmp/zc-pipeline")]
    dir: PathBuf,
    /// IP MTUs to run at.
    #[arg(long, value_delimiter = ',', default_value = "1500,9000")]
    mtu: Vec<usize>,
    /// Size of the large file, MiB (it must fit the cache: 1152 MiB by default).
    #[arg(long, default_value_t = 1024)]
    large_mib: u64,
    /// Timed downloads of the large file (after the two that admit it to the cache).
    #[arg(long, default_value_t = 3)]
    downloads: u64,
    /// Small files in the set.
    #[arg(long, default_value_t = 256)]
    small_files: u32,
    /// Size of each small file, KiB.
    #[arg(long, default_value_t = 16)]
    small_kib: u64,
    /// Keep-alive connections for the small files.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Timed requests of small files, in all.
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// The client ACKs every this many segments (and at the end of each batch).
    #[arg(long, default_value_t = 4)]
    ack_every: u32,
    /// TX ring descriptors.
    #[arg(long, default_value_t = 2048)]
    ring: usize,
    /// 2 MiB hugepages for the pool: prefer, require, off.
    #[arg(long, default_value = "prefer", value_parser = ["prefer", "require", "off"])]
    hugepages: String,
    /// Payload blocks of the server's pool (default: the file server's).
    #[arg(long)]
    blocks: Option<u32>,
    /// Blocks its cache keeps (default: the file server's).
    #[arg(long)]
    cache_blocks: Option<u32>,
    /// Only this workload: `large` or `small`.
    #[arg(long, value_parser = ["large", "small"])]
    only: Option<String>,
    /// The server sums every TCP checksum itself, as on a NIC without checksum offload
    /// (by default they are left to the NIC, as the file server does with TX metadata).
    #[arg(long)]
    no_tx_offload: bool,
    /// Check every body byte and TCP checksum (slow: not a measurement).
    #[arg(long)]
    verify: bool,
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let a = Args::parse();
    bench::write_files(&a.dir, a.large_mib << 20, a.small_files, a.small_kib << 10)?;
    for &mtu in &a.mtu {
        let mut o = Options::defaults(a.dir.clone(), mtu);
        o.ring = a.ring;
        o.ack_every = a.ack_every;
        o.verify = a.verify;
        o.tx_offload = !a.no_tx_offload;
        o.limit = Duration::from_secs(600);
        o.pool.hugepages = match a.hugepages.as_str() {
            "require" => umem::HugePages::Require,
            "off" => umem::HugePages::Off,
            _ => umem::HugePages::Prefer,
        };
        o.pool.blocks = a.blocks.unwrap_or(o.pool.blocks);
        o.pool.cache_blocks = a.cache_blocks.unwrap_or(o.pool.cache_blocks);
        let mut b = Bench::new(&o)?;
        if a.only.as_deref() != Some("small") {
            let m = bench::large(&mut b, a.downloads)?;
            println!(
                "mtu {mtu}: {} MiB x {}: {:.2} Gbit/s on the server's time, {:.1} ns per segment ({} segments, {} ACKs); client {:.3} s, server {:.3} s",
                a.large_mib,
                a.downloads,
                m.gbit_per_sec(),
                m.ns_per_segment(),
                m.segments,
                m.client_stats.acks,
                m.client.as_secs_f64(),
                m.server.as_secs_f64()
            );
            println!("{}", m.result_line("large", mtu));
        }
        if a.only.as_deref() != Some("large") {
            let m = bench::small(&mut b, a.small_files, a.connections, a.requests)?;
            println!(
                "mtu {mtu}: {} x {} KiB over {} connections: {:.0} requests/s on the server's time; client {:.3} s, server {:.3} s",
                m.client_stats.responses,
                a.small_kib,
                a.connections,
                m.requests_per_sec(),
                m.client.as_secs_f64(),
                m.server.as_secs_f64()
            );
            println!("{}", m.result_line("small", mtu));
        }
    }
    Ok(())
}
