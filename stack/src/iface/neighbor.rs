//! Neighbour cache for ARP (IPv4) and NDP (IPv6): IP to MAC, learned from requests,
//! replies and the frames peers send us, so replies go straight to the peer's MAC.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpAddress};

type Fixed = BuildHasherDefault<std::hash::DefaultHasher>;

/// How long a learned entry stays valid without being refreshed.
const ENTRY_LIFETIME: Duration = Duration::from_secs(300);
/// Minimum interval between two requests for the same address.
const REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// Entries kept at most (a flood of forged sources cannot grow it without bound).
const MAX_ENTRIES: usize = 4096;

/// The cache.
#[derive(Debug, Default)]
pub struct NeighborCache {
    entries: HashMap<IpAddress, (EthernetAddress, Instant), Fixed>,
    requested: HashMap<IpAddress, Instant, Fixed>,
}

impl NeighborCache {
    /// Records `ip` at `mac`.
    pub fn learn(&mut self, now: Instant, ip: IpAddress, mac: EthernetAddress) {
        if !mac.is_unicast() {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&ip) {
            self.entries.retain(|_, (_, t)| *t > now);
            if self.entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        self.entries.insert(ip, (mac, now + ENTRY_LIFETIME));
        self.requested.remove(&ip);
    }

    /// The MAC of `ip`, if known and fresh.
    pub fn lookup(&self, now: Instant, ip: &IpAddress) -> Option<EthernetAddress> {
        self.entries.get(ip).filter(|(_, t)| *t > now).map(|(m, _)| *m)
    }

    /// Whether a request for `ip` should go out now (rate limited).
    pub fn should_request(&mut self, now: Instant, ip: IpAddress) -> bool {
        match self.requested.get(&ip) {
            Some(t) if now < *t + REQUEST_INTERVAL => false,
            _ => {
                if self.requested.len() >= MAX_ENTRIES {
                    self.requested.clear();
                }
                self.requested.insert(ip, now);
                true
            }
        }
    }
}
