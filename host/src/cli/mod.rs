//! The `tessera` command line: `serve`, `config check`, `plugins list`, and
//! the operator's identity commands (`user`, `key`, `token`, `realm`, `audit`).

mod compute;
mod identity;
mod jobs;
mod update;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{self, SiteConfig};
use crate::db::Database;
use crate::primitives::{Primitives, site_admin};
use crate::runtime::{Runtime, builtin};
use crate::server::{self, Kernel};

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "A WebAssembly-plugin platform kernel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the site until SIGINT/SIGTERM.
    Serve {
        #[command(flatten)]
        site: SiteArgs,
        /// Override the listen address (`127.0.0.1:0` picks a free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Override the data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Site config commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Plugin commands.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Update packages: make one, or open a sealed file.
    Update {
        #[command(subcommand)]
        command: update::UpdateCommand,
    },
    #[command(flatten)]
    Identity(identity::IdentityCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a site config and exit (0 when valid).
    Check {
        #[command(flatten)]
        site: SiteArgs,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// The site's plugins: name, mounts, grants, wasm sha256 and size.
    List {
        #[command(flatten)]
        site: SiteArgs,
    },
}

#[derive(Args, Clone)]
pub(crate) struct SiteArgs {
    /// The site config (TOML). Without it, the built-in default site.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
}

impl SiteArgs {
    pub(crate) fn load(&self) -> anyhow::Result<SiteConfig> {
        match &self.config {
            Some(path) => Ok(SiteConfig::load(path)?),
            None => Ok(config::default_site()),
        }
    }
}

/// Run the CLI; the error is printed by `main` as one line.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            site,
            listen,
            data_dir,
        } => {
            let mut site = site.load()?;
            if let Some(listen) = listen {
                site.listen = listen;
            }
            if let Some(dir) = data_dir {
                site.data_dir = dir;
            }
            serve(site)
        }
        Command::Config {
            command: ConfigCommand::Check { site },
        } => {
            let site = site.load()?;
            println!(
                "{}: ok ({} plugins enabled)",
                site.origin,
                site.enabled_plugins().count()
            );
            Ok(())
        }
        Command::Plugins {
            command: PluginsCommand::List { site },
        } => list_plugins(&site.load()?),
        Command::Update { command } => update::run(command),
        Command::Identity(command) => identity::run(command),
    }
}

fn serve(site: SiteConfig) -> anyhow::Result<()> {
    // Before any thread starts: the sockets a restarting kernel handed over.
    let inherited = server::listeners::inherited();
    std::fs::create_dir_all(&site.data_dir)
        .with_context(|| format!("cannot create data dir {}", site.data_dir.display()))?;
    init_tracing(&site.log, &site_admin::site_log_files(&site))?;
    let db = Database::open(&site.data_dir.join("tessera.db"))
        .with_context(|| format!("cannot open the database in {}", site.data_dir.display()))?;
    let primitives = Primitives::open(db, &site)?;
    let listeners = bind_listeners(&site, &primitives.site_admin, inherited)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tessera-worker")
        .build()?;
    // Until every plugin is loaded, requests are answered 503 + Retry-After.
    let starting = tokio.block_on(async { server::Starting::answer(&listeners) })?;
    let runtime = Runtime::start(&site, &primitives);
    tokio.block_on(starting.ready());
    let kernel = Arc::new(Kernel::new(runtime?));
    primitives.site_admin.attach(&kernel);
    let ended = tokio.block_on(async {
        tokio::spawn(purge_expired_tokens(primitives.auth.clone()));
        tokio::spawn(keep_statistics(primitives.db.clone()));
        crate::workers::start(kernel.clone(), primitives.compute.clone());
        server::serve(kernel, listeners, primitives.site_admin.restart_signal()).await
    })?;
    match ended {
        server::Ended::Shutdown => Ok(()),
        server::Ended::Restart(listeners) => Err(server::listeners::reexec(&listeners)),
    }
}

/// The plain listener and, with `[tls]`, the HTTPS one with its swappable certificate.
fn bind_listeners(
    site: &SiteConfig,
    admin: &site_admin::SiteAdmin,
    inherited: Option<(i32, Option<i32>)>,
) -> anyhow::Result<server::Listeners> {
    let (http_fd, https_fd) = match inherited {
        Some((http, https)) => (Some(http), https),
        None => (None, None),
    };
    let http = server::listeners::bind(site.listen, http_fd)?;
    let https = match &site.tls {
        Some(tls) => {
            let cert = site_admin::tls::initial(&site.data_dir, tls)
                .map_err(|e| anyhow::anyhow!("tls: {e}"))?;
            let resolver = Arc::new(site_admin::tls::CertResolver::new(cert.key));
            admin.attach_tls(resolver.clone());
            let listener = server::listeners::bind(tls.listen, https_fd)?;
            Some((listener, site_admin::tls::server_config(resolver)))
        }
        None => None,
    };
    Ok(server::Listeners { http, https })
}

/// Expired and revoked tokens are deleted in the background, once a minute.
async fn purge_expired_tokens(auth: crate::primitives::auth::Auth) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        let auth = auth.clone();
        match tokio::task::spawn_blocking(move || auth.purge_expired()).await {
            Ok(Ok(n)) if n > 0 => tracing::debug!(purged = n, "expired tokens purged"),
            Ok(Err(e)) => tracing::warn!(error = %e, "token purge failed"),
            _ => {}
        }
    }
}

/// The planner's statistics follow the data: re-gathered every ten minutes where a
/// table changed size a lot (a plugin's projection filling up, say).
async fn keep_statistics(db: Database) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        every.tick().await;
        let db = db.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || db.optimize()).await {
            tracing::warn!(error = %e, "refreshing the planner statistics failed");
        }
    }
}

fn list_plugins(site: &SiteConfig) -> anyhow::Result<()> {
    use sha2::{Digest, Sha256};
    println!(
        "{:<18} {:<34} {:<36} {:>9}  sha256",
        "name", "mounts", "grants", "bytes"
    );
    for (name, plugin) in site.enabled_plugins() {
        let wasm = if config::looks_like_path(&plugin.source) {
            std::fs::read(&plugin.source)
                .with_context(|| format!("cannot read {}", plugin.source))?
        } else {
            builtin::get(&plugin.source)
                .map(<[u8]>::to_vec)
                .unwrap_or_default()
        };
        println!(
            "{:<18} {:<34} {:<36} {:>9}  {}",
            name,
            plugin.mounts.join(","),
            plugin.grants.join(","),
            wasm.len(),
            hex::encode(Sha256::digest(&wasm))
        );
    }
    Ok(())
}

/// Log lines go to stderr and to the rotating log file under the data dir.
fn init_tracing(filter: &str, files: &site_admin::logfile::LogFiles) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(env),
        _ => EnvFilter::try_new(filter),
    }
    .map_err(|e| anyhow::anyhow!("bad log filter: {e}"))?;
    let file = files
        .writer()
        .with_context(|| format!("cannot open the log file in {}", files.dir.display()))?;
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(file),
        )
        .try_init()
        .map_err(|e| anyhow::anyhow!("{e}"))
}
