//! Query strings and form bodies (`application/x-www-form-urlencoded`).

use serde::de::DeserializeOwned;

pub use serde_urlencoded::de::Error;

/// Every `name=value` pair, percent-decoded, in order.
pub fn pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The first value of a parameter, percent-decoded.
pub fn get(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The query string deserialized into `T`.
pub fn parse_as<T: DeserializeOwned>(query: &str) -> Result<T, Error> {
    serde_urlencoded::from_str(query)
}

/// Percent-decode one path segment (`%2F` stays inside the segment).
pub fn decode_segment(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// Encode pairs as a query string.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_percent_decoded_in_order() {
        let q = "a=1&b=x%20y&a=2&c=%E2%82%AC&d=+";
        assert_eq!(
            pairs(q),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("a".into(), "2".into()),
                ("c".into(), "€".into()),
                ("d".into(), " ".into()),
            ]
        );
        assert_eq!(get(q, "a").as_deref(), Some("1"));
        assert_eq!(get(q, "zzz"), None);
    }

    #[test]
    fn typed_parsing_reports_bad_numbers() {
        #[derive(serde::Deserialize, Debug)]
        struct P {
            #[allow(dead_code)]
            limit: u32,
        }
        assert!(parse_as::<P>("limit=10").is_ok());
        assert!(parse_as::<P>("limit=ten").is_err());
    }

    #[test]
    fn segments_decode_but_keep_slashes_inside() {
        assert_eq!(decode_segment("a%2Fb%20c"), "a/b c");
        assert_eq!(encode([("x", "a b&c")]), "x=a+b%26c");
    }
}
