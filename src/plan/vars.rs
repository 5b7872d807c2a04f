//! Plan variables: merged with `-e KEY=VALUE` overrides, checked, and the
//! well-known ones (`daemon`, `servers`, `pools`) normalised into one shape
//! that every daemon's template reads.
//!
//! Any string that would end up in a config file must not be able to start a
//! new line there, so control characters are refused in every variable.

use super::PlanError;
use crate::daemons::keys::{Key, KEY_IDS, PLAN_TYPES};
use crate::daemons::{Access, DaemonName};
use crate::names::Host;
use crate::net::parse_network;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Names the plan may not define itself.
const RESERVED: [&str; 1] = ["facts"];
/// Variables the loader itself reads (the rest are read by templates and
/// step fields).
const LOADER_VARS: [&str; 4] = ["daemon", "iburst", "virtual", "timezone"];
/// Variables nested deeper than this are refused (hostile input, not config).
const MAX_DEPTH: usize = 16;
/// NTP poll exponents (log2 seconds) that ntpd, NTPsec and chrony all accept.
const POLL_RANGE: std::ops::RangeInclusive<i64> = 3..=17;

#[derive(Debug, Clone, PartialEq)]
pub struct Vars {
    /// Every variable, as templates see it.
    pub values: Map<String, Value>,
    pub daemon: Option<DaemonName>,
    /// `clients` and `listen`, checked once here for every later reader.
    pub access: Access,
    /// `keys`, checked: ids unique, and every source's `key` among them.
    pub keys: Vec<Key>,
}

/// A variable given outside the plan, and where it came from.
#[derive(Debug, Clone)]
pub struct Override {
    pub key: String,
    pub value: serde_yaml::Value,
    /// `None` where the caller has no place to name (the Ansible module's
    /// `vars`): errors then name the plan, without a position.
    pub origin: Option<Arc<VarOrigin>>,
}

/// Where variables given outside the plan came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarOrigin {
    /// `-e KEY=VALUE`, as messages show it (`-e daemon=ntimed`).
    Arg(String),
    /// `-e @FILE`: the file as given and its text, to locate a key in it.
    File { name: String, text: String },
    /// The Ansible module's `vars` argument.
    ModuleArg,
}

/// How messages name the Ansible module's `vars` argument.
pub const MODULE_VARS: &str = "the module's vars argument";

/// Why an `-e` argument was refused; the exit code follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgFault {
    /// Not KEY=VALUE or @FILE, or VALUE is not YAML.
    Usage,
    /// The variables file cannot be read (missing, not a file, too big).
    Unreadable,
    /// The variables file is read but is not a mapping of variables.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgError {
    pub message: String,
    pub fault: ArgFault,
}

/// The `-e` arguments in order, each KEY=VALUE or @FILE (a YAML mapping of
/// variables, as Ansible's `-e @vars.yaml`); a later one wins over an
/// earlier one and over the plan.
pub fn read_overrides(args: &[String]) -> Result<Vec<Override>, ArgError> {
    let mut out = Vec::new();
    for arg in args {
        match arg.strip_prefix('@') {
            Some(path) => out.extend(read_vars_file(arg, path)?),
            None => {
                let (key, value) = parse_override(arg).map_err(|message| ArgError {
                    message,
                    fault: ArgFault::Usage,
                })?;
                out.push(Override {
                    key,
                    value,
                    origin: Some(Arc::new(VarOrigin::Arg(shown(arg)))),
                });
            }
        }
    }
    Ok(out)
}

