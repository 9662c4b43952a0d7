//! The zero-copy ladder: every method of the file server's kernel backend (`read-write`,
//! `mmap`, `sendfile`, `splice`, `msg-zerocopy`, `direct-uring`) held to the same HTTP
//! behaviour as the AF_XDP backend, and `cargo xtask bench ladder`, which measures every
//! rung, the AF_XDP backend and nginx side by side in one run.
//!
//! The tests share one namespace pair and one data set (under /var/tmp, removed at the
//! end); each method gets its own server: sha256 of curl downloads around page
//! boundaries, keep-alive, parallel clients, ranges across 4 KiB and 64 KiB boundaries,
//! 400/404/405/416, and traversal attempts that must never return anything from outside.

mod bench;
pub mod procstat;
mod report;
mod scale;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

pub use bench::{bench, BenchOpts};
pub(crate) use bench::{lua, target_dir};
pub use scale::{bench as scale_bench, capture_bench};

use crate::fstest::DataSet;
use crate::fstest::{fetch_range, sha256_download, sha256_file};
use crate::netns::{Netns, SRV_ADDR};
use crate::nstest::{Bins, Suite};
use crate::util::{output, Daemon};

/// The kernel backend's methods, in ladder order.
pub const METHODS: [&str; 6] = ["read-write", "mmap", "sendfile", "splice", "msg-zerocopy", "direct-uring"];
const PORT: u16 = 8080;
/// Sizes each method must serve byte-exact (the big file is left to the AF_XDP tests and
/// the bench, to keep this suite short).
const SIZES: [&str; 6] = ["s0", "s1", "s4095", "s4096", "s4097", "s1m1"];

struct Env {
    ns: Netns,
    data: DataSet,
}

/// Registers the ladder's namespace tests.
pub fn tests(suite: &mut Suite, bins: &Bins) {
    let mut env: Option<Env> = None;
    for m in METHODS {
        suite.case(&format!("ladder_{m}_sha256_ranges_and_errors"), || {
            if env.is_none() {
                let data = DataSet::create("ladder", false).context("writing the data set")?;
                env = Some(Env { ns: Netns::up("l", 1500)?, data });
            }
            let e = env.as_ref().context("the ladder's namespaces and data set")?;
            method_case(bins, e, m)
        });
    }
    suite.case("ladder_xdp_unavailable_says_how_to_fall_back", || xdp_fallback_hint(bins));
    drop(env);
}

fn start(bins: &Bins, e: &Env, method: &str) -> Result<Daemon> {
    let mut cmd = e.ns.in_server(&bins.fileserver);
    cmd.args(["--backend", "kernel", "--method", method, "--addr", "0.0.0.0", "--port", &PORT.to_string(), "--root"])
        .arg(&e.data.www)
        // A pool of 6 blocks: eight parallel clients of a 5-block file run it dry, so
        // direct-uring's wait-for-a-free-block path is exercised too.
        .args(["--user", "nobody", "--blocks", "6", "--cache-blocks", "2", "--block-kib", "256"])
        .env("RUST_LOG", "warn");
    let mut d = Daemon::spawn("fileserver", &mut cmd)?;
    d.wait_line("ready", Duration::from_secs(20))?;
    Ok(d)
}

