//! ListDatacenters, GetDatacenter (a 302 to the datacenter's URL), ListServices — all
//! from the site's settings.

use serde_json::{Value, json};
use tessera_sdk::Params;

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::Reply;

pub fn list(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    Ok(Reply::ok(json!(ctx.settings.datacenters)))
}

pub fn get(ctx: &Ctx<'_>, p: &Params) -> ApiResult<Reply> {
    let name = p.get("name").unwrap_or_default();
    let url = ctx
        .settings
        .datacenters
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("{name} datacenter not found")))?;
    Ok(Reply {
        status: 302,
        body: Some(json!({"code": "ResourceMoved", "message": format!("{name} {url}")})),
        headers: vec![("location".into(), url.clone())],
    })
}

pub fn services(ctx: &Ctx<'_>, _: &Params) -> ApiResult<Reply> {
    Ok(Reply::ok(Value::Object(
        ctx.settings
            .services
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect(),
    )))
}
