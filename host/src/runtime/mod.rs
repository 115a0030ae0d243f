//! The plugin runtime: one engine, every enabled plugin loaded and
//! pre-linked, and a fresh instance for every call under time and memory caps.

pub mod bindings;
pub mod builtin;
mod cache;
pub mod engine;
pub mod plugin;
pub mod sandbox;
pub mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use wasmtime::{Engine, PoolConcurrencyLimitError, Store, UpdateDeadline};

pub use bindings::exports::tessera::kernel::jobs_runner::{Job, JobOutcome};
pub use bindings::tessera::kernel::sockets::{
    Event as SocketKernelEvent, Message as SocketMessage, Socket, SocketEvent, SocketReply,
};
pub use bindings::{Request, Response};
pub use cache::CompileCache;
pub use plugin::{LoadError, LoadedPlugin};
use state::{InstanceState, MemoryCapExceeded, TimeBudgetExceeded};

use crate::config::SiteConfig;
use crate::primitives::Primitives;

/// Why a call produced no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("time budget of {0} ms exceeded")]
    Timeout(u64),
    #[error("{0}")]
    MemoryCap(String),
    #[error("too many plugin instances in flight")]
    Busy,
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error("the response of {size} bytes passes the mount's limit of {limit}")]
    ResponseTooLarge { size: u64, limit: u64 },
}

/// Code prepared for a plugin by an update, ready to swap in.
pub type PreparedCode = bindings::PluginPre<InstanceState>;

pub struct Runtime {
    engine: Engine,
    cache: CompileCache,
    plugins: Vec<LoadedPlugin>,
    live_instances: AtomicI64,
    /// What WebSockets subscribe to.
    events: crate::events::EventBus,
}

impl Runtime {
    /// Build the engine and load every enabled plugin of the site; any plugin
    /// that cannot load stops the start with its reason.
    pub fn start(site: &SiteConfig, primitives: &Primitives) -> anyhow::Result<Runtime> {
        let engine = engine::build(&site.runtime)?;
        engine::start_ticker(&engine);
        let cache = if site.runtime.compile_cache {
            CompileCache::open(&site.data_dir.join("cache"))
        } else {
            CompileCache::disabled()
        };
        let mut plugins = Vec::new();
        for (name, config) in site.enabled_plugins() {
            let started = Instant::now();
            let plugin = plugin::load(&engine, &cache, name, config, site, primitives)?;
            tracing::debug!(plugin = %name, elapsed_ms = started.elapsed().as_millis() as u64, "plugin loaded");
            plugins.push(plugin);
        }
        Ok(Runtime {
            engine,
            cache,
            plugins,
            live_instances: AtomicI64::new(0),
            events: primitives.events.clone(),
        })
    }

    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    pub fn live_instances(&self) -> i64 {
        self.live_instances.load(Ordering::Relaxed)
    }

