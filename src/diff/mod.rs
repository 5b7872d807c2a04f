//! Stage 3: the diff. A pure function from rendered steps and facts to a
//! changeset: for every step, the typed changes that would bring the node to
//! the step's state, in order. Handlers are decided here too (a handler runs
//! when a step that notifies it has changes), with the reason, so the
//! changeset printed by `plan` is exactly what `apply` executes. So are the
//! faults it can see coming: an interrupted dpkg run becomes a repair step
//! before the first apt step, every replaced file gets a backup path, and a
//! handler's restart carries the files to put back if the daemon is unhealthy.
//!
//! Must not: run commands, read files, or depend on whether this is a dry run.

pub mod change;

use crate::daemons::Daemon;
use crate::facts::dpkg::DpkgState;
use crate::facts::{version, DpkgJournal, Facts, PackageFact, DPKG_UPDATES};
use crate::names::PackageName;
use crate::plan::step::{
    Action, Apt, Autoremove, Enabled, PkgState, Service, ServiceState, Step, Template,
};
use crate::plan::Rendered;
pub use change::{
    backup_path, Change, Check, FileMeta, Health, PkgChange, PkgVersion, Restore, ServiceAction,
    BACKUPS_KEPT, BACKUP_SUFFIX,
};
use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq)]
pub struct Changeset {
    pub daemon: Option<Daemon>,
    /// Things the operator should know that are not changes.
    pub notes: Vec<String>,
    pub steps: Vec<PlannedStep>,
    /// Decided on package lists older than the plan allows (the facts read
    /// the node's own: `StaleLists::ReadNodes`): once the first update of
    /// the lists has run, `apply` decides everything after it again on the
    /// fresh lists (`diff_after_update`). Never set for `plan`, which reads
    /// fresh lists privately and shows the versions `apply` will install.
    pub redecide_after_update: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    pub name: String,
    pub handler: bool,
    pub changes: Vec<Change>,
}

impl Changeset {
    pub fn is_empty(&self) -> bool {
        self.steps.iter().all(|s| s.changes.is_empty())
    }
}

/// Computes the changeset, or says which step cannot be satisfied here.
///
/// Steps are diffed in order against a projection of the node: the facts as
/// gathered, updated with the changes of the steps before, so that a purge
/// followed by an install shows the install from a clean slate.
pub fn diff(rendered: &Rendered, facts: &Facts) -> Result<Changeset, String> {
    diff_from(rendered, facts, &[])
}

/// The changeset for the rest of a run that has just updated the package
/// lists, on `facts` gathered after it: `done` is what the run executed,
/// the steps before the update and, last, the update's own step up to the
/// update. Those are kept as they are (their changes already shape
/// `facts`, and still fire their handlers); everything after is diffed
/// anew. The plan's steps up to there must be the ones `done` names, and
/// the daemon the one they were decided for (`before`: the old lists').
pub fn diff_after_update(
    rendered: &Rendered,
    facts: &Facts,
    done: &[PlannedStep],
    before: Option<&Daemon>,
) -> Result<Changeset, String> {
    if facts.daemon.as_ref() != before {
        let name =
            |d: Option<&Daemon>| d.map_or("none".to_string(), |d| format!("package {}", d.package));
        return Err(format!(
            "on the fresh lists the daemon is {}, on the old ones it was {}: the steps before the update were decided for the old one",
            name(facts.daemon.as_ref()),
            name(before)
        ));
    }
    if !matches!(
        done.last().and_then(|s| s.changes.last()),
        Some(Change::UpdateLists { .. })
    ) {
        return Err("the run is not right after an update of the package lists".into());
    }
    if let Some(change) = repair_of(facts)? {
        return Err(format!(
            "dpkg needs `dpkg --configure -a` after this run updated the package lists ({change}): another program ran dpkg meanwhile. Run apply again"
        ));
    }
    let planned: Vec<&str> = rendered.steps.iter().map(|s| s.name.as_str()).collect();
    let kept: Vec<&str> = done
        .iter()
        .filter(|s| s.name != REPAIR_STEP)
        .map(|s| s.name.as_str())
        .collect();
    if kept.len() > planned.len() || kept != planned[..kept.len()] {
        return Err(format!(
            "the plan's steps are not the ones run before the update of the package lists ({kept:?})"
        ));
    }
    diff_from(rendered, facts, done)
}

