//! Block streams over a real cache and reader (a small unlocked pool: no root needed).

use std::fs::File;
use std::io::Write;

use umem::{BlockReader, CacheConfig, HugePages, PoolConfig, ReaderConfig};

use super::*;

const BLOCK: u32 = 64 * 1024;

/// A connection with one block stream.
#[derive(Debug)]
struct One(BlockStream);

impl HasStreams for One {
    fn streams_mut(&mut self) -> impl Iterator<Item = &mut BlockStream> {
        std::iter::once(&mut self.0)
    }
}

fn setup(size: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>, Blocks) {
    let dir = tempfile::Builder::new().prefix("fs-blocks-").tempdir_in("/var/tmp").unwrap();
    let path = dir.path().join("f");
    let data: Vec<u8> = (0..size).map(|i| (i * 31 % 253) as u8).collect();
    File::create(&path).unwrap().write_all(&data).unwrap();
    let pool = Pool::new(&PoolConfig {
        frame_size: 4096,
        frames: 16,
        block_size: BLOCK,
        blocks: 8,
        hugepages: HugePages::Off,
        lock: false,
    })
    .unwrap();
    let reader = BlockReader::new(&pool, &ReaderConfig::default()).unwrap();
    // Nothing cached: every block is a read of its own.
    let cache =
        BlockCache::new(reader, &CacheConfig { capacity: 0, max_file_size: 0, max_open_files: 8, admit_large: false });
    (dir, path, data, Blocks::new(cache))
}

fn whole(data: &[u8]) -> ByteRange {
    ByteRange { start: 0, end: data.len() as u64 }
}

