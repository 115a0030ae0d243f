//! Administering the site itself (needs the `site-admin` grant): versions,
//! services, health, logs, backups, restores, TLS certificates, update
//! packages, restarts, and the site's admin API token.

pub use crate::bindings::tessera::kernel::site_admin::*;