/// `-e @FILE`: read with the plan's size cap, parsed as the plan is.
fn read_vars_file(arg: &str, path: &str) -> Result<Vec<Override>, ArgError> {
    let fail = |fault, message: String| ArgError {
        message: format!("-e {arg}: {message}"),
        fault,
    };
    if path.is_empty() {
        return Err(fail(ArgFault::Usage, "expected a file name after @".into()));
    }
    let bytes = super::input::read_capped(
        std::path::Path::new(path),
        path,
        ("variables file", "variables files"),
    )
    .map_err(|m| fail(ArgFault::Unreadable, m))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        fail(
            ArgFault::Invalid,
            format!(
                "{path}: the file is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let raw: super::raw::RawVars =
        super::parse_yaml(&text, path).map_err(|e| fail(ArgFault::Invalid, e.to_string()))?;
    let origin = Arc::new(VarOrigin::File {
        name: path.to_string(),
        text,
    });
    Ok(raw
        .vars
        .into_iter()
        .map(|(key, value)| Override {
            key,
            value,
            origin: Some(origin.clone()),
        })
        .collect())
}

/// `-e KEY=VALUE` as messages show it: whole when short, else KEY and dots.
fn shown(arg: &str) -> String {
    if arg.chars().count() <= 60 && !arg.chars().any(char::is_control) {
        format!("-e {arg}")
    } else {
        let key = arg.split_once('=').map_or(arg, |(k, _)| k);
        format!("-e {key}=...")
    }
}

/// Parses one `-e KEY=VALUE`; VALUE is YAML, so `-e 'servers=[a, b]'` gives a list.
pub fn parse_override(arg: &str) -> Result<(String, serde_yaml::Value), String> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("-e {arg:?}: expected KEY=VALUE or @FILE"))?;
    if !is_identifier(key) {
        return Err(format!("-e {arg:?}: {key:?} is not a variable name"));
    }
    let shown = shown(arg);
    let parsed = if value.is_empty() {
        serde_yaml::Value::String(String::new())
    } else {
        // The parser's time grows with the nesting; refuse deep values first.
        super::nesting::check(value, super::nesting::MAX_NESTING).map_err(|deep| {
            let (line, col) = deep.at;
            let place = format!("at line {line} column {col}");
            format!("{shown}: the value has {}", deep.message_at(&place))
        })?;
        serde_yaml::from_str(value)
            .map_err(|e| format!("{shown}: the value is not valid YAML: {e}"))?
    };
    Ok((key.to_string(), parsed))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn build(
    file_vars: BTreeMap<String, serde_yaml::Value>,
    overrides: &[(String, serde_yaml::Value)],
    err: &dyn Fn(&str, String) -> PlanError,
) -> Result<Vars, PlanError> {
    let mut merged = file_vars;
    for (k, v) in overrides {
        merged.insert(k.clone(), v.clone());
    }
    let mut values = Map::new();
    for (key, yaml) in merged {
        let path = format!("vars.{key}");
        if !is_identifier(&key) {
            return Err(err(
                &path,
                format!("{key:?} is not a variable name (letters, digits, _)"),
            ));
        }
        if RESERVED.contains(&key.as_str()) {
            return Err(err(
                &path,
                format!("{key:?} is reserved for facts gathered from the node"),
            ));
        }
        let value = serde_json::to_value(&yaml)
            .map_err(|e| err(&path, format!("unsupported value: {e}")))?;
        check_value(&value, &path, 0, err)?;
        values.insert(key, value);
    }

    let daemon = match values.get("daemon") {
        None => None,
        Some(Value::String(s)) => Some(DaemonName::parse(s).map_err(|m| err("vars.daemon", m))?),
        Some(other) => {
            return Err(err(
                "vars.daemon",
                format!("expected a daemon name, found {}", kind(other)),
            ))
        }
    };

    let default_iburst = match values.get("iburst") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(err(
                "vars.iburst",
                format!("expected true or false, found {}", kind(other)),
            ))
        }
    };
    let mut seen = BTreeSet::new();
    let mut any_source = false;
    for key in ["servers", "pools"] {
        if let Some(list) = values.get(key) {
            let normalised = sources(list, key, default_iburst, &mut seen, err)?;
            any_source |= !normalised.is_empty();
            values.insert(key.to_string(), Value::Array(normalised));
        }
    }
    if let Some(list) = values.get("peers") {
        let normalised = sources(list, "peers", default_iburst, &mut seen, err)?;
        if let Some(i) = normalised.iter().position(|p| p["nts"] == true) {
            return Err(err(
                &format!("vars.peers[{i}].nts"),
                "NTS authenticates a server to its clients, not peers to each other: leave nts out of peers".into(),
            ));
        }
        values.insert("peers".into(), Value::Array(normalised));
    }
    if let Some(v) = values.get("orphan_stratum") {
        match v.as_u64() {
            Some(1..=15) => {}
            _ => {
                return Err(err(
                    "vars.orphan_stratum",
                    format!(
                        "expected a stratum from 1 to 15 (10 is usual), found {}",
                        match v {
                            Value::Number(n) => n.to_string(),
                            other => kind(other).to_string(),
                        }
                    ),
                ))
            }
        }
    }
    if let Some(v) = values.get("dhcp_servers").filter(|v| !v.is_boolean()) {
        return Err(err(
            "vars.dhcp_servers",
            format!("expected true or false, found {}", kind(v)),
        ));
    }
    let mut access = Access::default();
    if let Some(v) = values.get("clients") {
        for_each_string(v, "vars.clients", err, |path, s| {
            parse_network(s).map_err(|m| err(path, m))?;
            access.clients.push(s.to_string());
            Ok(())
        })?;
    }
    if let Some(v) = values.get("listen") {
        for_each_string(v, "vars.listen", err, |path, s| {
            s.parse::<std::net::IpAddr>()
                .map_err(|_| err(path, format!("{s:?} is not an IP address to listen on")))?;
            access.listen.push(s.to_string());
            Ok(())
        })?;
    }
    absolute_paths(
        &values,
        &["driftfile", "leapfile", "logfile", "logdir", "statsdir"],
        "a path",
        err,
    )?;
    for (key, least) in [
        ("step_threshold", Bound::Above(0.0)),
        ("panic_threshold", Bound::AtLeast(0.0)),
    ] {
        if let Some(v) = values.get(key) {
            seconds(v, least).map_err(|m| err(&format!("vars.{key}"), m))?;
        }
    }
    match values.get("virtual") {
        None | Some(Value::Bool(_)) => {}
        Some(Value::String(s)) if s == "auto" => {}
        Some(other) => {
            return Err(err(
                "vars.virtual",
                format!(
                    "expected auto, true or false, found {}",
                    match other {
                        Value::String(s) => format!("{s:?}"),
                        other => kind(other).to_string(),
                    }
                ),
            ))
        }
    }
    timezone(&values, err)?;
    let keys = keys(&values, err)?;
    check_nts_vars(&values, err)?;
    let has_source_var = values.contains_key("servers") || values.contains_key("pools");
    if has_source_var && !any_source {
        let path = if values.contains_key("servers") {
            "vars.servers"
        } else {
            "vars.pools"
        };
        return Err(err(
            path,
            "no time source: servers and pools are both empty".into(),
        ));
    }
    Ok(Vars {
        values,
        daemon,
        access,
        keys,
    })
}

