//! SYN cookies: answering a SYN without keeping state when the half-open queue is full.
//!
//! The initial sequence number carries a 5-bit time counter (64 s steps), a 3-bit MSS
//! index and a 24-bit keyed hash of the four-tuple, the peer's ISN and the counter. The ACK
//! that completes the handshake acknowledges `cookie + 1`; a cookie is valid for two
//! counter steps. Options other than the MSS are not carried, so such connections run
//! without window scaling, SACK or timestamps (as Linux does without timestamps).

use std::hash::{DefaultHasher, Hash, Hasher};

use smoltcp::time::Instant;

use super::FourTuple;
use crate::wire::Seq;

/// MSS values a cookie can encode.
const MSS_TABLE: [u16; 8] = [536, 1200, 1360, 1400, 1440, 1460, 4312, 8960];

/// Cookie generator and checker with a secret key.
#[derive(Debug, Clone)]
pub struct SynCookies {
    secret: u64,
}

impl SynCookies {
    /// A generator keyed with `secret`.
    pub fn new(secret: u64) -> Self {
        SynCookies { secret }
    }

    fn counter(now: Instant) -> u32 {
        (now.total_millis().max(0) / 64_000) as u32
    }

    fn hash(&self, tuple: &FourTuple, peer_isn: Seq, t: u32) -> u32 {
        let mut h = DefaultHasher::new();
        self.secret.hash(&mut h);
        tuple.hash(&mut h);
        peer_isn.0.hash(&mut h);
        t.hash(&mut h);
        (h.finish() & 0x00ff_ffff) as u32
    }

    /// The ISN to answer a SYN with, and the MSS it will restore.
    pub fn make(&self, now: Instant, tuple: &FourTuple, peer_isn: Seq, mss: u16) -> (Seq, u16) {
        let t = Self::counter(now);
        let idx = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0);
        let isn = ((t & 31) << 27) | ((idx as u32) << 24) | self.hash(tuple, peer_isn, t);
        (Seq(isn), MSS_TABLE[idx])
    }

    /// Checks the ACK of a handshake: `our_isn` is `ack - 1`, `peer_isn` is `seq - 1`.
    /// Returns the MSS the cookie carries.
    pub fn check(&self, now: Instant, tuple: &FourTuple, peer_isn: Seq, our_isn: Seq) -> Option<u16> {
        let t = Self::counter(now);
        let bits = our_isn.0 >> 27;
        let idx = ((our_isn.0 >> 24) & 7) as usize;
        for tt in [t, t.wrapping_sub(1)] {
            if tt & 31 == bits && self.hash(tuple, peer_isn, tt) == our_isn.0 & 0x00ff_ffff {
                return Some(MSS_TABLE[idx]);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

    #[test]
    fn cookie_roundtrip_and_expiry() {
        let c = SynCookies::new(42);
        let ip = IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1));
        let tuple = FourTuple { local: IpEndpoint::new(ip, 80), remote: IpEndpoint::new(ip, 5555) };
        let now = Instant::from_secs(1000);
        let (isn, mss) = c.make(now, &tuple, Seq(77), 1460);
        assert_eq!(mss, 1460);
        assert_eq!(c.check(now + smoltcp::time::Duration::from_secs(70), &tuple, Seq(77), isn), Some(1460));
        assert_eq!(c.check(now, &tuple, Seq(78), isn), None);
        assert_eq!(c.check(now, &tuple, Seq(77), isn.add(1)), None);
        assert_eq!(c.check(now + smoltcp::time::Duration::from_secs(200), &tuple, Seq(77), isn), None);
    }
}
