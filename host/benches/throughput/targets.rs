//! The servers under test: the native hyper baseline, the `tessera` binary, and `wasmtime serve`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::proc::{self, Child};

pub const HELLO_BODY: &str = r#"{"hello":"world"}"#;

/// The site the plugin rows use: only `hello`, and logging that stays quiet under load.
/// `hello` imports auth too (for routes not measured here), so it must be granted.
pub const HELLO_SITE: &str = r#"log = "warn"

[plugins.hello]
source = "hello"
mounts = ["/hello"]
grants = ["storage", "auth", "jobs", "hypervisor"]
"#;

/// How long a server may take to come up (the first start compiles every plugin).
const START_LIMIT: Duration = Duration::from_secs(300);

/// Write [`HELLO_SITE`] into `dir` and return its path.
pub fn write_hello_site(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("site.toml");
    std::fs::write(&path, HELLO_SITE)?;
    Ok(path)
}

/// The baseline: hyper 1, HTTP/1.1 keep-alive, on its own multi-thread runtime
/// (as `tessera serve` has) so it never shares the load generator's thread.
pub struct NativeServer {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl NativeServer {
    pub fn start() -> anyhow::Result<NativeServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        runtime.spawn(accept_loop(listener));
        Ok(NativeServer {
            addr,
            runtime: Some(runtime),
        })
    }
}

impl Drop for NativeServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_req| async { Ok::<_, Infallible>(hello_response()) });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn hello_response() -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(HELLO_BODY.as_bytes())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A server in a child process, killed on drop.
pub struct ChildServer {
    pub addr: SocketAddr,
    pub child: Child,
}

/// `tessera serve` on a free port; `site` is `None` for the built-in default site.
pub fn start_tessera(site: Option<&Path>, data_dir: &Path) -> anyhow::Result<ChildServer> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir);
    if let Some(site) = site {
        command.arg("--config").arg(site);
    }
    // The site's own `log` setting applies, not whatever the shell exported.
    command.env_remove("RUST_LOG");
    std::fs::create_dir_all(data_dir)?;
    let mut child = Child::spawn(
        "tessera serve",
        &mut command,
        Some(&data_dir.join("stderr.log")),
    )?;
    let line = child.await_line("listening on http://", START_LIMIT)?;
    let addr = line
        .trim()
        .parse()
        .with_context(|| format!("bad address {line:?}"))?;
    Ok(ChildServer { addr, child })
}

/// How to get the optional `wasmtime serve` row.
const WASMTIME_INSTALL: &str = "cargo install wasmtime-cli --version 48.0.8 --locked";

/// The `wasmtime` on PATH when it is the 48.x the kernel embeds; otherwise why not.
pub fn wasmtime_cli() -> Result<String, String> {
    let found = match proc::version_of("wasmtime") {
        Some(version) if version.starts_with("wasmtime 48.") => return Ok(version),
        Some(version) => format!("{version} on PATH is not 48.x"),
        None => "no wasmtime on PATH".to_string(),
    };
    Err(format!("{found}; install it with `{WASMTIME_INSTALL}`"))
}

/// Build bench/wasi-http-hello for wasm32-wasip2 with its own target dir, and return the component.
pub fn build_wasi_http_hello(target_root: &Path) -> anyhow::Result<PathBuf> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/wasi-http-hello");
    let target_dir = target_root.join("wasi-http-hello");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&crate_dir)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .context("cannot run cargo for the wasi:http component")?;
    anyhow::ensure!(
        status.success(),
        "building {} failed ({status})",
        crate_dir.display()
    );
    Ok(target_dir.join("wasm32-wasip2/release/wasi_http_hello.wasm"))
}

/// `wasmtime serve` with the flags PERF-NOTES.md's anchor used.
pub fn start_wasmtime_serve(component: &Path, log_dir: &Path) -> anyhow::Result<ChildServer> {
    let addr = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
    let mut command = Command::new("wasmtime");
    command
        .args([
            "serve",
            "-S",
            "cli=y",
            "-O",
            "pooling-allocator=y",
            "--addr",
        ])
        .arg(addr.to_string())
        .arg(component);
    let child = Child::spawn(
        "wasmtime serve",
        &mut command,
        Some(&log_dir.join("wasmtime.log")),
    )?;
    proc::await_ready(addr, "/", START_LIMIT)
        .map_err(|e| anyhow::anyhow!("{e}{}", child.stderr_tail()))?;
    Ok(ChildServer { addr, child })
}
