//! What a segment must pass besides sequence acceptability, and what it may draw when it
//! fails:
//!
//! - PAWS on every segment once timestamps are in use (RFC 7323 section 5): a segment
//!   whose timestamp is older than `TS.Recent` is dropped, and so (section 3.2) is one
//!   that carries none (but a SYN, which draws a challenge ACK instead); RSTs are exempt
//!   (section 5.3), and `TS.Recent` lapses after 24 days of silence (section 5.5);
//! - the ACK acceptance test of RFC 5961 section 5: `SND.UNA - MAX.SND.WND <= SEG.ACK <=
//!   SND.MAX`, else the segment is dropped and answered with a challenge ACK (an ACK of
//!   data never sent, or of data from more than a window ago, is blind injection);
//! - a rate limit on every ACK a dropped segment draws (RFC 5961 section 7, Linux
//!   `tcp_oow_rate_limited` with `tcp_invalid_ratelimit`): challenge ACKs for RSTs and
//!   SYNs (sections 3 and 4) and for unacceptable ACKs, duplicate ACKs for segments out of
//!   the window or rejected by PAWS. At most one per `INVALID_ACK_INTERVAL` per
//!   connection, except for segments with data and no SYN, which are answered at once:
//!   they are the peer's retransmissions, not part of an ACK loop. The limit is per
//!   connection only: a stack-wide counter is a side channel that lets an off-path host
//!   probe for a connection's sequence numbers (CVE-2016-5696), which is why Linux no
//!   longer enforces one by default.

use smoltcp::time::{Duration, Instant};

use super::conn::Conn;
use crate::counters::Counters;
use crate::wire::{TcpFlags, TcpHeader};

/// Least time between two ACKs for dropped segments on one connection (Linux
/// `tcp_invalid_ratelimit`).
pub const INVALID_ACK_INTERVAL: Duration = Duration::from_millis(500);

/// After this long without an update `TS.Recent` is no longer believed (RFC 7323 5.5).
const TS_RECENT_LIFETIME_SECS: u64 = 24 * 24 * 3600;

/// The times kept here are coarse and wrap, so each costs a connection 2 bytes: the rate
/// limit's in ticks of 8 ms (wrapping every 9 minutes, which at worst withholds one ACK),
/// `TS.Recent`'s age in hours (wrapping every 7 years).
const TICK_MS: i64 = 8;
/// No ACK sent yet.
pub(crate) const NEVER: u16 = u16::MAX;
/// `TS.Recent` set from a SYN, valid until its first update.
pub(super) const UNTIL_UPDATED: u16 = u16::MAX;

fn hours(now: Instant) -> u16 {
    (now.secs().max(0) / 3600) as u16
}

impl Conn {
    /// PAWS (RFC 7323 section 5): whether to drop `hdr`. A segment with an old timestamp
    /// is answered with a (rate-limited) duplicate ACK, one with none is dropped silently.
    pub(super) fn paws_rejects(&mut self, now: Instant, hdr: &TcpHeader, plen: usize, ctr: &mut Counters) -> bool {
        if !self.ts_ok || hdr.flags.has(TcpFlags::RST) {
            return false;
        }
        let Some((tsval, _)) = hdr.options.timestamp else {
            // A SYN without one is left to RFC 5961 (a challenge ACK): the peer may have
            // restarted with other options, and the challenge lets it reset the old state.
            if hdr.flags.has(TcpFlags::SYN) {
                return false;
            }
            ctr.tcp_ts_missing += 1;
            return true;
        };
        let valid = self.ts_recent_at == UNTIL_UPDATED
            || u64::from(hours(now).wrapping_sub(self.ts_recent_at)) * 3600 < TS_RECENT_LIFETIME_SECS;
        if valid && (tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
            ctr.tcp_paws_rejected += 1;
            self.oow_ack(now, hdr, plen, ctr);
            return true;
        }
        false
    }

    /// Takes the timestamp to echo (RFC 7323 section 4.3): from a segment that passed
    /// PAWS and starts at or before the last ACK we sent.
    pub(super) fn update_ts_recent(&mut self, now: Instant, hdr: &TcpHeader) {
        if let (true, Some((tsval, _))) = (self.ts_ok, hdr.options.timestamp) {
            if hdr.seq.le(self.last_ack_sent) {
                self.ts_recent = tsval;
                self.ts_recent_at = hours(now).min(UNTIL_UPDATED - 1);
            }
        }
    }

    /// RFC 5961 section 5: whether `hdr`'s acknowledgment number is acceptable. An
    /// unacceptable one drops the segment with a (rate-limited) challenge ACK.
    pub(super) fn ack_acceptable(&mut self, now: Instant, hdr: &TcpHeader, plen: usize, ctr: &mut Counters) -> bool {
        let ack = hdr.ack;
        if ack.gt(self.snd_max) {
            ctr.tcp_ack_unsent += 1;
        } else if ack.lt(self.snd_una.sub(self.max_snd_wnd.min(1 << 30))) {
            ctr.tcp_ack_too_old += 1;
        } else {
            return true;
        }
        self.challenge_ack(now, hdr, plen, ctr);
        false
    }

    /// A challenge ACK (RFC 5961 sections 3, 4 and 5), within the rate limit.
    pub(super) fn challenge_ack(&mut self, now: Instant, hdr: &TcpHeader, plen: usize, ctr: &mut Counters) {
        if self.oow_ack(now, hdr, plen, ctr) {
            ctr.tcp_challenge_acks += 1;
        }
    }

    /// An ACK answering a segment we drop, within the rate limit; returns whether it
    /// will be sent.
    pub(super) fn oow_ack(&mut self, now: Instant, hdr: &TcpHeader, plen: usize, ctr: &mut Counters) -> bool {
        if !oow_ack_allowed(&mut self.last_oow_ack, now, hdr, plen) {
            ctr.tcp_oow_acks_limited += 1;
            return false;
        }
        self.ack_now = true;
        true
    }
}

/// The rate limit on ACKs for dropped segments, for anything that keeps `last`, the time
/// of the last one (a connection, a TIME-WAIT entry): whether one may answer `hdr` now.
pub(crate) fn oow_ack_allowed(last: &mut u16, now: Instant, hdr: &TcpHeader, plen: usize) -> bool {
    if plen > 0 && !hdr.flags.has(TcpFlags::SYN) {
        // A retransmission of the peer's: never part of an ACK loop, always answered.
        return true;
    }
    let tick = ((now.total_millis().max(0) / TICK_MS) as u16).min(NEVER - 1);
    let interval = INVALID_ACK_INTERVAL.total_millis().div_ceil(TICK_MS as u64);
    if *last != NEVER && u64::from(tick.wrapping_sub(*last)) < interval {
        return false;
    }
    *last = tick;
    true
}
