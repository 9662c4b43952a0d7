use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::pcapng::{blocks, parse_packet, EPB, IDB, SHB};
use super::writer::numbered;
use super::*;

fn opts(file: Option<PathBuf>, max_bytes: u64, files: u32) -> PcapOpts {
    PcapOpts { file, snaplen: 256, max_bytes, files }
}

/// A 300-byte frame carrying `seq` in its first bytes.
fn frame(seq: u32) -> Vec<u8> {
    let mut f = vec![0xabu8; 300];
    f[..4].copy_from_slice(&seq.to_le_bytes());
    f
}

fn seq_of(data: &[u8]) -> u32 {
    u32::from_le_bytes(data[..4].try_into().unwrap())
}

/// The packets of a pcapng file, checked block by block: (sequence, time, direction).
fn read(path: &std::path::Path) -> Vec<(u32, u64, Direction)> {
    let bytes = std::fs::read(path).unwrap();
    let b = blocks(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!((b[0].kind, b[1].kind), (SHB, IDB), "{}", path.display());
    b[2..]
        .iter()
        .map(|b| {
            assert_eq!(b.kind, EPB);
            let p = parse_packet(b.body).unwrap();
            assert_eq!((p.orig_len, p.data.len()), (300, 256), "cut at the snap length");
            (seq_of(p.data), p.ts_ns, p.direction().unwrap())
        })
        .collect()
}

#[test]
fn a_file_rotates_at_the_cap_and_keeps_the_newest_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cap.pcapng");
    let cap = Capturer::start(&opts(Some(path.clone()), 1 << 20, 3), "veth0").unwrap();
    let mut tap = cap.tap();
    const N: u32 = 20_000; // 300 bytes each: 6 MB, about six files' worth
    for seq in 0..N {
        assert!(tap.begin_turn(1_000 + u64::from(seq)), "a file is written: always on");
        let f = frame(seq);
        let dir = if seq % 2 == 0 { Direction::Inbound } else { Direction::Outbound };
        tap.record(dir, [&f[..66], &f[66..]].into_iter());
        // Handed over every 512 packets: 40 chunks, fewer than the pool's, so none is dropped
        // however slow the disk.
        tap.end_turn(seq % 512 == 511);
    }
    drop(tap);
    let shared = cap.shared.clone();
    cap.stop();
    assert_eq!(shared.counters.dropped.load(Ordering::Relaxed), 0);
    assert_eq!(shared.counters.packets.load(Ordering::Relaxed), u64::from(N));
    assert!(!numbered(&path, 3).exists(), "only three files are kept");
    let mut seqs = Vec::new();
    for n in (0..3).rev() {
        let p = numbered(&path, n);
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len <= 1 << 20, "{} is {len} bytes, over the cap", p.display());
        let packets = read(&p);
        for (seq, ts, dir) in &packets {
            assert_eq!(*ts, 1_000 + u64::from(*seq));
            assert_eq!(*dir, if seq % 2 == 0 { Direction::Inbound } else { Direction::Outbound });
        }
        seqs.extend(packets.into_iter().map(|p| p.0));
    }
    // Oldest file first: the newest packets, in order, without a gap, ending with the last.
    assert_eq!(*seqs.last().unwrap(), N - 1);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "a packet is missing between files");
    assert!(seqs.len() > 2 * 3000, "{} packets kept in three files", seqs.len());
    assert!(shared.counters.rotations.load(Ordering::Relaxed) >= 5);
}

