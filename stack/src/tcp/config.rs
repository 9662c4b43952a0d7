//! TCP tunables.

use smoltcp::time::Duration;

use super::cc::CcAlgorithm;

/// Per-connection TCP settings. Defaults follow Linux where RFCs leave a choice.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// Receive buffer: the most pool memory the receive queues (ready plus out of order)
    /// may pin, each segment counted at the size of the frame or block it arrived in, as
    /// Linux counts `truesize` against `rcvbuf` (a one-byte segment pins a 4 KiB frame).
    /// The window offered is what the rest holds at the payload-per-frame ratio of the
    /// peer's segments (about a third with 1448-byte segments in 4 KiB frames).
    pub recv_buffer: usize,
    /// Send buffer: the most unacknowledged bytes [`crate::Stack::write_frames`] accepts.
    pub send_buffer: usize,
    /// Out-of-order segments kept per connection (each pins one received frame), within
    /// `recv_buffer` too.
    pub max_ooo_segments: usize,
    /// Offer and use timestamps (RFC 7323).
    pub timestamps: bool,
    /// Offer and use SACK (RFC 2018).
    pub sack: bool,
    /// Offer and use window scaling (RFC 7323).
    pub window_scaling: bool,
    /// Delayed-ACK timeout; `None` acknowledges every segment at once.
    pub delayed_ack: Option<Duration>,
    /// RTO before the first RTT sample (RFC 6298: 1 s).
    pub initial_rto: Duration,
    /// Lower bound of the RTO's variance term (Linux `tcp_rto_min`: 200 ms): the timeout
    /// is at least the smoothed RTT plus this.
    pub min_rto: Duration,
    /// Upper RTO bound, backoff included (Linux `TCP_RTO_MAX`: 120 s).
    pub max_rto: Duration,
    /// Retransmissions of one segment before the connection is dropped (Linux
    /// `tcp_retries2`), and zero-window probes left unanswered. With the backoff capped at
    /// `max_rto` this also bounds the time: at most `max_retries * max_rto` without an
    /// acknowledgment.
    pub max_retries: u32,
    /// For an orphaned connection (closed by the application, so no one waits on it):
    /// retransmission timeouts, and zero-window probes the peer answers with a zero
    /// window, before it is dropped (Linux `tcp_orphan_retries`; 0 there means 8).
    pub orphan_retries: u32,
    /// SYN / SYN-ACK retransmissions before giving up.
    pub syn_retries: u32,
    /// TIME-WAIT duration (2 MSL).
    pub time_wait: Duration,
    /// How long FIN-WAIT-2 waits for the peer's FIN before the connection is dropped
    /// (Linux `tcp_fin_timeout`). The application has closed, so no one else would.
    pub fin_wait2_timeout: Duration,
    /// Keep-alive probes on idle connections (RFC 9293 3.8.4, `SO_KEEPALIVE`); off by
    /// default, as in Linux.
    pub keepalive: Option<KeepAlive>,
    /// Congestion control for new connections (CUBIC, as Linux).
    pub congestion: CcAlgorithm,
    /// HyStart++ (RFC 9406) in the first slow start: leave it when the RTT shows the
    /// bottleneck queue filling, before it overflows (Linux's CUBIC `hystart`).
    pub hystart: bool,
    /// Most payload fragments per segment (AF_XDP multi-buffer descriptors after the header).
    pub max_payload_frags: usize,
    /// Pace data segments (Linux's internal pacing, `pacing.rs`): at the controller's
    /// pacing rate (BBR's model; for loss-based controllers Linux's default, 2 x or 1.2 x
    /// `cwnd / srtt`), in bursts of about 1 ms of data, instead of a window at once.
    pub pacing: bool,
    /// Tail loss probes (RFC 8985 section 7; Linux `tcp_early_retrans`): when no ACK comes
    /// for two smoothed RTTs, send one segment to draw one, instead of waiting for the
    /// retransmission timeout. Needs SACK.
    pub tail_loss_probe: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            recv_buffer: 1 << 20,
            send_buffer: 4 << 20,
            max_ooo_segments: 512,
            timestamps: true,
            sack: true,
            window_scaling: true,
            delayed_ack: Some(Duration::from_millis(40)),
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            max_retries: 15,
            orphan_retries: 8,
            syn_retries: 6,
            time_wait: Duration::from_secs(60),
            fin_wait2_timeout: Duration::from_secs(60),
            keepalive: None,
            congestion: CcAlgorithm::Cubic,
            hystart: true,
            max_payload_frags: 8,
            pacing: true,
            tail_loss_probe: true,
        }
    }
}

/// Keep-alive settings (Linux `tcp_keepalive_time`, `_intvl`, `_probes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is reset.
    pub probes: u32,
}

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive { idle: Duration::from_secs(7200), interval: Duration::from_secs(75), probes: 9 }
    }
}

impl TcpConfig {
    /// How long `boundary` retransmission timeouts take when the RTO starts at `min_rto`
    /// and doubles up to `max_rto` (Linux `tcp_model_timeout`): the time an orphan may
    /// spend retransmitting, whatever its own RTO.
    pub fn retries_time(&self, boundary: u32) -> Duration {
        let base = self.min_rto.total_micros().max(1);
        let cap = self.max_rto.total_micros().max(base);
        let (mut total, mut rto) = (0u64, base);
        for _ in 0..=boundary {
            total = total.saturating_add(rto);
            rto = rto.saturating_mul(2).min(cap);
        }
        Duration::from_micros(total)
    }
}
