//! Sealing: AES-256-GCM under one random site key kept in `seal.key` (mode 0600) in the data dir.
//!
//! A plugin seals secrets it must read back later (a VNC password, a remote
//! credential) before storing them. The plugin's name is bound into every
//! ciphertext as associated data, so one plugin's sealed bytes do not unseal
//! for another, even with both granted `auth`. The key is made on first use;
//! its file is written under a temporary name and hard-linked into place, so
//! two kernels (or a kernel and the CLI) starting together agree on one key.
//!
//! Sealed layout: `version (1) || nonce (12) || ciphertext || tag (16)`.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::AuthError;
use super::crypto::fill_random;

/// File name of the site key inside the data dir.
pub const KEY_FILE: &str = "seal.key";
const KEY_LEN: usize = 32;
const VERSION: u8 = 1;
/// Prefix of the associated data, so a sealed value means nothing to any other use of the key.
const AAD_PREFIX: &[u8] = b"tessera-seal-v1\0";
/// Largest plaintext accepted: sealed secrets are small.
pub const MAX_PLAINTEXT: usize = 1 << 20;

/// The site key, loaded (or made) on first use.
pub struct Sealer {
    dir: PathBuf,
    key: OnceLock<LessSafeKey>,
}

impl Sealer {
    /// A sealer whose key lives in `dir/seal.key`.
    pub fn new(dir: &Path) -> Sealer {
        Sealer {
            dir: dir.to_owned(),
            key: OnceLock::new(),
        }
    }

    /// Encrypts `plaintext` for `context` (the plugin's name).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, AuthError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(AuthError::Invalid(format!(
                "plaintext: longer than {MAX_PLAINTEXT} bytes"
            )));
        }
        let key = self.key()?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(context)),
            &mut body,
        )
        .map_err(|_| AuthError::Backend("sealing failed".into()))?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// Decrypts what `seal` made for the same `context`; anything else
    /// (another plugin's value, a changed byte, another site's key) is
    /// `InvalidCredentials`.
    pub fn unseal(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, AuthError> {
        let (version, rest) = sealed.split_first().ok_or(AuthError::InvalidCredentials)?;
        if *version != VERSION || rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(AuthError::InvalidCredentials);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| AuthError::InvalidCredentials)?;
        let key = self.key()?;
        let mut body = body.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(aad(context)), &mut body)
            .map_err(|_| AuthError::InvalidCredentials)?;
        Ok(plain.to_vec())
    }

    fn key(&self) -> Result<&LessSafeKey, AuthError> {
        if let Some(key) = self.key.get() {
            return Ok(key);
        }
        let bytes = load_or_create(&self.dir).map_err(|e| {
            AuthError::Backend(format!(
                "site key {}: {e}",
                self.dir.join(KEY_FILE).display()
            ))
        })?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| AuthError::Backend("site key has the wrong length".into()))?;
        // Two threads racing here read the same file, so either key is the key.
        Ok(self.key.get_or_init(|| LessSafeKey::new(key)))
    }
}

fn aad(context: &str) -> Vec<u8> {
    let mut aad = AAD_PREFIX.to_vec();
    aad.extend_from_slice(context.as_bytes());
    aad
}

/// Reads `dir/seal.key`, making it first if it does not exist yet.
fn load_or_create(dir: &Path) -> std::io::Result<[u8; KEY_LEN]> {
    std::fs::create_dir_all(dir)?;
    let dir = Dir::open_ambient_dir(dir, ambient_authority())?;
    match read_key(&dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            create_key(&dir)?;
            read_key(&dir)
        }
        other => other,
    }
}

fn read_key(dir: &Dir) -> std::io::Result<[u8; KEY_LEN]> {
    let mut file = dir.open(KEY_FILE)?;
    let mut key = [0u8; KEY_LEN];
    file.read_exact(&mut key)?;
    let mut rest = Vec::new();
    if file.read_to_end(&mut rest)? != 0 {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "is not 32 bytes long",
        ));
    }
    Ok(key)
}

