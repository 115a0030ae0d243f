//! Administration, services and information: `/reboot`, `/services`,
//! `/version`, `/changelog`, `/build`, `/health`, `/endpoints`.

use serde_json::json;
use tessera_sdk::site_admin as admin;
use tessera_sdk::{Request, Response};

use crate::errors::{ApiError, ApiResult, status_line};
use crate::settings;
use crate::state::human_size;

pub fn reboot(_: &Request) -> ApiResult {
    admin::restart(true).map_err(|e| ApiError::bad_request(format!("Unable to reboot: {e:?}")))?;
    Ok(Response::json(202, &json!({ "Status": status_line(202) })))
}

pub fn services(_: &Request) -> ApiResult {
    let services: Vec<_> = admin::services()
        .into_iter()
        .map(|s| json!({ s.name: s.status }))
        .collect();
    Ok(Response::json(200, &json!({ "services": services })))
}

pub fn version(_: &Request) -> ApiResult {
    Ok(Response::json(200, &json!({ "version": admin::version() })))
}

pub fn changelog(_: &Request) -> ApiResult {
    let text = admin::changelog();
    if text.is_empty() {
        return Err(ApiError::not_found("Changelog not found"));
    }
    Ok(Response::text(200, &text))
}

pub fn build(_: &Request) -> ApiResult {
    let info: serde_json::Value = serde_json::from_str(&admin::build_info())
        .map_err(|_| ApiError::not_found("Build information not found"))?;
    Ok(Response::json(200, &info))
}

pub fn health(_: &Request) -> ApiResult {
    let h = admin::health();
    let percent = |used: u64, total: u64| (used * 100).checked_div(total).unwrap_or(0);
    let disk_used = h.disk_total_bytes.saturating_sub(h.disk_free_bytes);
    let load: Vec<String> = h.load.iter().map(|l| format!("{l:.2}")).collect();
    let five = h.load.get(1).copied().unwrap_or(0.0);
    let cpu5min = (five / f64::from(h.cpus.max(1)) * 100.0).round() as u64;
    Ok(Response::json(
        200,
        &json!({
            "disk": {
                "used": human_size(disk_used),
                "total": human_size(h.disk_total_bytes),
                "percentage": percent(disk_used, h.disk_total_bytes),
            },
            "memory": {
                "used": human_size(h.memory_used_bytes),
                "total": human_size(h.memory_total_bytes),
                "percentage": percent(h.memory_used_bytes, h.memory_total_bytes),
            },
            "cpu": { "num": h.cpus, "load": load.join(", "), "cpu5min": cpu5min },
            "database": { "size": human_size(h.database_bytes), "bytes": h.database_bytes },
            "uptime": h.uptime_seconds,
        }),
    ))
}

pub fn endpoints(req: &Request) -> ApiResult {
    let mount = req.mount.trim_end_matches('/');
    let mut names: Vec<String> = settings::DEFAULT.iter().map(|s| s.to_string()).collect();
    names.extend(settings::enabled_optional());
    names.sort();
    names.dedup();
    let list: Vec<String> = names.iter().map(|n| format!("{mount}/{n}")).collect();
    Ok(Response::json(200, &json!({ "endpoints": list })))
}
