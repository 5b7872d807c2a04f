//! Wires the stages for one command and maps the outcome to an exit code.
//! This is the one place that decides exit codes and the one place that
//! builds the real probe and executors.

use crate::apply::apt::RealApt;
use crate::apply::files::RealFiles;
use crate::apply::services::{Systemctl, Sysv};
use crate::apply::{self, Executors, ServiceExec};

use crate::cli::{Cli, Command, Format, RunArgs, StatusArgs, VerifyArgs};
use crate::diff::{Change, Changeset, PlannedStep, ServiceAction};
use crate::facts::{self, InitSystem, RealProbe};
use crate::interrupt::Interrupt;
use crate::lint::{self, PlanLint};
use crate::plan::{self, Plan, Source};
use crate::report::{human::Human, json, Mode, Report, Status, StepReport};
use crate::runlock::{self, RunLock};
use crate::verify::report::VerifyReport;
use crate::verify::{self, socket, target, Amplification, Enforcement};
use std::io::Read;
use std::time::{Duration, Instant};

/// Exit codes besides the report's own (0, 1, and 2/4/6 with --detailed-exitcodes).
pub const EXIT_USAGE: i32 = 64;
pub const EXIT_INVALID_PLAN: i32 = 65;
pub const EXIT_NO_INPUT: i32 = 66;

/// clap's errors: help and version are not errors; the rest is bad usage.
pub fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let code = match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
        _ => EXIT_USAGE,
    };
    let _ = e.print();
    std::process::exit(code)
}

pub fn run(cli: Cli) -> i32 {
    init_logging(cli.verbose);
    match cli.command {
        Command::Plan(args) => run_stage(&args, Mode::Plan),
        Command::Apply(args) => run_stage(&args, Mode::Apply),
        Command::Status(args) => run_status(&args),
        Command::Verify(args) => run_verify(&args),
    }
}

fn run_status(args: &StatusArgs) -> i32 {
    let run_args = RunArgs {
        plan: args.plan.clone(),
        vars: args.vars.clone(),
        format: args.format,
        detailed_exitcodes: false,
        lock_timeout: 0,
    };
    let plan = match load(&run_args, Mode::Plan) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match crate::status::gather(&RealProbe, &plan) {
        Ok(status) => {
            match args.format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&status).expect("status serialises")
                ),
                Format::Human => print!("{}", status.human()),
            }
            status.exit_code()
        }
        Err(e) => {
            eprintln!("ntp-provision: status: {e:#}");
            if args.format == Format::Json {
                println!("{}", serde_json::json!({"error": format!("{e:#}")}));
            }
            1
        }
    }
}

/// Reads, parses and validates the plan with its overrides; on failure the
/// error is already reported and the exit code returned.
fn load(args: &RunArgs, mode: Mode) -> Result<Plan, i32> {
    let mut overrides = Vec::new();
    for v in &args.vars {
        match plan::parse_override(v) {
            Ok(kv) => overrides.push(kv),
            Err(e) => return Err(early_error(args, mode, &e, EXIT_USAGE)),
        }
    }
    let (bytes, source) =
        read_plan(args).map_err(|e| early_error(args, mode, &e, EXIT_NO_INPUT))?;
    Plan::load(&bytes, source, &overrides)
        .map_err(|e| early_error(args, mode, &format!("invalid plan: {e}"), EXIT_INVALID_PLAN))
}

pub(crate) fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_millis()
        .init();
}

/// An error before any report exists: stderr always, and for JSON also one
/// JSON document on stdout, so a caller parsing stdout never gets nothing.
fn early_error(args: &RunArgs, mode: Mode, message: &str, code: i32) -> i32 {
    eprintln!("ntp-provision: {message}");
    if args.format == Format::Json {
        print!(
            "{}",
            json::render(&Report::failed_before_start(mode, message.to_string()))
        );
    }
    code
}

fn read_plan(args: &RunArgs) -> Result<(Vec<u8>, Source), String> {
    match args.plan.as_deref() {
        None => Ok((plan::DEFAULT_PLAN.as_bytes().to_vec(), Source::embedded())),
        Some(p) if p.as_os_str() == "-" => {
            let mut bytes = Vec::new();
            // One byte more than allowed is enough to refuse a huge plan without reading it all.
            std::io::stdin()
                .take(plan::MAX_PLAN_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("reading the plan from standard input: {e}"))?;
            Ok((bytes, Source::stdin()))
        }
        Some(p) => {
            let meta = std::fs::metadata(p)
                .map_err(|e| format!("cannot read plan {}: {e}", p.display()))?;
            if !meta.is_file() {
                return Err(format!("plan {} is not a regular file", p.display()));
            }
            if meta.len() > plan::MAX_PLAN_BYTES as u64 {
                return Ok((vec![0; plan::MAX_PLAN_BYTES + 1], Source::file(p)));
            }
            let bytes =
                std::fs::read(p).map_err(|e| format!("cannot read plan {}: {e}", p.display()))?;
            Ok((bytes, Source::file(p)))
        }
    }
}

