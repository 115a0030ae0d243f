//! API version negotiation: node-semver ranges as restify reads `Accept-Version`
//! (`~9||~8`, `~7.2`, `7.0.0`, `*`, `>=8 <9`, `8.x`, `^8.1.0`, `8.0.0 - 9`), matched against
//! the API versions this server speaks.
//!
//! Written here rather than taken from the `semver` crate's `VersionReq`, whose syntax is
//! Cargo's: it has no `||`, and reads a bare `7.0.0` as `^7.0.0` where node reads `=7.0.0`.

use semver::Version;

/// The API versions served, oldest first (the ping endpoint lists them).
pub const API_VERSIONS: [&str; 6] = ["7.0.0", "7.1.0", "7.2.0", "7.3.0", "8.0.0", "9.0.0"];
/// The server's own code version, in the `Server` header.
pub const SERVER_VERSION: &str = "9.20.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Comparator {
    op: Op,
    version: Version,
}

/// A parsed range: any of the alternatives, each a conjunction of comparators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range(Vec<Vec<Comparator>>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError(pub String);

/// A version with `*`/`x` parts missing: `8`, `8.1`, `8.1.2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Partial {
    major: Option<u64>,
    minor: Option<u64>,
    patch: Option<u64>,
}

impl Partial {
    fn floor(self) -> Version {
        Version::new(
            self.major.unwrap_or(0),
            self.minor.unwrap_or(0),
            self.patch.unwrap_or(0),
        )
    }

    /// The first version above every version this partial names (`8` → `9.0.0`,
    /// `8.1` → `8.2.0`); `None` for `*` or a full version.
    fn ceiling(self) -> Option<Version> {
        match (self.major, self.minor, self.patch) {
            (Some(major), None, _) => Some(Version::new(major + 1, 0, 0)),
            (Some(major), Some(minor), None) => Some(Version::new(major, minor + 1, 0)),
            _ => None,
        }
    }

    fn is_full(self) -> bool {
        self.patch.is_some()
    }
}

impl Range {
    pub fn parse(text: &str) -> Result<Range, RangeError> {
        let alternatives = text
            .split("||")
            .map(parse_conjunction)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Range(alternatives))
    }

    pub fn matches(&self, version: &Version) -> bool {
        self.0.iter().any(|all| {
            all.iter().all(|c| match c.op {
                Op::Lt => version < &c.version,
                Op::Le => version <= &c.version,
                Op::Gt => version > &c.version,
                Op::Ge => version >= &c.version,
                Op::Eq => version == &c.version,
            })
        })
    }
}

/// The highest served version in the range, as restify picks it.
pub fn negotiate(range: &str) -> Result<&'static str, RangeError> {
    let range = Range::parse(range)?;
    API_VERSIONS
        .iter()
        .rev()
        .find(|v| Version::parse(v).is_ok_and(|v| range.matches(&v)))
        .copied()
        .ok_or_else(|| RangeError("no served version satisfies the range".into()))
}

fn parse_conjunction(text: &str) -> Result<Vec<Comparator>, RangeError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return Ok(vec![at_least(Version::new(0, 0, 0))]);
    }
    if let [from, "-", to] = words.as_slice() {
        let (from, to) = (parse_partial(from)?, parse_partial(to)?);
        let mut out = vec![at_least(from.floor())];
        out.push(match to.ceiling() {
            Some(ceiling) => less_than(ceiling),
            None if to.major.is_none() => return Ok(out),
            None => Comparator {
                op: Op::Le,
                version: to.floor(),
            },
        });
        return Ok(out);
    }
    let mut out = Vec::new();
    let mut words = words.into_iter().peekable();
    while let Some(word) = words.next() {
        // `>= 8` with a space after the operator.
        let word = if matches!(word, ">" | ">=" | "<" | "<=" | "=" | "~" | "^") {
            let next = words
                .next()
                .ok_or_else(|| RangeError(format!("{word} needs a version")))?;
            format!("{word}{next}")
        } else {
            word.to_string()
        };
        out.extend(parse_simple(&word)?);
    }
    Ok(out)
}

fn at_least(version: Version) -> Comparator {
    Comparator {
        op: Op::Ge,
        version,
    }
}

fn less_than(version: Version) -> Comparator {
    Comparator {
        op: Op::Lt,
        version,
    }
}

fn parse_simple(word: &str) -> Result<Vec<Comparator>, RangeError> {
    for (prefix, op) in [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)] {
        if let Some(rest) = word.strip_prefix(prefix) {
            return Ok(primitive(op, parse_partial(rest)?));
        }
    }
    if let Some(rest) = word.strip_prefix('~') {
        let rest = rest.strip_prefix('>').unwrap_or(rest);
        let p = parse_partial(rest)?;
        let ceiling = match (p.major, p.minor) {
            (Some(major), None) => Some(Version::new(major + 1, 0, 0)),
            (Some(major), Some(minor)) => Some(Version::new(major, minor + 1, 0)),
            (None, _) => None,
        };
        return Ok(bounded(p.floor(), ceiling));
    }
    if let Some(rest) = word.strip_prefix('^') {
        let p = parse_partial(rest)?;
        let ceiling = match (p.major, p.minor, p.patch) {
            (None, _, _) => None,
            (Some(0), Some(0), Some(patch)) => Some(Version::new(0, 0, patch + 1)),
            (Some(0), Some(minor), _) => Some(Version::new(0, minor + 1, 0)),
            (Some(major), _, _) => Some(Version::new(major + 1, 0, 0)),
        };
        return Ok(bounded(p.floor(), ceiling));
    }
    let p = parse_partial(word.strip_prefix('=').unwrap_or(word))?;
    if p.is_full() {
        return Ok(vec![Comparator {
            op: Op::Eq,
            version: p.floor(),
        }]);
    }
    Ok(bounded(p.floor(), p.ceiling()))
}

