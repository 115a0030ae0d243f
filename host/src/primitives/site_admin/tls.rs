//! The TLS listener's certificate: parsed and checked from PEM, served
//! through a resolver whose key can be swapped while connections stay up
//! (each handshake reads the current one; established sessions keep theirs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use super::TlsSettings;
use super::sealed::write_private;

/// A certificate chain with its key, checked to belong together.
pub struct CheckedCert {
    pub key: Arc<CertifiedKey>,
    /// SHA-256 of the leaf certificate, lower-case hex.
    pub fingerprint: String,
}

/// Parse PEM text: the leaf certificate (and any chain after it), an optional
/// CA bundle appended to the chain, and the private key; they must match.
pub fn check(cert_pem: &str, key_pem: &str, ca_pem: Option<&str>) -> Result<CheckedCert, String> {
    let mut chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("public certificate: {e:?}"))?;
    if chain.is_empty() {
        return Err("public certificate: no PEM CERTIFICATE block".into());
    }
    if let Some(ca) = ca_pem.filter(|c| !c.trim().is_empty()) {
        let extra: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(ca.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("ca certificate: {e:?}"))?;
        if extra.is_empty() {
            return Err("ca certificate: no PEM CERTIFICATE block".into());
        }
        chain.extend(extra);
    }
    for (n, cert) in chain.iter().enumerate() {
        webpki::EndEntityCert::try_from(cert)
            .map_err(|e| format!("certificate {n} does not parse as X.509: {e:?}"))?;
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("private key: {e:?}"))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("private key: {e}"))?;
    let fingerprint = hex::encode(Sha256::digest(chain[0].as_ref()));
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|_| "the private key does not match the public certificate".to_string())?;
    Ok(CheckedCert {
        key: Arc::new(certified),
        fingerprint,
    })
}

/// Hands every handshake the current certificate.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        CertResolver {
            current: ArcSwap::new(key),
        }
    }

    pub fn swap(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The TLS server config over a resolver, offering h2 and http/1.1.
pub fn server_config(resolver: Arc<CertResolver>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Where installed certificates are kept.
pub fn installed_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("installed")
}

/// Persist an installed certificate so the next start serves it too.
pub fn persist(
    data_dir: &Path,
    cert_pem: &str,
    key_pem: &str,
    ca_pem: Option<&str>,
) -> std::io::Result<()> {
    let dir = installed_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let mut chain = cert_pem.trim_end().to_owned();
    chain.push('\n');
    if let Some(ca) = ca_pem.filter(|c| !c.trim().is_empty()) {
        chain.push_str(ca.trim_end());
        chain.push('\n');
    }
    // Written beside, then renamed, so a crash leaves the old pair whole.
    write_private(&dir.join("key.pem.new"), key_pem.as_bytes())?;
    std::fs::write(dir.join("cert.pem.new"), chain)?;
    std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem"))?;
    std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem"))
}

/// The certificate the listener starts with: installed, else configured,
/// else a self-signed one for `localhost` made once and kept.
pub fn initial(data_dir: &Path, settings: &TlsSettings) -> Result<CheckedCert, String> {
    let installed = installed_dir(data_dir);
    let (cert, key) = if installed.join("cert.pem").is_file() {
        (installed.join("cert.pem"), installed.join("key.pem"))
    } else if let (Some(cert), Some(key)) = (&settings.cert, &settings.key) {
        (cert.clone(), key.clone())
    } else {
        let dir = data_dir.join("tls").join("self-signed");
        if !dir.join("cert.pem").is_file() {
            make_self_signed(&dir)
                .map_err(|e| format!("cannot make a self-signed certificate: {e}"))?;
        }
        (dir.join("cert.pem"), dir.join("key.pem"))
    };
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    check(&read(&cert)?, &read(&key)?, None).map_err(|e| format!("{}: {e}", cert.display()))
}

fn make_self_signed(dir: &Path) -> Result<(), String> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let made = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    write_private(
        &dir.join("key.pem"),
        made.key_pair.serialize_pem().as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (made.cert.pem(), made.key_pair.serialize_pem())
    }

    #[test]
    fn a_matching_pair_is_accepted_and_a_mismatch_refused() {
        let (cert_a, key_a) = pair("a.test");
        let (_, key_b) = pair("b.test");
        let ok = check(&cert_a, &key_a, None).unwrap();
        assert_eq!(ok.fingerprint.len(), 64);
        let e = check(&cert_a, &key_b, None).err().unwrap();
        assert!(e.contains("does not match"), "{e}");
        assert!(check("junk", &key_a, None).is_err());
        assert!(check(&cert_a, "junk", None).is_err());
        let (ca, _) = pair("ca.test");
        let chained = check(&cert_a, &key_a, Some(&ca)).unwrap();
        assert_eq!(chained.key.cert.len(), 2);
    }
}