/// `diff`, with the first steps taken from `done` (see `diff_after_update`);
/// `done` is empty for a whole plan.
fn diff_from(
    rendered: &Rendered,
    facts: &Facts,
    done: &[PlannedStep],
) -> Result<Changeset, String> {
    let mut steps = Vec::new();
    let mut removed_earlier = false;
    let mut fired = Fired::default();
    let mut projected = facts.clone();
    // apt refuses to work after an interrupted dpkg run, so finishing it is
    // a step of its own, right before the first apt step. After an update
    // there is none (`diff_after_update` refused), or it ran already.
    let mut repair = if done.is_empty() {
        Some(repair_of(facts))
    } else {
        None
    };
    let mut done = done.iter().peekable();
    for step in &rendered.steps {
        if let Some(ran) = done.next_if(|s| s.name == REPAIR_STEP && !s.handler) {
            steps.push(ran.clone());
        }
        if matches!(step.action, Action::Apt(_)) {
            if let Some(change) = repair.take().transpose()?.flatten() {
                project(&mut projected, &change);
                steps.push(PlannedStep {
                    name: REPAIR_STEP.into(),
                    handler: false,
                    changes: vec![change],
                });
            }
        }
        let ran = done.next();
        let mut changes = match ran {
            // Done before the update: the facts show it, nothing to project.
            Some(ran) if done.peek().is_some() => ran.changes.clone(),
            // The update's own step: what ran, then the rest of the step on
            // the fresh lists (another update of the lists is not due now).
            Some(ran) => {
                let rest = diff_step(step, &projected, removed_earlier, None)
                    .map_err(|e| format!("step {:?}: {e}", step.name))?
                    .into_iter()
                    .filter(|c| !matches!(c, Change::UpdateLists { .. }));
                ran.changes.iter().cloned().chain(rest).collect()
            }
            None => diff_step(step, &projected, removed_earlier, None)
                .map_err(|e| format!("step {:?}: {e}", step.name))?,
        };
        // The changes that ran already are kept as they ran.
        let ran_already = ran.map_or(0, |r| r.changes.len());
        // A step that starts the unit (it was stopped) is the first to run
        // the files written so far for it: an unhealthy start puts them back.
        for change in changes.iter_mut().skip(ran_already) {
            if let Change::Service {
                unit,
                action: ServiceAction::Start | ServiceAction::Restart,
                rollback,
                ..
            } = change
            {
                *rollback = fired.files_for(&rendered.handlers, unit);
            }
        }
        if changes.is_empty() {
            // The file is right, but a restart it notifies may still be due:
            // an earlier run stopped between the write and the restart.
            for (handler, cause) in unread_files(step, &rendered.handlers, &projected) {
                fired.notify(&handler, vec![cause], &[]);
            }
        }
        removed_earlier |= changes.iter().any(Change::removes_packages);
        changes
            .iter()
            .skip(ran_already)
            .for_each(|c| project(&mut projected, c));
        if !changes.is_empty() {
            let restores = restores_of(&changes);
            let causes: Vec<String> = changes.iter().map(Change::cause).collect();
            for handler in &step.notify {
                fired.notify(handler, causes.clone(), &restores);
            }
        }
        steps.push(PlannedStep {
            name: step.name.clone(),
            handler: false,
            changes,
        });
    }
    steps.extend(handler_steps(
        rendered,
        &fired,
        &mut projected,
        removed_earlier,
    )?);
    let redecide_after_update = facts.lists.awaiting_update
        && steps.iter().any(|s| {
            !s.handler
                && s.changes
                    .iter()
                    .any(|c| matches!(c, Change::UpdateLists { .. }))
        });
    Ok(Changeset {
        daemon: facts.daemon.clone(),
        notes: notes(facts, redecide_after_update),
        steps,
        redecide_after_update,
    })
}

/// The handlers notified so far, in the order first notified: each with
/// the causes for its reason and the files to put back if the unit is
/// unhealthy after it ran.
#[derive(Default)]
struct Fired(Vec<(String, Vec<String>, Vec<Restore>)>);

impl Fired {
    fn notify(&mut self, handler: &str, causes: Vec<String>, restores: &[Restore]) {
        match self.0.iter_mut().find(|(h, _, _)| h == handler) {
            Some((_, all, files)) => {
                all.extend(causes);
                files.extend(restores.iter().cloned());
            }
            None => self
                .0
                .push((handler.to_string(), causes, restores.to_vec())),
        }
    }

