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
    fetch_on(net, c, request, n)
}

/// Sends `request` on client connection `c` and runs until `n` responses arrived whole.
fn fetch_on(net: &mut SimNet, c: usize, request: &str, n: usize) -> Vec<Response> {
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

/// An Ethernet frame with a TCP SYN from `src:port` to the simulated server's port.
fn syn_frame(src: [u8; 4], port: u16) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr,
        TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
    };
    let (s, d) = (Ipv4Address::from(src), Ipv4Address::new(10, 0, 0, 1));
    let tcp = TcpRepr {
        src_port: port,
        dst_port: crate::sim::PORT,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(77),
        ack_number: None,
        window_len: 1000,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr { src_addr: s, dst_addr: d, next_header: IpProtocol::Tcp, payload_len: 24, hop_limit: 64 };
    let eth = EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 9]),
        dst_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = vec![0u8; 14 + 20 + 24];
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    let caps = ChecksumCapabilities::default();
    ip.emit(&mut p, &caps);
    tcp.emit(&mut TcpPacket::new_unchecked(p.payload_mut()), &s.into(), &d.into(), &caps);
    buf
}

#[test]
fn a_frame_forged_inside_a_jumbo_packet_never_reaches_the_stack() {
    let (_dir, www) = www();
    let mut net = net(&www);
    // The check holds only if the SYN on its own does open a connection.
    let before = net.core.stack().counters().tcp_syn_received;
    net.inject(&syn_frame([10, 0, 0, 8], 4000), 0);
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.core.stack().counters().tcp_syn_received, before + 1, "a bare SYN is taken");

    // A 9014-byte packet to the server's port, as AF_XDP hands it over in 3840-byte
    // fragments; each later fragment begins with a SYN from an address of its own.
    let mut jumbo = syn_frame([10, 0, 0, 2], 5000);
    jumbo.resize(9014, 0);
    for (k, at) in [3840usize, 7680].into_iter().enumerate() {
        let forged = syn_frame([10, 0, 0, 20 + k as u8], 6000 + k as u16);
        jumbo[at..at + forged.len()].copy_from_slice(&forged);
    }
    let frames = net.core.stack().counters().rx_frames;
    let syns = net.core.stack().counters().tcp_syn_received;
    net.inject(&jumbo, 3840);
    net.run_for(Duration::from_millis(10));
    let c = net.core.stack().counters();
    assert_eq!(c.tcp_syn_received, syns, "a forged SYN inside the packet was taken for a frame");
    assert_eq!(c.rx_frames, frames, "the stack saw a fragment as a frame");
    let m = net.core.metrics();
    let counter = |name: &str| m.extra.iter().find(|(k, _)| k == name).map_or(0, |(_, v)| *v);
    assert_eq!(counter("rx_multi_buffer_too_long_dropped_total"), 1, "the packet is dropped whole, and counted");
}

#[test]
fn requests_arriving_in_fragments_are_joined_and_served() {
    let (_dir, www) = www();
    // Every frame towards the server over 200 bytes arrives as several fragments.
    let cfg = SimConfig { rx_fragment: 200, ..SimConfig::default() };
    let mut net = SimNet::new(&www, &cfg).unwrap();
    let padded = format!("GET /s300000 HTTP/1.1\r\nHost: sim\r\nX-Pad: {}\r\n\r\n", "p".repeat(3000));
    let r = fetch(&mut net, &padded, 1);
    assert_eq!(r[0].status, 200);
    assert!(r[0].body == content(300_000), "body differs");
    let m = net.core.metrics();
    let counter = |name: &str| m.extra.iter().find(|(k, _)| k == name).map_or(0, |(_, v)| *v);
    assert!(counter("rx_multi_buffer_joined_total") >= 1, "no packet was joined");
    assert_eq!(counter("rx_multi_buffer_too_long_dropped_total"), 0);
    assert_eq!(m.bytes_copied, 0, "joining request bytes is not copying payload");
}

/// A server with a pool of `blocks` blocks (a quarter kept for the cache) and clients whose
/// receive buffer is 16 KiB, so one that stops reading shuts its window soon.
fn stalling_net(www: &Path, blocks: u32) -> SimNet {
    let mut cfg = SimConfig::default();
    cfg.pool.blocks = blocks;
    cfg.pool.cache_blocks = blocks / 4;
    cfg.client_tcp = Some(stack::tcp::TcpConfig { recv_buffer: 16 << 10, ..cfg.tcp.clone() });
    SimNet::new(www, &cfg).unwrap()
}

fn counter(net: &SimNet, name: &str) -> u64 {
    net.core.metrics().extra.iter().find(|(k, _)| k == name).map_or(0, |(_, v)| *v)
}

