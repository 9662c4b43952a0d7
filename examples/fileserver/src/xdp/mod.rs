//! The AF_XDP backend: the steering program sends the server's TCP port to an AF_XDP
//! socket, the user-space stack runs TCP over it, and file blocks read by io_uring
//! `O_DIRECT` into the pool leave as TCP payload by reference: header frame + block range
//! per segment (multi-buffer). Nothing copies payload unless multi-buffer is missing, and
//! then `payload_bytes_copied` says how much.
//!
//! One thread runs everything, run-to-completion: RX batch -> stack -> HTTP -> block cache
//! (io_uring) -> stack -> TX batch -> completions, then sleeps in poll(2) only when idle.

mod core;
mod link;
mod peer;
mod rx;
mod sink;
#[cfg(test)]
mod tests;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use datapath::{AttachPolicy, BindPolicy, Interface, Proto, SteerProgram, XskConfig, XskSocket};
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};
use stack::{Stack, StackConfig};
use umem::{BlockCache, Pool};

pub use self::core::{Core, Turn, Work};
use self::link::{LinkState, XskLink};
use crate::metrics::Metrics;
use crate::options::{Limits, PoolOpts};
use crate::root::Root;
use crate::session::Clock;

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
    /// What to give up once set up (user, seccomp, dumpable).
    pub confine: crate::privdrop::Confine,
    pub limits: Limits,
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
    if opts.pool.direct_io {
        crate::blocks::align::check(&reader, crate::blocks::align::of_root(&root)).map_err(anyhow::Error::msg)?;
    }
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
    for line in crate::privdrop::confine(&opts.confine)? {
        println!("{line}");
    }
    println!("ready");
    crate::privdrop::forbidden_syscall_hook();

    let mut core = Core::new(stack, listener, cache, root, opts.limits.clone());
    let clock = Clock::start();
    let mut rx = Vec::with_capacity(64);
    let mut link = LinkState::for_socket(&sock);
    let mut idle = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let now = clock.now();
        rx.clear();
        let n = sock.recv(&mut rx, 64);
        for f in rx.drain(..) {
            core.receive_fragment(now.mono, f.data, f.more);
        }
        let turn = core.turn(now, &mut XskLink { sock: &mut sock, mtu: iface.mtu as usize, state: &mut link });
        sock.poll();
        if let Some(l) = &control {
            serve_control(l, &core, &sock, &link);
        }
        if dump.swap(false, Ordering::Relaxed) {
            print!("{}", render(&core, &sock, &link));
        }
        if n == 0 && turn.sent == 0 && turn.completed == 0 {
            idle += 1;
        } else {
            idle = 0;
        }
        if !opts.busy && idle > 512 && !core.blocks().reading() && sock.tx_in_flight() == 0 {
            // Sleep until a packet arrives or the next timer, at most 10 ms.
            // (smoltcp's `Instant - Instant` is an absolute difference: a past time means now.)
            let wait = core.poll_at().map_or(Duration::from_millis(10), |t| match t > now.mono {
                true => Duration::from_micros((t - now.mono).total_micros().min(10_000)),
                false => Duration::ZERO,
            });
            if !wait.is_zero() {
                sock.wait(wait);
            }
        }
    }
    println!("fileserver: stopping");
    print!("{}", render(&core, &sock, &link));
    Ok(())
}

/// The counters: the core's, with the AF_XDP socket's and its link's.
fn render(core: &Core, sock: &XskSocket, link: &LinkState) -> String {
    let mut m: Metrics = core.metrics();
    let xs = sock.stats();
    m.extra.extend([
        ("xsk_rx_dropped_total".into(), xs.rx_dropped),
        ("xsk_rx_ring_full_total".into(), xs.rx_ring_full),
        ("xsk_fill_ring_empty_total".into(), xs.rx_fill_ring_empty),
        ("xsk_tx_ring_full_total".into(), xs.tx_ring_full),
        ("xsk_tx_invalid_descs_total".into(), xs.tx_invalid_descs),
        ("xsk_tx_descs_total".into(), xs.tx_descs),
        ("xsk_tx_completed_total".into(), xs.tx_completed),
        ("xsk_tx_wakeups_total".into(), xs.tx_wakeups),
        ("xsk_tx_wakeup_errors_total".into(), xs.tx_wakeup_errors),
        ("xsk_tx_refused_total".into(), link.refused),
        ("xsk_tx_page_splits_total".into(), link.page_splits),
    ]);
    m.render("xdp")
}

/// Answers any connection on the control port with the counters, then closes it.
fn serve_control(l: &TcpListener, core: &Core, sock: &XskSocket, link: &LinkState) {
    while let Ok((mut s, _)) = l.accept() {
        let _ = s.set_nonblocking(false);
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut req = [0u8; 1024];
        let _ = s.read(&mut req);
        let body = render(core, sock, link);
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
