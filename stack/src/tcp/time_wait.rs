//! TIME-WAIT without a connection: what is left of one after both FINs (RFC 9293 3.10.7.4,
//! TIME-WAIT STATE), enough to acknowledge a retransmitted FIN, to answer old duplicates,
//! and to tell a new SYN for the same four-tuple from an old one (RFC 6191). No queue, no
//! frame, no timer of its own: the stack keeps these in a table ordered by expiry.
//!
//! An orphan in FIN-WAIT-2 (closed by the application, everything it sent acknowledged,
//! waiting for the peer's FIN) needs no more, and is kept the same way (`fin_wait2.rs`),
//! as Linux keeps it in a `tcp_timewait_sock` with the FIN-WAIT-2 substate.

use smoltcp::time::Instant;

use super::conn::{Conn, FourTuple, State};
use crate::counters::Counters;
use crate::wire::{Seq, TcpFlags, TcpHeader, TcpOptions};

/// A connection in TIME-WAIT, compacted: about 60 bytes (see [`crate::iface`] for the
/// table's cost per entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWait {
    pub(super) tuple: FourTuple,
    /// Our next sequence number (past our FIN).
    pub(super) snd_nxt: Seq,
    /// The peer's next sequence number (past its FIN): "the last sequence number seen".
    pub(super) rcv_nxt: Seq,
    /// The peer's last timestamp (RFC 7323), if timestamps were in use.
    pub(super) ts_recent: u32,
    pub(super) ts_offset: u32,
    /// The window field of our last ACK.
    pub(super) window: u16,
    pub(super) ts_ok: bool,
    /// Still waiting for the peer's FIN (FIN-WAIT-2), with this much window offered.
    pub(super) fin_wait2: Option<u32>,
}

/// What to do with a segment for a four-tuple in TIME-WAIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwVerdict {
    /// Drop it silently.
    Ignore,
    /// Answer with an ACK ([`TimeWait::ack`]); `restart`: wait 2 MSL again (a FIN came
    /// again, so the peer did not get our last ACK).
    Ack {
        /// Restart the TIME-WAIT period.
        restart: bool,
    },
    /// An acceptable RST: the entry goes (RFC 9293; Linux does the same unless
    /// `tcp_rfc1337` is set).
    Kill,
    /// A new SYN (RFC 6191): the entry goes and the SYN opens a connection, with an ISS
    /// from [`TimeWait::reopen_iss`].
    Reopen,
    /// FIN-WAIT-2: new data for an application that closed, or a SYN in the window:
    /// answer with a RST and drop the entry (Linux's `TCP_TW_RST`).
    Reset,
    /// FIN-WAIT-2: the peer's FIN. Enter TIME-WAIT ([`TimeWait::peer_fin`]), acknowledge
    /// it, and wait 2 MSL.
    PeerFin,
}

impl TimeWait {
    /// The TIME-WAIT state of `c`, which must be in TIME-WAIT.
    pub fn from_conn(c: &Conn) -> TimeWait {
        debug_assert_eq!(c.state, State::TimeWait);
        let wnd = if c.rcv_adv.gt(c.rcv_nxt) { c.rcv_adv.since(c.rcv_nxt) } else { 0 };
        let ts = c.ts_ok.then_some((c.ts_recent, c.ts_offset));
        TimeWait::new(c.tuple, c.snd_max, c.rcv_nxt, ts, wnd.div_ceil(1 << c.rcv_wscale).min(65535) as u16)
    }

    /// An entry for `tuple`: our next sequence number, the peer's, the peer's last
    /// timestamp and our timestamp offset (if timestamps were in use), our window field.
    pub fn new(tuple: FourTuple, snd_nxt: Seq, rcv_nxt: Seq, ts: Option<(u32, u32)>, window: u16) -> TimeWait {
        let (ts_recent, ts_offset) = ts.unwrap_or((0, 0));
        TimeWait { tuple, snd_nxt, rcv_nxt, ts_recent, ts_offset, window, ts_ok: ts.is_some(), fin_wait2: None }
    }

