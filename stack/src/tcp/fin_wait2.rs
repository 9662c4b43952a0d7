//! FIN-WAIT-2 without a connection. An orphan whose FIN the peer acknowledged has nothing
//! left to send and will read nothing: what it must still do is acknowledge the peer's
//! FIN and then wait out TIME-WAIT, reset the peer if it sends new data, and give up after
//! `fin_wait2_timeout`. A [`TimeWait`] entry with the FIN-WAIT-2 substate does all that in
//! a few dozen bytes, so a flood of connections abandoned in FIN-WAIT-2 costs compact
//! entries, capped with TIME-WAIT's, not connections (Linux keeps them the same way).

use super::conn::{Conn, State};
use super::time_wait::{TimeWait, TwVerdict};
use crate::counters::Counters;
use crate::wire::{TcpFlags, TcpHeader};

impl TimeWait {
    /// The FIN-WAIT-2 state of `c`: an orphan in FIN-WAIT-2 with nothing left to send.
    pub fn from_fin_wait2(c: &Conn) -> TimeWait {
        debug_assert_eq!(c.state, State::FinWait2);
        let wnd = if c.rcv_adv.gt(c.rcv_nxt) { c.rcv_adv.since(c.rcv_nxt) } else { 0 };
        let ts = c.ts_ok.then_some((c.ts_recent, c.ts_offset));
        let mut tw =
            TimeWait::new(c.tuple, c.snd_max, c.rcv_nxt, ts, wnd.div_ceil(1 << c.rcv_wscale).min(65535) as u16);
        tw.fin_wait2 = Some(wnd);
        tw
    }

    /// Whether this entry still waits for the peer's FIN.
    pub fn is_fin_wait2(&self) -> bool {
        self.fin_wait2.is_some()
    }

    /// The peer's FIN arrived (after [`TwVerdict::PeerFin`]): TIME-WAIT begins.
    pub fn peer_fin(&mut self, hdr: &TcpHeader) {
        self.fin_wait2 = None;
        self.rcv_nxt = self.rcv_nxt.add(1);
        if let (true, Some((tsval, _))) = (self.ts_ok, hdr.options.timestamp) {
            self.ts_recent = tsval;
        }
    }

    /// A segment in FIN-WAIT-2, as Linux's `tcp_timewait_state_process` takes it.
    pub(super) fn on_fin_wait2_segment(&self, hdr: &TcpHeader, plen: usize, wnd: u32, ctr: &mut Counters) -> TwVerdict {
        let f = hdr.flags;
        let (nxt, seg_len) = (self.rcv_nxt, hdr.seq_len(plen));
        let in_window = if seg_len == 0 {
            hdr.seq.in_range(nxt, nxt.add(wnd.max(1)))
        } else {
            hdr.seq.in_range(nxt, nxt.add(wnd.max(1))) || hdr.seq.add_len(seg_len - 1).in_range(nxt, nxt.add(wnd))
        };
        if f.has(TcpFlags::RST) {
            if hdr.seq == nxt {
                ctr.tcp_resets_received += 1;
                return TwVerdict::Kill;
            }
            ctr.tcp_rst_bad_seq += 1;
            return TwVerdict::Ignore;
        }
        if self.ts_ok {
            match hdr.options.timestamp {
                None if !f.has(TcpFlags::SYN) => {
                    ctr.tcp_ts_missing += 1;
                    return TwVerdict::Ignore;
                }
                Some((tsval, _)) if (tsval.wrapping_sub(self.ts_recent) as i32) < 0 => {
                    ctr.tcp_paws_rejected += 1;
                    return TwVerdict::Ack { restart: false };
                }
                _ => {}
            }
        }
        if !in_window {
            ctr.tcp_out_of_window += 1;
            return TwVerdict::Ack { restart: false };
        }
        if f.has(TcpFlags::SYN) {
            return TwVerdict::Reset;
        }
        let end = hdr.seq.add_len(seg_len);
        if !f.has(TcpFlags::ACK) || !end.gt(nxt) {
            // A duplicate, or an ACK with nothing new: nothing to say.
            return TwVerdict::Ignore;
        }
        if f.has(TcpFlags::FIN) && end == nxt.add(1) {
            return TwVerdict::PeerFin;
        }
        // New data after the application closed.
        ctr.tcp_abort_on_data += 1;
        TwVerdict::Reset
    }
}

#[cfg(test)]
mod tests {
    use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

    use super::*;
    use crate::tcp::FourTuple;
    use crate::wire::{Seq, TcpOptions};

    fn fw2() -> TimeWait {
        let a = IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1));
        let tuple = FourTuple { local: IpEndpoint::new(a, 80), remote: IpEndpoint::new(a, 5000) };
        let mut tw = TimeWait::new(tuple, Seq(1000), Seq(5000), None, 100);
        tw.fin_wait2 = Some(1000);
        tw
    }

    fn seg(seq: u32, flags: TcpFlags) -> TcpHeader {
        TcpHeader { seq: Seq(seq), ack: Seq(1000), flags, options: TcpOptions::default(), ..Default::default() }
    }

    #[test]
    fn fin_wait_2_takes_the_fin_resets_on_data_and_answers_the_rest() {
        let c = &mut Counters::default();
        let t = fw2();
        let ack = TcpFlags::ACK;
        assert_eq!(t.on_segment(&seg(5000, ack | TcpFlags::FIN), 0, true, c), TwVerdict::PeerFin);
        assert_eq!(t.on_segment(&seg(5000, ack), 10, true, c), TwVerdict::Reset, "new data after close");
        assert_eq!(t.on_segment(&seg(5000, ack | TcpFlags::FIN), 10, true, c), TwVerdict::Reset);
        assert_eq!(c.tcp_abort_on_data, 2);
        assert_eq!(t.on_segment(&seg(5000, ack), 0, true, c), TwVerdict::Ignore, "a bare ACK");
        assert_eq!(t.on_segment(&seg(4000, ack), 10, true, c), TwVerdict::Ack { restart: false }, "old data");
        assert_eq!(t.on_segment(&seg(5100, TcpFlags::SYN), 0, true, c), TwVerdict::Reset);
        assert_eq!(t.on_segment(&seg(5000, TcpFlags::RST), 0, true, c), TwVerdict::Kill);
        assert_eq!(t.on_segment(&seg(5001, TcpFlags::RST), 0, true, c), TwVerdict::Ignore);
        let mut t = t;
        t.peer_fin(&seg(5000, ack | TcpFlags::FIN));
        assert!(!t.is_fin_wait2());
        assert_eq!(t.ack(smoltcp::time::Instant::ZERO).ack, Seq(5001));
    }
}
