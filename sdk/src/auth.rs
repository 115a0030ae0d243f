//! The site's identity store (needs the `auth` grant): accounts, realms, SSH
//! keys, tokens, signature checks, HMAC / SHA-256 / constant-time compare, and
//! sealing of secrets the plugin stores.
//! Each family decides how credentials arrive; the kernel keeps the secrets.

pub use crate::bindings::tessera::kernel::auth::*;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;

/// Seals a text secret for this plugin's storage: base64 (no padding) of
/// [`seal`]'s bytes, so it fits in a JSON document.
pub fn seal_text(secret: &str) -> String {
    STANDARD_NO_PAD.encode(seal(secret.as_bytes()))
}

/// Opens what [`seal_text`] made; `InvalidCredentials` for anything else.
pub fn unseal_text(sealed: &str) -> Result<String, AuthError> {
    let bytes = STANDARD_NO_PAD
        .decode(sealed)
        .map_err(|_| AuthError::InvalidCredentials)?;
    String::from_utf8(unseal(&bytes)?).map_err(|_| AuthError::InvalidCredentials)
}
