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
    pub rx_other_host: u64,
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
    /// Times pacing held data back until its departure time.
    pub tcp_pacing_waits: u64,
    /// Slow starts where HyStart++ (RFC 9406) saw the RTT rise and slowed growth.
    pub tcp_hystart_css: u64,
    /// Slow starts HyStart++ ended before any loss.
    pub tcp_hystart_exits: u64,
    /// BBR Startups that found the pipe full (the bandwidth stopped growing).
    pub tcp_bbr_pipe_full: u64,
    /// BBR ProbeRTT phases begun (the minimum RTT not seen for 10 s).
    pub tcp_bbr_probe_rtts: u64,
    /// Token-bucket policers BBR detected (it then paces at the policed rate).
    pub tcp_bbr_policers: u64,
    /// Connections established.
    pub tcp_established: u64,
    /// Connections reset by the peer.
    pub tcp_resets_received: u64,
    /// Connections that timed out (retransmissions or handshake retransmissions exhausted).
    pub tcp_timeouts: u64,
    /// Orphaned connections (closed by the application) dropped after `orphan_retries`
    /// retransmission timeouts or zero-window probes.
    pub tcp_orphan_drops: u64,
    /// Connections (and compact FIN-WAIT-2 entries) dropped after `fin_wait2_timeout` in
    /// FIN-WAIT-2.
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

    // Hostile input (issue: hostile peers).
    /// Frames from a broadcast, multicast or all-zero source MAC (no station sends from
    /// one): dropped.
    pub rx_bad_src_mac: u64,
    /// NDP messages with a hop limit other than 255 (RFC 4861: sent from off the link):
    /// dropped.
    pub ndp_bad_hop_limit: u64,
    /// Neighbour information not recorded: over a static entry, a MAC no peer can have,
    /// an unsolicited advertisement for an unknown address, or the cache full.
    pub neighbor_refused: u64,
    /// ACKs to a listener that would complete a SYN-cookie handshake while no cookie was
    /// sent within a cookie's lifetime: refused unchecked (answered with RST).
    pub tcp_syn_cookies_not_recent: u64,
    /// Valid cookie ACKs that found the accept queue full (dropped, or reset with
    /// `StackConfig::abort_on_overflow`); also counted in `tcp_accept_queue_full`.
    pub tcp_syn_cookies_overflow: u64,
    /// VLAN-tagged frames (no VLAN is configured): dropped.
    pub rx_vlan: u64,
    /// IPv6 fragments (not reassembled): dropped.
    pub rx_ipv6_fragments: u64,
    /// ICMP "fragmentation needed" and ICMPv6 "packet too big" messages quoting TCP.
    pub icmp_pmtu_received: u64,
    /// Of those, refused: for no connection of ours, quoting a sequence number outside
    /// what is in flight (RFC 5927 section 4.1), or with no usable MTU.
    pub icmp_pmtu_rejected: u64,
    /// Connections whose send MSS a path MTU message lowered.
    pub tcp_pmtu_lowered: u64,
    /// Segments without a timestamp on a connection that uses timestamps (RFC 7323
    /// section 3.2): dropped.
    pub tcp_ts_missing: u64,
    /// Segments acknowledging data older than a window below `snd_una` (RFC 5961
    /// section 5): dropped, answered with a challenge ACK.
    pub tcp_ack_too_old: u64,
    /// Challenge ACKs sent (RFC 5961: for an in-window RST, a SYN on a synchronized
    /// connection, an unacceptable ACK).
    pub tcp_challenge_acks: u64,
    /// ACKs not sent for dropped segments (challenges, duplicate ACKs for segments out of
    /// the window or rejected by PAWS) because the connection, or the TIME-WAIT entry,
    /// sent one less than 500 ms before (RFC 5961 section 7).
    pub tcp_oow_acks_limited: u64,

    // Receive memory, counted in pool frames (issue: hostile peers, item 1).
    /// In-order segments copied into a compact frame instead of pinning the frame they
    /// arrived in (small payloads, or any while the queues are over budget).
    pub tcp_rx_coalesced: u64,
    /// Bytes those copies moved: receive-side copies, apart from `payload_bytes_copied`
    /// (which counts transmit copies).
    pub rx_bytes_coalesced: u64,
    /// Out-of-order segments dropped to make room: for a segment below them in the
    /// connection's budget (Linux `tcp_prune_ofo_queue`), or because the pool ran low.
    pub tcp_ooo_pruned: u64,
    /// Connections whose out-of-order queue was dropped because the pool's free frames
    /// fell below `StackConfig::pressure.prune_below`.
    pub tcp_pressure_prunes: u64,
    /// New connections (SYNs, cookie ACKs) refused because the pool's free frames stayed
    /// below `StackConfig::pressure.refuse_below` after pruning.
    pub tcp_pressure_refused: u64,

    // Orphans (issue: hostile peers, items 2 and 3).
    /// Bytes received and not read when the application closed: dropped then.
    pub tcp_close_discarded: u64,
    /// Connections reset because new data arrived after the application closed (FIN-WAIT,
    /// nobody to read it; Linux `TCPAbortOnData`).
    pub tcp_abort_on_data: u64,
    /// Connections dropped after `max_retries` zero-window probes went unanswered (the
    /// peer vanished behind its zero window); also counted in `tcp_timeouts`.
    pub tcp_probe_timeouts: u64,
    /// Orphans in FIN-WAIT-2 turned into compact entries (no connection, no frame); those
    /// that time out are counted in `tcp_fin_wait2_timeouts`.
    pub tcp_fin_wait2_entries: u64,
}

