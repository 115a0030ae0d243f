//! Builds the shipped plugins (and the test plugins) for wasm32-wasip2 with a
//! nested cargo, so `cargo run --release -- serve` on a fresh clone needs no
//! other step. The nested build has its own target dir (no lock dead-lock)
//! and always uses the `wasm` profile, so debug and release kernels, tests
//! and clippy all share one plugin build.

use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGES: &[&str] = &[
    "plugin-cloudapi",
    "plugin-ticrypt",
    "plugin-vmmanager",
    "plugin-fosscloud",
    "plugin-appliance-admin",
    "hello",
    "hostile",
];

const WATCHED: &[&str] = &[
    "wit",
    "sdk",
    "plugins",
    "examples/hello",
    "tests/plugins",
    "Cargo.toml",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the workspace root")
        .to_path_buf();
    for path in WATCHED {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    let target_dir = plugin_target_dir(&root);
    build_plugins(&root, &target_dir);
    let out = target_dir.join("wasm32-wasip2").join("wasm");
    println!("cargo:rustc-env=TESSERA_PLUGIN_DIR={}", out.display());
}

fn plugin_target_dir(root: &Path) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let base = if base.is_relative() {
        root.join(base)
    } else {
        base
    };
    base.join("plugins")
}

fn build_plugins(root: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--profile", "wasm", "--target", "wasm32-wasip2"])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir);
    for package in PACKAGES {
        cmd.args(["-p", package]);
    }
    // What cargo sets for this build script describes the host build, not
    // the plugins' (flags, wrappers such as clippy-driver): clear it so the
    // plugin build is the same whichever command started it.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "TARGET",
        "HOST",
        "OPT_LEVEL",
        "PROFILE",
        "DEBUG",
        "OUT_DIR",
        "NUM_JOBS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build plugins: {e}"));
    if !status.success() {
        panic!(
            "building the plugins for wasm32-wasip2 failed ({status}); is the target installed? \
             run `rustup target add wasm32-wasip2`"
        );
    }
}
