//! Proportional Rate Reduction (RFC 6937): how much may be sent on each ACK during fast
//! recovery, so the window comes down to `ssthresh` smoothly over one round trip instead
//! of stopping dead (RFC 6675 sends nothing until the pipe falls below `ssthresh`) or
//! bursting (after a large loss the pipe falls far below it at once).
//!
//! While the pipe is above `ssthresh` the sender sends `ssthresh / RecoverFS` of what is
//! delivered (proportional part); once it is at or below, it rebuilds towards `ssthresh`
//! no faster than slow start would (the slow-start reduction bound, on ACKs that advance
//! `snd_una` without showing new loss; otherwise only what was delivered). The first ACK
//! of a recovery may always send one segment (the fast retransmit). Linux does the same
//! in `tcp_cwnd_reduction`.

/// PRR state for one recovery episode (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prr {
    /// `RecoverFS`: the flight when recovery began.
    pub recover_fs: usize,
    /// `prr_delivered`: bytes delivered to the receiver since then.
    pub delivered: usize,
    /// `prr_out`: bytes sent since then.
    pub out: usize,
}

impl Prr {
    /// No recovery.
    pub const ZERO: Prr = Prr { recover_fs: 0, delivered: 0, out: 0 };

    /// A recovery begins with `flight` bytes outstanding.
    pub fn start(flight: usize) -> Prr {
        Prr { recover_fs: flight.max(1), delivered: 0, out: 0 }
    }

    /// The proportional bound: what may have been sent once `delivered` bytes arrived.
    pub fn proportional_limit(&self, ssthresh: usize) -> usize {
        let d = self.delivered as u128 * ssthresh as u128;
        d.div_ceil(self.recover_fs as u128) as usize
    }

    /// An ACK (or a loss found by a timer) that delivered `delivered` bytes, leaving
    /// `pipe` in flight; `safe` when it advanced `snd_una` and marked nothing newly lost.
    /// Returns `sndcnt`: the bytes that may be sent now.
    pub fn on_ack(&mut self, delivered: usize, pipe: usize, ssthresh: usize, mss: usize, safe: bool) -> usize {
        self.delivered += delivered;
        let sndcnt = if pipe > ssthresh {
            self.proportional_limit(ssthresh).saturating_sub(self.out)
        } else {
            let bound = self.delivered.saturating_sub(self.out).max(delivered) + if safe { mss } else { 0 };
            (ssthresh - pipe).min(bound)
        };
        if self.out == 0 {
            sndcnt.max(mss)
        } else {
            sndcnt
        }
    }

    /// `n` bytes were sent (retransmitted or new).
    pub fn on_sent(&mut self, n: usize) {
        self.out += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6937 appendix: 20 segments in flight, one lost, ssthresh 10: PRR sends one
    /// segment for every two delivered, spread over the round trip.
    #[test]
    fn one_loss_sends_half_of_what_is_delivered() {
        let mss = 100;
        let mut p = Prr::start(20 * mss);
        let mut pipe = 19 * mss; // the lost one left
        let mut sent = Vec::new();
        for _ in 0..19 {
            pipe -= mss;
            let n = p.on_ack(mss, pipe, 10 * mss, mss, false);
            let segs = n / mss;
            p.on_sent(segs * mss);
            pipe += segs * mss;
            sent.push(segs);
        }
        assert_eq!(sent[0], 1, "the fast retransmit goes out at once");
        assert_eq!(sent.iter().sum::<usize>(), 10, "{sent:?}: ssthresh worth sent over the round");
        assert!(sent.windows(2).all(|w| w[0] + w[1] <= 2), "{sent:?}: smooth, no bursts");
        assert!(p.out <= p.proportional_limit(10 * mss) + mss);
    }

    /// A burst loss: the pipe falls far below ssthresh at once. Slow start rebuilds it,
    /// at most delivered + one segment per ACK, not the whole gap in one burst.
    #[test]
    fn large_loss_rebuilds_at_slow_start_pace() {
        let mss = 100;
        let mut p = Prr::start(20 * mss);
        let mut pipe = 4 * mss; // 16 of 20 lost
        let mut sent = Vec::new();
        for _ in 0..4 {
            pipe -= mss;
            let n = p.on_ack(mss, pipe, 10 * mss, mss, true);
            let segs = n / mss;
            p.on_sent(segs * mss);
            pipe += segs * mss;
            sent.push(segs);
        }
        assert_eq!(sent, [2, 2, 2, 2], "slow start: two per ACK (one delivered + one)");
        let no_safe = Prr { out: 1, ..Prr::start(20 * mss) }.on_ack(mss, 2 * mss, 10 * mss, mss, false);
        assert_eq!(no_safe, mss, "without a safe ACK only what was delivered");
    }
}
