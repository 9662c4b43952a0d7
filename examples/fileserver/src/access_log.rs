//! The access log (`--access-log FILE|-`): one line per request in the combined log format,
//! exactly as nginx writes it (`log_format combined`), so existing log tools read it:
//!
//! ```text
//! $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//! 10.77.0.2 - - [02/Dec/2026:01:15:00 +0000] "GET /big HTTP/1.1" 200 1073741824 "-" "curl/7.88.1"
//! ```
//!
//! Workers never wait for it: a finished request becomes an [`Entry`] offered to a bounded
//! channel with `try_send` ([`LogSender::send`]); when the channel is full the line is
//! dropped and counted (`fileserver_access_log_dropped_total`). A thread of its own
//! formats and writes the lines, flushing whenever the channel runs empty, and reopens the
//! file when asked (SIGHUP, after logrotate moved it).
//!
//! ```text
//!   worker: response done ─► Entry ─► try_send ─► [ bounded channel ] ─► log thread ─► format ─► file / stdout
//!                                └─ full: dropped += 1                      SIGHUP ─► reopen
//! ```
//!
//! `$time_local` is written in UTC (`+0000`): the server does not read the time zone
//! database. Like nginx, `"`, `\` and bytes outside printable ASCII in the request line,
//! referer and user agent are written as `\xHH`.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// Lines queued for the log thread at most; more are dropped and counted.
pub const QUEUE: usize = 4096;
/// Longest request line, referer or user agent kept (bytes, before escaping).
pub const MAX_FIELD: usize = 2048;

/// One finished request, as the log thread needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `$remote_addr`.
    pub peer: Arc<str>,
    /// When the response finished (`$time_local`).
    pub wall: SystemTime,
    /// `$request`: the request line as received (raw bytes).
    pub request: Vec<u8>,
    /// `$status`.
    pub status: u16,
    /// `$body_bytes_sent`.
    pub body_bytes: u64,
    /// `$http_referer`, if sent.
    pub referer: Option<Vec<u8>>,
    /// `$http_user_agent`, if sent.
    pub user_agent: Option<Vec<u8>>,
}

/// What a request's head gives the log: its line, referer and user agent (raw, each cut
/// at [`MAX_FIELD`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    pub request: Vec<u8>,
    pub referer: Option<Vec<u8>>,
    pub user_agent: Option<Vec<u8>>,
}

impl Head {
    /// Reads them from the bytes of one request head (whatever they are: an unparseable
    /// request is logged with its first line, as nginx does for a 400).
    pub fn from_bytes(head: &[u8]) -> Head {
        let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let cut = |b: &[u8]| b[..b.len().min(MAX_FIELD)].to_vec();
        let request = lines.next().map(cut).unwrap_or_default();
        let mut h = Head { request, referer: None, user_agent: None };
        for line in lines.take_while(|l| !l.is_empty()) {
            let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"referer") && h.referer.is_none() {
                h.referer = Some(cut(value));
            } else if name.eq_ignore_ascii_case(b"user-agent") && h.user_agent.is_none() {
                h.user_agent = Some(cut(value));
            }
        }
        h
    }
}

/// Appends `e` as one combined-format line (with its `\n`) to `out`.
pub fn format_line(e: &Entry, out: &mut String) {
    let _ = write!(out, "{} - - [{}] \"", e.peer, time_local(e.wall));
    escape(&e.request, out);
    let _ = write!(out, "\" {} {} \"", e.status, e.body_bytes);
    field(e.referer.as_deref(), out);
    out.push_str("\" \"");
    field(e.user_agent.as_deref(), out);
    out.push_str("\"\n");
}

fn field(v: Option<&[u8]>, out: &mut String) {
    match v {
        Some(v) if !v.is_empty() => escape(v, out),
        _ => out.push('-'),
    }
}

/// nginx's default log escaping: `"`, `\`, control bytes and bytes >= 0x7f become `\xHH`.
fn escape(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(out, "\\x{b:02X}");
        } else {
            out.push(b as char);
        }
    }
}

/// `$time_local` in UTC: `02/Dec/2026:01:15:00 +0000`.
pub fn time_local(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{d:02}/{}/{y:04}:{:02}:{:02}:{:02} +0000", MONTHS[(m - 1) as usize], rem / 3600, rem / 60 % 60, rem % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`): (year, month 1-12, day 1-31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Standard output (`--access-log -`).
    Stdout,
    /// A file, appended to and reopened on SIGHUP.
    File(PathBuf),
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Target, String> {
        match s {
            "" => Err("--access-log: give a file name, or - for standard output".into()),
            "-" => Ok(Target::Stdout),
            p => Ok(Target::File(PathBuf::from(p))),
        }
    }
}

