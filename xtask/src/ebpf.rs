//! `cargo xtask ebpf`: builds the steering XDP program with the pinned toolchain and
//! commits nothing by itself; it writes `ebpf/steer.bpf.o` and the digest of its inputs,
//! `ebpf/steer.bpf.o.inputs`, which are both checked in. `datapath` embeds the object, so a
//! plain `cargo build` on stable needs neither nightly, rust-src, bpf-linker nor LLVM
//! (the way Quilkin and s2n-quic ship their eBPF).
//!
//! The build is byte-reproducible: every absolute path that reaches the object's debug
//! info and BTF (the checkout, `CARGO_HOME`, `RUSTUP_HOME`) is remapped, so the same
//! sources and pin give the same bytes in any directory on any machine.
//!
//! [`check`] is what the test command runs: the inputs must hash to the recorded digest
//! (any edit of the program's sources, manifests, locked dependencies or the pin without a
//! rebuild fails), and a fresh build must equal the committed object byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};

use crate::toolchain::Pin;
use crate::util::root;

/// The committed object, relative to the workspace root.
pub const OBJECT: &str = "ebpf/steer.bpf.o";
/// The committed digest of the object's inputs, relative to the workspace root.
pub const INPUTS: &str = "ebpf/steer.bpf.o.inputs";
/// The eBPF package and its binary.
const PACKAGE: &str = "steer-ebpf";
const BIN: &str = "steer";
/// Directories whose files are inputs of the object.
const SOURCE_DIRS: &[&str] = &["ebpf/steer", "ebpf/common"];
/// The target triple (x86_64 and every other little-endian host loads `bpfel`).
const TARGET: &str = "bpfel-unknown-none";

/// What to tell someone whose object is out of date.
const REBUILD: &str = "run `cargo xtask ebpf` and commit ebpf/steer.bpf.o and ebpf/steer.bpf.o.inputs";

/// Builds the object with the pinned toolchain and writes it and its input digest into the
/// source tree.
pub fn build_and_write() -> Result<()> {
    let pin = Pin::load()?;
    crate::setup::ensure_ebpf_toolchain(&pin)?;
    let root = root();
    let object = build(&pin, &root.join("target/ebpf"))?;
    std::fs::write(root.join(OBJECT), &object).with_context(|| format!("writing {OBJECT}"))?;
    let digest = inputs_digest(&root, &pin, &object)?;
    std::fs::write(root.join(INPUTS), digest).with_context(|| format!("writing {INPUTS}"))?;
    println!("ebpf: wrote {OBJECT} ({} bytes, sha256 {}) and {INPUTS}", object.len(), hex(&Sha256::digest(&object)));
    println!("ebpf: commit both files; `cargo xtask test` checks that they match the sources");
    Ok(())
}

/// Fails, naming `cargo xtask ebpf`, when the committed object does not come from the
/// sources in the tree: first by the recorded input digest (fast, no toolchain), then by
/// rebuilding with the pinned toolchain and comparing bytes.
pub fn check(rebuild: bool) -> Result<()> {
    let pin = Pin::load()?;
    let root = root();
    let object = std::fs::read(root.join(OBJECT))
        .with_context(|| format!("reading {OBJECT}: the committed XDP object is missing; {REBUILD}"))?;
    let recorded =
        std::fs::read_to_string(root.join(INPUTS)).with_context(|| format!("reading {INPUTS}; {REBUILD}"))?;
    let current = inputs_digest(&root, &pin, &object)?;
    if recorded != current {
        let changed = diff_lines(&recorded, &current);
        bail!(
            "the committed XDP object is stale: {} changed since it was built; {REBUILD}",
            if changed.is_empty() { "its inputs".to_string() } else { changed.join(", ") }
        );
    }
    println!("ebpf: {OBJECT} matches the digest of its sources");
    if !rebuild {
        return Ok(());
    }
    crate::setup::ensure_ebpf_toolchain(&pin)?;
    let fresh = build(&pin, &root.join("target/ebpf-check"))?;
    if fresh != object {
        bail!(
            "a fresh build of the XDP program with {} differs from the committed {OBJECT} \
             ({} vs {} bytes, sha256 {} vs {}); {REBUILD}",
            pin.channel,
            fresh.len(),
            object.len(),
            hex(&Sha256::digest(&fresh)),
            hex(&Sha256::digest(&object)),
        );
    }
    println!("ebpf: a fresh build with {} is byte-identical to {OBJECT}", pin.channel);
    Ok(())
}

