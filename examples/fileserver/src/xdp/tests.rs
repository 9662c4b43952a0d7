//! The AF_XDP backend's core over the simulated wire (no root, no NIC): real io_uring
//! block reads into the server's pool, the user-space stack at both ends.

use std::path::{Path, PathBuf};

use stack::Duration;

use crate::sim::{complete_responses, responses, Response, SimConfig, SimNet};

const BLOCK: usize = 64 * 1024;

/// Files named by size, with bytes that depend on their position and the size.
fn www() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("fs-sim-").tempdir_in("/var/tmp").unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    for size in sizes() {
        std::fs::write(www.join(format!("s{size}")), content(size)).unwrap();
    }
    (dir, www)
}

fn sizes() -> [usize; 9] {
    [0, 1, 4095, 4096, 4097, BLOCK + 1, 3 * BLOCK + 17, 300_000, (1 << 20) + 1]
}

fn content(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i.wrapping_mul(131) ^ size) as u8).collect()
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: sim\r\n\r\n")
}

/// Sends `request` on a new connection and runs until `n` responses arrived whole.
fn fetch(net: &mut SimNet, request: &str, n: usize) -> Vec<Response> {
    let c = net.connect();
    assert!(net.send(c, request.as_bytes()));
    let done = net.run_until(Duration::from_secs(30), |net| {
        complete_responses(&net.conns[c].got, &[]) >= n || net.conns[c].ended
    });
    assert!(done, "no answer in 30 s of virtual time; got {} bytes; {}", net.conns[c].got.len(), net.describe());
    responses(&net.conns[c].got, &[]).expect("well-formed responses")
}

fn net(www: &Path) -> SimNet {
    SimNet::new(www, &SimConfig::default()).expect("a simulated server")
}

#[test]
fn gets_of_every_size_are_byte_exact() {
    let (_dir, www) = www();
    let mut net = net(&www);
    for size in sizes() {
        let r = fetch(&mut net, &get(&format!("/s{size}")), 1);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].status, 200, "s{size}");
        assert_eq!(r[0].header("content-length"), Some(size.to_string().as_str()));
        assert!(r[0].body == content(size), "s{size}: body differs");
    }
    // Cached and streamed files alike were read into the pool and sent by reference.
    let m = net.core.metrics();
    let counter = |name: &str| m.extra.iter().find(|(k, _)| k == name).map_or(0, |(_, v)| *v);
    let read = counter("read_bytes_direct_total") + counter("read_bytes_buffered_total");
    assert!(read >= sizes().iter().sum::<usize>() as u64, "only {read} bytes read into the pool");
    assert_eq!(m.bytes_copied, 0, "payload copied by the CPU");
    assert_eq!(m.bytes_sent, sizes().iter().sum::<usize>() as u64);
}

#[test]
fn a_range_across_a_block_boundary_is_byte_exact() {
    let (_dir, www) = www();
    let mut net = net(&www);
    let size = 3 * BLOCK + 17;
    let (a, b) = (BLOCK - 10, 2 * BLOCK + 5);
    let req = format!("GET /s{size} HTTP/1.1\r\nHost: sim\r\nRange: bytes={a}-{b}\r\n\r\n");
    let r = fetch(&mut net, &req, 1);
    assert_eq!(r[0].status, 206);
    assert_eq!(r[0].header("content-range").map(str::to_owned), Some(format!("bytes {a}-{b}/{size}")));
    assert!(r[0].body == content(size)[a..=b], "range bytes differ");
}

#[test]
fn keep_alive_pipelining_answers_in_order_on_one_connection() {
    let (_dir, www) = www();
    let mut net = net(&www);
    let big = 3 * BLOCK + 17;
    let req = format!("{}{}{}{}", get(&format!("/s{big}")), get("/nope"), get("/s4097"), get("/s1"));
    let r = fetch(&mut net, &req, 4);
    let statuses: Vec<u16> = r.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 404, 200, 200]);
    assert!(r[0].body == content(big) && r[2].body == content(4097) && r[3].body == content(1));
    assert_eq!(net.conns.len(), 1, "one connection");
    assert!(!net.conns[0].ended, "still open (keep-alive)");
    assert_eq!(net.core.open_connections(), 1);
}

#[test]
fn pipelining_deeper_than_the_response_queue_answers_everything_in_order() {
    let (_dir, www) = www();
    let mut net = net(&www);
    let n = 3 * crate::session::MAX_QUEUED + 1;
    let names: Vec<String> = (0..n).map(|i| format!("/s{}", [1, 4097, 300_000][i % 3])).collect();
    let req: String = names.iter().map(|p| get(p)).collect();
    let r = fetch(&mut net, &req, n);
    assert_eq!(r.len(), n);
    for (i, (resp, name)) in r.iter().zip(&names).enumerate() {
        let size: usize = name[2..].parse().unwrap();
        assert!(resp.status == 200 && resp.body == content(size), "response {i} ({name})");
    }
}

