//! Fuzzing entry points for the parsers that read client input. Each takes arbitrary
//! bytes, must never panic, and checks what its parser promises (round trips, errors
//! that point inside the text). The `cargo fuzz` targets in `fuzz/` (nightly) and this
//! crate's property tests (stable, in `cargo test`) call these same functions, and both
//! replay the seed corpus in `fuzz/corpus/<target>/`.

use crate::predicate::{self, Field};
use crate::protocol::signature::{KeyId, SignatureHeader, presigned_string};
use crate::{auth, fwrule};

/// A firewall rule (`POST /:login/fwrules` `rule`): canonical text parses back the same.
pub fn fwrule(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match fwrule::parse(text) {
        Ok(rule) => {
            let canonical = rule.to_string();
            assert_eq!(fwrule::parse(&canonical).as_ref(), Ok(&rule), "{canonical}");
        }
        Err(e) => assert!(e.position <= text.chars().count() + 1, "{e}"),
    }
}

/// The fields the predicate target (and `predicate`'s unit tests) compile against.
pub(crate) const PREDICATE_FIELDS: [Field; 3] = [
    Field {
        name: "name",
        path: "name",
        numeric: false,
    },
    Field {
        name: "state",
        path: "state",
        numeric: false,
    },
    Field {
        name: "size",
        path: "size",
        numeric: true,
    },
];

/// Triton's JSON predicate (`?predicate=`): compiles or is refused; what compiles is
/// a filter the storage primitive reads as JSON.
pub fn triton_predicate(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(compiled) = predicate::compile(text, &PREDICATE_FIELDS) {
        let json = compiled.filter.to_json();
        assert!(
            serde_json::from_str::<serde_json::Value>(&json).is_ok(),
            "{json}"
        );
        for field in &compiled.fields {
            assert!(PREDICATE_FIELDS.iter().any(|f| f.name == field), "{field}");
        }
    }
}

/// The HTTP Signature `Authorization` header and its key id.
pub fn http_signature(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(header) = SignatureHeader::parse(&text) {
        let _ = KeyId::parse(&header.key_id);
    }
    let _ = KeyId::parse(&text);
}

/// A pre-signed URL's query (`keyId`, `algorithm`, `expires`, `method`, `signature`):
/// read or refused, and its signing string built for any query.
pub fn presigned_url(data: &[u8]) {
    let query = String::from_utf8_lossy(data);
    for method in ["GET", "HEAD", "POST"] {
        if let Ok(url) = auth::read_presigned(&query, method, 0) {
            assert!(
                url.methods
                    .split(',')
                    .any(|m| m.trim().eq_ignore_ascii_case(method))
            );
        }
    }
    let signed = presigned_string("GET", "example.com", "/my/machines", &query);
    assert!(signed.starts_with("GET\nexample.com\n/my/machines\n"));
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use tessera_sdk::corpus;

    use super::*;

    /// A corpus entry with bytes spliced in at random (what a fuzzer's mutator does first).
    fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
        let seeds = corpus::seed_bytes(target);
        (
            any::<usize>(),
            any::<usize>(),
            prop::collection::vec(any::<u8>(), 0..16),
        )
            .prop_map(move |(i, at, insert)| corpus::splice(&seeds, i, at, 0, &insert))
    }

    #[test]
    fn the_seed_corpus_replays() {
        for seed in corpus::seeds("fwrule") {
            fwrule(&seed.data);
            // The hand-made seeds are valid rules from the spec.
            let text = String::from_utf8_lossy(&seed.data);
            assert!(
                !seed.hand_made || crate::fwrule::parse(&text).is_ok(),
                "{text}"
            );
        }
        for (target, check) in [
            ("triton_predicate", triton_predicate as fn(&[u8])),
            ("http_signature", http_signature),
            ("presigned_url", presigned_url),
        ] {
            corpus::seed_bytes(target).iter().for_each(|d| check(d));
        }
    }

    proptest! {
        #[test]
        fn fwrule_never_panics(data in mutated("fwrule")) {
            fwrule(&data);
        }

        #[test]
        fn fwrule_takes_any_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
            fwrule(&data);
        }

        #[test]
        fn predicate_never_panics(data in mutated("triton_predicate")) {
            triton_predicate(&data);
        }

        #[test]
        fn deep_predicates_are_refused(depth in 0usize..5000) {
            let text = format!("{}{}", "{\"and\":[".repeat(depth), "]}".repeat(depth));
            triton_predicate(text.as_bytes());
        }

        #[test]
        fn signature_never_panics(data in mutated("http_signature")) {
            http_signature(&data);
        }

        #[test]
        fn presigned_never_panics(data in mutated("presigned_url")) {
            presigned_url(&data);
        }

        #[test]
        fn presigned_takes_any_text(text in "\\PC{0,200}") {
            presigned_url(text.as_bytes());
        }
    }
}
