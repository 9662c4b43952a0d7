//! The benchmark's client: a receiver that does only what it must, so that the time it
//! takes stays small beside the server's (and is timed apart).
//!
//! ```text
//!   BenchLink packet ─► parse the header frame (Ethernet, IPv4, TCP) ─► in order? advance
//!       rcv_nxt; response head: parse Content-Length; body: count bytes (never copied)
//!   every `ack_every` segments, and at the end of a batch ─► pure ACK (no SACK, a 1 GiB
//!       window, timestamps echoed) written into a frame of the server's pool (the NIC's
//!       receive DMA) ─► the server's RX queue
//!   a response complete ─► the next request on the same connection (keep-alive), carrying
//!       the ACK
//! ```
//!
//! It offers what a Linux client offers (MSS, window scale, SACK-permitted, timestamps), so
//! the server builds the segments it would build for one. There is no loss on the link, so
//! a segment out of order is a server bug: counted, and answered with a duplicate ACK.
//! With `verify`, body bytes are checked against the seeded stream the files were written
//! from, and every segment's TCP checksum is checked (reads only; for tests).

use std::collections::VecDeque;

use smoltcp::wire::IpProtocol;
use smoltcp::wire::{EthernetAddress, IpAddress};
use stack::sim::Stream;
use stack::wire::{pseudo_header, Checksum, Route, Seq, TcpFlags, TcpHeader, TcpOptions};
use umem::{BufSlice, Pool};

/// Ethernet + IPv4 header bytes in front of TCP (the server sends no IP options).
const L4: usize = 14 + 20;
/// The window field: with a scale of 14, 65535 << 14 = 1 GiB.
const WINDOW: u16 = 65535;
const WINDOW_SCALE: u8 = 14;
/// Response head bytes kept at most while looking for its end.
const MAX_HEAD: usize = 8192;

/// What the client counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClientStats {
    /// Segments with payload received in order.
    pub segments: u64,
    /// Their payload bytes.
    pub payload_bytes: u64,
    /// Response bodies' bytes.
    pub body_bytes: u64,
    /// Responses complete.
    pub responses: u64,
    /// Requests sent.
    pub requests: u64,
    /// Pure ACKs sent.
    pub acks: u64,
    /// Segments before `rcv_nxt` (retransmissions).
    pub duplicates: u64,
    /// Segments beyond `rcv_nxt` (a gap: never expected here).
    pub out_of_order: u64,
    /// Frames that did not parse, or named no connection; responses that did not parse
    /// or were not 200 OK; body bytes that differed (with `verify`).
    pub bad: u64,
    /// Segments whose TCP checksum was wrong (checked with `verify` only).
    pub bad_checksums: u64,
    /// Segments not sent because the server's pool had no free frame.
    pub no_frame: u64,
}

/// What one connection asks for, in turn.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Request paths, cycled through, and the seed each file's bytes were written from.
    pub paths: Vec<(String, u64)>,
    /// Requests to make in all.
    pub requests: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SynSent,
    Open,
}

#[derive(Debug)]
struct Peer {
    port: u16,
    state: State,
    snd_nxt: Seq,
    rcv_nxt: Seq,
    ts_recent: u32,
    /// Segments received since the last ACK.
    unacked: u32,
    /// On the list of connections owing an ACK.
    dirty: bool,
    plan: Plan,
    /// The request of each path, built once.
    requests: Vec<Vec<u8>>,
    /// Requests sent so far; the one in flight is `sent - 1`.
    sent: u64,
    /// Responses received whole.
    got: u64,
    /// The request waiting for a frame to go out in.
    want_request: bool,
    head: Vec<u8>,
    in_head: bool,
    body_left: u64,
    body_off: u64,
}

/// The client; see the module docs.
#[derive(Debug)]
pub struct Client {
    route: Route,
    server_port: u16,
    base_port: u16,
    mss: u16,
    ack_every: u32,
    verify: bool,
    tsval: u32,
    peers: Vec<Peer>,
    dirty: Vec<u16>,
    /// What the client counted.
    pub stats: ClientStats,
}

impl Client {
    /// A client at `mac`/`ip` talking to `server` (MAC, IP, port) from ports
    /// `base_port..`, ACKing every `ack_every` segments, with an MSS for IP MTU `mtu`.
    pub fn new(
        mac: EthernetAddress,
        ip: IpAddress,
        server: (EthernetAddress, IpAddress, u16),
        base_port: u16,
        mtu: usize,
        ack_every: u32,
        verify: bool,
    ) -> Client {
        Client {
            route: Route { src_mac: mac, dst_mac: server.0, src_ip: ip, dst_ip: server.1 },
            server_port: server.2,
            base_port,
            mss: (mtu - 40) as u16,
            ack_every: ack_every.max(1),
            verify,
            tsval: 1,
            peers: Vec::new(),
            dirty: Vec::new(),
            stats: ClientStats::default(),
        }
    }

