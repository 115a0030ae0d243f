//! The identity store's tables: the backend contract the API is written against, and its SQLite implementation.
//!
//! Tables (all prefixed `auth_`, in the site database beside storage's):
//! `auth_realms`, `auth_accounts` (top-level accounts and sub-users), `auth_keys`,
//! `auth_tokens` (SHA-256 hashes only), `auth_counters` (token numbers),
//! `auth_scope_settings` (default idle TTL per scope), `auth_failures` (throttle
//! counters) and `auth_audit`. Every value is a bound parameter. The SQL keeps to
//! what PostgreSQL also has (`ON CONFLICT`, `RETURNING`, expression indexes, foreign
//! keys that cascade), so a second backend can follow it closely.

use rusqlite::{Connection, Row, params};

use super::keys::Fingerprint;
use super::throttle::FailureCount;
use super::{Account, AuditEntry, AuthError, Realm};
use crate::db::{Database, DbError, query};

/// A body run inside one transaction.
pub(super) type TxBody<'a> = &'a mut dyn FnMut(&dyn Tx) -> Result<(), AuthError>;

/// What a database must provide to hold identities.
pub(super) trait Store: Send + Sync {
    /// Runs `body` in a read transaction (one snapshot).
    fn read(&self, body: TxBody<'_>) -> Result<(), AuthError>;
    /// Runs `body` in a write transaction that commits only if it returns `Ok`.
    fn write(&self, body: TxBody<'_>) -> Result<(), AuthError>;
}

/// The queries of one transaction. Arguments arrive validated.
pub(super) trait Tx {
    fn realms(&self) -> Result<Vec<Realm>, AuthError>;
    fn realm(&self, name: &str) -> Result<Option<Realm>, AuthError>;
    fn default_realm(&self) -> Result<Option<String>, AuthError>;
    fn insert_realm(&self, realm: &Realm) -> Result<(), AuthError>;
    fn clear_default_realm(&self) -> Result<(), AuthError>;

    fn account(&self, key: AccountKey<'_>) -> Result<Option<StoredAccount>, AuthError>;
    /// Accounts of `realm` (any realm if `None`) that are top-level (`parent_id` `None`)
    /// or sub-users of `parent_id`, by login.
    fn accounts(
        &self,
        realm: Option<&str>,
        parent_id: Option<&str>,
    ) -> Result<Vec<StoredAccount>, AuthError>;
    fn insert_account(&self, account: &StoredAccount) -> Result<(), AuthError>;
    /// Writes every mutable column of the account with `account.account.id`.
    fn update_account(&self, account: &StoredAccount) -> Result<(), AuthError>;
    /// Removes the account and, through the foreign keys, its sub-users, keys and tokens.
    fn delete_account(&self, id: &str) -> Result<(), AuthError>;
    /// Gives the account another login; its keys, tokens and sub-users follow by id.
    fn rename_account(&self, id: &str, login: &str, updated: u64) -> Result<(), AuthError>;

    fn keys(&self, account_id: &str) -> Result<Vec<StoredKey>, AuthError>;
    fn key_by_name(&self, account_id: &str, name: &str) -> Result<Option<StoredKey>, AuthError>;
    fn key_by_fingerprint(
        &self,
        account_id: &str,
        fingerprint: &Fingerprint,
    ) -> Result<Option<StoredKey>, AuthError>;
    fn insert_key(&self, account_id: &str, key: &StoredKey) -> Result<(), AuthError>;
    fn delete_key(&self, account_id: &str, name: &str) -> Result<(), AuthError>;

    /// The next token number: 1 first, never repeated, even after a purge.
    fn next_token_id(&self) -> Result<u64, AuthError>;
    fn insert_token(&self, token: &StoredToken) -> Result<(), AuthError>;
    fn token(&self, id: u64) -> Result<Option<StoredToken>, AuthError>;
    fn token_by_hash(&self, hash: &[u8]) -> Result<Option<StoredToken>, AuthError>;
    fn tokens(&self, account_id: &str) -> Result<Vec<StoredToken>, AuthError>;
    fn touch_token(
        &self,
        id: u64,
        idle_expires_at: Option<u64>,
        last_used: u64,
    ) -> Result<(), AuthError>;
    /// Marks a live token revoked; `false` if it was already revoked (or is gone), so
    /// two kernels consuming one single-use token cannot both succeed.
    fn revoke_token(&self, id: u64, now: u64) -> Result<bool, AuthError>;
    /// Removes revoked tokens and those past either expiry; returns how many.
    fn purge_tokens(&self, now: u64) -> Result<u64, AuthError>;
    fn scope_idle_ttl(&self, scope: &str) -> Result<Option<u64>, AuthError>;
    /// `None` removes the scope's default.
    fn set_scope_idle_ttl(&self, scope: &str, seconds: Option<u64>) -> Result<(), AuthError>;

    fn failure_count(&self, subject: &str) -> Result<Option<FailureCount>, AuthError>;
    fn put_failure_count(&self, subject: &str, count: &FailureCount) -> Result<(), AuthError>;
    /// Removes counters whose window began before `window_start_before` and that
    /// block nothing at `now`.
    fn purge_failure_counts(&self, window_start_before: u64, now: u64) -> Result<u64, AuthError>;

    /// Appends an entry; its `id` is ignored and assigned by the store.
    fn insert_audit(&self, entry: &AuditEntry) -> Result<(), AuthError>;
    /// The newest `limit` entries, newest first.
    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, AuthError>;
}

/// How an account is looked up.
#[derive(Debug, Clone, Copy)]
pub(super) enum AccountKey<'a> {
    Id(&'a str),
    /// A top-level account's login.
    Login(&'a str),
    SubUser {
        parent_id: &'a str,
        login: &'a str,
    },
    /// Any account's email, ignoring ASCII case.
    Email(&'a str),
}

/// An account as stored, with what only the kernel sees.
#[derive(Clone)]
pub(super) struct StoredAccount {
    pub(super) account: Account,
    pub(super) parent_id: Option<String>,
    pub(super) parent_disabled: bool,
    /// Argon2id PHC string; `None` for an account that cannot log in with a password.
    pub(super) password_hash: Option<String>,
}

/// A stored SSH public key (its owner is implied by the query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredKey {
    pub(super) name: String,
    pub(super) openssh: String,
    pub(super) md5: String,
    pub(super) sha256: String,
    pub(super) created: u64,
}

/// A stored token: never its value, only the value's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredToken {
    pub(super) id: u64,
    pub(super) hash: Vec<u8>,
    pub(super) account_id: String,
    pub(super) scope: String,
    pub(super) binding: Option<String>,
    pub(super) description: Option<String>,
    pub(super) one_use: bool,
    pub(super) created: u64,
    /// Absolute expiry, ms.
    pub(super) expires_at: Option<u64>,
    pub(super) idle_ttl_secs: Option<u64>,
    /// When the idle TTL runs out unless the token is used before, ms.
    pub(super) idle_expires_at: Option<u64>,
    pub(super) last_used: Option<u64>,
    pub(super) revoked_at: Option<u64>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS auth_realms (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    is_default INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_accounts (
    id TEXT PRIMARY KEY,
    parent_id TEXT REFERENCES auth_accounts (id) ON DELETE CASCADE,
    login TEXT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT,
    first_name TEXT,
    last_name TEXT,
    company TEXT,
    phone TEXT,
    realm TEXT NOT NULL REFERENCES auth_realms (name),
    admin INTEGER NOT NULL,
    disabled INTEGER NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS auth_accounts_login
    ON auth_accounts (coalesce(parent_id, ''), login);
CREATE UNIQUE INDEX IF NOT EXISTS auth_accounts_email ON auth_accounts (lower(email));
CREATE INDEX IF NOT EXISTS auth_accounts_parent ON auth_accounts (parent_id);
CREATE TABLE IF NOT EXISTS auth_keys (
    account_id TEXT NOT NULL REFERENCES auth_accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    openssh TEXT NOT NULL,
    fingerprint_md5 TEXT NOT NULL,
    fingerprint_sha256 TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (account_id, name),
    UNIQUE (account_id, fingerprint_sha256)
);
CREATE INDEX IF NOT EXISTS auth_keys_md5 ON auth_keys (account_id, fingerprint_md5);
CREATE TABLE IF NOT EXISTS auth_tokens (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES auth_accounts (id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    binding TEXT,
    description TEXT,
    one_use INTEGER NOT NULL,
    created INTEGER NOT NULL,
    expires_at INTEGER,
    idle_ttl INTEGER,
    idle_expires_at INTEGER,
    last_used INTEGER,
    revoked_at INTEGER
);
CREATE INDEX IF NOT EXISTS auth_tokens_account ON auth_tokens (account_id);
CREATE TABLE IF NOT EXISTS auth_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS auth_scope_settings (
    scope TEXT PRIMARY KEY,
    idle_ttl INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_failures (
    subject TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    blocked_until INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    peer TEXT NOT NULL,
    outcome TEXT NOT NULL
);
";

/// The account columns, in the order `read_account` reads them.
const ACCOUNT_SELECT: &str = "SELECT a.id, a.login, a.email, a.first_name, a.last_name, \
    a.company, a.phone, a.realm, a.admin, a.disabled, p.login, a.created, a.updated, \
    a.parent_id, coalesce(p.disabled, 0), a.password_hash \
    FROM auth_accounts a LEFT JOIN auth_accounts p ON p.id = a.parent_id";
const KEY_SELECT: &str =
    "SELECT name, openssh, fingerprint_md5, fingerprint_sha256, created FROM auth_keys";
const TOKEN_SELECT: &str = "SELECT id, hash, account_id, scope, binding, description, \
    one_use, created, expires_at, idle_ttl, idle_expires_at, last_used, revoked_at \
    FROM auth_tokens";

impl From<DbError> for AuthError {
    fn from(error: DbError) -> Self {
        AuthError::Backend(error.to_string())
    }
}

impl From<rusqlite::Error> for AuthError {
    fn from(error: rusqlite::Error) -> Self {
        // Constraint messages name tables and columns, never the values bound.
        AuthError::Backend(error.to_string())
    }
}

/// The identity store in the site's SQLite database.
pub(super) struct SqliteStore {
    db: Database,
}

impl SqliteStore {
    /// Creates the tables if needed.
    pub(super) fn open(db: Database) -> Result<SqliteStore, AuthError> {
        db.with_write_tx(|tx| Ok::<_, AuthError>(tx.execute_batch(SCHEMA)?))?;
        Ok(SqliteStore { db })
    }
}

impl Store for SqliteStore {
    fn read(&self, body: TxBody<'_>) -> Result<(), AuthError> {
        self.db.with_read_tx(|tx| body(&SqliteTx(tx)))
    }

    fn write(&self, body: TxBody<'_>) -> Result<(), AuthError> {
        self.db.with_write_tx(|tx| body(&SqliteTx(tx)))
    }
}

struct SqliteTx<'a>(&'a Connection);

impl SqliteTx<'_> {
    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize, AuthError> {
        query::execute(self.0, sql, params)
    }

    fn one<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, AuthError> {
        query::one(self.0, sql, params, read)
    }

    fn all<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, AuthError> {
        query::all(self.0, sql, params, read)
    }
}

impl Tx for SqliteTx<'_> {
    fn realms(&self) -> Result<Vec<Realm>, AuthError> {
        self.all(
            "SELECT name, description, is_default FROM auth_realms ORDER BY name",
            [],
            read_realm,
        )
    }

    fn realm(&self, name: &str) -> Result<Option<Realm>, AuthError> {
        self.one(
            "SELECT name, description, is_default FROM auth_realms WHERE name = ?1",
            [name],
            read_realm,
        )
    }

    fn default_realm(&self) -> Result<Option<String>, AuthError> {
        self.one(
            "SELECT name FROM auth_realms WHERE is_default = 1 ORDER BY name LIMIT 1",
            [],
            |row| row.get(0),
        )
    }

    fn insert_realm(&self, realm: &Realm) -> Result<(), AuthError> {
        self.execute(
            "INSERT INTO auth_realms (name, description, is_default) VALUES (?1, ?2, ?3)",
            params![realm.name, realm.description, realm.is_default],
        )?;
        Ok(())
    }

    fn clear_default_realm(&self) -> Result<(), AuthError> {
        self.execute(
            "UPDATE auth_realms SET is_default = 0 WHERE is_default = 1",
            [],
        )?;
        Ok(())
    }

    fn account(&self, key: AccountKey<'_>) -> Result<Option<StoredAccount>, AuthError> {
        match key {
            AccountKey::Id(id) => self.one(
                &format!("{ACCOUNT_SELECT} WHERE a.id = ?1"),
                [id],
                read_account,
            ),
            AccountKey::Login(login) => self.one(
                &format!("{ACCOUNT_SELECT} WHERE a.parent_id IS NULL AND a.login = ?1"),
                [login],
                read_account,
            ),
            AccountKey::SubUser { parent_id, login } => self.one(
                &format!("{ACCOUNT_SELECT} WHERE a.parent_id = ?1 AND a.login = ?2"),
                [parent_id, login],
                read_account,
            ),
            AccountKey::Email(email) => self.one(
                &format!("{ACCOUNT_SELECT} WHERE lower(a.email) = lower(?1)"),
                [email],
                read_account,
            ),
        }
    }

    fn accounts(
        &self,
        realm: Option<&str>,
        parent_id: Option<&str>,
    ) -> Result<Vec<StoredAccount>, AuthError> {
        self.all(
            &format!(
                "{ACCOUNT_SELECT} WHERE (?1 IS NULL OR a.realm = ?1) \
                 AND coalesce(a.parent_id, '') = coalesce(?2, '') ORDER BY a.login"
            ),
            params![realm, parent_id],
            read_account,
        )
    }

    fn insert_account(&self, stored: &StoredAccount) -> Result<(), AuthError> {
        let a = &stored.account;
        self.execute(
            "INSERT INTO auth_accounts (id, parent_id, login, email, password_hash, first_name, \
               last_name, company, phone, realm, admin, disabled, created, updated) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                a.id,
                stored.parent_id,
                a.login,
                a.email,
                stored.password_hash,
                a.first_name,
                a.last_name,
                a.company,
                a.phone,
                a.realm,
                a.admin,
                a.disabled,
                a.created,
                a.updated
            ],
        )?;
        Ok(())
    }

    fn update_account(&self, stored: &StoredAccount) -> Result<(), AuthError> {
        let a = &stored.account;
        self.execute(
            "UPDATE auth_accounts SET email = ?2, password_hash = ?3, first_name = ?4, \
               last_name = ?5, company = ?6, phone = ?7, admin = ?8, disabled = ?9, updated = ?10 \
             WHERE id = ?1",
            params![
                a.id,
                a.email,
                stored.password_hash,
                a.first_name,
                a.last_name,
                a.company,
                a.phone,
                a.admin,
                a.disabled,
                a.updated
            ],
        )?;
        Ok(())
    }

    fn delete_account(&self, id: &str) -> Result<(), AuthError> {
        self.execute("DELETE FROM auth_accounts WHERE id = ?1", [id])?;
        Ok(())
    }

    fn rename_account(&self, id: &str, login: &str, updated: u64) -> Result<(), AuthError> {
        self.execute(
            "UPDATE auth_accounts SET login = ?2, updated = ?3 WHERE id = ?1",
            params![id, login, updated],
        )?;
        Ok(())
    }

    fn keys(&self, account_id: &str) -> Result<Vec<StoredKey>, AuthError> {
        self.all(
            &format!("{KEY_SELECT} WHERE account_id = ?1 ORDER BY created, name"),
            [account_id],
            read_key,
        )
    }

    fn key_by_name(&self, account_id: &str, name: &str) -> Result<Option<StoredKey>, AuthError> {
        self.one(
            &format!("{KEY_SELECT} WHERE account_id = ?1 AND name = ?2"),
            [account_id, name],
            read_key,
        )
    }

    fn key_by_fingerprint(
        &self,
        account_id: &str,
        fingerprint: &Fingerprint,
    ) -> Result<Option<StoredKey>, AuthError> {
        let (column, value) = match fingerprint {
            Fingerprint::Md5(md5) => ("fingerprint_md5", md5),
            Fingerprint::Sha256(sha256) => ("fingerprint_sha256", sha256),
        };
        // Two keys of one account could share an MD5 only by a collision; take the oldest.
        self.one(
            &format!(
                "{KEY_SELECT} WHERE account_id = ?1 AND {column} = ?2 ORDER BY created LIMIT 1"
            ),
            [account_id, value.as_str()],
            read_key,
        )
    }

    fn insert_key(&self, account_id: &str, key: &StoredKey) -> Result<(), AuthError> {
        self.execute(
            "INSERT INTO auth_keys (account_id, name, openssh, fingerprint_md5, \
               fingerprint_sha256, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                account_id,
                key.name,
                key.openssh,
                key.md5,
                key.sha256,
                key.created
            ],
        )?;
        Ok(())
    }

    fn delete_key(&self, account_id: &str, name: &str) -> Result<(), AuthError> {
        self.execute(
            "DELETE FROM auth_keys WHERE account_id = ?1 AND name = ?2",
            [account_id, name],
        )?;
        Ok(())
    }

    fn next_token_id(&self) -> Result<u64, AuthError> {
        let next = self.one(
            "INSERT INTO auth_counters (name, value) VALUES ('token', 1) \
             ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
            [],
            |row| row.get(0),
        )?;
        next.ok_or_else(|| AuthError::Backend("the token counter returned no row".into()))
    }

    fn insert_token(&self, token: &StoredToken) -> Result<(), AuthError> {
        self.execute(
            "INSERT INTO auth_tokens (id, hash, account_id, scope, binding, description, \
               one_use, created, expires_at, idle_ttl, idle_expires_at, last_used, revoked_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                token.id,
                token.hash,
                token.account_id,
                token.scope,
                token.binding,
                token.description,
                token.one_use,
                token.created,
                token.expires_at,
                token.idle_ttl_secs,
                token.idle_expires_at,
                token.last_used,
                token.revoked_at
            ],
        )?;
        Ok(())
    }

    fn token(&self, id: u64) -> Result<Option<StoredToken>, AuthError> {
        self.one(&format!("{TOKEN_SELECT} WHERE id = ?1"), [id], read_token)
    }

    fn token_by_hash(&self, hash: &[u8]) -> Result<Option<StoredToken>, AuthError> {
        self.one(
            &format!("{TOKEN_SELECT} WHERE hash = ?1"),
            [hash],
            read_token,
        )
    }

    fn tokens(&self, account_id: &str) -> Result<Vec<StoredToken>, AuthError> {
        self.all(
            &format!("{TOKEN_SELECT} WHERE account_id = ?1 ORDER BY id"),
            [account_id],
            read_token,
        )
    }

    fn touch_token(
        &self,
        id: u64,
        idle_expires_at: Option<u64>,
        last_used: u64,
    ) -> Result<(), AuthError> {
        self.execute(
            "UPDATE auth_tokens SET idle_expires_at = ?2, last_used = ?3 WHERE id = ?1",
            params![id, idle_expires_at, last_used],
        )?;
        Ok(())
    }

    fn revoke_token(&self, id: u64, now: u64) -> Result<bool, AuthError> {
        let changed = self.execute(
            "UPDATE auth_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now],
        )?;
        Ok(changed == 1)
    }

    fn purge_tokens(&self, now: u64) -> Result<u64, AuthError> {
        let purged = self.execute(
            "DELETE FROM auth_tokens WHERE revoked_at IS NOT NULL \
             OR expires_at <= ?1 OR idle_expires_at <= ?1",
            [now],
        )?;
        Ok(u64::try_from(purged).unwrap_or(u64::MAX))
    }

    fn scope_idle_ttl(&self, scope: &str) -> Result<Option<u64>, AuthError> {
        self.one(
            "SELECT idle_ttl FROM auth_scope_settings WHERE scope = ?1",
            [scope],
            |row| row.get(0),
        )
    }

    fn set_scope_idle_ttl(&self, scope: &str, seconds: Option<u64>) -> Result<(), AuthError> {
        match seconds {
            Some(seconds) => self.execute(
                "INSERT INTO auth_scope_settings (scope, idle_ttl) VALUES (?1, ?2) \
                 ON CONFLICT (scope) DO UPDATE SET idle_ttl = excluded.idle_ttl",
                params![scope, seconds],
            )?,
            None => self.execute("DELETE FROM auth_scope_settings WHERE scope = ?1", [scope])?,
        };
        Ok(())
    }

    fn failure_count(&self, subject: &str) -> Result<Option<FailureCount>, AuthError> {
        self.one(
            "SELECT window_start, failures, blocked_until FROM auth_failures WHERE subject = ?1",
            [subject],
            |row| {
                Ok(FailureCount {
                    window_start: row.get(0)?,
                    failures: row.get(1)?,
                    blocked_until: row.get(2)?,
                })
            },
        )
    }

    fn put_failure_count(&self, subject: &str, count: &FailureCount) -> Result<(), AuthError> {
        self.execute(
            "INSERT INTO auth_failures (subject, window_start, failures, blocked_until) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (subject) DO UPDATE SET \
             window_start = excluded.window_start, failures = excluded.failures, \
             blocked_until = excluded.blocked_until",
            params![
                subject,
                count.window_start,
                count.failures,
                count.blocked_until
            ],
        )?;
        Ok(())
    }

    fn purge_failure_counts(&self, window_start_before: u64, now: u64) -> Result<u64, AuthError> {
        let purged = self.execute(
            "DELETE FROM auth_failures WHERE window_start < ?1 AND blocked_until <= ?2",
            params![window_start_before, now],
        )?;
        Ok(u64::try_from(purged).unwrap_or(u64::MAX))
    }

    fn insert_audit(&self, entry: &AuditEntry) -> Result<(), AuthError> {
        self.execute(
            "INSERT INTO auth_audit (at, actor, action, subject, detail, peer, outcome) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                entry.at,
                entry.actor,
                entry.action,
                entry.subject,
                entry.detail,
                entry.peer,
                entry.outcome
            ],
        )?;
        Ok(())
    }

    fn audit(&self, limit: u32) -> Result<Vec<AuditEntry>, AuthError> {
        self.all(
            "SELECT id, at, actor, action, subject, detail, peer, outcome FROM auth_audit \
             ORDER BY id DESC LIMIT ?1",
            [limit],
            |row| {
                Ok(AuditEntry {
                    id: row.get(0)?,
                    at: row.get(1)?,
                    actor: row.get(2)?,
                    action: row.get(3)?,
                    subject: row.get(4)?,
                    detail: row.get(5)?,
                    peer: row.get(6)?,
                    outcome: row.get(7)?,
                })
            },
        )
    }
}

fn read_realm(row: &Row<'_>) -> rusqlite::Result<Realm> {
    Ok(Realm {
        name: row.get(0)?,
        description: row.get(1)?,
        is_default: row.get(2)?,
    })
}

fn read_account(row: &Row<'_>) -> rusqlite::Result<StoredAccount> {
    Ok(StoredAccount {
        account: Account {
            id: row.get(0)?,
            login: row.get(1)?,
            email: row.get(2)?,
            first_name: row.get(3)?,
            last_name: row.get(4)?,
            company: row.get(5)?,
            phone: row.get(6)?,
            realm: row.get(7)?,
            admin: row.get(8)?,
            disabled: row.get(9)?,
            parent: row.get(10)?,
            created: row.get(11)?,
            updated: row.get(12)?,
        },
        parent_id: row.get(13)?,
        parent_disabled: row.get(14)?,
        password_hash: row.get(15)?,
    })
}

fn read_key(row: &Row<'_>) -> rusqlite::Result<StoredKey> {
    Ok(StoredKey {
        name: row.get(0)?,
        openssh: row.get(1)?,
        md5: row.get(2)?,
        sha256: row.get(3)?,
        created: row.get(4)?,
    })
}

fn read_token(row: &Row<'_>) -> rusqlite::Result<StoredToken> {
    Ok(StoredToken {
        id: row.get(0)?,
        hash: row.get(1)?,
        account_id: row.get(2)?,
        scope: row.get(3)?,
        binding: row.get(4)?,
        description: row.get(5)?,
        one_use: row.get(6)?,
        created: row.get(7)?,
        expires_at: row.get(8)?,
        idle_ttl_secs: row.get(9)?,
        idle_expires_at: row.get(10)?,
        last_used: row.get(11)?,
        revoked_at: row.get(12)?,
    })
}
