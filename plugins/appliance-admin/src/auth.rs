//! The family's auth scheme: `?token=` (the API token itself) or `?hash=`
//! (HMAC-SHA256 with key = hex SHA-256 of the token, over METHOD + mount +
//! endpoint). The kernel keeps the token, hashed; every failure is a 403.

use tessera_sdk::Request;
use tessera_sdk::site_admin as admin;

use crate::errors::ApiError;

/// The message a `?hash=` signs: `GET/api/v1/admin/version`.
pub fn signed_message(req: &Request) -> String {
    let endpoint = req.subpath.trim_end_matches('/');
    format!(
        "{}{}{}",
        req.method,
        req.mount.trim_end_matches('/'),
        endpoint
    )
}

/// A valid `?token=` or `?hash=`, else 403.
pub fn require(req: &Request) -> Result<(), ApiError> {
    if !admin::api_token_exists() {
        // First run: nothing but `POST /setup` is open, and that is decided there.
        return Err(ApiError::forbidden());
    }
    if let Some(hash) = req.query_param("hash") {
        if admin::api_token_check_hmac(&signed_message(req), &hash.to_ascii_lowercase()) {
            return Ok(());
        }
        return Err(ApiError::forbidden());
    }
    match req.query_param("token") {
        Some(token) if admin::api_token_check(&token) => Ok(()),
        _ => Err(ApiError::forbidden()),
    }
}

/// The first-run token: `words` random words joined by `-`.
pub fn first_run_token(words: u32) -> String {
    const WORDS: &[&str] = &[
        "amber", "anchor", "apple", "arrow", "aspen", "badge", "basil", "beacon", "birch", "bison",
        "cable", "cedar", "chalk", "cider", "cobalt", "comet", "coral", "crane", "delta", "dune",
        "ember", "falcon", "fern", "fjord", "flint", "galaxy", "garnet", "glacier", "harbor",
        "hazel", "heron", "indigo", "iris", "jade", "juniper", "kayak", "kernel", "lagoon",
        "lantern", "lemon", "lotus", "maple", "marble", "meadow", "meteor", "nebula", "nickel",
        "oasis", "ocean", "olive", "onyx", "orbit", "pebble", "pepper", "pine", "plasma", "prism",
        "quartz", "quill", "raven", "reef", "ridge", "river", "saffron", "sage", "sierra",
        "silver", "solar", "spruce", "summit", "tango", "thistle", "tundra", "umber", "valley",
        "velvet", "violet", "walnut", "willow", "zephyr",
    ];
    let bytes = tessera_sdk::auth::random_bytes(words.clamp(1, 16) * 2);
    bytes
        .chunks(2)
        .map(|pair| WORDS[(u16::from_le_bytes([pair[0], pair[1]]) as usize) % WORDS.len()])
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_message_is_method_mount_and_endpoint() {
        let req = Request {
            method: "GET".into(),
            path: "/api/v1/admin/version".into(),
            mount: "/api/v1/admin".into(),
            subpath: "/version/".into(),
            query: "hash=x".into(),
            headers: vec![],
            body: vec![],
            peer: String::new(),
            request_id: String::new(),
        };
        assert_eq!(signed_message(&req), "GET/api/v1/admin/version");
    }
}
