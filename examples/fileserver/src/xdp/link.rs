//! The stack's device seam over an AF_XDP socket: a packet's fragments become descriptors
//! (header frame with `XDP_PKT_CONTD`, then payload descriptors into file blocks), written
//! into the TX ring as the stack hands them over and published together by
//! `XskSocket::poll` after the turn: one TX batch per turn, not one per packet, and nothing
//! allocated for either.
//!
//! Where the socket has TX checksum offload, the stack leaves each segment's checksum to
//! it: the header carries the pseudo-header sum and a checksum request sits in the TX
//! metadata in front of it (copy mode: the kernel marks the skb `CHECKSUM_PARTIAL`;
//! zero-copy: the NIC finishes it). No payload byte is read by this process then.
//!
//! With a packet capture running, each packet the ring took is also recorded by the tap
//! (its first snap-length bytes, see [`crate::pcap`]).

use datapath::{PushError, TxChecksum, XskSocket};
use stack::{Full, Link, PartialChecksum, TxOffload};
use umem::{Buf, BufSlice};

use crate::pcap::{Direction, Tap};

/// `stack::Link` for one socket.
pub struct XskLink<'a> {
    pub sock: &'a mut XskSocket,
    pub mtu: usize,
    /// Packets refused for a reason other than a full ring (should stay 0).
    pub refused: &'a mut u64,
    /// The packet capture's tap, if there is one.
    pub tap: Option<&'a mut Tap>,
}

impl XskLink<'_> {
    /// Records a packet the ring took.
    fn record(&mut self, taken: bool, frags: &[BufSlice]) {
        if let (true, Some(t)) = (taken, &mut self.tap) {
            t.record(Direction::Outbound, frags.iter().map(BufSlice::as_bytes));
        }
    }

    fn outcome(&mut self, res: Result<(), PushError>) -> Result<(), Full> {
        match res {
            Ok(()) => Ok(()),
            Err(PushError::Full) => Err(Full),
            Err(e) => {
                *self.refused += 1;
                log::warn!("transmit refused: {e}");
                Err(Full)
            }
        }
    }
}

impl Link for XskLink<'_> {
    fn mtu(&self) -> usize {
        self.mtu
    }

    fn multi_buffer(&self) -> bool {
        self.sock.multi_buffer()
    }

    fn has_tx_room(&mut self, descs: usize) -> bool {
        // The kernel's consumer index is read again only when the cached view is short.
        let want = u32::try_from(descs).unwrap_or(u32::MAX);
        self.sock.tx_room(want) >= want
    }

    fn tx_offload(&self) -> TxOffload {
        TxOffload { checksum: self.sock.tx_checksum_offload(), headroom: self.sock.tx_metadata_len() as usize }
    }

    fn alloc_frame(&mut self) -> Option<Buf> {
        self.sock.pool().alloc_frame()
    }

    fn transmit(&mut self, frags: &[BufSlice]) -> Result<(), Full> {
        let res = self.sock.queue_tx(frags);
        self.record(res.is_ok(), frags);
        self.outcome(res)
    }

    fn transmit_partial(&mut self, frags: &mut [BufSlice], csum: PartialChecksum) -> Result<(), Full> {
        let res = self.sock.queue_tx_with_checksum(frags, TxChecksum { start: csum.start, offset: csum.offset });
        self.record(res.is_ok(), frags);
        self.outcome(res)
    }
}
