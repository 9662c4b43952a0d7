//! Namespace tests of the AF_XDP file server over IPv6 and dual stack: one server given
//! `--addr 10.77.0.1 --addr fd77::1`, curl `-6` and wget over IPv6 with every size up to
//! 1 GiB checked by sha256, ranges at block and frame boundaries, an IPv4 and an IPv6
//! download of 1 GiB at the same time, IPv6 checksums left to TX metadata finished by the
//! kernel and verified by the client, and no payload byte copied by the CPU.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::fstest::{sha256_download, sha256_file, DataSet, SIZES};
use crate::netns::{Netns, SRV_ADDR, SRV_ADDR6};
use crate::nstest::{Bins, Suite};
use crate::offloadtest::client_csum_errors;
use crate::util::{run, Daemon};

/// Payload block of the server under test (KiB).
const BLOCK_KIB: u64 = 256;

/// Body bytes of a ranged GET over IPv6 (`-g`: the brackets of the address are no glob).
fn fetch_range6(ns: &Netns, url: &str, range: &str) -> Result<Vec<u8>> {
    let out = ns
        .in_client("curl")
        .args(["-6", "-g", "-sf", "--max-time", "30", "-r", range, url])
        .stderr(Stdio::piped())
        .output()?;
    ensure!(out.status.success(), "curl -6 -r {range} {url}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(out.stdout)
}

fn file_slice(path: &std::path::Path, start: u64, end: u64) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(start))?;
    let mut v = vec![0u8; (end - start) as usize];
    f.read_exact(&mut v)?;
    Ok(v)
}