/// Builds the program into `target_dir` and returns the object's bytes.
fn build(pin: &Pin, target_dir: &Path) -> Result<Vec<u8>> {
    let root = root();
    let linker = crate::setup::bpf_linker_path();
    let cargo_home = home_dir("CARGO_HOME", ".cargo");
    let rustup_home = home_dir("RUSTUP_HOME", ".rustup");
    // One argument per \x1f-separated field, as cargo expects CARGO_ENCODED_RUSTFLAGS.
    let flags = [
        format!("--cfg=bpf_target_arch=\"{}\"", std::env::consts::ARCH),
        "-Cdebuginfo=2".into(),
        "-Clink-arg=--btf".into(),
        format!("-Clinker={}", linker.display()),
        format!("--remap-path-prefix={}=/src", root.display()),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        format!("--remap-path-prefix={}=/rustup", rustup_home.display()),
    ];
    println!("ebpf: building {PACKAGE} with {} and bpf-linker {}", pin.channel, pin.linker_version);
    let mut cmd = Command::new("rustup");
    cmd.current_dir(&root)
        .args(["run", &pin.channel, "cargo", "build", "--quiet", "--locked", "--release"])
        .args(["--package", PACKAGE, "--bin", BIN, "--target", TARGET, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
        // The outer cargo's choices must not leak into the pinned toolchain's build.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO");
    let status = cmd.status().context("running rustup (is it on PATH?)")?;
    ensure!(
        status.success(),
        "building the XDP program with {} failed ({status}); `cargo xtask setup --check` shows what is missing",
        pin.channel
    );
    let out = target_dir.join(TARGET).join("release").join(BIN);
    std::fs::read(&out).with_context(|| format!("reading the built object {}", out.display()))
}

fn home_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(default))
}

/// The digest file: one `sha256  name` line per input, sorted, then the object's own hash.
/// Inputs are the program's and the shared crate's files, the pin, the build profile, and
/// the locked versions of every crate the program depends on.
fn inputs_digest(root: &Path, pin: &Pin, object: &[u8]) -> Result<String> {
    let mut lines = BTreeMap::new();
    for dir in SOURCE_DIRS {
        for file in files_under(&root.join(dir))? {
            let rel = file.strip_prefix(root).unwrap_or(&file).to_string_lossy().into_owned();
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            lines.insert(rel, hex(&Sha256::digest(&bytes)));
        }
    }
    lines.insert("ebpf/toolchain.toml".into(), hex(&Sha256::digest(pin.raw.as_bytes())));
    lines.insert("Cargo.toml [profile]".into(), hex(&Sha256::digest(profile_section(root)?.as_bytes())));
    lines.insert("Cargo.lock (eBPF dependencies)".into(), hex(&Sha256::digest(locked_closure(root)?.as_bytes())));
    let mut text =
        String::from("# Inputs of ebpf/steer.bpf.o, written by `cargo xtask ebpf`; checked by `cargo xtask test`.\n");
    for (name, sum) in &lines {
        let _ = writeln!(text, "{sum}  {name}");
    }
    let _ = writeln!(text, "{}  = {OBJECT}", hex(&Sha256::digest(object)));
    Ok(text)
}

/// The names of lines that differ between two digest files.
fn diff_lines(a: &str, b: &str) -> Vec<String> {
    let set = |s: &str| s.lines().filter(|l| !l.starts_with('#')).map(String::from).collect::<BTreeSet<_>>();
    let (a, b) = (set(a), set(b));
    let name = |l: &String| l.split_once("  ").map(|(_, n)| n.to_string()).unwrap_or_else(|| l.clone());
    a.symmetric_difference(&b).map(name).collect::<BTreeSet<_>>().into_iter().collect()
}

/// Every regular file below `dir`, sorted, skipping build output.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let entry = entry?;
            let path = entry.path();
            let ty = entry.file_type()?;
            if ty.is_dir() && entry.file_name() != "target" {
                stack.push(path);
            } else if ty.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The root manifest's `[profile]` table, which sets the program's optimisation and debug info.
fn profile_section(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).context("reading Cargo.toml")?;
    let doc: toml::Table = text.parse().context("parsing Cargo.toml")?;
    Ok(doc.get("profile").map(|p| p.to_string()).unwrap_or_default())
}

/// The locked `name version` of every package the eBPF program depends on, transitively.
fn locked_closure(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let doc: toml::Table = text.parse().context("parsing Cargo.lock")?;
    let packages = doc.get("package").and_then(|p| p.as_array()).context("Cargo.lock has no packages")?;
    // name -> [(version, deps)]; a dependency names "name" or "name version".
    let mut by_name: BTreeMap<&str, Vec<(&str, Vec<&str>)>> = BTreeMap::new();
    for p in packages {
        let name = p.get("name").and_then(|v| v.as_str()).unwrap_or_default();
        let version = p.get("version").and_then(|v| v.as_str()).unwrap_or_default();
        let deps = p
            .get("dependencies")
            .and_then(|d| d.as_array())
            .map(|d| d.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        by_name.entry(name).or_default().push((version, deps));
    }
    let mut seen = BTreeSet::new();
    let mut todo = vec![PACKAGE.to_string()];
    while let Some(dep) = todo.pop() {
        let mut parts = dep.split(' ');
        let name = parts.next().unwrap_or_default();
        let want = parts.next();
        for (version, deps) in by_name.get(name).into_iter().flatten() {
            if want.is_some_and(|w| w != *version) {
                continue;
            }
            if seen.insert(format!("{name} {version}")) {
                todo.extend(deps.iter().map(|d| d.to_string()));
            }
        }
    }
    Ok(seen.into_iter().collect::<Vec<_>>().join("\n"))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
