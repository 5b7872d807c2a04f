//! Ansible binary module: `ntp-provision ARGS_FILE`.
//!
//! Ansible copies a binary module to the host and runs it with one argument,
//! the path of a file holding the task's arguments as a JSON object (plus its
//! own `_ansible_*` keys). The module answers with one JSON object on stdout
//! and exit status 0; Ansible reads success from its `failed` key.
//!
//! Arguments (unknown ones are refused, as Ansible's own modules do):
//! - `plan`: a mapping (the plan itself), a multi-line string (plan YAML, e.g.
//!   from `lookup('file', 'site.yaml')` on the controller) or a one-line
//!   string (the path of a plan file on the target); default: the embedded plan.
//! - `vars`: a mapping of plan variables, like `-e` (group_vars/host_vars land here).
//! - `daemon`: shortcut for `vars.daemon`; wins over it.
//! - `lock_timeout`: seconds to wait for the dpkg lock (default 300).
//! - `require_sync`: after apply, wait until the clock is synchronised:
//!   `true` (120 s) or seconds; the result fails naming the state if not.
//! - `command`: `converge` (default: `plan` in check mode, else `apply`) or
//!   `status` (what `ntp-provision status --format json` reports, read-only).
//!
//! `_ansible_check_mode` selects `plan`; `_ansible_diff` adds `diff`, one
//! entry per file in Ansible's before/after format. The result also carries
//! our report (`steps`, `summary`, `daemon`, `notes`, `error`).
//!
//! Must not: prompt, read stdin, print anything but the one JSON object on
//! stdout, or exit non-zero for a module result. Runs the same stages as
//! `plan` and `apply`; the stages never learn that Ansible called them.

use crate::diff::{Change, Changeset};
use crate::facts::{Facts, RealProbe};
use crate::plan::input::{self, PlanInput};
use crate::plan::{self, Plan};
use crate::report::{json, Mode, Report, Status};
use crate::{app, engine};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// Names the CLI claims: a file called `plan` in the working directory must
/// not turn `ntp-provision plan` into a module run.
const SUBCOMMANDS: [&str; 7] = [
    "plan",
    "apply",
    "status",
    "verify",
    "completions",
    "generate",
    "help",
];
/// Ansible's args files are small; anything bigger is not one.
const MAX_ARGS_BYTES: u64 = 4 * 1024 * 1024;
const DEFAULT_LOCK_TIMEOUT: u64 = 300;
/// `require_sync: true`: as long as `apply --wait-sync` waits.
const DEFAULT_SYNC_WAIT: u64 = 120;