fn method_case(bins: &Bins, e: &Env, method: &str) -> Result<()> {
    let mut server = start(bins, e, method)?;
    let (ns, www) = (&e.ns, &e.data.www);
    let base = format!("http://{SRV_ADDR}:{PORT}");

    for name in SIZES {
        let got = sha256_download(ns, &format!("curl -sf --max-time 30 {base}/{name}"))?;
        ensure!(got == sha256_file(&www.join(name))?, "{method}: {name} differs (sha256)");
    }
    // Several responses on one keep-alive connection, a 0-byte one among them.
    let names = ["s4097", "s1m1", "s0", "s4095", "s1m1"];
    let urls: Vec<String> = names.iter().map(|n| format!("{base}/{n}")).collect();
    let got = sha256_download(ns, &format!("curl -sf --max-time 30 {}", urls.join(" ")))?;
    let mut all = Vec::new();
    for n in names {
        all.extend(std::fs::read(www.join(n))?);
    }
    ensure!(got == sha256_bytes(&all)?, "{method}: keep-alive sequence differs");

    let ranges = check_ranges(ns, www, &base)?;
    parallel(ns, www, &base)?;
    errors_and_traversal(ns, &base, method)?;

    let (ok, text) = server.terminate(Duration::from_secs(15))?;
    ensure!(ok, "{method}: the server did not exit cleanly:\n{text}");
    ensure!(!text.contains("panicked"), "{method}: the server panicked:\n{text}");
    let counter = |name: &str| -> u64 {
        text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
    };
    let sent = counter("fileserver_body_bytes_sent_total ");
    let copied = counter("fileserver_payload_bytes_copied_total ");
    let mut note = format!("{sent} body bytes, {copied} copied by the CPU");
    match method {
        "msg-zerocopy" => {
            let (sends, done) =
                (counter("fileserver_zerocopy_sends_total "), counter("fileserver_zerocopy_completed_total "));
            ensure!(sends > 0, "msg-zerocopy made no MSG_ZEROCOPY send:\n{text}");
            ensure!(done == sends, "msg-zerocopy: {done} of {sends} sends confirmed by the kernel:\n{text}");
            note += &format!(
                "; {sends} MSG_ZEROCOPY sends confirmed, the kernel copied {} bytes of them (veth delivers to a local socket)",
                counter("fileserver_zerocopy_kernel_copied_bytes_total ")
            );
        }
        "direct-uring" => {
            let direct = counter("fileserver_read_bytes_direct_total ");
            ensure!(direct > 0, "direct-uring read nothing with O_DIRECT:\n{text}");
            note += &format!("; {direct} bytes read with O_DIRECT");
        }
        _ => {}
    }
    println!("  {method}: {} sizes + keep-alive sha256, {ranges} ranges, 8 parallel clients, 400/404/405/416, 5 traversals; {note}", SIZES.len());
    Ok(())
}

/// Ranges of the 1 MiB + 1 file around 4 KiB, 64 KiB and 256 KiB (pool block) boundaries,
/// suffix and open-ended ones, and a few of the 4097-byte file.
fn check_ranges(ns: &Netns, www: &Path, base: &str) -> Result<usize> {
    let mut checked = 0;
    let size = (1u64 << 20) + 1;
    let big = std::fs::read(www.join("s1m1"))?;
    let url = format!("{base}/s1m1");
    let mut specs: Vec<(String, u64, u64)> = Vec::new();
    for c in [4096u64, 8192, 65536, 131072, 262144, 524288, 786432, 1 << 20] {
        for (a, b) in [(c - 1, c), (c, c), (c - 1, c + 1), (c - 100, c + 4000)] {
            let b = b.min(size - 1);
            specs.push((format!("{a}-{b}"), a, b + 1));
        }
    }
    specs.push(("0-0".into(), 0, 1));
    specs.push(("-1".into(), size - 1, size));
    specs.push(("-4097".into(), size - 4097, size));
    specs.push(("1000-".into(), 1000, size));
    specs.push(("524287-".into(), 524287, size));
    specs.push(("0-99999999".into(), 0, size));
    for (r, a, b) in specs {
        let got = fetch_range(ns, &url, &r)?;
        ensure!(got == big[a as usize..b as usize], "s1m1 range {r}: {} bytes differ from the file's", got.len());
        checked += 1;
    }
    let small = std::fs::read(www.join("s4097"))?;
    for (r, a, b) in
        [("4095-4096", 4095usize, 4097usize), ("4096-", 4096, 4097), ("-4097", 0, 4097), ("100-200", 100, 201)]
    {
        let got = fetch_range(ns, &format!("{base}/s4097"), r)?;
        ensure!(got == small[a..b], "s4097 range {r} differs");
        checked += 1;
    }
    Ok(checked)
}

