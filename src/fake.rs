//! A hand-written in-memory node for tests: an archive, dpkg's database,
//! files and units, with a journal of every mutating call and every probe.
//!
//! It behaves as Debian does where the diff depends on it: installing a
//! package pulls its dependencies, creates its conffile and unit and starts
//! and enables the unit; removing keeps conffiles (`rc`), purging drops them.
//! Clones share one state, so one fake can serve as probe and as each executor.

use crate::apply::{AptExec, FileExec, Purge, ServiceExec};
use crate::diff::{Check, Health, ServiceAction};
use crate::facts::apt::{Policy, Stanza};
use crate::facts::dpkg::{DpkgPackage, DpkgState};
use crate::facts::{FileState, InitSystem, Lists, Probe, UnitFact};
use crate::names::{AbsPath, Mode, PackageName, UnitName};
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Default)]
pub struct ArchivePackage {
    pub candidate: Option<String>,
    pub depends: Vec<String>,
    pub unit: Option<String>,
    /// The config file the package ships, with its default content.
    pub conffile: Option<(String, String)>,
    /// Other versions apt also lists (`version`, `depends`), never the
    /// candidate: an older release's, still in some suite.
    pub older: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone)]
pub struct State {
    pub init: InitSystem,
    pub archive: BTreeMap<String, ArchivePackage>,
    /// The archive as the node's own lists still tell it, until `apt-get
    /// update` fetches `archive`; `None`: the lists tell `archive`. Private
    /// lists always tell `archive`.
    pub node_lists: Option<BTreeMap<String, ArchivePackage>>,
    pub dpkg: BTreeMap<String, DpkgState>,
    /// Packages on hold (`apt-mark hold`): apt refuses to change them.
    pub held: std::collections::BTreeSet<String>,
    pub lists_age: Option<Duration>,
    pub files: BTreeMap<String, FileState>,
    /// Directories that exist besides those holding a file.
    pub dirs: Vec<String>,
    pub units: BTreeMap<String, UnitFact>,
    pub autoremovable: Vec<String>,
    /// Per package, the `name version` of what its removal leaves unneeded.
    pub leaves_unneeded: BTreeMap<String, Vec<String>>,
    /// Mutating calls, as the real executor would run them.
    pub journal: Vec<String>,
    /// Read-only calls.
    pub probes: Vec<String>,
    /// A mutating call whose journal line starts with this fails.
    pub fail_on: Option<String>,
    /// Names in /var/lib/dpkg/updates; `0001` and the like mean dpkg was interrupted.
    pub dpkg_updates: Vec<String>,
    /// A policy-rc.d that forbids starts: an installed daemon is enabled but
    /// not started by its postinst (as on the test nodes, and in images).
    pub policy_forbids_start: bool,
    /// Zones in /usr/share/zoneinfo, and symbolic links by path (the
    /// node starts in Etc/UTC, as debootstrap leaves it).
    pub zoneinfo: std::collections::BTreeSet<String>,
    pub links: BTreeMap<String, String>,
    /// What a daemon's own tool prints, by its command line (`ntpq -pn`).
    pub answers: BTreeMap<String, crate::process::Output>,
    next_pid: u32,
    /// A logical clock: every write and every start reads a later time.
    clock: u64,
}

impl State {
    /// What apt knows of `name` reading `lists`.
    fn known(&self, name: &str, lists: &Lists) -> Option<&ArchivePackage> {
        match (lists, &self.node_lists) {
            (Lists::Node { .. }, Some(old)) => old.get(name),
            _ => self.archive.get(name),
        }
    }

    /// The fake's "now", one second later at every call, long before the
    /// real clock (facts refuse modification times later than their own).
    pub fn tick(&mut self) -> SystemTime {
        self.clock += 1;
        UNIX_EPOCH + Duration::from_secs(1_000_000 + self.clock)
    }
}

#[derive(Debug, Clone)]
pub struct FakeNode(pub Arc<Mutex<State>>);

