//! The `pipeline` benchmark: the AF_XDP backend's whole user-space path (HTTP session,
//! block cache, TCP, TX descriptors, ACK processing) in one process over a simulated NIC,
//! with a client cheap enough that the figure is the server's. This is what carries to a
//! zero-copy NIC, where the kernel's copy-mode transmit (the cost on veth) is gone.
//!
//! ```text
//!   server phase (timed):  complete last turn's TX descriptors ─► clock read ─► <= 64 RX
//!                          frames ─► Core::receive ─► Core::turn(now, BenchLink)
//!   client phase (timed apart): each packet in the ring ─► Client::receive ─► ACKs and
//!                          requests into frames of the server's pool (the NIC's RX DMA)
//! ```
//!
//! That is the run loop of [`crate::xdp::run`] with the socket replaced: the same [`Core`],
//! the same default pool and cache, the same stack configuration, one clock read per
//! turn. No kernel is in the loop except io_uring reads of uncached blocks, and the timed
//! workloads are served from the cache (the disk bytes they read are reported; 0 is
//! expected): a large file downloaded after the two requests that admit it, and a set of
//! small files after one request each.
//!
//! TCP checksums are left to the NIC by default, as the file server does where its socket
//! has TX metadata (and zero-copy NICs finish them in hardware); `tx_offload` off makes
//! the server sum every payload byte itself, as it must on a device without.

pub mod client;
pub mod link;

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant as WallInstant};

use anyhow::{bail, Context, Result};
use smoltcp::wire::{EthernetAddress, IpAddress, Ipv4Address, Ipv4Cidr};
use stack::sim::Stream;
use stack::{Stack, StackConfig, TxOffload};
use umem::{BlockCache, BlockReader, BufSlice, HugePages, Pool, PoolConfig};

use self::client::{Client, ClientStats, Plan};
use self::link::BenchLink;
use crate::options::{Limits, PoolOpts};
use crate::root::Root;
use crate::session::Clock;
use crate::xdp::Core;

const SERVER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
const PORT: u16 = 80;
/// Frames the server takes per turn (the AF_XDP loop's RX batch).
const RX_BATCH: usize = 64;
/// Seed of the large file's bytes; small file `i` uses `SMALL_SEED + i`.
const LARGE_SEED: u64 = 1;
const SMALL_SEED: u64 = 1000;
/// The TX metadata the file server's socket registers (`sizeof(struct xsk_tx_metadata)`,
/// datapath's `XSK_TX_METADATA_LEN`): the headroom every descriptor leaves free.
const TX_METADATA_LEN: usize = 24;

fn server_ip() -> Ipv4Address {
    Ipv4Address::new(10, 0, 0, 1)
}

fn client_ip() -> Ipv4Address {
    Ipv4Address::new(10, 0, 0, 2)
}

/// How the benchmark runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the files are written (an `O_DIRECT`-capable file system), reused if there.
    pub dir: PathBuf,
    /// IP MTU of the link.
    pub mtu: usize,
    /// Packet frames of the server's pool.
    pub frames: u32,
    /// The server's pool and cache.
    pub pool: PoolOpts,
    /// Descriptors of the TX ring (the AF_XDP socket's default is 2048).
    pub ring: usize,
    /// The client ACKs every this many segments (and at the end of each batch).
    pub ack_every: u32,
    /// Leave TCP checksums to the NIC (TX metadata), with its headroom per descriptor.
    pub tx_offload: bool,
    /// Check every body byte received against the file, and every TCP checksum (the
    /// link then finishes partial checksums in software). Slow; for tests.
    pub verify: bool,
    /// Give up after this much wall time per workload.
    pub limit: Duration,
}

impl Options {
    /// The file server's defaults at `mtu`, files in `dir`.
    pub fn defaults(dir: PathBuf, mtu: usize) -> Options {
        Options {
            dir,
            mtu,
            frames: crate::options::DEFAULT_FRAMES,
            pool: PoolOpts {
                block_kib: crate::options::DEFAULT_BLOCK_KIB,
                blocks: crate::options::DEFAULT_BLOCKS,
                hugepages: HugePages::Prefer,
                cache_blocks: crate::options::DEFAULT_CACHE_BLOCKS,
                direct_threshold: crate::options::DEFAULT_DIRECT_THRESHOLD,
                direct_io: true,
            },
            ring: 2048,
            ack_every: 4,
            tx_offload: true,
            verify: false,
            limit: Duration::from_secs(120),
        }
    }
}

/// What one timed workload did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    /// Time in the server phase (the figure).
    pub server: Duration,
    /// Time in the client phase.
    pub client: Duration,
    /// Loop turns.
    pub turns: u64,
    /// TCP segments the server sent.
    pub segments: u64,
    /// Descriptors they took.
    pub descriptors: u64,
    /// Frames the server received (ACKs and requests).
    pub rx_frames: u64,
    /// Segments whose checksum the NIC was left to finish.
    pub partial_checksums: u64,
    /// Retransmissions (0 expected: the link loses nothing).
    pub retransmits: u64,
    /// Payload bytes the server's CPU copied (0 expected).
    pub copied: u64,
    /// Bytes read from disk (0 expected: the workloads are cached).
    pub disk_bytes: u64,
    /// What the client counted.
    pub client_stats: ClientStats,
}

