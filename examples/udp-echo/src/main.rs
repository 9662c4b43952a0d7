//! `udp-echo`: answers UDP datagrams sent to ADDR:PORT through AF_XDP. Each reply is the
//! received frame itself with its Ethernet, IP and UDP addresses swapped (which leaves
//! every checksum valid), sent back from the same frame: no byte of payload is copied.
//!
//! Everything not sent to ADDR:PORT (ARP, ICMP, other ports) stays with the kernel.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use datapath::csum::Checksum;
use datapath::{
    AttachPolicy, BindPolicy, BusyPoll, Interface, Proto, RxFrame, Shutdown, SteerProgram, XskConfig, XskSocket,
};
use umem::{BufSlice, HugePages, Pool, PoolConfig};

/// Answer UDP datagrams through AF_XDP, in place in the received frame.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Interface to attach to (e.g. a veth end inside the server namespace).
    #[arg(long)]
    iface: String,
    /// Destination address to answer; 0.0.0.0 or :: answers every address.
    #[arg(long, default_value = "0.0.0.0")]
    addr: IpAddr,
    /// UDP port to answer.
    #[arg(long, default_value_t = 7777)]
    port: u16,
    /// Rx queue to bind.
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// Packet frames in the pool (4 KiB each).
    #[arg(long, default_value_t = 8192)]
    frames: u32,
    /// 2 MiB hugepages for the pool: `prefer` falls back to 4 KiB pages with a warning,
    /// `require` fails if none are reserved, `off` uses 4 KiB pages.
    #[arg(long, default_value = "prefer", value_parser = ["prefer", "require", "off"])]
    hugepages: String,
    /// Do not ask for multi-buffer (XDP_USE_SG): every packet must fit one frame.
    #[arg(long)]
    no_multi_buffer: bool,
    /// Bind mode: `auto` tries zero-copy and falls back to copy; `zero-copy` or `copy` force one.
    #[arg(long, default_value = "auto", value_parser = ["auto", "zero-copy", "copy"])]
    bind: String,
    /// Attach XDP in generic (skb) mode instead of native driver mode.
    #[arg(long)]
    skb: bool,
    /// Spin on the rings instead of sleeping in poll(2) when idle (lowest latency, one core busy).
    #[arg(long)]
    busy: bool,
    /// Stop after this many seconds (0: run until SIGINT/SIGTERM).
    #[arg(long, default_value_t = 0)]
    duration: u64,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("udp-echo: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    datapath::caps::require_datapath()?;
    let iface = Interface::by_name(&args.iface)?;
    let pool = Pool::new(&PoolConfig {
        frames: args.frames,
        hugepages: match args.hugepages.as_str() {
            "require" => HugePages::Require,
            "off" => HugePages::Off,
            _ => HugePages::Prefer,
        },
        ..PoolConfig::default()
    })
    .context("creating the frame pool")?;
    let cfg = XskConfig {
        queue: args.queue,
        bind: match args.bind.as_str() {
            "zero-copy" => BindPolicy::ZeroCopy,
            "copy" => BindPolicy::Copy,
            _ => BindPolicy::PreferZeroCopy,
        },
        busy_poll: args.busy.then_some(BusyPoll { usecs: 20, budget: 64 }),
        multi_buffer: !args.no_multi_buffer,
        ..XskConfig::default()
    };
    // The socket first: a queue that is already taken is reported as such, before the
    // attach would find the other owner's program.
    let mut sock = XskSocket::open(&pool, &iface, &cfg)?;
    let policy = if args.skb { AttachPolicy::Skb } else { AttachPolicy::PreferDriver };
    let mut program = SteerProgram::attach(&iface, policy)?;
    program.register(args.queue, &sock)?;
    program.steer(Proto::Udp, args.addr, args.port)?;
    let shutdown = Shutdown::install()?;

    println!("udp-echo on {}:{} via {} queue {}", args.addr, args.port, iface.name, args.queue);
    println!("  XDP attach      {}", program.mode());
    println!("  AF_XDP bind     {}", sock.mode());
    println!("  multi-buffer    {}", if sock.multi_buffer() { "yes" } else { "no" });
    println!(
        "  pool            {} frames on {}{}",
        args.frames,
        pool.backing(),
        if pool.locked() { ", locked" } else { "" }
    );
    println!("ready");

    let deadline = (args.duration > 0).then(|| Instant::now() + Duration::from_secs(args.duration));
    let mut echo = Echo::default();
    let mut rx = Vec::with_capacity(64);
    let mut idle = 0u32;
    while !shutdown.requested() && deadline.is_none_or(|d| Instant::now() < d) {
        rx.clear();
        let n = sock.recv(&mut rx, 64);
        if n > 0 {
            idle = 0;
            echo.handle(&mut sock, &mut rx);
        } else {
            idle += 1;
        }
        sock.poll();
        if n == 0 && !args.busy && idle > 256 && sock.tx_in_flight() == 0 {
            sock.wait(Duration::from_millis(100));
        }
    }

    let s = sock.stats();
    let p = program.counters()?;
    let ps = pool.stats();
    println!("udp-echo: stopping");
    println!("  echoed          {} datagrams, {} bytes", echo.echoed, echo.bytes);
    println!("  dropped (ours)  {} not UDP to us, {} TX ring full", echo.not_ours, echo.tx_full);
    println!(
        "  socket          rx {} tx {} completed {} wakeups {}",
        s.rx_descs, s.tx_descs, s.tx_completed, s.tx_wakeups
    );
    println!(
        "  kernel          rx_dropped {} rx_ring_full {} fill_empty {} invalid rx/tx {}/{}",
        s.rx_dropped, s.rx_ring_full, s.rx_fill_ring_empty, s.rx_invalid_descs, s.tx_invalid_descs
    );
    println!(
        "  xdp program     seen {} redirected {} passed {} malformed {} no_socket {}",
        p.seen, p.redirected, p.passed, p.malformed, p.no_socket
    );
    println!(
        "  pool            {} of {} frames free, {} leased to the kernel",
        ps.frames_free,
        ps.frames,
        ps.write_leases + ps.read_leases
    );
    Ok(())
}

