//! The HTTP Signature scheme as CloudAPI clients send it: parsing the `Authorization`
//! header, the key id, and building the string that was signed (from the header list,
//! or for a pre-signed URL from the method, host, path and sorted query).
//!
//! Three header forms are accepted (CLIENTS.md): `triton`'s
//! `Signature keyId="…",algorithm="…",headers="(request-target) date",signature="…"`,
//! `smartdc`'s same form with `headers="date"`, and the legacy
//! `Signature keyId="…",algorithm="…" BASE64` whose signed string is the bare date value.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What went wrong reading the header; the protocol layer maps each to a CloudAPI error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// Not the `Signature` scheme.
    Scheme(String),
    /// Not parseable as `name="value",…`.
    Malformed(String),
    /// A required parameter (`keyId`, `algorithm`, `signature`) or signed header is absent.
    Missing(String),
    /// The key id is not `/LOGIN/keys/KEY` or `/LOGIN/users/SUB/keys/KEY`.
    KeyId(String),
}

/// A parsed `Authorization: Signature …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub key_id: String,
    pub algorithm: String,
    /// The signed header names, lower-cased; `None` for the legacy form (bare date value).
    pub headers: Option<Vec<String>>,
    /// Base64 as sent.
    pub signature: String,
}

/// The parts of a key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId {
    pub login: String,
    pub sub_user: Option<String>,
    pub key: String,
}

impl SignatureHeader {
    pub fn parse(value: &str) -> Result<SignatureHeader, SignatureError> {
        let value = value.trim();
        let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("signature") {
            return Err(SignatureError::Scheme(scheme.to_string()));
        }
        let (params, trailer) = parse_params(rest)?;
        let mut key_id = None;
        let mut algorithm = None;
        let mut headers = None;
        let mut signature = None;
        for (name, value) in params {
            let slot = match name.to_ascii_lowercase().as_str() {
                "keyid" => &mut key_id,
                "algorithm" => &mut algorithm,
                "headers" => &mut headers,
                "signature" => &mut signature,
                // Unknown parameters (`extensions`, `created`…) are ignored, as node's parser does.
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(SignatureError::Malformed(format!("{name} given twice")));
            }
        }
        let legacy = !trailer.is_empty();
        let signature = match (signature, legacy) {
            (Some(_), true) => {
                return Err(SignatureError::Malformed(
                    "signature given twice (parameter and trailer)".into(),
                ));
            }
            (Some(signature), false) => signature,
            (None, true) => trailer.to_string(),
            (None, false) => return Err(SignatureError::Missing("signature".into())),
        };
        let key_id = key_id.ok_or_else(|| SignatureError::Missing("keyId".into()))?;
        let algorithm = algorithm.ok_or_else(|| SignatureError::Missing("algorithm".into()))?;
        let headers = match (headers, legacy) {
            (Some(list), _) => Some(
                list.split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect::<Vec<_>>(),
            ),
            // Without `headers=`, draft-cavage signs `date: VALUE`; the legacy trailer form signs the bare value.
            (None, false) => Some(vec!["date".to_string()]),
            (None, true) => None,
        };
        if headers.as_ref().is_some_and(Vec::is_empty) {
            return Err(SignatureError::Malformed("headers is empty".into()));
        }
        Ok(SignatureHeader {
            key_id,
            algorithm,
            headers,
            signature,
        })
    }

    /// The header whose date is checked for clock skew: `x-date` when it is signed, else `date`.
    pub fn date_header(&self) -> &'static str {
        match &self.headers {
            Some(list)
                if list.iter().any(|h| h == "x-date") && !list.iter().any(|h| h == "date") =>
            {
                "x-date"
            }
            _ => "date",
        }
    }
}

type Params = Vec<(String, String)>;

