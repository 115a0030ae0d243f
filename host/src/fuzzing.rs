//! Fuzzing entry points for what the kernel reads from clients and operators: the
//! site config, and an HTTP request as it becomes the WIT request a plugin gets
//! (mount routing, then the conversion). Arbitrary bytes never panic. The `cargo
//! fuzz` targets in `fuzz/` (nightly) and this module's property tests (stable) call
//! these same functions and replay the seed corpus in `fuzz/corpus/<target>/`.

use std::net::SocketAddr;

use crate::config::SiteConfig;
use crate::router::Router;

/// A site file: read and validated, or refused with an error that names its key.
pub fn site_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(site) = SiteConfig::parse(text, "fuzz.toml")
        && let Err(e) = site.validate()
    {
        assert!(!e.key.is_empty(), "an error names its key: {e}");
    }
}

/// The default site's mounts (and one nested mount), as the kernel routes them.
const MOUNTS: &[&str] = &[
    "/",
    "/api",
    "/vm/v3",
    "/auth/v4",
    "/api/auth/v4",
    "/vm-manager/api",
    "/api/v1/admin",
];

/// A raw HTTP/1.1 request head (and body): parsed as a server would, routed to a
/// mount, and converted; what the plugin gets says what the client sent.
pub fn wit_request(data: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = head.parse(data) else {
        return;
    };
    let mut builder = hyper::Request::builder()
        .method(head.method.unwrap_or("GET"))
        .uri(head.path.unwrap_or("/"));
    for header in head.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let router = Router::new(MOUNTS.iter().map(|m| (m.to_string(), ())));
    let path = parts.uri.path();
    // A path no mount takes (`*`) is the kernel's 404 before any conversion.
    let Some(route) = router.route(path) else {
        return;
    };
    assert!(route.subpath.starts_with('/'), "{path}");
    assert!(
        path.starts_with(route.mount.trim_end_matches('/')),
        "{path}"
    );
    let body = data[len..].to_vec();
    let peer = SocketAddr::from(([127, 0, 0, 1], 4000));
    let converted = crate::server::wit_request(
        &parts,
        route.mount.to_string(),
        route.subpath.to_string(),
        body.clone(),
        peer,
        "fuzz-1",
    );
    assert_eq!(converted.method, parts.method.as_str());
    assert_eq!(converted.path, path);
    assert_eq!(converted.query, parts.uri.query().unwrap_or(""));
    assert_eq!(converted.body, body);
    assert_eq!(converted.headers.len(), parts.headers.len());
    for ((name, value), (hname, hvalue)) in converted.headers.iter().zip(parts.headers.iter()) {
        assert_eq!(name, hname.as_str());
        if let Ok(text) = std::str::from_utf8(hvalue.as_bytes()) {
            assert_eq!(value, text);
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use tessera_sdk::corpus;

    use super::*;

    /// A corpus entry, cut and spliced at random (what a fuzzer's mutator does first).
    fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
        let seeds = corpus::seed_bytes(target);
        (
            any::<usize>(),
            any::<usize>(),
            0..32usize,
            prop::collection::vec(any::<u8>(), 0..16),
        )
            .prop_map(move |(i, at, cut, insert)| corpus::splice(&seeds, i, at, cut, &insert))
    }

    #[test]
    fn the_seed_corpus_replays() {
        for seed in corpus::seeds("site_config") {
            site_config(&seed.data);
            // The hand-made seeds (`*.toml`, not libFuzzer's finds) are valid sites.
            if seed.path.extension().is_some_and(|e| e == "toml") {
                let text = String::from_utf8(seed.data).unwrap();
                let site = SiteConfig::parse(&text, "seed.toml").unwrap();
                site.validate().unwrap();
            }
        }
        for data in corpus::seed_bytes("wit_request") {
            wit_request(&data);
        }
    }

    proptest! {
        #[test]
        fn mutated_site_files_are_read_or_refused(data in mutated("site_config")) {
            site_config(&data);
        }

        #[test]
        fn mutated_requests_convert_faithfully(data in mutated("wit_request")) {
            wit_request(&data);
        }

        #[test]
        fn any_request_line_converts(
            method in "[A-Z]{1,10}",
            path in "/[!-~]{0,60}",
            name in "[a-zA-Z0-9-]{1,20}",
            value in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut data = format!("{method} {path} HTTP/1.1\r\n{name}: ").into_bytes();
            data.extend(value.iter().filter(|b| !matches!(b, b'\r' | b'\n')));
            data.extend(b"\r\n\r\nbody");
            wit_request(&data);
        }
    }
}
