//! The site's identity store (needs the `auth` grant): accounts, realms, SSH
//! keys, tokens, signature checks, and HMAC / SHA-256 / constant-time compare.
//! Each family decides how credentials arrive; the kernel keeps the secrets.

pub use crate::bindings::tessera::kernel::auth::*;