/// A client that asks for `path` and stops reading at once.
fn staller(net: &mut SimNet, path: &str) -> usize {
    let c = net.connect();
    net.conns[c].paused = true;
    assert!(net.send(c, get(path).as_bytes()));
    c
}

#[test]
fn a_stalled_response_is_cut_by_the_write_timer_however_request_bytes_trickle_in() {
    let (_dir, www) = www();
    let mut net = stalling_net(&www, 16);
    let blocks = net.link.pool.stats().blocks_free;
    let big = (1 << 20) + 1;
    let c = staller(&mut net, &format!("/s{big}"));
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.core.open_connections(), 1);
    let stalled = net.now;
    // One byte of a next request every 29 s (the write timeout is 30 s).
    for b in b"GET /s1 HTTP/1.1\r\n" {
        assert!(net.send(c, &[*b]));
        if net.run_until(Duration::from_secs(29), |n| n.conns[c].ended) {
            break;
        }
    }
    assert!(net.conns[c].reset, "the stalled response outlived the write timeout: {}", net.describe());
    let cut_after = net.now - stalled;
    assert!(cut_after <= Duration::from_secs(31), "cut after {cut_after}");
    let m = net.core.metrics();
    assert_eq!((m.timeouts_write, m.timeouts_head, m.timeouts_idle), (1, 0, 0));
    assert!(
        net.run_until(Duration::from_secs(5), |n| n.link.pool.stats().blocks_free == blocks),
        "blocks held after the reset: {}",
        net.describe()
    );
}

#[test]
fn readers_that_stop_hold_a_few_blocks_and_others_are_served_meanwhile() {
    let (_dir, www) = www();
    let mut net = stalling_net(&www, 32);
    let blocks = net.link.pool.stats().blocks_free;
    let big = (1 << 20) + 1;
    let stallers: Vec<usize> = (0..2).map(|_| staller(&mut net, &format!("/s{big}"))).collect();
    net.run_for(Duration::from_secs(1));
    let held = counter(&net, "blocks_held_by_connections");
    // Each holds its unsent mark (2 blocks), a block in flight and a short read-ahead, not
    // a whole send buffer's worth (which would be every block of the pool).
    assert!(held <= 2 * 8, "two stalled readers hold {held} blocks: {}", net.describe());
    assert!(blocks - net.link.pool.stats().blocks_free <= 16);
    let started = net.now;
    let r = fetch(&mut net, &get(&format!("/s{big}")), 1);
    assert!(r[0].body == content(big), "body differs");
    assert!(net.now - started < Duration::from_secs(5), "served only after {}", net.now - started);
    assert!(stallers.iter().all(|&c| !net.conns[c].ended), "the stalled readers are still open");
}

#[test]
fn two_downloads_share_a_short_pool_instead_of_one_taking_it_all() {
    let (_dir, www) = www();
    // 8 blocks, 4 of them the streams' share; a 1 MiB download (17 blocks) whose window
    // has opened holds 7 or 8.
    let mut net = stalling_net(&www, 8);
    let big = (1 << 20) + 1;
    let a = net.connect();
    assert!(net.send(a, get(&format!("/s{big}")).as_bytes()));
    assert!(net.run_until(Duration::from_secs(10), |n| n.conns[a].got.len() > 256 << 10));
    let b = net.connect();
    assert!(net.send(b, get(&format!("/s{big}")).as_bytes()));
    // Once the second has its first 256 KB, no connection may hold more than its share
    // (2 blocks, and one more being read) while the other waits for a block.
    let share = crate::blocks::budget::MIN_SHARE + 1;
    let mut over = Vec::new();
    let done = net.run_until(Duration::from_secs(60), |n| {
        let whole = |c: usize| complete_responses(&n.conns[c].got, &[]) == 1;
        let waiting = counter(n, "block_waiters") > 0;
        if waiting && !whole(a) && !whole(b) && n.conns[b].got.len() > 256 << 10 {
            let most = n.core.blocks_held().into_iter().max().unwrap_or(0);
            if most > share {
                over.push(most);
            }
        }
        whole(a) && whole(b)
    });
    assert!(done, "{}", net.describe());
    for c in [a, b] {
        assert!(responses(&net.conns[c].got, &[]).unwrap()[0].body == content(big));
    }
    assert!(over.is_empty(), "{} turns with a connection over its share while the other waited: {over:?}", over.len());
    assert!(counter(&net, "block_share_waits_total") > 0, "no connection was held to its share");
}

