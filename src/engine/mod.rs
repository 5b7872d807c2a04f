//! The engine: one plan or apply from a loaded plan to its report. `run`
//! checks the caller may apply, takes the run lock, decides everything
//! before the first change (`prepare`), runs the changeset and the checks
//! after it; the CLI (`app`) and the Ansible module (`ansible`) only read
//! their input and render what an `Observer` sees and the report.

pub mod amplification;
pub mod record;
pub mod sync_wait;

use crate::apply::apt::RealApt;
use crate::apply::files::RealFiles;
use crate::apply::services::{Systemctl, Sysv};
use crate::apply::{self, Executors, ServiceExec};
use crate::diff::{Changeset, PlannedStep};
use crate::facts::{self, InitSystem, RealProbe};
use crate::interrupt::Interrupt;
use crate::lint::{self, PlanLint};
use crate::plan::Plan;
use crate::report::{Mode, Report, StepReport};
use crate::runlock::{self, RunLock};
use crate::verify::Enforcement;
use amplification::check_amplification;
use std::time::Duration;

/// The refusal of `apply` by a user other than root.
pub(crate) const NOT_ROOT: &str =
    "apply must run as root: it installs packages and writes under /etc";

/// What an adapter sees of a run while it happens.
pub(crate) trait Observer {
    /// Everything is decided and nothing changed yet (for `plan`, the
    /// report follows at once).
    fn decided(&mut self, _prepared: &Prepared) {}
    /// A step of `apply` is about to run.
    fn starting(&mut self, _step: &PlannedStep) {}
    /// A change of that step is about to run.
    fn running(&mut self, _change: &crate::diff::Change) {}
    /// A step of `apply` has finished.
    fn step(&mut self, _step: &StepReport) {}
}

/// `apply::Progress` for an observer shared with the step callback: the
/// two are never called at the same time.
struct Watching<'o, 'a>(&'o std::cell::RefCell<&'a mut dyn Observer>);

impl apply::Progress for Watching<'_, '_> {
    fn step_started(&mut self, step: &PlannedStep) {
        self.0.borrow_mut().starting(step);
    }
    fn change_started(&mut self, change: &crate::diff::Change) {
        self.0.borrow_mut().running(change);
    }
}

/// An observer that watches nothing (JSON output needs only the report).
pub(crate) struct Quiet;
impl Observer for Quiet {}

/// How a run goes, beside its plan.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunOptions {
    pub mode: Mode,
    /// Seconds to wait for the run lock and for each dpkg or apt lock.
    pub lock_timeout: u64,
    /// After a successful apply, how long to wait for the clock to
    /// synchronise (`--wait-sync`); `None`: not at all.
    pub wait_sync: Option<Duration>,
}

/// One `plan` or `apply` of a loaded plan. The guarantees hold for every
/// caller: one run at a time per node (waiting up to `lock_timeout` seconds
/// for the run lock and the dpkg lock), and SIGINT/SIGTERM finish the
/// current step and skip the rest. A run that cannot start is a report too.
pub(crate) fn run(plan: &Plan, options: RunOptions, observer: &mut dyn Observer) -> Report {
    let RunOptions {
        mode,
        lock_timeout,
        wait_sync,
    } = options;
    if mode == Mode::Apply && !is_root() {
        return Report::failed_before_start(mode, NOT_ROOT.into());
    }
    let interrupt = Interrupt::install();
    // Held until the run returns.
    let _run_lock = match take_run_lock(lock_timeout, mode, &interrupt) {
        Ok(lock) => lock,
        Err(e) => return Report::failed_before_start(mode, format!("nothing was changed: {e:#}")),
    };
    let started = std::time::SystemTime::now();
    let prepared = match prepare(plan, mode) {
        Ok(prepared) => prepared,
        Err(e) => return Report::failed_before_start(mode, e),
    };
    observer.decided(&prepared);
    match mode {
        Mode::Plan => plan_report(&prepared.changeset, &interrupt),
        Mode::Apply => {
            let mut report = execute(plan, &prepared, lock_timeout, &interrupt, observer);
            if let Some(bound) = wait_sync.filter(|_| !report.failed) {
                report = wait_for_sync(plan, &prepared.changeset, report, bound, observer);
            }
            remember(plan, &report, started);
            report
        }
    }
}

/// `--wait-sync`: the wait as the report's last step, shown as it runs.
fn wait_for_sync(
    plan: &Plan,
    changeset: &Changeset,
    report: Report,
    bound: Duration,
    observer: &mut dyn Observer,
) -> Report {
    observer.starting(&PlannedStep {
        name: sync_wait::SYNC_STEP.into(),
        handler: false,
        changes: Vec::new(),
    });
    let step = sync_wait::wait(&RealProbe, plan, bound);
    observer.step(&step);
    report.with_check(step, changeset)
}

