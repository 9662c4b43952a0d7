//! Namespace tests of what an operator of the AF_XDP file server sees: the access log
//! (every line parsed with a combined-log-format regular expression, status and bytes
//! right, reopened on SIGHUP after a move), the control port (`/metrics` accepted by
//! `promtool check metrics`, `/connections` showing a slowed download's bytes acknowledged
//! growing, `/health`), and the pid file (the server's pid while it runs, gone after).

use std::os::unix::fs::chown;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use regex::Regex;

use crate::client::Prng;
use crate::fstest::{sha256_download, sha256_file, DataSet};
use crate::netns::{Netns, CLI_ADDR, SRV_ADDR};
use crate::nstest::{Bins, Suite};
use crate::util::Daemon;

const CONTROL: &str = "http://127.0.0.1:9100";
/// The slowed download: bigger than the client's largest receive buffer (tcp_rmem 6 MiB),
/// so at 4 MB/s the server is still sending (and being acknowledged) seconds later.
const BIG: u64 = 32 << 20;
const RATE: &str = "4M";
/// `nobody`, who owns the log directory (the server drops to it and must reopen there).
const NOBODY: u32 = 65534;

/// nginx's `combined` format, field by field.
const COMBINED: &str = r#"^(\S+) - (\S+) \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)"$"#;

/// One parsed access log line.
#[derive(Debug)]
struct Line {
    peer: String,
    request: String,
    status: u16,
    bytes: u64,
    user_agent: String,
}

/// Parses every line of `text`; an error names the first that does not match.
fn parse_log(text: &str) -> Result<Vec<Line>> {
    let re = Regex::new(COMBINED)?;
    text.lines()
        .map(|l| {
            let c = re.captures(l).with_context(|| format!("not in the combined log format: {l:?}"))?;
            Ok(Line {
                peer: c[1].to_owned(),
                request: c[4].to_owned(),
                status: c[5].parse()?,
                bytes: c[6].parse()?,
                user_agent: c[8].to_owned(),
            })
        })
        .collect()
}

/// A control port answer: (status code, body), fetched in the server namespace.
fn control(ns: &Netns, path: &str) -> Result<(String, String)> {
    let out = ns
        .in_server("curl")
        .args(["-s", "--max-time", "5", "-w", "\n%{http_code}", &format!("{CONTROL}{path}")])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().to_owned(), body.to_owned()))
}

/// `bytes_acked` of the established connection from the client, in a `/connections` text.
fn bytes_acked(text: &str) -> Option<u64> {
    text.lines()
        .filter(|l| l.starts_with("ESTAB ") && l.contains(&format!(" {SRV_ADDR}:80 {CLI_ADDR}:")))
        .find_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("bytes_acked:")?.parse().ok()))
}

