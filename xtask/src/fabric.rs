//! Namespace tests and the benchmark of the libfabric provider `afxdp`
//! (`datapath/fabric`), driven only by clients nobody here wrote: libfabric's `fi_info`
//! and `fi_pingpong`, and Open MPI (`mpirun`, `--mca pml cm --mca mtl ofi`) running a
//! small C program (`datapath/fabric/tests/mpi_check.c`) built with `mpicc`.
//!
//! The provider is built in release mode and linked as `libafxdp-fi.so` into
//! `target/release/libfabric/`, which `FI_PROVIDER_PATH` names; each process is bound to
//! its namespace's veth end by `FI_AFXDP_IFACE`. Nothing else is set: the provider keeps
//! libfabric's rxd layer off its DGRAM endpoints by itself (unless `FI_AFXDP_LAYERING=1`),
//! so `-p afxdp -e rdm` is this provider's own RDM, as a user gets it.
//!
//! Loss runs use a `netns::Impaired` line (1% of frames dropped each way in the middle
//! namespace, see `msg.rs` for why there).

use std::cell::RefCell;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::netns::{Impaired, Netns, SRV_ADDR};
use crate::util::{output, root, run};

/// The provider's directory for `FI_PROVIDER_PATH`, built on first use.
#[derive(Default)]
pub struct Provider {
    dir: RefCell<Option<PathBuf>>,
}

impl Provider {
    /// Builds the provider (release) and links it under its libfabric name.
    pub fn dir(&self) -> Result<PathBuf> {
        if let Some(d) = self.dir.borrow().as_ref() {
            return Ok(d.clone());
        }
        println!("building the libfabric provider (cargo build --release -p afxdp-fabric) ...");
        run(Command::new(env!("CARGO")).current_dir(root()).args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "afxdp-fabric",
        ]))?;
        let target = crate::util::target_dir();
        let lib = target.join("release").join("libafxdp_fi.so");
        ensure!(lib.is_file(), "{} was not built", lib.display());
        let dir = target.join("release").join("libfabric");
        std::fs::create_dir_all(&dir)?;
        let link = dir.join("libafxdp-fi.so");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&lib, &link).with_context(|| format!("linking {}", link.display()))?;
        *self.dir.borrow_mut() = Some(dir.clone());
        Ok(dir)
    }
}

/// The two ends the tests run in (from a `Netns` or an `Impaired` line).
#[derive(Clone, Debug)]
pub struct Ends {
    pub server: String,
    pub client: String,
    pub srv_if: String,
    pub cli_if: String,
}

impl From<&Netns> for Ends {
    fn from(n: &Netns) -> Ends {
        Ends { server: n.server.clone(), client: n.client.clone(), srv_if: n.srv_if.clone(), cli_if: n.cli_if.clone() }
    }
}

impl From<&Impaired> for Ends {
    fn from(n: &Impaired) -> Ends {
        Ends { server: n.server.clone(), client: n.client.clone(), srv_if: n.srv_if.clone(), cli_if: n.cli_if.clone() }
    }
}

/// Which end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

impl Ends {
    /// `prog` in a namespace, with the provider's environment for that end.
    pub fn cmd(&self, side: Side, dir: &Path, prog: &str) -> Command {
        let (ns, iface) = match side {
            Side::Server => (&self.server, &self.srv_if),
            Side::Client => (&self.client, &self.cli_if),
        };
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, prog])
            .env("FI_PROVIDER_PATH", dir)
            .env("FI_AFXDP_IFACE", iface)
            .env_remove("FI_PROVIDER")
            .env_remove("FI_AFXDP_LAYERING")
            .env("FI_AFXDP_STATS", "1");
        c
    }
}

/// A child whose output goes to a file, reaped with a deadline.
pub struct Child {
    child: std::process::Child,
    out: PathBuf,
    name: String,
}

impl Child {
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Child> {
        let out = std::env::temp_dir().join(format!("zc-{}-{}.out", std::process::id(), name.replace(' ', "-")));
        let f = std::fs::File::create(&out)?;
        let child = cmd
            .stdout(f.try_clone()?)
            .stderr(f)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {name}"))?;
        Ok(Child { child, out, name: name.into() })
    }

    /// Waits up to `limit`; returns (exited successfully, output). A child still running
    /// at the deadline is killed and reported as `None`.
    pub fn wait(mut self, limit: Duration) -> Result<(Option<bool>, String)> {
        let end = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break Some(s.success());
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut text = String::new();
        std::fs::File::open(&self.out)?.read_to_string(&mut text)?;
        let _ = std::fs::remove_file(&self.out);
        Ok((status, text))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
    }
}

