//! CloudAPI end to end: the real server on loopback, requests signed in the test with keys
//! `ssh-keygen` makes (RSA, ECDSA P-256, Ed25519), and the real `triton` CLI.

mod fabric_nics;
mod identity;
mod machine_networking;
mod machines;
mod networking;
mod protocol;
mod rbac;
mod rbac_networking;
mod triton;
mod vnc_qemu;

use std::path::PathBuf;
use std::process::Command;

use base64::Engine;
use md5::{Digest, Md5};
use reqwest::blocking::Response;
use reqwest::header::HeaderMap;
use serde_json::Value;
use ssh_key::PrivateKey;
use ssh_key::private::{EcdsaKeypair, KeypairData};

use crate::harness::{Server, cli_ok};

pub const PASSWORD: &str = "correct horse battery staple";

/// A key pair `ssh-keygen` made, its private half ready to sign.
pub struct KeyPair {
    pub public: String,
    pub md5: String,
    pub sha256: String,
    pub public_file: PathBuf,
    secret: Secret,
    _dir: tempfile::TempDir,
}

enum Secret {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl KeyPair {
    /// `kind`: `rsa`, `ecdsa` (P-256) or `ed25519`.
    pub fn generate(kind: &str) -> KeyPair {
        // ssh-key 0.6 refuses the odd ECDSA scalar whose encoding has a leading zero
        // byte trimmed (about 1 in 256); such a key is made again.
        for _ in 0..8 {
            if let Some(pair) = KeyPair::try_generate(kind) {
                return pair;
            }
        }
        panic!("ssh-keygen -t {kind} made no key the ssh-key crate reads");
    }

    fn try_generate(kind: &str) -> Option<KeyPair> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("id");
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-N", "", "-C", "e2e", "-t", kind, "-f"])
            .arg(&path);
        match kind {
            "rsa" => cmd.args(["-b", "2048"]),
            "ecdsa" => cmd.args(["-b", "256"]),
            _ => &mut cmd,
        };
        let status = cmd.status().expect("ssh-keygen runs");
        assert!(status.success(), "ssh-keygen -t {kind}");
        let private = PrivateKey::read_openssh_file(&path).ok()?;
        let secret = match private.key_data() {
            KeypairData::Rsa(pair) => {
                let n = |m: &ssh_key::Mpint| {
                    rsa::BigUint::from_bytes_be(m.as_positive_bytes().expect("positive"))
                };
                Secret::Rsa(Box::new(
                    rsa::RsaPrivateKey::from_components(
                        n(&pair.public.n),
                        n(&pair.public.e),
                        n(&pair.private.d),
                        vec![n(&pair.private.p), n(&pair.private.q)],
                    )
                    .expect("a valid RSA key"),
                ))
            }
            KeypairData::Ecdsa(EcdsaKeypair::NistP256 { private, .. }) => Secret::P256(
                p256::ecdsa::SigningKey::from_slice(private.as_slice()).expect("P-256"),
            ),
            KeypairData::Ed25519(pair) => Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(
                &pair.private.to_bytes(),
            )),
            _ => panic!("unexpected key type"),
        };
        let public_file = path.with_extension("pub");
        let public = std::fs::read_to_string(&public_file).expect("public key");
        let parsed = ssh_key::PublicKey::from_openssh(public.trim()).expect("public key");
        let wire = parsed.to_bytes().expect("encodes");
        let md5: Vec<String> = Md5::digest(&wire)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Some(KeyPair {
            md5: md5.join(":"),
            sha256: parsed.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
            public: public.trim().to_string(),
            public_file,
            secret,
            _dir: dir,
        })
    }

    /// The algorithm name clients send for this key.
    pub fn algorithm(&self) -> &'static str {
        match self.secret {
            Secret::Rsa(_) => "rsa-sha256",
            Secret::P256(_) => "ecdsa-sha256",
            Secret::Ed25519(_) => "ed25519-sha512",
        }
    }

    /// Sign `message` under `algorithm` (`rsa-sha1|256|512` for RSA).
    pub fn sign(&self, algorithm: &str, message: &[u8]) -> Vec<u8> {
        use sha2::{Sha256, Sha512};
        match &self.secret {
            Secret::Rsa(key) => {
                let (scheme, digest) = match algorithm {
                    "rsa-sha1" => (
                        rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
                        <sha1::Sha1 as Digest>::digest(message).to_vec(),
                    ),
                    "rsa-sha512" => (
                        rsa::Pkcs1v15Sign::new::<Sha512>(),
                        <Sha512 as Digest>::digest(message).to_vec(),
                    ),
                    _ => (
                        rsa::Pkcs1v15Sign::new::<Sha256>(),
                        <Sha256 as Digest>::digest(message).to_vec(),
                    ),
                };
                key.sign(scheme, &digest).expect("signs")
            }
            Secret::P256(key) => {
                use p256::ecdsa::signature::Signer;
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            Secret::Ed25519(key) => {
                use ed25519_dalek::Signer;
                key.sign(message).to_bytes().to_vec()
            }
        }
    }
}

