//! A `multipart/form-data` body parser (RFC 7578) for plugins: the whole body
//! is in memory already, so it is one synchronous pass over a byte slice.

use crate::Request;

/// One part of a form: a field, or a file when `filename` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

impl Part {
    /// The data as UTF-8 text, if it is.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

/// Why a body is not a well-formed multipart form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    /// The request is not `multipart/form-data`, or names no boundary.
    NotMultipart,
    /// The body breaks the format; says where.
    Malformed(&'static str),
}

impl std::fmt::Display for MultipartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MultipartError::NotMultipart => f.write_str("the body is not multipart/form-data"),
            MultipartError::Malformed(what) => write!(f, "malformed multipart body: {what}"),
        }
    }
}

/// A parsed form, in the order the parts came.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub parts: Vec<Part>,
}

impl Form {
    /// The first part named `name`.
    pub fn get(&self, name: &str) -> Option<&Part> {
        self.parts.iter().find(|p| p.name == name)
    }

    /// The first part named `name` as text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Part::text)
    }
}

impl Request {
    /// The body parsed as `multipart/form-data`.
    pub fn multipart(&self) -> Result<Form, MultipartError> {
        let content_type = self
            .header("content-type")
            .ok_or(MultipartError::NotMultipart)?;
        let boundary = boundary(content_type).ok_or(MultipartError::NotMultipart)?;
        parse(&self.body, &boundary)
    }
}

/// The boundary parameter of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let media = params.next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        (!v.is_empty() && v.len() <= 70).then(|| v.to_string())
    })
}

/// Parse `body` delimited by `boundary`.
pub fn parse(body: &[u8], boundary: &str) -> Result<Form, MultipartError> {
    let delimiter = format!("--{boundary}").into_bytes();
    let start = find(body, &delimiter).ok_or(MultipartError::Malformed("no opening boundary"))?;
    let mut rest = &body[start + delimiter.len()..];
    let mut parts = Vec::new();
    // Each part's delimiter is preceded by CRLF.
    let next_delimiter = [b"\r\n".as_slice(), &delimiter].concat();
    loop {
        if rest.starts_with(b"--") {
            return Ok(Form { parts });
        }
        rest = skip_line_end(rest).ok_or(MultipartError::Malformed(
            "boundary not followed by a line end",
        ))?;
        let head_end =
            find(rest, b"\r\n\r\n").ok_or(MultipartError::Malformed("part headers not ended"))?;
        let head = std::str::from_utf8(&rest[..head_end])
            .map_err(|_| MultipartError::Malformed("part headers are not text"))?;
        let data_start = head_end + 4;
        let data_len = find(&rest[data_start..], &next_delimiter)
            .ok_or(MultipartError::Malformed("no closing boundary"))?;
        let data = rest[data_start..data_start + data_len].to_vec();
        parts.push(part(head, data)?);
        rest = &rest[data_start + data_len + next_delimiter.len()..];
    }
}

fn part(head: &str, data: Vec<u8>) -> Result<Part, MultipartError> {
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let Some((key, value)) = line.split_once(':') else {
            return Err(MultipartError::Malformed("a part header has no colon"));
        };
        if key.trim().eq_ignore_ascii_case("content-disposition") {
            let mut items = value.split(';');
            if !items
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("form-data")
            {
                return Err(MultipartError::Malformed("a part is not form-data"));
            }
            for item in items {
                let Some((k, v)) = item.split_once('=') else {
                    continue;
                };
                let v = unquote(v.trim());
                match k.trim().to_ascii_lowercase().as_str() {
                    "name" => name = Some(v),
                    "filename" => filename = Some(v),
                    _ => {}
                }
            }
        } else if key.trim().eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_string());
        }
    }
    Ok(Part {
        name: name.ok_or(MultipartError::Malformed("a part has no name"))?,
        filename,
        content_type,
        data,
    })
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => value.to_string(),
    }
}

/// After a boundary: optional transport padding, then CRLF.
fn skip_line_end(rest: &[u8]) -> Option<&[u8]> {
    let trimmed = rest
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .map(|i| &rest[i..])?;
    trimmed.strip_prefix(b"\r\n")
}

/// Linear in the haystack whatever the input (Two-Way search): a body of
/// almost-boundaries cannot make the scan quadratic.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    memchr::memmem::find(haystack, needle)
}

/// Fuzzing entry point: the first line of `data` is a `Content-Type` value (its
/// boundary, else `b`), the rest a body. Parses or is refused, never panics; what
/// parses re-encodes to a body that parses to the same form. The `cargo fuzz` target
/// in `fuzz/` and this module's property tests share it and the seed corpus
/// `fuzz/corpus/multipart/`.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let (head, body) = match memchr::memchr(b'\n', data) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let content_type = String::from_utf8_lossy(head);
    let boundary = boundary(content_type.trim_end()).unwrap_or_else(|| "b".into());
    if let Ok(form) = parse(body, &boundary) {
        // Parts whose data holds the delimiter cannot be re-encoded under it.
        let delimiter = format!("\r\n--{boundary}");
        if form
            .parts
            .iter()
            .all(|p| find(&p.data, delimiter.as_bytes()).is_none() && encodable(p))
        {
            let again = encode(&form, &boundary);
            assert_eq!(parse(&again, &boundary).as_ref(), Ok(&form));
        }
    }
}

