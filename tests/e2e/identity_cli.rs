//! The operator's identity commands, run as the real binary: users, keys,
//! realms, exit codes and JSON output.

use crate::harness::{cli_ok, run_cli, run_cli_with_stdin};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/auth");

#[test]
fn users_are_added_listed_shown_and_changed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_ok(
        d,
        &[
            "user",
            "add",
            "dave",
            "--email",
            "dave@example.com",
            "--password",
            "pw-1",
            "--admin",
        ],
        "",
    );
    cli_ok(
        d,
        &[
            "user",
            "add",
            "sub1",
            "--email",
            "sub1@example.com",
            "--parent",
            "dave",
        ],
        "",
    );
    let list: serde_json::Value =
        serde_json::from_str(&cli_ok(d, &["user", "list", "--json"], "")).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "top-level accounts only");
    assert_eq!(
        (list[0]["login"].as_str(), list[0]["admin"].as_bool()),
        (Some("dave"), Some(true))
    );
    let subs: serde_json::Value = serde_json::from_str(&cli_ok(
        d,
        &["user", "list", "--parent", "dave", "--json"],
        "",
    ))
    .unwrap();
    assert_eq!(subs[0]["login"], "sub1");
    let shown: serde_json::Value =
        serde_json::from_str(&cli_ok(d, &["user", "show", "dave", "--json"], "")).unwrap();
    assert_eq!(shown["email"], "dave@example.com");
    assert!(!shown.to_string().contains("pw-1") && shown.get("password").is_none());
    cli_ok(d, &["user", "passwd", "dave", "--password-stdin"], "pw-2\n");
    let plain = cli_ok(d, &["user", "show", "dave"], "");
    assert!(plain.contains("login: dave"), "{plain}");
}

#[test]
fn key_add_prints_both_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_ok(
        d,
        &["user", "add", "erin", "--email", "erin@example.com"],
        "",
    );
    let key = format!("{FIXTURES}/id_ed25519.pub");
    let out = cli_ok(
        d,
        &["key", "add", "erin", "--name", "laptop", "--file", &key],
        "",
    );
    // As printed by `ssh-keygen -l -E md5|sha256 -f id_ed25519.pub`.
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "39:a3:47:81:50:be:6e:ba:21:93:53:5a:c6:10:2b:a9",
            "SHA256:9a+s0RyZzA+afU9Xi6EaJ0QkjxNNtlVHEw0ce0xC45E"
        ]
    );
    let listed = cli_ok(d, &["key", "list", "erin"], "");
    assert!(listed.starts_with("laptop"), "{listed}");
    cli_ok(d, &["key", "rm", "erin", "laptop"], "");
    assert_eq!(cli_ok(d, &["key", "list", "erin"], ""), "");
}

#[test]
fn realms_are_added_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    cli_ok(
        d,
        &[
            "realm",
            "add",
            "school",
            "--description",
            "FC4School",
            "--default",
        ],
        "",
    );
    let realms: serde_json::Value =
        serde_json::from_str(&cli_ok(d, &["realm", "list", "--json"], "")).unwrap();
    let names: Vec<_> = realms
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"default") && names.contains(&"school"),
        "{realms}"
    );
    let school = realms
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "school")
        .unwrap();
    assert_eq!(school["default"], true);
}

#[test]
fn failures_exit_1_with_one_line_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    cli_ok(
        dir.path(),
        &["user", "add", "fay", "--email", "fay@example.com"],
        "",
    );
    let (code, _, err) = run_cli(&[
        "user",
        "add",
        "fay",
        "--email",
        "other@example.com",
        "--data-dir",
        d,
    ]);
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("already taken"), "{err}");
    let (code, _, err) = run_cli(&[
        "user",
        "add",
        "9bad",
        "--email",
        "x@example.com",
        "--data-dir",
        d,
    ]);
    assert_eq!(code, 1, "{err}");
    let (code, _, _) = run_cli(&["user", "show", "nobody", "--data-dir", d]);
    assert_eq!(code, 1);
    let (code, _, _) = run_cli(&["user", "add", "gus", "--data-dir", d]);
    assert_eq!(code, 2, "missing --email is a usage error");
    let (code, _, _) = run_cli(&[
        "token",
        "create",
        "fay",
        "--scope",
        "s",
        "--ttl",
        "soon",
        "--data-dir",
        d,
    ]);
    assert_eq!(code, 2, "an unparsable duration is a usage error");
    let (code, _, err) = run_cli_with_stdin(
        &[
            "user",
            "add",
            "hal",
            "--email",
            "hal@example.com",
            "--password-stdin",
            "--data-dir",
            d,
        ],
        "",
    );
    assert_eq!(code, 1, "empty stdin: {err}");
}

#[test]
fn a_key_that_is_not_a_public_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    cli_ok(
        dir.path(),
        &["user", "add", "ian", "--email", "ian@example.com"],
        "",
    );
    let private = format!("{FIXTURES}/id_ed25519");
    let (code, _, err) = run_cli(&[
        "key",
        "add",
        "ian",
        "--name",
        "oops",
        "--file",
        &private,
        "--data-dir",
        d,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        !err.contains("PRIVATE KEY"),
        "the private key text is not echoed: {err}"
    );
    let short = format!("{FIXTURES}/id_rsa1024.pub");
    let (code, _, _) = run_cli(&[
        "key",
        "add",
        "ian",
        "--name",
        "short",
        "--file",
        &short,
        "--data-dir",
        d,
    ]);
    assert_eq!(code, 1, "RSA keys under 2048 bits are refused");
}
