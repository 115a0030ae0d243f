//! Token values in the three formats clients expect, the hash that is all the store keeps, and the rules that make a stored token usable.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::TokenFormat;
use super::audit::Outcome;
use super::crypto::{fill_random, sha256};
use super::store::StoredToken;

/// Longest token value `check_token` looks up, in bytes; every format is far shorter.
pub(super) const MAX_TOKEN_BYTES: usize = 512;

const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Random bytes at or above this are redrawn, so each of the 62 characters is equally likely.
const ALNUM_LIMIT: u8 = 62 * 4;

/// A fresh token value. `id` is the token's public number, which the `id-uuid`
/// format carries in front (`24-cee181d2-ccaa-4b64-a229-234aa7a25db6`).
pub(super) fn generate(format: TokenFormat, id: u64) -> String {
    match format {
        TokenFormat::Opaque => opaque(),
        TokenFormat::IdUuid => id_uuid(id),
        TokenFormat::Alnum32 => alnum32(),
    }
}

/// The digest the store keeps and looks tokens up by.
pub(super) fn hash(value: &str) -> Vec<u8> {
    sha256(value.as_bytes())
}

/// Whether a token issued for `scope` answers a check for `wanted`; a `wanted`
/// ending in `*` matches every scope starting with what precedes it.
pub(super) fn scope_matches(wanted: &str, scope: &str) -> bool {
    match wanted.strip_suffix('*') {
        Some(prefix) => scope.starts_with(prefix),
        None => scope == wanted,
    }
}

/// Why a stored token cannot be used at `now`, if it cannot.
pub(super) fn refusal(token: &StoredToken, now: u64) -> Option<Outcome> {
    if token.revoked_at.is_some() {
        return Some(Outcome::Revoked);
    }
    let passed = |at: Option<u64>| at.is_some_and(|at| at <= now);
    (passed(token.expires_at) || passed(token.idle_expires_at)).then_some(Outcome::Expired)
}

/// The earlier of two optional instants.
pub(super) fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether a successful use must be written back: always when there is an idle
/// expiry to slide, otherwise only to keep `last_used` within a minute of the truth,
/// so that checking a long-lived token is not a write per request.
pub(super) fn needs_touch(token: &StoredToken, now: u64) -> bool {
    const LAST_USED_RESOLUTION_MS: u64 = 60_000;
    token.idle_ttl_secs.is_some()
        || token
            .last_used
            .is_none_or(|last| now.saturating_sub(last) >= LAST_USED_RESOLUTION_MS)
}

/// 256 random bits, base64url without padding (43 characters).
fn opaque() -> String {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// VMmanager's `<id>-<uuid v4>`; the uuid carries 122 random bits.
fn id_uuid(id: u64) -> String {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    format!("{id}-{}", uuid.hyphenated())
}

/// 32 characters of `[A-Za-z0-9]` by rejection sampling: 32 × log2(62) ≈ 190.5 bits.
fn alnum32() -> String {
    let mut value = String::with_capacity(32);
    let mut pool = [0u8; 64];
    while value.len() < 32 {
        fill_random(&mut pool);
        for &byte in pool.iter().filter(|&&byte| byte < ALNUM_LIMIT) {
            if value.len() == 32 {
                break;
            }
            value.push(char::from(ALNUM[usize::from(byte % 62)]));
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn many(format: TokenFormat) -> Vec<String> {
        (0..200).map(|id| generate(format, id)).collect()
    }

    fn all_distinct(values: &[String]) -> bool {
        values.iter().collect::<HashSet<_>>().len() == values.len()
    }

    #[test]
    fn opaque_tokens_are_43_base64url_characters_without_padding() {
        let values = many(TokenFormat::Opaque);
        for value in &values {
            assert_eq!(value.len(), 43);
            assert!(
                value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(URL_SAFE_NO_PAD.decode(value).map(|b| b.len()), Ok(32));
        }
        assert!(all_distinct(&values));
    }

    #[test]
    fn id_uuid_tokens_are_the_id_and_a_version_4_uuid() {
        let values = many(TokenFormat::IdUuid);
        for (id, value) in values.iter().enumerate() {
            let (number, rest) = value.split_once('-').expect("a dash follows the id");
            assert_eq!(number, id.to_string());
            let uuid = uuid::Uuid::parse_str(rest).expect("the rest is a uuid");
            assert_eq!(uuid.get_version_num(), 4);
            assert_eq!(rest, uuid.hyphenated().to_string());
        }
        assert!(all_distinct(&values));
    }

    #[test]
    fn alnum32_tokens_are_32_alphanumeric_characters() {
        let values = many(TokenFormat::Alnum32);
        for value in &values {
            assert_eq!(value.len(), 32);
            assert!(value.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        assert!(all_distinct(&values));
    }

    #[test]
    fn alnum32_uses_the_whole_alphabet() {
        let seen: HashSet<u8> = (0..100).flat_map(|_| alnum32().into_bytes()).collect();
        assert_eq!(seen.len(), 62);
    }

    #[test]
    fn the_hash_is_sha256_of_the_value() {
        assert_eq!(
            hex::encode(hash("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_trailing_star_matches_a_scope_prefix() {
        assert!(scope_matches("ticrypt:drive", "ticrypt:drive"));
        assert!(!scope_matches("ticrypt:drive", "ticrypt:drives"));
        assert!(scope_matches("ticrypt:*", "ticrypt:drive"));
        assert!(!scope_matches("ticrypt:*", "vmmanager:session"));
        assert!(scope_matches("*", "vmmanager:session"));
    }
}
