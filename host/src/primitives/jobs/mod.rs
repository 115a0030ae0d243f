//! The jobs primitive: a durable job queue. Declared in WIT; this kernel
//! version answers `unsupported` until the queue lands.

mod wit;
