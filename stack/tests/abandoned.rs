//! Spoofed clients that request a small response and abandon the connection, the way the
//! FIN-WAIT-2 flood of the namespace tests does (the request rides on the ACK that
//! completes the handshake, SYN cookies once the half-open queue is full, an accept queue
//! that overflows, replies lost on the way back, clients that give up), at a small scale.
//! Once every timer has run, every pool frame is back and no connection is left.

mod common;

use std::collections::HashMap;

use common::pair::config;
use common::*;
use smoltcp::wire::{IpAddress, Ipv4Address};
use stack::sim::{Rng, SimLink};
use stack::wire::{parse_frame, parse_tcp, Route, Seq, TcpFlags, TcpHeader, TcpOptions, L3};
use stack::{ConnHandle, Duration, Instant, ListenHandle, Stack};
use umem::BufSlice;

const FRAMES: u32 = 2048;
const REQUEST: &[u8] = b"GET /tiny HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nsmall";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    SynSent,
    Requested,
    Done,
    Failed,
}

struct Flow {
    addr: Ipv4Address,
    port: u16,
    isn: Seq,
    rcv: Seq,
    phase: Phase,
    at: Instant,
    tries: u8,
}

/// The server: a stack and an application that reads a request, answers it from a pool
/// frame and closes, and gives up (abort) on a connection that sends nothing for 5 s.
struct Server {
    stack: Stack,
    link: SimLink,
    listen: ListenHandle,
    sessions: Vec<(ConnHandle, Vec<u8>, Instant)>,
    /// Accept only every this many turns (lets the accept queue fill).
    accept_every: u64,
    turns: u64,
}

impl Server {
    fn app(&mut self, now: Instant) {
        self.turns += 1;
        if self.turns.is_multiple_of(self.accept_every) {
            while let Some(h) = self.stack.accept(self.listen) {
                self.sessions.push((h, Vec::new(), now));
            }
        }
        let mut keep = Vec::new();
        for (h, mut req, since) in std::mem::take(&mut self.sessions) {
            let r = self.stack.readiness(h);
            if r.closed || r.error.is_some() {
                let _ = self.stack.close(h);
                continue;
            }
            while let Ok(Some(s)) = self.stack.read(h, usize::MAX) {
                req.extend_from_slice(s.as_bytes());
            }
            if req.windows(4).any(|w| w == b"\r\n\r\n") {
                let Some(mut b) = self.link.pool.alloc_frame() else {
                    // The pool is short: answer on a later turn.
                    keep.push((h, req, since));
                    continue;
                };
                b.get_mut().expect("unique")[..RESPONSE.len()].copy_from_slice(RESPONSE);
                let s = BufSlice::new(b, 0..RESPONSE.len()).expect("range");
                assert_eq!(self.stack.write_frames(h, &[s]).expect("write"), RESPONSE.len());
                self.stack.close(h).expect("close");
                continue;
            }
            if self.stack.readiness(h).read_closed {
                self.stack.close(h).expect("close");
                continue;
            }
            if now - since > Duration::from_secs(5) {
                self.stack.abort(h).expect("abort");
                continue;
            }
            keep.push((h, req, since));
        }
        self.sessions = keep;
    }
}

fn header(f: &[u8]) -> Option<(Ipv4Address, TcpHeader, usize)> {
    let parsed = parse_frame(f).ok()?;
    let L3::Ip(ip) = parsed.l3 else { return None };
    let IpAddress::Ipv4(dst) = ip.dst else { return None };
    parse_tcp(f, &ip).ok().map(|(h, r)| (dst, h, r.len()))
}

fn segment(f: &Flow, seq: Seq, ack: Seq, flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
    let route =
        Route { src_mac: mac(9), dst_mac: mac(2), src_ip: IpAddress::Ipv4(f.addr), dst_ip: IpAddress::Ipv4(ip(2)) };
    let mut options = TcpOptions::default();
    if flags == TcpFlags::SYN {
        options.mss = Some(1460);
    }
    let h = TcpHeader { src_port: f.port, dst_port: PORT, seq, ack, flags, window: 65535, options };
    let mut out = vec![0u8; 128 + payload.len()];
    let n = route.emit_tcp(&mut out, &h, std::iter::once(payload));
    out.truncate(n);
    out.extend_from_slice(payload);
    out
}

