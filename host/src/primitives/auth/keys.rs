//! SSH public keys: OpenSSH text, MD5 and SHA256 fingerprints, HTTP Signature key ids, and verifying signatures made with the private halves.

use md5::Md5;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use ssh_key::public::{EcdsaPublicKey, KeyData};
use ssh_key::{EcdsaCurve, PublicKey};

use super::AuthError;

/// Longest OpenSSH public key text accepted, in bytes (a 16384-bit RSA key is about 2.8 KB).
pub(super) const MAX_KEY_TEXT_BYTES: usize = 16 * 1024;
/// Shortest and longest RSA moduli accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 16_384;

/// An accepted public key: its canonical text, fingerprints, and what verifies with it.
pub(super) struct ParsedKey {
    /// `algorithm base64 comment`, re-encoded from the parsed key.
    pub(super) openssh: String,
    /// `aa:bb:…`, as `ssh-keygen -E md5` prints it without the `MD5:` prefix.
    pub(super) md5: String,
    /// `SHA256:…`, unpadded base64 as `ssh-keygen` prints it.
    pub(super) sha256: String,
    verifier: Verifier,
}

enum Verifier {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// A signature algorithm as HTTP Signature clients name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Algorithm {
    /// RSASSA-PKCS1-v1_5.
    Rsa(Hash),
    /// ECDSA over the key's curve; the signature is ASN.1 DER or raw `r || s`.
    Ecdsa(Hash),
    /// Pure Ed25519 (`ed25519`, or `ed25519-sha512` as the triton CLI names it).
    Ed25519,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

/// The parts of a key id: `/LOGIN/keys/KEY` or `/LOGIN/users/SUB/keys/KEY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeyId<'a> {
    pub(super) login: &'a str,
    pub(super) sub_user: Option<&'a str>,
    /// A fingerprint in either form, or the key's name.
    pub(super) key: &'a str,
}

/// A key fingerprint in its stored spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fingerprint {
    Md5(String),
    Sha256(String),
}

/// Parses OpenSSH public key text (`ssh-ed25519 AAAA… comment`) and checks the key can
/// verify: RSA of 2048 to 16384 bits, ECDSA on P-256/P-384/P-521, or Ed25519.
pub(super) fn parse_openssh(text: &str) -> Result<ParsedKey, AuthError> {
    let text = text.trim();
    if text.len() > MAX_KEY_TEXT_BYTES {
        return Err(invalid_key("longer than 16 KiB"));
    }
    let key =
        PublicKey::from_openssh(text).map_err(|_| invalid_key("not an OpenSSH public key"))?;
    let verifier = verifier(key.key_data())?;
    let wire = key
        .to_bytes()
        .map_err(|_| invalid_key("cannot be encoded"))?;
    let openssh = key
        .to_openssh()
        .map_err(|_| invalid_key("cannot be encoded"))?;
    Ok(ParsedKey {
        openssh,
        md5: colon_hex(&Md5::digest(&wire)),
        sha256: key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
        verifier,
    })
}

impl ParsedKey {
    /// Whether `signature` is this key's signature of `message` under `algorithm`.
    /// An algorithm of another key type never verifies.
    pub(super) fn verify(&self, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match (&self.verifier, algorithm) {
            (Verifier::Rsa(key), Algorithm::Rsa(hash)) => verify_rsa(key, hash, message, signature),
            (Verifier::P256(key), Algorithm::Ecdsa(hash)) => {
                use p256::ecdsa::Signature;
                let forms = [Signature::from_der, Signature::from_slice];
                verify_ecdsa(key, &hash.digest(message), signature, forms)
            }
            (Verifier::P384(key), Algorithm::Ecdsa(hash)) => {
                use p384::ecdsa::Signature;
                let forms = [Signature::from_der, Signature::from_slice];
                verify_ecdsa(key, &hash.digest(message), signature, forms)
            }
            (Verifier::P521(key), Algorithm::Ecdsa(hash)) => {
                use p521::ecdsa::Signature;
                let forms = [Signature::from_der, Signature::from_slice];
                verify_ecdsa(key, &hash.digest(message), signature, forms)
            }
            (Verifier::Ed25519(key), Algorithm::Ed25519) => {
                ed25519_dalek::Signature::from_slice(signature)
                    .is_ok_and(|sig| key.verify_strict(message, &sig).is_ok())
            }
            _ => false,
        }
    }
}

