//! One libfabric endpoint over one message endpoint (`datapath_msg::Endpoint`).
//!
//! ```text
//!  fi_send/tsend/inject ─► SendOp queue ─► chunk: alloc frames, copy header + user bytes
//!                                           └► Endpoint::send (reliable for RDM) ─► TX ring
//!  fi_cq_read ─► progress: Endpoint::recv ─► Msg (frames) ─► Matcher ─► copy into the
//!                                                               posted buffer ─► CQ entry
//! ```
//!
//! Each send copies the application's bytes once, into the frames that go on the wire;
//! each receive copies them once, out of the frames they arrived in (both counted). A send
//! completes when its last byte is in a frame handed to the endpoint (FI_INJECT_COMPLETE:
//! the buffer may be reused; for RDM, the endpoint's reliability then carries it). Sends
//! leave in the order they were posted (one queue), so a peer whose window is full holds
//! up sends to others until it acknowledges: simple, and enough for one rank per node.

use std::collections::HashMap;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use datapath_msg::{AllocError, Endpoint, EndpointConfig, Event, Msg, MsgBuf, MsgError, PeerId, PollMode, SendError};

use super::av::AvTable;
use super::config::Config;
use super::cq::{prov_errno, CompErr, Completion, CqCore};
use super::domain::IdMap;
use super::matching::{MatchStats, Matcher, PeekMode, PostedRecv};
use super::proto::{Hdr, Kind, CHUNK, HDR};
use super::send::Io;
use crate::ffi::consts::*;
use crate::ffi::iov::UserIov;

/// Which kind of endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpKind {
    Dgram,
    Rdm,
}

/// A peer as matching knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerKey {
    Net(PeerId),
    /// This endpoint itself (an address vector entry naming our own address).
    Local,
}

/// Where a send goes.
#[derive(Clone, Copy, Debug)]
pub enum Dest {
    Net(PeerId),
    Local,
}

/// A send in the queue: its header, where its bytes are, and how far it got.
#[derive(Debug)]
pub struct SendOp {
    pub dest: Dest,
    pub hdr: Hdr,
    /// The application's buffer (empty for an inject, whose bytes are already in `built`).
    pub iov: UserIov,
    pub total: usize,
    /// Payload bytes copied into chunks so far.
    pub copied: usize,
    pub started: bool,
    pub ctx: usize,
    pub want_comp: bool,
    /// The next chunk, built and not yet taken by the endpoint.
    pub built: Option<MsgBuf>,
}

/// Counters of one endpoint (printed at close with `FI_AFXDP_STATS=1`).
#[derive(Debug, Default, Clone, Copy)]
pub struct EpStats {
    pub sends: u64,
    pub injects: u64,
    pub send_eagain: u64,
    pub recvs_posted: u64,
    pub bytes_in: u64,
    pub bad_header: u64,
    pub rx_paused: u64,
    pub local_msgs: u64,
    /// Sends failed because their peer had been lost.
    pub peer_lost_sends: u64,
    /// Peers the endpoint gave up on (no acknowledgement through its retries).
    pub peers_lost: u64,
}

/// The attributes an endpoint is created with.
#[derive(Debug, Clone)]
pub struct EpParams {
    pub kind: EpKind,
    pub port: Option<u16>,
    pub tx_size: usize,
    pub rx_size: usize,
    pub directed: bool,
    pub tx_op_flags: u64,
    pub rx_op_flags: u64,
    pub max_msg: usize,
    pub inject_size: usize,
}

/// One libfabric endpoint.
#[derive(Debug)]
pub struct EpCore {
    pub params: EpParams,
    io: Io,
    local: SocketAddrV4,
    /// A kernel UDP socket on our port: reserves it so no other program takes it.
    _port_hold: UdpSocket,
    wait_fd: OwnedFd,
    pub tx_cq: Option<u64>,
    pub rx_cq: Option<u64>,
    pub av: Option<u64>,
    pub tx_selective: bool,
    pub rx_selective: bool,
    pub enabled: bool,
    matcher: Matcher<PeerKey>,
    peers: HashMap<SocketAddrV4, PeerId>,
    unexpected_max: usize,
    pub stats: EpStats,
    scratch: Vec<Completion>,
    /// When the endpoint was last driven (by the application or the domain's timer thread).
    last_progress: std::time::Instant,
}

