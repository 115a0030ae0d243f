//! Wire shapes: accounts and sub-users (the identity store's record plus CloudAPI's
//! extra profile fields kept in plugin storage), and SSH keys.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tessera_sdk::auth::{Account, SshKey};
use tessera_sdk::storage::Collection;

use crate::errors::ApiResult;
use crate::protocol::clock::iso8601;

/// CloudAPI account fields the identity store does not hold, by account id.
pub const PROFILES: Collection = Collection::new("profiles");

/// The extra fields, spelt as on the wire.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(rename = "triton_cns_enabled", skip_serializing_if = "Option::is_none")]
    pub triton_cns_enabled: Option<bool>,
    /// Milliseconds; when a profile field last changed.
    #[serde(default)]
    pub updated: u64,
}

/// The profile fields' wire names, in the order CloudAPI lists them.
pub const PROFILE_FIELDS: [&str; 5] = ["address", "postalCode", "city", "state", "country"];

pub fn profile(account_id: &str) -> ApiResult<Profile> {
    Ok(PROFILES
        .get::<Profile>(account_id)?
        .map(|p| p.value)
        .unwrap_or_default())
}

/// An account or sub-user as CloudAPI shows it.
pub fn account_json(account: &Account, profile: &Profile) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(account.id));
    out.insert("login".into(), json!(account.login));
    out.insert("email".into(), json!(account.email));
    let optional = [
        ("companyName", &account.company),
        ("firstName", &account.first_name),
        ("lastName", &account.last_name),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            out.insert(name.into(), json!(value));
        }
    }
    if let Ok(Value::Object(extra)) = serde_json::to_value(profile) {
        for (name, value) in extra {
            if name != "updated" {
                out.insert(name, value);
            }
        }
    }
    if let Some(phone) = &account.phone {
        out.insert("phone".into(), json!(phone));
    }
    out.insert(
        "updated".into(),
        json!(iso8601(account.updated.max(profile.updated))),
    );
    out.insert("created".into(), json!(iso8601(account.created)));
    Value::Object(out)
}

/// A key as ListKeys shows it: the MD5 fingerprint, as CloudAPI reports it.
pub fn key_json(key: &SshKey) -> Value {
    json!({
        "name": key.name,
        "fingerprint": key.fingerprint_md5,
        "key": key.key,
    })
}
