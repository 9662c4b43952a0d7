//! `cargo xtask`: the project's one entry point for setting up a machine, building the
//! network namespaces, running the demo, the tests and the benchmarks.
#![forbid(unsafe_code)]

mod bench;
mod bench_blocks;
mod client;
mod conns;
mod demo;
mod ebpf;
mod fabric;
mod fabric_bench;
mod fs6test;
mod fscache;
mod fshostile;
mod fstest;
mod fuzz;
mod impair;
mod ladder;
mod loadgen;
mod mqtest;
mod msg;
mod netns;
mod nginx;
mod nstest;
mod offloadtest;
mod opstest;
mod pcaptest;
mod pipeline;
mod setup;
mod soak;
mod tcpcraft;
mod tcpflood;
mod tcptest;
mod toolchain;
mod txceil;
mod util;
mod wan;

use std::net::SocketAddr;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::util::{root, run};

/// Build, test and benchmark the zero-copy stack. Commands that need a prepared machine
/// run `setup` first when something is missing.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Install what a fresh machine lacks, at the versions pinned in ebpf/toolchain.toml:
    /// Debian tools (iproute2, curl, wget, ethtool, nginx, wrk, ...), LLVM 22 dev packages,
    /// the dated nightly with rust-src, bpf-linker built against LLVM 22, and reserved
    /// hugepages. Idempotent: each step checks the version it finds and replaces a wrong one.
    Setup {
        /// Print each requirement with the version found and the one needed; change nothing.
        #[arg(long)]
        check: bool,
        /// Only what `cargo xtask demo` needs (no LLVM, no nightly, no bpf-linker).
        #[arg(long)]
        demo: bool,
    },
    /// Rebuild the steering XDP program (ebpf/steer) with the pinned toolchain into the
    /// committed object ebpf/steer.bpf.o and its input digest. Run it after editing
    /// anything under ebpf/, and commit both files.
    Ebpf {
        /// Only check that the committed object matches its sources (digest, then a
        /// byte-for-byte rebuild); write nothing.
        #[arg(long)]
        check: bool,
        /// With --check: compare digests only, without rebuilding.
        #[arg(long, requires = "check")]
        no_rebuild: bool,
    },
    /// Create or remove the two test namespaces joined by a veth pair.
    Netns {
        #[command(subcommand)]
        cmd: NetnsCmd,
    },
    /// Run the main demo end to end in fresh namespaces, then tear them down.
    Demo,
    /// Run every test: unit tests (no root needed) and namespace tests (root).
    Test {
        /// Only namespace tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Skip the unit tests (cargo test --workspace).
        #[arg(long)]
        no_unit: bool,
    },
    /// Run the fuzz targets in fuzz/ (cargo-fuzz on the pinned nightly), each for a while,
    /// from its committed seed corpus; prints executions and coverage per target and fails
    /// on a crash, naming the input and how to minimize it.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only this target (see fuzz/Cargo.toml).
        target: Option<String>,
    },
    /// Soak the AF_XDP file server: N minutes of mixed load through 1% loss and 1%
    /// reordering each way (wrk on keep-alive connections, ab with a connection per
    /// request, 1 GiB downloads checked by sha256, random ranges checked against the
    /// source, downloads killed mid-transfer, zero-window stallers, a SYN burst every
    /// minute), then wait for the connections to time out and check: no mismatch, every
    /// pool frame and block back, the connection table empty, resident memory within 5% of
    /// its value after the first minute, descriptors back, the same server process
    /// throughout. Exits nonzero naming each failed check.
    Soak(soak::SoakOpts),
    /// Benchmarks, each side by side with the kernel's own path in the same run.
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
    /// Programs run inside namespaces by the tests and benchmarks.
    #[command(hide = true)]
    Internal {
        #[command(subcommand)]
        cmd: Internal,
    },
}