    /// The four-tuple.
    pub fn tuple(&self) -> FourTuple {
        self.tuple
    }

    /// What to do with `hdr` (carrying `plen` payload bytes). `timestamps`: whether a new
    /// connection would use timestamps (our configuration), as RFC 6191 asks.
    pub fn on_segment(&self, hdr: &TcpHeader, plen: usize, timestamps: bool, ctr: &mut Counters) -> TwVerdict {
        if let Some(wnd) = self.fin_wait2 {
            return self.on_fin_wait2_segment(hdr, plen, wnd, ctr);
        }
        let f = hdr.flags;
        if f.has(TcpFlags::SYN) && !f.has(TcpFlags::ACK) && !f.has(TcpFlags::RST) {
            if self.syn_is_new(hdr, timestamps) {
                ctr.tcp_time_wait_reopened += 1;
                return TwVerdict::Reopen;
            }
            // RFC 6191: an old duplicate SYN is silently dropped, the entry stays.
            ctr.tcp_time_wait_syn_dropped += 1;
            return TwVerdict::Ignore;
        }
        if f.has(TcpFlags::RST) {
            if hdr.seq == self.rcv_nxt {
                ctr.tcp_resets_received += 1;
                return TwVerdict::Kill;
            }
            ctr.tcp_rst_bad_seq += 1;
            return TwVerdict::Ignore;
        }
        if self.ts_ok && hdr.options.timestamp.is_none() {
            // RFC 7323 section 3.2: with timestamps in use, a segment without one is dropped.
            ctr.tcp_ts_missing += 1;
            return TwVerdict::Ignore;
        }
        if let (true, Some((tsval, _))) = (self.ts_ok, hdr.options.timestamp) {
            if (tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                ctr.tcp_paws_rejected += 1;
                return TwVerdict::Ack { restart: false };
            }
        }
        if hdr.seq == self.rcv_nxt && hdr.seq_len(plen) == 0 {
            // A bare ACK in the window: nothing to say.
            return TwVerdict::Ignore;
        }
        // Everything else is outside the (empty) window: acknowledge (RFC 9293 3.10.7.4).
        ctr.tcp_out_of_window += 1;
        TwVerdict::Ack { restart: f.has(TcpFlags::FIN) }
    }

    /// RFC 6191 section 2: with timestamps on both incarnations, a SYN is new if its
    /// timestamp is above the last one seen (or equal, with a higher sequence number);
    /// otherwise if its sequence number is above the last one seen (RFC 1122 4.2.2.13).
    fn syn_is_new(&self, syn: &TcpHeader, timestamps: bool) -> bool {
        let seq_newer = syn.seq.gt(self.rcv_nxt);
        match syn.options.timestamp {
            Some((tsval, _)) if timestamps && self.ts_ok => {
                let d = tsval.wrapping_sub(self.ts_recent) as i32;
                d > 0 || (d == 0 && seq_newer)
            }
            _ => seq_newer,
        }
    }

    /// The ACK that answers a segment in TIME-WAIT.
    pub fn ack(&self, now: Instant) -> TcpHeader {
        let ts = (now.total_millis() as u32).wrapping_add(self.ts_offset);
        TcpHeader {
            src_port: self.tuple.local.port,
            dst_port: self.tuple.remote.port,
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            flags: TcpFlags::ACK,
            window: self.window,
            options: TcpOptions { timestamp: self.ts_ok.then_some((ts, self.ts_recent)), ..Default::default() },
        }
    }

    /// The ISS for a connection reopened from this entry: past anything the old one sent
    /// (RFC 1122 4.2.2.13), with a window's margin as Linux uses.
    pub fn reopen_iss(&self) -> Seq {
        self.snd_nxt.add(65535 + 2)
    }
}

#[cfg(test)]
mod tests {
    use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

    use super::*;

