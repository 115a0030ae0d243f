//! CreateMachine's placement rules: `affinity` (`instance==web`, `role!=db`,
//! `instance!=~/^foo/`, `container==x*`) and the deprecated `locality`
//! (`near`, `far`, `strict`), resolved against the account's machines to the
//! hypervisor primitive's node lists. Hard rules (`==`, `!=`, strict locality)
//! constrain the node; soft ones (`==~`, `!=~`, locality without `strict`) only
//! order the choice, so they never fail a create.

use std::collections::BTreeSet;

use serde_json::Value;
use tessera_sdk::hypervisor::{Placement, Vm};

use crate::compute::object;
use crate::errors::{ApiError, ApiResult};

/// What a rule's value is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The machine's name or id (`instance` or `container`).
    Instance,
    /// The value of the machine's tag of that name.
    Tag(String),
}

#[derive(Debug)]
pub enum Pattern {
    Exact(String),
    /// A `*`-glob.
    Glob(String),
    /// `/…/`.
    Regex(regex_lite::Regex),
}

impl Pattern {
    fn parse(text: &str) -> ApiResult<Pattern> {
        if text.len() >= 2 && text.starts_with('/') && text.ends_with('/') {
            let body = &text[1..text.len() - 1];
            return regex_lite::Regex::new(body)
                .map(Pattern::Regex)
                .map_err(|e| {
                    ApiError::invalid_argument(format!("invalid regular expression {text}: {e}"))
                });
        }
        if text.contains('*') {
            return Ok(Pattern::Glob(text.to_string()));
        }
        Ok(Pattern::Exact(text.to_string()))
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Exact(wanted) => wanted == text,
            Pattern::Glob(glob) => glob_match(glob, text),
            Pattern::Regex(regex) => regex.is_match(text),
        }
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob_match(glob: &str, text: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// One parsed rule.
#[derive(Debug)]
pub struct Rule {
    pub text: String,
    pub target: Target,
    /// `==`: with the matching machines; `!=`: away from them.
    pub together: bool,
    /// No `~`: the create fails when it cannot be met.
    pub hard: bool,
    pub pattern: Pattern,
}

impl Rule {
    pub fn parse(text: &str) -> ApiResult<Rule> {
        let invalid = || ApiError::invalid_argument(format!("invalid affinity rule {text:?}"));
        let at = [text.find("=="), text.find("!=")]
            .into_iter()
            .flatten()
            .min()
            .ok_or_else(invalid)?;
        let key = text[..at].trim();
        let together = &text[at..at + 2] == "==";
        let mut value = &text[at + 2..];
        let hard = !value.starts_with('~');
        if !hard {
            value = &value[1..];
        }
        let value = value.trim();
        if key.is_empty() || value.is_empty() {
            return Err(invalid());
        }
        let target = match key {
            "instance" | "container" => Target::Instance,
            tag => Target::Tag(tag.to_string()),
        };
        Ok(Rule {
            text: text.to_string(),
            target,
            together,
            hard,
            pattern: Pattern::parse(value)?,
        })
    }

    /// Whether the machine is one the rule names.
    pub fn names(&self, vm: &Vm) -> bool {
        match &self.target {
            Target::Instance => self.pattern.matches(&vm.name) || self.pattern.matches(&vm.id),
            Target::Tag(key) => object(&vm.tags).get(key).is_some_and(|value| {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                self.pattern.matches(&text)
            }),
        }
    }
}

/// `locality`: instance ids to be near or far from, strictly or not.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Locality {
    pub near: Vec<String>,
    pub far: Vec<String>,
    pub strict: bool,
}

impl Locality {
    pub fn parse(value: &Value) -> ApiResult<Locality> {
        let Value::Object(fields) = value else {
            return Err(ApiError::invalid_argument("locality must be an object"));
        };
        let ids = |key: &str| -> ApiResult<Vec<String>> {
            match fields.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                // One id may be given without an array.
                Some(Value::String(id)) => Ok(vec![id.clone()]),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| {
                        i.as_str().map(str::to_string).ok_or_else(|| {
                            ApiError::invalid_argument(format!("locality.{key} holds instance ids"))
                        })
                    })
                    .collect(),
                Some(_) => Err(ApiError::invalid_argument(format!(
                    "locality.{key} must be an id or a list of ids"
                ))),
            }
        };
        let strict = match fields.get("strict") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ApiError::invalid_argument("locality.strict is a boolean")),
        };
        Ok(Locality {
            near: ids("near")?,
            far: ids("far")?,
            strict,
        })
    }

    /// As affinity rules on instance ids.
    fn rules(&self) -> Vec<Rule> {
        let rule = |id: &String, together: bool| Rule {
            text: format!("locality {}", if together { "near" } else { "far" }),
            target: Target::Instance,
            together,
            hard: self.strict,
            pattern: Pattern::Exact(id.clone()),
        };
        let near = self.near.iter().map(|id| rule(id, true));
        near.chain(self.far.iter().map(|id| rule(id, false)))
            .collect()
    }
}

