//! Settings both backends share: the HTTP limits and timers of every connection, and the
//! pinned pool with its block cache (the AF_XDP backend, and the kernel backend's
//! `direct-uring` rung).

use std::time::Duration;

use umem::{CacheConfig, DirectIo, HugePages, PoolConfig, ReaderConfig};

/// Default packet frames (4 KiB each): 64 MiB.
pub const DEFAULT_FRAMES: u32 = 16384;
/// Default RX and fill ring: 8192 descriptors. With 2048, 10,000 keep-alive clients
/// (wrk -c10000, veth) overflowed the RX ring 196,552 times in 15 s, and each drop became
/// a retransmission; 8192 took all of them.
pub const DEFAULT_RX_RING: u32 = 8192;
/// Default payload block size, KiB.
pub const DEFAULT_BLOCK_KIB: u32 = 256;
/// Default payload blocks: 1.5 GiB, so the default cache fits with a quarter to spare.
pub const DEFAULT_BLOCKS: u32 = 6144;
/// Default cache: 1.125 GiB, a 1 GiB file (4096 blocks) and 128 MiB of small files.
pub const DEFAULT_CACHE_BLOCKS: u32 = 4608;
/// Default direct-I/O threshold: larger files are *large* (streamed until admitted).
pub const DEFAULT_DIRECT_THRESHOLD: u64 = 4 << 20;

/// Limits and timers of connections.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most connections open at once; more are accepted and closed.
    pub max_connections: usize,
    /// A request head must arrive within this (slowloris).
    pub head_timeout: Duration,
    /// An idle keep-alive connection is closed after this.
    pub idle_timeout: Duration,
    /// A response that makes no progress (bytes acknowledged) for this long is abandoned.
    pub write_timeout: Duration,
    /// Most payload blocks one connection holds (read ahead plus unacknowledged), and
    /// the budget its fair share is cut from when the pool runs short (AF_XDP backend).
    pub conn_blocks: u32,
}

impl Limits {
    /// The longest of the timeouts (how far ahead the timer wheel must reach).
    pub fn longest_timeout(&self) -> Duration {
        self.head_timeout.max(self.idle_timeout).max(self.write_timeout)
    }
}

/// The pool of payload blocks and the block cache over it.
#[derive(Clone, Debug)]
pub struct PoolOpts {
    /// Size of a payload block (a file read lands in one), KiB.
    pub block_kib: u32,
    /// Payload blocks in the pool.
    pub blocks: u32,
    /// Hugepage policy of the pool.
    pub hugepages: HugePages,
    /// Blocks the cache may keep (at most three quarters of `blocks`, so streams always
    /// find room).
    pub cache_blocks: u32,
    /// Files larger than this stream past the cache until admitted (requested again, and
    /// no larger than the cache).
    pub direct_threshold: u64,
    /// `O_DIRECT` reads where the file system allows (else buffered io_uring reads).
    pub direct_io: bool,
}

impl PoolOpts {
    /// The pool: `frames` packet frames of 4 KiB, then the payload blocks; locked.
    pub fn pool_config(&self, frames: u32) -> PoolConfig {
        PoolConfig {
            frame_size: 4096,
            frames,
            block_size: self.block_kib * 1024,
            blocks: self.blocks,
            hugepages: self.hugepages,
            lock: true,
        }
    }

    /// The block reader: 32 reads in flight, no headroom (headers go in frames of their own).
    pub fn reader_config(&self) -> ReaderConfig {
        ReaderConfig {
            queue_depth: 32,
            headroom: 0,
            direct: if self.direct_io { DirectIo::Prefer } else { DirectIo::Off },
        }
    }

    /// Blocks the cache keeps: `cache_blocks`, at most three quarters of the pool's
    /// blocks (the rest is for streamed files and reads in flight).
    pub fn cache_capacity(&self) -> u32 {
        self.cache_blocks.min(self.blocks - self.blocks / 4)
    }

