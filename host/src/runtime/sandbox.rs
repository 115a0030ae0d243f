//! What the kernel counts when it holds a plugin to its limits beyond time
//! and memory: log lines dropped past the per-call budget, and responses
//! refused for their size. Shown per plugin on `/_tessera/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use super::LoadedPlugin;

/// A log line longer than this is cut (at a character boundary).
pub const MAX_LOG_LINE_BYTES: usize = 8 * 1024;

#[derive(Debug, Default)]
pub struct SandboxCounters {
    pub log_dropped: AtomicU64,
    pub responses_too_large: AtomicU64,
}

impl SandboxCounters {
    pub fn add_log_dropped(&self, n: u64) {
        self.log_dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_response_too_large(&self) {
        self.responses_too_large.fetch_add(1, Ordering::Relaxed);
    }
}

/// `line` cut to `MAX_LOG_LINE_BYTES`, marked when cut.
pub fn bounded_line(line: &str) -> std::borrow::Cow<'_, str> {
    if line.len() <= MAX_LOG_LINE_BYTES {
        return line.into();
    }
    let mut end = MAX_LOG_LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes cut]", &line[..end], line.len() - end).into()
}

/// The Prometheus lines of every plugin's counters.
pub fn render(plugins: &[LoadedPlugin]) -> String {
    let mut out = String::new();
    for (metric, help, pick) in [
        (
            "tessera_plugin_log_dropped_total",
            "Log lines dropped past a call's log_lines_per_call.",
            0,
        ),
        (
            "tessera_plugin_response_too_large_total",
            "Responses refused for passing response_limit_bytes.",
            1,
        ),
    ] {
        let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
        for plugin in plugins {
            let c = &plugin.ctx.counters;
            let n = [&c.log_dropped, &c.responses_too_large][pick].load(Ordering::Relaxed);
            let _ = writeln!(out, "{metric}{{plugin=\"{}\"}} {n}", plugin.ctx.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        assert_eq!(bounded_line("short"), "short");
        let long = "é".repeat(MAX_LOG_LINE_BYTES);
        let cut = bounded_line(&long);
        assert!(cut.len() < long.len());
        assert!(cut.ends_with("bytes cut]"), "{}", &cut[cut.len() - 30..]);
    }
}
