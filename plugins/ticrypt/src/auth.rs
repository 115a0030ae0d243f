//! tiCrypt's token scheme: typed tokens read from `?token=`, then the
//! `TC_TOKEN` cookie, then a `TC_TOKEN` header; and the admin check
//! (Basic auth or an admin token) of the `/api/admin` routes.

use tessera_sdk::Request;
use tessera_sdk::auth::{self, Account, AuthError};

use crate::errors::{ApiError, ApiResult};

/// The family every tiCrypt token scope starts with.
pub const SCOPE_PREFIX: &str = "ticrypt:";
/// The name of the URL parameter, cookie and header that carry a token.
pub const COOKIE: &str = "TC_TOKEN";

/// What a token may reach: each family of routes takes one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Drive,
    Vm,
    Team,
    Project,
    /// Reaches only `/api/admin/...`; issued for admin accounts only.
    Admin,
}

impl TokenType {
    pub const ALL: [TokenType; 5] = [
        TokenType::Drive,
        TokenType::Vm,
        TokenType::Team,
        TokenType::Project,
        TokenType::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TokenType::Drive => "drive",
            TokenType::Vm => "vm",
            TokenType::Team => "team",
            TokenType::Project => "project",
            TokenType::Admin => "admin",
        }
    }

    pub fn scope(self) -> String {
        format!("{SCOPE_PREFIX}{}", self.name())
    }

    pub fn parse(name: &str) -> Option<TokenType> {
        TokenType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    fn from_scope(scope: &str) -> Option<TokenType> {
        scope.strip_prefix(SCOPE_PREFIX).and_then(TokenType::parse)
    }
}

/// Who made a request, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: Account,
}

/// The token a request carries: the URL parameter wins over the cookie, the
/// cookie over the header.
pub fn presented_token(req: &Request) -> Option<String> {
    req.query_param("token")
        .or_else(|| req.cookie(COOKIE))
        .or_else(|| req.header(COOKIE).map(str::to_string))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The caller of a route that takes tokens of type `wanted`.
pub fn token_caller(req: &Request, wanted: TokenType) -> ApiResult<Caller> {
    let token = presented_token(req).ok_or_else(|| {
        ApiError::new(
            401,
            "MissingToken",
            "a token is required: ?token=, the TC_TOKEN cookie or the TC_TOKEN header",
        )
    })?;
    let claims =
        auth::check_token(&token, &format!("{SCOPE_PREFIX}*"), &req.peer).map_err(|e| match e {
            AuthError::InvalidCredentials | AuthError::NotFound(_) | AuthError::Invalid(_) => {
                ApiError::new(
                    401,
                    "InvalidToken",
                    "the token is unknown, expired or revoked",
                )
            }
            other => other.into(),
        })?;
    match TokenType::from_scope(&claims.scope) {
        Some(found) if found == wanted => Ok(Caller {
            account: claims.owner,
        }),
        found => Err(ApiError::new(
            403,
            "WrongTokenType",
            format!(
                "this route takes a {} token, not a {} token",
                wanted.name(),
                found.map(TokenType::name).unwrap_or("foreign")
            ),
        )),
    }
}

/// The caller of an admin route: Basic credentials of an admin account, or
/// an admin token (`Authorization: Bearer`, `?token=`, cookie or header).
pub fn admin_caller(req: &Request) -> ApiResult<Caller> {
    let account = if let Some((login, password)) = req.basic_auth() {
        auth::verify_password(&login, &password, None, &req.peer).map_err(|e| match e {
            AuthError::InvalidCredentials | AuthError::NotFound(_) => {
                unauthorized("invalid credentials")
            }
            other => other.into(),
        })?
    } else if let Some(token) = req
        .bearer_token()
        .map(str::to_string)
        .or_else(|| presented_token(req))
    {
        let claims = auth::check_token(&token, &TokenType::Admin.scope(), &req.peer).map_err(
            |e| match e {
                AuthError::InvalidCredentials | AuthError::NotFound(_) | AuthError::Invalid(_) => {
                    unauthorized("the token is not a valid admin token")
                }
                other => other.into(),
            },
        )?;
        claims.owner
    } else {
        return Err(unauthorized("admin credentials are required"));
    };
    if !account.admin {
        return Err(ApiError::new(
            403,
            "AdminRequired",
            "this route is for admin accounts",
        ));
    }
    Ok(Caller { account })
}

/// An account named by login or by id; 404 `UserNotFound` when neither matches.
pub fn find_account(login_or_id: &str) -> ApiResult<Account> {
    let by_login = auth::get_account(login_or_id).or_else(|e| match e {
        AuthError::Invalid(_) => Ok(None),
        other => Err(other),
    })?;
    if let Some(account) = by_login {
        return Ok(account);
    }
    let by_id = auth::get_account_by_id(login_or_id).or_else(|e| match e {
        AuthError::Invalid(_) => Ok(None),
        other => Err(other),
    })?;
    by_id.ok_or_else(|| ApiError::not_found("UserNotFound", "user", login_or_id))
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(401, "Unauthorized", message)
        .with_header("www-authenticate", "Basic realm=\"ticrypt admin\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: "/api/drives".into(),
            mount: "/api".into(),
            subpath: "/drives".into(),
            query: query.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            peer: "127.0.0.1:1".into(),
            request_id: "r".into(),
        }
    }

    #[test]
    fn the_url_parameter_beats_the_cookie_and_the_cookie_beats_the_header() {
        let all = request(
            "token=fromparam",
            &[
                ("cookie", "TC_TOKEN=fromcookie"),
                ("tc_token", "fromheader"),
            ],
        );
        assert_eq!(presented_token(&all).as_deref(), Some("fromparam"));
        let no_param = request(
            "",
            &[("cookie", "a=b; TC_TOKEN=fromcookie"), ("tc_token", "h")],
        );
        assert_eq!(presented_token(&no_param).as_deref(), Some("fromcookie"));
        let header_only = request("", &[("tc_token", " fromheader ")]);
        assert_eq!(presented_token(&header_only).as_deref(), Some("fromheader"));
        assert_eq!(presented_token(&request("token=", &[])), None);
    }

    #[test]
    fn token_types_round_trip_through_their_scopes() {
        for t in TokenType::ALL {
            assert_eq!(TokenType::from_scope(&t.scope()), Some(t));
        }
        assert_eq!(TokenType::parse("VM"), Some(TokenType::Vm));
        assert_eq!(TokenType::from_scope("vmmanager:session"), None);
        assert_eq!(TokenType::from_scope("ticrypt:other"), None);
    }
}
