//! SYN cookies: answering a SYN without keeping state when the half-open queue is full.
//!
//! The initial sequence number carries a 5-bit time counter (64 s steps), a 3-bit MSS
//! index and a 24-bit MAC: SipHash-2-4, under the cookie sub-key of the stack's secret,
//! of the four-tuple, the peer's ISN, the counter and the MSS index, so that neither the
//! time nor the MSS bits can be altered. The ACK that completes the handshake
//! acknowledges `cookie + 1`; a cookie is valid for two counter steps. Options other than
//! the MSS are not carried, so such connections run without window scaling, SACK or
//! timestamps (as Linux does without timestamps).
//!
//! Cookies are checked only while they were recently sent (Linux's
//! `tcp_synq_no_recent_overflow`): an ACK that would complete a cookie handshake when no
//! cookie went out within a cookie's lifetime is refused unchecked, so a peer cannot
//! guess at cookies when none are in use.

use smoltcp::time::{Duration, Instant};

use super::FourTuple;
use crate::keyed::{Purpose, SipKey};
use crate::wire::Seq;

/// MSS values a cookie can encode.
const MSS_TABLE: [u16; 8] = [536, 1200, 1360, 1400, 1440, 1460, 4312, 8960];

/// One counter step.
const STEP_MS: i64 = 64_000;

/// The longest a cookie stays valid: it validates in its own counter step and the next.
pub const COOKIE_LIFETIME: Duration = Duration::from_secs(128);

/// Why a cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieError {
    /// No cookie was sent within [`COOKIE_LIFETIME`]: not checked.
    NotRecent,
    /// The MAC does not match (forged, altered or expired).
    Invalid,
}

/// Cookie generator and checker with a secret key.
#[derive(Debug, Clone)]
pub struct SynCookies {
    key: SipKey,
    /// When the last cookie was sent.
    last_sent: Option<Instant>,
}

impl SynCookies {
    /// A generator keyed with the cookie sub-key of `secret`.
    pub fn new(secret: u64) -> Self {
        SynCookies { key: SipKey::derive(secret, Purpose::Cookie), last_sent: None }
    }

    fn counter(now: Instant) -> u32 {
        (now.total_millis().max(0) / STEP_MS) as u32
    }

    fn mac(&self, tuple: &FourTuple, peer_isn: Seq, t: u32, idx: u32) -> u32 {
        (self.key.hash_one(&(tuple, peer_isn.0, t, idx)) & 0x00ff_ffff) as u32
    }

    /// The ISN to answer a SYN with, and the MSS it will restore. Records that a cookie
    /// was sent at `now`.
    pub fn make(&mut self, now: Instant, tuple: &FourTuple, peer_isn: Seq, mss: u16) -> (Seq, u16) {
        self.last_sent = Some(now);
        let t = Self::counter(now);
        let idx = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32;
        let isn = ((t & 31) << 27) | (idx << 24) | self.mac(tuple, peer_isn, t, idx);
        (Seq(isn), MSS_TABLE[idx as usize])
    }

    /// Whether a cookie went out within [`COOKIE_LIFETIME`] of `now`.
    pub fn recently_sent(&self, now: Instant) -> bool {
        self.last_sent.is_some_and(|t| now < t + COOKIE_LIFETIME)
    }

    /// Checks the ACK of a handshake: `our_isn` is `ack - 1`, `peer_isn` is `seq - 1`.
    /// Returns the MSS the cookie carries.
    pub fn check(&self, now: Instant, tuple: &FourTuple, peer_isn: Seq, our_isn: Seq) -> Result<u16, CookieError> {
        if !self.recently_sent(now) {
            return Err(CookieError::NotRecent);
        }
        let t = Self::counter(now);
        let bits = our_isn.0 >> 27;
        let idx = (our_isn.0 >> 24) & 7;
        for tt in [t, t.wrapping_sub(1)] {
            if tt & 31 == bits && self.mac(tuple, peer_isn, tt, idx) == our_isn.0 & 0x00ff_ffff {
                return Ok(MSS_TABLE[idx as usize]);
            }
        }
        Err(CookieError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

    fn tuple() -> FourTuple {
        let ip = IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1));
        FourTuple { local: IpEndpoint::new(ip, 80), remote: IpEndpoint::new(ip, 5555) }
    }

    #[test]
    fn cookie_roundtrip_and_expiry() {
        let mut c = SynCookies::new(42);
        let now = Instant::from_secs(1000);
        let (isn, mss) = c.make(now, &tuple(), Seq(77), 1460);
        assert_eq!(mss, 1460);
        assert_eq!(c.check(now + Duration::from_secs(70), &tuple(), Seq(77), isn), Ok(1460));
        assert_eq!(c.check(now, &tuple(), Seq(78), isn), Err(CookieError::Invalid));
        assert_eq!(c.check(now, &tuple(), Seq(77), isn.add(1)), Err(CookieError::Invalid));
        assert_eq!(
            c.check(now + Duration::from_secs(200), &tuple(), Seq(77), isn),
            Err(CookieError::NotRecent),
            "no cookie sent for longer than a cookie lives"
        );
        // Another cookie sent later: the old one is checked again, and has expired.
        c.make(now + Duration::from_secs(190), &tuple(), Seq(1), 1460);
        assert_eq!(c.check(now + Duration::from_secs(200), &tuple(), Seq(77), isn), Err(CookieError::Invalid));
    }

    #[test]
    fn the_mss_bits_are_covered_by_the_mac() {
        let mut c = SynCookies::new(42);
        let now = Instant::from_secs(1000);
        let (isn, mss) = c.make(now, &tuple(), Seq(77), 536);
        assert_eq!(mss, 536);
        for idx in 1..8u32 {
            let forged = Seq((isn.0 & !(7 << 24)) | (idx << 24));
            assert_eq!(c.check(now, &tuple(), Seq(77), forged), Err(CookieError::Invalid), "MSS index {idx}");
        }
        assert_eq!(c.check(now, &tuple(), Seq(77), isn), Ok(536));
    }

    #[test]
    fn cookies_are_checked_only_while_recently_sent() {
        let mut sender = SynCookies::new(42);
        let now = Instant::from_secs(1000);
        let (isn, _) = sender.make(now, &tuple(), Seq(77), 1460);
        // A stack with the same secret that never sent a cookie refuses it unchecked.
        let quiet = SynCookies::new(42);
        assert!(!quiet.recently_sent(now));
        assert_eq!(quiet.check(now, &tuple(), Seq(77), isn), Err(CookieError::NotRecent));
        assert!(sender.recently_sent(now + Duration::from_secs(127)));
        assert!(!sender.recently_sent(now + COOKIE_LIFETIME));
        // A different secret never validates it.
        let mut other = SynCookies::new(43);
        other.make(now, &tuple(), Seq(1), 1460);
        assert_eq!(other.check(now, &tuple(), Seq(77), isn), Err(CookieError::Invalid));
    }
}
