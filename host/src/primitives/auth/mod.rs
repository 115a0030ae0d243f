//! The auth primitive: the site's identity store (accounts, sub-users, realms, SSH keys, tokens) and the cryptography around it.
//!
//! This is the plain Rust API that mirrors `wit/auth.wit` one-to-one; the WIT glue,
//! the CLI and the tests all call it. Input is validated here; secrets are checked in
//! `passwords.rs` (Argon2id), `keys.rs` (HTTP Signature) and `tokens.rs`; rows live
//! behind the backend trait of `store.rs` (SQLite today, in the site database beside
//! storage's tables). Nothing returned, logged or audited is a secret: no password,
//! hash, token value or private key.
//!
//! Conventions a caller should know:
//! - A sub-user is an account with `parent` set; its login is unique within its
//!   parent, a top-level login among top-level accounts, an email (ignoring ASCII
//!   case) among all accounts. Wherever a login names an owner (`get_account`,
//!   `add_key`, `TokenRequest::owner`, …) a sub-user is written `PARENT/SUB`, and
//!   `SshKey::owner` and `TokenInfo::owner` are spelt the same way.
//! - API keys are tokens: a long-lived key is a token of its own scope (say
//!   `vmmanager:key`) with no expiry; a VMmanager login key is one with
//!   `one_use: true`, consumed by its first successful `check_token`.
//! - Failed authentications count against the account (or the unknown name
//!   presented) and the peer address; see `throttle.rs`. Only token values that
//!   match no token count: an expired, revoked or wrongly scoped token proves the
//!   caller once held it and is refused (and audited) without counting.
//! - Verification calls (`verify_password` especially) are CPU-bound and blocking;
//!   async callers run them on a blocking thread.

mod audit;
mod chosen_token;
mod clock;
mod config;
mod crypto;
mod keys;
mod passwords;
mod seal;
mod store;
mod throttle;
mod tokens;
mod wit;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

pub use audit::AuditEntry;
pub use clock::{Clock, ManualClock, OffsetFileClock, SystemClock};
pub use config::AuthSettings;
pub use crypto::{constant_time_eq, hmac_sha256, random_bytes, sha256};
pub use seal::{KEY_FILE as SEAL_KEY_FILE, Sealer};

use crate::db::Database;
use audit::{Action, Event, Origin, Outcome};
use keys::{Algorithm, Fingerprint, KeyId, ParsedKey};
use passwords::{MAX_PASSWORD_BYTES, PasswordHasher};
use store::{AccountKey, SqliteStore, Store, StoredAccount, StoredKey, StoredToken, Tx};
use throttle::ThrottlePolicy;

/// The realm every site has; new accounts land in the default realm, which is this
/// one unless another was added as default.
pub const DEFAULT_REALM: &str = "default";
/// Longest HTTP signature accepted, in bytes (a 16384-bit RSA signature is 2 KiB).
const MAX_SIGNATURE_BYTES: usize = 4096;

/// An account or sub-user, as plugins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// A UUID, fixed for the account's life.
    pub id: String,
    pub login: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub phone: Option<String>,
    pub realm: String,
    pub admin: bool,
    /// The account's own flag; a sub-user of a disabled account is refused too.
    pub disabled: bool,
    /// For a sub-user: the login of the account it belongs to.
    pub parent: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created: u64,
    pub updated: u64,
}

/// What `create_account` needs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NewAccount {
    /// `[a-zA-Z][a-zA-Z0-9_.@-]{1,63}`.
    pub login: String,
    pub email: String,
    /// `None`: the account cannot log in with a password (keys or tokens only).
    pub password: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub phone: Option<String>,
    /// `None`: the default realm (a sub-user is always in its parent's).
    pub realm: Option<String>,
    pub admin: bool,
    /// Login of the top-level account this sub-user belongs to.
    pub parent: Option<String>,
}

/// Changes to an account; `None` leaves a field as it is. For the optional text
/// fields (names, company, phone) `Some("")` clears the field.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AccountUpdate {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub phone: Option<String>,
    pub disabled: Option<bool>,
    pub admin: Option<bool>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realm {
    pub name: String,
    pub description: String,
    pub is_default: bool,
}

/// An SSH public key of an account or sub-user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    pub name: String,
    /// The OpenSSH public key text, re-encoded from the parsed key.
    pub key: String,
    /// `aa:bb:...`
    pub fingerprint_md5: String,
    /// `SHA256:...`
    pub fingerprint_sha256: String,
    /// Login of the owner (`PARENT/SUB` for a sub-user).
    pub owner: String,
    pub created: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenFormat {
    /// base64url (no padding) of 32 random bytes.
    #[default]
    Opaque,
    /// VMmanager's `<numeric id>-<uuid v4>`.
    IdUuid,
    /// tiCrypt's 32 characters of `[A-Za-z0-9]`.
    Alnum32,
}

/// What `issue_token` needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRequest {
    /// Login of the owner (`PARENT/SUB` for a sub-user).
    pub owner: String,
    /// `vmmanager:session`, `ticrypt:drive`, ...: `[A-Za-z0-9_.:-]`, up to 128 characters.
    pub scope: String,
    /// A resource the token is bound to (a drive id, a VM id, ...).
    pub binding: Option<String>,
    /// Absolute lifetime; `None` for no absolute expiry.
    pub ttl_seconds: Option<u64>,
    /// Idle lifetime, slid on every successful check; `None` takes the scope's
    /// default (see `set_idle_ttl`), if any.
    pub idle_ttl_seconds: Option<u64>,
    pub description: Option<String>,
    pub format: TokenFormat,
    /// Consumed by its first successful check (VMmanager's login keys).
    pub one_use: bool,
}

/// A freshly issued token. `value` is shown here once and never kept.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token's number, in decimal; not a secret (revocation and listings use it).
    pub id: String,
    pub value: String,
    /// The earlier of the absolute and the idle expiry, ms; `None` if neither is set.
    pub expires_at: Option<u64>,
}

/// What a successful `check_token` vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub id: String,
    pub owner: Account,
    pub scope: String,
    pub binding: Option<String>,
    /// The earlier of the absolute and the (just slid) idle expiry, ms.
    pub expires_at: Option<u64>,
    pub description: Option<String>,
}