impl Algorithm {
    /// `rsa-sha1|sha256|sha384|sha512`, `ecdsa-sha256|sha384|sha512`, `ed25519`,
    /// `ed25519-sha512`, in any letter case.
    pub(super) fn parse(name: &str) -> Result<Algorithm, AuthError> {
        let algorithm = match name.to_ascii_lowercase().as_str() {
            "rsa-sha1" => Algorithm::Rsa(Hash::Sha1),
            "rsa-sha256" => Algorithm::Rsa(Hash::Sha256),
            "rsa-sha384" => Algorithm::Rsa(Hash::Sha384),
            "rsa-sha512" => Algorithm::Rsa(Hash::Sha512),
            "ecdsa-sha256" => Algorithm::Ecdsa(Hash::Sha256),
            "ecdsa-sha384" => Algorithm::Ecdsa(Hash::Sha384),
            "ecdsa-sha512" => Algorithm::Ecdsa(Hash::Sha512),
            "ed25519" | "ed25519-sha512" => Algorithm::Ed25519,
            _ => {
                return Err(AuthError::Invalid(
                    "algorithm: not a supported signature algorithm".into(),
                ));
            }
        };
        Ok(algorithm)
    }
}

impl Hash {
    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => Sha1::digest(message).to_vec(),
            Hash::Sha256 => Sha256::digest(message).to_vec(),
            Hash::Sha384 => Sha384::digest(message).to_vec(),
            Hash::Sha512 => Sha512::digest(message).to_vec(),
        }
    }
}

