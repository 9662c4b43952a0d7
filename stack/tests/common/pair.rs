//! Two stacks joined by a lossless wire with a fixed latency, driven by a virtual clock:
//! for tests with many connections, where the application is a closure run each turn.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use smoltcp::wire::{IpAddress, IpEndpoint};
use smoltcp::wire::{Ipv4Cidr, Ipv6Cidr};
use stack::sim::SimLink;
use stack::{ConnHandle, Counters, Duration, Instant, Stack, StackConfig};

use super::{ip, ip6, mac, pool};

/// Which stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Client,
    Server,
}

/// A frame on the wire: (arrival, order, destination, bytes).
type InFlight = Reverse<(Instant, u64, Side, Vec<u8>)>;

pub struct Pair {
    pub client: Stack,
    pub server: Stack,
    pub clink: SimLink,
    pub slink: SimLink,
    pub now: Instant,
    pub latency: Duration,
    wire: BinaryHeap<InFlight>,
    seq: u64,
    /// Turns run so far.
    pub turns: u64,
    /// The most connection entries one stack visited in one turn.
    pub max_visits: u64,
    /// When set, every frame put on the wire is also kept in `recorded` with its destination.
    pub record: bool,
    pub recorded: Vec<(Side, Vec<u8>)>,
    /// Frames for this side are lost (a peer that vanished).
    pub blackhole: Option<Side>,
}

/// A stack config for host `n` (IPv4 and IPv6), with `f` applied.
pub fn config(n: u8, f: impl FnOnce(&mut StackConfig)) -> StackConfig {
    let mut cfg = StackConfig::new(mac(n));
    cfg.ipv4 = Some(Ipv4Cidr::new(ip(n), 24));
    cfg.ipv6 = Some(Ipv6Cidr::new(ip6(n), 64));
    cfg.tcp = super::tcp_config();
    cfg.secret = 0x1234 + u64::from(n);
    f(&mut cfg);
    cfg
}

impl Pair {
    /// Client host 1 and server host 2, each with a pool of `frames` frames.
    pub fn new(client: StackConfig, server: StackConfig, frames: u32) -> Pair {
        Pair {
            client: Stack::new(client),
            server: Stack::new(server),
            clink: SimLink::new(pool(frames, 0), true),
            slink: SimLink::new(pool(frames, 0), true),
            now: Instant::ZERO,
            latency: Duration::from_micros(50),
            wire: BinaryHeap::new(),
            seq: 0,
            turns: 0,
            max_visits: 0,
            record: false,
            recorded: Vec::new(),
            blackhole: None,
        }
    }

    /// The client connects to `to` (the server's address) on [`super::PORT`], the server
    /// accepts, and the pair settles for `settle`: `(client handle, server handle)`.
    pub fn connect_accept(&mut self, to: IpAddress, settle: Duration) -> (ConnHandle, ConnHandle) {
        let l = self.server.listen(super::PORT).expect("listen");
        let c = self.client.connect(self.now, IpEndpoint::new(to, super::PORT)).expect("connect");
        self.run_until(Duration::from_secs(5), &mut |_| {}, &mut |p| {
            p.client.readiness(c).connected && p.server.acceptable(l)
        });
        let s = self.server.accept(l).expect("accepted");
        self.run_for(settle, &mut |_| {});
        (c, s)
    }

    pub fn stack(&mut self, side: Side) -> &mut Stack {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// One turn at `self.now`: deliver what has arrived, run `app`, poll both stacks, put
    /// what they sent on the wire.
    pub fn turn(&mut self, app: &mut dyn FnMut(&mut Pair)) {
        self.turns += 1;
        while self.wire.peek().is_some_and(|Reverse((t, ..))| *t <= self.now) {
            let Reverse((_, _, to, bytes)) = self.wire.pop().expect("peeked");
            let (stack, link) = match to {
                Side::Client => (&mut self.client, &self.clink),
                Side::Server => (&mut self.server, &self.slink),
            };
            let f = link.rx_frame(&bytes).expect("receive pool exhausted");
            stack.handle_frame(self.now, f);
        }
        app(self);
        for side in [Side::Client, Side::Server] {
            let now = self.now;
            let (stack, link) = match side {
                Side::Client => (&mut self.client, &mut self.clink),
                Side::Server => (&mut self.server, &mut self.slink),
            };
            let before = stack.counters().conn_visits;
            stack.poll(now, link);
            self.max_visits = self.max_visits.max(stack.counters().conn_visits - before);
            let to = if side == Side::Client { Side::Server } else { Side::Client };
            for bytes in link.tx.drain(..) {
                if self.record {
                    self.recorded.push((to, bytes.clone()));
                }
                if self.blackhole == Some(to) {
                    continue;
                }
                self.seq += 1;
                self.wire.push(Reverse((now + self.latency, self.seq, to, bytes)));
            }
        }
    }

    /// The next time anything happens (a frame arrives or a stack has work).
    pub fn next_event(&self) -> Option<Instant> {
        let arrival = self.wire.peek().map(|Reverse((t, ..))| *t);
        [arrival, self.client.poll_at(), self.server.poll_at()].into_iter().flatten().min()
    }

    /// Runs turns until `done` holds after one, moving the clock to the next event between
    /// turns. Panics if nothing is left to happen or `limit` of virtual time passes.
    pub fn run_until(&mut self, limit: Duration, app: &mut dyn FnMut(&mut Pair), done: &mut dyn FnMut(&Pair) -> bool) {
        let end = self.now + limit;
        loop {
            self.turn(app);
            if done(self) {
                return;
            }
            let next = self.next_event().unwrap_or_else(|| panic!("stalled at {}", self.now));
            self.now = next.max(self.now + Duration::from_micros(1));
            assert!(self.now < end, "not done after {limit}");
        }
    }

    /// Runs every event up to `self.now + d`, then stands at that time.
    pub fn run_for(&mut self, d: Duration, app: &mut dyn FnMut(&mut Pair)) {
        let end = self.now + d;
        loop {
            self.turn(app);
            match self.next_event() {
                Some(t) if t <= end => self.now = t.max(self.now + Duration::from_micros(1)),
                _ => break,
            }
        }
        self.now = end;
        self.turn(app);
    }

    /// Drops every frame on the wire.
    pub fn clear_wire(&mut self) {
        self.wire.clear();
    }

    /// Hands `bytes` to `side` now, as if it came off the wire.
    pub fn inject(&mut self, side: Side, bytes: &[u8]) {
        let now = self.now;
        let (stack, link) = match side {
            Side::Client => (&mut self.client, &self.clink),
            Side::Server => (&mut self.server, &self.slink),
        };
        let f = link.rx_frame(bytes).expect("receive pool exhausted");
        stack.handle_frame(now, f);
    }

    pub fn counters(&self, side: Side) -> &Counters {
        match side {
            Side::Client => self.client.counters(),
            Side::Server => self.server.counters(),
        }
    }
}
