//! Teams and their quotas: `GET`/`POST /api/teams`, `GET`/`PATCH /api/teams/quotas`.

use serde_json::json;
use tessera_sdk::{Params, Request, Response};

use crate::auth::Caller;
use crate::errors::{ApiError, ApiResult};
use crate::fields::{Fields, body_or_query};
use crate::model::{QuotasTyped, TeamInfo, new_id, now_millis};
use crate::store::{self, TEAMS};

pub fn list(_: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    Ok(Response::json(200, &store::all::<TeamInfo>(TEAMS)?))
}

pub fn create(req: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    let body = Fields::from_body(req)?;
    body.only(&[
        "name",
        "desc",
        "settings",
        "teamQuotas",
        "perUserQuotas",
        "startDate",
        "endDate",
    ])?;
    let team_quotas = quotas_field(&body, "teamQuotas")?.unwrap_or_default();
    let now = now_millis();
    let team = TeamInfo {
        id: new_id(),
        name: body.text("name", 256)?,
        desc: body.opt_str("desc", 65_536)?.unwrap_or_default(),
        created: now,
        modified: now,
        quotas: team_quotas.legacy(),
        team_quotas,
        per_user_quotas: quotas_field(&body, "perUserQuotas")?.unwrap_or_default(),
        settings: body
            .opt_json_object("settings")?
            .unwrap_or_else(|| json!({})),
        start_date: body.opt_u64("startDate")?,
        end_date: body.opt_u64("endDate")?,
    };
    if let (Some(start), Some(end)) = (team.start_date, team.end_date)
        && start >= end
    {
        return Err(ApiError::invalid("startDate must be before endDate"));
    }
    TEAMS.insert(&team.id, &team)?;
    Ok(Response::json(200, &team))
}

pub fn get_quotas(req: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    let body = Fields::from_body(req)?;
    let id = body_or_query(req, &body, "teamID")?.ok_or_else(|| ApiError::missing("teamID"))?;
    let (team, _) = store::team(&id)?;
    Ok(Response::json(200, &team.team_quotas))
}

/// Replaces the team's quotas (and, when given, its per-user quotas).
pub fn edit_quotas(req: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    let body = Fields::from_body(req)?;
    body.only(&["teamID", "quotas", "perUserQuotas"])?;
    let id = body.text("teamID", 64)?;
    let quotas = quotas_field(&body, "quotas")?.ok_or_else(|| ApiError::missing("quotas"))?;
    let per_user = quotas_field(&body, "perUserQuotas")?;
    let (mut team, version) = store::team(&id)?;
    team.quotas = quotas.legacy();
    team.team_quotas = quotas;
    if let Some(per_user) = per_user {
        team.per_user_quotas = per_user;
    }
    team.modified = now_millis();
    TEAMS.put(&team.id, &team, Some(version))?;
    Ok(Response::json(200, &team))
}

/// A `QuotasTyped` object; `null` or absent members mean no limit.
fn quotas_field(body: &Fields, key: &str) -> ApiResult<Option<QuotasTyped>> {
    let Some(q) = body.opt_object(key)? else {
        return Ok(None);
    };
    q.only(&["cores", "memory", "storage", "devices"])?;
    Ok(Some(QuotasTyped {
        cores: q.opt_u64("cores")?,
        memory: q.opt_u64("memory")?,
        storage: q.opt_counts("storage")?.unwrap_or_default(),
        devices: q.opt_counts("devices")?.unwrap_or_default(),
    }))
}
