//! The read-only questions facts ask of a node, and their real answers.
//!
//! Each real probe is one command (through `process`) or one file read,
//! followed by a pure parser from the sibling modules. A probe never changes
//! the node: apt-cache runs with its binary caches disabled so that it cannot
//! rewrite /var/cache/apt, and fresh lists are only ever read into a private
//! directory.

use super::apt::{self, Policy, SimAction, Stanza};
use super::dpkg::{self, DpkgState};
use super::systemd::{self, SysvState};
use crate::plan::names::{AbsPath, PackageName, UnitName};
use crate::process::Cmd;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InitSystem {
    /// systemd is PID 1: units are driven through systemctl.
    Systemd,
    /// A chroot, a container without init, or upstart: `service` and init.d.
    Sysv,
}

/// Which apt lists a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lists {
    Node,
    Private(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub content: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// A unit as the diff needs it, from systemctl or from SysV scripts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnitFact {
    pub exists: bool,
    pub running: bool,
    pub enabled: bool,
    pub main_pid: Option<u32>,
}

pub trait Probe {
    fn init_system(&self) -> Result<InitSystem>;
    /// Time since the node's lists were last updated; `None` if never.
    fn lists_age(&self) -> Result<Option<Duration>>;
    /// `apt-get update` into `dir`, leaving the node's own lists alone.
    fn update_private_lists(&self, dir: &Path) -> Result<()>;
    fn apt_policy(&self, pkgs: &[PackageName], lists: &Lists) -> Result<BTreeMap<PackageName, Policy>>;
    /// The candidate stanzas (`apt-cache show --no-all-versions`).
    fn apt_show(&self, pkgs: &[PackageName], lists: &Lists) -> Result<Vec<Stanza>>;
    fn dpkg_status(&self, pkgs: &[PackageName]) -> Result<BTreeMap<PackageName, DpkgState>>;
    /// Packages `apt-get autoremove` would remove now, as `name version`.
    fn autoremovable(&self) -> Result<Vec<String>>;
    fn file(&self, path: &AbsPath) -> Result<Option<FileState>>;
    /// uid or gid of a name in /etc/passwd or /etc/group.
    fn account_id(&self, name: &str, group: bool) -> Result<Option<u32>>;
    fn units(&self, init: InitSystem, units: &[UnitName]) -> Result<Vec<UnitFact>>;
    /// The names in /var/lib/dpkg/updates (dpkg's journal of a run in progress).
    fn dpkg_updates(&self) -> Result<Vec<String>>;
}

/// Where dpkg keeps the journal of a run in progress.
pub const DPKG_UPDATES: &str = "/var/lib/dpkg/updates";

/// apt-cache options that keep a query from writing the node's binary cache,
/// and point it at the chosen lists.
fn apt_cache(lists: &Lists) -> Cmd {
    let cmd = Cmd::new("apt-cache")
        .env("LC_ALL", "C")
        .args(["-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache="]);
    match lists {
        Lists::Node => cmd,
        Lists::Private(dir) => cmd.arg("-o").arg(format!("Dir::State::Lists={}", dir.display())),
    }
}

/// The real node, probed through commands and file reads.
pub struct RealProbe;

impl Probe for RealProbe {
    fn init_system(&self) -> Result<InitSystem> {
        // sd_booted(3): this directory exists exactly when systemd is PID 1.
        Ok(if Path::new("/run/systemd/system").is_dir() { InitSystem::Systemd } else { InitSystem::Sysv })
    }

    fn lists_age(&self) -> Result<Option<Duration>> {
        let mut newest: Option<SystemTime> = None;
        let mut consider = |t: SystemTime| newest = Some(newest.map_or(t, |n| n.max(t)));
        if let Ok(meta) = std::fs::metadata(super::UPDATE_STAMP) {
            consider(meta.modified()?);
        }
        let dir = "/var/lib/apt/lists";
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.with_context(|| format!("reading {dir}"))?;
                    let name = entry.file_name();
                    if name.to_string_lossy().ends_with("Release") {
                        consider(entry.metadata().with_context(|| format!("stat {}", entry.path().display()))?.modified()?);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {dir}")),
        }
        // A clock set back makes the lists look new; treat that as age zero.
        Ok(newest.map(|t| SystemTime::now().duration_since(t).unwrap_or_default()))
    }

