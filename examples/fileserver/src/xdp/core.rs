//! The AF_XDP backend's server core: the user-space stack, the block cache and one HTTP
//! [`Session`] per connection. It owns no device and reads no clock: a loop hands it
//! received frames ([`Core::receive`]) and a [`Link`] to transmit on ([`Core::turn`]), so
//! the AF_XDP socket and a simulated wire drive the same code.
//!
//! ```text
//!   frames ──► Core::receive ──► Stack::handle_frame, and wake the peer's session
//!   Core::turn(now, link):  accept ─► block completions ─► the woken sessions (read,
//!                           answer, feed, write) ─► Stack::poll(now, link) ─► due HTTP timers
//! ```
//!
//! A turn serves only the sessions with something to do: those a frame, an accept or a
//! finished block read woke, and those that waited for pool memory on the last turn. The
//! HTTP timers (head, idle, write) sit in the table's timer wheel, re-armed after each
//! service. Nothing per turn walks the connections, and after warm-up nothing allocates.

use std::collections::HashMap;

use std::sync::Arc;

use smoltcp::wire::IpEndpoint;
use stack::tcp::ConnInfo;
use stack::{ConnHandle, Instant, Link, ListenHandle, Stack};
use umem::{BlockCache, BufSlice};

use super::rx::Reassembly;
use super::sink::{SinkStats, StackTransport};
use crate::access_log::LogSender;
use crate::blocks::{self, BlockStream, Blocks, HasStreams, Holding};
use crate::metrics::Metrics;
use crate::options::Limits;
use crate::root::Root;
use crate::session::table::{SessionId, Table};
use crate::session::{Now, Served, Session, Timeout};

/// One connection: the stack's handle, its peer and the HTTP session over it.
#[derive(Debug)]
struct XConn {
    h: ConnHandle,
    peer: IpEndpoint,
    session: Session<BlockStream>,
    /// The stack's `snd_una` when last served (acknowledgements are write progress).
    una: Option<u32>,
    /// The pool blocks it holds, as last settled with the budget.
    holding: Holding,
}

impl HasStreams for XConn {
    fn streams_mut(&mut self) -> impl Iterator<Item = &mut BlockStream> {
        self.session.bodies_mut()
    }
}

/// What a turn did (the loop sleeps only after turns that did nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Turn {
    /// Frames the stack transmitted.
    pub sent: usize,
    /// Block reads that finished.
    pub completed: usize,
}

/// Work the core did, counted (tests show it follows activity, not open connections).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Sessions served.
    pub serviced: u64,
    /// Timer entries the wheel looked at.
    pub timer_visits: u64,
}

/// The server core; see the module docs.
#[derive(Debug)]
pub struct Core {
    stack: Stack,
    listener: ListenHandle,
    blocks: Blocks,
    conns: Table<XConn>,
    /// Sessions by peer, to wake the one a frame is for.
    peers: HashMap<IpEndpoint, SessionId>,
    root: Root,
    limits: Limits,
    /// HTTP counters.
    pub metrics: Metrics,
    sink: SinkStats,
    /// The multi-buffer packet being received.
    rx: Reassembly,
    /// Scratch for head frames and for ids (reused, so a pass allocates nothing).
    frames: Vec<BufSlice>,
    ids: Vec<SessionId>,
    due: Vec<(SessionId, Timeout)>,
    work: Work,
    /// The access log, if on.
    log: Option<LogSender>,
}

impl Core {
    /// A core serving `listener` of `stack` from the files beneath `root`, through `cache`
    /// (whose pool also gives the frames for response heads).
    pub fn new(stack: Stack, listener: ListenHandle, cache: BlockCache, root: Root, limits: Limits) -> Core {
        let timers = limits.longest_timeout();
        Core {
            stack,
            listener,
            blocks: Blocks::with_budget(cache, limits.conn_blocks),
            conns: Table::new(timers),
            peers: HashMap::new(),
            root,
            limits,
            metrics: Metrics::default(),
            sink: SinkStats::default(),
            rx: Reassembly::default(),
            frames: Vec::new(),
            ids: Vec::new(),
            due: Vec::new(),
            work: Work::default(),
            log: None,
        }
    }

