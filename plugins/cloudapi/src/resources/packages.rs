//! ListPackages and GetPackage. Packages are the operator's named sizes, from two
//! places: the kernel's size presets (`tessera package add`, the hypervisor primitive's
//! `list-packages`) and the `[plugins.cloudapi.settings.packages.NAME]` tables of the
//! site (which win on a shared name). When neither names any, a few sample sizes ship
//! so a fresh server can provision. A settings package's id is a UUID derived from its
//! name (or the `id` the operator gave), so it is stable; a kernel preset keeps its own.

use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_sdk::Params;

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;
use crate::settings::Settings;

/// One package as the site configures it (sizes in MiB).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PackageSpec {
    #[serde(default)]
    pub id: Option<String>,
    pub memory: u64,
    pub disk: u64,
    #[serde(default = "one")]
    pub vcpus: u32,
    #[serde(default)]
    pub swap: Option<u64>,
    #[serde(default)]
    pub lwps: Option<u64>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub flexible_disk: bool,
    #[serde(default)]
    pub default: bool,
}

fn one() -> u32 {
    1
}

/// A package with its name and id resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    pub id: String,
    pub name: String,
    pub spec: PackageSpec,
}

impl Package {
    pub fn swap(&self) -> u64 {
        self.spec.swap.unwrap_or(self.spec.memory * 2)
    }

    pub fn lwps(&self) -> u64 {
        self.spec.lwps.unwrap_or(4000)
    }

    pub fn version(&self) -> &str {
        self.spec.version.as_deref().unwrap_or("1.0.0")
    }

    pub fn json(&self) -> Value {
        let mut out = json!({
            "id": self.id,
            "name": self.name,
            "memory": self.spec.memory,
            "disk": self.spec.disk,
            "swap": self.swap(),
            "vcpus": self.spec.vcpus,
            "lwps": self.lwps(),
            "version": self.version(),
            "default": self.spec.default,
        });
        if let Some(group) = &self.spec.group {
            out["group"] = json!(group);
        }
        if let Some(description) = &self.spec.description {
            out["description"] = json!(description);
        }
        if self.spec.flexible_disk {
            out["flexible_disk"] = json!(true);
        }
        out
    }
}

/// The shipped sample packages: enough for every shipped image (the largest is 10 GiB).
const SAMPLES: [(&str, u64, u64, u32, bool); 4] = [
    ("sample-512M", 512, 10_240, 1, false),
    ("sample-1G", 1024, 25_600, 1, true),
    ("sample-2G", 2048, 51_200, 2, false),
    ("sample-4G", 4096, 102_400, 4, false),
];

/// Every package of the site: the settings' and the kernel's presets, by name.
pub fn all(settings: &Settings) -> Vec<Package> {
    let presets = tessera_sdk::hypervisor::list_packages_info().unwrap_or_else(|e| {
        tessera_sdk::warn!("kernel packages unavailable: {e:?}");
        Vec::new()
    });
    combine(settings, presets)
}

