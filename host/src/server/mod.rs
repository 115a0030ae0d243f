//! The HTTP server: hyper 1 over tokio, HTTP/1.1 and h2c on one port,
//! keep-alive, graceful shutdown on SIGINT/SIGTERM.

mod dispatch;
mod kernel_routes;
mod sockets;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::router::Router;
use crate::runtime::Runtime;

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a request needs, shared by all connections.
pub struct Kernel {
    pub runtime: Runtime,
    pub router: Router<usize>,
    pub metrics: Metrics,
    pub started: Instant,
}

impl Kernel {
    pub fn new(runtime: Runtime) -> Self {
        let router = Router::new(
            runtime
                .plugins()
                .iter()
                .enumerate()
                .flat_map(|(i, p)| p.mounts.iter().map(move |m| (m.clone(), i))),
        );
        let metrics = Metrics::new(
            runtime
                .plugins()
                .iter()
                .map(|p| p.ctx.name.to_string())
                .collect(),
        );
        Kernel {
            runtime,
            router,
            metrics,
            started: Instant::now(),
        }
    }
}

/// Bind, announce, and serve until SIGINT/SIGTERM; then stop accepting and
/// let in-flight requests finish.
pub async fn serve(kernel: Arc<Kernel>, listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr()?;
    println!("listening on http://{local}");
    tracing::info!(%local, plugins = kernel.runtime.plugins().len(), "listening");

    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let kernel = kernel.clone();
                let service = service_fn(move |req| dispatch::handle(kernel.clone(), peer, req));
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("drain timed out; closing"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