impl Counters {
    /// Every counter with its name and what it counts (the field's documentation), for
    /// exporters: `f(name, help, value, is_max)`, where `is_max` marks a maximum seen
    /// rather than a count of events.
    pub fn each(&self, mut f: impl FnMut(&'static str, &'static str, u64, bool)) {
        f("rx_frames", "Frames handed to `Stack::handle_frame`.", self.rx_frames, false);
        f("rx_other_host", "Frames addressed to another MAC or IP.", self.rx_other_host, false);
        f("rx_bad_ethernet", "Truncated Ethernet header.", self.rx_bad_ethernet, false);
        f("rx_unknown_ethertype", "Ethertype other than ARP, IPv4, IPv6.", self.rx_unknown_ethertype, false);
        f("rx_bad_arp", "Malformed ARP.", self.rx_bad_arp, false);
        f("rx_bad_ipv4", "Malformed IPv4 header.", self.rx_bad_ipv4, false);
        f("rx_bad_ipv4_checksum", "Bad IPv4 header checksum.", self.rx_bad_ipv4_checksum, false);
        f("rx_ipv4_fragments", "IPv4 fragments (not reassembled).", self.rx_ipv4_fragments, false);
        f("rx_bad_ipv6", "Malformed IPv6 header.", self.rx_bad_ipv6, false);
        f("rx_ipv6_extension", "IPv6 extension headers (not supported).", self.rx_ipv6_extension, false);
        f("rx_unknown_protocol", "IP protocols with no handler.", self.rx_unknown_protocol, false);
        f("rx_bad_udp", "Malformed UDP.", self.rx_bad_udp, false);
        f("rx_bad_icmp", "Malformed ICMP.", self.rx_bad_icmp, false);
        f("udp_no_socket", "UDP datagrams for an unbound port.", self.udp_no_socket, false);
        f("udp_queue_full", "UDP datagrams dropped because the socket's queue was full.", self.udp_queue_full, false);
        f("tcp_bad_checksum", "TCP segments with a bad checksum.", self.tcp_bad_checksum, false);
        f(
            "tcp_bad_offset",
            "TCP segments with a bad data offset or too short for a header.",
            self.tcp_bad_offset,
            false,
        );
        f("tcp_bad_options", "TCP segments with truncated or malformed options.", self.tcp_bad_options, false);
        f("tcp_bad_port", "TCP segments with port 0.", self.tcp_bad_port, false);
        f("tcp_bad_flags", "TCP segments with impossible flags (SYN+FIN, SYN+RST).", self.tcp_bad_flags, false);
        f("tcp_rx_segments", "Well-formed TCP segments received.", self.tcp_rx_segments, false);
        f("tcp_tx_segments", "TCP segments sent.", self.tcp_tx_segments, false);
        f(
            "tcp_no_socket",
            "Segments for no connection and no listener (answered with RST).",
            self.tcp_no_socket,
            false,
        );
        f(
            "tcp_rst_bad_seq",
            "RSTs whose sequence number was outside the window (dropped).",
            self.tcp_rst_bad_seq,
            false,
        );
        f(
            "tcp_rst_challenged",
            "RSTs in the window but not at `rcv_nxt` (answered with a challenge ACK, RFC 5961).",
            self.tcp_rst_challenged,
            false,
        );
        f(
            "tcp_syn_challenged",
            "SYNs on a synchronized connection (challenge ACK, RFC 5961).",
            self.tcp_syn_challenged,
            false,
        );
        f("tcp_out_of_window", "Segments outside the receive window.", self.tcp_out_of_window, false);
        f("tcp_paws_rejected", "Segments rejected by PAWS (old timestamp).", self.tcp_paws_rejected, false);
        f("tcp_ack_unsent", "Segments acknowledging data never sent.", self.tcp_ack_unsent, false);
        f("tcp_no_ack", "Segments without ACK in a synchronized state.", self.tcp_no_ack, false);
        f("tcp_ooo_kept", "Out-of-order segments kept.", self.tcp_ooo_kept, false);
        f("tcp_ooo_dropped", "Out-of-order segments dropped for the budget.", self.tcp_ooo_dropped, false);
        f("tcp_dup_data", "Duplicate payload received.", self.tcp_dup_data, false);
        f("tcp_retransmits", "Retransmitted segments (all causes).", self.tcp_retransmits, false);
        f(
            "tcp_lost_retransmits",
            "Retransmissions RACK found lost (and sent again).",
            self.tcp_lost_retransmits,
            false,
        );
        f("tcp_fast_recoveries", "Fast-recovery episodes entered.", self.tcp_fast_recoveries, false);
        f("tcp_rto_expired", "Retransmission timer expiries.", self.tcp_rto_expired, false);
        f("tcp_recovery_failed", "Of those, expiries while a recovery or an earlier timeout was already repairing losses (Linux `TCPSackRecoveryFail`, `TCPLossFailures`): the repair itself stalled.", self.tcp_recovery_failed, false);
        f("tcp_window_probes", "Zero-window probes sent.", self.tcp_window_probes, false);
        f(
            "tcp_loss_probes",
            "Tail loss probes sent (RFC 8985 section 7): no ACK came for about two round trips.",
            self.tcp_loss_probes,
            false,
        );
        f("tcp_rack_retransmits", "Retransmissions of segments RACK marked lost.", self.tcp_rack_retransmits, false);
        f(
            "tcp_tlp_retransmits",
            "Tail loss probes that resent the last segment (probes with new data are not).",
            self.tcp_tlp_retransmits,
            false,
        );
        f("tcp_rto_retransmits", "Retransmissions after a retransmission timeout.", self.tcp_rto_retransmits, false);
        f(
            "tcp_dupack_retransmits",
            "Retransmissions by the duplicate-ACK rule (peers without SACK: NewReno).",
            self.tcp_dupack_retransmits,
            false,
        );
        f("tcp_retransmitted_bytes", "Payload bytes retransmitted (all causes).", self.tcp_retransmitted_bytes, false);
        f(
            "tcp_loss_probe_recoveries",
            "Loss probes whose ACK showed they repaired a loss (the window is reduced once).",
            self.tcp_loss_probe_recoveries,
            false,
        );
        f("tcp_spurious_recoveries", "Window reductions of fast recovery undone: D-SACKs or echoed timestamps showed every retransmission needless.", self.tcp_spurious_recoveries, false);
        f(
            "tcp_spurious_rtos",
            "Retransmission timeouts undone: the ACK answered the original transmission (Eifel).",
            self.tcp_spurious_rtos,
            false,
        );
        f(
            "tcp_dsacks_received",
            "D-SACK blocks received (a retransmission, or a duplicate, arrived twice).",
            self.tcp_dsacks_received,
            false,
        );
        f("tcp_dsacks_sent", "D-SACK blocks sent (we received a duplicate).", self.tcp_dsacks_sent, false);
        f(
            "tcp_reordering_seen",
            "ACKs showing a segment delivered after data sent later (reordering).",
            self.tcp_reordering_seen,
            false,
        );
        f(
            "tcp_reordering_max",
            "The largest reordering seen, in segments (a maximum, not a count).",
            self.tcp_reordering_max,
            true,
        );
        f("tcp_pacing_waits", "Times pacing held data back until its departure time.", self.tcp_pacing_waits, false);
        f(
            "tcp_hystart_css",
            "Slow starts where HyStart++ (RFC 9406) saw the RTT rise and slowed growth.",
            self.tcp_hystart_css,
            false,
        );
        f("tcp_hystart_exits", "Slow starts HyStart++ ended before any loss.", self.tcp_hystart_exits, false);
        f(
            "tcp_bbr_pipe_full",
            "BBR Startups that found the pipe full (the bandwidth stopped growing).",
            self.tcp_bbr_pipe_full,
            false,
        );
        f(
            "tcp_bbr_probe_rtts",
            "BBR ProbeRTT phases begun (the minimum RTT not seen for 10 s).",
            self.tcp_bbr_probe_rtts,
            false,
        );
        f(
            "tcp_bbr_policers",
            "Token-bucket policers BBR detected (it then paces at the policed rate).",
            self.tcp_bbr_policers,
            false,
        );
        f("tcp_established", "Connections established.", self.tcp_established, false);
        f("tcp_resets_received", "Connections reset by the peer.", self.tcp_resets_received, false);
        f(
            "tcp_timeouts",
            "Connections that timed out (retransmissions or handshake retransmissions exhausted).",
            self.tcp_timeouts,
            false,
        );
        f("tcp_orphan_drops", "Orphaned connections (closed by the application) dropped after `orphan_retries` retransmission timeouts or zero-window probes.", self.tcp_orphan_drops, false);
        f(
            "tcp_fin_wait2_timeouts",
            "Connections (and compact FIN-WAIT-2 entries) dropped after `fin_wait2_timeout` in FIN-WAIT-2.",
            self.tcp_fin_wait2_timeouts,
            false,
        );
        f("tcp_keepalive_probes", "Keep-alive probes sent.", self.tcp_keepalive_probes, false);
        f(
            "tcp_keepalive_timeouts",
            "Connections reset after unanswered keep-alive probes.",
            self.tcp_keepalive_timeouts,
            false,
        );
        f("tcp_syn_received", "SYNs received on a listening port.", self.tcp_syn_received, false);
        f(
            "tcp_syn_cookies_sent",
            "SYNs answered with a SYN cookie (half-open queue full).",
            self.tcp_syn_cookies_sent,
            false,
        );
        f(
            "tcp_syn_cookies_accepted",
            "Connections created from a valid SYN cookie.",
            self.tcp_syn_cookies_accepted,
            false,
        );
        f(
            "tcp_syn_cookies_invalid",
            "ACKs to a listener carrying no valid cookie.",
            self.tcp_syn_cookies_invalid,
            false,
        );
        f("tcp_conn_table_full", "SYNs dropped because the connection table is full.", self.tcp_conn_table_full, false);
        f(
            "tcp_accept_queue_full",
            "Connections refused because the accept queue was full.",
            self.tcp_accept_queue_full,
            false,
        );
        f("tcp_time_wait", "Connections that entered TIME-WAIT (kept as compact entries).", self.tcp_time_wait, false);
        f("tcp_time_wait_recycled", "TIME-WAIT entries recycled before expiry to stay under the cap (oldest first, Linux's `tcp_max_tw_buckets` overflow).", self.tcp_time_wait_recycled, false);
        f(
            "tcp_time_wait_reopened",
            "SYNs for a four-tuple in TIME-WAIT accepted as a new connection (RFC 6191).",
            self.tcp_time_wait_reopened,
            false,
        );
        f(
            "tcp_time_wait_syn_dropped",
            "SYNs for a four-tuple in TIME-WAIT dropped as old duplicates (RFC 6191).",
            self.tcp_time_wait_syn_dropped,
            false,
        );
        f("conn_visits", "Connection entries visited by timers (`Stack::handle_timeout`) and output (`Stack::dispatch`): what a poll costs, which follows the connections that had something to do, never the connections that are open.", self.conn_visits, false);
        f(
            "payload_bytes_copied",
            "Payload bytes copied behind a header because multi-buffer TX is unavailable.",
            self.payload_bytes_copied,
            false,
        );
        f(
            "tx_payload_bytes",
            "TCP payload bytes transmitted (first transmissions and retransmissions).",
            self.tx_payload_bytes,
            false,
        );
        f("tx_frames", "Frames transmitted.", self.tx_frames, false);
        f(
            "tx_link_full",
            "Frames the link refused (ring full); TCP recovers them as losses.",
            self.tx_link_full,
            false,
        );
        f("tx_no_frame", "Transmissions skipped because no header frame could be allocated.", self.tx_no_frame, false);
        f(
            "tx_control_dropped",
            "Control replies (RST, ARP, ICMP) dropped because their queue was full.",
            self.tx_control_dropped,
            false,
        );
        f(
            "tx_neighbor_missing",
            "Segments held back because the next hop's MAC is unknown.",
            self.tx_neighbor_missing,
            false,
        );
        f("arp_replies_sent", "ARP requests for us answered.", self.arp_replies_sent, false);
        f("arp_requests_sent", "ARP requests sent.", self.arp_requests_sent, false);
        f("icmp_echo_replies", "ICMP / ICMPv6 echo requests answered.", self.icmp_echo_replies, false);
        f("ndp_adverts_sent", "Neighbour advertisements sent.", self.ndp_adverts_sent, false);
        f("ndp_solicits_sent", "Neighbour solicitations sent.", self.ndp_solicits_sent, false);
        f(
            "rx_bad_src_mac",
            "Frames from a broadcast, multicast or all-zero source MAC (no station sends from one): dropped.",
            self.rx_bad_src_mac,
            false,
        );
        f(
            "ndp_bad_hop_limit",
            "NDP messages with a hop limit other than 255 (RFC 4861: sent from off the link): dropped.",
            self.ndp_bad_hop_limit,
            false,
        );
        f("neighbor_refused", "Neighbour information not recorded: over a static entry, a MAC no peer can have, an unsolicited advertisement for an unknown address, or the cache full.", self.neighbor_refused, false);
        f("tcp_syn_cookies_not_recent", "ACKs to a listener that would complete a SYN-cookie handshake while no cookie was sent within a cookie's lifetime: refused unchecked (answered with RST).", self.tcp_syn_cookies_not_recent, false);
        f("tcp_syn_cookies_overflow", "Valid cookie ACKs that found the accept queue full (dropped, or reset with `StackConfig::abort_on_overflow`); also counted in `tcp_accept_queue_full`.", self.tcp_syn_cookies_overflow, false);
        f("rx_vlan", "VLAN-tagged frames (no VLAN is configured): dropped.", self.rx_vlan, false);
        f("rx_ipv6_fragments", "IPv6 fragments (not reassembled): dropped.", self.rx_ipv6_fragments, false);
        f(
            "icmp_pmtu_received",
            "ICMP \"fragmentation needed\" and ICMPv6 \"packet too big\" messages quoting TCP.",
            self.icmp_pmtu_received,
            false,
        );
        f("icmp_pmtu_rejected", "Of those, refused: for no connection of ours, quoting a sequence number outside what is in flight (RFC 5927 section 4.1), or with no usable MTU.", self.icmp_pmtu_rejected, false);
        f("tcp_pmtu_lowered", "Connections whose send MSS a path MTU message lowered.", self.tcp_pmtu_lowered, false);
        f(
            "tcp_ts_missing",
            "Segments without a timestamp on a connection that uses timestamps (RFC 7323 section 3.2): dropped.",
            self.tcp_ts_missing,
            false,
        );
        f("tcp_ack_too_old", "Segments acknowledging data older than a window below `snd_una` (RFC 5961 section 5): dropped, answered with a challenge ACK.", self.tcp_ack_too_old, false);
        f("tcp_challenge_acks", "Challenge ACKs sent (RFC 5961: for an in-window RST, a SYN on a synchronized connection, an unacceptable ACK).", self.tcp_challenge_acks, false);
        f("tcp_oow_acks_limited", "ACKs not sent for dropped segments (challenges, duplicate ACKs for segments out of the window or rejected by PAWS) because the connection, or the TIME-WAIT entry, sent one less than 500 ms before (RFC 5961 section 7).", self.tcp_oow_acks_limited, false);
        f("tcp_rx_coalesced", "In-order segments copied into a compact frame instead of pinning the frame they arrived in (small payloads, or any while the queues are over budget).", self.tcp_rx_coalesced, false);
        f("rx_bytes_coalesced", "Bytes those copies moved: receive-side copies, apart from `payload_bytes_copied` (which counts transmit copies).", self.rx_bytes_coalesced, false);
        f("tcp_ooo_pruned", "Out-of-order segments dropped to make room: for a segment below them in the connection's budget (Linux `tcp_prune_ofo_queue`), or because the pool ran low.", self.tcp_ooo_pruned, false);
        f("tcp_pressure_prunes", "Connections whose out-of-order queue was dropped because the pool's free frames fell below `StackConfig::pressure.prune_below`.", self.tcp_pressure_prunes, false);
        f("tcp_pressure_refused", "New connections (SYNs, cookie ACKs) refused because the pool's free frames stayed below `StackConfig::pressure.refuse_below` after pruning.", self.tcp_pressure_refused, false);
        f(
            "tcp_close_discarded",
            "Bytes received and not read when the application closed: dropped then.",
            self.tcp_close_discarded,
            false,
        );
        f("tcp_abort_on_data", "Connections reset because new data arrived after the application closed (FIN-WAIT, nobody to read it; Linux `TCPAbortOnData`).", self.tcp_abort_on_data, false);
        f("tcp_probe_timeouts", "Connections dropped after `max_retries` zero-window probes went unanswered (the peer vanished behind its zero window); also counted in `tcp_timeouts`.", self.tcp_probe_timeouts, false);
        f("tcp_fin_wait2_entries", "Orphans in FIN-WAIT-2 turned into compact entries (no connection, no frame); those that time out are counted in `tcp_fin_wait2_timeouts`.", self.tcp_fin_wait2_entries, false);
    }