#[test]
fn a_closing_connection_waits_for_its_last_bytes_to_be_acknowledged_under_the_write_timer() {
    let (_dir, www) = www();
    let mut cfg = SimConfig::default();
    cfg.client_tcp = Some(stack::tcp::TcpConfig { recv_buffer: 2048, ..cfg.tcp.clone() });
    let mut net = SimNet::new(&www, &cfg).unwrap();
    let frames = net.link.pool.stats().frames_free;
    // Answered in full and then closed by the server, to a reader that never reads: the
    // response is all in the stack, never acknowledged past the 2 KiB window.
    let c = staller(&mut net, "/s4097");
    assert!(net.send(c, b"GET /s4097 HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n"));
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.core.open_connections(), 1, "closed with bytes unacknowledged: {}", net.describe());
    assert!(!net.conns[c].ended);
    // Nothing moves for the write timeout (30 s): then it is reset, and nothing is held.
    assert!(net.run_until(Duration::from_secs(32), |n| n.conns[c].ended), "{}", net.describe());
    assert!(net.conns[c].reset, "ended without a reset");
    assert_eq!(net.core.metrics().timeouts_write, 1);
    assert!(net.run_until(Duration::from_secs(5), |n| n.core.stack().connection_count() == 0));
    assert!(net.run_until(Duration::from_secs(1), |n| n.link.pool.stats().frames_free == frames));
}

#[test]
fn a_closing_connection_whose_bytes_are_acknowledged_closes_gracefully() {
    let (_dir, www) = www();
    let mut net = net(&www);
    let r = fetch(&mut net, "GET /s300000 HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n", 1);
    assert!(r[0].body == content(300_000));
    assert!(net.run_until(Duration::from_secs(5), |n| n.conns[0].ended));
    assert!(!net.conns[0].reset, "a completed response was reset");
    // The FIN came with the last bytes; the server lets go once their ACK is in.
    assert!(net.run_until(Duration::from_millis(100), |n| n.core.open_connections() == 0), "{}", net.describe());
    assert_eq!(net.core.metrics().timeouts_write, 0);
}

#[test]
fn connection_close_sends_the_fin_with_the_answer_and_the_server_holds_the_time_wait() {
    let (_dir, www) = www();
    let mut net = net(&www);
    let c = net.connect();
    assert!(net.send(c, b"GET /s4095 HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n"));
    assert!(net.run_until(Duration::from_secs(5), |n| complete_responses(&n.conns[c].got, &[]) >= 1));
    // The FIN came with the answer, not a round trip later (after the answer's ACK): a
    // client that reads the answer and closes at once never waits for it ...
    let r = net.client.readiness(net.conns[c].h);
    assert!(r.read_closed, "the answer came without the server's FIN: {}", net.describe());
    // ... and closes second, so TIME-WAIT is the server's, not the client's (a client
    // that holds thousands of them spends its time in connect(2) looking for a port).
    net.close(c);
    let done = net.run_until(Duration::from_millis(500), |n| {
        n.core.stack().time_wait_count() == 1 && n.client.connection_count() == 0
    });
    assert!(done, "{}", net.describe());
    assert_eq!(net.client.time_wait_count(), 0, "the client holds a TIME-WAIT");
    assert!(!net.conns[c].reset);
    assert!(responses(&net.conns[c].got, &[]).unwrap()[0].body == content(4095));
    assert_eq!(net.core.open_connections(), 0);
}

#[test]
fn a_file_truncated_while_it_is_served_resets_the_connection_never_a_short_body() {
    let (_dir, www) = www();
    let mut net = stalling_net(&www, 32);
    let big = (1 << 20) + 1;
    let path = www.join(format!("s{big}"));
    // The client reads slowly (paused, then resumed), so most of the file is read after
    // it was truncated; a second request waits behind the first on the same connection.
    let c = staller(&mut net, &format!("/s{big}"));
    assert!(net.send(c, get("/s1").as_bytes()));
    net.run_for(Duration::from_millis(200));
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(100_000).unwrap();
    net.conns[c].paused = false;
    assert!(net.run_until(Duration::from_secs(30), |n| n.conns[c].ended), "{}", net.describe());
    assert!(net.conns[c].reset, "the connection ended without a reset");
    let got = &net.conns[c].got;
    assert!(responses(got, &[]).is_err(), "the cut response parsed as complete");
    assert_eq!(complete_responses(got, &[]), 0, "a response after the cut one arrived");
    assert_eq!(net.core.metrics().bodies_truncated, 1);
    // The file as it is now is served whole on a new connection.
    let r = fetch(&mut net, &get(&format!("/s{big}")), 1);
    assert_eq!(r[0].body.len(), 100_000);
    assert!(r[0].body == content(big)[..100_000]);
}

