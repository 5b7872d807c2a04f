//! Stage 4: apply. Executes a changeset, change by change, through executor
//! traits for apt, services and files, and reports each step as it finishes.
//!
//! Executors get only what a change carries: they never see the plan, never
//! re-query the node to decide what to do, and never know about dry runs
//! (a dry run simply never reaches this stage). After the first failure the
//! remaining steps are reported as skipped, handlers included.
//!
//! One read is allowed while applying, by this loop, never by an executor:
//! after the run changed packages, a planned enable, disable, start or stop
//! of a unit is checked against the unit's state first (`UnitView`), since
//! Debian's maintainer scripts enable and start a daemon they install. What
//! is already so is reported as `settled`, not run again. Likewise a
//! handler's restart of a unit this run started after every change that
//! notified it: the start already loaded them.
//!
//! A changeset decided on package lists older than the plan allows
//! (`redecide_after_update`) is decided again right after its update of
//! the lists, through `Redecide`: the rest of the run goes by the fresh
//! lists, as `plan` showed.
//!
//! A file change first keeps the old content as the backup it names. A
//! (re)start is a transaction: the unit must come up healthy, and when a
//! handler's restart does not, the files listed in its `rollback` (decided
//! by the diff) are put back and the unit restarted on them.

pub mod apt;
pub mod files;
mod holders;
pub mod services;

use crate::diff::{
    Change, Changeset, Check, FileMeta, Health, PkgChange, PlannedStep, Restore, ServiceAction,
};
use crate::facts::UnitFact;
use crate::names::{AbsPath, Mode, PackageName, UnitName};
use crate::report::{Report, Status, StepReport};
use anyhow::Result;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    Yes,
    No,
}

pub trait AptExec {
    fn update(&mut self) -> Result<()>;
    /// `dpkg --configure -a`.
    fn repair(&mut self) -> Result<()>;
    /// Installs each package at exactly the given version, in one call.
    fn install(&mut self, packages: &[(PackageName, String)]) -> Result<()>;
    fn remove(&mut self, packages: &[PackageName], purge: Purge) -> Result<()>;
    /// Removes what nothing needs any more; returns what it removed, as
    /// `name version`.
    fn autoremove(&mut self) -> Result<Vec<String>>;
}

pub trait ServiceExec {
    fn service(&mut self, unit: &UnitName, action: ServiceAction) -> Result<()>;
    /// After a start or restart: whether the unit is `health`y, within a
    /// bounded time. The error carries the unit's own log lines.
    fn check_health(&mut self, unit: &UnitName, health: &Health) -> Result<()>;
}

pub trait FileExec {
    /// Replaces `path` atomically with `content`, owned by uid:gid with
    /// `mode`, once `check` accepted the new content (else `path` is
    /// untouched and no backup made). Only then is the old file copied to
    /// `backup` (content, mode, owner; an existing backup of the same
    /// content is that version kept already), keeping the `BACKUPS_KEPT`
    /// newest distinct versions, never `backup` itself. Returns whether a
    /// file was there (the facts may say otherwise: a package installed
    /// earlier in the run may have shipped it).
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        path: &AbsPath,
        content: &[u8],
        mode: Mode,
        uid: u32,
        gid: u32,
        check: &Check,
        backup: Option<&AbsPath>,
    ) -> Result<bool>;
    /// Puts the backup back as the file atomically or, for a file the run
    /// `created`, removes it. A missing backup of a file the run did not
    /// create is an error, and the file stays.
    fn restore(&mut self, restore: &Restore, created: bool) -> Result<()>;
    /// Replaces `path` atomically with a symbolic link to `target`: a link
    /// under a temporary name beside it, renamed over it.
    fn link(&mut self, path: &AbsPath, target: &str) -> Result<()>;
}

pub struct Executors<'a> {
    pub apt: &'a mut dyn AptExec,
    pub services: &'a mut dyn ServiceExec,
    pub files: &'a mut dyn FileExec,
    /// Read-only: a unit's state now (see the module's doc).
    pub units: &'a dyn UnitView,
    /// Told what is about to run, for an operator watching.
    pub progress: &'a mut dyn Progress,
}

