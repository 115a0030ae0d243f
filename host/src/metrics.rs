//! Request metrics kept in atomics (no lock on the request path) and rendered
//! in the Prometheus text format. Local to this kernel by design.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// What went wrong inside a plugin call, for the failure counters.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    Trap,
    Timeout,
    MemoryCap,
    Busy,
}

#[derive(Default)]
struct Counters {
    /// Indexed by status code (100..=599 used).
    by_status: Vec<AtomicU64>,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_sum_us: AtomicU64,
    count: AtomicU64,
    traps: AtomicU64,
    timeouts: AtomicU64,
    memory_caps: AtomicU64,
    busy: AtomicU64,
    /// The plugin's last call trapped, timed out or hit its memory cap.
    failing: AtomicBool,
}

impl Counters {
    fn new() -> Self {
        Counters {
            by_status: (0..600).map(|_| AtomicU64::new(0)).collect(),
            ..Default::default()
        }
    }
}

/// Counters per plugin, plus one slot for requests no plugin served (kernel
/// routes, 404s), labelled `-`.
pub struct Metrics {
    names: Vec<String>,
    slots: Vec<Counters>,
    instances: AtomicU64,
    sockets_open: std::sync::atomic::AtomicI64,
    socket_calls: AtomicU64,
}

impl Metrics {
    pub fn new(plugin_names: Vec<String>) -> Self {
        let slots = (0..=plugin_names.len()).map(|_| Counters::new()).collect();
        Metrics {
            names: plugin_names,
            slots,
            instances: AtomicU64::new(0),
            sockets_open: std::sync::atomic::AtomicI64::new(0),
            socket_calls: AtomicU64::new(0),
        }
    }

    /// A WebSocket opened (`+1`) or closed (`-1`).
    pub fn socket_open(&self, delta: i64) {
        self.sockets_open.fetch_add(delta, Ordering::Relaxed);
    }

    /// One `on-socket` call (an open, a message or an event).
    pub fn socket_call(&self) {
        self.socket_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The slot index for requests that reached no plugin.
    pub fn kernel_slot(&self) -> usize {
        self.names.len()
    }

    pub fn record(&self, slot: usize, status: u16, latency: Duration) {
        let Some(c) = self.slots.get(slot) else {
            return;
        };
        if let Some(counter) = c.by_status.get(status as usize) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let secs = latency.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            c.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        c.latency_sum_us
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
        c.count.fetch_add(1, Ordering::Relaxed);
        if status < 500 {
            c.failing.store(false, Ordering::Relaxed);
        }
    }

    /// Whether plugin `name`'s last call failed (a trap, time-out or memory cap).
    pub fn recent_failure(&self, name: &str) -> bool {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.slots.get(i))
            .is_some_and(|c| c.failing.load(Ordering::Relaxed))
    }

    pub fn instance_created(&self) {
        self.instances.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failure(&self, slot: usize, failure: Failure) {
        let Some(c) = self.slots.get(slot) else {
            return;
        };
        let counter = match failure {
            Failure::Trap => &c.traps,
            Failure::Timeout => &c.timeouts,
            Failure::MemoryCap => &c.memory_caps,
            Failure::Busy => &c.busy,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if !matches!(failure, Failure::Busy) {
            c.failing.store(true, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, live_instances: i64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP tessera_requests_total Requests answered, by plugin and status."
        );
        let _ = writeln!(out, "# TYPE tessera_requests_total counter");
        for (plugin, c) in self.labelled() {
            for (status, n) in c.by_status.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "tessera_requests_total{{plugin=\"{plugin}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP tessera_request_duration_seconds Time from request head to response, by plugin."
        );
        let _ = writeln!(out, "# TYPE tessera_request_duration_seconds histogram");
        for (plugin, c) in self.labelled() {
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(&c.buckets) {
                cumulative += n.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "tessera_request_duration_seconds_bucket{{plugin=\"{plugin}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = c.count.load(Ordering::Relaxed);
            let sum = c.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "tessera_request_duration_seconds_bucket{{plugin=\"{plugin}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "tessera_request_duration_seconds_sum{{plugin=\"{plugin}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "tessera_request_duration_seconds_count{{plugin=\"{plugin}\"}} {count}"
            );
        }
        for (metric, help, pick) in [
            (
                "tessera_plugin_traps_total",
                "Plugin calls that trapped.",
                0,
            ),
            (
                "tessera_plugin_timeouts_total",
                "Plugin calls stopped at their time budget.",
                1,
            ),
            (
                "tessera_plugin_memory_limit_total",
                "Plugin calls stopped at their memory cap.",
                2,
            ),
            (
                "tessera_plugin_busy_total",
                "Requests refused because every instance slot was in use.",
                3,
            ),
        ] {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
            for (plugin, c) in self.labelled().take(self.names.len()) {
                let n =
                    [&c.traps, &c.timeouts, &c.memory_caps, &c.busy][pick].load(Ordering::Relaxed);
                let _ = writeln!(out, "{metric}{{plugin=\"{plugin}\"}} {n}");
            }
        }
        let instances = self.instances.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP tessera_instances_total Plugin instances created.\n# TYPE tessera_instances_total counter\ntessera_instances_total {instances}"
        );
        let _ = writeln!(
            out,
            "# HELP tessera_instances_live Plugin instances in flight.\n# TYPE tessera_instances_live gauge\ntessera_instances_live {live_instances}"
        );
        let (open, calls) = (
            self.sockets_open.load(Ordering::Relaxed),
            self.socket_calls.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP tessera_sockets_open WebSockets open.\n# TYPE tessera_sockets_open gauge\ntessera_sockets_open {open}"
        );
        let _ = writeln!(
            out,
            "# HELP tessera_socket_calls_total on-socket calls (opens, messages, events).\n# TYPE tessera_socket_calls_total counter\ntessera_socket_calls_total {calls}"
        );
        out
    }

    fn labelled(&self) -> impl Iterator<Item = (&str, &Counters)> {
        self.names
            .iter()
            .map(String::as_str)
            .chain(std::iter::once("-"))
            .zip(&self.slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_failures() {
        let m = Metrics::new(vec!["hello".into()]);
        m.record(0, 200, Duration::from_micros(300));
        m.record(0, 200, Duration::from_millis(3));
        m.record(m.kernel_slot(), 404, Duration::from_micros(50));
        m.failure(0, Failure::Timeout);
        m.instance_created();
        let text = m.render(1);
        assert!(text.contains("tessera_requests_total{plugin=\"hello\",status=\"200\"} 2"));
        assert!(text.contains("tessera_requests_total{plugin=\"-\",status=\"404\"} 1"));
        assert!(
            text.contains(
                "tessera_request_duration_seconds_bucket{plugin=\"hello\",le=\"0.0005\"} 1"
            )
        );
        assert!(text.contains("tessera_request_duration_seconds_count{plugin=\"hello\"} 2"));
        assert!(text.contains("tessera_plugin_timeouts_total{plugin=\"hello\"} 1"));
        assert!(text.contains("tessera_instances_total 1"));
        assert!(text.contains("tessera_instances_live 1"));
    }
}