/// The echo logic: header rewrite in place, then the same frame back out.
#[derive(Default)]
struct Echo {
    echoed: u64,
    bytes: u64,
    not_ours: u64,
    tx_full: u64,
    /// Fragments of a multi-buffer packet being gathered.
    frags: Vec<BufSlice>,
}

impl Echo {
    fn handle(&mut self, sock: &mut XskSocket, rx: &mut Vec<RxFrame>) {
        let mut batch = sock.tx_batch(rx.len() as u32);
        for frame in rx.drain(..) {
            self.frags.push(frame.data);
            if frame.more {
                continue;
            }
            let ok = self
                .frags
                .first_mut()
                .and_then(|f| f.get_mut())
                .and_then(swap_udp)
                .is_some_and(|l4| fix_udp_checksum(&mut self.frags, l4));
            if !ok {
                self.not_ours += 1;
            } else if batch.push(&self.frags).is_ok() {
                self.echoed += 1;
                self.bytes += self.frags.iter().map(|f| f.len() as u64).sum::<u64>();
            } else {
                self.tx_full += 1;
            }
            // Our references go; the TX ring's keep the frames until completion.
            self.frags.clear();
        }
        batch.commit();
    }
}

/// Swaps source and destination of the Ethernet, IPv4/IPv6 and UDP headers and returns
/// the UDP header's offset; `None` for anything but UDP. Swapping keeps the IPv4 header
/// checksum valid.
fn swap_udp(pkt: &mut [u8]) -> Option<usize> {
    if pkt.len() < 14 {
        return None;
    }
    let (l3, l4) = match u16::from_be_bytes([pkt[12], pkt[13]]) {
        0x0800 => {
            if pkt.len() < 34 || pkt[14] >> 4 != 4 || pkt[23] != 17 {
                return None;
            }
            let ihl = usize::from(pkt[14] & 0x0f) * 4;
            swap_ranges(pkt, 26, 30, 4);
            (14, 14 + ihl)
        }
        0x86dd => {
            if pkt.len() < 54 || pkt[20] != 17 {
                return None;
            }
            swap_ranges(pkt, 22, 38, 16);
            (14, 54)
        }
        _ => return None,
    };
    let _ = l3;
    if pkt.len() < l4 + 8 {
        return None;
    }
    swap_ranges(pkt, 0, 6, 6);
    swap_ranges(pkt, l4, l4 + 2, 2);
    Some(l4)
}

