//! `fileserver`: the command line of the static HTTP/1.1 file server (see the library
//! crate's docs for the backends and the session they share).
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use fileserver::access_log::{self, AccessLog};
use fileserver::{addrs, kernel, options, pcap, pidfile, privdrop, root, xdp};
use stack::tcp::CcAlgorithm;

/// Serve a directory over HTTP/1.1 (GET and HEAD, keep-alive, pipelining, single ranges,
/// ETag/Last-Modified validators). Paths never escape --root; no directory listings.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Directory to serve. Every path is resolved beneath it by the kernel (openat2
    /// RESOLVE_BENEATH): `..`, encoded dots and symlinks leading out are refused.
    #[arg(long)]
    root: PathBuf,
    /// Names starting with a dot (`.git`, `.env`): `deny` answers 404, `allow` serves them.
    #[arg(long, value_enum, default_value_t = root::Dotfiles::Deny)]
    dotfiles: root::Dotfiles,
    /// Address to serve on. The xdp backend takes it twice for dual stack, one IPv4 and
    /// one IPv6 address (`--addr 10.0.0.1 --addr fd00::1`); the kernel backend takes one.
    #[arg(long, default_value = "0.0.0.0", action = clap::ArgAction::Append)]
    addr: Vec<IpAddr>,
    /// TCP port to serve on.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// `xdp`: AF_XDP and the user-space zero-copy stack (needs --iface and root);
    /// `kernel`: ordinary sockets with --method (works anywhere).
    #[arg(long, value_enum, default_value_t = Backend::Xdp)]
    backend: Backend,
    /// How the kernel backend moves file bytes to the socket (one rung of the copy ladder).
    /// `direct-uring` uses the pool options below (--block-kib, --blocks, --hugepages,
    /// --cache-blocks, --direct-threshold, --no-direct-io) as the xdp backend does.
    #[arg(long, value_enum, default_value_t = kernel::Method::Sendfile)]
    method: kernel::Method,
    /// Interface to attach to (xdp backend).
    #[arg(long)]
    iface: Option<String>,
    /// Prefix length of the IPv4 --addr on the interface (xdp backend).
    #[arg(long, default_value_t = 24)]
    prefix: u8,
    /// Prefix length of the IPv6 --addr on the interface (xdp backend).
    #[arg(long, default_value_t = 64)]
    prefix6: u8,
    /// First rx queue to bind (xdp backend). With one queue, steer the served flows to it
    /// on a multi-queue NIC (or serve every queue with --queues all).
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// Rx queues to serve (xdp backend), from --queue on, or `all` (every rx queue of the
    /// interface: what a NIC with RSS needs, e.g. after `ethtool -L IFACE combined N`).
    /// One worker thread per queue, pinned to a CPU, each with its own pool, AF_XDP
    /// socket, io_uring, block cache and TCP stack; a flow RSS puts on an unserved queue is
    /// dropped by the XDP program (counted as fileserver_xdp_no_socket_total).
    #[arg(long, default_value = "1")]
    queues: options::Queues,
    /// CPUs to pin the workers to, in queue order, round-robin (e.g. `0,2,4-7`). Default:
    /// the CPUs the process may run on (as `taskset` left them).
    #[arg(long)]
    cpus: Option<options::CpuList>,
    /// Packet frames (4 KiB each) in the pool: RX, TX headers, control packets. Per worker
    /// (each --queues worker has a pool of its own).
    #[arg(long, default_value_t = options::DEFAULT_FRAMES)]
    frames: u32,
    /// Descriptors of the AF_XDP RX ring and of the fill ring, per worker (a power of two,
    /// at most half of --frames: the fill ring keeps that many frames posted to the
    /// kernel). A packet that finds the RX ring full is dropped by the kernel and counted
    /// as fileserver_xsk_rx_ring_full_total; a larger ring absorbs larger bursts, such as
    /// thousands of clients connecting at once. Default: 8192, or half of --frames if
    /// that is less.
    #[arg(long)]
    rx_ring: Option<u32>,
    /// Size of a payload block (a file read lands in one), KiB.
    #[arg(long, default_value_t = options::DEFAULT_BLOCK_KIB)]
    block_kib: u32,
    /// Payload blocks in the pool (cache plus reads in flight plus blocks in send queues).
    /// Per worker: memory is workers x (frames x 4 KiB + blocks x block size). The default
    /// pool is 64 MiB of frames + 1.5 GiB of blocks (800 x 2 MiB hugepages, which
    /// `cargo xtask setup` reserves for one worker).
    #[arg(long, default_value_t = options::DEFAULT_BLOCKS)]
    blocks: u32,
    /// 2 MiB hugepages for the pool: prefer (fall back to 4 KiB with a warning), require, off.
    #[arg(long, default_value = "prefer", value_parser = ["prefer", "require", "off"])]
    hugepages: String,
    /// Blocks the cache keeps for small and hot files (at most three quarters of
    /// --blocks, so streamed files always find room). The default, 1152 MiB, holds a
    /// 1 GiB file and 128 MiB of small ones. Per worker: each worker caches what its flows
    /// ask for, so a hot file may be read from disk (and admitted) once per worker.
    #[arg(long, default_value_t = options::DEFAULT_CACHE_BLOCKS)]
    cache_blocks: u32,
    /// Files larger than this (bytes) stream past the cache by O_DIRECT on their first
    /// request (nginx `directio`); requested again, one that fits in the cache is admitted
    /// if it is requested more often than what it would displace (TinyLFU), so repeated
    /// downloads come from memory while one-off downloads never flush the hot set.
    #[arg(long, default_value_t = options::DEFAULT_DIRECT_THRESHOLD)]
    direct_threshold: u64,
    /// Read files with buffered io_uring reads instead of O_DIRECT.
    #[arg(long)]
    no_direct_io: bool,
    /// Copy payload behind the headers even when multi-buffer is available (for
    /// comparison; the copies are counted).
    #[arg(long)]
    force_copy: bool,
    /// Compute TCP checksums in software even where the AF_XDP socket can leave them to
    /// the kernel or the NIC (TX metadata checksum offload, Linux 6.8+).
    #[arg(long)]
    no_tx_offload: bool,
    /// Congestion control of the served connections: `cubic` (RFC 9438 with HyStart++;
    /// the xdp backend's default, as Linux's built-in one), `bbr` (BBR v1: paces at its
    /// model of the bottleneck and does not slow down for random loss) or `reno`
    /// (NewReno). With --backend kernel it sets TCP_CONGESTION on the listening socket
    /// (any name the kernel has loaded and allows); without it the kernel's
    /// net.ipv4.tcp_congestion_control applies.
    #[arg(long)]
    congestion: Option<String>,
    /// Attach XDP in generic (skb) mode.
    #[arg(long)]
    skb: bool,
    /// Never sleep: each worker spins on its rings (lowest latency, one core busy per
    /// worker). By default a worker that found nothing to do for a few turns sleeps in
    /// poll(2) on its AF_XDP socket and io_uring until input or its next timer, also while
    /// data is in flight.
    #[arg(long)]
    busy: bool,
    /// Control port on the kernel stack: `GET /metrics` returns the counters in the
    /// Prometheus text format (the sum over workers, then each worker's with a `queue`
    /// label, and a histogram of request time), `/connections` one line per TCP connection
    /// (like `ss -tin`), `/health` 200 or 503 naming a stuck worker. Served by a thread of
    /// its own, never by a worker; at most 16 connections, 5 s each.
    #[arg(long, conflicts_with = "metrics_port")]
    metrics_addr: Option<SocketAddr>,
    /// The control port on loopback: the same as --metrics-addr 127.0.0.1:PORT (in the
    /// server's network namespace).
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Write every frame the stack receives and sends to FILE as pcapng (xdp backend;
    /// readable by `tcpdump -r` and `tshark -r`), each with its direction. Written by a
    /// thread of its own: the data path never waits for it, and drops what it cannot hold
    /// (counted as fileserver_pcap_dropped_total). The file is created before privileges
    /// are dropped; rotation creates files beside it as --user.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Bytes kept of each captured frame. 256 holds every header (Ethernet, IPv6, TCP with
    /// all options: 114 bytes) and the start of each payload (request lines, response
    /// heads); 65535 keeps whole frames.
    #[arg(long, default_value_t = 256)]
    pcap_snaplen: u32,
    /// Rotate the capture file before it would grow past this many bytes: FILE becomes
    /// FILE.1, FILE.1 becomes FILE.2, and so on.
    #[arg(long, default_value_t = 1 << 30)]
    pcap_max_bytes: u64,
    /// Capture files kept: FILE and FILE.1 .. FILE.(N-1); the oldest is removed.
    #[arg(long, default_value_t = 4)]
    pcap_files: u32,
    /// After setup, run as this unprivileged user (name or uid). Default: stay as started.
    #[arg(long)]
    user: Option<String>,
    /// Run without the seccomp allowlist (for debugging: a system call outside it ends the
    /// process with a line naming it).
    #[arg(long)]
    no_seccomp: bool,
    /// Leave the process dumpable once set up, so a process of the same uid may ptrace it
    /// (for debugging; it holds the AF_XDP socket, the flow map and the pool).
    #[arg(long)]
    dumpable: bool,
    /// Log every request to FILE (or `-`: standard output) in the combined log format,
    /// as nginx and Apache write it. Written by a thread of its own; lines that find its
    /// queue full are dropped and counted (fileserver_access_log_dropped_total). SIGHUP
    /// reopens FILE (after logrotate moved it). Off by default.
    #[arg(long, value_name = "FILE|-")]
    access_log: Option<access_log::Target>,
    /// Write the server's pid to PATH once set up (before `ready`); removed at exit.
    #[arg(long, value_name = "PATH")]
    pid_file: Option<PathBuf>,
    /// Most connections open at once; more are accepted and closed. On AF_XDP it also sizes
    /// the TCP table: twice this (sessions, and the orphans they leave while closing) plus
    /// 1024 half-open and 1024 waiting to be accepted; TIME-WAIT entries are compact and
    /// capped apart. An idle connection costs about 700 bytes of table.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a client has to send a complete request head (slowloris guard).
    #[arg(long, default_value_t = 10)]
    head_timeout: u64,
    /// Seconds an idle keep-alive connection stays open.
    #[arg(long, default_value_t = 30)]
    idle_timeout: u64,
    /// Seconds a response may make no progress (no byte acknowledged by the client)
    /// before the connection is reset.
    #[arg(long, default_value_t = 30)]
    write_timeout: u64,
    /// Most payload blocks one connection may hold, read ahead and unacknowledged; when
    /// the pool runs short, connections get a fair share of it instead (xdp backend).
    #[arg(long, default_value_t = 32)]
    conn_blocks: u32,
}