impl<'a> KeyId<'a> {
    /// Splits a key id. The key part is everything after `keys/`, since SHA256
    /// fingerprints contain `/`. The leading `/` may be missing.
    pub(super) fn parse(key_id: &'a str) -> Result<KeyId<'a>, AuthError> {
        let malformed = || {
            AuthError::Invalid(
                "key id: expected /LOGIN/keys/KEY or /LOGIN/users/USER/keys/KEY".into(),
            )
        };
        let path = key_id.strip_prefix('/').unwrap_or(key_id);
        let (login, rest) = path.split_once('/').ok_or_else(malformed)?;
        let (sub_user, key) = match rest.split_once('/') {
            Some(("keys", key)) => (None, key),
            Some(("users", rest)) => match rest.split_once('/') {
                Some((sub, rest)) => match rest.split_once('/') {
                    Some(("keys", key)) => (Some(sub), key),
                    _ => return Err(malformed()),
                },
                None => return Err(malformed()),
            },
            _ => return Err(malformed()),
        };
        if login.is_empty() || key.is_empty() || sub_user.is_some_and(str::is_empty) {
            return Err(malformed());
        }
        Ok(KeyId {
            login,
            sub_user,
            key,
        })
    }
}

impl Fingerprint {
    /// Reads `aa:bb:…` (optionally `MD5:`-prefixed, any case, or 32 bare hex digits)
    /// or `SHA256:…` (padding optional); `None` if `text` is neither, so it may be a name.
    pub(super) fn parse(text: &str) -> Option<Fingerprint> {
        if let Some(body) = strip_prefix_ignore_case(text, "SHA256:") {
            let body = body.trim_end_matches('=');
            let base64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
            return (body.len() == 43 && body.bytes().all(base64))
                .then(|| Fingerprint::Sha256(format!("SHA256:{body}")));
        }
        let body = strip_prefix_ignore_case(text, "MD5:").unwrap_or(text);
        let hex: String = if body.len() == 47 {
            let pairs: Vec<&str> = body.split(':').collect();
            if pairs.len() != 16 || pairs.iter().any(|pair| pair.len() != 2) {
                return None;
            }
            pairs.concat()
        } else {
            body.to_owned()
        };
        let bytes = hex::decode(&hex).ok().filter(|bytes| bytes.len() == 16)?;
        Some(Fingerprint::Md5(colon_hex(&bytes)))
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn verifier(key: &KeyData) -> Result<Verifier, AuthError> {
    match key {
        KeyData::Rsa(rsa_key) => {
            let number = |mpint: &ssh_key::Mpint| {
                mpint
                    .as_positive_bytes()
                    .map(rsa::BigUint::from_bytes_be)
                    .ok_or_else(|| invalid_key("RSA numbers must be positive"))
            };
            let public = rsa::RsaPublicKey::new_with_max_size(
                number(&rsa_key.n)?,
                number(&rsa_key.e)?,
                MAX_RSA_BITS,
            )
            .map_err(|_| invalid_key("not a usable RSA key"))?;
            if rsa::traits::PublicKeyParts::size(&public) * 8 < MIN_RSA_BITS {
                return Err(invalid_key("RSA keys need at least 2048 bits"));
            }
            Ok(Verifier::Rsa(public))
        }
        KeyData::Ecdsa(ecdsa_key) => ecdsa_verifier(ecdsa_key),
        KeyData::Ed25519(ed_key) => ed25519_dalek::VerifyingKey::from_bytes(&ed_key.0)
            .map(Verifier::Ed25519)
            .map_err(|_| invalid_key("not a valid Ed25519 point")),
        _ => Err(invalid_key(
            "only RSA, ECDSA (P-256, P-384, P-521) and Ed25519 keys are supported",
        )),
    }
}

fn ecdsa_verifier(key: &EcdsaPublicKey) -> Result<Verifier, AuthError> {
    let point = key.as_sec1_bytes();
    let verifier = match key.curve() {
        EcdsaCurve::NistP256 => {
            p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map(Verifier::P256)
        }
        EcdsaCurve::NistP384 => {
            p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map(Verifier::P384)
        }
        EcdsaCurve::NistP521 => {
            p521::ecdsa::VerifyingKey::from_sec1_bytes(point).map(Verifier::P521)
        }
    };
    verifier.map_err(|_| invalid_key("not a valid point on its curve"))
}

/// A way of reading an ECDSA signature's bytes.
type SignatureForm<S> = fn(&[u8]) -> Result<S, p256::ecdsa::Error>;

/// A signature read as ASN.1 DER (what OpenSSL and node clients send) or else as raw
/// `r || s`, checked against `digest`.
fn verify_ecdsa<S>(
    key: &impl PrehashVerifier<S>,
    digest: &[u8],
    signature: &[u8],
    forms: [SignatureForm<S>; 2],
) -> bool {
    forms
        .iter()
        .find_map(|parse| parse(signature).ok())
        .is_some_and(|signature| key.verify_prehash(digest, &signature).is_ok())
}

fn verify_rsa(key: &rsa::RsaPublicKey, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
    let scheme = match hash {
        Hash::Sha1 => rsa::Pkcs1v15Sign::new::<Sha1>(),
        Hash::Sha256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
        Hash::Sha384 => rsa::Pkcs1v15Sign::new::<Sha384>(),
        Hash::Sha512 => rsa::Pkcs1v15Sign::new::<Sha512>(),
    };
    rsa::traits::PublicKeyParts::size(key) == signature.len()
        && key.verify(scheme, &hash.digest(message), signature).is_ok()
}

fn colon_hex(bytes: &[u8]) -> String {
    let pairs: Vec<String> = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    pairs.join(":")
}

fn invalid_key(why: &str) -> AuthError {
    AuthError::Invalid(format!("key: {why}"))
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::OnceLock;

    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use ssh_key::PrivateKey;
    use ssh_key::private::{EcdsaKeypair, KeypairData};

    use super::*;

    pub(crate) const RSA_PUBLIC: &str = include_str!("../../../../tests/fixtures/auth/id_rsa.pub");
    pub(crate) const P256_PUBLIC: &str =
        include_str!("../../../../tests/fixtures/auth/id_ecdsa256.pub");
    pub(crate) const P384_PUBLIC: &str =
        include_str!("../../../../tests/fixtures/auth/id_ecdsa384.pub");
    pub(crate) const P521_PUBLIC: &str =
        include_str!("../../../../tests/fixtures/auth/id_ecdsa521.pub");
    pub(crate) const ED25519_PUBLIC: &str =
        include_str!("../../../../tests/fixtures/auth/id_ed25519.pub");
    const RSA_PRIVATE: &str = include_str!("../../../../tests/fixtures/auth/id_rsa");
    const P256_PRIVATE: &str = include_str!("../../../../tests/fixtures/auth/id_ecdsa256");
    const P384_PRIVATE: &str = include_str!("../../../../tests/fixtures/auth/id_ecdsa384");
    const P521_PRIVATE: &str = include_str!("../../../../tests/fixtures/auth/id_ecdsa521");
    const ED25519_PRIVATE: &str = include_str!("../../../../tests/fixtures/auth/id_ed25519");
    const RSA_1024_PUBLIC: &str = include_str!("../../../../tests/fixtures/auth/id_rsa1024.pub");

    /// What `ssh-keygen -l -E md5|sha256 -f KEY.pub` printed for each fixture.
    pub(crate) const RSA_MD5: &str = "0b:7c:0f:25:03:d8:f4:96:b4:35:4a:50:4d:66:91:80";
    pub(crate) const RSA_SHA256: &str = "SHA256:yG0NSOrXMZDearH1pwv3RLdSwE9wM34stlqebXZqiYc";
    const FINGERPRINTS: [(&str, &str, &str); 5] = [
        (RSA_PUBLIC, RSA_MD5, RSA_SHA256),
        (
            P256_PUBLIC,
            "c2:57:0b:73:f9:ba:c6:21:4f:c5:33:dd:f2:a8:ba:cd",
            "SHA256:R8IdpTl3IrmOZkzUOaNGP6y5ScyWWifT4nkdlyjp4So",
        ),
        (
            P384_PUBLIC,
            "36:cf:74:92:79:b2:7a:14:dc:95:73:5c:15:77:e1:82",
            "SHA256:DZ8JRQOnmc3VcffhisTuLS3ljA00sAkfIoZW4q5V4SI",
        ),
        (
            P521_PUBLIC,
            "59:62:d0:e2:39:12:74:c6:49:22:1c:42:52:1c:5b:ed",
            "SHA256:DV6Dh5zUHhIEVCnBrNuzI1VFkJ4si4PnAzw3OZmq+LA",
        ),
        (
            ED25519_PUBLIC,
            "39:a3:47:81:50:be:6e:ba:21:93:53:5a:c6:10:2b:a9",
            "SHA256:9a+s0RyZzA+afU9Xi6EaJ0QkjxNNtlVHEw0ce0xC45E",
        ),
    ];

    const MESSAGE: &[u8] = b"(request-target): get /alice/machines?limit=1000&offset=0\n\
        date: Thu, 01 Jan 2026 00:00:00 GMT";
    const TAMPERED: &[u8] = b"(request-target): get /mallory/machines?limit=1000&offset=0\n\
        date: Thu, 01 Jan 2026 00:00:00 GMT";

    fn keypair(text: &str) -> KeypairData {
        PrivateKey::from_openssh(text)
            .expect("the fixture is an OpenSSH private key")
            .key_data()
            .clone()
    }

    fn parsed(text: &str) -> ParsedKey {
        parse_openssh(text).expect("the fixture is a supported public key")
    }

    fn rsa_key() -> &'static rsa::RsaPrivateKey {
        static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| {
            let pair = keypair(RSA_PRIVATE);
            let pair = pair.rsa().expect("an RSA fixture");
            // Built by hand: ssh-key 0.6.7's own conversion passes `p` twice for `q`.
            let number = |mpint: &ssh_key::Mpint| {
                rsa::BigUint::from_bytes_be(mpint.as_positive_bytes().expect("positive"))
            };
            rsa::RsaPrivateKey::from_components(
                number(&pair.public.n),
                number(&pair.public.e),
                number(&pair.private.d),
                vec![number(&pair.private.p), number(&pair.private.q)],
            )
            .expect("a valid RSA key")
        })
    }