/// Records the run for `status` and appends it to the run log. Best
/// effort: the run is done, a record that cannot be written is a warning.
fn remember(plan: &Plan, report: &Report, started: std::time::SystemTime) {
    let run = record::LastRun::of(plan, report, started, std::time::SystemTime::now());
    if let Err(e) = record::save(std::path::Path::new(record::LAST_RUN), &run) {
        log::warn!("could not record this run in {}: {e:#}", record::LAST_RUN);
    }
    if let Err(e) = record::append_log(std::path::Path::new(record::RUN_LOG), &run.log_line()) {
        log::warn!("could not append to {}: {e:#}", record::RUN_LOG);
    }
}

pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective uid of the process reading it.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `plan`'s report, unless SIGINT or SIGTERM arrived while it was made: it
/// is obeyed there, where the plan is whole (a plan changes nothing, so no
/// step is left to finish), and reported as `apply` reports one (exit 1, or
/// 4 with --detailed-exitcodes; the JSON `error` names the signal).
fn plan_report(changeset: &Changeset, interrupt: &Interrupt) -> Report {
    match interrupt.received() {
        Some(signal) => Report::failed_before_start(
            Mode::Plan,
            format!(
                "{signal} received: stopped before showing the plan; nothing was changed. Run plan again"
            ),
        ),
        None => Report::plan(changeset),
    }
}

/// Everything decided before the first change.
pub(crate) struct Prepared {
    pub facts: facts::Facts,
    pub changeset: Changeset,
    /// The lint's verdict for the after-apply check.
    pub policy: CheckPolicy,
    /// Answers kept for the redecision after the update and for the next
    /// run (`facts::Reuse`).
    pub reuse: facts::Reuse,
}

/// Facts, the changeset and the lint's verdict: everything decided before
/// the first change. The error says that nothing was changed, and why.
///
/// `plan` reads fresh lists privately where the node's are older than the
/// plan allows. `apply` first decides on the node's own lists: where they
/// are stale it runs the plan's update itself and decides the rest again
/// (`redecide_after_update`), one `apt-get update` instead of two. Where
/// the node's lists cannot decide the plan (none yet, a daemon they do not
/// know, a refusal), it decides as `plan` does, so nothing is changed
/// before the plan is known to hold.
pub(crate) fn prepare(plan: &Plan, mode: Mode) -> Result<Prepared, String> {
    if mode == Mode::Apply {
        match prepare_on(plan, facts::StaleLists::ReadNodes, None) {
            // Old lists decide only what comes before a step that updates
            // them (an update in a handler alone would not redecide).
            Ok(prepared)
                if !prepared.facts.lists.awaiting_update
                    || prepared.changeset.redecide_after_update =>
            {
                return Ok(prepared)
            }
            Ok(_) => log::info!(
                "the plan updates the package lists in no step: reading fresh lists into a private directory"
            ),
            Err(e) => log::info!(
                "the node's own package lists do not decide the plan ({e}); reading fresh lists into a private directory"
            ),
        }
    }
    prepare_on(plan, facts::StaleLists::FetchPrivately, None)
        .map_err(|e| format!("nothing was changed: {e}"))
}

/// `prepare` with the given lists; with `after_update`, the rest of a run
/// right after its update of the lists: what ran, and what it was decided
/// from (`diff::diff_after_update`).
fn prepare_on(
    plan: &Plan,
    lists: facts::StaleLists,
    after_update: Option<(&[PlannedStep], &Prepared)>,
) -> Result<Prepared, String> {
    // apt's answers before the update still hold if it found nothing new;
    // dpkg's and the units', if nothing but the update ran before.
    let carried = after_update.map_or_else(facts::Carried::default, |(done, before)| {
        before.reuse.carried(only_the_update_ran(done))
    });
    let planned = facts::gather_as(&RealProbe, &plan.into(), lists, carried).and_then(|g| {
        let changeset = match after_update {
            None => crate::diff::diff(&g.rendered, &g.facts),
            Some((done, before)) => crate::diff::diff_after_update(
                &g.rendered,
                &g.facts,
                done,
                before.changeset.daemon.as_ref(),
            ),
        }
        .map_err(anyhow::Error::msg)?;
        let linted = lint::for_plan(&g.rendered, &g.facts, &changeset);
        Ok((g.facts, changeset, linted, g.reuse))
    });
    let (facts, mut changeset, linted, reuse) = planned.map_err(|e| format!("{e:#}"))?;
    // The lint refuses before anything changes; accepted findings become notes.
    let (notes, policy) = lint_gate(&linted, &plan.allow_insecure)?;
    changeset.notes.extend(notes);
    Ok(Prepared {
        facts,
        changeset,
        policy,
        reuse,
    })
}

