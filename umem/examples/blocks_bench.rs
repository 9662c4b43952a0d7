//! `blocks_bench`: one file read four ways in the same run, cold (page cache dropped
//! before each method) and warm, with wall time and CPU time (user + sys of the whole
//! process, io_uring workers included) per GiB:
//!
//! * `uring-direct`: io_uring `READ_FIXED` with `O_DIRECT` into the registered pool,
//!   1 MiB reads, queue depth 32 (the block reader). The CPU never touches the bytes:
//!   that is the point, they go to the NIC by DMA.
//! * `uring-buffered`: the same reader with `O_DIRECT` off (the fallback path).
//! * `read`: `read(2)` of 1 MiB at a time into a `Vec` (one CPU copy from the page cache).
//! * `mmap`: map the file and touch one byte per 4 KiB page (page faults, no copy).
//!
//! ```text
//! cargo run --release -p umem --example blocks_bench -- --size-mib 2048 --file /var/tmp/blocks.bin
//! ```
//!
//! The file is created (seeded pattern, fsynced) if it is missing or has another size.
//! Cold runs write 3 to `/proc/sys/vm/drop_caches` and need root; without it they are
//! skipped with the reason printed. Pool setup (mmap, prefault, mlock, io_uring
//! registration) is paid once per process and is reported apart from the reads.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use umem::{BlockReader, DirectIo, HugePages, Pool, PoolConfig, ReaderConfig};

const MIB: u64 = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;
const QD: u32 = 32;

struct Args {
    size_mib: u64,
    file: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut size_mib = 1024;
    let mut file = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--size-mib" => {
                let v = it.next().ok_or("--size-mib needs a value")?;
                size_mib = v.parse().map_err(|_| format!("--size-mib: not a number: {v}"))?;
            }
            "--file" => file = Some(PathBuf::from(it.next().ok_or("--file needs a path")?)),
            "-h" | "--help" => {
                return Err("usage: blocks_bench [--size-mib N] --file PATH".into());
            }
            other => return Err(format!("unknown argument {other}; try --help")),
        }
    }
    let file = file.ok_or("--file PATH is required (on the disk under test, not tmpfs)")?;
    if size_mib == 0 {
        return Err("--size-mib must be at least 1".into());
    }
    Ok(Args { size_mib, file })
}

/// User + system CPU time of this process, all threads (io_uring workers included).
fn cpu_time() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage into the valid, zeroed buffer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if rc != 0 {
        return Duration::ZERO;
    }
    // SAFETY: getrusage succeeded, and all-zero bytes are a valid rusage anyway.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    bytes: u64,
}

impl Sample {
    fn gib_per_s(&self) -> f64 {
        self.bytes as f64 / GIB / self.wall.as_secs_f64()
    }
    fn cpu_s_per_gib(&self) -> f64 {
        self.cpu.as_secs_f64() / (self.bytes as f64 / GIB)
    }
}

fn measure(f: impl FnOnce() -> Result<u64, String>) -> Result<Sample, String> {
    let (c0, t0) = (cpu_time(), Instant::now());
    let bytes = f()?;
    Ok(Sample { wall: t0.elapsed(), cpu: cpu_time() - c0, bytes })
}

fn ensure_file(path: &Path, size: u64) -> Result<(), String> {
    if std::fs::metadata(path).map(|m| m.len() == size).unwrap_or(false) {
        return Ok(());
    }
    println!("writing {} MiB to {} ...", size / MIB, path.display());
    let mut f = File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let mut chunk = vec![0u8; 8 * MIB as usize];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut left = size;
    while left > 0 {
        for w in chunk.chunks_exact_mut(8) {
            // xorshift64: cheap bytes that no file system compresses or dedups.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).map_err(|e| format!("write: {e}"))?;
        left -= n as u64;
    }
    f.sync_all().map_err(|e| format!("fsync: {e}"))
}

fn drop_caches() -> Result<(), String> {
    // SAFETY: sync() takes no arguments and only flushes dirty data.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3").map_err(|e| format!("drop_caches: {e}"))
}

fn uring(reader: &mut BlockReader, path: &Path) -> Result<u64, String> {
    let f = reader.open(path).map_err(|e| e.to_string())?;
    let size = reader.info(f).map_or(0, |i| i.size());
    let (mut next, mut seen) = (0u64, 0u64);
    let mut done = Vec::with_capacity(QD as usize);
    while seen < size {
        while next < size && reader.stats().blocks_held() < QD {
            reader.submit(f, next, MIB as u32).map_err(|e| e.to_string())?;
            next += MIB;
        }
        reader.wait(&mut done).map_err(|e| e.to_string())?;
        for c in done.drain(..) {
            seen += c.result.map_err(|e| e.to_string())?.len() as u64;
        }
    }
    reader.close(f);
    Ok(seen)
}

fn buffered_read(path: &Path) -> Result<u64, String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; MIB as usize];
    let mut total = 0;
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

