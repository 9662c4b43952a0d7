//! The stack's device seam over an AF_XDP socket: a packet's fragments become one TX
//! batch (header frame with `XDP_PKT_CONTD`, then payload descriptors into file blocks).

use datapath::{PushError, XskSocket};
use stack::{Full, Link};
use umem::{Buf, BufSlice};

/// `stack::Link` for one socket.
pub struct XskLink<'a> {
    pub sock: &'a mut XskSocket,
    pub mtu: usize,
    /// Packets refused for a reason other than a full ring (should stay 0).
    pub refused: &'a mut u64,
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

    fn alloc_frame(&mut self) -> Option<Buf> {
        self.sock.pool().alloc_frame()
    }

    fn transmit(&mut self, frags: &[BufSlice]) -> Result<(), Full> {
        let mut batch = self.sock.tx_batch(frags.len() as u32);
        match batch.push(frags) {
            Ok(()) => {
                batch.commit();
                Ok(())
            }
            Err(PushError::Full) => Err(Full),
            Err(e) => {
                *self.refused += 1;
                log::warn!("transmit refused: {e}");
                Err(Full)
            }
        }
    }
}