/// What the facts stage asks of the node for this plan.
impl<'a> From<&'a Plan> for facts::Wants<'a> {
    fn from(plan: &'a Plan) -> Self {
        facts::Wants {
            cache_validity: plan.cache_validity(),
            may_autoremove: plan.may_autoremove(),
            daemon: plan.vars.daemon,
            literal_packages: plan.literal_packages(),
            nts: plan.wants_nts(),
            nts_files: plan.nts_files(),
            settings: plan.settings(),
            virtualization: plan.detects_virtualization(),
            keys: plan.vars.keys.clone(),
            render: Box::new(|daemon, virt, secrets| Ok(plan.render_with(daemon, virt, secrets)?)),
        }
    }
}

/// Whether the steps that ran before a redecision planned no change but
/// the update of the lists: then dpkg and the units are as they were read.
fn only_the_update_ran(done: &[PlannedStep]) -> bool {
    done.iter()
        .flat_map(|step| &step.changes)
        .all(|change| matches!(change, crate::diff::Change::UpdateLists { .. }))
}

/// The rest of the run after its update of the package lists, decided on
/// them (`apply::Redecide`).
fn redecide_after_update(
    plan: &Plan,
    before: &Prepared,
    done: &[PlannedStep],
) -> Result<Prepared, String> {
    let mut prepared = prepare_on(plan, facts::StaleLists::ReadNodes, Some((done, before)))?;
    prepared.changeset.notes.push(
        "the package lists were updated by this run: the changes after that were decided on the fresh lists".into(),
    );
    Ok(prepared)
}

/// Runs the changeset through the real executors for this node (systemctl
/// or SysV), then the amplification check; `observer` sees every step. A run
/// that did not fail remembers apt's answers for the next one. First removes
/// the temp files a killed run left (the caller holds the run lock).
fn execute(
    plan: &Plan,
    prepared: &Prepared,
    lock_timeout: u64,
    interrupt: &Interrupt,
    observer: &mut dyn Observer,
) -> Report {
    let changeset = &prepared.changeset;
    let observer = std::cell::RefCell::new(observer);
    let on_step = &mut |step: &StepReport| observer.borrow_mut().step(step);
    // The run lock is held (apply cannot run without it), so no other run
    // owns our temp files: those there were left by a run killed half way.
    let mut written: Vec<&std::path::Path> =
        prepared.facts.files.keys().map(|p| p.as_path()).collect();
    if prepared.facts.timezone.is_some() {
        written.push(std::path::Path::new(facts::timezone::LOCALTIME));
    }
    crate::apply::files::sweep_leftovers(
        &written,
        &[
            std::path::Path::new(crate::apply::files::CHECK_DIR_PARENT),
            std::path::Path::new(facts::probe::NODE_CACHE_PARENT),
        ],
    );
    let mut apt = RealApt {
        lock_timeout: Duration::from_secs(lock_timeout),
        stop: {
            let interrupt = interrupt.clone();
            Box::new(move || interrupt.received())
        },
    };
    let mut files = RealFiles;
    let mut services: Box<dyn ServiceExec> = match prepared.facts.init {
        InitSystem::Systemd => Box::new(Systemctl),
        InitSystem::Sysv => Box::new(Sysv),
    };
    let units = NodeUnits(prepared.facts.init);
    let mut exec = Executors {
        apt: &mut apt,
        services: services.as_mut(),
        files: &mut files,
        units: &units,
        progress: &mut Watching(&observer),
    };
    let mut redecided: Option<Prepared> = None;
    let mut redecide = |done: &[PlannedStep]| {
        let next = redecide_after_update(plan, prepared, done)?;
        let changeset = next.changeset.clone();
        redecided = Some(next);
        Ok(changeset)
    };
    let report = apply::apply_redeciding(
        changeset,
        &mut exec,
        on_step,
        &|| interrupt.received(),
        Some(&mut redecide),
    );
    // After a redecision, the check goes by the fresh lists, and so does
    // the memo, unless apt's answers from before the update still held
    // (`save_if_current` keeps only a record that is still true).
    let first = prepared;
    let prepared = redecided.as_ref().unwrap_or(first);
    let report = check_amplification(report, plan, &prepared.changeset, &prepared.policy, on_step);
    let memo = prepared.reuse.apt.as_ref().or(first.reuse.apt.as_ref());
    if let (false, Some(memo)) = (report.failed, memo) {
        memo.save_if_current(&RealProbe);
    }
    report
}

/// The node's units as the facts stage reads them (systemctl show, or the
/// init scripts and rc links).
struct NodeUnits(InitSystem);

