//! What `pingpong` and `msgrate` share: the endpoint options, the startup report, the
//! counters printed at exit, and the kernel-socket peer (the baseline they are measured
//! against, speaking the same message header). `msgrate` includes this file by path so
//! the two cannot drift apart.

use std::io::ErrorKind;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use datapath_msg::wire::{MsgHdr, KIND_DATA, MSG_HDR_LEN};
use datapath_msg::{Endpoint, EndpointConfig, PollMode};
use umem::HugePages;

/// How `recv_wait` waits.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Poll {
    /// Spin on the rings (one core busy; lowest latency).
    Busy,
    /// Spin for --spin-us, then sleep in poll(2).
    Adaptive,
    /// Sleep in poll(2) at once.
    Blocking,
}

/// Options of the AF_XDP message endpoint.
#[derive(Args, Debug, Clone)]
pub struct EpArgs {
    /// Interface to bind (e.g. a veth end inside a namespace).
    #[arg(long)]
    pub iface: Option<String>,
    /// Our address and UDP port (the flow steered into the endpoint, or the kernel
    /// socket's bind address).
    #[arg(long)]
    pub local: SocketAddrV4,
    /// Rx queue to bind.
    #[arg(long, default_value_t = 0)]
    pub queue: u32,
    /// Frames (4 KiB) in the endpoint's pool.
    #[arg(long, default_value_t = 8192)]
    pub frames: u32,
    /// 2 MiB hugepages for the pool: prefer (fall back with a warning), require, off.
    #[arg(long, default_value = "prefer", value_parser = ["prefer", "require", "off"])]
    pub hugepages: String,
    /// Largest message in bytes; larger ones are refused with an error.
    #[arg(long, default_value_t = 256 * 1024)]
    pub max_msg: usize,
    /// Acknowledge and retransmit (selective ACK over UDP); both ends must say so.
    #[arg(long)]
    pub reliable: bool,
    /// Reliability window in datagrams (power of two, at most 1024).
    #[arg(long, default_value_t = 512)]
    pub window: u32,
    /// How to wait for messages.
    #[arg(long, value_enum, default_value_t = Poll::Busy)]
    pub poll: Poll,
    /// Microseconds to spin before sleeping with --poll adaptive.
    #[arg(long, default_value_t = 50)]
    pub spin_us: u64,
    /// Minimum retransmission timeout in microseconds.
    #[arg(long, default_value_t = 500)]
    pub rto_min_us: u64,
    /// Entries of each AF_XDP ring.
    #[arg(long, default_value_t = 2048)]
    pub ring: u32,
    /// Send UDP checksum 0 instead of computing it (IPv4 allows it).
    #[arg(long)]
    pub no_checksum: bool,
    /// Do not verify received UDP checksums (e.g. a kernel sender on the same host over a
    /// veth with TX checksum offload on, which leaves them unfinished).
    #[arg(long)]
    pub no_verify_checksum: bool,
    /// Retransmissions of a reliable datagram before its peer is given up on.
    #[arg(long, default_value_t = 30)]
    pub max_retries: u32,
}

impl EpArgs {
    /// Binds the endpoint and prints what it got. A server or receiver (`accept_unknown`)
    /// takes messages from senders it was never told about; a client only from its peer.
    pub fn bind(&self, prog: &str, accept_unknown: bool) -> Result<Endpoint> {
        let iface =
            self.iface.as_deref().context("--iface is needed for the AF_XDP endpoint (or pass --kernel MODE)")?;
        let mut cfg = EndpointConfig::new(iface, self.local);
        cfg.queue = self.queue;
        cfg.frames = self.frames;
        cfg.hugepages = match self.hugepages.as_str() {
            "require" => HugePages::Require,
            "off" => HugePages::Off,
            _ => HugePages::Prefer,
        };
        cfg.max_msg = self.max_msg;
        cfg.reliable = self.reliable;
        cfg.window = self.window;
        cfg.rto_min = Duration::from_micros(self.rto_min_us);
        cfg.poll = match self.poll {
            Poll::Busy => PollMode::Busy,
            Poll::Adaptive => PollMode::Adaptive { spin: Duration::from_micros(self.spin_us) },
            Poll::Blocking => PollMode::Blocking,
        };
        cfg.udp_checksum = !self.no_checksum;
        cfg.verify_checksum = !self.no_verify_checksum;
        cfg.max_retries = self.max_retries;
        cfg.accept_unknown_peers = accept_unknown;
        cfg.ring_size = self.ring;
        let ep = Endpoint::bind(&cfg)?;
        let s = ep.socket();
        println!("{prog} AF_XDP endpoint {} via {} queue {}", self.local, iface, self.queue);
        if let Some(m) = ep.attach_mode() {
            println!("  XDP attach      {m}");
        }
        println!("  AF_XDP bind     {}", s.mode());
        println!("  multi-buffer    {}", if s.multi_buffer() { "yes" } else { "no" });
        println!(
            "  datagram        {} B of message per datagram, max message {} B",
            ep.datagram_payload(),
            ep.max_msg()
        );
        println!(
            "  reliability     {}",
            if self.reliable { format!("on, window {} datagrams", self.window) } else { "off".into() }
        );
        println!("  poll            {:?}", self.poll);
        println!(
            "  peers           {}",
            if accept_unknown { "learned from their first datagram" } else { "added only (unknown sources dropped)" }
        );
        println!(
            "  pool            {} frames on {}{}",
            self.frames,
            ep.pool().backing(),
            if ep.pool().locked() { ", locked" } else { "" }
        );
        Ok(ep)
    }
}

