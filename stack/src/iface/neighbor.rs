//! Neighbour cache for ARP (IPv4) and NDP (IPv6): IP to MAC, learned from requests,
//! replies and the segments of our connections, so replies go straight to the peer's MAC.
//!
//! What may enter it is checked first (by the callers, after checksums): only unicast
//! MACs, never over a static entry ([`NeighborCache::add_static`]), at most
//! `MAX_ENTRIES` addresses.

use std::collections::HashMap;

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpAddress};

use crate::keyed::Keyed;

/// How long a learned entry stays valid without being refreshed.
const ENTRY_LIFETIME: Duration = Duration::from_secs(300);
/// Minimum interval between two requests for the same address.
const REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// Entries kept at most (a flood of forged sources cannot grow it without bound).
const MAX_ENTRIES: usize = 4096;
/// At the cap, expired entries are swept at most this often (a sweep walks the cache).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Neighbor {
    mac: EthernetAddress,
    /// `None`: static, never expires and is never overwritten by what the network says.
    expires: Option<Instant>,
}

/// What [`NeighborCache::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Recorded (new, or refreshed).
    Yes,
    /// Not a unicast MAC (broadcast, multicast or all zeros): no peer has it.
    BadMac,
    /// A static entry holds the address.
    Static,
    /// The cache is full.
    Full,
}

/// The cache.
#[derive(Debug)]
pub struct NeighborCache {
    entries: HashMap<IpAddress, Neighbor, Keyed>,
    requested: HashMap<IpAddress, Instant, Keyed>,
    last_sweep: Option<Instant>,
}

impl Default for NeighborCache {
    fn default() -> Self {
        NeighborCache::with_hasher(Keyed::default())
    }
}

/// Whether `mac` can be a peer's address: unicast and not all zeros.
pub fn is_peer_mac(mac: &EthernetAddress) -> bool {
    mac.is_unicast() && mac.0 != [0; 6]
}

impl NeighborCache {
    /// An empty cache whose maps hash with `hasher` (keyed: addresses come from peers).
    pub fn with_hasher(hasher: Keyed) -> Self {
        NeighborCache {
            entries: HashMap::with_hasher(hasher),
            requested: HashMap::with_hasher(hasher),
            last_sweep: None,
        }
    }

    /// Records `ip` at `mac` for `ENTRY_LIFETIME`, unless the MAC cannot be a peer's or a
    /// static entry holds `ip`.
    pub fn learn(&mut self, now: Instant, ip: IpAddress, mac: EthernetAddress) -> Learned {
        if !is_peer_mac(&mac) {
            return Learned::BadMac;
        }
        match self.entries.get_mut(&ip) {
            Some(n) if n.expires.is_none() => return Learned::Static,
            Some(n) => {
                // Every TCP frame from an on-link peer lands here: a fresh entry that
                // already says so is refreshed with one lookup (no request can be
                // outstanding for it).
                let fresh = n.mac == mac && n.expires.is_some_and(|t| t > now);
                *n = Neighbor { mac, expires: Some(now + ENTRY_LIFETIME) };
                if !fresh {
                    self.requested.remove(&ip);
                }
                return Learned::Yes;
            }
            None => {}
        }
        if self.entries.len() >= MAX_ENTRIES {
            if self.last_sweep.is_some_and(|t| now < t + SWEEP_INTERVAL) {
                return Learned::Full;
            }
            self.last_sweep = Some(now);
            self.entries.retain(|_, n| n.expires.is_none_or(|t| t > now));
            if self.entries.len() >= MAX_ENTRIES {
                return Learned::Full;
            }
        }
        self.entries.insert(ip, Neighbor { mac, expires: Some(now + ENTRY_LIFETIME) });
        self.requested.remove(&ip);
        Learned::Yes
    }

    /// Records `ip` at `mac` for good: nothing received overwrites it (ARP or NDP
    /// spoofing), and it never expires. Replaces a learned entry; false if `mac` cannot be
    /// a peer's.
    pub fn add_static(&mut self, ip: IpAddress, mac: EthernetAddress) -> bool {
        if !is_peer_mac(&mac) {
            return false;
        }
        self.entries.insert(ip, Neighbor { mac, expires: None });
        self.requested.remove(&ip);
        true
    }

    /// Forgets `ip` (learned or static).
    pub fn remove(&mut self, ip: &IpAddress) {
        self.entries.remove(ip);
    }

    /// The MAC of `ip`, if known and fresh.
    pub fn lookup(&self, now: Instant, ip: &IpAddress) -> Option<EthernetAddress> {
        self.entries.get(ip).filter(|n| n.expires.is_none_or(|t| t > now)).map(|n| n.mac)
    }

    /// Whether `ip` has an entry (fresh or not) or was asked for recently: an unsolicited
    /// advertisement may only update what is already there (RFC 4861 section 7.2.5).
    pub fn expects(&self, now: Instant, ip: &IpAddress) -> bool {
        self.entries.contains_key(ip) || self.requested.get(ip).is_some_and(|t| now < *t + ENTRY_LIFETIME)
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
