//! Update packages: a gzip'd tar of `manifest.json` and plugin `.wasm` files,
//! sealed with the site's package key (`sealed.rs`). `tessera update pack`
//! makes them; `site-admin.stage-update` opens and checks them.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::sealed::{PackageKey, SealError};

pub const FORMAT: &str = "tessera-update-1";
/// The most a package may hold once unpacked.
const MAX_UNPACKED_BYTES: u64 = 512 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    /// The site's version once the update is installed.
    pub version: String,
    /// The oldest site version it may be installed on.
    pub min_version: String,
    #[serde(default)]
    pub changelog: Option<String>,
    pub plugins: Vec<PluginEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PluginEntry {
    /// The site's plugin this file replaces.
    pub name: String,
    /// Path inside the package.
    pub file: String,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
}

/// An opened package: its manifest and its files by path.
#[derive(Debug)]
pub struct Package {
    pub manifest: Manifest,
    pub files: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// E1005: it cannot be decrypted or extracted.
    #[error("{0}")]
    Unreadable(String),
    /// E1000: the manifest is missing or malformed.
    #[error("{0}")]
    Manifest(String),
    /// E1002: a file is missing or its hash differs.
    #[error("{0}")]
    Content(String),
}

/// Build a package from plugin files `(name, wasm)`.
pub fn pack(
    key: &PackageKey,
    version: &str,
    min_version: &str,
    changelog: Option<&str>,
    plugins: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, String> {
    parse_version(version)
        .ok_or_else(|| format!("version {version:?} is not MAJOR.MINOR.PATCH"))?;
    parse_version(min_version)
        .ok_or_else(|| format!("minimum version {min_version:?} is not MAJOR.MINOR.PATCH"))?;
    let manifest = Manifest {
        format: FORMAT.into(),
        version: version.into(),
        min_version: min_version.into(),
        changelog: changelog.map(str::to_owned),
        plugins: plugins
            .iter()
            .map(|(name, wasm)| PluginEntry {
                name: name.clone(),
                file: format!("plugins/{name}.wasm"),
                sha256: hex::encode(Sha256::digest(wasm)),
            })
            .collect(),
    };
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut add = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes)
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    add("manifest.json", &manifest_json).map_err(|e| e.to_string())?;
    for ((_, wasm), entry) in plugins.iter().zip(&manifest.plugins) {
        add(&entry.file, wasm).map_err(|e| e.to_string())?;
    }
    let gz = tar.into_inner().map_err(|e| e.to_string())?;
    let plain = gz.finish().map_err(|e| e.to_string())?;
    Ok(key.seal(&plain))
}

/// Decrypt, extract and check a package's manifest and hashes.
pub fn open(key: &PackageKey, sealed: &[u8]) -> Result<Package, PackageError> {
    let plain = key
        .open(sealed)
        .map_err(|e: SealError| PackageError::Unreadable(e.to_string()))?;
    let gz = flate2::read::GzDecoder::new(plain.as_slice());
    let mut tar = tar::Archive::new(gz.take(MAX_UNPACKED_BYTES));
    let unreadable = |e: std::io::Error| PackageError::Unreadable(format!("cannot extract: {e}"));
    let mut files = BTreeMap::new();
    for entry in tar.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(unreadable)?
            .to_string_lossy()
            .into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(unreadable)?;
        files.insert(name, bytes);
    }
    let manifest = files
        .get("manifest.json")
        .ok_or_else(|| PackageError::Manifest("the package has no manifest.json".into()))?;
    let manifest: Manifest = serde_json::from_slice(manifest)
        .map_err(|e| PackageError::Manifest(format!("manifest.json: {e}")))?;
    if manifest.format != FORMAT {
        return Err(PackageError::Manifest(format!(
            "unknown package format {:?}",
            manifest.format
        )));
    }
    for v in [&manifest.version, &manifest.min_version] {
        parse_version(v).ok_or_else(|| PackageError::Manifest(format!("bad version {v:?}")))?;
    }
    for entry in &manifest.plugins {
        let bytes = files.get(&entry.file).ok_or_else(|| {
            PackageError::Content(format!("{} is missing from the package", entry.file))
        })?;
        let digest = hex::encode(Sha256::digest(bytes));
        if !digest.eq_ignore_ascii_case(&entry.sha256) {
            return Err(PackageError::Content(format!(
                "{}: sha256 {digest} differs from the manifest's {}",
                entry.file, entry.sha256
            )));
        }
    }
    Ok(Package { manifest, files })
}

/// `MAJOR.MINOR.PATCH` (a `-suffix` or `+build` is ignored for ordering).
pub fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}

/// Why `candidate` may not be installed over `current`, if it may not.
pub fn version_refusal(current: &str, manifest: &Manifest) -> Option<String> {
    let now = parse_version(current)?;
    let target = parse_version(&manifest.version)?;
    let min = parse_version(&manifest.min_version)?;
    if now < min {
        return Some(format!(
            "the update needs version {} or later; this site runs {current}",
            manifest.min_version
        ));
    }
    if target <= now {
        return Some(format!(
            "the update's version {} is not newer than this site's {current}",
            manifest.version
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dir: &std::path::Path, name: &str) -> PackageKey {
        PackageKey::read_or_create(&dir.join(name)).unwrap()
    }

    #[test]
    fn a_packed_update_opens_with_its_manifest_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(dir.path(), "k");
        let sealed = pack(
            &k,
            "1.2.0",
            "0.1.0",
            Some("# notes"),
            &[("hello".into(), b"\0asm".to_vec())],
        )
        .unwrap();
        let package = open(&k, &sealed).unwrap();
        assert_eq!(package.manifest.version, "1.2.0");
        assert_eq!(package.manifest.plugins[0].name, "hello");
        assert_eq!(package.files["plugins/hello.wasm"], b"\0asm");
        assert!(matches!(
            open(&key(dir.path(), "other"), &sealed),
            Err(PackageError::Unreadable(_))
        ));
        let not_gzip = k.seal(b"plain text");
        assert!(matches!(
            open(&k, &not_gzip),
            Err(PackageError::Unreadable(_))
        ));
    }

    #[test]
    fn versions_are_ordered_and_checked() {
        assert_eq!(parse_version("1.24.0"), Some((1, 24, 0)));
        assert_eq!(parse_version("1.2.3-rc1"), Some((1, 2, 3)));
        assert_eq!(parse_version("1.2"), None);
        assert_eq!(parse_version("a.b.c"), None);
        let m = |v: &str, min: &str| Manifest {
            format: FORMAT.into(),
            version: v.into(),
            min_version: min.into(),
            changelog: None,
            plugins: vec![],
        };
        assert_eq!(version_refusal("0.1.0", &m("0.2.0", "0.1.0")), None);
        assert!(version_refusal("0.1.0", &m("0.1.0", "0.1.0")).is_some());
        assert!(version_refusal("0.1.0", &m("0.3.0", "0.2.0")).is_some());
        assert!(version_refusal("1.10.0", &m("1.9.0", "0.1.0")).is_some());
    }
}
