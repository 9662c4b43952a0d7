//! Counters of the server, dumped as `/metrics`-style text on SIGUSR1, at exit, and on the
//! control port.

use std::fmt::Write;

use crate::http::Status;
use crate::session::Timeout;

/// Server-wide counters.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub connections: u64,
    pub connections_open: u64,
    pub requests: u64,
    by_status: [u64; Status::ALL.len()],
    /// Body bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes the CPU copied in this process (or through a user buffer).
    pub bytes_copied: u64,
    pub timeouts_head: u64,
    pub timeouts_idle: u64,
    pub timeouts_write: u64,
    pub refused_connections: u64,
    /// Responses cut short because the file shrank while it was sent (the connection was
    /// reset, never left open with a short body).
    pub bodies_truncated: u64,
    /// Backend-specific lines (`name value`).
    pub extra: Vec<(String, u64)>,
}

/// Whether the `n`th occurrence of a condition is worth a log line: the 1st, 2nd, 4th,
/// 8th, ... (a flood logs a few lines, each with its count; no clock needed).
pub fn worth_logging(n: u64) -> bool {
    n.is_power_of_two()
}

impl Metrics {
    pub fn count(&mut self, s: Status) {
        self.requests += 1;
        if let Some(i) = Status::ALL.iter().position(|x| *x == s) {
            self.by_status[i] += 1;
        }
    }

    /// Counts a connection ended by a timer.
    pub fn timed_out(&mut self, why: Timeout) {
        match why {
            Timeout::Head => self.timeouts_head += 1,
            Timeout::Idle => self.timeouts_idle += 1,
            Timeout::Write => self.timeouts_write += 1,
        }
    }

    /// The text form: one `name{labels} value` per line.
    pub fn render(&self, backend: &str) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# fileserver backend={backend}");
        let _ = writeln!(o, "fileserver_connections_total {}", self.connections);
        let _ = writeln!(o, "fileserver_connections_open {}", self.connections_open);
        let _ = writeln!(o, "fileserver_requests_total {}", self.requests);
        for (i, s) in Status::ALL.iter().enumerate() {
            if self.by_status[i] > 0 {
                let _ = writeln!(o, "fileserver_responses_total{{status=\"{}\"}} {}", s.code(), self.by_status[i]);
            }
        }
        let _ = writeln!(o, "fileserver_body_bytes_sent_total {}", self.bytes_sent);
        let _ = writeln!(o, "fileserver_payload_bytes_copied_total {}", self.bytes_copied);
        let _ = writeln!(o, "fileserver_timeouts_total{{phase=\"head\"}} {}", self.timeouts_head);
        let _ = writeln!(o, "fileserver_timeouts_total{{phase=\"idle\"}} {}", self.timeouts_idle);
        let _ = writeln!(o, "fileserver_timeouts_total{{phase=\"write\"}} {}", self.timeouts_write);
        let _ = writeln!(o, "fileserver_connections_refused_total {}", self.refused_connections);
        let _ = writeln!(o, "fileserver_bodies_truncated_total {}", self.bodies_truncated);
        for (k, v) in &self.extra {
            let _ = writeln!(o, "fileserver_{k} {v}");
        }
        o
    }
}
