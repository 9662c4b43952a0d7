//! `xtask internal impair`: a lossy, reordering, delaying, rate-limited wire in user space,
//! for kernels without `sch_netem` (this project's machine) and for AF_XDP senders, whose
//! copy-mode transmit skips the qdisc of their own veth anyway.
//!
//! It runs in the middle namespace of a [`crate::netns::Impaired`] and forwards every
//! frame between the middle's two veth ends with one `AF_PACKET` socket on each (pnet's
//! datalink channel: safe code, no `sockaddr_ll` built here), one thread per direction.
//! IPv4 and IPv6 frames go through a [`Wire`] per direction, from a seeded stream:
//!
//! - **loss**: independent, or bursty (Gilbert-Elliott: a good state that loses nothing
//!   and a bad state that loses everything, with mean burst length `--burst-len`);
//! - **reordering**: a share is held back and sent after the next frame of the same
//!   direction (a reordering by one);
//! - **delay** and **jitter**: each frame leaves `delay + U(0, jitter)` after it arrived,
//!   never before the frame ahead of it (jitter delays, it does not reorder);
//! - **rate**: a bottleneck of `--rate-mbit` with a drop-tail queue of `--queue-kb`, like a
//!   router's; frames that find the queue full are dropped and counted apart.
//!
//! Everything else (ARP) passes untouched and undelayed. A socket never sees the frames it
//! sends itself, and the middle's kernel sends nothing (no addresses, IPv6 off), so nothing
//! loops.
//!
//! Bounded: it stops on SIGTERM/SIGINT or after `--seconds`, and then prints what it did
//! as one `RESULT` line.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender, NetworkInterface};

use crate::client::Prng;

/// What one direction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DirStats {
    /// Frames received on the input end.
    pub frames: u64,
    /// IP frames dropped on purpose (the loss model).
    pub dropped: u64,
    /// IP bytes dropped on purpose (the loss model and the full queue).
    pub dropped_bytes: u64,
    /// Frames dropped because the bottleneck queue was full.
    pub queue_dropped: u64,
    /// Frames sent after the frame that followed them.
    pub reordered: u64,
    /// Held frames sent late because nothing followed within the hold time.
    pub delayed: u64,
    /// Sends the kernel refused (counted as extra loss, e.g. ENOBUFS).
    pub send_errors: u64,
}

/// The path's properties, per direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Mean loss, parts per million.
    pub loss_ppm: u64,
    /// Mean length of a loss burst, in frames (1: independent losses).
    pub burst_len: f64,
    /// Frames reordered, parts per million.
    pub reorder_ppm: u64,
    /// One-way delay.
    pub delay: Duration,
    /// Extra delay, uniform in [0, jitter).
    pub jitter: Duration,
    /// Bottleneck rate in bits per second (`None`: the forwarder's own speed).
    pub rate_bps: Option<u64>,
    /// Bottleneck queue in bytes (drop-tail).
    pub queue_bytes: u64,
    /// Seed of the random stream.
    pub seed: u64,
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment {
            loss_ppm: 0,
            burst_len: 1.0,
            reorder_ppm: 0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate_bps: None,
            queue_bytes: 1 << 20,
            seed: 1,
        }
    }
}

/// What happens to one IP frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Lost by the loss model.
    Lost,
    /// Dropped at the full bottleneck queue.
    QueueFull,
    /// Leaves at this time.
    Leave(Instant),
    /// Leaves at this time, after the frame that arrives next (reordered by one).
    LeaveAfterNext(Instant),
}

/// One direction's wire as a deterministic function of arrivals: no I/O, time passed in.
#[derive(Debug)]
pub struct Wire {
    imp: Impairment,
    rng: Prng,
    /// Gilbert-Elliott state: in a loss burst.
    bad: bool,
    /// Probability (ppm) of entering / leaving the bad state per frame.
    p_enter: u64,
    p_leave: u64,
    /// When the last frame leaves the bottleneck.
    last_serial: Option<Instant>,
    /// When the last frame leaves the wire (frames never pass each other).
    last_leave: Option<Instant>,
    /// Bytes of frames accepted whose departure from the bottleneck is still ahead, with
    /// those departures (oldest first), to know the queue's occupancy.
    queued: VecDeque<(Instant, u64)>,
    queued_bytes: u64,
}