/// Whether a part's header values survive quoting (no quotes, backslashes or line
/// breaks, which RFC 7578 clients percent-encode instead).
fn encodable(part: &Part) -> bool {
    let plain = |s: &str| !s.contains(['"', '\\', '\r', '\n', ';']) && s.trim() == s;
    plain(&part.name)
        && part.filename.as_deref().is_none_or(plain)
        && part
            .content_type
            .as_deref()
            .is_none_or(|c| plain(c) && !c.is_empty())
}

/// A form as a client writes it.
fn encode(form: &Form, boundary: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for part in &form.parts {
        out.extend(format!("--{boundary}\r\n").bytes());
        out.extend(format!("Content-Disposition: form-data; name=\"{}\"", part.name).bytes());
        if let Some(filename) = &part.filename {
            out.extend(format!("; filename=\"{filename}\"").bytes());
        }
        out.extend(b"\r\n");
        if let Some(content_type) = &part.content_type {
            out.extend(format!("Content-Type: {content_type}\r\n").bytes());
        }
        out.extend(b"\r\n");
        out.extend(&part.data);
        out.extend(b"\r\n");
    }
    out.extend(format!("--{boundary}--\r\n").bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURL_BODY: &[u8] = b"--------------------------d74496d66958873e\r\n\
Content-Disposition: form-data; name=\"newtoken\"\r\n\r\n\
s3cret\r\n\
--------------------------d74496d66958873e\r\n\
Content-Disposition: form-data; name=\"update\"; filename=\"pkg.enc\"\r\n\
Content-Type: application/octet-stream\r\n\r\n\
\x00\x01\r\n--not-the-boundary\r\n\
--------------------------d74496d66958873e--\r\n";

    #[test]
    fn a_curl_form_parses_fields_and_files() {
        let form = parse(CURL_BODY, "------------------------d74496d66958873e").unwrap();
        assert_eq!(form.text("newtoken"), Some("s3cret"));
        let file = form.get("update").unwrap();
        assert_eq!(file.filename.as_deref(), Some("pkg.enc"));
        assert_eq!(
            file.content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(file.data, b"\x00\x01\r\n--not-the-boundary");
        assert!(form.get("absent").is_none());
    }

    #[test]
    fn boundaries_are_read_from_the_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data; charset=x; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("application/json"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        for body in [
            &b""[..],
            b"no boundary here",
            b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nvalue without end",
            b"--b\r\nno colon header\r\n\r\nv\r\n--b--",
            b"--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--",
            b"--b\r\nContent-Disposition: attachment; name=\"x\"\r\n\r\nv\r\n--b--",
            b"--bjunk",
        ] {
            assert!(
                matches!(parse(body, "b"), Err(MultipartError::Malformed(_))),
                "{body:?}"
            );
        }
        assert_eq!(parse(b"--b--\r\n", "b").unwrap().parts.len(), 0);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn corpus() -> Vec<Vec<u8>> {
        crate::corpus::seed_bytes("multipart")
    }

    #[test]
    fn the_seed_corpus_replays_and_parses() {
        for data in corpus() {
            fuzz(&data);
            // The hand-made seeds (not libFuzzer's finds) are forms curl sends.
            if !data.starts_with(b"multipart/form-data") {
                continue;
            }
            let at = data.iter().position(|b| *b == b'\n').unwrap();
            let content_type = std::str::from_utf8(&data[..at]).unwrap();
            let boundary = boundary(content_type).expect("a seed names its boundary");
            assert!(parse(&data[at + 1..], &boundary).is_ok(), "{content_type}");
        }
    }

    fn part() -> impl Strategy<Value = Part> {
        (
            "[a-zA-Z0-9_.-]{1,12}",
            prop::option::of("[a-zA-Z0-9_. -]{1,12}"),
            prop::option::of("[a-z]{1,8}/[a-z0-9.+-]{1,12}"),
            prop::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(name, filename, content_type, data)| Part {
                name,
                filename: filename
                    .map(|f| f.trim().to_string())
                    .filter(|f| !f.is_empty()),
                content_type,
                data,
            })
    }

    proptest! {
        /// A form a client writes parses back to the same parts.
        #[test]
        fn written_forms_parse_back(
            parts in prop::collection::vec(part(), 0..6),
            boundary in "[a-zA-Z0-9'()+_,-./:=?]{1,70}",
        ) {
            let form = Form { parts };
            let delimiter = format!("\r\n--{boundary}");
            prop_assume!(form.parts.iter().all(|p| find(&p.data, delimiter.as_bytes()).is_none()));
            let body = encode(&form, &boundary);
            prop_assert_eq!(parse(&body, &boundary), Ok(form));
        }

        #[test]
        fn mutated_seeds_never_panic(
            i in any::<usize>(),
            at in any::<usize>(),
            insert in prop::collection::vec(any::<u8>(), 0..16),
        ) {
            fuzz(&crate::corpus::splice(&corpus(), i, at, 0, &insert));
        }

        #[test]
        fn any_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
            fuzz(&data);
        }
    }
}