#[test]
fn a_live_capture_takes_only_its_window() {
    let cap = Capturer::start(&opts(None, 1 << 20, 1), "veth0").unwrap();
    let mut tap = cap.tap();
    assert!(!tap.begin_turn(0), "nothing records without a file or a live capture");
    let f = frame(0);
    tap.record(Direction::Inbound, [&f[..]].into_iter());
    tap.end_turn(true);
    assert_eq!(cap.shared.counters.packets.load(Ordering::Relaxed), 0);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    let live = cap.shared.start_live(t0, 2).unwrap();
    let base = unix_ns(t0);
    for (seq, at) in [(1u32, base - 1), (2, base), (3, base + 1_999_999_999), (4, base + 2_000_000_000)] {
        assert!(tap.begin_turn(at));
        let f = frame(seq);
        tap.record(Direction::Outbound, [&f[..]].into_iter());
        tap.end_turn(true);
    }
    // The writer thread takes chunks on its own time.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let all_back = || cap.shared.free.lock().unwrap().len() as u64 == cap.shared.allocated.load(Ordering::Relaxed);
    while !all_back() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (bytes, dropped) = cap.shared.finish_live(&live);
    assert_eq!(dropped, 0);
    let b = blocks(&bytes).unwrap();
    let seqs: Vec<u32> = b[2..].iter().map(|b| seq_of(parse_packet(b.body).unwrap().data)).collect();
    assert_eq!(seqs, [2, 3], "only the packets stamped inside the two seconds");
    let mut tap2 = cap.tap();
    assert!(!tap2.begin_turn(base), "off again once the capture ended");
    drop((tap, tap2));
    cap.stop();
}

#[test]
fn a_writer_that_falls_behind_costs_drops_not_memory_or_waiting() {
    // A capture whose writer never reads: the chunk pool and the queue are all it can hold.
    let (to_writer, _rx) = mpsc::sync_channel(2);
    let shared = Arc::new(Capture {
        snaplen: 256,
        iface: "x".into(),
        active: AtomicBool::new(true),
        to_writer,
        free: Mutex::new(Vec::new()),
        allocated: AtomicU64::new(0),
        file: true,
        live: Mutex::new(Vec::new()),
        counters: Counters::default(),
    });
    let mut tap = Tap::new(shared.clone());
    let f = frame(7);
    let per_chunk = (CHUNK_BYTES / pcapng::packet_len(256)) as u64;
    let n = 10 * per_chunk;
    let start = std::time::Instant::now();
    for _ in 0..n {
        tap.begin_turn(1);
        tap.record(Direction::Inbound, [&f[..]].into_iter());
    }
    tap.hand_over();
    assert!(start.elapsed() < Duration::from_secs(5), "the tap waited");
    let c = &shared.counters;
    let (sent, dropped) = (c.packets.load(Ordering::Relaxed), c.dropped.load(Ordering::Relaxed));
    assert_eq!(sent + dropped, n, "every packet is either sent or counted as dropped");
    assert_eq!(sent, 2 * per_chunk, "two chunks fit the queue");
    assert!(shared.allocated.load(Ordering::Relaxed) <= MAX_CHUNKS as u64);
}

#[test]
fn settings_and_live_requests_are_checked() {
    assert_eq!(live_request("/pcap?seconds=5"), Some(Ok(5)));
    assert_eq!(live_request("/pcap?x=1&seconds=60"), Some(Ok(60)));
    for bad in ["/pcap", "/pcap?seconds=0", "/pcap?seconds=61", "/pcap?seconds=a"] {
        assert!(matches!(live_request(bad), Some(Err(_))), "{bad}");
    }
    assert_eq!(live_request("/metrics"), None);
    assert_eq!(live_request("/pcapx?seconds=1"), None);
    assert!(opts(None, 1 << 20, 1).check().is_ok());
    assert!(PcapOpts { snaplen: 10, ..opts(None, 1 << 20, 1) }.check().is_err());
    assert!(opts(None, 1000, 1).check().is_err());
    assert!(opts(None, 1 << 20, 0).check().is_err());
}

#[test]
fn at_most_two_live_captures_at_once() {
    let cap = Capturer::start(&opts(None, 1 << 20, 1), "veth0").unwrap();
    let now = SystemTime::now();
    let a = cap.shared.start_live(now, 1).unwrap();
    let _b = cap.shared.start_live(now, 1).unwrap();
    assert!(cap.shared.start_live(now, 1).is_err());
    cap.shared.finish_live(&a);
    assert!(cap.shared.start_live(now, 1).is_ok());
    cap.stop();
}
