//! The `[hypervisor]` section of the site config: which backend runs, and the `sim` backend's transition delay and seed inventory.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::api::HvError;

/// The embedded, simulated backend (the default).
pub const SIM_BACKEND: &str = "sim";
/// Real VMs: `qemu-system-x86_64` processes on this machine.
pub const QEMU_BACKEND: &str = "qemu";

/// Tunables of the hypervisor primitive; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HypervisorSettings {
    /// Which backend drives the inventory: `sim` or `qemu`.
    pub backend: String,
    /// `[hypervisor.sim]`: read only when `backend` is `sim`.
    pub sim: SimSettings,
    /// `[hypervisor.qemu]`: read only when `backend` is `qemu`.
    pub qemu: QemuSettings,
}

/// The `qemu` backend: where the tools are, how VMs run, and the inventory it
/// starts with. It keeps the same SQLite inventory and state machine as `sim`;
/// a transition's job does the real work (disks, processes, QMP) before it completes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QemuSettings {
    /// The emulator; a bare name is looked up on `PATH`.
    pub qemu_system: String,
    pub qemu_img: String,
    /// `tcg` (software emulation, works everywhere) or `kvm`.
    pub accel: String,
    /// The `-machine` type.
    pub machine: String,
    /// Disks, sockets, logs and pid files, under the data dir when relative.
    pub dir: std::path::PathBuf,
    /// How long a start may take until QMP answers.
    pub boot_timeout_ms: u64,
    /// How long a stop waits after the ACPI power-button press before it quits the VM.
    pub shutdown_timeout_ms: u64,
    pub nodes: Vec<NodeSeed>,
    pub images: Vec<ImageSeed>,
    pub networks: Vec<NetworkSeed>,
}

/// The `sim` backend: how long a transition takes and what inventory a fresh site has.
///
/// Seeds are upserted at every start, matched by name (images by name and
/// version): a restart never duplicates them, a changed seed updates its row, and
/// rows whose seed was removed stay.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimSettings {
    /// How long the job worker waits before completing a transition; `0` for tests.
    pub transition_delay_ms: u64,
    pub nodes: Vec<NodeSeed>,
    pub images: Vec<ImageSeed>,
    pub networks: Vec<NetworkSeed>,
}

/// A compute node of the simulated site.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSeed {
    pub name: String,
    pub cpus: u32,
    pub ram_mib: u64,
    pub disk_mib: u64,
    /// Only `running` nodes take new VMs.
    #[serde(default = "running")]
    pub state: String,
}

/// An image every site starts with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSeed {
    pub name: String,
    pub version: String,
    pub os: String,
    #[serde(default = "zvol")]
    pub image_type: String,
    pub size_mib: u64,
    /// Only `active` images can be provisioned.
    #[serde(default = "active")]
    pub state: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default = "yes")]
    pub public: bool,
    /// Free-form fields (description, requirements, tags...), served as a JSON object.
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A network every site starts with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSeed {
    pub name: String,
    #[serde(default)]
    pub vlan: Option<u16>,
    /// CIDR, IPv4 or IPv6; host bits are cleared (`10.0.0.5/8` is `10.0.0.0/8`).
    pub subnet: String,
    /// Inside the subnet; never handed to a NIC.
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub public: bool,
    /// `None`: any owner may attach NICs to it.
    #[serde(default)]
    pub owner: Option<String>,
}

impl Default for HypervisorSettings {
    fn default() -> Self {
        HypervisorSettings {
            backend: SIM_BACKEND.into(),
            sim: SimSettings::default(),
            qemu: QemuSettings::default(),
        }
    }
}

