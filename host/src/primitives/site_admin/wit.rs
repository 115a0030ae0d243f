//! The `site-admin` interface: converts WIT values and calls [`SiteAdmin`].
//! File names are resolved inside the calling plugin's own files dir.

use std::path::PathBuf;

use super::{AdminError, FileInfo, SiteAdmin};
use crate::runtime::bindings::tessera::kernel::site_admin as wit;
use crate::runtime::state::InstanceState;

type WitResult<T> = Result<T, wit::AdminError>;

impl InstanceState {
    fn site_admin(&self) -> WitResult<SiteAdmin> {
        self.plugin.site_admin.clone().ok_or_else(|| {
            wit::AdminError::Unsupported(crate::primitives::unsupported("site-admin"))
        })
    }

    /// `name` inside the plugin's files dir: one plain file name, nothing else.
    fn plugin_file(&self, name: &str) -> WitResult<PathBuf> {
        let dir =
            self.plugin.files.as_ref().ok_or_else(|| {
                wit::AdminError::Invalid("file names need the `files` grant".into())
            })?;
        let plain = !name.is_empty()
            && name.len() <= 128
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !plain {
            return Err(wit::AdminError::Invalid(format!(
                "file name {name:?}: one name of [A-Za-z0-9._-]"
            )));
        }
        Ok(dir.join(name))
    }
}

/// Blocking work (SQLite backups, compiling wasm, compressing) runs off the
/// async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
) -> WitResult<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(wit::AdminError::Failed("interrupted".into())),
    }
}

impl wit::Host for InstanceState {
    fn version(&mut self) -> String {
        self.site_admin().map(|a| a.version()).unwrap_or_default()
    }

    fn build_info(&mut self) -> String {
        self.site_admin()
            .map(|a| a.build_info().to_string())
            .unwrap_or_else(|_| "{}".into())
    }

    fn changelog(&mut self) -> String {
        self.site_admin().map(|a| a.changelog()).unwrap_or_default()
    }

    fn services(&mut self) -> Vec<wit::ServiceStatus> {
        let Ok(admin) = self.site_admin() else {
            return Vec::new();
        };
        admin
            .services()
            .into_iter()
            .map(|s| wit::ServiceStatus {
                name: s.name,
                status: s.status.into(),
            })
            .collect()
    }

    fn health(&mut self) -> wit::HealthFigures {
        let h = match self.site_admin() {
            Ok(admin) => admin.health(),
            Err(_) => super::health::measure(
                std::path::Path::new("/nonexistent"),
                std::path::Path::new(""),
                0,
            ),
        };
        wit::HealthFigures {
            uptime_seconds: h.uptime_seconds,
            load: h.load,
            cpus: h.cpus,
            memory_total_bytes: h.memory_total_bytes,
            memory_used_bytes: h.memory_used_bytes,
            disk_total_bytes: h.disk_total_bytes,
            disk_free_bytes: h.disk_free_bytes,
            database_bytes: h.database_bytes,
        }
    }

    fn recent_logs(&mut self, max: u32) -> Vec<String> {
        self.site_admin()
            .map(|a| a.recent_logs(max.min(100_000) as usize))
            .unwrap_or_default()
    }

    async fn write_logs_archive(&mut self, name: String) -> WitResult<wit::FileInfo> {
        let (admin, dest) = (self.site_admin()?, self.plugin_file(&name)?);
        blocking(move || admin.write_logs_archive(&dest))
            .await
            .map(Into::into)
    }

    async fn write_debug_bundle(&mut self, name: String) -> WitResult<wit::FileInfo> {
        let (admin, dest) = (self.site_admin()?, self.plugin_file(&name)?);
        blocking(move || admin.write_debug_bundle(&dest))
            .await
            .map(Into::into)
    }

    async fn backup(&mut self, name: String) -> WitResult<wit::FileInfo> {
        let (admin, dest) = (self.site_admin()?, self.plugin_file(&name)?);
        blocking(move || admin.backup(&dest)).await.map(Into::into)
    }

    async fn restore(&mut self, name: String) -> WitResult<()> {
        let (admin, source) = (self.site_admin()?, self.plugin_file(&name)?);
        blocking(move || admin.restore(&source)).await
    }

    fn install_certificate(
        &mut self,
        cert_pem: String,
        key_pem: String,
        ca_pem: Option<String>,
    ) -> WitResult<String> {
        Ok(self
            .site_admin()?
            .install_certificate(&cert_pem, &key_pem, ca_pem.as_deref())?)
    }

    async fn stage_update(&mut self, name: String) -> WitResult<wit::UpdateManifest> {
        let (admin, source) = (self.site_admin()?, self.plugin_file(&name)?);
        blocking(move || admin.stage_update(&source))
            .await
            .map(Into::into)
    }

    async fn apply_update(&mut self) -> WitResult<wit::UpdateManifest> {
        let admin = self.site_admin()?;
        blocking(move || admin.apply_update()).await.map(Into::into)
    }

    fn open_sealed(&mut self, name: String) -> WitResult<Vec<u8>> {
        let (admin, source) = (self.site_admin()?, self.plugin_file(&name)?);
        Ok(admin.open_sealed(&source)?)
    }

    async fn restart(&mut self, backup_first: bool) -> WitResult<()> {
        let admin = self.site_admin()?;
        blocking(move || admin.restart(backup_first)).await
    }

    fn api_token_set(&mut self, value: String) -> WitResult<()> {
        Ok(self.site_admin()?.api_token_set(&value)?)
    }

    fn api_token_exists(&mut self) -> bool {
        self.site_admin().is_ok_and(|a| a.api_token_exists())
    }

    fn api_token_check(&mut self, value: String) -> bool {
        let peer = self.peer.clone();
        self.site_admin()
            .is_ok_and(|a| a.api_token_check(&value, &peer))
    }

    fn api_token_check_hmac(&mut self, message: String, hmac_hex: String) -> bool {
        let peer = self.peer.clone();
        self.site_admin()
            .is_ok_and(|a| a.api_token_check_hmac(&message, &hmac_hex, &peer))
    }

    async fn api_token_refused(&mut self, reason: String) {
        let Ok(admin) = self.site_admin() else {
            return;
        };
        let actor = format!("plugin:{}", self.plugin.name);
        admin.api_token_refused(&reason, &actor, &self.peer);
        tokio::time::sleep(super::REFUSAL_PAUSE).await;
    }
}

impl From<AdminError> for wit::AdminError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(m) => wit::AdminError::NotFound(m),
            AdminError::Invalid(m) => wit::AdminError::Invalid(m),
            AdminError::Undecryptable(m) => wit::AdminError::Undecryptable(m),
            AdminError::Version(m) => wit::AdminError::Version(m),
            AdminError::Failed(m) => wit::AdminError::Failed(m),
        }
    }
}

impl From<FileInfo> for wit::FileInfo {
    fn from(f: FileInfo) -> Self {
        wit::FileInfo {
            name: f.name,
            size: f.size,
            sha256: f.sha256,
        }
    }
}

impl From<super::package::Manifest> for wit::UpdateManifest {
    fn from(m: super::package::Manifest) -> Self {
        wit::UpdateManifest {
            plugins: m.plugins.into_iter().map(|p| p.name).collect(),
            version: m.version,
            min_version: m.min_version,
        }
    }
}
