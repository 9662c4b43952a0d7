//! The AF_XDP backend: the steering program sends the server's TCP port to an AF_XDP
//! socket, the user-space stack runs TCP over it, and file blocks read by io_uring
//! `O_DIRECT` into the pool leave as TCP payload by reference: header frame + block range
//! per segment (multi-buffer). Nothing copies payload unless multi-buffer is missing, and
//! then `payload_bytes_copied` says how much.
//!
//! One thread runs everything, run-to-completion: RX batch -> stack -> HTTP -> block cache
//! (io_uring) -> stack -> TX batch -> completions, then sleeps in poll(2) only when idle.

mod conn;
mod link;

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use datapath::{AttachPolicy, BindPolicy, Interface, Proto, SteerProgram, XskConfig, XskSocket};
use rustix::fs::OFlags;
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};
use stack::{ListenHandle, Stack, StackConfig};
use umem::{BlockCache, BlockDone, BufSlice, Lookup, Pool};

use self::conn::{end_block, Resp, Wanted, XConn};
use self::link::XskLink;
use crate::http::{self, Head, Parsed};
use crate::metrics::Metrics;
use crate::options::{Limits, PoolOpts};
use crate::root::Root;

/// Settings of the AF_XDP backend.
#[derive(Debug, Clone)]
pub struct XdpOpts {
    pub iface: String,
    pub addr: IpAddr,
    pub prefix: u8,
    pub port: u16,
    pub queue: u32,
    /// Packet frames in the pool (RX, TX headers, control packets).
    pub frames: u32,
    pub pool: PoolOpts,
    pub force_copy: bool,
    pub skb: bool,
    pub busy: bool,
    pub metrics_port: Option<u16>,
    pub user: Option<String>,
    pub limits: Limits,
}

/// Request bytes kept per connection before a complete head is required.
const INBUF: usize = 16 * 1024;
/// Pipelined responses queued per connection.
const MAX_QUEUED: usize = 16;
/// Blocks asked ahead of the stack per connection: at least this many ...
const AHEAD_MIN: usize = 2;
/// ... and at most this many (bounds per-connection pool use).
const AHEAD_MAX: usize = 16;

struct Server {
    stack: Stack,
    cache: BlockCache,
    listener: ListenHandle,
    conns: Vec<Option<XConn>>,
    free: Vec<usize>,
    /// Cache tickets -> connections waiting on them.
    waiting: HashMap<u64, Vec<usize>>,
    root: Root,
    limits: Limits,
    metrics: Metrics,
    done: Vec<BlockDone>,
    epoch: std::time::Instant,
    /// Served files, one descriptor per inode (see [`crate::held`]).
    held: crate::held::HeldFiles,
}