    /// The block cache.
    pub fn cache_config(&self) -> CacheConfig {
        CacheConfig {
            capacity: self.cache_capacity(),
            max_file_size: self.direct_threshold,
            max_open_files: 256,
            admit_large: true,
        }
    }

    /// How files are read, for the startup block.
    pub fn describe_reads(&self) -> String {
        let cache = u64::from(self.cache_capacity()) * u64::from(self.block_kib) * 1024;
        format!(
            "io_uring {} (cache {} blocks = {}; files over {} stream past it until requested again, then are admitted if they fit)",
            if self.direct_io { "O_DIRECT where the file system allows" } else { "buffered (--no-direct-io)" },
            self.cache_capacity(),
            mib(cache),
            mib(self.direct_threshold),
        )
    }
}

/// `n` bytes in MiB (or bytes, when not a whole MiB).
fn mib(n: u64) -> String {
    match n % (1 << 20) {
        0 => format!("{} MiB", n >> 20),
        _ => format!("{n} B"),
    }
}

/// Which rx queues the AF_XDP backend serves (`--queues N|all`), one worker thread each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queues {
    /// `N` queues from `--queue` on.
    Count(u32),
    /// Every rx queue of the interface.
    All,
}

impl std::str::FromStr for Queues {
    type Err = String;

    fn from_str(s: &str) -> Result<Queues, String> {
        if s == "all" {
            return Ok(Queues::All);
        }
        match s.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Queues::Count(n)),
            _ => Err(format!("--queues {s}: give a number of queues (1 or more) or `all`")),
        }
    }
}

impl Queues {
    /// The queues to bind on an interface with `available` rx queues, starting at `first`
    /// (`--queue`) for a count.
    pub fn resolve(self, first: u32, available: u32) -> Result<Vec<u32>, String> {
        match self {
            Queues::All if first != 0 => Err(format!("--queues all binds every queue from 0; drop --queue {first}")),
            Queues::All => Ok((0..available).collect()),
            Queues::Count(n) => {
                let end = first.checked_add(n).filter(|&e| e <= available).ok_or_else(|| {
                    format!(
                        "--queue {first} --queues {n} needs rx queues {first}..{} but the interface has {available} \
                         (raise them with `ethtool -L IFACE combined N`, or use --queues all)",
                        u64::from(first) + u64::from(n) - 1
                    )
                })?;
                Ok((first..end).collect())
            }
        }
    }
}

/// A CPU list (`--cpus 0,2,4-7`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

impl std::str::FromStr for CpuList {
    type Err = String;

    fn from_str(s: &str) -> Result<CpuList, String> {
        parse_cpus(s).map(CpuList)
    }
}

/// Parses a CPU list: `0,2,4-7`.
pub fn parse_cpus(s: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("--cpus {s}: give CPU numbers and ranges, e.g. 0,2,4-7");
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
        if a > b || b >= 1024 {
            return Err(bad());
        }
        cpus.extend(a..=b);
    }
    Ok(cpus)
}