/// Why an operation was refused (a negated `FI_E*` for the caller).
pub type OpResult = Result<(), i32>;

impl EpCore {
    /// Binds a message endpoint on the configured interface and queue.
    pub fn open(cfg: &Config, params: EpParams) -> Result<EpCore, String> {
        let port = params.port.or(cfg.port).unwrap_or(0);
        let hold = UdpSocket::bind(SocketAddrV4::new(cfg.addr, port)).map_err(|e| {
            format!("UDP port {port} on {}: {e} (choose another with FI_AFXDP_PORT, or unset it)", cfg.addr)
        })?;
        let local = match hold.local_addr() {
            Ok(std::net::SocketAddr::V4(a)) => a,
            _ => return Err("the port-holding socket has no IPv4 address".into()),
        };
        let mut ec = EndpointConfig::new(&cfg.iface, local);
        ec.queue = cfg.queue;
        ec.frames = cfg.frames;
        ec.max_msg = HDR + CHUNK;
        ec.reliable = params.kind == EpKind::Rdm;
        ec.poll = PollMode::Busy;
        // Peers come from the address vector, and the first message from one may arrive
        // before we send it anything: take datagrams from senders not yet added (the
        // endpoint bounds its table and evicts idle learned peers).
        ec.accept_unknown_peers = true;
        let ep = Endpoint::bind(&ec).map_err(|e: MsgError| {
            format!("binding {}/{} for {local}: {e} (FI_AFXDP_IFACE, FI_AFXDP_QUEUE)", cfg.iface, cfg.queue)
        })?;
        let wait_fd = crate::ffi::sys::dup(ep.socket()).ok_or("dup of the AF_XDP socket failed")?;
        log::info!(
            "{} endpoint {local} on {}/{} ({}, {} B per datagram)",
            if params.kind == EpKind::Rdm { "RDM" } else { "DGRAM" },
            cfg.iface,
            cfg.queue,
            ep.socket().mode(),
            ep.datagram_payload()
        );
        let matcher = Matcher::new(params.kind == EpKind::Rdm, params.directed);
        Ok(EpCore {
            io: Io::new(ep),
            local,
            _port_hold: hold,
            wait_fd,
            tx_cq: None,
            rx_cq: None,
            av: None,
            tx_selective: false,
            rx_selective: false,
            enabled: false,
            matcher,
            peers: HashMap::new(),
            unexpected_max: cfg.unexpected_max,
            stats: EpStats::default(),
            scratch: Vec::new(),
            last_progress: std::time::Instant::now(),
            params,
        })
    }

    /// Our address (`fi_getname`).
    pub fn local(&self) -> SocketAddrV4 {
        self.local
    }

    /// The descriptor a blocking read waits on.
    pub fn wait_fd(&self) -> RawFd {
        self.wait_fd.as_raw_fd()
    }

    /// Whether time alone (retransmission timers, queued sends, an acknowledgement owed)
    /// needs a progress call soon.
    pub fn needs_timer(&self) -> bool {
        self.io.ep.unacked() > 0 || !self.io.sendq.is_empty() || self.io.ep.owes_acks()
    }

    /// Whether the application left this endpoint undriven for `idle` while timers are due:
    /// the domain's timer thread then drives it (see `DomainShared::start_timers`).
    pub fn stalled(&self, idle: Duration) -> bool {
        self.enabled && self.needs_timer() && self.last_progress.elapsed() >= idle
    }

    /// How long a waiter may sleep while `needs_timer`: until the endpoint's next timer
    /// (a delayed acknowledgement is due within microseconds), at most the minimum
    /// retransmission timeout.
    pub fn timer_slice(&self) -> Duration {
        const MAX: Duration = Duration::from_micros(500);
        self.io.ep.next_timer().map_or(MAX, |t| t.saturating_duration_since(std::time::Instant::now()).min(MAX))
    }

