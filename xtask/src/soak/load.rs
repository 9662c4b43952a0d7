//! The soak's clients, each a loop in a thread of its own that runs in the client
//! namespace until the deadline, bounded in count as well as in time, and returns what it
//! saw. Together they are the mixed load of `cargo xtask soak`.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::checks::Range;
use crate::client::Prng;
use crate::loadgen::{Ab, Wrk};

use crate::netns::{Impaired, SRV_ADDR};
use crate::tcptest::result;
use crate::util::output;

/// The server's port.
pub const PORT: u16 = 80;
/// Payload block of the server (KiB): ranges are cut around its multiples.
pub const BLOCK_KIB: u64 = 256;

/// What every client needs: the namespaces, the files, the deadline.
pub struct Ctx<'a> {
    pub net: &'a Impaired,
    pub www: PathBuf,
    /// sha256 of `www/big`.
    pub big_sha: String,
    /// Small files `small/fNNN` and their count.
    pub small: usize,
    /// The wrk script cycling through the small files.
    pub lua: PathBuf,
    pub start: Instant,
    pub deadline: Instant,
    pub seed: u64,
    /// The xtask binary (for the staller and the SYN flood).
    pub xtask: PathBuf,
}

impl Ctx<'_> {
    fn url(&self, path: &str) -> String {
        format!("http://{SRV_ADDR}:{PORT}{path}")
    }

    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    /// Sleeps until `at` after the start or the deadline, whichever is first; false if
    /// the deadline came first.
    fn sleep_until(&self, at: Duration) -> bool {
        let t = (self.start + at).min(self.deadline);
        std::thread::sleep(t.saturating_duration_since(Instant::now()));
        Instant::now() < self.deadline
    }
}

/// wrk over the small files on 32 keep-alive connections, for the whole run.
pub fn wrk(c: &Ctx) -> Result<Wrk> {
    let secs = c.left().as_secs().max(1);
    let (_, text) = output(
        c.net
            .in_client("wrk")
            .args(["-t1", "-c32", &format!("-d{secs}s"), "--timeout", "10s", "-s"])
            .arg(&c.lua)
            .arg(c.url("/")),
    )?;
    Wrk::parse(&text)
}

/// What the connection-per-request client did.
#[derive(Debug, Default, Clone, Copy)]
pub struct AbTally {
    /// `ab` runs, and those cut short (ab gives up on a request that takes longer than
    /// its `-s` timeout, even with `-r`).
    pub runs: u64,
    pub aborted: u64,
    pub complete: u64,
    pub failed: u64,
    pub non2xx: u64,
}

/// `ab` with a new connection per request (no `-k`) on 8 at once, in runs of 2,000
/// requests until the deadline; `-r` keeps a run going over a socket error (it counts it).
pub fn ab(c: &Ctx) -> AbTally {
    let mut t = AbTally::default();
    let most = 1 + c.left().as_secs();
    for i in 0..most {
        if !c.running() {
            break;
        }
        let url = c.url(&format!("/small/f{:03}", i % c.small as u64));
        let run = output(c.net.in_client("ab").args(["-q", "-r", "-s", "30", "-c", "8", "-n", "2000"]).arg(url));
        t.runs += 1;
        let text = match run {
            Ok((_, text)) => text,
            Err(e) => {
                t.aborted += 1;
                eprintln!("soak: ab: {e:#}");
                continue;
            }
        };
        match Ab::parse(&text) {
            Ok(a) => {
                t.complete += a.complete;
                t.failed += a.failed;
                t.non2xx += a.non2xx;
            }
            Err(_) => {
                t.aborted += 1;
                t.complete += crate::loadgen::ab_completed_before_abort(&text).unwrap_or(0);
                eprintln!("soak: an ab run was cut short: {}", text.lines().last().unwrap_or("").trim());
            }
        }
    }
    t
}

/// Outcomes of one checking client.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub ok: u64,
    pub mismatched: u64,
    pub failed: u64,
}

/// 1 GiB downloads one after another, each checked by sha256; the last one started
/// before the deadline runs to its end.
pub fn downloads(c: &Ctx) -> Tally {
    let mut t = Tally::default();
    let most = 1 + c.left().as_secs() / 10;
    for _ in 0..most {
        if !c.running() {
            break;
        }
        let cmd = format!("set -o pipefail; curl -sf --max-time 900 {} | sha256sum", c.url("/big"));
        match output(c.net.in_client("bash").args(["-c", &cmd])) {
            Ok((true, text)) if text.split_whitespace().next() == Some(c.big_sha.as_str()) => t.ok += 1,
            Ok((true, text)) => {
                t.mismatched += 1;
                eprintln!("soak: a 1 GiB download differs: sha256 {} != {}", text.trim(), c.big_sha);
            }
            Ok((false, text)) => {
                t.failed += 1;
                eprintln!("soak: a 1 GiB download failed: {}", text.trim());
            }
            Err(e) => {
                t.failed += 1;
                eprintln!("soak: a 1 GiB download failed: {e:#}");
            }
        }
    }
    t
}