/// Who made a verified signature, and with which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub account: Account,
    pub key: SshKey,
}

/// A token as `list_tokens` shows it: never its value or hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    /// Login of the owner (`PARENT/SUB` for a sub-user).
    pub owner: String,
    pub scope: String,
    pub binding: Option<String>,
    pub description: Option<String>,
    pub one_use: bool,
    pub created: u64,
    /// Absolute expiry, ms.
    pub expires_at: Option<u64>,
    pub idle_ttl_seconds: Option<u64>,
    /// When the idle TTL runs out unless the token is used first, ms.
    pub idle_expires_at: Option<u64>,
    pub last_used: Option<u64>,
    pub revoked: bool,
}

/// Why an auth call failed; mirrors the WIT `auth-error`. No message carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Login, key, token or realm unknown.
    #[error("not found: {0}")]
    NotFound(String),
    /// Wrong password, bad signature, unknown, expired or revoked token.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("the account is disabled")]
    Disabled,
    /// Too many failures: retry after this many seconds.
    #[error("too many failed attempts; retry in {0} s")]
    Throttled(u32),
    /// The caller may not make this change (the WIT glue's `auth-admin` grant).
    #[error("forbidden")]
    Forbidden,
    /// A field failed validation; the message names it.
    #[error("invalid {0}")]
    Invalid(String),
    /// Login, email, realm or key already taken; the message names which.
    #[error("already taken: {0}")]
    Conflict(String),
    #[error("auth backend failed: {0}")]
    Backend(String),
}

/// The site's identity store. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
    /// Who the audit trail names for changes made through this handle.
    origin: Arc<Origin>,
}

struct Inner {
    store: Box<dyn Store>,
    passwords: PasswordHasher,
    throttle: ThrottlePolicy,
    clock: Arc<dyn Clock>,
    /// The site key for `seal`/`unseal`, in the database's directory (the data dir).
    sealer: Sealer,
}

/// The bookkeeping of one authentication attempt.
struct Attempt<'a> {
    action: Action,
    /// The login or key id presented, for the audit trail (empty for tokens).
    presented: String,
    /// The throttle counters the attempt counts against.
    counters: Vec<String>,
    peer: &'a str,
}

/// A login naming a top-level account (`LOGIN`) or a sub-user (`PARENT/SUB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LoginRef<'a> {
    parent: Option<&'a str>,
    login: &'a str,
}

