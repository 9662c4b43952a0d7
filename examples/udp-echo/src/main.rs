//! `udp-echo`: answers UDP datagrams sent to ADDR:PORT through AF_XDP. Each reply is the
//! received frame itself with its Ethernet, IP and UDP addresses swapped (which leaves
//! every checksum valid), sent back from the same frame: no byte of payload is copied.
//!
//! Everything not sent to ADDR:PORT (ARP, ICMP, other ports) stays with the kernel.
//!
//! Headers are read and written through the one wire layer: `datapath_msg::wire` (which
//! parses a packet whose headers are in its first buffer, as multi-buffer packets are)
//! over smoltcp's views and `stack::wire`'s checksum.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use datapath::{
    AttachPolicy, BindPolicy, BusyPoll, Interface, Proto, RxFrame, Shutdown, SteerProgram, XskConfig, XskSocket,
};
use datapath_msg::wire;
use smoltcp::wire::{EthernetFrame, Ipv4Packet, Ipv6Packet, UdpPacket};
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
            if !echo_in_place(&mut self.frags) {
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

/// Turns a received UDP packet (in one or several buffers) into its reply, in place:
/// addresses swapped, UDP checksum recomputed. `false` for anything but UDP.
fn echo_in_place(frags: &mut [BufSlice]) -> bool {
    let total: usize = frags.iter().map(BufSlice::len).sum();
    let Some(rx) = frags.first().and_then(|f| wire::parse_udp(f.as_bytes(), total).ok()) else { return false };
    let Some(first) = frags[0].get_mut() else { return false };
    swap_addresses(first, &rx);
    // A sender on the same host (veth) hands over a partial checksum it expects the
    // device to finish, so the received value cannot be reused: sum again (a read).
    let ck = rx.udp_off + 6;
    first[ck..ck + 2].fill(0);
    let sum = match wire::udp_sum(&rx, frags.iter().map(BufSlice::as_bytes)).finish() {
        0 => 0xffff,
        s => s,
    };
    let Some(first) = frags[0].get_mut() else { return false };
    UdpPacket::new_unchecked(&mut first[rx.udp_off..rx.udp_off + wire::UDP_LEN]).set_checksum(sum);
    true
}

/// Swaps source and destination of the Ethernet, IPv4/IPv6 and UDP headers that
/// `wire::parse_udp` found in `pkt`. Swapping keeps the IPv4 header checksum valid (the
/// sum does not depend on the order of its words); the UDP checksum is the caller's.
fn swap_addresses(pkt: &mut [u8], rx: &wire::RxUdp) {
    let mut eth = EthernetFrame::new_unchecked(&mut *pkt);
    let (src, dst) = (eth.src_addr(), eth.dst_addr());
    eth.set_src_addr(dst);
    eth.set_dst_addr(src);
    let l3 = &mut pkt[wire::ETH_LEN..rx.udp_off];
    match (rx.src, rx.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = Ipv4Packet::new_unchecked(l3);
            ip.set_src_addr(d);
            ip.set_dst_addr(s);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ip = Ipv6Packet::new_unchecked(l3);
            ip.set_src_addr(d);
            ip.set_dst_addr(s);
        }
        _ => {}
    }
    let mut udp = UdpPacket::new_unchecked(&mut pkt[rx.udp_off..rx.udp_off + wire::UDP_LEN]);
    udp.set_src_port(rx.dst_port);
    udp.set_dst_port(rx.src_port);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP/IPv4 frame as a kernel would send it, with a valid checksum.
    fn request(payload: &[u8]) -> Vec<u8> {
        let link = wire::Link {
            src_mac: [1; 6],
            dst_mac: [2; 6],
            src_ip: "10.0.0.1".parse().unwrap(),
            dst_ip: "10.0.0.2".parse().unwrap(),
            src_port: 1000,
            dst_port: 7777,
        };
        let mut f = vec![0u8; wire::UDP_OFF + wire::UDP_LEN];
        wire::emit_udp4(&mut f, &link, payload.len());
        let sum = wire::udp_checksum(&f, [payload]);
        f[wire::UDP_OFF + 6..wire::UDP_OFF + 8].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn slices(pool: &Pool, bytes: &[u8], cut: usize) -> Vec<BufSlice> {
        [&bytes[..cut], &bytes[cut..]]
            .iter()
            .filter(|b| !b.is_empty())
            .map(|b| {
                let mut f = pool.alloc_frame().unwrap();
                f.get_mut().unwrap()[..b.len()].copy_from_slice(b);
                BufSlice::new(f, 0..b.len()).unwrap()
            })
            .collect()
    }

    #[test]
    fn echoes_ipv4_udp_with_addresses_swapped_and_a_valid_checksum() {
        let pool =
            Pool::new(&PoolConfig { frames: 8, hugepages: HugePages::Off, lock: false, ..PoolConfig::default() })
                .unwrap();
        let req = request(b"hello, echo");
        // Whole, and split into two buffers (multi-buffer) behind the headers.
        for cut in [req.len(), wire::UDP_OFF + wire::UDP_LEN + 3] {
            let mut frags = slices(&pool, &req, cut);
            assert!(echo_in_place(&mut frags));
            let out: Vec<u8> = frags.iter().flat_map(|f| f.as_bytes().to_vec()).collect();
            let rx = wire::parse_udp(&out, out.len()).expect("the reply parses");
            assert_eq!(rx.src_mac, [2; 6]);
            assert_eq!(&out[..6], &[1; 6]);
            assert_eq!(rx.src, "10.0.0.2".parse::<IpAddr>().unwrap());
            assert_eq!(rx.dst, "10.0.0.1".parse::<IpAddr>().unwrap());
            assert_eq!((rx.src_port, rx.dst_port), (7777, 1000));
            assert!(wire::udp_verifies(&rx, [&out[..]]), "the reply's UDP checksum verifies");
            assert_eq!(&out[rx.payload_off()..], b"hello, echo");
        }
    }

    #[test]
    fn refuses_tcp_and_truncated() {
        let pool =
            Pool::new(&PoolConfig { frames: 8, hugepages: HugePages::Off, lock: false, ..PoolConfig::default() })
                .unwrap();
        let mut tcp = request(b"x");
        tcp[23] = 6;
        Ipv4Packet::new_unchecked(&mut tcp[14..34]).fill_checksum();
        assert!(!echo_in_place(&mut slices(&pool, &tcp, tcp.len())));
        let req = request(b"x");
        assert!(!echo_in_place(&mut slices(&pool, &req[..20], 20)));
    }
}
