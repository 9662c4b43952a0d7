//! `xtask internal impair`: a lossy, reordering wire in user space, for kernels without
//! `sch_netem` (this project's machine) and for AF_XDP senders, whose copy-mode transmit
//! skips the qdisc of their own veth anyway.
//!
//! It runs in the middle namespace of a [`crate::netns::Impaired`] and forwards every
//! frame between the middle's two veth ends with one `AF_PACKET` socket on each (pnet's
//! datalink channel: safe code, no `sockaddr_ll` built here), one thread per direction.
//! IPv4 frames are impaired, each independently, from a seeded stream: a share is
//! dropped, another share is held back and sent after the next frame of the same
//! direction (a reordering by one; a frame held for over 1 ms with nothing behind it is
//! sent late, not reordered). Everything else (ARP) passes untouched. A socket never sees
//! the frames it sends itself, and the middle's kernel sends nothing (no addresses, IPv6
//! off), so nothing loops.
//!
//! Bounded: it stops on SIGTERM/SIGINT or after `--seconds`, and then prints what it did
//! as one `RESULT` line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender, NetworkInterface};

use crate::client::Prng;

/// What one direction did.
#[derive(Debug, Default, Clone, Copy)]
pub struct DirStats {
    /// Frames received on the input end.
    pub frames: u64,
    /// IPv4 frames dropped on purpose.
    pub dropped: u64,
    /// Frames sent after the frame that followed them.
    pub reordered: u64,
    /// Held frames sent late because nothing followed within the hold time.
    pub delayed: u64,
    /// Sends the kernel refused (counted as extra loss, e.g. ENOBUFS).
    pub send_errors: u64,
}

/// How often, in parts per million.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    pub loss_ppm: u64,
    pub reorder_ppm: u64,
    pub seed: u64,
}

fn open(name: &str) -> Result<(Box<dyn DataLinkSender>, Box<dyn DataLinkReceiver>)> {
    let iface: NetworkInterface = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .with_context(|| format!("no interface {name} in this namespace"))?;
    // Our own socket, for a receive buffer large enough that bursts from the server are
    // not dropped by the forwarder itself (capped by net.core.rmem_max); pnet binds it.
    let sock = socket2::Socket::new(
        socket2::Domain::PACKET,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(i32::from(ETH_P_ALL.to_be()))),
    )
    .with_context(|| format!("AF_PACKET socket for {name} (needs CAP_NET_RAW)"))?;
    sock.set_recv_buffer_size(4 << 20).context("SO_RCVBUF")?;
    sock.set_send_buffer_size(4 << 20).context("SO_SNDBUF")?;
    let cfg = Config {
        socket_fd: Some(std::os::fd::IntoRawFd::into_raw_fd(sock)),
        read_timeout: Some(Duration::from_millis(1)),
        write_timeout: Some(Duration::from_secs(1)),
        read_buffer_size: 65536 + 64,
        write_buffer_size: 65536 + 64,
        promiscuous: true,
        ..Config::default()
    };
    match pnet_datalink::channel(&iface, cfg)
        .with_context(|| format!("AF_PACKET socket on {name} (needs CAP_NET_RAW)"))?
    {
        Channel::Ethernet(tx, rx) => Ok((tx, rx)),
        _ => bail!("{name}: not an Ethernet channel"),
    }
}

/// `ETH_P_ALL`: every protocol.
const ETH_P_ALL: u16 = 0x0003;

fn is_ipv4(frame: &[u8]) -> bool {
    frame.len() >= 34 && frame[12..14] == [0x08, 0x00]
}

fn send(tx: &mut dyn DataLinkSender, frame: &[u8], st: &mut DirStats) {
    match tx.send_to(frame, None) {
        Some(Ok(())) => {}
        _ => st.send_errors += 1,
    }
}

/// Forwards `rx` -> `tx` until `stop` or `deadline`.
fn forward(
    mut rx: Box<dyn DataLinkReceiver>,
    mut tx: Box<dyn DataLinkSender>,
    imp: Impairment,
    stop: &AtomicBool,
    deadline: Instant,
) -> Result<DirStats> {
    let mut st = DirStats::default();
    let mut rng = Prng::new(imp.seed);
    let mut held: Option<(Vec<u8>, Instant)> = None;
    let hold_max = Duration::from_millis(1);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match rx.next() {
            Ok(frame) => {
                st.frames += 1;
                let roll = rng.next_u64() % 1_000_000;
                if is_ipv4(frame) && roll < imp.loss_ppm {
                    st.dropped += 1;
                } else if is_ipv4(frame) && held.is_none() && roll < imp.loss_ppm + imp.reorder_ppm {
                    held = Some((frame.to_vec(), Instant::now()));
                } else {
                    send(tx.as_mut(), frame, &mut st);
                    if let Some((h, _)) = held.take() {
                        send(tx.as_mut(), &h, &mut st);
                        st.reordered += 1;
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e).context("receiving"),
        }
        if held.as_ref().is_some_and(|(_, t)| t.elapsed() >= hold_max) {
            if let Some((h, _)) = held.take() {
                send(tx.as_mut(), &h, &mut st);
                st.delayed += 1;
            }
        }
    }
    if let Some((h, _)) = held.take() {
        send(tx.as_mut(), &h, &mut st);
        st.delayed += 1;
    }
    Ok(st)
}

/// Runs the impairing forwarder between `a` (towards the server) and `b` (towards the
/// client); prints `ready` once both sockets are bound and a `RESULT` line at the end.
pub fn impair(a: &str, b: &str, loss_pct: f64, reorder_pct: f64, seed: u64, seconds: f64) -> Result<()> {
    let ppm = |pct: f64| -> Result<u64> {
        if !(0.0..=50.0).contains(&pct) {
            bail!("a percentage between 0 and 50 is expected, not {pct}");
        }
        Ok((pct * 10_000.0).round() as u64)
    };
    let imp = Impairment { loss_ppm: ppm(loss_pct)?, reorder_ppm: ppm(reorder_pct)?, seed };
    if !(seconds > 0.0 && seconds <= 3600.0) {
        bail!("--seconds must be in (0, 3600], not {seconds}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed)).context("installing the SIGTERM handler")?;
    }
    let (tx_a, rx_a) = open(a)?;
    let (tx_b, rx_b) = open(b)?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    println!(
        "impair: {a} <-> {b}, loss {loss_pct}%, reorder {reorder_pct}% each way, seed {seed}, at most {seconds} s"
    );
    println!("ready");
    let (s1, s2) = (stop.clone(), stop.clone());
    let to_client =
        std::thread::spawn(move || forward(rx_a, tx_b, Impairment { seed: imp.seed ^ 0xa11ce, ..imp }, &s1, deadline));
    let to_server =
        std::thread::spawn(move || forward(rx_b, tx_a, Impairment { seed: imp.seed ^ 0xb0b, ..imp }, &s2, deadline));
    let c = to_client.join().map_err(|_| anyhow::anyhow!("the forwarding thread panicked"))??;
    let s = to_server.join().map_err(|_| anyhow::anyhow!("the forwarding thread panicked"))??;
    let _ = stop;
    println!(
        "RESULT to_client_frames={} to_client_dropped={} to_client_reordered={} to_client_delayed={} to_client_send_errors={} \
         to_server_frames={} to_server_dropped={} to_server_reordered={} to_server_delayed={} to_server_send_errors={}",
        c.frames, c.dropped, c.reordered, c.delayed, c.send_errors, s.frames, s.dropped, s.reordered, s.delayed, s.send_errors
    );
    Ok(())
}