/// The placement of a machine of the account (`account_id`, or `login` for
/// machines owned by name) under `rules` and `locality`, resolved against
/// the account's live machines other than `moving` (a machine being
/// migrated). Without rules, Triton's default: spread the account's machines
/// over the nodes.
pub fn resolve(
    account_id: &str,
    login: &str,
    rules: &[Rule],
    locality: Option<&Locality>,
    moving: Option<&str>,
) -> ApiResult<Placement> {
    if rules.is_empty() && locality.is_none() {
        return Ok(Placement {
            only_nodes: Vec::new(),
            avoid_nodes: Vec::new(),
            prefer_nodes: Vec::new(),
            shun_nodes: Vec::new(),
            vm_id: None,
            spread: true,
            addresses: Vec::new(),
        });
    }
    let mut vms = crate::vms::of_account(account_id, login)?;
    vms.retain(|vm| Some(vm.id.as_str()) != moving);
    placement(rules, locality, &vms)
}

/// The node constraints for `rules` and `locality` over the account's
/// machines (`vms`: not deleted). `Err` with `InvalidArgument` when hard
/// rules leave no node (a `==` rule that names no machine, or two `==`
/// rules on different nodes).
pub fn placement(rules: &[Rule], locality: Option<&Locality>, vms: &[Vm]) -> ApiResult<Placement> {
    let mut only: Option<BTreeSet<String>> = None;
    let mut avoid = BTreeSet::new();
    let mut prefer = BTreeSet::new();
    let mut shun = BTreeSet::new();
    let from_locality = locality.map(Locality::rules).unwrap_or_default();
    for rule in rules.iter().chain(&from_locality) {
        let nodes: BTreeSet<String> = vms
            .iter()
            .filter(|vm| rule.names(vm))
            .filter_map(|vm| vm.node.clone())
            .collect();
        match (rule.hard, rule.together) {
            (true, true) => {
                if nodes.is_empty() {
                    return Err(no_room(&format!(
                        "no instance matches the affinity rule {:?}",
                        rule.text
                    )));
                }
                only = Some(match only {
                    None => nodes,
                    Some(before) => before.intersection(&nodes).cloned().collect(),
                });
            }
            (true, false) => avoid.extend(nodes),
            (false, true) => prefer.extend(nodes),
            (false, false) => shun.extend(nodes),
        }
    }
    if let Some(only) = &only
        && only.iter().all(|node| avoid.contains(node))
    {
        return Err(no_room("the hard affinity rules leave no server"));
    }
    Ok(Placement {
        only_nodes: only.unwrap_or_default().into_iter().collect(),
        avoid_nodes: avoid.into_iter().collect(),
        prefer_nodes: prefer.into_iter().collect(),
        shun_nodes: shun.into_iter().collect(),
        vm_id: None,
        spread: true,
        addresses: Vec::new(),
    })
}

