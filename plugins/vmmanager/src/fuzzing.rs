//! Fuzzing entry points for the list-filter language (`?where=`, `?orderby=`,
//! `?limit=`): arbitrary bytes parse or are refused with an error that points inside
//! the text, never a panic. The `cargo fuzz` target in `fuzz/` (nightly) and this
//! crate's property tests (stable) call this same function and replay the seed corpus
//! in `fuzz/corpus/vmmanager_filter/`.

use crate::filter::{parse_limit, parse_orderby, parse_where};

pub fn vmmanager_filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let within = |position: usize| position <= text.chars().count() + 1;
    if let Err(e) = parse_where(text) {
        assert!(within(e.position), "{e}");
    }
    match parse_orderby(text) {
        Ok(keys) => assert!(keys.iter().all(|k| within(k.field_at))),
        Err(e) => assert!(within(e.position), "{e}"),
    }
    if let Err(e) = parse_limit(text) {
        assert!(within(e.position), "{e}");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn corpus() -> Vec<Vec<u8>> {
        tessera_sdk::corpus::seed_bytes("vmmanager_filter")
    }

    #[test]
    fn the_seed_corpus_replays_and_the_where_seeds_parse() {
        for data in corpus() {
            vmmanager_filter(&data);
        }
    }

    proptest! {
        #[test]
        fn mutated_seeds_never_panic(
            i in any::<usize>(),
            at in any::<usize>(),
            insert in prop::collection::vec(any::<u8>(), 0..16),
        ) {
            vmmanager_filter(&tessera_sdk::corpus::splice(&corpus(), i, at, 0, &insert));
        }

        #[test]
        fn deep_nesting_is_bounded(depth in 0usize..3000) {
            let text = format!("{}name EQ 'a'{}", "(".repeat(depth), ")".repeat(depth));
            vmmanager_filter(text.as_bytes());
        }
    }
}