#[derive(Subcommand, Debug)]
enum NetnsCmd {
    /// Create a server and a client namespace joined by veth (10.77.0.1 <-> 10.77.0.2,
    /// fd77::1 <-> fd77::2) and leave them for manual use.
    Up {
        /// MTU of the veth pair.
        #[arg(long, default_value_t = 1500)]
        mtu: u32,
    },
    /// Remove the namespaces `netns up` left, and any left by runs that died (names
    /// starting with `zc-`); namespaces of a test run still in progress are kept.
    Down,
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// The AF_XDP transmit ceiling of the veth pair from one core: prebuilt packets, the
    /// TX ring kept full, at MTU 1500 and 9000 (multi-buffer); packets/s and Gbit/s.
    Txceil {
        /// Seconds per MTU.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Leave the client's receive processing on the sender's core (veth's default)
        /// instead of moving it to the other core with RPS.
        #[arg(long)]
        same_core: bool,
    },
    /// The file server's whole user-space path (HTTP, block cache, TCP, TX descriptors,
    /// ACK processing) in one process over a simulated NIC, one core, no kernel in the
    /// loop: Gbit/s and ns per segment for a cached large file at MTU 1500 and 9000, and
    /// requests/s for 16 KiB files (target/bench/pipeline.md). What carries to a
    /// zero-copy NIC.
    Pipeline(pipeline::Opts),
    /// AF_XDP UDP echo vs a kernel UDP echo server: datagrams per second and the ratio.
    Echo {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// The copy ladder: every kernel-backend method, the AF_XDP backend and nginx on the
    /// same veth pair and files; one table (target/bench/ladder.md) and chart (ladder.svg).
    Ladder(ladder::BenchOpts),
    /// The file server on AF_XDP against nginx (`sendfile on`, and `aio threads;
    /// directio`), each pinned to one core: 1 GiB download, wrk over 1 MiB and 16 KiB sets
    /// at 4, 16 and 64 connections, at MTU 1500 and 9000, the client's receive on its own
    /// core (RPS); throughput as ratios to nginx sendfile, server user and system CPU s/GiB,
    /// and the AF_XDP server's packets/s as a share of the `txceil` ceiling measured in the
    /// same run. Reports in target/bench/files-<mtu>.md/.svg.
    Files {
        /// Seconds per wrk run.
        #[arg(long, default_value_t = 8)]
        seconds: u64,
        /// A short run.
        #[arg(long)]
        quick: bool,
        /// Instead of the nginx comparison: the AF_XDP server with each of these worker
        /// counts (e.g. `1,2`) on a veth pair with as many queues; requests/s of the 16 KiB
        /// set over keep-alive and with a connection per request, with the server's and the
        /// client's CPU use (target/bench/files-queues.md).
        #[arg(long, value_delimiter = ',')]
        queues: Option<Vec<u32>>,
        /// Instead of the nginx comparison: the AF_XDP server without a capture, with a
        /// control port (a capture could start: armed, off) and with `--pcap FILE` (on),
        /// the same two sets as --queues (target/bench/files-capture.md). The first two
        /// rows differing would mean the capture costs something while off.
        #[arg(long, conflicts_with = "queues")]
        capture: bool,
        /// wrk connections of the --queues and --capture runs.
        #[arg(long, default_value_t = 16)]
        connections: u32,
        /// wrk connections of the nginx comparison: both sets run at each.
        #[arg(long, value_delimiter = ',', default_value = "4,16,64", conflicts_with_all = ["queues", "capture"])]
        wrk_connections: Vec<u32>,
        /// MTUs of the nginx comparison (a report each).
        #[arg(long, value_delimiter = ',', default_value = "1500,9000", conflicts_with_all = ["queues", "capture"])]
        mtu: Vec<u32>,
        /// Leave the client's receive processing on the server's core (veth's default)
        /// instead of steering it to the client's CPU with RPS as on two hosts.
        #[arg(long)]
        same_core: bool,
    },
    /// Many and short connections, the file server on AF_XDP vs nginx (`sendfile on`),
    /// each pinned to one core: 1 KiB files with a connection per request (wrk with
    /// `Connection: close`, and `ab -n 200000 -c 32`), and 16 KiB files over 100, 1,000
    /// and 10,000 keep-alive connections; requests/s, failures and ratios in
    /// target/bench/conns.md.
    Conns(conns::ConnsOpts),
    /// Message endpoint vs kernel UDP (blocking, SO_BUSY_POLL, spinning): RTT percentiles
    /// and one-way message rate for 64 B and 1 KiB, printed as ratios.
    Msg {
        /// Seconds per measurement (each row is also capped at 100,000 round trips).
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// File blocks into memory: io_uring O_DIRECT into the pool vs buffered read vs mmap,
    /// cold and warm; throughput, CPU seconds per GiB and ratios.
    Blocks {
        /// Size of the test file in MiB.
        #[arg(long, default_value_t = 2048)]
        size_mib: u64,
    },
    /// Downloads through a wide-area path (the impairing forwarder: delay, loss,
    /// reordering): our TCP vs the kernel's sendfile over a grid of RTT by loss, printed
    /// as ratios, with retransmitted bytes against the bytes the forwarder dropped.
    Wan(wan::WanOpts),
    /// The libfabric provider: fi_pingpong latency and MB/s against libfabric's udp and
    /// tcp providers (and ofi_rxd over ours), and MPI ping-pong against Open MPI's btl tcp,
    /// on one veth pair; ratios in target/bench/fabric.md.
    Fabric {
        /// fi_pingpong runs per row (the median is printed).
        #[arg(long, default_value_t = 5)]
        runs: u32,
        /// fi_pingpong iterations at 64 B (a tenth of them at 64 KiB and for MPI).
        #[arg(long, default_value_t = 20000)]
        iters: u32,
        /// MTUs of the veth pair (every row runs at each; HPC Ethernet runs 9000).
        #[arg(long, value_delimiter = ',', default_value = "1500,9000")]
        mtu: Vec<u32>,
    },
    /// One TCP connection: our stack over AF_XDP vs the kernel's sendfile, the same file
    /// to curl on the same veth pair, MTU 1500 and 9000; throughput and server CPU s/GiB,
    /// printed as ratios.
    Tcp {
        /// Size of the file in MiB.
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        /// Timed downloads per path and MTU (the median is printed), after one warm-up.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
}

#[derive(Subcommand, Debug)]
enum Internal {
    UdpCheck {
        #[arg(long)]
        server: SocketAddr,
        #[arg(long)]
        count: u32,
        #[arg(long)]
        max_size: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    UdpFlood {
        #[arg(long)]
        server: SocketAddr,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        seconds: f64,
        #[arg(long, default_value_t = 64)]
        window: u32,
    },
    UdpKernelEcho {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    TcpRefused {
        #[arg(long)]
        server: SocketAddr,
    },
    /// Lossy, reordering AF_PACKET forwarder between two interfaces (middle namespace).
    Impair {
        #[arg(long)]
        a: String,
        #[arg(long)]
        b: String,
        /// Mean loss each way, percent.
        #[arg(long, default_value_t = 1.0)]
        loss_pct: f64,
        /// Mean loss burst in frames (Gilbert-Elliott); 1 for independent losses.
        #[arg(long, default_value_t = 1.0)]
        burst_len: f64,
        /// Frames reordered (by one) each way, percent.
        #[arg(long, default_value_t = 1.0)]
        reorder_pct: f64,
        /// One-way delay each way, milliseconds (RTT = 2 x this).
        #[arg(long, default_value_t = 0.0)]
        delay_ms: f64,
        /// Extra uniform random delay, milliseconds (delays without reordering).
        #[arg(long, default_value_t = 0.0)]
        jitter_ms: f64,
        /// Bottleneck rate each way, Mbit/s (default: unlimited).
        #[arg(long)]
        rate_mbit: Option<f64>,
        /// Bottleneck queue, KiB (drop-tail).
        #[arg(long, default_value_t = 2048)]
        queue_kb: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 600.0)]
        seconds: f64,
    },
    /// Frames forged inside a jumbo packet, and a request in two RX fragments (MTU 9000).
    TcpJumbo {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        server: std::net::SocketAddrV4,
        #[arg(long)]
        server_mac: String,
    },
    /// Kernel TCP clients with a tiny receive buffer that ask for a range and never read.
    Stallers {
        #[arg(long)]
        server: std::net::SocketAddrV4,
        /// Empty: connect and send nothing.
        #[arg(long)]
        path: String,
        #[arg(long)]
        count: u16,
        #[arg(long)]
        first_port: u16,
        #[arg(long, default_value_t = 600)]
        seconds: u64,
    },
    /// Spoofed SYNs from random sources, seeded (the soak's bursts).
    SynFlood {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        server: std::net::SocketAddrV4,
        #[arg(long)]
        server_mac: String,
        #[arg(long, default_value_t = 20_000)]
        syns: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Zero-window stallers: tiny receive buffers that never read (the soak's).
    SoakStall {
        #[arg(long)]
        server: SocketAddr,
        #[arg(long, default_value = "/big")]
        path: String,
        #[arg(long, default_value_t = 4)]
        conns: u32,
        #[arg(long, default_value_t = 45)]
        hold_secs: u64,
        /// SO_RCVBUF before the handshake (the kernel raises it to its minimum).
        #[arg(long, default_value_t = 256)]
        rcvbuf: usize,
    },
    /// Resource attacks against a TCP server from spoofed addresses.
    TcpFlood {
        #[command(subcommand)]
        attack: FloodCmd,
    },
    /// Malformed segments, bad RSTs and a SYN flood against a TCP server.
    TcpCraft {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        server: std::net::SocketAddrV4,
        #[arg(long)]
        server_mac: String,
        #[arg(long, default_value_t = 1000)]
        count: u32,
        #[arg(long, default_value_t = 100_000)]
        syns: u32,
    },
}

#[derive(Subcommand, Debug)]
enum FloodCmd {
    /// Connections that send one-byte segments out of order, then fall silent.
    Ooo {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        server: std::net::SocketAddrV4,
        #[arg(long)]
        server_mac: String,
        #[arg(long, default_value_t = 32)]
        conns: u32,
        #[arg(long, default_value_t = 512)]
        segs: u32,
        /// Source port of the first connection (the others follow).
        #[arg(long, default_value_t = 30000)]
        first_port: u16,
    },
    /// Connections that fetch a file with `Connection: close`, acknowledge the FIN and
    /// fall silent (the server is left in FIN-WAIT-2).
    FinWait2 {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        server: std::net::SocketAddrV4,
        #[arg(long)]
        server_mac: String,
        #[arg(long, default_value_t = 70_000)]
        conns: u32,
        #[arg(long, default_value = "/tiny")]
        path: String,
        /// Connections in progress at once.
        #[arg(long, default_value_t = 512)]
        window: u32,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = dispatch(cli.cmd) {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Setup { check, demo } => {
            let profile = if demo { setup::Profile::Demo } else { setup::Profile::Full };
            if check {
                setup::check(profile)
            } else {
                setup::run_all(profile)
            }
        }
        Cmd::Ebpf { check: false, .. } => ebpf::build_and_write(),
        Cmd::Ebpf { check: true, no_rebuild } => ebpf::check(!no_rebuild),
        Cmd::Netns { cmd: NetnsCmd::Up { mtu } } => {
            setup::require_root("creating namespaces")?;
            let ns = netns::Netns::up("m", mtu)?;
            println!("server namespace {} ({} = 10.77.0.1, fd77::1)", ns.server, ns.srv_if);
            println!("client namespace {} ({} = 10.77.0.2, fd77::2)", ns.client, ns.cli_if);
            println!("run inside with `ip netns exec {} ...`; remove with `cargo xtask netns down`", ns.server);
            ns.keep();
            Ok(())
        }
        Cmd::Netns { cmd: NetnsCmd::Down } => {
            let names = netns::ours();
            netns::remove(&names);
            println!(
                "removed {} namespace(s){}",
                names.len(),
                if names.is_empty() { String::new() } else { format!(": {}", names.join(" ")) }
            );
            Ok(())
        }
        Cmd::Demo => demo(),
        Cmd::Fuzz { seconds, target } => {
            setup::ensure(setup::Profile::Full)?;
            fuzz::run(seconds, target.as_deref()).map(|_| ())
        }
        Cmd::Test { filter, no_unit } => test(filter, no_unit),
        Cmd::Soak(opts) => {
            let bins = prepare()?;
            soak::run(&bins, &opts)
        }
        Cmd::Bench { what: BenchCmd::Txceil { seconds, same_core } } => {
            let bins = prepare()?;
            txceil::bench(&bins, seconds, same_core)
        }
        Cmd::Bench { what: BenchCmd::Pipeline(opts) } => {
            prepare()?;
            pipeline::bench(&opts)
        }
        Cmd::Bench { what: BenchCmd::Echo { seconds } } => {
            let bins = prepare()?;
            bench::echo(&bins, seconds)
        }
        Cmd::Bench { what: BenchCmd::Files { seconds, quick, capture: true, connections, .. } } => {
            let bins = prepare()?;
            ladder::capture_bench(&bins, if quick { seconds.min(2) } else { seconds }, connections)
        }
        Cmd::Bench { what: BenchCmd::Files { seconds, quick, queues: Some(queues), connections, .. } } => {
            let bins = prepare()?;
            ladder::scale_bench(&bins, &queues, if quick { seconds.min(2) } else { seconds }, connections)
        }
        Cmd::Bench { what: BenchCmd::Files { seconds, quick, queues: None, wrk_connections, mtu, same_core, .. } } => {
            let bins = prepare()?;
            for mtu in mtu {
                let opts = ladder::BenchOpts {
                    seconds,
                    size_mib: 1024,
                    quick,
                    only: Some("nginx,AF_XDP".into()),
                    mtu,
                    report: format!("files-{mtu}"),
                    connections: wrk_connections.clone(),
                    same_core,
                    versus: "nginx sendfile".into(),
                    ceiling: true,
                };
                ladder::bench(&bins, &opts)?;
            }
            Ok(())
        }
        Cmd::Bench { what: BenchCmd::Ladder(opts) } => {
            let bins = prepare()?;
            ladder::bench(&bins, &opts)
        }
        Cmd::Bench { what: BenchCmd::Conns(opts) } => {
            let bins = prepare()?;
            conns::bench(&bins, &opts)
        }
        Cmd::Bench { what: BenchCmd::Msg { seconds } } => {
            let bins = prepare()?;
            msg::bench(&bins.msg, seconds)
        }
        Cmd::Bench { what: BenchCmd::Blocks { size_mib } } => {
            setup::ensure(setup::Profile::Full)?;
            bench_blocks::run(size_mib)
        }
        Cmd::Bench { what: BenchCmd::Wan(opts) } => {
            let bins = prepare()?;
            wan::bench(&bins, &opts)
        }
        Cmd::Bench { what: BenchCmd::Fabric { runs, iters, mtu } } => {
            setup::require_root("bench fabric (it creates namespaces and attaches XDP)")?;
            setup::ensure(setup::Profile::Full)?;
            netns::install_cleanup();
            fabric_bench::bench(&fabric::Provider::default(), runs, iters, &mtu)
        }
        Cmd::Bench { what: BenchCmd::Tcp { size_mib, runs } } => {
            let bins = prepare()?;
            tcptest::bench(&bins, size_mib, runs)
        }
        Cmd::Internal { cmd } => match cmd {
            Internal::UdpCheck { server, count, max_size, seed } => client::udp_check(server, count, max_size, seed),
            Internal::UdpFlood { server, size, seconds, window } => client::udp_flood(server, size, seconds, window),
            Internal::UdpKernelEcho { port, seconds } => client::udp_kernel_echo(port, seconds),
            Internal::TcpRefused { server } => client::tcp_refused(server),
            Internal::Impair {
                a,
                b,
                loss_pct,
                burst_len,
                reorder_pct,
                delay_ms,
                jitter_ms,
                rate_mbit,
                queue_kb,
                seed,
                seconds,
            } => impair::impair(
                &a,
                &b,
                &impair::Args {
                    loss_pct,
                    burst_len,
                    reorder_pct,
                    delay_ms,
                    jitter_ms,
                    rate_mbit,
                    queue_kb,
                    seed,
                    seconds,
                },
            ),
            Internal::SynFlood { iface, server, server_mac, syns, seed } => {
                tcpcraft::syn_flood(&iface, server, &server_mac, syns, seed)
            }
            Internal::SoakStall { server, path, conns, hold_secs, rcvbuf } => {
                soak::stall::run(server, &path, conns, std::time::Duration::from_secs(hold_secs), rcvbuf)
            }
            Internal::TcpCraft { iface, server, server_mac, count, syns } => {
                tcpcraft::craft(&iface, server, &server_mac, count, syns)
            }
            Internal::TcpJumbo { iface, server, server_mac } => tcpcraft::jumbo(&iface, server, &server_mac),
            Internal::Stallers { server, path, count, first_port, seconds } => {
                fshostile::stallers(server, &path, count, first_port, seconds)
            }
            Internal::TcpFlood { attack } => match attack {
                FloodCmd::Ooo { iface, server, server_mac, conns, segs, first_port } => {
                    tcpflood::ooo(&iface, server, &server_mac, conns, segs, first_port)
                }
                FloodCmd::FinWait2 { iface, server, server_mac, conns, path, window } => {
                    tcpflood::fin_wait2(&iface, server, &server_mac, conns, &path, window)
                }
            },
        },
    }
}

/// Setup if needed, then the release binaries the namespace runs drive.
fn prepare() -> Result<nstest::Bins> {
    prepare_for(setup::Profile::Full)
}

fn prepare_for(profile: setup::Profile) -> Result<nstest::Bins> {
    setup::require_root("namespace tests, the demo and benchmarks (they create namespaces and attach XDP)")?;
    setup::ensure(profile)?;
    netns::install_cleanup();
    println!("building release binaries ...");
    run(Command::new(env!("CARGO")).current_dir(root()).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "udp-echo",
        "-p",
        "fileserver",
        "-p",
        "pingpong",
        "-p",
        "msgrate",
        "-p",
        "txceil",
    ]))?;
    let xtask = std::env::current_exe()?;
    Ok(nstest::Bins {
        echo: nstest::release_bin(&root(), "udp-echo")?,
        fileserver: nstest::release_bin(&root(), "fileserver")?,
        txceil: nstest::release_bin(&root(), "txceil")?,
        msg: msg::MsgBins {
            pingpong: nstest::release_bin(&root(), "pingpong")?,
            msgrate: nstest::release_bin(&root(), "msgrate")?,
        },
        xtask,
    })
}

/// How long the test command runs each fuzz target (`cargo xtask fuzz` runs longer).
const FUZZ_REGRESSION_SECONDS: u64 = 20;

fn test(filter: Option<String>, no_unit: bool) -> Result<()> {
    setup::ensure(setup::Profile::Full)?;
    let mut failed = false;
    if !no_unit && filter.is_none() {
        println!("format: cargo fmt --all --check");
        run(Command::new(env!("CARGO")).current_dir(root()).args(["fmt", "--all", "--check"]))
            .context("the tree is not formatted: run `cargo fmt --all`")?;
        println!("lints: cargo clippy --workspace --all-targets -- -D warnings");
        run(Command::new(env!("CARGO")).current_dir(root()).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ]))
        .context("clippy found warnings")?;
        // The committed XDP object must come from the sources in the tree.
        println!("eBPF object: cargo xtask ebpf --check");
        ebpf::check(true).context("eBPF object check")?;
        println!("fuzz regression: every target for {FUZZ_REGRESSION_SECONDS} s over its committed corpus");
        fuzz::run(FUZZ_REGRESSION_SECONDS, None).context("fuzz regression")?;
        println!("unit tests: cargo test --workspace");
        if run(Command::new(env!("CARGO")).current_dir(root()).args(["test", "--workspace"])).is_err() {
            failed = true;
            println!("unit tests: FAILED");
        }
    }
    let bins = prepare()?;
    let mut suite = nstest::Suite::new(filter);
    nstest::run(&mut suite, &bins);
    fstest::tests(&mut suite, &bins);
    fshostile::tests(&mut suite, &bins);
    opstest::tests(&mut suite, &bins);
    fs6test::tests(&mut suite, &bins);
    pcaptest::tests(&mut suite, &bins);
    fscache::tests(&mut suite, &bins);
    offloadtest::tests(&mut suite, &bins);
    ladder::tests(&mut suite, &bins);
    mqtest::tests(&mut suite, &bins);
    msg::tests(&mut suite, &bins.msg);
    tcptest::tests(&mut suite, &bins);
    fabric::tests(&mut suite, &fabric::Provider::default());
    let ns = suite.finish("namespace tests");
    if failed {
        bail!("unit tests or the eBPF object check failed (see above)");
    }
    ns
}

fn demo() -> Result<()> {
    let bins = prepare_for(setup::Profile::Demo)?;
    demo::run(&bins)
}
