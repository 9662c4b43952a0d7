//! The soak's pure parts: what a sample of the server holds, the checks at the end, and
//! the random ranges the range client asks for. No I/O, so all of it is unit-tested.

use crate::client::Prng;
use crate::tcptest::counter;

/// What the server holds at one moment: its pools and tables from the control port, its
/// memory and descriptors from /proc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Seconds since the load started.
    pub at_secs: u64,
    pub pid: u32,
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
    /// Entries in /proc/PID/fd.
    pub fds: u64,
    pub frames_free: u64,
    pub blocks_free: u64,
    /// Blocks the cache holds (small files stay cached: free + cached is what returns).
    pub blocks_cached: u64,
    /// HTTP sessions open.
    pub sessions: u64,
    /// TCP connections in the table (any state but TIME-WAIT).
    pub tcp_conns: u64,
    pub time_wait: u64,
    pub half_open: u64,
}

/// The gauges of the control port's text a [`Snapshot`] needs, by name.
pub const GAUGES: [&str; 7] = [
    "fileserver_pool_frames_free",
    "fileserver_pool_blocks_free",
    "fileserver_cache_blocks_cached",
    "fileserver_connections_open",
    "fileserver_tcp_connections",
    "fileserver_tcp_time_wait_entries",
    "fileserver_tcp_half_open",
];

impl Snapshot {
    /// Fills the pool and table fields from the control port's `text`; names a missing one.
    pub fn with_metrics(mut self, text: &str) -> Result<Snapshot, String> {
        let mut v = [0u64; GAUGES.len()];
        for (slot, name) in v.iter_mut().zip(GAUGES) {
            *slot = counter(text, name).ok_or_else(|| format!("the control port does not report {name}"))?;
        }
        let [frames_free, blocks_free, blocks_cached, sessions, tcp_conns, time_wait, half_open] = v;
        self.frames_free = frames_free;
        self.blocks_free = blocks_free;
        self.blocks_cached = blocks_cached;
        self.sessions = sessions;
        self.tcp_conns = tcp_conns;
        self.time_wait = time_wait;
        self.half_open = half_open;
        Ok(self)
    }

    /// Whether nothing a connection holds is left: the tables empty, the pool as at `start`.
    pub fn drained(&self, start: &Snapshot) -> bool {
        self.sessions == 0
            && self.tcp_conns == 0
            && self.time_wait == 0
            && self.half_open == 0
            && self.frames_free == start.frames_free
            && self.blocks_free + self.blocks_cached == start.blocks_free + start.blocks_cached
    }
}

/// What the clients found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verdicts {
    pub downloads_ok: u64,
    pub sha_mismatches: u64,
    /// Downloads that failed (curl error or timeout), not killed on purpose.
    pub downloads_failed: u64,
    pub ranges_ok: u64,
    pub range_mismatches: u64,
    pub ranges_failed: u64,
    /// Zero-window stallers opened, and those that saw the server cut them off before
    /// they gave up.
    pub stallers: u64,
    pub stallers_cut: u64,
    /// Responses the server dropped for making no progress (its write timeouts).
    pub write_timeouts: u64,
}

/// Stallers that may miss being cut: the server's cut is one RST, which the 1% loss
/// drops now and then, leaving that staller waiting on its side (the server has let go
/// either way, as its write timeouts show). One in 20 is allowed, and at least one.
pub fn stallers_allowed_uncut(stallers: u64) -> u64 {
    stallers.div_ceil(20).max(1)
}

/// One check of the end report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Most `VmRSS` may differ from its value after the first minute, percent.
pub const RSS_TOLERANCE_PCT: u64 = 5;

