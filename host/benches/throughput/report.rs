//! The results of one run: printed as a table and written as JSON.

use std::path::Path;

use serde::Serialize;
use serde_json::json;

use super::coldstart::ColdStart;
use super::instantiate::InstanceCosts;
use super::load::Measured;

/// One measured target.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Stable name for the JSON (`native`, `tessera_hello`, ...).
    pub key: &'static str,
    pub label: String,
    #[serde(flatten)]
    pub measured: Measured,
}

/// The open-loop run at half the peak rate.
#[derive(Debug, Clone, Serialize)]
pub struct HalfLoad {
    pub label: String,
    pub offered_rps: f64,
    #[serde(flatten)]
    pub measured: Measured,
}

/// One target's figures divided by another's.
#[derive(Debug, Clone, Copy, Serialize)]
struct Ratio {
    rps: f64,
    p50: f64,
    p99: f64,
}

pub struct Report {
    pub generator: String,
    pub secs: u64,
    pub conns: usize,
    /// The native baseline first, then every other target in the order measured.
    pub rows: Vec<Row>,
    /// Why there is no `wasmtime serve` row, when there is none.
    pub wasmtime_skipped: Option<String>,
    /// The native baseline and the plugin's hello route, each at half its own peak.
    pub half_load: Vec<HalfLoad>,
    pub instances: InstanceCosts,
    pub cold_start: ColdStart,
}

impl Report {
    fn row(&self, key: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.key == key)
    }

    /// The hello route on Tessera relative to the same answer from `wasmtime serve`.
    fn plugin_vs_wasmtime(&self) -> Option<Ratio> {
        Some(Self::ratio(
            self.row("tessera_hello")?,
            self.row("wasmtime_serve")?,
        ))
    }

    /// `row` relative to `base`.
    fn ratio(row: &Row, base: &Row) -> Ratio {
        let (m, b) = (&row.measured, &base.measured);
        Ratio {
            rps: m.rps / b.rps,
            p50: m.p50_us / b.p50_us,
            p99: m.p99_us / b.p99_us,
        }
    }

    pub fn print(&self) {
        println!(
            "\nTessera throughput: {}, {} connections, {} s per target after 1 s warm-up \
             (client and servers share this machine's cores: compare ratios, not absolutes)\n",
            self.generator, self.conns, self.secs
        );
        println!(
            "{:<34} {:>8} {:>9} {:>9} {:>7} {:>7} {:>7} {:>6}",
            "target", "req/s", "p50", "p99", "req/s", "p50", "p99", "errors"
        );
        println!(
            "{:<34} {:>8} {:>9} {:>9} {:>23}",
            "", "", "", "", "(÷ native)"
        );
        let native = &self.rows[0];
        for row in &self.rows {
            let ratio = Self::ratio(row, native);
            let m = &row.measured;
            println!(
                "{:<34} {:>8.0} {:>9} {:>9} {:>6.2}× {:>6.2}× {:>6.2}× {:>6}",
                row.label,
                m.rps,
                micros(m.p50_us),
                micros(m.p99_us),
                ratio.rps,
                ratio.p50,
                ratio.p99,
                m.errors
            );
        }
        println!();
        self.print_notes();
    }

    fn print_notes(&self) {
        match self.plugin_vs_wasmtime() {
            Some(r) => {
                println!(
                    "tessera plugin vs wasmtime serve (hello): {:.2}× req/s, {:.2}× p50, {:.2}× p99",
                    r.rps, r.p50, r.p99
                );
            }
            None => println!(
                "wasmtime serve: skipped: {}",
                self.wasmtime_skipped.as_deref().unwrap_or("not measured")
            ),
        }
        let i = &self.instances;
        println!(
            "fresh plugin instance, in-process, mean of {}: instantiate {:.2} µs; \
             instantiate + handle GET /hello {:.2} µs",
            i.iterations, i.instantiate_us, i.handle_us
        );
        println!("at 50% of each one's own peak (open loop, fixed schedule):");
        for h in &self.half_load {
            println!(
                "  {:<34} {:>7.0} req/s offered, {:>7.0} done, {} errors: p50 {}, p99 {}",
                h.label,
                h.offered_rps,
                h.measured.rps,
                h.measured.errors,
                micros(h.measured.p50_us),
                micros(h.measured.p99_us)
            );
        }
        let c = &self.cold_start;
        println!(
            "cold start, default site ({} plugins), warm compile cache: {:.0} ms to first health \
             (first start, compiling: {:.0} ms); idle RSS after {} requests: {:.1} MiB",
            c.plugins,
            c.warm_start_ms,
            c.first_start_ms,
            c.requests_served,
            c.idle_rss_kib as f64 / 1024.0
        );
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let native = &self.rows[0];
        let targets: Vec<_> = self
            .rows
            .iter()
            .map(|row| {
                let mut value = serde_json::to_value(row)?;
                value["vs_native"] = serde_json::to_value(Self::ratio(row, native))?;
                Ok(value)
            })
            .collect::<anyhow::Result<_>>()?;
        let value = json!({
            "generator": self.generator,
            "secs": self.secs,
            "connections": self.conns,
            "targets": targets,
            "wasmtime_serve_skipped": self.wasmtime_skipped,
            "plugin_vs_wasmtime": self.plugin_vs_wasmtime(),
            "instance": self.instances,
            "half_load": self.half_load,
            "cold_start": self.cold_start,
        });
        std::fs::write(path, serde_json::to_string_pretty(&value)? + "\n")?;
        Ok(())
    }
}

/// A latency for people: microseconds below a millisecond, else milliseconds.
fn micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}
