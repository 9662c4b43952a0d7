//! Simulation devices that ship with the library (as smoltcp's loopback and fault
//! injector do): a seeded RNG, a lossy, reordering, duplicating wire driven by a virtual
//! clock, a [`Link`] over a pool, and a smoltcp `phy::Device` for a reference peer.
//!
//! The wire carries frames as plain bytes: gathering a packet's fragments into one buffer
//! is what the NIC's DMA does, not the stack, so it is not counted as a copy.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::{Duration, Instant};
use umem::{Buf, BufSlice, Pool};

use crate::iface::{Full, Link, TxOffload};
use crate::wire::{finish_partial, PartialChecksum};
use smoltcp::wire::ETHERNET_HEADER_LEN;

/// SplitMix64: small, seedable, identical on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[0, n)` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded pseudo-random byte stream: byte `i` depends only on `(seed, i)`, so a sender
/// can produce and a receiver verify any range without storing the stream.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    seed: u64,
}

impl Stream {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Stream { seed }
    }

    fn word(&self, i: u64) -> [u8; 8] {
        mix(self.seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d)).to_le_bytes()
    }

    /// Fills `buf` with bytes `offset..offset + buf.len()`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut pos = offset;
        let mut i = 0;
        while i < buf.len() {
            let w = self.word(pos / 8);
            let k = (pos % 8) as usize;
            let n = (8 - k).min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&w[k..k + n]);
            i += n;
            pos += n as u64;
        }
    }

    /// Whether `data` equals bytes `offset..`; returns the first mismatching offset.
    pub fn verify(&self, offset: u64, data: &[u8]) -> Result<(), u64> {
        let mut want = vec![0u8; data.len()];
        self.fill(offset, &mut want);
        match data.iter().zip(&want).position(|(a, b)| a != b) {
            None => Ok(()),
            Some(p) => Err(offset + p as u64),
        }
    }
}

/// What a [`Channel`] does to frames.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Probability a frame is lost.
    pub loss: f64,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
    /// Probability a frame is delayed by up to `reorder_delay` extra (overtaken by later ones).
    pub reorder: f64,
    /// Largest extra delay of a reordered frame.
    pub reorder_delay: Duration,
    /// One-way propagation delay.
    pub latency: Duration,
    /// Bottleneck rate in bits per second.
    pub rate_bps: u64,
    /// Frames the bottleneck queue holds before it drops (tail drop).
    pub queue_frames: usize,
    /// Deliver in batches: a frame is held until the next multiple of this interval of the
    /// clock (a link or receiver that aggregates, as Wi-Fi and GRO do); zero for none.
    pub batch: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(3),
            latency: Duration::from_millis(1),
            rate_bps: 1_000_000_000,
            queue_frames: 256,
            batch: Duration::ZERO,
        }
    }
}

/// Counts of what a channel did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Frames offered.
    pub sent: u64,
    /// Frames dropped at random.
    pub lost: u64,
    /// Frames dropped by the full queue.
    pub queue_drops: u64,
    /// Frames duplicated.
    pub duplicated: u64,
    /// Frames delayed out of order.
    pub reordered: u64,
    /// Frames delivered.
    pub delivered: u64,
}

/// One direction of a wire.
#[derive(Debug)]
pub struct Channel {
    faults: Faults,
    rng: Rng,
    busy_until: Instant,
    seq: u64,
    queue: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>,
    /// What happened so far.
    pub stats: ChannelStats,
}

impl Channel {
    /// A channel with `faults`, its randomness from `seed`.
    pub fn new(faults: Faults, seed: u64) -> Self {
        Channel {
            faults,
            rng: Rng::new(seed),
            busy_until: Instant::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            stats: ChannelStats::default(),
        }
    }

    fn serialization(&self, len: usize) -> Duration {
        Duration::from_micros((len as u64 + 24) * 8 * 1_000_000 / self.faults.rate_bps.max(1))
    }

    /// Offers a frame at `now`.
    pub fn send(&mut self, now: Instant, frame: Vec<u8>) {
        self.stats.sent += 1;
        if self.rng.unit() < self.faults.loss {
            self.stats.lost += 1;
            return;
        }
        let ser = self.serialization(frame.len());
        let start = self.busy_until.max(now);
        let backlog = (start - now).total_micros() / ser.total_micros().max(1);
        if backlog as usize >= self.faults.queue_frames {
            self.stats.queue_drops += 1;
            return;
        }
        self.busy_until = start + ser;
        let mut at = self.busy_until + self.faults.latency;
        if self.rng.unit() < self.faults.reorder {
            self.stats.reordered += 1;
            at += Duration::from_micros(self.rng.below(self.faults.reorder_delay.total_micros() + 1));
        }
        let b = self.faults.batch.total_micros() as i64;
        if b > 0 {
            at = Instant::from_micros((at.total_micros() + b - 1).div_euclid(b) * b);
        }
        if self.rng.unit() < self.faults.duplicate {
            self.stats.duplicated += 1;
            self.seq += 1;
            self.queue.push(Reverse((at + Duration::from_micros(1), self.seq, frame.clone())));
        }
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, frame)));
    }

    /// When the next frame arrives.
    pub fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((t, _, _))| *t)
    }

    /// A frame that has arrived by `now`.
    pub fn recv(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_at()? > now {
            return None;
        }
        let Reverse((_, _, f)) = self.queue.pop()?;
        self.stats.delivered += 1;
        Some(f)
    }
}

