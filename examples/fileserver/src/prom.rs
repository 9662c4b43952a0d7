//! The Prometheus text exposition format (version 0.0.4), which `promtool check metrics`
//! and every Prometheus-compatible scraper read: samples grouped by family, each family
//! once with `# HELP` and `# TYPE`, counters named `_total`, gauges, and histograms as
//! cumulative `_bucket{le="..."}` counts with `_sum` and `_count`.
//!
//! ```text
//!   Metrics (sum, and each worker's) ─► Metrics::samples ─► Exposition::sample ─┐
//!   Histogram (request time)         ─► Exposition::histogram ────────────────────┴─► render
//! ```
//!
//! A family's kind follows its name, as the project names them: `_total` is a counter,
//! anything else a gauge (a level such as `connections_open` or `pool_frames_free`).

use std::collections::HashMap;
use std::fmt::Write;

/// Upper bounds of the request-time histogram's buckets, microseconds (100 us .. 10 s;
/// the `+Inf` bucket follows).
pub const BUCKETS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// A latency histogram: a count per bucket (not cumulative; rendering makes it so), the
/// sum and the count. Fixed size: observing never allocates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// `counts[i]` holds observations in `(BUCKETS_US[i-1], BUCKETS_US[i]]`; the last, the
    /// ones above every bound.
    counts: [u64; BUCKETS_US.len() + 1],
    sum_us: u64,
}

impl Histogram {
    /// Records one observation of `us` microseconds.
    pub fn observe(&mut self, us: u64) {
        let i = BUCKETS_US.partition_point(|&b| b < us);
        self.counts[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `o`'s observations to these (a worker's into the server's sum).
    pub fn add(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.sum_us = self.sum_us.saturating_add(o.sum_us);
    }

    /// Each bucket's `le` bound (seconds, as text; `+Inf` last) and its cumulative count.
    pub fn cumulative(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let bounds = BUCKETS_US.iter().map(|&b| seconds(b)).chain(std::iter::once("+Inf".to_owned()));
        bounds.zip(self.counts.iter().scan(0u64, |acc, c| {
            *acc += c;
            Some(*acc)
        }))
    }

    /// The sum, seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }
}

/// Microseconds as seconds in the shortest exact decimal (`0.0001`, `2.5`, `10`).
fn seconds(us: u64) -> String {
    let (whole, frac) = (us / 1_000_000, us % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }

    /// The kind the project's naming gives `name`.
    pub fn of(name: &str) -> Kind {
        if name.ends_with("_total") {
            Kind::Counter
        } else {
            Kind::Gauge
        }
    }
}

#[derive(Debug)]
struct Family {
    name: String,
    kind: Kind,
    help: String,
    /// Sample lines (`name{labels} value`), in the order added.
    lines: Vec<String>,
}

/// Families being collected, in the order first seen; see the module docs.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
    index: HashMap<String, usize>,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: Kind, help: impl FnOnce() -> String) -> &mut Family {
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                self.families.push(Family { name: name.to_owned(), kind, help: help(), lines: Vec::new() });
                self.index.insert(name.to_owned(), self.families.len() - 1);
                self.families.len() - 1
            }
        };
        &mut self.families[i]
    }

    /// Adds one sample of family `name` (its kind from its name, its help from [`help`])
    /// with `labels` (`a="b",c="d"`, or empty).
    pub fn sample(&mut self, name: &str, labels: &str, value: u64) {
        let f = self.family(name, Kind::of(name), || help(name));
        let line = if labels.is_empty() { format!("{name} {value}") } else { format!("{name}{{{labels}}} {value}") };
        f.lines.push(line);
    }

    /// Adds histogram `name` with `labels`: its buckets, sum and count.
    pub fn histogram(&mut self, name: &str, help: &str, labels: &str, h: &Histogram) {
        let f = self.family(name, Kind::Histogram, || help.to_owned());
        let sep = if labels.is_empty() { "" } else { "," };
        for (le, n) in h.cumulative() {
            f.lines.push(format!("{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}"));
        }
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        f.lines.push(format!("{name}_sum{braces} {}", h.sum_seconds()));
        f.lines.push(format!("{name}_count{braces} {}", h.count()));
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        for f in &self.families {
            let _ = writeln!(o, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(o, "# TYPE {} {}", f.name, f.kind.name());
            for l in &f.lines {
                let _ = writeln!(o, "{l}");
            }
        }
        o
    }
}

