//! Counters of the server, dumped as `/metrics`-style text on SIGUSR1, at exit, and on the
//! control port.

use std::fmt::Write;

use crate::http::Status;
use crate::prom::{Exposition, Histogram};
use crate::session::Timeout;

/// The request-time histogram's family name and help.
pub const REQUEST_SECONDS: (&str, &str) = (
    "fileserver_request_seconds",
    "Time from a request's head parsed to its response's last byte handed to the transport \
     (the TCP send queue or the socket; not its acknowledgement), seconds.",
);

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
    /// Multi-buffer packets received where single frames were expected (AF_XDP backend).
    pub rx_multi_dropped: u64,
    /// Request time (see [`REQUEST_SECONDS`]).
    pub request_time: Histogram,
    /// Backend-specific lines (`name value`).
    pub extra: Vec<(String, u64)>,
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

    /// Adds `o`'s counters to these: every field, and `extra` by name (a worker's
    /// counters into the server's sum).
    pub fn add(&mut self, o: &Metrics) {
        // Destructured, so a new field cannot be left out of the sum.
        let Metrics {
            connections,
            connections_open,
            requests,
            by_status,
            bytes_sent,
            bytes_copied,
            timeouts_head,
            timeouts_idle,
            timeouts_write,
            refused_connections,
            rx_multi_dropped,
            request_time,
            extra,
        } = o;
        self.connections += connections;
        self.connections_open += connections_open;
        self.requests += requests;
        for (a, b) in self.by_status.iter_mut().zip(by_status) {
            *a += b;
        }
        self.bytes_sent += bytes_sent;
        self.bytes_copied += bytes_copied;
        self.timeouts_head += timeouts_head;
        self.timeouts_idle += timeouts_idle;
        self.timeouts_write += timeouts_write;
        self.refused_connections += refused_connections;
        self.rx_multi_dropped += rx_multi_dropped;
        self.request_time.add(request_time);
        for (k, v) in extra {
            match self.extra.iter_mut().find(|(n, _)| n == k) {
                Some(e) => e.1 += v,
                None => self.extra.push((k.clone(), *v)),
            }
        }
    }

    /// The text form: one `name{labels} value` per line.
    pub fn render(&self, backend: &str) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# fileserver backend={backend}");
        self.write_series(&mut o, None);
        o
    }

    /// Appends one `name{labels} value` line per counter to `o`, with `label` (such as
    /// `queue="1"`) added to each line's labels.
    pub fn write_series(&self, o: &mut String, label: Option<&str>) {
        self.samples(|name, labels, v| {
            let _ = match (labels.is_empty(), label) {
                (true, None) => writeln!(o, "{name} {v}"),
                (true, Some(l)) => writeln!(o, "{name}{{{l}}} {v}"),
                (false, None) => writeln!(o, "{name}{{{labels}}} {v}"),
                (false, Some(l)) => writeln!(o, "{name}{{{labels},{l}}} {v}"),
            };
        });
        let h = &self.request_time;
        let (name, _) = REQUEST_SECONDS;
        let with = |extra: &str| match label {
            Some(l) if extra.is_empty() => format!("{{{l}}}"),
            Some(l) => format!("{{{l},{extra}}}"),
            None if extra.is_empty() => String::new(),
            None => format!("{{{extra}}}"),
        };
        for (le, n) in h.cumulative() {
            let _ = writeln!(o, "{name}_bucket{} {n}", with(&format!("le=\"{le}\"")));
        }
        let _ = writeln!(o, "{name}_sum{} {}", with(""), h.sum_seconds());
        let _ = writeln!(o, "{name}_count{} {}", with(""), h.count());
    }

    /// Adds every series to a Prometheus exposition, with `label` added to each.
    pub fn expose(&self, e: &mut Exposition, label: Option<&str>) {
        let join = |labels: &str| match (labels.is_empty(), label) {
            (_, None) => labels.to_owned(),
            (true, Some(l)) => l.to_owned(),
            (false, Some(l)) => format!("{labels},{l}"),
        };
        self.samples(|name, labels, v| e.sample(name, &join(labels), v));
        let (name, help) = REQUEST_SECONDS;
        e.histogram(name, help, label.unwrap_or(""), &self.request_time);
    }

    /// Calls `f(name, labels, value)` for every counter and gauge (the histogram aside).
    pub fn samples(&self, mut f: impl FnMut(&str, &str, u64)) {
        let mut line = |name: &str, labels: &str, v: u64| f(&format!("fileserver_{name}"), labels, v);
        line("connections_total", "", self.connections);
        line("connections_open", "", self.connections_open);
        line("requests_total", "", self.requests);
        for (i, s) in Status::ALL.iter().enumerate() {
            if self.by_status[i] > 0 {
                line("responses_total", &format!("status=\"{}\"", s.code()), self.by_status[i]);
            }
        }
        line("body_bytes_sent_total", "", self.bytes_sent);
        line("payload_bytes_copied_total", "", self.bytes_copied);
        line("timeouts_total", "phase=\"head\"", self.timeouts_head);
        line("timeouts_total", "phase=\"idle\"", self.timeouts_idle);
        line("timeouts_total", "phase=\"write\"", self.timeouts_write);
        line("connections_refused_total", "", self.refused_connections);
        for (k, v) in &self.extra {
            match k.split_once('{') {
                Some((name, labels)) => line(name, labels.trim_end_matches('}'), *v),
                None => line(k, "", *v),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u64) -> Metrics {
        let mut m = Metrics { connections: n, bytes_sent: 10 * n, ..Metrics::default() };
        m.count(Status::Ok);
        m.extra = vec![("xsk_tx_descs_total".into(), n), (format!("only_{n}"), 1)];
        m
    }

    #[test]
    fn sums_add_every_counter_and_extras_by_name() {
        let mut sum = sample(1);
        sum.add(&sample(2));
        let text = sum.render("xdp");
        for want in [
            "fileserver_connections_total 3\n",
            "fileserver_body_bytes_sent_total 30\n",
            "fileserver_responses_total{status=\"200\"} 2\n",
            "fileserver_xsk_tx_descs_total 3\n",
            "fileserver_only_1 1\n",
            "fileserver_only_2 1\n",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
    }

    #[test]
    fn a_label_joins_the_labels_a_series_has() {
        let mut m = sample(1);
        m.extra.push(("kind_total{kind=\"a\"}".into(), 4));
        let mut text = String::new();
        m.write_series(&mut text, Some("queue=\"3\""));
        for want in [
            "fileserver_connections_total{queue=\"3\"} 1\n",
            "fileserver_responses_total{status=\"200\",queue=\"3\"} 1\n",
            "fileserver_timeouts_total{phase=\"head\",queue=\"3\"} 0\n",
            "fileserver_kind_total{kind=\"a\",queue=\"3\"} 4\n",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
    }

    #[test]
    fn the_exposition_groups_the_sum_and_each_queue_under_one_family() {
        let (mut a, mut b) = (sample(1), sample(2));
        a.request_time.observe(700);
        b.request_time.observe(70_000);
        let mut sum = a.clone();
        sum.add(&b);
        let mut e = Exposition::default();
        sum.expose(&mut e, None);
        a.expose(&mut e, Some("queue=\"0\""));
        b.expose(&mut e, Some("queue=\"1\""));
        let text = e.render();
        let fam = text.find("# TYPE fileserver_connections_total counter\n").expect("typed");
        let lines: Vec<&str> = text[fam..].lines().skip(1).take(3).collect();
        assert_eq!(
            lines,
            [
                "fileserver_connections_total 3",
                "fileserver_connections_total{queue=\"0\"} 1",
                "fileserver_connections_total{queue=\"1\"} 2"
            ]
        );
        for want in [
            "# TYPE fileserver_connections_open gauge\n",
            "# TYPE fileserver_request_seconds histogram\n",
            "fileserver_request_seconds_bucket{le=\"0.001\"} 1\n",
            "fileserver_request_seconds_bucket{le=\"0.1\"} 2\n",
            "fileserver_request_seconds_count 2\n",
            "fileserver_request_seconds_bucket{queue=\"1\",le=\"0.05\"} 0\n",
            "fileserver_request_seconds_bucket{queue=\"1\",le=\"0.1\"} 1\n",
            "fileserver_responses_total{status=\"200\",queue=\"1\"} 1\n",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        assert_eq!(text.matches("# HELP ").count(), text.matches("# TYPE ").count());
        assert_eq!(text.matches("# TYPE fileserver_request_seconds ").count(), 1);
    }
}
