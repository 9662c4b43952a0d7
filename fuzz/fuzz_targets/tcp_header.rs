//! The TCP header and option parser (`stack::wire::TcpHeader`, options and SACK blocks):
//! no input panics, a parsed header's length lies within the segment and 20..=60 bytes,
//! and what the stack emits for a parsed header parses back to the same header (after the
//! normalisations `emit` documents: the ACK field is zero without the ACK flag, and SACK
//! blocks beyond what fits in the option space are dropped).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::{TcpFlags, TcpHeader, TCP_MAX_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok((hdr, hlen)) = TcpHeader::parse(data) else { return };
    assert!((20..=60).contains(&hlen) && hlen <= data.len(), "header length {hlen} of {}", data.len());
    assert!(hdr.src_port != 0 && hdr.dst_port != 0);
    assert!(hdr.options.window_scale.is_none_or(|w| w <= 14));
    let mut buf = [0u8; TCP_MAX_HEADER_LEN];
    let n = hdr.emit(&mut buf);
    assert_eq!(n, hdr.header_len());
    let (again, alen) = TcpHeader::parse(&buf[..n]).expect("an emitted header parses");
    assert_eq!(alen, n);
    let mut want = hdr;
    if !want.flags.has(TcpFlags::ACK) {
        want.ack = stack::wire::Seq(0);
    }
    let kept = again.options.sack.as_slice().len();
    assert!(kept <= want.options.sack.as_slice().len());
    want.options.sack.truncate(kept);
    assert_eq!(again, want, "round trip of {data:02x?}");
});
