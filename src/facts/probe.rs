//! The read-only questions facts ask of a node, and their real answers.
//!
//! Each real probe is one command (through `process`) or one file read,
//! followed by a pure parser from the sibling modules. A probe never changes
//! the node: apt never writes /var/cache/apt for us, and fresh lists are only
//! ever read into a private directory.
//!
//! apt's binary cache decides what an apt query costs: loading a valid
//! pkgcache.bin takes milliseconds, rebuilding it from the lists and dpkg's
//! status takes hundreds. apt is never pointed at /var/cache/apt (as root it
//! would rewrite an outdated cache there). Instead every query of a run
//! shares one cache in a scratch directory of the run: for the node's lists
//! it starts as links to the node's pkgcache.bin and srcpkgcache.bin, which
//! apt validates as usual and uses when current, or rebuilds in the scratch
//! directory, once, when not (`seed_cache`). (`pkgCacheFile::Generate=false`
//! would read the node's cache in place, but apt-cache policy then fails
//! with "Cache is out of sync, can't x-ref a package file" on apt 2.6.)

use super::apt::{self, Policy, SimAction, Stanza};
use super::dpkg::{self, DpkgPackage, DpkgState};
use super::systemd::{self, SysvState};
use crate::names::{AbsPath, PackageName, UnitName};
use crate::process::{Cmd, Output};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InitSystem {
    /// systemd is PID 1: units are driven through systemctl.
    Systemd,
    /// A chroot, a container without init, or upstart: `service` and init.d.
    Sysv,
}

/// Which apt lists a query reads, and the scratch directory (private to
/// this run) where apt may build its binary cache for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lists {
    Node { scratch: PathBuf },
    Private { lists: PathBuf, scratch: PathBuf },
}

/// apt's own binary caches: linked from the scratch directory as a head
/// start, never named to apt themselves.
const NODE_CACHES: [&str; 2] = [
    "/var/cache/apt/pkgcache.bin",
    "/var/cache/apt/srcpkgcache.bin",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub content: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Last modification (the file's mtime).
    pub modified: Option<SystemTime>,
}

/// A unit as the diff needs it, from systemctl or from SysV scripts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct UnitFact {
    pub exists: bool,
    pub running: bool,
    pub enabled: bool,
    pub main_pid: Option<u32>,
    /// When the main process started, on the wall clock; `None` without
    /// systemd or when the unit never started. Files written after it are
    /// not what the running daemon read.
    #[serde(skip)]
    pub started: Option<SystemTime>,
}