/// `name=value` pairs separated by commas (values quoted with `\` escapes, or bare tokens),
/// then whatever follows after whitespace (the legacy signature).
fn parse_params(text: &str) -> Result<(Params, &str), SignatureError> {
    let mut params = Vec::new();
    let mut rest = text.trim_start();
    loop {
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace() || c == ',')
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        let after = &rest[name_end..];
        if name.is_empty() || !after.starts_with('=') {
            // No `=`: this is the trailer (legacy base64 signature), unless nothing was parsed yet.
            if params.is_empty() {
                return Err(SignatureError::Malformed("expected name=value".into()));
            }
            return Ok((params, rest.trim()));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SignatureError::Malformed(format!(
                "bad parameter name {name:?}"
            )));
        }
        let after = &after[1..];
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            read_quoted(quoted)?
        } else {
            let end = after
                .find(|c: char| c == ',' || c.is_whitespace())
                .unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        params.push((name.to_string(), value));
        let remaining = remaining.trim_start_matches([' ', '\t']);
        if let Some(next) = remaining.strip_prefix(',') {
            rest = next.trim_start();
            if rest.is_empty() {
                return Err(SignatureError::Malformed("trailing comma".into()));
            }
        } else {
            return Ok((params, remaining.trim()));
        }
    }
}

fn read_quoted(text: &str) -> Result<(String, &str), SignatureError> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(SignatureError::Malformed(
        "unterminated quoted value".into(),
    ))
}

impl KeyId {
    /// `/LOGIN/keys/KEY` or `/LOGIN/users/SUB/keys/KEY`; KEY may contain `/` (SHA256 fingerprints).
    pub fn parse(text: &str) -> Result<KeyId, SignatureError> {
        let bad = || SignatureError::KeyId(text.to_string());
        let path = text.strip_prefix('/').ok_or_else(bad)?;
        let (login, rest) = path.split_once('/').ok_or_else(bad)?;
        let (sub_user, key) = if let Some(key) = rest.strip_prefix("keys/") {
            (None, key)
        } else if let Some(rest) = rest.strip_prefix("users/") {
            let (sub, rest) = rest.split_once('/').ok_or_else(bad)?;
            let key = rest.strip_prefix("keys/").ok_or_else(bad)?;
            (Some(sub.to_string()), key)
        } else {
            return Err(bad());
        };
        if login.is_empty() || key.is_empty() || sub_user.as_deref() == Some("") {
            return Err(bad());
        }
        Ok(KeyId {
            login: login.to_string(),
            sub_user,
            key: key.to_string(),
        })
    }
}

/// A request's parts the signed string is made of.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as sent, percent-encoding untouched.
    pub path: &'a str,
    /// The raw query without `?`.
    pub query: &'a str,
    /// Header lookup, lower-case names; several values of one name joined with `, `.
    pub header: &'a dyn Fn(&str) -> Option<String>,
}

/// The string the client signed for `header`; names the first signed header the request lacks.
pub fn signing_string(
    header: &SignatureHeader,
    request: &SignedRequest<'_>,
) -> Result<String, SignatureError> {
    let Some(names) = &header.headers else {
        let date = (request.header)("date")
            .or_else(|| (request.header)("x-date"))
            .ok_or_else(|| SignatureError::Missing("date".into()))?;
        return Ok(date);
    };
    let target = if request.query.is_empty() {
        request.path.to_string()
    } else {
        format!("{}?{}", request.path, request.query)
    };
    let mut lines = Vec::with_capacity(names.len());
    for name in names {
        let line = match name.as_str() {
            "(request-target)" => format!(
                "(request-target): {} {target}",
                request.method.to_ascii_lowercase()
            ),
            "request-line" => format!("{} {target} HTTP/1.1", request.method),
            other => {
                let value = (request.header)(other)
                    .ok_or_else(|| SignatureError::Missing(other.to_string()))?;
                format!("{other}: {value}")
            }
        };
        lines.push(line);
    }
    Ok(lines.join("\n"))
}

