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
        // Every TCP frame from an on-link peer lands here: when the fresh entry already
        // says so, refresh it with one lookup (no request can be outstanding for it).
        if let Some(e) = self.entries.get_mut(&ip) {
            if e.0 == mac && e.1 > now {
                e.1 = now + ENTRY_LIFETIME;
                return;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddress = IpAddress::v4(10, 0, 0, 2);
    const A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    #[test]
    fn a_refresh_extends_the_entry_and_a_new_mac_replaces_it() {
        let mut n = NeighborCache::default();
        n.learn(Instant::ZERO, IP, A);
        let later = Instant::ZERO + ENTRY_LIFETIME - Duration::from_secs(1);
        n.learn(later, IP, A);
        assert_eq!(n.lookup(Instant::ZERO + ENTRY_LIFETIME + Duration::from_secs(1), &IP), Some(A), "refreshed");
        n.learn(later, IP, B);
        assert_eq!(n.lookup(later, &IP), Some(B), "the new MAC replaced the old");
        assert_eq!(n.lookup(later + ENTRY_LIFETIME, &IP), None, "expired");
    }

    #[test]
    fn relearning_an_expired_entry_ends_its_pending_request() {
        let mut n = NeighborCache::default();
        n.learn(Instant::ZERO, IP, A);
        let t = Instant::ZERO + ENTRY_LIFETIME + Duration::from_secs(1);
        assert_eq!(n.lookup(t, &IP), None);
        assert!(n.should_request(t, IP));
        assert!(!n.should_request(t, IP), "rate limited");
        n.learn(t, IP, A);
        assert_eq!(n.lookup(t, &IP), Some(A));
        assert!(n.should_request(t + Duration::from_millis(100), IP), "the answered request no longer limits");
    }
}
