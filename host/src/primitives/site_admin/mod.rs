//! The `site-admin` primitive: administering the running site itself —
//! versions and changelog, service status, health figures, the kernel's log
//! files (`logfile.rs`), backups and restores of the site database
//! (`backup.rs`), update packages (`package.rs`, sealed by `sealed.rs`), the
//! TLS listener's certificate (`tls.rs`), graceful restarts, and the site's
//! admin API token (kept by the auth primitive). `wit.rs` is the thin glue.

mod backup;
mod config;
mod health;
pub mod logfile;
pub mod package;
pub mod sealed;
pub mod tls;
mod wit;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Instant;

use sha2::{Digest, Sha256};

pub use config::{SiteAdminSettings, TlsSettings};
pub use health::Health;

use crate::config::SiteConfig;
use crate::db::Database;
use crate::primitives::auth::{Auth, AuthError, NewAccount};
use crate::server::Kernel;

/// The account that holds the admin API token, and the token's scope.
pub const TOKEN_OWNER: &str = "site-admin";
pub const TOKEN_SCOPE: &str = "site-admin:api";
/// How long a refused token change holds its caller.
pub const REFUSAL_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

/// The kernel's changelog, shipped in the binary.
const KERNEL_CHANGELOG: &str = include_str!("../../../../CHANGELOG.md");

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdminError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("cannot decrypt or extract: {0}")]
    Undecryptable(String),
    #[error("version: {0}")]
    Version(String),
    #[error("failed: {0}")]
    Failed(String),
}

/// A file the kernel wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// One service and how it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceStatus {
    pub name: String,
    pub status: &'static str,
}

/// An update that passed every check, compiled and ready to swap in.
pub struct StagedUpdate {
    pub manifest: package::Manifest,
    pub code: Vec<(String, Vec<u8>, crate::runtime::PreparedCode)>,
}

/// The site's administration handle. Cheap to clone.
#[derive(Clone)]
pub struct SiteAdmin {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    db: Database,
    auth: Auth,
    settings: SiteAdminSettings,
    logs: logfile::LogFiles,
    started: Instant,
    /// The site config as JSON with anything secret-looking removed, for debug bundles.
    redacted_config: serde_json::Value,
    hypervisor_backend: String,
    job_workers: u32,
    tls_configured: bool,
    tls: OnceLock<Arc<tls::CertResolver>>,
    kernel: OnceLock<Weak<Kernel>>,
    staged: Mutex<Option<StagedUpdate>>,
    restoring: Mutex<()>,
    restart: Arc<RestartSignal>,
}

/// Asks the server to drain and re-exec.
#[derive(Default)]
pub struct RestartSignal {
    requested: AtomicBool,
    notify: tokio::sync::Notify,
}

impl RestartSignal {
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    pub async fn wait(&self) {
        while !self.requested() {
            self.notify.notified().await;
        }
    }
}

impl SiteAdmin {
    pub fn open(db: Database, auth: Auth, site: &SiteConfig) -> SiteAdmin {
        // The default key is made at first start, so an operator can pack
        // updates for this site before it ever needs one.
        if site.site_admin.update_key_file.is_none()
            && let Err(e) =
                sealed::PackageKey::read_or_create(&site.site_admin.key_file(&site.data_dir))
        {
            tracing::warn!(error = %e, "no update-package key");
        }
        SiteAdmin {
            inner: Arc::new(Inner {
                data_dir: site.data_dir.clone(),
                db,
                auth,
                settings: site.site_admin.clone(),
                logs: log_files(site),
                started: Instant::now(),
                redacted_config: redacted(site),
                hypervisor_backend: site.hypervisor.backend.clone(),
                job_workers: site.jobs.workers,
                tls_configured: site.tls.is_some(),
                tls: OnceLock::new(),
                kernel: OnceLock::new(),
                staged: Mutex::new(None),
                restoring: Mutex::new(()),
                restart: Arc::new(RestartSignal::default()),
            }),
        }
    }

    /// Give the handle the running kernel (for services and hot swaps).
    pub fn attach(&self, kernel: &Arc<Kernel>) {
        let _ = self.inner.kernel.set(Arc::downgrade(kernel));
    }