impl Auth {
    /// Opens the identity store in `db`, creating its tables and the `default` realm if needed.
    pub fn new(
        db: Database,
        settings: AuthSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Auth, AuthError> {
        settings.check()?;
        let sealer = Sealer::new(db.dir());
        let auth = Auth {
            inner: Arc::new(Inner {
                store: Box::new(SqliteStore::open(db)?),
                passwords: PasswordHasher::new(&settings)?,
                throttle: ThrottlePolicy::new(&settings),
                clock,
                sealer,
            }),
            origin: Arc::new(Origin::default()),
        };
        auth.write(ensure_default_realm)?;
        Ok(auth)
    }

    /// A handle on the same store whose changes are audited as made by `actor`
    /// (`plugin:cloudapi`, `cli`, …) for a request from `peer`.
    pub fn with_origin(&self, actor: &str, peer: &str) -> Auth {
        Auth {
            inner: Arc::clone(&self.inner),
            origin: Arc::new(Origin {
                actor: actor.to_owned(),
                peer: peer.to_owned(),
            }),
        }
    }

    // Accounts and realms.

    /// The account `LOGIN`, or the sub-user `PARENT/SUB`.
    pub fn get_account(&self, login: &str) -> Result<Option<Account>, AuthError> {
        let login = LoginRef::parse(login)?;
        self.read(|tx| Ok(find_account(tx, login)?.map(|found| found.account)))
    }

    pub fn get_account_by_id(&self, id: &str) -> Result<Option<Account>, AuthError> {
        check_id(id)?;
        self.read(|tx| Ok(tx.account(AccountKey::Id(id))?.map(|found| found.account)))
    }

    /// Accounts in `realm` (every realm if `None`), by login: the top-level ones, or
    /// with `parent` the sub-users of that account.
    pub fn list_accounts(
        &self,
        realm: Option<&str>,
        parent: Option<&str>,
    ) -> Result<Vec<Account>, AuthError> {
        if let Some(realm) = realm {
            check_realm_name(realm)?;
        }
        if let Some(parent) = parent {
            check_login("parent", parent)?;
        }
        self.read(|tx| {
            let parent_id = match parent {
                Some(parent) => Some(existing(tx, LoginRef::top(parent))?.account.id),
                None => None,
            };
            let found = tx.accounts(realm, parent_id.as_deref())?;
            Ok(found.into_iter().map(|found| found.account).collect())
        })
    }

    pub fn create_account(&self, new: NewAccount) -> Result<Account, AuthError> {
        let new = checked_new_account(new)?;
        let password_hash = new
            .password
            .as_deref()
            .map(|password| self.hash_password(password))
            .transpose()?;
        let now = self.now();
        self.write(|tx| {
            let (parent, realm) = placement(tx, new.parent.as_deref(), new.realm.as_deref())?;
            check_login_free(tx, LoginRef::new(new.parent.as_deref(), &new.login))?;
            check_email_free(tx, &new.email, None)?;
            let detail = format!("realm {realm}{}", if new.admin { ", admin" } else { "" });
            let stored = StoredAccount::new(new, parent.as_ref(), realm, password_hash, now);
            tx.insert_account(&stored)?;
            let subject = stored.qualified_login();
            self.audit(tx, Action::AccountCreate, &subject, detail, now)?;
            Ok(stored.account)
        })
    }

    pub fn update_account(&self, login: &str, update: AccountUpdate) -> Result<Account, AuthError> {
        let login = LoginRef::parse(login)?;
        if let Some(email) = &update.email {
            check_email(email)?;
        }
        let texts = [
            ("first-name", &update.first_name),
            ("last-name", &update.last_name),
            ("company", &update.company),
            ("phone", &update.phone),
        ];
        for (field, value) in texts {
            optional_text(field, value.as_deref())?;
        }
        let password_hash = update
            .password
            .as_deref()
            .map(|password| self.hash_password(password))
            .transpose()?;
        let now = self.now();
        self.write(|tx| {
            let mut stored = existing(tx, login)?;
            let changed = apply_update(&mut stored, &update, password_hash.as_deref());
            if changed.is_empty() {
                return Ok(stored.account);
            }
            if let Some(email) = &update.email {
                check_email_free(tx, email, Some(&stored.account.id))?;
            }
            stored.account.updated = now;
            tx.update_account(&stored)?;
            let subject = stored.qualified_login();
            self.audit(tx, Action::AccountUpdate, &subject, changed.join(", "), now)?;
            Ok(stored.account)
        })
    }

    /// Renames an account or sub-user (`PARENT/SUB`); `new_login` is the bare login, which
    /// must be free where the account lives (among top-level accounts, or the parent's
    /// sub-users). Keys, tokens and sub-users follow: they belong to the account's id.
    pub fn rename_account(&self, login: &str, new_login: &str) -> Result<Account, AuthError> {
        let login = LoginRef::parse(login)?;
        check_login("login", new_login)?;
        let now = self.now();
        self.write(|tx| {
            let mut stored = existing(tx, login)?;
            if stored.account.login == new_login {
                return Ok(stored.account);
            }
            let parent = stored.account.parent.clone();
            check_login_free(tx, LoginRef::new(parent.as_deref(), new_login))?;
            let was = stored.qualified_login();
            tx.rename_account(&stored.account.id, new_login, now)?;
            stored.account.login = new_login.to_owned();
            stored.account.updated = now;
            let subject = stored.qualified_login();
            self.audit(
                tx,
                Action::AccountUpdate,
                &subject,
                format!("login (was {was})"),
                now,
            )?;
            Ok(stored.account)
        })
    }

    /// Removes an account with its sub-users, keys and tokens.
    pub fn delete_account(&self, login: &str) -> Result<(), AuthError> {
        let login = LoginRef::parse(login)?;
        let now = self.now();
        self.write(|tx| {
            let stored = existing(tx, login)?;
            tx.delete_account(&stored.account.id)?;
            let subject = stored.qualified_login();
            self.audit(tx, Action::AccountDelete, &subject, String::new(), now)
        })
    }

    pub fn list_realms(&self) -> Result<Vec<Realm>, AuthError> {
        self.read(|tx| tx.realms())
    }

    /// Adds a realm; with `default`, it becomes the only default realm.
    pub fn add_realm(
        &self,
        name: &str,
        description: &str,
        default: bool,
    ) -> Result<Realm, AuthError> {
        check_realm_name(name)?;
        check_text("description", description, 1024)?;
        let now = self.now();
        self.write(|tx| {
            if tx.realm(name)?.is_some() {
                return Err(AuthError::Conflict(format!("realm {name}")));
            }
            if default {
                tx.clear_default_realm()?;
            }
            let realm = Realm {
                name: name.to_owned(),
                description: description.to_owned(),
                is_default: default,
            };
            tx.insert_realm(&realm)?;
            let detail = if default { "default" } else { "" };
            self.audit(tx, Action::RealmAdd, name, detail.to_owned(), now)?;
            Ok(realm)
        })
    }

    /// Checks a password for a login (`PARENT/SUB` for a sub-user) or an email, in
    /// `realm` if given. A login is tried before an email. Costs one Argon2id
    /// verification whether or not the account exists; a disabled account is
    /// `Disabled` only once its password was right.
    pub fn verify_password(
        &self,
        login_or_email: &str,
        password: &str,
        realm: Option<&str>,
        peer: &str,
    ) -> Result<Account, AuthError> {
        let presented = PasswordLogin::parse(login_or_email)?;
        if let Some(realm) = realm {
            check_realm_name(realm)?;
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(invalid("password: longer than 1024 bytes"));
        }
        let now = self.now();
        let found = self
            .read(|tx| presented.find(tx))?
            .filter(|found| realm.is_none_or(|realm| found.account.realm == realm));
        let attempt = Attempt {
            action: Action::PasswordCheck,
            presented: login_or_email.to_owned(),
            counters: counters(found.as_ref(), login_or_email, peer),
            peer,
        };
        self.refuse_if_throttled(&attempt, now)?;
        let hash = found
            .as_ref()
            .and_then(|found| found.password_hash.as_deref());
        let right = self.inner.passwords.verify(password, hash);
        match found {
            None => Err(self.fail(&attempt, Outcome::Unknown, String::new(), now)),
            Some(_) if !right => {
                Err(self.fail(&attempt, Outcome::InvalidCredentials, String::new(), now))
            }
            Some(found) if found.is_disabled() => Err(self.refuse(
                &attempt,
                Outcome::Disabled,
                String::new(),
                now,
                AuthError::Disabled,
            )),
            Some(found) => Ok(found.account),
        }
    }

    // SSH keys.

    /// Adds an OpenSSH public key to an account or sub-user. An empty `name` names the
    /// key by its MD5 fingerprint, as CloudAPI does.
    pub fn add_key(&self, owner: &str, name: &str, openssh_key: &str) -> Result<SshKey, AuthError> {
        let owner = LoginRef::parse(owner)?;
        let parsed = keys::parse_openssh(openssh_key)?;
        let name = if name.is_empty() {
            parsed.md5.clone()
        } else {
            check_key_name(name)?;
            name.to_owned()
        };
        let now = self.now();
        self.write(|tx| {
            let account = existing(tx, owner)?;
            let id = &account.account.id;
            if tx.key_by_name(id, &name)?.is_some() {
                return Err(AuthError::Conflict(format!("key name {name}")));
            }
            let fingerprint = Fingerprint::Sha256(parsed.sha256.clone());
            if let Some(existing) = tx.key_by_fingerprint(id, &fingerprint)? {
                return Err(AuthError::Conflict(format!(
                    "key (already added as {})",
                    existing.name
                )));
            }
            let key = stored_key(&parsed, &name, now);
            tx.insert_key(id, &key)?;
            let detail = format!("key {name} {}", key.sha256);
            let owner = account.qualified_login();
            self.audit(tx, Action::KeyAdd, &owner, detail, now)?;
            Ok(key.into_ssh_key(owner))
        })
    }

    pub fn list_keys(&self, owner: &str) -> Result<Vec<SshKey>, AuthError> {
        let owner = LoginRef::parse(owner)?;
        self.read(|tx| {
            let account = existing(tx, owner)?;
            let login = account.qualified_login();
            let keys = tx.keys(&account.account.id)?;
            Ok(keys
                .into_iter()
                .map(|key| key.into_ssh_key(login.clone()))
                .collect())
        })
    }

    /// A key by name or by either fingerprint (a fingerprint match wins over a name).
    pub fn get_key(
        &self,
        owner: &str,
        name_or_fingerprint: &str,
    ) -> Result<Option<SshKey>, AuthError> {
        let owner = LoginRef::parse(owner)?;
        check_key_name(name_or_fingerprint)?;
        self.read(|tx| {
            let account = existing(tx, owner)?;
            let key = find_key(tx, &account.account.id, name_or_fingerprint)?;
            Ok(key.map(|key| key.into_ssh_key(account.qualified_login())))
        })
    }

    pub fn delete_key(&self, owner: &str, name_or_fingerprint: &str) -> Result<(), AuthError> {
        let owner = LoginRef::parse(owner)?;
        check_key_name(name_or_fingerprint)?;
        let now = self.now();
        self.write(|tx| {
            let account = existing(tx, owner)?;
            let key = find_key(tx, &account.account.id, name_or_fingerprint)?
                .ok_or_else(|| AuthError::NotFound(format!("key {name_or_fingerprint}")))?;
            tx.delete_key(&account.account.id, &key.name)?;
            let detail = format!("key {} {}", key.name, key.sha256);
            let subject = account.qualified_login();
            self.audit(tx, Action::KeyDelete, &subject, detail, now)
        })
    }

    /// Verifies an HTTP Signature: `key_id` is `/LOGIN/keys/KEY` or
    /// `/LOGIN/users/SUB/keys/KEY` (KEY an MD5 or SHA256 fingerprint, or the key's
    /// name); `algorithm` as clients send it. An unsupported algorithm is `Invalid`;
    /// a supported one that does not fit the key's type (say `rsa-sha256` with an
    /// Ed25519 key) is a failed signature: `InvalidCredentials`, counted and audited.
    pub fn verify_signature(
        &self,
        key_id: &str,
        algorithm: &str,
        signing_string: &[u8],
        signature: &[u8],
        peer: &str,
    ) -> Result<Signer, AuthError> {
        let id = KeyId::parse(key_id)?;
        let owner = match id.sub_user {
            Some(sub) => LoginRef::new(Some(id.login), sub),
            None => LoginRef::top(id.login),
        };
        owner.check()?;
        check_key_name(id.key)?;
        let algorithm = Algorithm::parse(algorithm)?;
        if signature.len() > MAX_SIGNATURE_BYTES {
            return Err(invalid("signature: longer than 4 KiB"));
        }
        let now = self.now();
        let found = self.read(|tx| {
            let Some(account) = find_account(tx, owner)? else {
                return Ok(None);
            };
            let key = find_key(tx, &account.account.id, id.key)?;
            Ok(Some((account, key)))
        })?;
        let attempt = Attempt {
            action: Action::SignatureCheck,
            presented: key_id.to_owned(),
            counters: counters(
                found.as_ref().map(|(account, _)| account),
                &owner.to_string(),
                peer,
            ),
            peer,
        };
        self.refuse_if_throttled(&attempt, now)?;
        let Some((account, Some(key))) = found else {
            return Err(self.fail(&attempt, Outcome::Unknown, String::new(), now));
        };
        let detail = format!("key {} {}", key.name, key.sha256);
        let verified = keys::parse_openssh(&key.openssh)
            .is_ok_and(|parsed| parsed.verify(algorithm, signing_string, signature));
        if !verified {
            return Err(self.fail(&attempt, Outcome::InvalidCredentials, detail, now));
        }
        if account.is_disabled() {
            return Err(self.refuse(
                &attempt,
                Outcome::Disabled,
                detail,
                now,
                AuthError::Disabled,
            ));
        }
        let owner = account.qualified_login();
        Ok(Signer {
            account: account.account,
            key: key.into_ssh_key(owner),
        })
    }

    // Tokens.

    /// Issues a token; its value is in the answer and nowhere else.
    pub fn issue_token(&self, request: TokenRequest) -> Result<IssuedToken, AuthError> {
        let owner = LoginRef::parse(&request.owner)?;
        check_scope(&request.scope, false)?;
        let binding = optional_text("binding", request.binding.as_deref())?;
        let description = optional_text("description", request.description.as_deref())?;
        let ttl = positive("ttl-seconds", request.ttl_seconds)?;
        let idle_ttl = positive("idle-ttl-seconds", request.idle_ttl_seconds)?;
        let now = self.now();
        self.write(|tx| {
            let account = existing(tx, owner)?;
            if account.is_disabled() {
                return Err(AuthError::Disabled);
            }
            let idle_ttl = match idle_ttl {
                Some(seconds) => Some(seconds),
                None => tx.scope_idle_ttl(&request.scope)?,
            };
            let id = tx.next_token_id()?;
            let value = tokens::generate(request.format, id);
            let token = StoredToken {
                id,
                hash: tokens::hash(&value),
                account_id: account.account.id.clone(),
                scope: request.scope.clone(),
                binding: binding.clone(),
                description: description.clone(),
                one_use: request.one_use,
                created: now,
                expires_at: ttl.map(|seconds| after(now, seconds)),
                idle_ttl_secs: idle_ttl,
                idle_expires_at: idle_ttl.map(|seconds| after(now, seconds)),
                last_used: None,
                revoked_at: None,
            };
            tx.insert_token(&token)?;
            let detail = format!(
                "token {id} scope {}{}",
                token.scope,
                if token.one_use { " one-use" } else { "" }
            );
            let subject = account.qualified_login();
            self.audit(tx, Action::TokenIssue, &subject, detail, now)?;
            Ok(IssuedToken {
                id: id.to_string(),
                value,
                expires_at: tokens::earliest(token.expires_at, token.idle_expires_at),
            })
        })
    }

    /// Checks a token for `scope` (a trailing `*` matches a scope prefix), slides its
    /// idle expiry and, for a one-use token, consumes it.
    pub fn check_token(
        &self,
        value: &str,
        scope: &str,
        peer: &str,
    ) -> Result<TokenClaims, AuthError> {
        check_scope(scope, true)?;
        let now = self.now();
        let attempt = Attempt {
            action: Action::TokenCheck,
            presented: String::new(),
            counters: throttle::peer_subject(peer).into_iter().collect(),
            peer,
        };
        self.refuse_if_throttled(&attempt, now)?;
        let hash = tokens::hash(value);
        let found = if value.len() > tokens::MAX_TOKEN_BYTES {
            None
        } else {
            self.read(|tx| {
                let Some(token) = tx.token_by_hash(&hash)? else {
                    return Ok(None);
                };
                Ok(tx
                    .account(AccountKey::Id(&token.account_id))?
                    .map(|owner| (token, owner)))
            })?
        };
        // The lookup went by hash; compare it again without an early exit anyway.
        let Some((token, owner)) = found.filter(|(token, _)| constant_time_eq(&token.hash, &hash))
        else {
            return Err(self.fail(&attempt, Outcome::Unknown, String::new(), now));
        };
        let attempt = Attempt {
            presented: owner.qualified_login(),
            ..attempt
        };
        if let Some((outcome, error)) = token_refusal(&token, &owner, scope, now) {
            let detail = format!("token {} scope {}", token.id, token.scope);
            return Err(self.refuse(&attempt, outcome, detail, now, error));
        }
        let idle_expires_at = self.use_token(&token, &attempt, now)?;
        Ok(TokenClaims {
            id: token.id.to_string(),
            owner: owner.account,
            scope: token.scope,
            binding: token.binding,
            expires_at: tokens::earliest(token.expires_at, idle_expires_at),
            description: token.description,
        })
    }

    /// Revokes a token by id; revoking a revoked token again is not an error.
    pub fn revoke_token(&self, id: &str) -> Result<(), AuthError> {
        let number = token_number(id)?;
        let now = self.now();
        self.write(|tx| {
            let token = tx
                .token(number)?
                .ok_or_else(|| AuthError::NotFound(format!("token {id}")))?;
            if !tx.revoke_token(number, now)? {
                return Ok(());
            }
            let owner = tx.account(AccountKey::Id(&token.account_id))?;
            let subject = owner
                .map(|owner| owner.qualified_login())
                .unwrap_or_default();
            let detail = format!("token {number} scope {}", token.scope);
            self.audit(tx, Action::TokenRevoke, &subject, detail, now)
        })
    }

    /// The tokens of an account or sub-user, oldest first: never values or hashes.
    pub fn list_tokens(&self, owner: &str) -> Result<Vec<TokenInfo>, AuthError> {
        let owner = LoginRef::parse(owner)?;
        self.read(|tx| {
            let account = existing(tx, owner)?;
            let login = account.qualified_login();
            let found = tx.tokens(&account.account.id)?;
            Ok(found
                .into_iter()
                .map(|token| token.info(login.clone()))
                .collect())
        })
    }

    /// Sets the idle TTL that new tokens of `scope` get when their request names none;
    /// 0 removes it. Tokens already issued keep theirs.
    pub fn set_idle_ttl(&self, scope: &str, seconds: u64) -> Result<(), AuthError> {
        check_scope(scope, false)?;
        let now = self.now();
        self.write(|tx| {
            tx.set_scope_idle_ttl(scope, (seconds > 0).then_some(seconds))?;
            let detail = format!("idle ttl {seconds} s");
            self.audit(tx, Action::ScopeIdleTtl, scope, detail, now)
        })
    }

    /// Deletes expired and revoked tokens and stale throttle counters; returns how
    /// many tokens went. The kernel calls it periodically.
    pub fn purge_expired(&self) -> Result<u64, AuthError> {
        let now = self.now();
        self.write(|tx| {
            let purged = tx.purge_tokens(now)?;
            self.inner.throttle.purge(tx, now)?;
            if purged > 0 {
                self.audit(tx, Action::TokenPurge, "", format!("{purged} tokens"), now)?;
            }
            Ok(purged)
        })
    }

    // Sealing.

    /// Encrypts `plaintext` under the site key for `context` (the plugin's
    /// name); only `unseal` with the same context opens it.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, AuthError> {
        self.inner.sealer.seal(context, plaintext)
    }

