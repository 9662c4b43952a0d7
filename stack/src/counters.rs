//! Counters: every dropped frame has a reason, and every reason a counter. Hot-path
//! outcomes are counted, never returned as errors (house rule).

use crate::wire::WireError;

/// What the stack saw and did. All fields count events since creation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Frames handed to [`crate::Stack::handle_frame`].
    pub rx_frames: u64,
    /// Frames addressed to another MAC or IP.
    pub rx_not_for_us: u64,
    /// Truncated Ethernet header.
    pub rx_bad_ethernet: u64,
    /// Ethertype other than ARP, IPv4, IPv6.
    pub rx_unknown_ethertype: u64,
    /// Malformed ARP.
    pub rx_bad_arp: u64,
    /// Malformed IPv4 header.
    pub rx_bad_ipv4: u64,
    /// Bad IPv4 header checksum.
    pub rx_bad_ipv4_checksum: u64,
    /// IPv4 fragments (not reassembled).
    pub rx_ipv4_fragments: u64,
    /// Malformed IPv6 header.
    pub rx_bad_ipv6: u64,
    /// IPv6 extension headers (not supported).
    pub rx_ipv6_extension: u64,
    /// IP protocols with no handler.
    pub rx_unknown_protocol: u64,
    /// Malformed UDP.
    pub rx_bad_udp: u64,
    /// Malformed ICMP.
    pub rx_bad_icmp: u64,
    /// UDP datagrams for an unbound port.
    pub udp_no_socket: u64,
    /// UDP datagrams dropped because the socket's queue was full.
    pub udp_queue_full: u64,

    /// TCP segments with a bad checksum.
    pub tcp_bad_checksum: u64,
    /// TCP segments with a bad data offset or too short for a header.
    pub tcp_bad_offset: u64,
    /// TCP segments with truncated or malformed options.
    pub tcp_bad_options: u64,
    /// TCP segments with port 0.
    pub tcp_bad_port: u64,
    /// TCP segments with impossible flags (SYN+FIN, SYN+RST).
    pub tcp_bad_flags: u64,
    /// Well-formed TCP segments received.
    pub tcp_rx_segments: u64,
    /// TCP segments sent.
    pub tcp_tx_segments: u64,
    /// Segments for no connection and no listener (answered with RST).
    pub tcp_no_socket: u64,
    /// RSTs whose sequence number was outside the window (dropped).
    pub tcp_rst_bad_seq: u64,
    /// RSTs in the window but not at `rcv_nxt` (answered with a challenge ACK, RFC 5961).
    pub tcp_rst_challenged: u64,
    /// SYNs on a synchronized connection (challenge ACK, RFC 5961).
    pub tcp_syn_challenged: u64,
    /// Segments outside the receive window.
    pub tcp_out_of_window: u64,
    /// Segments rejected by PAWS (old timestamp).
    pub tcp_paws_rejected: u64,
    /// Segments acknowledging data never sent.
    pub tcp_ack_unsent: u64,
    /// Segments without ACK in a synchronized state.
    pub tcp_no_ack: u64,
    /// Out-of-order segments kept.
    pub tcp_ooo_kept: u64,
    /// Out-of-order segments dropped for the budget.
    pub tcp_ooo_dropped: u64,
    /// Duplicate payload received.
    pub tcp_dup_data: u64,
    /// Retransmitted segments (all causes).
    pub tcp_retransmits: u64,
    /// Retransmissions RACK found lost (and sent again).
    pub tcp_lost_retransmits: u64,
    /// Fast-recovery episodes entered.
    pub tcp_fast_recoveries: u64,
    /// Retransmission timer expiries.
    pub tcp_rto_expired: u64,
    /// Of those, expiries while a recovery or an earlier timeout was already repairing
    /// losses (Linux `TCPSackRecoveryFail`, `TCPLossFailures`): the repair itself stalled.
    pub tcp_recovery_failed: u64,
    /// Zero-window probes sent.
    pub tcp_window_probes: u64,
    /// Tail loss probes sent (RFC 8985 section 7): no ACK came for about two round trips.
    pub tcp_loss_probes: u64,

    // Loss recovery by cause (RFC 8985, RFC 6937, RFC 2883, RFC 3708 / 4015).
    /// Retransmissions of segments RACK marked lost.
    pub tcp_rack_retransmits: u64,
    /// Tail loss probes that resent the last segment (probes with new data are not).
    pub tcp_tlp_retransmits: u64,
    /// Retransmissions after a retransmission timeout.
    pub tcp_rto_retransmits: u64,
    /// Retransmissions by the duplicate-ACK rule (peers without SACK: NewReno).
    pub tcp_dupack_retransmits: u64,
    /// Payload bytes retransmitted (all causes).
    pub tcp_retransmitted_bytes: u64,
    /// Loss probes whose ACK showed they repaired a loss (the window is reduced once).
    pub tcp_loss_probe_recoveries: u64,
    /// Window reductions of fast recovery undone: D-SACKs or echoed timestamps showed
    /// every retransmission needless.
    pub tcp_spurious_recoveries: u64,
    /// Retransmission timeouts undone: the ACK answered the original transmission (Eifel).
    pub tcp_spurious_rtos: u64,
    /// D-SACK blocks received (a retransmission, or a duplicate, arrived twice).
    pub tcp_dsacks_received: u64,
    /// D-SACK blocks sent (we received a duplicate).
    pub tcp_dsacks_sent: u64,
    /// ACKs showing a segment delivered after data sent later (reordering).
    pub tcp_reordering_seen: u64,
    /// The largest reordering seen, in segments (a maximum, not a count).
    pub tcp_reordering_max: u64,
    /// Slow starts where HyStart++ (RFC 9406) saw the RTT rise and slowed growth.
    pub tcp_hystart_css: u64,
    /// Slow starts HyStart++ ended before any loss.
    pub tcp_hystart_exits: u64,
    /// Connections established.
    pub tcp_established: u64,
    /// Connections reset by the peer.
    pub tcp_resets_received: u64,
    /// Connections that timed out (retransmissions or handshake retransmissions exhausted).
    pub tcp_timeouts: u64,
    /// Orphaned connections (closed by the application) dropped after `orphan_retries`
    /// retransmission timeouts or zero-window probes.
    pub tcp_orphan_drops: u64,
    /// Connections dropped after `fin_wait2_timeout` in FIN-WAIT-2.
    pub tcp_fin_wait2_timeouts: u64,
    /// Keep-alive probes sent.
    pub tcp_keepalive_probes: u64,
    /// Connections reset after unanswered keep-alive probes.
    pub tcp_keepalive_timeouts: u64,
    /// SYNs received on a listening port.
    pub tcp_syn_received: u64,
    /// SYNs answered with a SYN cookie (half-open queue full).
    pub tcp_syn_cookies_sent: u64,
    /// Connections created from a valid SYN cookie.
    pub tcp_syn_cookies_accepted: u64,
    /// ACKs to a listener carrying no valid cookie.
    pub tcp_syn_cookies_invalid: u64,
    /// SYNs dropped because the connection table is full.
    pub tcp_conn_table_full: u64,
    /// Connections refused because the accept queue was full.
    pub tcp_accept_queue_full: u64,
    /// Connections that entered TIME-WAIT (kept as compact entries).
    pub tcp_time_wait: u64,
    /// TIME-WAIT entries recycled before expiry to stay under the cap (oldest first,
    /// Linux's `tcp_max_tw_buckets` overflow).
    pub tcp_time_wait_recycled: u64,
    /// SYNs for a four-tuple in TIME-WAIT accepted as a new connection (RFC 6191).
    pub tcp_time_wait_reopened: u64,
    /// SYNs for a four-tuple in TIME-WAIT dropped as old duplicates (RFC 6191).
    pub tcp_time_wait_syn_dropped: u64,

    /// Connection entries visited by timers ([`crate::Stack::handle_timeout`]) and output
    /// ([`crate::Stack::dispatch`]): what a poll costs, which follows the connections that
    /// had something to do, never the connections that are open.
    pub conn_visits: u64,

    /// Payload bytes copied behind a header because multi-buffer TX is unavailable.
    pub payload_bytes_copied: u64,
    /// TCP payload bytes transmitted (first transmissions and retransmissions).
    pub tx_payload_bytes: u64,
    /// Frames transmitted.
    pub tx_frames: u64,
    /// Frames the link refused (ring full); TCP recovers them as losses.
    pub tx_link_full: u64,
    /// Transmissions skipped because no header frame could be allocated.
    pub tx_no_frame: u64,
    /// Control replies (RST, ARP, ICMP) dropped because their queue was full.
    pub tx_control_dropped: u64,
    /// Segments held back because the next hop's MAC is unknown.
    pub tx_neighbor_missing: u64,
    /// ARP requests for us answered.
    pub arp_replies_sent: u64,
    /// ARP requests sent.
    pub arp_requests_sent: u64,
    /// ICMP / ICMPv6 echo requests answered.
    pub icmp_echo_replies: u64,
    /// Neighbour advertisements sent.
    pub ndp_adverts_sent: u64,
    /// Neighbour solicitations sent.
    pub ndp_solicits_sent: u64,
}

impl Counters {
    /// Counts a wire-level drop.
    pub fn wire(&mut self, e: WireError) {
        let c = match e {
            WireError::Ethernet => &mut self.rx_bad_ethernet,
            WireError::Ethertype => &mut self.rx_unknown_ethertype,
            WireError::Arp => &mut self.rx_bad_arp,
            WireError::Ipv4 => &mut self.rx_bad_ipv4,
            WireError::Ipv4Checksum => &mut self.rx_bad_ipv4_checksum,
            WireError::Ipv4Fragment => &mut self.rx_ipv4_fragments,
            WireError::Ipv6 => &mut self.rx_bad_ipv6,
            WireError::Ipv6Extension => &mut self.rx_ipv6_extension,
            WireError::TcpChecksum => &mut self.tcp_bad_checksum,
            WireError::TcpDataOffset => &mut self.tcp_bad_offset,
            WireError::TcpOptions => &mut self.tcp_bad_options,
            WireError::TcpPort => &mut self.tcp_bad_port,
            WireError::TcpFlags => &mut self.tcp_bad_flags,
            WireError::Udp => &mut self.rx_bad_udp,
            WireError::Icmp => &mut self.rx_bad_icmp,
        };
        *c += 1;
    }
}
