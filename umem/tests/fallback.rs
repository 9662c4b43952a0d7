//! File systems other than the disk's: one that refuses `O_DIRECT` (ramfs: `open` gives
//! `EINVAL`) is read buffered into the same blocks, with the fallback counted; tmpfs is
//! read correctly whichever way it goes (since Linux 6.6 it accepts `O_DIRECT`).
//!
//! ramfs is mounted in a private mount namespace of a thread of its own, so the mount is
//! invisible to the rest of the system and vanishes with the thread. That needs
//! CAP_SYS_ADMIN (root, as CI runs); without it the test says so and skips.

mod common;

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use common::{disk_dir, pool, read_whole, write_pattern, MIB};
use umem::{Access, BlockCache, BlockReader, BufferedWhy, CacheConfig, Lookup, ReaderConfig};

const SIZES: [u64; 9] = [0, 1, 511, 512, 4095, 4096, 4097, MIB, MIB + 1];

/// Runs `body` with a fresh ramfs mounted at a temporary directory, in a private mount
/// namespace of this thread. Returns `Err` (with the reason) if that cannot be set up.
fn with_private_ramfs(body: impl FnOnce(&Path)) -> Result<(), String> {
    // SAFETY: unshare(CLONE_NEWNS) gives this thread its own copy of the mount table and
    // touches no memory; other threads keep theirs.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(format!("unshare(CLONE_NEWNS): {}", io::Error::last_os_error()));
    }
    let root = c"/";
    // SAFETY: NUL-terminated strings; makes our copy of the mounts private so that the
    // ramfs mount below does not propagate to the host.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!("mount(MS_PRIVATE): {}", io::Error::last_os_error()));
    }
    let dir = disk_dir();
    let target = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
    // SAFETY: NUL-terminated strings; mounts a new, empty ramfs on our own temp directory.
    let rc = unsafe { libc::mount(c"none".as_ptr(), target.as_ptr(), c"ramfs".as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        return Err(format!("mount -t ramfs: {}", io::Error::last_os_error()));
    }
    body(dir.path());
    // SAFETY: unmounts what we mounted above (lazily, in case a file is still open).
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    Ok(())
}

#[test]
fn a_file_system_refusing_o_direct_is_read_buffered() {
    let ran = std::thread::spawn(|| {
        with_private_ramfs(|dir| {
            let p = pool(4);
            let start = p.stats();
            let mut r = BlockReader::new(&p, &ReaderConfig { headroom: 66, ..Default::default() }).unwrap();
            let mut total = 0;
            for (i, &size) in SIZES.iter().enumerate() {
                let path = dir.join(format!("f{size}"));
                write_pattern(&path, size, i as u64);
                let f = r.open(&path).unwrap();
                let info = *r.info(f).unwrap();
                assert_eq!(info.access, Access::Buffered(BufferedWhy::OpenRefused));
                assert!(read_whole(&mut r, f) == std::fs::read(&path).unwrap(), "{size}");
                total += size;
            }
            let s = r.stats();
            assert_eq!(s.fallbacks, SIZES.len() as u64, "one fallback per file");
            assert_eq!(s.bytes_buffered, total);
            assert_eq!(s.bytes_direct, 0);
            // The cache on top sees the same API.
            let mut c = BlockCache::new(r, &CacheConfig::default());
            let path = dir.join(format!("f{}", MIB + 1));
            let f = c.open(&path).unwrap();
            assert_eq!(f.blocks(), 2);
            let mut got = Vec::new();
            for i in 0..2 {
                if let Lookup::Pending(_) = c.get(&f, i).unwrap() {
                    let mut done = Vec::new();
                    c.wait(&mut done).unwrap();
                    got.extend_from_slice(done[0].result.as_ref().unwrap().as_bytes());
                }
            }
            assert!(got == std::fs::read(&path).unwrap());
            drop(c);
            assert_eq!(p.stats(), start);
        })
    })
    .join()
    .expect("test thread");
    if let Err(why) = ran {
        println!("SKIPPED a_file_system_refusing_o_direct_is_read_buffered: {why} (needs root)");
    }
}

#[test]
fn tmpfs_files_are_read_exactly_either_way() {
    let dir = tempfile::Builder::new().prefix("umem-test-").tempdir_in("/dev/shm").unwrap();
    let p = pool(4);
    let mut r = BlockReader::new(&p, &ReaderConfig::default()).unwrap();
    for (i, &size) in SIZES.iter().enumerate() {
        let path = dir.path().join(format!("f{size}"));
        write_pattern(&path, size, 100 + i as u64);
        let f = r.open(&path).unwrap();
        if i == 0 {
            println!("tmpfs: {:?} (align {:?})", r.info(f).unwrap().access, r.info(f).unwrap().align);
        }
        assert!(read_whole(&mut r, f) == std::fs::read(&path).unwrap(), "{size}");
    }
}
