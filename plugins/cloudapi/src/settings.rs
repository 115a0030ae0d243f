//! The plugin's settings (`[plugins.cloudapi.settings]` in the site TOML), with defaults
//! that make a fresh site useful: one datacenter named `tessera` whose URL is the one the
//! client used, CloudAPI as its only service, throttling at 50 requests/s (burst 200).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use tessera_sdk::Request;

use crate::protocol::throttle::Bucket;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settings {
    /// This datacenter's name (`Triton-Datacenter-Name`).
    pub datacenter_name: String,
    /// This site's public CloudAPI URL; `None`: taken from the request's `Host`.
    pub url: Option<String>,
    /// Every datacenter of the cloud, name → CloudAPI URL (this one included).
    pub datacenters: BTreeMap<String, String>,
    /// Service name → URL (`cloudapi`, `docker`, `manta`, …).
    pub services: BTreeMap<String, String>,
    pub throttle: Bucket,
    /// GetAccountLimits' limit objects (`by`, `value`, optional `check`/`os`/`image`).
    pub limits: Vec<Value>,
    /// Packages by name (`[plugins.cloudapi.settings.packages.NAME]`); empty: the defaults.
    pub packages: BTreeMap<String, crate::resources::packages::PackageSpec>,
}

#[derive(Deserialize, Default)]
struct Raw {
    datacenter_name: Option<String>,
    url: Option<String>,
    #[serde(default)]
    datacenters: BTreeMap<String, String>,
    #[serde(default)]
    services: BTreeMap<String, String>,
    throttle: Option<Bucket>,
    #[serde(default)]
    limits: Vec<Value>,
    #[serde(default)]
    packages: BTreeMap<String, crate::resources::packages::PackageSpec>,
}

impl Settings {
    /// The settings for this request. A malformed table falls back to the defaults and
    /// is logged, so a typo never takes the API down.
    pub fn load(request: &Request) -> Settings {
        Settings::from_raw(Settings::raw(), request.header("host"))
    }

    /// The settings outside a request (a socket or a job): URLs default as with no `Host`.
    pub fn current() -> Settings {
        Settings::from_raw(Settings::raw(), None)
    }

    fn raw() -> Raw {
        let all = tessera_sdk::config::all();
        let raw: Raw = if all.is_null() {
            Raw::default()
        } else {
            serde_json::from_value(all).unwrap_or_else(|e| {
                tessera_sdk::warn!("cloudapi settings ignored: {e}");
                Raw::default()
            })
        };
        raw
    }

    fn from_raw(raw: Raw, host: Option<&str>) -> Settings {
        let datacenter_name = raw.datacenter_name.unwrap_or_else(|| "tessera".into());
        let own_url = raw
            .url
            .clone()
            .or_else(|| host.map(|h| format!("http://{h}")))
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let mut datacenters = raw.datacenters;
        datacenters
            .entry(datacenter_name.clone())
            .or_insert_with(|| own_url.clone());
        let mut services = raw.services;
        services
            .entry("cloudapi".into())
            .or_insert_with(|| own_url.clone());
        Settings {
            datacenter_name,
            url: raw.url,
            datacenters,
            services,
            throttle: raw.throttle.unwrap_or_default(),
            limits: raw.limits,
            packages: raw.packages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_name_this_datacenter_at_the_url_the_client_used() {
        let s = Settings::from_raw(Raw::default(), Some("127.0.0.1:9000"));
        assert_eq!(s.datacenter_name, "tessera");
        assert_eq!(s.datacenters["tessera"], "http://127.0.0.1:9000");
        assert_eq!(s.services["cloudapi"], "http://127.0.0.1:9000");
        assert_eq!(s.throttle, Bucket::default());
    }

    #[test]
    fn configured_datacenters_and_services_are_kept() {
        let raw: Raw = serde_json::from_value(serde_json::json!({
            "datacenter_name": "us-west-1",
            "url": "https://cloudapi.example.com",
            "datacenters": {"us-east-1": "https://east.example.com"},
            "services": {"docker": "tcp://docker.example.com:2376"},
            "throttle": {"rate": 1.0, "burst": 2.0}
        }))
        .unwrap();
        let s = Settings::from_raw(raw, Some("ignored"));
        assert_eq!(s.datacenters.len(), 2);
        assert_eq!(s.datacenters["us-west-1"], "https://cloudapi.example.com");
        assert_eq!(s.services["cloudapi"], "https://cloudapi.example.com");
        assert_eq!(s.services["docker"], "tcp://docker.example.com:2376");
        assert_eq!(s.throttle.burst, 2.0);
    }
}
