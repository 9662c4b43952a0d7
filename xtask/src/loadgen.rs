//! What the HTTP load generators print, read into numbers: the `RESULT` line the wrk
//! scripts of [`crate::ladder::lua`] write at the end of a run, and `ab`'s (apache2-utils)
//! summary. Shared by `bench conns` and the soak.

use anyhow::{bail, Context, Result};

/// One wrk run, from the `RESULT` line of its script.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wrk {
    /// Responses completed.
    pub requests: u64,
    /// Bytes read (heads and bodies).
    pub bytes: u64,
    /// Length of the run, microseconds.
    pub duration_us: u64,
    /// Socket errors: connect, read, write and timeouts.
    pub errors: u64,
    /// Answers with a status other than 2xx or 3xx.
    pub non2xx: u64,
}

impl Wrk {
    /// Reads the last `RESULT` line of `text` (wrk's stdout).
    pub fn parse(text: &str) -> Result<Wrk> {
        let line = text
            .lines()
            .rev()
            .find(|l| l.starts_with("RESULT "))
            .with_context(|| format!("wrk printed no RESULT line: {}", text.trim()))?;
        let field = |k: &str| -> Result<u64> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
                .with_context(|| format!("no {k}= in {line:?}"))?
                .parse()
                .with_context(|| format!("{k}= in {line:?}"))
        };
        Ok(Wrk {
            requests: field("requests")?,
            bytes: field("bytes")?,
            duration_us: field("duration_us")?,
            errors: field("errors")?,
            non2xx: field("non2xx")?,
        })
    }

    /// Requests per second.
    pub fn req_s(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6).max(1e-9)
    }
}

/// One `ab` run, from its summary.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ab {
    /// `Complete requests`.
    pub complete: u64,
    /// `Failed requests` (connect, receive, length and exceptions).
    pub failed: u64,
    /// `Non-2xx responses` (printed only when there are some).
    pub non2xx: u64,
    /// `Time taken for tests`, seconds.
    pub secs: f64,
}

impl Ab {
    /// Reads `ab`'s stdout.
    pub fn parse(text: &str) -> Result<Ab> {
        let value = |key: &str| -> Option<&str> {
            text.lines().find_map(|l| l.trim_start().strip_prefix(key)?.split_whitespace().next())
        };
        let Some(complete) = value("Complete requests:") else { bail!("ab printed no summary: {}", text.trim()) };
        let num = |key: &str, v: Option<&str>| -> Result<u64> {
            v.map_or(Ok(0), |v| v.parse().with_context(|| format!("ab's {key} {v:?}")))
        };
        Ok(Ab {
            complete: num("Complete requests:", Some(complete))?,
            failed: num("Failed requests:", value("Failed requests:"))?,
            non2xx: num("Non-2xx responses:", value("Non-2xx responses:"))?,
            secs: value("Time taken for tests:")
                .context("ab printed no `Time taken for tests`")?
                .parse()
                .context("ab's time taken")?,
        })
    }

    /// Completed requests per second.
    pub fn req_s(&self) -> f64 {
        self.complete as f64 / self.secs.max(1e-9)
    }
}

/// Requests `ab` finished before it gave up on a run (`Total of N requests completed`,
/// printed when a request outlived its `-s` timeout).
pub fn ab_completed_before_abort(text: &str) -> Option<u64> {
    let at = text.find("Total of ")?;
    text[at + "Total of ".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_reads_the_last_result_line_and_refuses_a_missing_field() {
        let text = "Running 2s test\nRESULT requests=1 bytes=2 duration_us=3 errors=4 non2xx=5\n\
                    RESULT requests=10 bytes=20 duration_us=2000000 errors=0 non2xx=1\n";
        let w = Wrk::parse(text).unwrap();
        assert_eq!(w, Wrk { requests: 10, bytes: 20, duration_us: 2_000_000, errors: 0, non2xx: 1 });
        assert_eq!(w.req_s(), 5.0);
        assert!(Wrk::parse("RESULT requests=1 bytes=2 duration_us=3 errors=4\n").is_err());
        assert!(Wrk::parse("unable to connect to 10.77.0.1:80 Connection refused\n").is_err());
    }

    #[test]
    fn ab_reads_the_summary_with_and_without_non_2xx() {
        let text = "\
Concurrency Level:      32
Time taken for tests:   5.352 seconds
Complete requests:      200000
Failed requests:        7
   (Connect: 0, Receive: 7, Length: 0, Exceptions: 0)
Non-2xx responses:      3
Requests per second:    37368.12 [#/sec] (mean)
";
        let a = Ab::parse(text).unwrap();
        assert_eq!((a.complete, a.failed, a.non2xx), (200_000, 7, 3));
        assert!((a.secs - 5.352).abs() < 1e-9 && (a.req_s() - 200_000.0 / 5.352).abs() < 1e-6);
        let clean = "Time taken for tests:   1.000 seconds\nComplete requests:      10\nFailed requests:        0\n";
        assert_eq!(Ab::parse(clean).unwrap(), Ab { complete: 10, failed: 0, non2xx: 0, secs: 1.0 });
        assert!(Ab::parse("apr_socket_recv: Connection reset by peer (104)\n").is_err());
    }

    #[test]
    fn an_aborted_ab_run_says_how_many_requests_it_finished() {
        let text = "Benchmarking 10.77.0.1 (be patient)...Total of 3202 requests completed\n\
                    apr_pollset_poll: The timeout specified has expired (70007)\n";
        assert!(Ab::parse(text).is_err());
        assert_eq!(ab_completed_before_abort(text), Some(3202));
        assert_eq!(ab_completed_before_abort("Complete requests: 5\n"), None);
    }
}
