//! `cargo xtask setup`: installs what a fresh machine lacks, one printed step at a time.
//! Every step checks first, so running it again changes nothing.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{cmd_ok, run, which};

/// Debian packages: LLVM 22 to build bpf-linker, and the tools the tests and demo drive.
const APT: &[(&str, &str)] = &[
    ("llvm-22-dev", "/usr/lib/llvm-22/bin/llvm-config"),
    ("libpolly-22-dev", "/usr/lib/llvm-22/lib/libPolly.a"),
    ("libzstd-dev", "/usr/include/zstd.h"),
    ("zlib1g-dev", "/usr/include/zlib.h"),
    ("iproute2", "/usr/sbin/ip"),
    ("iputils-ping", "/usr/bin/ping"),
    ("curl", "/usr/bin/curl"),
    ("wget", "/usr/bin/wget"),
    ("tcpdump", "/usr/bin/tcpdump"),
    ("ethtool", "/usr/sbin/ethtool"),
    ("util-linux", "/usr/bin/setpriv"),
    ("nftables", "/usr/sbin/nft"),
    ("nginx", "/usr/sbin/nginx"),
    ("wrk", "/usr/bin/wrk"),
];

/// 2 MiB hugepages reserved for pools (1 GiB: the file server's default pool is 320 MiB).
pub const HUGEPAGES: u64 = 512;

/// What is missing, as step names (empty when the machine is ready).
pub fn missing() -> Vec<&'static str> {
    let mut m = Vec::new();
    if APT.iter().any(|(_, f)| !std::path::Path::new(f).exists()) {
        m.push("apt");
    }
    if !nightly_has_rust_src() {
        m.push("rust-src");
    }
    if which("bpf-linker").is_none() {
        m.push("bpf-linker");
    }
    if hugepages() < HUGEPAGES {
        m.push("hugepages");
    }
    m
}

/// Runs setup if anything is missing; quiet when the machine is ready.
pub fn ensure() -> Result<()> {
    let m = missing();
    if m.is_empty() {
        return Ok(());
    }
    println!("setup: missing {}; running `cargo xtask setup` first", m.join(", "));
    run_all()
}

/// Every step, printing what it does.
pub fn run_all() -> Result<()> {
    step("Debian packages", apt)?;
    step("nightly toolchain with rust-src", rust_src)?;
    step("bpf-linker (against LLVM 22)", bpf_linker)?;
    step("hugepages", reserve_hugepages)?;
    println!("setup: done");
    Ok(())
}

fn step(name: &str, f: fn() -> Result<String>) -> Result<()> {
    print!("setup: {name} ... ");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    match f() {
        Ok(what) => {
            println!("{what}");
            Ok(())
        }
        Err(e) => {
            println!("FAILED");
            Err(e.context(format!("setup step `{name}`")))
        }
    }
}

fn apt() -> Result<String> {
    let need: Vec<&str> =
        APT.iter().filter(|(_, f)| !std::path::Path::new(f).exists()).map(|(p, _)| *p).collect();
    if need.is_empty() {
        return Ok("present".into());
    }
    require_root("installing Debian packages")?;
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&need)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(format!("installed {}", need.join(" ")))
}

fn nightly_has_rust_src() -> bool {
    Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("rust-src"))
}

fn rust_src() -> Result<String> {
    if nightly_has_rust_src() {
        return Ok("present".into());
    }
    if which("rustup").is_none() {
        bail!("rustup is not on PATH: the eBPF build needs the nightly toolchain through rustup");
    }
    run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal", "--component", "rust-src"]))?;
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    Ok("installed".into())
}

fn bpf_linker() -> Result<String> {
    if which("bpf-linker").is_some() {
        return Ok("present".into());
    }
    let llvm = PathBuf::from("/usr/lib/llvm-22");
    let path = format!("{}/bin:{}", llvm.display(), std::env::var("PATH").unwrap_or_default());
    run(Command::new("cargo")
        .args(["install", "bpf-linker", "--no-default-features", "--features", "llvm-22"])
        .env("PATH", path)
        .env("LLVM_SYS_221_PREFIX", &llvm))
    .context("cargo install bpf-linker (needs llvm-22-dev and libpolly-22-dev)")?;
    if which("bpf-linker").is_none() {
        bail!("bpf-linker was installed but is not on PATH: add ~/.cargo/bin to PATH");
    }
    Ok("installed".into())
}

fn hugepages() -> u64 {
    std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn reserve_hugepages() -> Result<String> {
    let now = hugepages();
    if now >= HUGEPAGES {
        return Ok(format!("{now} x 2 MiB reserved"));
    }
    require_root("reserving hugepages")?;
    std::fs::write("/proc/sys/vm/nr_hugepages", HUGEPAGES.to_string())
        .context("writing /proc/sys/vm/nr_hugepages")?;
    let got = hugepages();
    if got < HUGEPAGES {
        // Fragmented memory can leave fewer; pools fall back to 4 KiB pages with a warning.
        return Ok(format!("{got} of {HUGEPAGES} x 2 MiB reserved (memory fragmented); pools will fall back to 4 KiB pages"));
    }
    Ok(format!("{got} x 2 MiB reserved"))
}

pub fn require_root(what: &str) -> Result<()> {
    if !is_root() {
        bail!("{what} needs root; run as root (CI and the tests do)");
    }
    Ok(())
}

pub fn is_root() -> bool {
    cmd_ok(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}
