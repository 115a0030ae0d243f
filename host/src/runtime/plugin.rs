//! Loading one plugin: compile (or take from cache), check its imports
//! against its mount's grants, link exactly what was granted, pre-instantiate.

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};

use super::bindings::PluginPre;
use super::builtin;
use super::cache::CompileCache;
use super::state::InstanceState;
use crate::config::{Grant, Limits, PluginConfig, SiteConfig, looks_like_path};
use crate::primitives::auth::Auth;
use crate::primitives::hypervisor::Compute;
use crate::primitives::jobs::Jobs;
use crate::primitives::{self, Primitives, settings::PluginSettings, storage::PluginStorage};

/// What every instance of a plugin shares: its identity, grants, limits and
/// the handles of the primitives it was granted.
pub struct PluginContext {
    pub name: Arc<str>,
    pub grants: HashSet<Grant>,
    pub limits: Limits,
    pub settings: PluginSettings,
    /// Present only when the mount grants `storage`.
    pub storage: Option<PluginStorage>,
    /// Present only when the mount grants `auth`.
    pub auth: Option<Auth>,
    /// Present only when the mount grants `jobs`.
    pub jobs: Option<Jobs>,
    /// Present only when the mount grants `hypervisor`.
    pub compute: Option<Compute>,
    /// Present only when the mount grants `site-admin`.
    pub site_admin: Option<crate::primitives::site_admin::SiteAdmin>,
    /// With the `files` grant: `<data dir>/files/<plugin>/`, the plugin's only
    /// WASI preopen (seen as `/`); cap-std keeps every path inside it.
    pub files: Option<std::path::PathBuf>,
    /// Dropped log lines and refused responses, for the metrics.
    pub counters: super::sandbox::SandboxCounters,
}

/// A plugin ready to serve: a pre-linked component and what it came from.
pub struct LoadedPlugin {
    pub ctx: Arc<PluginContext>,
    /// Swapped whole by an update: a call holds the code it started with.
    pub pre: ArcSwap<PluginPre<InstanceState>>,
    pub mounts: Vec<String>,
    pub source: String,
    pub sha256: String,
    pub size: usize,
}

/// A plugin the kernel refused to load.
#[derive(Debug, thiserror::Error)]
#[error("plugin {plugin}: {problem}")]
pub struct LoadError {
    pub plugin: String,
    pub problem: String,
}

/// The WIT package version this kernel implements.
const KERNEL_PACKAGE: &str = "tessera:kernel";
const KERNEL_VERSION: &str = "0.1.0";

pub fn load(
    engine: &Engine,
    cache: &CompileCache,
    name: &str,
    config: &PluginConfig,
    site: &SiteConfig,
    primitives: &Primitives,
) -> Result<LoadedPlugin, LoadError> {
    let fail = |problem: String| LoadError {
        plugin: name.to_string(),
        problem,
    };
    // An installed update package replaces the site's source for this plugin.
    let wasm = match crate::primitives::site_admin::installed_plugin(&site.data_dir, name) {
        Some(wasm) => wasm,
        None => read_source(&config.source).map_err(fail)?,
    };
    let sha256 = hex::encode(Sha256::digest(&wasm));
    let component = cache
        .load_or_compile(engine, &wasm, &sha256)
        .map_err(|e| fail(format!("{} is not a valid component: {e:#}", config.source)))?;

    let grants: HashSet<Grant> = config
        .grants
        .iter()
        .filter_map(|g| Grant::parse(g))
        .collect();
    check_imports(engine, &component, &grants).map_err(fail)?;

    let storage = if grants.contains(&Grant::Storage) {
        Some(
            primitives
                .storage
                .for_plugin(name)
                .map_err(|e| fail(e.to_string()))?,
        )
    } else {
        None
    };
    let files = if grants.contains(&Grant::Files) {
        let dir = site.data_dir.join("files").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| {
            fail(format!(
                "cannot create its files dir {}: {e}",
                dir.display()
            ))
        })?;
        Some(dir)
    } else {
        None
    };
    let ctx = Arc::new(PluginContext {
        name: Arc::from(name),
        limits: config.limits.over(&site.limits),
        files,
        settings: PluginSettings::new(&config.settings),
        storage,
        auth: grants
            .contains(&Grant::Auth)
            .then(|| primitives.auth.clone()),
        jobs: grants
            .contains(&Grant::Jobs)
            .then(|| primitives.jobs.clone()),
        compute: grants
            .contains(&Grant::Hypervisor)
            .then(|| primitives.compute.clone()),
        site_admin: grants
            .contains(&Grant::SiteAdmin)
            .then(|| primitives.site_admin.clone()),
        grants,
        counters: Default::default(),
    });
    let pre = link(engine, &component, &ctx.grants).map_err(fail)?;
    Ok(LoadedPlugin {
        ctx,
        pre: ArcSwap::from_pointee(pre),
        mounts: config.mounts.clone(),
        source: config.source.clone(),
        size: wasm.len(),
        sha256,
    })
}