/// Waits until something listens on TCP `port` in namespace `ns`.
pub fn wait_listen(ns: &str, port: u16, limit: Duration) -> Result<()> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        let (_, text) = output(Command::new("ip").args(["netns", "exec", ns, "ss", "-Htln"]))?;
        if text.split_whitespace().any(|w| w.ends_with(&format!(":{port}"))) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listened on TCP port {port} in {ns} within {limit:?}")
}

/// Registers the provider's namespace tests.
pub fn tests(suite: &mut crate::nstest::Suite, prov: &Provider) {
    suite.case("fabric_fi_info_lists_provider", || fi_info(prov));
    suite.case("fabric_errors_name_what_to_set", || errors(prov));
    suite.case("fabric_pingpong_dgram_0_to_64k", || pingpong_case(prov, "dgram", false, &[]));
    suite.case("fabric_pingpong_rdm_0_to_64k", || pingpong_case(prov, "rdm", false, &[]));
    suite.case("fabric_pingpong_rdm_tagged_0_to_64k", || pingpong_case(prov, "rdm", false, &["-m", "tagged"]));
    suite.case("fabric_pingpong_dgram_1pct_loss", || dgram_lossy(prov));
    suite.case("fabric_pingpong_rdm_1pct_loss", || pingpong_case(prov, "rdm", true, &["-m", "tagged"]));
    suite.case("fabric_mpi_pingpong_and_allreduce", || mpi_case(prov, false));
    suite.case("fabric_mpi_pingpong_and_allreduce_1pct_loss", || mpi_case(prov, true));
}

/// Builds `datapath/fabric/tests/mpi_check.c` with `mpicc` into the target directory.
pub fn mpi_check() -> Result<PathBuf> {
    let src = root().join("datapath/fabric/tests/mpi_check.c");
    let target = crate::util::target_dir();
    let exe = target.join("release").join("mpi_check");
    run(Command::new("mpicc").args(["-O2", "-Wall", "-o"]).arg(&exe).arg(&src))
        .context("mpicc (Open MPI's compiler wrapper; `cargo xtask setup` installs libopenmpi-dev)")?;
    Ok(exe)
}

/// How MPI moves messages in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MpiPath {
    /// `--mca pml cm --mca mtl ofi`, only the afxdp provider allowed.
    Afxdp,
    /// `--mca pml ob1 --mca btl tcp,self`: the kernel's TCP.
    BtlTcp,
}

/// Runs `prog args` as two ranks, one per namespace: `mpirun` in the server namespace
/// (rank 0 on 10.77.0.1), and an rsh agent that starts the other end's daemon in the
/// client namespace (10.77.0.2). Open MPI's own out-of-band TCP crosses the veth through
/// the kernel (the XDP program passes what it does not steer).
pub fn mpirun(e: &Ends, dir: &Path, path: MpiPath, prog: &Path, args: &[&str], limit: Duration) -> Result<Outcome> {
    let tmp = std::env::temp_dir().join(format!("zc-{}-mpi-{}", std::process::id(), e.server));
    std::fs::create_dir_all(&tmp)?;
    let agent = tmp.join("agent.sh");
    let envs = format!(
        "FI_PROVIDER_PATH={} FI_AFXDP_STATS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
        dir.display()
    );
    std::fs::write(
        &agent,
        format!(
            "#!/bin/sh\n# rsh agent: runs Open MPI's daemon in the namespace that owns the host address.\nhost=$1; shift\ncase \"$host\" in\n  {SRV_ADDR}) ns={}; ifc={}; cpu=0 ;;\n  {cli}) ns={}; ifc={}; cpu=1 ;;\n  *) echo \"agent: unknown host $host\" >&2; exit 1 ;;\nesac\nexec ip netns exec \"$ns\" taskset -c $cpu env FI_AFXDP_IFACE=\"$ifc\" {envs} sh -c \"$*\"\n",
            e.server, e.srv_if, e.client, e.cli_if, cli = crate::netns::CLI_ADDR
        ),
    )?;
    run(Command::new("chmod").arg("+x").arg(&agent))?;
    // Open MPI sees two hosts and would bind each rank to "its" core 0, the same CPU
    // here; instead each side is pinned to its own CPU (server 0, client 1) and inherits it.
    let mut c = e.cmd(Side::Server, dir, "taskset");
    c.args(["-c", "0", "mpirun", "--bind-to", "none"]);
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    c.args(["-np", "2", "--host", &format!("{SRV_ADDR},{}", crate::netns::CLI_ADDR), "--mca", "plm_rsh_agent"])
        .arg(&agent)
        .args(["--mca", "oob_tcp_if_include", "10.77.0.0/24"]);
    match path {
        MpiPath::Afxdp => {
            c.args(["--mca", "pml", "cm", "--mca", "mtl", "ofi", "--mca", "mtl_ofi_provider_include", "afxdp"]);
        }
        MpiPath::BtlTcp => {
            c.args(["--mca", "pml", "ob1", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "10.77.0.0/24"]);
        }
    }
    c.arg(prog).args(args);
    let r = Child::spawn("mpirun", &mut c)?.wait(limit);
    let _ = std::fs::remove_dir_all(&tmp);
    r
}

