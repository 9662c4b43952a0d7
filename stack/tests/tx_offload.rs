//! TX checksum offload through the link seam: a sender whose link finishes checksums (the
//! stack writes the pseudo-header sum, the link sums the packet the way a NIC does) puts
//! on the wire exactly the frames a software-checksumming sender puts there, byte for
//! byte, for IPv4 and IPv6, with payload by reference (multi-buffer) and copied, at MTU
//! 1500 and 9000. The receiving stack verifies every checksum.

mod common;

use common::*;
use stack::sim::{Faults, Stream};
use stack::{Duration, Instant, TxOffload};

const TOTAL: u64 = 2 << 20;

/// AF_XDP's `tx_metadata_len` as the file server registers it.
const OFFLOAD: TxOffload = TxOffload { checksum: true, headroom: 24 };

/// Records what the inner host sends.
struct Recorder<'a> {
    host: &'a mut OurHost,
    sent: Vec<Vec<u8>>,
}

impl Host for Recorder<'_> {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        self.host.receive(now, frame);
    }
    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        let from = out.len();
        self.host.poll(now, out);
        self.sent.extend(out[from..].iter().cloned());
    }
    fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.host.poll_at(now)
    }
    fn done(&self) -> bool {
        self.host.done()
    }
    fn progress(&self) -> u64 {
        self.host.progress()
    }
    fn describe(&self) -> String {
        self.host.describe()
    }
}

struct Run {
    frames: Vec<Vec<u8>>,
    partial: u64,
    segments: u64,
    copied: u64,
    multi_frag: u64,
}

/// Sends `TOTAL` bytes from host 1 to host 2 over a clean wire and records host 1's frames.
fn transfer(offload: TxOffload, multi_buffer: bool, v6: bool, mtu: usize) -> Run {
    let stream = Stream::new(31);
    let a = OurHost::with_mtu(1, tcp_config(), multi_buffer, Role::Send { total: TOTAL }, stream, mtu);
    let mut a = if v6 { a.client_v6(2) } else { a.client(2) };
    a.link.tx_offload = offload;
    let mut b = OurHost::with_mtu(2, tcp_config(), true, Role::Recv { total: TOTAL }, stream, mtu).server();
    let mut wire = Wire::new(Faults { queue_frames: 100_000, ..Faults::default() }, 31);
    let mut rec = Recorder { host: &mut a, sent: Vec::new() };
    run(&mut rec, &mut b, &mut wire, Duration::from_secs(600));
    let frames = rec.sent;
    check_link(&a.link);
    assert_eq!(b.stack.counters().tcp_bad_checksum, 0, "the receiver found a bad checksum");
    Run {
        frames,
        partial: a.link.partial_packets,
        segments: a.stack.counters().tcp_tx_segments,
        copied: a.stack.counters().payload_bytes_copied,
        multi_frag: a.link.multi_frag_packets,
    }
}

fn same_frames_with_and_without_offload(multi_buffer: bool, v6: bool, mtu: usize) {
    let soft = transfer(TxOffload::default(), multi_buffer, v6, mtu);
    let off = transfer(OFFLOAD, multi_buffer, v6, mtu);
    assert_eq!(soft.partial, 0, "no partial checksum without the offer");
    assert_eq!(off.partial, off.segments, "every TCP segment left its checksum to the link");
    assert!(off.frames.len() as u64 <= off.segments + 2, "the rest is address resolution");
    assert!(off.frames.len() as u64 > TOTAL / 9000, "a whole transfer: {} frames", off.frames.len());
    assert_eq!(soft.frames.len(), off.frames.len(), "as many frames");
    for (i, (s, o)) in soft.frames.iter().zip(&off.frames).enumerate() {
        assert!(s == o, "frame {i} differs ({} / {} bytes)", s.len(), o.len());
    }
    assert_eq!(soft.copied, off.copied, "the same payload copied (all of it, or none)");
    assert_eq!(soft.multi_frag > 0, multi_buffer, "payload by reference exactly with multi-buffer");
}

#[test]
fn ipv4_multi_buffer_offloaded_frames_equal_software_ones() {
    same_frames_with_and_without_offload(true, false, 1500);
}

#[test]
fn ipv6_multi_buffer_offloaded_frames_equal_software_ones() {
    same_frames_with_and_without_offload(true, true, 1500);
}

#[test]
fn ipv4_copied_payload_offloaded_frames_equal_software_ones() {
    same_frames_with_and_without_offload(false, false, 1500);
}

#[test]
fn ipv6_copied_payload_offloaded_frames_equal_software_ones() {
    same_frames_with_and_without_offload(false, true, 1500);
}

#[test]
fn jumbo_segments_cut_short_of_the_headroom_equal_software_ones() {
    // A 9000-byte segment's payload crosses frames: cut at 4096 - 24 with offload, and the
    // frames on the wire are still the same.
    same_frames_with_and_without_offload(true, false, 9000);
    same_frames_with_and_without_offload(true, true, 9000);
}
