//! `cargo xtask bench blocks`: file blocks into memory four ways, same file, same run:
//! io_uring `O_DIRECT` `READ_FIXED` into the registered pool, the same reader buffered,
//! `read(2)` into a `Vec`, and `mmap` touching every page; cold (page cache dropped before
//! each, as root) and warm; GiB/s, CPU-s/GiB and ratios against `read`.
//!
//! The work is done by `umem/examples/blocks_bench.rs` (built in release mode); this
//! creates its temporary file on the disk (`/var/tmp`, not tmpfs) and removes it after.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::util::{root, run as run_cmd};

/// Removes the benchmark file however the run ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Builds and runs the blocks benchmark over a fresh `size_mib` MiB file.
pub fn run(size_mib: u64) -> Result<()> {
    anyhow::ensure!(size_mib > 0, "bench blocks: the file size must be at least 1 MiB");
    let file = TempFile(PathBuf::from(format!("/var/tmp/umem-blocks-bench-{}.bin", std::process::id())));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .args(["run", "--release", "-p", "umem", "--example", "blocks_bench", "--"])
        .arg("--size-mib")
        .arg(size_mib.to_string())
        .arg("--file")
        .arg(&file.0);
    run_cmd(&mut cmd)
}
