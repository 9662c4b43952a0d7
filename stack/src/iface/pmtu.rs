//! ICMP errors that quote our TCP segments: IPv4 "fragmentation needed" (type 3, code 4)
//! and ICMPv6 "packet too big" lower the connection's path MTU, once the quote checks out
//! (see [`crate::tcp::Conn::on_path_mtu`]). Every message is counted: received, refused,
//! applied.

use smoltcp::wire::IpEndpoint;

use super::Stack;
use crate::tcp::FourTuple;
use crate::wire::QuotedTcp;

impl Stack {
    /// A path MTU message: `mtu` from the ICMP header (0 when the router gave none), the
    /// quoted segment if it parsed.
    pub(crate) fn handle_pmtu(&mut self, mtu: u32, quoted: Option<QuotedTcp>) {
        self.counters.icmp_pmtu_received += 1;
        let Some(q) = quoted.filter(|q| self.is_our_ip(&q.src)) else {
            self.counters.icmp_pmtu_rejected += 1;
            return;
        };
        let tuple = FourTuple { local: IpEndpoint::new(q.src, q.src_port), remote: IpEndpoint::new(q.dst, q.dst_port) };
        let Some(&idx) = self.by_tuple.get(&tuple) else {
            self.counters.icmp_pmtu_rejected += 1;
            return;
        };
        let Some(e) = self.slots[idx as usize].entry.as_mut() else { return };
        // RFC 1191 routers without the next-hop MTU field send 0: nothing to go by.
        if mtu == 0 || !e.conn.quotes_flight(q.seq) {
            self.counters.icmp_pmtu_rejected += 1;
            return;
        }
        if e.conn.on_path_mtu(mtu as usize) {
            self.counters.tcp_pmtu_lowered += 1;
            self.after_event(idx);
        }
    }
}
