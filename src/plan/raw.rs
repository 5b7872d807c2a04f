//! The YAML shape of a plan, exactly as written: serde types with
//! `deny_unknown_fields`, so a misspelt key is an error rather than ignored.
//!
//! Nothing here is validated beyond types; `plan::load` turns this into a
//! `Plan`. Fields that may hold Jinja stay strings until rendered.
//!
//! Every type says what it expects in the plan's words (`expecting`, or a
//! visitor of its own): serde's defaults would name the Rust type
//! (`expected struct RawStep`, `untagged enum OneOrMany`).

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of plan keys (name, vars, steps, handlers, allow_insecure)"
)]
pub struct RawPlan {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "unique_keys")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub vars: BTreeMap<String, serde_yaml::Value>,
    pub steps: Vec<RawStep>,
    #[serde(default)]
    pub handlers: Vec<RawStep>,
    /// Lint rules (`lint::Rule` names) whose findings are accepted.
    #[serde(default)]
    pub allow_insecure: Vec<String>,
}

/// A variables file (`-e @FILE`): a mapping of variables, as `vars:` is.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct RawVars {
    #[serde(deserialize_with = "unique_keys")]
    pub vars: BTreeMap<String, serde_yaml::Value>,
}

/// A map whose keys must each appear once. A plain `BTreeMap` keeps the last
/// of two equal keys without a word; step and action keys are struct fields
/// (serde refuses a duplicate field) and values inside variables are YAML
/// mappings (which refuse duplicates themselves).
fn unique_keys<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, serde_yaml::Value>, D::Error> {
    struct Unique;
    impl<'de> Visitor<'de> for Unique {
        type Value = BTreeMap<String, serde_yaml::Value>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a map of variables")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format_args!(
                        "duplicate key {key:?}: each variable may be set once"
                    )));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Unique)
}

/// A step or handler: a name, one action key, and for steps the handlers to
/// notify when it changed something.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of step keys (name, when, notify, apt, template, service)"
)]
pub struct RawStep {
    pub name: String,
    /// A Jinja expression; the step is left out of the run when it is false.
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub notify: Option<OneOrMany>,
    #[serde(default)]
    pub apt: Option<RawApt>,
    #[serde(default)]
    pub template: Option<RawTemplate>,
    #[serde(default)]
    pub service: Option<RawService>,
}

/// A string or a list of strings (`name: ntp`, `name: [ntp, ntpdate]`).
/// Only strings: an unquoted number or boolean is refused, also in the list.
#[derive(Debug)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(Text(s)) = seq.next_element()? {
                    items.push(s);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// An item of a [`OneOrMany`] list: a string as YAML types it.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl schemars::JsonSchema for OneOrMany {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OneOrMany".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "a string or a list of strings",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
        })
    }
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of apt keys (name, state, update_cache, cache_valid_time, autoremove)"
)]
pub struct RawApt {
    #[serde(default)]
    pub name: Option<OneOrMany>,
    #[serde(default)]
    pub state: Option<RawPkgState>,
    #[serde(default)]
    pub update_cache: Option<bool>,
    /// Seconds; `apt-get update` is skipped while the lists are younger.
    #[serde(default, deserialize_with = "seconds")]
    pub cache_valid_time: Option<u64>,
    #[serde(default)]
    pub autoremove: Option<bool>,
}

/// A whole number of seconds, or nothing.
fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Secs;
    impl<'de> Visitor<'de> for Secs {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a whole number of seconds")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
        }
        fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
            let what = format!("integer `{v}`");
            Err(E::invalid_value(de::Unexpected::Other(&what), &self))
        }
        fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
            let what = format!("integer `{v}`");
            Err(E::invalid_value(de::Unexpected::Other(&what), &self))
        }
    }
    d.deserialize_option(Secs)
}

/// A keyword enum read from a string only (serde_yaml's own enums speak of
/// YAML tags for anything else); an unknown word is named with the choices.
macro_rules! keywords {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($variant),+
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                const CHOICES: &str = concat!($what, " (", keywords!(@join $($text),+), ")");
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        write!(f, "{}", CHOICES)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        match v {
                            $($text => Ok($name::$variant),)+
                            _ => Err(E::custom(format_args!("{v:?} is not {CHOICES}"))),
                        }
                    }
                }
                d.deserialize_str(V)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"description": $what, "enum": [$($text),+]})
            }
        }
    };
    (@join $first:literal $(, $rest:literal)*) => { concat!($first $(, ", ", $rest)*) };
}

keywords!(RawPkgState, "a package state", {
    Present = "present",
    Latest = "latest",
    Absent = "absent",
    Purged = "purged",
    ResidualPurged = "residual_purged",
});

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of template keys (src, dest, mode, owner, group, validate, no_log)"
)]
pub struct RawTemplate {
    pub src: String,
    pub dest: String,
    /// An octal string (`"0644"`); a bare YAML number is refused.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub mode: Option<serde_yaml::Value>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    /// Check the new content with this daemon's own parser before it
    /// replaces the live file: ntpd, ntpsec, chrony, openntpd, timesyncd, or none.
    #[serde(default)]
    pub validate: Option<String>,
    /// The content holds secrets (a key file): every output shows each
    /// line's first two words and `********`, as Ansible's no_log hides a
    /// task's values.
    #[serde(default)]
    pub no_log: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of service keys (name, state, enabled)"
)]
pub struct RawService {
    pub name: String,
    #[serde(default)]
    pub state: Option<RawServiceState>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

keywords!(RawServiceState, "a service state", {
    Started = "started",
    Stopped = "stopped",
    Restarted = "restarted",
});