/// What `encodeURIComponent` leaves alone.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The string signed for a pre-signed URL: `METHODS\nHOST\nPATH\nSORTED_QUERY`, the query
/// being every parameter except `signature`, sorted by name, each encoded as
/// `encodeURIComponent` does.
pub fn presigned_string(methods: &str, host: &str, path: &str, query: &str) -> String {
    let mut pairs: Vec<(String, String)> = tessera_sdk::query::pairs(query)
        .into_iter()
        .filter(|(name, _)| name != "signature")
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(name, URI_COMPONENT),
                utf8_percent_encode(value, URI_COMPONENT)
            )
        })
        .collect();
    format!("{methods}\n{host}\n{path}\n{}", encoded.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_triton_form_is_parsed() {
        let h = SignatureHeader::parse(
            r#"Signature keyId="/alice/keys/0b:7c:0f",algorithm="rsa-sha256",headers="(request-target) date",signature="AbC+/="#,
        )
        .unwrap_err();
        assert!(matches!(h, SignatureError::Malformed(_)), "unterminated");
        let h = SignatureHeader::parse(
            r#"Signature keyId="/alice/keys/0b:7c:0f",algorithm="rsa-sha256",headers="(request-target) date",signature="AbC+/=""#,
        )
        .unwrap();
        assert_eq!(h.key_id, "/alice/keys/0b:7c:0f");
        assert_eq!(h.algorithm, "rsa-sha256");
        assert_eq!(
            h.headers,
            Some(vec!["(request-target)".into(), "date".into()])
        );
        assert_eq!(h.signature, "AbC+/=");
    }

    #[test]
    fn the_legacy_trailer_form_signs_the_bare_date() {
        let h =
            SignatureHeader::parse("Signature keyId=/demo/keys/foo,algorithm=\"rsa-sha256\" QUJD")
                .unwrap();
        assert_eq!(h.key_id, "/demo/keys/foo");
        assert_eq!(h.headers, None);
        assert_eq!(h.signature, "QUJD");
        let lookup =
            |name: &str| (name == "date").then(|| "Sat, 11 Jun 2011 23:56:29 GMT".to_string());
        let req = SignedRequest {
            method: "GET",
            path: "/my/machines",
            query: "",
            header: &lookup,
        };
        assert_eq!(
            signing_string(&h, &req).unwrap(),
            "Sat, 11 Jun 2011 23:56:29 GMT"
        );
    }

    #[test]
    fn without_headers_the_draft_signs_the_date_line() {
        let h = SignatureHeader::parse(
            r#"signature keyId="/a/keys/k", algorithm="ed25519-sha512", signature="eA==""#,
        )
        .unwrap();
        assert_eq!(h.headers, Some(vec!["date".to_string()]));
        let lookup = |name: &str| (name == "date").then(|| "D".to_string());
        let req = SignedRequest {
            method: "GET",
            path: "/a",
            query: "",
            header: &lookup,
        };
        assert_eq!(signing_string(&h, &req).unwrap(), "date: D");
    }

    #[test]
    fn the_request_target_includes_the_raw_query() {
        let h = SignatureHeader::parse(
            r#"Signature keyId="/alice/keys/x",algorithm="rsa-sha256",headers="(request-target) date host x-extra",signature="c2ln""#,
        )
        .unwrap();
        let lookup = |name: &str| match name {
            "date" => Some("Thu, 01 Jan 2026 00:00:00 GMT".to_string()),
            "host" => Some("127.0.0.1:8080".to_string()),
            "x-extra" => Some("a, b".to_string()),
            _ => None,
        };
        let req = SignedRequest {
            method: "GET",
            path: "/alice/machines",
            query: "limit=1000&offset=0",
            header: &lookup,
        };
        assert_eq!(
            signing_string(&h, &req).unwrap(),
            "(request-target): get /alice/machines?limit=1000&offset=0\n\
             date: Thu, 01 Jan 2026 00:00:00 GMT\nhost: 127.0.0.1:8080\nx-extra: a, b"
        );
        let none = |_: &str| None;
        let bare = SignedRequest {
            header: &none,
            ..req
        };
        assert_eq!(
            signing_string(&h, &bare),
            Err(SignatureError::Missing("date".into()))
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        let cases = [
            ("Basic YWxpY2U6eA==", "scheme"),
            ("Signature", "empty"),
            ("Signature keyId", "no ="),
            (
                r#"Signature keyId="a",keyId="b",algorithm="x",signature="y""#,
                "dup",
            ),
            (r#"Signature keyId="a",algorithm="x""#, "no signature"),
            (r#"Signature algorithm="x",signature="y""#, "no keyId"),
            (
                r#"Signature keyId="a",algorithm="x",signature="y","#,
                "trailing comma",
            ),
            (
                r#"Signature keyId="a",algorithm="x",headers="",signature="y""#,
                "empty headers",
            ),
            (r#"Signature k$y="a""#, "bad name"),
        ];
        for (text, why) in cases {
            assert!(SignatureHeader::parse(text).is_err(), "{why}: {text}");
        }
    }

    #[test]
    fn quoted_values_take_escapes() {
        let h = SignatureHeader::parse(
            r#"Signature keyId="/a/keys/we\"ird",algorithm="rsa-sha1",signature="eA==""#,
        )
        .unwrap();
        assert_eq!(h.key_id, "/a/keys/we\"ird");
    }

    #[test]
    fn key_ids_name_accounts_and_sub_users() {
        assert_eq!(
            KeyId::parse("/alice/keys/SHA256:ab/cd+ef").unwrap(),
            KeyId {
                login: "alice".into(),
                sub_user: None,
                key: "SHA256:ab/cd+ef".into()
            }
        );
        assert_eq!(
            KeyId::parse("/alice/users/bob/keys/id_rsa")
                .unwrap()
                .sub_user,
            Some("bob".into())
        );
        for bad in [
            "alice/keys/x",
            "/alice/keys/",
            "/alice/users//keys/x",
            "/alice/other/x",
            "/alice",
            "/alice/users/bob",
        ] {
            assert!(KeyId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn presigned_strings_sort_and_encode_the_query() {
        let s = presigned_string(
            "GET",
            "api.example.com",
            "/alice/machines",
            "keyId=%2Falice%2Fkeys%2Fk&expires=1700000000&algorithm=rsa-sha256&signature=zzz&a=b%20c",
        );
        assert_eq!(
            s,
            "GET\napi.example.com\n/alice/machines\na=b%20c&algorithm=rsa-sha256&expires=1700000000&keyId=%2Falice%2Fkeys%2Fk"
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn quote(value: &str) -> String {
        value.replace('\\', "\\\\").replace('"', "\\\"")
    }

    proptest! {
        /// Whatever the values (quotes and backslashes included), a header written the
        /// way clients write it reads back the same.
        #[test]
        fn a_written_header_parses_back(
            key_id in "/[a-z]{2,8}/keys/[ -~]{1,40}",
            algorithm in "[a-z0-9-]{3,16}",
            headers in proptest::collection::vec("[a-z-]{1,12}|\\(request-target\\)", 1..5),
            signature in "[A-Za-z0-9+/]{4,64}={0,2}",
        ) {
            let text = format!(
                "Signature keyId=\"{}\",algorithm=\"{}\",headers=\"{}\",signature=\"{}\"",
                quote(&key_id), algorithm, headers.join(" "), signature
            );
            let parsed = SignatureHeader::parse(&text).unwrap();
            prop_assert_eq!(parsed.key_id, key_id);
            prop_assert_eq!(parsed.algorithm, algorithm);
            prop_assert_eq!(parsed.headers, Some(headers));
            prop_assert_eq!(parsed.signature, signature);
        }

        /// Arbitrary input never panics: it parses or is refused.
        #[test]
        fn any_text_parses_or_is_refused(text in "\\PC{0,120}") {
            let _ = SignatureHeader::parse(&text);
            let _ = SignatureHeader::parse(&format!("Signature {text}"));
            let _ = KeyId::parse(&text);
        }
    }
}
