//! `cargo xtask setup`: installs what a fresh machine lacks, at pinned versions, one printed
//! step at a time. Every step checks the version it finds, not just presence, so running it
//! again changes nothing and a wrong version is replaced. `--check` prints each requirement
//! with what was found and what is needed, and changes nothing.
//!
//! Two profiles: the demo needs only Debian tools and hugepages (it runs the committed XDP
//! object, so no LLVM and no nightly); the tests also rebuild that object to check it, so
//! they need the pinned eBPF toolchain (`ebpf/toolchain.toml`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::toolchain::Pin;
use crate::util::{cmd_ok, run, which};

/// What a command needs from the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Profile {
    /// `cargo xtask demo`: the file server over AF_XDP and curl.
    Demo,
    /// `cargo xtask test` and the benchmarks: everything.
    Full,
}

/// Debian packages, each with the first profile that needs it.
const APT: &[(&str, Profile)] = &[
    ("iproute2", Profile::Demo),
    ("curl", Profile::Demo),
    ("ethtool", Profile::Demo),
    ("util-linux", Profile::Demo),
    ("iputils-ping", Profile::Full),
    ("wget", Profile::Full),
    ("tcpdump", Profile::Full),
    ("nftables", Profile::Full),
    ("nginx", Profile::Full),
    ("wrk", Profile::Full),
    // `ab`: connection-per-request load in `bench conns` and the soak.
    ("apache2-utils", Profile::Full),
    // `promtool check metrics` for the control port's Prometheus text: promtool ships only
    // in Debian's prometheus package (96 MB installed). Where systemd runs, installing it
    // also starts a Prometheus server on :9090 (`systemctl disable --now prometheus`).
    ("prometheus", Profile::Full),
    // The libfabric provider's tests: fi_info / fi_pingpong, Open MPI over `mtl ofi`.
    ("libfabric-dev", Profile::Full),
    ("libfabric-bin", Profile::Full),
    ("openmpi-bin", Profile::Full),
    ("libopenmpi-dev", Profile::Full),
];

fn apt_packages(profile: Profile) -> Vec<&'static str> {
    APT.iter().filter(|(_, p)| *p <= profile).map(|(n, _)| *n).collect()
}

/// 2 MiB hugepages reserved for pools (2 GiB: the file server's default pool is 1.6 GiB,
/// 800 pages; examples/fileserver/src/options.rs tests that it still fits).
pub const HUGEPAGES: u64 = 1024;

/// One line of `--check`.
struct Status {
    name: String,
    found: String,
    needed: String,
    ok: bool,
}

/// Every requirement of `profile`, checked; nothing is changed.
fn survey(profile: Profile, pin: &Pin) -> Vec<Status> {
    let mut out = Vec::new();
    out.push(apt_status("Debian packages", &apt_packages(profile)));
    if profile == Profile::Full {
        out.push(lint_tools_status());
        let llvm: Vec<&str> = pin.linker_apt.iter().map(String::as_str).collect();
        out.push(apt_status("LLVM packages for bpf-linker", &llvm));
        out.push(toolchain_status(pin));
        out.push(linker_status(pin));
        out.push(fuzz_status(pin));
    }
    let pages = hugepages();
    out.push(Status {
        name: "hugepages".into(),
        found: format!("{pages} x 2 MiB"),
        needed: format!(">= {HUGEPAGES} x 2 MiB"),
        ok: pages >= HUGEPAGES,
    });
    out
}

/// `cargo xtask setup --check`: prints the survey; fails if something is missing.
pub fn check(profile: Profile) -> Result<()> {
    let pin = Pin::load()?;
    let rows = survey(profile, &pin);
    println!(
        "setup --check ({}; nothing is changed)",
        match profile {
            Profile::Demo => "what `cargo xtask demo` needs",
            Profile::Full => "what `cargo xtask test` and the benchmarks need",
        }
    );
    for r in &rows {
        println!("  {:<8} {}", if r.ok { "ok" } else { "MISSING" }, r.name);
        println!("  {:<8}   found:  {}", "", r.found);
        println!("  {:<8}   needed: {}", "", r.needed);
    }
    let missing: Vec<&str> = rows.iter().filter(|r| !r.ok).map(|r| r.name.as_str()).collect();
    if !missing.is_empty() {
        bail!("not ready: {}; `cargo xtask setup` installs them", missing.join(", "));
    }
    println!("setup --check: ready");
    Ok(())
}

