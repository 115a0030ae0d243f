//! In-process cost of a fresh plugin instance: `Runtime::instantiate_only` and `Runtime::handle`.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tessera::config::SiteConfig;
use tessera::db::Database;
use tessera::primitives::Primitives;
use tessera::runtime::{CallError, Request, Runtime};

use super::targets;

/// Mean microseconds per call.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct InstanceCosts {
    pub iterations: u32,
    pub instantiate_us: f64,
    pub handle_us: f64,
}

/// Load the hello site in-process as `tessera serve` does and time `iterations`
/// fresh instances, uncalled and then serving `GET /hello/hello`.
pub fn measure(dir: &Path, iterations: u32) -> anyhow::Result<InstanceCosts> {
    std::fs::create_dir_all(dir.join("data"))?;
    let mut site = SiteConfig::load(&targets::write_hello_site(dir)?)?;
    site.data_dir = dir.join("data");
    let db = Database::open(&site.data_dir.join("tessera.db"))?;
    let primitives = Primitives::open(db, &site)?;
    let runtime = Runtime::start(&site, &primitives)?;
    let request = hello_request(&runtime);
    let request_id: Arc<str> = Arc::from("bench");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    tokio.block_on(async {
        let response = runtime.handle(0, &request, request_id.clone()).await?;
        anyhow::ensure!(
            response.status == 200,
            "GET /hello/hello answered {}",
            response.status
        );
        Ok(InstanceCosts {
            iterations,
            instantiate_us: mean_us(iterations, || runtime.instantiate_only(0)).await?,
            handle_us: mean_us(iterations, || {
                runtime.handle(0, &request, request_id.clone())
            })
            .await?,
        })
    })
}

/// The request the server would build for `GET /hello/hello` (see server/dispatch.rs).
fn hello_request(runtime: &Runtime) -> Request {
    let mount = runtime.plugins()[0].mounts[0].clone();
    Request {
        method: "GET".into(),
        path: format!("{mount}/hello"),
        mount,
        subpath: "/hello".into(),
        query: String::new(),
        headers: vec![
            ("host".into(), "127.0.0.1".into()),
            ("accept".into(), "*/*".into()),
        ],
        body: Vec::new(),
        peer: "127.0.0.1:40000".into(),
        request_id: "bench".into(),
    }
}

/// Mean time of `call` over `iterations`, after a tenth as many warm-up calls
/// (so the pool's warm slots and the caches are filled first).
async fn mean_us<T, F, Fut>(iterations: u32, mut call: F) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    for _ in 0..iterations / 10 {
        call().await?;
    }
    let started = Instant::now();
    for _ in 0..iterations {
        call().await?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations))
}
