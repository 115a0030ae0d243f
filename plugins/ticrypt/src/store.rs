//! Where the plugin keeps its resources, and the lookups every route shares.
//! Realms, teams, projects, drives and bricks are documents of this plugin;
//! images live in the hypervisor's inventory (see `routes::images`).

use serde::de::DeserializeOwned;
use tessera_sdk::storage::Collection;

use crate::errors::{ApiError, ApiResult};
use crate::model::{Driver, RealmInfo, TeamInfo, now_millis};

pub const REALMS: Collection = Collection::new("realms");
pub const TEAMS: Collection = Collection::new("teams");
pub const PROJECTS: Collection = Collection::new("projects");
pub const DRIVES: Collection = Collection::new("drives");
pub const BRICKS: Collection = Collection::new("bricks");
const META: Collection = Collection::new("meta");

/// The realm a fresh site ships, backed by the hypervisor primitive; the
/// `default_realm` setting renames it.
pub fn default_realm_id() -> String {
    tessera_sdk::config::get::<String>("default_realm").unwrap_or_else(|| "libvirt".to_string())
}

/// Seed the default realm once per site; an admin may later change it.
pub fn ensure_seeded() -> ApiResult<()> {
    if META.get::<serde_json::Value>("seeded")?.is_some() {
        return Ok(());
    }
    let id = default_realm_id();
    let realm = RealmInfo {
        id: id.clone(),
        name: id.clone(),
        driver: Driver::Libvirt,
        description: "The site's hypervisor".to_string(),
        created: now_millis(),
    };
    let writes = [
        META.insert_op("seeded", &serde_json::json!({ "at": realm.created }))?,
        REALMS.put_op(&id, &realm, Some(0))?,
    ];
    match tessera_sdk::storage::batch(&writes) {
        Ok(_) => Ok(()),
        // Another request seeded it first.
        Err(_) if META.get::<serde_json::Value>("seeded")?.is_some() => Ok(()),
        Err(e) => {
            tessera_sdk::error!("seeding the default realm failed: {e:?}");
            Err(ApiError::internal("storage"))
        }
    }
}

/// Every document of a collection, oldest first.
pub fn all<T: DeserializeOwned>(collection: Collection) -> ApiResult<Vec<T>> {
    Ok(collection
        .query()
        .order_by("_created", false)
        .order_by("_key", false)
        .fetch::<T>()?
        .items
        .into_iter()
        .map(|v| v.value)
        .collect())
}

pub fn realm(id: &str) -> ApiResult<RealmInfo> {
    REALMS
        .get::<RealmInfo>(id)?
        .map(|v| v.value)
        .ok_or_else(|| ApiError::not_found("RealmNotFound", "realm", id))
}

pub fn team(id: &str) -> ApiResult<(TeamInfo, u64)> {
    TEAMS
        .get::<TeamInfo>(id)?
        .map(|v| (v.value, v.version))
        .ok_or_else(|| ApiError::not_found("TeamNotFound", "team", id))
}
