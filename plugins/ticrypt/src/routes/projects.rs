//! Projects: `GET /api/projects`, `GET /api/projects/<id>`, and the admin
//! route that creates them.

use serde_json::json;
use tessera_sdk::{Params, Request, Response};

use crate::auth::Caller;
use crate::errors::{ApiError, ApiResult};
use crate::fields::Fields;
use crate::model::{ProjectInfo, new_id, now_millis};
use crate::store::{self, PROJECTS};

pub fn list(_: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    Ok(Response::json(200, &store::all::<ProjectInfo>(PROJECTS)?))
}

pub fn get(_: &Request, _: &Caller, params: &Params) -> ApiResult<Response> {
    let id = params.get("id").unwrap_or_default();
    let project = PROJECTS
        .get::<ProjectInfo>(id)?
        .ok_or_else(|| ApiError::not_found("ProjectNotFound", "project", id))?;
    Ok(Response::json(200, &project.value))
}

/// `{name, desc?, securityLevel?, parent?, settings?}`; a parent must exist.
pub fn create(req: &Request, _: &Caller, _: &Params) -> ApiResult<Response> {
    let body = Fields::from_body(req)?;
    body.only(&["name", "desc", "securityLevel", "parent", "settings"])?;
    let parent = body.opt_str("parent", 64)?;
    if let Some(parent) = &parent
        && PROJECTS.get::<ProjectInfo>(parent)?.is_none()
    {
        return Err(ApiError::not_found(
            "ProjectNotFound",
            "parent project",
            parent,
        ));
    }
    let now = now_millis();
    let project = ProjectInfo {
        id: new_id(),
        name: body.text("name", 256)?,
        desc: body.opt_str("desc", 65_536)?.unwrap_or_default(),
        security_level: body.opt_str("securityLevel", 64)?.unwrap_or_default(),
        parent,
        settings: body
            .opt_json_object("settings")?
            .unwrap_or_else(|| json!({})),
        created: now,
        modified: now,
    };
    PROJECTS.insert(&project.id, &project)?;
    Ok(Response::json(200, &project))
}
