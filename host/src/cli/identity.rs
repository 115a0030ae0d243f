//! Operator commands over the identity store: users, keys, tokens, realms and
//! the audit trail. They call the same `Auth` API the plugins reach, and work
//! while the server runs (SQLite WAL).

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::SiteArgs;
use crate::db::Database;
use crate::primitives::auth::{
    Account, AccountUpdate, Auth, NewAccount, SshKey, TokenFormat, TokenInfo, TokenRequest,
};

#[derive(Subcommand)]
pub enum IdentityCommand {
    /// Accounts (and sub-users as PARENT/SUB).
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// SSH public keys of an account.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Realms (login domains).
    Realm {
        #[command(subcommand)]
        command: RealmCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Compute nodes of the hypervisor backend.
    Node {
        #[command(subcommand)]
        command: super::compute::NodeCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// VM images.
    Image {
        #[command(subcommand)]
        command: super::compute::ImageCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Named VM sizes (CloudAPI packages).
    Package {
        #[command(subcommand)]
        command: super::compute::PackageCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Virtual machines.
    Vm {
        #[command(subcommand)]
        command: super::compute::VmCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Background jobs of the site's plugins.
    Job {
        #[command(subcommand)]
        command: super::jobs::JobCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The audit trail of identity changes and failed authentications.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the identity store is: the site's data dir, or `--data-dir`.
#[derive(Args)]
pub struct StoreArgs {
    #[command(flatten)]
    site: SiteArgs,
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

impl StoreArgs {
    /// The site and its database (created if needed).
    pub(super) fn open_db(&self) -> anyhow::Result<(crate::config::SiteConfig, Database)> {
        let mut site = self.site.load()?;
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| site.data_dir.clone());
        // The qemu backend keeps its files beside the database.
        site.data_dir = dir.clone();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let db = Database::open(&dir.join("tessera.db"))?;
        Ok((site, db))
    }

    fn open(&self) -> anyhow::Result<Auth> {
        let (site, db) = self.open_db()?;
        let clock = site.auth.clock();
        let auth = Auth::new(db, site.auth, clock)?;
        Ok(auth.with_origin("cli", "local"))
    }
}

#[derive(Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of standard input.
    #[arg(long, conflicts_with = "password")]
    password_stdin: bool,
    /// The password (visible to other local users in the process list).
    #[arg(long)]
    password: Option<String>,
}

impl PasswordArgs {
    fn read(&self) -> anyhow::Result<Option<String>> {
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']).to_string();
            if password.is_empty() {
                bail!("no password on standard input");
            }
            return Ok(Some(password));
        }
        Ok(self.password.clone())
    }
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add {
        login: String,
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        realm: Option<String>,
        /// Make a sub-user of this account.
        #[arg(long)]
        parent: Option<String>,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        #[arg(long)]
        company: Option<String>,
        #[arg(long)]
        phone: Option<String>,
    },
    List {
        #[arg(long)]
        realm: Option<String>,
        /// List the sub-users of this account.
        #[arg(long)]
        parent: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Show {
        login: String,
        #[arg(long)]
        json: bool,
    },
    Disable {
        login: String,
    },
    Enable {
        login: String,
    },
    /// Set a new password.
    Passwd {
        login: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Delete an account and its keys and tokens.
    Rm {
        login: String,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Add an OpenSSH public key; prints its MD5 and SHA256 fingerprints.
    Add {
        login: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    List {
        login: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a key by name or fingerprint.
    Rm { login: String, name: String },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a token; prints only its value (shown once).
    Create {
        login: String,
        #[arg(long)]
        scope: String,
        /// Absolute lifetime, e.g. `1h`, `30d`.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        /// Idle lifetime, slid on every use, e.g. `60m`.
        #[arg(long, value_parser = humantime::parse_duration)]
        idle_ttl: Option<Duration>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        binding: Option<String>,
        #[arg(long, value_enum, default_value = "opaque")]
        format: FormatArg,
    },
    List {
        login: String,
        #[arg(long)]
        json: bool,
    },
    Revoke {
        id: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Opaque,
    IdUuid,
    Alnum32,
}

#[derive(Subcommand)]
pub enum RealmCommand {
    Add {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Make it the default realm.
        #[arg(long)]
        default: bool,
    },
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: IdentityCommand) -> anyhow::Result<()> {
    match command {
        IdentityCommand::User { command, store } => user(command, &store.open()?),
        IdentityCommand::Key { command, store } => key(command, &store.open()?),
        IdentityCommand::Token { command, store } => token(command, &store.open()?),
        IdentityCommand::Realm { command, store } => realm(command, &store.open()?),
        IdentityCommand::Audit { limit, json, store } => audit(&store.open()?, limit, json),
        IdentityCommand::Job { command, store } => super::jobs::run(command, &store),
        IdentityCommand::Node { command, store } => super::compute::node(command, &store),
        IdentityCommand::Image { command, store } => super::compute::image(command, &store),
        IdentityCommand::Vm { command, store } => super::compute::vm(command, &store),
        IdentityCommand::Package { command, store } => super::compute::package(command, &store),
    }
}

fn user(command: UserCommand, auth: &Auth) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            login,
            email,
            password,
            admin,
            realm,
            parent,
            first_name,
            last_name,
            company,
            phone,
        } => {
            let account = auth.create_account(NewAccount {
                login,
                email,
                password: password.read()?,
                first_name,
                last_name,
                company,
                phone,
                realm,
                admin,
                parent,
            })?;
            println!("created {} ({})", qualified(&account), account.id);
        }
        UserCommand::List {
            realm,
            parent,
            json,
        } => {
            let accounts = auth.list_accounts(realm.as_deref(), parent.as_deref())?;
            print_list(json, &accounts, account_json, |a| {
                format!(
                    "{:<24} {:<32} {:<10} {}{}",
                    qualified(a),
                    a.email,
                    a.realm,
                    if a.admin { "admin " } else { "" },
                    if a.disabled { "disabled" } else { "" }
                )
            });
        }
        UserCommand::Show { login, json } => {
            let account = auth
                .get_account(&login)?
                .with_context(|| format!("no account {login}"))?;
            print_one(json, &account_json(&account));
        }
        UserCommand::Disable { login } => set_disabled(auth, &login, true)?,
        UserCommand::Enable { login } => set_disabled(auth, &login, false)?,
        UserCommand::Passwd { login, password } => {
            let Some(password) = password.read()? else {
                bail!("give --password-stdin or --password");
            };
            let update = AccountUpdate {
                password: Some(password),
                ..AccountUpdate::default()
            };
            auth.update_account(&login, update)?;
            println!("password of {login} changed");
        }
        UserCommand::Rm { login } => {
            auth.delete_account(&login)?;
            println!("deleted {login}");
        }
    }
    Ok(())
}

fn set_disabled(auth: &Auth, login: &str, disabled: bool) -> anyhow::Result<()> {
    let update = AccountUpdate {
        disabled: Some(disabled),
        ..AccountUpdate::default()
    };
    auth.update_account(login, update)?;
    println!("{login} {}", if disabled { "disabled" } else { "enabled" });
    Ok(())
}

fn key(command: KeyCommand, auth: &Auth) -> anyhow::Result<()> {
    match command {
        KeyCommand::Add { login, name, file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let key = auth.add_key(&login, &name, text.trim())?;
            println!("{}", key.fingerprint_md5);
            println!("{}", key.fingerprint_sha256);
        }
        KeyCommand::List { login, json } => {
            let keys = auth.list_keys(&login)?;
            print_list(json, &keys, key_json, |k| {
                format!(
                    "{:<20} {}  {}",
                    k.name, k.fingerprint_md5, k.fingerprint_sha256
                )
            });
        }
        KeyCommand::Rm { login, name } => {
            auth.delete_key(&login, &name)?;
            println!("removed key {name} of {login}");
        }
    }
    Ok(())
}

fn token(command: TokenCommand, auth: &Auth) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            login,
            scope,
            ttl,
            idle_ttl,
            description,
            binding,
            format,
        } => {
            let issued = auth.issue_token(TokenRequest {
                owner: login,
                scope,
                binding,
                ttl_seconds: ttl.map(|d| d.as_secs()),
                idle_ttl_seconds: idle_ttl.map(|d| d.as_secs()),
                description,
                format: match format {
                    FormatArg::Opaque => TokenFormat::Opaque,
                    FormatArg::IdUuid => TokenFormat::IdUuid,
                    FormatArg::Alnum32 => TokenFormat::Alnum32,
                },
                one_use: false,
            })?;
            // Only the value on stdout, so `$(tessera token create ...)` works.
            println!("{}", issued.value);
            eprintln!("token id {}", issued.id);
        }
        TokenCommand::List { login, json } => {
            let tokens = auth.list_tokens(&login)?;
            print_list(json, &tokens, token_json, |t| {
                format!(
                    "{:<8} {:<24} {:<16} {}",
                    t.id,
                    t.scope,
                    if t.revoked { "revoked" } else { "active" },
                    t.description.as_deref().unwrap_or("")
                )
            });
        }
        TokenCommand::Revoke { id } => {
            auth.revoke_token(&id)?;
            println!("revoked token {id}");
        }
    }
    Ok(())
}

fn realm(command: RealmCommand, auth: &Auth) -> anyhow::Result<()> {
    match command {
        RealmCommand::Add {
            name,
            description,
            default,
        } => {
            let realm = auth.add_realm(&name, &description, default)?;
            println!("added realm {}", realm.name);
        }
        RealmCommand::List { json } => {
            let realms = auth.list_realms()?;
            let to_json = |r: &crate::primitives::auth::Realm| json!({"name": r.name, "description": r.description, "default": r.is_default});
            print_list(json, &realms, to_json, |r| {
                format!(
                    "{:<20} {}{}",
                    r.name,
                    r.description,
                    if r.is_default { " (default)" } else { "" }
                )
            });
        }
    }
    Ok(())
}

fn audit(auth: &Auth, limit: u32, json: bool) -> anyhow::Result<()> {
    let entries = auth.list_audit(limit)?;
    print_list(
        json,
        &entries,
        |e| {
            json!({"id": e.id, "at": e.at, "actor": e.actor, "action": e.action,
                   "subject": e.subject, "detail": e.detail, "peer": e.peer, "outcome": e.outcome})
        },
        |e| {
            format!(
                "{} {:<16} {:<20} {:<24} {:<16} {} {}",
                humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + Duration::from_millis(e.at)
                ),
                e.actor,
                e.action,
                e.subject,
                e.peer,
                e.outcome,
                e.detail
            )
        },
    );
    Ok(())
}

/// `LOGIN`, or `PARENT/SUB` for a sub-user.
fn qualified(a: &Account) -> String {
    match &a.parent {
        Some(parent) => format!("{parent}/{}", a.login),
        None => a.login.clone(),
    }
}

fn account_json(a: &Account) -> Value {
    json!({
        "id": a.id, "login": a.login, "email": a.email, "parent": a.parent,
        "first_name": a.first_name, "last_name": a.last_name, "company": a.company,
        "phone": a.phone, "realm": a.realm, "admin": a.admin, "disabled": a.disabled,
        "created": a.created, "updated": a.updated,
    })
}

fn key_json(k: &SshKey) -> Value {
    json!({
        "name": k.name, "key": k.key, "fingerprint_md5": k.fingerprint_md5,
        "fingerprint_sha256": k.fingerprint_sha256, "owner": k.owner, "created": k.created,
    })
}

fn token_json(t: &TokenInfo) -> Value {
    json!({
        "id": t.id, "owner": t.owner, "scope": t.scope, "binding": t.binding,
        "description": t.description, "one_use": t.one_use, "created": t.created,
        "expires_at": t.expires_at, "idle_ttl_seconds": t.idle_ttl_seconds,
        "idle_expires_at": t.idle_expires_at, "last_used": t.last_used, "revoked": t.revoked,
    })
}

pub(super) fn print_list<T>(
    json: bool,
    items: &[T],
    to_json: impl Fn(&T) -> Value,
    to_line: impl Fn(&T) -> String,
) {
    if json {
        print_one(true, &Value::Array(items.iter().map(to_json).collect()));
    } else {
        for item in items {
            println!("{}", to_line(item));
        }
    }
}

pub(super) fn print_one(json: bool, value: &Value) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else if let Value::Object(map) = value {
        for (k, v) in map {
            match v {
                Value::Null => {}
                Value::String(s) => println!("{k}: {s}"),
                other => println!("{k}: {other}"),
            }
        }
    }
}