/// Waits for reads and delivers them until `s`'s connection has its bytes; returns them.
fn drain(blocks: &mut Blocks, conns: &mut Table<One>, id: SessionId) -> Vec<u8> {
    let mut got = Vec::new();
    for _ in 0..10_000 {
        blocks.poll(|d| {
            deliver(conns, d);
        });
        let s = &mut conns.get_mut(id).unwrap().0;
        s.feed(blocks, id, 2).expect("no read failed");
        while let Some(f) = s.front() {
            let n = f.len();
            got.extend_from_slice(f.as_bytes());
            s.consume(n);
        }
        if s.is_done() {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("the stream never finished");
}

#[test]
fn a_range_streams_byte_exact_across_blocks() {
    let (_dir, path, data, mut blocks) = setup(3 * BLOCK as usize + 100);
    let mut conns = Table::new(std::time::Duration::from_secs(30));
    for (a, b) in [(0, data.len()), (BLOCK as usize - 1, BLOCK as usize + 1), (5, 6), (2 * BLOCK as usize, data.len())]
    {
        let r = ByteRange { start: a as u64, end: b as u64 };
        let s = blocks.open(File::open(&path).unwrap(), r).unwrap();
        let id = conns.insert(One(s));
        assert_eq!(drain(&mut blocks, &mut conns, id), &data[a..b], "{a}..{b}");
        conns.remove(id);
    }
}

#[test]
fn a_failed_read_for_a_closed_connection_never_reaches_the_one_in_its_slot() {
    let (_dir, path, data, mut blocks) = setup(2 * BLOCK as usize);
    let mut conns = Table::new(std::time::Duration::from_secs(30));

    // A asks for its first block, then closes while the read is in flight.
    let a = conns.insert(One(blocks.open(File::open(&path).unwrap(), whole(&data)).unwrap()));
    let sa = &mut conns.get_mut(a).unwrap().0;
    sa.feed(&mut blocks, a, 1).unwrap();
    let ticket_a = sa.pending_tickets()[0];
    conns.remove(a);

    // B takes the slot and asks for its own first block.
    let b = conns.insert(One(blocks.open(File::open(&path).unwrap(), whole(&data)).unwrap()));
    assert_eq!(a.index(), b.index(), "B reuses A's slot");
    let sb = &mut conns.get_mut(b).unwrap().0;
    sb.feed(&mut blocks, b, 1).unwrap();
    let ticket_b = sb.pending_tickets()[0];
    assert_ne!(ticket_a, ticket_b);

    // A's read fails. It must reach nobody: not B, whose block has the same index.
    let failed = BlockDone {
        ticket: ticket_a,
        key: blocks.cache.open(&path).unwrap().key,
        block: 0,
        result: Err(umem::Error::Request("injected read failure")),
    };
    let routed = blocks.route(failed).expect("A's ticket was waited for");
    assert_eq!(routed.0, a);
    assert!(!deliver(&mut conns, routed), "delivered to a closed connection's slot");
    assert_eq!(conns.get_mut(b).unwrap().0.pending_tickets(), vec![ticket_b], "B still waits for its own read");

    // B gets its own bytes, whole and unharmed (A's real completion is dropped on the way).
    assert_eq!(drain(&mut blocks, &mut conns, b), data);
}

#[test]
fn a_block_smaller_than_the_direct_io_alignment_is_refused_up_front() {
    let (_dir, _path, _data, blocks) = setup(16);
    // 64 KiB blocks: a file system wanting 512 or 4096 bytes is fine.
    for a in [512, 4096] {
        assert!(align::check(blocks.cache().reader(), umem::DioAlign { mem: a, offset: a, reported: true }).is_ok());
    }
    // One wanting 128 KiB reads cannot be served from 64 KiB blocks: every request would
    // fail. Say so at startup, naming the option.
    let big = umem::DioAlign { mem: 512, offset: 128 << 10, reported: true };
    let e = align::check(blocks.cache().reader(), big).unwrap_err();
    assert!(e.contains("--block-kib 256"), "{e}");
    assert!(e.contains("--no-direct-io"), "{e}");
}

#[test]
fn the_alignment_under_a_real_root_is_a_power_of_two() {
    let dir = tempfile::Builder::new().prefix("fs-align-").tempdir_in("/var/tmp").unwrap();
    let a = align::of_root(&crate::root::Root::open(dir.path()).unwrap());
    assert!(a.mem.is_power_of_two() && a.offset.is_power_of_two(), "{a:?}");
}

#[test]
fn a_file_rewritten_between_requests_is_served_afresh_through_the_held_descriptor() {
    let (_dir, path, data, _) = setup(BLOCK as usize + 10);
    let pool = Pool::new(&PoolConfig {
        frame_size: 4096,
        frames: 16,
        block_size: BLOCK,
        blocks: 8,
        hugepages: HugePages::Off,
        lock: false,
    })
    .unwrap();
    let reader = BlockReader::new(&pool, &ReaderConfig::default()).unwrap();
    let cfg = CacheConfig { capacity: 4, max_file_size: 1 << 20, max_open_files: 8, admit_large: true };
    let mut blocks = Blocks::new(BlockCache::new(reader, &cfg));
    let mut conns = Table::new(std::time::Duration::from_secs(30));
    let mut serve = |blocks: &mut Blocks| {
        let s = blocks.open(File::open(&path).unwrap(), whole(&data)).unwrap();
        let id = conns.insert(One(s));
        let got = drain(blocks, &mut conns, id);
        conns.remove(id);
        got
    };
    assert_eq!(serve(&mut blocks), data);
    assert_eq!(serve(&mut blocks), data, "cached");
    assert_eq!(blocks.cache().stats().hits, 2);
    // Same inode, same size, new bytes: the statx of the new descriptor sees the change.
    let v2: Vec<u8> = data.iter().map(|b| b ^ 0x5a).collect();
    std::fs::write(&path, &v2).unwrap();
    assert_eq!(serve(&mut blocks), v2, "served stale after an in-place rewrite");
    // A new inode under the same name.
    let v3: Vec<u8> = data.iter().map(|b| b.wrapping_add(1)).collect();
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, &v3).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert_eq!(serve(&mut blocks), v3, "served stale after a rename");
    assert!(blocks.cache().stats().invalidations >= 2);
}
