//! The stack fed a sequence of frames on a virtual clock, as a server: a listener on port
//! 80 whose application answers each connection's bytes and closes. The seed corpus is
//! the frames a real client (curl, ping, the kernel's ARP) sent to the file server,
//! captured with tcpdump; the fuzzer mutates them.
//!
//! Input: records of `[flags|dt][len u16][frame]`: dt (low 6 bits) is milliseconds to
//! wait before the frame; flag 0x40 means the frame's ACK number is relative to the
//! server's initial sequence number on that connection (so captured handshakes replay
//! against this stack's ISNs); flag 0x80 asks for valid IPv4/TCP/UDP/ICMP checksums, so
//! mutated frames get past checksum validation and reach the protocol.
//!
//! Invariants: no panic; every frame the stack sends is well-formed (smoltcp parses it,
//! checksums verify, no fragment exceeds a frame); on each connection the acknowledgement
//! it sends never moves backwards, nor the right edge of the window it offers
//! (RFC 9293 3.8.6); after the application closes everything and every timer has run,
//! no connection, TIME-WAIT entry or pool frame is left.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Address, Ipv4Cidr, Ipv4Packet,
    TcpPacket,
};
use stack::sim::SimLink;
use stack::{ConnHandle, Duration, Instant, Stack, StackConfig};
use umem::{BufSlice, HugePages, Pool, PoolConfig};

const SRV_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const SRV: Ipv4Address = Ipv4Address::new(10, 77, 0, 1);

/// What the server said on one connection (keyed by the client's port).
#[derive(Default)]
struct Seen {
    isn: Option<u32>,
    wscale: u8,
    ack: Option<u32>,
    right: Option<u32>,
}

fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn fix_checksums(f: &mut [u8]) {
    let Ok(mut eth) = EthernetFrame::new_checked(&mut f[..]) else { return };
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else { return };
    ip.fill_checksum();
    let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
    let caps = ChecksumCapabilities::default();
    let _ = caps;
    let payload = ip.payload_mut();
    match proto {
        IpProtocol::Tcp => {
            if let Ok(mut t) = TcpPacket::new_checked(payload) {
                t.fill_checksum(&src.into(), &dst.into());
            }
        }
        IpProtocol::Udp => {
            if let Ok(mut u) = smoltcp::wire::UdpPacket::new_checked(payload) {
                u.fill_checksum(&src.into(), &dst.into());
            }
        }
        IpProtocol::Icmp => {
            if let Ok(mut i) = smoltcp::wire::Icmpv4Packet::new_checked(payload) {
                i.fill_checksum();
            }
        }
        _ => {}
    }
}

/// Checks one frame the stack sent, and tracks per-connection ACK and window edges.
fn check_sent(bytes: &[u8], seen: &mut HashMap<u16, Seen>) {
    let eth = EthernetFrame::new_checked(bytes).expect("sent frame: Ethernet");
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).expect("sent frame: IPv4");
    assert!(ip.verify_checksum(), "sent an IPv4 header with a bad checksum");
    if ip.next_header() != IpProtocol::Tcp {
        return;
    }
    let t = TcpPacket::new_checked(ip.payload()).expect("sent frame: TCP");
    let (src, dst) = (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()));
    assert!(t.verify_checksum(&src, &dst), "sent a TCP segment with a bad checksum");
    if t.rst() {
        seen.remove(&t.dst_port());
        return;
    }
    let s = seen.entry(t.dst_port()).or_default();
    if t.syn() {
        *s = Seen { isn: Some(t.seq_number().0 as u32), ..Seen::default() };
        s.wscale = t.options().chunks(1).next().map_or(0, |_| 0);
        // Window scale from the options (smoltcp's parser).
        let mut opts = t.options();
        while !opts.is_empty() {
            let Ok((rest, o)) = smoltcp::wire::TcpOption::parse(opts) else { break };
            if let smoltcp::wire::TcpOption::WindowScale(w) = o {
                s.wscale = w.min(14);
            }
            opts = rest;
        }
        return;
    }
    if !t.ack() {
        return;
    }
    let ack = t.ack_number().0 as u32;
    let right = ack.wrapping_add(u32::from(t.window_len()) << s.wscale);
    if let Some(prev) = s.ack {
        assert!(!lt(ack, prev), "the acknowledgement moved back from {prev} to {ack}");
    }
    if let Some(prev) = s.right {
        assert!(!lt(right, prev), "the offered window's right edge moved back from {prev} to {right}");
    }
    s.ack = Some(ack);
    s.right = Some(right);
}

