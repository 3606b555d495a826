//! Builds the default policy module (`flocker-wasm` for wasm32) so that the
//! `flocker` binary embeds it: a plain `cargo build` gives a working
//! `--engine wasm` with no extra step.
//!
//! The module is built by a nested `cargo build` into its own target
//! directory (`<target>/embedded-policy`), so it neither waits on the outer
//! build's lock nor evicts its artifacts, and copied to
//! `$OUT_DIR/flocker_policy.wasm` for `include_bytes!`.
//!
//! `FLOCKER_POLICY_WASM=/path/to/flocker_policy.wasm` skips the nested build
//! and embeds that file instead (for cross builds or prebuilt modules).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    println!("cargo:rerun-if-env-changed=FLOCKER_POLICY_WASM");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dest = out.join("flocker_policy.wasm");

    if let Some(prebuilt) = env::var_os("FLOCKER_POLICY_WASM") {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        copy(&prebuilt, &dest);
        return;
    }

    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .parent()
        .expect("host/ lives in the workspace")
        .to_path_buf();
    for path in [
        "wasm/src",
        "wasm/Cargo.toml",
        "core/src",
        "core/Cargo.toml",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    if !target_installed(&rustc) {
        panic!(
            "\n\nflocker embeds its default policy module, built for {TARGET}, and that target is not installed.\n\
             Install it with:\n\n    rustup target add {TARGET}\n\n\
             (or set FLOCKER_POLICY_WASM to a prebuilt flocker_policy.wasm)\n"
        );
    }

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("embedded-policy");
    let status = Command::new(&cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--quiet",
            "-p",
            "flocker-wasm",
            "--lib",
            "--target",
            TARGET,
        ])
        .args(["--profile", "wasm-release", "--target-dir"])
        .arg(&target_dir)
        // The outer build's flags and target settings are for the host,
        // not for wasm32 (e.g. -C target-cpu=native).
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "building the embedded policy module failed ({s}); run\n    cargo build -p flocker-wasm --target {TARGET} --profile wasm-release\nto see why"
        ),
        Err(e) => panic!("cannot run {cargo:?} to build the embedded policy module: {e}"),
    }
    copy(
        &target_dir
            .join(TARGET)
            .join("wasm-release")
            .join("flocker_policy.wasm"),
        &dest,
    );
}

/// Whether the standard library for wasm32 is installed.
fn target_installed(rustc: &std::ffi::OsStr) -> bool {
    let Ok(out) = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
    else {
        return false;
    };
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    out.status.success()
        && std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
            })
            .unwrap_or(false)
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!(
            "cannot copy the policy module {} to {}: {e}",
            from.display(),
            to.display()
        );
    }
}
