//! Role-based access control for sub-users (the spec's "RBAC" and "Policies"): a sub-user
//! may call an endpoint only when one of its active roles is tagged on the resource and
//! has a policy with a rule allowing the endpoint's action. The account owner bypasses it.

pub mod aperture;
pub mod store;

use std::collections::BTreeSet;

use crate::context::Ctx;
use crate::errors::{ApiError, ApiResult};
use crate::protocol::peer_ip;
use aperture::{Facts, Rule};
use store::Role;

/// Allow or refuse `action` on the canonical `resource` path for the caller.
pub fn authorize(ctx: &Ctx<'_>, action: &str, resource: &str) -> ApiResult<()> {
    let Some(user) = &ctx.caller.user else {
        return Ok(());
    };
    let forbidden = || {
        ApiError::not_authorized(format!(
            "You do not have permission to access {resource} ({action})"
        ))
    };
    let roles: Vec<Role> = store::roles_of(&ctx.account.id)?
        .into_iter()
        .map(|r| r.value)
        .collect();
    let active = active_roles(&roles, &user.id, ctx.inputs.string("as-role")?.as_deref())?;
    let tagged: BTreeSet<String> = store::tags_of(resource)?.into_iter().collect();
    let facts = Facts {
        now_ms: ctx.now_ms,
        source_ip: peer_ip(ctx.request).parse().ok(),
        method: ctx.request.method.clone(),
        user_agent: ctx.request.header("user-agent").unwrap_or("").to_string(),
    };
    for role in active.iter().filter(|r| tagged.contains(&r.id)) {
        for policy_id in &role.policies {
            let Some(policy) = store::POLICIES.get::<store::Policy>(policy_id)? else {
                continue;
            };
            // Rules were checked when stored; one that no longer parses allows nothing.
            let allowed = policy
                .value
                .rules
                .iter()
                .filter_map(|text| Rule::parse(text).ok())
                .any(|rule| rule.allows(action, &facts));
            if allowed {
                return Ok(());
            }
        }
    }
    Err(forbidden())
}

/// The roles active for a sub-user: those named in `as-role` (each must list the user as
/// a member), else those listing it as a default member.
pub fn active_roles<'r>(
    roles: &'r [Role],
    user_id: &str,
    as_role: Option<&str>,
) -> ApiResult<Vec<&'r Role>> {
    let is_member = |role: &Role| role.members.iter().any(|m| m.id == user_id);
    let Some(requested) = as_role.filter(|s| !s.trim().is_empty()) else {
        return Ok(roles
            .iter()
            .filter(|role| role.members.iter().any(|m| m.id == user_id && m.default))
            .collect());
    };
    requested
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            roles
                .iter()
                .find(|role| role.name == name && is_member(role))
                .ok_or_else(|| {
                    ApiError::not_authorized(format!("\"{name}\" not listed in user roles"))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::store::Member;
    use super::*;

    fn role(name: &str, members: &[(&str, bool)]) -> Role {
        Role {
            id: format!("id-{name}"),
            account: "acct".into(),
            name: name.into(),
            members: members
                .iter()
                .map(|(id, default)| Member {
                    id: id.to_string(),
                    default: *default,
                })
                .collect(),
            policies: Vec::new(),
        }
    }

    #[test]
    fn default_roles_are_active_unless_as_role_names_others() {
        let roles = vec![
            role("read", &[("bob", true)]),
            role("ops", &[("bob", false)]),
            role("admin", &[("carl", true)]),
        ];
        let names = |v: Vec<&Role>| v.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(active_roles(&roles, "bob", None).unwrap()), ["read"]);
        assert_eq!(
            names(active_roles(&roles, "bob", Some("ops")).unwrap()),
            ["ops"]
        );
        assert_eq!(
            names(active_roles(&roles, "bob", Some("read,ops")).unwrap()),
            ["read", "ops"]
        );
        let refused = active_roles(&roles, "bob", Some("admin")).unwrap_err();
        assert_eq!((refused.status, refused.code), (403, "NotAuthorized"));
    }
}