impl Measured {
    /// Body bit rate on the server's time.
    pub fn gbit_per_sec(&self) -> f64 {
        self.client_stats.body_bytes as f64 * 8.0 / self.server.as_secs_f64().max(1e-9) / 1e9
    }

    /// Server nanoseconds per segment sent.
    pub fn ns_per_segment(&self) -> f64 {
        self.server.as_nanos() as f64 / self.segments.max(1) as f64
    }

    /// Responses per second of server time.
    pub fn requests_per_sec(&self) -> f64 {
        self.client_stats.responses as f64 / self.server.as_secs_f64().max(1e-9)
    }

    /// One line: `RESULT key=value ...`.
    pub fn result_line(&self, workload: &str, mtu: usize) -> String {
        let c = &self.client_stats;
        format!(
            "RESULT workload={workload} mtu={mtu} gbit_per_sec={:.2} ns_per_segment={:.1} requests_per_sec={:.0} \
             server_s={:.4} client_s={:.4} turns={} segments={} descriptors={} rx_frames={} acks={} responses={} body_bytes={} \
             partial_checksums={} retransmits={} copied={} disk_bytes={} out_of_order={} bad={} bad_checksums={}",
            self.gbit_per_sec(),
            self.ns_per_segment(),
            self.requests_per_sec(),
            self.server.as_secs_f64(),
            self.client.as_secs_f64(),
            self.turns,
            self.segments,
            self.descriptors,
            self.rx_frames,
            c.acks,
            c.responses,
            c.body_bytes,
            self.partial_checksums,
            self.retransmits,
            self.copied,
            self.disk_bytes,
            c.out_of_order,
            c.bad,
            c.bad_checksums,
        )
    }
}

/// The server, its link and its receive queue.
#[derive(Debug)]
pub struct Bench {
    core: Core,
    link: BenchLink,
    pool: Pool,
    rx: VecDeque<BufSlice>,
    clock: Clock,
    opts: Options,
    next_port: u16,
}

impl Bench {
    /// A server for the files in `opts.dir`.
    pub fn new(opts: &Options) -> Result<Bench> {
        let pool = Pool::new(&PoolConfig { lock: false, ..opts.pool.pool_config(opts.frames) })
            .context("creating the server's pool (smaller: --blocks; or --hugepages off)")?;
        let reader = BlockReader::new(&pool, &opts.pool.reader_config()).context("creating the block reader")?;
        let cache = BlockCache::new(reader, &opts.pool.cache_config());
        let limits = Limits {
            max_connections: 1024,
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            conn_blocks: 32,
        };
        let mut cfg = StackConfig::new(SERVER_MAC);
        cfg.ipv4 = Some(Ipv4Cidr::new(server_ip(), 24));
        cfg.mtu = opts.mtu;
        cfg.secret = 0x5e;
        crate::xdp::size_table(&mut cfg, limits.max_connections);
        let mut stack = Stack::new(cfg);
        let listener = stack.listen(PORT).map_err(|e| anyhow::anyhow!("listen: {e}"))?;
        let core = Core::new(stack, listener, cache, Root::open(&opts.dir)?, limits);
        let offload = match opts.tx_offload {
            true => TxOffload { checksum: true, headroom: TX_METADATA_LEN },
            false => TxOffload::default(),
        };
        Ok(Bench {
            core,
            link: BenchLink::new(pool.clone(), opts.mtu, opts.ring, offload, opts.verify),
            pool,
            rx: VecDeque::with_capacity(4096),
            clock: Clock::start(),
            opts: opts.clone(),
            next_port: 20000,
        })
    }

    /// The server core (counters).
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// A client whose connections make the requests of `plans`, one connection each.
    pub fn client(&mut self, plans: Vec<Plan>) -> Client {
        let server = (SERVER_MAC, IpAddress::Ipv4(server_ip()), PORT);
        let mut c = Client::new(
            CLIENT_MAC,
            IpAddress::Ipv4(client_ip()),
            server,
            self.next_port,
            self.opts.mtu,
            self.opts.ack_every,
            self.opts.verify,
        );
        self.next_port += plans.len() as u16;
        for plan in plans {
            c.connect(plan, &self.pool, &mut self.rx);
        }
        c
    }