/// What the run is about to do, as it goes: a step, then each change of it
/// that runs. Only for showing; nothing here can change the run.
pub trait Progress {
    fn step_started(&mut self, _step: &PlannedStep) {}
    fn change_started(&mut self, _change: &Change) {}
}

/// No one is watching.
pub struct Unwatched;
impl Progress for Unwatched {}

/// A unit's state as the node has it now; the same probe as the facts stage.
/// Read on a thread of its own while the run goes on (`Ahead`).
pub trait UnitView: Sync {
    fn unit(&self, unit: &UnitName) -> Result<UnitFact>;
}

/// Whether `change` is already so for a unit in `state`.
fn already_so(change: &Change, state: &UnitFact) -> bool {
    match change {
        Change::Service {
            action: ServiceAction::Enable,
            ..
        } => state.enabled,
        Change::Service {
            action: ServiceAction::Disable,
            ..
        } => !state.enabled,
        Change::Service {
            action: ServiceAction::Start,
            ..
        } => state.running,
        Change::Service {
            action: ServiceAction::Stop,
            ..
        } => !state.running,
        _ => false,
    }
}

/// After a package change of this run: the planned enable, disable, start
/// or stop that the package's own scripts already made, if `change` is one.
/// `read`: the units read so far in this step (a unit is read once per
/// step: none of these changes alters what another of them checks, a
/// start leaves enablement as it was and an enable the running state).
fn settled_by_packages(
    change: &Change,
    units: &dyn UnitView,
    read: &mut BTreeMap<UnitName, UnitFact>,
    ahead: &mut Ahead<'_>,
) -> Option<String> {
    let Change::Service {
        unit,
        action:
            ServiceAction::Enable | ServiceAction::Disable | ServiceAction::Start | ServiceAction::Stop,
        ..
    } = change
    else {
        return None;
    };
    if !read.contains_key(unit) {
        match ahead.take(unit).unwrap_or_else(|| units.unit(unit)) {
            Ok(state) => {
                read.insert(unit.clone(), state);
            }
            Err(e) => {
                log::debug!("reading {unit} before `{change}`: {e:#}; running it");
                return None;
            }
        }
    }
    already_so(change, &read[unit])
        .then(|| format!("{change} (done by the package changes of this run)"))
}

/// The units a package change may have enabled, disabled, started or
/// stopped, read on a thread of their own right after it, while the steps
/// before their own (file writes, a config check) run: a file write
/// enables, starts or stops nothing. Any other change that runs after the
/// read makes it stale: it is dropped, and the next package change reads
/// again.
#[derive(Default)]
struct Ahead<'scope> {
    pending: Option<AheadRead<'scope>>,
    read: BTreeMap<UnitName, UnitFact>,
}

type AheadRead<'scope> = std::thread::ScopedJoinHandle<'scope, Vec<(UnitName, Result<UnitFact>)>>;

impl<'scope> Ahead<'scope> {
    /// After `change` ran: drops what it made stale, and after a package
    /// change starts reading the units `wanted` (a thread of `scope`).
    fn after<'env>(
        &mut self,
        change: &Change,
        wanted: Vec<UnitName>,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        units: &'env dyn UnitView,
    ) {
        if matches!(change, Change::File { .. } | Change::Timezone { .. }) {
            return;
        }
        // A thread still reading is left to end; its answer is not used.
        self.pending = None;
        self.read.clear();
        if is_package_change(change) && !wanted.is_empty() {
            self.pending = Some(scope.spawn(move || {
                wanted
                    .into_iter()
                    .map(|u| {
                        let state = units.unit(&u);
                        (u, state)
                    })
                    .collect()
            }));
        }
    }

    /// The unit's state read ahead, if it was (waiting for the read if
    /// it is still going on); `None`: read it now.
    fn take(&mut self, unit: &UnitName) -> Option<Result<UnitFact>> {
        if let Some(pending) = self.pending.take() {
            let answers = pending
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (u, state) in answers {
                match state {
                    Ok(state) => {
                        self.read.insert(u, state);
                    }
                    Err(e) => log::debug!("reading {u} ahead: {e:#}; read again when needed"),
                }
            }
        }
        self.read.get(unit).cloned().map(Ok)
    }
}