impl Default for QemuSettings {
    /// This machine as one node, the sim's networks, and no images: a base
    /// image comes in with `tessera image import FILE`.
    fn default() -> Self {
        let sim = SimSettings::default();
        QemuSettings {
            qemu_system: "qemu-system-x86_64".into(),
            qemu_img: "qemu-img".into(),
            accel: "tcg".into(),
            machine: "pc".into(),
            dir: "qemu".into(),
            boot_timeout_ms: 30_000,
            shutdown_timeout_ms: 60_000,
            nodes: vec![NodeSeed {
                name: "qemu-local".into(),
                cpus: 8,
                ram_mib: 16 * 1024,
                disk_mib: 200 * 1024,
                state: running(),
            }],
            images: Vec::new(),
            networks: sim.networks,
        }
    }
}

impl QemuSettings {
    /// The inventory part, as the shared state machine takes it; transitions
    /// are queued at once (the work itself takes the time).
    pub fn inventory(&self) -> SimSettings {
        SimSettings {
            transition_delay_ms: 0,
            nodes: self.nodes.clone(),
            images: self.images.clone(),
            networks: self.networks.clone(),
        }
    }

    fn check(&self) -> Result<(), HvError> {
        let at = "hypervisor.qemu";
        nonempty(at, "qemu_system", &self.qemu_system)?;
        nonempty(at, "qemu_img", &self.qemu_img)?;
        nonempty(at, "machine", &self.machine)?;
        if !matches!(self.accel.as_str(), "tcg" | "kvm") {
            return Err(invalid(at, "accel", "must be \"tcg\" or \"kvm\""));
        }
        positive(at, "boot_timeout_ms", self.boot_timeout_ms)?;
        self.inventory().check()
    }
}

impl Default for SimSettings {
    /// Two nodes, four images and two networks: enough for a fresh `tessera serve`
    /// to provision from every family's client.
    fn default() -> Self {
        SimSettings {
            transition_delay_ms: 1000,
            nodes: vec![node("sim-node-1"), node("sim-node-2")],
            images: default_images(),
            networks: vec![
                network("public", None, "10.88.0.0/16", "10.88.0.1", true),
                network(
                    "private",
                    Some(100),
                    "192.168.128.0/22",
                    "192.168.128.1",
                    false,
                ),
            ],
        }
    }
}

impl HypervisorSettings {
    /// Refuses an unknown backend and inconsistent seeds, naming the offending entry.
    pub fn check(&self) -> Result<(), HvError> {
        match self.backend.as_str() {
            SIM_BACKEND => self.sim.check(),
            QEMU_BACKEND => self.qemu.check(),
            other => Err(HvError::Invalid(format!(
                "hypervisor.backend {other:?} is unknown; this kernel has {SIM_BACKEND:?} and {QEMU_BACKEND:?}"
            ))),
        }
    }
}

impl SimSettings {
    /// How long the job worker waits before completing a transition.
    pub fn transition_delay(&self) -> Duration {
        Duration::from_millis(self.transition_delay_ms)
    }

    /// Refuses seeds that repeat a name or have empty or zero fields, or a bad subnet.
    pub fn check(&self) -> Result<(), HvError> {
        unique("nodes", self.nodes.iter().map(|n| n.name.clone()))?;
        unique(
            "images",
            self.images
                .iter()
                .map(|i| format!("{}@{}", i.name, i.version)),
        )?;
        unique("networks", self.networks.iter().map(|n| n.name.clone()))?;
        self.nodes.iter().try_for_each(NodeSeed::check)?;
        self.images.iter().try_for_each(ImageSeed::check)?;
        self.networks.iter().try_for_each(|n| n.parse().map(drop))
    }
}

impl NodeSeed {
    fn check(&self) -> Result<(), HvError> {
        let at = format!("hypervisor.sim.nodes {:?}", self.name);
        nonempty(&at, "name", &self.name)?;
        nonempty(&at, "state", &self.state)?;
        positive(&at, "cpus", u64::from(self.cpus))?;
        positive(&at, "ram_mib", self.ram_mib)?;
        positive(&at, "disk_mib", self.disk_mib)
    }
}