/// A [`Link`] over a pool whose transmitted packets land in [`SimLink::tx`] as bytes.
#[derive(Debug)]
pub struct SimLink {
    /// The pool frames come from (and received frames are written into).
    pub pool: Pool,
    /// IP MTU.
    pub mtu: usize,
    /// Whether packets may be several fragments.
    pub multi_buffer: bool,
    /// Packets sent, gathered.
    pub tx: Vec<Vec<u8>>,
    /// Most packets `tx` holds before `transmit` reports [`Full`].
    pub tx_limit: usize,
    /// Packets that arrived with more than one fragment.
    pub multi_frag_packets: u64,
    /// Packets with more fragments than the link allows, a fragment longer than a frame
    /// less the offload headroom (an AF_XDP descriptor may not exceed the chunk size less
    /// `tx_metadata_len`), or a partial checksum the link did not offer or could not
    /// finish: a stack bug.
    pub frag_violations: u64,
    /// Bytes of the largest packet sent.
    pub largest_packet: usize,
    /// Packets longer than the MTU plus the Ethernet header: a real link drops them (veth
    /// counts them as TX drops), so each is a stack bug.
    pub oversize: u64,
    /// What the link claims to finish (none by default). With `checksum`, it finishes
    /// partial checksums in software as a NIC would, before the packet reaches `tx`.
    pub tx_offload: TxOffload,
    /// Packets that came with a partial checksum.
    pub partial_packets: u64,
}

impl SimLink {
    /// A link over `pool`.
    pub fn new(pool: Pool, multi_buffer: bool) -> Self {
        SimLink {
            pool,
            mtu: 1500,
            multi_buffer,
            tx: Vec::new(),
            tx_limit: 4096,
            multi_frag_packets: 0,
            frag_violations: 0,
            largest_packet: 0,
            oversize: 0,
            tx_offload: TxOffload::default(),
            partial_packets: 0,
        }
    }

    /// A received frame, as the NIC would write it into a pool frame (a jumbo frame into a
    /// payload block, standing for a multi-buffer receive); `None` if the pool is exhausted
    /// (the NIC drops it).
    pub fn rx_frame(&self, bytes: &[u8]) -> Option<BufSlice> {
        let mut b = if bytes.len() > self.pool.frame_size() as usize {
            self.pool.alloc_block()?
        } else {
            self.pool.alloc_frame()?
        };
        b.get_mut()?.get_mut(..bytes.len())?.copy_from_slice(bytes);
        BufSlice::new(b, 0..bytes.len())
    }
}

impl Link for SimLink {
    fn mtu(&self) -> usize {
        self.mtu
    }

    fn multi_buffer(&self) -> bool {
        self.multi_buffer
    }

    fn tx_offload(&self) -> TxOffload {
        self.tx_offload
    }

    fn alloc_frame(&mut self) -> Option<Buf> {
        self.pool.alloc_frame()
    }

    fn transmit_partial(&mut self, frags: &mut [BufSlice], csum: PartialChecksum) -> Result<(), Full> {
        self.partial_packets += 1;
        let room = frags.first().is_some_and(|f| f.offset() >= self.tx_offload.headroom);
        if !self.tx_offload.checksum || !room {
            self.frag_violations += 1;
        }
        if !finish_partial(frags, csum) {
            self.frag_violations += 1;
        }
        self.transmit(frags)
    }

    fn transmit(&mut self, frags: &[BufSlice]) -> Result<(), Full> {
        if self.tx.len() >= self.tx_limit {
            return Err(Full);
        }
        if frags.len() > 1 {
            self.multi_frag_packets += 1;
            if !self.multi_buffer || frags.len() > self.max_frags() {
                self.frag_violations += 1;
            }
        }
        let longest = (self.pool.frame_size() as usize).saturating_sub(self.tx_offload.headroom);
        if frags.iter().any(|f| f.len() > longest) {
            self.frag_violations += 1;
        }
        let len = frags.iter().map(BufSlice::len).sum();
        self.largest_packet = self.largest_packet.max(len);
        if len > self.mtu + ETHERNET_HEADER_LEN {
            self.oversize += 1;
        }
        let mut v = Vec::with_capacity(len);
        for f in frags {
            v.extend_from_slice(f.as_bytes());
        }
        self.tx.push(v);
        Ok(())
    }
}

/// A smoltcp device with frame queues, for a reference peer in tests.
#[derive(Debug, Default)]
pub struct SmolDevice {
    /// Frames waiting to be received by smoltcp.
    pub rx: VecDeque<Vec<u8>>,
    /// Frames smoltcp transmitted.
    pub tx: Vec<Vec<u8>>,
}

/// Receive token of [`SmolDevice`].
#[derive(Debug)]
pub struct SmolRx(Vec<u8>);

/// Transmit token of [`SmolDevice`].
#[derive(Debug)]
pub struct SmolTx<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for SmolRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for SmolTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut v = vec![0u8; len];
        let r = f(&mut v);
        self.0.push(v);
        r
    }
}

impl phy::Device for SmolDevice {
    type RxToken<'a> = SmolRx;
    type TxToken<'a> = SmolTx<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(SmolRx, SmolTx<'_>)> {
        let f = self.rx.pop_front()?;
        Some((SmolRx(f), SmolTx(&mut self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<SmolTx<'_>> {
        Some(SmolTx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}