fn combine(
    settings: &Settings,
    presets: Vec<tessera_sdk::hypervisor::HvPackageInfo>,
) -> Vec<Package> {
    if settings.packages.is_empty() && presets.is_empty() {
        return SAMPLES
            .iter()
            .map(|(name, memory, disk, vcpus, default)| Package {
                id: id_for(name),
                name: name.to_string(),
                spec: PackageSpec {
                    id: None,
                    memory: *memory,
                    disk: *disk,
                    vcpus: *vcpus,
                    swap: None,
                    lwps: None,
                    version: None,
                    group: Some("sample".into()),
                    description: Some(format!("{name} sample package")),
                    flexible_disk: false,
                    default: *default,
                },
            })
            .collect();
    }
    let mut out: Vec<Package> = settings
        .packages
        .iter()
        .map(|(name, spec)| Package {
            id: spec.id.clone().unwrap_or_else(|| id_for(name)),
            name: name.clone(),
            spec: spec.clone(),
        })
        .collect();
    for info in presets {
        let preset = info.package;
        if settings.packages.contains_key(&preset.name) {
            continue;
        }
        out.push(Package {
            id: preset.id,
            name: preset.name,
            spec: PackageSpec {
                id: None,
                memory: preset.ram_mib,
                disk: preset.disk_mib,
                vcpus: preset.cpus,
                swap: preset.swap_mib,
                lwps: preset.lwps,
                version: info.version,
                group: info.group,
                description: info.description,
                flexible_disk: false,
                default: preset.is_default,
            },
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A package by id or name.
pub fn find(settings: &Settings, wanted: &str) -> Option<Package> {
    find_in(&all(settings), wanted)
}

/// A package of `list` by id or name.
pub fn find_in(list: &[Package], wanted: &str) -> Option<Package> {
    list.iter()
        .find(|p| p.id == wanted || p.name == wanted)
        .cloned()
}

/// The package a VM of this size was made from (for VMs made outside CloudAPI).
pub fn matching(list: &[Package], vcpus: u32, memory: u64, disk: u64) -> Option<Package> {
    list.iter()
        .find(|p| p.spec.vcpus == vcpus && p.spec.memory == memory && p.spec.disk == disk)
        .cloned()
}

/// A name-based UUID (MD5, version 3 layout), so a package keeps its id across restarts.
fn id_for(name: &str) -> String {
    tessera_sdk::ids::uuid_from_md5(Md5::digest(format!("tessera-package:{name}")).into())
}

pub fn list(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    let mut out = Vec::new();
    for package in all(&ctx.settings) {
        if matches_filters(ctx, &package)? {
            out.push(package.json());
        }
    }
    let count = out.len();
    Ok(Reply::ok(Value::Array(out)).with_header("x-resource-count", count.to_string()))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let wanted = p.get("package").unwrap_or_default();
    let package = find(&ctx.settings, wanted)
        .ok_or_else(|| ApiError::not_found(format!("package {wanted} does not exist")))?;
    Ok(Reply::ok(package.json()))
}

fn matches_filters(ctx: &Ctx<'_>, package: &Package) -> ApiResult<bool> {
    let inputs = &ctx.inputs;
    let numbers = [
        ("memory", package.spec.memory),
        ("disk", package.spec.disk),
        ("swap", package.swap()),
        ("lwps", package.lwps()),
        ("vcpus", u64::from(package.spec.vcpus)),
    ];
    for (name, value) in numbers {
        if let Some(wanted) = inputs.integer(name)?
            && wanted != value
        {
            return Ok(false);
        }
    }
    let texts = [
        ("name", Some(package.name.as_str())),
        ("version", Some(package.version())),
        ("group", package.spec.group.as_deref()),
    ];
    for (name, value) in texts {
        if let Some(pattern) = inputs.string(name)?
            && !wildcard_match(&pattern, value.unwrap_or(""))
        {
            return Ok(false);
        }
    }
    if let Some(flexible) = inputs.boolean("flexible_disk")?
        && flexible != package.spec.flexible_disk
    {
        return Ok(false);
    }
    Ok(true)
}

/// `*` matches any run of characters; everything else matches itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(after) = rest.strip_prefix(part) else {
                return false;
            };
            rest = after;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_prefixes_suffixes_and_middles() {
        assert!(wildcard_match("sample-*", "sample-1G"));
        assert!(wildcard_match("*1G", "sample-1G"));
        assert!(wildcard_match("s*-*G", "sample-1G"));
        assert!(!wildcard_match("sample-*", "other"));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("exact", "exactly"));
    }

    fn preset(name: &str, memory: u64) -> tessera_sdk::hypervisor::HvPackageInfo {
        tessera_sdk::hypervisor::HvPackageInfo {
            package: tessera_sdk::hypervisor::HvPackage {
                id: format!("id-{name}"),
                name: name.into(),
                cpus: 2,
                ram_mib: memory,
                disk_mib: 20_480,
                swap_mib: None,
                lwps: None,
                is_default: false,
                created: 0,
            },
            version: Some("2.0.0".into()),
            group: Some("kernel".into()),
            description: None,
        }
    }

    #[test]
    fn kernel_presets_join_settings_packages_which_win_on_a_name() {
        let mut settings = Settings::default();
        let only_kernel = combine(&settings, vec![preset("k1", 256)]);
        assert_eq!(only_kernel.len(), 1);
        assert_eq!(
            (only_kernel[0].id.as_str(), only_kernel[0].spec.vcpus),
            ("id-k1", 2)
        );
        assert_eq!(only_kernel[0].json()["version"], "2.0.0");
        assert_eq!(only_kernel[0].json()["group"], "kernel");
        settings.packages.insert(
            "k1".into(),
            serde_json::from_value(json!({"memory": 999, "disk": 2048})).unwrap(),
        );
        let both = combine(&settings, vec![preset("k1", 256), preset("a0", 128)]);
        let names: Vec<&str> = both.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a0", "k1"]);
        assert_eq!(both[1].spec.memory, 999);
    }

    #[test]
    fn defaults_ship_samples_and_configured_packages_replace_them() {
        let mut settings = Settings::default();
        let samples = combine(&settings, Vec::new());
        assert_eq!(samples.len(), 4);
        assert_eq!(samples.iter().filter(|p| p.spec.default).count(), 1);
        assert_eq!(samples[0].id, id_for("sample-512M"));
        assert_eq!(samples[1].name, "sample-1G");
        assert_eq!(samples[1].spec.memory, 1024);
        settings.packages.insert(
            "g1".into(),
            serde_json::from_value(json!({"memory": 256, "disk": 2048})).unwrap(),
        );
        let configured = combine(&settings, Vec::new());
        assert_eq!(configured.len(), 1);
        assert_eq!(configured[0].json()["swap"], 512);
        assert_eq!(configured[0].spec.vcpus, 1);
    }
}