fuzz_target!(|data: &[u8]| {
    let pool = Pool::new(&PoolConfig {
        frame_size: 4096,
        frames: 256,
        block_size: 4096,
        blocks: 0,
        hugepages: HugePages::Off,
        lock: false,
    })
    .expect("pool");
    let free0 = pool.stats().frames_free;
    let mut link = SimLink::new(pool, true);
    let mut cfg = StackConfig::new(EthernetAddress(SRV_MAC));
    cfg.ipv4 = Some(Ipv4Cidr::new(SRV, 24));
    cfg.secret = 0x5eed;
    cfg.max_connections = 64;
    cfg.max_half_open = 16;
    cfg.backlog = 16;
    let mut st = Stack::new(cfg);
    let listener = st.listen(80).expect("listen");
    let mut now = Instant::from_secs(1000);
    let mut seen: HashMap<u16, Seen> = HashMap::new();
    let mut conns: Vec<ConnHandle> = Vec::new();
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

    let mut rest = data;
    let mut records = 0;
    while let Some((&flags, r)) = rest.split_first() {
        let Some((len, r)) = r.split_first_chunk::<2>() else { break };
        let len = usize::from(u16::from_be_bytes(*len)).min(r.len()).min(9100);
        let (frame, r) = r.split_at(len);
        rest = r;
        records += 1;
        if records > 256 {
            break;
        }
        now += Duration::from_millis(u64::from(flags & 0x3f));
        let mut f = frame.to_vec();
        if flags & 0x40 != 0 && f.len() >= 54 && f[12..14] == [8, 0] && f[23] == 6 {
            let ihl = usize::from(f[14] & 15) * 4;
            let tcp = 14 + ihl;
            if f.len() >= tcp + 12 {
                let port = u16::from_be_bytes([f[tcp], f[tcp + 1]]);
                if let Some(isn) = seen.get(&port).and_then(|s| s.isn) {
                    let rel = u32::from_be_bytes([f[tcp + 8], f[tcp + 9], f[tcp + 10], f[tcp + 11]]);
                    f[tcp + 8..tcp + 12].copy_from_slice(&isn.wrapping_add(rel).to_be_bytes());
                }
                fix_checksums(&mut f);
            }
        }
        if flags & 0x80 != 0 {
            fix_checksums(&mut f);
        }
        if let Some(s) = link.rx_frame(&f) {
            st.handle_frame(now, s);
        }
        // The application: accept, read everything, answer once, close when the peer did.
        while let Some(h) = st.accept(listener) {
            conns.push(h);
        }
        while let Some(h) = st.next_changed() {
            let mut got = 0;
            while let Ok(Some(b)) = st.read(h, usize::MAX) {
                got += b.len();
            }
            if got > 0 && st.readiness(h).writable >= reply.len() {
                if let Some(mut buf) = link.pool.alloc_frame() {
                    if let Some(b) = buf.get_mut() {
                        b[..reply.len()].copy_from_slice(reply);
                    }
                    if let Some(s) = BufSlice::new(buf, 0..reply.len()) {
                        let _ = st.write_frames(h, &[s]);
                    }
                }
            }
            if st.readiness(h).read_closed {
                let _ = st.close(h);
            }
        }
        st.poll(now, &mut link);
        for p in link.tx.drain(..) {
            check_sent(&p, &mut seen);
        }
        assert_eq!(link.frag_violations, 0, "a packet broke the link's fragment rules");
    }
    // The application closes what is left; then every timer runs out.
    for h in conns.drain(..) {
        let _ = st.close(h);
    }
    for _ in 0..100_000 {
        st.poll(now, &mut link);
        for p in link.tx.drain(..) {
            check_sent(&p, &mut seen);
        }
        let Some(t) = st.poll_at() else { break };
        now = if t > now { t } else { now + Duration::from_millis(1) };
    }
    assert!(st.poll_at().is_none(), "timers still pending after 100,000 rounds");
    assert_eq!(st.connection_count(), 0, "connections left: {:?}", st.counters());
    assert_eq!(st.time_wait_count(), 0, "TIME-WAIT entries left");
    drop(st);
    assert_eq!(link.pool.stats().frames_free, free0, "pool frames leaked");
});