fn mmap_touch(path: &Path) -> Result<u64, String> {
    let f = File::open(path).map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len() as usize;
    // SAFETY: a new private read-only mapping of an open file; checked before use.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, f.as_raw_fd(), 0) };
    if p == libc::MAP_FAILED {
        return Err(format!("mmap: {}", std::io::Error::last_os_error()));
    }
    let base = p.cast::<u8>();
    let mut sum = 0u64;
    for off in (0..len).step_by(4096) {
        // SAFETY: `off < len`, inside the mapping; nobody truncates the bench file.
        sum = sum.wrapping_add(u64::from(unsafe { base.add(off).read_volatile() }));
    }
    std::hint::black_box(sum);
    // SAFETY: unmaps exactly the mapping made above; no reference into it survives.
    unsafe { libc::munmap(p, len) };
    Ok(len as u64)
}

const METHODS: [&str; 4] = ["uring-direct", "uring-buffered", "read", "mmap"];

fn run_all(
    direct: &mut BlockReader,
    buffered: &mut BlockReader,
    path: &Path,
    cold: bool,
) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for m in METHODS {
        if cold {
            drop_caches()?;
        } else {
            buffered_read(path)?; // warm the page cache
        }
        let s = match m {
            "uring-direct" => measure(|| uring(direct, path))?,
            "uring-buffered" => measure(|| uring(buffered, path))?,
            "read" => measure(|| buffered_read(path))?,
            _ => measure(|| mmap_touch(path))?,
        };
        out.push(s);
    }
    Ok(out)
}

fn print_table(label: &str, rows: &[Sample]) {
    let base = rows[2]; // buffered read
    println!();
    println!("{label}");
    println!("  {:<15} {:>8} {:>11} {:>14} {:>14}", "method", "GiB/s", "CPU-s/GiB", "speed vs read", "CPU vs read");
    for (m, s) in METHODS.iter().zip(rows) {
        println!(
            "  {:<15} {:>8.2} {:>11.4} {:>13.2}x {:>13.3}x",
            m,
            s.gib_per_s(),
            s.cpu_s_per_gib(),
            s.gib_per_s() / base.gib_per_s(),
            s.cpu_s_per_gib() / base.cpu_s_per_gib(),
        );
    }
    let ratio = rows[0].cpu_s_per_gib() / base.cpu_s_per_gib();
    println!(
        "  target (O_DIRECT CPU per GiB <= 1/3 of buffered read's): {:.3} -> {}",
        ratio,
        if ratio <= 1.0 / 3.0 { "met" } else { "NOT met" }
    );
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("blocks_bench: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), String> {
    let args = parse_args()?;
    let size = args.size_mib * MIB;
    ensure_file(&args.file, size)?;

    let t0 = Instant::now();
    let pool = Pool::new(&PoolConfig {
        frame_size: 4096,
        frames: 64,
        block_size: MIB as u32,
        blocks: 2 * QD,
        hugepages: HugePages::Prefer,
        lock: true,
    })
    .or_else(|e| {
        println!("locked pool failed ({e}); using an unlocked one");
        Pool::new(&PoolConfig {
            frame_size: 4096,
            frames: 64,
            block_size: MIB as u32,
            blocks: 2 * QD,
            hugepages: HugePages::Prefer,
            lock: false,
        })
    })
    .map_err(|e| e.to_string())?;
    let cfg = ReaderConfig { queue_depth: QD, ..Default::default() };
    let mut direct = BlockReader::new(&pool, &cfg).map_err(|e| e.to_string())?;
    let cfg_b = ReaderConfig { direct: DirectIo::Off, ..cfg };
    let mut buffered = BlockReader::new(&pool, &cfg_b).map_err(|e| e.to_string())?;
    let setup = t0.elapsed();

    let probe = direct.open(&args.file).map_err(|e| e.to_string())?;
    let info = *direct.info(probe).ok_or("file vanished")?;
    direct.close(probe);
    println!(
        "blocks_bench: {} ({} MiB), {:?}; pool {} MiB on {}, {}, setup {:.1} ms (once); \
         1 MiB reads, queue depth {QD}",
        args.file.display(),
        args.size_mib,
        info.access,
        pool.used_len() >> 20,
        pool.backing(),
        if pool.locked() { "locked" } else { "not locked" },
        setup.as_secs_f64() * 1e3,
    );
    if !info.is_direct() {
        println!("note: this file system refused O_DIRECT; uring-direct is buffered here");
    }

    let root = std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok();
    if root {
        let cold = run_all(&mut direct, &mut buffered, &args.file, true)?;
        print_table("cold (page cache dropped before each method)", &cold);
    } else {
        println!("cold runs skipped: writing /proc/sys/vm/drop_caches needs root");
    }
    let warm = run_all(&mut direct, &mut buffered, &args.file, false)?;
    print_table("warm (file in the page cache; O_DIRECT reads the disk regardless)", &warm);
    let r = direct.stats();
    println!();
    println!(
        "reader counters: {} bytes O_DIRECT, {} bytes buffered, {} fallbacks, {} retries",
        r.bytes_direct, r.bytes_buffered, r.fallbacks, r.retries
    );
    Ok(())
}