    fn tw(ts_ok: bool) -> TimeWait {
        let a = IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1));
        let tuple = FourTuple { local: IpEndpoint::new(a, 80), remote: IpEndpoint::new(a, 5000) };
        TimeWait::new(tuple, Seq(1000), Seq(5000), ts_ok.then_some((777, 0)), 100)
    }

    fn syn(seq: u32, ts: Option<u32>) -> TcpHeader {
        TcpHeader {
            seq: Seq(seq),
            flags: TcpFlags::SYN,
            options: TcpOptions { timestamp: ts.map(|v| (v, 0)), ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn rfc6191_new_syn_by_timestamp_then_by_sequence() {
        let mut c = Counters::default();
        let t = tw(true);
        // Timestamps on both sides: the timestamp decides, whatever the sequence number.
        assert_eq!(t.on_segment(&syn(1, Some(778)), 0, true, &mut c), TwVerdict::Reopen);
        assert_eq!(t.on_segment(&syn(9000, Some(776)), 0, true, &mut c), TwVerdict::Ignore);
        // An equal timestamp needs a higher sequence number.
        assert_eq!(t.on_segment(&syn(5001, Some(777)), 0, true, &mut c), TwVerdict::Reopen);
        assert_eq!(t.on_segment(&syn(4999, Some(777)), 0, true, &mut c), TwVerdict::Ignore);
        // No timestamp in the SYN, or none configured here: the sequence number decides.
        assert_eq!(t.on_segment(&syn(5001, None), 0, true, &mut c), TwVerdict::Reopen);
        assert_eq!(t.on_segment(&syn(5000, None), 0, true, &mut c), TwVerdict::Ignore);
        assert_eq!(t.on_segment(&syn(4000, Some(9999)), 0, false, &mut c), TwVerdict::Ignore);
        // No timestamps in the old connection: the sequence number decides.
        let t = tw(false);
        assert_eq!(t.on_segment(&syn(4000, Some(9999)), 0, true, &mut c), TwVerdict::Ignore);
        assert_eq!(t.on_segment(&syn(6000, Some(1)), 0, true, &mut c), TwVerdict::Reopen);
        assert_eq!(c.tcp_time_wait_reopened, 4);
        assert_eq!(c.tcp_time_wait_syn_dropped, 5);
    }

    #[test]
    fn retransmitted_fin_is_acked_and_restarts_the_wait() {
        let mut c = Counters::default();
        let t = tw(true);
        let fin = TcpHeader {
            seq: Seq(4999),
            ack: Seq(1000),
            flags: TcpFlags::FIN | TcpFlags::ACK,
            options: TcpOptions { timestamp: Some((800, 1)), ..Default::default() },
            ..Default::default()
        };
        assert_eq!(t.on_segment(&fin, 0, true, &mut c), TwVerdict::Ack { restart: true });
        let ack = t.ack(Instant::from_millis(5));
        assert_eq!((ack.seq, ack.ack, ack.flags, ack.window), (Seq(1000), Seq(5000), TcpFlags::ACK, 100));
        assert_eq!(ack.options.timestamp, Some((5, 777)));
        // A bare in-window ACK is ignored; an old timestamp is answered (PAWS); data too.
        let bare = TcpHeader { seq: Seq(5000), flags: TcpFlags::ACK, ..fin };
        assert_eq!(t.on_segment(&bare, 0, true, &mut c), TwVerdict::Ignore);
        let old = TcpHeader { options: TcpOptions { timestamp: Some((700, 1)), ..Default::default() }, ..bare };
        assert_eq!(t.on_segment(&old, 0, true, &mut c), TwVerdict::Ack { restart: false });
        assert_eq!(c.tcp_paws_rejected, 1);
        assert_eq!(t.on_segment(&bare, 10, true, &mut c), TwVerdict::Ack { restart: false });
        // RST: only an exact one ends it.
        let rst = TcpHeader { flags: TcpFlags::RST, options: TcpOptions::default(), ..bare };
        assert_eq!(t.on_segment(&rst, 0, true, &mut c), TwVerdict::Kill);
        let far = TcpHeader { seq: Seq(9000), ..rst };
        assert_eq!(t.on_segment(&far, 0, true, &mut c), TwVerdict::Ignore);
    }
}