#[test]
fn a_missing_file_is_404_and_the_connection_stays() {
    let (_dir, www) = www();
    let mut net = net(&www);
    let r = fetch(&mut net, &get("/no/such/file"), 1);
    assert_eq!(r[0].status, 404);
    assert_eq!(r[0].header("connection"), Some("keep-alive"));
    assert_eq!(net.core.metrics().timeouts_head, 0);
}

#[test]
fn a_stalled_head_times_out_on_the_virtual_clock_while_others_are_served() {
    let (_dir, www) = www();
    let mut net = net(&www);
    let slow = net.connect();
    assert!(net.send(slow, b"GET /s4096 HTTP/1.1\r\n"));
    assert!(net.run_until(Duration::from_millis(100), |n| n.core.open_connections() == 1));
    let started = net.now;
    let r = fetch(&mut net, &get("/s300000"), 1);
    assert!(r[0].body == content(300_000), "the other client was served");
    assert!(net.run_until(Duration::from_secs(10), |n| n.conns[slow].ended), "the stalled connection stayed open");
    let waited = net.now - started;
    assert!(net.conns[slow].reset, "a timed-out connection is reset");
    assert!(net.conns[slow].got.is_empty(), "the stalled request was answered");
    // --head-timeout 2 s, checked within one timer period.
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_millis(2500), "cut after {waited}");
    let m = net.core.metrics();
    assert_eq!((m.timeouts_head, m.timeouts_idle, m.timeouts_write), (1, 0, 0));
    assert_eq!(net.core.open_connections(), 1, "the other connection is still open");
}

#[test]
fn every_frame_comes_back_after_the_connections_close() {
    let (_dir, www) = www();
    let mut net = net(&www);
    let frames = net.link.pool.stats().frames;
    let r = fetch(&mut net, &format!("{}{}", get("/s300000"), get("/s4097")), 2);
    assert_eq!(r.len(), 2);
    net.close(0);
    assert!(net.run_until(Duration::from_secs(5), |n| n.core.open_connections() == 0), "the server never closed");
    assert!(net.run_until(Duration::from_secs(5), |n| n.link.pool.stats().frames_free == frames));
}

#[test]
fn the_gauges_a_soak_reads_return_to_their_start_once_time_wait_ends() {
    let (_dir, www) = www();
    let mut net = net(&www);
    let gauge = |net: &SimNet, name: &str| -> u64 {
        let m = net.core.metrics();
        m.extra.iter().find(|(k, _)| k == name).map(|e| e.1).unwrap_or_else(|| panic!("no {name} in the metrics"))
    };
    let blocks = net.link.pool.stats().blocks;
    assert_eq!(gauge(&net, "pool_blocks_free"), u64::from(blocks));
    let r = fetch(&mut net, &format!("{}{}", get("/s300000"), get("/s4097")), 2);
    assert_eq!(r.len(), 2);
    assert_eq!(gauge(&net, "tcp_connections"), 1, "the connection is open");
    net.close(0);
    assert!(net.run_until(Duration::from_secs(5), |n| n.core.open_connections() == 0), "the server never closed");
    // TIME-WAIT (60 s) is on the side that closed first; run past it on the virtual clock.
    net.run_until(Duration::from_secs(70), |_| false);
    for name in ["tcp_connections", "tcp_time_wait_entries", "tcp_half_open"] {
        assert_eq!(gauge(&net, name), 0, "{name}");
    }
    let (free, cached) = (gauge(&net, "pool_blocks_free"), gauge(&net, "cache_blocks_cached"));
    assert!(cached > 0, "the small file stayed in the cache");
    assert_eq!(free + cached, u64::from(blocks), "every block is free or cached");
}

#[test]
fn a_turn_serves_only_connections_with_work_and_timers_touch_only_the_due() {
    let (_dir, www) = www();
    let mut net = net(&www);
    const N: u64 = 40;
    for _ in 0..N {
        assert_eq!(fetch(&mut net, &get("/s4097"), 1)[0].status, 200);
    }
    assert_eq!(net.core.open_connections(), N as usize);
    net.run_for(Duration::from_secs(1));

    // Idle keep-alive connections cost nothing per turn: no session served, no timer looked at.
    let before = net.core.work();
    net.run_for(Duration::from_secs(10));
    let idle = net.core.work();
    assert_eq!(idle.serviced, before.serviced, "idle sessions were served");
    assert_eq!(idle.timer_visits, before.timer_visits, "idle timers were visited before their deadline");

    // One request on one connection serves that connection, not the other 39.
    let c = net.conns.len() - 1;
    let had = net.conns[c].got.len();
    assert!(net.send(c, get("/s1").as_bytes()));
    assert!(net.run_until(Duration::from_secs(5), |n| n.conns[c].got.len() > had));
    let one = net.core.work().serviced - idle.serviced;
    assert!(one <= 8, "{one} sessions served for one request among {N} connections");

    // The idle timers (30 s) end every connection, each looked at about once.
    assert!(net.run_until(Duration::from_secs(40), |n| n.core.open_connections() == 0));
    let m = net.core.metrics();
    assert_eq!(m.timeouts_idle, N);
    let visits = net.core.work().timer_visits - idle.timer_visits;
    assert!(visits <= 2 * N, "{visits} timer visits to expire {N} timers");
}

