//! Tessera: a small kernel that serves HTTP APIs through sandboxed
//! WebAssembly component plugins. See ARCHITECTURE.md for the design.

pub mod cli;
pub mod config;
pub mod db;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod primitives;
pub mod router;
pub mod runtime;
pub mod server;
pub mod workers;
