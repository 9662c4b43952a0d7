//! TX checksum offload of the AF_XDP file server (AF_XDP TX metadata), end to end: a
//! 1 GiB download by curl, checked by sha256, three ways on one veth pair:
//!
//! 1. offload on: the startup block says `offloaded`; the kernel marks each skb
//!    `CHECKSUM_PARTIAL` and veth hands it to the client's TCP as such (the fast path).
//! 2. offload on, the server veth's TX checksumming off (`ethtool -K IF tx off`): now the
//!    kernel finishes every checksum in software from our pseudo-header sum and offsets, as
//!    a NIC would, and the client's TCP verifies each one (`InCsumErrors` stays 0). This is
//!    what shows the requests are right; on path 1 nobody looks at the sums.
//! 3. `--no-tx-offload`: the startup block says `software`, the stack sums everything.
//!
//! Each way, no payload byte is copied by the CPU.

use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::fstest::{sha256_download, sha256_file, DataSet};
use crate::netns::{Netns, SRV_ADDR};
use crate::nstest::{Bins, Suite};
use crate::util::{run, Daemon};

pub fn tests(suite: &mut Suite, bins: &Bins) {
    suite.case("fileserver_xdp_tx_checksum_offload_1gib_on_kernel_finished_and_off", || offload(bins));
}

/// How one download is set up.
struct Way {
    what: &'static str,
    server_args: &'static [&'static str],
    veth_tx_checksum: bool,
    startup: &'static str,
}

const WAYS: [Way; 3] = [
    Way {
        what: "offloaded, CHECKSUM_PARTIAL to the client",
        server_args: &[],
        veth_tx_checksum: true,
        startup: "checksums       offloaded (AF_XDP TX metadata",
    },
    Way {
        what: "offloaded, finished by the server's kernel and verified by the client",
        server_args: &[],
        veth_tx_checksum: false,
        startup: "checksums       offloaded (AF_XDP TX metadata",
    },
    Way {
        what: "--no-tx-offload, summed in software",
        server_args: &["--no-tx-offload"],
        veth_tx_checksum: true,
        startup: "checksums       software",
    },
];

fn offload(bins: &Bins) -> Result<()> {
    let data = DataSet::create("offload", true).context("writing the data set")?;
    let want = sha256_file(&data.www.join("big1g"))?;
    let ns = Netns::up("o", 1500)?;
    for way in &WAYS {
        let onoff = if way.veth_tx_checksum { "on" } else { "off" };
        run(ns.in_server("ethtool").args(["-K", &ns.srv_if, "tx", onoff]).stdout(std::process::Stdio::null()))
            .with_context(|| format!("ethtool -K (server veth) tx {onoff}"))?;
        let mut cmd = ns.in_server(&bins.fileserver);
        cmd.args(["--iface", &ns.srv_if, "--addr", SRV_ADDR, "--port", "80", "--root"])
            .arg(&data.www)
            .args(way.server_args)
            .env("RUST_LOG", "warn");
        let mut server = Daemon::spawn("fileserver", &mut cmd)?;
        server.wait_line("ready", Duration::from_secs(30))?;
        let startup = server.lines_so_far().join("\n");
        ensure!(
            startup.contains(way.startup),
            "{}: the startup block does not say {:?}:\n{startup}",
            way.what,
            way.startup
        );
        let errors_before = client_csum_errors(&ns)?;
        let got = sha256_download(&ns, &format!("curl -sf --max-time 300 http://{SRV_ADDR}/big1g"))?;
        ensure!(got == want, "{}: sha256 {got} != {want}", way.what);
        let errors = client_csum_errors(&ns)? - errors_before;
        ensure!(errors == 0, "{}: the client's TCP counted {errors} bad checksums", way.what);
        let (ok, text) = server.terminate(Duration::from_secs(20))?;
        ensure!(ok, "{}: fileserver did not exit cleanly:\n{text}", way.what);
        let copied = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("fileserver_payload_bytes_copied_total").and_then(|v| v.trim().parse::<u64>().ok())
            })
            .context("no copy counter in the exit report")?;
        ensure!(copied == 0, "{}: {copied} payload bytes copied by the CPU", way.what);
        println!("  1 GiB byte-exact, 0 bad checksums at the client, 0 bytes copied: {}", way.what);
    }
    Ok(())
}

/// The client namespace's `Tcp: InCsumErrors` (segments its TCP dropped for their checksum).
fn client_csum_errors(ns: &Netns) -> Result<u64> {
    let out = ns.in_client("cat").arg("/proc/net/snmp").output().context("reading the client's /proc/net/snmp")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap_or(""), tcp.next().unwrap_or(""));
    let at = names.split_whitespace().position(|n| n == "InCsumErrors").context("no Tcp InCsumErrors counter")?;
    values.split_whitespace().nth(at).and_then(|v| v.parse().ok()).context("unreadable Tcp InCsumErrors")
}