impl FakeNode {
    /// A Debian 12 / Ubuntu 24.04-like archive: `ntp` is transitional for
    /// ntpsec. Nothing installed, lists never updated.
    pub fn bookworm() -> Self {
        let mut archive = BTreeMap::new();
        archive.insert(
            "ntp".into(),
            ArchivePackage {
                candidate: Some("1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1".into()),
                depends: vec!["ntpsec".into()],
                ..Default::default()
            },
        );
        archive.insert(
            "ntpsec".into(),
            ArchivePackage {
                candidate: Some("1.2.2+dfsg1-1+deb12u1".into()),
                depends: vec![],
                unit: Some("ntpsec.service".into()),
                conffile: Some((
                    "/etc/ntpsec/ntp.conf".into(),
                    "pool 0.debian.pool.ntp.org iburst\n".into(),
                )),
                ..Default::default()
            },
        );
        archive.insert(
            "ntpdate".into(),
            ArchivePackage {
                candidate: Some("1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1".into()),
                ..Default::default()
            },
        );
        archive.insert(
            "chrony".into(),
            ArchivePackage {
                candidate: Some("4.3-2+deb12u1".into()),
                unit: Some("chrony.service".into()),
                // Debian's postinst puts the key file in place (ucf).
                conffile: Some((
                    "/etc/chrony/chrony.keys".into(),
                    "# This file is solely used for NTP authentication with symmetric keys\n"
                        .into(),
                )),
                ..Default::default()
            },
        );
        archive.insert(
            "openntpd".into(),
            ArchivePackage {
                candidate: Some("1:6.8p1-4".into()),
                ..Default::default()
            },
        );
        Self::with_archive(archive)
    }

    /// A Debian 11 / Ubuntu 22.04-like archive: `ntp` is classic ntpd.
    pub fn bullseye() -> Self {
        let mut archive = BTreeMap::new();
        archive.insert(
            "ntp".into(),
            ArchivePackage {
                candidate: Some("1:4.2.8p15+dfsg-1".into()),
                depends: vec!["libopts25".into()],
                unit: Some("ntp.service".into()),
                conffile: Some((
                    "/etc/ntp.conf".into(),
                    "pool 0.debian.pool.ntp.org iburst\n".into(),
                )),
                ..Default::default()
            },
        );
        archive.insert(
            "libopts25".into(),
            ArchivePackage {
                candidate: Some("1:5.18.16-4".into()),
                ..Default::default()
            },
        );
        archive.insert(
            "ntpdate".into(),
            ArchivePackage {
                candidate: Some("1:4.2.8p15+dfsg-1".into()),
                ..Default::default()
            },
        );
        Self::with_archive(archive)
    }

    fn with_archive(archive: BTreeMap<String, ArchivePackage>) -> Self {
        let mut files = BTreeMap::new();
        files.insert(
            "/etc/passwd".into(),
            file("root:x:0:0:root:/root:/bin/bash\n"),
        );
        files.insert("/etc/group".into(), file("root:x:0:\n"));
        files.insert("/etc/timezone".into(), file("Etc/UTC\n"));
        FakeNode(Arc::new(Mutex::new(State {
            init: InitSystem::Systemd,
            archive,
            node_lists: None,
            dpkg: BTreeMap::new(),
            held: Default::default(),
            lists_age: None,
            files,
            dirs: vec![
                "/etc".into(),
                "/etc/default".into(),
                "/etc/dhcp/dhclient-exit-hooks.d".into(),
            ],
            units: BTreeMap::new(),
            autoremovable: Vec::new(),
            leaves_unneeded: BTreeMap::new(),
            journal: Vec::new(),
            probes: Vec::new(),
            fail_on: None,
            answers: BTreeMap::new(),
            zoneinfo: ["Etc/UTC", "Europe/Paris", "America/New_York"]
                .map(String::from)
                .into(),
            links: [(
                "/etc/localtime".to_string(),
                "/usr/share/zoneinfo/Etc/UTC".to_string(),
            )]
            .into(),
            dpkg_updates: Vec::new(),
            policy_forbids_start: false,
            next_pid: 100,
            clock: 0,
        })))
    }

