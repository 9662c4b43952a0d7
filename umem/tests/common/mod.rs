//! Helpers shared by the block-reader tests: pools that need no root (not locked, no
//! hugepages), files with a seeded pattern, and a whole-file read through the reader.

#![allow(dead_code)] // each test binary uses its own subset

use std::fs::File;
use std::io::Write;
use std::path::Path;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use umem::{BlockReader, BufSlice, Completion, FileId, HugePages, Pool, PoolConfig};

pub const MIB: u64 = 1 << 20;

/// A pool of `blocks` 1 MiB payload blocks (and a few frames), unlocked, 4 KiB pages.
pub fn pool(blocks: u32) -> Pool {
    Pool::new(&PoolConfig {
        frame_size: 4096,
        frames: 16,
        block_size: MIB as u32,
        blocks,
        hugepages: HugePages::Off,
        lock: false,
    })
    .expect("pool")
}

/// A temporary directory on the disk file system (ext4 here; O_DIRECT works).
pub fn disk_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("umem-test-").tempdir_in("/var/tmp").expect("tempdir")
}

/// Writes `size` bytes of a pattern seeded by `seed`, in 8 MiB chunks.
pub fn write_pattern(path: &Path, size: u64, seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut f = File::create(path).expect("create");
    let mut chunk = vec![0u8; 8 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        rng.fill_bytes(&mut chunk[..n]);
        f.write_all(&chunk[..n]).expect("write");
        left -= n as u64;
    }
}

/// Waits until `reader` is idle, collecting every completion.
pub fn drain(reader: &mut BlockReader, out: &mut Vec<Completion>) {
    while !reader.is_idle() {
        reader.wait(out).expect("wait");
    }
}

/// Reads the whole of `file` through `reader`, one block-sized request per block.
pub fn read_whole(reader: &mut BlockReader, file: FileId) -> Vec<u8> {
    let info = *reader.info(file).expect("open file");
    let step = u64::from(info.block_len);
    let mut parts: Vec<(u64, BufSlice)> = Vec::new();
    let mut done = Vec::new();
    let mut off = 0;
    // At least one request, so that an empty file is read (and found empty) too.
    loop {
        reader.submit(file, off, info.block_len).expect("submit");
        off += step;
        if off >= info.size() {
            break;
        }
    }
    drain(reader, &mut done);
    for c in done {
        parts.push((c.offset, c.result.expect("read")));
    }
    parts.sort_by_key(|p| p.0);
    let mut all = Vec::with_capacity(info.size() as usize);
    for (_, s) in &parts {
        all.extend_from_slice(s.as_bytes());
    }
    all
}
