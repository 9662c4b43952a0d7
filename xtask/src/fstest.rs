//! Namespace tests of the file server's AF_XDP backend with real clients (curl, wget) in
//! the client namespace: sizes around every boundary up to 1 GiB checked by sha256, ranges
//! at block and frame boundaries, 50 parallel clients, traversal attempts, conditional and
//! error answers, and no payload byte copied by the CPU across all of it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::client::Prng;
use crate::netns::{Netns, SRV_ADDR};
use crate::nstest::{Bins, Suite};
use crate::util::Daemon;

/// Sizes every download test covers (bytes).
pub const SIZES: [(&str, u64); 7] = [
    ("s0", 0),
    ("s1", 1),
    ("s4095", 4095),
    ("s4096", 4096),
    ("s4097", 4097),
    ("s1m1", (1 << 20) + 1),
    ("big1g", 1 << 30),
];
/// Small files for the parallel clients.
const SMALL: usize = 200;
/// Payload block of the server under test (KiB): ranges are cut around its multiples.
const BLOCK_KIB: u64 = 256;

/// A data set on disk (ext4, so O_DIRECT works), removed on drop.
pub struct DataSet {
    pub dir: PathBuf,
    pub www: PathBuf,
}

impl DataSet {
    /// Writes the files; `with_big` adds the 1 GiB one.
    pub fn create(tag: &str, with_big: bool) -> Result<DataSet> {
        let dir = PathBuf::from(format!("/var/tmp/zc-{tag}-{}", std::process::id()));
        let www = dir.join("www");
        std::fs::create_dir_all(www.join("small"))?;
        std::fs::create_dir_all(www.join("sub"))?;
        let mut rng = Prng::new(0x5eed);
        for (name, size) in SIZES {
            if size > 1 << 28 && !with_big {
                continue;
            }
            rng.write_file(&www.join(name), size)?;
        }
        for i in 0..SMALL {
            let size = 100 + (rng.next_u64() % (16 << 10)) as usize;
            rng.write_file(&www.join(format!("small/f{i:03}.txt")), size as u64)?;
        }
        std::fs::write(www.join("sub/index.html"), b"<h1>index</h1>\n")?;
        std::fs::write(dir.join("secret"), b"root:outside the root\n")?;
        let _ = std::os::unix::fs::symlink("/etc", www.join("etc-link"));
        let _ = std::os::unix::fs::symlink("../secret", www.join("up-link"));
        Ok(DataSet { dir, www })
    }
}

impl Drop for DataSet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum").arg(path).output()?;
    ensure!(out.status.success(), "sha256sum {}", path.display());
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned())
}

/// sha256 of what `cmd` (a shell pipeline's first part) writes, run in the client namespace.
pub fn sha256_download(ns: &Netns, fetch: &str) -> Result<String> {
    let out = ns.in_client("bash").args(["-c", &format!("set -o pipefail; {fetch} | sha256sum")]).output()?;
    ensure!(out.status.success(), "`{fetch}` failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned())
}

/// Body bytes of a ranged GET.
pub fn fetch_range(ns: &Netns, url: &str, range: &str) -> Result<Vec<u8>> {
    let out =
        ns.in_client("curl").args(["-sf", "--max-time", "30", "-r", range, url]).stderr(Stdio::piped()).output()?;
    ensure!(out.status.success(), "curl -r {range} {url}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(out.stdout)
}

fn file_slice(path: &Path, start: u64, end: u64) -> Result<Vec<u8>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(start))?;
    let mut v = vec![0u8; (end - start) as usize];
    f.read_exact(&mut v)?;
    Ok(v)
}

/// `curl -w '%{http_code}'` and the body, for status checks.
fn status_and_body(ns: &Netns, args: &[&str]) -> Result<(String, String)> {
    let out = ns.in_client("curl").args(["-s", "--max-time", "10", "-w", "\n%{http_code}"]).args(args).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().to_owned(), body.to_owned()))
}

