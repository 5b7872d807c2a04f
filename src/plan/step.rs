//! A step as the diff sees it: every Jinja field rendered, every name parsed
//! into its newtype. Built by `Plan::render` once facts about the daemon are
//! known; never built from raw YAML directly.

use crate::names::{AbsPath, Account, Mode, PackageName, UnitName};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub action: Action,
    /// Handler names, checked at load time to exist.
    pub notify: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Apt(Apt),
    Template(Template),
    Service(Service),
    /// `vars.timezone`: /etc/localtime and /etc/timezone name this zone.
    Timezone(crate::names::TimeZone),
}

/// The desired state of packages, in the order apt applies it: lists first,
/// then packages, then unneeded dependencies.
#[derive(Debug, Clone, PartialEq)]
pub struct Apt {
    pub update_cache: Option<CacheValidity>,
    pub packages: Vec<PackageName>,
    pub state: PkgState,
    pub autoremove: Autoremove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PkgState {
    /// Installed at any version.
    Present,
    /// Installed at the archive's candidate version.
    Latest,
    /// Not installed; config files may stay (dpkg `rc`).
    Absent,
    /// Not installed and no config files left.
    Purged,
    /// Config files of removed packages (`rc`) purged; installed packages left alone.
    ResidualPurged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autoremove {
    Yes,
    No,
}

/// `update_cache` with `cache_valid_time`: `None` means update on every run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheValidity {
    pub max_age: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The template's name, for messages.
    pub src: String,
    pub dest: AbsPath,
    /// The rendered content.
    pub content: String,
    pub mode: Mode,
    pub owner: Account,
    pub group: Account,
    /// Whose parser checks the content before it goes live.
    pub validate: Option<crate::daemons::Flavor>,
    /// The content holds secrets: outputs show it masked.
    pub no_log: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub unit: UnitName,
    pub state: Option<ServiceState>,
    pub enabled: Option<Enabled>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    Started,
    Stopped,
    Restarted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Enabled {
    Yes,
    No,
}
