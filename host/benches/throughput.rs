//! The throughput bench: Tessera vs native hyper and `wasmtime serve`, instance cost, cold start.
//
// Knobs: TESSERA_BENCH_SECS (per target, default 5), TESSERA_BENCH_CONNS (default 32),
// TESSERA_BENCH_GENERATOR=builtin (skip wrk even when installed).
// Prints a table and writes target/bench-results.json.

#[path = "throughput/coldstart.rs"]
mod coldstart;
#[path = "throughput/instantiate.rs"]
mod instantiate;
#[path = "throughput/load.rs"]
mod load;
#[path = "throughput/proc.rs"]
mod proc;
#[path = "throughput/report.rs"]
mod report;
#[path = "throughput/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use load::{Endpoint, Generator};
use report::{HalfLoad, Report, Row};
use targets::HELLO_BODY;

/// Fresh instances timed in-process.
const INSTANCE_ITERATIONS: u32 = 20_000;
/// Seconds of load before each measured run, discarded.
const WARM_UP_SECS: u64 = 1;

struct Settings {
    secs: u64,
    conns: usize,
    generator: Generator,
    /// The cargo target dir: where the JSON and the wasi:http component go.
    target_root: PathBuf,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let settings = Settings {
            secs: env_number("TESSERA_BENCH_SECS", 5)?,
            conns: env_number("TESSERA_BENCH_CONNS", 32)?,
            generator: Generator::detect()?,
            target_root: std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(default_target_dir),
        };
        anyhow::ensure!(
            settings.secs > 0 && settings.conns > 0,
            "TESSERA_BENCH_SECS and TESSERA_BENCH_CONNS must be at least 1"
        );
        Ok(settings)
    }

    /// Sanity-check `endpoint`, warm it up, then measure it closed-loop.
    fn measure(
        &self,
        key: &'static str,
        label: String,
        endpoint: &Endpoint,
        expect: Option<&str>,
    ) -> anyhow::Result<Row> {
        eprintln!("measuring {label} ...");
        load::sanity_check(endpoint, expect)?;
        self.generator
            .closed_loop(endpoint, WARM_UP_SECS, self.conns)?;
        let measured = self
            .generator
            .closed_loop(endpoint, self.secs, self.conns)?;
        Ok(Row {
            key,
            label,
            measured,
        })
    }

    /// Drive `row`'s endpoint open-loop at half the peak `row` measured.
    fn half_load(&self, row: &Row, endpoint: &Endpoint) -> anyhow::Result<HalfLoad> {
        let offered_rps = row.measured.rps / 2.0;
        eprintln!(
            "measuring {} open-loop at {offered_rps:.0} req/s ...",
            row.label
        );
        Ok(HalfLoad {
            label: row.label.clone(),
            offered_rps,
            measured: load::open_loop(endpoint, offered_rps, self.secs, self.conns)?,
        })
    }
}

/// `<workspace>/target`: the kernel crate sits one level below the workspace root.
fn default_target_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).join("target")
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={text:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("throughput bench failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let scratch = tempfile::tempdir()?;
    let (native, native_half) = native_row(&settings)?;
    let (plugin_rows, plugin_half) = plugin_rows(&settings, scratch.path())?;
    let (wasmtime_row, wasmtime_skipped) = match wasmtime_row(&settings, scratch.path()) {
        Ok(row) => (Some(row), None),
        Err(why) => (None, Some(why)),
    };
    eprintln!("timing {INSTANCE_ITERATIONS} fresh instances in-process ...");
    let instances = instantiate::measure(&scratch.path().join("in-process"), INSTANCE_ITERATIONS)?;
    eprintln!("timing the kernel's start on the default site ...");
    let cold_start = coldstart::measure(scratch.path())?;
    let report = Report {
        generator: settings.generator.name().to_string(),
        secs: settings.secs,
        conns: settings.conns,
        rows: std::iter::once(native)
            .chain(plugin_rows)
            .chain(wasmtime_row)
            .collect(),
        wasmtime_skipped,
        half_load: vec![native_half, plugin_half],
        instances,
        cold_start,
    };
    report.print();
    let json = settings.target_root.join("bench-results.json");
    report.write_json(&json)?;
    println!("results written to {}", json.display());
    Ok(())
}

/// The baseline, also at half its peak (the reference for the plugin's run at half its peak).
fn native_row(settings: &Settings) -> anyhow::Result<(Row, HalfLoad)> {
    let server = targets::NativeServer::start()?;
    let endpoint = Endpoint::new(server.addr, "GET", "/hello");
    let label = "native hyper 1 handler (baseline)".into();
    let row = settings.measure("native", label, &endpoint, Some(HELLO_BODY))?;
    let half = settings.half_load(&row, &endpoint)?;
    Ok((row, half))
}

/// The plugin's trivial route and its storage-backed counter.
const HELLO_ROUTE: &str = "/hello/hello";
const COUNTER_ROUTE: &str = "/hello/counter";
const COUNTER_BODY: Option<&str> = Some("\"value\"");

/// The `hello` plugin's routes on the real binary, then the hello route at half its peak.
fn plugin_rows(settings: &Settings, scratch: &Path) -> anyhow::Result<(Vec<Row>, HalfLoad)> {
    let site = targets::write_hello_site(scratch)?;
    let server = targets::start_tessera(Some(&site), &scratch.join("hello-data"))?;
    // The counter read should find a stored document, not an empty collection.
    load::sanity_check(&Endpoint::new(server.addr, "POST", COUNTER_ROUTE), None)?;
    let routes = [
        ("tessera_hello", "GET", HELLO_ROUTE, Some(HELLO_BODY)),
        ("tessera_counter_read", "GET", COUNTER_ROUTE, COUNTER_BODY),
        ("tessera_counter_write", "POST", COUNTER_ROUTE, COUNTER_BODY),
    ];
    let mut rows = Vec::new();
    for (key, method, path, expect) in routes {
        let endpoint = Endpoint::new(server.addr, method, path);
        rows.push(settings.measure(key, format!("tessera {method} {path}"), &endpoint, expect)?);
    }
    let hello = Endpoint::new(server.addr, "GET", HELLO_ROUTE);
    let half = settings.half_load(&rows[0], &hello)?;
    Ok((rows, half))
}

/// The `wasmtime serve` row, or why there is none: it is optional, so a failure
/// here is reported in the table rather than failing the run.
fn wasmtime_row(settings: &Settings, scratch: &Path) -> Result<Row, String> {
    let version = targets::wasmtime_cli()?;
    let measure = || -> anyhow::Result<Row> {
        eprintln!("building bench/wasi-http-hello for {version} ...");
        let component = targets::build_wasi_http_hello(&settings.target_root)?;
        let server = targets::start_wasmtime_serve(&component, scratch)?;
        let endpoint = Endpoint::new(server.addr, "GET", "/hello");
        settings.measure(
            "wasmtime_serve",
            "wasmtime serve (wasi:http hello)".into(),
            &endpoint,
            Some(HELLO_BODY),
        )
    };
    measure().map_err(|e| format!("{version} failed: {e:#}"))
}