    /// Applies `cs` with this node as every executor (`apply_redeciding`;
    /// `redecide` as `engine::execute` gives it, or none).
    pub fn apply(
        &self,
        cs: &crate::diff::Changeset,
        on_step: &mut dyn FnMut(&crate::report::StepReport),
        stop: &dyn Fn() -> Option<&'static str>,
        redecide: Option<&mut crate::apply::Redecide<'_>>,
    ) -> crate::report::Report {
        let (mut a, mut s, mut f) = (self.clone(), self.clone(), self.clone());
        let mut exec = crate::apply::Executors {
            apt: &mut a,
            services: &mut s,
            files: &mut f,
            units: self,
            progress: &mut crate::apply::Unwatched,
        };
        crate::apply::apply_redeciding(cs, &mut exec, on_step, stop, redecide)
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding it leaves the state as it was.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn journal(&self) -> Vec<String> {
        self.state().journal.clone()
    }

    pub fn file_text(&self, path: &str) -> Option<String> {
        self.state()
            .files
            .get(path)
            .map(|f| String::from_utf8_lossy(&f.content).into_owned())
    }

    fn record(&self, line: String) -> Result<()> {
        let mut s = self.state();
        let fail = s
            .fail_on
            .as_ref()
            .is_some_and(|prefix| line.starts_with(prefix.as_str()));
        s.journal.push(line.clone());
        if fail {
            bail!("fake failure of `{line}`");
        }
        Ok(())
    }

    fn probe(&self, line: String) {
        self.state().probes.push(line);
    }

    fn install_one(&self, name: &str, version: Option<&str>) -> Result<()> {
        // apt installs from the node's own lists.
        let node = Lists::Node {
            scratch: Default::default(),
        };
        let pkg = self.state().known(name, &node).cloned();
        let Some(pkg) = pkg else {
            bail!("E: Unable to locate package {name}")
        };
        let Some(candidate) = pkg.candidate.clone() else {
            bail!("E: Package '{name}' has no installation candidate")
        };
        if let Some(v) = version {
            if v != candidate {
                bail!("E: Version '{v}' for '{name}' was not found");
            }
        }
        self.not_held(name, Some(&candidate))?;
        for dep in &pkg.depends {
            let installed = self
                .state()
                .dpkg
                .get(dep)
                .is_some_and(DpkgState::is_installed);
            if !installed {
                self.install_one(dep, None)?;
            }
        }
        let mut s = self.state();
        s.dpkg
            .insert(name.into(), DpkgState::Installed { version: candidate });
        if let Some((path, content)) = &pkg.conffile {
            s.files.entry(path.clone()).or_insert_with(|| file(content));
        }
        if let Some(unit) = &pkg.unit {
            // Debian's postinst enables and starts a daemon's service
            // (deb-systemd-helper enables; the start obeys policy-rc.d).
            let running = !s.policy_forbids_start;
            let pid = s.next_pid;
            s.next_pid += 1;
            let now = s.tick();
            s.units.insert(
                unit.clone(),
                UnitFact {
                    exists: true,
                    running,
                    enabled: true,
                    main_pid: running.then_some(pid),
                    started: running.then_some(now),
                },
            );
        }
        Ok(())
    }
}

/// A file as a package ships it: dpkg keeps the archive's old mtime.
pub(crate) fn file(content: &str) -> FileState {
    FileState {
        content: content.as_bytes().to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        modified: Some(UNIX_EPOCH + Duration::from_secs(1_000)),
    }
}

impl crate::apply::UnitView for FakeNode {
    fn unit(&self, unit: &UnitName) -> Result<UnitFact> {
        let init = self.state().init;
        Ok(self.units(init, std::slice::from_ref(unit))?.remove(0))
    }
}

impl Probe for FakeNode {
    fn init_system(&self) -> Result<InitSystem> {
        Ok(self.state().init)
    }

    fn lists_age(&self) -> Result<Option<Duration>> {
        self.probe("lists age".into());
        Ok(self.state().lists_age)
    }

    fn update_private_lists(&self, _lists: &Lists) -> Result<()> {
        self.probe("apt-get update (private lists)".into());
        Ok(())
    }

