//! The seam between the stack and a device: one trait for transmit, one call for receive
//! ([`crate::Stack::handle_frame`]). The AF_XDP socket and the simulated links both fit.

use umem::{Buf, BufSlice};

use crate::wire::{finish_partial, PartialChecksum};

/// The device's transmit ring had no room; the frame was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("link transmit queue full")]
pub struct Full;

/// What a device finishes for the stack on transmit, and what that costs in frame space.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxOffload {
    /// The device completes TCP checksums (Linux `CHECKSUM_PARTIAL`): the stack writes the
    /// pseudo-header sum into the field, reads no payload, and sends the segment with
    /// [`Link::transmit_partial`].
    pub checksum: bool,
    /// Bytes every fragment needs in front of it within its frame, and takes off the
    /// longest (AF_XDP `tx_metadata_len`: the kernel checks each descriptor as if metadata
    /// lay there). Headers start this far into a header frame, where a checksum request
    /// goes; payload is cut at a frame less this.
    pub headroom: usize,
}

/// A device the stack transmits on.
///
/// A packet is a list of fragments: fragment 0 is a header frame the stack filled
/// (Ethernet + IP + TCP headers, or a whole control packet); the rest are payload ranges of
/// file blocks or frames (AF_XDP multi-buffer: header descriptor with `XDP_PKT_CONTD`, then
/// payload descriptors). A device that holds fragments past `transmit` keeps their
/// references (clones) until the hardware is done.
pub trait Link {
    /// IP MTU in bytes.
    fn mtu(&self) -> usize;
    /// Whether a packet may be several fragments (AF_XDP `XDP_USE_SG`). When false the
    /// stack copies payload behind the header and counts the bytes.
    fn multi_buffer(&self) -> bool;
    /// Most fragments per packet (the kernel's limit is 17 on 6.x).
    fn max_frags(&self) -> usize {
        17
    }
    /// Whether the device can take `descs` descriptors now. The stack builds no segment it
    /// could not hand over (a refused segment would count as lost and wait for a
    /// retransmission). A device may answer from a cached view of its ring and look again
    /// only when that view is short of `descs`.
    fn has_tx_room(&mut self, descs: usize) -> bool {
        let _ = descs;
        true
    }
    /// What the device finishes on transmit ([`TxOffload`]); nothing by default.
    fn tx_offload(&self) -> TxOffload {
        TxOffload::default()
    }
    /// A free frame for headers or a control packet.
    fn alloc_frame(&mut self) -> Option<Buf>;
    /// Queues one packet.
    fn transmit(&mut self, frags: &[BufSlice]) -> Result<(), Full>;
    /// Queues one TCP segment whose checksum the device is to finish at `csum` (called only
    /// when [`Link::tx_offload`] says `checksum`). `frags[0]`, the header frame, has no
    /// other reference, so the device may write in front of it. By default the checksum is
    /// finished here in software, as the NIC would, and the packet goes to `transmit`.
    fn transmit_partial(&mut self, frags: &mut [BufSlice], csum: PartialChecksum) -> Result<(), Full> {
        if !finish_partial(frags, csum) {
            return Err(Full);
        }
        self.transmit(frags)
    }
}
