//! The seam between the stack and a device: one trait for transmit, one call for receive
//! ([`crate::Stack::handle_frame`]). The AF_XDP socket and the simulated links both fit.

use umem::{Buf, BufSlice};

/// The device's transmit ring had no room; the frame was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("link transmit queue full")]
pub struct Full;

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
    /// Descriptors the device can take now. The stack builds no segment it could not
    /// hand over: a refused segment would count as lost and wait for a retransmission.
    fn tx_room(&mut self) -> usize {
        usize::MAX
    }
    /// A free frame for headers or a control packet.
    fn alloc_frame(&mut self) -> Option<Buf>;
    /// Queues one packet.
    fn transmit(&mut self, frags: &[BufSlice]) -> Result<(), Full>;
}