/// `key=value` of the `RESULT <what> size=<size>` line.
pub fn mpi_result(text: &str, what: &str, size: &str, key: &str) -> Option<f64> {
    let line = text.lines().find(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some("RESULT")
            && w.next() == Some(what)
            && w.next().is_some_and(|x| x.ends_with(&format!("={size}")))
    })?;
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')).and_then(|v| v.parse().ok())
}

fn mpi_case(prov: &Provider, lossy: bool) -> Result<()> {
    let dir = prov.dir()?;
    let prog = mpi_check()?;
    let (ends, net, _plain) = if lossy {
        let mut n = Impaired::up("mq", 1500)?;
        n.bridge()?;
        n.lose(1)?;
        (Ends::from(&n), Some(n), None)
    } else {
        let n = Netns::up("mp", 1500)?;
        (Ends::from(&n), None, Some(n))
    };
    let (ok, text) = mpirun(&ends, &dir, MpiPath::Afxdp, &prog, &["100"], Duration::from_secs(180))?;
    ensure!(ok == Some(true), "mpirun over afxdp failed or timed out ({ok:?}):\n{text}");
    ensure!(!text.contains("MISMATCH"), "data mismatch:\n{text}");
    for size in ["1", "64", "1024", "16384", "65536", "1048576", "4194304"] {
        ensure!(mpi_result(&text, "pingpong", size, "p50_us").is_some(), "no ping-pong result for {size} B:\n{text}");
    }
    for count in ["1", "1000", "100000"] {
        ensure!(
            text.lines().any(|l| l.trim() == format!("RESULT allreduce count={count} ok")),
            "no checked allreduce of {count}:\n{text}"
        );
    }
    ensure!(
        text.lines().any(|l| l.trim() == "RESULT mprobe messages=6 ok"),
        "no checked matched probe (MPI_Mprobe/MPI_Improbe/MPI_Mrecv):\n{text}"
    );
    // Both ranks' provider endpoints carried the traffic (their counters print at close).
    let eps: Vec<&str> = text.lines().filter(|l| l.contains("afxdp: endpoint") && l.contains("counters")).collect();
    ensure!(eps.len() == 2, "expected the counters of 2 afxdp endpoints (one per rank):\n{text}");
    for l in &eps {
        let copied = stat(l, "in").unwrap_or(0);
        ensure!(copied > 8 << 20, "an endpoint moved only {copied} bytes: {l}");
        // Acknowledgements: the provider's own reliable RDM, not ofi_rxd over its DGRAM.
        ensure!(
            stat(l, "sent").is_some() && l.contains("acks sent") && !l.contains("acks sent 0 "),
            "not the native RDM endpoint: {l}"
        );
    }
    // The probes went through the provider's FI_PEEK | FI_CLAIM: 5 reserved on rank 0 (the
    // sixth message is taken by the plain MPI_Recv).
    let claimed: u64 = eps.iter().map(|l| stat(l, "claimed").unwrap_or(0)).sum();
    ensure!(
        claimed == 5,
        "the provider reserved {claimed} messages for MPI_Mprobe/MPI_Improbe, want 5:\n{}",
        eps.join("\n")
    );
    let mut note = String::new();
    if let Some(n) = &net {
        let (a, b) = n.drops()?;
        let retx: u64 = eps.iter().map(|l| stat(l, "retransmitted").unwrap_or(0)).sum();
        ensure!(
            a > 0 && b > 0 && retx > 0,
            "loss not exercised: dropped {a}/{b}, retransmitted {retx}:\n{}",
            eps.join("\n")
        );
        let sum = |k: &str| eps.iter().map(|l| stat(l, k).unwrap_or(0)).sum::<u64>();
        note = format!(
            "; link dropped {a}/{b} frames, {retx} datagrams retransmitted ({} by timeout), {} duplicates received, {} kernel RX ring overflows",
            sum("timeouts"),
            sum("dup"),
            sum("rx_ring_full")
        );
    }
    println!(
        "  mpirun (pml cm, mtl ofi, afxdp) 2 ranks: ping-pong 1 B..4 MiB checked (64 B p50 {:.1} us), allreduce of 1/1000/100000 int64 checked, 6 matched probes checked{note}",
        mpi_result(&text, "pingpong", "64", "p50_us").unwrap_or(0.0)
    );
    Ok(())
}