    fn apt_policy(
        &self,
        pkgs: &[PackageName],
        lists: &Lists,
    ) -> Result<BTreeMap<PackageName, Policy>> {
        self.probe(format!("apt-cache policy {}", join(pkgs)));
        let s = self.state();
        Ok(pkgs
            .iter()
            .map(|p| {
                let installed = s
                    .dpkg
                    .get(p.as_str())
                    .and_then(|d| d.installed_version().map(str::to_string));
                let candidate = s.known(p.as_str(), lists).and_then(|a| a.candidate.clone());
                (
                    p.clone(),
                    Policy {
                        installed,
                        candidate,
                    },
                )
            })
            .collect())
    }

    fn apt_show(&self, versions: &[(PackageName, String)], lists: &Lists) -> Result<Vec<Stanza>> {
        let asked: Vec<String> = versions.iter().map(|(p, v)| format!("{p}={v}")).collect();
        self.probe(format!("apt-cache show {}", asked.join(" ")));
        Ok(self.stanzas(versions, lists))
    }

    fn apt_show_every_version(&self, pkg: &PackageName, lists: &Lists) -> Result<Vec<Stanza>> {
        self.probe(format!("apt-cache show {pkg}"));
        // The older versions first, as apt may list them.
        let versions: Vec<(PackageName, String)> = match self.state().known(pkg.as_str(), lists) {
            Some(a) => a
                .older
                .iter()
                .map(|(v, _)| v.clone())
                .chain(a.candidate.clone())
                .map(|v| (pkg.clone(), v))
                .collect(),
            None => bail!("E: No packages found"),
        };
        Ok(self.stanzas(&versions, lists))
    }

    fn dpkg_packages(&self, pkgs: &[PackageName]) -> Result<BTreeMap<PackageName, DpkgPackage>> {
        self.probe(format!("dpkg-query {}", join(pkgs)));
        let s = self.state();
        Ok(pkgs
            .iter()
            .map(|p| {
                let state = s
                    .dpkg
                    .get(p.as_str())
                    .cloned()
                    .unwrap_or(DpkgState::NotInstalled);
                let held = s.held.contains(p.as_str());
                (p.clone(), DpkgPackage { state, held })
            })
            .collect())
    }

    fn left_unneeded(
        &self,
        _lists: &Lists,
        _installs: &[PackageName],
        removals: &[PackageName],
    ) -> Result<Vec<String>> {
        self.probe(format!(
            "apt-get -s --autoremove install ... {}-",
            join(removals)
        ));
        let s = self.state();
        Ok(removals
            .iter()
            .filter_map(|r| s.leaves_unneeded.get(r.as_str()))
            .flatten()
            .cloned()
            .collect())
    }

    fn autoremovable(&self, _lists: &Lists) -> Result<Vec<String>> {
        self.probe("apt-get -s autoremove".into());
        Ok(self.state().autoremovable.clone())
    }

    fn file(&self, path: &AbsPath) -> Result<Option<FileState>> {
        self.probe(format!("read {path}"));
        Ok(self.state().files.get(path.as_str()).cloned())
    }

    fn timezone(
        &self,
        zone: &crate::names::TimeZone,
    ) -> Result<crate::facts::timezone::TimezoneFact> {
        use crate::facts::timezone::{Localtime, TimezoneFact, ZoneFile, LOCALTIME, TIMEZONE_FILE};
        self.probe(format!("read the time zone {zone}"));
        let s = self.state();
        Ok(TimezoneFact {
            zone: zone.clone(),
            zone_file: match s.zoneinfo.contains(zone.as_str()) {
                true => ZoneFile::Tzif,
                false => ZoneFile::Missing,
            },
            localtime: match (s.links.get(LOCALTIME), s.files.contains_key(LOCALTIME)) {
                (Some(target), _) => Localtime::Link(target.clone()),
                (None, true) => Localtime::File,
                (None, false) => Localtime::Missing,
            },
            timezone_file: s
                .files
                .get(TIMEZONE_FILE)
                .map(|f| String::from_utf8_lossy(&f.content).into_owned()),
        })
    }

