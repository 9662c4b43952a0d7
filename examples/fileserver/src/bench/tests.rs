//! The benchmark driver on small files with every body byte checked: the cheap client
//! receives exactly the files, in order, with nothing lost, copied or read from disk in
//! the timed part.

use std::time::Duration;

use umem::HugePages;

use super::*;

fn opts(dir: &Path, mtu: usize) -> Options {
    let mut o = Options::defaults(dir.to_owned(), mtu);
    o.frames = 2048;
    o.pool = PoolOpts {
        block_kib: 64,
        blocks: 64,
        hugepages: HugePages::Off,
        cache_blocks: 48,
        direct_threshold: 256 << 10,
        direct_io: true,
    };
    o.verify = true;
    o.limit = Duration::from_secs(30);
    o
}

const LARGE_SIZE: u64 = (1 << 20) + 13;

#[test]
fn the_large_workload_delivers_every_byte_from_memory_at_both_mtus() {
    let dir = tempfile::Builder::new().prefix("fs-bench-").tempdir_in("/var/tmp").unwrap();
    write_files(dir.path(), LARGE_SIZE, 0, 0).unwrap();
    for (mtu, offload) in [(1500, true), (9000, true), (1500, false), (9000, false)] {
        let mut o = opts(dir.path(), mtu);
        o.tx_offload = offload;
        let mut b = Bench::new(&o).unwrap();
        let m = large(&mut b, 3).unwrap();
        let c = m.client_stats;
        assert_eq!((c.responses, c.body_bytes), (3, 3 * LARGE_SIZE), "mtu {mtu}: {m:?}");
        assert_eq!((c.bad, c.out_of_order, c.duplicates), (0, 0, 0), "mtu {mtu}: {m:?}");
        assert_eq!(c.bad_checksums, 0, "mtu {mtu}, offload {offload}: {m:?}");
        let partial = if offload { m.segments } else { 0 };
        assert_eq!(m.partial_checksums, partial, "mtu {mtu}, offload {offload}: segments left to the NIC");
        assert_eq!((m.retransmits, m.copied, m.disk_bytes), (0, 0, 0), "mtu {mtu}: {m:?}");
        let mss = (mtu - 52) as u64;
        assert!(m.segments >= 3 * LARGE_SIZE / mss, "mtu {mtu}: {} segments", m.segments);
        assert!(m.descriptors > m.segments, "header and payload descriptors");
        assert!(c.acks >= m.segments / 4 / 2, "the client acknowledged: {m:?}");
        assert!(m.server > Duration::ZERO && m.client > Duration::ZERO);
    }
}

#[test]
fn the_small_workload_answers_every_request_on_keep_alive_connections() {
    let dir = tempfile::Builder::new().prefix("fs-bench-").tempdir_in("/var/tmp").unwrap();
    write_files(dir.path(), 0, 20, 16 << 10).unwrap();
    let mut b = Bench::new(&opts(dir.path(), 1500)).unwrap();
    let m = small(&mut b, 20, 4, 200).unwrap();
    let c = m.client_stats;
    assert_eq!((c.responses, c.body_bytes), (200, 200 * (16 << 10)), "{m:?}");
    assert_eq!((c.bad, c.out_of_order), (0, 0), "{m:?}");
    assert_eq!((m.retransmits, m.copied, m.disk_bytes), (0, 0, 0), "{m:?}");
    assert_eq!(b.core().open_connections(), 5, "one warm-up and four timed connections, kept alive");
}

/// The client's checksum check can fail: with the link offering offload but not finishing
/// the checksums it was left, every segment the client receives is counted bad.
#[test]
fn unfinished_checksums_are_caught_by_the_verifying_client() {
    let dir = tempfile::Builder::new().prefix("fs-bench-").tempdir_in("/var/tmp").unwrap();
    write_files(dir.path(), 0, 4, 3000).unwrap();
    let mut b = Bench::new(&opts(dir.path(), 1500)).unwrap();
    b.link.leave_checksums_unfinished();
    let m = small(&mut b, 4, 2, 20).unwrap();
    let c = m.client_stats;
    assert_eq!(c.responses, 20, "{m:?}");
    assert!(m.partial_checksums > 0, "{m:?}");
    assert_eq!(c.bad_checksums, m.partial_checksums, "every segment left unfinished is caught: {m:?}");
}