    /// Opens what `seal` made for `context`; any other value is `InvalidCredentials`.
    pub fn unseal(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, AuthError> {
        self.inner.sealer.unseal(context, sealed)
    }

    /// The newest `limit` audit entries, newest first.
    pub fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, AuthError> {
        self.read(|tx| tx.audit(limit))
    }

    // Plumbing.

    fn now(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    fn hash_password(&self, password: &str) -> Result<String, AuthError> {
        check_password(password)?;
        self.inner.passwords.hash(password)
    }

    fn read<R>(&self, body: impl FnOnce(&dyn Tx) -> Result<R, AuthError>) -> Result<R, AuthError> {
        run_once(|tx_body| self.inner.store.read(tx_body), body)
    }

    /// Runs `body` in one write transaction: all its writes land, or none.
    fn write<R>(&self, body: impl FnOnce(&dyn Tx) -> Result<R, AuthError>) -> Result<R, AuthError> {
        run_once(|tx_body| self.inner.store.write(tx_body), body)
    }

    /// Audits a change made through this handle.
    fn audit(
        &self,
        tx: &dyn Tx,
        action: Action,
        subject: &str,
        detail: String,
        now: u64,
    ) -> Result<(), AuthError> {
        let event = Event {
            action,
            subject,
            detail,
            outcome: Outcome::Ok,
        };
        event.write(tx, &self.origin.actor, &self.origin.peer, now)
    }

    /// Audits an authentication attempt, from the peer it came from.
    fn audit_attempt(
        &self,
        tx: &dyn Tx,
        attempt: &Attempt<'_>,
        outcome: Outcome,
        detail: String,
        now: u64,
    ) -> Result<(), AuthError> {
        let event = Event {
            action: attempt.action,
            subject: &attempt.presented,
            detail,
            outcome,
        };
        event.write(tx, &self.origin.actor, attempt.peer, now)
    }

    /// `Throttled` (audited) if any counter of the attempt is paused.
    fn refuse_if_throttled(&self, attempt: &Attempt<'_>, now: u64) -> Result<(), AuthError> {
        let throttle = &self.inner.throttle;
        let Some(seconds) = self.read(|tx| throttle.blocked(tx, &attempt.counters, now))? else {
            return Ok(());
        };
        tracing::warn!(
            action = ?attempt.action,
            subject = %audit::printable(&attempt.presented, 128),
            peer = %audit::printable(attempt.peer, 128),
            retry_after = seconds,
            "authentication throttled"
        );
        let detail = format!("retry after {seconds} s");
        Err(self.refuse(
            attempt,
            Outcome::Throttled,
            detail,
            now,
            AuthError::Throttled(seconds),
        ))
    }

    /// Counts a failed attempt against its counters and audits it; the error to return.
    fn fail(&self, attempt: &Attempt<'_>, outcome: Outcome, detail: String, now: u64) -> AuthError {
        let throttle = &self.inner.throttle;
        let recorded = self.write(|tx| {
            throttle.record_failure(tx, &attempt.counters, now)?;
            self.audit_attempt(tx, attempt, outcome, detail, now)
        });
        recorded.err().unwrap_or(AuthError::InvalidCredentials)
    }

    /// Audits a refused attempt without counting it; returns `error`.
    fn refuse(
        &self,
        attempt: &Attempt<'_>,
        outcome: Outcome,
        detail: String,
        now: u64,
        error: AuthError,
    ) -> AuthError {
        let written = self.write(|tx| self.audit_attempt(tx, attempt, outcome, detail, now));
        written.err().unwrap_or(error)
    }

    /// Records a successful use: consumes a one-use token, slides the idle expiry.
    /// Returns the new idle expiry.
    fn use_token(
        &self,
        token: &StoredToken,
        attempt: &Attempt<'_>,
        now: u64,
    ) -> Result<Option<u64>, AuthError> {
        let idle_expires_at = token.idle_ttl_secs.map(|seconds| after(now, seconds));
        if token.one_use {
            let consumed = self.write(|tx| {
                if !tx.revoke_token(token.id, now)? {
                    return Ok(false);
                }
                let detail = format!("token {} scope {} consumed", token.id, token.scope);
                self.audit_attempt(tx, attempt, Outcome::Ok, detail, now)?;
                Ok(true)
            })?;
            if !consumed {
                let detail = format!("token {} scope {}", token.id, token.scope);
                return Err(self.refuse(
                    attempt,
                    Outcome::Revoked,
                    detail,
                    now,
                    AuthError::InvalidCredentials,
                ));
            }
        } else if tokens::needs_touch(token, now) {
            self.write(|tx| tx.touch_token(token.id, idle_expires_at, now))?;
        }
        Ok(idle_expires_at)
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl<'a> LoginRef<'a> {
    fn new(parent: Option<&'a str>, login: &'a str) -> Self {
        LoginRef { parent, login }
    }

    fn top(login: &'a str) -> Self {
        LoginRef::new(None, login)
    }

    /// `LOGIN` or `PARENT/SUB`.
    fn parse(text: &'a str) -> Result<Self, AuthError> {
        let login = match text.split_once('/') {
            Some((parent, login)) => LoginRef::new(Some(parent), login),
            None => LoginRef::top(text),
        };
        login.check()?;
        Ok(login)
    }

    fn check(&self) -> Result<(), AuthError> {
        if let Some(parent) = self.parent {
            check_login("login", parent)?;
        }
        check_login("login", self.login)
    }
}

impl fmt::Display for LoginRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parent {
            Some(parent) => write!(f, "{parent}/{}", self.login),
            None => f.write_str(self.login),
        }
    }
}

/// What `verify_password` was given to find the account by: a login, an email, or
/// text that reads as both (tried as a login first).
#[derive(Debug, Clone, Copy)]
struct PasswordLogin<'a> {
    login: Option<LoginRef<'a>>,
    email: Option<&'a str>,
}

impl<'a> PasswordLogin<'a> {
    fn parse(text: &'a str) -> Result<Self, AuthError> {
        let login = LoginRef::parse(text).ok();
        let email = check_email(text).ok().map(|()| text);
        if login.is_none() && email.is_none() {
            return Err(invalid("login: neither a login nor an email"));
        }
        Ok(PasswordLogin { login, email })
    }