    /// An RSASSA-PKCS1-v1_5 signature by the RSA fixture, as `rsa-<hash>` clients make it.
    pub(crate) fn rsa_sign(hash: Hash, message: &[u8]) -> Vec<u8> {
        let scheme = match hash {
            Hash::Sha1 => rsa::Pkcs1v15Sign::new::<Sha1>(),
            Hash::Sha256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
            Hash::Sha384 => rsa::Pkcs1v15Sign::new::<Sha384>(),
            Hash::Sha512 => rsa::Pkcs1v15Sign::new::<Sha512>(),
        };
        rsa_key()
            .sign(scheme, &hash.digest(message))
            .expect("signing works")
    }

    fn ecdsa_private(text: &str) -> Vec<u8> {
        match keypair(text) {
            KeypairData::Ecdsa(pair) => pair.private_key_bytes().to_vec(),
            _ => panic!("an ECDSA fixture"),
        }
    }

    /// An ECDSA signature over `hash(message)` by a fixture key, as (DER, raw r||s).
    fn ecdsa_sign(private: &str, hash: Hash, message: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let secret = ecdsa_private(private);
        let digest = hash.digest(message);
        match keypair(private) {
            KeypairData::Ecdsa(EcdsaKeypair::NistP256 { .. }) => {
                let key = p256::ecdsa::SigningKey::from_slice(&secret).expect("a P-256 key");
                let sig: p256::ecdsa::Signature = key.sign_prehash(&digest).expect("signs");
                (sig.to_der().as_bytes().to_vec(), sig.to_bytes().to_vec())
            }
            KeypairData::Ecdsa(EcdsaKeypair::NistP384 { .. }) => {
                let key = p384::ecdsa::SigningKey::from_slice(&secret).expect("a P-384 key");
                let sig: p384::ecdsa::Signature = key.sign_prehash(&digest).expect("signs");
                (sig.to_der().as_bytes().to_vec(), sig.to_bytes().to_vec())
            }
            _ => {
                let key = p521::ecdsa::SigningKey::from_slice(&secret).expect("a P-521 key");
                let sig: p521::ecdsa::Signature = key.sign_prehash(&digest).expect("signs");
                (sig.to_der().as_bytes().to_vec(), sig.to_bytes().to_vec())
            }
        }
    }