    /// Counts a wire-level drop.
    pub fn wire(&mut self, e: WireError) {
        let c = match e {
            WireError::Ethernet => &mut self.rx_bad_ethernet,
            WireError::Ethertype => &mut self.rx_unknown_ethertype,
            WireError::Vlan => &mut self.rx_vlan,
            WireError::Arp => &mut self.rx_bad_arp,
            WireError::Ipv4 => &mut self.rx_bad_ipv4,
            WireError::Ipv4Checksum => &mut self.rx_bad_ipv4_checksum,
            WireError::Ipv4Fragment => &mut self.rx_ipv4_fragments,
            WireError::Ipv6Fragment => &mut self.rx_ipv6_fragments,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_names_every_field_once_with_its_value() {
        // Debug prints every field as `name: value`; each() must list the same names.
        let debug = format!("{:?}", Counters::default());
        let fields: Vec<&str> = debug
            .trim_start_matches("Counters {")
            .trim_end_matches('}')
            .split(',')
            .filter_map(|f| f.split(':').next())
            .map(str::trim)
            .filter(|f| !f.is_empty() && *f != "..")
            .collect();
        let mut listed = Vec::new();
        let c = Counters { tcp_retransmits: 7, ..Counters::default() };
        c.each(|name, help, value, _| {
            assert!(!help.is_empty(), "{name} has no documentation");
            assert_eq!(value, if name == "tcp_retransmits" { 7 } else { 0 }, "{name}");
            listed.push(name);
        });
        assert_eq!(listed, fields, "Counters::each must list every field, in order");
    }
}
