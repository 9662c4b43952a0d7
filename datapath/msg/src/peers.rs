//! The peer table: bounded, with generation-checked ids and eviction of idle learned peers.
//!
//! A slot holds one peer; its [`PeerId`] carries the slot's generation, so an id of a peer
//! that left (evicted, lost) names nothing instead of its slot's next tenant. Peers the
//! application added are never evicted. Peers learned from their first datagram (when
//! the engine accepts unknown sources) are kept in a CLOCK ring: making room walks it,
//! giving each peer that was heard from or sent to since the last walk a second chance,
//! skipping those with reliable state in motion (datagrams unacknowledged or held for
//! reordering), and evicting the first that is neither. The walk is bounded by twice the
//! ring and runs only when the table is full, never per turn.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;
use std::time::Instant;

use umem::BufSlice;

use super::buf::Dgram;
use super::reliable::{RxWindow, TxWindow};
use super::wire::Link;
use super::PeerId;

/// One peer's state.
#[derive(Debug)]
pub(crate) struct Peer {
    pub addr: SocketAddrV4,
    pub link: Link,
    pub next_msg: u32,
    pub tx: Option<TxWindow<Vec<BufSlice>>>,
    pub rx: Option<RxWindow<Dgram>>,
    /// Learned from a datagram rather than added by the application (evictable).
    pub learned: bool,
    /// Used since the CLOCK hand last passed (second chance).
    pub referenced: bool,
    /// When a datagram of it last arrived (`None`: none yet).
    pub last_rx: Option<Instant>,
    /// In the engine's list of peers with timed state.
    pub timed: bool,
}

impl Peer {
    /// Reliable state in motion: something to retransmit or reorder.
    pub fn busy(&self) -> bool {
        self.tx.as_ref().is_some_and(|t| t.in_flight() > 0) || self.rx.as_ref().is_some_and(|r| r.held() > 0)
    }
}

#[derive(Debug)]
struct Slot {
    gen: u32,
    peer: Option<Peer>,
}

/// The table.
#[derive(Debug)]
pub(crate) struct PeerTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_addr: HashMap<SocketAddrV4, PeerId>,
    /// Learned peers, in CLOCK order (may hold ids of peers that left: skipped).
    clock: VecDeque<PeerId>,
    len: usize,
    max: usize,
}

impl PeerTable {
    pub fn new(max: usize) -> Self {
        PeerTable { slots: Vec::new(), free: Vec::new(), by_addr: HashMap::new(), clock: VecDeque::new(), len: 0, max }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_full(&self) -> bool {
        self.len >= self.max
    }

    pub fn lookup(&self, addr: &SocketAddrV4) -> Option<PeerId> {
        self.by_addr.get(addr).copied()
    }

    pub fn get(&self, id: PeerId) -> Option<&Peer> {
        self.slots.get(id.slot as usize).filter(|s| s.gen == id.gen)?.peer.as_ref()
    }

    pub fn get_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.slots.get_mut(id.slot as usize).filter(|s| s.gen == id.gen)?.peer.as_mut()
    }