fn fi_info(prov: &Provider) -> Result<()> {
    let dir = prov.dir()?;
    let ns = Netns::up("fi", 1500)?;
    let e = Ends::from(&ns);
    let (ok, list) = output(e.cmd(Side::Server, &dir, "fi_info").arg("-l"))?;
    ensure!(ok && list.lines().any(|l| l.trim() == "afxdp:"), "fi_info -l does not list afxdp:\n{list}");
    let (ok, text) = output(e.cmd(Side::Server, &dir, "fi_info").args(["-p", "afxdp", "-v"]))?;
    ensure!(ok, "fi_info -p afxdp -v failed:\n{text}");
    let ours: Vec<&str> = text.split("---").filter(|b| b.contains("prov_name: afxdp\n")).collect();
    ensure!(ours.len() == 2, "expected a DGRAM and an RDM entry of afxdp, got {}:\n{text}", ours.len());
    // Without FI_PROVIDER set, the RDM a program gets first is ours, not ofi_rxd's over our
    // DGRAM; the layering is there when asked for.
    ensure!(!text.contains("prov_name: afxdp;ofi_rxd"), "ofi_rxd layered over afxdp by default:\n{text}");
    let (ok, rdm) = output(e.cmd(Side::Server, &dir, "fi_info").args(["-p", "afxdp", "-t", "FI_EP_RDM"]))?;
    ensure!(
        ok && rdm.lines().filter(|l| l.trim_start().starts_with("provider:")).all(|l| l.trim() == "provider: afxdp"),
        "fi_info -p afxdp -t FI_EP_RDM lists another provider:\n{rdm}"
    );
    let (ok, layered) =
        output(e.cmd(Side::Server, &dir, "fi_info").args(["-p", "afxdp", "-v"]).env("FI_AFXDP_LAYERING", "1"))?;
    ensure!(
        ok && layered.contains("prov_name: afxdp;ofi_rxd"),
        "FI_AFXDP_LAYERING=1 did not let ofi_rxd layer over afxdp:\n{layered}"
    );
    let (dgram, rdm) = (ours[0], ours[1]);
    let fabric = "name: 10.77.0.0/24";
    let domain = format!("name: {}", ns.srv_if);
    for (what, block, want) in [
        ("DGRAM", dgram, vec!["type: FI_EP_DGRAM", "FI_MSG", "max_msg_size: 65536"]),
        ("RDM", rdm, vec!["type: FI_EP_RDM", "FI_TAGGED", "FI_DIRECTED_RECV", "msg_order: [ FI_ORDER_SAS ]"]),
    ] {
        let mut want = want;
        want.extend([
            "addr_format: FI_SOCKADDR_IN",
            "src_addr: fi_sockaddr_in://10.77.0.1:0",
            "control_progress: FI_PROGRESS_MANUAL",
            "data_progress: FI_PROGRESS_MANUAL",
            "threading: FI_THREAD_SAFE",
            "resource_mgmt: FI_RM_ENABLED",
            "mr_mode: [  ]",
            "ep_cnt: 1",
            "cq_data_size: 8",
            fabric,
            &domain,
        ]);
        for w in want {
            ensure!(block.contains(w), "{what} entry lacks {w:?}:\n{block}");
        }
        ensure!(!block.contains("FI_RMA") && !block.contains("FI_ATOMIC"), "{what} claims RMA or atomics:\n{block}");
    }
    ensure!(!dgram.contains("FI_TAGGED"), "DGRAM claims FI_TAGGED:\n{dgram}");
    let (ok, t) = output(e.cmd(Side::Server, &dir, "fi_info").args(["-p", "afxdp", "-t", "FI_EP_MSG"]))?;
    ensure!(!ok, "afxdp offered FI_EP_MSG:\n{t}");
    println!("  fi_info -p afxdp: DGRAM and RDM on {} (fabric 10.77.0.0/24), attributes as built", ns.srv_if);
    Ok(())
}