    fn account_id(&self, name: &str, group: bool) -> Result<Option<u32>> {
        let db = if group { "/etc/group" } else { "/etc/passwd" };
        let text = self.file_text(db).unwrap_or_default();
        Ok(text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name))
                .then(|| f.get(2)?.parse().ok())
                .flatten()
        }))
    }

    fn units(&self, _init: InitSystem, units: &[UnitName]) -> Result<Vec<UnitFact>> {
        self.probe(format!("systemctl show {}", join(units)));
        let s = self.state();
        Ok(units
            .iter()
            .map(|u| {
                s.units.get(u.as_str()).cloned().unwrap_or(UnitFact {
                    exists: false,
                    running: false,
                    enabled: false,
                    main_pid: None,
                    started: None,
                })
            })
            .collect())
    }

    /// Everything dpkg holds here: it changes with any state or hold.
    fn dpkg_fingerprint(&self) -> Result<Option<String>> {
        let s = self.state();
        Ok(Some(format!(
            "{:?} {:?} {:?}",
            s.dpkg, s.held, s.dpkg_updates
        )))
    }

    fn dpkg_updates(&self) -> Result<Vec<String>> {
        self.probe("ls /var/lib/dpkg/updates".into());
        Ok(self.state().dpkg_updates.clone())
    }

    fn ask(&self, argv: &[&str]) -> Result<crate::process::Output> {
        let line = argv.join(" ");
        self.probe(line.clone());
        let answer = self.state().answers.get(&line).cloned();
        answer.ok_or_else(|| anyhow::anyhow!("`{line}` could not start: not on this fake node"))
    }
}

impl FakeNode {
    /// apt-cache show's stanzas for these versions (no probe recorded).
    fn stanzas(&self, versions: &[(PackageName, String)], lists: &Lists) -> Vec<Stanza> {
        let s = self.state();
        // apt prints nothing for a version it does not have.
        versions
            .iter()
            .filter_map(|(p, v)| {
                let a = s.known(p.as_str(), lists)?;
                let depends = if a.candidate.as_ref() == Some(v) {
                    &a.depends
                } else {
                    &a.older.iter().find(|(old, _)| old == v)?.1
                };
                let mut fields = vec![("Package".to_string(), p.to_string())];
                fields.push(("Version".into(), v.clone()));
                if !depends.is_empty() {
                    fields.push(("Depends".into(), depends.join(", ")));
                }
                Some(Stanza { fields })
            })
            .collect()
    }
}

impl FakeNode {
    /// apt refuses every change while dpkg's journal is not empty.
    fn apt_allowed(&self) -> Result<()> {
        if crate::facts::dpkg::dpkg_interrupted(&self.state().dpkg_updates) {
            bail!("E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem.");
        }
        Ok(())
    }
}

impl FakeNode {
    /// apt, run with -y, refuses to change a held package.
    fn not_held(&self, name: &str, to: Option<&str>) -> Result<()> {
        let s = self.state();
        let now = s.dpkg.get(name).and_then(DpkgState::installed_version);
        if s.held.contains(name) && now != to {
            bail!("E: Held packages were changed and -y was used without --allow-change-held-packages.");
        }
        Ok(())
    }
}

impl AptExec for FakeNode {
    fn update(&mut self) -> Result<()> {
        self.record("apt-get update".into())?;
        self.apt_allowed()?;
        let mut s = self.state();
        s.lists_age = Some(Duration::ZERO);
        s.node_lists = None;
        Ok(())
    }

    fn repair(&mut self) -> Result<()> {
        self.record("dpkg --configure -a".into())?;
        let mut s = self.state();
        s.dpkg_updates.clear();
        // As dpkg: a package that needs a reinstall (iH, iHR, iiR) or is
        // selected for removal (rU) stays as it is.
        for state in s.dpkg.values_mut() {
            if let (true, Some(version)) = (state.configured_by_repair(), state.installed_version())
            {
                let version = version.to_string();
                *state = DpkgState::Installed { version };
            }
        }
        Ok(())
    }

