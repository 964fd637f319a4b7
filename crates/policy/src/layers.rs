//! The policy's levels and where each effective setting comes from.
//!
//! Settings inherit setting by setting: factory defaults, then global, then
//! the recipient's domain (the exact domain, else the longest `*.` wildcard
//! that matches), then the recipient's own address. Each level may come from
//! the TOML file (`[policy]`, `[policy.domains."..."]`,
//! `[policy.users."..."]`) and from the store (`sealgate policy set`); a
//! store value overrides the file's value for the same level and setting.
//! [`overlay`] merges the store's rows into the file's configuration (the
//! one the decisions are made from); [`explain`] says, for one address,
//! every effective setting and the level it came from.
//!
//! Values are JSON as the file's TOML would hold them (`"mandatory"`,
//! `["pgp", "smime"]`, `true`); [`parse_value`] reads what an admin types
//! and checks it with the same types the file is read with, so the error
//! names the valid choices.

use crate::config::{DomainPolicy, PolicyConfig};
use crate::decide::{canonical_address, canonical_domain_key};
use serde_json::{Map, Value};

/// The settings a level may set, in the order `policy show` lists them.
pub const SETTINGS: &[&str] = &[
    "mode",
    "methods",
    "smime_cipher",
    "smime_rsa_padding",
    "on_source_error",
    "no_key_action",
    "foreign_encryption",
    "auto_select",
    "additional_certificates",
    "additional_pgp_keys",
    "sign",
    "sign_unavailable",
    "trigger_subject",
    "trigger_header",
    "trigger_keep_subject",
    "copy_per_recipient",
    "header_protection",
    "header_protection_outer_subject",
    "dkim_sign",
];

/// Settings whose values add up across levels instead of replacing.
const ADDITIVE: &[&str] = &["additional_certificates", "additional_pgp_keys"];

/// Settings that are lists (an admin may type `pgp,smime`).
const LISTS: &[&str] = &["methods", "additional_certificates", "additional_pgp_keys"];

/// Where a setting is set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Global,
    /// `example.com` or `*.example.com`, canonical.
    Domain(String),
    /// An address, canonical.
    User(String),
}

impl Scope {
    /// `global`, `@example.com` (or `example.com`, `*.example.com`) or
    /// `user@example.com`.
    pub fn parse(text: &str) -> Result<Scope, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("global") {
            return Ok(Scope::Global);
        }
        if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{text:?} is not a scope: give global, @domain (or *.domain) or an address"
            ));
        }
        let domain = |d: &str| -> Result<Scope, String> {
            let bare = d.strip_prefix("*.").unwrap_or(d);
            if bare.is_empty() || bare.contains(['*', '@']) || bare.starts_with('.') {
                return Err(format!("{text:?} is not a domain or *.domain wildcard"));
            }
            Ok(Scope::Domain(canonical_domain_key(d)))
        };
        match t.strip_prefix('@') {
            Some(d) => domain(d),
            None => match t.rsplit_once('@') {
                Some((local, d)) if !local.is_empty() && !d.is_empty() && !d.contains('*') => {
                    Ok(Scope::User(canonical_address(t)))
                }
                Some(_) => Err(format!("{text:?} is not an address (user@domain)")),
                None => domain(t),
            },
        }
    }

    /// The form rows are stored under.
    pub fn key(&self) -> String {
        match self {
            Scope::Global => "global".into(),
            Scope::Domain(d) | Scope::User(d) => d.clone(),
        }
    }

    /// For messages: `global`, `domain example.com`, `user a@example.com`.
    pub fn describe(&self) -> String {
        match self {
            Scope::Global => "global".into(),
            Scope::Domain(d) => format!("domain {d}"),
            Scope::User(a) => format!("user {a}"),
        }
    }

    /// The scope of a stored row's key.
    fn of_key(key: &str) -> Scope {
        if key == "global" {
            Scope::Global
        } else if key.contains('@') {
            Scope::User(key.to_string())
        } else {
            Scope::Domain(key.to_string())
        }
    }
}

