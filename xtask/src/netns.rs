//! Two network namespaces joined by a veth pair: the test bed for everything that crosses
//! a network. Names carry the pid so runs never collide; dropping a `Netns` (also on a
//! failed test, and on SIGINT/SIGTERM through `install_cleanup`) removes both namespaces,
//! which removes the veth pair with them.

use std::process::Command;
use std::sync::Mutex;

use anyhow::{ensure, Context, Result};

use crate::util::{cmd_ok, output, run};

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
        Self::up_with_queues(tag, mtu, 1)
    }

    /// Like [`Netns::up`], with `queues` TX and RX queues on both veth ends
    /// (`numtxqueues N numrxqueues N`). veth hands a packet sent on TX queue `q` to the
    /// peer's RX queue `q`, so an AF_XDP socket bound to queue `q` at one end talks to the
    /// one bound to queue `q` at the other.
    pub fn up_with_queues(tag: &str, mtu: u32, queues: u32) -> Result<Netns> {
        ensure!(queues >= 1, "a veth needs at least one queue");
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
        let q = queues.to_string();
        let qs: Vec<&str> = if queues > 1 { vec!["numtxqueues", &q, "numrxqueues", &q] } else { Vec::new() };
        let mut link: Vec<&str> = vec!["link", "add", &ns.srv_if, "netns", &ns.server, "mtu", &mtu];
        link.extend(&qs);
        link.extend(["type", "veth", "peer", "name", &ns.cli_if, "netns", &ns.client, "mtu", &mtu]);
        link.extend(&qs);
        let steps: Vec<Vec<&str>> = vec![
            link,
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
        run(Command::new("ip")
            .args(["netns", "exec", &ns.client, "ethtool", "-K", &ns.cli_if, "tx", "off"])
            .stdout(std::process::Stdio::null()))
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

    /// Steers the client veth's receive processing to `cpu` with RPS, as on two hosts: veth
    /// hands a packet to its peer with `netif_rx` on the *sending* CPU, so without RPS the
    /// client's whole TCP receive runs in softirq on the server's core.
    pub fn client_rps(&self, cpu: u32) -> Result<()> {
        rps(&self.client, &self.cli_if, cpu)
    }

    /// The client veth's MAC address.
    pub fn client_mac(&self) -> Result<String> {
        let (ok, text) = output(self.in_client("cat").arg(format!("/sys/class/net/{}/address", self.cli_if)))?;
        anyhow::ensure!(ok, "reading the client MAC: {text}");
        Ok(text.trim().to_string())
    }

    /// Sets the MTU of both ends.
    pub fn set_mtu(&self, mtu: u32) -> Result<()> {
        let m = mtu.to_string();
        run(Command::new("ip").args(["-n", &self.server, "link", "set", &self.srv_if, "mtu", &m]))?;
        run(Command::new("ip").args(["-n", &self.client, "link", "set", &self.cli_if, "mtu", &m]))
    }

    /// `ip -d link show` of the server end.
    pub fn server_link(&self) -> String {
        cmd_ok(Command::new("ip").args(["-n", &self.server, "-d", "link", "show", "dev", &self.srv_if]))
            .unwrap_or_default()
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

/// Sets RPS on every rx queue of `iface` in namespace `ns` to `cpu`.
pub fn rps(ns: &str, iface: &str, cpu: u32) -> Result<()> {
    let mask = format!("{:x}", 1u64 << cpu);
    let script = format!("for q in /sys/class/net/{iface}/queues/rx-*; do echo {mask} > $q/rps_cpus; done");
    run(Command::new("ip").args(["netns", "exec", ns, "sh", "-c", &script]))
        .with_context(|| format!("setting RPS on {iface} to CPU {cpu}"))
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

/// Names of the namespaces `netns down` may remove: those `netns up` left for manual use,
/// and those of runs that died without cleaning up. A namespace of a run still going (its
/// pid, in the name, alive) is left alone, so `netns down` never breaks a test in progress.
pub fn ours() -> Vec<String> {
    cmd_ok(Command::new("ip").args(["netns", "list"]))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX) && removable(n))
        .map(str::to_owned)
        .collect()
}

/// `zc-<pid>-<tag><role>`: removable when left by `netns up` (tag `m`) or its pid is gone.
fn removable(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else { return false };
    let Some((pid, tag)) = rest.split_once('-') else { return true };
    let manual = tag.len() == 2 && tag.starts_with('m');
    let alive = pid.parse::<u32>().is_ok_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
    manual || !alive
}

/// Removes the named namespaces.
pub fn remove(names: &[String]) {
    for n in names {
        delete(n);
    }
}

/// Three namespaces in a line, for tests that need an impaired link: the server and the
/// client each hold one end of a veth pair whose other end is in a middle namespace.
///
/// ```text
///  server ns                     middle ns                          client ns
///  10.77.0.1 srv_if ── veth ── mid_srv_if   mid_cli_if ── veth ── cli_if 10.77.0.2
/// ```
///
/// The middle forwards nothing by itself: either [`Impaired::bridge`] joins its two ends
/// with a kernel bridge (and [`Impaired::lose`] drops a share of the frames with `tc netem`
/// or nftables), or a user-space forwarder (`xtask internal impair`) runs in it. Impairing
/// in the middle is the only place that works for AF_XDP: copy-mode transmit skips the
/// qdisc of the sending veth, so `tc netem` on an endpoint's own veth never sees its frames.
/// The middle has no addresses and IPv6 off, so its kernel sends nothing of its own.
#[derive(Debug)]
pub struct Impaired {
    /// Server namespace.
    pub server: String,
    /// Middle namespace.
    pub middle: String,
    /// Client namespace.
    pub client: String,
    /// The veth end in the server namespace (10.77.0.1).
    pub srv_if: String,
    /// The veth end in the client namespace (10.77.0.2).
    pub cli_if: String,
    /// The middle's end towards the server.
    pub mid_srv_if: String,
    /// The middle's end towards the client.
    pub mid_cli_if: String,
    nft: bool,
}

impl Impaired {
    /// Creates the three namespaces and both veth pairs, up, with addresses on the ends.
    pub fn up(tag: &str, mtu: u32) -> Result<Impaired> {
        let pid = std::process::id();
        let net = Impaired {
            server: format!("{PREFIX}{pid}-{tag}s"),
            middle: format!("{PREFIX}{pid}-{tag}m"),
            client: format!("{PREFIX}{pid}-{tag}c"),
            srv_if: format!("zc{pid}{tag}s"),
            cli_if: format!("zc{pid}{tag}c"),
            mid_srv_if: format!("zc{pid}{tag}ms"),
            mid_cli_if: format!("zc{pid}{tag}mc"),
            nft: false,
        };
        for n in [&net.server, &net.middle, &net.client] {
            run(Command::new("ip").args(["netns", "add", n])).with_context(|| format!("creating namespace {n}"))?;
            LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(n.clone());
        }
        // Before any link exists in it, so no interface of the middle ever sends IPv6
        // router or neighbour solicitations of its own.
        for key in ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"] {
            run(Command::new("ip").args(["netns", "exec", &net.middle, "sysctl", "-qw", key]))
                .with_context(|| format!("sysctl {key} in the middle"))?;
        }
        let mtu = mtu.to_string();
        let steps: Vec<Vec<&str>> = vec![
            vec![
                "link",
                "add",
                &net.srv_if,
                "netns",
                &net.server,
                "mtu",
                &mtu,
                "type",
                "veth",
                "peer",
                "name",
                &net.mid_srv_if,
                "netns",
                &net.middle,
                "mtu",
                &mtu,
            ],
            vec![
                "link",
                "add",
                &net.cli_if,
                "netns",
                &net.client,
                "mtu",
                &mtu,
                "type",
                "veth",
                "peer",
                "name",
                &net.mid_cli_if,
                "netns",
                &net.middle,
                "mtu",
                &mtu,
            ],
            vec!["-n", &net.server, "addr", "add", "10.77.0.1/24", "dev", &net.srv_if],
            vec!["-n", &net.client, "addr", "add", "10.77.0.2/24", "dev", &net.cli_if],
            vec!["-n", &net.server, "link", "set", "lo", "up"],
            vec!["-n", &net.client, "link", "set", "lo", "up"],
            vec!["-n", &net.server, "link", "set", &net.srv_if, "up"],
            vec!["-n", &net.client, "link", "set", &net.cli_if, "up"],
            vec!["-n", &net.middle, "link", "set", &net.mid_srv_if, "up"],
            vec!["-n", &net.middle, "link", "set", &net.mid_cli_if, "up"],
        ];
        for args in steps {
            run(Command::new("ip").args(&args)).with_context(|| format!("ip {}", args.join(" ")))?;
        }
        // Full checksums from both ends, as a wire would carry (see `Netns::up`). The middle
        // forwards frames as bytes (`xtask internal impair`), so a checksum left partial
        // (`CHECKSUM_PARTIAL`: the kernel's TCP, or AF_XDP TX metadata offload) would cross
        // it unfinished; with TX checksumming off on the veth the sending kernel finishes
        // it, as a NIC would.
        for (ns, dev) in [(&net.client, &net.cli_if), (&net.server, &net.srv_if)] {
            run(Command::new("ip")
                .args(["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"])
                .stdout(std::process::Stdio::null()))
            .with_context(|| format!("ethtool -K {dev} tx off"))?;
        }
        Ok(net)
    }

    /// A command run inside the server namespace.
    pub fn in_server(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.server]).arg(prog);
        c
    }

    /// A command run inside the middle namespace.
    pub fn in_middle(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.middle]).arg(prog);
        c
    }

    /// A command run inside the client namespace.
    pub fn in_client(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.client]).arg(prog);
        c
    }

    /// Joins the middle's two ends with a kernel bridge (a lossless wire until [`Impaired::lose`]).
    pub fn bridge(&self) -> Result<()> {
        let ipn = |args: &[&str]| run(Command::new("ip").args(args)).with_context(|| format!("ip {}", args.join(" ")));
        ipn(&["-n", &self.middle, "link", "add", "br0", "type", "bridge"])?;
        for dev in [&self.mid_srv_if, &self.mid_cli_if] {
            ipn(&["-n", &self.middle, "link", "set", dev, "master", "br0"])?;
        }
        ipn(&["-n", &self.middle, "link", "set", "br0", "up"])
    }

    /// Loses `pct`% of the frames crossing the bridge, each way: `tc netem` on both middle
    /// ends' egress, or, where the kernel has no `sch_netem` (CONFIG_NET_SCH_NETEM off),
    /// an nftables netdev-ingress rule `numgen random mod 100 < pct drop` on both.
    pub fn lose(&mut self, pct: u32) -> Result<()> {
        let netem = |dev: &str| {
            output(self.in_middle("tc").args(["qdisc", "add", "dev", dev, "root", "netem", "loss", &format!("{pct}%")]))
        };
        let (ok, text) = netem(&self.mid_srv_if)?;
        if ok {
            let (ok2, text2) = netem(&self.mid_cli_if)?;
            ensure!(ok2, "tc netem on {}: {text2}", self.mid_cli_if);
            self.nft = false;
            return Ok(());
        }
        println!("  tc netem unavailable ({}); dropping with nftables instead", text.trim());
        // Chain `a` drops towards the server (frames entering from the client side),
        // chain `b` towards the client.
        let rules = format!(
            "table netdev zcloss {{\n chain a {{ type filter hook ingress device \"{a}\" priority 0; numgen random mod 100 < {pct} counter drop; }}\n chain b {{ type filter hook ingress device \"{b}\" priority 0; numgen random mod 100 < {pct} counter drop; }}\n}}\n",
            a = self.mid_cli_if,
            b = self.mid_srv_if,
        );
        let file = std::env::temp_dir().join(format!("zc-{}-{}-loss.nft", std::process::id(), self.middle));
        std::fs::write(&file, rules)?;
        let r = run(self.in_middle("nft").arg("-f").arg(&file))
            .context("nft -f (the kernel has no sch_netem; install nftables: `apt-get install nftables`)");
        let _ = std::fs::remove_file(&file);
        r?;
        self.nft = true;
        Ok(())
    }

    /// Frames the forwarder's packet sockets in the middle could not take (their receive
    /// buffer was full: the kernel's `sk_drops`, which `ss -f link -m` prints as `d<N>`),
    /// towards the client (arriving from the server) and towards the server. These are
    /// losses of the path as much as the loss model's, but the forwarder never sees them.
    pub fn socket_drops(&self) -> Result<(u64, u64)> {
        let (ok, text) = output(self.in_middle("ss").args(["-f", "link", "-m", "-a", "-n"]))?;
        ensure!(ok, "ss -f link -m in {}: {text}", self.middle);
        let (mut to_cli, mut to_srv) = (0, 0);
        for line in text.lines() {
            let Some(d) =
                line.split([',', ')', '(']).find_map(|w| w.strip_prefix('d').and_then(|n| n.parse::<u64>().ok()))
            else {
                continue;
            };
            if line.contains(&format!(":{} ", self.mid_srv_if)) {
                to_cli += d;
            } else if line.contains(&format!(":{} ", self.mid_cli_if)) {
                to_srv += d;
            }
        }
        Ok((to_cli, to_srv))
    }

    /// Frames [`Impaired::lose`] dropped towards the server and towards the client.
    pub fn drops(&self) -> Result<(u64, u64)> {
        let number_after = |text: &str, key: &str| -> Option<u64> {
            text.split(key).nth(1)?.split(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty())?.parse().ok()
        };
        if self.nft {
            let chain = |c: &str| -> Result<u64> {
                let (_, text) = output(self.in_middle("nft").args(["list", "chain", "netdev", "zcloss", c]))?;
                number_after(&text, "counter packets")
                    .with_context(|| format!("no counter in `nft list chain`:\n{text}"))
            };
            return Ok((chain("a")?, chain("b")?));
        }
        let qdisc = |dev: &str| -> Result<u64> {
            let (_, text) = output(self.in_middle("tc").args(["-s", "qdisc", "show", "dev", dev]))?;
            number_after(&text, "dropped").with_context(|| format!("no drop count in `tc -s qdisc`:\n{text}"))
        };
        // netem on the end towards the server drops what goes to the server.
        Ok((qdisc(&self.mid_srv_if)?, qdisc(&self.mid_cli_if)?))
    }
}

impl Drop for Impaired {
    fn drop(&mut self) {
        for n in [&self.server, &self.middle, &self.client] {
            delete(n);
        }
    }
}
