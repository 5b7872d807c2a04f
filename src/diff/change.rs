//! Typed changes. Each carries everything needed to apply it (versions,
//! content, owner ids, the reason for a restart) and its before and after,
//! so the printed changeset is the whole story and `apply` never asks again.

use crate::names::{AbsPath, Mode, PackageName, UnitName};
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// `apt-get update`.
    UpdateLists {
        /// Age of the lists in seconds; `None`: never updated.
        age_seconds: Option<u64>,
        max_age_seconds: Option<u64>,
    },
    /// `dpkg --configure -a`: an earlier dpkg run stopped half way (its
    /// journal is not empty, or these packages are left unpacked,
    /// half-configured or awaiting triggers: what it finishes).
    Repair {
        packages: Vec<PkgChange>,
        reason: String,
    },
    /// One apt call installing or upgrading all of these to `after`.
    Install {
        packages: Vec<PkgChange>,
    },
    Remove {
        packages: Vec<PkgChange>,
    },
    Purge {
        packages: Vec<PkgChange>,
    },
    Autoremove {
        /// `name version` of what apt would remove now; empty when only
        /// packages removed earlier in this run may leave dependencies.
        packages: Vec<String>,
        reason: String,
    },
    File {
        path: AbsPath,
        before: Option<FileMeta>,
        after: FileMeta,
        /// The content to write.
        #[serde(skip)]
        content: String,
        /// Unified diff of the content; empty when only metadata differs.
        /// Of a `masked` file, of its text with every secret masked.
        diff: String,
        /// The content holds secrets (a key file, `no_log`): no output
        /// shows more than each line's id and type.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        masked: bool,
        /// How the new content is checked before it replaces the live file.
        check: Check,
        /// Where the replaced content is kept. Also planned for a file that
        /// does not exist yet: a package installed earlier in the run may
        /// create it (a conffile), and that content is kept too.
        backup: Option<AbsPath>,
    },
    Service {
        unit: UnitName,
        action: ServiceAction,
        reason: String,
        /// What "started" means: for a daemon, answering on localhost.
        health: Health,
        /// The files this run wrote for this unit: when a (re)start leaves
        /// the unit unhealthy they are put back and it is restarted again.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        rollback: Vec<Restore>,
    },
    /// `vars.timezone`: /etc/localtime linked to the zone's file and
    /// /etc/timezone naming it, as timedatectl leaves them.
    Timezone {
        /// The zone /etc/localtime names now, or what it is instead.
        before: String,
        after: crate::names::TimeZone,
        /// What /etc/timezone says when that is not `before`.
        #[serde(skip_serializing_if = "Option::is_none")]
        timezone_file: Option<String>,
        /// The link /etc/localtime becomes.
        link: String,
    },
}

/// How a started or restarted unit proves it works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Health {
    /// The unit is active.
    Active,
    /// The unit is active and the daemon answers on localhost (a time
    /// query to 127.0.0.1:123, `chronyc tracking`, `ntpctl -s status`).
    Answering { flavor: crate::daemons::Flavor },
}

/// One file to put back on rollback from its backup; a file the run
/// created (nothing was there to back up when it was written) is removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Restore {
    pub path: AbsPath,
    pub backup: AbsPath,
}

/// Backups are named `FILE.YYYYmmddTHHMMSS.ffffff.ntp-provision.bak`, next to
/// FILE: the replaced version's modification time, UTC.
/// The dots keep them out of run-parts directories (dhclient hooks), and no
/// daemon reads such a name (chrony reads conf.d/*.conf only).
pub const BACKUP_SUFFIX: &str = ".ntp-provision.bak";
/// How many backups of one file are kept; older ones are removed.
pub const BACKUPS_KEPT: usize = 3;

/// The backup of the version of `path` stamped `stamp`.
pub fn backup_path(path: &AbsPath, stamp: &str) -> Option<AbsPath> {
    AbsPath::parse(&format!("{path}.{stamp}{BACKUP_SUFFIX}")).ok()
}

/// A config check run on the new content, in its temporary file, before
/// the rename that makes it live: a rejected config never goes live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Check {
    None,
    /// The daemon's own parser.
    Daemon {
        flavor: crate::daemons::Flavor,
    },
    /// The daemon has no parser to ask; the restart's health check decides.
    Unavailable {
        reason: String,
    },
}