impl ImageSeed {
    fn check(&self) -> Result<(), HvError> {
        let at = format!("hypervisor.sim.images {:?}", self.name);
        for (field, value) in [
            ("name", &self.name),
            ("version", &self.version),
            ("os", &self.os),
            ("image_type", &self.image_type),
            ("state", &self.state),
        ] {
            nonempty(&at, field, value)?;
        }
        positive(&at, "size_mib", self.size_mib)
    }
}

impl NetworkSeed {
    /// The subnet with host bits cleared and the gateway, checked to lie inside it.
    pub fn parse(&self) -> Result<(IpNet, Option<IpAddr>), HvError> {
        let at = format!("hypervisor.sim.networks {:?}", self.name);
        nonempty(&at, "name", &self.name)?;
        let subnet: IpNet = self
            .subnet
            .parse()
            .map_err(|_| invalid(&at, "subnet", "is not a CIDR like 10.0.0.0/24"))?;
        let subnet = subnet.trunc();
        let gateway = match &self.gateway {
            None => None,
            Some(text) => Some(
                text.parse::<IpAddr>()
                    .map_err(|_| invalid(&at, "gateway", "is not an IP address"))?,
            ),
        };
        if gateway.is_some_and(|ip| !subnet.contains(&ip)) {
            return Err(invalid(&at, "gateway", "is outside the subnet"));
        }
        Ok((subnet, gateway))
    }
}

fn unique(list: &str, names: impl Iterator<Item = String>) -> Result<(), HvError> {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name.clone()) {
            return Err(HvError::Invalid(format!(
                "hypervisor.sim.{list}: {name:?} appears twice"
            )));
        }
    }
    Ok(())
}

fn nonempty(at: &str, field: &str, value: &str) -> Result<(), HvError> {
    if value.trim().is_empty() {
        return Err(invalid(at, field, "is empty"));
    }
    Ok(())
}

fn positive(at: &str, field: &str, value: u64) -> Result<(), HvError> {
    if value == 0 {
        return Err(invalid(at, field, "must be at least 1"));
    }
    Ok(())
}

fn invalid(at: &str, field: &str, problem: &str) -> HvError {
    HvError::Invalid(format!("{at}: {field} {problem}"))
}

fn running() -> String {
    "running".into()
}

fn active() -> String {
    "active".into()
}

fn zvol() -> String {
    "zvol".into()
}

fn yes() -> bool {
    true
}

/// 16 vCPUs, 64 GiB of RAM, 1 TiB of disk.
fn node(name: &str) -> NodeSeed {
    NodeSeed {
        name: name.into(),
        cpus: 16,
        ram_mib: 64 * 1024,
        disk_mib: 1024 * 1024,
        state: running(),
    }
}

fn default_images() -> Vec<ImageSeed> {
    vec![
        image(
            "ubuntu-24.04",
            "20240601",
            "linux",
            "zvol",
            10_240,
            "Ubuntu 24.04 LTS (Noble Numbat)",
        ),
        image(
            "debian-12",
            "20240701",
            "linux",
            "zvol",
            10_240,
            "Debian 12 (bookworm)",
        ),
        image(
            "alpine-3.20",
            "20240722",
            "linux",
            "zvol",
            1_024,
            "Alpine Linux 3.20",
        ),
        image(
            "base-64-lts",
            "24.4.1",
            "smartos",
            "zone-dataset",
            1_024,
            "A 64-bit SmartOS base image",
        ),
    ]
}

fn image(
    name: &str,
    version: &str,
    os: &str,
    image_type: &str,
    size_mib: u64,
    description: &str,
) -> ImageSeed {
    let mut extra = serde_json::Map::new();
    extra.insert("description".into(), description.into());
    ImageSeed {
        name: name.into(),
        version: version.into(),
        os: os.into(),
        image_type: image_type.into(),
        size_mib,
        state: active(),
        owner: None,
        public: true,
        extra,
    }
}