fn expect_fail(cmd: &mut Command, words: &[&str]) -> Result<String> {
    let (ok, text) = output(cmd)?;
    ensure!(!ok, "expected failure, but it succeeded:\n{text}");
    ensure!(!text.contains("panicked") && !text.contains("Segmentation"), "it crashed:\n{text}");
    for w in words {
        ensure!(text.contains(w), "the error does not say {w:?}:\n{text}");
    }
    Ok(text.lines().find(|l| l.contains("afxdp")).unwrap_or("").trim().to_string())
}

fn errors(prov: &Provider) -> Result<()> {
    let dir = prov.dir()?;
    let ns = Netns::up("fe", 1500)?;
    let e = Ends::from(&ns);
    let line = expect_fail(
        e.cmd(Side::Server, &dir, "fi_info").args(["-p", "afxdp"]).env_remove("FI_AFXDP_IFACE"),
        &["FI_AFXDP_IFACE"],
    )?;
    println!("  no interface: {line}");
    let line = expect_fail(
        e.cmd(Side::Server, &dir, "fi_info").args(["-p", "afxdp"]).env("FI_AFXDP_IFACE", "nosuch0"),
        &["no network interface \"nosuch0\""],
    )?;
    println!("  no such interface: {line}");
    let line = expect_fail(
        e.cmd(Side::Server, &dir, "fi_info").args(["-p", "afxdp"]).env("FI_AFXDP_QUEUE", "x"),
        &["FI_AFXDP_QUEUE=\"x\""],
    )?;
    println!("  bad queue: {line}");
    // A queue the veth does not have: the endpoint's bind fails and says so. (fi_pingpong
    // opens the fabric only once its control connection is up, so both ends run.)
    let ((s_ok, text), _) =
        pingpong(&e, &dir, &["-p", "afxdp", "-e", "rdm"], &[("FI_AFXDP_QUEUE", "5")], Duration::from_secs(20))?;
    ensure!(s_ok == Some(false), "fi_pingpong on queue 5 did not fail ({s_ok:?}):\n{text}");
    ensure!(!text.contains("panicked") && !text.contains("Segmentation"), "it crashed:\n{text}");
    for w in ["fi_endpoint", "has no queue 5", "FI_AFXDP_QUEUE"] {
        ensure!(text.contains(w), "the error does not say {w:?}:\n{text}");
    }
    let line = text.lines().find(|l| l.contains("fi_endpoint")).unwrap_or("").trim().to_string();
    println!("  queue out of range: {line}");
    Ok(())
}

/// Sizes `fi_pingpong -S all` runs up to `max`: 0, 1, then 2^i and 1.5 * 2^i.
fn all_sizes(max: u64) -> Vec<u64> {
    let mut v = Vec::new();
    for i in 0.. {
        let p = if i == 0 { 0 } else { 1u64 << i };
        if p > max {
            break;
        }
        v.push(p);
        let half = if i == 0 { 1 } else { p + p / 2 };
        if half <= max {
            v.push(half);
        }
    }
    v
}

/// `fi_pingpong`'s size column for `n` bytes.
fn size_str(n: u64) -> String {
    let (base, mag) = match n {
        n if n >= 1 << 30 => (1 << 30, "g"),
        n if n >= 1 << 20 => (1 << 20, "m"),
        n if n >= 1 << 10 => (1 << 10, "k"),
        _ => (1, ""),
    };
    let frac = if n / base < 10 { (n % base) * 10 / base } else { 0 };
    if frac > 0 {
        format!("{}.{frac}{mag}", n / base)
    } else {
        format!("{}{mag}", n / base)
    }
}

/// One row of `fi_pingpong` output.
#[derive(Debug, Clone)]
pub struct Row {
    pub size: String,
    pub sent: String,
    pub acked_equal: bool,
    pub mb_per_s: f64,
    pub usec_per_xfer: f64,
}

