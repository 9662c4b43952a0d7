//! Registering whole pools with io_uring, 64 MiB to 4 GiB: one iovec per <= 1 GiB slice,
//! and a read into the last block (in the last registered buffer) lands where it should.

mod common;

use common::{disk_dir, drain, write_pattern, MIB};
use umem::{BlockReader, Buf, HugePages, Pool, PoolConfig, ReaderConfig};

fn check(total_mib: u64) {
    let frames = 16;
    let blocks = ((total_mib * MIB - frames * 4096) / MIB) as u32;
    let p = Pool::new(&PoolConfig {
        frame_size: 4096,
        frames: frames as u32,
        block_size: MIB as u32,
        blocks,
        hugepages: HugePages::Off,
        lock: false,
    })
    .unwrap();
    let start = p.stats();
    let r = BlockReader::new(&p, &ReaderConfig::default());
    let mut r = r.unwrap_or_else(|e| panic!("{total_mib} MiB pool: {e}"));
    let fixed = r.ring().fixed().clone();
    assert_eq!(fixed.len() as u64, p.used_len().div_ceil(1 << 30), "{total_mib} MiB");
    for i in 0..fixed.len() {
        let s = fixed.slice(i).unwrap();
        assert!(s.end - s.start <= 1 << 30);
    }

    // Hold every block but the last, so the reader must use the last one.
    let held: Vec<Buf> = (1..blocks).map(|_| p.alloc_block().unwrap()).collect();
    let dir = disk_dir();
    let path = dir.path().join("f");
    write_pattern(&path, 4097, total_mib);
    let f = r.open(&path).unwrap();
    r.submit(f, 0, MIB as u32).unwrap();
    let mut done = Vec::new();
    drain(&mut r, &mut done);
    let s = done.pop().unwrap().result.unwrap();
    assert_eq!(s.addr(), p.used_len() - MIB, "the last block");
    assert_eq!(fixed.index_of(s.addr(), MIB), Some(fixed.len() as u16 - 1));
    assert!(s.as_bytes() == std::fs::read(&path).unwrap());
    drop((s, held, r));
    assert_eq!(p.stats(), start);
}

#[test]
fn registers_a_64_mib_pool() {
    check(64);
}

#[test]
fn registers_a_pool_just_over_1_gib() {
    check(1024 + 64);
}

#[test]
fn registers_a_4_gib_pool() {
    check(4096);
}
