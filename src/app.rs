//! Wires the stages for one command and maps the outcome to an exit code.
//! This is the one place that decides exit codes and the one place that
//! builds the real probe and executors.

use crate::apply::real::{RealApt, RealFiles, Systemctl, Sysv};
use crate::apply::{self, Executors, ServiceExec};
use crate::cli::{Cli, Command, Format, RunArgs, StatusArgs};
use crate::facts::{self, InitSystem, RealProbe};
use crate::plan::{self, Plan, Source};
use crate::report::{human::Human, json, Mode, Report};
use std::io::Read;
use std::time::Duration;

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
                Format::Json => println!("{}", serde_json::to_string_pretty(&status).expect("status serialises")),
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
    let (bytes, source) = read_plan(args).map_err(|e| early_error(args, mode, &e, EXIT_NO_INPUT))?;
    Plan::load(&bytes, source, &overrides)
        .map_err(|e| early_error(args, mode, &format!("invalid plan: {e}"), EXIT_INVALID_PLAN))
}

fn init_logging(verbose: u8) {
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
        print!("{}", json::render(&Report::failed_before_start(mode, message.to_string())));
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
            let meta = std::fs::metadata(p).map_err(|e| format!("cannot read plan {}: {e}", p.display()))?;
            if !meta.is_file() {
                return Err(format!("plan {} is not a regular file", p.display()));
            }
            if meta.len() > plan::MAX_PLAN_BYTES as u64 {
                return Ok((vec![0; plan::MAX_PLAN_BYTES + 1], Source::file(p)));
            }
            let bytes = std::fs::read(p).map_err(|e| format!("cannot read plan {}: {e}", p.display()))?;
            Ok((bytes, Source::file(p)))
        }
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective uid of the process reading it.
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn run_stage(args: &RunArgs, mode: Mode) -> i32 {
    let plan = match load(args, mode) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if mode == Mode::Apply && !is_root() {
        return early_error(args, mode, "apply must run as root: it installs packages and writes under /etc", 1);
    }

    let planned = facts::gather(&RealProbe, &plan).and_then(|g| {
        let changeset = crate::diff::diff(&g.rendered, &g.facts).map_err(anyhow::Error::msg)?;
        Ok((g.facts, changeset))
    });
    let (facts, changeset) = match planned {
        Ok(x) => x,
        Err(e) => {
            let report = Report::failed_before_start(mode, format!("nothing was changed: {e:#}"));
            emit(args, &plan, &report);
            return report.exit_code(args.detailed_exitcodes);
        }
    };

    let report = match mode {
        Mode::Plan => {
            let report = Report::plan(&changeset);
            emit(args, &plan, &report);
            report
        }
        Mode::Apply => {
            let mut apt = RealApt { lock_timeout: Duration::from_secs(args.lock_timeout) };
            let mut files = RealFiles;
            let mut services: Box<dyn ServiceExec> = match facts.init {
                InitSystem::Systemd => Box::new(Systemctl),
                InitSystem::Sysv => Box::new(Sysv),
            };
            let mut exec = Executors { apt: &mut apt, services: services.as_mut(), files: &mut files };
            match args.format {
                Format::Json => {
                    let report = apply::apply(&changeset, &mut exec, &mut |_| {});
                    print!("{}", json::render(&report));
                    report
                }
                Format::Human => {
                    let mut out = Human::stdout();
                    out.header(Mode::Apply, &plan.name, changeset.daemon.as_ref(), &changeset.notes);
                    let report = apply::apply(&changeset, &mut exec, &mut |step| out.step(step));
                    out.recap(&report);
                    report
                }
            }
        }
    };
    report.exit_code(args.detailed_exitcodes)
}

fn emit(args: &RunArgs, plan: &Plan, report: &Report) {
    match args.format {
        Format::Json => print!("{}", json::render(report)),
        Format::Human => Human::stdout().report(&plan.name, report),
    }
}
