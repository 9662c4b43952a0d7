//! `payload_bytes_copied` is 0 for a whole transfer when the link does multi-buffer, and
//! equals the payload bytes sent when copying is forced (by the stack flag or by a link
//! without multi-buffer).

mod common;

use common::*;
use stack::sim::{Faults, Stream};
use stack::Duration;

const TOTAL: u64 = 4 << 20;

/// A wire with a deep queue, so nothing is dropped and nothing retransmitted.
fn clean_wire(seed: u64) -> Wire {
    Wire::new(Faults { queue_frames: 100_000, ..Faults::default() }, seed)
}

fn run_copy(multi_buffer: bool, force_copy: bool) -> (u64, u64, u64) {
    let stream = Stream::new(21);
    let mut a = OurHost::new(1, tcp_config(), multi_buffer, Role::Send { total: TOTAL }, stream).client(2);
    a.stack.set_force_copy(force_copy);
    let mut b = OurHost::new(2, tcp_config(), true, Role::Recv { total: TOTAL }, stream).server();
    let mut wire = clean_wire(21);
    run(&mut a, &mut b, &mut wire, Duration::from_secs(600));
    check_link(&a.link);
    let c = a.stack.counters();
    assert_eq!(c.tcp_retransmits, 0, "the clean wire should need no retransmission");
    (c.payload_bytes_copied, c.tx_payload_bytes, a.link.multi_frag_packets)
}

#[test]
fn zero_copies_with_multi_buffer() {
    let (copied, sent, multi) = run_copy(true, false);
    assert_eq!(copied, 0);
    assert_eq!(sent, TOTAL);
    assert!(multi > 0);
}

#[test]
fn forced_copy_counts_every_payload_byte() {
    let (copied, sent, multi) = run_copy(true, true);
    assert_eq!(copied, TOTAL);
    assert_eq!(sent, TOTAL);
    assert_eq!(multi, 0, "copy mode sends single-fragment packets");
}

#[test]
fn link_without_multi_buffer_copies() {
    let (copied, sent, multi) = run_copy(false, false);
    assert_eq!(copied, TOTAL);
    assert_eq!(sent, TOTAL);
    assert_eq!(multi, 0);
}

/// With loss, every transmitted payload byte (retransmissions included) is copied once.
#[test]
fn forced_copy_with_loss_counts_retransmissions_too() {
    let stream = Stream::new(22);
    let mut a = OurHost::new(1, tcp_config(), true, Role::Send { total: TOTAL / 2 }, stream).client(2);
    a.stack.set_force_copy(true);
    let mut b = OurHost::new(2, tcp_config(), true, Role::Recv { total: TOTAL / 2 }, stream).server();
    let mut wire = Wire::new(lossy_mix(0.02), 22);
    run(&mut a, &mut b, &mut wire, Duration::from_secs(600));
    let c = a.stack.counters();
    assert!(c.tcp_retransmits > 0);
    assert_eq!(c.payload_bytes_copied, c.tx_payload_bytes);
    assert!(c.tx_payload_bytes > TOTAL / 2);
}
