//! Path MTU discovery by ICMP (RFC 1191, RFC 8201), hardened per RFC 5927: a "packet too
//! big" message counts only if the segment it quotes lies in what is in flight, and the
//! MTU it gives is never taken below a floor (a forged message could otherwise cut every
//! segment to a few bytes).

use smoltcp::wire::IpAddress;

use super::conn::Conn;
use super::rtx_queue::Verdict;
use crate::wire::Seq;

/// The smallest path MTU believed for IPv4 (Linux `min_pmtu`: 552).
pub const MIN_PMTU_V4: usize = 552;
/// The smallest path MTU believed for IPv6 (RFC 8200: every link carries 1280).
pub const MIN_PMTU_V6: usize = 1280;

impl Conn {
    /// Whether `seq`, the sequence number of a segment an ICMP error quotes, lies in what
    /// is in flight (`SND.UNA <= seq < SND.MAX`, RFC 5927 section 4.1): only then can the
    /// error be about a segment we sent and the network still holds.
    pub fn quotes_flight(&self, seq: Seq) -> bool {
        self.state.synchronized() && seq.ge(self.snd_una) && seq.lt(self.snd_max)
    }

    /// Lowers the send MSS to what a path MTU of `mtu` bytes carries (taken no lower than
    /// the family's floor), and marks every segment in flight larger than that lost, to go
    /// again cut at the new size: they did not fit, and no congestion is to blame (Linux's
    /// `tcp_simple_retransmit`; without SACK, the first unacknowledged one goes again).
    /// Returns whether the MSS went down.
    pub fn on_path_mtu(&mut self, mtu: usize) -> bool {
        let (floor, ip) = match self.tuple.remote.addr {
            IpAddress::Ipv4(_) => (MIN_PMTU_V4, 20),
            IpAddress::Ipv6(_) => (MIN_PMTU_V6, 40),
        };
        let options = if self.ts_ok { 12 } else { 0 };
        let mss = mtu.max(floor).saturating_sub(ip + 20 + options).max(64);
        if mss >= self.mss {
            return false;
        }
        self.mss = mss;
        if self.snd_max.gt(self.snd_una) {
            if self.sack_ok {
                self.lm().rtx.detect(&mut |s| if s.len() > mss { Verdict::Lost } else { Verdict::Wait });
            } else {
                self.rexmit_pending = true;
            }
        }
        true
    }
}