    fn resolve(&mut self, fi_addr: u64, avs: &IdMap<AvTable>) -> Result<Dest, i32> {
        let av = self.av.and_then(|a| avs.get(&a)).ok_or(-FI_ENOAV)?;
        let addr = av.lookup(fi_addr).ok_or(-FI_EINVAL)?;
        if addr == self.local {
            return Ok(Dest::Local);
        }
        if let Some(&p) = self.peers.get(&addr) {
            return Ok(Dest::Net(p));
        }
        match self.io.ep.add_peer(addr) {
            Ok(p) => {
                self.peers.insert(addr, p);
                Ok(Dest::Net(p))
            }
            Err(e) => {
                log::warn!("cannot reach {addr}: {e}");
                Err(-libc::EHOSTUNREACH)
            }
        }
    }

    /// Posts a send: `iov` is the application's buffer, read until the send completes
    /// (`copy_now`: read before this returns; `completes`: write a completion).
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        cqs: &mut IdMap<CqCore>,
        avs: &IdMap<AvTable>,
        dest: u64,
        iov: UserIov,
        tagged: Option<u64>,
        data: Option<u64>,
        ctx: usize,
        flags: u64,
        copy_now: bool,
        completes: bool,
    ) -> OpResult {
        if iov.len() > self.params.max_msg {
            return Err(-FI_EMSGSIZE);
        }
        if copy_now && iov.len() > self.params.inject_size {
            return Err(-FI_EMSGSIZE);
        }
        let to = self.resolve(dest, avs)?;
        let hdr = Hdr {
            kind: if tagged.is_some() { Kind::Tagged } else { Kind::Msg },
            flags: if data.is_some() { super::proto::FLAG_DATA } else { 0 },
            tag: tagged.unwrap_or(0),
            data: data.unwrap_or(0),
            total: iov.len() as u64,
        };
        let want_comp = completes && (!self.tx_selective || flags & FI_COMPLETION != 0);
        if let Dest::Local = to {
            return self.send_local(cqs, avs, hdr, &iov, ctx, want_comp);
        }
        if self.io.sendq.len() >= self.params.tx_size {
            self.progress(cqs, avs);
            if self.io.sendq.len() >= self.params.tx_size {
                self.stats.send_eagain += 1;
                return Err(-FI_EAGAIN);
            }
        }
        let mut op = SendOp {
            dest: to,
            hdr,
            iov,
            total: hdr.total as usize,
            copied: 0,
            started: false,
            ctx,
            want_comp,
            built: None,
        };
        if copy_now {
            // The buffer is the caller's again on return: copy it now, whole.
            match self.io.build_chunk(&mut op) {
                Ok(()) => op.iov = UserIov::default(),
                Err(AllocError::PoolEmpty { .. }) => {
                    self.progress(cqs, avs);
                    if self.io.build_chunk(&mut op).is_err() {
                        self.stats.send_eagain += 1;
                        return Err(-FI_EAGAIN);
                    }
                    op.iov = UserIov::default();
                }
                Err(AllocError::TooLarge { .. }) => return Err(-FI_EMSGSIZE),
            }
            self.stats.injects += 1;
        } else {
            self.stats.sends += 1;
        }
        self.stats.bytes_in += op.total as u64;
        self.io.sendq.push_back(op);
        self.drive_sends(cqs);
        self.io.ep.flush();
        Ok(())
    }

    /// A send to ourselves: matched like an arriving message, at once.
    fn send_local(
        &mut self,
        cqs: &mut IdMap<CqCore>,
        avs: &IdMap<AvTable>,
        hdr: Hdr,
        iov: &UserIov,
        ctx: usize,
        want_comp: bool,
    ) -> OpResult {
        let mut bytes = vec![0u8; iov.len()];
        iov.read_at(0, &mut bytes);
        self.stats.local_msgs += 1;
        self.stats.bytes_in += bytes.len() as u64;
        let src = self.src_of_local(avs);
        let mut out = std::mem::take(&mut self.scratch);
        self.matcher.chunk(PeerKey::Local, src, hdr, &[&bytes], &mut out);
        push_all(cqs, self.rx_cq, &mut out);
        self.scratch = out;
        if want_comp {
            let c = send_completion(ctx, &hdr, 0);
            if let Some(q) = self.tx_cq.and_then(|q| cqs.get_mut(&q)) {
                q.push(c);
            }
        }
        Ok(())
    }

    fn src_of_local(&self, avs: &IdMap<AvTable>) -> u64 {
        self.av.and_then(|a| avs.get(&a)).and_then(|av| av.reverse(self.local)).unwrap_or(FI_ADDR_NOTAVAIL)
    }

    /// Hands chunks to the endpoint in order while it takes them; completes finished sends.
    fn drive_sends(&mut self, cqs: &mut IdMap<CqCore>) {
        while let Some(op) = self.io.sendq.front_mut() {
            if let Some(m) = op.built.take() {
                let Dest::Net(peer) = op.dest else { break };
                match self.io.ep.send(peer, m) {
                    Ok(()) => {}
                    Err(SendError::Full(m)) => {
                        op.built = Some(m);
                        break;
                    }
                    Err(SendError::UnknownPeer(_)) => {
                        // The peer was lost (it stopped acknowledging) or evicted since
                        // this send was queued: fail the send, and resolve afresh next time.
                        self.peers.retain(|_, p| *p != peer);
                        self.stats.peer_lost_sends += 1;
                        let op = self.io.sendq.pop_front();
                        if let (Some(op), Some(q)) = (op, self.tx_cq.and_then(|q| cqs.get_mut(&q))) {
                            q.push(Completion {
                                err: Some(CompErr { err: FI_EIO, olen: 0, prov_errno: 0 }),
                                ..send_completion(op.ctx, &op.hdr, 0)
                            });
                        }
                        continue;
                    }
                }
            }
            let op = match self.io.sendq.front_mut() {
                Some(op) => op,
                None => break,
            };
            if op.started && op.copied >= op.total {
                let Some(op) = self.io.sendq.pop_front() else { break };
                if op.want_comp {
                    if let Some(q) = self.tx_cq.and_then(|q| cqs.get_mut(&q)) {
                        q.push(send_completion(op.ctx, &op.hdr, op.total));
                    }
                }
                continue;
            }
            let Some(mut op) = self.io.sendq.pop_front() else { break };
            let r = self.io.build_chunk(&mut op);
            self.io.sendq.push_front(op);
            if r.is_err() {
                break; // pool short: frames come back with acknowledgements
            }
        }
    }

    /// Posts a receive.
    pub fn recv(&mut self, cqs: &mut IdMap<CqCore>, r: PostedRecv) -> OpResult {
        if self.matcher.posted() >= self.params.rx_size {
            return Err(-FI_EAGAIN);
        }
        self.stats.recvs_posted += 1;
        let mut out = std::mem::take(&mut self.scratch);
        self.matcher.post(r, &mut out);
        push_all(cqs, self.rx_cq, &mut out);
        self.scratch = out;
        Ok(())
    }

    /// FI_PEEK: a completion describing the first unexpected message `r` would take, or
    /// an FI_ENOMSG error completion; `mode` reserves or drops the message found.
    pub fn peek(&mut self, cqs: &mut IdMap<CqCore>, avs: &IdMap<AvTable>, r: PostedRecv, mode: PeekMode) {
        self.progress(cqs, avs);
        let (ctx, tag) = (r.ctx, r.tag);
        let mut out = std::mem::take(&mut self.scratch);
        if !self.matcher.peek(&r, mode, &mut out) {
            out.push(Completion {
                op_context: ctx,
                flags: FI_RECV | if r.tagged { FI_TAGGED } else { FI_MSG },
                len: 0,
                buf: 0,
                data: 0,
                tag,
                src: FI_ADDR_NOTAVAIL,
                err: Some(CompErr { err: FI_ENOMSG, olen: 0, prov_errno: 0 }),
            });
        }
        push_all(cqs, self.rx_cq, &mut out);
        self.scratch = out;
    }

    /// FI_CLAIM: receives (or with `discard` drops) the message an earlier
    /// `FI_PEEK | FI_CLAIM` with the same context reserved. `-FI_EINVAL` if none is.
    pub fn claim(&mut self, cqs: &mut IdMap<CqCore>, r: PostedRecv, discard: bool) -> OpResult {
        let mut out = std::mem::take(&mut self.scratch);
        let res = self.matcher.claim(r, discard, &mut out).map_err(|r| {
            log::warn!("FI_CLAIM with context {:#x}: no message was claimed by a peek with that context", r.ctx);
            -FI_EINVAL
        });
        push_all(cqs, self.rx_cq, &mut out);
        self.scratch = out;
        res
    }

    /// Receives that can still be posted.
    pub fn rx_left(&self) -> usize {
        self.params.rx_size.saturating_sub(self.matcher.posted())
    }

    /// Sends that can still be queued.
    pub fn tx_left(&self) -> usize {
        self.params.tx_size.saturating_sub(self.io.sendq.len())
    }

    /// Cancels a posted receive.
    pub fn cancel(&mut self, cqs: &mut IdMap<CqCore>, ctx: usize) -> bool {
        let mut out = std::mem::take(&mut self.scratch);
        let hit = self.matcher.cancel(ctx, &mut out);
        push_all(cqs, self.rx_cq, &mut out);
        self.scratch = out;
        hit
    }

    /// Drives the endpoint once: transmit, receive, match, acknowledge, retransmit.
    pub fn progress(&mut self, cqs: &mut IdMap<CqCore>, avs: &IdMap<AvTable>) {
        self.last_progress = std::time::Instant::now();
        let mut msgs: Vec<Msg> = std::mem::take(&mut self.io.msgs);
        if self.matcher.unexpected_bytes() > self.unexpected_max {
            // Receive pauses until the application posts receives: the kernel drops what
            // overflows the ring and the peer's reliability sends it again.
            self.stats.rx_paused += 1;
            self.io.ep.flush();
        } else {
            self.io.ep.recv(&mut msgs);
        }
        let av = self.av.and_then(|a| avs.get(&a));
        let mut out = std::mem::take(&mut self.scratch);
        for m in msgs.drain(..) {
            let mut hb = [0u8; HDR];
            let mut got = 0;
            let mut runs: Vec<&[u8]> = Vec::with_capacity(4);
            for c in m.chunks() {
                if got < HDR {
                    let n = (HDR - got).min(c.len());
                    hb[got..got + n].copy_from_slice(&c[..n]);
                    got += n;
                    if n < c.len() {
                        runs.push(&c[n..]);
                    }
                } else {
                    runs.push(c);
                }
            }
            let Some(hdr) = (got == HDR).then(|| Hdr::parse(&hb)).flatten() else {
                self.stats.bad_header += 1;
                continue;
            };
            let src =
                av.zip(self.io.ep.peer_addr(m.peer())).and_then(|(av, a)| av.reverse(a)).unwrap_or(FI_ADDR_NOTAVAIL);
            self.matcher.chunk(PeerKey::Net(m.peer()), src, hdr, &runs, &mut out);
        }
        self.io.msgs = msgs;
        while let Some(ev) = self.io.ep.poll_event() {
            match ev {
                Event::PeerLost { peer, addr, unacked } => {
                    log::warn!("peer {addr} stopped acknowledging; {unacked} datagrams to it were dropped");
                    self.stats.peers_lost += 1;
                    self.peers.retain(|_, p| *p != peer);
                }
                Event::PeerEvicted { peer, .. } => self.peers.retain(|_, p| *p != peer),
                _ => {}
            }
        }
        push_all(cqs, self.rx_cq, &mut out);
        self.scratch = out;
        if !self.io.sendq.is_empty() {
            self.drive_sends(cqs);
            self.io.ep.flush();
        }
    }

    /// Closes the endpoint. Sends already completed to the application (their bytes were
    /// in frames) must still arrive, so first it lingers, driving the endpoint until every
    /// queued send is handed over and every reliable datagram acknowledged, for at most
    /// `linger`; then operations still queued or posted complete with an error.
    pub fn close(&mut self, cqs: &mut IdMap<CqCore>, avs: &IdMap<AvTable>, linger: Duration) {
        let end = std::time::Instant::now() + linger;
        self.io.ep.flush();
        while self.needs_timer() && std::time::Instant::now() < end {
            self.progress(cqs, avs);
            crate::ffi::sys::poll_readable(&[self.wait_fd()], self.timer_slice());
        }
        if self.needs_timer() {
            log::warn!(
                "closing {} with {} sends queued and {} datagrams unacknowledged after {linger:?}",
                self.local,
                self.io.sendq.len(),
                self.io.ep.unacked()
            );
        }
        let closed = Some(CompErr { err: FI_ECANCELED, olen: 0, prov_errno: prov_errno::CLOSED });
        for r in self.matcher.drain_posted() {
            if let Some(q) = self.rx_cq.and_then(|q| cqs.get_mut(&q)) {
                q.push(Completion {
                    op_context: r.ctx,
                    flags: FI_RECV,
                    len: 0,
                    buf: r.iov.base(),
                    data: 0,
                    tag: r.tag,
                    src: FI_ADDR_NOTAVAIL,
                    err: closed,
                });
            }
        }
        while let Some(op) = self.io.sendq.pop_front() {
            if let Some(q) = self.tx_cq.and_then(|q| cqs.get_mut(&q)) {
                q.push(Completion { err: closed, ..send_completion(op.ctx, &op.hdr, 0) });
            }
        }
        if std::env::var_os("FI_AFXDP_STATS").is_some() {
            self.print_stats();
        }
    }

    /// Counters of the provider and of the message endpoint under it, one block on stderr.
    pub fn print_stats(&self) {
        let s = self.stats;
        let m: MatchStats = self.matcher.stats;
        let e = self.io.ep.stats();
        let k = self.io.ep.socket().stats();
        // One write, so the lines of two ranks forwarded by mpirun never interleave.
        let line = format!(
            "afxdp: endpoint {} counters: sends {} injects {} eagain {} recvs {} bytes copied in {} out {} | matched {} unexpected {} claimed {} discarded {} no-receive {} stray {} aborted {} bad-header {} rx-paused {} local {} peers-lost {} | datagrams sent {} received {} retransmitted {} (fast {}, timeouts {}) acks sent {} received {} dup {} | kernel rx_dropped {} rx_ring_full {} fill_empty {} tx_wakeups {}\n",
            self.local,
            s.sends,
            s.injects,
            s.send_eagain,
            s.recvs_posted,
            s.bytes_in,
            m.bytes_out,
            m.matched,
            m.unexpected,
            m.claimed,
            m.discarded,
            m.no_receive,
            m.stray,
            m.aborted,
            s.bad_header,
            s.rx_paused,
            s.local_msgs,
            s.peers_lost,
            e.dgrams_sent,
            e.dgrams_recv,
            e.retransmits,
            e.fast_retransmits,
            e.timeouts,
            e.acks_sent,
            e.acks_recv,
            e.dup_dgrams,
            k.rx_dropped,
            k.rx_ring_full,
            k.rx_fill_ring_empty,
            k.tx_wakeups
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
}

fn send_completion(ctx: usize, hdr: &Hdr, len: usize) -> Completion {
    Completion {
        op_context: ctx,
        flags: FI_SEND | if hdr.kind == Kind::Tagged { FI_TAGGED } else { FI_MSG },
        len,
        buf: 0,
        data: 0,
        tag: 0,
        src: FI_ADDR_NOTAVAIL,
        err: None,
    }
}

fn push_all(cqs: &mut IdMap<CqCore>, cq: Option<u64>, out: &mut Vec<Completion>) {
    match cq.and_then(|q| cqs.get_mut(&q)) {
        Some(q) => out.drain(..).for_each(|c| q.push(c)),
        None => out.clear(),
    }
}
