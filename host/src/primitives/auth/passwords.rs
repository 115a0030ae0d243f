//! Password hashing: Argon2id PHC strings, and a dummy hash so an unknown login costs as much as a wrong password.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::AuthError;
use super::config::AuthSettings;
use super::crypto::fill_random;

/// Longest password accepted, in bytes: hashing cost must not depend on what a client sends.
pub(super) const MAX_PASSWORD_BYTES: usize = 1024;

/// Makes and checks Argon2id hashes with the site's parameters.
pub(super) struct PasswordHasher {
    argon2: Argon2<'static>,
    /// A hash of a random password with the current parameters, checked in place of a
    /// missing one so that a failed check costs the same whether or not the login exists.
    /// Made on a background thread at start so a kernel start does not pay for it.
    dummy: Arc<OnceLock<String>>,
}

impl PasswordHasher {
    pub(super) fn new(settings: &AuthSettings) -> Result<Self, AuthError> {
        let params = Params::new(
            settings.argon2_m_kib,
            settings.argon2_t,
            settings.argon2_p,
            None,
        )
        .map_err(|error| AuthError::Invalid(format!("auth argon2 parameters: {error}")))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = Arc::new(OnceLock::new());
        let (cell, hasher) = (Arc::clone(&dummy), argon2.clone());
        std::thread::spawn(move || {
            cell.get_or_init(|| dummy_hash(&hasher));
        });
        Ok(PasswordHasher { argon2, dummy })
    }

    /// The dummy hash; waits for the start-up thread if it is still hashing.
    fn dummy(&self) -> &str {
        self.dummy.get_or_init(|| dummy_hash(&self.argon2))
    }

    /// A new PHC string (`$argon2id$v=19$m=…`) for `password`, with a fresh random salt.
    pub(super) fn hash(&self, password: &str) -> Result<String, AuthError> {
        hash_with(&self.argon2, password.as_bytes())
    }

    /// Whether `password` matches `stored`. With no stored hash (unknown login, account
    /// without a password) or an unreadable one, the dummy hash is checked instead and
    /// the answer is `false`. The final comparison of the derived keys is constant time.
    pub(super) fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let real = stored.and_then(|stored| PasswordHash::new(stored).ok());
        let is_real = real.is_some();
        let hash = real.or_else(|| PasswordHash::new(self.dummy()).ok());
        let matches = hash.is_some_and(|hash| {
            self.argon2
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        });
        is_real && matches
    }
}

/// A hash of 32 random bytes; parameters were validated in `new`, so hashing
/// cannot fail there (an empty string would only make the dummy check fail fast).
fn dummy_hash(argon2: &Argon2<'_>) -> String {
    let mut unguessable = [0u8; 32];
    fill_random(&mut unguessable);
    hash_with(argon2, &unguessable).unwrap_or_default()
}

fn hash_with(argon2: &Argon2<'_>, password: &[u8]) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(hashing_failed)?;
    let hash = argon2
        .hash_password(password, &salt)
        .map_err(hashing_failed)?;
    Ok(hash.to_string())
}

fn hashing_failed(error: argon2::password_hash::Error) -> AuthError {
    AuthError::Backend(format!("password hashing failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(&AuthSettings::fast_hashing_for_tests())
            .expect("test parameters are valid")
    }

    #[test]
    fn hashes_are_argon2id_with_the_configured_parameters() -> Result<(), AuthError> {
        let hash = hasher().hash("correct horse")?;
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        Ok(())
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() -> Result<(), AuthError> {
        let hasher = hasher();
        assert_ne!(hasher.hash("pw")?, hasher.hash("pw")?);
        Ok(())
    }

    #[test]
    fn verify_accepts_the_password_and_refuses_others() -> Result<(), AuthError> {
        let hasher = hasher();
        let hash = hasher.hash("correct horse")?;
        assert!(hasher.verify("correct horse", Some(&hash)));
        assert!(!hasher.verify("correct horsE", Some(&hash)));
        assert!(!hasher.verify("", Some(&hash)));
        Ok(())
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() -> Result<(), AuthError> {
        // Same algorithm and parameters: checking it takes as long as checking a real hash.
        let hasher = hasher();
        let params = |hash: &str| hash.rsplitn(3, '$').nth(2).map(str::to_owned);
        assert_eq!(params(hasher.dummy()), params(&hasher.hash("pw")?));
        Ok(())
    }

    #[test]
    fn the_default_parameters_are_owasps() -> Result<(), AuthError> {
        let hasher = PasswordHasher::new(&AuthSettings::default())?;
        let hash = hasher.hash("pw")?;
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.verify("pw", Some(&hash)));
        Ok(())
    }

    #[test]
    fn missing_or_garbled_hashes_never_verify() {
        let hasher = hasher();
        assert!(!hasher.verify("anything", None));
        assert!(!hasher.verify("anything", Some("not a phc string")));
    }

    #[test]
    fn stored_hashes_keep_their_own_parameters() -> Result<(), AuthError> {
        let old = PasswordHasher::new(&AuthSettings {
            argon2_m_kib: 128,
            ..AuthSettings::fast_hashing_for_tests()
        })?;
        let hash = old.hash("pw")?;
        assert!(hasher().verify("pw", Some(&hash)));
        Ok(())
    }

    #[test]
    fn impossible_parameters_are_refused() {
        let settings = AuthSettings {
            argon2_m_kib: 1,
            ..AuthSettings::default()
        };
        assert!(matches!(
            PasswordHasher::new(&settings),
            Err(AuthError::Invalid(_))
        ));
    }
}