/// Add a top-level account with the operator CLI.
pub fn add_account(server: &Server, login: &str) {
    cli_ok(
        &server.data_dir(),
        &[
            "user",
            "add",
            login,
            "--email",
            &format!("{login}@example.com"),
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
}

/// Add a key to `owner` (`LOGIN` or `ACCOUNT/SUB`) with the operator CLI.
pub fn add_key(server: &Server, owner: &str, name: &str, key: &KeyPair) {
    let file = key.public_file.to_str().expect("utf-8 path");
    cli_ok(
        &server.data_dir(),
        &["key", "add", owner, "--name", name, "--file", file],
        "",
    );
}

/// An account with an RSA key, and a client signing as it.
pub fn account_with_key(server: &Server, login: &str) -> Signer {
    add_account(server, login);
    let key = KeyPair::generate("rsa");
    add_key(server, login, "id_rsa", &key);
    Signer::new(server, &format!("/{login}/keys/{}", key.md5), key)
}

/// The HTTP Signature forms a test can send.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Form {
    /// `headers="(request-target) date"`, as `triton` sends.
    Triton,
    /// `headers="date"`, as `smartdc` sends.
    Smartdc,
    /// `Signature keyId=…,algorithm=… BASE64` over the bare date.
    Legacy,
}

/// Signs requests as one key.
pub struct Signer {
    pub base: String,
    pub key_id: String,
    pub algorithm: String,
    pub key: KeyPair,
    pub form: Form,
    /// Seconds added to the `Date` sent (to test clock skew).
    pub skew: i64,
}

impl Signer {
    pub fn new(server: &Server, key_id: &str, key: KeyPair) -> Signer {
        Signer {
            base: server.base.clone(),
            key_id: key_id.to_string(),
            algorithm: key.algorithm().to_string(),
            key,
            form: Form::Triton,
            skew: 0,
        }
    }

    pub fn date(&self) -> String {
        let now = std::time::SystemTime::now();
        let when = if self.skew >= 0 {
            now + std::time::Duration::from_secs(self.skew as u64)
        } else {
            now - std::time::Duration::from_secs(self.skew.unsigned_abs())
        };
        httpdate::fmt_http_date(when)
    }

    /// The `Authorization` value for a request.
    pub fn authorization(&self, method: &str, path_and_query: &str, date: &str) -> String {
        let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
        match self.form {
            Form::Triton => {
                let signed = format!(
                    "(request-target): {} {path_and_query}\ndate: {date}",
                    method.to_lowercase()
                );
                format!(
                    "Signature keyId=\"{}\",algorithm=\"{}\",headers=\"(request-target) date\",signature=\"{}\"",
                    self.key_id,
                    self.algorithm,
                    b64(self.key.sign(&self.algorithm, signed.as_bytes()))
                )
            }
            Form::Smartdc => format!(
                "Signature keyId=\"{}\",algorithm=\"{}\",headers=\"date\",signature=\"{}\"",
                self.key_id,
                self.algorithm,
                b64(self
                    .key
                    .sign(&self.algorithm, format!("date: {date}").as_bytes()))
            ),
            Form::Legacy => format!(
                "Signature keyId=\"{}\",algorithm=\"{}\" {}",
                self.key_id,
                self.algorithm,
                b64(self.key.sign(&self.algorithm, date.as_bytes()))
            ),
        }
    }

    /// A signed request with `accept-version: ~9||~8` and an optional JSON body.
    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        self.send_with(method, path, body, &[])
    }

    pub fn send_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let date = self.date();
        let no_redirects = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let mut request = no_redirects
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.base),
            )
            .header("date", &date)
            .header("accept", "application/json")
            .header("authorization", self.authorization(method, path, &date));
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("accept-version"))
        {
            request = request.header("accept-version", "~9||~8");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().expect("request")
    }

    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        self.send("POST", path, Some(body))
    }
}

/// Status and JSON body (Null when empty).
pub fn status_json(response: Response) -> (u16, HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, headers, body)
}

/// Asserts a CloudAPI error: the status and `code`.
#[track_caller]
pub fn assert_error(response: Response, status: u16, code: &str) -> Value {
    let (got, _, body) = status_json(response);
    assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
    assert!(body["message"].is_string(), "{body}");
    body
}

/// A site with only CloudAPI at `/` (its default grants), `settings` (TOML lines) in its
/// settings table, and failed-signature throttling out of the way of the failure tests.
pub fn site(settings: &str) -> Server {
    Server::with_site(&format!(
        r#"
[auth]
max_failures = 1000

[plugins.cloudapi]
source = "cloudapi"
mounts = ["/"]
grants = ["storage", "auth", "auth-admin", "jobs", "hypervisor"]

[plugins.cloudapi.settings]
{settings}
"#
    ))
}

/// The MD5 of a body, base64, as `Content-MD5` carries it.
pub fn content_md5(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(body))
}
