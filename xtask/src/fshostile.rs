//! Namespace tests of the file server against hostile peers and faults: a FIFO under the
//! root, a file truncated mid-download, 100 zero-window stallers that vanish, frames
//! forged inside jumbo multi-buffer packets, running out of file descriptors, and the
//! seccomp sandbox. Each attack is followed by a 1 GiB download checked by sha256 (or a
//! download on a new connection), and ends by checking that the counters name it.
//!
//! `xtask internal stallers` is the staller client: kernel TCP connections with a tiny
//! receive buffer that ask for a range of a large file and never read.

use std::io::Write;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::fstest::{sha256_download, sha256_file, DataSet};
use crate::netns::{Netns, SRV_ADDR};
use crate::nstest::{Bins, Suite};
use crate::util::{output, Daemon};

/// Source ports of the stallers (below the ephemeral range, so an nftables rule on them
/// touches no other client).
const STALLER_PORTS: u16 = 20000;

/// Registers the tests.
pub fn tests(suite: &mut Suite, bins: &Bins) {
    let mut env: Option<(Netns, DataSet, Daemon)> = None;
    suite.case("fileserver_hostile_server_starts", || {
        env = Some(xdp_env(bins, "hf", 1500, &["--write-timeout", "5"])?);
        Ok(())
    });
    if let Some((ns, data, mut server)) = env {
        suite.case("fileserver_hostile_fifo_and_dotfiles_refused_then_1gib", || fifo(&ns, &data, &mut server));
        suite.case("fileserver_hostile_file_truncated_mid_download_then_1gib", || truncated(&ns, &data, &mut server));
        suite.case("fileserver_hostile_stallers_100_zero_window_vanish_then_1gib", || {
            stallers_vanish(bins, &ns, &data, &mut server)
        });
        drop(server);
    }
    suite.case("fileserver_hostile_forged_frames_in_jumbo_packets_then_1gib", || jumbo(bins));
    suite.case("fileserver_hostile_seccomp_sandbox_and_a_forbidden_call", || sandbox(bins));
    suite.case("fileserver_hostile_kernel_backend_out_of_descriptors_sheds_503", || descriptors(bins));
}

/// A data set with a FIFO and a dotfile, namespaces at `mtu`, and the AF_XDP server.
fn xdp_env(bins: &Bins, tag: &str, mtu: u32, extra: &[&str]) -> Result<(Netns, DataSet, Daemon)> {
    let data = DataSet::create(&format!("hostile-{tag}"), true).context("writing the data set")?;
    let fifo = data.www.join("fifo");
    let (ok, text) = output(Command::new("mkfifo").arg(&fifo))?;
    ensure!(ok, "mkfifo {}: {text}", fifo.display());
    std::fs::write(data.www.join(".env"), b"SECRET=1\n")?;
    let ns = Netns::up(tag, mtu)?;
    let mut cmd = ns.in_server(&bins.fileserver);
    cmd.args(["--iface", &ns.srv_if, "--addr", SRV_ADDR, "--port", "80", "--root"])
        .arg(&data.www)
        .args(["--user", "nobody", "--metrics-port", "9100"])
        .args(extra)
        .env("RUST_LOG", "warn");
    let mut d = Daemon::spawn("fileserver", &mut cmd)?;
    d.wait_line("ready", Duration::from_secs(30))?;
    Ok((ns, data, d))
}

/// The server's counters, from the control port it printed in its startup block.
fn counters(ns: &Netns, server: &Daemon) -> Result<String> {
    let url = server
        .lines_so_far()
        .iter()
        .find_map(|l| {
            let url = l.trim().strip_prefix("control port")?.split_whitespace().next()?;
            // (`http://ADDR/metrics, /connections, /health ...`)
            Some(url.trim_end_matches(',').to_owned())
        })
        .context("the server printed no control port")?;
    let (ok, text) = output(ns.in_server("curl").args(["-sf", "--max-time", "10", &url]))?;
    ensure!(ok, "reading the counters from {url}: {text}");
    Ok(text)
}

/// A counter's value (`name` up to the value, labels included).
fn counter(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0)
}