pub(crate) fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective uid of the process reading it.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn run_stage(args: &RunArgs, mode: Mode) -> i32 {
    let plan = match load(args, mode) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if mode == Mode::Apply && !is_root() {
        return early_error(
            args,
            mode,
            "apply must run as root: it installs packages and writes under /etc",
            1,
        );
    }
    let interrupt = Interrupt::install();
    // Held until this function returns: one plan or apply at a time per node.
    let _run_lock = match take_run_lock(args, mode, &interrupt) {
        Ok(lock) => lock,
        Err(e) => {
            let report = Report::failed_before_start(mode, format!("nothing was changed: {e:#}"));
            emit(args, &plan, &report);
            return report.exit_code(args.detailed_exitcodes);
        }
    };

    let prepared = match prepare(&plan, mode) {
        Ok(x) => x,
        Err(e) => {
            let report = Report::failed_before_start(mode, e);
            emit(args, &plan, &report);
            return report.exit_code(args.detailed_exitcodes);
        }
    };

    let report = match mode {
        Mode::Plan => {
            let report = plan_report(&prepared.changeset, &interrupt);
            emit(args, &plan, &report);
            report
        }
        Mode::Apply => match args.format {
            Format::Json => {
                let report = execute(&plan, &prepared, args.lock_timeout, &interrupt, &mut |_| {});
                print!("{}", json::render(&report));
                report
            }
            Format::Human => {
                let mut out = Human::stdout();
                out.header(
                    Mode::Apply,
                    &plan.name,
                    prepared.changeset.daemon.as_ref(),
                    &prepared.changeset.notes,
                );
                let report = execute(
                    &plan,
                    &prepared,
                    args.lock_timeout,
                    &interrupt,
                    &mut |step| out.step(step),
                );
                out.recap(&report);
                report
            }
        },
    };
    report.exit_code(args.detailed_exitcodes)
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

/// The run lock under /run. `apply` must have it. A `plan` by a user who
/// cannot open it (not root, and no run has created it yet) goes on
/// without: it changes nothing, and says so at info level.
/// Everything decided before the first change.
pub(crate) struct Prepared {
    pub facts: facts::Facts,
    pub changeset: Changeset,
    /// The lint's verdict for the after-apply check.
    pub policy: CheckPolicy,
    /// apt's answers, remembered if `apply` succeeds (see `facts::memo`).
    pub apt_memo: Option<facts::memo::AptMemo>,
    /// dpkg's and the init system's answers, for the redecision after the
    /// update (see `facts::carry`).
    pub node_answers: Option<facts::carry::NodeAnswers>,
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
    let carried = facts::Carried {
        apt: after_update.and_then(|(_, before)| before.apt_memo.as_ref()),
        node: after_update
            .filter(|(done, _)| only_the_update_ran(done))
            .and_then(|(_, before)| before.node_answers.as_ref()),
    };
    let planned = facts::gather_as(&RealProbe, plan, lists, carried).and_then(|g| {
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
        Ok((g.facts, changeset, linted, g.apt_memo, g.node_answers))
    });
    let (facts, mut changeset, linted, apt_memo, node_answers) =
        planned.map_err(|e| format!("{e:#}"))?;
    // The lint refuses before anything changes; accepted findings become notes.
    let (notes, policy) = lint_gate(&linted, &plan.allow_insecure)?;
    changeset.notes.extend(notes);
    Ok(Prepared {
        facts,
        changeset,
        policy,
        apt_memo,
        node_answers,
    })
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
/// or SysV), then the amplification check; `on_step` sees every step. A run
/// that did not fail remembers apt's answers for the next one. First removes
/// the temp files a killed run left (the caller holds the run lock).
pub(crate) fn execute(
    plan: &Plan,
    prepared: &Prepared,
    lock_timeout: u64,
    interrupt: &Interrupt,
    on_step: &mut dyn FnMut(&StepReport),
) -> Report {
    let changeset = &prepared.changeset;
    // The run lock is held (apply cannot run without it), so no other run
    // owns our temp files: those there were left by a run killed half way.
    let written: Vec<&std::path::Path> = prepared.facts.files.keys().map(|p| p.as_path()).collect();
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
    let memo = prepared.apt_memo.as_ref().or(first.apt_memo.as_ref());
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

pub(crate) fn take_run_lock(
    args: &RunArgs,
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
            args.lock_timeout,
            w.waited.as_secs()
        );
    };
    let timeout = Duration::from_secs(args.lock_timeout);
    match RunLock::acquire(path, timeout, &mut on_wait, &|| interrupt.received()) {
        Ok(lock) => Ok(Some(lock)),
        Err(e) if mode == Mode::Plan && !is_root() => {
            log::info!("plan runs without the run lock: {e:#}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn emit(args: &RunArgs, plan: &Plan, report: &Report) {
    match args.format {
        Format::Json => print!("{}", json::render(report)),
        Format::Human => Human::stdout().report(&plan.name, report),
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
    // its own config relax it.
    let mut accepted: Vec<lint::Rule> = outcome
        .linted
        .iter()
        .filter(|l| l.for_daemon)
        .flat_map(|l| &l.findings)
        .map(|f| f.rule)
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

pub const AMPLIFICATION_STEP: &str = "No amplification from this node";

/// After apply started or restarted the daemon: sends it `verify`'s queries,
/// all at once, each from its own address (`verify::run_batch`), and appends
/// the result as a step. Read-only; the executors never see it.
pub(crate) fn check_amplification(
    report: Report,
    plan: &Plan,
    changeset: &Changeset,
    (enforcement, allowed_by): &CheckPolicy,
    on_step: &mut dyn FnMut(&StepReport),
) -> Report {
    let Some(daemon) = &changeset.daemon else {
        return report;
    };
    let started_daemon = report
        .steps
        .iter()
        .filter(|s| s.status == Status::Changed)
        .flat_map(|s| &s.changes)
        .any(|c| matches!(c, Change::Service { unit, action: ServiceAction::Start | ServiceAction::Restart, .. } if *unit == daemon.unit));
    if !started_daemon {
        return report;
    }
    let started = Instant::now();
    // ntpd and NTPsec answer time to 127.0.0.1 under every plan here: the
    // probe waits until they do (even where no health check did: SysV).
    // chrony and OpenNTPD may serve 127.0.0.1 no time at all (no `clients`,
    // no `listen`); their health check asked their own tool already.
    let localhost = std::net::IpAddr::from([127, 0, 0, 1]);
    let serves_localhost =
        daemon
            .flavor
            .serves_time_to(&crate::daemons::Access::default(), localhost, localhost);
    if serves_localhost && !verify::wait_until_answering(target::NTP_PORT, DAEMON_READY_BOUND) {
        log::info!("the daemon did not answer a time request from 127.0.0.1 within {DAEMON_READY_BOUND:?}; probing anyway");
    }
    let step = match verify::run_batch(
        target::DEFAULT_TARGET,
        verify::WAIT,
        &mut socket::exchange_batch,
    ) {
        Ok(check) => {
            let time_service_intended = verify::intended_time_service(
                daemon.flavor,
                &plan.vars.access,
                verify::BATCH_TIME_FROM,
                target::DEFAULT_TARGET.ip(),
            );
            let amplification = Amplification {
                check,
                enforcement: *enforcement,
                allowed_by: allowed_by.clone(),
                time_service_intended,
            };
            let failure = amplification.failure();
            let status = if failure.is_some() {
                Status::Failed
            } else {
                Status::Ok
            };
            StepReport::check(
                AMPLIFICATION_STEP,
                status,
                failure,
                started.elapsed().as_secs_f64(),
                Some(amplification),
            )
        }
        Err(e) => {
            let error = format!(
                "could not probe the daemon at {}: {e}",
                target::DEFAULT_TARGET
            );
            StepReport::check(
                AMPLIFICATION_STEP,
                Status::Failed,
                Some(error),
                started.elapsed().as_secs_f64(),
                None,
            )
        }
    };
    on_step(&step);
    let error = report.error;
    let mut steps = report.steps;
    steps.push(step);
    let mut report = Report::new(Mode::Apply, changeset, steps);
    // An interrupted run stays failed whatever the check finds.
    report.failed |= error.is_some();
    report.error = error;
    report
}

/// How long a just-(re)started daemon gets to answer before the probe.
const DAEMON_READY_BOUND: Duration = Duration::from_secs(5);

fn run_verify(args: &VerifyArgs) -> i32 {
    let parsed = args
        .target
        .as_deref()
        .map_or(Ok(target::DEFAULT_TARGET), target::parse_target)
        .and_then(|t| Ok((t, target::parse_from(args.from.as_deref(), t)?)));
    let (report, code) = match parsed {
        Err(e) => (VerifyReport::failed(e), EXIT_USAGE),
        Ok((to, from)) => {
            let report = match verify::run(to, from, verify::WAIT, &mut socket::exchange) {
                Ok(check) => VerifyReport::from_check(check),
                Err(e) => VerifyReport::failed(e),
            };
            let code = report.exit_code(args.detailed_exitcodes);
            (report, code)
        }
    };
    // Nothing measured: the reason goes to stderr, as for plan and apply.
    if let (Some(e), None) = (&report.error, &report.check) {
        eprintln!("ntp-provision: {e}");
        if args.format == Format::Human {
            return code;
        }
    }
    match args.format {
        Format::Json => print!("{}", report.json()),
        Format::Human => print!("{}", report.human()),
    }
    code
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
