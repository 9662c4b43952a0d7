//! The block reader against the real kernel: io_uring `READ_FIXED` with `O_DIRECT` into
//! pool blocks, on the disk file system (ext4 here). Every byte is compared with a plain
//! `std` read of the same file. No root needed (the pool is not locked).

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;

use common::{disk_dir, drain, pool, read_whole, write_pattern, MIB};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use umem::{Access, BlockReader, DirectIo, Error, ReaderConfig};

#[test]
fn sizes_around_alignment_match_std_read() {
    let dir = disk_dir();
    let p = pool(8);
    let start = p.stats();
    let mut r = BlockReader::new(&p, &ReaderConfig::default()).unwrap();
    let sizes = [0, 1, 511, 512, 4095, 4096, 4097, MIB - 1, MIB, MIB + 1, 3 * MIB + 513];
    for (i, &size) in sizes.iter().enumerate() {
        let path = dir.path().join(format!("f{size}"));
        write_pattern(&path, size, i as u64);
        let f = r.open(&path).unwrap();
        let info = *r.info(f).unwrap();
        assert!(info.is_direct(), "{size}: ext4 takes O_DIRECT, got {:?}", info.access);
        assert_eq!(info.size(), size);
        let got = read_whole(&mut r, f);
        assert_eq!(got.len() as u64, size, "valid length of a {size}-byte file");
        assert!(got == std::fs::read(&path).unwrap(), "{size}: bytes differ from std::fs::read");
        r.close(f);
    }
    let s = r.stats();
    assert_eq!(s.fallbacks, 0);
    assert_eq!(s.bytes_buffered, 0);
    assert!(s.bytes_direct >= sizes.iter().sum::<u64>());
    assert_eq!(s.errors, 0);
    drop(r);
    assert_eq!(p.stats(), start, "every block back in the pool");
}

#[test]
fn statx_alignment_is_used() {
    let dir = disk_dir();
    let path = dir.path().join("f");
    write_pattern(&path, 4096, 1);
    let p = pool(2);
    let mut r = BlockReader::new(&p, &ReaderConfig::default()).unwrap();
    let f = r.open(&path).unwrap();
    let info = *r.info(f).unwrap();
    let Access::Direct(a) = info.access else { panic!("not direct: {:?}", info.access) };
    println!("statx STATX_DIOALIGN here: mem {} offset {} (reported: {})", a.mem, a.offset, a.reported);
    assert!(a.reported, "ext4 on Linux >= 6.1 reports STATX_DIOALIGN");
    assert!(a.mem.is_power_of_two() && a.offset.is_power_of_two());
    assert_eq!(info.block_len, MIB as u32);
}

#[test]
fn headroom_puts_data_behind_an_aligned_gap() {
    let dir = disk_dir();
    let path = dir.path().join("f");
    write_pattern(&path, 3 * MIB, 7);
    let want = std::fs::read(&path).unwrap();
    let p = pool(4);
    let base = p.base_ptr().as_ptr() as u64;
    let cfg = ReaderConfig { headroom: 66, ..Default::default() };
    let mut r = BlockReader::new(&p, &cfg).unwrap();
    let f = r.open(&path).unwrap();
    let info = *r.info(f).unwrap();
    let mem = u64::from(info.align.mem);
    assert!(u64::from(info.block_len) <= MIB - 66);
    let got = read_whole(&mut r, f);
    assert!(got == want);
    let id = r.submit(f, 0, info.block_len).unwrap();
    let mut done = Vec::new();
    drain(&mut r, &mut done);
    let c = done.pop().unwrap();
    assert_eq!(c.req, id);
    let s = c.result.unwrap();
    assert!(s.offset() >= 66, "a 66-byte header fits in front");
    assert_eq!((base + s.addr()) % mem, 0, "the data start is aligned for O_DIRECT");
    assert_eq!(s.offset() as u64, 66u64.next_multiple_of(mem));
}