/// The checks: `start` before any load, `samples` every 10 s (pids included), `end` after
/// the connections timed out; `alive` whether the process started first still runs.
pub fn checks(start: &Snapshot, samples: &[Snapshot], end: &Snapshot, v: &Verdicts, alive: bool) -> Vec<Check> {
    let mut out = Vec::new();
    let mut check = |name: &'static str, ok: bool, detail: String| out.push(Check { name, ok, detail });
    check(
        "no sha256 mismatch",
        v.sha_mismatches == 0,
        format!("{} of {} downloads differ", v.sha_mismatches, v.downloads_ok + v.sha_mismatches),
    );
    check(
        "every 1 GiB download completed",
        v.downloads_ok > 0 && v.downloads_failed == 0,
        format!("{} complete, {} failed", v.downloads_ok, v.downloads_failed),
    );
    check(
        "no range mismatch",
        v.range_mismatches == 0 && v.ranges_ok > 0,
        format!("{} ranges byte-exact, {} differ, {} failed", v.ranges_ok, v.range_mismatches, v.ranges_failed),
    );
    check(
        "stallers cut off by the server",
        v.write_timeouts >= v.stallers
            && v.stallers_cut + stallers_allowed_uncut(v.stallers).min(v.stallers) >= v.stallers,
        format!(
            "{} of {} zero-window stallers saw the cut (at most {} may miss its RST); {} write timeouts",
            v.stallers_cut,
            v.stallers,
            stallers_allowed_uncut(v.stallers),
            v.write_timeouts
        ),
    );
    check(
        "pool frames back",
        end.frames_free == start.frames_free,
        format!("{} free at the start, {} at the end", start.frames_free, end.frames_free),
    );
    check(
        "pool blocks back",
        end.blocks_free + end.blocks_cached == start.blocks_free + start.blocks_cached,
        format!(
            "free + cached: {} + {} at the start, {} + {} at the end",
            start.blocks_free, start.blocks_cached, end.blocks_free, end.blocks_cached
        ),
    );
    check(
        "connection table empty",
        end.sessions == 0 && end.tcp_conns == 0 && end.time_wait == 0 && end.half_open == 0,
        format!(
            "{} sessions, {} connections, {} TIME-WAIT, {} half-open",
            end.sessions, end.tcp_conns, end.time_wait, end.half_open
        ),
    );
    match samples.iter().find(|s| s.at_secs >= 60) {
        Some(m1) => {
            let diff = end.rss_kib.abs_diff(m1.rss_kib);
            check(
                "resident memory within 5% of the first minute's",
                diff * 100 <= m1.rss_kib * RSS_TOLERANCE_PCT,
                format!(
                    "{} KiB at {} s, {} KiB at the end ({:+.1}%)",
                    m1.rss_kib,
                    m1.at_secs,
                    end.rss_kib,
                    (end.rss_kib as f64 - m1.rss_kib as f64) * 100.0 / m1.rss_kib.max(1) as f64
                ),
            );
        }
        None => check("resident memory within 5% of the first minute's", false, "no sample at 60 s or later".into()),
    }
    check("open descriptors back", end.fds == start.fds, format!("{} at the start, {} at the end", start.fds, end.fds));
    let restarted = samples.iter().chain([end]).filter(|s| s.pid != start.pid).count();
    check(
        "the server never restarted",
        alive && restarted == 0,
        format!(
            "pid {}{}{}",
            start.pid,
            if alive { " still running" } else { " exited" },
            if restarted > 0 { format!(", another pid in {restarted} samples") } else { String::new() }
        ),
    );
    out
}

/// A byte range to ask for, as the `Range` header's `bytes=` value says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// `a-b`, both inclusive.
    Closed(u64, u64),
    /// `a-`: from `a` to the end.
    From(u64),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

impl Range {
    /// The value for `curl -r`.
    pub fn spec(&self) -> String {
        match *self {
            Range::Closed(a, b) => format!("{a}-{b}"),
            Range::From(a) => format!("{a}-"),
            Range::Suffix(n) => format!("-{n}"),
        }
    }

    /// The bytes `[start, end)` of a file of `size` it selects.
    pub fn bounds(&self, size: u64) -> (u64, u64) {
        match *self {
            Range::Closed(a, b) => (a, (b + 1).min(size)),
            Range::From(a) => (a, size),
            Range::Suffix(n) => (size.saturating_sub(n), size),
        }
    }