    /// The files written for the handlers that (re)start `unit`.
    fn files_for(&self, handlers: &[Step], unit: &crate::names::UnitName) -> Vec<Restore> {
        self.0
            .iter()
            .filter(|(h, _, _)| handler_unit(handlers, h) == Some(unit))
            .flat_map(|(_, _, files)| files.iter().cloned())
            .collect()
    }
}

/// The backups that put back the files these changes replace.
fn restores_of(changes: &[Change]) -> Vec<Restore> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::File {
                path,
                backup: Some(backup),
                ..
            } => Some(Restore {
                path: path.clone(),
                backup: backup.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The notified handlers, after all steps in the order they are declared,
/// each with its causes as the reason and the files to roll back.
fn handler_steps(
    rendered: &Rendered,
    fired: &Fired,
    projected: &mut Facts,
    removed_earlier: bool,
) -> Result<Vec<PlannedStep>, String> {
    let mut steps = Vec::new();
    for handler in &rendered.handlers {
        let Some((_, causes, restores)) = fired.0.iter().find(|(h, _, _)| *h == handler.name)
        else {
            continue;
        };
        let mut causes = causes.clone();
        causes.dedup();
        let mut changes = diff_step(
            handler,
            projected,
            removed_earlier,
            Some(&causes.join(", ")),
        )
        .map_err(|e| format!("handler {:?}: {e}", handler.name))?;
        for change in &mut changes {
            if let Change::Service {
                action: ServiceAction::Start | ServiceAction::Restart,
                rollback,
                ..
            } = change
            {
                rollback.clone_from(restores);
            }
        }
        changes.iter().for_each(|c| project(projected, c));
        steps.push(PlannedStep {
            name: handler.name.clone(),
            handler: true,
            changes,
        });
    }
    Ok(steps)
}

/// What the changeset tells beside its steps: where versions were read
/// from, competing daemons installed, the redecision after the update.
fn notes(facts: &Facts, redecide_after_update: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if facts.lists.refreshed_privately {
        notes.push("versions are read from fresh package lists fetched into a private directory; the node's own lists are untouched".into());
    }
    if let Some(d) = &facts.daemon {
        for c in &d.competitors {
            if let Some(v) = facts
                .packages
                .get(c)
                .and_then(|p| p.dpkg.installed_version())
            {
                notes.push(format!("also installed: {c} {v}, a competing time daemon"));
            }
        }
    }
    if let Some(err) = &facts.lists.refresh_error {
        notes.push(format!(
            "versions come from the node's old package lists: {err}"
        ));
    }
    if redecide_after_update {
        notes.push("the package lists are older than the plan allows: apply updates them as planned, then decides every change after that on the fresh lists (plan shows those versions: it reads fresh lists into a private directory)".into());
    }
    notes
}

/// The unit a handler starts or restarts, if it is a service step.
fn handler_unit<'a>(handlers: &'a [Step], name: &str) -> Option<&'a crate::names::UnitName> {
    match &handlers.iter().find(|h| h.name == name)?.action {
        Action::Service(s) if s.state.is_some() => Some(&s.unit),
        _ => None,
    }
}

/// For a template step whose file needs no change: the handlers it notifies
/// that restart a running unit whose main process started before the file
/// was last modified (the daemon runs a config older than the file), each
/// with its cause. That happens when a run wrote the file and stopped (a
/// signal, a failed step) before its handler ran, or when someone edited the
/// file by hand without a restart. A modification time later than the facts
/// comes from a clock since set back and says nothing; so does a unit
/// without a known start (no systemd, or started earlier in this run).
fn unread_files(step: &Step, handlers: &[Step], node: &Facts) -> Vec<(String, String)> {
    let Action::Template(t) = &step.action else {
        return Vec::new();
    };
    let Some(Some(modified)) = node
        .files
        .get(&t.dest)
        .map(|f| f.as_ref().map(|f| f.modified))
    else {
        return Vec::new();
    };
    let Some(modified) = modified.filter(|m| *m <= node.gathered_at) else {
        return Vec::new();
    };
    step.notify
        .iter()
        .filter_map(|name| {
            let handler = handlers.iter().find(|h| h.name == *name)?;
            let Action::Service(s) = &handler.action else {
                return None;
            };
            if s.state != Some(ServiceState::Restarted) {
                return None;
            }
            let unit = node.units.get(&s.unit).filter(|u| u.running)?;
            let started = unit.started.filter(|started| *started < modified)?;
            let after = modified.duration_since(started).unwrap_or_default();
            Some((
                name.clone(),
                format!(
                    "{} was modified {} s after {} started: the daemon has not read it",
                    t.dest,
                    after.as_secs(),
                    s.unit
                ),
            ))
        })
        .collect()
}