    fn find(self, tx: &dyn Tx) -> Result<Option<StoredAccount>, AuthError> {
        if let Some(login) = self.login
            && let Some(found) = find_account(tx, login)?
        {
            return Ok(Some(found));
        }
        match self.email {
            Some(email) => tx.account(AccountKey::Email(email)),
            None => Ok(None),
        }
    }
}

impl StoredAccount {
    /// A new, enabled account from a checked request.
    fn new(
        new: NewAccount,
        parent: Option<&StoredAccount>,
        realm: String,
        password_hash: Option<String>,
        now: u64,
    ) -> Self {
        StoredAccount {
            account: Account {
                id: uuid::Uuid::new_v4().to_string(),
                login: new.login,
                email: new.email,
                first_name: new.first_name,
                last_name: new.last_name,
                company: new.company,
                phone: new.phone,
                realm,
                admin: new.admin,
                disabled: false,
                parent: new.parent,
                created: now,
                updated: now,
            },
            parent_id: parent.map(|parent| parent.account.id.clone()),
            parent_disabled: parent.is_some_and(|parent| parent.account.disabled),
            password_hash,
        }
    }

    /// `LOGIN`, or `PARENT/SUB` for a sub-user.
    fn qualified_login(&self) -> String {
        match &self.account.parent {
            Some(parent) => format!("{parent}/{}", self.account.login),
            None => self.account.login.clone(),
        }
    }