pub trait Probe: Sync {
    fn init_system(&self) -> Result<InitSystem>;
    /// Time since the node's lists were last updated; `None` if never.
    fn lists_age(&self) -> Result<Option<Duration>>;
    /// `apt-get update` into `lists` (a `Lists::Private`), leaving the
    /// node's own lists alone.
    fn update_private_lists(&self, lists: &Lists) -> Result<()>;
    fn apt_policy(
        &self,
        pkgs: &[PackageName],
        lists: &Lists,
    ) -> Result<BTreeMap<PackageName, Policy>>;
    /// The stanzas of these exact versions (`apt-cache show NAME=VERSION`:
    /// `--no-all-versions` would compute every package's candidate first,
    /// for a version `apt_policy` already gave).
    fn apt_show(&self, versions: &[(PackageName, String)], lists: &Lists) -> Result<Vec<Stanza>>;
    /// The stanza of every version of `pkg` in `lists` (`apt-cache show
    /// NAME`: no candidate computed, as fast as one version's), for a
    /// question asked before the candidate is known; an error if apt knows
    /// no such package.
    fn apt_show_every_version(&self, pkg: &PackageName, lists: &Lists) -> Result<Vec<Stanza>>;
    /// dpkg's state of each package and whether it is held, in one query.
    fn dpkg_packages(&self, pkgs: &[PackageName]) -> Result<BTreeMap<PackageName, DpkgPackage>>;
    /// dpkg's state of each package (holds left out).
    fn dpkg_status(&self, pkgs: &[PackageName]) -> Result<BTreeMap<PackageName, DpkgState>> {
        Ok(self
            .dpkg_packages(pkgs)?
            .into_iter()
            .map(|(name, p)| (name, p.state))
            .collect())
    }
    /// Packages `apt-get autoremove` would remove, as `name version`. The
    /// real probe gives apt no package lists: what is unneeded follows from
    /// dpkg's status, the auto marks and apt's config, never the archive,
    /// and a cache of the installed packages only is far quicker to build
    /// (a node test checks the answer is the same with the lists).
    fn autoremovable(&self, lists: &Lists) -> Result<Vec<String>>;
    /// What autoremove would remove once `removals` are removed and
    /// `installs` installed, as `name version`, `removals` left out: apt's
    /// own simulation of both with `--autoremove`, on `lists` (the
    /// installs need their candidates).
    fn left_unneeded(
        &self,
        _lists: &Lists,
        _installs: &[PackageName],
        _removals: &[PackageName],
    ) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn file(&self, path: &AbsPath) -> Result<Option<FileState>>;
    /// `vars.timezone`: the zone's file, /etc/localtime and /etc/timezone.
    fn timezone(&self, zone: &crate::names::TimeZone) -> Result<super::timezone::TimezoneFact>;
    /// uid or gid of a name in /etc/passwd or /etc/group.
    fn account_id(&self, name: &str, group: bool) -> Result<Option<u32>>;
    fn units(&self, init: InitSystem, units: &[UnitName]) -> Result<Vec<UnitFact>>;
    /// The names in /var/lib/dpkg/updates (dpkg's journal of a run in progress).
    fn dpkg_updates(&self) -> Result<Vec<String>>;
    /// A daemon's own status tool; its exit status is part of the answer.
    fn ask(&self, argv: &[&str]) -> Result<Output>;
    /// A fingerprint of every file apt's answers depend on (see `memo`);
    /// `None` where answers must never be remembered.
    fn apt_fingerprint(&self) -> Result<Option<String>> {
        Ok(None)
    }
    /// The text of the remembered answers (`memo::MEMO_PATH`), if any.
    fn apt_memo(&self) -> Result<Option<String>> {
        Ok(None)
    }
    /// A fingerprint of dpkg's database (`carry`): changes whenever a
    /// package's state or hold does; `None` where answers are never carried.
    fn dpkg_fingerprint(&self) -> Result<Option<String>> {
        Ok(None)
    }
}

/// Every hook `apt-get update` runs (apt's own names, as of apt 2.9), cleared.
pub const NO_UPDATE_HOOKS: &str = "\
#clear APT::Update::Pre-Invoke;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear APT::Update::Post-Invoke-Stats;
";

/// dpkg's database of package states and selections.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";

/// Where dpkg keeps the journal of a run in progress.
pub const DPKG_UPDATES: &str = "/var/lib/dpkg/updates";

/// `program` (apt-cache or apt-get) pointed at the chosen lists, with its
/// binary caches in the run's scratch directory (never /var/cache/apt).
fn apt_query(program: &str, lists: &Lists) -> Cmd {
    let scratch = match lists {
        Lists::Node { scratch } => {
            seed_cache(scratch);
            scratch
        }
        Lists::Private { scratch, .. } => scratch,
    };
    let cmd = Cmd::new(program)
        .env("LC_ALL", "C")
        .arg("-o")
        .arg(format!(
            "Dir::Cache::pkgcache={}",
            scratch.join("pkgcache.bin").display()
        ))
        .arg("-o")
        .arg(format!(
            "Dir::Cache::srcpkgcache={}",
            scratch.join("srcpkgcache.bin").display()
        ));
    match lists {
        Lists::Node { .. } => cmd,
        Lists::Private { lists, .. } => cmd
            .arg("-o")
            .arg(format!("Dir::State::Lists={}", lists.display())),
    }
}

/// Seeds `scratch` with a symbolic link to each of the node's binary caches,
/// so apt need not rebuild them. apt replaces a cache by renaming a new file
/// over the name, never writing in place, so a rebuild replaces the link and
/// the node's file stays as it was. A cache that cannot be seeded only
/// costs a rebuild.
fn seed_cache(scratch: &Path) {
    for node in NODE_CACHES {
        let node = Path::new(node);
        let seed = scratch.join(node.file_name().expect("cache paths have a file name"));
        // Already seeded (or rebuilt by apt): a link, even a dangling one.
        if seed.symlink_metadata().is_ok() || !node.is_file() {
            continue;
        }
        match std::os::unix::fs::symlink(node, &seed) {
            // Another query of this run, side by side, linked it first.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => log::debug!(
                "apt will rebuild its cache: linking {} to {}: {e}",
                node.display(),
                seed.display()
            ),
            Ok(()) => {}
        }
    }
}

