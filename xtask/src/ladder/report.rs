//! The ladder's results as one Markdown table and one hand-written SVG chart (no
//! dependencies): a panel per workload, a bar per rung, each labelled with its throughput,
//! server CPU seconds per GiB and ratio to `read-write`.

use std::fmt::Write;

use super::bench::{Cell, Row, Rung, Workload, QUIET, WORKLOADS};
use crate::nginx::NginxMode;

/// How the run was made, for the captions.
pub(super) struct Meta {
    pub kernel: String,
    pub cpu: String,
    pub nginx: String,
    pub secs: u64,
    /// Attempts per download and per wrk run (the fastest is shown).
    pub large_tries: u32,
    pub wrk_tries: u32,
    pub size_mib: u64,
    pub connections: u32,
    pub elapsed: f64,
    /// The command line that produced the figures.
    pub command: String,
}

pub(super) fn workload_title(w: Workload) -> &'static str {
    match w {
        Workload::Warm => "large file, warm",
        Workload::Cold => "large file, cold",
        Workload::Set1M => "1 MiB set (wrk)",
        Workload::Set16K => "16 KiB set (wrk)",
    }
}

/// The figure a workload is ranked by: MB/s, or requests/s for the 16 KiB set.
fn headline(w: Workload, c: &Cell) -> f64 {
    match w {
        Workload::Set16K => c.req_s(),
        _ => c.mb_s(),
    }
}

fn unit(w: Workload) -> &'static str {
    match w {
        Workload::Set16K => "req/s",
        _ => "MB/s",
    }
}

/// The read-write row's figure for column `i`, for ratios.
fn baseline(rows: &[Row], i: usize) -> Option<f64> {
    let r = rows.iter().find(|r| r.rung == Rung::Kernel("read-write"))?;
    r.cells[i].as_ref().ok().map(|c| headline(WORKLOADS[i], c)).filter(|v| *v > 0.0)
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub(super) fn markdown(rows: &[Row], m: &Meta) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## The copy ladder, measured (`{}`)", m.command.trim());
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Linux {}, {}; veth pair between two namespaces; server pinned to CPU 1, clients to CPU 0; \
         large file {} MiB with curl, warm (after a warm-up download) and cold (after `drop_caches`), fastest of {}; \
         wrk -t1 -c{} for {} s over 64 x 1 MiB and over 256 x 16 KiB files, fastest of {}; nginx {}. Run took {:.0} s.",
        m.kernel, m.cpu, m.size_mib, m.large_tries, m.connections, m.secs, m.wrk_tries, m.nginx, m.elapsed
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "| rung | large warm MB/s | large cold MB/s | 1 MiB set MB/s | 16 KiB set req/s | server CPU s/GiB (warm · cold · 1 MiB · 16 KiB) | ctxt switches/request (warm · cold · 1 MiB · 16 KiB) |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    let mut disturbed = false;
    for r in rows {
        let mut line = format!("| {} |", r.rung.label());
        for (i, w) in WORKLOADS.iter().enumerate() {
            match &r.cells[i] {
                Ok(c) => {
                    let v = headline(*w, c);
                    let ratio = baseline(rows, i).map(|b| format!(" ({:.2}x)", v / b)).unwrap_or_default();
                    let mut warn = if c.errors > 0 { format!(" ({} errors)", c.errors) } else { String::new() };
                    if c.background > QUIET {
                        warn.push_str(" †");
                        disturbed = true;
                    }
                    let _ = write!(line, " {}{ratio}{warn} |", num(v));
                }
                Err(e) => {
                    failures.push(format!("{} / {}: {e}", r.rung.label(), workload_title(*w)));
                    line.push_str(" failed |");
                }
            }
        }
        let per = |f: &dyn Fn(&Cell) -> f64| -> String {
            r.cells
                .iter()
                .map(|c| c.as_ref().map(|c| num(f(c))).unwrap_or_else(|_| "-".into()))
                .collect::<Vec<_>>()
                .join(" · ")
        };
        let _ = writeln!(line, " {} | {} |", per(&Cell::cpu_per_gib), per(&Cell::ctxt_per_req));
        o.push_str(&line);
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Ratios in parentheses: throughput over `read-write`'s in the same column. Server CPU: utime + stime of every \
         process in the server namespace (softirq work done on the client's CPU is not in it) per GiB of response bytes. \
         Context switches: voluntary + involuntary, all server threads, per request (a large-file download is one request)."
    );
    if disturbed {
        let _ = writeln!(
            o,
            "† Other processes or the hypervisor took more than {:.0}% of a CPU during the attempt shown \
             (and no quiet attempt was faster); the figure is less trustworthy. Run again on a quiet machine.",
            QUIET * 100.0
        );
    }
    let _ = writeln!(o);
    for r in rows.iter().filter(|r| !r.note.is_empty()) {
        let _ = writeln!(o, "- **{}**: {}", r.rung.label(), r.note);
    }
    if !failures.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Failed runs:");
        for f in failures {
            let _ = writeln!(o, "- {}", f.replace('\n', " "));
        }
    }
    o
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn color(r: Rung) -> &'static str {
    match r {
        Rung::Kernel("read-write") => "#9e9e9e",
        Rung::Kernel("mmap") => "#7da7d9",
        Rung::Kernel("sendfile") | Rung::Kernel("splice") => "#3b78c4",
        Rung::Kernel("msg-zerocopy") => "#7b52ab",
        Rung::Kernel(_) => "#e08a1e",
        Rung::Xdp => "#2e9b4f",
        Rung::Nginx(NginxMode::Sendfile) => "#555555",
        Rung::Nginx(NginxMode::DirectAio) => "#333333",
    }
}

