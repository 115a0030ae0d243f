//! The `log` interface: plugin messages into tracing, tagged with the plugin
//! and the request id.

use crate::runtime::bindings::tessera::kernel::log::{Host, Level};
use crate::runtime::state::InstanceState;

const TARGET: &str = "tessera::plugin";

impl Host for InstanceState {
    fn enabled(&mut self, level: Level) -> bool {
        match level {
            Level::Trace => tracing::enabled!(target: TARGET, tracing::Level::TRACE),
            Level::Debug => tracing::enabled!(target: TARGET, tracing::Level::DEBUG),
            Level::Info => tracing::enabled!(target: TARGET, tracing::Level::INFO),
            Level::Warn => tracing::enabled!(target: TARGET, tracing::Level::WARN),
            Level::Error => tracing::enabled!(target: TARGET, tracing::Level::ERROR),
        }
    }

    fn log(&mut self, level: Level, message: String) {
        if !self.take_log_line() {
            return;
        }
        let message = crate::runtime::sandbox::bounded_line(&message);
        let plugin = &*self.plugin.name;
        let request_id = &*self.request_id;
        match level {
            Level::Trace => tracing::trace!(target: TARGET, plugin, request_id, "{message}"),
            Level::Debug => tracing::debug!(target: TARGET, plugin, request_id, "{message}"),
            Level::Info => tracing::info!(target: TARGET, plugin, request_id, "{message}"),
            Level::Warn => tracing::warn!(target: TARGET, plugin, request_id, "{message}"),
            Level::Error => tracing::error!(target: TARGET, plugin, request_id, "{message}"),
        }
    }
}