/// The log's counters, shared by every sender and the log thread.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Lines handed to the log thread.
    pub lines: AtomicU64,
    /// Lines dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Writes or reopens that failed.
    pub errors: AtomicU64,
    /// Times the file was reopened.
    pub reopened: AtomicU64,
}

impl LogStats {
    /// The counters as `name value` pairs for the metrics text.
    pub fn series(&self) -> Vec<(String, u64)> {
        vec![
            ("access_log_lines_total".into(), self.lines.load(Ordering::Relaxed)),
            ("access_log_dropped_total".into(), self.dropped.load(Ordering::Relaxed)),
            ("access_log_errors_total".into(), self.errors.load(Ordering::Relaxed)),
            ("access_log_reopened_total".into(), self.reopened.load(Ordering::Relaxed)),
        ]
    }
}

/// What a worker holds to log: never blocks (see the module docs).
#[derive(Debug, Clone)]
pub struct LogSender {
    tx: SyncSender<Entry>,
    stats: Arc<LogStats>,
}

impl LogSender {
    /// The log's counters.
    pub fn stats(&self) -> Arc<LogStats> {
        self.stats.clone()
    }

    /// Offers `e` to the log thread; a full queue drops it (counted).
    pub fn send(&self, e: Entry) {
        match self.tx.try_send(e) {
            Ok(()) => self.stats.lines.fetch_add(1, Ordering::Relaxed),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// The running log thread.
#[derive(Debug)]
pub struct AccessLog {
    sender: LogSender,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl AccessLog {
    /// Opens `target` (an error names the file) and starts the log thread with a queue of
    /// `queue` lines; `reopen` set (by SIGHUP) makes it reopen the file.
    pub fn start(target: Target, queue: usize, reopen: Arc<AtomicBool>) -> Result<AccessLog> {
        let out = open(&target)?;
        let (tx, rx) = mpsc::sync_channel(queue);
        let stats = Arc::new(LogStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut w = Writer { target, out, rx, stats: stats.clone(), reopen, stop: stop.clone(), line: String::new() };
        let thread = crate::privdrop::spawn("access-log", move || w.run()).context("spawning the access log thread")?;
        Ok(AccessLog { sender: LogSender { tx, stats }, stop, thread })
    }

    /// A sender for a worker.
    pub fn sender(&self) -> LogSender {
        self.sender.clone()
    }

    /// The counters.
    pub fn stats(&self) -> Arc<LogStats> {
        self.sender.stats.clone()
    }

    /// Writes what is queued and ends the thread (after the workers stopped).
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.sender);
        let _ = self.thread.join();
    }
}

fn open(target: &Target) -> Result<Box<dyn Write + Send>> {
    Ok(match target {
        Target::Stdout => Box::new(io::stdout()),
        Target::File(p) => {
            let f: File = OpenOptions::new().create(true).append(true).open(p).with_context(|| {
                format!(
                    "opening the access log {} (--access-log; the directory must exist and be writable)",
                    p.display()
                )
            })?;
            Box::new(BufWriter::with_capacity(64 << 10, f))
        }
    })
}

struct Writer {
    target: Target,
    out: Box<dyn Write + Send>,
    rx: Receiver<Entry>,
    stats: Arc<LogStats>,
    reopen: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    line: String,
}

impl Writer {
    fn run(&mut self) {
        loop {
            match self.rx.recv_timeout(Duration::from_millis(200)) {
                Ok(e) => {
                    self.write(&e);
                    while let Ok(e) = self.rx.try_recv() {
                        self.write(&e);
                    }
                    self.flush();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.reopen.swap(false, Ordering::Relaxed) {
                self.reopen_file();
            }
            if self.stop.load(Ordering::Relaxed) {
                while let Ok(e) = self.rx.try_recv() {
                    self.write(&e);
                }
                break;
            }
        }
        self.flush();
    }

    fn write(&mut self, e: &Entry) {
        self.line.clear();
        format_line(e, &mut self.line);
        if self.out.write_all(self.line.as_bytes()).is_err() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&mut self) {
        if self.out.flush().is_err() {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Flushes to the old file, then opens the path anew (logrotate moved the old one).
    fn reopen_file(&mut self) {
        if self.target == Target::Stdout {
            return;
        }
        self.flush();
        match open(&self.target) {
            Ok(out) => {
                self.out = out;
                self.stats.reopened.fetch_add(1, Ordering::Relaxed);
                log::info!("access log reopened");
            }
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                log::error!("{e:#}; still writing to the file opened before");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ua: Option<&[u8]>) -> Entry {
        Entry {
            peer: "10.77.0.2".into(),
            wall: UNIX_EPOCH + Duration::from_secs(1_796_174_100), // 2026-12-02 01:15:00 UTC
            request: b"GET /big HTTP/1.1".to_vec(),
            status: 200,
            body_bytes: 1 << 30,
            referer: None,
            user_agent: ua.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn a_line_is_what_nginx_writes() {
        let mut s = String::new();
        format_line(&entry(Some(b"curl/7.88.1")), &mut s);
        assert_eq!(
            s,
            "10.77.0.2 - - [02/Dec/2026:01:15:00 +0000] \"GET /big HTTP/1.1\" 200 1073741824 \"-\" \"curl/7.88.1\"\n"
        );
    }

    #[test]
    fn quotes_backslashes_and_control_bytes_are_escaped() {
        let mut s = String::new();
        let mut e = entry(Some(b"evil \"agent\" \\ \x1b[31m \xc3\xa9"));
        e.referer = Some(b"http://x/\"".to_vec());
        e.request = b"GET /a\"b HTTP/1.1".to_vec();
        format_line(&e, &mut s);
        assert_eq!(
            s,
            "10.77.0.2 - - [02/Dec/2026:01:15:00 +0000] \"GET /a\\x22b HTTP/1.1\" 200 1073741824 \
             \"http://x/\\x22\" \"evil \\x22agent\\x22 \\x5C \\x1B[31m \\xC3\\xA9\"\n"
        );
        assert_eq!(s.matches('"').count(), 6, "only the six delimiting quotes are bare");
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(time_local(UNIX_EPOCH), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(time_local(UNIX_EPOCH + Duration::from_secs(951_782_400)), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(time_local(UNIX_EPOCH + Duration::from_secs(1_709_251_199)), "29/Feb/2024:23:59:59 +0000");
        assert_eq!(time_local(UNIX_EPOCH + Duration::from_secs(4_102_444_800)), "01/Jan/2100:00:00:00 +0000");
    }

    #[test]
    fn heads_give_line_referer_and_agent() {
        let h = Head::from_bytes(
            b"GET /x?a=1 HTTP/1.1\r\nHost: h\r\nuser-agent:  Wget/1.21 \r\nReferer: http://r/\r\n\r\n",
        );
        assert_eq!(h.request, b"GET /x?a=1 HTTP/1.1");
        assert_eq!(h.user_agent.as_deref(), Some(&b"Wget/1.21"[..]));
        assert_eq!(h.referer.as_deref(), Some(&b"http://r/"[..]));
        let h = Head::from_bytes(b"\x16\x03garbage");
        assert_eq!((h.request.as_slice(), h.user_agent), (&b"\x16\x03garbage"[..], None));
        assert_eq!(Head::from_bytes(&vec![b'a'; 5000]).request.len(), MAX_FIELD);
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_the_thread_writes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let reopen = Arc::new(AtomicBool::new(false));
        let log = AccessLog::start(Target::File(path.clone()), 4, reopen.clone()).unwrap();
        let tx = log.sender();
        for _ in 0..2000 {
            tx.send(entry(None));
        }
        let stats = log.stats();
        let (lines, dropped) = (stats.lines.load(Ordering::Relaxed), stats.dropped.load(Ordering::Relaxed));
        assert_eq!(lines + dropped, 2000);
        drop(tx);
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        reopen.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(500));
        log.sender().send(entry(Some(b"after")));
        log.finish();
        let old = std::fs::read_to_string(dir.path().join("access.log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(old.lines().count() as u64, lines, "every line taken was written");
        assert_eq!(new.lines().collect::<Vec<_>>().len(), 1, "{new}");
        assert!(new.ends_with("\"after\"\n"), "{new}");
        assert_eq!(stats.reopened.load(Ordering::Relaxed), 1);
        let e = AccessLog::start(Target::File(dir.path().join("no/such/dir/log")), 4, reopen).unwrap_err();
        assert!(format!("{e:#}").contains("no/such/dir/log"), "{e:#}");
    }
}
