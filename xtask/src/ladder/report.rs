//! The ladder's results as one Markdown table and one hand-written SVG chart (no
//! dependencies): a panel per workload, a bar per rung, each labelled with its throughput,
//! server CPU seconds per GiB and ratio to `read-write`.

use std::fmt::Write;

use super::bench::{Cell, Row, Rung, Workload, QUIET};
use crate::nginx::NginxMode;
use crate::txceil::Ceiling;

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
    /// The columns, in order (each row's cells follow it).
    pub workloads: Vec<Workload>,
    /// The word naming the rung ratios are taken against.
    pub versus: String,
    /// Where the client's receive processing ran.
    pub placement: String,
    pub mtu: u32,
    /// The AF_XDP transmit ceiling measured in the same run, if asked for.
    pub ceiling: Option<Ceiling>,
    pub elapsed: f64,
    /// The command line that produced the figures.
    pub command: String,
}

pub(super) fn workload_title(w: Workload) -> String {
    match w {
        Workload::Warm => "large file, warm".into(),
        Workload::Cold => "large file, cold".into(),
        Workload::Set1M(c) => format!("1 MiB set, wrk -c{c}"),
        Workload::Set16K(c) => format!("16 KiB set, wrk -c{c}"),
    }
}

/// The figure a workload is ranked by: MB/s, or requests/s for the 16 KiB set.
fn headline(w: Workload, c: &Cell) -> f64 {
    match w {
        Workload::Set16K(_) => c.req_s(),
        _ => c.mb_s(),
    }
}

fn unit(w: Workload) -> &'static str {
    match w {
        Workload::Set16K(_) => "req/s",
        _ => "MB/s",
    }
}

/// The `--versus` row's figure for column `i`, for ratios.
fn baseline(rows: &[Row], m: &Meta, i: usize) -> Option<f64> {
    let r = rows.iter().find(|r| r.rung.label().contains(m.versus.as_str()))?;
    r.cells.get(i)?.as_ref().ok().map(|c| headline(m.workloads[i], c)).filter(|v| *v > 0.0)
}

/// Payload bytes per full segment at `mtu` (IPv4 and TCP headers with timestamps).
fn segment_payload(mtu: u32) -> f64 {
    f64::from(mtu.saturating_sub(52).max(1))
}

