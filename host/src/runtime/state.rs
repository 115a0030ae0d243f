//! The per-instance store state: the plugin's granted primitives, its limits,
//! and an empty WASI context (nothing ambient).

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::plugin::PluginContext;

/// Bytes of stdout/stderr a single instance may write before output is dropped.
const OUTPUT_CAPACITY: usize = 64 * 1024;

/// Everything one plugin instance can reach. Made fresh for every request.
pub struct InstanceState {
    pub plugin: Arc<PluginContext>,
    pub request_id: Arc<str>,
    /// The client's address, for the audit trail of identity changes.
    pub peer: Arc<str>,
    pub memory: MemoryCap,
    /// Epoch ticks the call has used; checked by the deadline callback.
    pub ticks: u64,
    /// Lines this call has logged (through `log` and its output streams),
    /// and how many past `log_lines_per_call` were dropped.
    log_lines: u64,
    log_dropped: u64,
    wasi: WasiCtx,
    table: ResourceTable,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl InstanceState {
    pub fn new(
        plugin: Arc<PluginContext>,
        request_id: Arc<str>,
        peer: Arc<str>,
        memory_cap: usize,
    ) -> Self {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        // No env, no args, no network, and no preopen but the plugin's own
        // files dir when granted: we only capture the output streams.
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(dir) = &plugin.files
            && let Err(e) = builder.preopened_dir(dir, "/", FsPerms::ReadWrite)
        {
            tracing::error!(plugin = %plugin.name, error = %e, "cannot open the plugin's files dir");
        }
        let wasi = builder.build();
        InstanceState {
            plugin,
            request_id,
            peer,
            memory: MemoryCap::new(memory_cap),
            ticks: 0,
            log_lines: 0,
            log_dropped: 0,
            wasi,
            table: ResourceTable::new(),
            stdout,
            stderr,
        }
    }

    /// Whether the call may log one more line; counts it either way.
    pub fn take_log_line(&mut self) -> bool {
        if self.log_lines < self.plugin.limits.log_lines_per_call {
            self.log_lines += 1;
            true
        } else {
            self.log_dropped += 1;
            false
        }
    }

    /// Forward what the plugin printed to tracing, tagged with its name, and
    /// say once how many lines the call's log budget dropped.
    pub fn flush_output(&mut self) {
        for (stream, pipe) in [
            ("stdout", self.stdout.clone()),
            ("stderr", self.stderr.clone()),
        ] {
            let bytes = pipe.contents();
            if bytes.is_empty() {
                continue;
            }
            for line in String::from_utf8_lossy(&bytes).lines() {
                if self.take_log_line() {
                    let line = super::sandbox::bounded_line(line);
                    tracing::info!(target: "tessera::plugin", plugin = %self.plugin.name,
                        request_id = %self.request_id, stream, "{line}");
                }
            }
        }
        if self.log_dropped > 0 {
            self.plugin.counters.add_log_dropped(self.log_dropped);
            tracing::warn!(target: "tessera::plugin", plugin = %self.plugin.name,
                request_id = %self.request_id, dropped = self.log_dropped,
                "log lines dropped past the call's log_lines_per_call");
            self.log_dropped = 0;
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The error a call fails with when the plugin outgrows its memory cap.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (asked for {requested})")]
pub struct MemoryCapExceeded {
    pub limit: usize,
    pub requested: usize,
}

/// The error a call fails with when it outlives its time budget.
#[derive(Debug, thiserror::Error)]
#[error("time budget of {budget_ms} ms exceeded")]
pub struct TimeBudgetExceeded {
    pub budget_ms: u64,
}

/// Caps linear memory per instance; a grow past the cap traps with
/// [`MemoryCapExceeded`] so the kernel can tell it from other traps.
pub struct MemoryCap {
    limit: usize,
}

impl MemoryCap {
    fn new(limit: usize) -> Self {
        MemoryCap { limit }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(MemoryCapExceeded {
                limit: self.limit,
                requested: desired,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