pub fn run(
    opts: XdpOpts,
    root: Root,
    root_path: PathBuf,
    stop: &Arc<AtomicBool>,
    dump: &Arc<AtomicBool>,
) -> Result<()> {
    datapath::caps::require_datapath()?;
    let IpAddr::V4(addr4) = opts.addr else { bail!("--backend xdp serves IPv4 for now: give --addr a.b.c.d") };
    if addr4.is_unspecified() {
        bail!(
            "--backend xdp needs the server's own address in --addr (the stack answers ARP and builds headers with it)"
        );
    }
    let iface = Interface::by_name(&opts.iface)?;
    let mac = read_mac(&iface.name)?;
    let pool = Pool::new(&opts.pool.pool_config(opts.frames)).context("creating the pool")?;
    let mut sock = XskSocket::open(
        &pool,
        &iface,
        &XskConfig { queue: opts.queue, bind: BindPolicy::PreferZeroCopy, ..XskConfig::default() },
    )?;
    let mut program =
        SteerProgram::attach(&iface, if opts.skb { AttachPolicy::Skb } else { AttachPolicy::PreferDriver })?;
    program.register(opts.queue, &sock)?;
    program.steer(Proto::Tcp, opts.addr, opts.port)?;
    let reader =
        umem::BlockReader::new(&pool, &opts.pool.reader_config()).context("creating the io_uring block reader")?;
    let cache = BlockCache::new(reader, &opts.pool.cache_config());
    let mut cfg = StackConfig::new(EthernetAddress(mac));
    cfg.ipv4 = Some(Ipv4Cidr::new(addr4, opts.prefix));
    cfg.mtu = iface.mtu as usize;
    cfg.force_copy = opts.force_copy;
    cfg.secret = seed();
    let mut stack = Stack::new(cfg);
    let listener = stack.listen(opts.port).map_err(|e| anyhow::anyhow!("listen on {}: {e}", opts.port))?;
    let control = match opts.metrics_port {
        Some(p) => {
            let l = TcpListener::bind((opts.addr, p))
                .with_context(|| format!("binding the control port {p} on the kernel stack"))?;
            l.set_nonblocking(true)?;
            Some(l)
        }
        None => None,
    };

    println!("fileserver on http://{}:{}/ serving {}", opts.addr, opts.port, root_path.display());
    println!("  backend         AF_XDP + user-space TCP");
    println!("  interface       {} (MTU {}, queue {})", iface.name, iface.mtu, opts.queue);
    println!("  XDP attach      {}", program.mode());
    println!("  AF_XDP bind     {}", sock.mode());
    println!(
        "  multi-buffer    {}",
        if sock.multi_buffer() && !opts.force_copy {
            "yes (payload sent by reference)"
        } else {
            "no (payload copied behind headers, counted)"
        }
    );
    println!("  hugepages       {}", pool.backing());
    println!(
        "  pool            {} frames + {} blocks x {} KiB, {}",
        opts.frames,
        opts.pool.blocks,
        opts.pool.block_kib,
        if pool.locked() { "locked" } else { "not locked" }
    );
    println!("  file reads      {}", opts.pool.describe_reads());
    if let Some(l) = &control {
        println!("  control port    http://{}/metrics (kernel stack)", l.local_addr()?);
    }
    if let Some(user) = &opts.user {
        println!("  privileges      {}", crate::privdrop::drop_to(user)?);
    }
    println!("ready");

    let mut srv = Server {
        stack,
        cache,
        listener,
        conns: Vec::new(),
        free: Vec::new(),
        waiting: HashMap::new(),
        root,
        limits: opts.limits.clone(),
        metrics: Metrics::default(),
        done: Vec::new(),
        epoch: std::time::Instant::now(),
        held: crate::held::HeldFiles::default(),
    };
    let mut rx = Vec::with_capacity(64);
    let mut refused = 0u64;
    let mut idle = 0u32;
    let mut last_timers = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = srv.now();
        rx.clear();
        let n = sock.recv(&mut rx, 64);
        for f in rx.drain(..) {
            if f.more {
                // Requests and ACKs fit one frame; a multi-buffer RX packet is not ours.
                srv.metrics.rx_multi_dropped += 1;
                continue;
            }
            srv.stack.handle_frame(now, f.data);
        }
        while let Some(h) = srv.stack.accept(srv.listener) {
            srv.add(h);
        }
        let completed = srv.poll_cache();
        for idx in 0..srv.conns.len() {
            srv.service(idx);
        }
        let sent =
            srv.stack.poll(now, &mut XskLink { sock: &mut sock, mtu: iface.mtu as usize, refused: &mut refused });
        sock.poll();
        if let Some(l) = &control {
            serve_control(l, &srv, &sock, &pool);
        }
        if last_timers.elapsed() > Duration::from_millis(200) {
            srv.timers();
            last_timers = std::time::Instant::now();
        }
        if dump.swap(false, Ordering::Relaxed) {
            print!("{}", srv.render(&sock, &pool));
        }
        if n == 0 && sent == 0 && completed == 0 {
            idle += 1;
        } else {
            idle = 0;
        }
        if !opts.busy && idle > 512 && srv.cache.reader().is_idle() && sock.tx_in_flight() == 0 {
            // Sleep until a packet arrives or the stack's next timer, at most 10 ms.
            let wait = srv.stack.poll_at().map_or(Duration::from_millis(10), |t| {
                Duration::from_micros((t - srv.now()).total_micros().min(10_000))
            });
            if !wait.is_zero() {
                sock.wait(wait);
            }
        }
    }
    println!("fileserver: stopping");
    print!("{}", srv.render(&sock, &pool));
    Ok(())
}

