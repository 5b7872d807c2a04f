//! Wires the stages for one command and maps the outcome to an exit code.
//! This is the one place that decides exit codes and the one place that
//! builds the real probe and executors.

use crate::cli::{Cli, Command, Format, RunArgs, StatusArgs, VerifyArgs};
use crate::engine::{execute, plan_report, prepare, take_run_lock};
use crate::facts::RealProbe;
use crate::interrupt::Interrupt;
use crate::plan::{self, Plan, Source};
use crate::report::{human::Human, json, Mode, Report};
use crate::verify::report::VerifyReport;
use crate::verify::{self, socket, target};
use std::io::Read;

/// Exit codes besides the report's own (0, 1, and 2/4/6 with --detailed-exitcodes).
pub const EXIT_USAGE: i32 = 64;
pub const EXIT_INVALID_PLAN: i32 = 65;
pub const EXIT_NO_INPUT: i32 = 66;

pub use crate::engine::amplification::AMPLIFICATION_STEP;
use crate::engine::is_root;

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

fn emit(args: &RunArgs, plan: &Plan, report: &Report) {
    match args.format {
        Format::Json => print!("{}", json::render(report)),
        Format::Human => Human::stdout().report(&plan.name, report),
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