/// Writes a fresh key under a temporary name, then links it into place; if
/// another process won the race its key stays and ours is dropped.
fn create_key(dir: &Dir) -> std::io::Result<()> {
    let mut suffix = [0u8; 8];
    fill_random(&mut suffix);
    let tmp = format!("{KEY_FILE}.{}.tmp", hex::encode(suffix));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    let mut key = [0u8; KEY_LEN];
    fill_random(&mut key);
    let written = dir.open_with(&tmp, &options).and_then(|mut file| {
        file.write_all(&key)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| match dir.hard_link(&tmp, dir, KEY_FILE) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = dir.remove_file(&tmp);
    linked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> (tempfile::TempDir, Sealer) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let sealer = Sealer::new(dir.path());
        (dir, sealer)
    }

    #[test]
    fn sealed_text_unseals_for_the_same_plugin() -> Result<(), AuthError> {
        let (_dir, sealer) = sealer();
        let sealed = sealer.seal("fosscloud", b"PFiFibef19pa")?;
        assert!(!sealed.windows(12).any(|w| w == b"PFiFibef19pa"));
        assert_eq!(sealer.unseal("fosscloud", &sealed)?, b"PFiFibef19pa");
        Ok(())
    }

    #[test]
    fn another_plugin_cannot_unseal() -> Result<(), AuthError> {
        let (_dir, sealer) = sealer();
        let sealed = sealer.seal("fosscloud", b"secret")?;
        assert_eq!(
            sealer.unseal("cloudapi", &sealed),
            Err(AuthError::InvalidCredentials)
        );
        Ok(())
    }

    #[test]
    fn a_changed_byte_or_a_short_value_is_refused() -> Result<(), AuthError> {
        let (_dir, sealer) = sealer();
        let mut sealed = sealer.seal("p", b"secret")?;
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(
            sealer.unseal("p", &sealed),
            Err(AuthError::InvalidCredentials)
        );
        assert_eq!(sealer.unseal("p", &[]), Err(AuthError::InvalidCredentials));
        assert_eq!(
            sealer.unseal("p", &[VERSION, 1, 2, 3]),
            Err(AuthError::InvalidCredentials)
        );
        Ok(())
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() -> Result<(), AuthError> {
        let (_dir, sealer) = sealer();
        assert_ne!(sealer.seal("p", b"same")?, sealer.seal("p", b"same")?);
        Ok(())
    }

    #[test]
    fn the_key_file_is_private_and_survives_a_restart() -> Result<(), AuthError> {
        let (dir, sealer) = sealer();
        let sealed = sealer.seal("p", b"kept")?;
        let path = dir.path().join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(std::fs::read(&path).expect("key file").len(), KEY_LEN);
        let again = Sealer::new(dir.path());
        assert_eq!(again.unseal("p", &sealed)?, b"kept");
        let leftovers = std::fs::read_dir(dir.path()).expect("dir").count();
        assert_eq!(leftovers, 1, "only seal.key remains");
        Ok(())
    }

    #[test]
    fn another_sites_key_cannot_unseal() -> Result<(), AuthError> {
        let (_a, one) = sealer();
        let (_b, other) = sealer();
        let sealed = one.seal("p", b"secret")?;
        assert_eq!(
            other.unseal("p", &sealed),
            Err(AuthError::InvalidCredentials)
        );
        Ok(())
    }

    #[test]
    fn racing_sealers_agree_on_one_key() -> Result<(), AuthError> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let sealed: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Sealer::new(dir.path()).seal("p", b"x")))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic"))
                .collect()
        });
        let reader = Sealer::new(dir.path());
        for value in sealed {
            assert_eq!(reader.unseal("p", &value?)?, b"x");
        }
        Ok(())
    }

    #[test]
    fn a_truncated_key_file_is_an_error_not_a_new_key() {
        let (dir, sealer) = sealer();
        std::fs::write(dir.path().join(KEY_FILE), [0u8; 5]).expect("write");
        assert!(matches!(sealer.seal("p", b"x"), Err(AuthError::Backend(_))));
    }
}