pub(super) fn svg(rows: &[Row], m: &Meta) -> String {
    const W: f64 = 980.0;
    const LABEL_W: f64 = 170.0;
    const BAR_MAX: f64 = 470.0;
    const ROW_H: f64 = 22.0;
    let panel_h = 34.0 + ROW_H * rows.len() as f64;
    let top = 78.0;
    let h = top + panel_h * WORKLOADS.len() as f64 + 24.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="10" y="24" font-size="18" font-weight="bold">The copy ladder: throughput per rung (longer is faster)</text>"#
    );
    let _ = writeln!(
        o,
        r##"<text x="10" y="44" fill="#444">{}</text>"##,
        esc(&format!(
            "Linux {}, veth pair, server on CPU 1, client on CPU 0; large file {} MiB (curl); wrk {} s, {} connections.",
            m.kernel, m.size_mib, m.secs, m.connections
        ))
    );
    let _ = writeln!(
        o,
        r##"<text x="10" y="62" fill="#444">Label: throughput · server CPU seconds per GiB sent · throughput as a ratio to read-write in the same panel.</text>"##
    );
    for (i, w) in WORKLOADS.iter().enumerate() {
        let y0 = top + panel_h * i as f64;
        let _ = writeln!(
            o,
            r#"<text x="10" y="{:.0}" font-size="15" font-weight="bold">{} ({})</text>"#,
            y0 + 20.0,
            workload_title(*w),
            unit(*w)
        );
        let max = rows.iter().filter_map(|r| r.cells[i].as_ref().ok()).map(|c| headline(*w, c)).fold(0.0, f64::max);
        let base = baseline(rows, i);
        for (j, r) in rows.iter().enumerate() {
            let y = y0 + 30.0 + ROW_H * j as f64;
            let _ = writeln!(
                o,
                r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text>"#,
                LABEL_W - 8.0,
                y + 13.0,
                esc(&r.rung.label())
            );
            match &r.cells[i] {
                Ok(c) => {
                    let v = headline(*w, c);
                    let len = if max > 0.0 { (v / max * BAR_MAX).max(1.0) } else { 1.0 };
                    let _ = writeln!(
                        o,
                        r#"<rect x="{LABEL_W}" y="{:.0}" width="{len:.1}" height="16" fill="{}"/>"#,
                        y + 1.0,
                        color(r.rung)
                    );
                    let ratio = base.map(|b| format!(" · {:.2}x", v / b)).unwrap_or_default();
                    let text = format!("{} {} · {} CPU s/GiB{ratio}", num(v), unit(*w), num(c.cpu_per_gib()));
                    let _ = writeln!(
                        o,
                        r#"<text x="{:.1}" y="{:.0}">{}</text>"#,
                        LABEL_W + len + 6.0,
                        y + 13.0,
                        esc(&text)
                    );
                }
                Err(_) => {
                    let _ = writeln!(
                        o,
                        r##"<text x="{LABEL_W}" y="{:.0}" fill="#b00">failed (see ladder.md)</text>"##,
                        y + 13.0
                    );
                }
            }
        }
    }
    let _ = writeln!(o, "</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(mb: f64) -> Cell {
        Cell { bytes: (mb * 1e6) as u64, requests: 10, secs: 1.0, cpu_secs: 0.5, ctxt: 20, errors: 0, background: 0.0 }
    }

    #[test]
    fn table_has_a_row_per_rung_with_ratios_and_the_chart_a_bar_per_rung() {
        let rows = vec![
            Row {
                rung: Rung::Kernel("read-write"),
                cells: WORKLOADS.iter().map(|_| Ok(cell(100.0))).collect(),
                note: "n".into(),
            },
            Row {
                rung: Rung::Kernel("sendfile"),
                cells: WORKLOADS.iter().map(|_| Ok(cell(250.0))).collect(),
                note: String::new(),
            },
            Row {
                rung: Rung::Xdp,
                cells: WORKLOADS.iter().map(|_| Err("no XDP".to_string())).collect(),
                note: String::new(),
            },
        ];
        let m = Meta {
            kernel: "6.18".into(),
            cpu: "x".into(),
            nginx: "1.22".into(),
            secs: 2,
            large_tries: 2,
            wrk_tries: 1,
            size_mib: 256,
            connections: 4,
            elapsed: 1.0,
            command: "cargo xtask bench ladder --quick".into(),
        };
        let md = markdown(&rows, &m);
        assert!(md.contains("| sendfile | 250 (2.50x) |"), "{md}");
        assert!(md.contains("| AF_XDP (ours) | failed |"), "{md}");
        assert!(md.contains("no XDP"));
        let svg = svg(&rows, &m);
        assert_eq!(svg.matches("<rect x=").count(), 2 * WORKLOADS.len());
        assert!(svg.contains("2.50x") && svg.ends_with("</svg>\n"));
    }
}
