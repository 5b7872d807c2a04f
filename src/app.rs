//! The command line: reads a command's input, runs it (plan and apply
//! through the engine) and renders the outcome; the one place that decides
//! exit codes.

use crate::cli::{Cli, ColorWhen, Command, Format, RunArgs, StatusArgs, VerifyArgs};
use crate::diff::{Change, PlannedStep};
use crate::engine;
use crate::facts::RealProbe;
use crate::plan::input::{self, PlanInput};
use crate::plan::{self, Plan};
use crate::report::{human::Human, json, live::Live, Mode, Report, StepReport};
use crate::verify::report::VerifyReport;
use crate::verify::{self, socket, target};
use crate::wire::versioned;
use std::path::Path;

/// Exit codes besides the report's own (0, 1, and 2/4/6 with --detailed-exitcodes).
pub const EXIT_USAGE: i32 = 64;
pub const EXIT_INVALID_PLAN: i32 = 65;
pub const EXIT_NO_INPUT: i32 = 66;

pub use crate::engine::amplification::AMPLIFICATION_STEP;

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
        Command::Plan(args) => run_stage(&args, Mode::Plan, use_color(cli.color)),
        Command::Apply(args) => run_stage(&args, Mode::Apply, use_color(cli.color)),
        Command::Status(args) => run_status(&args),
        Command::Verify(args) => run_verify(&args),
        Command::Completions(args) => crate::generate::completions(&args),
        Command::Generate(args) => crate::generate::run(&args),
    }
}

fn run_status(args: &StatusArgs) -> i32 {
    let fail = |message: &str, code: i32| {
        eprintln!("ntp-provision: status: {message}");
        if args.format == Format::Json {
            println!("{}", versioned(serde_json::json!({ "error": message })));
        }
        code
    };
    // No plan given: the one applied last, else the embedded default.
    let last = match (&args.plan, args.vars.is_empty()) {
        (None, true) => engine::record::last_applied_plan(),
        _ => None,
    };
    let plan = match last {
        Some(loaded) => loaded.map_err(|e| {
            (
                format!("{e}; give the plan to compare with: status PLAN"),
                EXIT_INVALID_PLAN,
            )
        }),
        None => load(args.plan.as_deref(), &args.vars),
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err((message, code)) => return fail(&message, code),
    };
    match crate::status::gather(&RealProbe, &plan) {
        Ok(status) => {
            match args.format {
                Format::Json => {
                    let mut doc =
                        versioned(serde_json::to_value(&status).expect("status serialises"));
                    if let Some(obj) = doc.as_object_mut() {
                        obj.insert("compared_with".into(), plan.source.clone().into());
                    }
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&doc).expect("JSON renders")
                    );
                }
                Format::Human => println!("{}compared with: {}", status.human(), plan.source),
            }
            status.exit_code()
        }
        Err(e) => fail(&format!("{e:#}"), 1),
    }
}

/// Whether human output is coloured: `auto` colours a terminal unless
/// NO_COLOR is set (no-color.org) or TERM is dumb.
fn use_color(when: ColorWhen) -> bool {
    use std::io::IsTerminal;
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            std::io::stdout().is_terminal()
                && set("NO_COLOR").is_none()
                && set("TERM").is_none_or(|t| t != "dumb")
        }
    }
}

/// Whether a live line can be drawn: a terminal that moves the cursor.
fn live_line() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
}

/// Reads, parses and validates the plan with its `-e` overrides; the error
/// names the problem, with the exit code it gets.
fn load(path: Option<&Path>, vars: &[String]) -> Result<Plan, (String, i32)> {
    let overrides = plan::read_overrides(vars).map_err(|e| {
        let code = match e.fault {
            plan::ArgFault::Usage => EXIT_USAGE,
            plan::ArgFault::Unreadable => EXIT_NO_INPUT,
            plan::ArgFault::Invalid => EXIT_INVALID_PLAN,
        };
        (e.message, code)
    })?;
    let input = match path {
        None => PlanInput::Embedded,
        Some(p) if p.as_os_str() == "-" => PlanInput::Stdin,
        Some(p) => PlanInput::File(p.to_path_buf()),
    };
    let (bytes, source) =
        input::read(&input, &|p| p.display().to_string()).map_err(|e| (e, EXIT_NO_INPUT))?;
    Plan::load_overridden(&bytes, source, &overrides)
        .map_err(|e| (format!("invalid plan: {e}"), EXIT_INVALID_PLAN))
}

pub(crate) fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    if verbose == 0 {
        // Without -v a log line is a message to the operator, like `error:`
        // in the report; timestamps and module paths are for debugging.
        logger.format(|out, record| {
            use std::io::Write;
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            writeln!(out, "{level}: {}", record.args())
        });
    } else {
        logger.format_timestamp_millis();
    }
    logger.init();
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

fn run_stage(args: &RunArgs, mode: Mode, color: bool) -> i32 {
    if mode == Mode::Plan && args.wait_sync.is_some() {
        let message = "--wait-sync is for apply: plan changes nothing to wait for";
        return early_error(args, mode, message, EXIT_USAGE);
    }
    let plan = match load(args.plan.as_deref(), &args.vars) {
        Ok(plan) => plan,
        Err((message, code)) => return early_error(args, mode, &message, code),
    };
    let options = engine::RunOptions {
        mode,
        lock_timeout: args.lock_timeout,
        wait_sync: args.wait_sync.map(std::time::Duration::from_secs),
    };
    let report = match args.format {
        Format::Json => {
            let report = engine::run(&plan, options, &mut engine::Quiet);
            print!("{}", json::render(&report));
            report
        }
        Format::Human => {
            let mut out = HumanRun {
                out: Human::stdout(color),
                live: Live::new(live_line()),
                plan: &plan,
                mode,
                headed: false,
            };
            let report = engine::run(&plan, options, &mut out);
            out.finish(&report);
            report
        }
    };
    report.exit_code(args.detailed_exitcodes)
}

/// The human output of `plan` and `apply`: `apply` shows its header once
/// everything is decided and each step as it ends; `plan`, or a run that
/// could not start, shows its whole report at the end.
struct HumanRun<'a> {
    out: Human<std::io::Stdout>,
    live: Live,
    plan: &'a Plan,
    mode: Mode,
    headed: bool,
}

impl engine::Observer for HumanRun<'_> {
    fn decided(&mut self, prepared: &engine::Prepared) {
        if self.mode == Mode::Apply {
            let changeset = &prepared.changeset;
            self.out.header(
                Mode::Apply,
                &self.plan.name,
                changeset.daemon.as_ref(),
                &changeset.notes,
            );
            self.headed = true;
        }
    }

    fn starting(&mut self, step: &PlannedStep) {
        self.live.step_started(step);
    }

    fn running(&mut self, change: &Change) {
        self.live.change_started(change);
    }

    fn step(&mut self, step: &StepReport) {
        self.live.finished();
        self.out.step(step);
    }
}

impl HumanRun<'_> {
    fn finish(&mut self, report: &Report) {
        if self.headed {
            self.out.recap(report);
        } else {
            self.out.report(&self.plan.name, report);
        }
    }
}

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
                Ok(mut check) => {
                    // A daemon on this host: its config says whom else it
                    // answers, which a probe from `from` cannot see.
                    if to.ip().is_loopback() {
                        let read = |path: &str| std::fs::read_to_string(path).ok();
                        let unprobed = verify::unprobed_here(&read, &check.sources());
                        check.note_unprobed(unprobed);
                    }
                    VerifyReport::from_check(check)
                }
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
