//! Builds the steering XDP program (`ebpf/steer`) for `bpfel-unknown-none` with the nightly
//! toolchain and `bpf-linker`, and leaves the object in OUT_DIR for `include_bytes!`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PATH");
    let linker_ok = Command::new("bpf-linker").arg("--version").output().is_ok_and(|o| o.status.success());
    let nightly_src = Command::new("rustup")
        .args(["+nightly", "component", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("rust-src"));
    if !linker_ok || !nightly_src {
        let missing = match (linker_ok, nightly_src) {
            (false, false) => "bpf-linker and the nightly rust-src component",
            (false, true) => "bpf-linker",
            _ => "the nightly rust-src component",
        };
        panic!(
            "building the XDP program needs {missing}, which this machine lacks. \
             Run `cargo xtask setup` (installs LLVM 22 dev packages, rust-src and bpf-linker) \
             and build again."
        );
    }
    let package = aya_build::Package {
        name: "steer-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../ebpf/steer"),
        ..Default::default()
    };
    if let Err(err) = aya_build::build_ebpf([package], aya_build::Toolchain::default()) {
        panic!("building the XDP program failed: {err:#}");
    }
}