fn network(
    name: &str,
    vlan: Option<u16>,
    subnet: &str,
    gateway: &str,
    public: bool,
) -> NetworkSeed {
    NetworkSeed {
        name: name.into(),
        vlan,
        subnet: subnet.into(),
        gateway: Some(gateway.into()),
        public,
        owner: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn an_empty_section_takes_the_defaults() -> TestResult {
        let settings: HypervisorSettings = toml::from_str("")?;
        assert_eq!(settings, HypervisorSettings::default());
        assert_eq!(settings.sim.transition_delay(), Duration::from_secs(1));
        settings.check()?;
        Ok(())
    }

    #[test]
    fn the_defaults_have_something_to_provision() {
        let sim = SimSettings::default();
        assert_eq!(
            (sim.nodes.len(), sim.images.len(), sim.networks.len()),
            (2, 4, 2)
        );
        assert!(sim.networks.iter().any(|n| n.public));
        assert!(sim.images.iter().all(|i| i.public && i.state == "active"));
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        for text in [
            "backends = 'sim'",
            "[sim]\ndelay = 0",
            "[[sim.nodes]]\nname = 'n'\ncpus = 1\nram_mib = 1\ndisk_mib = 1\ncpu = 2",
        ] {
            assert!(
                toml::from_str::<HypervisorSettings>(text).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn seeds_read_from_toml_with_field_defaults() -> TestResult {
        let text = r#"
            [sim]
            transition_delay_ms = 0
            [[sim.nodes]]
            name = "n1"
            cpus = 4
            ram_mib = 4096
            disk_mib = 65536
            [[sim.images]]
            name = "tiny"
            version = "1"
            os = "linux"
            size_mib = 64
            extra = { description = "small", tags = { role = "test" } }
            [[sim.networks]]
            name = "lab"
            subnet = "10.1.2.3/24"
            gateway = "10.1.2.254"
        "#;
        let settings: HypervisorSettings = toml::from_str(text)?;
        settings.check()?;
        let sim = &settings.sim;
        assert_eq!(sim.transition_delay(), Duration::ZERO);
        assert_eq!(sim.nodes[0].state, "running");
        assert_eq!(
            (sim.images[0].image_type.as_str(), sim.images[0].public),
            ("zvol", true)
        );
        assert_eq!(sim.images[0].extra["tags"]["role"], "test");
        let (subnet, gateway) = sim.networks[0].parse()?;
        assert_eq!(subnet.to_string(), "10.1.2.0/24");
        assert_eq!(gateway.map(|ip| ip.to_string()), Some("10.1.2.254".into()));
        Ok(())
    }

    #[test]
    fn an_unknown_backend_is_refused() {
        let settings = HypervisorSettings {
            backend: "libvirt".into(),
            ..HypervisorSettings::default()
        };
        assert!(matches!(settings.check(), Err(HvError::Invalid(_))));
    }

    #[test]
    fn inconsistent_seeds_are_refused() {
        let mut cases = Vec::new();
        let mut sim = SimSettings::default();
        sim.nodes[1].name = sim.nodes[0].name.clone();
        cases.push(sim);
        let mut sim = SimSettings::default();
        sim.nodes[0].cpus = 0;
        cases.push(sim);
        let mut sim = SimSettings::default();
        sim.images[0].version = " ".into();
        cases.push(sim);
        let mut sim = SimSettings::default();
        sim.networks[0].subnet = "10.88.0.0".into();
        cases.push(sim);
        let mut sim = SimSettings::default();
        sim.networks[0].gateway = Some("192.168.0.1".into());
        cases.push(sim);
        for sim in cases {
            let settings = HypervisorSettings {
                sim: sim.clone(),
                ..HypervisorSettings::default()
            };
            assert!(
                matches!(settings.check(), Err(HvError::Invalid(_))),
                "{sim:?}"
            );
        }
    }
}
