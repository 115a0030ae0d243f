//! The site's package key and the sealed-file format of update packages and
//! debug bundles: `TESSERA-ENC1` ‖ 12-byte nonce ‖ AES-256-GCM ciphertext and tag.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};

const MAGIC: &[u8] = b"TESSERA-ENC1";
const NONCE_BYTES: usize = 12;

/// Why a key could not be had or a sealed file not opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("key file {0}: {1}")]
    Key(String, String),
    #[error("not a sealed file (bad header)")]
    NotSealed,
    #[error("cannot decrypt: wrong key or damaged file")]
    Decrypt,
}

/// A 256-bit key read from a file of 64 hex digits.
#[derive(Clone)]
pub struct PackageKey([u8; 32]);

impl std::fmt::Debug for PackageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PackageKey(..)")
    }
}

impl PackageKey {
    pub fn read(path: &Path) -> Result<PackageKey, SealError> {
        let fail = |p: String| SealError::Key(path.display().to_string(), p);
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let bytes = hex::decode(text.trim()).map_err(|_| fail("is not hex".into()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| fail("must hold 64 hex digits (32 bytes)".into()))?;
        Ok(PackageKey(key))
    }

    /// Read the key, making a fresh random one (mode 0600) if the file is absent.
    pub fn read_or_create(path: &Path) -> Result<PackageKey, SealError> {
        if !path.exists() {
            let fail =
                |e: std::io::Error| SealError::Key(path.display().to_string(), e.to_string());
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| fail(std::io::Error::other(e.to_string())))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(fail)?;
            }
            write_private(path, format!("{}\n", hex::encode(key)).as_bytes()).map_err(fail)?;
        }
        Self::read(path)
    }

    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        // getrandom only fails without an OS entropy source, where nothing works.
        getrandom::fill(&mut nonce).expect("the OS random source");
        let cipher = Aes256Gcm::new((&self.0).into());
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), plain)
            .expect("AES-GCM encryption of an in-memory buffer");
        [MAGIC, &nonce, &sealed].concat()
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let rest = sealed.strip_prefix(MAGIC).ok_or(SealError::NotSealed)?;
        if rest.len() < NONCE_BYTES + 16 {
            return Err(SealError::NotSealed);
        }
        let (nonce, body) = rest.split_at(NONCE_BYTES);
        let cipher = Aes256Gcm::new((&self.0).into());
        cipher
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| SealError::Decrypt)
    }
}

/// Write a file only its owner can read.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_only_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = PackageKey::read_or_create(&dir.path().join("a.key")).unwrap();
        let b = PackageKey::read_or_create(&dir.path().join("b.key")).unwrap();
        let sealed = a.seal(b"hello");
        assert_eq!(a.open(&sealed).unwrap(), b"hello");
        assert!(matches!(b.open(&sealed), Err(SealError::Decrypt)));
        assert!(matches!(a.open(b"junk"), Err(SealError::NotSealed)));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(a.open(&flipped), Err(SealError::Decrypt)));
        // The same key file reads back the same key.
        let again = PackageKey::read(&dir.path().join("a.key")).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"hello");
    }

    #[test]
    fn malformed_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "abcd").unwrap();
        assert!(matches!(PackageKey::read(&path), Err(SealError::Key(..))));
        std::fs::write(&path, "zz".repeat(32)).unwrap();
        assert!(matches!(PackageKey::read(&path), Err(SealError::Key(..))));
    }
}