/// The module's arguments when the command line is an Ansible binary-module
/// invocation: exactly one argument, no subcommand or option, naming an
/// existing file that holds a JSON object. `None`: an ordinary command line.
pub fn detect(args: &[OsString]) -> Option<Map<String, Value>> {
    let [_, arg] = args else { return None };
    let text = arg.to_str()?;
    if text.starts_with('-') || SUBCOMMANDS.contains(&text) {
        return None;
    }
    let meta = std::fs::metadata(text).ok()?;
    if !meta.is_file() || meta.len() > MAX_ARGS_BYTES {
        return None;
    }
    match serde_json::from_slice(&std::fs::read(text).ok()?).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlanArg {
    Embedded,
    /// A plan file on the target.
    Path(PathBuf),
    /// The plan's YAML text, from the task.
    Inline(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleCommand {
    Converge,
    Status,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModuleArgs {
    pub plan: PlanArg,
    pub vars: Vec<(String, serde_yaml::Value)>,
    pub lock_timeout: u64,
    /// After apply, seconds to wait for the clock to synchronise.
    pub require_sync: Option<u64>,
    pub command: ModuleCommand,
    /// `_ansible_check_mode`: plan only.
    pub check_mode: bool,
    /// `_ansible_diff`: return per-file diffs.
    pub diff: bool,
}

/// Validates the task's arguments; the error is the module's `msg`.
pub fn parse_args(args: &Map<String, Value>) -> Result<ModuleArgs, String> {
    let mut parsed = ModuleArgs {
        plan: PlanArg::Embedded,
        vars: Vec::new(),
        lock_timeout: DEFAULT_LOCK_TIMEOUT,
        require_sync: None,
        command: ModuleCommand::Converge,
        check_mode: false,
        diff: false,
    };
    let mut daemon = None;
    for (key, value) in args {
        match key.as_str() {
            "_ansible_check_mode" => parsed.check_mode = boolean(key, value)?,
            "_ansible_diff" => parsed.diff = boolean(key, value)?,
            // Ansible's other internal keys (verbosity, version, tmpdir...) do not concern us.
            k if k.starts_with("_ansible_") => {}
            "plan" => parsed.plan = plan_arg(value)?,
            "vars" => match value {
                Value::Null => {}
                Value::Object(map) => {
                    for (name, v) in map {
                        if !is_identifier(name) {
                            return Err(format!("vars: {name:?} is not a variable name (letters, digits, _)"));
                        }
                        parsed.vars.push((name.clone(), to_yaml(v)?));
                    }
                }
                other => return Err(format!("vars must be a mapping of variable names to values, not {}", type_name(other))),
            },
            "daemon" => match value {
                Value::Null => {}
                Value::String(s) => daemon = Some(s.clone()),
                other => return Err(format!("daemon must be a string (ntp, ntpsec, chrony, openntpd, timesyncd), not {}", type_name(other))),
            },
            "lock_timeout" => parsed.lock_timeout = seconds(key, value)?,
            // true: the CLI's default bound; a number: that many seconds.
            "require_sync" => {
                parsed.require_sync = match value {
                    Value::Null | Value::Bool(false) => None,
                    Value::Bool(true) => Some(DEFAULT_SYNC_WAIT),
                    other => Some(seconds(key, other)?),
                }
            }
            "command" => {
                parsed.command = match value.as_str() {
                    Some("converge") => ModuleCommand::Converge,
                    Some("status") => ModuleCommand::Status,
                    _ => return Err(format!("command must be converge or status, not {value}")),
                }
            }
            other => {
                return Err(format!(
                    "unsupported parameter {other:?} (supported: plan, vars, daemon, lock_timeout, require_sync, command)"
                ))
            }
        }
    }
    if let Some(d) = daemon {
        // `daemon` is the shortcut and wins: a host can pick its daemon over group vars.
        parsed.vars.retain(|(k, _)| k != "daemon");
        parsed
            .vars
            .push(("daemon".into(), serde_yaml::Value::String(d)));
    }
    Ok(parsed)
}

fn plan_arg(value: &Value) -> Result<PlanArg, String> {
    match value {
        Value::Null => Ok(PlanArg::Embedded),
        Value::Object(_) => serde_yaml::to_string(value)
            .map(PlanArg::Inline)
            .map_err(|e| format!("plan: the mapping cannot be written as YAML: {e}")),
        Value::String(s) if s.trim().is_empty() => {
            Err("plan is empty: give a path on the target, plan YAML, or a mapping".into())
        }
        // One line is a path: a plan needs at least `steps:` and its list.
        Value::String(s) if !s.contains('\n') => Ok(PlanArg::Path(PathBuf::from(s))),
        Value::String(s) => Ok(PlanArg::Inline(s.clone())),
        other => Err(format!(
            "plan must be a path on the target, plan YAML or a mapping, not {}",
            type_name(other)
        )),
    }
}

fn boolean(key: &str, value: &Value) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| format!("{key} must be a boolean, not {value}"))
}

/// Ansible templating turns numbers into strings easily: accept both.
fn seconds(key: &str, value: &Value) -> Result<u64, String> {
    let n = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.ok_or_else(|| format!("{key} must be a whole number of seconds, not {value}"))
}

fn to_yaml(value: &Value) -> Result<serde_yaml::Value, String> {
    serde_yaml::to_value(value)
        .map_err(|e| format!("vars: {value} cannot be used as a plan variable: {e}"))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Runs the module and prints its one JSON result. Always 0: Ansible reads
/// `failed` from the JSON, and a non-zero status would only hide our `msg`.
pub fn run(args: Map<String, Value>) -> i32 {
    app::init_logging(0);
    let result = match parse_args(&args) {
        Err(msg) => failed(format!("invalid module arguments: {msg}")),
        Ok(a) => match a.command {
            ModuleCommand::Status => status(&a),
            ModuleCommand::Converge => converge(&a),
        },
    };
    println!("{result}");
    0
}

fn failed(msg: String) -> Value {
    json!({"changed": false, "failed": true, "msg": msg})
}

fn load(a: &ModuleArgs) -> Result<Plan, String> {
    let input = match &a.plan {
        PlanArg::Embedded => PlanInput::Embedded,
        PlanArg::Path(p) => PlanInput::File(p.clone()),
        PlanArg::Inline(text) => PlanInput::Text {
            text: text.clone(),
            name: "<module argument plan>".into(),
        },
    };
    // A path here names a file on the managed node, not on the controller.
    let (bytes, source) = input::read(&input, &|p| format!("{} on the target", p.display()))?;
    let origin = std::sync::Arc::new(plan::VarOrigin::ModuleArg);
    let vars: Vec<plan::Override> = a
        .vars
        .iter()
        .map(|(key, value)| plan::Override {
            key: key.clone(),
            value: value.clone(),
            origin: Some(origin.clone()),
        })
        .collect();
    Plan::load_overridden(&bytes, source, &vars).map_err(|e| {
        let what = if e.file == plan::vars::MODULE_VARS {
            "invalid vars"
        } else {
            "invalid plan"
        };
        format!("{what}: {e}")
    })
}

fn status(a: &ModuleArgs) -> Value {
    // As the CLI: no plan given compares with the one applied last.
    let last = match (&a.plan, a.vars.is_empty()) {
        (PlanArg::Embedded, true) => engine::record::last_applied_plan(),
        _ => None,
    };
    let plan = match last.unwrap_or_else(|| load(a)) {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    match crate::status::gather(&RealProbe, &plan) {
        Err(e) => failed(format!("status: {e:#}")),
        Ok(status) => {
            let running = status.exit_code() == 0;
            let msg = match (&status.daemon, running, status.synchronised) {
                (None, _, _) => "no NTP daemon package is installed".to_string(),
                (Some(d), false, _) => {
                    format!("{} is installed but {} is not running", d.package, d.unit)
                }
                (Some(d), true, true) => format!("{} is running and synchronised", d.unit),
                (Some(d), true, false) => format!("{} is running, not synchronised", d.unit),
            };
            let mut value = crate::wire::versioned(
                serde_json::to_value(&status).unwrap_or_else(|e| json!({"error": e.to_string()})),
            );
            if let Some(obj) = value.as_object_mut() {
                obj.insert("compared_with".into(), plan.source.clone().into());
                obj.insert("changed".into(), Value::Bool(false));
                obj.insert("failed".into(), Value::Bool(!running));
                obj.insert("msg".into(), Value::String(msg));
            }
            value
        }
    }
}

fn converge(a: &ModuleArgs) -> Value {
    let mode = if a.check_mode {
        Mode::Plan
    } else {
        Mode::Apply
    };
    let plan = match load(a) {
        Ok(p) => p,
        Err(e) => return failed(e),
    };
    let mut decided = FileDiffs(Vec::new(), mode);
    let options = engine::RunOptions {
        mode,
        lock_timeout: a.lock_timeout,
        wait_sync: a.require_sync.map(std::time::Duration::from_secs),
    };
    let report = engine::run(&plan, options, &mut decided);
    // Only the files of steps that changed (apply) or would change (plan).
    let changed_paths: Vec<&str> = report
        .steps
        .iter()
        .filter(|s| s.status == Status::Changed)
        .flat_map(|s| &s.changes)
        .filter_map(|c| match c {
            Change::File { path, .. } => Some(path.as_str()),
            Change::Timezone { .. } => Some(crate::facts::timezone::LOCALTIME),
            _ => None,
        })
        .collect();
    let diffs = decided
        .0
        .into_iter()
        .filter(|(path, _)| changed_paths.contains(&path.as_str()))
        .map(|(_, d)| d)
        .collect();
    result(&report, diffs, a.diff)
}

/// The file diffs, taken once the run is decided: the node's files as the
/// diff stage saw them, before apply changes any.
struct FileDiffs(Vec<(String, Value)>, Mode);

impl engine::Observer for FileDiffs {
    fn decided(&mut self, prepared: &engine::Prepared) {
        self.0 = file_diffs(&prepared.changeset, &prepared.facts, self.1 == Mode::Plan);
    }
}

/// One Ansible diff entry per file change, in plan order: full before and
/// after text, so `--diff` renders it like Ansible's own `template` module.
/// The before text is the node's file as the diff stage saw it (an earlier
/// step of the same run may already have rewritten it); a change of mode or
/// owner only is a prepared line. `planned`: check mode, where the after
/// side is `(planned)`.
pub fn file_diffs(changeset: &Changeset, facts: &Facts, planned: bool) -> Vec<(String, Value)> {
    let mut current: BTreeMap<String, Option<String>> = facts
        .files
        .iter()
        .map(|(p, f)| {
            (
                p.as_str().to_string(),
                f.as_ref()
                    .map(|f| String::from_utf8_lossy(&f.content).into_owned()),
            )
        })
        .collect();
    let mut out = Vec::new();
    for change in changeset.steps.iter().flat_map(|s| &s.changes) {
        if let Change::Timezone { .. } = change {
            let path = crate::facts::timezone::LOCALTIME.to_string();
            out.push((path, json!({"prepared": format!("{change}\n")})));
            continue;
        }
        let Change::File {
            path,
            content,
            diff,
            masked,
            ..
        } = change
        else {
            continue;
        };
        let path = path.as_str().to_string();
        let before = current.get(&path).cloned().flatten();
        // A file of secrets shows as the diff stage masked it, both sides.
        let shown = |text: &str| match masked {
            true => crate::daemons::keys::mask(text),
            false => text.to_string(),
        };
        let (before, after) = (before.map(|b| shown(&b)), shown(content));
        let entry = if diff.is_empty() {
            json!({"prepared": format!("{change}\n")})
        } else {
            json!({
                "before_header": if before.is_some() { path.clone() } else { "/dev/null".to_string() },
                "after_header": if planned { format!("{path} (planned)") } else { path.clone() },
                "before": before.unwrap_or_default(),
                "after": after,
            })
        };
        current.insert(path.clone(), Some(content.clone()));
        out.push((path, entry));
    }
    out
}

/// The module result: our JSON report plus Ansible's `msg` and `diff`.
pub fn result(report: &Report, diffs: Vec<Value>, want_diff: bool) -> Value {
    let mut value = json::to_value(report);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("msg".into(), Value::String(message(report)));
        if want_diff && !diffs.is_empty() {
            obj.insert("diff".into(), Value::Array(diffs));
        }
    }
    value
}

/// One line for Ansible's output: the failure, or the recap.
fn message(report: &Report) -> String {
    match report.error.as_deref() {
        Some(engine::NOT_ROOT) => return format!("{} (use become: true)", engine::NOT_ROOT),
        Some(e) => return e.to_string(),
        None => {}
    }
    let s = &report.summary;
    let recap = format!(
        "ok={} changed={} failed={} skipped={}",
        s.ok, s.changed, s.failed, s.skipped
    );
    let failures: Vec<String> = report
        .steps
        .iter()
        .filter(|st| st.status == Status::Failed)
        .map(|st| format!("{}: {}", st.name, st.error.as_deref().unwrap_or("failed")))
        .collect();
    match (report.mode, failures.is_empty()) {
        (_, false) => format!("{} ({recap})", failures.join("; ")),
        (Mode::Plan, true) => format!("plan (check mode, nothing changed): {recap}"),
        (Mode::Apply, true) => format!("apply: {recap}"),
    }
}

#[cfg(test)]
mod tests;
