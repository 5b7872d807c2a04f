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
pub mod services;

use crate::diff::{
    Change, Changeset, Check, Health, PkgChange, PlannedStep, Restore, ServiceAction,
};
use crate::facts::UnitFact;
use crate::names::{AbsPath, Mode, PackageName, UnitName};
use crate::report::{Report, Status, StepReport};
use anyhow::Result;
use std::collections::BTreeMap;
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
    fn autoremove(&mut self) -> Result<()>;
}

pub trait ServiceExec {
    fn service(&mut self, unit: &UnitName, action: ServiceAction) -> Result<()>;
    /// After a start or restart: whether the unit is `health`y, within a
    /// bounded time. The error carries the unit's own log lines.
    fn check_health(&mut self, unit: &UnitName, health: &Health) -> Result<()>;
}

pub trait FileExec {
    /// Replaces `path` atomically with `content`, owned by uid:gid with
    /// `mode`, after `check` accepted the new content (else `path` is untouched).
    fn write(
        &mut self,
        path: &AbsPath,
        content: &[u8],
        mode: Mode,
        uid: u32,
        gid: u32,
        check: &Check,
    ) -> Result<()>;
    /// Copies `path` (content, mode, owner) to `backup` atomically, then
    /// removes the oldest backups of `path` beyond `BACKUPS_KEPT`, never
    /// `backup` itself (names sort by time, but a clock set back makes the
    /// newest name an old one). `false`: there was no file to keep (the
    /// facts may say otherwise: a package installed earlier in the run may
    /// have shipped it).
    fn backup(&mut self, path: &AbsPath, backup: &AbsPath) -> Result<bool>;
    /// Puts the backup back as the file atomically or, for a file the run
    /// `created`, removes it. A missing backup of a file the run did not
    /// create is an error, and the file stays.
    fn restore(&mut self, restore: &Restore, created: bool) -> Result<()>;
}