/// What the flood did: flows done (their FIN acknowledged), reset, given up.
#[derive(Debug, Default)]
struct Outcome {
    done: u32,
    reset: u32,
    gave_up: u32,
}

/// Runs `flows` spoofed clients, `window` at a time, against `srv`; each reply from the
/// server is lost with probability `loss`. Returns what the clients saw.
fn flood(srv: &mut Server, flows: u32, window: u32, loss: f64, seed: u64) -> (Outcome, Instant) {
    flood_with(srv, flows, window, loss, seed, false, Duration::ZERO)
}

/// [`flood`]; with `resets`, a client that gives up, or every third that is done, sends
/// a RST (at its next sequence number) instead of falling silent.
/// Replies reach the clients up to `delay` late (each its own delay, so they reorder).
fn flood_with(
    srv: &mut Server,
    flows: u32,
    window: u32,
    loss: f64,
    seed: u64,
    resets: bool,
    delay: Duration,
) -> (Outcome, Instant) {
    let mut late: Vec<(Instant, Vec<u8>)> = Vec::new();
    let mut rng = Rng::new(seed);
    let mut now = Instant::from_millis(1);
    let mut fl: Vec<Flow> = Vec::new();
    let mut by_peer: HashMap<(Ipv4Address, u16), usize> = HashMap::new();
    let mut out = Outcome::default();
    let mut busy = 0u32;
    let step = Duration::from_millis(5);
    let end = now + Duration::from_secs(600);
    while (out.done + out.reset + out.gave_up) < flows {
        assert!(now < end, "the flood did not finish: {out:?}");
        while busy < window && (fl.len() as u32) < flows {
            let i = fl.len() as u32;
            let f = Flow {
                addr: Ipv4Address::new(10, 0, 0, 100 + (i / 20_000) as u8),
                port: 20_000 + (i % 20_000) as u16,
                isn: Seq(rng.next_u64() as u32),
                rcv: Seq(0),
                phase: Phase::SynSent,
                at: now,
                tries: 0,
            };
            let syn = segment(&f, f.isn, Seq(0), TcpFlags::SYN, &[]);
            by_peer.insert((f.addr, f.port), fl.len());
            fl.push(f);
            if let Some(frame) = srv.link.rx_frame(&syn) {
                srv.stack.handle_frame(now, frame);
            }
            busy += 1;
        }
        srv.app(now);
        srv.stack.poll(now, &mut srv.link);
        let mut answers = Vec::new();
        for bytes in srv.link.tx.drain(..) {
            if rng.unit() < loss {
                continue;
            }
            let at = now + Duration::from_micros((rng.unit() * delay.total_micros() as f64) as u64);
            late.push((at, bytes));
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut late).into_iter().partition(|(t, _)| *t <= now);
        late = later;
        for (_, bytes) in due {
            let Some((dst, h, plen)) = header(&bytes) else { continue };
            let Some(&i) = by_peer.get(&(dst, h.dst_port)) else { continue };
            let f = &mut fl[i];
            let mine = f.isn.add(1);
            let after_req = mine.add_len(REQUEST.len());
            if h.flags.has(TcpFlags::RST) {
                if matches!(f.phase, Phase::SynSent | Phase::Requested) {
                    f.phase = Phase::Failed;
                    out.reset += 1;
                    busy -= 1;
                }
                continue;
            }
            match f.phase {
                Phase::SynSent | Phase::Requested if h.flags.has(TcpFlags::SYN) && h.flags.has(TcpFlags::ACK) => {
                    f.rcv = h.seq.add(1);
                    f.phase = Phase::Requested;
                    f.at = now;
                    answers.push(segment(f, mine, f.rcv, TcpFlags::ACK | TcpFlags::PSH, REQUEST));
                }
                Phase::Requested if h.seq == f.rcv && (plen > 0 || h.flags.has(TcpFlags::FIN)) => {
                    f.rcv = f.rcv.add_len(plen + usize::from(h.flags.has(TcpFlags::FIN)));
                    answers.push(segment(f, after_req, f.rcv, TcpFlags::ACK, &[]));
                    if h.flags.has(TcpFlags::FIN) {
                        f.phase = Phase::Done;
                        out.done += 1;
                        busy -= 1;
                        if resets && out.done % 3 == 0 {
                            answers.push(segment(f, after_req, f.rcv, TcpFlags::RST | TcpFlags::ACK, &[]));
                        }
                    }
                }
                Phase::Done if h.flags.has(TcpFlags::FIN) => {
                    answers.push(segment(f, after_req, f.rcv, TcpFlags::ACK, &[]));
                }
                _ => {}
            }
        }
        // Retransmissions: after a second, then every two; ten tries.
        for f in fl.iter_mut() {
            if !matches!(f.phase, Phase::SynSent | Phase::Requested) {
                continue;
            }
            let wait = Duration::from_secs(if f.tries == 0 { 1 } else { 2 });
            if now - f.at < wait {
                continue;
            }
            if f.tries >= 10 {
                f.phase = Phase::Failed;
                out.gave_up += 1;
                busy -= 1;
                if resets && f.rcv != Seq(0) {
                    answers.push(segment(f, f.isn.add(1), f.rcv, TcpFlags::RST | TcpFlags::ACK, &[]));
                }
                continue;
            }
            f.tries += 1;
            f.at = now;
            answers.push(match f.phase {
                Phase::SynSent => segment(f, f.isn, Seq(0), TcpFlags::SYN, &[]),
                _ => segment(f, f.isn.add(1), f.rcv, TcpFlags::ACK | TcpFlags::PSH, REQUEST),
            });
        }
        now += step;
        for a in answers {
            if let Some(frame) = srv.link.rx_frame(&a) {
                srv.stack.handle_frame(now, frame);
            }
        }
    }
    (out, now)
}

