//! While the kernel starts — its plugins load and compile, which takes seconds
//! without a warm compile cache — the listening sockets are already bound (or
//! taken over from the kernel that restarted into this one). Requests that
//! arrive then are answered `503` with `Retry-After` instead of waiting
//! unanswered in the backlog, so clients with a retry loop (VMmanager's spec)
//! come back once every mount is ready. Hot-swapping a plugin's code has no
//! such window: the new code replaces the old atomically.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Listeners;

/// Seconds a client is told to wait before it tries again.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The responder that answers `503` until [`Starting::ready`].
pub struct Starting {
    stop: watch::Sender<bool>,
    acceptors: Vec<JoinHandle<()>>,
}

impl Starting {
    /// Starts answering on copies of `listeners` (the originals stay open for
    /// the real server). Must run inside the tokio runtime.
    pub fn answer(listeners: &Listeners) -> anyhow::Result<Starting> {
        let (stop, stopped) = watch::channel(false);
        let mut acceptors = Vec::new();
        let http = TcpListener::from_std(listeners.http.try_clone()?)?;
        acceptors.push(tokio::spawn(accept(http, None, stopped.clone())));
        if let Some((listener, config)) = &listeners.https {
            let https = TcpListener::from_std(listener.try_clone()?)?;
            let tls = tokio_rustls::TlsAcceptor::from(config.clone());
            acceptors.push(tokio::spawn(accept(https, Some(tls), stopped)));
        }
        Ok(Starting { stop, acceptors })
    }

    /// The kernel is ready: stop accepting here, so the real server alone
    /// accepts from now on. Connections already taken get their `503`.
    pub async fn ready(self) {
        let _ = self.stop.send(true);
        for acceptor in self.acceptors {
            let _ = acceptor.await;
        }
    }
}

async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(|_req| async { Ok::<_, Infallible>(not_ready()) });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let _ = match tls {
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => builder.serve_connection(TokioIo::new(stream), service).await,
                            Err(_) => return,
                        },
                        None => builder.serve_connection(TokioIo::new(stream), service).await,
                    };
                });
            }
        }
    }
}

/// `503` in the kernel's envelope, with `Retry-After`, closing the connection
/// so the retry reaches the ready server.
fn not_ready() -> hyper::Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = serde_json::json!({
        "code": "Starting",
        "message": "the kernel is starting; retry shortly",
        "request_id": request_id,
    });
    let mut response = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        hyper::header::RETRY_AFTER,
        hyper::header::HeaderValue::from(RETRY_AFTER_SECONDS),
    );
    headers.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    if let Ok(value) = hyper::header::HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    fn request(address: std::net::SocketAddr) -> String {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream
            .write_all(b"GET /vm/v3/host HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer
    }

    #[test]
    fn requests_get_503_with_retry_after_until_ready_then_reach_the_real_listener() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let http = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        http.set_nonblocking(true).expect("nonblocking");
        let address = http.local_addr().expect("address");
        let listeners = Listeners { http, https: None };
        let starting = runtime
            .block_on(async { Starting::answer(&listeners) })
            .expect("answer");
        for _ in 0..3 {
            let answer = std::thread::spawn(move || request(address))
                .join()
                .expect("request");
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
            assert!(
                answer.to_ascii_lowercase().contains("retry-after: 1"),
                "{answer}"
            );
            assert!(answer.contains("\"code\":\"Starting\""), "{answer}");
        }
        runtime.block_on(starting.ready());
        // Now only the original socket accepts: a request waits for it.
        let client = std::thread::spawn(move || {
            let mut stream = TcpStream::connect(address).expect("connect");
            stream.write_all(b"ping").expect("send");
        });
        listeners.http.set_nonblocking(false).expect("blocking");
        let (mut accepted, _) = listeners.http.accept().expect("the real listener accepts");
        let mut ping = [0u8; 4];
        accepted.read_exact(&mut ping).expect("read");
        assert_eq!(&ping, b"ping");
        client.join().expect("client");
    }
}