#[test]
fn unaligned_ranges_are_served_exactly() {
    let dir = disk_dir();
    let path = dir.path().join("f");
    let size = 5 * MIB + 1234;
    write_pattern(&path, size, 3);
    let want = std::fs::read(&path).unwrap();
    let p = pool(8);
    let mut r = BlockReader::new(&p, &ReaderConfig::default()).unwrap();
    let f = r.open(&path).unwrap();
    let block_len = r.info(f).unwrap().block_len;
    let mut rng = SmallRng::seed_from_u64(9);
    let mut done = Vec::new();
    for _ in 0..200 {
        let off = rng.random_range(0..size + 10);
        let len = rng.random_range(0..block_len - 4096);
        r.submit(f, off, len).unwrap();
        drain(&mut r, &mut done);
        let c = done.pop().unwrap();
        assert_eq!(c.offset, off);
        let s = c.result.unwrap();
        let lo = off.min(size) as usize;
        let hi = (off + u64::from(len)).min(size) as usize;
        assert!(s.as_bytes() == &want[lo..hi], "range {off}+{len}");
    }
    // A request wider than a block is refused, not truncated.
    let err = r.submit(f, 1, block_len).unwrap_err();
    assert!(matches!(err, Error::Request(_)), "{err}");
}

#[test]
fn more_requests_than_queue_depth_wait_their_turn() {
    let dir = disk_dir();
    let path = dir.path().join("f");
    let size = 16 * MIB - 100;
    write_pattern(&path, size, 11);
    let want = std::fs::read(&path).unwrap();
    let p = pool(16);
    let mut r = BlockReader::new(&p, &ReaderConfig { queue_depth: 4, ..Default::default() }).unwrap();
    let f = r.open(&path).unwrap();
    for i in 0..16 {
        r.submit(f, i * MIB, MIB as u32).unwrap();
    }
    let s = r.stats();
    assert_eq!(s.in_flight, 4);
    assert_eq!(s.queued, 12);
    assert_eq!(p.stats().write_leases, 16, "every block is leased to its read");
    let mut done = Vec::new();
    drain(&mut r, &mut done);
    assert_eq!(done.len(), 16);
    for c in done {
        let s = c.result.unwrap();
        let lo = c.offset as usize;
        assert!(s.as_bytes() == &want[lo..(lo + MIB as usize).min(size as usize)]);
    }
}

#[test]
fn pool_exhaustion_fails_clearly_and_leaks_nothing() {
    let dir = disk_dir();
    let path = dir.path().join("f");
    write_pattern(&path, 6 * MIB, 5);
    let want = std::fs::read(&path).unwrap();
    let p = pool(4);
    let start = p.stats();
    let mut r = BlockReader::new(&p, &ReaderConfig::default()).unwrap();
    let f = r.open(&path).unwrap();
    for i in 0..4 {
        r.submit(f, i * MIB, MIB as u32).unwrap();
    }
    let err = r.submit(f, 4 * MIB, MIB as u32).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::PoolExhausted { free: 0, total: 4, reading: 4, .. }), "{msg}");
    assert!(msg.contains("0 of 4 payload blocks free"), "{msg}");
    println!("{msg}");
    // The completions hold every block: still exhausted, still clear.
    let mut held = Vec::new();
    drain(&mut r, &mut held);
    assert!(matches!(r.submit(f, 0, 1), Err(Error::PoolExhausted { reading: 0, .. })));
    assert_eq!(p.stats().blocks_free, 0);
    // Nothing was corrupted by the refused requests.
    for c in &held {
        let s = c.result.as_ref().unwrap();
        let lo = c.offset as usize;
        assert!(s.as_bytes() == &want[lo..lo + MIB as usize]);
    }
    drop(held);
    assert_eq!(p.stats(), start, "counts back to the start value");
    // And the pool works again.
    assert!(read_whole_range(&mut r, f, 4 * MIB, 2 * MIB) == want[4 * MIB as usize..]);
    drop(r);
    assert_eq!(p.stats(), start);
}