fn no_room(why: &str) -> ApiError {
    ApiError::new(
        409,
        "InvalidArgument",
        format!("the affinity rules cannot be met: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str, node: &str, tags: &str) -> Vm {
        Vm {
            id: format!("id-{name}"),
            name: name.into(),
            owner: "a".into(),
            node: Some(node.into()),
            image: "i".into(),
            cpus: 1,
            ram_mib: 1,
            disk_mib: 1,
            state: tessera_sdk::hypervisor::VmState::Running,
            ips: Vec::new(),
            nics: Vec::new(),
            disks: Vec::new(),
            tags: tags.into(),
            metadata: "{}".into(),
            deletion_protection: false,
            created: 0,
            updated: 0,
            creator: "cloudapi".into(),
        }
    }

    fn rules(texts: &[&str]) -> Vec<Rule> {
        texts.iter().map(|t| Rule::parse(t).unwrap()).collect()
    }

    #[test]
    fn rules_parse_operators_softness_and_patterns() {
        let rule = Rule::parse("instance!=~/^foo/").unwrap();
        assert!(!rule.together && !rule.hard);
        assert!(rule.names(&vm("foobar", "n", "{}")));
        assert!(!rule.names(&vm("barfoo", "n", "{}")));
        let rule = Rule::parse("role==data*").unwrap();
        assert_eq!(rule.target, Target::Tag("role".into()));
        assert!(rule.together && rule.hard);
        assert!(rule.names(&vm("x", "n", r#"{"role":"database"}"#)));
        assert!(!rule.names(&vm("x", "n", r#"{"role":"web"}"#)));
        let rule = Rule::parse("container==id-web").unwrap();
        assert!(rule.names(&vm("web", "n", "{}")));
        for bad in ["instance", "==x", "instance==", "instance!=~", "a==/(/"] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob_match("foo*", "foo"));
        assert!(glob_match("*o*b*", "foobar"));
        assert!(glob_match("a*c", "abc"));
        assert!(!glob_match("a*c", "abd"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn hard_rules_constrain_and_soft_rules_order() {
        let vms = [
            vm("web1", "n1", r#"{"role":"web"}"#),
            vm("web2", "n2", r#"{"role":"web"}"#),
            vm("db", "n2", r#"{"role":"db"}"#),
        ];
        let p = placement(&rules(&["instance==web*", "role!=db"]), None, &vms).unwrap();
        assert_eq!(p.only_nodes, ["n1", "n2"]);
        assert_eq!(p.avoid_nodes, ["n2"]);
        let p = placement(&rules(&["instance==~db", "role!=~web"]), None, &vms).unwrap();
        assert!(p.only_nodes.is_empty() && p.avoid_nodes.is_empty());
        assert_eq!(
            (p.prefer_nodes, p.shun_nodes),
            (vec!["n2".into()], vec!["n1".into(), "n2".into()])
        );
        // A hard `==` that names nothing, or rules that exclude every choice, fail.
        assert!(placement(&rules(&["instance==nope"]), None, &vms).is_err());
        assert!(placement(&rules(&["instance==db", "role!=db"]), None, &vms).is_err());
        // A soft rule naming nothing is no constraint.
        assert!(placement(&rules(&["instance==~nope"]), None, &vms).is_ok());
    }

    #[test]
    fn locality_is_soft_unless_strict() {
        let vms = [vm("a", "n1", "{}"), vm("b", "n2", "{}")];
        let loose = Locality::parse(&serde_json::json!({"near": "id-a", "far": ["id-b"]})).unwrap();
        let p = placement(&[], Some(&loose), &vms).unwrap();
        assert_eq!(
            (p.prefer_nodes, p.shun_nodes),
            (vec!["n1".into()], vec!["n2".into()])
        );
        let strict =
            Locality::parse(&serde_json::json!({"far": ["id-a"], "strict": true})).unwrap();
        assert_eq!(
            placement(&[], Some(&strict), &vms).unwrap().avoid_nodes,
            ["n1"]
        );
        assert!(Locality::parse(&serde_json::json!({"near": 5})).is_err());
        assert!(Locality::parse(&serde_json::json!("x")).is_err());
    }
}