/// The name of the step the diff adds when dpkg needs `--configure -a`.
pub const REPAIR_STEP: &str = "Interrupted dpkg run finished";

/// `dpkg --configure -a` when dpkg's journal is not empty or a package the
/// plan looks at is half installed in a way it finishes; `None` when dpkg is
/// sound. A package it cannot finish (half-installed, reinst-required,
/// selected for removal: see `DpkgState::configured_by_repair`) would stay
/// broken whatever this run does, so the plan is refused, naming it and
/// what to run.
fn repair_of(facts: &Facts) -> Result<Option<Change>, String> {
    let interrupted = matches!(facts.dpkg_journal, DpkgJournal::Interrupted { .. });
    let mut packages = Vec::new();
    for (name, fact) in &facts.packages {
        let DpkgState::Broken { version, .. } = &fact.dpkg else {
            continue;
        };
        if !fact.dpkg.configured_by_repair() {
            let state = before_of(&fact.dpkg).map(|b| b.state).unwrap_or_default();
            let first = if interrupted {
                "`dpkg --configure -a`, then "
            } else {
                ""
            };
            return Err(format!(
                "package {name} {version} is left {state} and `dpkg --configure -a` cannot finish it: run {first}`apt-get install --reinstall {name}` (or `apt-get purge {name}` if it should go), then run again"
            ));
        }
        packages.push(PkgChange {
            package: name.clone(),
            before: before_of(&fact.dpkg),
            after: Some(version.clone()),
        });
    }
    let reason = match facts.dpkg_journal {
        DpkgJournal::Interrupted { entries } => {
            format!("dpkg was interrupted ({entries} journal entries in {DPKG_UPDATES}); apt refuses to work until it is finished")
        }
        DpkgJournal::Clean if packages.is_empty() => return Ok(None),
        DpkgJournal::Clean => "packages left half-installed by an interrupted run".to_string(),
    };
    Ok(Some(Change::Repair { packages, reason }))
}

/// The node as it will be once `change` is applied.
fn project(node: &mut Facts, change: &Change) {
    let mut set = |pkgs: &[PkgChange], to: &dyn Fn(&PkgChange) -> DpkgState| {
        for p in pkgs {
            if let Some(fact) = node.packages.get_mut(&p.package) {
                fact.dpkg = to(p);
            }
        }
    };
    match change {
        Change::UpdateLists { .. } => node.lists.age = Some(std::time::Duration::ZERO),
        Change::Repair { packages, .. } | Change::Install { packages } => {
            set(packages, &|p| DpkgState::Installed {
                version: p.after.clone().unwrap_or_default(),
            })
        }
        Change::Remove { packages } => set(packages, &|p| match &p.before {
            Some(b) => DpkgState::ConfigFiles {
                version: b.version.clone(),
            },
            None => DpkgState::NotInstalled,
        }),
        Change::Purge { packages } => set(packages, &|_| DpkgState::NotInstalled),
        _ => {}
    }
    // A removed daemon takes its unit with it.
    if let Change::Remove { packages } | Change::Purge { packages } = change {
        for unit in packages
            .iter()
            .filter_map(|p| crate::daemons::unit_of_package(&p.package))
        {
            node.units.insert(
                unit,
                crate::facts::UnitFact {
                    exists: false,
                    running: false,
                    enabled: false,
                    main_pid: None,
                    started: None,
                },
            );
        }
    }
    match change {
        Change::UpdateLists { .. }
        | Change::Repair { .. }
        | Change::Install { .. }
        | Change::Remove { .. }
        | Change::Purge { .. } => {}
        Change::Autoremove { .. } => node.autoremovable.clear(),
        Change::File {
            path,
            after,
            content,
            ..
        } => {
            let state = crate::facts::FileState {
                content: content.clone().into_bytes(),
                mode: after.mode.0,
                uid: after.uid,
                gid: after.gid,
                modified: Some(node.gathered_at),
            };
            node.files.insert(path.clone(), Some(state));
        }
        Change::Service { unit, action, .. } => {
            let u = node
                .units
                .entry(unit.clone())
                .or_insert(crate::facts::UnitFact {
                    exists: true,
                    running: false,
                    enabled: false,
                    main_pid: None,
                    started: None,
                });
            match action {
                ServiceAction::Start | ServiceAction::Restart => {
                    u.running = true;
                    // Later than every file written so far; not known yet.
                    u.started = None;
                }
                ServiceAction::Stop => u.running = false,
                ServiceAction::Enable => u.enabled = true,
                ServiceAction::Disable => u.enabled = false,
            }
        }
        Change::Timezone { after, link, .. } => {
            if let Some(fact) = node.timezone.as_mut() {
                fact.localtime = crate::facts::timezone::Localtime::Link(link.clone());
                fact.timezone_file = Some(crate::facts::timezone::timezone_content(after));
            }
        }
    }
}

