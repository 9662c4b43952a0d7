//! MTU 9000 over 4 KiB frames: a segment is a header frame plus payload fragments of at
//! most one frame each (an AF_XDP descriptor may not exceed the UMEM chunk), or, copied,
//! as many frames as the payload fills; byte-exact, clean and lossy.

mod common;

use common::*;
use stack::sim::{Faults, Stream};
use stack::Duration;

const TOTAL: u64 = 4 << 20;
const MTU: usize = 9000;

fn transfer(seed: u64, force_copy: bool, faults: Faults) -> (stack::Counters, usize, u64) {
    let stream = Stream::new(seed);
    let mut a = OurHost::with_mtu(1, tcp_config(), true, Role::Send { total: TOTAL }, stream, MTU).client(2);
    a.stack.set_force_copy(force_copy);
    let mut b = OurHost::with_mtu(2, tcp_config(), true, Role::Recv { total: TOTAL }, stream, MTU).server();
    let mut wire = Wire::new(faults, seed);
    run(&mut a, &mut b, &mut wire, Duration::from_secs(600));
    check_link(&a.link);
    check_link(&b.link);
    (a.stack.counters().clone(), a.link.largest_packet, a.link.multi_frag_packets)
}

fn clean() -> Faults {
    Faults { queue_frames: 100_000, ..Faults::default() }
}

#[test]
fn jumbo_segments_by_reference_are_cut_at_the_frame_size() {
    let (c, largest, multi) = transfer(31, false, clean());
    assert_eq!(c.payload_bytes_copied, 0);
    assert_eq!(c.tx_payload_bytes, TOTAL);
    assert!(largest > 8900 && largest <= MTU + 14, "largest packet {largest}: jumbo segments not used");
    assert!(multi > 0);
}

#[test]
fn jumbo_segments_copied_fill_several_frames() {
    let (c, largest, multi) = transfer(32, true, clean());
    assert_eq!(c.payload_bytes_copied, TOTAL);
    assert_eq!(c.tx_payload_bytes, TOTAL);
    assert!(largest > 8900, "largest packet {largest}");
    assert!(multi > 0, "a copied jumbo segment still spans frames");
}

#[test]
fn jumbo_segments_with_loss_and_reordering() {
    for force in [false, true] {
        let (c, _, _) = transfer(33 + u64::from(force), force, lossy_mix(0.02));
        assert!(c.tcp_retransmits > 0);
        assert_eq!(c.payload_bytes_copied, if force { c.tx_payload_bytes } else { 0 });
    }
}
