//! A snapshot of one connection for operators: what Linux's `struct tcp_info` gives `ss
//! -tin` (state, window, RTT, bytes acknowledged, retransmissions, queue lengths), taken in
//! one call and owned, so a caller can hand it to another thread.

use smoltcp::time::Duration;
use smoltcp::wire::IpEndpoint;

use super::conn::{CaState, Conn, State};

/// One connection at one moment (see the module docs).
#[doc(alias = "tcp_info")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// TCP state.
    pub state: State,
    /// Where loss recovery stands (`tcpi_ca_state`).
    pub ca_state: CaState,
    /// Our address and port.
    pub local: IpEndpoint,
    /// The peer's address and port.
    pub remote: IpEndpoint,
    /// Send MSS, payload bytes per full segment (`tcpi_snd_mss`).
    pub mss: usize,
    /// Congestion window, bytes (`tcpi_snd_cwnd` times the MSS).
    pub cwnd: usize,
    /// Slow-start threshold, bytes.
    pub ssthresh: usize,
    /// Smoothed RTT, once measured (`tcpi_rtt`).
    pub srtt: Option<Duration>,
    /// RTT variation (`tcpi_rttvar`).
    pub rttvar: Duration,
    /// Retransmission timeout now (`tcpi_rto`).
    pub rto: Duration,
    /// Sequence space the peer acknowledged since data was first sent (`tcpi_bytes_acked`).
    pub bytes_acked: u64,
    /// Bytes in the network (RFC 6675 pipe; `tcpi_unacked` in bytes).
    pub in_flight: usize,
    /// Data segments retransmitted over the connection's life (`tcpi_total_retrans`).
    pub retransmits: u32,
    /// Bytes queued to send and not yet acknowledged (`ss`'s Send-Q).
    pub send_queue: usize,
    /// Bytes received in order and not yet read by the application (`ss`'s Recv-Q).
    pub recv_queue: usize,
    /// The peer's receive window, bytes (scaled).
    pub snd_wnd: u32,
}

impl Conn {
    /// The connection's [`ConnInfo`] now.
    pub fn info(&self) -> ConnInfo {
        ConnInfo {
            state: self.state,
            ca_state: self.ca,
            local: self.tuple.local,
            remote: self.tuple.remote,
            mss: self.mss,
            cwnd: self.cwnd(),
            ssthresh: self.cc.ssthresh(),
            srtt: self.rtt.srtt(),
            rttvar: self.rtt.rttvar(),
            rto: self.rtt.rto(),
            bytes_acked: self.ls().bytes_acked,
            in_flight: self.flight(),
            retransmits: self.ls().retransmits,
            send_queue: self.sendq.len(),
            recv_queue: self.recvq.ready_len(),
            snd_wnd: self.snd_wnd,
        }
    }
}