    fn install(&mut self, packages: &[(PackageName, String)]) -> Result<()> {
        let args: Vec<String> = packages.iter().map(|(p, v)| format!("{p}={v}")).collect();
        self.record(format!("apt-get install {}", args.join(" ")))?;
        self.apt_allowed()?;
        packages
            .iter()
            .try_for_each(|(p, v)| self.install_one(p.as_str(), Some(v)))
    }

    fn remove(&mut self, packages: &[PackageName], purge: Purge) -> Result<()> {
        let verb = if purge == Purge::Yes {
            "purge"
        } else {
            "remove"
        };
        self.record(format!("apt-get {verb} {}", join(packages)))?;
        self.apt_allowed()?;
        for p in packages {
            self.not_held(p.as_str(), None)?;
        }
        let mut s = self.state();
        for p in packages {
            let left = s.leaves_unneeded.remove(p.as_str()).unwrap_or_default();
            s.autoremovable.extend(left);
            let pkg = s.archive.get(p.as_str()).cloned().unwrap_or_default();
            let version = s.dpkg.get(p.as_str()).and_then(|d| match d {
                DpkgState::Installed { version }
                | DpkgState::ConfigFiles { version }
                | DpkgState::Broken { version, .. } => Some(version.clone()),
                DpkgState::NotInstalled => None,
            });
            if let Some(unit) = &pkg.unit {
                s.units.remove(unit);
            }
            match (purge, version) {
                (Purge::No, Some(version)) if pkg.conffile.is_some() => {
                    s.dpkg
                        .insert(p.to_string(), DpkgState::ConfigFiles { version });
                }
                _ => {
                    s.dpkg.remove(p.as_str());
                    if let Some((path, _)) = &pkg.conffile {
                        s.files.remove(path);
                    }
                }
            }
        }
        Ok(())
    }

    fn autoremove(&mut self) -> Result<Vec<String>> {
        self.record("apt-get autoremove --purge".into())?;
        self.apt_allowed()?;
        let mut s = self.state();
        let gone = std::mem::take(&mut s.autoremovable);
        for entry in &gone {
            let name = entry.split(' ').next().unwrap_or_default().to_string();
            s.dpkg.remove(&name);
        }
        Ok(gone)
    }
}

impl ServiceExec for FakeNode {
    fn check_health(&mut self, unit: &UnitName, health: &Health) -> Result<()> {
        self.probe(format!("health {unit}"));
        let running = self
            .state()
            .units
            .get(unit.as_str())
            .is_some_and(|u| u.running);
        match health {
            _ if !running => bail!("{unit} is inactive after being started"),
            Health::Answering { flavor } if !self.daemon_answers() => {
                bail!("{} did not answer on localhost within 10 s; last log lines of {unit}:\n    fake: bad config", flavor.as_str())
            }
            _ => Ok(()),
        }
    }

    fn service(&mut self, unit: &UnitName, action: ServiceAction) -> Result<()> {
        self.record(format!("systemctl {} {unit}", action.verb()))?;
        let mut s = self.state();
        let pid = s.next_pid;
        let now = s.tick();
        let Some(u) = s.units.get_mut(unit.as_str()) else {
            bail!("Unit {unit} not found.")
        };
        match action {
            ServiceAction::Start if !u.running => {
                u.running = true;
                u.main_pid = Some(pid);
                u.started = Some(now);
            }
            ServiceAction::Start => {}
            ServiceAction::Restart => {
                u.running = true;
                u.main_pid = Some(pid);
                u.started = Some(now);
            }
            ServiceAction::Stop => {
                u.running = false;
                u.main_pid = None;
                u.started = None;
            }
            ServiceAction::Enable => u.enabled = true,
            ServiceAction::Disable => u.enabled = false,
        }
        s.next_pid += 1;
        Ok(())
    }
}

impl FakeNode {
    /// The fake daemons answer unless one of the files holds a line
    /// starting `unhealthy`: a config that parses but does not work.
    fn daemon_answers(&self) -> bool {
        !self.state().files.values().any(|f| {
            f.content
                .split(|b| *b == b'\n')
                .any(|l| l.starts_with(b"unhealthy"))
        })
    }
}