#[test]
fn the_server_core_runs_under_the_seccomp_filter() {
    use crate::privdrop::seccomp;
    let (_dir, www) = www();
    if seccomp::tests::is_child() {
        // Set up first (pool, io_uring, files), as the server does, then confine.
        let mut net = net(&www);
        seccomp::install(seccomp::Extra::default()).unwrap();
        for size in sizes() {
            let r = fetch(&mut net, &get(&format!("/s{size}")), 1);
            assert!(r[0].status == 200 && r[0].body == content(size), "s{size}");
        }
        let r = fetch(&mut net, &format!("{}{}", get("/nope"), get("/s4097")), 2);
        assert_eq!((r[0].status, r[1].status), (404, 200));
        std::process::exit(0);
    }
    let out = seccomp::tests::in_child("xdp::tests::the_server_core_runs_under_the_seccomp_filter");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "under the filter: {:?}\n{err}", out.status);
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

/// Over IPv6 (the client resolves the server by neighbour discovery, which the server's
/// stack answers) every size and a range across blocks arrive byte-exact, with checksums
/// left to the link as TX metadata does, and nothing copied; an IPv4 connection is served
/// by the same server at the same time.
#[test]
fn ipv6_and_ipv4_side_by_side_are_byte_exact_with_checksums_left_to_the_link() {
    let (_dir, www) = www();
    let mut net = net(&www);
    net.link.tx_offload = stack::TxOffload { checksum: true, headroom: 24 };
    for size in sizes() {
        let c = net.connect_v6();
        let r = fetch_on(&mut net, c, &get(&format!("/s{size}")), 1);
        assert_eq!(r[0].status, 200, "s{size}");
        assert!(r[0].body == content(size), "s{size}: body differs over IPv6");
    }
    let size = 3 * BLOCK + 17;
    let (a, b) = (BLOCK - 10, 2 * BLOCK + 5);
    let ranged = format!("GET /s{size} HTTP/1.1\r\nHost: sim\r\nRange: bytes={a}-{b}\r\n\r\n");
    let (six, four) = (net.connect_v6(), net.connect());
    assert!(net.send(six, ranged.as_bytes()) && net.send(four, get(&format!("/s{size}")).as_bytes()));
    let both = net.run_until(Duration::from_secs(30), |n| {
        complete_responses(&n.conns[six].got, &[]) == 1 && complete_responses(&n.conns[four].got, &[]) == 1
    });
    assert!(both, "both families answered at once; {}", net.describe());
    let r6 = responses(&net.conns[six].got, &[]).unwrap();
    assert_eq!(r6[0].status, 206);
    assert!(r6[0].body == content(size)[a..=b], "IPv6 range bytes differ");
    assert!(responses(&net.conns[four].got, &[]).unwrap()[0].body == content(size), "IPv4 body differs");
    let s = net.core.stack().counters();
    assert!(s.ndp_adverts_sent >= 1, "the server never answered neighbour discovery");
    assert_eq!(net.link.partial_packets, s.tcp_tx_segments, "every segment left its checksum to the link");
    assert_eq!(net.client.counters().tcp_bad_checksum, 0, "the client found a bad checksum");
    assert_eq!(net.core.metrics().bytes_copied, 0, "payload copied by the CPU");
}

/// Every stack counter is exported, each once: those the core lists by hand and the rest
/// under their own names.
#[test]
fn every_stack_counter_is_exported_once() {
    let (_dir, www) = www();
    let mut net = net(&www);
    let r = fetch(&mut net, &get("/s4097"), 1);
    assert_eq!(r[0].status, 200);
    let m = net.core.metrics();
    let names: Vec<&str> = m.extra.iter().map(|(k, _)| k.as_str()).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "a series is exported twice: {names:?}");
    for want in ["tcp_paws_rejected_total", "tcp_challenge_acks_total", "tcp_reordering_max", "tcp_rx_segments_total"] {
        assert!(names.contains(&want), "{want} is not exported: {names:?}");
    }
    // promtool refuses names with an abbreviated unit as a word (`_us_`, `_ms`, `_kb_`...).
    for name in &names {
        let words: Vec<&str> = name.split(['_', '{']).collect();
        for unit in ["s", "ms", "us", "ns", "sec", "min", "hr", "b", "kb", "mb", "gb", "tb", "pb"] {
            assert!(!words.contains(&unit), "{name} holds the abbreviated unit {unit:?}");
        }
    }
    let rx = m.extra.iter().find(|(k, _)| k == "tcp_rx_segments_total").map(|(_, v)| *v);
    assert!(rx > Some(0), "the segments received are counted: {rx:?}");
}