/// Where the scratch directory for apt's cache of the node's lists goes:
/// /var/tmp, on disk like /var/cache/apt on most nodes (a cache apt must
/// rebuild there takes 40-100 MB, which /tmp may hold in memory).
pub const NODE_CACHE_PARENT: &str = "/var/tmp";

/// The prefix of the scratch directories apt's queries use (`facts`).
pub const APT_SCRATCH_PREFIX: &str = "ntp-provision-apt.";

/// Files and directories apt's answers depend on (the fingerprint of
/// `memo`): the lists, dpkg's status and extended_states, the
/// architectures, everything under /etc/apt, two levels deep, and the file
/// APT_CONFIG names, all under `root` (`/` on the node). Symlinks are
/// followed (the metadata of the target counts: an edit to a symlinked
/// sources or preferences file must be seen); a dangling one counts as the
/// link. Missing ones are skipped (their absence shows in the others).
fn apt_inputs(root: &Path, apt_config: Option<&Path>) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut found = Vec::new();
    let visit = |path: PathBuf, found: &mut Vec<(PathBuf, std::fs::Metadata)>| {
        if let Ok(meta) = std::fs::metadata(&path).or_else(|_| std::fs::symlink_metadata(&path)) {
            found.push((path, meta));
        }
    };
    for file in [
        "var/lib/dpkg/status",
        "var/lib/dpkg/arch",
        "var/lib/apt/extended_states",
    ] {
        visit(root.join(file), &mut found);
    }
    if let Some(config) = apt_config {
        visit(config.to_path_buf(), &mut found);
    }
    // Two levels: /etc/apt/sources.list.d/x.list, /var/lib/apt/lists/auxfiles/x.
    for top in ["var/lib/apt/lists", "etc/apt"] {
        let top = root.join(top);
        visit(top.clone(), &mut found);
        let mut dirs = vec![top];
        for depth in 0..2 {
            let mut next = Vec::new();
            for dir in dirs {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut paths: Vec<PathBuf> =
                    entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                paths.sort();
                for path in paths {
                    // apt-get takes and releases this lock without changing
                    // any list; partial/ holds downloads in progress, which
                    // apt reads from nowhere but moves into lists/ once
                    // complete (every `apt-get update` touches it, even one
                    // that found nothing new).
                    if path.ends_with("lists/lock") || path.ends_with("lists/partial") {
                        continue;
                    }
                    if depth == 0 && path.is_dir() {
                        next.push(path.clone());
                    }
                    visit(path, &mut found);
                }
            }
            dirs = next;
        }
    }
    found
}

/// Copies the node's lists into `dir` with their mtimes, so that updating
/// them fetches only what changed ("Hit" answers for unchanged indexes).
fn seed_lists(dir: &Path) -> Result<()> {
    let node = Path::new("/var/lib/apt/lists");
    let Ok(entries) = std::fs::read_dir(node) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", node.display()))?;
        let meta = entry
            .metadata()
            .with_context(|| format!("stat {}", entry.path().display()))?;
        if !meta.is_file() || entry.file_name() == "lock" {
            continue;
        }
        let dest = dir.join(entry.file_name());
        std::fs::copy(entry.path(), &dest)
            .with_context(|| format!("copying {} to {}", entry.path().display(), dest.display()))?;
        std::fs::File::options()
            .write(true)
            .open(&dest)
            .and_then(|f| f.set_modified(meta.modified()?))
            .with_context(|| format!("setting the mtime of {}", dest.display()))?;
    }
    Ok(())
}

