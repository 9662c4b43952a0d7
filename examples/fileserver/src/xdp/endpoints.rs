//! What the AF_XDP backend's control port answers, on the control thread:
//!
//! * `/metrics` (and `/`): the Prometheus text format ([`crate::prom`]): every family
//!   once, the sum over workers unlabelled and each worker's series with `queue="N"`,
//!   and the request-time histogram.
//! * `/connections`: one line per TCP connection, like `ss -tin`. The control thread asks
//!   every worker for a snapshot and wakes it ([`super::publish`]); each fills its own on
//!   its next turn, never waiting for the control thread. The answer waits at most
//!   [`CONNECTIONS_WAIT`] and says which workers did not answer in time (their previous
//!   snapshot is shown, with its age).
//! * `/health`: `200 ok` when every worker has turned its loop within [`STUCK`] or sleeps
//!   in `ppoll` (idle); `503` naming each worker that has done neither (stuck in a turn,
//!   or gone).
//!
//! ```text
//!   GET /connections ─► Slot::ask_connections + wake ─► (worker turn: offer_connections) ─► wait ≤ 300 ms ─► lines
//! ```

use std::fmt::Write as _;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datapath::ProgramCounters;
use stack::tcp::{CaState, ConnInfo, State};

use super::control::{Answer, ControlStats};
use super::publish::{Connections, Slot};
use crate::access_log::LogStats;
use crate::metrics::Metrics;
use crate::prom::Exposition;

/// A worker that is awake and has not turned its loop for this long is stuck.
pub const STUCK: Duration = Duration::from_secs(2);
/// How long `/connections` waits for the workers' snapshots.
pub const CONNECTIONS_WAIT: Duration = Duration::from_millis(300);

/// What the control thread sees of one worker.
#[derive(Debug)]
pub struct WorkerView {
    pub queue: u32,
    pub slot: Arc<Slot>,
    /// Its wake-up eventfd.
    pub wake: Arc<OwnedFd>,
}

/// The control port's answers for the AF_XDP backend; see the module docs.
#[derive(Debug)]
pub struct Endpoints {
    pub workers: Vec<WorkerView>,
    pub prog: Arc<Mutex<ProgramCounters>>,
    pub log: Option<Arc<LogStats>>,
}

impl Endpoints {
    /// The answer to a GET of `path`.
    pub fn answer(&self, path: &str, cs: &ControlStats) -> Answer {
        match path {
            "/" | "/metrics" => Answer::metrics(self.metrics(cs)),
            "/connections" => Answer::text(200, self.connections()),
            "/health" => health(self.workers.iter().map(|w| (w.queue, w.slot.stuck_for(STUCK)))),
            _ => Answer::text(404, format!("no {path} here: try /metrics, /connections or /health\n")),
        }
    }

    fn metrics(&self, cs: &ControlStats) -> String {
        let per: Vec<(u32, Metrics)> =
            self.workers.iter().map(|w| (w.queue, w.slot.read().unwrap_or_default())).collect();
        exposition(&per, &super::summed(&per, &self.prog, Some(cs), self.log.as_deref()))
    }

