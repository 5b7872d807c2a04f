//! The YAML shape of a plan, exactly as written: serde types with
//! `deny_unknown_fields`, so a misspelt key is an error rather than ignored.
//!
//! Nothing here is validated beyond types; `plan::load` turns this into a
//! `Plan`. Fields that may hold Jinja stay strings until rendered.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub vars: BTreeMap<String, serde_yaml::Value>,
    pub steps: Vec<RawStep>,
    #[serde(default)]
    pub handlers: Vec<RawStep>,
    /// Lint rules (`lint::Rule` names) whose findings are accepted.
    #[serde(default)]
    pub allow_insecure: Vec<String>,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApt {
    #[serde(default)]
    pub name: Option<OneOrMany>,
    #[serde(default)]
    pub state: Option<RawPkgState>,
    #[serde(default)]
    pub update_cache: Option<bool>,
    /// Seconds; `apt-get update` is skipped while the lists are younger.
    #[serde(default)]
    pub cache_valid_time: Option<u64>,
    #[serde(default)]
    pub autoremove: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawPkgState {
    Present,
    Latest,
    Absent,
    Purged,
    ResidualPurged,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTemplate {
    pub src: String,
    pub dest: String,
    #[serde(default)]
    pub mode: Option<serde_yaml::Value>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    /// Check the new content with this daemon's own parser before it
    /// replaces the live file: ntpd, ntpsec, chrony, openntpd, or none.
    #[serde(default)]
    pub validate: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: String,
    #[serde(default)]
    pub state: Option<RawServiceState>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RawServiceState {
    Started,
    Stopped,
    Restarted,
}