fn diff_step(
    step: &Step,
    facts: &Facts,
    removed_earlier: bool,
    reason: Option<&str>,
) -> Result<Vec<Change>, String> {
    match &step.action {
        Action::Apt(apt) => diff_apt(apt, facts, removed_earlier),
        Action::Template(t) => diff_template(t, facts).map(|c| c.into_iter().collect()),
        Action::Service(s) => Ok(diff_service(s, facts, reason)),
        Action::Timezone(zone) => diff_timezone(zone, facts).map(|c| c.into_iter().collect()),
    }
}

/// The zone the node is in against the plan's, both files as timedatectl
/// leaves them (the facts refused a zone the node lacks).
fn diff_timezone(zone: &crate::names::TimeZone, facts: &Facts) -> Result<Option<Change>, String> {
    let fact = facts
        .timezone
        .as_ref()
        .filter(|f| f.zone == *zone)
        .ok_or_else(|| format!("no facts gathered for the time zone {zone}"))?;
    if fact.converged() {
        return Ok(None);
    }
    Ok(Some(Change::Timezone {
        before: fact.current(),
        after: zone.clone(),
        timezone_file: fact.timezone_file_differs(),
        link: crate::facts::timezone::link_target(zone),
    }))
}

fn diff_apt(apt: &Apt, facts: &Facts, removed_earlier: bool) -> Result<Vec<Change>, String> {
    let mut changes = Vec::new();
    if let Some(validity) = apt.update_cache {
        let age = facts.lists.age;
        let stale = match (age, validity.max_age) {
            (None, _) | (_, None) => true,
            (Some(age), Some(max)) => age > max,
        };
        if stale {
            changes.push(Change::UpdateLists {
                age_seconds: age.map(|a| a.as_secs()),
                max_age_seconds: validity.max_age.map(|m| m.as_secs()),
            });
        }
    }

    let (mut install, mut remove, mut purge) = (Vec::new(), Vec::new(), Vec::new());
    for name in &apt.packages {
        let fact = facts
            .packages
            .get(name)
            .ok_or_else(|| format!("no facts gathered for package {name}"))?;
        let before = before_of(&fact.dpkg);
        let change = |after: Option<String>| PkgChange {
            package: name.clone(),
            before: before.clone(),
            after,
        };
        match apt.state {
            PkgState::Present | PkgState::Latest => {
                let candidate = || candidate_of(name, fact);
                match &fact.dpkg {
                    DpkgState::NotInstalled | DpkgState::ConfigFiles { .. } => {
                        install.push(change(Some(candidate()?)))
                    }
                    DpkgState::Installed { version } | DpkgState::Broken { version, .. } => {
                        if apt.state == PkgState::Latest {
                            let cand = candidate()?;
                            // Never downgrade: a newer local version is "latest" enough.
                            if version::compare(version, &cand) == Ordering::Less {
                                install.push(change(Some(cand)));
                            }
                        }
                    }
                }
            }
            PkgState::Absent => {
                if matches!(
                    fact.dpkg,
                    DpkgState::Installed { .. } | DpkgState::Broken { .. }
                ) {
                    remove.push(change(None));
                }
            }
            PkgState::Purged => {
                if !matches!(fact.dpkg, DpkgState::NotInstalled) {
                    purge.push(change(None));
                }
            }
            PkgState::ResidualPurged => {
                if matches!(fact.dpkg, DpkgState::ConfigFiles { .. }) {
                    purge.push(change(None));
                }
            }
        }
    }
    for (verb, list) in [
        ("purge", &purge),
        ("remove", &remove),
        ("install", &install),
    ] {
        if let Some(refusal) = list.iter().find_map(|c| held_refusal(verb, c, facts)) {
            return Err(refusal);
        }
    }
    // Purge leftovers before installing, so a reinstall starts from clean config.
    if !purge.is_empty() {
        changes.push(Change::Purge { packages: purge });
    }
    if !remove.is_empty() {
        changes.push(Change::Remove { packages: remove });
    }
    if !install.is_empty() {
        changes.push(Change::Install { packages: install });
    }

    if apt.autoremove == Autoremove::Yes {
        let removes_here = changes.iter().any(Change::removes_packages);
        let removals = removed_earlier || removes_here;
        let mut packages = facts.autoremovable.clone();
        if removals {
            packages.extend(facts.left_unneeded.iter().cloned());
            packages.sort();
            packages.dedup();
        }
        if !packages.is_empty() {
            let reason = match removals && !facts.left_unneeded.is_empty() {
                true => "no longer needed, or not once the packages above are removed",
                false => "no longer needed",
            };
            changes.push(Change::Autoremove {
                packages,
                reason: reason.into(),
            });
        } else if removals {
            changes.push(Change::Autoremove {
                packages: Vec::new(),
                reason: "packages removed above may leave dependencies that nothing needs (apply names each one it removes)".into(),
            });
        }
    }
    Ok(changes)
}

