//! The benchmark's device: a TX ring of descriptors that a simulated NIC reads in place.
//!
//! `transmit` does what an AF_XDP TX batch does for a zero-copy NIC, minus the ring's
//! shared indices: it takes a reference to each fragment (the NIC's lease) and records
//! the packet. The client reads the fragments where they lie, and the next server turn
//! ends the leases (the completion ring). Nothing is copied and nothing is allocated
//! once the vectors have grown to a ring's worth.
//!
//! With checksum offload (the file server's default where the socket has TX metadata) the
//! link offers what such a NIC does: segments come with the pseudo-header sum only, and
//! the NIC finishes them, which costs the server nothing. To check the output (tests,
//! `--verify`) the link can finish them in software instead, as [`Link`]'s default does.

use stack::{Full, Link, PartialChecksum, TxOffload};
use umem::{Buf, BufSlice, Pool};

/// A TX ring over a pool; see the module docs.
#[derive(Debug)]
pub struct BenchLink {
    pool: Pool,
    mtu: usize,
    /// Descriptors the ring holds.
    ring: usize,
    /// Fragments of the packets in the ring, in order.
    descs: Vec<BufSlice>,
    /// Each packet's first descriptor and count.
    packets: Vec<(u32, u32)>,
    /// Descriptors transmitted so far.
    descs_total: u64,
    /// What the NIC finishes.
    offload: TxOffload,
    /// Finish partial checksums in software (to check them), not for free as a NIC does.
    finish: bool,
    /// Packets that came with a partial checksum.
    partial_total: u64,
}

impl BenchLink {
    /// A ring of `ring` descriptors for frames of `pool`, at IP MTU `mtu`, offering
    /// `offload`; with `finish`, partial checksums are finished in software on transmit.
    pub fn new(pool: Pool, mtu: usize, ring: usize, offload: TxOffload, finish: bool) -> BenchLink {
        BenchLink {
            pool,
            mtu,
            ring,
            descs: Vec::with_capacity(ring),
            packets: Vec::with_capacity(ring),
            descs_total: 0,
            offload,
            finish,
            partial_total: 0,
        }
    }

    /// The pool (the NIC writes received frames into its frames).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Packets in the ring.
    pub fn packets(&self) -> usize {
        self.packets.len()
    }

    /// Packet `i`'s fragments: the header frame first.
    pub fn packet(&self, i: usize) -> &[BufSlice] {
        let (first, n) = self.packets[i];
        &self.descs[first as usize..(first + n) as usize]
    }

    /// Descriptors transmitted so far.
    pub fn descriptors_total(&self) -> u64 {
        self.descs_total
    }

    /// Packets transmitted with a partial checksum so far.
    pub fn partial_total(&self) -> u64 {
        self.partial_total
    }

    /// Leaves partial checksums unfinished even when verifying (to show the check fails).
    #[cfg(test)]
    pub(crate) fn leave_checksums_unfinished(&mut self) {
        self.finish = false;
    }

    /// The NIC is done with every packet: the leases end (the completion ring).
    pub fn complete(&mut self) {
        self.descs.clear();
        self.packets.clear();
    }
}

impl Link for BenchLink {
    fn mtu(&self) -> usize {
        self.mtu
    }

    fn multi_buffer(&self) -> bool {
        true
    }

    fn has_tx_room(&mut self, descs: usize) -> bool {
        self.ring - self.descs.len() >= descs
    }

    fn tx_offload(&self) -> TxOffload {
        self.offload
    }

    fn alloc_frame(&mut self) -> Option<Buf> {
        self.pool.alloc_frame()
    }

    fn transmit(&mut self, frags: &[BufSlice]) -> Result<(), Full> {
        if frags.is_empty() || frags.len() > self.ring - self.descs.len() {
            return Err(Full);
        }
        self.packets.push((self.descs.len() as u32, frags.len() as u32));
        self.descs.extend_from_slice(frags);
        self.descs_total += frags.len() as u64;
        Ok(())
    }

    fn transmit_partial(&mut self, frags: &mut [BufSlice], csum: PartialChecksum) -> Result<(), Full> {
        if !self.offload.checksum || (self.finish && !stack::wire::finish_partial(frags, csum)) {
            return Err(Full);
        }
        self.transmit(frags)?;
        self.partial_total += 1;
        Ok(())
    }
}
