//! Background jobs (needs the `jobs` grant): submit, get, list, cancel the
//! plugin's own jobs; inside `run-job`, report progress and log lines.

pub use crate::bindings::tessera::kernel::jobs::*;