impl Args {
    /// The pool's hugepage policy from `--hugepages`.
    fn hugepages(&self) -> umem::HugePages {
        match self.hugepages.as_str() {
            "require" => umem::HugePages::Require,
            "off" => umem::HugePages::Off,
            _ => umem::HugePages::Prefer,
        }
    }

    /// What to give up once set up.
    fn confine(&self) -> privdrop::Confine {
        let extra = privdrop::seccomp::Extra {
            append_log: matches!(self.access_log, Some(access_log::Target::File(_))),
            remove_pid_file: self.pid_file.is_some(),
            rotate_capture: self.pcap.is_some(),
        };
        privdrop::Confine { user: self.user.clone(), no_seccomp: self.no_seccomp, dumpable: self.dumpable, extra }
    }

    /// The control port's address: --metrics-addr, or loopback with --metrics-port.
    fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr.or(self.metrics_port.map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p)))
    }

    /// The packet capture's settings.
    fn pcap_opts(&self) -> pcap::PcapOpts {
        pcap::PcapOpts {
            file: self.pcap.clone(),
            snaplen: self.pcap_snaplen,
            max_bytes: self.pcap_max_bytes,
            files: self.pcap_files,
        }
    }

    /// The pool and cache settings both backends use.
    fn pool_opts(&self) -> options::PoolOpts {
        options::PoolOpts {
            block_kib: self.block_kib,
            blocks: self.blocks,
            hugepages: self.hugepages(),
            cache_blocks: self.cache_blocks,
            direct_threshold: self.direct_threshold,
            direct_io: !self.no_direct_io,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// Kernel TCP sockets (works everywhere, no XDP needed).
    Kernel,
    /// AF_XDP with the user-space zero-copy stack.
    Xdp,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("fileserver: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    raise_open_file_limit();
    let root = root::Root::with_policy(&args.root, args.dotfiles)?;
    let limits = options::Limits {
        max_connections: args.max_connections,
        head_timeout: Duration::from_secs(args.head_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        write_timeout: Duration::from_secs(args.write_timeout),
        conn_blocks: args.conn_blocks,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let dump = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, dump.clone()).context("installing SIGUSR1")?;
    // SIGHUP reopens the log files (and no longer ends the process).
    let reopen = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reopen.clone()).context("installing SIGHUP")?;
    // Before the log thread starts, which must inherit no_new_privs and the empty
    // bounding set (the drop to --user checks every thread).
    privdrop::before_threads()?;
    let log = args.access_log.clone().map(|t| AccessLog::start(t, access_log::QUEUE, reopen)).transpose()?;
    let result = serve(&args, root, limits, &stop, &dump, log.as_ref());
    if let Some(l) = log {
        l.finish();
    }
    result
}

fn serve(
    args: &Args,
    root: root::Root,
    limits: options::Limits,
    stop: &Arc<AtomicBool>,
    dump: &Arc<AtomicBool>,
    log: Option<&AccessLog>,
) -> Result<()> {
    match args.backend {
        Backend::Xdp => {
            let Some(iface) = args.iface.clone() else {
                bail!("--backend xdp needs --iface (the interface to attach to); for a server without XDP use --backend kernel")
            };
            let congestion = match &args.congestion {
                Some(cc) => cc.parse().map_err(|e: String| anyhow::anyhow!("--congestion: {e}"))?,
                None => CcAlgorithm::default(),
            };
            let opts = xdp::XdpOpts {
                iface,
                addrs: addrs::ServeAddrs::new(&args.addr, args.prefix, args.prefix6).map_err(anyhow::Error::msg)?,
                port: args.port,
                queue: args.queue,
                queues: args.queues,
                cpus: args.cpus.clone().map(|c| c.0),
                frames: args.frames,
                rx_ring: options::rx_ring(args.rx_ring, args.frames).map_err(anyhow::Error::msg)?,
                pool: args.pool_opts(),
                force_copy: args.force_copy,
                congestion,
                tx_offload: !args.no_tx_offload,
                skb: args.skb,
                busy: args.busy,
                metrics_addr: args.metrics_addr(),
                pcap: args.pcap_opts(),
                confine: args.confine(),
                limits,
                access_log: log.map(AccessLog::sender),
                pid_file: args.pid_file.clone(),
            };
            xdp::run(opts, root, args.root.clone(), stop, dump).map_err(|e| {
                e.context("the AF_XDP backend could not start; without XDP (no root, a NIC or container without it) run with --backend kernel")
            })?;
        }
        Backend::Kernel => {
            if args.queues != options::Queues::Count(1) || args.cpus.is_some() {
                bail!("--queues and --cpus are for --backend xdp (the kernel backend runs one thread)");
            }
            if args.pcap.is_some() {
                bail!("--pcap is for --backend xdp (the kernel's own traffic: use tcpdump -i IFACE)");
            }
            let [ip] = args.addr[..] else {
                bail!("the kernel backend binds one --addr (`--addr ::` serves both families where net.ipv6.bindv6only is 0)")
            };
            let addr = SocketAddr::new(ip, args.port);
            let metrics = args.metrics_addr();
            let cc = args.congestion.as_deref();
            let mut server = kernel::Server::bind(addr, metrics, args.method, &args.pool_opts(), root, limits, cc)?;
            if let Some(l) = log {
                server.log_to(l.sender());
            }
            println!("fileserver on http://{addr}/ serving {}", args.root.display());
            println!("  backend         kernel sockets (epoll)");
            println!("  method          {}", args.method.name());
            for line in server.describe() {
                println!("{line}");
            }
            if let Some(m) = metrics {
                println!("  control port    http://{m}/metrics");
            }
            let pid_file = args.pid_file.as_deref().map(pidfile::PidFile::create).transpose()?;
            if let Some(p) = &pid_file {
                println!("  pid file        {} ({})", p.path().display(), std::process::id());
            }
            for line in privdrop::confine(&args.confine())? {
                println!("{line}");
            }
            println!("ready");
            privdrop::forbidden_syscall_hook();
            server.run(stop, dump)?;
            println!("fileserver: stopping");
            print!("{}", server.render());
            drop(pid_file);
        }
    }
    Ok(())
}

/// Raises the soft limit on open files (`RLIMIT_NOFILE`) to the hard limit: connections,
/// pipes and held files each take a descriptor, and the default soft limit (1024) is
/// below `--max-connections` with `splice`. Running out is still handled (503, counted).
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let lim = getrlimit(Resource::Nofile);
    if lim.current == lim.maximum {
        return;
    }
    let raised = rustix::process::Rlimit { current: lim.maximum, maximum: lim.maximum };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => log::info!("RLIMIT_NOFILE raised from {:?} to its hard limit {:?}", lim.current, lim.maximum),
        Err(e) => log::warn!("raising RLIMIT_NOFILE to {:?}: {e}", lim.maximum),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_parses_every_option() {
        Args::command().debug_assert();
        let a = Args::try_parse_from([
            "fileserver",
            "--root",
            "/srv",
            "--queues",
            "all",
            "--cpus",
            "0,2-3",
            "--metrics-port",
            "9100",
            "--access-log",
            "-",
            "--pid-file",
            "/run/fs.pid",
        ])
        .unwrap();
        assert_eq!(a.access_log, Some(access_log::Target::Stdout));
        assert_eq!(a.pid_file, Some(PathBuf::from("/run/fs.pid")));
        assert_eq!(a.queues, options::Queues::All);
        assert_eq!(a.cpus, Some(options::CpuList(vec![0, 2, 3])));
        assert_eq!(a.congestion, None);
        assert_eq!(a.metrics_addr(), Some("127.0.0.1:9100".parse().unwrap()));
        let a = Args::try_parse_from(["fileserver", "--root", "/srv", "--congestion", "bbr"]).unwrap();
        assert_eq!(a.congestion.as_deref(), Some("bbr"));
        let a = Args::try_parse_from(["fileserver", "--root", "/srv", "--metrics-addr", "10.0.0.1:9"]).unwrap();
        assert_eq!((a.queues, a.metrics_addr()), (options::Queues::Count(1), Some("10.0.0.1:9".parse().unwrap())));
        assert!(Args::try_parse_from([
            "fileserver",
            "--root",
            "/",
            "--metrics-addr",
            "1.2.3.4:5",
            "--metrics-port",
            "6"
        ])
        .is_err());
    }

    #[test]
    fn addr_twice_is_dual_stack_and_pcap_takes_its_settings() {
        let a = Args::try_parse_from([
            "fileserver",
            "--root",
            "/srv",
            "--addr",
            "10.0.0.1",
            "--addr",
            "fd00::1",
            "--prefix6",
            "48",
            "--pcap",
            "/var/tmp/x.pcapng",
            "--pcap-max-bytes",
            "2000000",
        ])
        .unwrap();
        let s = addrs::ServeAddrs::new(&a.addr, a.prefix, a.prefix6).unwrap();
        assert_eq!(s.v4, Some(("10.0.0.1".parse().unwrap(), 24)));
        assert_eq!(s.v6, Some(("fd00::1".parse().unwrap(), 48)));
        let p = a.pcap_opts();
        assert_eq!(
            (p.file.as_deref(), p.snaplen, p.max_bytes, p.files),
            (Some("/var/tmp/x.pcapng".as_ref()), 256, 2_000_000, 4)
        );
        assert_eq!(p.check(), Ok(()));
        let one = Args::try_parse_from(["fileserver", "--root", "/srv"]).unwrap();
        assert_eq!(one.addr, ["0.0.0.0".parse::<IpAddr>().unwrap()], "the default is one address");
        assert_eq!(one.pcap_opts().file, None);
    }
}
