//! Object ids: random (v4) UUIDs from the kernel's random source (the auth
//! primitive's `random-bytes`), and a check for the canonical form.

use crate::auth;

/// A fresh random UUID (version 4), lower-case and hyphenated.
pub fn new_uuid() -> String {
    let mut bytes = [0u8; 16];
    let random = auth::random_bytes(16);
    let n = random.len().min(16);
    bytes[..n].copy_from_slice(&random[..n]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// A name-based UUID (version 3 layout) from an MD5 digest the caller made,
/// so a thing named the same gets the same id on every start.
pub fn uuid_from_md5(digest: [u8; 16]) -> String {
    uuid::Builder::from_md5_bytes(digest)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Whether `text` is a UUID in its canonical lower-case hyphenated form.
pub fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && uuid::Uuid::try_parse(text).is_ok_and(|u| u.hyphenated().to_string() == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_ids_are_version_3_and_canonical() {
        let id = uuid_from_md5([0xab; 16]);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "3");
        assert!(is_uuid(&id));
    }

    #[test]
    fn only_canonical_uuids_pass() {
        assert!(is_uuid("0a1b2c3d-0000-4000-8000-00000000000a"));
        for bad in [
            "0A1B2C3D-0000-4000-8000-00000000000A",
            "0a1b2c3d00004000800000000000000a",
            "{0a1b2c3d-0000-4000-8000-00000000000a}",
            "not-a-uuid",
            "",
        ] {
            assert!(!is_uuid(bad), "{bad}");
        }
    }
}