impl FileExec for FakeNode {
    fn link(&mut self, path: &AbsPath, target: &str) -> Result<()> {
        self.record(format!("link {path} -> {target}"))?;
        let mut s = self.state();
        s.files.remove(path.as_str());
        s.links.insert(path.to_string(), target.to_string());
        Ok(())
    }

    fn restore(&mut self, r: &crate::diff::Restore, created: bool) -> Result<()> {
        let (path, backup) = (&r.path, &r.backup);
        self.record(format!("restore {path} {backup}"))?;
        let mut s = self.state();
        if created {
            s.files.remove(path.as_str());
            return Ok(());
        }
        match s.files.get(backup.as_str()).cloned() {
            // A copy: written now, as the real restore does.
            Some(saved) => {
                let now = s.tick();
                s.files.insert(
                    path.to_string(),
                    FileState {
                        modified: Some(now),
                        ..saved
                    },
                )
            }
            None => bail!("the backup {backup} is missing; {path} is left as it is"),
        };
        Ok(())
    }

    fn write(
        &mut self,
        path: &AbsPath,
        content: &[u8],
        mode: Mode,
        uid: u32,
        gid: u32,
        check: &Check,
        backup: Option<&AbsPath>,
    ) -> Result<bool> {
        // The fake daemons reject any config with a line starting `bogus`.
        if matches!(check, Check::Daemon { .. })
            && content
                .split(|b| *b == b'\n')
                .any(|l| l.starts_with(b"bogus"))
        {
            self.record(format!("write {path}"))?;
            bail!("{path}: line 1 column 0 syntax error (fake check)");
        }
        let existed = self.state().files.contains_key(path.as_str());
        if let Some(b) = backup.filter(|_| existed) {
            self.keep_backup(path, b)?;
        }
        self.record(format!("write {path}"))?;
        let parent = path
            .as_path()
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut s = self.state();
        let dir_exists = s.dirs.contains(&parent)
            || s.files.keys().any(|f| f.starts_with(&format!("{parent}/")));
        if !dir_exists && crate::apply::files::makes_its_directory(path) {
            s.dirs.push(parent.clone());
            drop(s);
            self.record(format!("mkdir {parent}"))?;
            s = self.state();
        } else if !dir_exists {
            bail!("directory {parent} does not exist");
        }
        let now = s.tick();
        s.files.insert(
            path.to_string(),
            FileState {
                content: content.to_vec(),
                mode: mode.0,
                uid,
                gid,
                modified: Some(now),
            },
        );
        Ok(existed)
    }
}

impl FakeNode {
    /// The real executor's backup (`apply::files::keep_backup`), on the
    /// fake's files: an existing backup of the same content is kept as it
    /// is, the newest distinct versions are kept.
    fn keep_backup(&self, path: &AbsPath, backup: &AbsPath) -> Result<()> {
        self.record(format!("backup {path} {backup}"))?;
        let mut s = self.state();
        let current = s.files[path.as_str()].clone();
        match s.files.get(backup.as_str()) {
            Some(old) if old.content != current.content => {
                anyhow::bail!("the backup {backup} already exists with other content")
            }
            Some(_) => {}
            None => {
                s.files.insert(backup.to_string(), current.clone());
            }
        }
        let prefix = format!("{path}.");
        let mut old: Vec<String> = s
            .files
            .keys()
            .filter(|k| k.starts_with(&prefix) && k.ends_with(crate::diff::BACKUP_SUFFIX))
            .filter(|k| *k != backup.as_str())
            .cloned()
            .collect();
        old.sort();
        let mut kept = vec![current.content];
        for k in old.into_iter().rev() {
            let content = s.files[&k].content.clone();
            if !kept.contains(&content) && kept.len() < crate::diff::BACKUPS_KEPT {
                kept.push(content);
            } else {
                s.files.remove(&k);
            }
        }
        Ok(())
    }
}

fn join<T: AsRef<str>>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.as_ref())
        .collect::<Vec<_>>()
        .join(" ")
}
