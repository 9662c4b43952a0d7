//! Address vectors: `fi_addr_t` <-> IPv4 address and UDP port. `FI_AV_TABLE` hands out
//! consecutive indices from 0, as the specification requires; `FI_AV_MAP` may hand out any
//! value, and hands out the same indices (so both kinds share one table). Removed entries
//! are not reused, so a stale `fi_addr_t` never names a new peer.

use std::collections::HashMap;
use std::net::SocketAddrV4;

/// One address vector.
#[derive(Debug, Default)]
pub struct AvTable {
    entries: Vec<Option<SocketAddrV4>>,
    by_addr: HashMap<SocketAddrV4, u64>,
    /// Upper bound on entries (the application's `count` hint, or a generous default).
    limit: usize,
}

/// Entries when the application gives no count.
const DEFAULT_LIMIT: usize = 1 << 20;

impl AvTable {
    /// A table of at most `count` entries (0: the default bound).
    pub fn new(count: usize) -> AvTable {
        AvTable { limit: if count == 0 { DEFAULT_LIMIT } else { count.max(DEFAULT_LIMIT) }, ..Default::default() }
    }

    /// Inserts `addr`; `None` when the table is full. Inserting an address twice gives a
    /// new index (the specification allows duplicates) but lookups by address find the first.
    pub fn insert(&mut self, addr: SocketAddrV4) -> Option<u64> {
        if self.entries.len() >= self.limit {
            return None;
        }
        let i = self.entries.len() as u64;
        self.entries.push(Some(addr));
        self.by_addr.entry(addr).or_insert(i);
        Some(i)
    }

    /// Removes an entry; `false` if it names none.
    pub fn remove(&mut self, fi_addr: u64) -> bool {
        let Some(slot) = usize::try_from(fi_addr).ok().and_then(|i| self.entries.get_mut(i)) else { return false };
        let Some(addr) = slot.take() else { return false };
        if self.by_addr.get(&addr) == Some(&fi_addr) {
            self.by_addr.remove(&addr);
            if let Some(j) = self.entries.iter().position(|e| *e == Some(addr)) {
                self.by_addr.insert(addr, j as u64);
            }
        }
        true
    }

    /// The address of an entry.
    pub fn lookup(&self, fi_addr: u64) -> Option<SocketAddrV4> {
        usize::try_from(fi_addr).ok().and_then(|i| self.entries.get(i)).copied().flatten()
    }

    /// The entry of an address (FI_SOURCE).
    pub fn reverse(&self, addr: SocketAddrV4) -> Option<u64> {
        self.by_addr.get(&addr).copied()
    }

    /// Distinct live addresses.
    pub fn addresses(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn table_indices_lookup_and_remove() {
        let mut t = AvTable::new(0);
        assert_eq!(t.insert(a("10.0.0.1:1")), Some(0));
        assert_eq!(t.insert(a("10.0.0.2:1")), Some(1));
        assert_eq!(t.insert(a("10.0.0.1:1")), Some(2));
        assert_eq!(t.lookup(1), Some(a("10.0.0.2:1")));
        assert_eq!(t.reverse(a("10.0.0.1:1")), Some(0));
        assert!(t.remove(0));
        assert!(!t.remove(0));
        assert_eq!(t.lookup(0), None);
        assert_eq!(t.reverse(a("10.0.0.1:1")), Some(2), "the duplicate still names the address");
        assert!(t.remove(2));
        assert_eq!(t.reverse(a("10.0.0.1:1")), None);
        assert_eq!(t.insert(a("10.0.0.3:1")), Some(3), "indices are not reused");
        assert_eq!(t.lookup(u64::MAX), None);
        assert_eq!(t.addresses(), 2);
    }
}