/// Random ranges of the big file and of small files, each compared with the source.
pub fn ranges(c: &Ctx) -> Tally {
    let mut t = Tally::default();
    let mut rng = Prng::new(c.seed ^ 0x07a1_19e5);
    let most = 50 * c.left().as_secs().max(1);
    for i in 0..most {
        if !c.running() {
            break;
        }
        let (path, max_len) = if i % 2 == 0 {
            ("/big".to_owned(), 4 << 20)
        } else {
            (format!("/small/f{:03}", rng.next_u64() % c.small as u64), 16 << 10)
        };
        let file = c.www.join(path.trim_start_matches('/'));
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        if size == 0 {
            continue;
        }
        let r = Range::random(&mut rng, size, BLOCK_KIB << 10, max_len);
        match range_ok(c, &path, &file, size, r) {
            Ok(true) => t.ok += 1,
            Ok(false) => {
                t.mismatched += 1;
                eprintln!("soak: {path} bytes {} differ from the source", r.spec());
            }
            Err(e) => {
                t.failed += 1;
                eprintln!("soak: range {} of {path}: {e:#}", r.spec());
            }
        }
    }
    t
}

fn range_ok(c: &Ctx, path: &str, file: &Path, size: u64, r: Range) -> Result<bool> {
    let out = c
        .net
        .in_client("curl")
        .args(["-sf", "--max-time", "60", "-r", &r.spec()])
        .arg(c.url(path))
        .stderr(Stdio::piped())
        .output()
        .context("spawning curl")?;
    anyhow::ensure!(out.status.success(), "curl: {} {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    let (a, b) = r.bounds(size);
    Ok(out.stdout == slice(file, a, b)?)
}

fn slice(path: &Path, start: u64, end: u64) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    f.seek(SeekFrom::Start(start))?;
    let mut v = vec![0u8; (end - start) as usize];
    f.read_exact(&mut v)?;
    Ok(v)
}

/// Downloads of the big file killed (SIGKILL to curl) 0.2 to 3 s in; returns how many.
pub fn killers(c: &Ctx) -> u64 {
    let mut rng = Prng::new(c.seed ^ 0x4b11);
    let mut killed = 0;
    let most = c.left().as_secs();
    for _ in 0..most {
        if !c.running() {
            break;
        }
        let child = c
            .net
            .in_client("curl")
            .args(["-s", "-o", "/dev/null", "--max-time", "30"])
            .arg(c.url("/big"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else { continue };
        std::thread::sleep(Duration::from_millis(200 + rng.next_u64() % 2800).min(c.left()));
        // `ip netns exec` execs curl, so the child is curl itself.
        if child.try_wait().ok().flatten().is_none() {
            let _ = child.kill();
            killed += 1;
        }
        let _ = child.wait();
    }
    killed
}

/// Stallers (`xtask internal soak-stall`), a batch of `per_batch` every 20 s from 5 s
/// on, each held `hold`; waits for every batch and returns (opened, cut, failed).
pub fn stallers(c: &Ctx, per_batch: u32, hold: Duration) -> (u64, u64, u64) {
    let mut batches: Vec<Child> = Vec::new();
    let mut k = 0u32;
    while c.sleep_until(Duration::from_secs(5 + 20 * u64::from(k))) {
        k += 1;
        let child = c
            .net
            .in_client(&c.xtask)
            .args(["internal", "soak-stall", "--server", &format!("{SRV_ADDR}:{PORT}"), "--path", "/big"])
            .args(["--conns", &per_batch.to_string(), "--hold-secs", &hold.as_secs().to_string()])
            .stdout(Stdio::piped())
            .spawn();
        match child {
            Ok(ch) => batches.push(ch),
            Err(e) => eprintln!("soak: starting a staller batch: {e}"),
        }
    }
    let (mut opened, mut cut, mut failed) = (0, 0, 0);
    for (k, ch) in batches.into_iter().enumerate() {
        let Ok(out) = ch.wait_with_output() else { continue };
        let text = String::from_utf8_lossy(&out.stdout);
        println!("  staller batch {} (from {} s): {}", k + 1, 5 + 20 * k, text.trim());
        opened += result(&text, "opened").unwrap_or(0);
        cut += result(&text, "cut").unwrap_or(0);
        failed += result(&text, "failed").unwrap_or(u64::from(per_batch));
    }
    (opened, cut, failed)
}

/// A burst of `syns` spoofed SYNs (`xtask internal syn-flood`) at 15 s and every minute
/// after; returns (bursts, SYNs sent).
pub fn syn_bursts(c: &Ctx, server_mac: &str, syns: u32) -> (u64, u64) {
    let (mut bursts, mut sent) = (0, 0);
    let mut k = 0u64;
    while c.sleep_until(Duration::from_secs(15 + 60 * k)) {
        k += 1;
        let run = output(
            c.net
                .in_client(&c.xtask)
                .args(["internal", "syn-flood", "--iface", &c.net.cli_if, "--server", &format!("{SRV_ADDR}:{PORT}")])
                .args(["--server-mac", server_mac, "--syns", &syns.to_string(), "--seed", &(c.seed + k).to_string()]),
        );
        match run {
            Ok((true, text)) => {
                bursts += 1;
                sent += result(&text, "syns").unwrap_or(0);
            }
            Ok((false, text)) => eprintln!("soak: SYN burst failed: {}", text.trim()),
            Err(e) => eprintln!("soak: SYN burst failed: {e:#}"),
        }
    }
    (bursts, sent)
}

/// The wrk script over the small files.
pub fn write_lua(path: &Path, count: usize) -> Result<()> {
    std::fs::write(path, crate::ladder::lua("/small/f", count, false))
        .with_context(|| format!("writing {}", path.display()))
}