    /// Run `handle` of plugin `index` in a fresh instance.
    pub async fn handle(
        &self,
        index: usize,
        request: &Request,
        request_id: Arc<str>,
    ) -> Result<Response, CallError> {
        let plugin = &self.plugins[index];
        let budget_ms = plugin.ctx.limits.time_budget_ms;
        let peer = Arc::from(request.peer.as_str());
        let mut store = self.new_store(plugin, request_id, peer, budget_ms);
        let _live = LiveInstance::enter(&self.live_instances);
        // The code this call runs on, even if an update swaps it meanwhile.
        let pre = plugin.pre.load_full();
        let result = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .tessera_kernel_handler()
                .call_handle(&mut store, request)
                .await
        }
        .await;
        store.data_mut().flush_output();
        let response = result.map_err(|e| classify(e, budget_ms))?;
        let (size, limit) = (
            response.body.len() as u64,
            plugin.ctx.limits.response_limit_bytes,
        );
        if size > limit {
            plugin.ctx.counters.add_response_too_large();
            return Err(CallError::ResponseTooLarge { size, limit });
        }
        Ok(response)
    }

    /// Run one step of a job: `run-job` of plugin `index` in a fresh
    /// instance under the mount's (longer) job time budget.
    pub async fn run_job(&self, index: usize, job: &Job) -> Result<JobOutcome, CallError> {
        let plugin = &self.plugins[index];
        let budget_ms = plugin.ctx.limits.job_time_budget_ms;
        let id = Arc::from(format!("job:{}", job.id).as_str());
        let mut store = self.new_store(plugin, id, Arc::from(""), budget_ms);
        let _live = LiveInstance::enter(&self.live_instances);
        // The code this call runs on, even if an update swaps it meanwhile.
        let pre = plugin.pre.load_full();
        let result = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .tessera_kernel_jobs_runner()
                .call_run_job(&mut store, job)
                .await
        }
        .await;
        store.data_mut().flush_output();
        result.map_err(|e| classify(e, budget_ms))
    }

    /// Run `on-socket` of plugin `index` in a fresh instance, under the
    /// mount's request time budget.
    pub async fn on_socket(
        &self,
        index: usize,
        socket: &Socket,
        event: &SocketEvent,
    ) -> Result<SocketReply, CallError> {
        let plugin = &self.plugins[index];
        let budget_ms = plugin.ctx.limits.time_budget_ms;
        let id = Arc::from(format!("socket:{}", socket.id).as_str());
        let peer = Arc::from(socket.peer.as_str());
        let mut store = self.new_store(plugin, id, peer, budget_ms);
        let _live = LiveInstance::enter(&self.live_instances);
        let result = async {
            let instance = plugin.pre.load_full().instantiate_async(&mut store).await?;
            instance
                .tessera_kernel_socket_handler()
                .call_on_socket(&mut store, socket, event)
                .await
        }
        .await;
        store.data_mut().flush_output();
        result.map_err(|e| classify(e, budget_ms))
    }

    pub fn events(&self) -> &crate::events::EventBus {
        &self.events
    }

    /// Compile, check and link new code for plugin `name` without using it yet.
    pub fn prepare_code(&self, name: &str, wasm: &[u8]) -> Result<PreparedCode, LoadError> {
        let index = self.plugin_index(name).ok_or_else(|| LoadError {
            plugin: name.to_string(),
            problem: "no such plugin is loaded on this site".into(),
        })?;
        plugin::prepare(&self.engine, &self.cache, &self.plugins[index], wasm)
    }

    /// Serve plugin `name` with `code` from now on; calls already running
    /// finish on the code they started with.
    pub fn swap_code(&self, name: &str, code: PreparedCode) {
        if let Some(index) = self.plugin_index(name) {
            self.plugins[index].pre.store(Arc::new(code));
        }
    }

    /// The index of a loaded plugin by name.
    pub fn plugin_index(&self, name: &str) -> Option<usize> {
        self.plugins.iter().position(|p| &*p.ctx.name == name)
    }

    /// Make a fresh instance of plugin `index` exactly as `handle` does, and
    /// drop it uncalled: the benchmark's measure of instantiation alone.
    pub async fn instantiate_only(&self, index: usize) -> Result<(), CallError> {
        let plugin = &self.plugins[index];
        let budget_ms = plugin.ctx.limits.time_budget_ms;
        let mut store = self.new_store(
            plugin,
            Arc::from("instantiate-only"),
            Arc::from(""),
            budget_ms,
        );
        let _live = LiveInstance::enter(&self.live_instances);
        let result = plugin.pre.load_full().instantiate_async(&mut store).await;
        result.map(drop).map_err(|e| classify(e, budget_ms))
    }

    fn new_store(
        &self,
        plugin: &LoadedPlugin,
        request_id: Arc<str>,
        peer: Arc<str>,
        budget_ms: u64,
    ) -> Store<InstanceState> {
        let limits = plugin.ctx.limits;
        let state = InstanceState::new(plugin.ctx.clone(), request_id, peer, limits.memory_bytes());
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        // A call that merely crosses one tick boundary runs on; one that has
        // run a whole tick yields to the executor at every tick after, so
        // long calls share the workers; once the budget is spent it is
        // stopped with a typed error.
        let budget = engine::budget_ticks(std::time::Duration::from_millis(budget_ms));
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            state.ticks += 1;
            if state.ticks >= budget {
                return Err(TimeBudgetExceeded { budget_ms }.into());
            }
            Ok(if state.ticks == 1 {
                UpdateDeadline::Continue(1)
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        store
    }
}

/// Counts instances in flight for the metrics, even when a call is dropped.
struct LiveInstance<'a>(&'a AtomicI64);

impl<'a> LiveInstance<'a> {
    fn enter(counter: &'a AtomicI64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        LiveInstance(counter)
    }
}

impl Drop for LiveInstance<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn classify(error: wasmtime::Error, budget_ms: u64) -> CallError {
    if error.downcast_ref::<TimeBudgetExceeded>().is_some() {
        CallError::Timeout(budget_ms)
    } else if let Some(cap) = error.downcast_ref::<MemoryCapExceeded>() {
        CallError::MemoryCap(cap.to_string())
    } else if error.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        CallError::Busy
    } else {
        CallError::Trap(format!("{error:#}"))
    }
}
