//! The plugin's own settings (`[plugins.NAME.settings]` in the site config).

use serde::de::DeserializeOwned;

use crate::bindings::tessera::kernel::config as wit;

/// One setting deserialized into `T`; `None` when absent or of another shape.
pub fn get<T: DeserializeOwned>(key: &str) -> Option<T> {
    wit::get(key).and_then(|json| serde_json::from_str(&json).ok())
}

/// The whole settings table.
pub fn all() -> serde_json::Value {
    serde_json::from_str(&wit::get_all()).unwrap_or(serde_json::Value::Null)
}