    /// Logs every request of connections accepted from now on to `tx`.
    pub fn log_to(&mut self, tx: LogSender) {
        self.log = Some(tx);
    }

    /// Appends the TCP snapshot of at most `max` open connections to `rows`; returns how
    /// many more there are. Walks the connection table: call it when asked, not per turn.
    pub fn connections(&self, rows: &mut Vec<ConnInfo>, max: usize) -> usize {
        let mut more = 0;
        for (_, c) in self.conns.iter() {
            match self.stack.conn(c.h) {
                Some(k) if rows.len() < max => rows.push(k.info()),
                Some(_) => more += 1,
                None => {}
            }
        }
        more
    }

    /// The stack (counters, timers).
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The block cache and its pool.
    pub fn blocks(&self) -> &Blocks {
        &self.blocks
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Each connection's TCP state and queue lengths (for a failing test's message).
    pub fn describe_connections(&self) -> Vec<String> {
        self.conns
            .iter()
            .map(|(_, c)| match self.stack.conn(c.h) {
                Some(k) => format!(
                    "{:?} poll_at {:?} wants_output {} cwnd {} send_queued {} send_space {} session {}",
                    k.state(),
                    k.poll_at(),
                    k.wants_output(),
                    k.cwnd(),
                    k.send_queued(),
                    k.send_space(),
                    c.session.describe()
                ),
                None => "gone".into(),
            })
            .collect()
    }

    /// The pool blocks each open connection holds, as last settled with the budget.
    pub fn blocks_held(&self) -> Vec<u32> {
        self.conns.iter().map(|(_, c)| c.holding.held()).collect()
    }

    /// Work done so far.
    pub fn work(&self) -> Work {
        self.work
    }

    /// When the core next has work without new input: the stack's timers or the HTTP
    /// timers. Past times mean now. Sessions waiting for pool memory are not counted: the
    /// memory comes back with acknowledgements and transmit completions, which are input
    /// (and the next turn retries them).
    pub fn poll_at(&self) -> Option<Instant> {
        [self.stack.poll_at(), self.conns.next_timer()].into_iter().flatten().min()
    }

    /// Whether a session waits for pool memory (retried every turn; the memory comes back
    /// with acknowledgements and transmit completions).
    pub fn waiting_for_memory(&self) -> bool {
        self.conns.has_retries()
    }

    /// Takes one received descriptor (`more`: more fragments of its packet follow, the
    /// AF_XDP `XDP_PKT_CONTD`), and hands the stack each whole packet (see [`super::rx`]).
    pub fn receive_fragment(&mut self, now: Instant, data: BufSlice, more: bool) {
        let Core { rx, blocks, .. } = self;
        if let Some(frame) = rx.push(blocks.pool(), data, more) {
            self.receive(now, frame);
        }
    }

    /// Takes one received frame (a whole packet), and wakes the session it is for.
    pub fn receive(&mut self, now: Instant, frame: BufSlice) {
        if let Some(id) = super::peer::source(frame.as_bytes()).and_then(|p| self.peers.get(&p)) {
            self.conns.wake(*id);
        }
        self.stack.handle_frame(now, frame);
    }

    /// One turn of the server after a batch of frames: accepts, routes finished block
    /// reads, serves the sessions that have work, runs the stack's timers and transmits
    /// on `link`, then ends the sessions whose HTTP timers ran out.
    pub fn turn<L: Link>(&mut self, now: Now, link: &mut L) -> Turn {
        while let Some(h) = self.stack.accept(self.listener) {
            self.add(now, h);
        }
        self.conns.begin_turn();
        let completed = self.poll_blocks();
        let mut ids = std::mem::take(&mut self.ids);
        self.conns.take_ready(&mut ids);
        for id in ids.drain(..) {
            self.service(now, id);
        }
        self.ids = ids;
        let sent = self.stack.poll(now.mono, link);
        self.timers(now.mono);
        Turn { sent, completed }
    }

