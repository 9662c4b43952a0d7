//! Two network namespaces joined by a veth pair: the test bed for everything that crosses
//! a network. Names carry the pid so runs never collide; dropping a `Netns` (also on a
//! failed test, and on SIGINT/SIGTERM through `install_cleanup`) removes both namespaces,
//! which removes the veth pair with them.

use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, Result};

use crate::util::{cmd_ok, run};

/// Prefix of every namespace this tool creates.
pub const PREFIX: &str = "zc-";

/// Server side addresses.
pub const SRV_ADDR: &str = "10.77.0.1";
/// Client side addresses.
pub const CLI_ADDR: &str = "10.77.0.2";
/// Server side IPv6 address.
pub const SRV_ADDR6: &str = "fd77::1";

/// Namespaces alive in this process, for the signal handler.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// One server/client namespace pair.
#[derive(Debug)]
pub struct Netns {
    /// Server namespace.
    pub server: String,
    /// Client namespace.
    pub client: String,
    /// The veth end in the server namespace.
    pub srv_if: String,
    /// The veth end in the client namespace.
    pub cli_if: String,
    keep: bool,
}

impl Netns {
    /// Creates the pair; `tag` (a letter or two) tells apart several pairs of one run.
    pub fn up(tag: &str, mtu: u32) -> Result<Netns> {
        let pid = std::process::id();
        let ns = Netns {
            server: format!("{PREFIX}{pid}-{tag}s"),
            client: format!("{PREFIX}{pid}-{tag}c"),
            srv_if: format!("zc{pid}{tag}s"),
            cli_if: format!("zc{pid}{tag}c"),
            keep: false,
        };
        for n in [&ns.server, &ns.client] {
            run(Command::new("ip").args(["netns", "add", n])).with_context(|| format!("creating namespace {n}"))?;
            LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(n.clone());
        }
        let mtu = mtu.to_string();
        let steps: Vec<Vec<&str>> = vec![
            vec!["link", "add", &ns.srv_if, "netns", &ns.server, "mtu", &mtu, "type", "veth", "peer", "name", &ns.cli_if, "netns", &ns.client, "mtu", &mtu],
            vec!["-n", &ns.server, "addr", "add", "10.77.0.1/24", "dev", &ns.srv_if],
            vec!["-n", &ns.client, "addr", "add", "10.77.0.2/24", "dev", &ns.cli_if],
            vec!["-n", &ns.server, "addr", "add", "fd77::1/64", "dev", &ns.srv_if, "nodad"],
            vec!["-n", &ns.client, "addr", "add", "fd77::2/64", "dev", &ns.cli_if, "nodad"],
            vec!["-n", &ns.server, "link", "set", "lo", "up"],
            vec!["-n", &ns.client, "link", "set", "lo", "up"],
            vec!["-n", &ns.server, "link", "set", &ns.srv_if, "up"],
            vec!["-n", &ns.client, "link", "set", &ns.cli_if, "up"],
        ];
        for args in steps {
            run(Command::new("ip").args(&args)).with_context(|| format!("ip {}", args.join(" ")))?;
        }
        // A veth peer hands the other end partial checksums (CHECKSUM_PARTIAL) that the
        // kernel would finish in a real NIC; AF_XDP sees them unfinished. Turning TX
        // checksum offload off on the client makes it send full checksums, as a wire would.
        run(Command::new("ip").args(["netns", "exec", &ns.client, "ethtool", "-K", &ns.cli_if, "tx", "off"]).stdout(std::process::Stdio::null()))
            .context("ethtool -K (client veth) tx off")?;
        Ok(ns)
    }

    /// A command run inside the server namespace.
    pub fn in_server(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.server]).arg(prog);
        c
    }

    /// A command run inside the client namespace.
    pub fn in_client(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.client]).arg(prog);
        c
    }

    /// Sets the MTU of both ends.
    pub fn set_mtu(&self, mtu: u32) -> Result<()> {
        let m = mtu.to_string();
        run(Command::new("ip").args(["-n", &self.server, "link", "set", &self.srv_if, "mtu", &m]))?;
        run(Command::new("ip").args(["-n", &self.client, "link", "set", &self.cli_if, "mtu", &m]))
    }

    /// `ip -d link show` of the server end.
    pub fn server_link(&self) -> String {
        cmd_ok(Command::new("ip").args(["-n", &self.server, "-d", "link", "show", "dev", &self.srv_if])).unwrap_or_default()
    }

    /// Leaves the namespaces in place when dropped (for `cargo xtask netns up`).
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for n in [&self.server, &self.client] {
            delete(n);
        }
    }
}

fn delete(name: &str) {
    let _ = Command::new("ip").args(["netns", "del", name]).stderr(std::process::Stdio::null()).status();
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).retain(|n| n != name);
}

/// On SIGINT/SIGTERM, removes this process's namespaces before exiting.
pub fn install_cleanup() {
    let _ = ctrlc::set_handler(|| {
        let names = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
        for n in names {
            let _ = Command::new("ip").args(["netns", "del", &n]).status();
        }
        eprintln!("xtask: interrupted; removed this run's namespaces");
        std::process::exit(130);
    });
}

/// Names of every namespace this tool created (any run), for `netns down`.
pub fn ours() -> Vec<String> {
    cmd_ok(Command::new("ip").args(["netns", "list"]))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_owned)
        .collect()
}

/// Removes the named namespaces.
pub fn remove(names: &[String]) {
    for n in names {
        delete(n);
    }
}