    /// A DER ECDSA-SHA256 signature by the P-256 fixture, as node clients make it.
    pub(crate) fn p256_sign(message: &[u8]) -> Vec<u8> {
        ecdsa_sign(P256_PRIVATE, Hash::Sha256, message).0
    }

    /// An Ed25519 signature by the fixture key.
    pub(crate) fn ed25519_sign(message: &[u8]) -> Vec<u8> {
        use ed25519_dalek::Signer as _;
        let pair = keypair(ED25519_PRIVATE);
        let pair = pair.ed25519().expect("an Ed25519 fixture");
        let key = ed25519_dalek::SigningKey::try_from(pair).expect("a valid Ed25519 key");
        key.sign(message).to_bytes().to_vec()
    }

    #[test]
    fn fingerprints_match_ssh_keygen() {
        for (text, md5, sha256) in FINGERPRINTS {
            let key = parsed(text);
            assert_eq!((key.md5.as_str(), key.sha256.as_str()), (md5, sha256));
        }
    }

    #[test]
    fn the_stored_text_is_the_canonical_openssh_line() {
        let key = parsed(&format!("  {}\n\n", ED25519_PUBLIC.trim()));
        assert_eq!(key.openssh, ED25519_PUBLIC.trim());
    }

    #[test]
    fn rsa_signatures_verify_with_every_hash() {
        let key = parsed(RSA_PUBLIC);
        for (name, hash) in [
            ("rsa-sha1", Hash::Sha1),
            ("rsa-sha256", Hash::Sha256),
            ("rsa-sha384", Hash::Sha384),
            ("rsa-sha512", Hash::Sha512),
        ] {
            let algorithm = Algorithm::parse(name).expect("supported");
            let signature = rsa_sign(hash, MESSAGE);
            assert!(key.verify(algorithm, MESSAGE, &signature), "{name}");
            assert!(
                !key.verify(algorithm, TAMPERED, &signature),
                "{name} tampered"
            );
        }
    }

