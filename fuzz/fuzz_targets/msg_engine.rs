//! The message endpoint's protocol engine (`datapath_msg::Engine`, sans-I/O): a pair of
//! engines on the simulated link exchange real messages while the fuzzer forges datagrams
//! from the known peer's address (its message header, reassembly fields and payload are
//! the fuzzer's; the Ethernet/IPv4/UDP framing is made valid around them, so they reach
//! the protocol), and moves the clock. Invariants: no panic; whatever arrived, once
//! every timer has run out (partial messages expire, retransmission gives up) and received
//! messages are dropped, every frame of both pools is free again.
//!
//! Input: a mode byte (bit 0: reliable), then operations: `0 len_hi len_lo` a sends a
//! message; `1 n_hi n_lo bytes..` a forged datagram to b; `2 k` k steps; `3 ms` the clock
//! jumps.
#![no_main]

use datapath_msg::sim::{copy_into, Impairment, Pair, A_ADDR, B_ADDR};
use datapath_msg::EngineConfig;
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

const A_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

/// Ethernet + IPv4 + UDP around `payload` from A to B, IP checksum valid, UDP checksum 0.
fn frame(payload: &[u8]) -> Vec<u8> {
    let a: std::net::SocketAddrV4 = A_ADDR.parse().unwrap_or_else(|_| unreachable!());
    let b: std::net::SocketAddrV4 = B_ADDR.parse().unwrap_or_else(|_| unreachable!());
    let mut f = Vec::with_capacity(42 + payload.len());
    f.extend_from_slice(&B_MAC);
    f.extend_from_slice(&A_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&a.ip().octets());
    ip[16..20].copy_from_slice(&b.ip().octets());
    let mut sum: u32 = ip.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&a.port().to_be_bytes());
    f.extend_from_slice(&b.port().to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut ops)) = data.split_first() else { return };
    let a: std::net::SocketAddrV4 = A_ADDR.parse().unwrap_or_else(|_| unreachable!());
    let mut cfg = EngineConfig::new(a, A_MAC, 1400);
    cfg.reliable = mode & 1 != 0;
    cfg.seed = 0x5eed;
    cfg.max_retries = 4;
    cfg.partial_timeout = Duration::from_millis(50);
    let mut p = Pair::new(&cfg, 256, Impairment::none(Duration::from_micros(50)), 7);
    let (free_a, free_b) = (p.a.pool().stats().frames_free, p.b.pool().stats().frames_free);
    let to_b = p.a.peer(B_ADDR.parse().unwrap_or_else(|_| unreachable!())).expect("b is a's peer");
    let mut budget = 256u32;
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        budget = budget.saturating_sub(1);
        if budget == 0 {
            break;
        }
        match op % 4 {
            0 => {
                let Some((len, rest)) = ops.split_first_chunk::<2>() else { break };
                ops = rest;
                let len = usize::from(u16::from_be_bytes(*len)) % (cfg.max_msg + 1);
                if let Ok(mut m) = p.a.alloc(len) {
                    m.chunks_mut().for_each(|s| s.fill(0x5a));
                    let _ = p.a.send(p.now, to_b, m);
                }
            }
            1 => {
                let Some((n, rest)) = ops.split_first_chunk::<2>() else { break };
                let n = usize::from(u16::from_be_bytes(*n)).min(rest.len()).min(9000);
                let (payload, rest) = rest.split_at(n);
                ops = rest;
                if let Some(frags) = copy_into(p.b.pool(), &frame(payload)) {
                    p.b.handle_datagram(p.now, frags);
                }
            }
            2 => {
                let Some((&k, rest)) = ops.split_first() else { break };
                ops = rest;
                for _ in 0..k {
                    p.step();
                }
            }
            _ => {
                let Some((&ms, rest)) = ops.split_first() else { break };
                ops = rest;
                p.now += Duration::from_millis(u64::from(ms));
            }
        }
        p.a_got.clear();
        p.b_got.clear();
    }
    // Let everything finish or give up: retransmissions stop after max_retries, partial
    // messages expire. Then no frame may be held.
    for _ in 0..2000 {
        p.step();
        p.a_got.clear();
        p.b_got.clear();
        let timers = [p.a.poll_timeout(), p.b.poll_timeout()];
        if p.idle() && p.a.partials() == 0 && p.b.partials() == 0 && timers.iter().all(Option::is_none) {
            break;
        }
        // Nothing on the wire: jump to the next timer, at least 50 ms on (timers may
        // fire late; held data and partial messages wait for about a second).
        if let Some(t) = timers.into_iter().flatten().min() {
            if p.idle() {
                p.now = t.max(p.now + Duration::from_millis(50));
            } else if t > p.now {
                p.now = t;
            }
        }
    }
    while p.a.poll_event().is_some() || p.b.poll_event().is_some() {}
    assert_eq!(p.a.partials() + p.b.partials(), 0, "partial messages never expired: {:?} {:?}", p.a.stats(), p.b.stats());
    assert_eq!(p.a.pool().stats().frames_free, free_a, "a's frames leaked: {:?}", p.a.stats());
    assert_eq!(p.b.pool().stats().frames_free, free_b, "b's frames leaked: {:?}", p.b.stats());
});
