//! The block cache over a real reader: sharing by reference count, eviction that never
//! frees a block a sender holds, streaming of large files, admission of hot large files,
//! and freshness after a change.

mod common;

use std::path::Path;

use common::{disk_dir, pool, write_pattern, MIB};
use umem::{BlockCache, BlockDone, BlockReader, BufSlice, CacheConfig, CachedFile, Error, Lookup, Pool, ReaderConfig};

fn cache(p: &Pool, cfg: CacheConfig) -> BlockCache {
    BlockCache::new(BlockReader::new(p, &ReaderConfig::default()).unwrap(), &cfg)
}

/// Every block of `file`, as a sender would queue them: hits at once, misses when read.
fn fetch_all(c: &mut BlockCache, file: &CachedFile) -> Vec<BufSlice> {
    let mut slots: Vec<Option<BufSlice>> = (0..file.blocks()).map(|_| None).collect();
    let mut tickets = Vec::new();
    for i in 0..file.blocks() {
        match c.get(file, i).unwrap() {
            Lookup::Hit(s) => slots[i as usize] = Some(s),
            Lookup::Pending(t) => tickets.push((t, i)),
        }
    }
    let mut done: Vec<BlockDone> = Vec::new();
    while done.len() < tickets.len() {
        c.wait(&mut done).unwrap();
    }
    for d in done {
        let i = tickets.iter().find(|(t, _)| *t == d.ticket).expect("a ticket we hold").1;
        assert_eq!(d.block, i);
        slots[i as usize] = Some(d.result.unwrap());
    }
    slots.into_iter().map(Option::unwrap).collect()
}

fn concat(blocks: &[BufSlice]) -> Vec<u8> {
    blocks.iter().flat_map(|b| b.as_bytes().iter().copied()).collect()
}

fn same_bytes(blocks: &[BufSlice], path: &Path) -> bool {
    concat(blocks) == std::fs::read(path).unwrap()
}

#[test]
fn hits_share_one_block_among_senders() {
    let dir = disk_dir();
    let path = dir.path().join("small");
    write_pattern(&path, 2 * MIB + 100, 1);
    let p = pool(8);
    let start = p.stats();
    let mut c = cache(&p, CacheConfig::default());
    let f = c.open(&path).unwrap();
    assert!(f.cacheable);
    assert_eq!(f.blocks(), 3);
    let first = fetch_all(&mut c, &f);
    assert!(same_bytes(&first, &path));
    let f2 = c.open(&path).unwrap();
    let second = fetch_all(&mut c, &f2);
    assert!(same_bytes(&second, &path));
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.addr(), b.addr(), "the second sender got the same block, no new read");
        assert_eq!(a.buf().refs(), 3, "cache + two senders");
    }
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.cached, s.cached_shared), (3, 3, 3, 3));
    assert_eq!(c.reader().stats().reads_direct, 3);
    let u = c.usage();
    assert_eq!((u.total, u.free, u.reading, u.cached, u.elsewhere), (8, 5, 0, 3, 0));
    drop((first, second));
    assert_eq!(c.stats().cached_shared, 0);
    c.clear();
    assert_eq!(p.stats(), start);
}

#[test]
fn askers_of_a_block_in_flight_join_one_read() {
    let dir = disk_dir();
    let path = dir.path().join("f");
    write_pattern(&path, 1000, 2);
    let p = pool(4);
    let mut c = cache(&p, CacheConfig::default());
    let f = c.open(&path).unwrap();
    let (Lookup::Pending(a), Lookup::Pending(b)) = (c.get(&f, 0).unwrap(), c.get(&f, 0).unwrap()) else {
        panic!("nothing was cached yet");
    };
    assert_ne!(a, b);
    let mut done = Vec::new();
    while done.len() < 2 {
        c.wait(&mut done).unwrap();
    }
    let s0 = done[0].result.as_ref().unwrap();
    let s1 = done[1].result.as_ref().unwrap();
    assert_eq!(s0.addr(), s1.addr());
    assert_eq!(s0.as_bytes(), std::fs::read(&path).unwrap());
    assert_eq!(c.stats().joined, 1);
    assert_eq!(c.reader().stats().reads_direct, 1, "one read for both askers");
}

