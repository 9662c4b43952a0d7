//! `cargo xtask fuzz [--seconds N] [TARGET]`: runs the cargo-fuzz targets in `fuzz/` on the
//! pinned nightly, each for N seconds, starting from its committed seed corpus
//! (`fuzz/corpus/TARGET`). New inputs go to `fuzz/target/corpus/TARGET` (kept between runs,
//! never committed), so a run leaves the checkout clean. The test command runs every target
//! for a short while as a regression over the committed corpus.
//!
//! A crash leaves its input in `fuzz/artifacts/TARGET/`; the summary names the command that
//! minimizes it. The fix lands with the minimized input added to `fuzz/corpus/TARGET`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::toolchain::Pin;
use crate::util::root;

/// One target's outcome.
#[derive(Debug)]
pub struct Outcome {
    pub target: String,
    pub runs: u64,
    pub coverage: u64,
    pub features: u64,
    pub corpus: u64,
    pub seconds: f64,
    pub crash: Option<String>,
}

/// The targets declared in fuzz/Cargo.toml.
pub fn targets() -> Result<Vec<String>> {
    let text = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).context("reading fuzz/Cargo.toml")?;
    let doc: toml::Table = text.parse().context("parsing fuzz/Cargo.toml")?;
    let bins = doc.get("bin").and_then(|b| b.as_array()).context("fuzz/Cargo.toml declares no [[bin]] targets")?;
    Ok(bins.iter().filter_map(|b| b.get("name").and_then(|n| n.as_str()).map(String::from)).collect())
}

/// Builds and runs `only` (or every target) for `seconds` each; fails if any crashed.
pub fn run(seconds: u64, only: Option<&str>) -> Result<Vec<Outcome>> {
    let pin = Pin::load()?;
    let all = targets()?;
    let chosen: Vec<String> = match only {
        Some(t) if all.iter().any(|a| a == t) => vec![t.to_string()],
        Some(t) => bail!("no fuzz target {t:?}; the targets are: {}", all.join(", ")),
        None => all,
    };
    let fuzz_dir = root().join("fuzz");
    println!("fuzz: building {} target(s) with {} (address sanitizer, coverage)", chosen.len(), pin.channel);
    let mut build = cargo_fuzz(&pin, &fuzz_dir);
    build.args(["build", "--release"]);
    if let Some(t) = only {
        build.arg(t);
    }
    let status = build.status().context("running cargo fuzz (is it installed? `cargo xtask setup`)")?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status})");
    }
    let mut outcomes = Vec::new();
    for t in &chosen {
        let o = run_one(&pin, &fuzz_dir, t, seconds)?;
        println!(
            "fuzz: {:<16} {:>11} runs in {:>4.0} s, coverage {} edges / {} features, corpus {}{}",
            o.target,
            o.runs,
            o.seconds,
            o.coverage,
            o.features,
            o.corpus,
            o.crash.as_deref().map(|c| format!(", CRASH: {c}")).unwrap_or_default()
        );
        outcomes.push(o);
    }
    let crashed: Vec<&Outcome> = outcomes.iter().filter(|o| o.crash.is_some()).collect();
    if !crashed.is_empty() {
        let first = crashed[0];
        bail!(
            "{} fuzz target(s) crashed: {}. Reproduce with `cd fuzz && cargo +{} fuzz run {} {}`, minimize with \
             `cargo +{} fuzz tmin {} ...`, fix it, and add the minimized input to fuzz/corpus/{}",
            crashed.len(),
            crashed.iter().map(|o| o.target.as_str()).collect::<Vec<_>>().join(", "),
            pin.channel,
            first.target,
            first.crash.as_deref().unwrap_or_default(),
            pin.channel,
            first.target,
            first.target
        );
    }
    Ok(outcomes)
}

fn cargo_fuzz(pin: &Pin, dir: &Path) -> Command {
    let mut c = Command::new("cargo");
    c.arg(format!("+{}", pin.channel))
        .arg("fuzz")
        .current_dir(dir)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS");
    c
}

fn run_one(pin: &Pin, dir: &Path, target: &str, seconds: u64) -> Result<Outcome> {
    let seeds = dir.join("corpus").join(target);
    let work = dir.join("target").join("corpus").join(target);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let artifacts = dir.join("artifacts").join(target);
    std::fs::create_dir_all(&artifacts)?;
    let start = Instant::now();
    let out = cargo_fuzz(pin, dir)
        .args(["run", "--release", target])
        .arg(&work)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("running fuzz target {target}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let stat = |key: &str| -> u64 {
        text.lines().rev().find_map(|l| l.trim().strip_prefix(key).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
    };
    // The last status line carries "cov: N ft: N corp: N/...".
    let field = |key: &str| -> u64 {
        text.lines()
            .rev()
            .find_map(|l| {
                let rest = l.split(key).nth(1)?;
                rest.split(|c: char| !c.is_ascii_digit()).find(|s| !s.is_empty())?.parse().ok()
            })
            .unwrap_or(0)
    };
    let crash = if out.status.success() {
        None
    } else {
        let path = text
            .lines()
            .find_map(|l| l.split("Test unit written to ").nth(1).map(|p| p.trim().to_string()))
            .unwrap_or_else(|| format!("exit {}", out.status));
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        eprintln!("fuzz: {target} failed; the end of its output:");
        for l in tail.iter().rev() {
            eprintln!("  | {l}");
        }
        Some(path)
    };
    Ok(Outcome {
        target: target.to_string(),
        runs: stat("stat::number_of_executed_units:"),
        coverage: field(" cov: "),
        features: field(" ft: "),
        corpus: field(" corp: "),
        seconds: start.elapsed().as_secs_f64(),
        crash,
    })
}
