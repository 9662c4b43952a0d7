//! Multi-buffer receive: a packet longer than one RX frame arrives as several descriptors,
//! each flagged `XDP_PKT_CONTD` but the last, possibly across receive batches. Only a
//! whole packet is a frame: its fragments are joined into one frame of the pool when the
//! packet fits one (requests and ACKs always do), and a longer packet is dropped whole.
//!
//! No fragment is ever taken for a frame of its own. A fragment other than the first
//! starts in the middle of a packet, at bytes the sender chose: taken alone, it would be
//! any Ethernet frame the sender wrote there (an ARP reply, a SYN from any address), past
//! the XDP program, which classified only the packet's first bytes.
//!
//! ```text
//!   [frag CONTD] [frag CONTD] [frag] ──► fits a frame? ── yes ──► copy into one frame ──► stack
//!                                                      └─ no ──► drop all, counted
//! ```

use umem::{BufSlice, Pool};

/// Most fragments of one packet (the kernel's own limit is 18).
const MAX_FRAGS: usize = 32;

/// Counters of multi-buffer receive.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RxStats {
    /// Multi-buffer packets joined into one frame.
    pub joined: u64,
    /// Bytes copied to join them (request bytes and headers, never file payload).
    pub joined_bytes: u64,
    /// Multi-buffer packets dropped whole: longer than a frame.
    pub too_long: u64,
    /// Multi-buffer packets dropped whole: no free frame to join them in.
    pub no_frame: u64,
}

/// The fragments of the packet being received.
#[derive(Debug, Default)]
pub struct Reassembly {
    frags: Vec<BufSlice>,
    len: usize,
    /// The packet in progress is dropped: skip to its last fragment.
    dropping: bool,
    pub stats: RxStats,
}

impl Reassembly {
    /// Takes one received descriptor (`more`: `XDP_PKT_CONTD`); returns a whole frame
    /// when this completes one. Frames of `pool` hold the joined packets.
    pub fn push(&mut self, pool: &Pool, data: BufSlice, more: bool) -> Option<BufSlice> {
        if !more && self.frags.is_empty() && !self.dropping {
            return Some(data);
        }
        if !self.dropping {
            let fits = self.len + data.len() <= pool.frame_size() as usize && self.frags.len() < MAX_FRAGS;
            if fits {
                self.len += data.len();
                self.frags.push(data);
            } else {
                self.dropping = true;
                self.frags.clear();
                self.len = 0;
            }
        }
        if more {
            return None;
        }
        if std::mem::take(&mut self.dropping) {
            self.stats.too_long += 1;
            return None;
        }
        let joined = self.join(pool);
        self.frags.clear();
        self.len = 0;
        joined
    }

    fn join(&mut self, pool: &Pool) -> Option<BufSlice> {
        let Some(mut frame) = pool.alloc_frame() else {
            self.stats.no_frame += 1;
            return None;
        };
        let buf = frame.get_mut()?;
        let mut at = 0;
        for f in &self.frags {
            buf[at..at + f.len()].copy_from_slice(f.as_bytes());
            at += f.len();
        }
        self.stats.joined += 1;
        self.stats.joined_bytes += at as u64;
        BufSlice::new(frame, 0..at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use umem::{HugePages, PoolConfig};

    fn pool() -> Pool {
        Pool::new(&PoolConfig {
            frame_size: 4096,
            frames: 16,
            block_size: 4096,
            blocks: 0,
            hugepages: HugePages::Off,
            lock: false,
        })
        .unwrap()
    }

    /// `bytes` in a frame of `p`, at offset 256 as the kernel places received data.
    fn frag(p: &Pool, bytes: &[u8]) -> BufSlice {
        let mut f = p.alloc_frame().unwrap();
        f.get_mut().unwrap()[256..256 + bytes.len()].copy_from_slice(bytes);
        BufSlice::new(f, 256..256 + bytes.len()).unwrap()
    }

    #[test]
    fn a_single_buffer_packet_passes_untouched() {
        let p = pool();
        let mut r = Reassembly::default();
        let f = frag(&p, b"frame");
        let addr = f.addr();
        let out = r.push(&p, f, false).unwrap();
        assert_eq!(out.addr(), addr, "no copy");
        assert_eq!(r.stats, RxStats::default());
    }

    #[test]
    fn fragments_that_fit_a_frame_are_joined_in_order() {
        let p = pool();
        let mut r = Reassembly::default();
        let packet: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 251) as u8).collect();
        assert!(r.push(&p, frag(&p, &packet[..3840]), true).is_none());
        let out = r.push(&p, frag(&p, &packet[3840..]), false).expect("a whole frame");
        assert_eq!(out.as_bytes(), &packet[..]);
        assert_eq!(r.stats.joined, 1);
        assert_eq!(r.stats.joined_bytes, 4000);
        drop(out);
        assert_eq!(p.stats().frames_free, 16, "every fragment's frame went back");
    }

    #[test]
    fn a_packet_longer_than_a_frame_is_dropped_whole_and_its_tail_is_no_frame() {
        let p = pool();
        let mut r = Reassembly::default();
        // 9014 bytes in three fragments; the last would parse as a frame of its own.
        let tail = b"a forged Ethernet frame at the start of the last fragment";
        assert!(r.push(&p, frag(&p, &[1u8; 3840]), true).is_none());
        assert!(r.push(&p, frag(&p, &[2u8; 3840]), true).is_none());
        assert!(r.push(&p, frag(&p, tail), false).is_none(), "the tail reached the stack as a frame");
        assert_eq!(r.stats.too_long, 1);
        assert_eq!(p.stats().frames_free, 16, "nothing held");
        // The next packet is whole again.
        assert_eq!(r.push(&p, frag(&p, b"next"), false).unwrap().as_bytes(), b"next");
    }

    #[test]
    fn a_packet_split_across_receive_batches_is_still_one_packet() {
        let p = pool();
        let mut r = Reassembly::default();
        assert!(r.push(&p, frag(&p, &[7u8; 100]), true).is_none());
        // (a new batch begins here: the state carries over)
        assert_eq!(r.push(&p, frag(&p, &[8u8; 50]), false).unwrap().len(), 150);
    }
}
