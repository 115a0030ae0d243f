//! The `config` interface: a plugin's own `[plugins.NAME.settings]` table,
//! serialized to JSON once at load so reads cost a lookup.

use std::collections::HashMap;

use crate::runtime::bindings::tessera::kernel::config::Host;
use crate::runtime::state::InstanceState;

pub struct PluginSettings {
    all: String,
    by_key: HashMap<String, String>,
}

impl PluginSettings {
    pub fn new(table: &toml::Table) -> Self {
        let by_key = table
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_string(v).unwrap_or_default()))
            .collect();
        PluginSettings {
            all: serde_json::to_string(table).unwrap_or_else(|_| "{}".into()),
            by_key,
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.by_key.get(key).map(String::as_str)
    }

    pub fn all(&self) -> &str {
        &self.all
    }
}

impl Host for InstanceState {
    fn get(&mut self, key: String) -> Option<String> {
        self.plugin.settings.get(&key).map(str::to_string)
    }

    fn get_all(&mut self) -> String {
        self.plugin.settings.all().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_served_as_json() {
        let table: toml::Table = toml::from_str("greeting = 'hi'\n[nested]\nn = 3\n").unwrap();
        let s = PluginSettings::new(&table);
        assert_eq!(s.get("greeting"), Some("\"hi\""));
        assert_eq!(s.get("nested"), Some("{\"n\":3}"));
        assert_eq!(s.get("absent"), None);
        let all: serde_json::Value = serde_json::from_str(s.all()).unwrap();
        assert_eq!(all["nested"]["n"], 3);
    }
}