impl apply::UnitView for NodeUnits {
    fn unit(&self, unit: &crate::names::UnitName) -> anyhow::Result<facts::UnitFact> {
        use crate::facts::Probe;
        RealProbe
            .units(self.0, std::slice::from_ref(unit))?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no state read for {unit}"))
    }
}

/// The run lock under /run. `apply` must have it. A `plan` by a user who
/// cannot open it (not root, and no run has created it yet) goes on
/// without: it changes nothing, and says so at info level.
fn take_run_lock(
    lock_timeout: u64,
    mode: Mode,
    interrupt: &Interrupt,
) -> anyhow::Result<Option<RunLock>> {
    let path = std::path::Path::new(runlock::RUN_LOCK);
    let mut on_wait = |w: &runlock::Waiting| {
        let holder = w
            .holder
            .map_or(String::new(), |pid| format!(" (pid {pid})"));
        log::warn!(
            "another ntp-provision run{holder} holds {}; waiting up to {} s (--lock-timeout), {} s so far",
            path.display(),
            lock_timeout,
            w.waited.as_secs()
        );
    };
    let timeout = Duration::from_secs(lock_timeout);
    match RunLock::acquire(path, timeout, &mut on_wait, &|| interrupt.received()) {
        Ok(lock) => Ok(Some(lock)),
        Err(e) if mode == Mode::Plan && !is_root() => {
            log::info!("plan runs without the run lock: {e:#}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Whether the after-apply check fails on answers, and the accepted rules.
pub(crate) type CheckPolicy = (Enforcement, Vec<String>);

/// The lint's verdict on the daemon configs the plan writes: notes for
/// accepted findings and the after-apply check's policy, or the refusal.
pub(crate) fn lint_gate(
    outcome: &PlanLint,
    allow: &[lint::Rule],
) -> Result<(Vec<String>, CheckPolicy), String> {
    let mut notes: Vec<String> = outcome
        .not_templated
        .iter()
        .map(|path| format!("the plan does not write {path}: its access control was not linted"))
        .collect();
    notes.extend(lint::judge(outcome, allow)?);
    // The check after apply probes the resolved daemon: only findings in
    // its own config relax it, and a readable NTS key explains no answer.
    let mut accepted: Vec<lint::Rule> = outcome
        .linted
        .iter()
        .filter(|l| l.for_daemon)
        .flat_map(|l| &l.findings)
        .map(|f| f.rule)
        .filter(|r| *r != lint::Rule::NtsKeyReadable)
        .collect();
    accepted.sort();
    accepted.dedup();
    let enforcement = if accepted.is_empty() {
        Enforcement::Enforced
    } else {
        Enforcement::AllowedByPlan
    };
    let accepted = accepted.iter().map(|r| r.name().to_string()).collect();
    Ok((notes, (enforcement, accepted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_during_plan_stops_it_with_the_exit_code_of_an_interrupted_run() {
        let changeset = Changeset {
            daemon: None,
            notes: Vec::new(),
            steps: vec![crate::diff::PlannedStep {
                name: "Time daemon installed".into(),
                handler: false,
                changes: Vec::new(),
            }],
            redecide_after_update: false,
        };
        let interrupt = Interrupt::never();
        let report = plan_report(&changeset, &interrupt);
        assert_eq!((report.failed, report.steps.len()), (false, 1));
        interrupt.raise_for_test(signal_hook::consts::SIGTERM);
        let report = plan_report(&changeset, &interrupt);
        assert!(report.failed);
        assert!(report.steps.is_empty());
        assert_eq!(
            report.error.as_deref(),
            Some("SIGTERM received: stopped before showing the plan; nothing was changed. Run plan again")
        );
        assert_eq!((report.exit_code(false), report.exit_code(true)), (1, 4));
    }

    #[test]
    fn dpkg_and_units_are_carried_over_an_update_only_when_nothing_else_was_to_run_before_it() {
        use crate::diff::{Change, PkgChange, PlannedStep};
        let step = |name: &str, changes: Vec<Change>| PlannedStep {
            name: name.into(),
            handler: false,
            changes,
        };
        let update = Change::UpdateLists {
            age_seconds: Some(7200),
            max_age_seconds: Some(3600),
        };
        let purge = Change::Purge {
            packages: vec![PkgChange {
                package: crate::names::PackageName::parse("ntpdate").unwrap(),
                before: None,
                after: None,
            }],
        };
        let nothing = step("Deprecated ntpdate purged", Vec::new());
        let updated = step("Package lists fresh", vec![update]);
        assert!(only_the_update_ran(&[nothing.clone(), updated.clone()]));
        assert!(only_the_update_ran(std::slice::from_ref(&updated)));
        let purged = step("Deprecated ntpdate purged", vec![purge]);
        assert!(!only_the_update_ran(&[purged, updated]));
    }
}