/// `timezone`: a tz zone name (its file in the node's zoneinfo is
/// checked by the facts, before any change); null leaves the zone alone.
fn timezone(
    values: &Map<String, Value>,
    err: &dyn Fn(&str, String) -> PlanError,
) -> Result<(), PlanError> {
    match values.get("timezone") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => crate::names::TimeZone::parse(s)
            .map(drop)
            .map_err(|m| err("vars.timezone", m)),
        Some(other) => Err(err(
            "vars.timezone",
            format!(
                "expected a time zone name such as Europe/Paris, found {}",
                kind(other)
            ),
        )),
    }
}

/// `keys: [{id, type, secret_file}]`, and each server's and peer's `key`
/// naming one of them.
fn keys(
    values: &Map<String, Value>,
    err: &dyn Fn(&str, String) -> PlanError,
) -> Result<Vec<Key>, PlanError> {
    let mut keys: Vec<Key> = Vec::new();
    let items = match values.get("keys") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(err(
                "vars.keys",
                format!(
                    "expected a list of {{id, type, secret_file}}, found {}",
                    kind(other)
                ),
            ))
        }
    };
    for (i, item) in items.iter().enumerate() {
        let path = format!("vars.keys[{i}]");
        let Value::Object(map) = item else {
            return Err(err(
                &path,
                format!(
                    "expected a map with id, type and secret_file, found {}",
                    kind(item)
                ),
            ));
        };
        if let Some(k) = map
            .keys()
            .find(|k| !["id", "type", "secret_file"].contains(&k.as_str()))
        {
            let why = match k.as_str() {
                "secret" => "a secret does not go in the plan, where outputs and the run's record keep it: put it in a file on the node (mode 0600) and name that file with secret_file",
                _ => "unknown option (id, type, secret_file)",
            };
            return Err(err(&format!("{path}.{k}"), why.into()));
        }
        let id = map
            .get("id")
            .and_then(Value::as_u64)
            .filter(|id| KEY_IDS.contains(id))
            .ok_or_else(|| {
                err(
                    &format!("{path}.id"),
                    format!(
                        "expected a key id from {} to {}",
                        KEY_IDS.start(),
                        KEY_IDS.end()
                    ),
                )
            })?;
        if keys.iter().any(|k| k.id == id) {
            return Err(err(
                &format!("{path}.id"),
                format!("key {id} is listed twice"),
            ));
        }
        let kind = map
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .filter(|t| PLAN_TYPES.contains(&t.as_str()))
            .ok_or_else(|| {
                err(
                    &format!("{path}.type"),
                    format!("expected a key type ({})", PLAN_TYPES.join(", ")),
                )
            })?;
        let secret_file = match map.get("secret_file") {
            Some(Value::String(s)) => crate::names::AbsPath::parse(s)
                .map_err(|m| err(&format!("{path}.secret_file"), m))?
                .to_string(),
            _ => {
                return Err(err(
                    &format!("{path}.secret_file"),
                    "expected the path of a file on the node that holds the secret".into(),
                ))
            }
        };
        keys.push(Key {
            id,
            kind,
            secret_file,
        });
    }
    for list in ["servers", "peers"] {
        let Some(Value::Array(sources)) = values.get(list) else {
            continue;
        };
        for (i, s) in sources.iter().enumerate() {
            let Some(id) = s["key"].as_u64() else {
                continue;
            };
            if !keys.iter().any(|k| k.id == id) {
                let known: Vec<String> = keys.iter().map(|k| k.id.to_string()).collect();
                return Err(err(
                    &format!("vars.{list}[{i}].key"),
                    match known.is_empty() {
                        true => format!("key {id} is not in vars.keys, which is empty: add {{id: {id}, type: ..., secret_file: ...}} to vars.keys"),
                        false => format!("key {id} is not in vars.keys ({})", known.join(", ")),
                    },
                ));
            }
        }
    }
    Ok(keys)
}