pub struct Executors<'a> {
    pub apt: &'a mut dyn AptExec,
    pub services: &'a mut dyn ServiceExec,
    pub files: &'a mut dyn FileExec,
    /// Read-only: a unit's state now (see the module's doc).
    pub units: &'a dyn UnitView,
}

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
        if matches!(change, Change::File { .. }) {
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
    let mut ahead = Ahead::default();
    let mut current = std::borrow::Cow::Borrowed(changeset);
    let mut redecide_error: Option<String> = None;
    let mut reports = Vec::new();
    let mut failed = false;
    let mut packages_changed = false;
    // Units this run started (or restarted) with no change run since.
    let mut fresh_starts: std::collections::BTreeSet<UnitName> = std::collections::BTreeSet::new();
    let mut interrupted: Option<(&'static str, usize)> = None;
    // Files this run wrote where none was (a rollback removes them).
    let mut created: std::collections::BTreeSet<AbsPath> = std::collections::BTreeSet::new();
    let mut index = 0;
    while index < current.steps.len() {
        let step = current.steps[index].clone();
        let started = Instant::now();
        let mut report = StepReport::planned(&step);
        if interrupted.is_none() && !failed {
            interrupted = stop().map(|signal| (signal, reports.len()));
        }
        if failed || interrupted.is_some() {
            report.status = Status::Skipped;
            report.changes.clear();
            report.diff = None;
        } else if !step.changes.is_empty() {
            let mut done = Vec::new();
            // The step's changes; after a redecision, those of its new version.
            let mut changes = step.changes.clone();
            let mut at = 0;
            let mut units_read = BTreeMap::new();
            while at < changes.len() {
                let change = &changes[at].clone();
                at += 1;
                if packages_changed {
                    if let Some(settled) =
                        settled_by_packages(change, exec.units, &mut units_read, &mut ahead)
                    {
                        report.settled.push(settled);
                        continue;
                    }
                }
                if let Change::Service {
                    unit,
                    action: ServiceAction::Restart,
                    ..
                } = change
                {
                    if step.handler && fresh_starts.contains(unit) {
                        report.settled.push(format!(
                            "{change} (this run started it after every change that notified it)"
                        ));
                        continue;
                    }
                }
                done.push(change.clone());
                if let Err(e) = execute(change, exec, &mut created) {
                    report.status = Status::Failed;
                    report.error = Some(format!("{change}: {e:#}"));
                    failed = true;
                    break;
                }
                packages_changed |= is_package_change(change);
                ahead.after(
                    change,
                    units_checked_after(&current, index, at),
                    scope,
                    units,
                );
                match change {
                    Change::Service {
                        unit,
                        action: ServiceAction::Start | ServiceAction::Restart,
                        ..
                    } => {
                        fresh_starts.insert(unit.clone());
                    }
                    Change::Service {
                        unit,
                        action: ServiceAction::Stop,
                        ..
                    } => {
                        fresh_starts.remove(unit);
                    }
                    Change::Service { .. } => {}
                    // Any file or package change may be what a later restart is for.
                    _ => fresh_starts.clear(),
                }
                let Some(redecide) = redecide.as_mut().filter(|_| {
                    current.redecide_after_update
                        && !step.handler
                        && matches!(change, Change::UpdateLists { .. })
                }) else {
                    continue;
                };
                let mut ran = current.steps[..index].to_vec();
                ran.push(PlannedStep {
                    changes: changes[..at].to_vec(),
                    ..step.clone()
                });
                match redecide(&ran) {
                    Ok(next)
                        if next.steps.get(..index) == Some(&current.steps[..index])
                            && next.steps.get(index).and_then(|s| s.changes.get(..at))
                                == Some(&changes[..at]) =>
                    {
                        log::info!("the package lists are fresh: the rest of the run was decided again on them");
                        changes.clone_from(&next.steps[index].changes);
                        report.diff = StepReport::planned(&next.steps[index]).diff;
                        current = std::borrow::Cow::Owned(Changeset {
                            redecide_after_update: false,
                            ..next
                        });
                    }
                    Ok(_) => {
                        redecide_error = Some("deciding again after the update of the package lists changed the steps before it".into());
                    }
                    Err(e) => redecide_error = Some(e),
                }
                if redecide_error.is_some() {
                    failed = true;
                    break;
                }
            }
            // What was not attempted, or was already so, is not reported as done.
            report.changes = done;
            if report.changes.is_empty() && !failed {
                report.status = Status::Ok;
            }
        }
        report.seconds = started.elapsed().as_secs_f64();
        on_step(&report);
        reports.push(report);
        index += 1;
    }
    let mut report = Report::new(crate::report::Mode::Apply, &current, reports);
    if let Some((signal, done)) = interrupted {
        report.failed = true;
        report.error = Some(format!(
            "{signal} received: stopped after {done} of {} steps, each finished; the rest did not run. Run apply again to finish",
            current.steps.len()
        ));
    }
    if let Some(e) = redecide_error {
        report.failed = true;
        report.error = Some(format!(
            "the package lists were updated, then the rest of the run could not be decided on them: {e}
Nothing after the update was changed. Run apply again"
        ));
    }
    report
}

fn execute(
    change: &Change,
    exec: &mut Executors<'_>,
    created: &mut std::collections::BTreeSet<AbsPath>,
) -> Result<()> {
    let names = |pkgs: &[PkgChange]| pkgs.iter().map(|p| p.package.clone()).collect::<Vec<_>>();
    match change {
        Change::UpdateLists { .. } => exec.apt.update(),
        Change::Repair { .. } => exec.apt.repair(),
        Change::Install { packages } => {
            let pinned: Vec<(PackageName, String)> = packages
                .iter()
                .map(|p| (p.package.clone(), p.after.clone().unwrap_or_default()))
                .collect();
            exec.apt.install(&pinned)
        }
        Change::Remove { packages } => exec.apt.remove(&names(packages), Purge::No),
        Change::Purge { packages } => exec.apt.remove(&names(packages), Purge::Yes),
        Change::Autoremove { .. } => exec.apt.autoremove(),
        Change::File {
            path,
            after,
            content,
            check,
            backup,
            ..
        } => {
            // The old content is safe before anything replaces it.
            if let Some(b) = backup {
                if !exec.files.backup(path, b)? {
                    created.insert(path.clone());
                }
            }
            exec.files.write(
                path,
                content.as_bytes(),
                after.mode,
                after.uid,
                after.gid,
                check,
            )
        }
        Change::Service {
            unit,
            action: action @ (ServiceAction::Start | ServiceAction::Restart),
            health,
            rollback,
            ..
        } => {
            let started = exec
                .services
                .service(unit, *action)
                .and_then(|()| exec.services.check_health(unit, health));
            match started {
                Ok(()) => Ok(()),
                Err(e) if rollback.is_empty() => Err(e),
                Err(e) => Err(roll_back(unit, health, rollback, created, exec, e)),
            }
        }
        Change::Service { unit, action, .. } => exec.services.service(unit, *action),
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
    created: &std::collections::BTreeSet<AbsPath>,
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