    fn add(&mut self, now: Now, h: ConnHandle) {
        self.metrics.connections += 1;
        let peer = self.stack.conn(h).map(|c| c.tuple().remote);
        let Some(peer) = peer.filter(|_| self.conns.len() < self.limits.max_connections) else {
            self.metrics.refused_connections += 1;
            let _ = self.stack.abort(h);
            return;
        };
        let mut session = Session::new(now.mono);
        if let Some(tx) = &self.log {
            session.log_to(tx.clone(), Arc::from(peer.addr.to_string()));
        }
        let id = self.conns.insert(XConn { h, peer, session, una: None, holding: Holding::default() });
        self.peers.insert(peer, id);
        self.conns.wake(id);
        self.metrics.connections_open += 1;
    }

    fn drop_conn(&mut self, id: SessionId, graceful: bool) {
        if let Some(mut c) = self.conns.remove(id) {
            let _ = if graceful { self.stack.close(c.h) } else { self.stack.abort(c.h) };
            self.blocks.budget.release(&mut c.holding);
            if self.peers.get(&c.peer) == Some(&id) {
                self.peers.remove(&c.peer);
            }
            self.metrics.connections_open -= 1;
        }
    }

    /// Hands finished block reads to the sessions that wait for them, and wakes those.
    fn poll_blocks(&mut self) -> usize {
        let Core { blocks, conns, .. } = self;
        blocks.poll(|d| {
            let id = d.0;
            if blocks::deliver(conns, d) {
                conns.wake(id);
            }
        })
    }

    /// Reads requests, answers them, moves blocks and bytes along for one connection.
    fn service(&mut self, now: Now, id: SessionId) {
        self.work.serviced += 1;
        let Core { stack, blocks, conns, root, metrics, frames, sink, limits, .. } = self;
        let Some(c) = conns.get_mut(id) else { return };
        let ready = stack.readiness(c.h);
        if ready.closed || ready.error.is_some() {
            return self.drop_conn(id, true);
        }
        let XConn { h, session, una, holding, .. } = c;
        let mut t = StackTransport { stack, h: *h, id, root, blocks, frames, stats: sink, una, waited: false };
        let served = session.serve(now, &mut t, metrics);
        let waited = t.waited;
        // What the connection holds now: its streams' blocks and its send queue's.
        let queued = stack.conn(*h).map_or(0, |k| k.send_queued());
        let block_len = blocks.pool().block_size() as usize;
        let streams: usize = session.bodies_mut().map(|b| b.blocks_held()).sum();
        let held = streams + super::sink::stack_blocks(queued, block_len);
        blocks.budget.settle(holding, held as u32, waited);
        let deadline = session.deadline(limits).0;
        match served {
            Served::Open { retry } => {
                conns.arm(id, deadline);
                if retry {
                    conns.retry_later(id);
                }
            }
            // Everything is answered, but not all of it acknowledged: our FIN goes out
            // behind the answer now (the peer, seeing it with the last bytes, need not
            // wait for it, and TIME-WAIT falls to us as the side that closed first),
            // and the connection stays ours (under the write timer) until the peer has
            // acknowledged it all, then closes. Releasing it now would leave the stack
            // holding the blocks with no timer of ours over them.
            Served::Done if session.unacked() => {
                let _ = stack.shutdown(*h);
                conns.arm(id, deadline)
            }
            Served::Done | Served::ReadFailed => self.drop_conn(id, true),
            Served::SendFailed => self.drop_conn(id, false),
        }
    }

    /// Ends the sessions whose deadline passed (the wheel names only those).
    fn timers(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        let limits = &self.limits;
        self.work.timer_visits += self.conns.expire(now, |c| c.session.deadline(limits), &mut due) as u64;
        for (id, why) in due.drain(..) {
            self.metrics.timed_out(why);
            self.drop_conn(id, false);
        }
        self.due = due;
    }

