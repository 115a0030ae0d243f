//! Who is calling: HTTP Signature authentication (header or pre-signed URL), checked
//! through the kernel's identity store, with CloudAPI's 401/403 answers.

use base64::Engine;
use tessera_sdk::Request;
use tessera_sdk::auth::{self, Account, AuthError};

use crate::errors::{ApiError, ApiResult};
use crate::protocol::peer_ip;
use crate::protocol::signature::{
    KeyId, SignatureError, SignatureHeader, SignedRequest, presigned_string, signing_string,
};

/// Largest clock skew accepted between the signed date and now.
pub const MAX_SKEW_SECS: u64 = 300;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The top-level account: the signer, or the sub-user's parent.
    pub account: Account,
    /// The sub-user who signed, if one did.
    pub user: Option<Account>,
}

const NOT_AUTHENTICATED: &str = "You must make authenticated requests to use CloudAPI";

pub fn authenticate(request: &Request, now_ms: u64) -> ApiResult<Caller> {
    let presigned = tessera_sdk::query::get(&request.query, "signature").is_some()
        && tessera_sdk::query::get(&request.query, "keyId").is_some();
    if presigned && request.header("authorization").is_none() {
        return authenticate_presigned(request, now_ms);
    }
    let value = request
        .header("authorization")
        .ok_or_else(|| ApiError::invalid_credentials(NOT_AUTHENTICATED))?;
    let header = SignatureHeader::parse(value).map_err(signature_error)?;
    KeyId::parse(&header.key_id).map_err(signature_error)?;
    let date_name = header.date_header();
    let date = match &header.headers {
        Some(names) if !names.iter().any(|n| n == "date" || n == "x-date") => {
            return Err(ApiError::invalid_header(
                "the date (or x-date) header must be signed",
            ));
        }
        Some(_) => request.header(date_name),
        None => request.header("date").or_else(|| request.header("x-date")),
    }
    .ok_or_else(|| ApiError::missing_auth_parameter("Date header is required"))?;
    check_skew(date, now_ms)?;
    let lookup = |name: &str| {
        let values: Vec<&str> = request.header_all(name).collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    let signed = signing_string(
        &header,
        &SignedRequest {
            method: &request.method,
            path: &request.path,
            query: &request.query,
            header: &lookup,
        },
    )
    .map_err(signature_error)?;
    verify(
        request,
        &header.key_id,
        &header.algorithm,
        &signed,
        &header.signature,
    )
}

fn authenticate_presigned(request: &Request, now_ms: u64) -> ApiResult<Caller> {
    let url = read_presigned(&request.query, &request.method, now_ms)?;
    let host = request
        .header("host")
        .ok_or_else(|| ApiError::missing_auth_parameter("Host header is required"))?;
    let signed = presigned_string(&url.methods, host, &request.path, &request.query);
    verify(
        request,
        &url.key_id,
        &url.algorithm,
        &signed,
        &url.signature,
    )
}

/// A pre-signed URL's parameters, checked before any key is looked up.
pub struct Presigned {
    pub key_id: String,
    pub algorithm: String,
    pub signature: String,
    /// The `method` list as signed (the request's method when absent).
    pub methods: String,
}

/// Reads `keyId`, `algorithm`, `expires`, `method` and `signature` from a query and
/// checks the expiry and that `method` allows the request's.
pub fn read_presigned(query: &str, method: &str, now_ms: u64) -> ApiResult<Presigned> {
    let param = |name: &str| tessera_sdk::query::get(query, name);
    let key_id = param("keyId").unwrap_or_default();
    let signature = param("signature").unwrap_or_default();
    let algorithm = param("algorithm")
        .ok_or_else(|| ApiError::missing_auth_parameter("algorithm is required"))?;
    let expires =
        param("expires").ok_or_else(|| ApiError::missing_auth_parameter("expires is required"))?;
    let expires: u64 = expires
        .parse()
        .map_err(|_| ApiError::invalid_header("expires must be a UNIX timestamp"))?;
    if now_ms / 1000 > expires {
        return Err(ApiError::invalid_credentials(
            "the pre-signed URL has expired",
        ));
    }
    KeyId::parse(&key_id).map_err(signature_error)?;
    let methods = match param("method") {
        Some(list) => {
            let allowed = list
                .split(',')
                .any(|m| m.trim().eq_ignore_ascii_case(method));
            if !allowed {
                return Err(ApiError::invalid_credentials(format!(
                    "the pre-signed URL does not allow {method}"
                )));
            }
            list
        }
        None => method.to_string(),
    };
    Ok(Presigned {
        key_id,
        algorithm,
        signature,
        methods,
    })
}

fn check_skew(date: &str, now_ms: u64) -> ApiResult<()> {
    let sent = httpdate::parse_http_date(date)
        .map_err(|_| ApiError::invalid_header(format!("{date:?} is not an HTTP date")))?;
    let sent_secs = sent
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let skew = (now_ms / 1000).abs_diff(sent_secs);
    if skew > MAX_SKEW_SECS {
        return Err(ApiError::invalid_credentials(format!(
            "clock skew of {skew}s is more than the {MAX_SKEW_SECS}s allowed"
        )));
    }
    Ok(())
}

fn verify(
    request: &Request,
    key_id: &str,
    algorithm: &str,
    signed: &str,
    signature: &str,
) -> ApiResult<Caller> {
    let bytes = decode_base64(signature)
        .ok_or_else(|| ApiError::invalid_header("the signature is not base64"))?;
    let signer = auth::verify_signature(
        key_id,
        algorithm,
        signed.as_bytes(),
        &bytes,
        peer_ip(request),
    )
    .map_err(|e| match e {
        AuthError::NotFound(_) => {
            ApiError::invalid_credentials(format!("Invalid KeyId {key_id} in authorization header"))
        }
        AuthError::InvalidCredentials => ApiError::invalid_credentials(
            "The signature we calculated does not match the one you sent",
        ),
        AuthError::Invalid(why) if why.starts_with("algorithm") => ApiError::invalid_credentials(
            format!("{algorithm} is not a supported signing algorithm"),
        ),
        AuthError::Invalid(_) => {
            ApiError::invalid_credentials(format!("Invalid KeyId {key_id} in authorization header"))
        }
        other => ApiError::from(other),
    })?;
    let Some(parent) = signer.account.parent.clone() else {
        return Ok(Caller {
            account: signer.account,
            user: None,
        });
    };
    let account = auth::get_account(&parent)?
        .ok_or_else(|| ApiError::invalid_credentials(format!("Invalid account {parent}")))?;
    Ok(Caller {
        account,
        user: Some(signer.account),
    })
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let text = text.trim();
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .ok()
}

fn signature_error(error: SignatureError) -> ApiError {
    match error {
        SignatureError::Scheme(scheme) => ApiError::invalid_credentials(format!(
            "the authorization scheme {scheme} is not supported"
        )),
        SignatureError::Malformed(why) => {
            ApiError::invalid_header(format!("Invalid authorization header: {why}"))
        }
        SignatureError::Missing(what) => ApiError::missing_auth_parameter(format!(
            "the signature needs {what}, which the request lacks"
        )),
        SignatureError::KeyId(key_id) => {
            ApiError::invalid_credentials(format!("Invalid KeyId {key_id} in authorization header"))
        }
    }
}