/// The peers are gone: runs the server (application and stack) until no timer is left,
/// at most 1,000 s.
fn drain(srv: &mut Server, mut now: Instant) -> Instant {
    let end = now + Duration::from_secs(1000);
    while now < end {
        srv.app(now);
        srv.stack.poll(now, &mut srv.link);
        srv.link.tx.clear();
        if srv.sessions.is_empty() && srv.stack.poll_at().is_none() {
            break;
        }
        let next = srv.stack.poll_at().unwrap_or(now + Duration::from_millis(100));
        now = next.max(now + Duration::from_millis(1)).min(now + Duration::from_millis(500));
    }
    now
}

fn server(f: impl FnOnce(&mut stack::StackConfig), accept_every: u64) -> Server {
    server_with(f, accept_every, FRAMES, 4096)
}

/// A server whose pool has `frames` frames and whose link takes `tx_limit` packets a turn.
fn server_with(f: impl FnOnce(&mut stack::StackConfig), accept_every: u64, frames: u32, tx_limit: usize) -> Server {
    let mut stack = Stack::new(config(2, f));
    let listen = stack.listen(PORT).expect("listen");
    let mut link = SimLink::new(pool(frames, 0), true);
    link.tx_limit = tx_limit;
    Server { stack, link, listen, sessions: Vec::new(), accept_every, turns: 0 }
}