    /// Disabled itself, or a sub-user of a disabled account.
    fn is_disabled(&self) -> bool {
        self.account.disabled || self.parent_disabled
    }
}

impl StoredKey {
    fn into_ssh_key(self, owner: String) -> SshKey {
        SshKey {
            name: self.name,
            key: self.openssh,
            fingerprint_md5: self.md5,
            fingerprint_sha256: self.sha256,
            owner,
            created: self.created,
        }
    }
}

impl StoredToken {
    fn info(self, owner: String) -> TokenInfo {
        TokenInfo {
            id: self.id.to_string(),
            owner,
            scope: self.scope,
            binding: self.binding,
            description: self.description,
            one_use: self.one_use,
            created: self.created,
            expires_at: self.expires_at,
            idle_ttl_seconds: self.idle_ttl_secs,
            idle_expires_at: self.idle_expires_at,
            last_used: self.last_used,
            revoked: self.revoked_at.is_some(),
        }
    }
}

impl fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccount")
            .field("login", &self.login)
            .field("email", &self.email)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("realm", &self.realm)
            .field("admin", &self.admin)
            .field("parent", &self.parent)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for AccountUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountUpdate")
            .field("email", &self.email)
            .field("disabled", &self.disabled)
            .field("admin", &self.admin)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Runs `body` exactly once inside the transaction `open` starts, passing its result out.
fn run_once<R>(
    open: impl FnOnce(store::TxBody<'_>) -> Result<(), AuthError>,
    body: impl FnOnce(&dyn Tx) -> Result<R, AuthError>,
) -> Result<R, AuthError> {
    let mut body = Some(body);
    let mut result = None;
    open(&mut |tx| {
        let body = body
            .take()
            .ok_or_else(|| AuthError::Backend("a transaction body ran twice".into()))?;
        result = Some(body(tx)?);
        Ok(())
    })?;
    result.ok_or_else(|| AuthError::Backend("a transaction body did not run".into()))
}

/// Creates the `default` realm if it is missing; it is the default realm unless another is.
fn ensure_default_realm(tx: &dyn Tx) -> Result<(), AuthError> {
    if tx.realm(DEFAULT_REALM)?.is_some() {
        return Ok(());
    }
    tx.insert_realm(&Realm {
        name: DEFAULT_REALM.into(),
        description: "Default realm".into(),
        is_default: tx.default_realm()?.is_none(),
    })
}

fn find_account(tx: &dyn Tx, login: LoginRef<'_>) -> Result<Option<StoredAccount>, AuthError> {
    let Some(parent) = login.parent else {
        return tx.account(AccountKey::Login(login.login));
    };
    let Some(parent) = tx.account(AccountKey::Login(parent))? else {
        return Ok(None);
    };
    tx.account(AccountKey::SubUser {
        parent_id: &parent.account.id,
        login: login.login,
    })
}

/// The account `login` names, or `NotFound`.
fn existing(tx: &dyn Tx, login: LoginRef<'_>) -> Result<StoredAccount, AuthError> {
    find_account(tx, login)?.ok_or_else(|| AuthError::NotFound(format!("account {login}")))
}

/// A key by fingerprint, else by name.
fn find_key(
    tx: &dyn Tx,
    account_id: &str,
    name_or_fingerprint: &str,
) -> Result<Option<StoredKey>, AuthError> {
    if let Some(fingerprint) = Fingerprint::parse(name_or_fingerprint)
        && let Some(key) = tx.key_by_fingerprint(account_id, &fingerprint)?
    {
        return Ok(Some(key));
    }
    tx.key_by_name(account_id, name_or_fingerprint)
}

fn stored_key(parsed: &ParsedKey, name: &str, now: u64) -> StoredKey {
    StoredKey {
        name: name.to_owned(),
        openssh: parsed.openssh.clone(),
        md5: parsed.md5.clone(),
        sha256: parsed.sha256.clone(),
        created: now,
    }
}

/// `new` with every field checked and empty optional texts made `None`.
fn checked_new_account(new: NewAccount) -> Result<NewAccount, AuthError> {
    check_login("login", &new.login)?;
    check_email(&new.email)?;
    if let Some(realm) = &new.realm {
        check_realm_name(realm)?;
    }
    if let Some(parent) = &new.parent {
        check_login("parent", parent)?;
    }
    Ok(NewAccount {
        first_name: optional_text("first-name", new.first_name.as_deref())?,
        last_name: optional_text("last-name", new.last_name.as_deref())?,
        company: optional_text("company", new.company.as_deref())?,
        phone: optional_text("phone", new.phone.as_deref())?,
        ..new
    })
}

/// The parent (for a sub-user) and realm a new account goes into.
fn placement(
    tx: &dyn Tx,
    parent: Option<&str>,
    realm: Option<&str>,
) -> Result<(Option<StoredAccount>, String), AuthError> {
    if let Some(parent) = parent {
        let parent = existing(tx, LoginRef::top(parent))?;
        if realm.is_some_and(|realm| realm != parent.account.realm) {
            return Err(invalid("realm: a sub-user is in its parent's realm"));
        }
        let realm = parent.account.realm.clone();
        return Ok((Some(parent), realm));
    }
    let realm = match realm {
        Some(realm) => {
            tx.realm(realm)?
                .ok_or_else(|| AuthError::NotFound(format!("realm {realm}")))?
                .name
        }
        None => tx
            .default_realm()?
            .unwrap_or_else(|| DEFAULT_REALM.to_owned()),
    };
    Ok((None, realm))
}

/// `Conflict` if the login is taken where it would live. A top-level login that
/// reads as an email must not be another account's email either, so that
/// `verify_password` never has two accounts to choose from.
fn check_login_free(tx: &dyn Tx, login: LoginRef<'_>) -> Result<(), AuthError> {
    let taken = find_account(tx, login)?.is_some()
        || (login.parent.is_none() && tx.account(AccountKey::Email(login.login))?.is_some());
    if taken {
        return Err(AuthError::Conflict(format!("login {login}")));
    }
    Ok(())
}

/// `Conflict` if another account has the email, or a top-level login spelt like it.
fn check_email_free(tx: &dyn Tx, email: &str, except_id: Option<&str>) -> Result<(), AuthError> {
    let other = |found: Option<StoredAccount>| {
        found.is_some_and(|found| Some(found.account.id.as_str()) != except_id)
    };
    let login_taken =
        check_login("login", email).is_ok() && other(tx.account(AccountKey::Login(email))?);
    if other(tx.account(AccountKey::Email(email))?) || login_taken {
        return Err(AuthError::Conflict("email".into()));
    }
    Ok(())
}

/// Applies `update` to `stored`; returns the names of the fields that changed.
fn apply_update(
    stored: &mut StoredAccount,
    update: &AccountUpdate,
    password_hash: Option<&str>,
) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let account = &mut stored.account;
    if let Some(email) = &update.email
        && *email != account.email
    {
        account.email = email.clone();
        changed.push("email");
    }
    let texts = [
        ("first-name", &mut account.first_name, &update.first_name),
        ("last-name", &mut account.last_name, &update.last_name),
        ("company", &mut account.company, &update.company),
        ("phone", &mut account.phone, &update.phone),
    ];
    for (field, current, wanted) in texts {
        let Some(wanted) = wanted else { continue };
        let wanted = (!wanted.is_empty()).then(|| wanted.clone());
        if *current != wanted {
            *current = wanted;
            changed.push(field);
        }
    }
    let flags = [
        ("disabled", &mut account.disabled, update.disabled),
        ("admin", &mut account.admin, update.admin),
    ];
    for (field, current, wanted) in flags {
        if let Some(wanted) = wanted.filter(|wanted| *wanted != *current) {
            *current = wanted;
            changed.push(field);
        }
    }
    if let Some(hash) = password_hash {
        stored.password_hash = Some(hash.to_owned());
        changed.push("password");
    }
    changed
}

/// The throttle counters of an attempt on `account` (if it exists, else on the
/// name presented) from `peer`.
fn counters(account: Option<&StoredAccount>, presented: &str, peer: &str) -> Vec<String> {
    let own = match account {
        Some(account) => throttle::account_subject(&account.account.id),
        None => throttle::name_subject(presented),
    };
    std::iter::once(own)
        .chain(throttle::peer_subject(peer))
        .collect()
}

/// Why a token that matched does not vouch for `scope` at `now`, with the error to give.
fn token_refusal(
    token: &StoredToken,
    owner: &StoredAccount,
    scope: &str,
    now: u64,
) -> Option<(Outcome, AuthError)> {
    if let Some(outcome) = tokens::refusal(token, now) {
        return Some((outcome, AuthError::InvalidCredentials));
    }
    if !tokens::scope_matches(scope, &token.scope) {
        return Some((Outcome::WrongScope, AuthError::InvalidCredentials));
    }
    owner
        .is_disabled()
        .then_some((Outcome::Disabled, AuthError::Disabled))
}

/// `now` plus `seconds`, in ms, saturating far in the future.
fn after(now: u64, seconds: u64) -> u64 {
    now.saturating_add(seconds.saturating_mul(1000))
}

fn token_number(id: &str) -> Result<u64, AuthError> {
    id.parse()
        .map_err(|_| invalid("token id: not a token number"))
}

// Validation. Messages name the field and the rule, never echo a value.

fn invalid(message: impl Into<String>) -> AuthError {
    AuthError::Invalid(message.into())
}

/// `[a-zA-Z][a-zA-Z0-9_.@-]{1,63}`.
fn check_login(field: &str, login: &str) -> Result<(), AuthError> {
    let mut chars = login.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'));
    if first && rest && (2..=64).contains(&login.len()) {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field}: 2 to 64 characters, a letter then letters, digits, _ . @ -"
        )))
    }
}

