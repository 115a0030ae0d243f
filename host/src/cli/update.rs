//! `tessera update pack` (make an update package) and `tessera update unseal`
//! (open a sealed file: an update package or a debug bundle).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use crate::primitives::site_admin::{package, sealed::PackageKey};

#[derive(Subcommand)]
pub enum UpdateCommand {
    /// Make an encrypted update package of plugin `.wasm` files. A file's
    /// plugin is its name without `.wasm` (`plugin_` and `_` read as `-`), or
    /// say it: `NAME=path.wasm`.
    Pack {
        /// The site's package key: a file of 64 hex digits (`<data_dir>/update.key`).
        #[arg(long)]
        key: PathBuf,
        /// The site's version once the update is installed (MAJOR.MINOR.PATCH).
        #[arg(long)]
        version: String,
        /// The oldest site version it installs on.
        #[arg(long, default_value = "0.0.0")]
        min_version: String,
        /// A changelog file shipped with the update.
        #[arg(long)]
        changelog: Option<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(required = true)]
        plugins: Vec<String>,
    },
    /// Seal a file with the site's package key (a license, say).
    Seal {
        #[arg(long)]
        key: PathBuf,
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Decrypt a sealed file (an update package or a debug bundle).
    Unseal {
        #[arg(long)]
        key: PathBuf,
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
}

pub fn run(command: UpdateCommand) -> anyhow::Result<()> {
    match command {
        UpdateCommand::Pack {
            key,
            version,
            min_version,
            changelog,
            output,
            plugins,
        } => {
            let key = PackageKey::read(&key)?;
            let changelog = changelog
                .map(|p| {
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("cannot read {}", p.display()))
                })
                .transpose()?;
            let mut files = Vec::new();
            for arg in &plugins {
                let (name, path) = plugin_arg(arg)?;
                let wasm = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                files.push((name, wasm));
            }
            let bytes = package::pack(&key, &version, &min_version, changelog.as_deref(), &files)
                .map_err(|e| anyhow::anyhow!(e))?;
            std::fs::write(&output, &bytes)
                .with_context(|| format!("cannot write {}", output.display()))?;
            println!(
                "{}: version {version} ({} plugins, {} bytes)",
                output.display(),
                files.len(),
                bytes.len()
            );
            Ok(())
        }
        UpdateCommand::Seal { key, file, output } => {
            let key = PackageKey::read(&key)?;
            let plain =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            std::fs::write(&output, key.seal(&plain))
                .with_context(|| format!("cannot write {}", output.display()))?;
            Ok(())
        }
        UpdateCommand::Unseal { key, file, output } => {
            let key = PackageKey::read(&key)?;
            let sealed =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let plain = key.open(&sealed)?;
            std::fs::write(&output, plain)
                .with_context(|| format!("cannot write {}", output.display()))?;
            Ok(())
        }
    }
}

/// `NAME=path.wasm`, or a path whose file name gives the plugin's name.
fn plugin_arg(arg: &str) -> anyhow::Result<(String, PathBuf)> {
    if let Some((name, path)) = arg.split_once('=') {
        return Ok((name.to_string(), PathBuf::from(path)));
    }
    let path = PathBuf::from(arg);
    let stem = Path::new(arg)
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| anyhow::anyhow!("{arg}: cannot tell the plugin's name; write NAME={arg}"))?;
    let name = stem
        .strip_prefix("plugin_")
        .unwrap_or(stem)
        .replace('_', "-");
    Ok((name, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_come_from_file_names_or_are_given() {
        assert_eq!(
            plugin_arg("target/plugin_appliance_admin.wasm").unwrap().0,
            "appliance-admin"
        );
        assert_eq!(plugin_arg("x/hello.wasm").unwrap().0, "hello");
        let (name, path) = plugin_arg("greeter=x/hostile.wasm").unwrap();
        assert_eq!(
            (name.as_str(), path),
            ("greeter", PathBuf::from("x/hostile.wasm"))
        );
    }
}
