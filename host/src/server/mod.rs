//! The HTTP server: hyper 1 over tokio, HTTP/1.1 and h2c on one port (and
//! HTTPS on another when `[tls]` is set), keep-alive, graceful shutdown on
//! SIGINT/SIGTERM and graceful restart on request (`listeners.rs`).

mod dispatch;
pub(crate) use dispatch::wit_request;
mod kernel_routes;
pub mod listeners;
mod sockets;
mod starting;

pub use listeners::{Ended, Listeners};
pub use starting::Starting;

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

/// Announce and serve until SIGINT/SIGTERM or a restart request; then stop
/// accepting and let in-flight requests finish. On a restart the listening
/// sockets are handed back open, for the next kernel to take over.
pub async fn serve(
    kernel: Arc<Kernel>,
    listeners: Listeners,
    restart: Arc<crate::primitives::site_admin::RestartSignal>,
) -> anyhow::Result<Ended> {
    let http = TcpListener::from_std(listeners.http)?;
    let local = http.local_addr()?;
    println!("listening on http://{local}");
    let https = match listeners.https {
        Some((listener, config)) => {
            let listener = TcpListener::from_std(listener)?;
            println!("listening on https://{}", listener.local_addr()?);
            Some((listener, tokio_rustls::TlsAcceptor::from(config)))
        }
        None => None,
    };
    tracing::info!(%local, tls = https.is_some(), plugins = kernel.runtime.plugins().len(), "listening");

    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let ended = loop {
        let tls_accept = async {
            match &https {
                Some((listener, _)) => listener.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = http.accept() => {
                let Some((stream, peer)) = accepted_or_backoff(accepted).await else { continue };
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
            accepted = tls_accept => {
                let Some((stream, peer)) = accepted_or_backoff(accepted).await else { continue };
                let Some((_, acceptor)) = &https else { continue };
                let (acceptor, builder, watcher) = (acceptor.clone(), builder.clone(), graceful.watcher());
                let kernel = kernel.clone();
                tokio::spawn(async move {
                    let tls = match acceptor.accept(stream).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                    };
                    let service = service_fn(move |req| dispatch::handle(kernel.clone(), peer, req));
                    let conn = builder.serve_connection(TokioIo::new(tls), service).into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break Ended::Shutdown,
            () = restart.wait() => break Ended::Restart(Listeners {
                http: http.into_std()?,
                https: match https {
                    Some((listener, acceptor)) => Some((listener.into_std()?, acceptor.config().clone())),
                    None => None,
                },
            }),
        }
    };
    tracing::info!("draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("drain timed out; closing"),
    }
    Ok(ended)
}

/// The accepted stream, or `None` after a short pause when accept failed
/// (out of file descriptors and the like: back off, keep serving).
async fn accepted_or_backoff(
    accepted: std::io::Result<(tokio::net::TcpStream, SocketAddr)>,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    match accepted {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer))
        }
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
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
