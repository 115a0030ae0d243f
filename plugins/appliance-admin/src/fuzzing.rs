//! Fuzzing entry points for the admin API's validators: `settings.json` for
//! `POST /settings` and `POST /storage`, and `newtoken`. Arbitrary bytes are accepted
//! or refused with a message, never a panic. The `cargo fuzz` target in `fuzz/`
//! (nightly) and this crate's property tests (stable) call this same function and
//! replay the seed corpus in `fuzz/corpus/appliance_settings/`.

use crate::validate;

const STORAGE_TYPES: [&str; 5] = ["local", "nfs", "aoe", "iscsi", "nbd"];

pub fn appliance_settings(data: &[u8]) {
    let options: Vec<String> = STORAGE_TYPES.iter().map(|s| s.to_string()).collect();
    if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = validate::network_settings(&doc);
        if validate::storage_settings(&doc, &options).is_ok() {
            let kind = doc["storage"]["type"].as_str().unwrap_or_default();
            assert!(STORAGE_TYPES.contains(&kind), "{kind}");
        }
    }
    let text = String::from_utf8_lossy(data);
    if validate::token(&text).is_ok() {
        assert!((1..=255).contains(&text.len()));
        assert!(text.bytes().all(|b| (33..=126).contains(&b)));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn corpus() -> Vec<Vec<u8>> {
        tessera_sdk::corpus::seed_bytes("appliance_settings")
    }

    #[test]
    fn the_seed_corpus_replays() {
        for data in corpus() {
            appliance_settings(&data);
        }
    }

    /// JSON values of any shape, a few levels deep.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "\\PC{0,40}".prop_map(serde_json::Value::from),
            prop::sample::select(vec!["local", "nfs", "aoe", "iscsi", "nbd", "eth0"])
                .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "network",
                    "storage",
                    "app",
                    "type",
                    "interface",
                    "hostname",
                    "ip",
                    "server",
                    "path",
                    "device",
                    "target",
                    "export",
                ])
                .prop_map(String::from),
                inner,
                0..6,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
        })
    }

    proptest! {
        #[test]
        fn any_json_is_validated_without_panic(doc in json()) {
            appliance_settings(doc.to_string().as_bytes());
        }

        #[test]
        fn mutated_seeds_never_panic(
            i in any::<usize>(),
            at in any::<usize>(),
            insert in prop::collection::vec(any::<u8>(), 0..16),
        ) {
            appliance_settings(&tessera_sdk::corpus::splice(&corpus(), i, at, 0, &insert));
        }
    }
}