/// Each of `keys` that is set must be an absolute path; `expected` says
/// what a value of another type should have been.
fn absolute_paths(
    values: &Map<String, Value>,
    keys: &[&str],
    expected: &str,
    err: &dyn Fn(&str, String) -> PlanError,
) -> Result<(), PlanError> {
    for key in keys {
        let path = format!("vars.{key}");
        match values.get(*key) {
            None => {}
            Some(Value::String(s)) => {
                drop(crate::names::AbsPath::parse(s).map_err(|m| err(&path, m))?)
            }
            Some(other) => {
                return Err(err(
                    &path,
                    format!("expected {expected}, found {}", kind(other)),
                ))
            }
        }
    }
    Ok(())
}

/// NTS: `nts_ca` (the CA a client trusts), `nts_server_cert` and
/// `nts_server_key` (what a server presents): paths on the node. A CA
/// without an NTS source would be trusted by nothing; a certificate
/// without its key (or the reverse) serves nothing.
fn check_nts_vars(
    values: &Map<String, Value>,
    err: &dyn Fn(&str, String) -> PlanError,
) -> Result<(), PlanError> {
    absolute_paths(
        values,
        &NTS_FILE_VARS,
        "the path of a PEM file on the node",
        err,
    )?;
    let nts_source = ["servers", "pools"].iter().any(|k| {
        values
            .get(*k)
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|s| s["nts"] == true))
    });
    if values.contains_key("nts_ca") && !nts_source {
        return Err(err(
            "vars.nts_ca",
            "nts_ca is the CA that NTS sources are checked against, but no server or pool has nts: true".into(),
        ));
    }
    match (
        values.contains_key("nts_server_cert"),
        values.contains_key("nts_server_key"),
    ) {
        (true, false) => Err(err(
            "vars.nts_server_cert",
            "serving NTS needs nts_server_key too (the certificate's private key)".into(),
        )),
        (false, true) => Err(err(
            "vars.nts_server_key",
            "serving NTS needs nts_server_cert too (the certificate for this key)".into(),
        )),
        _ => Ok(()),
    }
}

