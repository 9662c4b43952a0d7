//! D-SACK (RFC 2883): the receiver reports a duplicate segment in the first SACK block of
//! its next ACK, so the sender can tell a needless retransmission from a loss.
//!
//! - As a receiver: a segment at or below `rcv_nxt`, or inside out-of-order data already
//!   held, yields a D-SACK block for the duplicated part (followed, when it lies inside
//!   an out-of-order block, by that block, which [`super::RecvQueue::sack_blocks`] puts
//!   first among the others). Each duplicate is reported once.
//! - As a sender: the first block is a D-SACK when it lies below the cumulative ACK or
//!   inside the second block (RFC 2883 section 4; Linux `tcp_check_dsack`). It is not
//!   added to the scoreboard; it feeds RACK's reordering window and the undo of spurious
//!   recoveries.

use crate::wire::Seq;

/// The D-SACK block of an ACK's SACK blocks, if the first one is one.
pub fn dsack_block(blocks: &[(Seq, Seq)], ack: Seq) -> Option<(Seq, Seq)> {
    let &(l0, r0) = blocks.first()?;
    if !l0.lt(r0) {
        return None;
    }
    if l0.lt(ack) {
        return Some((l0, r0));
    }
    let &(l1, r1) = blocks.get(1)?;
    (l0.ge(l1) && r0.le(r1)).then_some((l0, r0))
}

/// The part of a received segment `[seq, end)` that duplicates data already received:
/// below `rcv_nxt`, or else the first overlap with out-of-order data `held`.
pub fn duplicate_part(
    rcv_nxt: Seq,
    seq: Seq,
    end: Seq,
    held: impl Fn(Seq, Seq) -> Option<(Seq, Seq)>,
) -> Option<(Seq, Seq)> {
    if !seq.lt(end) {
        return None;
    }
    if seq.lt(rcv_nxt) {
        return Some((seq, end.min(rcv_nxt)));
    }
    held(seq, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_recognises_both_kinds() {
        let ack = Seq(1000);
        assert_eq!(dsack_block(&[(Seq(500), Seq(600))], ack), Some((Seq(500), Seq(600))));
        assert_eq!(
            dsack_block(&[(Seq(1200), Seq(1300)), (Seq(1100), Seq(1500))], ack),
            Some((Seq(1200), Seq(1300))),
            "inside the second block"
        );
        assert_eq!(dsack_block(&[(Seq(1200), Seq(1300)), (Seq(1400), Seq(1500))], ack), None);
        assert_eq!(dsack_block(&[(Seq(1200), Seq(1300))], ack), None);
        assert_eq!(dsack_block(&[], ack), None);
    }

    #[test]
    fn receiver_finds_the_duplicated_part() {
        let none = |_: Seq, _: Seq| None;
        assert_eq!(duplicate_part(Seq(1000), Seq(800), Seq(900), none), Some((Seq(800), Seq(900))));
        assert_eq!(duplicate_part(Seq(1000), Seq(900), Seq(1100), none), Some((Seq(900), Seq(1000))));
        assert_eq!(duplicate_part(Seq(1000), Seq(1000), Seq(1100), none), None);
        let held = |a: Seq, b: Seq| Some((a.max(Seq(1200)), b.min(Seq(1300)))).filter(|(x, y)| x.lt(*y));
        assert_eq!(duplicate_part(Seq(1000), Seq(1250), Seq(1350), held), Some((Seq(1250), Seq(1300))));
    }
}