    /// Opens a connection that will make the requests of `plan`; its SYN goes into `rx`.
    pub fn connect(&mut self, plan: Plan, pool: &Pool, rx: &mut VecDeque<BufSlice>) {
        let port = self.base_port + self.peers.len() as u16;
        let iss = Seq(0x1000_0000u32.wrapping_mul(u32::from(port)));
        let requests = plan
            .paths
            .iter()
            .map(|(path, _)| format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes())
            .collect();
        self.peers.push(Peer {
            port,
            state: State::SynSent,
            snd_nxt: iss,
            rcv_nxt: Seq(0),
            ts_recent: 0,
            unacked: 0,
            dirty: false,
            plan,
            requests,
            sent: 0,
            got: 0,
            want_request: false,
            head: Vec::with_capacity(MAX_HEAD),
            in_head: true,
            body_left: 0,
            body_off: 0,
        });
        let p = self.peers.len() - 1;
        let options = TcpOptions {
            mss: Some(self.mss),
            window_scale: Some(WINDOW_SCALE),
            sack_permitted: true,
            timestamp: Some((self.tsval, 0)),
            ..Default::default()
        };
        self.send(p, TcpFlags::SYN, options, &[], pool, rx);
        self.peers[p].snd_nxt = iss.add(1);
    }

    /// Whether every connection has made all its requests and received every response.
    pub fn done(&self) -> bool {
        self.peers.iter().all(|p| p.got == p.plan.requests)
    }

    /// Takes one packet the server sent (its fragments, header frame first).
    pub fn receive(&mut self, frags: &[BufSlice], pool: &Pool, rx: &mut VecDeque<BufSlice>) {
        let Some((hdr, payload_at, plen)) = parse(frags) else {
            self.stats.bad += 1;
            return;
        };
        if self.verify && !self.checksum_ok(frags, payload_at - L4 + plen) {
            self.stats.bad_checksums += 1;
        }
        let i = usize::from(hdr.dst_port.wrapping_sub(self.base_port));
        let Some(p) = self.peers.get_mut(i).filter(|p| p.port == hdr.dst_port && hdr.src_port == self.server_port)
        else {
            self.stats.bad += 1;
            return;
        };
        if p.state == State::SynSent {
            if hdr.flags.has(TcpFlags::SYN | TcpFlags::ACK) {
                p.rcv_nxt = hdr.seq.add(1);
                p.ts_recent = hdr.options.timestamp.map_or(0, |t| t.0);
                p.state = State::Open;
                p.want_request = true;
                self.request(i, pool, rx);
            }
            return;
        }
        let seq_len = plen + usize::from(hdr.flags.has(TcpFlags::FIN));
        if seq_len == 0 {
            return; // a pure ACK of our request
        }
        if hdr.seq != p.rcv_nxt {
            if hdr.seq.lt(p.rcv_nxt) {
                self.stats.duplicates += 1;
            } else {
                self.stats.out_of_order += 1;
            }
            self.ack(i, pool, rx);
            return;
        }
        p.rcv_nxt = p.rcv_nxt.add_len(seq_len);
        if let Some((tsval, _)) = hdr.options.timestamp {
            p.ts_recent = tsval;
        }
        self.stats.segments += 1;
        self.stats.payload_bytes += plen as u64;
        let mut done = 0;
        let first = &frags[0].as_bytes()[payload_at..(payload_at + plen).min(frags[0].len())];
        for chunk in std::iter::once(first).chain(frags[1..].iter().map(BufSlice::as_bytes)) {
            done += self.consume(i, chunk);
        }
        let p = &mut self.peers[i];
        p.unacked += 1;
        if done > 0 && p.sent < p.plan.requests {
            p.want_request = true;
            self.request(i, pool, rx);
        } else if p.unacked >= self.ack_every {
            self.ack(i, pool, rx);
        } else if !p.dirty {
            p.dirty = true;
            self.dirty.push(i as u16);
        }
    }

    /// The end of a batch: every connection owing an ACK sends one, and requests that
    /// found no frame try again.
    pub fn flush(&mut self, pool: &Pool, rx: &mut VecDeque<BufSlice>) {
        self.tsval = self.tsval.wrapping_add(1);
        let mut dirty = std::mem::take(&mut self.dirty);
        for i in dirty.drain(..) {
            let i = usize::from(i);
            self.peers[i].dirty = false;
            if self.peers[i].want_request {
                self.request(i, pool, rx);
            } else if self.peers[i].unacked > 0 {
                self.ack(i, pool, rx);
            }
        }
        self.dirty = dirty;
    }

    /// Whether the TCP checksum of a segment of `len` bytes (header and payload) from the
    /// server holds.
    fn checksum_ok(&self, frags: &[BufSlice], len: usize) -> bool {
        let mut c = Checksum::with_sum(pseudo_header(&self.route.dst_ip, &self.route.src_ip, IpProtocol::Tcp, len));
        c.add(&frags[0].as_bytes()[L4..]);
        for f in &frags[1..] {
            c.add(f.as_bytes());
        }
        c.sum() == 0xffff
    }