impl Server {
    fn now(&self) -> stack::Instant {
        stack::Instant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    fn add(&mut self, h: stack::ConnHandle) {
        let open = self.conns.len() - self.free.len();
        self.metrics.connections += 1;
        if open >= self.limits.max_connections {
            self.metrics.refused_connections += 1;
            let _ = self.stack.abort(h);
            return;
        }
        let c = XConn {
            h,
            inbuf: Vec::new(),
            resps: VecDeque::new(),
            closing: false,
            last_progress: std::time::Instant::now(),
            head_started: None,
        };
        self.metrics.connections_open += 1;
        match self.free.pop() {
            Some(i) => self.conns[i] = Some(c),
            None => self.conns.push(Some(c)),
        }
    }

    fn drop_conn(&mut self, idx: usize, graceful: bool) {
        if let Some(c) = self.conns[idx].take() {
            let _ = if graceful { self.stack.close(c.h) } else { self.stack.abort(c.h) };
            self.metrics.connections_open -= 1;
            self.free.push(idx);
        }
    }

    /// Routes finished block reads to the connections that asked for them.
    fn poll_cache(&mut self) -> usize {
        self.done.clear();
        if let Err(e) = self.cache.poll(&mut self.done) {
            log::warn!("block cache: {e}");
        }
        let n = self.done.len();
        let done = std::mem::take(&mut self.done);
        for d in &done {
            let Some(idxs) = self.waiting.remove(&d.ticket.0) else { continue };
            for idx in idxs {
                let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else { continue };
                match &d.result {
                    Ok(data) => {
                        for r in c.resps.iter_mut().filter(|r| r.key() == Some(d.key)) {
                            for w in r.wanted.iter_mut().filter(|w| w.block == d.block && w.data.is_none()) {
                                w.data = Some(data.clone());
                            }
                        }
                    }
                    Err(e) => {
                        log::warn!("reading block {} failed: {e}; resetting the connection", d.block);
                        self.drop_conn(idx, false);
                    }
                }
            }
        }
        self.done = done;
        n
    }

    /// Reads requests, answers them, moves blocks and bytes along for one connection.
    fn service(&mut self, idx: usize) {
        let Some(mut c) = self.conns.get_mut(idx).and_then(Option::take) else { return };
        let keep = self.service_conn(idx, &mut c);
        self.conns[idx] = Some(c);
        if !keep {
            self.drop_conn(idx, true);
        }
    }

    fn service_conn(&mut self, idx: usize, c: &mut XConn) -> bool {
        let ready = self.stack.readiness(c.h);
        if ready.closed || ready.error.is_some() {
            return false;
        }
        // Request bytes: copied out of the frames (they are headers, not payload).
        while !c.closing && c.inbuf.len() < INBUF + http::MAX_HEAD {
            match self.stack.read(c.h, INBUF) {
                Ok(Some(s)) => {
                    c.inbuf.extend_from_slice(s.as_bytes());
                    c.last_progress = std::time::Instant::now();
                    c.head_started.get_or_insert_with(std::time::Instant::now);
                }
                Ok(None) => break,
                Err(_) => return false,
            }
        }
        self.answer(c);
        if ready.read_closed && c.inbuf.is_empty() {
            c.closing = true;
        }
        // The front response moves; the ones behind it wait their turn.
        // Read ahead by what the connection can send soon: its congestion window plus
        // what its send queue still has room for, in blocks.
        let window = self.stack.conn(c.h).map_or(0, |k| k.cwnd() + k.send_space());
        while let Some(r) = c.resps.front_mut() {
            if let Err(e) = self.feed(idx, r, window) {
                log::debug!("response aborted: {e}");
                return false;
            }
            let mut batch: Vec<BufSlice> = r.out.iter().cloned().collect();
            if !batch.is_empty() {
                match self.stack.write_frames(c.h, &batch) {
                    Ok(mut taken) => {
                        if taken > 0 {
                            c.last_progress = std::time::Instant::now();
                        }
                        self.metrics.bytes_sent += taken as u64;
                        while taken > 0 {
                            let Some(front) = r.out.front_mut() else { break };
                            if front.len() <= taken {
                                taken -= front.len();
                                r.out.pop_front();
                            } else {
                                front.advance(taken);
                                taken = 0;
                            }
                        }
                    }
                    Err(_) => return false,
                }
                batch.clear();
            }
            if !r.done() {
                break;
            }
            let close = r.close;
            c.resps.pop_front();
            if close {
                c.closing = true;
                c.resps.clear();
            }
        }
        !(c.closing && c.resps.is_empty())
    }

    /// Parses complete requests into responses.
    fn answer(&mut self, c: &mut XConn) {
        while !c.closing && c.resps.len() < MAX_QUEUED && !c.inbuf.is_empty() {
            let now = SystemTime::now();
            let (head, consumed, file) = match http::parse(&c.inbuf) {
                Parsed::Partial => return,
                Parsed::Error { status, consumed, close, http11 } => {
                    (http::answer_error(status, http11, close, false, now), consumed, None)
                }
                Parsed::Request(req, consumed) => match self.root.resolve(&req.path, OFlags::empty()) {
                    Ok(o) => {
                        let head = http::answer_file(&req, &o.path, &o.v, now);
                        // The cache opens the inode the root resolution found, through this
                        // process's descriptor, so no path is looked up outside the root.
                        let file = match head.body {
                            Some(_) => match self.held.open(&mut self.cache, o.file) {
                                Ok(f) => Some(f),
                                Err(e) => {
                                    log::warn!("{}: {e}", o.path);
                                    let h =
                                        http::answer_error(http::Status::InternalError, req.http11, true, false, now);
                                    self.push(c, h, consumed, None);
                                    continue;
                                }
                            },
                            None => None,
                        };
                        (head, consumed, file)
                    }
                    Err(status) => {
                        (http::answer_error(status, req.http11, !req.keep_alive, req.head_only, now), consumed, None)
                    }
                },
            };
            self.push(c, head, consumed, file);
        }
        if c.inbuf.is_empty() {
            c.head_started = None;
        }
    }

    fn push(&mut self, c: &mut XConn, head: Head, consumed: usize, file: Option<umem::CachedFile>) {
        self.metrics.count(head.status);
        c.inbuf.drain(..consumed.min(c.inbuf.len()));
        c.head_started = (!c.inbuf.is_empty()).then(std::time::Instant::now);
        if head.close {
            c.closing = true;
        }
        let mut out = VecDeque::new();
        match self.head_slice(&head.bytes) {
            Some(s) => out.push_back(s),
            None => {
                log::warn!("no free frame for a response head; closing the connection");
                c.closing = true;
                return;
            }
        }
        let (start, end) = head.body.map_or((0, 0), |r| (r.start, r.end));
        let next_block = file.as_ref().map_or(0, |f| start / u64::from(f.block_len));
        c.resps.push_back(Resp { out, file, start, end, next_block, wanted: VecDeque::new(), close: head.close });
    }

    /// The response head in a frame of its own (headers are built by the CPU; payload never).
    fn head_slice(&self, bytes: &[u8]) -> Option<BufSlice> {
        let mut buf = self.cache.reader().pool().alloc_frame()?;
        let n = bytes.len().min(buf.capacity());
        buf.get_mut()?[..n].copy_from_slice(&bytes[..n]);
        BufSlice::new(buf, 0..n)
    }

    /// Asks for blocks ahead and moves arrived ones, in order, into `out`.
    fn feed(&mut self, idx: usize, r: &mut Resp, window: usize) -> Result<(), umem::Error> {
        let Some(f) = r.file else { return Ok(()) };
        let last = end_block(&f, r.end);
        let ahead = (window / f.block_len.max(1) as usize + 1).clamp(AHEAD_MIN, AHEAD_MAX);
        while r.wanted.len() < ahead && r.next_block < last {
            match self.cache.get(&f, r.next_block) {
                Ok(Lookup::Hit(data)) => r.wanted.push_back(Wanted { block: r.next_block, data: Some(data) }),
                Ok(Lookup::Pending(t)) => {
                    self.waiting.entry(t.0).or_default().push(idx);
                    r.wanted.push_back(Wanted { block: r.next_block, data: None });
                }
                // Every block is in use: try again on a later pass, when sends complete.
                Err(umem::Error::PoolExhausted { .. }) => break,
                Err(e) => return Err(e),
            }
            r.next_block += 1;
        }
        while r.wanted.front().is_some_and(|w| w.data.is_some()) {
            let Some(w) = r.wanted.pop_front() else { break };
            let Some(data) = w.data else { break };
            let Some(range) = f.block_range(w.block) else { continue };
            let lo = r.start.max(range.start) - range.start;
            let hi = r.end.min(range.end) - range.start;
            if let Some(s) = data.slice(lo as usize..hi as usize) {
                if !s.is_empty() {
                    r.out.push_back(s);
                }
            }
        }
        Ok(())
    }

    fn timers(&mut self) {
        let now = std::time::Instant::now();
        for idx in 0..self.conns.len() {
            let Some(c) = self.conns[idx].as_ref() else { continue };
            let expired = if !c.resps.is_empty() {
                (now - c.last_progress > self.limits.write_timeout).then_some(0)
            } else if let Some(t) = c.head_started {
                (now - t > self.limits.head_timeout).then_some(1)
            } else {
                (now - c.last_progress > self.limits.idle_timeout).then_some(2)
            };
            match expired {
                Some(0) => self.metrics.timeouts_write += 1,
                Some(1) => self.metrics.timeouts_head += 1,
                Some(_) => self.metrics.timeouts_idle += 1,
                None => continue,
            }
            self.drop_conn(idx, false);
        }
    }

    fn render(&self, sock: &XskSocket, pool: &Pool) -> String {
        let mut m = self.metrics.clone();
        let s = self.stack.counters();
        m.bytes_copied = s.payload_bytes_copied;
        let cs = self.cache.stats();
        let rs = self.cache.reader().stats();
        let xs = sock.stats();
        let ps = pool.stats();
        m.extra = vec![
            ("tcp_retransmits_total".into(), s.tcp_retransmits),
            ("tcp_fast_recoveries_total".into(), s.tcp_fast_recoveries),
            ("tcp_loss_probes_total".into(), s.tcp_loss_probes),
            ("tcp_bad_offset_total".into(), s.tcp_bad_offset),
            ("tcp_bad_options_total".into(), s.tcp_bad_options),
            ("tcp_rst_bad_seq_total".into(), s.tcp_rst_bad_seq),
            ("tcp_rst_challenged_total".into(), s.tcp_rst_challenged),
            ("tcp_syn_received_total".into(), s.tcp_syn_received),
            ("tcp_syn_challenged_total".into(), s.tcp_syn_challenged),
            ("tcp_out_of_window_total".into(), s.tcp_out_of_window),
            ("tcp_conn_table_full_total".into(), s.tcp_conn_table_full),
            ("tcp_syn_cookies_sent_total".into(), s.tcp_syn_cookies_sent),
            ("tcp_rto_expired_total".into(), s.tcp_rto_expired),
            ("tcp_established_total".into(), s.tcp_established),
            ("tx_payload_bytes_total".into(), s.tx_payload_bytes),
            ("cache_hits_total".into(), cs.hits),
            ("cache_misses_total".into(), cs.misses),
            ("cache_evictions_total".into(), cs.evictions),
            ("cache_streamed_total".into(), cs.streamed),
            ("read_bytes_direct_total".into(), rs.bytes_direct),
            ("read_bytes_buffered_total".into(), rs.bytes_buffered),
            ("xsk_rx_dropped_total".into(), xs.rx_dropped),
            ("xsk_rx_ring_full_total".into(), xs.rx_ring_full),
            ("xsk_fill_ring_empty_total".into(), xs.rx_fill_ring_empty),
            ("xsk_tx_ring_full_total".into(), xs.tx_ring_full),
            ("xsk_tx_invalid_descs_total".into(), xs.tx_invalid_descs),
            ("xsk_tx_descs_total".into(), xs.tx_descs),
            ("xsk_tx_completed_total".into(), xs.tx_completed),
            ("xsk_tx_wakeups_total".into(), xs.tx_wakeups),
            ("xsk_tx_wakeup_errors_total".into(), xs.tx_wakeup_errors),
            ("stack_tx_link_full_total".into(), s.tx_link_full),
            ("stack_tx_no_frame_total".into(), s.tx_no_frame),
            ("stack_tx_frames_total".into(), s.tx_frames),
            ("stack_rx_frames_total".into(), s.rx_frames),
            ("tcp_bad_checksum_total".into(), s.tcp_bad_checksum),
            ("rx_multi_buffer_dropped_total".into(), m.rx_multi_dropped),
            ("pool_frames_free".into(), u64::from(ps.frames_free)),
            ("pool_blocks_free".into(), u64::from(ps.blocks_free)),
        ];
        m.render("xdp")
    }
}

/// Answers any connection on the control port with the counters, then closes it.
fn serve_control(l: &TcpListener, srv: &Server, sock: &XskSocket, pool: &Pool) {
    while let Ok((mut s, _)) = l.accept() {
        let _ = s.set_nonblocking(false);
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut req = [0u8; 1024];
        let _ = s.read(&mut req);
        let body = srv.render(sock, pool);
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

fn read_mac(iface: &str) -> Result<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
        .with_context(|| format!("reading the MAC of {iface}"))?;
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.len() != 6 {
        bail!("unexpected MAC {text:?} for {iface}");
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16)?;
    }
    Ok(mac)
}

fn seed() -> u64 {
    let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (t as u64) ^ u64::from(std::process::id()).rotate_left(32)
}