/// The result rows of `fi_pingpong` output.
pub fn rows(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() != 8 || !w[4].ends_with('s') {
                return None;
            }
            Some(Row {
                size: w[0].to_string(),
                sent: w[1].to_string(),
                acked_equal: w[2].starts_with('='),
                mb_per_s: w[5].parse().ok()?,
                usec_per_xfer: w[6].parse().ok()?,
            })
        })
        .collect()
}

/// How a run ended (`None`: killed at the deadline) and what it printed.
pub type Outcome = (Option<bool>, String);

/// A server and a client `fi_pingpong` with the same arguments; returns both outputs.
/// `None` statuses mean the run was killed at `limit`.
pub fn pingpong(
    e: &Ends,
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> Result<(Outcome, Outcome)> {
    let mut s = e.cmd(Side::Server, dir, "fi_pingpong");
    s.args(args).envs(env.iter().copied());
    let srv = Child::spawn("fi_pingpong server", &mut s)?;
    wait_listen(&e.server, 47592, Duration::from_secs(10)).with_context(|| format!("{} did not start", srv.name()))?;
    let mut c = e.cmd(Side::Client, dir, "fi_pingpong");
    c.args(args).arg(SRV_ADDR).envs(env.iter().copied());
    let cli = Child::spawn("fi_pingpong client", &mut c)?;
    let start = Instant::now();
    let c_res = cli.wait(limit)?;
    let s_res = srv.wait(limit.saturating_sub(start.elapsed()).max(Duration::from_secs(5)))?;
    Ok((s_res, c_res))
}

/// DGRAM promises no delivery and fi_pingpong never retransmits, so under loss a run stalls
/// at its first lost datagram. What must hold: 64 KiB messages (46 datagrams each) through
/// 1% loss each way stall, never corrupt or crash; short runs that lose nothing complete
/// with their data checked.
fn dgram_lossy(prov: &Provider) -> Result<()> {
    let dir = prov.dir()?;
    let mut net = Impaired::up("fd", 1500)?;
    net.bridge()?;
    net.lose(1)?;
    let e = Ends::from(&net);
    let big = ["-p", "afxdp", "-e", "dgram", "-S", "65536", "-I", "50", "-c"];
    let ((s_ok, s_text), (c_ok, c_text)) = pingpong(&e, &dir, &big, &[], Duration::from_secs(15))?;
    for t in [&s_text, &c_text] {
        ensure!(!t.contains("panicked") && !t.contains("Segmentation"), "a crash:\n{t}");
    }
    ensure!(s_ok != Some(true) || c_ok != Some(true) || rows(&c_text).iter().all(|r| r.acked_equal), "{c_text}");
    let (to_srv, to_cli) = net.drops()?;
    ensure!(to_srv + to_cli > 0, "the lossy link dropped nothing: loss not exercised");
    let stalled = c_ok.is_none();
    let small = ["-p", "afxdp", "-e", "dgram", "-S", "64", "-I", "10", "-c"];
    let (mut done, mut stalls) = (0, 0);
    for _ in 0..6 {
        let ((s_ok, s_text), (c_ok, c_text)) = pingpong(&e, &dir, &small, &[], Duration::from_secs(8))?;
        for t in [&s_text, &c_text] {
            ensure!(!t.contains("panicked") && !t.contains("Segmentation"), "a crash:\n{t}");
        }
        match (c_ok, s_ok) {
            (Some(true), Some(true)) => {
                let r = rows(&c_text);
                ensure!(r.len() == 1 && r[0].acked_equal && r[0].sent == "10", "bad result:\n{c_text}");
                done += 1;
                if done == 2 {
                    break;
                }
            }
            // A client killed at the deadline stalled; its server then fails on the closed
            // control connection ("ctrl/read: no data"), which is that stall, not an error.
            (None, _) => stalls += 1,
            (Some(false), _) | (_, Some(false)) => bail!("fi_pingpong failed (not a stall):\n{c_text}\n{s_text}"),
            _ => stalls += 1,
        }
    }
    ensure!(done > 0, "no short DGRAM run completed through 1% loss in 6 tries ({stalls} stalled)");
    println!(
        "  64 KiB x 50 through 1% loss: {} (link dropped {to_srv}/{to_cli} frames); 64 B x 10: {done} runs completed with data checked, {stalls} stalled",
        if stalled { "stalled at a lost datagram, as DGRAM may" } else { "completed" }
    );
    Ok(())
}

/// A counter from the provider's `FI_AFXDP_STATS` line.
pub fn stat(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().rev().find(|l| l.contains("afxdp: endpoint") && l.contains("counters"))?;
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == key {
            return it.next()?.trim_end_matches([',', ')']).parse().ok();
        }
    }
    None
}