impl Wire {
    /// A wire with these properties.
    pub fn new(imp: Impairment) -> Wire {
        // Mean loss l and mean burst b: leave the bad state with 1/b per frame; enter it
        // with p = l / (b (1 - l)), so the bad state's share of frames is l.
        let l = imp.loss_ppm as f64 / 1e6;
        let b = imp.burst_len.max(1.0);
        let p_leave = (1e6 / b).round() as u64;
        let p_enter = if l >= 1.0 { 1_000_000 } else { (1e6 * l / (b * (1.0 - l))).round() as u64 };
        Wire {
            imp,
            rng: Prng::new(imp.seed),
            bad: false,
            p_enter,
            p_leave,
            last_serial: None,
            last_leave: None,
            queued: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    fn roll(&mut self) -> u64 {
        self.rng.next_u64() % 1_000_000
    }

    /// The fate of an IP frame of `len` bytes arriving at `now`.
    pub fn offer(&mut self, now: Instant, len: usize) -> Fate {
        let lost = if self.imp.burst_len <= 1.0 {
            self.roll() < self.imp.loss_ppm
        } else {
            let r = self.roll();
            self.bad = if self.bad { r >= self.p_leave } else { r < self.p_enter };
            self.bad
        };
        if lost {
            return Fate::Lost;
        }
        let mut leave = now;
        if let Some(bps) = self.imp.rate_bps {
            while let Some(&(t, b)) = self.queued.front() {
                if t > now {
                    break;
                }
                self.queued.pop_front();
                self.queued_bytes -= b;
            }
            if self.queued_bytes + len as u64 > self.imp.queue_bytes {
                return Fate::QueueFull;
            }
            let start = self.last_serial.map_or(now, |t| t.max(now));
            let serialize = Duration::from_nanos((len as u64 * 8).saturating_mul(1_000_000_000) / bps.max(1));
            leave = start + serialize;
            self.last_serial = Some(leave);
            self.queued.push_back((leave, len as u64));
            self.queued_bytes += len as u64;
        }
        leave += self.imp.delay;
        if !self.imp.jitter.is_zero() {
            let j = self.rng.next_u64() % (self.imp.jitter.as_nanos() as u64).max(1);
            leave += Duration::from_nanos(j);
        }
        if let Some(prev) = self.last_leave {
            leave = leave.max(prev);
        }
        self.last_leave = Some(leave);
        if self.roll() < self.imp.reorder_ppm {
            Fate::LeaveAfterNext(leave)
        } else {
            Fate::Leave(leave)
        }
    }
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
    sock.set_recv_buffer_size(8 << 20).context("SO_RCVBUF")?;
    sock.set_send_buffer_size(8 << 20).context("SO_SNDBUF")?;
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

fn is_ip(frame: &[u8]) -> bool {
    frame.len() >= 34 && (frame[12..14] == [0x08, 0x00] || frame[12..14] == [0x86, 0xdd])
}

fn send(tx: &mut dyn DataLinkSender, frame: &[u8], st: &mut DirStats) {
    match tx.send_to(frame, None) {
        Some(Ok(())) => {}
        _ => st.send_errors += 1,
    }
}

/// Frames waiting for their departure time, in departure order, plus at most one frame
/// held back to leave after the next.
#[derive(Default)]
struct Line {
    waiting: VecDeque<(Instant, Vec<u8>)>,
    held: Option<(Vec<u8>, Instant)>,
}

impl Line {
    fn push(&mut self, at: Instant, frame: Vec<u8>) {
        self.waiting.push_back((at, frame));
    }

    /// Sends what is due at `now`.
    fn flush(&mut self, now: Instant, tx: &mut dyn DataLinkSender, st: &mut DirStats) {
        while self.waiting.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, f)) = self.waiting.pop_front() {
                send(tx, &f, st);
            }
        }
    }

    /// How long until the next departure (capped by `max`).
    fn next_in(&self, now: Instant, max: Duration) -> Duration {
        self.waiting.front().map_or(max, |(t, _)| t.saturating_duration_since(now).min(max))
    }
}

