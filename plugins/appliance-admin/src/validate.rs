//! The spec's validation rules for network settings and storage options:
//! each field has a character class and a length range.

use serde_json::{Map, Value};

/// Which characters a field may hold.
#[derive(Debug, Clone, Copy)]
enum Chars {
    /// `a-zA-Z0-9` plus these.
    Alnum(&'static str),
    /// `abcdefABCDEF0123456789` plus these (IPv4 and IPv6 addresses).
    Hex(&'static str),
    /// `0-9` plus these.
    Digits(&'static str),
    /// Printable ASCII 33-126.
    Printable,
}

impl Chars {
    fn allows(self, c: char) -> bool {
        match self {
            Chars::Alnum(extra) => c.is_ascii_alphanumeric() || extra.contains(c),
            Chars::Hex(extra) => c.is_ascii_hexdigit() || extra.contains(c),
            Chars::Digits(extra) => c.is_ascii_digit() || extra.contains(c),
            Chars::Printable => ('!'..='~').contains(&c),
        }
    }
}

/// One field's rule.
#[derive(Debug, Clone, Copy)]
struct Rule {
    name: &'static str,
    required: bool,
    chars: Chars,
    min: usize,
    max: usize,
}

const fn rule(name: &'static str, required: bool, chars: Chars, min: usize, max: usize) -> Rule {
    Rule {
        name,
        required,
        chars,
        min,
        max,
    }
}

const IP: Chars = Chars::Hex(".:");

const NETWORK: &[Rule] = &[
    rule("interface", true, Chars::Alnum(""), 3, 14),
    rule("hostname", true, Chars::Alnum(".-"), 3, 255),
    rule("ip_address", false, IP, 3, 45),
    rule("netmask", false, Chars::Hex(".:/"), 2, 45),
    rule("gateway", false, IP, 3, 45),
    rule("dns1", false, IP, 3, 45),
    rule("dns2", false, IP, 3, 45),
    rule("ntpserver", false, Chars::Alnum(".-:"), 3, 255),
];

const NFS: &[Rule] = &[
    rule("mount_options", true, Chars::Alnum(".-=,"), 3, 255),
    rule("ip", true, IP, 3, 45),
    rule("share", true, Chars::Alnum(".-_/"), 3, 255),
];
const AOE: &[Rule] = &[rule("device", true, Chars::Alnum(".-"), 3, 255)];
const ISCSI: &[Rule] = &[
    rule("target", true, Chars::Alnum(".-_:"), 3, 255),
    rule("ip", true, IP, 3, 45),
    rule("username", true, Chars::Printable, 3, 255),
    rule("password", true, Chars::Printable, 3, 255),
];
const NBD: &[Rule] = &[
    rule("export_name", true, Chars::Alnum(".-_/"), 3, 255),
    rule("ip", true, IP, 3, 45),
    rule("port", true, Chars::Digits(".-_/"), 1, 5),
];

fn check(object: &Map<String, Value>, rules: &[Rule], section: &str) -> Result<(), String> {
    for rule in rules {
        let value = match object.get(rule.name) {
            None | Some(Value::Null) if !rule.required => continue,
            None | Some(Value::Null) => return Err(format!("{section}.{} is required", rule.name)),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(format!("{section}.{} must be a string", rule.name)),
        };
        let len = value.chars().count();
        if len < rule.min || len > rule.max {
            return Err(format!(
                "{section}.{} must be between {} and {} characters",
                rule.name, rule.min, rule.max
            ));
        }
        if let Some(bad) = value.chars().find(|c| !rule.chars.allows(*c)) {
            return Err(format!(
                "{section}.{} has an invalid character {bad:?}",
                rule.name
            ));
        }
    }
    Ok(())
}

/// A settings.json for `POST /settings`: `network` (checked) and `app` (an object).
pub fn network_settings(doc: &Value) -> Result<(), String> {
    let root = doc.as_object().ok_or("settings must be a JSON object")?;
    let network = root
        .get("network")
        .and_then(Value::as_object)
        .ok_or("settings.network must be an object")?;
    check(network, NETWORK, "network")?;
    match root.get("app") {
        None | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err("settings.app must be an object".into()),
    }
}

/// A settings.json for `POST /storage`, against the storage types offered.
pub fn storage_settings(doc: &Value, options: &[String]) -> Result<(), String> {
    let storage = doc
        .get("storage")
        .and_then(Value::as_object)
        .ok_or("settings.storage must be an object")?;
    let kind = match storage.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err("storage.type must be a string".into()),
        None => return Err("storage.type is required".into()),
    };
    if !options.iter().any(|o| o == kind) {
        return Err(format!(
            "storage.type must be one of: {}",
            options.join(", ")
        ));
    }
    let rules = match kind {
        "local" => &[][..],
        "nfs" => NFS,
        "aoe" => AOE,
        "iscsi" => ISCSI,
        "nbd" => NBD,
        other => return Err(format!("storage.type {other:?} is unknown")),
    };
    check(storage, rules, "storage")
}

/// A new API token: 1-255 printable ASCII characters (33-126).
pub fn token(value: &str) -> Result<(), String> {
    let len = value.len();
    if !(1..=255).contains(&len) {
        return Err("newtoken must be between 1 and 255 characters".into());
    }
    if !value.chars().all(|c| Chars::Printable.allows(c)) {
        return Err("newtoken must hold printable ASCII characters (33-126) only".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn net(field: &str, value: Value) -> Result<(), String> {
        let mut network = json!({"interface": "eth0", "hostname": "test.host"});
        network[field] = value;
        network_settings(&json!({ "network": network, "app": {"name": "x"} }))
    }

    #[test]
    fn the_spec_examples_are_valid() {
        network_settings(&json!({"network": {
            "interface": "eth0", "hostname": "test.host", "ip_address": "192.168.1.100",
            "netmask": "255.255.255.0", "gateway": "192.168.1.1", "dns1": "192.168.1.2",
            "dns2": "192.168.1.3", "ntpserver": "pool.ntp.org"}, "app": {"name": "testapp"}}))
        .unwrap();
        network_settings(&json!({"network": {"interface": "eth0", "hostname": "test.host"}}))
            .unwrap();
        net("ip_address", json!("fe80::1")).unwrap();
        net("netmask", json!("64")).unwrap();
        net("netmask", json!("/64")).unwrap();
        let all = ["local", "nfs", "aoe", "iscsi", "nbd"].map(String::from);
        for doc in [
            json!({"storage": {"type": "local"}}),
            json!({"storage": {"type": "nfs", "mount_options": "noacl,sync", "ip": "192.168.1.100", "share": "/nfs/storage"}}),
            json!({"storage": {"type": "aoe", "device": "e0.1"}}),
            json!({"storage": {"type": "iscsi", "target": "iqn.2016-01.com.example:storage.lun1", "ip": "192.168.1.100", "username": "user", "password": "pass"}}),
            json!({"storage": {"type": "nbd", "export_name": "otherexport", "ip": "192.168.1.100", "port": "1043"}}),
        ] {
            storage_settings(&doc, &all).unwrap();
        }
    }

    #[test]
    fn each_network_rule_is_enforced() {
        let long = |n: usize| json!("a".repeat(n));
        // interface: required, alnum, 3-14
        assert!(network_settings(&json!({"network": {"hostname": "test.host"}})).is_err());
        assert!(net("interface", json!("et")).is_err());
        assert!(net("interface", long(15)).is_err());
        assert!(net("interface", json!("eth-0")).is_err());
        net("interface", long(14)).unwrap();
        // hostname: required, alnum + .-, 3-255
        assert!(network_settings(&json!({"network": {"interface": "eth0"}})).is_err());
        assert!(net("hostname", json!("ab")).is_err());
        assert!(net("hostname", long(256)).is_err());
        assert!(net("hostname", json!("a_b.host")).is_err());
        net("hostname", long(255)).unwrap();
        // addresses: hex + .:, 3-45
        for field in ["ip_address", "gateway", "dns1", "dns2"] {
            assert!(net(field, json!("1.")).is_err(), "{field}");
            assert!(net(field, json!("1".repeat(46))).is_err(), "{field}");
            assert!(net(field, json!("192.168.1.g")).is_err(), "{field}");
            assert!(net(field, json!("10.0.0.1/8")).is_err(), "{field}");
            assert!(net(field, json!(17)).is_err(), "{field}");
            net(field, json!("1.1")).unwrap();
        }
        // netmask: hex + .:/, 2-45
        assert!(net("netmask", json!("8")).is_err());
        assert!(net("netmask", json!("1".repeat(46))).is_err());
        assert!(net("netmask", json!("255.255.255.x")).is_err());
        // ntpserver: alnum + .-:, 3-255
        assert!(net("ntpserver", json!("ab")).is_err());
        assert!(net("ntpserver", long(256)).is_err());
        assert!(net("ntpserver", json!("pool ntp")).is_err());
        net("ntpserver", json!("ntp-1.example:123")).unwrap();
        // app must be an object; the document must have network
        assert!(
            network_settings(
                &json!({"network": {"interface": "eth0", "hostname": "h.x"}, "app": 3})
            )
            .is_err()
        );
        assert!(network_settings(&json!({"app": {}})).is_err());
        assert!(network_settings(&json!([1])).is_err());
    }

    #[test]
    fn each_storage_rule_is_enforced() {
        let all = ["local", "nfs", "aoe", "iscsi", "nbd"].map(String::from);
        let with = |mut base: Value, field: &str, value: Value| {
            base["storage"][field] = value;
            storage_settings(&base, &all)
        };
        let nfs = json!({"storage": {"type": "nfs", "mount_options": "noacl,sync", "ip": "10.0.0.1", "share": "/nfs/s"}});
        let aoe = json!({"storage": {"type": "aoe", "device": "e0.1"}});
        let iscsi = json!({"storage": {"type": "iscsi", "target": "iqn.x:y", "ip": "10.0.0.1", "username": "user", "password": "pass"}});
        let nbd = json!({"storage": {"type": "nbd", "export_name": "exp", "ip": "10.0.0.1", "port": "1043"}});
        assert!(storage_settings(&json!({"storage": {"type": "floppy"}}), &all).is_err());
        assert!(storage_settings(&json!({"storage": {}}), &all).is_err());
        assert!(
            storage_settings(&json!({"storage": {"type": "nfs"}}), &["local".to_string()]).is_err()
        );
        for (base, field, bad, good) in [
            (
                &nfs,
                "mount_options",
                vec![json!("ab"), json!("a".repeat(256)), json!("no acl")],
                json!("rw,vers=4.1"),
            ),
            (
                &nfs,
                "ip",
                vec![json!("10"), json!("1".repeat(46)), json!("host.name")],
                json!("::1"),
            ),
            (
                &nfs,
                "share",
                vec![json!("/a"), json!("a".repeat(256)), json!("/nfs:x")],
                json!("/nfs/a_b-c.d"),
            ),
            (
                &aoe,
                "device",
                vec![json!("e0"), json!("a".repeat(256)), json!("e0_1")],
                json!("e0.1-a"),
            ),
            (
                &iscsi,
                "target",
                vec![json!("iq"), json!("a".repeat(256)), json!("iqn/x")],
                json!("iqn.2016-01.com.ex:s_1"),
            ),
            (
                &iscsi,
                "ip",
                vec![json!("1."), json!("zz.0.0.1")],
                json!("10.0.0.2"),
            ),
            (
                &iscsi,
                "username",
                vec![json!("ab"), json!("a".repeat(256)), json!("a user")],
                json!("u$er!"),
            ),
            (
                &iscsi,
                "password",
                vec![
                    json!("ab"),
                    json!("a".repeat(256)),
                    json!("pa ss"),
                    json!("pässword"),
                ],
                json!("p@ss~"),
            ),
            (
                &nbd,
                "export_name",
                vec![json!("ex"), json!("a".repeat(256)), json!("ex:port")],
                json!("a/b_c"),
            ),
            (
                &nbd,
                "ip",
                vec![json!("1."), json!("10.0.0.q")],
                json!("10.0.0.3"),
            ),
            (
                &nbd,
                "port",
                vec![json!(""), json!("123456"), json!("80a"), json!(80)],
                json!("8"),
            ),
        ] {
            for value in bad {
                assert!(
                    with(base.clone(), field, value.clone()).is_err(),
                    "{field} = {value}"
                );
            }
            with(base.clone(), field, good.clone())
                .unwrap_or_else(|e| panic!("{field} = {good}: {e}"));
            let mut missing = base.clone();
            missing["storage"].as_object_mut().unwrap().remove(field);
            assert!(storage_settings(&missing, &all).is_err(), "{field} missing");
        }
    }

    #[test]
    fn tokens_are_1_to_255_printable_characters() {
        token("x").unwrap();
        token(&"~".repeat(255)).unwrap();
        assert!(token("").is_err());
        assert!(token(&"a".repeat(256)).is_err());
        assert!(token("has space").is_err());
        assert!(token("tab\there").is_err());
        assert!(token("é").is_err());
    }
}
