//! Property tests of the site-config reader: whatever text an operator (or a
//! broken editor) hands it — the shipped examples mutated at random, or TOML
//! assembled from real keys with values of every type — parsing and
//! validation answer `Ok` or an error naming a key, and never panic.

use proptest::prelude::*;

use super::SiteConfig;

/// The checked-in seeds: the example sites of the repository.
const SEEDS: &[&str] = &[
    include_str!("../../../examples/site.toml"),
    include_str!("../../../examples/hello/site.toml"),
];

/// Keys the reader knows, at every level, with the table they live in.
const KEYS: &[(&str, &str)] = &[
    ("", "listen"),
    ("", "data_dir"),
    ("", "log"),
    ("limits", "time_budget_ms"),
    ("limits", "memory_mib"),
    ("limits", "body_limit_bytes"),
    ("limits", "response_limit_bytes"),
    ("limits", "log_lines_per_call"),
    ("runtime", "max_instances"),
    ("runtime", "compile_cache"),
    ("jobs", "workers"),
    ("jobs", "lease_secs"),
    ("auth", "max_failures"),
    ("hypervisor", "backend"),
    ("hypervisor.sim", "transition_delay_ms"),
    ("hypervisor.qemu", "accel"),
    ("plugins.p", "source"),
    ("plugins.p", "mounts"),
    ("plugins.p", "grants"),
    ("plugins.p", "enabled"),
    ("plugins.p.limits", "time_budget_ms"),
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "[a-z/:.0-9 -]{0,12}".prop_map(|s| format!("{s:?}")),
        prop::collection::vec("[a-z/ ]{0,6}", 0..3).prop_map(|v| format!("{v:?}")),
        Just("1.5".to_string()),
        Just("{}".to_string()),
    ]
}

fn assembled() -> impl Strategy<Value = String> {
    prop::collection::vec((0..KEYS.len(), value()), 0..12).prop_map(|entries| {
        let mut by_table: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for (key, value) in entries {
            let (table, name) = KEYS[key];
            by_table
                .entry(table)
                .or_default()
                .push(format!("{name} = {value}"));
        }
        let mut text = String::new();
        for (table, lines) in by_table {
            if !table.is_empty() {
                text += &format!("[{table}]\n");
            }
            for line in lines {
                text += &line;
                text.push('\n');
            }
        }
        text
    })
}

/// A seed with a random range replaced by random text.
fn mutated() -> impl Strategy<Value = String> {
    (
        0..SEEDS.len(),
        any::<prop::sample::Index>(),
        0..40usize,
        "\\PC{0,16}",
    )
        .prop_map(|(seed, at, len, insert)| {
            let seed = SEEDS[seed];
            let mut start = at.index(seed.len().max(1));
            while !seed.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (start + len).min(seed.len());
            while !seed.is_char_boundary(end) {
                end += 1;
            }
            format!("{}{insert}{}", &seed[..start], &seed[end..])
        })
}

fn read(text: &str) {
    if let Ok(site) = SiteConfig::parse(text, "fuzz.toml")
        && let Err(e) = site.validate()
    {
        assert!(!e.key.is_empty(), "an error names its key: {e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_read_or_refused(text in "\\PC{0,200}") {
        read(&text);
    }

    #[test]
    fn assembled_configs_are_read_or_refused(text in assembled()) {
        read(&text);
    }

    #[test]
    fn mutated_examples_are_read_or_refused(text in mutated()) {
        read(&text);
    }
}

#[test]
fn the_seeds_themselves_are_valid() {
    for seed in SEEDS {
        let site = SiteConfig::parse(seed, "seed.toml").unwrap();
        site.validate().unwrap();
    }
}