#[test]
fn a_large_file_downloaded_again_is_admitted_and_then_served_from_memory() {
    let (_dir, www) = www();
    let mut net = net(&www);
    // 300,000 bytes: above the 256 KiB threshold, five 64 KiB blocks in a cache of eight.
    let counter =
        |net: &SimNet, name: &str| net.core.metrics().extra.iter().find(|(k, _)| k == name).map_or(0, |(_, v)| *v);
    let disk = |net: &SimNet| counter(net, "read_bytes_direct_total") + counter(net, "read_bytes_buffered_total");
    let mut read = Vec::new();
    for n in 0..3 {
        let before = disk(&net);
        let r = fetch(&mut net, &get("/s300000"), 1);
        assert!(r[0].status == 200 && r[0].body == content(300_000), "download {n}");
        read.push(disk(&net) - before);
    }
    assert!(read[0] >= 300_000 && read[1] >= 300_000, "the first two downloads read the disk: {read:?}");
    assert_eq!(read[2], 0, "the third download read the disk");
    assert_eq!(counter(&net, "cache_rejections_total"), 1, "the first request streamed");
    assert_eq!(counter(&net, "cache_admissions_total"), 2);
    assert_eq!(counter(&net, "cache_admitted_blocks_total"), 5);
    assert_eq!(counter(&net, "cache_large_hit_bytes_total"), 300_000);
    assert_eq!(counter(&net, "cache_large_read_bytes_total"), 600_000);
    assert_eq!(net.core.metrics().bytes_copied, 0);
}

/// The server's link finishes checksums as AF_XDP TX metadata lets the kernel or the NIC
/// do (the simulated link sums each packet the way a NIC would): every size still arrives
/// byte-exact at a client whose stack verifies every checksum, nothing is copied, and no
/// fragment reaches into the headroom the metadata takes.
#[test]
fn gets_of_every_size_are_byte_exact_with_checksums_left_to_the_link() {
    let (_dir, www) = www();
    let mut net = net(&www);
    net.link.tx_offload = stack::TxOffload { checksum: true, headroom: 24 };
    for size in sizes() {
        let r = fetch(&mut net, &get(&format!("/s{size}")), 1);
        assert_eq!(r[0].status, 200, "s{size}");
        assert!(r[0].body == content(size), "s{size}: body differs");
    }
    let segments = net.core.stack().counters().tcp_tx_segments;
    assert!(net.link.partial_packets > 0, "no segment left its checksum to the link");
    assert_eq!(net.link.partial_packets, segments, "every TCP segment did");
    assert_eq!(net.link.frag_violations, 0, "a fragment too long for the headroom, or a bad request");
    assert_eq!(net.client.counters().tcp_bad_checksum, 0, "the client found a bad checksum");
    assert_eq!(net.core.metrics().bytes_copied, 0, "payload copied by the CPU");
}

/// `--congestion bbr`: the server's connections run BBR; through 2% loss each way a
/// streamed file still arrives byte-exact, and the counters name the controller and
/// carry its own.
#[test]
fn a_bbr_server_is_byte_exact_through_loss_and_says_so_in_its_counters() {
    let (_dir, www) = www();
    let mut cfg = SimConfig::default();
    cfg.tcp.congestion = stack::tcp::CcAlgorithm::Bbr;
    cfg.faults = stack::sim::Faults { loss: 0.02, ..stack::sim::Faults::default() };
    let mut net = SimNet::new(&www, &cfg).expect("a simulated server");
    let size = (1 << 20) + 1;
    let r = fetch(&mut net, &get(&format!("/s{size}")), 1);
    assert_eq!(r[0].status, 200);
    assert!(r[0].body == content(size), "body differs");
    let m = net.core.metrics();
    let counter = |name: &str| m.extra.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    assert_eq!(counter("tcp_congestion_control{algorithm=\"bbr\"}"), Some(1), "{:?}", m.extra);
    assert_eq!(counter("tcp_congestion_control{algorithm=\"cubic\"}"), None);
    assert!(counter("tcp_retransmits_total") > Some(0), "the loss cost nothing: the test shows nothing");
    // (1 MiB is over before Startup has seen three rounds without growth.)
    for c in ["tcp_bbr_pipe_full_total", "tcp_bbr_probe_rtt_total", "tcp_bbr_policers_total"] {
        assert!(counter(c).is_some(), "{c} is not exported");
    }
    let text = m.render("xdp");
    assert!(text.contains("fileserver_tcp_congestion_control{algorithm=\"bbr\"} 1\n"), "{text}");
}