    fn update_private_lists(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir.join("partial")).with_context(|| format!("creating {}", dir.display()))?;
        let out = Cmd::new("apt-get")
            .env("LC_ALL", "C")
            .args(["-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache="])
            .arg("-o")
            .arg(format!("Dir::State::Lists={}", dir.display()))
            // The private directory belongs to root; apt's _apt sandbox user could not write it.
            .args(["-o", "APT::Sandbox::User=root", "-qq", "update"])
            .output()?;
        let errors = apt::error_lines(&out.stderr);
        if out.code != 0 || errors.iter().any(|l| l.starts_with("E:") || l.starts_with("W: Some index files failed")) {
            bail!("apt-get update into a private directory failed:\n    {}", errors.join("\n    "));
        }
        Ok(())
    }

    fn apt_policy(&self, pkgs: &[PackageName], lists: &Lists) -> Result<BTreeMap<PackageName, Policy>> {
        if pkgs.is_empty() {
            return Ok(BTreeMap::new());
        }
        let out = apt_cache(lists).arg("policy").args(pkgs).run()?;
        apt::parse_policy(&out.stdout, pkgs).map_err(anyhow::Error::msg).context("reading apt-cache policy")
    }

    fn apt_show(&self, pkgs: &[PackageName], lists: &Lists) -> Result<Vec<Stanza>> {
        if pkgs.is_empty() {
            return Ok(Vec::new());
        }
        let out = apt_cache(lists).args(["show", "--no-all-versions"]).args(pkgs).run()?;
        Ok(apt::parse_stanzas(&out.stdout))
    }

    fn dpkg_status(&self, pkgs: &[PackageName]) -> Result<BTreeMap<PackageName, DpkgState>> {
        if pkgs.is_empty() {
            return Ok(BTreeMap::new());
        }
        // Exit 1 with "no packages found matching" is an answer, not a failure.
        let out = Cmd::new("dpkg-query")
            .env("LC_ALL", "C")
            .args(["-W", "-f=${Package}|${db:Status-Abbrev}|${Status}|${Version}\\n"])
            .args(pkgs)
            .output()?;
        dpkg::parse_dpkg_query(&out.stdout, &out.stderr, pkgs).map_err(anyhow::Error::msg).context("reading dpkg-query")
    }

    fn autoremovable(&self) -> Result<Vec<String>> {
        let out = Cmd::new("apt-get")
            .env("LC_ALL", "C")
            .args(["-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=", "-s", "autoremove"])
            .run()?;
        Ok(apt::parse_simulation(&out.stdout)
            .into_iter()
            .filter(|l| matches!(l.action, SimAction::Remove | SimAction::Purge))
            .map(|l| match l.version {
                Some(v) => format!("{} {v}", l.package),
                None => l.package,
            })
            .collect())
    }

    fn file(&self, path: &AbsPath) -> Result<Option<FileState>> {
        let meta = match std::fs::symlink_metadata(path.as_path()) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("stat {path}")),
        };
        if !meta.is_file() {
            bail!("{path} exists but is not a regular file; refusing to replace it");
        }
        let content = std::fs::read(path.as_path()).with_context(|| format!("reading {path}"))?;
        Ok(Some(FileState { content, mode: meta.mode() & 0o7777, uid: meta.uid(), gid: meta.gid() }))
    }

    fn account_id(&self, name: &str, group: bool) -> Result<Option<u32>> {
        let db = if group { "/etc/group" } else { "/etc/passwd" };
        let text = std::fs::read_to_string(db).with_context(|| format!("reading {db}"))?;
        Ok(text.lines().find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(name)).then(|| fields.nth(1)?.parse().ok()).flatten()
        }))
    }

    fn units(&self, init: InitSystem, units: &[UnitName]) -> Result<Vec<UnitFact>> {
        if units.is_empty() {
            return Ok(Vec::new());
        }
        match init {
            InitSystem::Systemd => {
                let out = Cmd::new("systemctl")
                    .env("LC_ALL", "C")
                    .args(["show", "-p", "Id,LoadState,ActiveState,SubState,UnitFileState,MainPID,ExecMainStartTimestampMonotonic"])
                    .arg("--")
                    .args(units)
                    .run()?;
                let parsed = systemd::parse_show(&out.stdout, units.len()).map_err(anyhow::Error::msg)?;
                Ok(parsed
                    .into_iter()
                    .map(|u| UnitFact { exists: u.exists(), running: u.is_running(), enabled: u.is_enabled(), main_pid: u.main_pid })
                    .collect())
            }
            InitSystem::Sysv => units.iter().map(sysv_unit).collect(),
        }
    }

    fn dpkg_updates(&self) -> Result<Vec<String>> {
        match std::fs::read_dir(DPKG_UPDATES) {
            Ok(entries) => entries
                .map(|e| Ok(e.with_context(|| format!("reading {DPKG_UPDATES}"))?.file_name().to_string_lossy().into_owned()))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("reading {DPKG_UPDATES}")),
        }
    }
}

fn sysv_unit(unit: &UnitName) -> Result<UnitFact> {
    let script = format!("/etc/init.d/{}", unit.stem());
    if !Path::new(&script).exists() {
        return Ok(UnitFact { exists: false, running: false, enabled: false, main_pid: None });
    }
    // LSB status: 0 running, 3 stopped; other codes say nothing reliable.
    let out = Cmd::new(&script).env("LC_ALL", "C").arg("status").output()?;
    let running = matches!(systemd::sysv_status_from_exit(out.code), SysvState::Running);
    let mut entries = Vec::new();
    for level in 2..=5 {
        if let Ok(dir) = std::fs::read_dir(format!("/etc/rc{level}.d")) {
            entries.extend(dir.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()));
        }
    }
    Ok(UnitFact { exists: true, running, enabled: systemd::sysv_enabled(&entries, unit.stem()), main_pid: None })
}
