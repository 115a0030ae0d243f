//! On-disk cache of compiled plugins, keyed by the wasm's SHA-256 and the
//! engine's compatibility hash (wasmtime version + settings), so a restart
//! deserializes instead of recompiling.

use std::hash::{Hash, Hasher};
use std::io::Write;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use wasmtime::Engine;
use wasmtime::component::Component;

pub struct CompileCache {
    dir: Option<Dir>,
}

impl CompileCache {
    /// A cache in `path` (created if needed). Without a usable directory the
    /// kernel still runs, compiling at every start.
    pub fn open(path: &std::path::Path) -> Self {
        let dir = std::fs::create_dir_all(path)
            .and_then(|_| Dir::open_ambient_dir(path, ambient_authority()));
        match dir {
            Ok(dir) => CompileCache { dir: Some(dir) },
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "compile cache disabled");
                CompileCache { dir: None }
            }
        }
    }

    pub fn disabled() -> Self {
        CompileCache { dir: None }
    }

    /// The compiled component for `wasm`, from the cache when possible.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<Component> {
        let name = entry_name(engine, sha256);
        if let Some(component) = self.load(engine, &name) {
            return Ok(component);
        }
        let component = Component::new(engine, wasm)?;
        self.store(&name, &component);
        Ok(component)
    }

    fn load(&self, engine: &Engine, name: &str) -> Option<Component> {
        let bytes = self.dir.as_ref()?.read(name).ok()?;
        // SAFETY: the file was written by `store` below from
        // `Component::serialize` of this same engine configuration (the name
        // carries its compatibility hash) inside the kernel's own data dir;
        // wasmtime still validates the header and version.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(entry = name, error = %e, "ignoring unusable compile cache entry");
                None
            }
        }
    }

    /// Write atomically (temp file + rename) so a crash never leaves a torn
    /// entry behind. Failure only costs a recompile next time.
    fn store(&self, name: &str, component: &Component) {
        let Some(dir) = &self.dir else { return };
        let result = component.serialize().and_then(|bytes| {
            let tmp = format!("{name}.tmp{}", std::process::id());
            let mut file = dir.create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            dir.rename(&tmp, dir, name)?;
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(entry = name, error = %e, "could not write compile cache entry");
        }
    }
}

fn entry_name(engine: &Engine, sha256: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!(
        "{sha256}-wasmtime{}-{:016x}.cwasm",
        wasmtime_version(),
        hasher.finish()
    )
}

fn wasmtime_version() -> &'static str {
    // Pinned in host/Cargo.toml; the compatibility hash covers the rest.
    "48.0.8"
}
