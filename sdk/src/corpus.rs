//! The checked-in seed corpus of the fuzz targets (`fuzz/corpus/<target>/`),
//! for the property tests beside each parser: they replay the same inputs
//! the `cargo fuzz` targets start from and mutate them the way a fuzzer's
//! mutator does first. Native builds only (it reads the repository's files).

use std::path::PathBuf;

/// One file of a target's corpus.
pub struct Seed {
    /// Written by hand from a spec's example, not added by libFuzzer (which
    /// names what it finds by a 40-digit hex hash).
    pub hand_made: bool,
    pub path: PathBuf,
    pub data: Vec<u8>,
}

/// Every seed of `target`, sorted by file name. Panics when the folder is
/// missing or empty: a property test without its corpus must not pass.
pub fn seeds(target: &str) -> Vec<Seed> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable corpus folder").path())
        .collect();
    assert!(!paths.is_empty(), "{} is empty", dir.display());
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let found = name.len() == 40 && name.chars().all(|c| c.is_ascii_hexdigit());
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Seed {
                hand_made: !found,
                path,
                data,
            }
        })
        .collect()
}

/// Just the bytes of every seed of `target`.
pub fn seed_bytes(target: &str) -> Vec<Vec<u8>> {
    seeds(target).into_iter().map(|seed| seed.data).collect()
}

/// Seed number `pick` (modulo their count) with `cut` bytes at `at` (modulo
/// its length + 1) replaced by `insert`.
pub fn splice(seeds: &[Vec<u8>], pick: usize, at: usize, cut: usize, insert: &[u8]) -> Vec<u8> {
    let mut seed = seeds[pick % seeds.len()].clone();
    let at = at % (seed.len() + 1);
    let end = at.saturating_add(cut).min(seed.len());
    seed.splice(at..end, insert.iter().copied());
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splicing_stays_inside_the_seed() {
        let seeds = vec![b"abcdef".to_vec(), Vec::new()];
        assert_eq!(splice(&seeds, 0, 2, 2, b"XY"), b"abXYef");
        // The pick wraps (2 → 0), `at` wraps (100 % 7 = 2), the cut stops at the end.
        assert_eq!(splice(&seeds, 2, 100, 100, b"!"), b"ab!");
        assert_eq!(splice(&seeds, 1, 7, 3, b"z"), b"z");
    }

    #[test]
    fn the_multipart_corpus_has_hand_made_seeds() {
        assert!(seeds("multipart").iter().any(|s| s.hand_made));
    }
}