/// A cell's packets per second, estimated from its bytes as full-sized segments (every
/// response is at least one packet).
fn packets_per_sec(c: &Cell, mtu: u32) -> f64 {
    let segments = (c.bytes as f64 / segment_payload(mtu)).max(c.requests as f64);
    segments / c.secs.max(1e-9)
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
         {}; MTU {}; large file {} MiB with curl, warm (after a warm-up download) and cold (after `drop_caches`), \
         fastest of {}; wrk -t1 for {} s over 64 x 1 MiB and over 256 x 16 KiB files, fastest of {}; nginx {}. \
         Run took {:.0} s.",
        m.kernel, m.cpu, m.placement, m.mtu, m.size_mib, m.large_tries, m.secs, m.wrk_tries, m.nginx, m.elapsed
    );
    let _ = writeln!(o);
    let mut head = String::from("| rung |");
    let mut rule = String::from("|---|");
    for w in &m.workloads {
        let _ = write!(head, " {} {} |", workload_title(*w), unit(*w));
        rule.push_str("---:|");
    }
    let _ = writeln!(o, "{head} server CPU s/GiB, user+sys (per column) | ctxt switches/request (per column) |");
    let _ = writeln!(o, "{rule}---:|---:|");
    let mut failures = Vec::new();
    let mut disturbed = false;
    for r in rows {
        let mut line = format!("| {} |", r.rung.label());
        for (i, w) in m.workloads.iter().enumerate() {
            match &r.cells[i] {
                Ok(c) => {
                    let v = headline(*w, c);
                    let ratio = baseline(rows, m, i).map(|b| format!(" ({:.2}x)", v / b)).unwrap_or_default();
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
        let cpu = |c: &Cell| format!("{}+{}", num(c.user_per_gib()), num(c.sys_per_gib()));
        let cpus =
            r.cells.iter().map(|c| c.as_ref().map(cpu).unwrap_or_else(|_| "-".into())).collect::<Vec<_>>().join(" · ");
        let _ = writeln!(line, " {cpus} | {} |", per(&Cell::ctxt_per_req));
        o.push_str(&line);
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Ratios in parentheses: throughput over the `{}` rung's in the same column. Server CPU: utime + stime of every \
         process in the server namespace (softirq work done on the client's CPU is not in it) per GiB of response bytes, \
         user-space part first. Context switches: voluntary + involuntary, all server threads, per request (a large-file \
         download is one request).",
        m.versus
    );
    if let Some(ceil) = &m.ceiling {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "AF_XDP transmit ceiling of this veth pair at MTU {} (`bench txceil`, prebuilt {} B packets from one core, same \
             run): {:.0} packets/s, {:.2} Gbit/s. The AF_XDP server's packets/s below are estimated from its response bytes \
             as full segments of {:.0} B (at least one per response).",
            ceil.mtu,
            ceil.mtu,
            ceil.packets_per_sec,
            ceil.gbit_per_sec,
            segment_payload(m.mtu)
        );
        let _ = writeln!(o);
        let _ = writeln!(o, "| workload | AF_XDP packets/s | share of the ceiling |");
        let _ = writeln!(o, "|---|---:|---:|");
        if let Some(r) = rows.iter().find(|r| r.rung == Rung::Xdp) {
            for (i, w) in m.workloads.iter().enumerate() {
                if let Ok(c) = &r.cells[i] {
                    let p = packets_per_sec(c, m.mtu);
                    let _ = writeln!(
                        o,
                        "| {} | {:.0} | {:.0}% |",
                        workload_title(*w),
                        p,
                        100.0 * p / ceil.packets_per_sec.max(1.0)
                    );
                }
            }
        }
        let _ = writeln!(o);
    }
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
    let h = top + panel_h * m.workloads.len() as f64 + 24.0;
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
            "Linux {}, veth pair MTU {}, server on CPU 1, client on CPU 0, {}; large file {} MiB (curl); wrk {} s.",
            m.kernel, m.mtu, m.placement, m.size_mib, m.secs
        ))
    );
    let _ = writeln!(
        o,
        r##"<text x="10" y="62" fill="#444">{}</text>"##,
        esc(&format!(
            "Label: throughput · server CPU seconds per GiB sent · throughput as a ratio to {} in the same panel.",
            m.versus
        ))
    );
    for (i, w) in m.workloads.iter().enumerate() {
        let y0 = top + panel_h * i as f64;
        let _ = writeln!(
            o,
            r#"<text x="10" y="{:.0}" font-size="15" font-weight="bold">{} ({})</text>"#,
            y0 + 20.0,
            workload_title(*w),
            unit(*w)
        );
        let max = rows.iter().filter_map(|r| r.cells[i].as_ref().ok()).map(|c| headline(*w, c)).fold(0.0, f64::max);
        let base = baseline(rows, m, i);
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
        Cell {
            bytes: (mb * 1e6) as u64,
            requests: 10,
            secs: 1.0,
            cpu_secs: 0.5,
            user_secs: 0.125,
            ctxt: 20,
            errors: 0,
            background: 0.0,
        }
    }

    fn meta(workloads: Vec<Workload>, versus: &str, ceiling: Option<Ceiling>) -> Meta {
        Meta {
            kernel: "6.18".into(),
            cpu: "x".into(),
            nginx: "1.22".into(),
            secs: 2,
            large_tries: 2,
            wrk_tries: 1,
            size_mib: 256,
            workloads,
            versus: versus.into(),
            placement: "client receive steered to CPU 0 with RPS (two hosts)".into(),
            mtu: 1500,
            ceiling,
            elapsed: 1.0,
            command: "cargo xtask bench ladder --quick".into(),
        }
    }

    #[test]
    fn table_has_a_row_per_rung_with_ratios_and_the_chart_a_bar_per_rung() {
        let w = super::super::bench::workloads(&[4]);
        assert_eq!(w.len(), 4);
        let rows = vec![
            Row {
                rung: Rung::Kernel("read-write"),
                cells: w.iter().map(|_| Ok(cell(100.0))).collect(),
                note: "n".into(),
            },
            Row {
                rung: Rung::Kernel("sendfile"),
                cells: w.iter().map(|_| Ok(cell(250.0))).collect(),
                note: String::new(),
            },
            Row { rung: Rung::Xdp, cells: w.iter().map(|_| Err("no XDP".to_string())).collect(), note: String::new() },
        ];
        let m = meta(w.clone(), "read-write", None);
        let md = markdown(&rows, &m);
        assert!(md.contains("| sendfile | 250 (2.50x) |"), "{md}");
        assert!(md.contains("| AF_XDP (ours) | failed |"), "{md}");
        assert!(md.contains("16 KiB set, wrk -c4 req/s"), "{md}");
        // 0.125 of 0.5 CPU s is user time, over 100 MB = 0.0931 GiB.
        assert!(md.contains("1.34+4.03"), "{md}");
        assert!(md.contains("no XDP"));
        assert!(!md.contains("transmit ceiling"), "no ceiling was measured: {md}");
        let svg = svg(&rows, &m);
        assert_eq!(svg.matches("<rect x=").count(), 2 * w.len());
        assert!(svg.contains("2.50x") && svg.ends_with("</svg>\n"));
    }

    #[test]
    fn ratios_follow_versus_and_the_ceiling_share_is_reported_per_column() {
        let w = super::super::bench::workloads(&[4, 64]);
        assert_eq!(
            w,
            [
                Workload::Warm,
                Workload::Cold,
                Workload::Set1M(4),
                Workload::Set16K(4),
                Workload::Set1M(64),
                Workload::Set16K(64)
            ]
        );
        let rows = vec![
            Row {
                rung: Rung::Nginx(NginxMode::Sendfile),
                cells: w.iter().map(|_| Ok(cell(200.0))).collect(),
                note: String::new(),
            },
            Row { rung: Rung::Xdp, cells: w.iter().map(|_| Ok(cell(100.0))).collect(), note: String::new() },
        ];
        // 100 MB/s of 1448 B segments = 69,061 packets/s; the ceiling 138,122 -> 50%.
        let ceil = Ceiling { mtu: 1500, packets_per_sec: 138_122.0, frames_per_sec: 138_122.0, gbit_per_sec: 1.6 };
        let md = markdown(&rows, &meta(w.clone(), "sendfile", Some(ceil)));
        assert!(md.contains("| AF_XDP (ours) | 100 (0.50x) |"), "{md}");
        assert!(md.contains("| 16 KiB set, wrk -c64 | 69061 | 50% |"), "{md}");
        assert_eq!(md.matches("| 50% |").count(), w.len(), "{md}");
    }
}
