//! Load generation: `wrk` or a built-in hyper client, closed-loop (peak) and open-loop (paced).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio::time::timeout_at;

use super::proc::{self, Child};

/// How long a request may outlive the measuring window before it counts as lost.
const GRACE: Duration = Duration::from_secs(2);

/// One thing to hit: `METHOD http://addr/path`.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub method: &'static str,
    pub path: String,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, method: &'static str, path: &str) -> Self {
        Endpoint {
            addr,
            method,
            path: path.to_string(),
        }
    }

    fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }
}

/// What one measuring run saw. Latencies in microseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Measured {
    pub requests: u64,
    pub errors: u64,
    pub secs: f64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

pub enum Generator {
    /// `wrk`, with a scratch dir for its request scripts.
    Wrk(tempfile::TempDir),
    Builtin,
}

impl Generator {
    /// `wrk` when it runs, else the built-in client; TESSERA_BENCH_GENERATOR=builtin forces
    /// the built-in one (to check it, or to compare the two).
    pub fn detect() -> anyhow::Result<Generator> {
        if std::env::var("TESSERA_BENCH_GENERATOR").is_ok_and(|g| g == "builtin") {
            return Ok(Generator::Builtin);
        }
        // wrk has no --version; `-v` prints its version and exits 1, so only check it starts.
        let found = std::process::Command::new("wrk")
            .arg("-v")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok();
        Ok(if found {
            Generator::Wrk(tempfile::tempdir()?)
        } else {
            Generator::Builtin
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Generator::Wrk(_) => "wrk -t1",
            Generator::Builtin => "built-in (tokio+hyper, 1 thread)",
        }
    }

    /// As many requests as `conns` keep-alive connections complete in `secs`.
    pub fn closed_loop(
        &self,
        endpoint: &Endpoint,
        secs: u64,
        conns: usize,
    ) -> anyhow::Result<Measured> {
        match self {
            Generator::Wrk(dir) => wrk(dir.path().to_path_buf(), endpoint, secs, conns),
            Generator::Builtin => builtin(endpoint, secs, conns, None),
        }
    }
}

/// Requests at a fixed total `rate` (req/s) spread over `conns` connections, whatever
/// the server's pace (see [`Turns::next`] for where each latency counts from).
pub fn open_loop(
    endpoint: &Endpoint,
    rate: f64,
    secs: u64,
    conns: usize,
) -> anyhow::Result<Measured> {
    builtin(endpoint, secs, conns, Some(rate))
}

fn wrk(scratch: PathBuf, endpoint: &Endpoint, secs: u64, conns: usize) -> anyhow::Result<Measured> {
    let mut command = std::process::Command::new("wrk");
    command.args([
        "-t1",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    if endpoint.method != "GET" {
        // wrk picks the method only through a Lua script.
        let script = scratch.join(format!("{}.lua", endpoint.method));
        std::fs::write(&script, format!("wrk.method = \"{}\"\n", endpoint.method))?;
        command.arg("-s").arg(script);
    }
    command.arg(endpoint.url());
    let output = Child::spawn("wrk", &mut command, None)?
        .finish(Duration::from_secs(secs) + Duration::from_secs(30))?;
    parse_wrk(&output).with_context(|| format!("cannot read wrk's output:\n{output}"))
}

/// Pull requests, duration, req/s, p50, p99 and errors out of `wrk --latency` output.
fn parse_wrk(output: &str) -> anyhow::Result<Measured> {
    let field = |prefix: &str| {
        output
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
            .with_context(|| format!("no {prefix:?} line"))
    };
    // "123456 requests in 3.00s, 12.34MB read"
    let (requests, secs) = output
        .lines()
        .find_map(|l| {
            let (count, rest) = l.trim().split_once(" requests in ")?;
            Some((
                count.parse::<u64>().ok()?,
                parse_wrk_time(rest.split(',').next()?)? / 1e6,
            ))
        })
        .context("no \"requests in\" line")?;
    let socket_errors: u64 = field("Socket errors:")
        .map(|s| {
            s.split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let bad_status: u64 = field("Non-2xx or 3xx responses:")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let percentile = |p: &str| -> anyhow::Result<f64> {
        parse_wrk_time(field(p)?).with_context(|| format!("bad {p} latency"))
    };
    Ok(Measured {
        requests,
        errors: socket_errors + bad_status,
        secs,
        rps: field("Requests/sec:")?.parse()?,
        p50_us: percentile("50%")?,
        p99_us: percentile("99%")?,
    })
}

/// wrk's durations ("812.00us", "1.25ms", "3.00s", "1.00m") in microseconds.
fn parse_wrk_time(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    Some(number.parse::<f64>().ok()? * scale)
}

/// Per-connection tallies, merged at the end.
#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    errors: u64,
}

/// The built-in generator on one thread (like `wrk -t1`), closed-loop or paced at `rate`
/// req/s; bounded by `secs` + [`GRACE`].
fn builtin(
    endpoint: &Endpoint,
    secs: u64,
    conns: usize,
    rate: Option<f64>,
) -> anyhow::Result<Measured> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let (turns, pacer) = match rate {
        None => ((0..conns).map(|_| Turns::Closed { end }).collect(), None),
        Some(rate) => {
            let (senders, receivers): (Vec<_>, Vec<_>) =
                (0..conns).map(|_| mpsc::unbounded_channel()).unzip();
            let pacer = std::thread::spawn(move || pace(rate, start, end, &senders));
            (
                receivers.into_iter().map(Turns::Paced).collect::<Vec<_>>(),
                Some(pacer),
            )
        }
    };
    let total = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for turns in turns {
            tasks.spawn(connection(endpoint.clone(), turns, end + GRACE));
        }
        let mut total = Tally::default();
        while let Some(tally) = tasks.join_next().await {
            let tally = tally?;
            total.latencies_ns.extend(tally.latencies_ns);
            total.errors += tally.errors;
        }
        anyhow::Ok(total)
    })?;
    if let Some(pacer) = pacer {
        let _ = pacer.join();
    }
    Ok(summarise(total, start.elapsed().as_secs_f64()))
}

/// Hand out request `k`'s due time `start + k / rate` to connection `k % conns`, from a
/// plain thread: its sleeps are precise to tens of microseconds, where tokio's timer
/// rounds to a millisecond and would release the requests in bursts.
fn pace(rate: f64, start: Instant, end: Instant, connections: &[mpsc::UnboundedSender<Instant>]) {
    for k in 0u64.. {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        if due >= end {
            break;
        }
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        if connections[k as usize % connections.len()]
            .send(due)
            .is_err()
        {
            break;
        }
    }
}

/// When a connection sends its next request.
enum Turns {
    /// As soon as the previous response is in, until `end`.
    Closed { end: Instant },
    /// When the pacer says, until it stops.
    Paced(mpsc::UnboundedReceiver<Instant>),
}

impl Turns {
    /// The instant the next request counts from, or `None` when the run is over.
    /// `free_since` is when this connection's previous response arrived.
    async fn next(&mut self, free_since: Instant) -> Option<Instant> {
        match self {
            Turns::Closed { end } => Some(Instant::now()).filter(|now| now < end),
            Turns::Paced(due) => {
                let due = due.recv().await?;
                // Held up by the server (the connection was still busy at `due`):
                // charge the server from `due`, so no coordinated omission. Otherwise
                // any delay since `due` is this thread's own, so count from now.
                Some(if free_since > due {
                    due
                } else {
                    Instant::now()
                })
            }
        }
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connection(endpoint: Endpoint, mut turns: Turns, hard_end: Instant) -> Tally {
    let hard_end = tokio::time::Instant::from_std(hard_end);
    let mut tally = Tally::default();
    let mut sender = None;
    let mut free_since = Instant::now();
    while let Some(sent) = turns.next(free_since).await {
        if sender.is_none() {
            sender = timeout_at(hard_end, connect(endpoint.addr))
                .await
                .ok()
                .and_then(Result::ok);
        }
        let Some(live) = sender.as_mut() else {
            tally.errors += 1;
            break;
        };
        match timeout_at(hard_end, send(live, &endpoint)).await {
            Ok(Ok(status)) if (200..300).contains(&status) => {
                tally.latencies_ns.push(sent.elapsed().as_nanos() as u64);
            }
            Ok(Ok(_)) => tally.errors += 1,
            // A broken connection is replaced on the next turn.
            Ok(Err(_)) => {
                tally.errors += 1;
                sender = None;
            }
            Err(_) => {
                tally.errors += 1;
                break;
            }
        }
        free_since = Instant::now();
    }
    tally
}

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn send(sender: &mut Sender, endpoint: &Endpoint) -> anyhow::Result<u16> {
    sender.ready().await?;
    let request = hyper::Request::builder()
        .method(endpoint.method)
        .uri(&endpoint.path)
        .header(hyper::header::HOST, endpoint.addr.to_string())
        .body(Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

fn summarise(mut tally: Tally, secs: f64) -> Measured {
    tally.latencies_ns.sort_unstable();
    let percentile = |p: f64| {
        let sorted = &tally.latencies_ns;
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as f64 / 1e3
    };
    let requests = tally.latencies_ns.len() as u64;
    Measured {
        requests,
        errors: tally.errors,
        secs,
        rps: requests as f64 / secs,
        p50_us: percentile(0.50),
        p99_us: percentile(0.99),
    }
}

/// Check an endpoint answers 2xx (and, when given, with `expect` in the body) before loading it.
pub fn sanity_check(endpoint: &Endpoint, expect: Option<&str>) -> anyhow::Result<()> {
    let (status, body) = proc::fetch(endpoint.addr, endpoint.method, &endpoint.path)?;
    if !(200..300).contains(&status) || expect.is_some_and(|e| !body.contains(e)) {
        bail!(
            "{} {} answered {status}: {body}",
            endpoint.method,
            endpoint.url()
        );
    }
    Ok(())
}