#[test]
fn eviction_never_frees_a_block_a_sender_holds() {
    let dir = disk_dir();
    let paths: Vec<_> = (0..4).map(|i| dir.path().join(format!("f{i}"))).collect();
    for (i, path) in paths.iter().enumerate() {
        write_pattern(path, MIB, 10 + i as u64);
    }
    let p = pool(4);
    let start = p.stats();
    let mut c = cache(&p, CacheConfig { capacity: 2, ..Default::default() });
    // A send queue holds file 0's block, then the cache fills past its capacity.
    let f0 = c.open(&paths[0]).unwrap();
    let held = fetch_all(&mut c, &f0);
    for path in &paths[1..] {
        let f = c.open(path).unwrap();
        drop(fetch_all(&mut c, &f));
    }
    let s = c.stats();
    assert_eq!(s.cached, 2);
    assert!(s.evictions >= 2);
    // Blocks freed by eviction were reused by later reads; the held one was not.
    assert!(same_bytes(&held, &paths[0]), "a held block was overwritten");
    // f0's block is cached and held by the sender, f3's cached: two free.
    assert_eq!(p.stats().blocks_free, 2);
    // Memory pressure: every other block is taken, so reads evict cached, unshared blocks.
    let others: Vec<_> = (0..p.stats().blocks_free).map(|_| p.alloc_block().unwrap()).collect();
    for path in &paths[1..] {
        let got = serve(&mut c, path);
        assert!(same_bytes(&got, path));
    }
    assert!(same_bytes(&held, &paths[0]));
    // Now the sender holds one block, `others` the rest, and the cache one: a read that
    // needs a second block fails clearly, since the held block must not be taken.
    let keep = serve(&mut c, &paths[3]);
    let f1 = c.open(&paths[1]).unwrap();
    let err = c.get(&f1, 0).unwrap_err();
    assert!(matches!(err, Error::PoolExhausted { .. }), "{err}");
    assert!(same_bytes(&held, &paths[0]));
    drop((held, keep, others));
    c.clear();
    assert_eq!(p.stats(), start, "no block leaked");
}

#[test]
fn large_files_stream_without_polluting_the_cache() {
    let dir = disk_dir();
    let big = dir.path().join("big");
    let small = dir.path().join("small");
    write_pattern(&big, 5 * MIB + 7, 3);
    write_pattern(&small, 4096, 4);
    let p = pool(8);
    // Admission off: the big file is fetched twice, which would admit it (see below).
    let mut c = cache(&p, CacheConfig { max_file_size: MIB, admit_large: false, ..Default::default() });
    let s = c.open(&small).unwrap();
    drop(fetch_all(&mut c, &s));
    let b = c.open(&big).unwrap();
    assert!(!b.cacheable);
    for _ in 0..2 {
        let got = fetch_all(&mut c, &b);
        assert!(same_bytes(&got, &big));
    }
    let st = c.stats();
    assert_eq!(st.streamed, 12);
    assert_eq!(st.cached, 1, "only the small file's block");
    assert_eq!(st.evictions, 0);
    assert!(matches!(c.get(&s, 0).unwrap(), Lookup::Hit(_)), "the small file is still hot");
}

#[test]
fn a_file_modified_between_requests_is_read_afresh() {
    let dir = disk_dir();
    let path = dir.path().join("page.html");
    std::fs::write(&path, b"version one: hello").unwrap();
    let p = pool(4);
    let mut c = cache(&p, CacheConfig::default());
    let f = c.open(&path).unwrap();
    let v1 = fetch_all(&mut c, &f);
    assert_eq!(concat(&v1), b"version one: hello");
    let again = c.open(&path).unwrap();
    assert!(matches!(c.get(&again, 0).unwrap(), Lookup::Hit(_)));

    // Same size, new bytes, in place.
    std::fs::write(&path, b"version two: howdy").unwrap();
    let got = serve(&mut c, &path);
    assert_eq!(concat(&got), b"version two: howdy");
    assert_eq!(concat(&v1), b"version one: hello", "a sender of v1 still has v1 intact");

    // Same size, new bytes, and the old mtime put back: ctime still tells.
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, b"version 3: sneaky!").unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
    let got = serve(&mut c, &path);
    assert_eq!(concat(&got), b"version 3: sneaky!");

    // Replaced by rename (a new inode), and grown.
    let tmp = dir.path().join("page.tmp");
    std::fs::write(&tmp, b"version four, longer than before").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let got = serve(&mut c, &path);
    assert_eq!(concat(&got), b"version four, longer than before");

    // Truncated to nothing.
    std::fs::write(&path, b"").unwrap();
    let f = c.open(&path).unwrap();
    assert_eq!(f.blocks(), 0);
    assert!(c.get(&f, 0).is_err());

    let s = c.stats();
    assert!(s.invalidations >= 3, "old versions' blocks were dropped: {s:?}");
    assert_eq!(s.hits, 1);
}

