//! Team quotas: what a team (and each user in it) uses, and whether a new
//! demand fits its `teamQuotas` and `perUserQuotas`. VM boot disks count as
//! storage type `vms`, drives as storage type `drives`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::errors::ApiError;
use crate::model::QuotasTyped;

/// The storage type a VM's boot disk counts under.
pub const VM_STORAGE: &str = "vms";
/// The storage type a team drive counts under.
pub const DRIVE_STORAGE: &str = "drives";

/// Resources used, or asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub cores: u64,
    pub memory: u64,
    pub storage: BTreeMap<String, u64>,
    pub devices: BTreeMap<String, u64>,
}

impl Usage {
    pub fn storage(kind: &str, bytes: u64) -> Usage {
        Usage {
            storage: BTreeMap::from([(kind.to_string(), bytes)]),
            ..Usage::default()
        }
    }

    pub fn add(&mut self, other: &Usage) {
        self.cores = self.cores.saturating_add(other.cores);
        self.memory = self.memory.saturating_add(other.memory);
        for (kind, n) in &other.storage {
            let slot = self.storage.entry(kind.clone()).or_default();
            *slot = slot.saturating_add(*n);
        }
        for (kind, n) in &other.devices {
            let slot = self.devices.entry(kind.clone()).or_default();
            *slot = slot.saturating_add(*n);
        }
    }
}

/// Refuses `asked` when `used + asked` passes any limit in `limits`; `whose`
/// says which quota (team or per-user) in the message.
pub fn check(
    limits: &QuotasTyped,
    used: &Usage,
    asked: &Usage,
    whose: &str,
) -> Result<(), ApiError> {
    let over = |what: String, limit: u64, used: u64, asked: u64| {
        ApiError::new(
            403,
            "QuotaExceeded",
            format!("{whose} quota for {what} is {limit}: {used} in use, {asked} more asked"),
        )
    };
    let fits = |limit: Option<u64>, used: u64, asked: u64| {
        asked == 0 || limit.is_none_or(|l| used.saturating_add(asked) <= l)
    };
    if !fits(limits.cores, used.cores, asked.cores) {
        return Err(over(
            "cores".into(),
            limits.cores.unwrap_or(0),
            used.cores,
            asked.cores,
        ));
    }
    if !fits(limits.memory, used.memory, asked.memory) {
        return Err(over(
            "memory".into(),
            limits.memory.unwrap_or(0),
            used.memory,
            asked.memory,
        ));
    }
    for (label, limit_map, used_map, asked_map) in [
        ("storage", &limits.storage, &used.storage, &asked.storage),
        ("devices", &limits.devices, &used.devices, &asked.devices),
    ] {
        for (kind, n) in asked_map {
            let limit = limit_map.get(kind).copied();
            let in_use = used_map.get(kind).copied().unwrap_or(0);
            if !fits(limit, in_use, *n) {
                return Err(over(
                    format!("{label} {kind}"),
                    limit.unwrap_or(0),
                    in_use,
                    *n,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> QuotasTyped {
        QuotasTyped {
            cores: Some(4),
            memory: None,
            storage: BTreeMap::from([(VM_STORAGE.to_string(), 100)]),
            devices: BTreeMap::from([("gpu".to_string(), 1)]),
        }
    }

    fn ask(cores: u64, memory: u64, disk: u64, gpus: u64) -> Usage {
        let mut u = Usage::storage(VM_STORAGE, disk);
        u.cores = cores;
        u.memory = memory;
        if gpus > 0 {
            u.devices.insert("gpu".into(), gpus);
        }
        u
    }

    #[test]
    fn a_demand_within_every_limit_fits() {
        let used = ask(2, 1 << 40, 50, 0);
        assert!(check(&limits(), &used, &ask(2, 1 << 40, 50, 1), "team").is_ok());
    }

    #[test]
    fn each_kind_of_limit_refuses_with_403_naming_it() {
        let used = ask(2, 0, 50, 1);
        for (asked, what) in [
            (ask(3, 0, 0, 0), "cores"),
            (ask(0, 0, 51, 0), "storage vms"),
            (ask(0, 0, 0, 1), "devices gpu"),
        ] {
            let e = check(&limits(), &used, &asked, "per-user").unwrap_err();
            assert_eq!((e.status, e.code), (403, "QuotaExceeded"));
            assert!(
                e.message.contains(what) && e.message.starts_with("per-user"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn unlisted_types_and_absent_limits_are_unlimited() {
        let mut asked = ask(0, 1 << 50, 0, 0);
        asked.storage.insert("vault".into(), 1 << 50);
        asked.devices.insert("fpga".into(), 9);
        assert!(check(&limits(), &Usage::default(), &asked, "team").is_ok());
        assert!(
            check(
                &QuotasTyped::default(),
                &ask(999, 999, 999, 999),
                &ask(1, 1, 1, 1),
                "team"
            )
            .is_ok()
        );
    }

    #[test]
    fn usage_adds_up_per_type() {
        let mut total = ask(1, 2, 3, 1);
        total.add(&ask(1, 2, 3, 1));
        assert_eq!(total, ask(2, 4, 6, 2));
    }
}