/// apt, run with -y, refuses any change of a held package's installed
/// version ("E: Held packages were changed and -y was used without
/// --allow-change-held-packages"), so such a change is refused here, before
/// anything changes. A held package left as it is, or a purge of what a held
/// package left behind (`rc`: no version installed either way), is fine.
fn held_refusal(verb: &str, change: &PkgChange, facts: &Facts) -> Option<String> {
    let fact = facts.packages.get(&change.package)?;
    let now = fact.dpkg.installed_version();
    if !fact.held || now == change.after.as_deref() {
        return None;
    }
    let name = &change.package;
    let what = match (now, &change.after) {
        (None, Some(v)) => format!("install it ({v})"),
        (Some(from), Some(to)) => format!("change it from {from} to {to}"),
        (Some(from), None) => format!("{verb} it ({from})"),
        (None, None) => return None,
    };
    Some(format!(
        "package {name} is held (apt-mark hold) and apt refuses to change a held package; this step would {what}. Run `apt-mark unhold {name}` to let the plan change it, or take {name} out of the plan"
    ))
}

fn before_of(state: &DpkgState) -> Option<PkgVersion> {
    match state {
        DpkgState::NotInstalled => None,
        DpkgState::Installed { version } => Some(PkgVersion {
            version: version.clone(),
            state: "installed".into(),
        }),
        DpkgState::ConfigFiles { version } => Some(PkgVersion {
            version: version.clone(),
            state: "config-files".into(),
        }),
        DpkgState::Broken {
            abbrev,
            status,
            version,
        } => Some(PkgVersion {
            version: version.clone(),
            state: format!(
                "{} {}",
                abbrev.trim(),
                status.rsplit(' ').next().unwrap_or(status)
            ),
        }),
    }
}

fn candidate_of(name: &PackageName, fact: &PackageFact) -> Result<String, String> {
    fact.candidate.clone().ok_or_else(|| {
        format!(
            "package {name} has no installation candidate on this node (apt-cache policy {name})"
        )
    })
}