fn is_package_change(change: &Change) -> bool {
    matches!(
        change,
        Change::Install { .. }
            | Change::Remove { .. }
            | Change::Purge { .. }
            | Change::Autoremove { .. }
            | Change::Repair { .. }
    )
}

/// The units whose enable, disable, start or stop comes after change `at`
/// of step `index` (the checks `settled_by_packages` makes).
fn units_checked_after(changeset: &Changeset, index: usize, at: usize) -> Vec<UnitName> {
    let rest = changeset.steps[index].changes.iter().skip(at);
    let later = changeset.steps[index + 1..].iter().flat_map(|s| &s.changes);
    let mut units: Vec<UnitName> = rest
        .chain(later)
        .filter_map(|c| match c {
            Change::Service {
                unit,
                action:
                    ServiceAction::Enable
                    | ServiceAction::Disable
                    | ServiceAction::Start
                    | ServiceAction::Stop,
                ..
            } => Some(unit.clone()),
            _ => None,
        })
        .collect();
    units.sort();
    units.dedup();
    units
}

/// Runs every change in order; `on_step` sees each step's report as soon as
/// the step is done (the human output prints it then).
pub fn apply(
    changeset: &Changeset,
    exec: &mut Executors<'_>,
    on_step: &mut dyn FnMut(&StepReport),
) -> Report {
    apply_until(changeset, exec, on_step, &|| None)
}

/// As `apply`, but `stop` is asked before each step: once it names a signal,
/// the step in progress has finished and the rest are skipped, and the
/// report's error says so. Nothing is cut off half way.
pub fn apply_until(
    changeset: &Changeset,
    exec: &mut Executors<'_>,
    on_step: &mut dyn FnMut(&StepReport),
    stop: &dyn Fn() -> Option<&'static str>,
) -> Report {
    apply_redeciding(changeset, exec, on_step, stop, None)
}

/// Decides the rest of a run again right after it updated the package
/// lists (`Changeset::redecide_after_update`): gets what ran (the steps
/// before, and the update's own step up to the update) and returns the
/// whole changeset, those steps unchanged (`diff::diff_after_update`).
pub type Redecide<'a> = dyn FnMut(&[PlannedStep]) -> Result<Changeset, String> + 'a;

/// As `apply_until`; when the changeset was decided on old package lists,
/// `redecide` gives the changes after the first update of the lists, and
/// the run goes on with those. If it fails, the update stands and
/// everything after it is skipped: the report's error says why.
pub fn apply_redeciding(
    changeset: &Changeset,
    exec: &mut Executors<'_>,
    on_step: &mut dyn FnMut(&StepReport),
    stop: &dyn Fn() -> Option<&'static str>,
    redecide: Option<&mut Redecide<'_>>,
) -> Report {
    let units = exec.units;
    std::thread::scope(|scope| apply_in(scope, units, changeset, exec, on_step, stop, redecide))
}

/// `apply_redeciding`, its units read ahead on threads of `scope`.
fn apply_in<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    units: &'env dyn UnitView,
    changeset: &Changeset,
    exec: &mut Executors<'_>,
    on_step: &mut dyn FnMut(&StepReport),
    stop: &dyn Fn() -> Option<&'static str>,
    mut redecide: Option<&mut Redecide<'_>>,
) -> Report {
    let mut run = Run::new(scope, units, changeset);
    let mut reports = Vec::new();
    // The signal, and how many steps had finished when it was seen.
    let mut interrupted: Option<(&'static str, usize)> = None;
    let mut index = 0;
    while index < run.current.steps.len() {
        let started = Instant::now();
        if interrupted.is_none() && !run.failed {
            interrupted = stop().map(|signal| (signal, reports.len()));
        }
        let mut report = if run.failed || interrupted.is_some() {
            skipped(&run.current.steps[index])
        } else {
            exec.progress.step_started(&run.current.steps[index]);
            run.step(index, exec, &mut redecide)
        };
        report.seconds = started.elapsed().as_secs_f64();
        on_step(&report);
        reports.push(report);
        index += 1;
    }
    run.report(reports, interrupted)
}

/// The report of a step that did not run: a failure or a signal came first.
fn skipped(step: &PlannedStep) -> StepReport {
    let mut report = StepReport::planned(step);
    report.status = Status::Skipped;
    report.changes.clear();
    report.diff = None;
    report
}

/// A run under way: the changeset it goes by (a redecision replaces it),
/// and what its changes so far did that later ones depend on.
struct Run<'c, 'scope, 'env> {
    scope: &'scope std::thread::Scope<'scope, 'env>,
    units: &'env dyn UnitView,
    current: Cow<'c, Changeset>,
    ahead: Ahead<'scope>,
    failed: bool,
    /// Why the rest could not be decided again after the update of the lists.
    redecide_error: Option<String>,
    packages_changed: bool,
    /// Units this run started (or restarted) with no change run since.
    fresh_starts: BTreeSet<UnitName>,
    /// Files this run wrote where none was (a rollback removes them).
    created: BTreeSet<AbsPath>,
}