/// Checks `--rx-ring` against `--frames`: the fill ring keeps `ring` frames posted, so
/// at most half the pool's frames go there, leaving the rest for TX headers and control
/// packets.
pub fn rx_ring(ring: Option<u32>, frames: u32) -> Result<u32, String> {
    let Some(ring) = ring else {
        let half = (frames / 2).max(1);
        // The largest power of two not above half the frames, and not above the default.
        return Ok(DEFAULT_RX_RING.min(1 << half.ilog2()).max(64));
    };
    if !ring.is_power_of_two() || !(64..=32768).contains(&ring) {
        return Err(format!("--rx-ring {ring}: the ring must be a power of two from 64 to 32768"));
    }
    if u64::from(ring) * 2 > u64::from(frames) {
        return Err(format!(
            "--rx-ring {ring} needs at least {} --frames (the fill ring holds {ring} frames, and as many are left for sending); pass --frames {} or a smaller ring",
            u64::from(ring) * 2,
            u64::from(ring) * 2
        ));
    }
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> PoolOpts {
        PoolOpts {
            block_kib: DEFAULT_BLOCK_KIB,
            blocks: DEFAULT_BLOCKS,
            hugepages: HugePages::Prefer,
            cache_blocks: DEFAULT_CACHE_BLOCKS,
            direct_threshold: DEFAULT_DIRECT_THRESHOLD,
            direct_io: true,
        }
    }

    #[test]
    fn the_rx_ring_is_a_power_of_two_and_leaves_half_the_frames_for_sending() {
        assert_eq!(rx_ring(None, DEFAULT_FRAMES), Ok(DEFAULT_RX_RING));
        assert_eq!(rx_ring(None, 8192), Ok(4096));
        assert_eq!(rx_ring(None, 3000), Ok(1024));
        assert_eq!(rx_ring(Some(2048), 8192), Ok(2048));
        let err = rx_ring(Some(8192), 8192).unwrap_err();
        assert!(err.contains("--frames 16384"), "{err}");
        assert!(rx_ring(Some(3000), 65536).unwrap_err().contains("power of two"));
        assert!(rx_ring(Some(32), 65536).is_err());
    }

    #[test]
    fn the_default_cache_holds_a_1_gib_file_and_the_pool_fits_the_reserved_hugepages() {
        let o = defaults();
        let block = u64::from(o.block_kib) << 10;
        assert!(u64::from(o.cache_capacity()) * block >= 1 << 30, "a 1 GiB file must fit the default cache");
        // `cargo xtask setup` reserves 1024 x 2 MiB (xtask/src/setup.rs HUGEPAGES).
        let pool = u64::from(DEFAULT_FRAMES) * 4096 + u64::from(o.blocks) * block;
        assert!(pool <= 1024 * (2 << 20), "the default pool ({} MiB) outgrew the reserved hugepages", pool >> 20);
        assert!(
            o.describe_reads().contains("cache 4608 blocks = 1152 MiB; files over 4 MiB"),
            "{}",
            o.describe_reads()
        );
    }

    #[test]
    fn the_cache_leaves_a_quarter_of_the_pool_to_streams() {
        let o = PoolOpts { blocks: 6, cache_blocks: 100, ..defaults() };
        assert_eq!(o.cache_capacity(), 5);
        let o = PoolOpts { blocks: 1000, cache_blocks: 100, ..defaults() };
        assert_eq!(o.cache_capacity(), 100);
        let o = PoolOpts { blocks: 1000, cache_blocks: 900, ..defaults() };
        assert_eq!(o.cache_capacity(), 750);
    }

    #[test]
    fn queues_parse_and_resolve_against_the_interface() {
        assert_eq!("all".parse::<Queues>(), Ok(Queues::All));
        assert_eq!("4".parse::<Queues>(), Ok(Queues::Count(4)));
        assert!("0".parse::<Queues>().is_err());
        assert!("many".parse::<Queues>().is_err());
        assert_eq!(Queues::Count(1).resolve(2, 4), Ok(vec![2]));
        assert_eq!(Queues::Count(4).resolve(0, 4), Ok(vec![0, 1, 2, 3]));
        assert_eq!(Queues::All.resolve(0, 3), Ok(vec![0, 1, 2]));
        let e = Queues::Count(3).resolve(2, 4).unwrap_err();
        assert!(e.contains("2..4") && e.contains("has 4"), "{e}");
        assert!(Queues::All.resolve(1, 4).is_err(), "all with a starting queue is ambiguous");
        assert!(Queues::Count(u32::MAX).resolve(1, 4).is_err(), "no overflow");
    }

    #[test]
    fn cpu_lists_take_numbers_and_ranges() {
        assert_eq!(parse_cpus("1"), Ok(vec![1]));
        assert_eq!(parse_cpus("0,2,4-6"), Ok(vec![0, 2, 4, 5, 6]));
        assert_eq!(parse_cpus(" 3 - 3 "), Ok(vec![3]));
        for bad in ["", "a", "3-1", "1,,2", "0-99999"] {
            assert!(parse_cpus(bad).is_err(), "{bad:?}");
        }
    }
}