/// HELP text escapes backslashes and line feeds.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// What a family of the file server measures (`fileserver_` and the kind's suffix are
/// part of the name).
pub fn help(name: &str) -> String {
    let short = name.strip_prefix("fileserver_").unwrap_or(name);
    let known = HELP.iter().find(|(n, _)| *n == short).map(|(_, h)| *h);
    match known {
        Some(h) => h.to_owned(),
        None => format!(
            "{} of the file server ({short}).",
            if Kind::of(name) == Kind::Counter { "Counter" } else { "Level" }
        ),
    }
}

const HELP: &[(&str, &str)] = &[
    ("connections_total", "TCP connections accepted."),
    ("connections_open", "TCP connections open now."),
    ("connections_refused_total", "Connections accepted and closed at once because --max-connections were open."),
    ("requests_total", "HTTP requests answered (any status)."),
    ("responses_total", "HTTP responses by status code."),
    ("body_bytes_sent_total", "Response body bytes handed to the transport."),
    ("payload_bytes_copied_total", "Payload bytes the CPU copied in this process (0 with multi-buffer)."),
    ("timeouts_total", "Connections closed by a timer, by phase (head, idle, write)."),
    ("workers", "AF_XDP worker threads (one per rx queue)."),
    ("access_log_lines_total", "Access log lines handed to the log thread."),
    ("access_log_dropped_total", "Access log lines dropped because the log thread's queue was full."),
    ("xdp_seen_total", "Packets the XDP program looked at."),
    ("xdp_redirected_total", "Packets the XDP program redirected to an AF_XDP socket."),
    ("xdp_passed_total", "Packets the XDP program passed to the kernel."),
    ("xdp_malformed_total", "Packets the XDP program could not parse (passed)."),
    ("xdp_no_socket_total", "Steered packets dropped for want of a socket on their rx queue."),
    ("xdp_fragments_total", "IP fragments of steered flows redirected."),
    ("xdp_icmp_errors_total", "ICMP errors quoting a steered flow redirected."),
    ("xdp_vlan_total", "VLAN-tagged packets seen."),
    ("control_connections_total", "Connections to the control port."),
    ("control_answered_total", "Requests the control port answered."),
    ("control_timeouts_total", "Control port connections closed by its timeout."),
    ("control_evicted_total", "Idle control port connections closed to make room."),
    ("control_refused_total", "Control port connections refused because every slot was answering."),
    ("control_too_long_total", "Control port request heads over the size limit."),
    ("tcp_retransmits_total", "TCP segments retransmitted."),
    ("tcp_fast_recoveries_total", "TCP fast recoveries entered."),
    ("tcp_loss_probes_total", "TCP tail loss probes sent."),
    ("tcp_bad_offset_total", "TCP segments dropped for a bad data offset."),
    ("tcp_bad_options_total", "TCP segments dropped for malformed options."),
    ("tcp_rst_bad_seq_total", "TCP resets ignored for a sequence number outside the window."),
    ("tcp_rst_challenged_total", "TCP resets answered with a challenge ACK."),
    ("tcp_syn_received_total", "TCP SYNs received."),
    ("tcp_syn_challenged_total", "TCP SYNs on open connections answered with a challenge ACK."),
    ("tcp_out_of_window_total", "TCP segments outside the receive window."),
    ("tcp_conn_table_full_total", "TCP connections refused because the table was full."),
    ("tcp_syn_cookies_sent_total", "TCP SYN cookies sent."),
    ("tcp_rto_expired_total", "TCP retransmission timeouts."),
    ("tcp_established_total", "TCP connections established."),
    ("tcp_bad_checksum_total", "TCP segments dropped for a bad checksum."),
    ("tx_payload_bytes_total", "TCP payload bytes transmitted, retransmissions included."),
    ("stack_tx_link_full_total", "Frames the stack could not transmit because the link was full."),
    ("stack_tx_no_frame_total", "Frames the stack could not build for want of a pool frame."),
    ("stack_tx_frames_total", "Frames the stack transmitted."),
    ("stack_rx_frames_total", "Frames the stack received."),
    ("rx_multi_buffer_dropped_total", "Multi-buffer packets received where single frames were expected."),
    ("head_frame_waits_total", "Response heads that waited for a pool frame."),
    ("pool_frames_free", "Packet frames free in the pool."),
    ("pool_blocks_free", "Payload blocks free in the pool."),
    ("cache_cached_blocks", "Blocks held by the block cache."),
    ("cache_blocks_cached", "Blocks held by the block cache."),
    (
        "cache_admissions_total",
        "Requests of large files admitted to the cache (requested before, lately, and no larger than it).",
    ),
    ("cache_rejections_total", "Requests of large files streamed past the cache."),
    ("cache_admitted_blocks_total", "Blocks of admitted requests put in the cache."),
    (
        "cache_admission_losses_total",
        "Blocks of admitted requests not kept (the block they would replace is hotter, or held).",
    ),
    ("cache_admission_resets_total", "Times the admission counts were halved (aging)."),
    ("cache_large_hits_total", "Blocks of large files served without a disk read of their own."),
    ("cache_large_hit_bytes_total", "Bytes of large files served from memory."),
    ("cache_large_read_bytes_total", "Bytes of large files read from disk (streamed or admitted)."),
    ("tcp_connections", "TCP connections in the stack's table now (every state but TIME-WAIT)."),
    ("tcp_half_open", "Half-open TCP connections (SYN received) now."),
    ("tcp_time_wait_entries", "TIME-WAIT entries now."),
    ("cache_bytes", "Bytes held by the block cache."),
    ("cache_hits_total", "Blocks served from the block cache."),
    ("cache_misses_total", "Cacheable blocks not in the cache."),
    ("cache_evictions_total", "Blocks the cache let go of to make room."),
    ("cache_streamed_total", "Blocks of files above --direct-threshold, read past the cache."),
    ("read_bytes_direct_total", "Bytes read with O_DIRECT."),
    ("read_bytes_buffered_total", "Bytes read through the page cache (buffered fallback)."),
    ("reads_direct_total", "O_DIRECT reads."),
    ("reads_buffered_total", "Buffered reads."),
    ("read_direct_fallback_files_total", "Files whose file system refused O_DIRECT (read buffered)."),
    ("read_errors_total", "Block reads that failed."),
    ("xsk_rx_dropped_total", "Packets the kernel dropped at the AF_XDP socket (XDP_STATISTICS rx_dropped)."),
    ("xsk_rx_ring_full_total", "Packets dropped because the AF_XDP RX ring was full."),
    ("xsk_fill_ring_empty_total", "Times the AF_XDP fill ring was empty (raise --frames)."),
    ("xsk_tx_ring_full_total", "Times the AF_XDP TX ring was full."),
    ("xsk_tx_invalid_descs_total", "TX descriptors the kernel refused as invalid."),
    ("xsk_tx_descs_total", "TX descriptors submitted."),
    ("xsk_tx_completed_total", "TX descriptors completed."),
    ("xsk_tx_wakeups_total", "sendto calls to kick transmission."),
    ("xsk_tx_wakeup_errors_total", "sendto kicks that failed."),
    ("xsk_tx_refused_total", "Packets the link refused for a reason other than a full ring."),
    ("loop_turns_total", "Worker loop turns."),
    ("loop_sleeps_total", "Worker sleeps in ppoll."),
    ("loop_memory_sleeps_total", "Worker sleeps bounded while waiting for pool memory."),
    ("loop_wait_errors_total", "ppoll calls that failed."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_at_inf() {
        let mut h = Histogram::default();
        for us in [50, 100, 101, 3_000, 20_000_000] {
            h.observe(us);
        }
        let b: Vec<(String, u64)> = h.cumulative().collect();
        assert_eq!(b.len(), BUCKETS_US.len() + 1);
        assert_eq!(b[0], ("0.0001".to_owned(), 2), "100 us is within le=0.0001 (le is inclusive)");
        assert_eq!(b[1], ("0.00025".to_owned(), 3));
        assert_eq!(b[4], ("0.0025".to_owned(), 3));
        assert_eq!(b[5], ("0.005".to_owned(), 4));
        assert_eq!(b[BUCKETS_US.len() - 1], ("10".to_owned(), 4));
        assert_eq!(b[BUCKETS_US.len()], ("+Inf".to_owned(), 5), "+Inf holds every observation");
        assert!(b.windows(2).all(|w| w[0].1 <= w[1].1), "never decreasing: {b:?}");
        assert_eq!(h.count(), 5);
        assert!((h.sum_seconds() - 20.003251).abs() < 1e-9, "{}", h.sum_seconds());
        let mut sum = h.clone();
        sum.add(&h);
        assert_eq!((sum.count(), sum.cumulative().nth(5).unwrap().1), (10, 8));
    }

    #[test]
    fn seconds_print_exactly() {
        assert_eq!(seconds(100), "0.0001");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(10_000_000), "10");
    }

    #[test]
    fn families_come_once_with_help_and_type() {
        let mut e = Exposition::default();
        e.sample("fileserver_requests_total", "", 7);
        e.sample("fileserver_connections_open", "", 2);
        e.sample("fileserver_requests_total", "queue=\"0\"", 7);
        let mut h = Histogram::default();
        h.observe(300);
        e.histogram("fileserver_request_seconds", "Request time.", "", &h);
        let text = e.render();
        let want = "# HELP fileserver_requests_total HTTP requests answered (any status).\n\
                    # TYPE fileserver_requests_total counter\n\
                    fileserver_requests_total 7\n\
                    fileserver_requests_total{queue=\"0\"} 7\n\
                    # HELP fileserver_connections_open TCP connections open now.\n\
                    # TYPE fileserver_connections_open gauge\n\
                    fileserver_connections_open 2\n\
                    # HELP fileserver_request_seconds Request time.\n\
                    # TYPE fileserver_request_seconds histogram\n\
                    fileserver_request_seconds_bucket{le=\"0.0001\"} 0\n\
                    fileserver_request_seconds_bucket{le=\"0.00025\"} 0\n\
                    fileserver_request_seconds_bucket{le=\"0.0005\"} 1\n";
        assert!(text.starts_with(want), "{text}");
        for l in ["fileserver_request_seconds_bucket{le=\"+Inf\"} 1\n", "fileserver_request_seconds_sum 0.0003\n"] {
            assert!(text.contains(l), "{l:?} missing:\n{text}");
        }
        assert!(text.ends_with("fileserver_request_seconds_count 1\n"), "{text}");
        assert_eq!(text.matches("# TYPE fileserver_requests_total").count(), 1);
    }

    #[test]
    fn labelled_histograms_put_le_last_and_unknown_names_get_help() {
        let mut e = Exposition::default();
        e.histogram("x_seconds", "X.", "queue=\"1\"", &Histogram::default());
        e.sample("fileserver_new_thing_total", "", 1);
        let text = e.render();
        assert!(text.contains("x_seconds_bucket{queue=\"1\",le=\"0.0001\"} 0\n"), "{text}");
        assert!(text.contains("x_seconds_count{queue=\"1\"} 0\n"), "{text}");
        assert!(text.contains("# HELP fileserver_new_thing_total Counter of the file server (new_thing_total).\n"));
        assert_eq!(help("a\\b"), "Level of the file server (a\\b).");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    }
}