/// `open` then fetch every block: what a server does per request.
fn serve(c: &mut BlockCache, path: &Path) -> Vec<BufSlice> {
    let f = c.open(path).unwrap();
    fetch_all(c, &f)
}

/// Disk bytes the reader has landed so far.
fn disk_bytes(c: &BlockCache) -> u64 {
    let r = c.reader().stats();
    r.bytes_direct + r.bytes_buffered
}

/// The large-file counters add up: every block asked for was a hit (or joined a read),
/// admitted, lost to a hotter victim or streamed, and its bytes came from memory or disk.
fn assert_large_counts_add_up(c: &BlockCache, requests: u64, blocks: u64, bytes: u64) {
    let s = c.stats();
    assert_eq!(s.admissions + s.rejections, requests, "{s:?}");
    assert_eq!(s.large_hits + s.admitted_blocks + s.admission_losses + s.streamed, blocks, "{s:?}");
    assert_eq!(s.large_hit_bytes + s.large_read_bytes, bytes, "{s:?}");
}

#[test]
fn a_large_file_requested_again_is_admitted_and_then_costs_no_disk_read() {
    let dir = disk_dir();
    let big = dir.path().join("big");
    let size = 5 * MIB + 7;
    write_pattern(&big, size, 21);
    let p = pool(16);
    let start = p.stats();
    let mut c = cache(&p, CacheConfig { capacity: 8, max_file_size: MIB, ..Default::default() });

    // First request: a one-off so far, it streams past the cache.
    let got = serve(&mut c, &big);
    assert!(same_bytes(&got, &big));
    let s = c.stats();
    assert_eq!((s.rejections, s.admissions, s.streamed, s.cached), (1, 0, 6, 0));
    assert_eq!(disk_bytes(&c), size);
    drop(got);

    // Second request: requested again and 6 blocks fit in 8: admitted as it is read.
    let f = c.open(&big).unwrap();
    assert!(f.large && f.cacheable, "{f:?}");
    let got = fetch_all(&mut c, &f);
    assert!(same_bytes(&got, &big));
    let s = c.stats();
    assert_eq!((s.admissions, s.admitted_blocks, s.cached, s.evictions), (1, 6, 6, 0));
    drop(got);

    // Third request: every block from memory, not one byte from the disk.
    let disk = disk_bytes(&c);
    let got = serve(&mut c, &big);
    assert!(same_bytes(&got, &big));
    assert_eq!(disk_bytes(&c), disk, "the third download read the disk");
    let s = c.stats();
    assert_eq!((s.large_hits, s.large_hit_bytes), (6, size));
    assert_eq!(s.large_read_bytes, 2 * size, "two downloads came from the disk");
    assert_large_counts_add_up(&c, 3, 18, 3 * size);
    drop(got);
    c.clear();
    assert_eq!(p.stats(), start, "no block leaked");
}

#[test]
fn a_scan_of_one_off_large_files_does_not_evict_the_hot_set() {
    let dir = disk_dir();
    let hot: Vec<_> = (0..3).map(|i| dir.path().join(format!("hot{i}"))).collect();
    for (i, path) in hot.iter().enumerate() {
        write_pattern(path, 4096, 30 + i as u64);
    }
    let scan: Vec<_> = (0..20).map(|i| dir.path().join(format!("big{i}"))).collect();
    for (i, path) in scan.iter().enumerate() {
        write_pattern(path, MIB + MIB / 2, 40 + i as u64);
    }
    let p = pool(8);
    let mut c = cache(&p, CacheConfig { capacity: 4, max_file_size: MIB, ..Default::default() });
    for _ in 0..3 {
        for path in &hot {
            drop(serve(&mut c, path));
        }
    }
    for path in &scan {
        let got = serve(&mut c, path);
        assert!(same_bytes(&got, path));
    }
    let s = c.stats();
    assert_eq!((s.rejections, s.streamed, s.admitted_blocks), (20, 40, 0), "{s:?}");
    assert_eq!((s.cached, s.evictions), (3, 0), "the scan displaced nothing: {s:?}");
    for path in &hot {
        let f = c.open(path).unwrap();
        assert!(matches!(c.get(&f, 0).unwrap(), Lookup::Hit(_)), "{} is still cached", path.display());
    }
    assert_large_counts_add_up(&c, 20, 40, 20 * (MIB + MIB / 2));
}