/// The age of the node's lists from the mtime of the update-success-stamp
/// (if any) and those of the `*Release` files in the lists directory.
/// Without a Release file the lists are `None`, never updated, whatever the
/// stamp says: after `rm -rf /var/lib/apt/lists/*` apt knows no candidate,
/// however recent the last update was. A clock set back makes the lists
/// look new; that is age zero.
pub fn lists_age_of(
    stamp: Option<SystemTime>,
    releases: &[SystemTime],
    now: SystemTime,
) -> Option<Duration> {
    let newest = releases.iter().copied().max()?;
    let newest = stamp.map_or(newest, |s| s.max(newest));
    Some(now.duration_since(newest).unwrap_or_default())
}

/// The real node, probed through commands and file reads.
pub struct RealProbe;

impl Probe for RealProbe {
    fn init_system(&self) -> Result<InitSystem> {
        // sd_booted(3): this directory exists exactly when systemd is PID 1.
        Ok(if Path::new("/run/systemd/system").is_dir() {
            InitSystem::Systemd
        } else {
            InitSystem::Sysv
        })
    }

    fn lists_age(&self) -> Result<Option<Duration>> {
        let stamp = match std::fs::metadata(super::UPDATE_STAMP) {
            Ok(meta) => Some(meta.modified()?),
            Err(_) => None,
        };
        let mut releases = Vec::new();
        let dir = "/var/lib/apt/lists";
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.with_context(|| format!("reading {dir}"))?;
                    let name = entry.file_name();
                    if name.to_string_lossy().ends_with("Release") {
                        releases.push(
                            entry
                                .metadata()
                                .with_context(|| format!("stat {}", entry.path().display()))?
                                .modified()?,
                        );
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {dir}")),
        }
        Ok(lists_age_of(stamp, &releases, SystemTime::now()))
    }

    fn update_private_lists(&self, lists: &Lists) -> Result<()> {
        let Lists::Private { lists: dir, .. } = lists else {
            bail!("update_private_lists needs private lists, not {lists:?}");
        };
        std::fs::create_dir_all(dir.join("partial"))
            .with_context(|| format!("creating {}", dir.display()))?;
        seed_lists(dir)?;
        // apt runs the update hooks of /etc/apt/apt.conf.d after any update,
        // also this one: Ubuntu's touch the node's update-success-stamp,
        // rebuild command-not-found's database, run the ESM hook. A read-only
        // fetch must run none of them: a config file read after apt's own
        // clears the hook lists (apt reads -c files after apt.conf.d).
        let no_hooks = dir.with_extension("no-hooks.conf");
        std::fs::write(&no_hooks, NO_UPDATE_HOOKS)
            .with_context(|| format!("writing {}", no_hooks.display()))?;
        // The cache apt builds at the end lands in the run's scratch
        // directory, where the queries that follow load it.
        let out = apt_query("apt-get", lists)
            .arg("-c")
            .arg(no_hooks.to_string_lossy())
            // The private directory belongs to root; apt's _apt sandbox user could not write it.
            .args(["-o", "APT::Sandbox::User=root", "-qq", "update"])
            .output()?;
        let errors = apt::error_lines(&out.stderr);
        if out.code != 0
            || errors
                .iter()
                .any(|l| l.starts_with("E:") || l.starts_with("W: Some index files failed"))
        {
            bail!(
                "apt-get update into a private directory failed:\n    {}",
                errors.join("\n    ")
            );
        }
        Ok(())
    }

    fn apt_policy(
        &self,
        pkgs: &[PackageName],
        lists: &Lists,
    ) -> Result<BTreeMap<PackageName, Policy>> {
        if pkgs.is_empty() {
            return Ok(BTreeMap::new());
        }
        let out = apt_query("apt-cache", lists)
            .arg("policy")
            .args(pkgs)
            .run()?;
        apt::parse_policy(&out.stdout, pkgs)
            .map_err(anyhow::Error::msg)
            .context("reading apt-cache policy")
    }

    fn apt_show(&self, versions: &[(PackageName, String)], lists: &Lists) -> Result<Vec<Stanza>> {
        if versions.is_empty() {
            return Ok(Vec::new());
        }
        let out = apt_query("apt-cache", lists)
            .arg("show")
            .args(versions.iter().map(|(p, v)| format!("{p}={v}")))
            .run()?;
        Ok(apt::parse_stanzas(&out.stdout))
    }

