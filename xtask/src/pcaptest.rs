//! Namespace tests of the file server's packet capture: `--pcap FILE` of a dual-stack
//! server, read back by `tcpdump -r` and `tshark -r` after a download over IPv6 (the
//! server's TCP stream carries exactly the response head and the file, no packet is
//! malformed, every packet has its direction), and `GET /pcap?seconds=N` on the control
//! port capturing a download over IPv4 while it runs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};

use crate::client::Prng;
use crate::fstest::{sha256_download, sha256_file};
use crate::netns::{Netns, SRV_ADDR, SRV_ADDR6};
use crate::nstest::{Bins, Suite};
use crate::util::{output, Daemon};

/// The file downloaded under capture.
const SIZE: u64 = 32 << 20;
const CONTROL_PORT: &str = "9100";
/// The live capture's window (s).
const LIVE_SECONDS: u64 = 15;

/// Runs `tshark -r file ARGS` (as root: Debian's tshark refuses nothing for reading).
fn tshark(file: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("tshark").arg("-r").arg(file).args(args).stderr(Stdio::piped()).output()?;
    ensure!(out.status.success(), "tshark -r {} {args:?}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Payload bytes the server (`src`, port 80) sent in the capture, retransmissions left
/// out, and the number of retransmitted segments tshark found.
fn server_bytes(file: &Path, ip: &str, src: &str) -> Result<(u64, usize)> {
    let filter = format!("{ip}.src == {src} && tcp.srcport == 80 && tcp.len > 0");
    let fields = tshark(file, &["-Y", &filter, "-T", "fields", "-e", "tcp.len", "-e", "tcp.analysis.retransmission"])?;
    let (mut bytes, mut rtx) = (0u64, 0usize);
    for line in fields.lines() {
        let mut f = line.split('\t');
        let len: u64 = f.next().unwrap_or("").trim().parse().with_context(|| format!("tcp.len in {line:?}"))?;
        if f.next().is_some_and(|r| !r.trim().is_empty()) {
            rtx += 1;
        } else {
            bytes += len;
        }
    }
    Ok((bytes, rtx))
}

/// No packet tshark calls malformed.
fn no_malformed(file: &Path) -> Result<()> {
    let bad = tshark(file, &["-Y", "_ws.malformed"])?;
    if bad.trim().is_empty() {
        return Ok(());
    }
    // Say what tshark objected to: the first such packet dissected in full (its TCP
    // analysis and the dissector's exception), and keep the capture for a closer look.
    let detail = tshark(file, &["-Y", "_ws.malformed", "-c", "1", "-V", "-o", "tcp.analyze_sequence_numbers:TRUE"])
        .unwrap_or_else(|e| e.to_string());
    let detail: Vec<&str> = detail.lines().filter(|l| !l.trim().is_empty()).take(120).collect();
    let kept = crate::util::target_dir().join(format!(
        "malformed-{}-{}",
        std::process::id(),
        file.file_name().and_then(|n| n.to_str()).unwrap_or("capture.pcapng")
    ));
    let kept = match std::fs::copy(file, &kept) {
        Ok(_) => format!("kept as {}", kept.display()),
        Err(e) => format!("not kept ({e})"),
    };
    bail!(
        "tshark found malformed packets in {} ({kept}):\n{bad}\nthe first, in full:\n{}",
        file.display(),
        detail.join("\n")
    )
}

/// The response head of `url` as curl got it (bytes), and the body's sha256.
fn download_with_head(ns: &Netns, dir: &Path, flag: &str, url: &str) -> Result<(u64, String)> {
    let head = dir.join(format!("head{flag}"));
    let sha = sha256_download(ns, &format!("curl {flag} -g -sf --max-time 120 -D {} {url}", head.display()))?;
    Ok((std::fs::metadata(&head)?.len(), sha))
}

/// Registers the capture tests: one dual-stack server writing `--pcap`, one data set.
pub fn tests(suite: &mut Suite, bins: &Bins) {
    let dir = std::path::PathBuf::from(format!("/var/tmp/zc-pcap-{}", std::process::id()));
    let setup = || -> Result<(Netns, Daemon)> {
        let www = dir.join("www");
        std::fs::create_dir_all(&www)?;
        Prng::new(0x9cab).write_file(&www.join("f32m"), SIZE)?;
        let ns = Netns::up("p", 1500)?;
        let mut cmd = ns.in_server(&bins.fileserver);
        cmd.args(["--iface", &ns.srv_if, "--addr", SRV_ADDR, "--addr", SRV_ADDR6, "--port", "80", "--root"])
            .arg(&www)
            .arg("--pcap")
            .arg(dir.join("cap.pcapng"))
            // A small pool (320 MiB): a 32 MiB file needs no more, and hugepages are shared.
            .args(["--blocks", "1024", "--cache-blocks", "512"])
            .args(["--metrics-port", CONTROL_PORT, "--user", "nobody"])
            .env("RUST_LOG", "warn");
        let mut d = Daemon::spawn("fileserver", &mut cmd)?;
        d.wait_line("ready", Duration::from_secs(30))?;
        let banner = d.lines_so_far().join("\n");
        ensure!(banner.contains("packet capture  ") && banner.contains("snaplen 256"), "no capture line:\n{banner}");
        Ok((ns, d))
    };
    let mut env = None;
    suite.case("fileserver_pcap_starts_with_a_capture_file", || {
        env = Some(setup()?);
        Ok(())
    });
    let Some((ns, mut server)) = env else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let want = sha256_file(&dir.join("www/f32m")).unwrap_or_default();

    suite.case("fileserver_pcap_live_capture_on_the_control_port", || {
        let live = dir.join("live.pcapng");
        // A window well beyond the download's time even on a loaded machine (the answer
        // comes only when the window closes).
        let url = format!("http://127.0.0.1:{CONTROL_PORT}/pcap?seconds={LIVE_SECONDS}");
        let capture = ns
            .in_server("curl")
            .args(["-sf", "--max-time", &(LIVE_SECONDS + 10).to_string(), "-o"])
            .arg(&live)
            .arg(&url)
            .stderr(Stdio::piped())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(500));
        let t0 = std::time::Instant::now();
        let (head, sha) = download_with_head(&ns, &dir, "-4", &format!("http://{SRV_ADDR}/f32m"))?;
        let took = t0.elapsed();
        ensure!(sha == want, "the download during the capture differs");
        let out = capture.wait_with_output()?;
        ensure!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
        no_malformed(&live)?;
        let (bytes, rtx) = server_bytes(&live, "ip", SRV_ADDR)?;
        ensure!(
            bytes == head + SIZE,
            "the live capture holds {bytes} bytes from the server, not {head} + {SIZE} (the download took {took:?} \
             of the {LIVE_SECONDS} s window, from 0.5 s in)"
        );
        println!(
            "  /pcap?seconds={LIVE_SECONDS} held the whole IPv4 download: {bytes} bytes ({rtx} retransmitted segments)"
        );
        Ok(())
    });

    suite.case("fileserver_pcap_download_read_by_tcpdump_and_tshark", || {
        let (head, sha) = download_with_head(&ns, &dir, "-6", &format!("http://[{SRV_ADDR6}]/f32m"))?;
        ensure!(sha == want, "the IPv6 download differs");
        let (ok, text) = server.terminate(Duration::from_secs(20))?;
        ensure!(ok, "fileserver did not exit cleanly:\n{text}");
        let counter = |name: &str| -> u64 {
            text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
        };
        let (packets, dropped) = (counter("fileserver_pcap_packets_total"), counter("fileserver_pcap_dropped_total"));
        ensure!(dropped == 0, "{dropped} packets dropped by the capture ({packets} written)");
        ensure!(text.contains("and the capture writer joined"), "the writer thread was not joined:\n{text}");
        let file = dir.join("cap.pcapng");

        let (ok, dump) = output(Command::new("tcpdump").arg("-nn").arg("-r").arg(&file))?;
        ensure!(ok, "tcpdump -r failed:\n{dump}");
        let lines = dump.lines().filter(|l| l.contains(&format!("{SRV_ADDR6}.80 >"))).count();
        ensure!(lines > (SIZE / 1448 / 2) as usize, "tcpdump shows only {lines} packets from [{SRV_ADDR6}]:80");

        no_malformed(&file)?;
        let (bytes, rtx) = server_bytes(&file, "ipv6", SRV_ADDR6)?;
        ensure!(bytes == head + SIZE, "tshark counts {bytes} bytes from [{SRV_ADDR6}]:80, not {head} + {SIZE}");
        let conv = tshark(&file, &["-q", "-z", "conv,tcp"])?;
        ensure!(conv.contains(SRV_ADDR6), "conv,tcp does not show the IPv6 stream:\n{conv}");

        // Every packet carries its direction: from the server outbound, to it inbound.
        let dirs =
            tshark(&file, &["-Y", "tcp", "-T", "fields", "-e", "tcp.srcport", "-e", "frame.packet_flags_direction"])?;
        let mut seen = [0usize; 2];
        for line in dirs.lines().filter(|l| !l.trim().is_empty()) {
            let (port, dir) = line.split_once('\t').unwrap_or((line, ""));
            let outbound = port.trim() == "80";
            let d = dir.trim().trim_start_matches("0x").trim_start_matches('0');
            let want = if outbound { "2" } else { "1" };
            ensure!(d == want, "packet from port {port:?} has direction {dir:?}, expected {want}");
            seen[usize::from(outbound)] += 1;
        }
        ensure!(seen[0] > 0 && seen[1] > 0, "directions seen: {seen:?}");
        println!(
            "  {packets} packets captured, 0 dropped; tcpdump read {lines} from the server; tshark: {bytes} bytes \
             = head {head} + {SIZE}, {rtx} retransmitted, none malformed; {} in, {} out",
            seen[0], seen[1]
        );
        Ok(())
    });
    drop(server);
    drop(ns);
    let _ = std::fs::remove_dir_all(&dir);
}
