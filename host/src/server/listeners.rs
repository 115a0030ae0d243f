//! The listening sockets: bound fresh, or taken over from the kernel that
//! re-executed this one (`TESSERA_LISTEN_FDS`), so a restart refuses no
//! connection: they wait in the backlog until the new kernel accepts.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// The environment variable a restarting kernel passes its sockets in.
pub const LISTEN_FDS_ENV: &str = "TESSERA_LISTEN_FDS";

pub struct Listeners {
    pub http: TcpListener,
    pub https: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
}

/// How `serve` ended.
pub enum Ended {
    Shutdown,
    /// A restart was asked for: the sockets, still open.
    Restart(Listeners),
}

/// The sockets a restarting kernel left us, as `(http, https)` descriptors.
/// Read once, at start, before any thread exists.
pub fn inherited() -> Option<(i32, Option<i32>)> {
    let value = std::env::var(LISTEN_FDS_ENV).ok()?;
    // SAFETY: called from `cli::serve` before any other thread is started.
    unsafe { std::env::remove_var(LISTEN_FDS_ENV) };
    let mut fds = value.split(',').map(|fd| fd.parse::<i32>().ok());
    let http = fds.next()??;
    let https = fds.next().flatten();
    Some((http, https))
}

/// Bind `addr`, or adopt an inherited descriptor.
pub fn bind(addr: SocketAddr, inherited: Option<i32>) -> anyhow::Result<TcpListener> {
    let listener = match inherited {
        #[cfg(unix)]
        Some(fd) => {
            use std::os::fd::FromRawFd;
            // SAFETY: the descriptor is a listening socket our predecessor
            // left open for us, and nothing else in this process owns it.
            unsafe { TcpListener::from_raw_fd(fd) }
        }
        _ => {
            TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?
        }
    };
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Replace this process with a fresh kernel on the same sockets and arguments.
#[cfg(unix)]
pub fn reexec(listeners: &Listeners) -> anyhow::Error {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let mut fds = vec![listeners.http.as_raw_fd()];
    if let Some((https, _)) = &listeners.https {
        fds.push(https.as_raw_fd());
    }
    for fd in &fds {
        // SAFETY: plain fcntl on descriptors we own; keeps them across exec.
        let flags = unsafe { libc::fcntl(*fd, libc::F_GETFD) };
        if flags < 0 || unsafe { libc::fcntl(*fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
            return anyhow::anyhow!("cannot keep the listening socket across exec");
        }
    }
    let value: Vec<String> = fds.iter().map(|fd| fd.to_string()).collect();
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return anyhow::anyhow!("cannot find the kernel binary to re-exec: {e}"),
    };
    tracing::warn!(exe = %exe.display(), "re-executing the kernel");
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(LISTEN_FDS_ENV, value.join(","))
        .exec();
    anyhow::anyhow!("re-exec failed: {error}")
}

#[cfg(not(unix))]
pub fn reexec(_listeners: &Listeners) -> anyhow::Error {
    anyhow::anyhow!("restarting in place needs a Unix system")
}