/// Recomputes the UDP checksum over the pseudo-header and every fragment. A sender on the
/// same host (veth) hands over a partial checksum it expects the device to finish, so the
/// received value cannot be reused. Reads the payload; copies nothing.
fn fix_udp_checksum(frags: &mut [BufSlice], l4: usize) -> bool {
    let total: usize = frags.iter().map(BufSlice::len).sum();
    let Some(first) = frags.first_mut().and_then(|f| f.get_mut()) else { return false };
    // The UDP length, not the frame's: a frame may carry Ethernet padding behind it.
    let udp_len = usize::from(u16::from_be_bytes([first[l4 + 4], first[l4 + 5]]));
    if udp_len < 8 || l4 + udp_len > total {
        return false;
    }
    let mut c = Checksum::new();
    if first[12..14] == [0x08, 0x00] {
        c.add(&first[26..34]);
    } else {
        c.add(&first[22..54]);
    }
    c.add_u16(17);
    c.add_u16(udp_len as u16);
    first[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
    let mut left = udp_len;
    let take = left.min(first.len() - l4);
    c.add(&first[l4..l4 + take]);
    left -= take;
    for f in &frags[1..] {
        let take = left.min(f.len());
        c.add(&f.as_bytes()[..take]);
        left -= take;
    }
    let sum = match c.finish() {
        0 => 0xffff,
        s => s,
    };
    if let Some(first) = frags[0].get_mut() {
        first[l4 + 6..l4 + 8].copy_from_slice(&sum.to_be_bytes());
    }
    true
}

fn swap_ranges(pkt: &mut [u8], a: usize, b: usize, len: usize) {
    for i in 0..len {
        pkt.swap(a + i, b + i);
    }
}

#[cfg(test)]
mod tests {
    use super::swap_udp;

    #[test]
    fn swaps_ipv4_udp_headers() {
        let mut p = vec![0u8; 42 + 5];
        p[0..6].copy_from_slice(&[1; 6]);
        p[6..12].copy_from_slice(&[2; 6]);
        p[12..14].copy_from_slice(&[0x08, 0x00]);
        p[14] = 0x45;
        p[23] = 17;
        p[26..30].copy_from_slice(&[10, 0, 0, 1]);
        p[30..34].copy_from_slice(&[10, 0, 0, 2]);
        p[34..36].copy_from_slice(&1000u16.to_be_bytes());
        p[36..38].copy_from_slice(&7777u16.to_be_bytes());
        p[42..].copy_from_slice(b"hello");
        assert_eq!(swap_udp(&mut p), Some(34));
        assert_eq!(&p[0..6], &[2; 6]);
        assert_eq!(&p[6..12], &[1; 6]);
        assert_eq!(&p[26..30], &[10, 0, 0, 2]);
        assert_eq!(&p[30..34], &[10, 0, 0, 1]);
        assert_eq!(&p[34..36], &7777u16.to_be_bytes());
        assert_eq!(&p[36..38], &1000u16.to_be_bytes());
        assert_eq!(&p[42..], b"hello");
    }

    #[test]
    fn refuses_tcp_and_truncated() {
        let mut p = vec![0u8; 60];
        p[12..14].copy_from_slice(&[0x08, 0x00]);
        p[14] = 0x45;
        p[23] = 6;
        assert_eq!(swap_udp(&mut p), None);
        assert_eq!(swap_udp(&mut p[..20]), None);
    }
}
