//! The `files` grant: a plugin's one private directory under the data dir,
//! its only filesystem, with no way out of it.

use crate::harness::{HOSTILE_WASM, Server, client, test_site};

fn site_with_files() -> String {
    format!(
        "[plugins.hostile]\nsource = \"{HOSTILE_WASM}\"\nmounts = [\"/hostile\"]\ngrants = [\"files\", \"storage\"]\n"
    )
}

fn write(server: &Server, path: &str, body: &str) -> reqwest::blocking::Response {
    client()
        .post(server.url(&format!("/hostile/fs-write?path={path}")))
        .body(body.to_string())
        .send()
        .unwrap()
}

fn read(server: &Server, path: &str) -> reqwest::blocking::Response {
    client()
        .get(server.url(&format!("/hostile/fs-read?path={path}")))
        .send()
        .unwrap()
}

#[test]
fn a_granted_plugin_keeps_files_in_its_own_dir() {
    let server = Server::with_site(&site_with_files());
    assert_eq!(write(&server, "/note.txt", "kept").status(), 200);
    assert_eq!(read(&server, "/note.txt").text().unwrap(), "kept");
    let on_disk = server
        .data_dir()
        .join("files")
        .join("hostile")
        .join("note.txt");
    assert_eq!(std::fs::read_to_string(on_disk).unwrap(), "kept");
}

#[test]
fn no_path_escapes_the_files_dir() {
    let server = Server::with_site(&site_with_files());
    std::fs::write(server.data_dir().join("secret.txt"), "outside").unwrap();
    for path in [
        "/../secret.txt",
        "/../../secret.txt",
        "../secret.txt",
        "/etc/passwd",
    ] {
        let resp = read(&server, path);
        assert_eq!(resp.status(), 403, "{path} must not be readable");
    }
    assert_eq!(write(&server, "/../escaped.txt", "x").status(), 403);
    assert!(!server.data_dir().join("files").join("escaped.txt").exists());
}

#[test]
fn without_the_grant_there_is_no_filesystem() {
    let server = Server::with_site(&test_site());
    assert_eq!(write(&server, "/note.txt", "x").status(), 403);
    assert_eq!(read(&server, "/etc/passwd").status(), 403);
}