    /// Puts `peer` into a free slot; `None` when the table is full (make room first).
    pub fn insert(&mut self, peer: Peer) -> Option<PeerId> {
        if self.is_full() {
            return None;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot { gen: 0, peer: None });
                self.slots.len() as u32 - 1
            }
        };
        let s = &mut self.slots[slot as usize];
        s.gen = s.gen.wrapping_add(1);
        let id = PeerId { slot, gen: s.gen };
        self.by_addr.insert(peer.addr, id);
        let learned = peer.learned;
        s.peer = Some(peer);
        self.len += 1;
        if learned {
            self.clock.push_back(id);
            if self.clock.len() > 2 * self.max {
                // Ids of peers that left since the hand last passed: drop them, so the ring
                // stays bounded by the table.
                let slots = &self.slots;
                self.clock
                    .retain(|id| slots.get(id.slot as usize).is_some_and(|s| s.gen == id.gen && s.peer.is_some()));
            }
        }
        Some(id)
    }

    /// Takes the peer out; its id (and every copy of it) names nothing from now on.
    pub fn remove(&mut self, id: PeerId) -> Option<Peer> {
        let s = self.slots.get_mut(id.slot as usize).filter(|s| s.gen == id.gen)?;
        let peer = s.peer.take()?;
        self.free.push(id.slot);
        self.by_addr.remove(&peer.addr);
        self.len -= 1;
        Some(peer)
    }

    /// The learned peer to evict to make room (CLOCK), or `None` if every learned peer
    /// is busy or was used since the hand last passed twice.
    pub fn victim(&mut self) -> Option<PeerId> {
        for _ in 0..2 * self.clock.len() {
            let id = self.clock.pop_front()?;
            // Gone, or adopted by the application since: no longer on the ring.
            let Some(p) = self.get_mut(id).filter(|p| p.learned) else { continue };
            if p.referenced || p.busy() {
                p.referenced = false;
                self.clock.push_back(id);
                continue;
            }
            return Some(id);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Link;

    fn peer(port: u16, learned: bool) -> Peer {
        let addr = SocketAddrV4::new("10.0.0.9".parse().unwrap(), port);
        let link = Link {
            src_mac: [0; 6],
            dst_mac: [0; 6],
            src_ip: *addr.ip(),
            dst_ip: *addr.ip(),
            src_port: 1,
            dst_port: port,
        };
        Peer { addr, link, next_msg: 0, tx: None, rx: None, learned, referenced: false, last_rx: None, timed: false }
    }

    #[test]
    fn ids_of_removed_peers_name_nothing_even_when_the_slot_is_reused() {
        let mut t = PeerTable::new(2);
        let a = t.insert(peer(1, false)).unwrap();
        let b = t.insert(peer(2, false)).unwrap();
        assert!(t.insert(peer(3, false)).is_none(), "bounded");
        assert_eq!(t.remove(a).map(|p| p.addr.port()), Some(1));
        let c = t.insert(peer(3, false)).unwrap();
        assert_eq!(c.slot, a.slot, "the slot is reused");
        assert!(t.get(a).is_none(), "the old id is stale");
        assert_eq!(t.get(c).map(|p| p.addr.port()), Some(3));
        assert!(t.remove(a).is_none());
        assert_eq!(t.lookup(&peer(2, false).addr), Some(b));
        assert_eq!(PeerId::from_u64(c.as_u64()), c);
    }

    #[test]
    fn clock_evicts_idle_learned_peers_and_spares_added_and_recent_ones() {
        let mut t = PeerTable::new(4);
        let added = t.insert(peer(1, false)).unwrap();
        let l1 = t.insert(peer(2, true)).unwrap();
        let l2 = t.insert(peer(3, true)).unwrap();
        let l3 = t.insert(peer(4, true)).unwrap();
        t.get_mut(l1).unwrap().referenced = true;
        assert_eq!(t.victim(), Some(l2), "l1 had a second chance; l2 is idle");
        t.remove(l2);
        // Everyone learned is recent: the hand clears their bits, then takes the oldest.
        t.get_mut(l3).unwrap().referenced = true;
        let v = t.victim();
        assert!(v == Some(l1) || v == Some(l3));
        assert_ne!(v, Some(added), "a peer the application added is never evicted");
    }

    #[test]
    fn a_learned_peer_the_application_adopts_leaves_the_ring_and_the_ring_stays_bounded() {
        let mut t = PeerTable::new(2);
        let l = t.insert(peer(1, true)).unwrap();
        t.get_mut(l).unwrap().learned = false; // add_peer of a learned peer
        let m = t.insert(peer(2, true)).unwrap();
        assert_eq!(t.victim(), Some(m), "the adopted peer is passed over");
        // Churn of learned peers that leave without the table filling up.
        t.remove(m);
        for port in 10..1000 {
            let id = t.insert(peer(port, true)).unwrap();
            t.remove(id);
        }
        assert!(t.clock.len() <= 2 * 2 + 1, "{} ids on the ring of a 2-peer table", t.clock.len());
    }
}