/// `raw` as the JSON value of setting `name`, checked. A bare word is a
/// string; a list setting also takes `a,b`.
pub fn parse_value(name: &str, raw: &str) -> Result<Value, String> {
    if !SETTINGS.contains(&name) {
        return Err(format!(
            "{name:?} is not a policy setting; the settings are: {}",
            SETTINGS.join(", ")
        ));
    }
    let raw = raw.trim();
    let mut value = serde_json::from_str::<Value>(raw).unwrap_or(Value::String(raw.into()));
    if LISTS.contains(&name) {
        if let Value::String(s) = &value {
            value = Value::Array(
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.into()))
                    .collect(),
            );
        }
    }
    let mut one = Map::new();
    one.insert(name.to_string(), value.clone());
    let parsed = serde_json::from_value::<DomainPolicy>(Value::Object(one))
        .map_err(|e| format!("{name}: {e}"))?;
    if let Some(s) = &parsed.header_protection_outer_subject {
        crate::config::valid_outer_subject(s).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(value)
}

/// A stored row: scope key, setting name, JSON value.
pub type Row<'a> = (&'a str, &'a str, &'a str);

/// The file's configuration with the store's rows over it, level by level.
/// A row that does not read (a setting this version does not know, a bad
/// value) is an error naming it.
pub fn overlay(file: &PolicyConfig, rows: &[Row<'_>]) -> Result<PolicyConfig, String> {
    let mut whole = object(serde_json::to_value(file).map_err(|e| e.to_string())?);
    for (scope, name, value) in rows {
        let what = || format!("the stored policy setting {name} of {scope}");
        let v: Value = serde_json::from_str(value).map_err(|e| format!("{}: {e}", what()))?;
        parse_value(name, &v.to_string()).map_err(|e| format!("{}: {e}", what()))?;
        match Scope::of_key(scope) {
            Scope::Global => {
                whole.insert(name.to_string(), v);
            }
            Scope::Domain(d) => set_in(&mut whole, "domains", &d, name, v),
            Scope::User(a) => set_in(&mut whole, "users", &a, name, v),
        }
    }
    serde_json::from_value(Value::Object(whole)).map_err(|e| format!("the stored policy: {e}"))
}

fn set_in(whole: &mut Map<String, Value>, table: &str, key: &str, name: &str, v: Value) {
    let t = whole
        .entry(table.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(entries) = t {
        // The file's entry for the same level, in any spelling.
        let existing = entries
            .keys()
            .find(|k| {
                let canon = if table == "users" {
                    canonical_address(k)
                } else {
                    canonical_domain_key(k)
                };
                canon == key
            })
            .cloned()
            .unwrap_or_else(|| key.to_string());
        let e = entries
            .entry(existing)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(fields) = e {
            fields.insert(name.to_string(), v);
        }
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// One effective setting and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Effective {
    pub name: String,
    pub value: Value,
    /// `default`, or the levels that set it, e.g. `global (file)`,
    /// `domain example.com (store)`; several for additive settings.
    pub from: Vec<String>,
}

/// Every effective setting for `address`, in [`SETTINGS`] order, with the
/// level each came from (file or store).
pub fn explain(file: &PolicyConfig, rows: &[Row<'_>], address: &str) -> Vec<Effective> {
    let defaults = object(serde_json::to_value(PolicyConfig::default()).unwrap_or_default());
    let file_all = object(serde_json::to_value(file).unwrap_or_default());
    let address = canonical_address(address);
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    // The domain entry that applies: exact, else the longest wildcard,
    // among the file's and the store's entries together.
    let file_domains = table(&file_all, "domains", false);
    let file_users = table(&file_all, "users", true);
    let stored: Vec<(Scope, &str, Value)> = rows
        .iter()
        .filter_map(|(s, n, v)| Some((Scope::of_key(s), *n, serde_json::from_str(v).ok()?)))
        .collect();
    let mut domain_keys: Vec<String> = file_domains.keys().cloned().collect();
    domain_keys.extend(stored.iter().filter_map(|(s, _, _)| match s {
        Scope::Domain(d) => Some(d.clone()),
        _ => None,
    }));
    let applies = domain_keys
        .iter()
        .find(|k| **k == domain)
        .cloned()
        .or_else(|| {
            domain_keys
                .iter()
                .filter(|k| {
                    k.strip_prefix("*.")
                        .is_some_and(|b| domain.ends_with(&format!(".{b}")))
                })
                .max_by_key(|k| k.len())
                .cloned()
        });
    // Levels, least specific first: (label, values).
    let mut levels: Vec<(String, Map<String, Value>)> = Vec::new();
    let changed: Map<String, Value> = SETTINGS
        .iter()
        .filter_map(|n| {
            let v = file_all.get(*n)?;
            (defaults.get(*n) != Some(v)).then(|| (n.to_string(), v.clone()))
        })
        .collect();
    levels.push(("global (file)".into(), changed));
    let store_level = |scope: &Scope| -> Map<String, Value> {
        stored
            .iter()
            .filter(|(s, _, _)| s == scope)
            .map(|(_, n, v)| (n.to_string(), v.clone()))
            .collect()
    };
    levels.push(("global (store)".into(), store_level(&Scope::Global)));
    if let Some(d) = &applies {
        levels.push((
            format!("domain {d} (file)"),
            file_domains.get(d).cloned().unwrap_or_default(),
        ));
        levels.push((
            format!("domain {d} (store)"),
            store_level(&Scope::Domain(d.clone())),
        ));
    }
    levels.push((
        format!("user {address} (file)"),
        file_users.get(&address).cloned().unwrap_or_default(),
    ));
    levels.push((
        format!("user {address} (store)"),
        store_level(&Scope::User(address.clone())),
    ));

    SETTINGS
        .iter()
        .map(|&name| {
            let mut value = defaults.get(name).cloned().unwrap_or(Value::Null);
            let mut from = vec!["default".to_string()];
            for (label, values) in &levels {
                let Some(v) = values.get(name).filter(|v| !v.is_null()) else {
                    continue;
                };
                if ADDITIVE.contains(&name) {
                    // Store over file at the same level replaces; levels add.
                    if label.ends_with("(store)") {
                        let file_label = label.replace("(store)", "(file)");
                        if let Some(i) = from.iter().position(|f| *f == file_label) {
                            from.remove(i);
                            if let (Value::Array(all), Some(Value::Array(old))) =
                                (&mut value, levels_value(&levels, &file_label, name))
                            {
                                all.retain(|x| !old.contains(x));
                            }
                        }
                    }
                    if let (Value::Array(all), Value::Array(more)) = (&mut value, v) {
                        for m in more {
                            if !all.contains(m) {
                                all.push(m.clone());
                            }
                        }
                    }
                    from.retain(|f| f != "default");
                    from.push(label.clone());
                } else {
                    value = v.clone();
                    from = vec![label.clone()];
                }
            }
            Effective {
                name: name.to_string(),
                value,
                from,
            }
        })
        .collect()
}

fn levels_value<'a>(
    levels: &'a [(String, Map<String, Value>)],
    label: &str,
    name: &str,
) -> Option<&'a Value> {
    levels
        .iter()
        .find(|(l, _)| l == label)
        .and_then(|(_, m)| m.get(name))
}

/// The entries of the file's `domains` or `users` table, keyed canonically,
/// without unset (null) settings.
fn table(
    file: &Map<String, Value>,
    name: &str,
    users: bool,
) -> std::collections::BTreeMap<String, Map<String, Value>> {
    let mut out = std::collections::BTreeMap::new();
    if let Some(Value::Object(entries)) = file.get(name) {
        for (k, v) in entries {
            let key = if users {
                canonical_address(k)
            } else {
                canonical_domain_key(k)
            };
            let fields: Map<String, Value> = object(v.clone())
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .collect();
            out.insert(key, fields);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::decide::Policy;

    fn file() -> PolicyConfig {
        let mut c = PolicyConfig {
            additional_pgp_keys: vec!["A".repeat(40)],
            ..Default::default()
        };
        c.domains.insert(
            "Example.COM".into(),
            DomainPolicy {
                mode: Some(Mode::Mandatory),
                ..Default::default()
            },
        );
        c.domains.insert(
            "*.example.com".into(),
            DomainPolicy {
                mode: Some(Mode::Off),
                ..Default::default()
            },
        );
        c
    }

    fn row<'a>(s: &'a str, n: &'a str, v: &'a str) -> Row<'a> {
        (s, n, v)
    }

    #[test]
    fn scopes_read_and_canonicalise() {
        assert_eq!(Scope::parse("global").unwrap(), Scope::Global);
        assert_eq!(
            Scope::parse("@Example.COM").unwrap(),
            Scope::Domain("example.com".into())
        );
        assert_eq!(
            Scope::parse("*.Example.com").unwrap(),
            Scope::Domain("*.example.com".into())
        );
        assert_eq!(
            Scope::parse("Alice@Example.COM").unwrap(),
            Scope::User("alice@example.com".into())
        );
        for bad in ["", "a b", "@", "@*.", "@a*b", "@x@y"] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_are_checked_with_the_files_types() {
        assert_eq!(parse_value("mode", "mandatory").unwrap(), "mandatory");
        assert_eq!(
            parse_value("methods", "smime, pgp").unwrap(),
            serde_json::json!(["smime", "pgp"])
        );
        assert_eq!(parse_value("auto_select", "false").unwrap(), false);
        let e = parse_value("mode", "sometimes").unwrap_err();
        assert!(
            e.contains("unknown variant `sometimes`") && e.contains("mandatory"),
            "{e}"
        );
        let e = parse_value("colour", "red").unwrap_err();
        assert!(
            e.contains("not a policy setting") && e.contains("mode"),
            "{e}"
        );
        assert!(parse_value("methods", "pgp,rot13").is_err());
    }

    #[test]
    fn the_store_overrides_the_file_at_the_same_level() {
        let rows = [
            row("example.com", "mode", "\"opportunistic\""),
            row("bob@example.com", "mode", "\"mandatory\""),
            row("global", "methods", "[\"smime\"]"),
        ];
        let merged = overlay(&file(), &rows).unwrap();
        let p = Policy::new(merged).unwrap();
        assert_eq!(p.settings_for("a@example.com").mode, Mode::Opportunistic);
        assert_eq!(p.settings_for("bob@EXAMPLE.com").mode, Mode::Mandatory);
        assert_eq!(p.settings_for("c@x.example.com").mode, Mode::Off);
        assert_eq!(
            p.settings_for("c@other.org").methods,
            vec![sealgate_keys::Method::Smime]
        );
        let bad = overlay(&file(), &[row("global", "mode", "\"loud\"")]).unwrap_err();
        assert!(bad.contains("mode of global"), "{bad}");
    }

    #[test]
    fn explain_names_the_level_of_each_setting() {
        let rows = [
            row("example.com", "smime_cipher", "\"aes-256-gcm\""),
            row("bob@example.com", "mode", "\"opportunistic\""),
            row(
                "example.com",
                "additional_pgp_keys",
                "[\"BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\"]",
            ),
        ];
        let e = explain(&file(), &rows, "Bob@Example.com");
        let get = |n: &str| e.iter().find(|x| x.name == n).unwrap().clone();
        assert_eq!(get("mode").value, "opportunistic");
        assert_eq!(get("mode").from, ["user bob@example.com (store)"]);
        assert_eq!(get("smime_cipher").from, ["domain example.com (store)"]);
        assert_eq!(get("methods").from, ["default"]);
        let add = get("additional_pgp_keys");
        assert_eq!(add.value.as_array().unwrap().len(), 2, "{add:?}");
        assert_eq!(add.from, ["global (file)", "domain example.com (store)"]);
        // Without the user row, the domain's file value shows.
        let e = explain(&file(), &rows[..1], "bob@example.com");
        let mode = e.iter().find(|x| x.name == "mode").unwrap();
        assert_eq!(
            (mode.value.as_str(), mode.from[0].as_str()),
            (Some("mandatory"), "domain example.com (file)")
        );
        // A subdomain gets the wildcard.
        let e = explain(&file(), &[], "c@x.example.com");
        let mode = e.iter().find(|x| x.name == "mode").unwrap();
        assert_eq!(mode.from, ["domain *.example.com (file)"]);
    }
}
