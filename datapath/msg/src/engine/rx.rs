//! The engine's receive path: a packet's headers checked, its peer found or learned, and
//! its datagram handed to reliability, reassembly or the acknowledgement logic.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddrV4};
use std::time::Instant;

use umem::BufSlice;

use super::Engine;
use crate::buf::{Dgram, Msg, Segs};
use crate::reasm::{Reassembler, Reject};
use crate::reliable::{Accept, RxWindow};
use crate::wire::{self, MsgHdr, NotUdp, HDR_LEN, MSG_HDR_LEN};
use crate::{MsgStats, PeerId};

impl Engine {
    /// Takes one received packet, in the buffers it arrived in (several with multi-buffer).
    pub fn handle_datagram(&mut self, now: Instant, mut frags: Vec<BufSlice>) {
        let total: usize = frags.iter().map(BufSlice::len).sum();
        let Some(first) = frags.first() else { return };
        let rx = match wire::parse_udp(first.as_bytes(), total) {
            Ok(rx) => rx,
            Err(NotUdp::IpFragment) => {
                self.stats.ip_fragments += 1;
                return;
            }
            Err(NotUdp::Icmp) => {
                self.stats.icmp += 1;
                return;
            }
            Err(NotUdp::Malformed | NotUdp::IpChecksum) => {
                self.stats.not_ours += 1;
                return;
            }
        };
        let (IpAddr::V4(src_ip), IpAddr::V4(dst_ip)) = (rx.src, rx.dst) else {
            self.stats.not_ours += 1;
            return;
        };
        let local = self.cfg.local;
        if rx.dst_port != local.port() || (!local.ip().is_unspecified() && dst_ip != *local.ip()) {
            self.stats.not_ours += 1;
            return;
        }
        if self.cfg.verify_checksum && !wire::udp_verifies(&rx, frags.iter().map(BufSlice::as_bytes)) {
            self.stats.bad_checksum += 1;
            return;
        }
        let hdr_end = rx.payload_off() + MSG_HDR_LEN;
        let Some(hdr) = (rx.payload_len() >= MSG_HDR_LEN && frags[0].len() >= hdr_end)
            .then(|| MsgHdr::parse(&frags[0].as_bytes()[rx.payload_off()..]))
            .flatten()
        else {
            self.stats.bad_header += 1;
            return;
        };
        // Reliable state only at reliable endpoints, and the other way round: both ends
        // must agree, and a mismatched datagram makes no state of any kind.
        let mismatch = match hdr.kind {
            wire::KIND_DATA => hdr.reliable() != self.cfg.reliable,
            wire::KIND_ACK => !self.cfg.reliable,
            wire::KIND_PAD => false,
            _ => {
                self.stats.bad_header += 1;
                return;
            }
        };
        if mismatch {
            self.stats.mode_mismatch += 1;
            return;
        }
        let payload = rx.payload_len() - MSG_HDR_LEN;
        // Trim to exactly [HDR_LEN bytes of headers | payload]: IP options go in front,
        // Ethernet padding behind.
        frags[0].advance(hdr_end - HDR_LEN);
        let mut keep = HDR_LEN + payload;
        frags.retain_mut(|f| {
            let k = keep.min(f.len());
            f.truncate(k);
            keep -= k;
            k > 0
        });
        let src = SocketAddrV4::new(src_ip, rx.src_port);
        let peer = match self.peers.lookup(&src) {
            Some(p) => p,
            None if self.cfg.accept_unknown_peers => match self.insert(src, rx.src_mac, true) {
                Some(p) => {
                    log::info!("{}: new peer {src} ({})", self.cfg.local, datapath::fmt_mac(&rx.src_mac));
                    p
                }
                None => {
                    self.stats.unknown_peer_drops += 1;
                    return;
                }
            },
            None => {
                self.stats.unknown_peer_drops += 1;
                return;
            }
        };
        if let Some(p) = self.peers.get_mut(peer) {
            p.referenced = true;
            p.last_rx = Some(now);
        }
        self.stats.dgrams_recv += 1;
        match hdr.kind {
            wire::KIND_ACK => self.on_ack(now, peer, &hdr, &frags[0].as_bytes()[HDR_LEN..]),
            wire::KIND_PAD => self.stats.pads_recv += 1,
            _ => {
                let mut first = vec![false; frags.len()];
                first[0] = true;
                let d = Dgram { hdr, s: Segs { segs: frags, first }, payload };
                if hdr.reliable() {
                    self.reliable_data(now, peer, d);
                } else {
                    feed(&mut self.reasm, &mut self.ready, &mut self.stats, now, peer, d);
                }
            }
        }
        self.arm(now);
    }

    fn reliable_data(&mut self, now: Instant, peer: PeerId, d: Dgram) {
        let w = self.cfg.window;
        let Some(p) = self.peers.get_mut(peer) else { return };
        if p.rx.is_none() {
            // The first datagram seen from this sender says where its sequence starts.
            if !RxWindow::<Dgram>::can_start(w, d.hdr.seq, d.hdr.base) {
                self.stats.out_of_window += 1;
                return;
            }
            p.rx = Some(RxWindow::new(w, d.hdr.base));
        }
        let Some(rxw) = p.rx.as_mut() else { return };
        let (was_due, was_urgent) = (rxw.ack_due, rxw.urgent);
        match rxw.accept(d.hdr.seq, d) {
            Accept::New => {}
            Accept::Duplicate => self.stats.dup_dgrams += 1,
            Accept::OutOfWindow => self.stats.out_of_window += 1,
        }
        while let Some(d) = rxw.deliver() {
            if feed(&mut self.reasm, &mut self.ready, &mut self.stats, now, peer, d) {
                // A whole message: its sender can free it now, and may wait on it.
                rxw.urgent = true;
            }
        }
        if rxw.urgent && !was_urgent {
            self.acks.push(peer);
        } else if !was_due {
            self.acks_later.push(peer);
            let at = now + self.cfg.ack_delay();
            self.ack_at = Some(self.ack_at.map_or(at, |t| t.min(at)));
        }
        if rxw.held() > 0 && !p.timed {
            p.timed = true;
            self.timed.push(peer);
        }
    }

    fn on_ack(&mut self, now: Instant, peer: PeerId, hdr: &MsgHdr, sack: &[u8]) {
        self.stats.acks_recv += 1;
        let mut fast = std::mem::take(&mut self.scratch_seqs);
        fast.clear();
        if let Some(tx) = self.peers.get_mut(peer).and_then(|p| p.tx.as_mut()) {
            if tx.on_ack(now, hdr.seq, sack, &mut fast).is_err() {
                self.stats.bad_acks += 1;
            }
        }
        self.stats.fast_retransmits += fast.len() as u64;
        self.retransmit(now, peer, &fast);
        self.scratch_seqs = fast;
    }
}

/// Gives a datagram to the reassembler and queues what it completes; true if it
/// completed a message.
fn feed(
    reasm: &mut Reassembler,
    ready: &mut VecDeque<Msg>,
    stats: &mut MsgStats,
    now: Instant,
    peer: PeerId,
    d: Dgram,
) -> bool {
    match reasm.add(now, peer, d) {
        Ok(Some(m)) => {
            stats.msgs_recv += 1;
            stats.bytes_recv += m.len() as u64;
            ready.push_back(m);
            return true;
        }
        Ok(None) => {}
        Err(Reject::Malformed) => stats.bad_header += 1,
        Err(Reject::Duplicate) => stats.dup_dgrams += 1,
    }
    false
}
