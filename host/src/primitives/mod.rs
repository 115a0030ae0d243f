//! The kernel's primitives. Each is a plain Rust API (what the CLI and the
//! tests call) with a thin WIT layer (`wit.rs`) that plugins reach.

pub mod auth;
pub mod hypervisor;
pub mod jobs;
pub mod log;
pub mod settings;
pub mod site_admin;
pub mod storage;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::config::Grant;
use crate::db::Database;
use crate::runtime::bindings::Unsupported;
use crate::runtime::bindings::tessera::kernel;
use crate::runtime::state::InstanceState;

/// The site-wide handles the runtime hands to plugins per their grants.
#[derive(Clone)]
pub struct Primitives {
    pub db: Database,
    pub storage: storage::Storage,
    pub auth: auth::Auth,
    pub jobs: jobs::Jobs,
    pub compute: hypervisor::Compute,
    /// Changes the primitives announce, for WebSockets to subscribe to.
    pub events: crate::events::EventBus,
    pub site_admin: site_admin::SiteAdmin,
}

impl Primitives {
    pub fn open(db: Database, site: &crate::config::SiteConfig) -> anyhow::Result<Self> {
        let auth = auth::Auth::new(db.clone(), site.auth.clone(), site.auth.clock())?;
        let queue = jobs::JobQueue::new(
            db.clone(),
            site.jobs.clone(),
            Arc::new(jobs::SystemJobClock),
        )?;
        let jobs = jobs::Jobs::new(queue);
        let events = crate::events::EventBus::default();
        let hypervisor =
            hypervisor::Hypervisor::open(db.clone(), &site.hypervisor, &site.data_dir)?
                .with_events(events.clone());
        let site_admin = site_admin::SiteAdmin::open(db.clone(), auth.clone(), site);
        Ok(Primitives {
            site_admin,
            storage: storage::Storage::new(db.clone()),
            auth,
            compute: hypervisor::Compute {
                hypervisor,
                jobs: jobs.clone(),
            },
            jobs,
            events,
            db,
        })
    }
}

type State = HasSelf<InstanceState>;

/// Interfaces every plugin gets: types, log, config.
pub fn link_always(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    kernel::types::add_to_linker::<_, State>(linker, |s| s)?;
    kernel::log::add_to_linker::<_, State>(linker, |s| s)?;
    kernel::config::add_to_linker::<_, State>(linker, |s| s)?;
    kernel::sockets::add_to_linker::<_, State>(linker, |s| s)?;
    Ok(())
}

/// The interface behind one grant. `auth-admin` and `files` widen what
/// granted interfaces allow rather than adding one.
pub fn link_grant(linker: &mut Linker<InstanceState>, grant: Grant) -> wasmtime::Result<()> {
    match grant {
        Grant::Storage => kernel::storage::add_to_linker::<_, State>(linker, |s| s),
        Grant::Auth => kernel::auth::add_to_linker::<_, State>(linker, |s| s),
        Grant::Jobs => kernel::jobs::add_to_linker::<_, State>(linker, |s| s),
        Grant::Hypervisor => kernel::hypervisor::add_to_linker::<_, State>(linker, |s| s),
        Grant::SiteAdmin => kernel::site_admin::add_to_linker::<_, State>(linker, |s| s),
        Grant::AuthAdmin | Grant::Files => Ok(()),
    }
}

impl kernel::types::Host for InstanceState {}
impl kernel::sockets::Host for InstanceState {}

/// The answer of an interface the plugin's mount does not grant (it is not
/// even linked then, so this only guards against a kernel bug).
pub(crate) fn unsupported(interface: &str) -> Unsupported {
    Unsupported {
        interface: interface.to_string(),
        message: format!("tessera:kernel/{interface} is not granted to this plugin"),
    }
}