/// Forwards `rx` -> `tx` through `wire` until `stop` or `deadline`.
fn forward(
    mut rx: Box<dyn DataLinkReceiver>,
    mut tx: Box<dyn DataLinkSender>,
    imp: Impairment,
    stop: &AtomicBool,
    deadline: Instant,
) -> Result<DirStats> {
    let mut st = DirStats::default();
    let mut wire = Wire::new(imp);
    let mut line = Line::default();
    let hold_max = Duration::from_millis(1);
    let immediate = imp.delay.is_zero() && imp.jitter.is_zero() && imp.rate_bps.is_none();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match rx.next() {
            Ok(frame) => {
                st.frames += 1;
                let now = Instant::now();
                if !is_ip(frame) {
                    send(tx.as_mut(), frame, &mut st);
                } else {
                    match wire.offer(now, frame.len()) {
                        Fate::Lost => {
                            st.dropped += 1;
                            st.dropped_bytes += frame.len() as u64;
                        }
                        Fate::QueueFull => {
                            st.queue_dropped += 1;
                            st.dropped_bytes += frame.len() as u64;
                        }
                        Fate::LeaveAfterNext(at) if line.held.is_none() => {
                            line.held = Some((frame.to_vec(), at));
                        }
                        Fate::Leave(at) | Fate::LeaveAfterNext(at) => {
                            if immediate {
                                send(tx.as_mut(), frame, &mut st);
                            } else {
                                line.push(at, frame.to_vec());
                            }
                            if let Some((h, t)) = line.held.take() {
                                st.reordered += 1;
                                if immediate {
                                    send(tx.as_mut(), &h, &mut st);
                                } else {
                                    line.push(t.max(at), h);
                                }
                            }
                        }
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
        let now = Instant::now();
        if line.held.as_ref().is_some_and(|(_, t)| now.saturating_duration_since(*t) >= hold_max) {
            if let Some((h, t)) = line.held.take() {
                st.delayed += 1;
                line.push(t, h);
            }
        }
        line.flush(now, tx.as_mut(), &mut st);
        // With frames waiting but none arriving, sleep until the next one is due (the
        // receive timeout is 1 ms; finer waits spin here).
        let wait = line.next_in(now, Duration::ZERO);
        if !wait.is_zero() && wait < Duration::from_millis(1) {
            std::thread::sleep(wait);
        }
    }
    let end = Instant::now() + Duration::from_secs(1);
    if let Some((h, t)) = line.held.take() {
        st.delayed += 1;
        line.push(t, h);
    }
    while !line.waiting.is_empty() && Instant::now() < end {
        line.flush(Instant::now(), tx.as_mut(), &mut st);
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(st)
}

/// The forwarder's command line, checked.
#[derive(Debug, Clone)]
pub struct Args {
    pub loss_pct: f64,
    pub burst_len: f64,
    pub reorder_pct: f64,
    pub delay_ms: f64,
    pub jitter_ms: f64,
    pub rate_mbit: Option<f64>,
    pub queue_kb: u64,
    pub seed: u64,
    pub seconds: f64,
}

impl Args {
    fn impairment(&self) -> Result<Impairment> {
        let ppm = |pct: f64| -> Result<u64> {
            if !(0.0..=50.0).contains(&pct) {
                bail!("a percentage between 0 and 50 is expected, not {pct}");
            }
            Ok((pct * 10_000.0).round() as u64)
        };
        let ms = |v: f64, what: &str| -> Result<Duration> {
            if !(0.0..=10_000.0).contains(&v) {
                bail!("{what} must be between 0 and 10000 ms, not {v}");
            }
            Ok(Duration::from_secs_f64(v / 1e3))
        };
        if !(1.0..=1000.0).contains(&self.burst_len) {
            bail!("--burst-len must be between 1 and 1000 frames, not {}", self.burst_len);
        }
        let rate_bps = match self.rate_mbit {
            Some(r) if !(0.1..=100_000.0).contains(&r) => bail!("--rate-mbit must be between 0.1 and 100000, not {r}"),
            Some(r) => Some((r * 1e6) as u64),
            None => None,
        };
        if self.queue_kb == 0 {
            bail!("--queue-kb must be at least 1");
        }
        Ok(Impairment {
            loss_ppm: ppm(self.loss_pct)?,
            burst_len: self.burst_len,
            reorder_ppm: ppm(self.reorder_pct)?,
            delay: ms(self.delay_ms, "--delay-ms")?,
            jitter: ms(self.jitter_ms, "--jitter-ms")?,
            rate_bps,
            queue_bytes: self.queue_kb * 1024,
            seed: self.seed,
        })
    }
}

/// Runs the impairing forwarder between `a` (towards the server) and `b` (towards the
/// client); prints `ready` once both sockets are bound and a `RESULT` line at the end.
pub fn impair(a: &str, b: &str, args: &Args) -> Result<()> {
    let imp = args.impairment()?;
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        bail!("--seconds must be in (0, 3600], not {}", args.seconds);
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed)).context("installing the SIGTERM handler")?;
    }
    let (tx_a, rx_a) = open(a)?;
    let (tx_b, rx_b) = open(b)?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    println!(
        "impair: {a} <-> {b}, each way: loss {}% (bursts of {} frames), reorder {}%, delay {} ms + jitter {} ms, \
         rate {}, queue {} KiB; seed {}, at most {} s",
        args.loss_pct,
        args.burst_len,
        args.reorder_pct,
        args.delay_ms,
        args.jitter_ms,
        args.rate_mbit.map_or("unlimited".to_string(), |r| format!("{r} Mbit/s")),
        args.queue_kb,
        args.seed,
        args.seconds
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
    let dir = |p: &str, d: &DirStats| {
        format!(
            "{p}_frames={} {p}_dropped={} {p}_dropped_bytes={} {p}_queue_dropped={} {p}_reordered={} {p}_delayed={} \
             {p}_send_errors={}",
            d.frames, d.dropped, d.dropped_bytes, d.queue_dropped, d.reordered, d.delayed, d.send_errors
        )
    };
    println!("RESULT {} {}", dir("to_client", &c), dir("to_server", &s));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(imp: Impairment, frames: u64, gap: Duration, len: usize) -> (Vec<Fate>, Instant) {
        let mut w = Wire::new(imp);
        let t0 = Instant::now();
        let fates = (0..frames).map(|i| w.offer(t0 + gap * i as u32, len)).collect();
        (fates, t0)
    }

    #[test]
    fn independent_loss_matches_its_rate() {
        let (f, _) = run(Impairment { loss_ppm: 10_000, ..Default::default() }, 200_000, Duration::ZERO, 1500);
        let lost = f.iter().filter(|x| **x == Fate::Lost).count();
        assert!((1700..2300).contains(&lost), "{lost} of 200000 lost at 1%");
    }

    #[test]
    fn bursty_loss_keeps_the_mean_and_makes_bursts() {
        let imp = Impairment { loss_ppm: 30_000, burst_len: 5.0, ..Default::default() };
        let (f, _) = run(imp, 400_000, Duration::ZERO, 1500);
        let lost = f.iter().filter(|x| **x == Fate::Lost).count();
        let bursts = f.windows(2).filter(|w| w[0] != Fate::Lost && w[1] == Fate::Lost).count();
        let mean = lost as f64 / bursts.max(1) as f64;
        assert!((10_000..14_000).contains(&lost), "{lost} of 400000 lost at 3%");
        assert!((4.0..6.0).contains(&mean), "mean burst {mean:.2}, want about 5");
    }

    #[test]
    fn delay_and_jitter_never_reorder() {
        let imp =
            Impairment { delay: Duration::from_millis(25), jitter: Duration::from_millis(5), ..Default::default() };
        let (f, t0) = run(imp, 10_000, Duration::from_micros(10), 1500);
        let mut last = t0;
        for (i, fate) in f.iter().enumerate() {
            let Fate::Leave(at) = *fate else { panic!("{fate:?}") };
            let arrived = t0 + Duration::from_micros(10) * i as u32;
            assert!(at >= arrived + Duration::from_millis(25), "frame {i} left too early");
            assert!(at >= last, "frame {i} passed the frame ahead of it");
            last = at;
        }
    }

    #[test]
    fn the_bottleneck_paces_and_drops_at_a_full_queue() {
        // 1500-byte frames at 100 Mbit/s take 120 us each; offered every 60 us (200 Mbit/s)
        // into a 64 KiB queue: half are dropped once the queue fills, the rest are paced.
        let imp = Impairment { rate_bps: Some(100_000_000), queue_bytes: 64 * 1024, ..Default::default() };
        let (f, t0) = run(imp, 20_000, Duration::from_micros(60), 1500);
        let full = f.iter().filter(|x| **x == Fate::QueueFull).count();
        assert!((9_000..10_500).contains(&full), "{full} of 20000 dropped at the queue");
        let leaves: Vec<Instant> =
            f.iter().filter_map(|x| if let Fate::Leave(t) = x { Some(*t) } else { None }).collect();
        let span = leaves.last().unwrap().duration_since(t0).as_secs_f64();
        let rate = leaves.len() as f64 * 1500.0 * 8.0 / span;
        assert!((95e6..101e6).contains(&rate), "paced at {rate:.0} bit/s");
        for w in leaves.windows(2) {
            assert!(
                w[1].duration_since(w[0]) >= Duration::from_micros(119),
                "frames closer than one serialization time"
            );
        }
    }

    #[test]
    fn bad_arguments_are_refused_with_the_option_named() {
        let base = Args {
            loss_pct: 1.0,
            burst_len: 1.0,
            reorder_pct: 1.0,
            delay_ms: 0.0,
            jitter_ms: 0.0,
            rate_mbit: None,
            queue_kb: 1024,
            seed: 1,
            seconds: 1.0,
        };
        assert!(base.impairment().is_ok());
        let e = Args { delay_ms: -1.0, ..base.clone() }.impairment().unwrap_err();
        assert!(e.to_string().contains("--delay-ms"), "{e}");
        let e = Args { rate_mbit: Some(0.0), ..base.clone() }.impairment().unwrap_err();
        assert!(e.to_string().contains("--rate-mbit"), "{e}");
        let e = Args { burst_len: 0.5, ..base }.impairment().unwrap_err();
        assert!(e.to_string().contains("--burst-len"), "{e}");
    }
}
