//! The block cache over a real reader: sharing by reference count, eviction that never
//! frees a block a sender holds, streaming of large files, and freshness after a change.

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
    let mut c = cache(&p, CacheConfig { max_file_size: MIB, ..Default::default() });
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