/// Registers the AF_XDP file server tests: one server, one data set, several cases.
pub fn tests(suite: &mut Suite, bins: &Bins) {
    let setup = || -> Result<(Netns, DataSet, Daemon)> {
        let data = DataSet::create("files", true).context("writing the data set")?;
        let ns = Netns::up("f", 1500)?;
        let mut cmd = ns.in_server(&bins.fileserver);
        cmd.args(["--iface", &ns.srv_if, "--addr", SRV_ADDR, "--port", "80", "--root"])
            .arg(&data.www)
            .args(["--block-kib", &BLOCK_KIB.to_string(), "--user", "nobody", "--head-timeout", "2"])
            .env("RUST_LOG", "warn");
        let mut d = Daemon::spawn("fileserver", &mut cmd)?;
        d.wait_line("ready", Duration::from_secs(30))?;
        Ok((ns, data, d))
    };
    let mut env = None;
    suite.case("fileserver_xdp_starts_and_drops_privileges", || {
        let e = setup()?;
        env = Some(e);
        Ok(())
    });
    let Some((ns, data, mut server)) = env else { return };
    let base = format!("http://{SRV_ADDR}");

    suite.case("fileserver_xdp_curl_and_wget_sha256", || {
        for (name, _) in SIZES {
            let want = sha256_file(&data.www.join(name))?;
            let url = format!("{base}/{name}");
            let got = sha256_download(&ns, &format!("curl -sf --max-time 300 {url}"))?;
            ensure!(got == want, "curl {name}: sha256 {got} != {want}");
            let got = sha256_download(&ns, &format!("wget -q -O - --timeout=300 {url}"))?;
            ensure!(got == want, "wget {name}: sha256 {got} != {want}");
            println!("  {name}: curl and wget sha256 ok");
        }
        Ok(())
    });

    suite.case("fileserver_xdp_ranges_at_block_and_frame_boundaries", || {
        let block = BLOCK_KIB << 10;
        let mut checked = 0;
        for (name, size) in [("s1m1", (1u64 << 20) + 1), ("big1g", 1 << 30), ("s4097", 4097)] {
            let path = data.www.join(name);
            let url = format!("{base}/{name}");
            let mut cuts: Vec<u64> =
                (1..=4).map(|k| k * block).chain([4096, 8192, size / 2]).filter(|&c| c < size).collect();
            if size == 1 << 30 {
                cuts.extend([512 << 20, (1 << 30) - block]);
            }
            for c in cuts {
                for (a, b) in [(c - 1, c), (c, c), (c - 1, c + 1), (c.saturating_sub(100), (c + 100).min(size - 1))] {
                    if b >= size {
                        continue;
                    }
                    let got = fetch_range(&ns, &url, &format!("{a}-{b}"))?;
                    ensure!(got == file_slice(&path, a, b + 1)?, "{name} bytes {a}-{b} differ");
                    checked += 1;
                }
            }
            // Suffix and open-ended ranges.
            let got = fetch_range(&ns, &url, "-1")?;
            ensure!(got == file_slice(&path, size - 1, size)?, "{name} suffix -1 differs");
            let start = size.saturating_sub(block + 3);
            let got = fetch_range(&ns, &url, &format!("{start}-"))?;
            ensure!(got == file_slice(&path, start, size)?, "{name} open range {start}- differs");
            checked += 2;
        }
        println!("  {checked} ranges byte-exact");
        Ok(())
    });

    suite.case("fileserver_xdp_50_parallel_clients_200_small_files", || {
        let dl = data.dir.join("dl");
        let mut children = Vec::new();
        for c in 0..50 {
            let out = dl.join(format!("c{c:02}"));
            std::fs::create_dir_all(&out)?;
            let mut cfg = String::new();
            for i in 0..SMALL {
                cfg.push_str(&format!(
                    "url = \"{base}/small/f{i:03}.txt\"\noutput = \"{}/f{i:03}.txt\"\n",
                    out.display()
                ));
            }
            let cfg_path = dl.join(format!("c{c:02}.curl"));
            std::fs::write(&cfg_path, cfg)?;
            let child = ns
                .in_client("curl")
                .args(["-sf", "--max-time", "120", "--config"])
                .arg(&cfg_path)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()?;
            children.push(child);
        }
        let mut failures = 0;
        for child in children {
            let out = child.wait_with_output()?;
            if !out.status.success() {
                failures += 1;
                eprintln!("  client failed: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        ensure!(failures == 0, "{failures} of 50 clients failed");
        for c in 0..50 {
            for i in 0..SMALL {
                let name = format!("f{i:03}.txt");
                let got = std::fs::read(dl.join(format!("c{c:02}")).join(&name))?;
                ensure!(got == std::fs::read(data.www.join("small").join(&name))?, "client {c} {name} differs");
            }
        }
        println!("  50 clients x {SMALL} files byte-exact");
        Ok(())
    });

    suite.case("fileserver_xdp_traversal_refused", || {
        for (args, what) in [
            (vec!["--path-as-is", "http://10.77.0.1/../etc/passwd"], "/../etc/passwd"),
            (vec!["--path-as-is", "http://10.77.0.1/%2e%2e/etc/passwd"], "%2e%2e"),
            (vec!["--path-as-is", "http://10.77.0.1/small/..%2f..%2fetc/passwd"], "..%2f"),
            (vec!["http://10.77.0.1/etc-link/passwd"], "symlink to /etc"),
            (vec!["http://10.77.0.1/up-link"], "symlink out of the root"),
        ] {
            let (code, body) = status_and_body(&ns, &args)?;
            ensure!(code == "404", "{what}: status {code}, expected 404");
            ensure!(!body.contains("root:"), "{what}: content from outside the root came back");
        }
        println!("  five traversal attempts: 404, nothing from outside");
        Ok(())
    });

    suite.case("fileserver_xdp_http_semantics", || {
        let (code, body) = status_and_body(&ns, &[&format!("{base}/sub/")])?;
        ensure!(code == "200" && body.contains("index"), "directory index: {code}");
        let (code, _) = status_and_body(&ns, &[&format!("{base}/nope")])?;
        ensure!(code == "404", "missing file: {code}");
        let (code, _) = status_and_body(&ns, &["-r", "99999999-", &format!("{base}/s4097")])?;
        ensure!(code == "416", "unsatisfiable range: {code}");
        let (code, _) = status_and_body(&ns, &["-X", "POST", &format!("{base}/s1")])?;
        ensure!(code == "405", "POST: {code}");
        let (code, body) = status_and_body(&ns, &["-I", &format!("{base}/s4096")])?;
        ensure!(code == "200" && body.contains("Content-Length: 4096"), "HEAD: {code}\n{body}");
        let etag = body.lines().find_map(|l| l.strip_prefix("ETag: ")).context("no ETag")?.trim().to_owned();
        let (code, _) = status_and_body(&ns, &["-H", &format!("If-None-Match: {etag}"), &format!("{base}/s4096")])?;
        ensure!(code == "304", "If-None-Match: {code}");
        println!("  index, 404, 416, 405, HEAD, 304 as expected");
        Ok(())
    });

    suite.case("fileserver_xdp_slow_client_timed_out_others_served", || {
        // A client that sends half a request head and stalls (slowloris).
        let slow = ns
            .in_client("bash")
            .args(["-c", "exec 3<>/dev/tcp/10.77.0.1/80; printf 'GET /s4096 HTTP/1.1\\r\\n' >&3; sleep 5; printf 'Host: x\\r\\n\\r\\n' >&3 2>/dev/null; timeout 2 cat <&3"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(300));
        let start = std::time::Instant::now();
        let got = sha256_download(&ns, &format!("curl -sf --max-time 10 {base}/s1m1"))?;
        ensure!(got == sha256_file(&data.www.join("s1m1"))?, "download during the slow client differs");
        let served_in = start.elapsed();
        let out = slow.wait_with_output()?;
        let answer = String::from_utf8_lossy(&out.stdout);
        ensure!(!answer.contains("200 OK"), "the stalled request was answered after the head timeout:\n{answer}");
        println!("  another client served in {served_in:.1?} while one stalled; the stalled one was cut off");
        Ok(())
    });

    suite.case("fileserver_xdp_no_payload_copied_and_clean_exit", || {
        let (ok, text) = server.terminate(Duration::from_secs(20))?;
        ensure!(ok, "fileserver did not exit cleanly:\n{text}");
        let counter = |name: &str| -> Option<u64> {
            text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        };
        let copied = counter("fileserver_payload_bytes_copied_total").context("no copy counter in the exit report")?;
        let sent = counter("fileserver_tx_payload_bytes_total").unwrap_or(0);
        ensure!(text.contains("multi-buffer    yes"), "multi-buffer was not available:\n{text}");
        ensure!(copied == 0, "{copied} payload bytes copied by the CPU");
        ensure!(sent > 2 << 30, "only {sent} payload bytes sent");
        ensure!(text.contains("dropped privileges"), "the server did not drop privileges:\n{text}");
        let head_timeouts = text.lines().find_map(|l| {
            l.strip_prefix("fileserver_timeouts_total{phase=\"head\"} ").and_then(|v| v.trim().parse::<u64>().ok())
        });
        ensure!(head_timeouts.unwrap_or(0) >= 1, "no head timeout counted for the slow client");
        ensure!(!ns.server_link().contains("prog/xdp"), "XDP program left attached");
        println!("  {sent} payload bytes sent, 0 copied; privileges dropped; XDP detached");
        Ok(())
    });
    drop(server);
    drop(ns);
    drop(data);
}