    /// Give the handle the TLS listener's resolver.
    pub fn attach_tls(&self, resolver: Arc<tls::CertResolver>) {
        let _ = self.inner.tls.set(resolver);
    }

    pub fn restart_signal(&self) -> Arc<RestartSignal> {
        self.inner.restart.clone()
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    fn kernel(&self) -> Option<Arc<Kernel>> {
        self.inner.kernel.get().and_then(Weak::upgrade)
    }

    // Versions.

    pub fn version(&self) -> String {
        installed_manifest(&self.inner.data_dir)
            .map(|m| m.version)
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
    }

    pub fn changelog(&self) -> String {
        installed_manifest(&self.inner.data_dir)
            .and_then(|m| m.changelog)
            .unwrap_or_else(|| KERNEL_CHANGELOG.to_string())
    }

    pub fn build_info(&self) -> serde_json::Value {
        let exe = std::env::current_exe().ok();
        let built = exe
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        serde_json::json!({
            "builddate": built.to_string(),
            "version": self.version(),
            "kernel_version": env!("CARGO_PKG_VERSION"),
            "target": format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
            "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        })
    }

    // Status.

    pub fn services(&self) -> Vec<ServiceStatus> {
        let kernel = self.kernel();
        let up = |ok: bool| if ok { "running" } else { "stopped" };
        let mut services = vec![
            ServiceStatus {
                name: "http-listener".into(),
                status: up(kernel.is_some() && !self.inner.restart.requested()),
            },
            ServiceStatus {
                name: "https-listener".into(),
                status: up(self.inner.tls.get().is_some() && !self.inner.restart.requested()),
            },
            ServiceStatus {
                name: "job-workers".into(),
                status: up(kernel.is_some() && self.inner.job_workers > 0),
            },
            ServiceStatus {
                name: format!("hypervisor-{}", self.inner.hypervisor_backend),
                status: up(kernel.is_some()),
            },
        ];
        if let Some(kernel) = kernel {
            for plugin in kernel.runtime.plugins() {
                let failed = kernel.metrics.recent_failure(&plugin.ctx.name);
                services.push(ServiceStatus {
                    name: format!("plugin-{}", plugin.ctx.name),
                    status: if failed { "failed" } else { "running" },
                });
            }
        }
        services
    }

    pub fn health(&self) -> Health {
        health::measure(
            &self.inner.data_dir,
            self.inner.db.path(),
            self.inner.started.elapsed().as_secs(),
        )
    }

    // Logs.

    pub fn recent_logs(&self, max: usize) -> Vec<String> {
        self.inner.logs.tail(max)
    }

    /// A `tar.gz` of the log files, into `dest`.
    pub fn write_logs_archive(&self, dest: &Path) -> Result<FileInfo, AdminError> {
        let files = self.inner.logs.files();
        if files.is_empty() {
            return Err(AdminError::NotFound("no log file yet".into()));
        }
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        for file in &files {
            let name = Path::new("logs").join(file.file_name().unwrap_or_default());
            tar.append_path_with_name(file, name)
                .map_err(|e| AdminError::Failed(format!("compressing the logs: {e}")))?;
        }
        let bytes = tar
            .into_inner()
            .and_then(|gz| gz.finish())
            .map_err(|e| AdminError::Failed(format!("compressing the logs: {e}")))?;
        write_file(dest, &bytes)
    }

    /// An encrypted bundle (sealed with the package key) of the redacted site
    /// config, recent logs, service status, health and versions.
    pub fn write_debug_bundle(&self, dest: &Path) -> Result<FileInfo, AdminError> {
        let services: Vec<_> = self
            .services()
            .into_iter()
            .map(|s| serde_json::json!({ s.name: s.status }))
            .collect();
        let status = serde_json::json!({
            "version": self.version(),
            "build": self.build_info(),
            "services": services,
            "health": self.health(),
        });
        let mut tar = tar::Builder::new(Vec::new());
        let pretty = |v: &serde_json::Value| serde_json::to_vec_pretty(v).unwrap_or_default();
        backup::append(
            &mut tar,
            "debug/config.json",
            &pretty(&self.inner.redacted_config),
        )?;
        backup::append(&mut tar, "debug/status.json", &pretty(&status))?;
        backup::append(
            &mut tar,
            "debug/recent.log",
            self.recent_logs(5000).join("\n").as_bytes(),
        )?;
        let plain = tar
            .into_inner()
            .map_err(|e| AdminError::Failed(format!("building the bundle: {e}")))?;
        let key = self.package_key()?;
        write_file(dest, &key.seal(&plain))
    }

    // Backups.

    pub fn backup(&self, dest: &Path) -> Result<FileInfo, AdminError> {
        backup::write(&self.inner.db, dest)?;
        let bytes = std::fs::read(dest).map_err(|e| AdminError::Failed(e.to_string()))?;
        Ok(file_info(dest, &bytes))
    }

    /// Validate `archive`, swap its database in, and ask for a restart.
    pub fn restore(&self, archive: &Path) -> Result<(), AdminError> {
        let _one_at_a_time = self
            .inner
            .restoring
            .try_lock()
            .map_err(|_| AdminError::Failed("a restore is already running".into()))?;
        let work = tempfile::tempdir_in(&self.inner.data_dir)
            .map_err(|e| AdminError::Failed(format!("temp dir: {e}")))?;
        let database = backup::validate(archive, work.path())?;
        self.inner.db.restore_from(&database).map_err(|e| {
            tracing::error!(error = %e, "restoring the database failed");
            AdminError::Failed("restoring the database failed; the old data stays".into())
        })?;
        tracing::warn!("site database restored from a backup; restarting");
        self.restart_after_response();
        Ok(())
    }

    /// A restart, a moment from now so the current response still goes out.
    fn restart_after_response(&self) {
        let signal = self.inner.restart.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            signal.request();
        });
    }

    /// Graceful restart; with `backup_first`, a backup under `<data>/backups/` before.
    pub fn restart(&self, backup_first: bool) -> Result<(), AdminError> {
        if backup_first {
            let dir = self.inner.data_dir.join("backups");
            std::fs::create_dir_all(&dir).map_err(|e| AdminError::Failed(e.to_string()))?;
            let dest = dir.join(format!("before-restart-{}.tar", now_ms()));
            backup::write(&self.inner.db, &dest)?;
            prune(&dir, "before-restart-", 3);
        }
        tracing::warn!("restart requested through site-admin");
        self.restart_after_response();
        Ok(())
    }

    // TLS.

    pub fn install_certificate(
        &self,
        cert_pem: &str,
        key_pem: &str,
        ca_pem: Option<&str>,
    ) -> Result<String, AdminError> {
        let checked = tls::check(cert_pem, key_pem, ca_pem).map_err(AdminError::Invalid)?;
        let Some(resolver) = self.inner.tls.get() else {
            let why = if self.inner.tls_configured {
                "the TLS listener is not running"
            } else {
                "no TLS listener is configured ([tls] in the site config)"
            };
            return Err(AdminError::Failed(why.into()));
        };
        tls::persist(&self.inner.data_dir, cert_pem, key_pem, ca_pem)
            .map_err(|e| AdminError::Failed(format!("saving the certificate: {e}")))?;
        resolver.swap(checked.key);
        tracing::info!(fingerprint = %checked.fingerprint, "TLS certificate installed");
        Ok(checked.fingerprint)
    }

    /// Decrypt a file sealed with the package key.
    pub fn open_sealed(&self, path: &Path) -> Result<Vec<u8>, AdminError> {
        let sealed = std::fs::read(path).map_err(|e| AdminError::NotFound(e.to_string()))?;
        self.package_key()?
            .open(&sealed)
            .map_err(|e| AdminError::Undecryptable(e.to_string()))
    }

    // Updates.

    pub fn package_key(&self) -> Result<sealed::PackageKey, AdminError> {
        let path = self.inner.settings.key_file(&self.inner.data_dir);
        let key = if self.inner.settings.update_key_file.is_some() {
            sealed::PackageKey::read(&path)
        } else {
            sealed::PackageKey::read_or_create(&path)
        };
        key.map_err(|e| AdminError::Failed(e.to_string()))
    }

    /// Open, check and compile an update package; keep it staged.
    pub fn stage_update(&self, package_path: &Path) -> Result<package::Manifest, AdminError> {
        let sealed = std::fs::read(package_path)
            .map_err(|e| AdminError::NotFound(format!("update package: {e}")))?;
        let key = self.package_key()?;
        let opened = package::open(&key, &sealed).map_err(|e| match e {
            package::PackageError::Unreadable(m) => AdminError::Undecryptable(m),
            package::PackageError::Manifest(m) => AdminError::Invalid(m),
            package::PackageError::Content(m) => AdminError::Failed(m),
        })?;
        let manifest = opened.manifest;
        if let Some(why) = package::version_refusal(&self.version(), &manifest) {
            return Err(AdminError::Version(why));
        }
        let kernel = self
            .kernel()
            .ok_or_else(|| AdminError::Failed("the kernel is not serving".into()))?;
        let mut code = Vec::new();
        for entry in &manifest.plugins {
            let wasm = opened.files.get(&entry.file).cloned().unwrap_or_default();
            let prepared = kernel
                .runtime
                .prepare_code(&entry.name, &wasm)
                .map_err(|e| AdminError::Failed(e.to_string()))?;
            code.push((entry.name.clone(), wasm, prepared));
        }
        let staged = StagedUpdate {
            manifest: manifest.clone(),
            code,
        };
        *self
            .inner
            .staged
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(staged);
        Ok(manifest)
    }

    /// Persist the staged plugins and version, then swap them in.
    pub fn apply_update(&self) -> Result<package::Manifest, AdminError> {
        let staged = self
            .inner
            .staged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| AdminError::NotFound("no staged update".into()))?;
        let kernel = self
            .kernel()
            .ok_or_else(|| AdminError::Failed("the kernel is not serving".into()))?;
        let dir = installed_dir(&self.inner.data_dir);
        let persist = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            for (name, wasm, _) in &staged.code {
                let partial = dir.join(format!("{name}.wasm.new"));
                std::fs::write(&partial, wasm)?;
                std::fs::rename(&partial, dir.join(format!("{name}.wasm")))?;
            }
            let manifest = serde_json::to_vec_pretty(&staged.manifest)?;
            std::fs::write(dir.join("manifest.json.new"), manifest)?;
            std::fs::rename(dir.join("manifest.json.new"), dir.join("manifest.json"))
        };
        persist().map_err(|e| AdminError::Failed(format!("installing the update's files: {e}")))?;
        for (name, _, prepared) in staged.code {
            kernel.runtime.swap_code(&name, prepared);
            tracing::info!(plugin = %name, version = %staged.manifest.version, "plugin updated");
        }
        Ok(staged.manifest)
    }

    // The admin API token.

    pub fn api_token_set(&self, value: &str) -> Result<(), AdminError> {
        self.ensure_token_owner().map_err(auth_failed)?;
        self.inner
            .auth
            .set_chosen_token(TOKEN_OWNER, TOKEN_SCOPE, value)
            .map_err(auth_failed)
    }

    pub fn api_token_exists(&self) -> bool {
        self.inner
            .auth
            .has_token(TOKEN_OWNER, TOKEN_SCOPE)
            .unwrap_or(false)
    }

    pub fn api_token_check(&self, value: &str, peer: &str) -> bool {
        if value.is_empty() {
            return false;
        }
        self.inner
            .auth
            .check_token(value, TOKEN_SCOPE, peer)
            .is_ok()
    }

    pub fn api_token_check_hmac(&self, message: &str, hmac_hex: &str, peer: &str) -> bool {
        let Ok(mac) = hex::decode(hmac_hex) else {
            return false;
        };
        self.inner
            .auth
            .verify_token_hmac(TOKEN_OWNER, TOKEN_SCOPE, message.as_bytes(), &mac, peer)
            .is_ok()
    }

    pub fn api_token_refused(&self, reason: &str, actor: &str, peer: &str) {
        let auth = self.inner.auth.with_origin(actor, peer);
        if let Err(e) = auth.audit_refused_change(TOKEN_OWNER, reason, peer) {
            tracing::warn!(error = %e, "could not audit a refused token change");
        }
        tracing::warn!(peer, reason, "admin API token change refused");
    }

    fn ensure_token_owner(&self) -> Result<(), AuthError> {
        let auth = &self.inner.auth;
        if auth.get_account(TOKEN_OWNER)?.is_some() {
            return Ok(());
        }
        let created = auth.create_account(NewAccount {
            login: TOKEN_OWNER.into(),
            email: "site-admin@localhost".into(),
            password: None,
            first_name: None,
            last_name: None,
            company: None,
            phone: None,
            realm: None,
            admin: true,
            parent: None,
        });
        match created {
            Ok(_) | Err(AuthError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn auth_failed(e: AuthError) -> AdminError {
    match e {
        AuthError::Invalid(m) => AdminError::Invalid(m),
        other => AdminError::Failed(other.to_string()),
    }
}

fn log_files(site: &SiteConfig) -> logfile::LogFiles {
    logfile::LogFiles::new(
        &site.data_dir,
        site.site_admin.log_max_bytes,
        site.site_admin.log_keep,
    )
}

/// The log files a site writes (for `cli serve` to set up tracing).
pub fn site_log_files(site: &SiteConfig) -> logfile::LogFiles {
    log_files(site)
}

/// Where installed updates live; `runtime` loads plugins from here first.
pub fn installed_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("updates").join("installed")
}

/// The wasm an installed update put in place of plugin `name`, if any.
pub fn installed_plugin(data_dir: &Path, name: &str) -> Option<Vec<u8>> {
    std::fs::read(installed_dir(data_dir).join(format!("{name}.wasm"))).ok()
}

fn installed_manifest(data_dir: &Path) -> Option<package::Manifest> {
    let bytes = std::fs::read(installed_dir(data_dir).join("manifest.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_file(dest: &Path, bytes: &[u8]) -> Result<FileInfo, AdminError> {
    let partial = dest.with_extension("partial");
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, dest))
        .map_err(|e| AdminError::Failed(format!("writing {}: {e}", dest.display())))?;
    Ok(file_info(dest, bytes))
}

fn file_info(path: &Path, bytes: &[u8]) -> FileInfo {
    FileInfo {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    }
}

/// Keep the newest `keep` files starting with `prefix` in `dir`.
fn prune(dir: &Path, prefix: &str, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    found.sort();
    let excess = found.len().saturating_sub(keep);
    for old in found.into_iter().take(excess) {
        let _ = std::fs::remove_file(old);
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The site config as JSON, with every value under a key that names a secret removed.
fn redacted(site: &SiteConfig) -> serde_json::Value {
    let mut plugins = serde_json::Map::new();
    for (name, p) in &site.plugins {
        let settings = serde_json::to_value(&p.settings).unwrap_or_default();
        plugins.insert(
            name.clone(),
            serde_json::json!({
                "enabled": p.enabled, "source": p.source, "mounts": p.mounts,
                "grants": p.grants, "settings": redact(settings),
            }),
        );
    }
    serde_json::json!({
        "listen": site.listen.to_string(),
        "data_dir": site.data_dir.display().to_string(),
        "log": site.log,
        "limits": format!("{:?}", site.limits),
        "hypervisor_backend": site.hypervisor.backend,
        "job_workers": site.jobs.workers,
        "tls_listen": site.tls.as_ref().map(|t| t.listen.to_string()),
        "plugins": plugins,
    })
}

fn redact(value: serde_json::Value) -> serde_json::Value {
    const SECRET_WORDS: &[&str] = &[
        "key",
        "secret",
        "password",
        "token",
        "credential",
        "private",
    ];
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
                    (k, serde_json::Value::String("[removed]".into()))
                } else {
                    (k, redact(v))
                }
            })
            .collect(),
        serde_json::Value::Array(items) => items.into_iter().map(redact).collect(),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed_from_the_debug_config() {
        let v = redact(serde_json::json!({
            "greeting": "hi", "api_key": "k", "nested": {"Password": "p", "n": 1},
            "list": [{"token": "t"}]
        }));
        assert_eq!(v["greeting"], "hi");
        assert_eq!(v["api_key"], "[removed]");
        assert_eq!(v["nested"]["Password"], "[removed]");
        assert_eq!(v["nested"]["n"], 1);
        assert_eq!(v["list"][0]["token"], "[removed]");
    }
}