    fn apt_show_every_version(&self, pkg: &PackageName, lists: &Lists) -> Result<Vec<Stanza>> {
        let out = apt_query("apt-cache", lists).arg("show").arg(pkg).run()?;
        Ok(apt::parse_stanzas(&out.stdout))
    }

    fn dpkg_packages(&self, pkgs: &[PackageName]) -> Result<BTreeMap<PackageName, DpkgPackage>> {
        if pkgs.is_empty() {
            return Ok(BTreeMap::new());
        }
        // Exit 1 with "no packages found matching" is an answer, not a
        // failure; the parser decides (`dpkg::parse_dpkg_query`).
        let out = Cmd::new("dpkg-query")
            .env("LC_ALL", "C")
            .args([
                "-W",
                "-f=${Package}|${db:Status-Abbrev}|${Status}|${Version}\\n",
            ])
            .args(pkgs)
            .output()?;
        dpkg::parse_dpkg_query(&out.stdout, &out.stderr, out.code, pkgs)
            .map_err(anyhow::Error::msg)
            .context("reading dpkg-query")
    }

    fn autoremovable(&self, lists: &Lists) -> Result<Vec<String>> {
        let scratch = match lists {
            Lists::Node { scratch } | Lists::Private { scratch, .. } => scratch,
        };
        // Its own cache: the shared one is for the lists, and a cache built
        // without them would replace it.
        let dir = scratch.join("autoremove");
        let no_lists = dir.join("lists");
        std::fs::create_dir_all(no_lists.join("partial"))
            .with_context(|| format!("creating {}", no_lists.display()))?;
        let out = apt_query(
            "apt-get",
            &Lists::Private {
                lists: no_lists,
                scratch: dir,
            },
        )
        .args(["-s", "autoremove"])
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

    fn left_unneeded(
        &self,
        lists: &Lists,
        installs: &[PackageName],
        removals: &[PackageName],
    ) -> Result<Vec<String>> {
        let out = apt_query("apt-get", lists)
            .args(["-s", "--autoremove", "install"])
            .args(installs.iter().map(|p| p.as_str()))
            .args(removals.iter().map(|p| format!("{p}-")))
            .run()?;
        Ok(apt::parse_simulation(&out.stdout)
            .into_iter()
            .filter(|l| matches!(l.action, SimAction::Remove | SimAction::Purge))
            .filter(|l| !removals.iter().any(|r| r.as_str() == l.package))
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
        Ok(Some(FileState {
            content,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            modified: meta.modified().ok(),
        }))
    }

    fn timezone(&self, zone: &crate::names::TimeZone) -> Result<super::timezone::TimezoneFact> {
        super::timezone::read(Path::new("/"), zone)
    }

    fn account_id(&self, name: &str, group: bool) -> Result<Option<u32>> {
        let db = if group { "/etc/group" } else { "/etc/passwd" };
        let text = std::fs::read_to_string(db).with_context(|| format!("reading {db}"))?;
        Ok(text.lines().find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(name))
                .then(|| fields.nth(1)?.parse().ok())
                .flatten()
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
                let parsed =
                    systemd::parse_show(&out.stdout, units.len()).map_err(anyhow::Error::msg)?;
                // systemd's start times are CLOCK_MONOTONIC microseconds.
                let now_monotonic = {
                    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
                    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
                };
                let now = SystemTime::now();
                Ok(parsed
                    .into_iter()
                    .map(|u| UnitFact {
                        exists: u.exists(),
                        running: u.is_running(),
                        enabled: u.is_enabled(),
                        main_pid: u.main_pid,
                        started: u.started_at_monotonic.and_then(|us| {
                            wall_clock_of(Duration::from_micros(us), now_monotonic, now)
                        }),
                    })
                    .collect())
            }
            InitSystem::Sysv => units.iter().map(sysv_unit).collect(),
        }
    }

    fn ask(&self, argv: &[&str]) -> Result<Output> {
        let (program, args) = argv.split_first().context("an empty command")?;
        Ok(Cmd::new(program).env("LC_ALL", "C").args(args).output()?)
    }