    fn connections(&self) -> String {
        let asked: Vec<u64> = self
            .workers
            .iter()
            .map(|w| {
                let g = w.slot.ask_connections();
                let _ = rustix::io::write(&*w.wake, &1u64.to_ne_bytes());
                g
            })
            .collect();
        let start = std::time::Instant::now();
        let mut snaps: Vec<Connections> = Vec::new();
        loop {
            snaps.clear();
            snaps.extend(self.workers.iter().map(|w| w.slot.connections()));
            let all = snaps.iter().zip(&asked).all(|(s, g)| s.generation > *g);
            if all || start.elapsed() >= CONNECTIONS_WAIT {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut out = String::from(HEADER);
        for ((w, s), g) in self.workers.iter().zip(&snaps).zip(&asked) {
            for c in &s.rows {
                out.push_str(&connection_line(w.queue, c));
            }
            if s.more > 0 {
                let _ = writeln!(out, "# queue {}: {} more connections not listed", w.queue, s.more);
            }
            if s.generation <= *g {
                let now = w.slot.epoch().elapsed().as_micros() as i64;
                let age = Duration::from_micros((now - s.at.total_micros()).max(0) as u64);
                let _ = writeln!(
                    out,
                    "# queue {}: no answer within {CONNECTIONS_WAIT:?}; {}",
                    w.queue,
                    if s.generation == 0 { "no snapshot yet".to_owned() } else { format!("snapshot {age:.1?} old") }
                );
            }
        }
        out
    }
}

/// The first line of `/connections`.
pub const HEADER: &str = "State Recv-Q Send-Q Local Peer Queue Info\n";

/// One connection as `/connections` lists it: `ss -tin`'s columns and its `tcp_info`
/// fields on one line (`cwnd` in segments and `rtt` as srtt/rttvar in ms, as `ss` prints
/// them).
pub fn connection_line(queue: u32, c: &ConnInfo) -> String {
    let mut o = format!(
        "{} {} {} {} {} q{queue} mss:{} cwnd:{}",
        state_name(c.state),
        c.recv_queue,
        c.send_queue,
        c.local,
        c.remote,
        c.mss,
        c.cwnd / c.mss.max(1)
    );
    if c.ssthresh < usize::MAX / 2 {
        let _ = write!(o, " ssthresh:{}", c.ssthresh / c.mss.max(1));
    }
    if let Some(srtt) = c.srtt {
        let ms = |d: stack::Duration| d.total_micros() as f64 / 1e3;
        let _ = write!(o, " rtt:{:.3}/{:.3}", ms(srtt), ms(c.rttvar));
    }
    let _ = writeln!(
        o,
        " rto:{} bytes_acked:{} unacked_bytes:{} retrans:{} snd_wnd:{} ca:{}",
        c.rto.total_millis(),
        c.bytes_acked,
        c.in_flight,
        c.retransmits,
        c.snd_wnd,
        match c.ca_state {
            CaState::Open => "open",
            CaState::Recovery => "recovery",
            CaState::Loss => "loss",
        }
    );
    o
}

/// `ss`'s name of a state.
fn state_name(s: State) -> &'static str {
    match s {
        State::SynSent => "SYN-SENT",
        State::SynReceived => "SYN-RECV",
        State::Established => "ESTAB",
        State::FinWait1 => "FIN-WAIT-1",
        State::FinWait2 => "FIN-WAIT-2",
        State::CloseWait => "CLOSE-WAIT",
        State::Closing => "CLOSING",
        State::LastAck => "LAST-ACK",
        State::TimeWait => "TIME-WAIT",
        State::Closed => "CLOSED",
    }
}

/// `/health` from each worker's queue and how long it has been stuck (if it is).
pub fn health(workers: impl Iterator<Item = (u32, Option<Duration>)>) -> Answer {
    let stuck: Vec<String> = workers
        .filter_map(|(q, s)| s.map(|d| format!("worker of queue {q} has not turned its loop for {d:.1?}")))
        .collect();
    if stuck.is_empty() {
        Answer::text(200, "ok\n".into())
    } else {
        Answer::text(503, format!("{}\n", stuck.join("\n")))
    }
}

/// The Prometheus exposition: the sum first (unlabelled), then each worker's series with
/// its `queue` label, every family once.
pub fn exposition(per_queue: &[(u32, Metrics)], sum: &Metrics) -> String {
    let mut e = Exposition::default();
    sum.expose(&mut e, None);
    for (q, m) in per_queue {
        m.expose(&mut e, Some(&format!("queue=\"{q}\"")));
    }
    e.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

    fn info() -> ConnInfo {
        ConnInfo {
            state: State::Established,
            ca_state: CaState::Open,
            local: IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::new(10, 77, 0, 1)), 80),
            remote: IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::new(10, 77, 0, 2)), 40000),
            mss: 1448,
            cwnd: 14480,
            ssthresh: usize::MAX,
            srtt: Some(stack::Duration::from_micros(123)),
            rttvar: stack::Duration::from_micros(45),
            rto: stack::Duration::from_millis(204),
            bytes_acked: 1 << 20,
            in_flight: 2896,
            retransmits: 3,
            send_queue: 65536,
            recv_queue: 0,
            snd_wnd: 3 << 16,
        }
    }

    #[test]
    fn a_connection_line_reads_like_ss() {
        assert_eq!(
            connection_line(1, &info()),
            "ESTAB 0 65536 10.77.0.1:80 10.77.0.2:40000 q1 mss:1448 cwnd:10 rtt:0.123/0.045 rto:204 \
             bytes_acked:1048576 unacked_bytes:2896 retrans:3 snd_wnd:196608 ca:open\n"
        );
        let mut c = info();
        (c.ssthresh, c.srtt, c.ca_state) = (7240, None, CaState::Recovery);
        let l = connection_line(0, &c);
        assert!(l.contains(" cwnd:10 ssthresh:5 rto:204 ") && l.ends_with(" ca:recovery\n"), "{l}");
    }

    #[test]
    fn health_names_the_stuck_workers() {
        assert_eq!(health([(0, None), (1, None)].into_iter()), Answer::text(200, "ok\n".into()));
        let a = health([(0, None), (3, Some(Duration::from_millis(2500)))].into_iter());
        assert_eq!(a.status, 503);
        assert_eq!(a.body, "worker of queue 3 has not turned its loop for 2.5s\n");
    }

    #[test]
    fn the_exposition_has_the_sum_and_each_queue() {
        let m = |n| {
            let mut m = Metrics::default();
            m.requests = n;
            m
        };
        let (a, b) = (m(2), m(5));
        let mut sum = a.clone();
        sum.add(&b);
        let text = exposition(&[(0, a), (1, b)], &sum);
        let want = "# TYPE fileserver_requests_total counter\nfileserver_requests_total 7\n\
                    fileserver_requests_total{queue=\"0\"} 2\nfileserver_requests_total{queue=\"1\"} 5\n";
        assert!(text.contains(want), "{text}");
    }
}