fn pingpong_case(prov: &Provider, ep: &str, lossy: bool, extra: &[&str]) -> Result<()> {
    let dir = prov.dir()?;
    let tag = if lossy { "fl" } else { "fp" };
    // Both kinds remove their namespaces when dropped, at the end of this function.
    let (ends, net, _plain) = if lossy {
        let mut n = Impaired::up(tag, 1500)?;
        n.bridge()?;
        n.lose(1)?;
        (Ends::from(&n), Some(n), None)
    } else {
        let n = Netns::up(tag, 1500)?;
        (Ends::from(&n), None, Some(n))
    };
    let iters = if lossy { "100" } else { "200" };
    let mut args = vec!["-p", "afxdp", "-e", ep, "-S", "all", "-I", iters, "-c"];
    args.extend_from_slice(extra);
    let env: &[(&str, &str)] = if ep == "rdm" { &[("FI_AFXDP_MAX_MSG", "64k")] } else { &[] };
    let limit = Duration::from_secs(if lossy { 90 } else { 60 });
    let ((s_ok, s_text), (c_ok, c_text)) = pingpong(&ends, &dir, &args, env, limit)?;
    let want = all_sizes(64 * 1024);
    let got = rows(&c_text);
    let what = format!("fi_pingpong {}", args.join(" "));
    ensure!(c_ok == Some(true), "{what} client failed or timed out ({c_ok:?}):\n{c_text}\nserver:\n{s_text}");
    ensure!(s_ok == Some(true), "{what} server failed or timed out ({s_ok:?}):\n{s_text}");
    let sizes: Vec<String> = got.iter().map(|r| r.size.clone()).collect();
    let expect: Vec<String> = want.iter().map(|&n| size_str(n)).collect();
    ensure!(sizes == expect, "sizes {sizes:?}, expected {expect:?}:\n{c_text}");
    ensure!(got.iter().all(|r| r.acked_equal && r.sent == iters), "not every size completed {iters} times:\n{c_text}");
    let small = got.iter().find(|r| r.size == "64").map_or(0.0, |r| r.usec_per_xfer);
    let big = got.last().map_or(0.0, |r| r.mb_per_s);
    let mut note = String::new();
    if lossy {
        let drops = net.as_ref().map(|n| n.drops()).transpose()?.unwrap_or((0, 0));
        let retx = stat(&c_text, "retransmitted").unwrap_or(0) + stat(&s_text, "retransmitted").unwrap_or(0);
        ensure!(drops.0 > 0 && drops.1 > 0, "the lossy link dropped {}/{}: loss not exercised", drops.0, drops.1);
        ensure!(retx > 0, "no retransmissions despite loss:\n{c_text}\n{s_text}");
        note = format!("; link dropped {}/{} frames, {retx} datagrams retransmitted", drops.0, drops.1);
    }
    println!(
        "  {what}: {} sizes 0 B..64 KiB x {iters}, data checked; 64 B {small:.2} us/xfer, 64 KiB {big:.0} MB/s{note}",
        got.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_fi_pingpong() {
        let v = all_sizes(64 * 1024);
        assert_eq!(&v[..6], &[0, 1, 2, 3, 4, 6]);
        assert_eq!(v.last(), Some(&65536));
        assert!(!v.contains(&98304));
        assert_eq!(size_str(1536), "1.5k");
        assert_eq!(size_str(65536), "64k");
        assert_eq!(size_str(12), "12");
        assert_eq!(size_str(98304), "96k");
    }

    #[test]
    fn parses_rows_and_stats() {
        let t = "bytes   #sent   #ack     total       time     MB/sec    usec/xfer   Mxfers/sec\n\
                 64      10      =10     1.2k        0.00s      0.49     130.10       0.01\n\
                 libfabric:1:afxdp:warn: x\n\
                 afxdp: endpoint 10.77.0.1:5 counters: sends 3 | datagrams sent 9 received 8 retransmitted 2 (fast 1, timeouts 1)\n";
        let r = rows(t);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].size.as_str(), r[0].acked_equal, r[0].usec_per_xfer), ("64", true, 130.10));
        assert_eq!(stat(t, "retransmitted"), Some(2));
        assert_eq!(stat(t, "sends"), Some(3));
    }
}