    /// A random satisfiable range of a file of `size > 0` bytes, at most `max_len` long:
    /// mostly anywhere, often across a multiple of `block` (where the server's reads
    /// split), sometimes open-ended or a suffix near the end.
    pub fn random(rng: &mut Prng, size: u64, block: u64, max_len: u64) -> Range {
        let r = rng.next_u64();
        let len = 1 + rng.next_u64() % max_len.clamp(1, size);
        match r % 8 {
            0 => Range::Suffix(len),
            1 => Range::From(size - len),
            2 | 3 if size > block => {
                // Across a block boundary, or starting on one.
                let cut = block * (1 + rng.next_u64() % ((size - 1) / block).max(1));
                let a = cut.saturating_sub(rng.next_u64() % len.min(cut)).min(size - 1);
                Range::Closed(a, (a + len - 1).min(size - 1))
            }
            _ => {
                let a = rng.next_u64() % (size - len + 1);
                Range::Closed(a, a + len - 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(pid: u32, at: u64, rss: u64) -> Snapshot {
        Snapshot {
            at_secs: at,
            pid,
            rss_kib: rss,
            fds: 12,
            frames_free: 16000,
            blocks_free: 1024,
            ..Snapshot::default()
        }
    }

    fn good() -> Verdicts {
        Verdicts {
            downloads_ok: 3,
            ranges_ok: 100,
            stallers: 40,
            stallers_cut: 38,
            write_timeouts: 41,
            ..Verdicts::default()
        }
    }

    fn failed(c: &[Check]) -> Vec<&'static str> {
        c.iter().filter(|c| !c.ok).map(|c| c.name).collect()
    }

    #[test]
    fn a_clean_run_passes_every_check() {
        let start = snap(7, 0, 1000);
        let samples = [snap(7, 10, 1500), snap(7, 60, 2000), snap(7, 70, 2050)];
        let mut end = snap(7, 90, 2090);
        end.blocks_free = 1000;
        end.blocks_cached = 24;
        let c = checks(&start, &samples, &end, &good(), true);
        assert_eq!(failed(&c), Vec::<&str>::new(), "{c:#?}");
        assert!(end.drained(&start));
    }

    #[test]
    fn each_leak_fails_its_own_check_by_name() {
        let start = snap(7, 0, 1000);
        let samples = [snap(7, 60, 2000), snap(8, 70, 2000)];
        let mut end = snap(8, 90, 2101);
        end.frames_free -= 1;
        end.blocks_free -= 1;
        end.time_wait = 1;
        end.fds = 13;
        let v = Verdicts { sha_mismatches: 1, range_mismatches: 2, stallers_cut: 37, ..good() };
        let c = checks(&start, &samples, &end, &v, true);
        assert_eq!(
            failed(&c),
            [
                "no sha256 mismatch",
                "no range mismatch",
                "stallers cut off by the server",
                "pool frames back",
                "pool blocks back",
                "connection table empty",
                "resident memory within 5% of the first minute's",
                "open descriptors back",
                "the server never restarted",
            ]
        );
        assert!(!end.drained(&start));
    }

    #[test]
    fn memory_needs_a_sample_after_the_first_minute_and_no_download_is_a_failure() {
        let start = snap(7, 0, 1000);
        let c = checks(&start, &[snap(7, 50, 1000)], &snap(7, 90, 1000), &Verdicts::default(), false);
        let f = failed(&c);
        for name in [
            "every 1 GiB download completed",
            "no range mismatch",
            "resident memory within 5% of the first minute's",
            "the server never restarted",
        ] {
            assert!(f.contains(&name), "{name} should fail: {f:?}");
        }
    }

    #[test]
    fn stallers_need_the_servers_write_timeouts_and_nearly_all_to_see_the_cut() {
        let start = snap(7, 0, 1000);
        let samples = [snap(7, 60, 1000)];
        let run = |v: Verdicts| {
            let c = checks(&start, &samples, &snap(7, 90, 1000), &v, true);
            c.iter().find(|c| c.name == "stallers cut off by the server").map(|c| c.ok)
        };
        assert_eq!(run(good()), Some(true));
        assert_eq!(run(Verdicts { write_timeouts: 39, ..good() }), Some(false), "fewer timeouts than stallers");
        assert_eq!(run(Verdicts { stallers: 4, stallers_cut: 3, write_timeouts: 4, ..good() }), Some(true));
        assert_eq!(run(Verdicts { stallers: 12, stallers_cut: 8, write_timeouts: 27, ..good() }), Some(false));
        assert_eq!(stallers_allowed_uncut(0), 1);
        assert_eq!(stallers_allowed_uncut(360), 18);
    }

    #[test]
    fn metrics_fill_a_snapshot_and_a_missing_gauge_is_named() {
        let mut text = String::new();
        for (i, g) in GAUGES.iter().enumerate() {
            text.push_str(&format!("{g} {}\n{g}{{queue=\"0\"}} 99\n", i + 1));
        }
        let s = Snapshot::default().with_metrics(&text).unwrap();
        assert_eq!((s.frames_free, s.blocks_free, s.blocks_cached, s.sessions), (1, 2, 3, 4));
        assert_eq!((s.tcp_conns, s.time_wait, s.half_open), (5, 6, 7));
        let e = Snapshot::default().with_metrics("fileserver_pool_frames_free 1\n").unwrap_err();
        assert!(e.contains("fileserver_pool_blocks_free"), "{e}");
    }

    #[test]
    fn random_ranges_are_satisfiable_nonempty_and_cross_blocks() {
        let mut rng = Prng::new(3);
        let block = 256 << 10;
        let (mut kinds, mut across) = ([0u32; 3], 0);
        for size in [1u64, 2, 4097, block, block + 1, 1 << 30] {
            for _ in 0..5000 {
                let r = Range::random(&mut rng, size, block, 4 << 20);
                let (a, b) = r.bounds(size);
                assert!(a < b && b <= size, "{r:?} of {size}: [{a}, {b})");
                assert!(b - a <= 4 << 20);
                match r {
                    Range::Closed(x, y) => {
                        assert!(x <= y && y < size, "{r:?}");
                        assert_eq!(r.spec(), format!("{x}-{y}"));
                        kinds[0] += 1;
                    }
                    Range::From(x) => {
                        assert_eq!(r.spec(), format!("{x}-"));
                        kinds[1] += 1;
                    }
                    Range::Suffix(n) => {
                        assert!(n >= 1);
                        assert_eq!(r.spec(), format!("-{n}"));
                        kinds[2] += 1;
                    }
                }
                if a / block != (b - 1) / block {
                    across += 1;
                }
            }
        }
        assert!(kinds.iter().all(|&k| k > 1000), "{kinds:?}");
        assert!(across > 3000, "only {across} ranges cross a block boundary");
    }
}