    #[test]
    fn an_rsa_signature_under_another_hash_fails() {
        let key = parsed(RSA_PUBLIC);
        let signature = rsa_sign(Hash::Sha256, MESSAGE);
        assert!(!key.verify(Algorithm::Rsa(Hash::Sha512), MESSAGE, &signature));
    }

    #[test]
    fn ecdsa_signatures_verify_in_der_and_raw_form() {
        for (public, private, name, hash) in [
            (P256_PUBLIC, P256_PRIVATE, "ecdsa-sha256", Hash::Sha256),
            (P384_PUBLIC, P384_PRIVATE, "ecdsa-sha384", Hash::Sha384),
            (P521_PUBLIC, P521_PRIVATE, "ecdsa-sha512", Hash::Sha512),
        ] {
            let key = parsed(public);
            let algorithm = Algorithm::parse(name).expect("supported");
            let (der, raw) = ecdsa_sign(private, hash, MESSAGE);
            assert!(key.verify(algorithm, MESSAGE, &der), "{name} DER");
            assert!(key.verify(algorithm, MESSAGE, &raw), "{name} raw");
            assert!(!key.verify(algorithm, TAMPERED, &der), "{name} tampered");
        }
    }

    #[test]
    fn ecdsa_with_a_hash_other_than_the_curve_default_verifies() {
        let key = parsed(P256_PUBLIC);
        let (der, _) = ecdsa_sign(P256_PRIVATE, Hash::Sha512, MESSAGE);
        assert!(key.verify(Algorithm::Ecdsa(Hash::Sha512), MESSAGE, &der));
        assert!(!key.verify(Algorithm::Ecdsa(Hash::Sha256), MESSAGE, &der));
    }

    #[test]
    fn ed25519_signatures_verify_under_both_names() {
        let key = parsed(ED25519_PUBLIC);
        let signature = ed25519_sign(MESSAGE);
        for name in ["ed25519", "ed25519-sha512", "ED25519-SHA512"] {
            let algorithm = Algorithm::parse(name).expect("supported");
            assert!(key.verify(algorithm, MESSAGE, &signature), "{name}");
            assert!(
                !key.verify(algorithm, TAMPERED, &signature),
                "{name} tampered"
            );
        }
    }

    #[test]
    fn an_algorithm_of_another_key_type_never_verifies() {
        let ed25519 = parsed(ED25519_PUBLIC);
        let signature = ed25519_sign(MESSAGE);
        assert!(!ed25519.verify(Algorithm::Rsa(Hash::Sha256), MESSAGE, &signature));
        assert!(!ed25519.verify(Algorithm::Ecdsa(Hash::Sha256), MESSAGE, &signature));
        let rsa = parsed(RSA_PUBLIC);
        let signature = rsa_sign(Hash::Sha256, MESSAGE);
        assert!(!rsa.verify(Algorithm::Ecdsa(Hash::Sha256), MESSAGE, &signature));
        assert!(!rsa.verify(Algorithm::Ed25519, MESSAGE, &signature));
    }

    #[test]
    fn garbage_signatures_are_refused_without_panicking() {
        let keys = [
            RSA_PUBLIC,
            P256_PUBLIC,
            P384_PUBLIC,
            P521_PUBLIC,
            ED25519_PUBLIC,
        ];
        let algorithms = [
            Algorithm::Rsa(Hash::Sha256),
            Algorithm::Ecdsa(Hash::Sha256),
            Algorithm::Ed25519,
        ];
        for text in keys {
            let key = parsed(text);
            for algorithm in algorithms {
                for signature in [
                    &[][..],
                    &[0u8; 64][..],
                    &[0x30, 0x02, 0x01][..],
                    &[0xffu8; 256][..],
                ] {
                    assert!(!key.verify(algorithm, MESSAGE, signature));
                }
            }
        }
    }