    fn dpkg_updates(&self) -> Result<Vec<String>> {
        match std::fs::read_dir(DPKG_UPDATES) {
            Ok(entries) => entries
                .map(|e| {
                    Ok(e.with_context(|| format!("reading {DPKG_UPDATES}"))?
                        .file_name()
                        .to_string_lossy()
                        .into_owned())
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("reading {DPKG_UPDATES}")),
        }
    }

    fn apt_fingerprint(&self) -> Result<Option<String>> {
        Ok(Self::fingerprint())
    }

    /// dpkg's status file (size, mtime, inode: dpkg replaces it by a
    /// rename on every change of a state or selection) and its journal's
    /// names (changes dpkg has not folded into the status file yet).
    fn dpkg_fingerprint(&self) -> Result<Option<String>> {
        // Without one, nothing is carried: dpkg is asked as usual.
        let status = match std::fs::metadata(DPKG_STATUS) {
            Ok(m) => m,
            Err(e) => {
                log::debug!("no fingerprint of {DPKG_STATUS}: {e}");
                return Ok(None);
            }
        };
        let mut journal = self.dpkg_updates()?;
        journal.sort();
        Ok(Some(format!(
            "{} {}.{:09} {}; {}",
            status.len(),
            status.mtime(),
            status.mtime_nsec(),
            status.ino(),
            journal.join(" ")
        )))
    }

    fn apt_memo(&self) -> Result<Option<String>> {
        let path = super::memo::MEMO_PATH;
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            // An unreadable record only costs speed.
            Err(e) => {
                log::warn!("ignoring {path}: {e}");
                Ok(None)
            }
        }
    }
}

impl RealProbe {
    /// `None` (nothing remembered) when the running kernel cannot be read:
    /// apt keeps it from autoremove, so answers depend on it.
    fn fingerprint() -> Option<String> {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        let apt_config = std::env::var_os("APT_CONFIG");
        Some(fingerprint_of(
            Path::new("/"),
            kernel.trim(),
            apt_config.as_deref(),
        ))
    }
}

/// The wall-clock time of a CLOCK_MONOTONIC instant, given both clocks now.
/// A clock stepped since then shifts the answer by the step.
pub fn wall_clock_of(
    monotonic: Duration,
    now_monotonic: Duration,
    now: SystemTime,
) -> Option<SystemTime> {
    now.checked_sub(now_monotonic.checked_sub(monotonic)?)
}

/// The fingerprint of apt's inputs under `root`: the running kernel
/// (`uname -r`: apt protects it from autoremove, so after a reboot an old
/// kernel can become autoremovable with no file changed), the APT_CONFIG
/// environment variable (another configuration altogether) and the file it
/// names, and path, size, mtime, inode and mode of every file of
/// [`apt_inputs`].
fn fingerprint_of(root: &Path, kernel: &str, apt_config: Option<&std::ffi::OsStr>) -> String {
    use std::hash::{Hash, Hasher};
    // Fixed keys: stable across runs of one build, which is all a record
    // keyed by it needs (another build at worst misses the record once).
    let mut h = std::collections::hash_map::DefaultHasher::new();
    kernel.hash(&mut h);
    apt_config.hash(&mut h);
    for (path, meta) in apt_inputs(root, apt_config.map(Path::new)) {
        path.hash(&mut h);
        (
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ino(),
            meta.mode(),
        )
            .hash(&mut h);
    }
    format!("{}; {:016x}", super::memo::fingerprint_prefix(), h.finish())
}