fn read_whole_range(r: &mut BlockReader, f: umem::FileId, off: u64, len: u64) -> Vec<u8> {
    let mut done = Vec::new();
    let mut at = off;
    while at < off + len {
        r.submit(f, at, MIB as u32).unwrap();
        at += MIB;
    }
    drain(r, &mut done);
    done.sort_by_key(|c| c.offset);
    done.iter().flat_map(|c| c.result.as_ref().unwrap().as_bytes().to_vec()).collect()
}

#[test]
fn dropping_the_reader_with_reads_in_flight_returns_every_block() {
    let dir = disk_dir();
    let path = dir.path().join("f");
    write_pattern(&path, 8 * MIB, 2);
    let p = pool(8);
    let start = p.stats();
    let mut r = BlockReader::new(&p, &ReaderConfig { queue_depth: 2, ..Default::default() }).unwrap();
    let f = r.open(&path).unwrap();
    for i in 0..8 {
        r.submit(f, i * MIB, MIB as u32).unwrap();
    }
    // Closing defers until the reads finish; the id is refused at once.
    r.close(f);
    assert!(matches!(r.submit(f, 0, 1), Err(Error::Request(_))));
    assert_eq!(p.stats().write_leases, 8);
    drop(r);
    assert_eq!(p.stats(), start);
}

#[test]
fn buffered_mode_reads_the_same_bytes_into_the_same_blocks() {
    let dir = disk_dir();
    let p = pool(4);
    let cfg = ReaderConfig { direct: DirectIo::Off, headroom: 66, ..Default::default() };
    let mut r = BlockReader::new(&p, &cfg).unwrap();
    for size in [0, 1, 4097, 2 * MIB + 3] {
        let path = dir.path().join(format!("b{size}"));
        write_pattern(&path, size, size);
        let f = r.open(&path).unwrap();
        assert!(!r.info(f).unwrap().is_direct());
        assert!(read_whole(&mut r, f) == std::fs::read(&path).unwrap());
    }
    let s = r.stats();
    assert_eq!(s.bytes_direct, 0);
    assert_eq!(s.bytes_buffered, 1 + 4097 + 2 * MIB + 3);
    assert_eq!(s.fallbacks, 0, "asked for, not a fallback");
}

#[test]
fn missing_files_and_directories_are_errors() {
    let dir = disk_dir();
    let p = pool(1);
    let mut r = BlockReader::new(&p, &ReaderConfig::default()).unwrap();
    let err = r.open(&dir.path().join("nope")).unwrap_err();
    assert!(err.to_string().contains("statx"), "{err}");
    assert!(matches!(r.open(dir.path()), Err(Error::NotRegular { .. })));
}

/// The 1 GiB file, read at queue depth 32 with 1 MiB reads and compared, block by block,
/// with `std` reads of the same ranges (no 2 GiB held in memory).
#[test]
fn one_gib_file_matches_std_read() {
    let dir = disk_dir();
    let path = dir.path().join("big");
    let size = 1 << 30;
    write_pattern(&path, size, 0x5eed);
    let plain = File::open(&path).unwrap();
    let p = pool(64);
    let start = p.stats();
    let mut r = BlockReader::new(&p, &ReaderConfig::default()).unwrap();
    let f = r.open(&path).unwrap();
    let mut next = 0u64;
    let mut seen = 0u64;
    let mut done = Vec::new();
    let mut want = vec![0u8; MIB as usize];
    while seen < size {
        while next < size && r.stats().blocks_held() < 32 {
            r.submit(f, next, MIB as u32).unwrap();
            next += MIB;
        }
        r.wait(&mut done).unwrap();
        for c in done.drain(..) {
            let s = c.result.unwrap();
            assert_eq!(s.len() as u64, MIB);
            plain.read_exact_at(&mut want, c.offset).unwrap();
            assert!(s.as_bytes() == want.as_slice(), "block at {} differs", c.offset);
            seen += s.len() as u64;
        }
    }
    let st = r.stats();
    assert_eq!(st.bytes_direct, size);
    assert_eq!(st.reads_direct, 1024, "1 MiB reads: one operation per block");
    drop(r);
    assert_eq!(p.stats(), start);
}
