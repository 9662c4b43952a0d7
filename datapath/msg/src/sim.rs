//! Test devices for the sans-I/O [`Engine`]: a simulated link that loses, duplicates and
//! reorders datagrams, and a [`Pair`] of engines joined by two such links on a virtual
//! clock. No root, no NIC, deterministic for a seed. Used by this crate's tests; an
//! embedding (a libfabric provider, say) can drive its own logic over it the same way.
//!
//! The link does what the kernel does in copy mode: it copies each transmitted datagram
//! into fresh frames of the receiver's pool, cut into buffers of at most a frame each, the
//! way multi-buffer AF_XDP hands over a jumbo packet.

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use umem::{BufSlice, HugePages, Pool, PoolConfig};

use super::engine::{Engine, EngineConfig};
use super::{Msg, Pattern, SendError};

/// A pool of `frames` 4 KiB frames on the heap (no hugepages, not locked): no root needed.
///
/// # Panics
/// If the pool cannot be made (`frames` is 0, or memory is short): this is a test device.
pub fn heap_pool(frames: u32) -> Pool {
    Pool::new(&PoolConfig { frames, hugepages: HugePages::Off, lock: false, ..PoolConfig::default() })
        .unwrap_or_else(|e| panic!("a heap pool of {frames} frames: {e}"))
}

/// A seeded generator (splitmix64): the link's coin flips.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: f64) -> bool {
        pct > 0.0 && (self.next_u64() % 1_000_000) as f64 / 10_000.0 < pct
    }
}

/// What a [`Wire`] does to what crosses it.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Percent of datagrams lost.
    pub loss: f64,
    /// Percent of datagrams delivered twice.
    pub duplicate: f64,
    /// Percent of datagrams held back by up to `jitter` (arriving out of order).
    pub reorder: f64,
    /// One-way delay.
    pub latency: Duration,
    /// Extra delay of a reordered datagram, at most.
    pub jitter: Duration,
    /// Percent of datagrams with one payload byte flipped (a bad checksum).
    pub corrupt: f64,
}

impl Impairment {
    /// A perfect link with `latency`.
    pub fn none(latency: Duration) -> Self {
        Impairment { loss: 0.0, duplicate: 0.0, reorder: 0.0, latency, jitter: Duration::ZERO, corrupt: 0.0 }
    }
}

/// One direction of a simulated link: datagrams in flight as bytes, with their arrival time.
#[derive(Debug)]
pub struct Wire {
    imp: Impairment,
    rng: Rng,
    flight: VecDeque<(Instant, Vec<u8>)>,
    /// Datagrams transmitted into the wire.
    pub sent: u64,
    /// Datagrams it lost.
    pub lost: u64,
    /// Datagrams dropped for want of a free frame at the receiver.
    pub no_frame: u64,
}

impl Wire {
    /// A wire with `imp`, its coin flips seeded by `seed`.
    pub fn new(imp: Impairment, seed: u64) -> Self {
        Wire { imp, rng: Rng::new(seed), flight: VecDeque::new(), sent: 0, lost: 0, no_frame: 0 }
    }

    /// Transmits a datagram made of `frags` at `now` (its bytes are copied; the frames stay
    /// the sender's, as the kernel's completion would give them back).
    pub fn transmit(&mut self, now: Instant, frags: &[BufSlice]) {
        self.sent += 1;
        if self.rng.chance(self.imp.loss) {
            self.lost += 1;
            return;
        }
        let mut bytes: Vec<u8> = frags.iter().flat_map(|f| f.as_bytes().iter().copied()).collect();
        if self.rng.chance(self.imp.corrupt) {
            let n = bytes.len();
            bytes[n - 1] ^= 0x5a;
        }
        let copies = if self.rng.chance(self.imp.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let mut at = now + self.imp.latency;
            if self.rng.chance(self.imp.reorder) && !self.imp.jitter.is_zero() {
                at += self.imp.jitter.mul_f64((self.rng.next_u64() % 1000) as f64 / 1000.0);
            }
            // Keep the queue sorted by arrival; equal times keep their order.
            let pos = self.flight.iter().rposition(|(t, _)| *t <= at).map_or(0, |p| p + 1);
            self.flight.insert(pos, (at, bytes.clone()));
        }
    }

    /// The next datagram due by `now`, copied into frames of `pool` (buffers of at most a
    /// frame each); `None` when nothing more is due. A datagram that finds too few free
    /// frames is dropped and counted, as a full fill ring would drop it.
    pub fn receive(&mut self, now: Instant, pool: &Pool) -> Option<Vec<BufSlice>> {
        while self.flight.front().is_some_and(|(t, _)| *t <= now) {
            let (_, bytes) = self.flight.pop_front()?;
            match copy_into(pool, &bytes) {
                Some(frags) => return Some(frags),
                None => self.no_frame += 1,
            }
        }
        None
    }

    /// Datagrams in flight.
    pub fn in_flight(&self) -> usize {
        self.flight.len()
    }
}

/// Two engines, `a` and `b`, joined by two wires, on a virtual clock.
#[derive(Debug)]
pub struct Pair {
    /// One end.
    pub a: Engine,
    /// The other end.
    pub b: Engine,
    /// `a` to `b`.
    pub ab: Wire,
    /// `b` to `a`.
    pub ba: Wire,
    /// The virtual clock.
    pub now: Instant,
    /// How far `step` moves the clock.
    pub tick: Duration,
    /// Messages `a` received, in order.
    pub a_got: Vec<Msg>,
    /// Messages `b` received, in order.
    pub b_got: Vec<Msg>,
}

/// The MACs and addresses a [`Pair`] uses.
pub const A_ADDR: &str = "10.99.0.1:7000";
/// See [`A_ADDR`].
pub const B_ADDR: &str = "10.99.0.2:7000";
const A_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