/// Registers the IPv6 and dual-stack tests: one dual-stack server, one data set.
pub fn tests(suite: &mut Suite, bins: &Bins) {
    let setup = || -> Result<(Netns, DataSet, Daemon)> {
        let data = DataSet::create("files6", true).context("writing the data set")?;
        let ns = Netns::up("g", 1500)?;
        let mut cmd = ns.in_server(&bins.fileserver);
        cmd.args(["--iface", &ns.srv_if, "--addr", SRV_ADDR, "--addr", SRV_ADDR6, "--port", "80", "--root"])
            .arg(&data.www)
            .args(["--block-kib", &BLOCK_KIB.to_string(), "--user", "nobody"])
            .env("RUST_LOG", "warn");
        let mut d = Daemon::spawn("fileserver", &mut cmd)?;
        d.wait_line("ready", Duration::from_secs(30))?;
        let banner = d.lines_so_far().join("\n");
        ensure!(
            banner.contains(&format!("http://[{SRV_ADDR6}]:80/")) && banner.contains(&format!("http://{SRV_ADDR}:80/")),
            "the startup block does not name both addresses:\n{banner}"
        );
        Ok((ns, data, d))
    };
    let mut env = None;
    suite.case("fileserver_ipv6_dual_stack_starts", || {
        env = Some(setup()?);
        Ok(())
    });
    let Some((ns, data, mut server)) = env else { return };
    let base6 = format!("http://[{SRV_ADDR6}]");

    suite.case("fileserver_ipv6_curl_and_wget_sha256", || {
        for (name, _) in SIZES {
            let want = sha256_file(&data.www.join(name))?;
            let url = format!("{base6}/{name}");
            let got = sha256_download(&ns, &format!("curl -6 -g -sf --max-time 300 {url}"))?;
            ensure!(got == want, "curl -6 {name}: sha256 {got} != {want}");
            let got = sha256_download(&ns, &format!("wget -6 -q -O - --timeout=300 {url}"))?;
            ensure!(got == want, "wget -6 {name}: sha256 {got} != {want}");
            println!("  {name}: curl -6 and wget -6 sha256 ok");
        }
        Ok(())
    });

    suite.case("fileserver_ipv6_ranges_at_block_and_frame_boundaries", || {
        let block = BLOCK_KIB << 10;
        let mut checked = 0;
        for (name, size) in [("s1m1", (1u64 << 20) + 1), ("big1g", 1 << 30), ("s4097", 4097)] {
            let path = data.www.join(name);
            let url = format!("{base6}/{name}");
            let mut cuts: Vec<u64> =
                [block, 2 * block, 4096, 8192, size / 2].into_iter().filter(|&c| c < size).collect();
            if size == 1 << 30 {
                cuts.extend([512 << 20, (1 << 30) - block]);
            }
            for c in cuts {
                for (a, b) in [(c - 1, c), (c, c), (c.saturating_sub(100), (c + 100).min(size - 1))] {
                    let got = fetch_range6(&ns, &url, &format!("{a}-{b}"))?;
                    ensure!(got == file_slice(&path, a, b + 1)?, "{name} bytes {a}-{b} differ over IPv6");
                    checked += 1;
                }
            }
            let got = fetch_range6(&ns, &url, "-1")?;
            ensure!(got == file_slice(&path, size - 1, size)?, "{name} suffix -1 differs over IPv6");
            let start = size.saturating_sub(block + 3);
            let got = fetch_range6(&ns, &url, &format!("{start}-"))?;
            ensure!(got == file_slice(&path, start, size)?, "{name} open range {start}- differs over IPv6");
            checked += 2;
        }
        println!("  {checked} ranges byte-exact over IPv6");
        Ok(())
    });

    suite.case("fileserver_ipv6_dual_stack_serves_both_at_once", || {
        let want = sha256_file(&data.www.join("big1g"))?;
        let spawn = |flag: &str, url: String| {
            ns.in_client("bash")
                .args(["-c", &format!("set -o pipefail; curl {flag} -g -sf --max-time 300 {url} | sha256sum")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        };
        let four = spawn("-4", format!("http://{SRV_ADDR}/big1g"))?;
        let six = spawn("-6", format!("{base6}/big1g"))?;
        for (what, child) in [("IPv4", four), ("IPv6", six)] {
            let out = child.wait_with_output()?;
            ensure!(out.status.success(), "{what} download failed: {}", String::from_utf8_lossy(&out.stderr));
            let got = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned();
            ensure!(got == want, "{what} download of 1 GiB: sha256 {got} != {want}");
        }
        println!("  1 GiB over IPv4 and 1 GiB over IPv6 at once, both byte-exact");
        Ok(())
    });

    suite.case("fileserver_ipv6_checksums_left_to_tx_metadata_finished_and_verified", || {
        // With the server veth's TX checksumming off, the server's kernel finishes each
        // IPv6 segment's checksum from the offsets in the TX metadata, and the client's TCP
        // verifies it (on the fast path veth hands the client partial sums unchecked).
        let banner = server.lines_so_far().join("\n");
        ensure!(banner.contains("checksums       offloaded"), "checksums not offloaded:\n{banner}");
        let set_tx = |on: &str| {
            run(ns.in_server("ethtool").args(["-K", &ns.srv_if, "tx", on]).stdout(Stdio::null()))
                .with_context(|| format!("ethtool -K (server veth) tx {on}"))
        };
        set_tx("off")?;
        let before = client_csum_errors(&ns)?;
        let got = sha256_download(&ns, &format!("curl -6 -g -sf --max-time 300 {base6}/big1g"));
        set_tx("on")?;
        let want = sha256_file(&data.www.join("big1g"))?;
        ensure!(got? == want, "the 1 GiB IPv6 download differs");
        let errors = client_csum_errors(&ns)? - before;
        ensure!(errors == 0, "the client's TCP counted {errors} bad checksums over IPv6");
        println!("  1 GiB over IPv6 byte-exact with checksums finished by the kernel, 0 bad at the client");
        Ok(())
    });

    suite.case("fileserver_ipv6_no_payload_copied_and_clean_exit", || {
        let (ok, text) = server.terminate(Duration::from_secs(20))?;
        ensure!(ok, "fileserver did not exit cleanly:\n{text}");
        let counter = |name: &str| -> Option<u64> {
            text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        };
        let copied = counter("fileserver_payload_bytes_copied_total").context("no copy counter in the exit report")?;
        let sent = counter("fileserver_tx_payload_bytes_total").unwrap_or(0);
        ensure!(text.contains("multi-buffer    yes"), "multi-buffer was not available:\n{text}");
        ensure!(copied == 0, "{copied} payload bytes copied by the CPU");
        // Three 1 GiB downloads over IPv6 (curl, wget, checksums) and one over each family
        // at once.
        ensure!(sent > 5 << 30, "only {sent} payload bytes sent");
        ensure!(!ns.server_link().contains("prog/xdp"), "XDP program left attached");
        println!("  {sent} payload bytes sent, 0 copied; XDP detached");
        Ok(())
    });
    drop(server);
    drop(ns);
    drop(data);
}