/// New code for a loaded plugin (an update): compiled, its imports checked
/// against the plugin's grants, linked. Nothing is swapped yet.
pub fn prepare(
    engine: &Engine,
    cache: &CompileCache,
    plugin: &LoadedPlugin,
    wasm: &[u8],
) -> Result<PluginPre<InstanceState>, LoadError> {
    let fail = |problem: String| LoadError {
        plugin: plugin.ctx.name.to_string(),
        problem,
    };
    let sha256 = hex::encode(Sha256::digest(wasm));
    let component = cache
        .load_or_compile(engine, wasm, &sha256)
        .map_err(|e| fail(format!("the update's wasm is not a valid component: {e:#}")))?;
    check_imports(engine, &component, &plugin.ctx.grants).map_err(fail)?;
    link(engine, &component, &plugin.ctx.grants).map_err(fail)
}

/// Link exactly the granted interfaces and pre-instantiate.
fn link(
    engine: &Engine,
    component: &Component,
    grants: &HashSet<Grant>,
) -> Result<PluginPre<InstanceState>, String> {
    let linker = linker_for(engine, grants).map_err(|e| format!("{e:#}"))?;
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| format!("cannot link: {e:#}"))?;
    PluginPre::new(pre).map_err(|e| {
        format!("does not export the tessera:kernel plugin world (handler, jobs-runner): {e:#}")
    })
}

fn read_source(source: &str) -> Result<Vec<u8>, String> {
    if looks_like_path(source) {
        std::fs::read(source).map_err(|e| format!("cannot read {source}: {e}"))
    } else {
        builtin::get(source)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| format!("no built-in plugin named {source}"))
    }
}

/// Refuse a component that imports a kernel interface its mount does not
/// grant, or an interface the kernel does not know.
fn check_imports(
    engine: &Engine,
    component: &Component,
    grants: &HashSet<Grant>,
) -> Result<(), String> {
    for (import, item) in component.component_type().imports(engine) {
        if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            return Err(format!("imports {import}, which is not an interface"));
        }
        if let Some(grant) = required_grant(import)?
            && !grants.contains(&grant)
        {
            return Err(format!(
                "imports {import} but its mount does not grant \"{}\"",
                grant.name()
            ));
        }
    }
    Ok(())
}

/// The grant an import needs: none for WASI (whose context grants nothing
/// ambient), for `log` and `config`, and for the type-only `types` and `sockets`.
fn required_grant(import: &str) -> Result<Option<Grant>, String> {
    if import.starts_with("wasi:") {
        return Ok(None);
    }
    let (path, version) = import.split_once('@').unwrap_or((import, ""));
    let Some(interface) = path
        .strip_prefix(KERNEL_PACKAGE)
        .and_then(|p| p.strip_prefix('/'))
    else {
        return Err(format!(
            "imports {import}, an interface the kernel does not offer"
        ));
    };
    if version != KERNEL_VERSION {
        return Err(format!(
            "imports {import}, but this kernel implements {KERNEL_PACKAGE}@{KERNEL_VERSION}"
        ));
    }
    match interface {
        "types" | "log" | "config" | "sockets" => Ok(None),
        "storage" => Ok(Some(Grant::Storage)),
        "auth" => Ok(Some(Grant::Auth)),
        "jobs" => Ok(Some(Grant::Jobs)),
        "hypervisor" => Ok(Some(Grant::Hypervisor)),
        "site-admin" => Ok(Some(Grant::SiteAdmin)),
        _ => Err(format!(
            "imports {import}, an interface the kernel does not offer"
        )),
    }
}

/// A linker with WASI and exactly the granted kernel interfaces.
fn linker_for(engine: &Engine, grants: &HashSet<Grant>) -> wasmtime::Result<Linker<InstanceState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    primitives::link_always(&mut linker)?;
    for grant in grants {
        primitives::link_grant(&mut linker, *grant)?;
    }
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_map_to_grants() {
        assert_eq!(required_grant("wasi:cli/environment@0.2.6"), Ok(None));
        assert_eq!(required_grant("tessera:kernel/log@0.1.0"), Ok(None));
        assert_eq!(
            required_grant("tessera:kernel/storage@0.1.0"),
            Ok(Some(Grant::Storage))
        );
        assert!(required_grant("tessera:kernel/storage@0.2.0").is_err());
        assert!(required_grant("tessera:kernel/secrets@0.1.0").is_err());
        assert!(required_grant("acme:evil/net@1.0.0").is_err());
    }
}
