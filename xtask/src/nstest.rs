//! Namespace tests: the real binaries, two namespaces, a veth pair, XDP in driver mode,
//! and the kernel's own sockets as the other end. Each test builds its own namespaces and
//! removes them, pass or fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Result};

use crate::netns::{Netns, CLI_ADDR, SRV_ADDR, SRV_ADDR6};
use crate::util::{output, Daemon};

/// Runs tests, prints one line per test and a closing count.
#[derive(Default)]
pub struct Suite {
    passed: u32,
    failed: Vec<String>,
    filter: Option<String>,
}

impl Suite {
    pub fn new(filter: Option<String>) -> Self {
        Suite { filter, ..Self::default() }
    }

    pub fn case(&mut self, name: &str, f: impl FnOnce() -> Result<()>) {
        if self.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            return;
        }
        println!("test {name} ...");
        let start = std::time::Instant::now();
        match f() {
            Ok(()) => {
                println!("test {name} ... ok ({:.1?})", start.elapsed());
                self.passed += 1;
            }
            Err(e) => {
                println!("test {name} ... FAILED ({:.1?}): {e:#}", start.elapsed());
                self.failed.push(name.into());
            }
        }
    }

    /// Prints the summary; `Err` if anything failed.
    pub fn finish(self, what: &str) -> Result<()> {
        println!();
        if !self.failed.is_empty() {
            println!("{what} failures: {}", self.failed.join(", "));
        }
        println!("{what}: {} passed, {} failed", self.passed, self.failed.len());
        if self.failed.is_empty() {
            Ok(())
        } else {
            bail!("{} {what} failed", self.failed.len())
        }
    }
}

/// Paths of the release binaries the tests drive.
pub struct Bins {
    pub echo: PathBuf,
    pub fileserver: PathBuf,
    pub txceil: PathBuf,
    pub msg: crate::msg::MsgBins,
    pub xtask: PathBuf,
}

pub fn run(suite: &mut Suite, bins: &Bins) {
    suite.case("udp_echo_10k_datagrams_and_kernel_path", || echo_end_to_end(bins));
    suite.case("udp_echo_jumbo_multi_buffer", || jumbo(bins));
    suite.case("error_missing_interface", || bad_input(bins, BadInput::NoInterface));
    suite.case("error_hugepages_short", || bad_input(bins, BadInput::Hugepages));
    suite.case("error_queue_already_bound", || bad_input(bins, BadInput::QueueBusy));
    suite.case("error_queue_out_of_range", || bad_input(bins, BadInput::NoQueue));
    suite.case("error_not_root", || bad_input(bins, BadInput::NotRoot));
    suite.case("error_mtu_too_large", || bad_input(bins, BadInput::Mtu));
}

fn echo(ns: &Netns, bins: &Bins, extra: &[&str]) -> Result<Daemon> {
    let mut cmd = ns.in_server(&bins.echo);
    cmd.args(["--iface", &ns.srv_if, "--port", "7777"]).args(extra);
    let mut d = Daemon::spawn("udp-echo", &mut cmd)?;
    d.wait_line("ready", Duration::from_secs(20))?;
    Ok(d)
}

fn client(ns: &Netns, bins: &Bins, args: &[&str]) -> Result<String> {
    let mut cmd = ns.in_client(&bins.xtask);
    cmd.arg("internal").args(args);
    let (ok, text) = output(&mut cmd)?;
    if !ok {
        bail!("client `{}` failed:\n{text}", args.join(" "));
    }
    Ok(text)
}

/// "xdp" (native) on the server end, not "xdpgeneric".
fn native_xdp_attached(ns: &Netns) -> bool {
    let link = ns.server_link();
    link.split_whitespace().any(|w| w == "xdp") && link.contains("prog/xdp")
}

fn any_xdp_attached(ns: &Netns) -> bool {
    ns.server_link().contains("prog/xdp")
}