impl<'c, 'scope, 'env> Run<'c, 'scope, 'env> {
    fn new(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        units: &'env dyn UnitView,
        changeset: &'c Changeset,
    ) -> Self {
        Run {
            scope,
            units,
            current: Cow::Borrowed(changeset),
            ahead: Ahead::default(),
            failed: false,
            redecide_error: None,
            packages_changed: false,
            fresh_starts: BTreeSet::new(),
            created: BTreeSet::new(),
        }
    }

    /// Runs the changes of step `index` that are not already so, until one
    /// fails.
    fn step(
        &mut self,
        index: usize,
        exec: &mut Executors<'_>,
        redecide: &mut Option<&mut Redecide<'_>>,
    ) -> StepReport {
        let step = self.current.steps[index].clone();
        let mut report = StepReport::planned(&step);
        if step.changes.is_empty() {
            return report;
        }
        let mut done = Vec::new();
        // The step's changes; after a redecision, those of its new version.
        let mut changes = step.changes.clone();
        let mut at = 0;
        let mut units_read = BTreeMap::new();
        while at < changes.len() {
            let change = changes[at].clone();
            at += 1;
            if let Some(settled) = self.settled(&change, step.handler, &mut units_read) {
                report.settled.push(settled);
                continue;
            }
            done.push(change.clone());
            exec.progress.change_started(&change);
            let result = match done.last_mut() {
                // What apt removed is known only now: the report names it.
                Some(Change::Autoremove { packages, .. }) => {
                    exec.apt.autoremove().map(|removed| *packages = removed)
                }
                _ => execute(&change, exec, &mut self.created),
            };
            if let Err(e) = result {
                report.status = Status::Failed;
                // The change is the last of `changes`: the error says why it failed.
                report.error = Some(format!("{e:#}"));
                self.failed = true;
                break;
            }
            self.ran(&change, index, at);
            if let Some(redecide) = redecide
                .as_mut()
                .filter(|_| self.redecides_after(&step, &change))
            {
                if !self.redecide_rest(redecide, index, &step, &mut changes, at, &mut report) {
                    break;
                }
            }
        }
        // What was not attempted, or was already so, is not reported as done.
        report.changes = done;
        report.mark_done();
        if report.changes.is_empty() && !self.failed {
            report.status = Status::Ok;
        }
        report
    }

    /// Why `change` (of a handler's step or not) need not run, if it need
    /// not. `read`: the units read so far in this step.
    fn settled(
        &mut self,
        change: &Change,
        handler: bool,
        read: &mut BTreeMap<UnitName, UnitFact>,
    ) -> Option<String> {
        if self.packages_changed {
            if let Some(settled) = settled_by_packages(change, self.units, read, &mut self.ahead) {
                return Some(settled);
            }
        }
        match change {
            Change::Service {
                unit,
                action: ServiceAction::Restart,
                ..
            } if handler && self.fresh_starts.contains(unit) => Some(format!(
                "{change} (this run started it after every change that notified it)"
            )),
            _ => None,
        }
    }

    /// Notes what `change`, change `at` of step `index` (counted from 1),
    /// did: the reads ahead it calls for or makes stale, the units it
    /// started or stopped.
    fn ran(&mut self, change: &Change, index: usize, at: usize) {
        self.packages_changed |= is_package_change(change);
        let wanted = units_checked_after(&self.current, index, at);
        self.ahead.after(change, wanted, self.scope, self.units);
        note_fresh_starts(&mut self.fresh_starts, change);
    }