fn check_all_back(srv: &Server, what: &str, out: &Outcome) {
    let s = srv.link.pool.stats();
    let c = srv.stack.counters();
    let census = srv.stack.census();
    let n = srv.stack.connection_count();
    assert_eq!(census.by_state.iter().sum::<usize>(), n, "{what}: the census misses connections: {census:?}");
    assert_eq!(census.owned + census.orphans + census.unaccepted, n, "{what}: {census:?}");
    assert_eq!(census.stuck, 0, "{what}: connections holding memory with nothing to free them: {census:?}");
    assert_eq!(
        (s.frames_free, srv.stack.connection_count(), srv.stack.fin_wait2_count(), srv.stack.time_wait_count()),
        (s.frames, 0, 0, 0),
        "{what}: frames free, connections, FIN-WAIT-2 and TIME-WAIT entries once every timer ran \
         ({out:?}; {census:?}; cookies sent {} accepted {} overflow {}, accept queue full {}, abort on data {}, orphan drops {})",
        c.tcp_syn_cookies_sent,
        c.tcp_syn_cookies_accepted,
        c.tcp_syn_cookies_overflow,
        c.tcp_accept_queue_full,
        c.tcp_abort_on_data,
        c.tcp_orphan_drops,
    );
}

#[test]
fn abandoned_flows_with_lost_replies_leave_nothing_behind() {
    for (loss, seed) in [(0.0, 1), (0.1, 2), (0.3, 3)] {
        let mut srv = server(|_| {}, 1);
        let (out, now) = flood(&mut srv, 400, 64, loss, seed);
        drain(&mut srv, now);
        check_all_back(&srv, &format!("loss {loss}"), &out);
    }
}

#[test]
fn abandoned_flows_through_cookies_and_a_full_accept_queue_leave_nothing_behind() {
    for (loss, seed, accept_every) in [(0.0, 4, 50), (0.2, 5, 50), (0.2, 6, 400)] {
        let mut srv = server(
            |c| {
                c.max_half_open = 4;
                c.backlog = 4;
            },
            accept_every,
        );
        let (out, now) = flood(&mut srv, 400, 64, loss, seed);
        drain(&mut srv, now);
        check_all_back(&srv, &format!("loss {loss}, accept every {accept_every} turns"), &out);
    }
}

#[test]
fn abandoned_flows_through_a_busy_link_and_a_short_pool_leave_nothing_behind() {
    for (frames, tx_limit, loss, seed) in [(4096, 3, 0.1, 7), (160, 4096, 0.1, 8), (120, 5, 0.2, 9)] {
        let mut srv = server_with(
            |c| {
                c.max_half_open = 8;
                c.backlog = 8;
            },
            3,
            frames,
            tx_limit,
        );
        let (out, now) = flood(&mut srv, 300, 64, loss, seed);
        drain(&mut srv, now);
        check_all_back(&srv, &format!("{frames} frames, {tx_limit} packets a turn, loss {loss}"), &out);
    }
}

#[test]
fn abandoned_flows_with_resets_and_a_small_time_wait_table_leave_nothing_behind() {
    for (loss, seed, accept_every, resets) in [(0.2, 10, 1, true), (0.2, 11, 60, true), (0.1, 12, 1, false)] {
        let mut srv = server(
            |c| {
                c.max_half_open = 4;
                c.backlog = 4;
                c.max_time_wait = Some(16);
            },
            accept_every,
        );
        let (out, now) = flood_with(&mut srv, 300, 64, loss, seed, resets, Duration::ZERO);
        drain(&mut srv, now);
        check_all_back(&srv, &format!("loss {loss}, accept every {accept_every}, resets {resets}"), &out);
    }
}

#[test]
fn abandoned_flows_whose_replies_come_late_and_out_of_order_leave_nothing_behind() {
    for (loss, seed, accept_every, half_open) in [(0.1, 13, 1, 4), (0.1, 14, 1, 1024), (0.2, 15, 20, 4)] {
        let mut srv = server(
            |c| {
                c.max_half_open = half_open;
                c.backlog = 8;
                c.max_time_wait = Some(64);
            },
            accept_every,
        );
        let (out, now) = flood_with(&mut srv, 300, 64, loss, seed, false, Duration::from_millis(2500));
        drain(&mut srv, now);
        check_all_back(&srv, &format!("late replies, loss {loss}, accept every {accept_every}"), &out);
    }
}