/// What nginx writes for `s` in a quoted field: `"` and `\` as `\xHH`.
fn nginx_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => "\\x22".to_owned(),
            '\\' => "\\x5C".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn wait_for_lines(path: &Path, n: usize) -> Result<String> {
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n || Instant::now() >= end {
            return Ok(text);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Registers the tests: one server with `--access-log`, `--pid-file` and the control port.
pub fn tests(suite: &mut Suite, bins: &Bins) {
    let setup = || -> Result<(Netns, DataSet, Daemon)> {
        let data = DataSet::create("ops", false).context("writing the data set")?;
        Prng::new(0xb16).write_file(&data.www.join("big32m"), BIG)?;
        let logs = data.dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        chown(&logs, Some(NOBODY), Some(NOBODY)).context("chown the log directory to nobody")?;
        let ns = Netns::up("o", 1500)?;
        let mut cmd = ns.in_server(&bins.fileserver);
        cmd.args(["--iface", &ns.srv_if, "--addr", SRV_ADDR, "--port", "80", "--root"])
            .arg(&data.www)
            .args(["--user", "nobody", "--metrics-port", "9100", "--access-log"])
            .arg(logs.join("access.log"))
            .arg("--pid-file")
            .arg(logs.join("fs.pid"))
            .env("RUST_LOG", "warn");
        let mut d = Daemon::spawn("fileserver", &mut cmd)?;
        d.wait_line("ready", Duration::from_secs(30))?;
        Ok((ns, data, d))
    };
    let mut env = None;
    suite.case("fileserver_ops_starts_with_access_log_and_pid_file", || {
        env = Some(setup()?);
        Ok(())
    });
    let Some((ns, data, mut server)) = env else { return };
    let base = format!("http://{SRV_ADDR}");
    let logs = data.dir.join("logs");
    let log_path = logs.join("access.log");
    let pid_path = logs.join("fs.pid");

    suite.case("fileserver_ops_pid_file_holds_the_server_pid", || {
        let text = std::fs::read_to_string(&pid_path).with_context(|| format!("reading {}", pid_path.display()))?;
        let pid = server.pid().context("the server's pid")?;
        ensure!(text == format!("{pid}\n"), "pid file says {text:?}, the server is {pid}");
        println!("  {} holds {pid}", pid_path.display());
        Ok(())
    });

    let mut expected = 0;
    suite.case("fileserver_ops_access_log_combined_format_status_and_bytes", || {
        // (curl arguments, request line, status, body bytes, user agent)
        let agent = r#"probe "quoted" \ agent"#;
        let cases: Vec<(Vec<String>, String, u16, u64, &str)> = vec![
            (vec![format!("{base}/s0")], "GET /s0 HTTP/1.1".into(), 200, 0, ""),
            (vec![format!("{base}/s4097")], "GET /s4097 HTTP/1.1".into(), 200, 4097, ""),
            (vec![format!("{base}/s1m1")], "GET /s1m1 HTTP/1.1".into(), 200, (1 << 20) + 1, ""),
            (vec!["-r".into(), "100-199".into(), format!("{base}/s4097")], "GET /s4097 HTTP/1.1".into(), 206, 100, ""),
            (vec![format!("{base}/nope")], "GET /nope HTTP/1.1".into(), 404, 14, ""),
            (vec!["-I".into(), format!("{base}/s4096")], "HEAD /s4096 HTTP/1.1".into(), 200, 0, ""),
            (vec!["-A".into(), agent.into(), format!("{base}/s1")], "GET /s1 HTTP/1.1".into(), 200, 1, agent),
        ];
        for (args, ..) in &cases {
            let out = ns.in_client("curl").args(["-s", "-o", "/dev/null", "--max-time", "30"]).args(args).output()?;
            ensure!(out.status.success(), "curl {args:?} failed");
        }
        let text = wait_for_lines(&log_path, cases.len())?;
        let lines = parse_log(&text)?;
        ensure!(lines.len() == cases.len(), "{} lines for {} requests:\n{text}", lines.len(), cases.len());
        let curl = String::from_utf8_lossy(&Command::new("curl").arg("--version").output()?.stdout)
            .split_whitespace()
            .nth(1)
            .map(|v| format!("curl/{v}"))
            .unwrap_or_default();
        for (l, (_, request, status, bytes, agent)) in lines.iter().zip(&cases) {
            ensure!(l.peer == CLI_ADDR, "peer {} in {l:?}", l.peer);
            ensure!(
                &l.request == request && l.status == *status && l.bytes == *bytes,
                "{l:?}, wanted {request:?} {status} {bytes}"
            );
            let want_agent = if agent.is_empty() { curl.clone() } else { nginx_escape(agent) };
            ensure!(l.user_agent == want_agent, "user agent {:?}, wanted {want_agent:?}", l.user_agent);
        }
        expected = cases.len();
        println!("  {} lines, each in the combined format with its status, bytes and agent", lines.len());
        Ok(())
    });

    suite.case("fileserver_ops_metrics_pass_promtool", || {
        let (code, text) = control(&ns, "/metrics")?;
        ensure!(code == "200", "/metrics: {code}");
        let mut check = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("promtool (Debian's prometheus package; `cargo xtask setup` installs it)")?;
        std::io::Write::write_all(&mut check.stdin.take().context("stdin")?, text.as_bytes())?;
        let out = check.wait_with_output()?;
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        ensure!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
        for want in [
            "# TYPE fileserver_requests_total counter\n",
            "# TYPE fileserver_connections_open gauge\n",
            "# TYPE fileserver_pool_frames_free gauge\n",
            "# TYPE fileserver_request_seconds histogram\n",
            "fileserver_request_seconds_bucket{le=\"+Inf\"} ",
            "fileserver_request_seconds_bucket{queue=\"0\",le=\"0.001\"} ",
        ] {
            ensure!(text.contains(want), "{want:?} missing from /metrics");
        }
        let count: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("fileserver_request_seconds_count ")?.parse().ok())
            .context("no request_seconds_count")?;
        ensure!(count as usize >= expected, "request_seconds_count {count} < {expected} requests served");
        println!("  promtool accepts {} lines; {count} requests timed", text.lines().count());
        Ok(())
    });

    suite.case("fileserver_ops_connections_show_bytes_acked_growing", || {
        let want = sha256_file(&data.www.join("big32m"))?;
        let dl = ns
            .in_client("bash")
            .args(["-c", &format!("curl -sf --max-time 60 --limit-rate {RATE} {base}/big32m | sha256sum")])
            .stdout(Stdio::piped())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(1500));
        let (code, first) = control(&ns, "/connections")?;
        ensure!(code == "200", "/connections: {code}\n{first}");
        let a = bytes_acked(&first).with_context(|| format!("no established download in:\n{first}"))?;
        std::thread::sleep(Duration::from_millis(1500));
        let (_, second) = control(&ns, "/connections")?;
        let b = bytes_acked(&second).with_context(|| format!("the download is gone:\n{second}"))?;
        ensure!(b > a, "bytes_acked did not grow: {a} then {b}\n{first}{second}");
        let out = dl.wait_with_output()?;
        let got = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned();
        ensure!(got == want, "the slowed download: sha256 {got} != {want}");
        println!("  bytes_acked {a} then {b}; e.g. {}", second.lines().nth(1).unwrap_or(""));
        expected += 1;
        Ok(())
    });

    suite.case("fileserver_ops_health_ok", || {
        let (code, body) = control(&ns, "/health")?;
        ensure!(code == "200" && body == "ok\n", "/health: {code} {body:?}");
        let (code, _) = control(&ns, "/nowhere")?;
        ensure!(code == "404", "an unknown path: {code}");
        Ok(())
    });

    suite.case("fileserver_ops_sighup_reopens_the_access_log", || {
        let moved = logs.join("access.log.1");
        std::fs::rename(&log_path, &moved)?;
        let pid = server.pid().context("the server's pid")?;
        ensure!(Command::new("kill").args(["-HUP", &pid.to_string()]).status()?.success(), "kill -HUP");
        // The log thread looks at the flag at least every 200 ms.
        let end = Instant::now() + Duration::from_secs(3);
        while !log_path.exists() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        ensure!(log_path.exists(), "no new access log after SIGHUP");
        let got = sha256_download(&ns, &format!("curl -sf --max-time 10 {base}/small/f001.txt"))?;
        ensure!(got == sha256_file(&data.www.join("small/f001.txt"))?, "download after SIGHUP differs");
        let new = parse_log(&wait_for_lines(&log_path, 1)?)?;
        ensure!(new.len() == 1 && new[0].request == "GET /small/f001.txt HTTP/1.1", "the new log: {new:?}");
        let old = parse_log(&std::fs::read_to_string(&moved)?)?;
        ensure!(old.len() == expected, "the moved log has {} lines, wanted {expected}", old.len());
        ensure!(old.iter().all(|l| !l.request.contains("f001")), "a line after SIGHUP went to the moved file");
        println!("  after mv + SIGHUP the next line went to a new file; the moved one kept {expected}");
        Ok(())
    });

    suite.case("fileserver_ops_clean_exit_removes_the_pid_file", || {
        let (ok, text) = server.terminate(Duration::from_secs(20))?;
        ensure!(ok, "fileserver did not exit cleanly:\n{text}");
        ensure!(!pid_path.exists(), "{} left behind", pid_path.display());
        let dropped = text.lines().find_map(|l| l.strip_prefix("fileserver_access_log_dropped_total "));
        ensure!(dropped == Some("0"), "access log lines dropped: {dropped:?}");
        println!("  pid file removed, no access log line dropped");
        Ok(())
    });
    drop(server);
    drop(ns);
    drop(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_combined_regex_takes_nginx_lines_and_nothing_else() {
        let good = "10.77.0.2 - - [02/Dec/2026:01:15:00 +0000] \"GET /a HTTP/1.1\" 200 5 \"-\" \"a \\x22b\\x22\"\n";
        let l = parse_log(good).unwrap();
        assert_eq!((l[0].status, l[0].bytes, l[0].user_agent.as_str()), (200, 5, "a \\x22b\\x22"));
        for bad in [
            "10.77.0.2 - - [02/Dec/2026:01:15:00 +0000] \"GET /a HTTP/1.1\" 200 5 \"-\" \"a \"b\"\"",
            "10.77.0.2 - - [2026-12-02 01:15:00] \"GET /a HTTP/1.1\" 200 5 \"-\" \"-\"",
            "10.77.0.2 - - [02/Dec/2026:01:15:00 +0000] \"GET /a HTTP/1.1\" 200 - \"-\"",
        ] {
            assert!(parse_log(bad).is_err(), "{bad}");
        }
        let conns =
            "State ...\nESTAB 0 9 10.77.0.1:80 10.77.0.2:5000 q0 mss:1448 cwnd:10 rto:204 bytes_acked:77 retrans:0\n";
        assert_eq!(bytes_acked(conns), Some(77));
        assert_eq!(bytes_acked("State\n"), None);
        assert_eq!(nginx_escape(r#"a "b" \ c"#), r"a \x22b\x22 \x5C c");
    }
}