    /// Whether the rest of the run is decided again after `change` of
    /// `step`: the first update of the lists, in a run decided on old ones.
    fn redecides_after(&self, step: &PlannedStep, change: &Change) -> bool {
        self.current.redecide_after_update
            && !step.handler
            && matches!(change, Change::UpdateLists { .. })
    }

    /// After the update of the lists, change `at` of step `index` (counted
    /// from 1): the run goes on by the changeset `redecide` gives, the
    /// step's `changes` and `report` those of its new version. `false`: it
    /// could not be decided again, and the run stops here.
    fn redecide_rest(
        &mut self,
        redecide: &mut Redecide<'_>,
        index: usize,
        step: &PlannedStep,
        changes: &mut Vec<Change>,
        at: usize,
        report: &mut StepReport,
    ) -> bool {
        let mut ran = self.current.steps[..index].to_vec();
        ran.push(PlannedStep {
            changes: changes[..at].to_vec(),
            ..step.clone()
        });
        match redecide(&ran) {
            Ok(next)
                if next.steps.get(..index) == Some(&self.current.steps[..index])
                    && next.steps.get(index).and_then(|s| s.changes.get(..at))
                        == Some(&changes[..at]) =>
            {
                log::info!(
                    "the package lists are fresh: the rest of the run was decided again on them"
                );
                changes.clone_from(&next.steps[index].changes);
                report.diff = StepReport::planned(&next.steps[index]).diff;
                self.current = Cow::Owned(Changeset {
                    redecide_after_update: false,
                    ..next
                });
                return true;
            }
            Ok(_) => {
                self.redecide_error = Some("deciding again after the update of the package lists changed the steps before it".into());
            }
            Err(e) => self.redecide_error = Some(e),
        }
        self.failed = true;
        false
    }

