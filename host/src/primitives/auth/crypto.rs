//! Stateless cryptography served to plugins: HMAC-SHA256, SHA-256, constant-time comparison, randomness.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// Equality whose time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Cryptographically secure random bytes (at most 64 KiB per call).
pub fn random_bytes(len: u32) -> Vec<u8> {
    let mut buf = vec![0u8; len.min(65_536) as usize];
    fill_random(&mut buf);
    buf
}

/// Fills `buf` from the operating system's CSPRNG.
pub(super) fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // The OS source failing is not recoverable for a security kernel.
        tracing::error!("operating system random source failed");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn appliance_hash_vector_from_clients_md() {
        // key = hex(sha256(token)) as ASCII; message = METHOD + path.
        let key = hex::encode(sha256(b"testtoken"));
        let mac = hmac_sha256(key.as_bytes(), b"GET/api/v1/admin/version");
        assert_eq!(
            hex::encode(mac),
            "39791be66bfbce4966b6c3feb7bfcb9118c285fa952b030a9af2fcf64f1a67ac"
        );
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert_eq!(random_bytes(32).len(), 32);
        assert_ne!(random_bytes(32), random_bytes(32));
    }
}
