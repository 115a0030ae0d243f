//! The command line: plugin listing, the shipped example site, usage errors.

use crate::harness::run_cli;

#[test]
fn plugins_list_shows_mounts_grants_size_and_sha256() {
    let (code, out, err) = run_cli(&["plugins", "list"]);
    assert_eq!(code, 0, "{err}");
    let cloudapi = out.lines().find(|l| l.starts_with("cloudapi")).expect(&out);
    let fields: Vec<&str> = cloudapi.split_whitespace().collect();
    assert_eq!(fields[1], "/");
    assert_eq!(fields[2], "storage,auth,auth-admin,jobs,hypervisor");
    assert!(fields[3].parse::<u64>().unwrap() > 1000, "size in bytes");
    assert_eq!(fields[4].len(), 64, "sha256 in hex");
    assert!(
        out.lines()
            .any(|l| l.starts_with("vmmanager") && l.contains("/vm/v3,/auth/v4,/api/auth/v4"))
    );
}

#[test]
fn the_shipped_example_sites_are_valid() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for site in ["examples/site.toml", "examples/hello/site.toml"] {
        let path = format!("{root}/{site}");
        let (code, _, err) = run_cli(&["config", "check", "--config", &path]);
        assert_eq!(code, 0, "{site}: {err}");
    }
}

#[test]
fn usage_errors_exit_with_2() {
    let (code, _, err) = run_cli(&["serve", "--listen", "not-an-address"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = run_cli(&["frobnicate"]);
    assert_eq!(code, 2);
}