    /// The run's report; its error says why it stopped early, if it did.
    fn report(
        self,
        reports: Vec<StepReport>,
        interrupted: Option<(&'static str, usize)>,
    ) -> Report {
        let mut report = Report::new(crate::report::Mode::Apply, &self.current, reports);
        if let Some((signal, done)) = interrupted {
            report.failed = true;
            report.error = Some(format!(
                "{signal} received: stopped after {done} of {} steps, each finished; the rest did not run. Run apply again to finish",
                self.current.steps.len()
            ));
        }
        if let Some(e) = self.redecide_error {
            report.failed = true;
            report.error = Some(format!(
                "the package lists were updated, then the rest of the run could not be decided on them: {e}
Nothing after the update was changed. Run apply again"
            ));
        }
        report
    }
}

/// Keeps `fresh` the units this run started (or restarted) with no change
/// run since `change`: any file or package change may be what a later
/// restart is for.
fn note_fresh_starts(fresh: &mut BTreeSet<UnitName>, change: &Change) {
    match change {
        Change::Service {
            unit,
            action: ServiceAction::Start | ServiceAction::Restart,
            ..
        } => {
            fresh.insert(unit.clone());
        }
        Change::Service {
            unit,
            action: ServiceAction::Stop,
            ..
        } => {
            fresh.remove(unit);
        }
        Change::Service { .. } => {}
        _ => fresh.clear(),
    }
}

/// Runs one change through the executors; a file it writes where none
/// was goes in `created`.
fn execute(
    change: &Change,
    exec: &mut Executors<'_>,
    created: &mut BTreeSet<AbsPath>,
) -> Result<()> {
    let names = |pkgs: &[PkgChange]| pkgs.iter().map(|p| p.package.clone()).collect::<Vec<_>>();
    match change {
        Change::UpdateLists { .. } => exec.apt.update(),
        Change::Repair { .. } => exec.apt.repair(),
        Change::Install { packages } => exec.apt.install(&pinned(packages)),
        Change::Remove { packages } => exec.apt.remove(&names(packages), Purge::No),
        Change::Purge { packages } => exec.apt.remove(&names(packages), Purge::Yes),
        Change::Autoremove { .. } => exec.apt.autoremove().map(drop),
        Change::File {
            path,
            after,
            content,
            check,
            backup,
            ..
        } => write_file(
            exec.files,
            path,
            after,
            content,
            check,
            backup.as_ref(),
            created,
        ),
        Change::Service {
            unit,
            action: action @ (ServiceAction::Start | ServiceAction::Restart),
            health,
            rollback,
            ..
        } => start(exec, unit, *action, health, rollback, created),
        Change::Service { unit, action, .. } => exec.services.service(unit, *action),
        Change::Timezone { after, link, .. } => set_timezone(exec.files, link, after),
    }
}

/// As timedatectl sets a zone, without it (systemd may not be PID 1): the
/// link /etc/localtime, then Debian's /etc/timezone, each replaced atomically.
fn set_timezone(files: &mut dyn FileExec, link: &str, zone: &crate::names::TimeZone) -> Result<()> {
    use crate::facts::timezone::{timezone_content, LOCALTIME, TIMEZONE_FILE};
    let path = |p: &str| AbsPath::parse(p).map_err(anyhow::Error::msg);
    files.link(&path(LOCALTIME)?, link)?;
    let content = timezone_content(zone);
    let check = Check::None;
    files.write(
        &path(TIMEZONE_FILE)?,
        content.as_bytes(),
        Mode(0o644),
        0,
        0,
        &check,
        None,
    )?;
    Ok(())
}

/// Each package at the version the change installs.
fn pinned(packages: &[PkgChange]) -> Vec<(PackageName, String)> {
    packages
        .iter()
        .map(|p| (p.package.clone(), p.after.clone().unwrap_or_default()))
        .collect()
}

/// Writes the file, its old content kept as the backup the change names;
/// a file there was none of goes in `created` (a rollback removes it).
fn write_file(
    files: &mut dyn FileExec,
    path: &AbsPath,
    after: &FileMeta,
    content: &str,
    check: &Check,
    backup: Option<&AbsPath>,
    created: &mut BTreeSet<AbsPath>,
) -> Result<()> {
    let existed = files.write(
        path,
        content.as_bytes(),
        after.mode,
        after.uid,
        after.gid,
        check,
        backup,
    )?;
    if !existed {
        created.insert(path.clone());
    }
    Ok(())
}

/// A start or restart is a transaction: a unit that does not come up
/// healthy, when the change lists files to roll back, is rolled back.
fn start(
    exec: &mut Executors<'_>,
    unit: &UnitName,
    action: ServiceAction,
    health: &Health,
    rollback: &[Restore],
    created: &BTreeSet<AbsPath>,
) -> Result<()> {
    let started = exec
        .services
        .service(unit, action)
        .and_then(|()| exec.services.check_health(unit, health));
    match started {
        Ok(()) => Ok(()),
        Err(e) if rollback.is_empty() => Err(e),
        Err(e) => Err(roll_back(unit, health, rollback, created, exec, e)),
    }
}

/// The restart left the unit unhealthy: put back every file this run wrote
/// for it and restart it on the old config. The step fails either way; the
/// error says what was wrong (with the daemon's log lines), what was put
/// back, and whether the daemon now runs.
fn roll_back(
    unit: &UnitName,
    health: &Health,
    rollback: &[Restore],
    created: &BTreeSet<AbsPath>,
    exec: &mut Executors<'_>,
    cause: anyhow::Error,
) -> anyhow::Error {
    let mut done = Vec::new();
    for r in rollback {
        let new = created.contains(&r.path);
        done.push(match exec.files.restore(r, new) {
            Ok(()) if new => format!("removed {} (this run created it)", r.path),
            Ok(()) => format!("restored {} from {}", r.path, r.backup),
            Err(e) => format!("could NOT restore {}: {e:#}", r.path),
        });
    }
    let again = exec
        .services
        .service(unit, ServiceAction::Restart)
        .and_then(|()| exec.services.check_health(unit, health));
    let outcome = match again {
        Ok(()) => format!("{unit} runs again with the previous config. Fix the plan's config and run again"),
        Err(e) => format!("{unit} is still not healthy with the previous config: {e:#}\nLook at `journalctl -u {unit}`"),
    };
    anyhow::anyhow!("{cause:#}\nRolled back: {}; {outcome}", done.join(", "))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod timezone_tests;