    /// Runs until `client` has every response, timing the server's phase and the
    /// client's apart. With `timed`, the server's phase runs inside
    /// [`Bench::timed_server_phase`], the function a profiler counts alone
    /// (`valgrind --tool=callgrind --toggle-collect='*timed_server_phase*'`).
    pub fn run(&mut self, client: &mut Client, timed: bool) -> Result<Measured> {
        let before = self.core.stack().counters().clone();
        let descs_before = self.link.descriptors_total();
        let partial_before = self.link.partial_total();
        let disk_before = self.disk_bytes();
        let mut m = Measured::default();
        let started = WallInstant::now();
        let mut t0 = started;
        loop {
            match timed {
                true => self.timed_server_phase(),
                false => self.server_phase(),
            }
            let t1 = WallInstant::now();
            // The NIC delivers; the client answers.
            for i in 0..self.link.packets() {
                client.receive(self.link.packet(i), &self.pool, &mut self.rx);
            }
            client.flush(&self.pool, &mut self.rx);
            let t2 = WallInstant::now();
            m.server += t1 - t0;
            m.client += t2 - t1;
            m.turns += 1;
            t0 = t2;
            if client.done() {
                break;
            }
            if t2 - started > self.opts.limit {
                bail!(
                    "the workload did not finish in {:?}: client {:?}; server {:?}",
                    self.opts.limit,
                    client.stats,
                    self.core.describe_connections()
                );
            }
        }
        let after = self.core.stack().counters();
        m.segments = after.tcp_tx_segments - before.tcp_tx_segments;
        m.rx_frames = after.rx_frames - before.rx_frames;
        m.descriptors = self.link.descriptors_total() - descs_before;
        m.partial_checksums = self.link.partial_total() - partial_before;
        m.retransmits = after.tcp_retransmits - before.tcp_retransmits;
        m.copied = after.payload_bytes_copied - before.payload_bytes_copied;
        m.disk_bytes = self.disk_bytes() - disk_before;
        m.client_stats = client.stats;
        Ok(m)
    }

    /// The server: one turn of the AF_XDP run loop.
    #[inline(never)]
    fn server_phase(&mut self) {
        self.link.complete();
        let now = self.clock.now();
        for f in self.rx.drain(..self.rx.len().min(RX_BATCH)) {
            self.core.receive(now.mono, f);
        }
        self.core.turn(now, &mut self.link);
    }

    /// [`Bench::server_phase`] in the timed part of a workload (a name to profile by).
    #[inline(never)]
    pub fn timed_server_phase(&mut self) {
        self.server_phase();
    }

    fn disk_bytes(&self) -> u64 {
        let r = self.core.blocks().cache().reader().stats();
        r.bytes_direct + r.bytes_buffered
    }
}

/// The large file's request path.
pub const LARGE: &str = "/large.bin";

/// Writes the files the workloads ask for into `dir` (kept if already there at the right
/// size): the large file, and `small` files of `small_size` bytes under `s/`.
pub fn write_files(dir: &Path, large: u64, small: u32, small_size: u64) -> Result<()> {
    std::fs::create_dir_all(dir.join("s"))?;
    write_stream(&dir.join(&LARGE[1..]), large, LARGE_SEED)?;
    for i in 0..small {
        write_stream(&dir.join(small_name(i)), small_size, SMALL_SEED + u64::from(i))?;
    }
    Ok(())
}

fn small_name(i: u32) -> String {
    format!("s/f{i:04}.bin")
}

fn write_stream(path: &Path, size: u64, seed: u64) -> Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == size) {
        return Ok(());
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("{}", path.display()))?);
    let mut buf = vec![0u8; 1 << 20];
    let s = Stream::new(seed);
    let mut off = 0;
    while off < size {
        let n = (size - off).min(buf.len() as u64) as usize;
        s.fill(off, &mut buf[..n]);
        f.write_all(&buf[..n])?;
        off += n as u64;
    }
    f.flush()?;
    Ok(())
}

/// The large-file workload: two requests admit the file to the cache (the first streams
/// past it, the second is admitted), then `downloads` timed downloads on one keep-alive
/// connection.
pub fn large(bench: &mut Bench, downloads: u64) -> Result<Measured> {
    let plan = |requests| Plan { paths: vec![(LARGE.to_owned(), LARGE_SEED)], requests };
    let mut warm = bench.client(vec![plan(2)]);
    bench.run(&mut warm, false).context("warming the cache")?;
    let mut timed = bench.client(vec![plan(downloads)]);
    bench.run(&mut timed, true)
}

/// The small-file workload: every file once (cached as read), then `connections`
/// keep-alive connections making `requests` requests in all, each waiting for its
/// response before the next, cycling through the files.
pub fn small(bench: &mut Bench, files: u32, connections: u32, requests: u64) -> Result<Measured> {
    let paths: Vec<(String, u64)> =
        (0..files).map(|i| (format!("/{}", small_name(i)), SMALL_SEED + u64::from(i))).collect();
    let mut warm = bench.client(vec![Plan { paths: paths.clone(), requests: u64::from(files) }]);
    bench.run(&mut warm, false).context("warming the cache")?;
    let per = requests.div_ceil(u64::from(connections.max(1)));
    let plans = (0..connections.max(1) as usize)
        .map(|c| {
            let mut p = paths.clone();
            p.rotate_left(c * paths.len() / connections.max(1) as usize);
            Plan { paths: p, requests: per }
        })
        .collect();
    let mut timed = bench.client(plans);
    bench.run(&mut timed, true)
}

#[cfg(test)]
mod tests;