#[test]
fn an_admitted_file_displaces_only_blocks_of_files_requested_less_often() {
    let dir = disk_dir();
    let hot: Vec<_> = (0..4).map(|i| dir.path().join(format!("hot{i}"))).collect();
    for (i, path) in hot.iter().enumerate() {
        write_pattern(path, 4096, 50 + i as u64);
    }
    let big = dir.path().join("big");
    let size = MIB + MIB / 2;
    write_pattern(&big, size, 60);
    let p = pool(12);
    let mut c = cache(&p, CacheConfig { capacity: 4, max_file_size: MIB, ..Default::default() });
    // Four small files requested five times each fill the cache.
    for _ in 0..5 {
        for path in &hot {
            drop(serve(&mut c, path));
        }
    }
    assert_eq!(c.stats().cached, 4);
    // The big file's 2nd..5th requests are admitted but lose to the hotter victims; the
    // 6th is requested more often than they are and takes two of their places.
    for n in 1..=7u64 {
        let got = serve(&mut c, &big);
        assert!(same_bytes(&got, &big));
        let s = c.stats();
        let (losses, admitted) = match n {
            1 => (0, 0),
            2..=5 => (2 * (n - 1), 0),
            _ => (8, 2),
        };
        assert_eq!((s.admission_losses, s.admitted_blocks), (losses, admitted), "request {n}: {s:?}");
        assert!(s.cached <= 4, "over capacity: {s:?}");
    }
    let s = c.stats();
    assert_eq!((s.evictions, s.cached, s.large_hits), (2, 4, 2), "{s:?}");
    let still = hot.iter().filter(|p| {
        let f = c.open(p).unwrap();
        matches!(c.get(&f, 0).unwrap(), Lookup::Hit(_))
    });
    assert_eq!(still.count(), 2, "two small files made room, two stayed");
    assert_large_counts_add_up(&c, 7, 14, 7 * size);
}

#[test]
fn admission_respects_capacity() {
    let dir = disk_dir();
    let (fits, over, rival) = (dir.path().join("fits"), dir.path().join("over"), dir.path().join("rival"));
    write_pattern(&fits, 4 * MIB, 70);
    write_pattern(&over, 4 * MIB + 1, 71);
    write_pattern(&rival, 4 * MIB, 72);
    let p = pool(12);
    let mut c = cache(&p, CacheConfig { capacity: 4, max_file_size: MIB, ..Default::default() });
    // Five blocks never fit in four, however often they are asked for.
    for _ in 0..3 {
        let got = serve(&mut c, &over);
        assert!(same_bytes(&got, &over));
    }
    let s = c.stats();
    assert_eq!((s.rejections, s.admissions, s.streamed, s.cached), (3, 0, 15, 0), "{s:?}");
    // Four blocks fit exactly: the third request is served from memory.
    for _ in 0..2 {
        drop(serve(&mut c, &fits));
    }
    let disk = disk_bytes(&c);
    let got = serve(&mut c, &fits);
    assert!(same_bytes(&got, &fits));
    drop(got);
    assert_eq!(disk_bytes(&c), disk, "served from memory");
    assert_eq!(c.stats().cached, 4);
    // A rival as large, requested less often than `fits`, finds the cache full of a
    // hotter file and stays out; the cache never exceeds its capacity.
    for _ in 0..2 {
        let got = serve(&mut c, &rival);
        assert!(same_bytes(&got, &rival));
        assert!(c.stats().cached <= 4);
    }
    let s = c.stats();
    assert_eq!((s.admissions, s.admission_losses, s.cached, s.evictions), (3, 4, 4, 0), "{s:?}");
    assert_large_counts_add_up(&c, 8, 15 + 12 + 8, 3 * (4 * MIB + 1) + 5 * 4 * MIB);
}
