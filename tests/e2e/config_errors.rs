//! A bad site config is refused at start, naming the file, the key and the
//! problem; nothing is served.

use crate::harness::{HOSTILE_WASM, TESSERA, run_cli};

/// Run `serve` with a site file; it must exit 1 without listening. Returns stderr.
fn serve_refuses(dir: &std::path::Path, site: &std::path::Path) -> String {
    let out = std::process::Command::new(TESSERA)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(site)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn refuse(site: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(&path, site).unwrap();
    let path = path.to_str().unwrap();
    let (code, _, check_err) = run_cli(&["config", "check", "--config", path]);
    assert_eq!(code, 1, "config check refuses: {check_err}");
    assert!(check_err.contains(path), "names the file: {check_err}");
    // serve refuses the same way, before listening.
    serve_refuses(dir.path(), std::path::Path::new(path));
    check_err
}

#[test]
fn an_unknown_key_is_refused() {
    let e = refuse("[plugins.hello]\nsource = 'hello'\nmounts = ['/h']\nmount = '/x'\n");
    assert!(
        e.contains("plugins.hello") && e.contains("unknown field `mount`"),
        "{e}"
    );
}

#[test]
fn a_duplicate_mount_is_refused() {
    let e = refuse(
        "[plugins.a]\nsource = 'hello'\nmounts = ['/x']\n[plugins.b]\nsource = 'hello'\nmounts = ['/x']\n",
    );
    assert!(
        e.contains("plugins.b.mounts") && e.contains("already used by plugin a"),
        "{e}"
    );
}

#[test]
fn a_missing_wasm_file_is_refused() {
    let e = refuse("[plugins.a]\nsource = '/nowhere/missing.wasm'\nmounts = ['/x']\n");
    assert!(
        e.contains("plugins.a.source") && e.contains("does not exist"),
        "{e}"
    );
}

#[test]
fn a_syntax_error_is_refused() {
    let e = refuse("[plugins.a\nsource = 'hello'\n");
    assert!(e.contains("(syntax)"), "{e}");
}

#[test]
fn a_bad_type_is_refused_with_its_key() {
    let e = refuse("listen = 8080\n");
    assert!(e.contains("listen"), "{e}");
    let e = refuse("[limits]\nmemory_mib = 'lots'\n");
    assert!(e.contains("limits.memory_mib"), "{e}");
}

#[test]
fn an_unknown_grant_is_refused() {
    let e = refuse("[plugins.a]\nsource = 'hello'\nmounts = ['/x']\ngrants = ['network']\n");
    assert!(
        e.contains("plugins.a.grants") && e.contains("unknown grant"),
        "{e}"
    );
}

#[test]
fn an_import_the_mount_does_not_grant_is_refused_at_load() {
    // hello imports storage; this mount grants nothing.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(
        &path,
        "[plugins.hello]\nsource = 'hello'\nmounts = ['/h']\n",
    )
    .unwrap();
    let err = serve_refuses(dir.path(), &path);
    assert!(
        err.contains("plugin hello")
            && err.contains("tessera:kernel/storage")
            && err.contains("does not grant \"storage\""),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_component_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("junk.wasm");
    std::fs::write(&wasm, b"not wasm at all").unwrap();
    let site = dir.path().join("site.toml");
    std::fs::write(
        &site,
        format!(
            "[plugins.junk]\nsource = '{}'\nmounts = ['/j']\n",
            wasm.display()
        ),
    )
    .unwrap();
    let err = serve_refuses(dir.path(), &site);
    assert!(
        err.contains("plugin junk") && err.contains("not a valid component"),
        "{err}"
    );
}

#[test]
fn a_valid_site_passes_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(
        &path,
        format!("[plugins.h]\nsource = '{HOSTILE_WASM}'\nmounts = ['/h']\ngrants = ['storage']\n"),
    )
    .unwrap();
    let (code, out, err) = run_cli(&["config", "check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok (1 plugins enabled)"), "{out}");
}
