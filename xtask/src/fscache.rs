//! Namespace test of the block cache's admission of hot large files: a 1 GiB file (the
//! size `bench files` downloads, and what the default cache was sized to hold) downloaded
//! three times by curl from the AF_XDP file server with its default pool and cache,
//! byte-exact by sha256, with the control port's counters read around each download: the
//! first streams past the cache by `O_DIRECT`, the second is admitted (read once more, and
//! kept), the third comes from memory and reads nothing from the disk.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::client::Prng;
use crate::fstest::{sha256_download, sha256_file, DataSet};
use crate::netns::{Netns, SRV_ADDR};
use crate::nstest::{Bins, Suite};
use crate::util::{output, Daemon};

/// The hot file's size.
const SIZE: u64 = 1 << 30;
/// Its blocks in the default 256 KiB blocks.
const BLOCKS: u64 = SIZE / (256 << 10);

pub fn tests(suite: &mut Suite, bins: &Bins) {
    suite.case("fileserver_xdp_hot_large_file_from_memory", || hot_file(bins));
}

fn hot_file(bins: &Bins) -> Result<()> {
    let dir = PathBuf::from(format!("/var/tmp/zc-hot-{}", std::process::id()));
    let data = DataSet { www: dir.join("www"), dir };
    std::fs::create_dir_all(&data.www)?;
    let path = data.www.join("hot1g");
    Prng::new(0x407).write_file(&path, SIZE).context("writing the 1 GiB file")?;
    let want = sha256_file(&path)?;
    let ns = Netns::up("h", 1500)?;
    let mut cmd = ns.in_server(&bins.fileserver);
    cmd.args(["--iface", &ns.srv_if, "--addr", SRV_ADDR, "--port", "80", "--metrics-port", "9100", "--root"])
        .arg(&data.www)
        .args(["--user", "nobody"])
        .env("RUST_LOG", "warn");
    let mut server = Daemon::spawn("fileserver", &mut cmd)?;
    server.wait_line("ready", Duration::from_secs(60))?;
    let started = server.lines_so_far().join("\n");
    ensure!(started.contains("cache 4608 blocks = 1152 MiB"), "not the default cache:\n{started}");
    println!("{}", started.lines().map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n"));

    let mut deltas = Vec::new();
    for n in 1..=3 {
        let before = Counters::read(&ns)?;
        let got = sha256_download(&ns, &format!("curl -sf --max-time 300 http://{SRV_ADDR}/hot1g"))?;
        ensure!(got == want, "download {n}: sha256 {got} != {want}");
        let d = Counters::read(&ns)?.since(&before);
        println!(
            "  download {n}: sha256 ok; disk {} MiB, from memory {} MiB; admissions {} rejections {} admitted blocks {} losses {}",
            d.disk >> 20,
            d.hit_bytes >> 20,
            d.admissions,
            d.rejections,
            d.admitted_blocks,
            d.losses
        );
        deltas.push(d);
    }
    let [first, second, third] = [deltas[0], deltas[1], deltas[2]];
    ensure!(first.rejections == 1 && first.admissions == 0, "the first request was not streamed: {first:?}");
    ensure!(first.disk >= SIZE && first.admitted_blocks == 0, "the first download: {first:?}");
    ensure!(second.admissions == 1 && second.admitted_blocks == BLOCKS, "the second was not admitted: {second:?}");
    ensure!(second.losses == 0 && second.disk >= SIZE, "the second download: {second:?}");
    ensure!(third.disk == 0, "the third download read {} bytes from the disk", third.disk);
    ensure!(third.hit_bytes == SIZE && third.large_read == 0, "the third download: {third:?}");

    let (ok, text) = server.terminate(Duration::from_secs(20))?;
    ensure!(ok, "fileserver did not exit cleanly:\n{text}");
    let copied =
        text.lines().find_map(|l| l.strip_prefix("fileserver_payload_bytes_copied_total ")?.trim().parse::<u64>().ok());
    ensure!(copied == Some(0), "payload copied by the CPU: {copied:?}");
    println!("  three downloads of 1 GiB byte-exact; the third read nothing from the disk; 0 bytes copied");
    Ok(())
}

/// The cache and reader counters of the control port (on the server namespace's loopback;
/// the sums over workers, the lines without a `queue` label).
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    disk: u64,
    hit_bytes: u64,
    large_read: u64,
    admissions: u64,
    rejections: u64,
    admitted_blocks: u64,
    losses: u64,
}

impl Counters {
    fn read(ns: &Netns) -> Result<Counters> {
        let (ok, text) =
            output(ns.in_server("curl").args(["-sf", "--max-time", "10", "http://127.0.0.1:9100/metrics"]))?;
        ensure!(ok, "the control port did not answer: {text}");
        let c = |name: &str| -> Result<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("fileserver_{name} "))?.trim().parse().ok())
                .with_context(|| format!("no {name} on the control port:\n{text}"))
        };
        Ok(Counters {
            disk: c("read_bytes_direct_total")? + c("read_bytes_buffered_total")?,
            hit_bytes: c("cache_large_hit_bytes_total")?,
            large_read: c("cache_large_read_bytes_total")?,
            admissions: c("cache_admissions_total")?,
            rejections: c("cache_rejections_total")?,
            admitted_blocks: c("cache_admitted_blocks_total")?,
            losses: c("cache_admission_losses_total")?,
        })
    }

    fn since(&self, before: &Counters) -> Counters {
        Counters {
            disk: self.disk - before.disk,
            hit_bytes: self.hit_bytes - before.hit_bytes,
            large_read: self.large_read - before.large_read,
            admissions: self.admissions - before.admissions,
            rejections: self.rejections - before.rejections,
            admitted_blocks: self.admitted_blocks - before.admitted_blocks,
            losses: self.losses - before.losses,
        }
    }
}