/// Prints the endpoint's counters (one block, for logs and tests).
#[allow(dead_code)] // msgrate includes this file and prints through `stats_text`
pub fn print_stats(prog: &str, ep: &Endpoint) {
    print!("{}", stats_text(prog, ep));
}

/// The endpoint's counters as [`print_stats`] prints them.
pub fn stats_text(prog: &str, ep: &Endpoint) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let m = ep.stats();
    let s = ep.socket().stats();
    let ps = ep.pool().stats();
    let _ = writeln!(out, "{prog}: endpoint counters");
    let _ = writeln!(
        out,
        "  messages        sent {} received {} ({} / {} bytes)",
        m.msgs_sent, m.msgs_recv, m.bytes_sent, m.bytes_recv
    );
    let _ = writeln!(
        out,
        "  datagrams       sent {} received {} retransmitted {} (fast {}, timeouts {})",
        m.dgrams_sent, m.dgrams_recv, m.retransmits, m.fast_retransmits, m.timeouts
    );
    let _ =
        writeln!(out, "  acks            sent {} received {} deferred {}", m.acks_sent, m.acks_recv, m.acks_deferred);
    let _ = writeln!(out, "  back-pressure   send full {} alloc empty {}", m.send_full, m.alloc_empty);
    let _ = writeln!(
        out,
        "  dropped         duplicate {} out-of-window {} unknown peer {} not ours {} bad header {} ip fragments {} expired partial {} evicted {}",
        m.dup_dgrams, m.out_of_window, m.unknown_peer_drops, m.not_ours, m.bad_header, m.ip_fragments, m.reasm_expired, m.reasm_evicted
    );
    let _ = writeln!(
        out,
        "  refused         bad checksum {} bad acks {} other mode {} held expired {} icmp {}",
        m.bad_checksum, m.bad_acks, m.mode_mismatch, m.held_expired, m.icmp
    );
    let _ = writeln!(out, "  peers           evicted {} lost {}", m.peers_evicted, m.peers_lost);
    let _ = writeln!(out, "  copied          {} bytes (copy_to_vec)", m.copied_bytes);
    let _ = writeln!(
        out,
        "  kernel          rx_dropped {} rx_ring_full {} fill_empty {} invalid rx/tx {}/{}",
        s.rx_dropped, s.rx_ring_full, s.rx_fill_ring_empty, s.rx_invalid_descs, s.tx_invalid_descs
    );
    let _ = writeln!(
        out,
        "  socket          queue {} rx {} tx {} completed {}",
        ep.queue(),
        s.rx_descs,
        s.tx_descs,
        s.tx_completed
    );
    let _ = writeln!(out, "  pool            {} of {} frames free", ps.frames_free, ps.frames);
    out
}

/// How a kernel-socket peer receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KernelMode {
    /// Blocking recv.
    Block,
    /// Blocking recv with SO_BUSY_POLL = 50 us.
    BusyPoll,
    /// Non-blocking recv in a spin loop.
    Spin,
}

/// A kernel UDP socket set up for `mode`.
pub fn kernel_socket(local: SocketAddrV4, mode: KernelMode) -> Result<UdpSocket> {
    let sock = UdpSocket::bind(local).with_context(|| format!("binding a kernel UDP socket to {local}"))?;
    match mode {
        KernelMode::Block => {}
        KernelMode::BusyPoll => {
            datapath_msg::set_busy_poll(&sock, 50).context("setsockopt(SO_BUSY_POLL, 50) (needs CAP_NET_ADMIN)")?
        }
        KernelMode::Spin => sock.set_nonblocking(true)?,
    }
    Ok(sock)
}

/// Receives one datagram within `timeout` (spinning in `Spin` mode); `None` on timeout.
pub fn kernel_recv(
    sock: &UdpSocket,
    mode: KernelMode,
    buf: &mut [u8],
    timeout: Duration,
) -> Result<Option<(usize, SocketAddr)>> {
    if mode != KernelMode::Spin {
        sock.set_read_timeout(Some(timeout.max(Duration::from_micros(1))))?;
        return match sock.recv_from(buf) {
            Ok(r) => Ok(Some(r)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                Ok(None)
            }
            Err(e) => Err(e).context("recv_from"),
        };
    }
    let end = Instant::now() + timeout;
    loop {
        match sock.recv_from(buf) {
            Ok(r) => return Ok(Some(r)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() >= end {
                    return Ok(None);
                }
                std::hint::spin_loop();
            }
            Err(e) => return Err(e).context("recv_from"),
        }
    }
}

/// Writes the message header of a one-datagram message `id` of `len` bytes in front of
/// its payload, as the endpoint would: a kernel peer speaks the same format.
pub fn kernel_frame(buf: &mut [u8], id: u32, len: usize) {
    MsgHdr { kind: KIND_DATA, msg_id: id, frags: 1, msg_len: len as u32, ..MsgHdr::default() }
        .emit(&mut buf[..MSG_HDR_LEN]);
}
