//! `txceil`: the most any AF_XDP sender can do on this interface from one core. It builds
//! a few UDP packets once (valid headers and checksums), then keeps the TX ring full of
//! descriptors pointing at them, kicking the kernel once per batch and reaping
//! completions, and reports packets and bits per second. Nothing is built or copied per
//! packet in user space, so the figure is the kernel's transmit path (in copy mode: an skb
//! built and the frame copied into it per packet) plus the ring work: the ceiling the file
//! server's TCP sender is measured against.
//!
//! Packets larger than a frame go as multi-buffer (a header frame and further frames
//! marked `XDP_PKT_CONTD`), as the file server sends jumbo segments.
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use datapath::{BindPolicy, Interface, XskConfig, XskSocket};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket,
    UdpRepr,
};
use umem::{BufSlice, HugePages, Pool, PoolConfig};

/// Measure the AF_XDP transmit ceiling of an interface from one core.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Interface to send on.
    #[arg(long)]
    iface: String,
    /// Queue to bind.
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// Source IPv4 address.
    #[arg(long)]
    src: Ipv4Addr,
    /// Destination IPv4 address (on the link).
    #[arg(long)]
    dst: Ipv4Addr,
    /// Destination MAC (the peer's), e.g. 02:00:00:00:00:02.
    #[arg(long)]
    dst_mac: String,
    /// Destination UDP port.
    #[arg(long, default_value_t = 9)]
    port: u16,
    /// IP packet size in bytes (the MTU-sized packets a bulk sender sends); larger than
    /// a frame means multi-buffer.
    #[arg(long, default_value_t = 1500)]
    size: usize,
    /// Seconds to send for.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Descriptors per batch (one `sendto` each in copy mode).
    #[arg(long, default_value_t = 64)]
    batch: u32,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("txceil: error: {e:#}");
        std::process::exit(1);
    }
}

/// One UDP packet of `size` IP bytes from `src` to `dst`, as the bytes of an Ethernet frame.
fn packet(args: &Args, src_mac: EthernetAddress, dst_mac: EthernetAddress, id: u16) -> Vec<u8> {
    let payload_len = args.size - 20 - 8;
    let payload: Vec<u8> = (0..payload_len).map(|i| (i as u16 ^ id) as u8).collect();
    let udp = UdpRepr { src_port: 40000 + id, dst_port: args.port };
    let ip = Ipv4Repr {
        src_addr: args.src,
        dst_addr: args.dst,
        next_header: IpProtocol::Udp,
        payload_len: 8 + payload_len,
        hop_limit: 64,
    };
    let eth = EthernetRepr { src_addr: src_mac, dst_addr: dst_mac, ethertype: EthernetProtocol::Ipv4 };
    let mut buf = vec![0u8; 14 + args.size];
    let caps = ChecksumCapabilities::default();
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let mut ipp = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut ipp, &caps);
    let mut u = UdpPacket::new_unchecked(ipp.payload_mut());
    udp.emit(&mut u, &args.src.into(), &args.dst.into(), payload_len, |b| b.copy_from_slice(&payload), &caps);
    buf
}

fn run(args: Args) -> Result<()> {
    datapath::caps::require_datapath()?;
    if !(28 + 18..=65_000).contains(&args.size) {
        bail!("--size must be between 46 and 65000 bytes");
    }
    let iface = Interface::by_name(&args.iface)?;
    let pool = Pool::new(&PoolConfig { frames: 8192, hugepages: HugePages::Prefer, ..PoolConfig::default() })
        .context("creating the pool")?;
    let frame_size = pool.frame_size() as usize;
    let mut sock = XskSocket::open(
        &pool,
        &iface,
        &XskConfig { queue: args.queue, bind: BindPolicy::PreferZeroCopy, ..XskConfig::default() },
    )?;
    let frames_per_packet = (14 + args.size).div_ceil(frame_size);
    if frames_per_packet > 1 && !sock.multi_buffer() {
        bail!("{}-byte packets need multi-buffer, which this socket lacks", args.size);
    }
    let dst_mac = datapath::parse_mac(&args.dst_mac)
        .map(EthernetAddress)
        .with_context(|| format!("--dst-mac {:?} is not a MAC (aa:bb:cc:dd:ee:ff)", args.dst_mac))?;
    let src_mac = EthernetAddress(iface.mac()?);
    // A few distinct packets (different source ports), each cut into frame-sized pieces.
    let mut packets: Vec<Vec<BufSlice>> = Vec::new();
    for id in 0..16u16 {
        let bytes = packet(&args, src_mac, dst_mac, id);
        let mut frags = Vec::new();
        for chunk in bytes.chunks(frame_size) {
            let mut buf = pool.alloc_frame().context("the pool ran out of frames")?;
            buf.get_mut().context("a fresh frame is unique")?[..chunk.len()].copy_from_slice(chunk);
            frags.push(BufSlice::new(buf, 0..chunk.len()).context("frame slice")?);
        }
        packets.push(frags);
    }
    println!(
        "txceil: {} via {} queue {} ({} bind, multi-buffer {}), {}-byte IP packets = {} descriptor(s) each, batches of {}",
        args.dst,
        iface.name,
        args.queue,
        sock.mode(),
        if sock.multi_buffer() { "yes" } else { "no" },
        args.size,
        frames_per_packet,
        args.batch
    );
    let warmup = Duration::from_millis(500);
    let run_for = Duration::from_secs_f64(args.seconds);
    let start = Instant::now();
    let mut measured_from: Option<(Instant, u64)> = None;
    let mut next = 0usize;
    loop {
        let now = Instant::now();
        let done = sock.stats().tx_completed;
        if measured_from.is_none() && now.duration_since(start) >= warmup {
            measured_from = Some((now, done));
        }
        if let Some((t0, d0)) = measured_from {
            if now.duration_since(t0) >= run_for {
                let secs = now.duration_since(t0).as_secs_f64();
                let pkts = (done - d0) as f64 / frames_per_packet as f64;
                let pps = pkts / secs;
                let st = sock.stats();
                println!(
                    "RESULT packets_per_sec={pps:.0} frames_per_sec={:.0} gbit_per_sec={:.3} size={} descriptors_per_packet={} wakeups={} tx_ring_empty={}",
                    (done - d0) as f64 / secs,
                    pps * args.size as f64 * 8.0 / 1e9,
                    args.size,
                    frames_per_packet,
                    st.tx_wakeups,
                    st.tx_ring_empty
                );
                return Ok(());
            }
        }
        let room = sock.tx_free().min(args.batch);
        if room as usize >= frames_per_packet {
            let mut batch = sock.tx_batch(room);
            while batch.remaining() as usize >= frames_per_packet {
                if batch.push(&packets[next]).is_err() {
                    break;
                }
                next = (next + 1) % packets.len();
            }
            batch.commit();
        }
        sock.poll();
    }
}