/// One package's transition: `ntpdate 1:4.2.8p15+dfsg-1 -> purged`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PkgChange {
    pub package: PackageName,
    /// `None`: not installed. Otherwise the version and dpkg's state.
    pub before: Option<PkgVersion>,
    /// The version to install, or `None` when the package goes away.
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PkgVersion {
    pub version: String,
    /// `installed`, `config-files`, or dpkg's half state (`iU`, `iF`, ...).
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FileMeta {
    pub mode: Mode,
    pub uid: u32,
    pub gid: u32,
    pub owner: Option<String>,
    pub group: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceAction {
    Start,
    Stop,
    Restart,
    Enable,
    Disable,
}

impl ServiceAction {
    pub fn verb(self) -> &'static str {
        match self {
            ServiceAction::Start => "start",
            ServiceAction::Stop => "stop",
            ServiceAction::Restart => "restart",
            ServiceAction::Enable => "enable",
            ServiceAction::Disable => "disable",
        }
    }
}

impl Change {
    /// What a handler's reason quotes: `/etc/ntpsec/ntp.conf changed`.
    pub fn cause(&self) -> String {
        match self {
            Change::UpdateLists { .. } => "package lists updated".into(),
            Change::Repair { packages, .. }
            | Change::Install { packages }
            | Change::Remove { packages }
            | Change::Purge { packages } => {
                let names: Vec<&str> = packages.iter().map(|p| p.package.as_str()).collect();
                format!("package {} changed", names.join(", "))
            }
            Change::Autoremove { .. } => "unneeded packages removed".into(),
            Change::File { path, .. } => format!("{path} changed"),
            Change::Service { unit, action, .. } => {
                format!("{unit} {}ed", action.verb().trim_end_matches('e'))
            }
            Change::Timezone { after, .. } => format!("time zone set to {after}"),
        }
    }

    /// Whether removing packages here can leave dependencies unneeded.
    pub fn removes_packages(&self) -> bool {
        matches!(self, Change::Remove { .. } | Change::Purge { .. })
    }
}

impl PkgChange {
    /// `ntp 1:4.2.8p15+dfsg-1 (config-files) -> purged`; `gone` names the end
    /// state when the package is not installed afterwards.
    pub fn line(&self, gone: &str) -> String {
        let before = match &self.before {
            None => "(none)".to_string(),
            Some(PkgVersion { version, state }) if state == "installed" => version.clone(),
            Some(PkgVersion { version, state }) => format!("{version} ({state})"),
        };
        format!(
            "{} {before} -> {}",
            self.package,
            self.after.as_deref().unwrap_or(gone)
        )
    }
}

/// One line per change, as `plan` and `apply` print it (file diffs aside).
impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>,
                    verb: &str,
                    pkgs: &[PkgChange],
                    gone: &str|
         -> fmt::Result {
            let items: Vec<String> = pkgs.iter().map(|p| p.line(gone)).collect();
            write!(f, "{verb}: {}", items.join(", "))
        };
        match self {
            Change::UpdateLists {
                age_seconds,
                max_age_seconds,
            } => {
                write!(f, "apt-get update: ")?;
                match (age_seconds, max_age_seconds) {
                    (None, _) => write!(f, "the package lists were never updated"),
                    (Some(age), Some(max)) => write!(
                        f,
                        "the package lists are {} old (more than {})",
                        human(*age),
                        human(*max)
                    ),
                    (Some(age), None) => write!(
                        f,
                        "the package lists are {} old (update_cache without cache_valid_time)",
                        human(*age)
                    ),
                }
            }
            Change::Repair { packages, reason } if packages.is_empty() => {
                write!(f, "dpkg --configure -a: {reason}")
            }
            Change::Repair { packages, .. } => list(
                f,
                "dpkg --configure -a (interrupted install)",
                packages,
                "configured",
            ),
            Change::Install { packages } => list(f, "install", packages, "installed"),
            Change::Remove { packages } => list(f, "remove", packages, "removed"),
            Change::Purge { packages } => list(f, "purge", packages, "purged"),
            Change::Autoremove { packages, reason } if packages.is_empty() => {
                write!(f, "autoremove: {reason}")
            }
            Change::Autoremove { packages, .. } => write!(f, "autoremove: {}", packages.join(", ")),
            Change::File {
                path,
                before,
                after,
                diff,
                check,
                backup,
                ..
            } => {
                match before {
                    None => write!(
                        f,
                        "create {path} (mode {}, {}:{})",
                        after.mode,
                        owner(after),
                        group(after)
                    )?,
                    Some(b) => {
                        write!(f, "update {path}")?;
                        let mut what = Vec::new();
                        if !diff.is_empty() {
                            what.push("content".to_string());
                        }
                        if b.mode != after.mode {
                            what.push(format!("mode {} -> {}", b.mode, after.mode));
                        }
                        if (b.uid, b.gid) != (after.uid, after.gid) {
                            what.push(format!(
                                "owner {}:{} -> {}:{}",
                                b.uid,
                                b.gid,
                                owner(after),
                                group(after)
                            ));
                        }
                        write!(f, " ({})", what.join(", "))?;
                    }
                }
                match check {
                    Check::None => {}
                    Check::Daemon { flavor } => {
                        write!(f, "; checked by {} before it goes live", flavor.as_str())?
                    }
                    Check::Unavailable { reason } => write!(f, "; {reason}")?,
                }
                match (before, backup) {
                    (Some(_), Some(b)) => write!(f, "; old content kept as {b}"),
                    _ => Ok(()),
                }
            }
            Change::Service {
                unit,
                action,
                reason,
                rollback,
                ..
            } => {
                write!(f, "{} {unit}: {reason}", action.verb())?;
                if !rollback.is_empty() {
                    let files: Vec<&str> = rollback.iter().map(|r| r.path.as_str()).collect();
                    write!(
                        f,
                        "; rolled back if unhealthy after it: {}",
                        files.join(", ")
                    )?;
                }
                Ok(())
            }
            Change::Timezone {
                before,
                after,
                timezone_file,
                ..
            } => {
                match before == after.as_str() {
                    false => write!(f, "timezone: {before} -> {after}")?,
                    true => write!(f, "timezone: {after}")?,
                }
                match timezone_file {
                    Some(said) => write!(f, " ({said}; it gets {after})"),
                    None => Ok(()),
                }
            }
        }
    }
}

fn owner(m: &FileMeta) -> String {
    m.owner.clone().unwrap_or_else(|| m.uid.to_string())
}

fn group(m: &FileMeta) -> String {
    m.group.clone().unwrap_or_else(|| m.gid.to_string())
}

fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}