/// Settings for one end of a [`Pair`]: `template` with the end's address and MAC.
pub fn end_config(template: &EngineConfig, b: bool) -> EngineConfig {
    let mut c = template.clone();
    c.local = addr(b);
    c.mac = if b { B_MAC } else { A_MAC };
    if b {
        c.seed = c.seed.rotate_left(17) ^ 0xb;
    }
    c
}

fn addr(b: bool) -> SocketAddrV4 {
    let s = if b { B_ADDR } else { A_ADDR };
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Hands the datagram `frags` (of another engine) to `to` at `now`, copied into frames of
/// its pool as a NIC would; `false` if its pool had too few free frames.
pub fn carry(to: &mut Engine, now: Instant, frags: &[BufSlice]) -> bool {
    let bytes: Vec<u8> = frags.iter().flat_map(|f| f.as_bytes().iter().copied()).collect();
    match copy_into(to.pool(), &bytes) {
        Some(f) => {
            to.handle_datagram(now, f);
            true
        }
        None => false,
    }
}

/// `bytes` in frames of `pool`, at most a frame per buffer.
pub fn copy_into(pool: &Pool, bytes: &[u8]) -> Option<Vec<BufSlice>> {
    let fs = pool.frame_size() as usize;
    let mut out = Vec::new();
    for chunk in bytes.chunks(fs) {
        let mut f = pool.alloc_frame()?;
        f.get_mut()?[..chunk.len()].copy_from_slice(chunk);
        out.push(BufSlice::new(f, 0..chunk.len())?);
    }
    Some(out)
}

impl Pair {
    /// Two engines made from `template` (each with its own heap pool of `frames`), each
    /// knowing the other as a peer, joined by wires impaired as `imp` says.
    ///
    /// # Panics
    /// If `template` cannot make an engine (a test device: the test is wrong).
    pub fn new(template: &EngineConfig, frames: u32, imp: Impairment, seed: u64) -> Pair {
        let mk =
            |b: bool| Engine::new(end_config(template, b), heap_pool(frames)).unwrap_or_else(|e| panic!("engine: {e}"));
        let (mut a, mut b) = (mk(false), mk(true));
        a.add_peer(addr(true), B_MAC).unwrap_or_else(|e| panic!("peer: {e}"));
        b.add_peer(addr(false), A_MAC).unwrap_or_else(|e| panic!("peer: {e}"));
        Pair {
            a,
            b,
            ab: Wire::new(imp, seed),
            ba: Wire::new(imp, seed ^ 0x5eed),
            now: Instant::now(),
            tick: Duration::from_micros(20),
            a_got: Vec::new(),
            b_got: Vec::new(),
        }
    }

    /// One turn, as an I/O shell's loop would run it: both ends transmit everything they
    /// have, receive what arrived by now, run their timers; then the clock moves on.
    pub fn step(&mut self) {
        let now = self.now;
        while let Some(d) = self.a.poll_transmit(u32::MAX) {
            self.ab.transmit(now, &d);
        }
        while let Some(d) = self.b.poll_transmit(u32::MAX) {
            self.ba.transmit(now, &d);
        }
        while let Some(frags) = self.ab.receive(now, self.b.pool()) {
            self.b.handle_datagram(now, frags);
        }
        while let Some(frags) = self.ba.receive(now, self.a.pool()) {
            self.a.handle_datagram(now, frags);
        }
        for e in [&mut self.a, &mut self.b] {
            if e.poll_timeout().is_some_and(|t| now >= t) {
                e.handle_timeout(now);
            }
        }
        while let Some(m) = self.a.poll_recv() {
            self.a_got.push(m);
        }
        while let Some(m) = self.b.poll_recv() {
            self.b_got.push(m);
        }
        self.now += self.tick;
    }

    /// Steps until `done` holds or `max_steps` have run; returns whether `done` held.
    pub fn run_until(&mut self, max_steps: u64, mut done: impl FnMut(&Pair) -> bool) -> bool {
        for _ in 0..max_steps {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    /// Sends pattern messages `0..n` from `a` to `b`, at most `depth` sent and not yet
    /// received, stepping until all arrived and the pair is idle; returns the steps taken,
    /// or what was missing after `max_steps`. The caller checks `b_got` against `pat`.
    pub fn stream(&mut self, pat: &Pattern, n: u64, depth: u64, max_steps: u64) -> Result<u64, String> {
        let to = self.a.peer(addr(true)).ok_or("b is not a peer of a")?;
        let mut sent = 0;
        for step in 0..max_steps {
            while sent < n && sent - (self.b_got.len() as u64) < depth {
                let mut m = self.a.alloc(pat.size(sent)).map_err(|e| e.to_string())?;
                pat.fill(sent, &mut m);
                match self.a.send(self.now, to, m) {
                    Ok(()) => sent += 1,
                    Err(SendError::Full(_)) => break,
                    Err(e) => return Err(e.to_string()),
                }
            }
            if self.b_got.len() as u64 == n && self.idle() {
                return Ok(step);
            }
            self.step();
        }
        Err(format!(
            "{} of {n} messages arrived in {max_steps} steps (a {:?}, b {:?})",
            self.b_got.len(),
            self.a.stats(),
            self.b.stats()
        ))
    }

    /// Whether nothing is left to do: no datagram queued, in flight or unacknowledged.
    pub fn idle(&self) -> bool {
        self.a.queued() == 0
            && self.b.queued() == 0
            && self.ab.in_flight() == 0
            && self.ba.in_flight() == 0
            && self.a.unacked() == 0
            && self.b.unacked() == 0
    }
}