/// Runs setup for `profile` if anything is missing; quiet when the machine is ready.
pub fn ensure(profile: Profile) -> Result<()> {
    let pin = Pin::load()?;
    let missing: Vec<String> = survey(profile, &pin).into_iter().filter(|s| !s.ok).map(|s| s.name).collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("setup: missing {}; running `cargo xtask setup` first", missing.join(", "));
    run_all(profile)
}

/// Installs the pinned eBPF toolchain where it is missing or of another version (each
/// step says "present" when it finds what the pin asks for).
pub fn ensure_ebpf_toolchain(pin: &Pin) -> Result<()> {
    let llvm: Vec<&str> = pin.linker_apt.iter().map(String::as_str).collect();
    step("LLVM packages for bpf-linker", || apt(&llvm))?;
    step(&format!("Rust toolchain {}", pin.channel), || install_toolchain(pin))?;
    step(&format!("bpf-linker {} (LLVM {})", pin.linker_version, pin.llvm_major), || install_linker(pin))
}

/// Every step of `profile`, printing what it does.
pub fn run_all(profile: Profile) -> Result<()> {
    let pin = Pin::load()?;
    let start = std::time::Instant::now();
    step("Debian packages", || apt(&apt_packages(profile)))?;
    if profile == Profile::Full {
        step("rustfmt and clippy", install_lint_tools)?;
        ensure_ebpf_toolchain(&pin)?;
        step(&format!("cargo-fuzz {}", pin.fuzz_version), || install_fuzz(&pin))?;
    }
    step("hugepages", reserve_hugepages)?;
    println!("setup: done in {:.0} s", start.elapsed().as_secs_f64());
    Ok(())
}

fn step(name: &str, f: impl FnOnce() -> Result<String>) -> Result<()> {
    print!("setup: {name} ... ");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let start = std::time::Instant::now();
    match f() {
        Ok(what) => {
            let secs = start.elapsed().as_secs_f64();
            if secs >= 1.0 {
                println!("{what} ({secs:.0} s)");
            } else {
                println!("{what}");
            }
            Ok(())
        }
        Err(e) => {
            println!("FAILED");
            Err(e.context(format!("setup step `{name}`")))
        }
    }
}

/// Installed versions of Debian packages (`None` where not installed).
fn dpkg_versions(pkgs: &[&str]) -> Vec<Option<String>> {
    pkgs.iter()
        .map(|p| {
            cmd_ok(Command::new("dpkg-query").args(["-W", "-f=${Status}|${Version}", p]))
                .and_then(|s| s.strip_prefix("install ok installed|").map(String::from))
        })
        .collect()
}

fn apt_status(name: &str, pkgs: &[&str]) -> Status {
    let versions = dpkg_versions(pkgs);
    let missing: Vec<&str> = pkgs.iter().zip(&versions).filter(|(_, v)| v.is_none()).map(|(p, _)| *p).collect();
    let found = if missing.is_empty() {
        pkgs.iter()
            .zip(&versions)
            .map(|(p, v)| format!("{p} {}", v.as_deref().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        format!("not installed: {}", missing.join(" "))
    };
    Status { name: name.into(), found, needed: pkgs.join(" "), ok: missing.is_empty() }
}

fn apt(pkgs: &[&str]) -> Result<String> {
    let versions = dpkg_versions(pkgs);
    let need: Vec<&str> = pkgs.iter().zip(&versions).filter(|(_, v)| v.is_none()).map(|(p, _)| *p).collect();
    if need.is_empty() {
        return Ok("present".into());
    }
    require_root("installing Debian packages")?;
    run(Command::new("apt-get").args(["update", "-qq"])).context("apt-get update")?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&need)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(format!("installed {}", need.join(" ")))
}

/// rustfmt and clippy of the toolchain that builds the workspace (the test command runs
/// `cargo fmt --check` and `cargo clippy -D warnings`).
fn lint_tools_status() -> Status {
    let version = |tool: &str| cmd_ok(Command::new("cargo").args([tool, "--version"])).map(|v| v.trim().to_string());
    let (fmt, clippy) = (version("fmt"), version("clippy"));
    let found =
        format!("{}, {}", fmt.as_deref().unwrap_or("rustfmt missing"), clippy.as_deref().unwrap_or("clippy missing"));
    Status {
        name: "rustfmt and clippy".into(),
        found,
        needed: "both, for the workspace's toolchain".into(),
        ok: fmt.is_some() && clippy.is_some(),
    }
}

fn install_lint_tools() -> Result<String> {
    if lint_tools_status().ok {
        return Ok("present".into());
    }
    run(Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]))?;
    let st = lint_tools_status();
    if !st.ok {
        bail!("rustup added rustfmt and clippy but cargo still lacks them: {}", st.found);
    }
    Ok(format!("installed ({})", st.found))
}