    /// Response bytes `chunk` for connection `i`; returns the responses it completed.
    fn consume(&mut self, i: usize, mut chunk: &[u8]) -> u64 {
        let mut done = 0;
        while !chunk.is_empty() {
            let p = &mut self.peers[i];
            if p.in_head {
                let from = p.head.len().saturating_sub(3);
                let take = chunk.len().min(MAX_HEAD - p.head.len());
                p.head.extend_from_slice(&chunk[..take]);
                let Some(end) = p.head[from..].windows(4).position(|w| w == b"\r\n\r\n").map(|e| from + e + 4) else {
                    if p.head.len() >= MAX_HEAD {
                        self.stats.bad += 1;
                        p.head.clear();
                    }
                    return done;
                };
                let Some((status, len)) = status_and_length(&p.head[..end]) else {
                    self.stats.bad += 1;
                    p.head.clear();
                    return done;
                };
                if status != 200 {
                    self.stats.bad += 1;
                }
                // Bytes past the head in what was taken belong to the body.
                let past = p.head.len() - end;
                chunk = &chunk[take - past..];
                p.head.clear();
                p.in_head = false;
                p.body_left = len;
                p.body_off = 0;
            }
            let n = (chunk.len() as u64).min(p.body_left) as usize;
            if self.verify {
                let seed = p.plan.paths[((p.sent - 1) % p.plan.paths.len() as u64) as usize].1;
                if Stream::new(seed).verify(p.body_off, &chunk[..n]).is_err() {
                    self.stats.bad += 1;
                }
            }
            p.body_left -= n as u64;
            p.body_off += n as u64;
            self.stats.body_bytes += n as u64;
            chunk = &chunk[n..];
            if p.body_left == 0 {
                p.in_head = true;
                p.got += 1;
                self.stats.responses += 1;
                done += 1;
            }
        }
        done
    }

    /// Sends connection `i`'s next request (carrying the ACK), if a frame is free.
    fn request(&mut self, i: usize, pool: &Pool, rx: &mut VecDeque<BufSlice>) {
        let p = &mut self.peers[i];
        let which = (p.sent % p.requests.len() as u64) as usize;
        let req = std::mem::take(&mut p.requests[which]);
        let sent = self.send(i, TcpFlags::ACK | TcpFlags::PSH, self.data_options(i), &req, pool, rx);
        let p = &mut self.peers[i];
        let len = req.len();
        p.requests[which] = req;
        if sent {
            p.snd_nxt = p.snd_nxt.add_len(len);
            p.sent += 1;
            p.want_request = false;
            self.stats.requests += 1;
        } else if !self.peers[i].dirty {
            self.peers[i].dirty = true;
            self.dirty.push(i as u16);
        }
    }

    fn ack(&mut self, i: usize, pool: &Pool, rx: &mut VecDeque<BufSlice>) {
        if self.send(i, TcpFlags::ACK, self.data_options(i), &[], pool, rx) {
            self.stats.acks += 1;
        }
    }

    fn data_options(&self, i: usize) -> TcpOptions {
        TcpOptions { timestamp: Some((self.tsval, self.peers[i].ts_recent)), ..Default::default() }
    }

    /// Builds one segment of connection `i` in a frame of the server's pool; false if the
    /// pool had none free.
    fn send(
        &mut self,
        i: usize,
        flags: TcpFlags,
        options: TcpOptions,
        payload: &[u8],
        pool: &Pool,
        rx: &mut VecDeque<BufSlice>,
    ) -> bool {
        let Some(mut frame) = pool.alloc_frame() else {
            self.stats.no_frame += 1;
            return false;
        };
        let p = &mut self.peers[i];
        let hdr = TcpHeader {
            src_port: p.port,
            dst_port: self.server_port,
            seq: p.snd_nxt,
            ack: p.rcv_nxt,
            flags,
            window: WINDOW,
            options,
        };
        let Some(buf) = frame.get_mut() else { return false };
        let hl = self.route.emit_tcp(buf, &hdr, std::iter::once(payload));
        buf[hl..hl + payload.len()].copy_from_slice(payload);
        let Some(s) = BufSlice::new(frame, 0..hl + payload.len()) else { return false };
        rx.push_back(s);
        p.unacked = 0;
        true
    }
}

/// The TCP header of a packet, where its payload starts in the header frame, and its
/// payload length.
fn parse(frags: &[BufSlice]) -> Option<(TcpHeader, usize, usize)> {
    let h = frags.first()?.as_bytes();
    if h.len() < L4 + 20 || h[12..14] != [0x08, 0x00] || h[14] != 0x45 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let (hdr, thl) = TcpHeader::parse(&h[L4..]).ok()?;
    let plen = total.checked_sub(20 + thl)?;
    let have: usize = frags.iter().map(BufSlice::len).sum::<usize>() - L4 - thl;
    (have == plen).then_some((hdr, L4 + thl, plen))
}

/// The status and `Content-Length` of a response head.
fn status_and_length(head: &[u8]) -> Option<(u16, u64)> {
    let mut hs = [httparse::EMPTY_HEADER; 24];
    let mut r = httparse::Response::new(&mut hs);
    match r.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let h = r.headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-length"))?;
    Some((r.code?, std::str::from_utf8(h.value).ok()?.trim().parse().ok()?))
}
