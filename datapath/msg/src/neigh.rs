//! Finding a peer's MAC address, once per peer and never on the fast path.
//!
//! The steering program passes ARP to the kernel, so the kernel's neighbour table knows
//! the hosts this interface talks to. Adding a peer reads the route (`/proc/net/route`:
//! on-link, or through which gateway) and the next hop's entry (`/proc/net/arp`); when
//! there is none, it prods the kernel into resolving it by sending one datagram from an
//! ordinary UDP socket to the discard port (9) and waits for the entry. After that, every
//! datagram to the peer is built from the cached address with no kernel involvement. A
//! peer that sends to us first needs none of this: its MAC is the source of its frames.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use datapath::{fmt_mac, parse_mac};

use super::MsgError;

/// The next hop towards `dst` out of `iface`: `dst` itself when on-link, else the gateway
/// of the most specific route. `None` when no route through `iface` covers `dst`.
pub fn next_hop(route_table: &str, iface: &str, dst: Ipv4Addr) -> Option<Ipv4Addr> {
    // Columns: Iface Destination Gateway Flags RefCnt Use Metric Mask ...; addresses are
    // hex in the kernel's (little-endian on x86) byte order, as u32 in host order.
    let dst = u32::from_ne_bytes(dst.octets());
    let mut best: Option<(u32, u32)> = None; // (mask, gateway)
    for line in route_table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[0] != iface {
            continue;
        }
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(net), Some(gw), Some(mask)) = (hex(f[1]), hex(f[2]), hex(f[7])) else { continue };
        if dst & mask != net & mask {
            continue;
        }
        let longer = best.is_none_or(|(m, _)| mask.swap_bytes() > m.swap_bytes());
        if longer {
            best = Some((mask, gw));
        }
    }
    best.map(|(_, gw)| if gw == 0 { Ipv4Addr::from(dst.to_ne_bytes()) } else { Ipv4Addr::from(gw.to_ne_bytes()) })
}

/// The complete entry for `ip` on `iface` in `/proc/net/arp`'s text.
pub fn arp_entry(arp_table: &str, iface: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    const ATF_COM: u32 = 0x2;
    let want = ip.to_string();
    arp_table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[0] != want || f[5] != iface {
            return None;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
        if flags & ATF_COM == 0 {
            return None;
        }
        parse_mac(f[3])
    })
}

/// Resolves the MAC to send to `dst` through `iface`, asking the kernel to resolve it
/// when its table has no entry; gives up after `timeout`.
pub fn resolve(iface: &str, dst: Ipv4Addr, timeout: Duration) -> Result<[u8; 6], MsgError> {
    let read =
        |path: &str| std::fs::read_to_string(path).map_err(|source| MsgError::Read { path: path.into(), source });
    let routes = read("/proc/net/route")?;
    let hop = next_hop(&routes, iface, dst).ok_or_else(|| MsgError::NoRoute { peer: dst, iface: iface.into() })?;
    if let Some(mac) = arp_entry(&read("/proc/net/arp")?, iface, hop) {
        return Ok(mac);
    }
    log::info!("{iface}: no neighbour entry for {hop}; asking the kernel to resolve it (ARP)");
    let prod =
        UdpSocket::bind("0.0.0.0:0").map_err(|source| MsgError::Syscall { call: "bind(UDP, ARP prod)", source })?;
    let start = Instant::now();
    let mut next_prod = start;
    while start.elapsed() < timeout {
        if Instant::now() >= next_prod {
            // To the discard port: the content does not matter, the resolution does. A
            // refusal (ICMP port unreachable) is fine.
            let _ = prod.send_to(&[0], (dst, 9));
            next_prod += Duration::from_millis(200);
        }
        std::thread::sleep(Duration::from_millis(1));
        if let Some(mac) = arp_entry(&read("/proc/net/arp")?, iface, hop) {
            log::info!("{iface}: {hop} is at {}", fmt_mac(&mac));
            return Ok(mac);
        }
    }
    Err(MsgError::Unresolved { peer: dst, hop, iface: iface.into(), waited: timeout })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
veth0\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";
    const ARP: &str = "IP address       HW type     Flags       HW address            Mask     Device
10.77.0.1        0x1         0x2         6e:1b:3c:4d:5e:6f     *        veth0
10.77.0.9        0x1         0x0         00:00:00:00:00:00     *        veth0
";

    #[test]
    fn next_hop_prefers_on_link_and_finds_gateways() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(next_hop(ROUTES, "veth0", ip("10.77.0.1")), Some(ip("10.77.0.1")));
            assert_eq!(next_hop(ROUTES, "eth0", ip("8.8.8.8")), Some(ip("192.168.1.1")));
            assert_eq!(next_hop(ROUTES, "eth0", ip("192.168.1.7")), Some(ip("192.168.1.7")));
            assert_eq!(next_hop(ROUTES, "veth0", ip("8.8.8.8")), None);
        }
    }

    #[test]
    fn arp_entries_must_be_complete_and_on_the_interface() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(arp_entry(ARP, "veth0", ip("10.77.0.1")), Some([0x6e, 0x1b, 0x3c, 0x4d, 0x5e, 0x6f]));
        assert_eq!(arp_entry(ARP, "veth0", ip("10.77.0.9")), None);
        assert_eq!(arp_entry(ARP, "eth0", ip("10.77.0.1")), None);
    }
}