fn bounded(floor: Version, ceiling: Option<Version>) -> Vec<Comparator> {
    let mut out = vec![at_least(floor)];
    out.extend(ceiling.map(less_than));
    out
}

/// `>`, `<`, `>=`, `<=` with a partial version, as node-semver desugars them.
fn primitive(op: Op, p: Partial) -> Vec<Comparator> {
    if p.major.is_none() {
        return match op {
            // `<*` matches nothing.
            Op::Lt | Op::Gt => vec![less_than(Version::new(0, 0, 0))],
            _ => vec![at_least(Version::new(0, 0, 0))],
        };
    }
    let version = match (op, p.ceiling()) {
        (Op::Gt, Some(ceiling)) => return vec![at_least(ceiling)],
        (Op::Le, Some(ceiling)) => return vec![less_than(ceiling)],
        _ => p.floor(),
    };
    vec![Comparator { op, version }]
}

fn parse_partial(text: &str) -> Result<Partial, RangeError> {
    let text = text.strip_prefix('v').unwrap_or(text);
    // Build metadata and pre-release tags are ignored: no served version has one.
    let text = text.split(['+', '-']).next().unwrap_or(text);
    let bad = || RangeError(format!("{text:?} is not a version"));
    if text.is_empty() {
        return Err(bad());
    }
    let mut parts = text.split('.');
    let mut next = || -> Result<Option<u64>, RangeError> {
        match parts.next() {
            None | Some("x" | "X" | "*") => Ok(None),
            Some(n) if !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()) => {
                n.parse().map(Some).map_err(|_| bad())
            }
            Some(_) => Err(bad()),
        }
    };
    let major = next()?;
    let minor = major.map(|_| next()).transpose()?.flatten();
    let patch = minor.map(|_| next()).transpose()?.flatten();
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(Partial {
        major,
        minor,
        patch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(range: &str) -> Option<&'static str> {
        negotiate(range).ok()
    }

    #[test]
    fn the_ranges_real_clients_send_pick_the_highest_served_version() {
        assert_eq!(picks("~9||~8"), Some("9.0.0"));
        assert_eq!(picks("~8||~7"), Some("8.0.0"));
        assert_eq!(picks("~8"), Some("8.0.0"));
        assert_eq!(picks("~7.2"), Some("7.2.0"));
        assert_eq!(picks("*"), Some("9.0.0"));
        assert_eq!(picks(""), Some("9.0.0"));
    }

    #[test]
    fn a_bare_full_version_is_exact_as_in_node() {
        assert_eq!(picks("7.0.0"), Some("7.0.0"));
        assert_eq!(picks("=8.0.0"), Some("8.0.0"));
        assert_eq!(picks("7.0.1"), None);
        assert_eq!(picks("7"), Some("7.3.0"));
        assert_eq!(picks("7.1.x"), Some("7.1.0"));
    }

    #[test]
    fn comparators_carets_and_hyphens() {
        assert_eq!(picks(">=8 <9"), Some("8.0.0"));
        assert_eq!(picks(">= 7.1.0 < 7.3"), Some("7.2.0"));
        assert_eq!(picks("^7.1.0"), Some("7.3.0"));
        assert_eq!(picks("7.0.0 - 7.2"), Some("7.2.0"));
        assert_eq!(picks(">8"), Some("9.0.0"));
        assert_eq!(picks("<=7"), Some("7.3.0"));
        assert_eq!(picks("<7"), None);
    }

    #[test]
    fn unsatisfiable_or_malformed_ranges_are_refused() {
        assert_eq!(picks("~10"), None);
        assert_eq!(picks("~6||~10"), None);
        for bad in ["abc", "~", "1.2.3.4", "~9||foo", ">=", "9.a"] {
            assert!(Range::parse(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any text is a range or an error, never a panic.
        #[test]
        fn any_text_negotiates_or_is_refused(text in "\\PC{0,40}") {
            let _ = negotiate(&text);
        }

        /// An exact version, its tilde and its major pick a served version inside them.
        #[test]
        fn served_versions_are_found_by_their_own_ranges(i in 0..API_VERSIONS.len()) {
            let v = API_VERSIONS[i];
            prop_assert_eq!(negotiate(v).ok(), Some(v));
            prop_assert_eq!(negotiate(&format!("={v}")).ok(), Some(v));
            let major = &v[..1];
            let picked = negotiate(&format!("~{major}")).unwrap();
            prop_assert!(picked.starts_with(major) && picked >= v);
        }
    }
}
