//! `xtask internal tcp-craft`: hostile TCP input for the server under test, sent from the
//! client namespace with an `AF_PACKET` socket (pnet's datalink channel: safe code):
//! segments with a bad checksum, a bad data offset and truncated options; a connection of
//! its own from a spoofed address (10.77.0.3, which the client's kernel does not own, so
//! it never resets the server's answers) that receives RSTs with wrong sequence numbers
//! and must survive them; then a flood of SYNs from random spoofed sources. It checks
//! what the server answered and prints one `RESULT` line. Bounded: every wait has a
//! deadline, and the flood is a count.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender};

use crate::client::Prng;

/// The address the crafted connection claims.
const SPOOF: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// One TCP segment to build.
struct Seg<'a> {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: u32,
    flags: u8,
    /// TCP options (a multiple of 4 bytes unless testing).
    options: &'a [u8],
    payload: &'a [u8],
    /// Data offset to write instead of the right one.
    offset_override: Option<u8>,
    /// Leave the checksum wrong.
    bad_checksum: bool,
}

fn sum16(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut it = bytes.chunks_exact(2);
    for w in &mut it {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = it.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// An Ethernet + IPv4 + TCP frame.
fn frame(src_mac: [u8; 6], dst_mac: [u8; 6], s: &Seg) -> Vec<u8> {
    let tcp_len = 20 + s.options.len() + s.payload.len();
    let mut f = Vec::with_capacity(14 + 20 + tcp_len);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    f[ip_start + 2..ip_start + 4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
    f.extend_from_slice(&s.src.ip().octets());
    f.extend_from_slice(&s.dst.ip().octets());
    let ip_sum = fold(sum16(0, &f[ip_start..ip_start + 20]));
    f[ip_start + 10..ip_start + 12].copy_from_slice(&ip_sum.to_be_bytes());
    let t = f.len();
    f.extend_from_slice(&s.src.port().to_be_bytes());
    f.extend_from_slice(&s.dst.port().to_be_bytes());
    f.extend_from_slice(&s.seq.to_be_bytes());
    f.extend_from_slice(&s.ack.to_be_bytes());
    let words = s.offset_override.unwrap_or(((20 + s.options.len()) / 4) as u8);
    f.extend_from_slice(&[words << 4, s.flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(s.options);
    f.extend_from_slice(s.payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&s.src.ip().octets());
    pseudo.extend_from_slice(&s.dst.ip().octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    let mut sum = fold(sum16(sum16(0, &pseudo), &f[t..]));
    if s.bad_checksum {
        sum ^= 0x5a5a;
    }
    f[t + 16..t + 18].copy_from_slice(&sum.to_be_bytes());
    f
}

/// A TCP segment the server sent to `to`: (flags, seq, ack, payload).
fn parse_reply(f: &[u8], from: SocketAddrV4, to: SocketAddrV4) -> Option<(u8, u32, u32, Vec<u8>)> {
    if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
        return None;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let t = 14 + ihl;
    let tcp = f.get(t..14 + total)?;
    let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
    let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
    if src != *from.ip() || dst != *to.ip() || sport != from.port() || dport != to.port() {
        return None;
    }
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
    let hl = usize::from(tcp[12] >> 4) * 4;
    Some((tcp[13], seq, ack, tcp.get(hl..)?.to_vec()))
}

struct Wire {
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    mac: [u8; 6],
    server_mac: [u8; 6],
    sent: u64,
}

impl Wire {
    fn send(&mut self, s: &Seg) -> Result<()> {
        let f = frame(self.mac, self.server_mac, s);
        match self.tx.send_to(&f, None) {
            Some(Ok(())) => {
                self.sent += 1;
                Ok(())
            }
            Some(Err(e)) => Err(e).context("sending a crafted frame"),
            None => bail!("crafted frame too large"),
        }
    }

    /// The first segment from `from` to `to` that satisfies `want`, within `wait`.
    fn expect(
        &mut self,
        from: SocketAddrV4,
        to: SocketAddrV4,
        wait: Duration,
        want: impl Fn(u8, &[u8]) -> bool,
    ) -> Option<(u8, u32, u32, Vec<u8>)> {
        let end = Instant::now() + wait;
        while Instant::now() < end {
            if let Ok(f) = self.rx.next() {
                if let Some(r) = parse_reply(f, from, to) {
                    if want(r.0, &r.3) {
                        return Some(r);
                    }
                }
            }
        }
        None
    }
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    ensure!(parts.len() == 6, "not a MAC address: {s:?}");
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).with_context(|| format!("not a MAC address: {s:?}"))?;
    }
    Ok(mac)
}

impl Wire {
    /// An `AF_PACKET` channel on `iface` towards the server's MAC.
    fn open(iface: &str, server_mac: &str) -> Result<Wire> {
        let ni = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == iface)
            .with_context(|| format!("no interface {iface} here"))?;
        let mac = ni.mac.with_context(|| format!("{iface} has no MAC"))?.octets();
        let cfg = Config { read_timeout: Some(Duration::from_millis(20)), promiscuous: false, ..Config::default() };
        let (tx, rx) = match pnet_datalink::channel(&ni, cfg)
            .with_context(|| format!("AF_PACKET socket on {iface} (needs CAP_NET_RAW)"))?
        {
            Channel::Ethernet(tx, rx) => (tx, rx),
            _ => bail!("{iface}: not an Ethernet channel"),
        };
        Ok(Wire { tx, rx, mac, server_mac: parse_mac(server_mac)?, sent: 0 })
    }
}

/// `syns` SYNs to `server` from random spoofed sources (10.77.0.10 .. 10.77.0.249, which
/// nobody owns, so nobody answers the server's SYN-ACKs).
fn flood(w: &mut Wire, rng: &mut Prng, server: SocketAddrV4, syns: u32) -> Result<()> {
    for _ in 0..syns {
        let r = rng.next_u64();
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 10 + (r % 240) as u8), 1024 + ((r >> 8) % 60_000) as u16);
        let seg = Seg {
            src,
            dst: server,
            seq: (r >> 32) as u32,
            ack: 0,
            flags: SYN,
            options: &[],
            payload: &[],
            offset_override: None,
            bad_checksum: false,
        };
        w.send(&seg)?;
    }
    Ok(())
}

/// `xtask internal syn-flood`: only the SYN flood of [`craft`], seeded, for load that
/// repeats (the soak sends a burst every minute). Prints one `RESULT` line.
pub fn syn_flood(iface: &str, server: SocketAddrV4, server_mac: &str, syns: u32, seed: u64) -> Result<()> {
    ensure!(syns <= 1_000_000, "--syns at most 1000000");
    let mut w = Wire::open(iface, server_mac)?;
    let start = Instant::now();
    flood(&mut w, &mut Prng::new(seed), server, syns)?;
    println!("RESULT syns={} seconds={:.2}", w.sent, start.elapsed().as_secs_f64());
    Ok(())
}

/// Sends the hostile input to `server` (whose MAC is `server_mac`) through `iface`.
pub fn craft(iface: &str, server: SocketAddrV4, server_mac: &str, count: u32, syns: u32) -> Result<()> {
    ensure!(count <= 100_000 && syns <= 1_000_000, "--count at most 100000, --syns at most 1000000");
    let mut w = Wire::open(iface, server_mac)?;
    let mut rng = Prng::new(0xc4af7);
    let me = |port: u16| SocketAddrV4::new(SPOOF, port);
    let base = |src: SocketAddrV4, seq: u32, flags: u8| Seg {
        src,
        dst: server,
        seq,
        ack: 0,
        flags,
        options: &[],
        payload: &[],
        offset_override: None,
        bad_checksum: false,
    };

    // 1. Malformed segments: each would open a connection if the server took it.
    for i in 0..count {
        let src = me(20_000 + (i % 1000) as u16);
        w.send(&Seg { bad_checksum: true, ..base(src, rng.next_u64() as u32, SYN) })?;
        w.send(&Seg { offset_override: Some(3), ..base(src, rng.next_u64() as u32, SYN) })?;
        w.send(&Seg { offset_override: Some(15), ..base(src, rng.next_u64() as u32, SYN) })?;
        // A timestamp option (kind 8, length 10) cut after 4 bytes.
        w.send(&Seg { options: &[8, 10, 0, 0], ..base(src, rng.next_u64() as u32, SYN) })?;
    }
    let answered = w.expect(server, me(20_000), Duration::from_millis(300), |_, _| true).is_some();
    ensure!(!answered, "the server answered a malformed segment");

    // 2. A connection of our own, then RSTs with wrong sequence numbers.
    let c = me(40_000);
    let iss = 0x1000_0000u32;
    w.send(&Seg { options: &[2, 4, 0x05, 0xb4], ..base(c, iss, SYN) })?;
    let (_, srv_isn, _, _) = w
        .expect(server, c, Duration::from_secs(3), |f, _| f & (SYN | ACK) == SYN | ACK)
        .context("no SYN-ACK for the crafted connection")?;
    let (snd, rcv) = (iss.wrapping_add(1), srv_isn.wrapping_add(1));
    w.send(&Seg { ack: rcv, ..base(c, snd, ACK) })?;
    // Far outside the window: dropped silently. Inside but not exact: a challenge ACK.
    w.send(&Seg { ack: rcv, ..base(c, snd.wrapping_add(0x4000_0000), RST | ACK) })?;
    w.send(&Seg { ack: rcv, ..base(c, snd.wrapping_add(100), RST) })?;
    let challenge = w
        .expect(server, c, Duration::from_secs(2), |f, p| f & ACK != 0 && f & (RST | SYN) == 0 && p.is_empty())
        .is_some();
    ensure!(challenge, "no challenge ACK for an in-window RST with a wrong sequence number (RFC 5961)");
    let req = format!("GET /small HTTP/1.1\r\nHost: {}\r\n\r\n", server.ip());
    w.send(&Seg { ack: rcv, payload: req.as_bytes(), ..base(c, snd, ACK | PSH) })?;
    let (_, _, _, body) = w
        .expect(server, c, Duration::from_secs(3), |_, p| !p.is_empty())
        .context("the crafted connection got no answer after the bad RSTs: it did not survive")?;
    ensure!(
        body.starts_with(b"HTTP/1.1 200"),
        "unexpected answer: {:?}",
        String::from_utf8_lossy(&body[..body.len().min(40)])
    );
    // Done with it: an exact RST closes it.
    w.send(&Seg { ack: rcv, ..base(c, snd.wrapping_add(req.len() as u32), RST | ACK) })?;

    // 3. A SYN flood from random spoofed sources (10.77.0.10 .. 10.77.0.249).
    let start = Instant::now();
    flood(&mut w, &mut rng, server, syns)?;
    let flood_secs = start.elapsed().as_secs_f64();
    println!(
        "RESULT sent={} malformed={} syns={syns} flood_seconds={flood_secs:.2} challenge_ack=1 survived_bad_rst=1",
        w.sent,
        count * 4
    );
    Ok(())
}

/// Where a fragment of a jumbo packet may begin in an AF_XDP receive (frame size less
/// the kernel's headroom of 256, 0 or 512 bytes): a frame forged at each of these lies at
/// the start of a fragment whatever the kernel chose.
const FRAGMENT_STARTS: [usize; 6] = [3584, 3840, 4096, 7168, 7680, 8192];

/// `xtask internal tcp-jumbo`: multi-buffer hostile input for the server at MTU 9000.
/// 1. A 9014-byte packet to the server's port (steered to AF_XDP, received in several
///    fragments) with a SYN from a spoofed address of its own forged at every place a
///    fragment may start: none may be answered (a fragment is never a frame).
/// 2. A connection of our own sends one request of about 4 KB in a single segment (more
///    than one RX frame's room, so two fragments): it must be answered.
pub fn jumbo(iface: &str, server: SocketAddrV4, server_mac: &str) -> Result<()> {
    let ni = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == iface)
        .with_context(|| format!("no interface {iface} here"))?;
    let mac = ni.mac.with_context(|| format!("{iface} has no MAC"))?.octets();
    let cfg = Config { read_timeout: Some(Duration::from_millis(20)), promiscuous: false, ..Config::default() };
    let (tx, rx) = match pnet_datalink::channel(&ni, cfg)
        .with_context(|| format!("AF_PACKET socket on {iface} (needs CAP_NET_RAW)"))?
    {
        Channel::Ethernet(tx, rx) => (tx, rx),
        _ => bail!("{iface}: not an Ethernet channel"),
    };
    let mut w = Wire { tx, rx, mac, server_mac: parse_mac(server_mac)?, sent: 0 };
    let base = |src: SocketAddrV4, seq: u32, flags: u8| Seg {
        src,
        dst: server,
        seq,
        ack: 0,
        flags,
        options: &[],
        payload: &[],
        offset_override: None,
        bad_checksum: false,
    };

    // 1. Forged SYNs inside one jumbo packet.
    let forged: Vec<SocketAddrV4> =
        (0..FRAGMENT_STARTS.len()).map(|k| SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 20 + k as u8), 7000)).collect();
    let pad = vec![0u8; 9000 - 40];
    let mut packet =
        frame(w.mac, w.server_mac, &Seg { payload: &pad, ..base(SocketAddrV4::new(SPOOF, 41000), 1, ACK) });
    ensure!(packet.len() == 9014, "the jumbo packet is {} bytes", packet.len());
    for (at, src) in FRAGMENT_STARTS.iter().zip(&forged) {
        let syn = frame(w.mac, w.server_mac, &Seg { options: &[2, 4, 0x05, 0xb4], ..base(*src, 0x2000_0000, SYN) });
        packet[*at..*at + syn.len()].copy_from_slice(&syn);
    }
    match w.tx.send_to(&packet, None) {
        Some(Ok(())) => w.sent += 1,
        Some(Err(e)) => return Err(e).context("sending the jumbo packet (is the MTU 9000?)"),
        None => bail!("jumbo packet too large for {iface}"),
    }
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        if let Ok(f) = w.rx.next() {
            if let Some(to) = forged.iter().find(|to| parse_reply(f, server, **to).is_some()) {
                bail!("the server answered a SYN forged inside a jumbo packet (to {to}): a fragment was taken for a frame");
            }
        }
    }

    // 2. A request in one segment of more than one RX frame.
    let c = SocketAddrV4::new(SPOOF, 40001);
    let iss = 0x3000_0000u32;
    w.send(&Seg { options: &[2, 4, 0x23, 0x00], ..base(c, iss, SYN) })?;
    let (_, srv_isn, _, _) = w
        .expect(server, c, Duration::from_secs(3), |f, _| f & (SYN | ACK) == SYN | ACK)
        .context("no SYN-ACK for the crafted connection")?;
    let (snd, rcv) = (iss.wrapping_add(1), srv_isn.wrapping_add(1));
    w.send(&Seg { ack: rcv, ..base(c, snd, ACK) })?;
    let req = format!("GET /s4097 HTTP/1.1\r\nHost: {}\r\nX-Pad: {}\r\n\r\n", server.ip(), "p".repeat(3900));
    w.send(&Seg { ack: rcv, payload: req.as_bytes(), ..base(c, snd, ACK | PSH) })?;
    let (_, _, _, body) = w
        .expect(server, c, Duration::from_secs(3), |_, p| !p.is_empty())
        .context("a request of two fragments got no answer: it was not joined")?;
    ensure!(
        body.starts_with(b"HTTP/1.1 200"),
        "unexpected answer: {:?}",
        String::from_utf8_lossy(&body[..body.len().min(40)])
    );
    w.send(&Seg { ack: rcv, ..base(c, snd.wrapping_add(req.len() as u32), RST | ACK) })?;
    println!("RESULT jumbo_sent=1 forged_syns={} forged_answered=0 two_fragment_request_answered=1", forged.len());
    Ok(())
}