/// `rustc -vV` of the pinned toolchain: (release, LLVM major), or `None` if not installed.
fn toolchain_version(pin: &Pin) -> Option<(String, u32)> {
    let text =
        cmd_ok(Command::new("rustup").args(["run", &pin.channel, "rustc", "-vV"]).env_remove("RUSTUP_TOOLCHAIN"))?;
    let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.trim().to_string());
    let release = field("release:")?;
    let llvm = field("LLVM version:")?.split('.').next()?.parse().ok()?;
    Some((release, llvm))
}

fn installed_components(pin: &Pin) -> Vec<String> {
    cmd_ok(Command::new("rustup").args(["component", "list", "--installed", "--toolchain", &pin.channel]))
        .map(|s| s.lines().map(|l| l.trim().to_string()).collect())
        .unwrap_or_default()
}

fn toolchain_status(pin: &Pin) -> Status {
    let needed = format!("{} (LLVM {}) with {}", pin.channel, pin.llvm_major, pin.components.join(", "));
    let name = "eBPF Rust toolchain".to_string();
    if which("rustup").is_none() {
        return Status { name, found: "rustup not on PATH".into(), needed, ok: false };
    }
    let Some((release, llvm)) = toolchain_version(pin) else {
        return Status { name, found: format!("{} not installed", pin.channel), needed, ok: false };
    };
    let have = installed_components(pin);
    let lacking: Vec<&String> =
        pin.components.iter().filter(|c| !have.iter().any(|h| h.starts_with(c.as_str()))).collect();
    let mut found = format!("{} = {release}, LLVM {llvm}", pin.channel);
    if !lacking.is_empty() {
        found.push_str(&format!(", lacks {}", lacking.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")));
    }
    Status { name, found, needed, ok: llvm == pin.llvm_major && lacking.is_empty() }
}

fn install_toolchain(pin: &Pin) -> Result<String> {
    if toolchain_status(pin).ok {
        return Ok("present".into());
    }
    if which("rustup").is_none() {
        bail!("rustup is not on PATH: the eBPF build needs {} through rustup (https://rustup.rs)", pin.channel);
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["toolchain", "install", &pin.channel, "--profile", "minimal", "--no-self-update"]);
    for c in &pin.components {
        cmd.args(["--component", c]);
    }
    run(&mut cmd)?;
    let st = toolchain_status(pin);
    if !st.ok {
        bail!(
            "after installing, {} is {} but {} is needed: edit {} so the nightly's LLVM matches bpf-linker's",
            pin.channel,
            st.found,
            st.needed,
            crate::toolchain::PIN_FILE
        );
    }
    Ok(format!("installed ({})", st.found))
}

/// Where `cargo install` puts bpf-linker, and where the eBPF build takes it from.
pub fn bpf_linker_path() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"));
    cargo_home.join("bin").join("bpf-linker")
}

/// bpf-linker's version and the LLVM major it is linked against.
fn linker_version(path: &std::path::Path) -> Option<(String, Option<u32>)> {
    let v = cmd_ok(Command::new(path).arg("--version"))?;
    let version = v.split_whitespace().nth(1)?.to_string();
    // Debian's LLVM is a shared library: libLLVM.so.22.1 (or libLLVM-22.so).
    let llvm = cmd_ok(Command::new("ldd").arg(path)).and_then(|text| {
        text.split_whitespace().find_map(|w| {
            let rest = w.strip_prefix("libLLVM.so.").or_else(|| w.strip_prefix("libLLVM-"))?;
            rest.split(['.', '-']).next()?.parse().ok()
        })
    });
    Some((version, llvm))
}

fn linker_status(pin: &Pin) -> Status {
    let path = bpf_linker_path();
    let needed = format!("{} linked against LLVM {}", pin.linker_version, pin.llvm_major);
    let name = "bpf-linker".to_string();
    match linker_version(&path) {
        None => Status { name, found: format!("not installed at {}", path.display()), needed, ok: false },
        Some((version, llvm)) => {
            let llvm_text = llvm.map_or("an unknown LLVM".to_string(), |m| format!("LLVM {m}"));
            Status {
                name,
                found: format!("{version}, {llvm_text} ({})", path.display()),
                needed,
                ok: version == pin.linker_version && llvm == Some(pin.llvm_major),
            }
        }
    }
}

fn install_linker(pin: &Pin) -> Result<String> {
    let before = linker_status(pin);
    if before.ok {
        return Ok("present".into());
    }
    let llvm = PathBuf::from(&pin.llvm_prefix);
    if !llvm.join("bin/llvm-config").exists() {
        bail!("{}/bin/llvm-config is missing: install {} first", pin.llvm_prefix, pin.linker_apt.join(" "));
    }
    let path = format!("{}/bin:{}", llvm.display(), std::env::var("PATH").unwrap_or_default());
    // llvm-sys reads LLVM_SYS_<major><minor>_PREFIX; the minor is 1 for every LLVM 22.x.
    let llvm_var = format!("LLVM_SYS_{}1_PREFIX", pin.llvm_major);
    let root = bpf_linker_path().parent().and_then(|p| p.parent()).map(PathBuf::from).unwrap_or_default();
    run(Command::new("cargo")
        .args(["install", "bpf-linker", "--locked", "--force", "--no-default-features"])
        .args(["--version", &format!("={}", pin.linker_version)])
        .args(["--features", &pin.linker_features.join(",")])
        .arg("--root")
        .arg(&root)
        .env("PATH", path)
        .env(llvm_var, &llvm)
        .env_remove("RUSTUP_TOOLCHAIN"))
    .with_context(|| format!("cargo install bpf-linker {} (needs {})", pin.linker_version, pin.linker_apt.join(" ")))?;
    let after = linker_status(pin);
    if !after.ok {
        bail!("bpf-linker was installed but is {} (needed: {})", after.found, after.needed);
    }
    Ok(if before.found.starts_with("not installed") {
        format!("installed ({})", after.found)
    } else {
        format!("replaced {} with {}", before.found, after.found)
    })
}

fn fuzz_status(pin: &Pin) -> Status {
    let found = cmd_ok(Command::new("cargo").args(["fuzz", "--version"])).map(|v| v.trim().to_string());
    let ok = found.as_deref().is_some_and(|v| v.split_whitespace().nth(1) == Some(pin.fuzz_version.as_str()));
    Status {
        name: "cargo-fuzz".into(),
        found: found.unwrap_or_else(|| "not installed".into()),
        needed: format!("cargo-fuzz {} (runs on {})", pin.fuzz_version, pin.channel),
        ok,
    }
}

fn install_fuzz(pin: &Pin) -> Result<String> {
    let before = fuzz_status(pin);
    if before.ok {
        return Ok("present".into());
    }
    run(Command::new("cargo")
        .args(["install", "cargo-fuzz", "--locked", "--force", "--version", &format!("={}", pin.fuzz_version)])
        .env_remove("RUSTUP_TOOLCHAIN"))?;
    let after = fuzz_status(pin);
    if !after.ok {
        bail!("cargo-fuzz was installed but `cargo fuzz --version` says {}", after.found);
    }
    Ok(format!("installed ({})", after.found))
}

fn hugepages() -> u64 {
    std::fs::read_to_string("/proc/sys/vm/nr_hugepages").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

fn reserve_hugepages() -> Result<String> {
    let now = hugepages();
    if now >= HUGEPAGES {
        return Ok(format!("{now} x 2 MiB reserved"));
    }
    require_root("reserving hugepages")?;
    std::fs::write("/proc/sys/vm/nr_hugepages", HUGEPAGES.to_string()).context("writing /proc/sys/vm/nr_hugepages")?;
    let got = hugepages();
    if got < HUGEPAGES {
        // Fragmented memory can leave fewer; pools fall back to 4 KiB pages with a warning.
        return Ok(format!(
            "{got} of {HUGEPAGES} x 2 MiB reserved (memory fragmented); pools will fall back to 4 KiB pages"
        ));
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