/// The NTS variables that name a file on the node.
pub const NTS_FILE_VARS: [&str; 3] = ["nts_ca", "nts_server_cert", "nts_server_key"];

/// Every variable must be read by the loader, a step field or a template
/// of the plan: one that nothing reads is almost always a typo
/// (`-e server=[...]`), which would otherwise be ignored without a word.
pub fn check_used(
    vars: &Vars,
    used: &BTreeSet<String>,
    err: &dyn Fn(&str, String) -> PlanError,
) -> Result<(), PlanError> {
    let known = |k: &str| LOADER_VARS.contains(&k) || used.contains(k);
    if let Some(key) = vars.values.keys().find(|k| !known(k)) {
        let nearest = LOADER_VARS
            .iter()
            .map(|s| s.to_string())
            .chain(used.iter().cloned())
            .filter(|c| c != "facts")
            .map(|c| (edit_distance(key, &c), c))
            .filter(|(d, _)| *d <= 2)
            .min();
        let hint = nearest.map_or_else(String::new, |(_, c)| format!(" (did you mean {c}?)"));
        return Err(err(
            &format!("vars.{key}"),
            format!("no step or template of the plan uses this variable{hint}"),
        ));
    }
    Ok(())
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Normalises `servers`/`pools`: each entry a hostname, or a map with `host`
/// and options; the result is always the map form with every option present.
fn sources(
    list: &Value,
    key: &str,
    default_iburst: bool,
    seen: &mut BTreeSet<String>,
    err: &dyn Fn(&str, String) -> PlanError,
) -> Result<Vec<Value>, PlanError> {
    let items = match list {
        Value::Array(items) => items,
        Value::Null => return Ok(Vec::new()),
        other => {
            return Err(err(
                &format!("vars.{key}"),
                format!("expected a list of hosts, found {}", kind(other)),
            ))
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("vars.{key}[{i}]");
        let (host, opts) = match item {
            Value::String(h) => (h.clone(), Map::new()),
            Value::Object(map) => {
                let host = match map.get("host") {
                    Some(Value::String(h)) => h.clone(),
                    _ => {
                        return Err(err(
                            &path,
                            "a source given as a map needs `host: NAME`".into(),
                        ))
                    }
                };
                (host, map.clone())
            }
            other => {
                return Err(err(
                    &path,
                    format!("expected a hostname or address, found {}", kind(other)),
                ))
            }
        };
        let host = Host::parse(&host).map_err(|m| err(&path, m))?;
        if !seen.insert(host.as_str().to_ascii_lowercase()) {
            return Err(err(&path, format!("{:?} is listed twice", host.as_str())));
        }
        let mut entry = json!({
            "host": host.as_str(),
            "iburst": default_iburst,
            "prefer": false,
            "minpoll": null,
            "maxpoll": null,
            "nts": false,
            "key": null,
        });
        let fields = entry.as_object_mut().expect("object literal");
        for (k, v) in opts {
            let field_path = format!("{path}.{k}");
            match (k.as_str(), &v) {
                ("host", _) => {}
                ("iburst" | "prefer" | "nts", Value::Bool(_)) => {
                    fields.insert(k, v);
                }
                ("minpoll" | "maxpoll", Value::Number(n))
                    if n.as_i64().is_some_and(|p| POLL_RANGE.contains(&p)) =>
                {
                    fields.insert(k, v);
                }
                ("key", Value::Number(n))
                    if key != "pools" && n.as_u64().is_some_and(|id| KEY_IDS.contains(&id)) =>
                {
                    fields.insert(k, v);
                }
                ("key", _) if key == "pools" => {
                    return Err(err(
                        &field_path,
                        "a pool's servers are found by name, and symmetric keys are shared with known servers: give key on servers or peers".into(),
                    ))
                }
                ("key", _) => {
                    return Err(err(
                        &field_path,
                        format!("expected a key id from vars.keys ({} to {})", KEY_IDS.start(), KEY_IDS.end()),
                    ))
                }
                ("iburst" | "prefer" | "nts", _) => {
                    return Err(err(
                        &field_path,
                        format!("expected true or false, found {}", kind(&v)),
                    ))
                }
                ("minpoll" | "maxpoll", _) => {
                    return Err(err(
                        &field_path,
                        "expected a poll exponent from 3 to 17 (8 s to 36 h)".into(),
                    ))
                }
                _ => {
                    return Err(err(
                        &field_path,
                        "unknown option (host, iburst, prefer, minpoll, maxpoll, nts, key)".into(),
                    ))
                }
            }
        }
        if fields["nts"] == true && !fields["key"].is_null() {
            return Err(err(
                &path,
                "nts and key both set: NTS authenticates the server already, and no daemon takes both on one source; give one".into(),
            ));
        }
        if let (Some(min), Some(max)) = (fields["minpoll"].as_i64(), fields["maxpoll"].as_i64()) {
            if min > max {
                return Err(err(
                    &path,
                    format!("minpoll {min} is greater than maxpoll {max}"),
                ));
            }
        }
        out.push(entry);
    }
    Ok(out)
}

/// Calls `check` on every item of a list of strings.
fn for_each_string(
    v: &Value,
    path: &str,
    err: &dyn Fn(&str, String) -> PlanError,
    mut check: impl FnMut(&str, &str) -> Result<(), PlanError>,
) -> Result<(), PlanError> {
    let Value::Array(items) = v else {
        return Err(err(path, format!("expected a list, found {}", kind(v))));
    };
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        match item {
            Value::String(s) => check(&item_path, s)?,
            other => {
                return Err(err(
                    &item_path,
                    format!("expected a string, found {}", kind(other)),
                ))
            }
        }
    }
    Ok(())
}

fn check_value(
    v: &Value,
    path: &str,
    depth: usize,
    err: &dyn Fn(&str, String) -> PlanError,
) -> Result<(), PlanError> {
    if depth > MAX_DEPTH {
        return Err(err(path, format!("nested deeper than {MAX_DEPTH} levels")));
    }
    match v {
        Value::String(s) => {
            if let Some(c) = s.chars().find(|c| c.is_control()) {
                return Err(err(path, format!("{s:?} contains the control character {c:?}, which would break a config line")));
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_value(item, &format!("{path}[{i}]"), depth + 1, err)),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, item)| check_value(item, &format!("{path}.{k}"), depth + 1, err)),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// The least a number of seconds may be.
#[derive(Clone, Copy)]
enum Bound {
    Above(f64),
    AtLeast(f64),
}

/// A number of seconds, at most a day: a threshold beyond that is a typo.
fn seconds(v: &Value, bound: Bound) -> Result<f64, String> {
    let n = v
        .as_f64()
        .ok_or_else(|| format!("expected a number of seconds, found {}", kind(v)))?;
    let (fits, what) = match bound {
        Bound::Above(least) => (n > least, format!("more than {least}")),
        Bound::AtLeast(least) => (n >= least, format!("at least {least}")),
    };
    if !fits || n > 86_400.0 {
        return Err(format!(
            "{n} is out of range: {what} and at most 86400 seconds"
        ));
    }
    Ok(n)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}