fn sysv_unit(unit: &UnitName) -> Result<UnitFact> {
    let script = format!("/etc/init.d/{}", unit.stem());
    if !Path::new(&script).exists() {
        return Ok(UnitFact {
            exists: false,
            running: false,
            enabled: false,
            main_pid: None,
            started: None,
        });
    }
    // LSB status: 0 running, 3 stopped; other codes say nothing reliable.
    let out = Cmd::new(&script)
        .env("LC_ALL", "C")
        .arg("status")
        .output()?;
    let running = matches!(systemd::sysv_status_from_exit(out.code), SysvState::Running);
    let mut entries = Vec::new();
    for level in 2..=5 {
        if let Ok(dir) = std::fs::read_dir(format!("/etc/rc{level}.d")) {
            entries.extend(
                dir.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
    }
    Ok(UnitFact {
        exists: true,
        running,
        enabled: systemd::sysv_enabled(&entries, unit.stem()),
        main_pid: None,
        started: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn a_monotonic_instant_on_the_wall_clock() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        // Started 90 s of uptime ago: 90 s before now on the wall clock.
        assert_eq!(
            wall_clock_of(Duration::from_secs(10), Duration::from_secs(100), now),
            Some(now - Duration::from_secs(90))
        );
        // A start "after now" (clocks read out of order) is no answer.
        assert_eq!(
            wall_clock_of(Duration::from_secs(101), Duration::from_secs(100), now),
            None
        );
    }

    /// A node's apt inputs under a temporary root: a sources file that is a
    /// symlink to a file elsewhere, and an APT_CONFIG file.
    fn apt_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for dir in [
            "etc/apt/sources.list.d",
            "var/lib/apt/lists/partial",
            "var/lib/dpkg",
            "elsewhere",
        ] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        std::fs::write(r.join("var/lib/dpkg/status"), "Package: ntp\n").unwrap();
        std::fs::write(r.join("var/lib/apt/lists/x_InRelease"), "Origin: x\n").unwrap();
        std::fs::write(r.join("elsewhere/debian.sources"), "Types: deb\n").unwrap();
        std::os::unix::fs::symlink(
            r.join("elsewhere/debian.sources"),
            r.join("etc/apt/sources.list.d/debian.sources"),
        )
        .unwrap();
        std::fs::write(r.join("elsewhere/apt.conf"), "Dir::Etc \"/etc/apt\";\n").unwrap();
        root
    }

    #[test]
    fn the_fingerprint_sees_the_kernel_apt_config_and_symlinked_files() {
        let root = apt_root();
        let r = root.path();
        let conf = r.join("elsewhere/apt.conf");
        let print = |kernel: &str, config: Option<&Path>| {
            fingerprint_of(r, kernel, config.map(Path::as_os_str))
        };
        let before = print("6.1.0-26-amd64", None);
        assert_eq!(print("6.1.0-26-amd64", None), before, "stable");

        // A reboot into another kernel, no file changed.
        assert_ne!(print("6.1.0-28-amd64", None), before);

        // APT_CONFIG set, and then the file it names edited.
        let with_config = print("6.1.0-26-amd64", Some(&conf));
        assert_ne!(with_config, before);
        std::fs::write(&conf, "Dir::Etc \"/srv/apt\";\n// longer\n").unwrap();
        assert_ne!(print("6.1.0-26-amd64", Some(&conf)), with_config);

        // What `apt-get update` does to partial/ when nothing is new; then a
        // list that changes.
        std::fs::write(r.join("var/lib/apt/lists/partial/x_Packages.xz"), "x").unwrap();
        assert_eq!(
            print("6.1.0-26-amd64", None),
            before,
            "partial/ is not read"
        );
        std::fs::write(
            r.join("var/lib/apt/lists/x_InRelease"),
            "Origin: y
Suite: z
",
        )
        .unwrap();
        let lists_changed = print("6.1.0-26-amd64", None);
        assert_ne!(lists_changed, before);

        // An edit to the target of a symlinked sources file (the link itself
        // is unchanged).
        std::fs::write(
            r.join("elsewhere/debian.sources"),
            "Types: deb deb-src\nURIs: http://deb.debian.org/debian\n",
        )
        .unwrap();
        assert_ne!(print("6.1.0-26-amd64", None), lists_changed);
    }

    #[test]
    fn lists_without_a_release_file_were_never_updated_whatever_the_stamp_says() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ago = |s: u64| now - Duration::from_secs(s);
        // `rm -rf /var/lib/apt/lists/*` a minute after an update.
        assert_eq!(lists_age_of(Some(ago(60)), &[], now), None);
        assert_eq!(lists_age_of(None, &[], now), None);
        // The newest of the stamp and the Release files counts.
        assert_eq!(
            lists_age_of(Some(ago(60)), &[ago(7200), ago(90_000)], now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            lists_age_of(None, &[ago(7200), ago(90_000)], now),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            lists_age_of(Some(ago(90_000)), &[ago(7200)], now),
            Some(Duration::from_secs(7200))
        );
        // A clock set back: age zero, not an error.
        assert_eq!(
            lists_age_of(None, &[now + Duration::from_secs(5)], now),
            Some(Duration::ZERO)
        );
    }
}