fn big_download(ns: &Netns, data: &DataSet) -> Result<()> {
    let want = sha256_file(&data.www.join("big1g"))?;
    let got = sha256_download(ns, &format!("curl -sf --max-time 300 http://{SRV_ADDR}/big1g"))?;
    ensure!(got == want, "1 GiB: sha256 {got} != {want}");
    println!("  then 1 GiB by sha256: ok");
    Ok(())
}

/// `curl -w` status of one request (and its exit code).
fn status(ns: &Netns, args: &[&str]) -> Result<(String, Option<i32>)> {
    let out = ns.in_client("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]).args(args).output()?;
    Ok((String::from_utf8_lossy(&out.stdout).trim().to_owned(), out.status.code()))
}

fn fifo(ns: &Netns, data: &DataSet, server: &mut Daemon) -> Result<()> {
    let started = Instant::now();
    let (code, _) = status(ns, &["--max-time", "5", &format!("http://{SRV_ADDR}/fifo")])?;
    ensure!(code == "403", "GET /fifo: {code:?} after {:.1?} (a blocking open hangs the loop)", started.elapsed());
    let (code, _) = status(ns, &["--max-time", "5", &format!("http://{SRV_ADDR}/.env")])?;
    ensure!(code == "404", "GET /.env: {code:?}");
    println!("  /fifo 403 in {:.1?}, /.env 404", started.elapsed());
    big_download(ns, data)?;
    let c = counters(ns, server)?;
    ensure!(counter(&c, "fileserver_refused_special_files_total") == 1, "special files refused:\n{c}");
    ensure!(counter(&c, "fileserver_refused_dotfiles_total") == 1, "dotfiles refused:\n{c}");
    ensure!(counter(&c, "fileserver_responses_total{status=\"403\"}") == 1, "403s:\n{c}");
    Ok(())
}

fn truncated(ns: &Netns, data: &DataSet, server: &mut Daemon) -> Result<()> {
    // A file of its own (the 1 GiB one is needed whole), 256 MiB, read at 40 MB/s.
    let path = data.www.join("trunc.bin");
    let size: u64 = 256 << 20;
    crate::client::Prng::new(7).write_file(&path, size)?;
    let url = format!("http://{SRV_ADDR}/trunc.bin");
    let curl = ns
        .in_client("curl")
        .args(["-s", "-o", "/dev/null", "--limit-rate", "40M", "--max-time", "60"])
        .args(["-w", "%{http_code} %{size_download}", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    std::fs::OpenOptions::new().write(true).open(&path)?.set_len(1 << 20)?;
    let out = curl.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let got: Vec<u64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    ensure!(got.len() == 2 && got[0] == 200, "the transfer: {text:?}");
    ensure!(got[1] < size, "the body came whole ({} bytes) though the file shrank", got[1]);
    // 18: "partial file" (the connection closed short of Content-Length), 56: reset.
    // Not 0 (a short body taken as complete), not 28 (left open: the client waited).
    let code = out.status.code();
    ensure!(
        matches!(code, Some(18 | 56)),
        "curl exit {code:?} after {:.1?} with {} of {size} bytes",
        t.elapsed(),
        got[1]
    );
    println!("  curl: exit {code:?}, {} of {size} bytes, the connection closed under it", got[1]);
    // The file as it is now, on a new connection.
    let got = sha256_download(ns, &format!("curl -sf --max-time 30 {url}"))?;
    ensure!(got == sha256_file(&path)?, "the truncated file on a new connection differs");
    big_download(ns, data)?;
    let c = counters(ns, server)?;
    ensure!(counter(&c, "fileserver_bodies_truncated_total") >= 1, "no truncated body counted:\n{c}");
    std::fs::remove_file(&path)?;
    Ok(())
}

fn stallers_vanish(bins: &Bins, ns: &Netns, data: &DataSet, server: &mut Daemon) -> Result<()> {
    const N: u16 = 100;
    // The file fetched during the stall goes into the cache first: the pool's free
    // blocks at the start and at the end then differ only by what the stallers held.
    let s1m1 = sha256_file(&data.www.join("s1m1"))?;
    ensure!(sha256_download(ns, &format!("curl -sf --max-time 20 http://{SRV_ADDR}/s1m1"))? == s1m1, "s1m1 differs");
    let start = counters(ns, server)?;
    let frames0 = counter(&start, "fileserver_pool_frames_free");
    let blocks0 = counter(&start, "fileserver_pool_blocks_free") + counter(&start, "fileserver_cache_cached_blocks");
    let write0 = counter(&start, "fileserver_timeouts_total{phase=\"write\"}");
    let mut stallers = ns
        .in_client(&bins.xtask)
        .args(["internal", "stallers", "--server", &format!("{SRV_ADDR}:80"), "--path", "/big1g"])
        .args(["--count", &N.to_string(), "--first-port", &STALLER_PORTS.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let ready = read_result(&mut stallers, Duration::from_secs(30))?;
    ensure!(ready.contains(&format!("stalled={N}")), "stallers: {ready}");
    std::thread::sleep(Duration::from_secs(1));
    let during = counters(ns, server)?;
    ensure!(counter(&during, "fileserver_connections_open") >= N as u64, "not all stallers are open:\n{during}");
    let held = counter(&during, "fileserver_blocks_held_by_connections");
    // Served meanwhile: a 1 MiB file by sha256, while every staller holds its share.
    let t = Instant::now();
    let got = sha256_download(ns, &format!("curl -sf --max-time 20 http://{SRV_ADDR}/s1m1"))?;
    ensure!(got == s1m1, "s1m1 during the stall differs");
    println!("  {N} stallers hold {held} blocks; another client served in {:.1?}", t.elapsed());

    // They vanish: their packets are dropped from now on, then they close.
    let ports = format!("{}-{}", STALLER_PORTS, STALLER_PORTS + N - 1);
    let rules = format!(
        "table inet zcstall {{\n\
         chain out {{ type filter hook output priority 0; tcp sport {ports} drop; }}\n\
         chain in {{ type filter hook input priority 0; tcp dport {ports} drop; }}\n\
         }}\n"
    );
    nft(ns, &rules)?;
    let _ = stallers.kill();
    let _ = stallers.wait();
    // The write timeout (5 s) ends them; the pool gets everything back.
    let end = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let c = counters(ns, server)?;
        let back = counter(&c, "fileserver_connections_open") == 0
            && counter(&c, "fileserver_pool_frames_free") == frames0
            && counter(&c, "fileserver_pool_blocks_free") + counter(&c, "fileserver_cache_cached_blocks") == blocks0;
        if back {
            break c;
        }
        if Instant::now() > end {
            bail!("the pool did not come back (frames {frames0}, blocks {blocks0} free or cached at the start):\n{c}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let cut = counter(&after, "fileserver_timeouts_total{phase=\"write\"}") - write0;
    ensure!(cut >= N as u64, "only {cut} write timeouts for {N} stallers:\n{after}");
    println!("  vanished; {cut} cut by the write timer; {frames0} frames and {blocks0} blocks free (or cached) again");
    nft(ns, "delete table inet zcstall")?;
    big_download(ns, data)
}

fn nft(ns: &Netns, script: &str) -> Result<()> {
    let mut child = ns.in_client("nft").args(["-f", "-"]).stdin(Stdio::piped()).spawn()?;
    child.stdin.take().context("nft stdin")?.write_all(script.as_bytes())?;
    ensure!(child.wait()?.success(), "nft -f - <<< {script}");
    Ok(())
}

/// The first `RESULT` line `child` prints, within `wait`.
fn read_result(child: &mut Child, wait: Duration) -> Result<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("RESULT") {
                let _ = tx.send(line);
                return;
            }
        }
    });
    rx.recv_timeout(wait).context("no RESULT line")
}

fn jumbo(bins: &Bins) -> Result<()> {
    let (ns, data, mut server) = xdp_env(bins, "hj", 9000, &[])?;
    let (ok, mac) = output(ns.in_server("cat").arg(format!("/sys/class/net/{}/address", ns.srv_if)))?;
    ensure!(ok, "server MAC: {mac}");
    let before = counters(&ns, &server)?;
    let (ok, text) = output(ns.in_client(&bins.xtask).args([
        "internal",
        "tcp-jumbo",
        "--iface",
        &ns.cli_if,
        "--server",
        &format!("{SRV_ADDR}:80"),
        "--server-mac",
        mac.trim(),
    ]))?;
    ensure!(ok, "tcp-jumbo:\n{text}");
    print!("  {}", text.lines().find(|l| l.starts_with("RESULT")).unwrap_or(""));
    println!();
    let c = counters(&ns, &server)?;
    let delta = |name: &str| counter(&c, name) - counter(&before, name);
    ensure!(delta("fileserver_rx_multi_buffer_too_long_dropped_total") >= 1, "the jumbo packet was not dropped:\n{c}");
    ensure!(delta("fileserver_rx_multi_buffer_joined_total") >= 1, "no packet was joined:\n{c}");
    ensure!(delta("fileserver_tcp_syn_received_total") == 1, "SYNs taken besides our connection's:\n{c}");
    big_download(&ns, &data)?;
    let (ok, text) = server.terminate(Duration::from_secs(20))?;
    ensure!(ok && text.contains("multi-buffer    yes"), "exit:\n{text}");
    Ok(())
}

/// The pid of the file server serving `root` (found by its command line: other file
/// servers may run on this machine).
fn server_pid(root: &Path) -> Result<u32> {
    let want = root.to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc")? {
        let Some(pid) = e?.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        let is_server = args.first().is_some_and(|a| a.ends_with(b"/fileserver"));
        if is_server && args.contains(&want.as_bytes()) {
            return Ok(pid);
        }
    }
    bail!("no fileserver process serving {want}")
}

fn sandbox(bins: &Bins) -> Result<()> {
    let (ns, data, mut server) = xdp_env(bins, "hs", 1500, &[])?;
    ensure!(
        server.lines_so_far().iter().any(|l| l.contains("seccomp allowlist") && l.contains("bounding set empty")),
        "no sandbox line:\n{}",
        server.lines_so_far().join("\n")
    );
    let pid = server_pid(&data.www)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or("");
    ensure!(field("Seccomp:") == "2", "Seccomp: {:?}\n{status}", field("Seccomp:"));
    ensure!(field("CapBnd:") == "0000000000000000", "CapBnd: {:?}", field("CapBnd:"));
    ensure!(field("CapEff:") == "0000000000000000", "CapEff: {:?}", field("CapEff:"));
    ensure!(field("NoNewPrivs:") == "1", "NoNewPrivs: {:?}", field("NoNewPrivs:"));
    // Not dumpable: its /proc entries belong to root, not to the uid it runs as.
    let (_, owner) = output(Command::new("stat").args(["-c", "%u"]).arg(format!("/proc/{pid}/fd")))?;
    ensure!(owner.trim() == "0", "/proc/{pid}/fd belongs to uid {} (the process is dumpable)", owner.trim());
    println!("  Seccomp 2, CapBnd and CapEff empty, NoNewPrivs 1, not dumpable");
    big_download(&ns, &data)?;
    let (ok, text) = server.terminate(Duration::from_secs(20))?;
    ensure!(ok, "the server did not exit cleanly under the filter:\n{text}");

    // The test hook: the loop calls fork once, and the filter ends the process naming it.
    let mut cmd = ns.in_server(&bins.fileserver);
    cmd.args(["--iface", &ns.srv_if, "--addr", SRV_ADDR, "--port", "80", "--root"])
        .arg(&data.www)
        .args(["--user", "nobody"])
        .env("RUST_LOG", "warn")
        .env("FILESERVER_TEST_FORBIDDEN_SYSCALL", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let end = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the server survived a forbidden fork for 30 s: the filter is not on");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(String::from_utf8_lossy(&out.stdout).contains("ready"), "it never became ready:\n{err}");
    ensure!(exit.code() == Some(159), "exit {exit:?}, expected 159 (128 + SIGSYS):\n{err}");
    let line = err.lines().find(|l| l.contains("seccomp: system call")).unwrap_or("");
    ensure!(line.contains("system call 57 (fork) is not allowed"), "no line naming the call:\n{err}");
    println!("  forbidden fork: {line}");
    Ok(())
}

fn descriptors(bins: &Bins) -> Result<()> {
    let data = DataSet::create("hostile-fd", false).context("writing the data set")?;
    let ns = Netns::up("hd", 1500)?;
    // A hard limit of 128: raised to it at start, and then run out of by idle clients.
    let mut cmd = ns.in_server("prlimit");
    cmd.args(["--nofile=64:128", "--"])
        .arg(&bins.fileserver)
        .args(["--backend", "kernel", "--method", "sendfile", "--addr", SRV_ADDR, "--port", "80", "--root"])
        .arg(&data.www)
        .args(["--user", "nobody", "--metrics-port", "9100", "--idle-timeout", "60", "--head-timeout", "60"])
        .env("RUST_LOG", "warn");
    let mut server = Daemon::spawn("fileserver (kernel)", &mut cmd)?;
    server.wait_line("ready", Duration::from_secs(30))?;
    let pid = server_pid(&data.www)?;
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let files = limits.lines().find(|l| l.starts_with("Max open files")).unwrap_or("");
    ensure!(files.split_whitespace().filter(|w| *w == "128").count() == 2, "not raised to the hard limit: {files}");

    // 160 idle connections: more than the descriptors left.
    let mut idle = ns
        .in_client(&bins.xtask)
        .args(["internal", "stallers", "--server", &format!("{SRV_ADDR}:80"), "--path", ""])
        .args(["--count", "160", "--first-port", &STALLER_PORTS.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let ready = read_result(&mut idle, Duration::from_secs(30))?;
    ensure!(ready.contains("stalled=160"), "idle clients: {ready}");
    std::thread::sleep(Duration::from_millis(500));
    let url = format!("http://{SRV_ADDR}/s4097");
    let (code, exit) = status(&ns, &["--max-time", "5", &url])?;
    ensure!(code == "503", "a request while out of descriptors: status {code:?}, curl exit {exit:?} (28: it hung)");
    let _ = idle.kill();
    let _ = idle.wait();
    // Descriptors back: served again.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match sha256_download(&ns, &format!("curl -sf --max-time 5 {url}")) {
            Ok(got) if got == sha256_file(&data.www.join("s4097"))? => break,
            _ if Instant::now() > end => bail!("not served again after the idle clients left"),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    let text = counters(&ns, &server)?;
    let exhausted = counter(&text, "fileserver_accept_fd_exhausted_total");
    let shed = counter(&text, "fileserver_accept_shed_503_total");
    ensure!(exhausted > 0 && shed > 0, "exhaustion not counted:\n{text}");
    println!("  {files}; out of descriptors {exhausted} times, {shed} connections told 503, served again after");
    Ok(())
}

/// `xtask internal stallers`: `count` kernel TCP connections from ports `first_port..`,
/// each with a 4 KiB receive buffer, each asking for an 8 MiB range of `path` (a
/// different one each) and never reading; with an empty `path` they send nothing (idle
/// clients). Prints `RESULT stalled=N` once all are connected, then holds them until
/// killed (at most `seconds`).
pub fn stallers(server: SocketAddrV4, path: &str, count: u16, first_port: u16, seconds: u64) -> Result<()> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let local = std::net::Ipv4Addr::new(10, 77, 0, 2);
    let mut held = Vec::with_capacity(count as usize);
    for i in 0..count {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.set_recv_buffer_size(4096)?;
        s.bind(&SockAddr::from(SocketAddr::from((local, first_port + i))))?;
        s.connect_timeout(&SockAddr::from(SocketAddr::V4(server)), Duration::from_secs(5))
            .with_context(|| format!("connection {i}"))?;
        if !path.is_empty() {
            let start = u64::from(i) * (8 << 20);
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nRange: bytes={start}-{}\r\n\r\n",
                server.ip(),
                start + (8 << 20) - 1
            );
            (&s).write_all(req.as_bytes())?;
        }
        held.push(s);
    }
    println!("RESULT stalled={}", held.len());
    std::io::stdout().flush()?;
    std::thread::sleep(Duration::from_secs(seconds));
    Ok(())
}
