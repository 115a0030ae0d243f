//! The `[auth]` section of the site config: brute-force thresholds and the password hashing cost.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::AuthError;
use super::clock::{Clock, OffsetFileClock, SystemClock};

/// Tunables of the auth primitive; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Failed attempts within `failure_window_secs` after which an account or a peer
    /// is refused for `throttle_pause_secs`.
    pub max_failures: u32,
    pub failure_window_secs: u64,
    pub throttle_pause_secs: u64,
    /// Argon2id memory cost in KiB, iterations and lanes for new password hashes.
    /// The defaults are OWASP's (m = 19 MiB, t = 2, p = 1); stored hashes keep the
    /// parameters they were made with.
    pub argon2_m_kib: u32,
    pub argon2_t: u32,
    pub argon2_p: u32,
    /// For end-to-end tests only: a file holding a number of milliseconds the auth
    /// clock runs ahead of the system clock, read at every look at the time, so a
    /// test can age sessions and keys without sleeping. Never set on a real site.
    pub clock_offset_file: Option<PathBuf>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            max_failures: 5,
            failure_window_secs: 60,
            throttle_pause_secs: 2,
            argon2_m_kib: 19_456,
            argon2_t: 2,
            argon2_p: 1,
            clock_offset_file: None,
        }
    }
}

impl AuthSettings {
    /// The defaults with the cheapest Argon2id parameters, for tests that hash many passwords.
    pub fn fast_hashing_for_tests() -> Self {
        AuthSettings {
            argon2_m_kib: 64,
            argon2_t: 1,
            argon2_p: 1,
            ..AuthSettings::default()
        }
    }

    /// The clock the auth primitive reads: the system's, unless a test moved it.
    pub fn clock(&self) -> Arc<dyn Clock> {
        match &self.clock_offset_file {
            Some(path) => Arc::new(OffsetFileClock::new(path.clone())),
            None => Arc::new(SystemClock),
        }
    }

    pub(super) fn check(&self) -> Result<(), AuthError> {
        if self.max_failures == 0 {
            return Err(AuthError::Invalid(
                "auth.max_failures must be at least 1".into(),
            ));
        }
        if self.failure_window_secs == 0 {
            return Err(AuthError::Invalid(
                "auth.failure_window_secs must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_section_takes_the_defaults() -> Result<(), toml::de::Error> {
        let settings: AuthSettings = toml::from_str("")?;
        assert_eq!(settings, AuthSettings::default());
        Ok(())
    }

    #[test]
    fn a_clock_offset_file_moves_the_clock() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("offset");
        let settings: AuthSettings = toml::from_str(&format!(
            "clock_offset_file = {:?}",
            path.display().to_string()
        ))?;
        let clock = settings.clock();
        let before = SystemClock.now_ms();
        std::fs::write(&path, "3600000")?;
        let moved = clock.now_ms();
        assert!(
            moved >= before + 3_600_000 && moved < before + 3_660_000,
            "{moved}"
        );
        Ok(())
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<AuthSettings>("max_failure = 3").is_err());
    }
}
