//! Undoing a window reduction that proves spurious, as Linux's `tcp_try_undo_*` do:
//!
//! - **D-SACK** (RFC 3708): every retransmission of the episode came back as a duplicate,
//!   so none was needed;
//! - **timestamps** (Eifel detection, RFC 3522): an ACK that advances `snd_una` echoes a
//!   timestamp from before the episode's first retransmission, so it answers the original
//!   transmission, which was only late.
//!
//! The response (RFC 4015, RFC 9438 section 4.9) restores the controller's state from
//! before the reduction and, after a timeout, stops resending what was marked lost.

use crate::wire::Seq;

/// Undo bookkeeping of one recovery or timeout episode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Undo {
    /// `snd_una` when the episode began (Linux `undo_marker`); `None`: nothing to undo.
    marker: Option<Seq>,
    /// Retransmissions of the episode not yet shown spurious by a D-SACK, in segments;
    /// `None` until the first one (so an episode with none is not "all spurious").
    retrans: Option<u32>,
    /// TSval of the episode's first retransmission (Linux `retrans_stamp`).
    stamp: Option<u32>,
}

impl Undo {
    /// Nothing to undo.
    pub const NONE: Undo = Undo { marker: None, retrans: None, stamp: None };

    /// An episode begins at `snd_una`, with `in_flight` retransmitted segments already out.
    pub fn start(&mut self, snd_una: Seq, in_flight: u32) {
        *self = Undo { marker: Some(snd_una), retrans: (in_flight > 0).then_some(in_flight), stamp: None };
    }

    /// `segs` segments were retransmitted carrying timestamp `tsval`.
    pub fn on_retransmit(&mut self, tsval: Option<u32>, segs: u32) {
        if self.marker.is_none() {
            return;
        }
        if self.stamp.is_none() {
            self.stamp = tsval;
        }
        self.retrans = Some(self.retrans.unwrap_or(0) + segs);
    }

    /// A D-SACK for `[left, right)`: if it lies in the episode, one of its
    /// retransmissions (per `mss` bytes) was a duplicate.
    pub fn on_dsack(&mut self, left: Seq, right: Seq, mss: usize) {
        let (Some(m), Some(n)) = (self.marker, self.retrans) else { return };
        if n == 0 || left.lt(m) {
            return;
        }
        let segs = (right.since(left) as usize).div_ceil(mss.max(1)).max(1) as u32;
        self.retrans = Some(n.saturating_sub(segs));
    }

    /// Every retransmission of the episode was spurious (D-SACK).
    pub fn all_spurious(&self) -> bool {
        self.marker.is_some() && self.retrans == Some(0)
    }

    /// The ACK echoing `tsecr` answers a transmission older than the first retransmission
    /// (Linux `tcp_packet_delayed`). Only meaningful for ACKs that advance `snd_una`.
    pub fn delayed(&self, tsecr: Option<u32>) -> bool {
        match (self.stamp, tsecr) {
            (Some(stamp), Some(ecr)) if ecr != 0 => (ecr.wrapping_sub(stamp) as i32) < 0,
            _ => false,
        }
    }

    /// Linux `tcp_may_undo`: armed, and all spurious or answered by the original.
    pub fn may_undo(&self, tsecr: Option<u32>) -> bool {
        self.marker.is_some() && (self.retrans == Some(0) || self.delayed(tsecr))
    }

    /// Done (undone, or a new episode will start afresh).
    pub fn clear(&mut self) {
        *self = Undo::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsacks_for_every_retransmission_undo() {
        let mut u = Undo::default();
        u.on_retransmit(Some(5), 1);
        assert!(!u.all_spurious() && !u.may_undo(Some(1)), "no episode, nothing counted");
        u.start(Seq(1000), 0);
        assert!(!u.all_spurious(), "no retransmission yet");
        u.on_retransmit(Some(100), 1);
        u.on_retransmit(Some(101), 1);
        u.on_dsack(Seq(500), Seq(600), 100);
        assert!(!u.all_spurious(), "a D-SACK from before the episode");
        u.on_dsack(Seq(1000), Seq(1100), 100);
        assert!(!u.all_spurious());
        u.on_dsack(Seq(1100), Seq(1200), 100);
        assert!(u.all_spurious() && u.may_undo(None));
    }

    #[test]
    fn an_echo_older_than_the_first_retransmission_is_the_original() {
        let mut u = Undo::default();
        u.start(Seq(0), 0);
        u.on_retransmit(Some(1000), 1);
        u.on_retransmit(Some(1010), 1);
        assert!(u.delayed(Some(999)) && u.may_undo(Some(999)));
        assert!(!u.delayed(Some(1000)), "echoes the retransmission itself");
        assert!(!u.delayed(Some(0)) && !u.delayed(None));
        assert!(u.delayed(Some(u32::MAX)), "circular comparison");
        u.clear();
        assert!(!u.may_undo(Some(999)));
    }
}