fn echo_end_to_end(bins: &Bins) -> Result<()> {
    let ns = Netns::up("e", 1500)?;
    let mut d = echo(&ns, bins, &["--addr", "0.0.0.0"])?;
    ensure!(native_xdp_attached(&ns), "ip -d link shows no native xdp while the echo runs:\n{}", ns.server_link());

    let v4 = format!("{SRV_ADDR}:7777");
    let out =
        client(&ns, bins, &["udp-check", "--server", &v4, "--count", "10000", "--max-size", "1472", "--seed", "1"])?;
    print!("  {out}");
    let v6 = format!("[{SRV_ADDR6}]:7777");
    let out =
        client(&ns, bins, &["udp-check", "--server", &v6, "--count", "1000", "--max-size", "1452", "--seed", "2"])?;
    print!("  {out}");

    // The kernel still owns everything that is not ours: ARP (after a flush), ICMP, and a
    // TCP port that is not in the map answers a SYN with RST.
    let _ = Command::new("ip").args(["-n", &ns.client, "neigh", "flush", "dev", &ns.cli_if]).status();
    let (ok, text) = output(ns.in_client("ping").args(["-c", "3", "-i", "0.2", "-W", "2", SRV_ADDR]))?;
    ensure!(ok, "ping {SRV_ADDR} failed while the echo runs:\n{text}");
    let (_, neigh) = output(Command::new("ip").args(["-n", &ns.client, "neigh", "show", SRV_ADDR]))?;
    ensure!(neigh.contains("lladdr"), "ARP did not resolve {SRV_ADDR}: {neigh:?}");
    let (ok, text) = output(ns.in_client("ping").args(["-6", "-c", "2", "-i", "0.2", "-W", "2", SRV_ADDR6]))?;
    ensure!(ok, "ping -6 {SRV_ADDR6} failed while the echo runs:\n{text}");
    print!("  {}", client(&ns, bins, &["tcp-refused", "--server", &format!("{SRV_ADDR}:7778")])?);

    let (ok, text) = d.terminate(Duration::from_secs(10))?;
    ensure!(ok, "udp-echo did not exit cleanly on SIGTERM:\n{text}");
    ensure!(text.contains("echoed          11000 datagrams"), "echo did not count 11000 datagrams:\n{text}");
    ensure!(!any_xdp_attached(&ns), "XDP program still attached after SIGTERM:\n{}", ns.server_link());
    let _ = CLI_ADDR;
    Ok(())
}

fn jumbo(bins: &Bins) -> Result<()> {
    let ns = Netns::up("j", 9000)?;
    let mut d = echo(&ns, bins, &["--addr", SRV_ADDR])?;
    let v4 = format!("{SRV_ADDR}:7777");
    let out =
        client(&ns, bins, &["udp-check", "--server", &v4, "--count", "300", "--max-size", "8972", "--seed", "3"])?;
    print!("  {out}");
    let (ok, text) = d.terminate(Duration::from_secs(10))?;
    ensure!(ok, "udp-echo did not exit cleanly:\n{text}");
    ensure!(text.contains("multi-buffer    yes"), "expected multi-buffer on:\n{text}");
    Ok(())
}

enum BadInput {
    NoInterface,
    Hugepages,
    QueueBusy,
    NoQueue,
    NotRoot,
    Mtu,
}

/// Runs the echo with bad input and expects a clear error: non-zero exit, the expected
/// words, no panic, and no XDP program left behind.
fn bad_input(bins: &Bins, which: BadInput) -> Result<()> {
    let ns = Netns::up("b", 1500)?;
    let echo_bin = bins.echo.to_string_lossy().into_owned();
    let iface = ns.srv_if.clone();
    let mut _holder = None;
    let (args, expect): (Vec<String>, &str) = match which {
        BadInput::NoInterface => (vec!["--iface".into(), "nosuch0".into()], "no network interface named \"nosuch0\""),
        BadInput::Hugepages => (
            vec![
                "--iface".into(),
                iface,
                "--hugepages".into(),
                "require".into(),
                "--frames".into(),
                "4000000".into(),
                "--duration".into(),
                "1".into(),
            ],
            "run `cargo xtask setup`",
        ),
        BadInput::QueueBusy => {
            _holder = Some(echo(&ns, bins, &[])?);
            (vec!["--iface".into(), iface, "--duration".into(), "1".into()], "already has an AF_XDP socket bound")
        }
        BadInput::NoQueue => (vec!["--iface".into(), iface, "--queue".into(), "5".into()], "has no queue 5"),
        BadInput::NotRoot => (vec!["--iface".into(), iface], "which this process lacks"),
        BadInput::Mtu => {
            ns.set_mtu(9000)?;
            (
                vec!["--iface".into(), iface, "--no-multi-buffer".into(), "--duration".into(), "1".into()],
                "does not fit a 4096-byte frame",
            )
        }
    };
    let mut cmd = if matches!(which, BadInput::NotRoot) {
        let mut c = ns.in_server("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
            .arg(&echo_bin);
        c
    } else {
        ns.in_server(&echo_bin)
    };
    cmd.args(&args);
    let (ok, text) = output(cmd.env("RUST_LOG", "warn"))?;
    ensure!(!ok, "expected failure, but it succeeded:\n{text}");
    ensure!(!text.contains("panicked"), "it panicked:\n{text}");
    ensure!(text.contains(expect), "error does not say {expect:?}:\n{text}");
    println!("  {}", text.lines().find(|l| l.contains("error")).unwrap_or("").trim());
    if _holder.is_none() {
        ensure!(!any_xdp_attached(&ns), "an XDP program was left attached:\n{}", ns.server_link());
    }
    Ok(())
}

/// The release binary `name` in the workspace's target directory.
pub fn release_bin(root: &Path, name: &str) -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let p = target.join("release").join(name);
    ensure!(p.is_file(), "{} was not built", p.display());
    Ok(p)
}
