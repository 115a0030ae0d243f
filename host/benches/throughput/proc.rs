//! Processes the bench starts (servers, wrk) and the blocking HTTP probe it talks to them with.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A child process that is killed when dropped, so no run (or panic) leaves one behind.
pub struct Child {
    inner: std::process::Child,
    name: String,
    /// Where its stderr goes, quoted when it fails.
    stderr_log: Option<PathBuf>,
}

impl Child {
    /// Start `command` with stdout piped; stderr goes to `stderr_log` when given.
    pub fn spawn(
        name: &str,
        command: &mut Command,
        stderr_log: Option<&Path>,
    ) -> anyhow::Result<Child> {
        let stderr = match stderr_log {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::piped(),
        };
        let inner = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Child {
            inner,
            name: name.to_string(),
            stderr_log: stderr_log.map(Path::to_path_buf),
        })
    }

    pub fn pid(&self) -> u32 {
        self.inner.id()
    }

    /// Wait for a stdout line starting with `prefix` and return the rest of it.
    /// A reader thread keeps draining stdout afterwards so the child never blocks on a full pipe.
    pub fn await_line(&mut self, prefix: &'static str, limit: Duration) -> anyhow::Result<String> {
        let stdout = self.inner.stdout.take().context("stdout already taken")?;
        let (found, wait) = mpsc::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix(prefix)
                    && let Some(tx) = found.take()
                {
                    let _ = tx.send(rest.to_string());
                }
            }
        });
        wait.recv_timeout(limit).map_err(|e| {
            let why = match e {
                mpsc::RecvTimeoutError::Timeout => {
                    format!("printed no {prefix:?} line within {limit:?}")
                }
                mpsc::RecvTimeoutError::Disconnected => {
                    format!("closed stdout before printing {prefix:?}")
                }
            };
            anyhow::anyhow!("{} {why}{}", self.name, self.stderr_tail())
        })
    }

    /// Wait (bounded) for the child to exit by itself and return its stdout.
    pub fn finish(mut self, limit: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.inner.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                bail!("{} still running after {limit:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.inner.stdout.take() {
            out.read_to_string(&mut stdout)?;
        }
        if !status.success() {
            let mut stderr = String::new();
            if let Some(mut err) = self.inner.stderr.take() {
                err.read_to_string(&mut stderr)?;
            }
            bail!("{} failed ({status}): {stderr}{stdout}", self.name);
        }
        Ok(stdout)
    }

    /// The last lines of its stderr log, for error messages.
    pub fn stderr_tail(&self) -> String {
        let Some(text) = self
            .stderr_log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
        else {
            return String::new();
        };
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "; stderr ends:\n{}",
            lines[lines.len().saturating_sub(10)..].join("\n")
        )
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.inner.kill();
        let _ = self.inner.wait();
    }
}

/// Whether `program --version` runs, and what it prints.
pub fn version_of(program: &str) -> Option<String> {
    let output = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// One request on a fresh connection (`connection: close`); returns the status and body.
/// Used for readiness probes and sanity checks, never for load.
pub fn fetch(addr: SocketAddr, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status line in {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("")
        .to_string();
    Ok((status, body))
}

/// Poll `GET path` until it answers 2xx; returns when it first did.
pub fn await_ready(addr: SocketAddr, path: &str, limit: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok((200..=299, _)) = fetch(addr, "GET", path) {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("http://{addr}{path} not ready within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Resident memory of a process, from /proc (Linux only).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc status")
}

/// A free loopback port for servers that cannot bind port 0 and report it.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