    /// The HTTP counters with the stack's (all of them), the cache's and the pool's.
    pub fn metrics(&self) -> Metrics {
        let mut m = self.metrics.clone();
        let s = self.stack.counters();
        m.bytes_copied = s.payload_bytes_copied;
        let ps = self.blocks.pool().stats();
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
            ("tcp_resets_received_total".into(), s.tcp_resets_received),
            ("tcp_keepalive_timeouts_total".into(), s.tcp_keepalive_timeouts),
            ("tcp_abort_on_data_total".into(), s.tcp_abort_on_data),
            ("tcp_bbr_pipe_full_total".into(), s.tcp_bbr_pipe_full),
            ("tcp_bbr_probe_rtt_total".into(), s.tcp_bbr_probe_rtts),
            ("tcp_bbr_policers_total".into(), s.tcp_bbr_policers),
            ("tcp_established_total".into(), s.tcp_established),
            ("tx_payload_bytes_total".into(), s.tx_payload_bytes),
            ("stack_tx_link_full_total".into(), s.tx_link_full),
            ("stack_tx_no_frame_total".into(), s.tx_no_frame),
            ("stack_tx_frames_total".into(), s.tx_frames),
            ("stack_rx_frames_total".into(), s.rx_frames),
            ("tcp_bad_checksum_total".into(), s.tcp_bad_checksum),
            ("rx_multi_buffer_joined_total".into(), self.rx.stats.joined),
            ("rx_multi_buffer_joined_bytes_total".into(), self.rx.stats.joined_bytes),
            ("rx_multi_buffer_too_long_dropped_total".into(), self.rx.stats.too_long),
            ("rx_multi_buffer_no_frame_dropped_total".into(), self.rx.stats.no_frame),
            ("head_frame_waits_total".into(), self.sink.head_frame_waits),
            ("pool_frames_free".into(), u64::from(ps.frames_free)),
            ("pool_blocks_free".into(), u64::from(ps.blocks_free)),
            // What is left once every connection has gone: a soak checks these return
            // to zero and the pool counts above to their starting values.
            ("tcp_connections".into(), self.stack.connection_count() as u64),
            ("tcp_time_wait_entries".into(), self.stack.time_wait_count() as u64),
            ("tcp_half_open".into(), self.stack.half_open_count() as u64),
            ("tcp_fin_wait2_entries".into(), self.stack.fin_wait2_count() as u64),
            ("cache_blocks_cached".into(), u64::from(self.blocks.cache().stats().cached)),
            // An info series: 1 per worker running the controller (the sum: the workers).
            (format!("tcp_congestion_control{{algorithm=\"{}\"}}", self.stack.config().tcp.congestion.name()), 1),
        ];
        self.blocks.counters(&mut m.extra);
        // Every other stack counter under its own name (`_total` unless it is a maximum),
        // so what the stack counts reaches the operator without a list to keep in step.
        let listed: std::collections::HashSet<String> = m.extra.iter().map(|(k, _)| k.clone()).collect();
        s.each(|name, _, value, is_max| {
            let key = if is_max { name.to_owned() } else { format!("{name}_total") };
            if !EXPORTED_AS_STACK.contains(&name) && !listed.contains(&key) {
                m.extra.push((key, value));
            }
        });
        m.extra.extend(self.root.counters().lines());
        census(&self.stack.census(), &mut m.extra);
        m
    }
}

/// Stack counters exported above under `stack_` names (kept for the dashboards and tests
/// that read them), so [`Core::metrics`] does not export them twice.
const EXPORTED_AS_STACK: [&str; 4] = ["tx_link_full", "tx_no_frame", "tx_frames", "rx_frames"];

/// The stack's connection table by state and by what holds each connection (a walk of the
/// table, made when the counters are published, not every turn).
fn census(c: &stack::Census, out: &mut Vec<(String, u64)>) {
    for (state, n) in stack::Census::STATES.iter().zip(c.by_state) {
        out.push((format!("tcp_connections_by_state{{state=\"{state:?}\"}}"), n as u64));
    }
    out.extend([
        ("tcp_connections_unaccepted".into(), c.unaccepted as u64),
        ("tcp_connections_owned".into(), c.owned as u64),
        ("tcp_connections_orphans".into(), c.orphans as u64),
        ("tcp_connections_holding_memory".into(), c.holding_memory as u64),
        ("tcp_connections_stuck".into(), c.stuck as u64),
    ]);
}
