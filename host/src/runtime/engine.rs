//! The one wasmtime engine of the kernel: pooling allocator sized for a small
//! machine, epoch interruption driven by a single ticker thread.

use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::RuntimeSettings;

/// How often the ticker advances the epoch: the granularity of time budgets
/// and of cooperative yields.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Build the engine. The pool caps concurrent instances (requests and jobs);
/// a request that finds it full is answered 503.
pub fn build(settings: &RuntimeSettings) -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    let instances = settings.max_instances;
    pool.total_component_instances(instances)
        // A Rust wasip2 component has a handful of core instances (the
        // program, the WASI adapter, shims).
        .total_core_instances(instances * 8)
        .max_core_instances_per_component(16)
        .total_memories(instances * 2)
        .max_memories_per_component(2)
        .total_tables(instances * 4)
        .max_tables_per_component(8)
        .total_stacks(instances)
        .max_memory_size(settings.max_memory_mib as usize * 1024 * 1024)
        .max_unused_warm_slots(settings.warm_slots)
        // Reset only the pages a request dirtied (Linux >= 6.7), and keep
        // the first pages resident instead of unmapping them: together this
        // makes a fresh instance cost a few microseconds.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(64 * 1024)
        .table_keep_resident(64 * 1024);

    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .memory_init_cow(true)
        .wasm_component_model(true)
        .max_wasm_stack(1024 * 1024)
        .async_stack_size(2 * 1024 * 1024)
        .parallel_compilation(true);
    Ok(Engine::new(&config)?)
}

/// Start the thread that advances the epoch. It holds only a weak handle so
/// it ends when the engine is dropped.
pub fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    let _ = std::thread::Builder::new()
        .name("tessera-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        });
}

/// Ticks a time budget spans (at least one).
pub fn budget_ticks(budget: Duration) -> u64 {
    (budget.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}
