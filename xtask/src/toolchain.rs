//! The eBPF toolchain pin, read from `ebpf/toolchain.toml` (the one place it is written).

use anyhow::{Context, Result};

use crate::util::root;

/// Where the pin lives, relative to the workspace root.
pub const PIN_FILE: &str = "ebpf/toolchain.toml";

/// What the eBPF build needs, exactly.
#[derive(Debug, Clone)]
pub struct Pin {
    /// A dated nightly, e.g. `nightly-2026-06-15`.
    pub channel: String,
    /// rustup components of that toolchain.
    pub components: Vec<String>,
    /// The LLVM major both rustc and bpf-linker must have.
    pub llvm_major: u32,
    /// bpf-linker's crates.io version.
    pub linker_version: String,
    /// bpf-linker's cargo features (its LLVM selection).
    pub linker_features: Vec<String>,
    /// Debian packages bpf-linker builds against.
    pub linker_apt: Vec<String>,
    /// The LLVM installation bpf-linker builds against.
    pub llvm_prefix: String,
    /// cargo-fuzz's crates.io version (it runs on `channel`).
    pub fuzz_version: String,
    /// The file's text, hashed into the object's input digest.
    pub raw: String,
}

impl Pin {
    /// Reads and validates the pin file.
    pub fn load() -> Result<Pin> {
        let path = root().join(PIN_FILE);
        let raw = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Pin::parse(raw).with_context(|| format!("in {PIN_FILE}"))
    }

    fn parse(raw: String) -> Result<Pin> {
        let doc: toml::Table = raw.parse().context("not valid TOML")?;
        let table = |name: &str| doc.get(name).and_then(|t| t.as_table()).with_context(|| format!("no [{name}] table"));
        let rust = table("rust")?;
        let linker = table("bpf-linker")?;
        let fuzz = table("cargo-fuzz")?;
        let string = |t: &toml::Table, k: &str| {
            t.get(k).and_then(|v| v.as_str()).map(String::from).with_context(|| format!("missing string `{k}`"))
        };
        let list = |t: &toml::Table, k: &str| -> Result<Vec<String>> {
            let a = t.get(k).and_then(|v| v.as_array()).with_context(|| format!("missing list `{k}`"))?;
            Ok(a.iter().filter_map(|v| v.as_str()).map(String::from).collect())
        };
        let channel = string(rust, "channel")?;
        anyhow::ensure!(
            channel.starts_with("nightly-") && channel.len() == "nightly-YYYY-MM-DD".len(),
            "rust.channel must be a dated nightly (nightly-YYYY-MM-DD), not {channel:?}: the bare channel moves to a new LLVM"
        );
        let llvm_major = rust
            .get("llvm-major")
            .and_then(|v| v.as_integer())
            .and_then(|v| u32::try_from(v).ok())
            .context("missing integer `llvm-major`")?;
        Ok(Pin {
            channel,
            components: list(rust, "components")?,
            llvm_major,
            linker_version: string(linker, "version")?,
            linker_features: list(linker, "features")?,
            linker_apt: list(linker, "apt")?,
            llvm_prefix: string(linker, "llvm-prefix")?,
            fuzz_version: string(fuzz, "version")?,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_pin_parses_and_is_dated() {
        let pin = Pin::load().unwrap();
        assert!(pin.channel.starts_with("nightly-20"));
        assert!(pin.linker_features.iter().any(|f| f == &format!("llvm-{}", pin.llvm_major)));
    }

    #[test]
    fn the_bare_nightly_channel_is_refused() {
        let raw = Pin::load().unwrap().raw;
        let raw: Vec<&str> =
            raw.lines().map(|l| if l.starts_with("channel") { "channel = \"nightly\"" } else { l }).collect();
        let raw = raw.join("\n");
        let err = Pin::parse(raw).unwrap_err();
        assert!(format!("{err:#}").contains("dated nightly"), "{err:#}");
    }
}