    #[test]
    fn unknown_algorithms_are_invalid() {
        for name in ["hmac-sha256", "rsa-md5", "ecdsa-sha1", "", "hs2019"] {
            assert!(
                matches!(Algorithm::parse(name), Err(AuthError::Invalid(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn a_key_the_crates_make_round_trips_through_openssh_text() {
        use ed25519_dalek::Signer as _;
        let mut seed = [0u8; 32];
        super::super::crypto::fill_random(&mut seed);
        let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = ssh_key::public::Ed25519PublicKey(signing.verifying_key().to_bytes());
        let text = PublicKey::new(KeyData::Ed25519(public), "made@test")
            .to_openssh()
            .expect("encodes");
        let key = parsed(&text);
        let signature = signing.sign(MESSAGE).to_bytes();
        assert!(key.verify(Algorithm::Ed25519, MESSAGE, &signature));
    }

    #[test]
    fn short_rsa_keys_and_garbage_are_refused() {
        assert!(matches!(
            parse_openssh(RSA_1024_PUBLIC),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            parse_openssh("ssh-rsa AAAA"),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(parse_openssh(""), Err(AuthError::Invalid(_))));
        // The algorithm in the text must match the one inside the blob.
        let lying = ED25519_PUBLIC.replacen("ssh-ed25519", "ssh-rsa", 1);
        assert!(matches!(parse_openssh(&lying), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn key_ids_name_an_account_key() {
        assert_eq!(
            KeyId::parse(&format!("/alice/keys/{RSA_MD5}")),
            Ok(KeyId {
                login: "alice",
                sub_user: None,
                key: RSA_MD5
            })
        );
        assert_eq!(
            KeyId::parse("/alice/keys/id_rsa").map(|id| id.key),
            Ok("id_rsa")
        );
    }

    #[test]
    fn key_ids_name_a_sub_user_key() {
        assert_eq!(
            KeyId::parse("/alice/users/bob/keys/SHA256:ab/cd+ef"),
            Ok(KeyId {
                login: "alice",
                sub_user: Some("bob"),
                key: "SHA256:ab/cd+ef"
            })
        );
    }

    #[test]
    fn a_sha256_fingerprint_with_slashes_stays_whole() {
        let id = KeyId::parse("alice/keys/SHA256:a/b/c").expect("parses");
        assert_eq!((id.login, id.key), ("alice", "SHA256:a/b/c"));
    }

    #[test]
    fn malformed_key_ids_are_invalid() {
        for id in [
            "",
            "/",
            "/alice",
            "/alice/keys",
            "/alice/keys/",
            "/alice/key/x",
            "//keys/x",
            "/alice/users/bob",
            "/alice/users/bob/keys/",
            "/alice/users//keys/x",
            "/alice/users/bob/key/x",
        ] {
            assert!(
                matches!(KeyId::parse(id), Err(AuthError::Invalid(_))),
                "{id:?}"
            );
        }
    }

    #[test]
    fn fingerprints_are_read_in_every_spelling() {
        let md5 = Some(Fingerprint::Md5(RSA_MD5.into()));
        assert_eq!(Fingerprint::parse(RSA_MD5), md5);
        assert_eq!(Fingerprint::parse(&RSA_MD5.to_uppercase()), md5);
        assert_eq!(Fingerprint::parse(&format!("MD5:{RSA_MD5}")), md5);
        assert_eq!(Fingerprint::parse(&RSA_MD5.replace(':', "")), md5);
        let sha256 = Some(Fingerprint::Sha256(RSA_SHA256.into()));
        assert_eq!(Fingerprint::parse(RSA_SHA256), sha256);
        assert_eq!(Fingerprint::parse(&format!("{RSA_SHA256}=")), sha256);
        assert_eq!(Fingerprint::parse("id_rsa"), None);
        assert_eq!(Fingerprint::parse("SHA256:short"), None);
        assert_eq!(Fingerprint::parse("0b:7c"), None);
    }
}