/// Eight clients at once, each fetching the 1 MiB + 1 file three times on one connection.
fn parallel(ns: &Netns, www: &Path, base: &str) -> Result<()> {
    let url = format!("{base}/s1m1");
    let mut children = Vec::new();
    for _ in 0..8 {
        let cmd = format!("set -o pipefail; curl -sf --max-time 30 {url} {url} {url} | sha256sum");
        children.push(ns.in_client("bash").args(["-c", &cmd]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?);
    }
    let mut want3 = Vec::new();
    for _ in 0..3 {
        want3.extend(std::fs::read(www.join("s1m1"))?);
    }
    let want3 = sha256_bytes(&want3)?;
    for c in children {
        let out = c.wait_with_output()?;
        ensure!(out.status.success(), "a parallel client failed: {}", String::from_utf8_lossy(&out.stderr));
        let got = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned();
        ensure!(got == want3, "a parallel client got different bytes");
    }
    Ok(())
}

fn errors_and_traversal(ns: &Netns, base: &str, method: &str) -> Result<()> {
    let (code, _) = status_and_body(ns, &[&format!("{base}/nope")])?;
    ensure!(code == "404", "{method}: missing file answered {code}");
    let (code, _) = status_and_body(ns, &["-r", "99999999-", &format!("{base}/s4097")])?;
    ensure!(code == "416", "{method}: unsatisfiable range answered {code}");
    let (code, _) = status_and_body(ns, &["-X", "POST", &format!("{base}/s1")])?;
    ensure!(code == "405", "{method}: POST answered {code}");
    for (raw, what) in [
        ("GARBAGE\\r\\n\\r\\n", "a line that is no request"),
        ("GET /s1 HTTP/1.1\\r\\n\\r\\n", "HTTP/1.1 without Host"),
        ("GET /s1 HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: nope\\r\\n\\r\\n", "a bad Content-Length"),
    ] {
        let line = raw_exchange(ns, raw)?;
        ensure!(line.starts_with("HTTP/1.1 400"), "{method}: {what} answered {line:?}, expected 400");
    }
    for (args, what) in [
        (vec!["--path-as-is".to_owned(), format!("{base}/../etc/passwd")], "/../etc/passwd"),
        (vec!["--path-as-is".to_owned(), format!("{base}/%2e%2e/etc/passwd")], "/%2e%2e/etc/passwd"),
        (vec!["--path-as-is".to_owned(), format!("{base}/small/..%2f..%2fetc/passwd")], "..%2f"),
        (vec![format!("{base}/etc-link/passwd")], "a symlink to /etc in the root"),
        (vec![format!("{base}/up-link")], "a symlink out of the root"),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, body) = status_and_body(ns, &args)?;
        ensure!(code == "404", "{method}: {what} answered {code}, expected 404");
        ensure!(!body.contains("root:"), "{method}: {what} returned content from outside the root");
    }
    Ok(())
}

/// Sends `raw` (printf escapes) on a fresh connection from the client namespace and
/// returns the first line of the answer.
fn raw_exchange(ns: &Netns, raw: &str) -> Result<String> {
    let script = format!("exec 3<>/dev/tcp/{SRV_ADDR}/{PORT}; printf '{raw}' >&3; timeout 3 head -n1 <&3");
    let out = ns.in_client("bash").args(["-c", &script]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Without XDP the server must say why and name the kernel backend.
fn xdp_fallback_hint(bins: &Bins) -> Result<()> {
    let ns = Netns::up("h", 1500)?;
    let dir = std::env::temp_dir();
    for (args, what) in [
        (vec!["--iface", "nosuch0", "--addr", SRV_ADDR], "an interface that does not exist"),
        (vec!["--addr", SRV_ADDR], "no --iface"),
    ] {
        let mut cmd = ns.in_server(&bins.fileserver);
        cmd.arg("--root").arg(&dir).args(&args).env("RUST_LOG", "warn");
        let (ok, text) = output(&mut cmd)?;
        ensure!(!ok, "with {what} the xdp backend started:\n{text}");
        ensure!(!text.contains("panicked"), "with {what} it panicked:\n{text}");
        ensure!(text.contains("--backend kernel"), "with {what} the error does not point to --backend kernel:\n{text}");
        println!("  {what}: {}", text.lines().find(|l| l.contains("error")).unwrap_or("").trim());
    }
    Ok(())
}

fn sha256_bytes(bytes: &[u8]) -> Result<String> {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    child.stdin.take().context("sha256sum stdin")?.write_all(bytes)?;
    let out = child.wait_with_output()?;
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned())
}

/// Status code and body of a curl request.
fn status_and_body(ns: &Netns, args: &[&str]) -> Result<(String, String)> {
    let out = ns.in_client("curl").args(["-s", "--max-time", "10", "-w", "\n%{http_code}"]).args(args).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().to_owned(), body.to_owned()))
}