fn diff_template(t: &Template, facts: &Facts) -> Result<Option<Change>, String> {
    let uid = facts
        .accounts
        .get(&(t.owner.to_string(), false))
        .copied()
        .flatten();
    let gid = facts
        .accounts
        .get(&(t.group.to_string(), true))
        .copied()
        .flatten();
    let (Some(uid), Some(gid)) = (uid, gid) else {
        return Err(format!(
            "{}: user {} or group {} does not exist on this node",
            t.dest, t.owner, t.group
        ));
    };
    let after = FileMeta {
        mode: t.mode,
        uid,
        gid,
        owner: Some(t.owner.to_string()),
        group: Some(t.group.to_string()),
    };
    let current = facts
        .files
        .get(&t.dest)
        .ok_or_else(|| format!("no facts gathered for {}", t.dest))?;
    let (before, old_text) = match current {
        None => (None, String::new()),
        Some(f) => (
            Some(FileMeta {
                mode: crate::names::Mode(f.mode),
                uid: f.uid,
                gid: f.gid,
                owner: None,
                group: None,
            }),
            String::from_utf8_lossy(&f.content).into_owned(),
        ),
    };
    let content_same = current
        .as_ref()
        .is_some_and(|f| f.content == t.content.as_bytes());
    let meta_same = before
        .as_ref()
        .is_some_and(|b| (b.mode, b.uid, b.gid) == (after.mode, after.uid, after.gid));
    if content_same && meta_same {
        return Ok(None);
    }
    let diff = match (content_same, t.no_log) {
        (true, _) => String::new(),
        (false, false) => unified_diff(t.dest.as_str(), current.is_some(), &old_text, &t.content),
        (false, true) => masked_diff(t.dest.as_str(), current.is_some(), &old_text, &t.content),
    };
    let check = if content_same {
        Check::None
    } else {
        config_check(t.validate, facts)
    };
    // Named by the replaced version's mtime, so the name `plan` shows is
    // the one `apply` writes, and one version is kept once.
    let version = current
        .as_ref()
        .and_then(|f| f.modified)
        .map_or_else(|| facts.stamp.clone(), crate::facts::utc_stamp);
    let backup = backup_path(&t.dest, &version);
    Ok(Some(Change::File {
        path: t.dest.clone(),
        before,
        after,
        content: t.content.clone(),
        diff,
        masked: t.no_log,
        check,
        backup,
    }))
}

/// Which parser can vouch for a config: chrony only from 4.0 (`-p`).
fn config_check(validate: Option<crate::daemons::Flavor>, facts: &Facts) -> Check {
    let Some(flavor) = validate else {
        return Check::None;
    };
    {
        let installed = facts.packages.get(&flavor.package()).and_then(|p| {
            p.dpkg
                .installed_version()
                .map(str::to_string)
                .or_else(|| p.candidate.clone())
        });
        if let Some(reason) = installed.and_then(|v| flavor.check_unavailable(&v)) {
            return Check::Unavailable { reason };
        }
    }
    Check::Daemon { flavor }
}

/// The diff of a file that holds secrets, both sides masked; where only a
/// secret changed, a line that says so.
fn masked_diff(path: &str, existed: bool, old: &str, new: &str) -> String {
    use crate::daemons::keys::mask;
    let diff = unified_diff(path, existed, &mask(old), &mask(new));
    if !diff.is_empty() {
        return diff;
    }
    format!("--- {path}\n+++ {path} (planned)\n# a secret changed (not shown)\n")
}

fn unified_diff(path: &str, existed: bool, old: &str, new: &str) -> String {
    let old_name = if existed {
        path.to_string()
    } else {
        "/dev/null".to_string()
    };
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&old_name, &format!("{path} (planned)"))
        .to_string()
}

fn diff_service(s: &Service, facts: &Facts, reason: Option<&str>) -> Vec<Change> {
    let unit = facts.units.get(&s.unit);
    let exists = unit.is_some_and(|u| u.exists);
    let running = unit.is_some_and(|u| u.running);
    let enabled = unit.is_some_and(|u| u.enabled);
    let absent = if exists { "" } else { " (not installed yet)" };
    // The plan's daemon must answer, not only run; other units need only run.
    let health = match &facts.daemon {
        Some(d) if d.unit == s.unit => Health::Answering { flavor: d.flavor },
        _ => Health::Active,
    };
    let mut changes = Vec::new();
    let mut push = |action, why: String| {
        changes.push(Change::Service {
            unit: s.unit.clone(),
            action,
            reason: reason.map_or(why, str::to_string),
            health: health.clone(),
            rollback: Vec::new(),
        });
    };
    match s.state {
        Some(ServiceState::Started) if !running => {
            push(ServiceAction::Start, format!("not running{absent}"))
        }
        Some(ServiceState::Stopped) if running => push(ServiceAction::Stop, "running".into()),
        Some(ServiceState::Restarted) => push(ServiceAction::Restart, "restart requested".into()),
        _ => {}
    }
    match s.enabled {
        Some(Enabled::Yes) if !enabled => push(
            ServiceAction::Enable,
            format!("not enabled at boot{absent}"),
        ),
        Some(Enabled::No) if enabled => push(ServiceAction::Disable, "enabled at boot".into()),
        _ => {}
    }
    changes
}

#[cfg(test)]
mod tests;