/// `local@domain`, at most 254 characters, no spaces or control characters.
fn check_email(email: &str) -> Result<(), AuthError> {
    let plain = email.chars().all(|c| !c.is_whitespace() && !c.is_control());
    let parts = email.split_once('@');
    let shaped = parts.is_some_and(|(local, domain)| {
        (1..=64).contains(&local.len()) && !domain.is_empty() && !domain.contains('@')
    });
    if plain && shaped && email.len() <= 254 {
        Ok(())
    } else {
        Err(invalid(
            "email: expected local@domain, at most 254 characters",
        ))
    }
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}`.
fn check_realm_name(name: &str) -> Result<(), AuthError> {
    let mut chars = name.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first && rest && name.len() <= 64 {
        Ok(())
    } else {
        Err(invalid("realm: 1 to 64 characters, letters, digits, _ . -"))
    }
}

fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), AuthError> {
    if text.chars().count() > max_chars || text.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field}: at most {max_chars} characters, no control characters"
        )));
    }
    Ok(())
}

/// An optional text field; empty means absent.
fn optional_text(field: &str, text: Option<&str>) -> Result<Option<String>, AuthError> {
    let Some(text) = text.filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    check_text(field, text, 1024)?;
    Ok(Some(text.to_owned()))
}

fn check_password(password: &str) -> Result<(), AuthError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(invalid("password: 1 to 1024 bytes"));
    }
    Ok(())
}

fn check_key_name(name: &str) -> Result<(), AuthError> {
    if name.is_empty() {
        return Err(invalid("key name: empty"));
    }
    check_text("key name", name, 255)
}

/// `[A-Za-z0-9_.:-]{1,128}`; with `wildcard`, a final `*` may follow (or stand alone).
fn check_scope(scope: &str, wildcard: bool) -> Result<(), AuthError> {
    let body = if wildcard {
        scope.strip_suffix('*').unwrap_or(scope)
    } else {
        scope
    };
    let plain = body
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if plain && !scope.is_empty() && scope.len() <= 128 {
        Ok(())
    } else {
        Err(invalid(
            "scope: 1 to 128 characters, letters, digits, _ . : - (and a final * to match a prefix)",
        ))
    }
}

fn check_id(id: &str) -> Result<(), AuthError> {
    uuid::Uuid::try_parse(id)
        .map(|_| ())
        .map_err(|_| invalid("id: not a UUID"))
}

/// A lifetime that, when given, is at least one second.
fn positive(field: &str, seconds: Option<u64>) -> Result<Option<u64>, AuthError> {
    match seconds {
        Some(0) => Err(invalid(format!("{field}: at least 1"))),
        other => Ok(other),
    }
}
