//! Jinja rendering (minijinja) for step fields and config templates.
//!
//! Undefined variables are errors, never empty strings. Templates come from
//! a file next to the plan (read once at load time) or, when there is none
//! of that name, from the binary (templates/*.j2). A `src` is a relative
//! path without `..`: nothing outside the plan's directory is read.

use super::raw::RawStep;
use super::vars::Vars;
use super::PlanError;
use crate::daemons::{Daemon, Flavor};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Templates compiled into the binary besides each daemon's own config.
const OTHER_EMBEDDED: [(&str, &str); 3] = [
    (
        "ntpsec.default.j2",
        include_str!("../../templates/ntpsec.default.j2"),
    ),
    (
        "ntp.dhclient-hook.j2",
        include_str!("../../templates/ntp.dhclient-hook.j2"),
    ),
    ("keys.j2", include_str!("../../templates/keys.j2")),
];

/// Every embedded template, by name: the daemons' configs first.
fn embedded() -> Vec<(&'static str, &'static str)> {
    Flavor::all()
        .map(|f| (f.template(), f.template_text()))
        .chain(OTHER_EMBEDDED)
        .collect()
}

/// User templates are config files, not data sets.
const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

fn is_embedded(name: &str) -> bool {
    embedded().iter().any(|(n, _)| *n == name)
}

/// A template `src` names an embedded template or a file next to the plan:
/// a relative path that stays in the plan's directory.
pub fn check_src(src: &str) -> Result<(), String> {
    if src.is_empty() {
        return Err("an empty template name".into());
    }
    if src.starts_with('/') {
        return Err(format!(
            "{src:?} is an absolute path: src names an embedded template or a file next to the plan"
        ));
    }
    if src.split('/').any(|c| c == "..") {
        return Err(format!(
            "{src:?} contains `..`: src names an embedded template or a file next to the plan"
        ));
    }
    Ok(())
}

#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
    /// Templates read from files next to the plan, by name.
    from_files: BTreeMap<String, PathBuf>,
}

impl Renderer {
    pub fn new(
        plan_dir: Option<&Path>,
        steps: &[RawStep],
        handlers: &[RawStep],
        err: &dyn Fn(&str, String) -> PlanError,
    ) -> Result<Self, PlanError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.add_filter("restrict_net", restrict_net);
        for (name, source) in embedded() {
            env.add_template(name, source)
                .map_err(|e| err(&format!("templates/{name}"), describe(&e)))?;
        }
        let mut renderer = Renderer {
            env,
            from_files: BTreeMap::new(),
        };
        // Each list is indexed on its own: handlers[0] is the first handler.
        let all = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("steps[{i}]"), s))
            .chain(
                handlers
                    .iter()
                    .enumerate()
                    .map(|(i, h)| (format!("handlers[{i}]"), h)),
            );
        let mut dynamic = false;
        for (step_path, step) in all {
            let Some(t) = &step.template else { continue };
            let path = format!("{step_path}.template.src");
            let src = t.src.trim();
            if src.contains("{{") || src.contains("{%") {
                dynamic = true;
                continue;
            }
            check_src(src).map_err(|m| err(&path, m))?;
            if renderer.from_files.contains_key(src) {
                continue;
            }
            let next_to_plan = plan_dir.map(|dir| dir.join(src));
            match next_to_plan {
                Some(file) if file.is_file() || !is_embedded(src) => {
                    renderer.load_file(src, &file, &path, err)?;
                }
                Some(_) => {}
                None if is_embedded(src) => {}
                None => return Err(err(&path, format!("{src:?} is not an embedded template"))),
            }
        }
        // A `src` with Jinja (the default plan's `{{ facts.daemon.template }}`)
        // resolves to an embedded name: a file of that name next to the plan
        // wins over the embedded template, as for a literal `src`.
        if let (true, Some(dir)) = (dynamic, plan_dir) {
            for (name, _) in embedded() {
                let file = dir.join(name);
                if !renderer.from_files.contains_key(name) && file.is_file() {
                    renderer.load_file(name, &file, &format!("templates/{name}"), err)?;
                }
            }
        }
        Ok(renderer)
    }

    /// Reads a template file next to the plan; it replaces an embedded
    /// template of the same name.
    fn load_file(
        &mut self,
        name: &str,
        file: &Path,
        path: &str,
        err: &dyn Fn(&str, String) -> PlanError,
    ) -> Result<(), PlanError> {
        let cannot = |e: std::io::Error| {
            err(
                path,
                format!("cannot read template {}: {e}", file.display()),
            )
        };
        let size = std::fs::metadata(file).map_err(cannot)?.len();
        if size > MAX_TEMPLATE_BYTES {
            return Err(err(
                path,
                format!(
                    "template {} is larger than {MAX_TEMPLATE_BYTES} bytes",
                    file.display()
                ),
            ));
        }
        let text = std::fs::read_to_string(file).map_err(cannot)?;
        self.env
            .add_template_owned(name.to_string(), text)
            .map_err(|e| {
                err(
                    path,
                    format!("template {}: {}", file.display(), describe(&e)),
                )
            })?;
        if is_embedded(name) {
            // Said by default: a plan on stdin reads templates from the
            // working directory, where such a file may be a stray one.
            log::warn!(
                "template {name}: using {} next to the plan instead of the embedded one",
                file.display()
            );
        } else {
            log::info!("template {name}: using {}", file.display());
        }
        self.from_files.insert(name.to_string(), file.to_path_buf());
        Ok(())
    }

    /// Where the template `name` comes from: a file next to the plan, or
    /// `None` for the embedded one.
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        self.from_files.get(name).map(PathBuf::as_path)
    }

    /// An embedded daemon config template (its time sources come from
    /// `servers` and `pools`), not replaced by a file next to the plan.
    pub fn is_embedded_daemon_config(&self, name: &str) -> bool {
        Flavor::all().any(|f| f.template() == name) && self.file_of(name).is_none()
    }

    /// The top-level variables any template of the plan (embedded ones
    /// included) reads.
    pub fn template_variables(&self) -> BTreeSet<String> {
        self.env
            .templates()
            .flat_map(|(_, t)| t.undeclared_variables(false))
            .collect()
    }

    /// The top-level variables a step field reads (nothing when it does not
    /// parse: rendering reports that).
    pub fn field_variables(&self, source: &str) -> BTreeSet<String> {
        self.env
            .template_from_str(source)
            .map(|t| t.undeclared_variables(false).into_iter().collect())
            .unwrap_or_default()
    }

    /// The top-level variables a `when` expression reads.
    pub fn expression_variables(&self, expr: &str) -> BTreeSet<String> {
        if ["}}", "%}", "#}"].iter().any(|d| expr.contains(d)) {
            return BTreeSet::new();
        }
        self.env
            .compile_expression(expr)
            .map(|e| e.undeclared_variables(false).into_iter().collect())
            .unwrap_or_default()
    }

    /// Variables plus `facts`, as templates see them.
    /// `virtualization` is what systemd-detect-virt named, asked only
    /// for `virtual: auto`; `key_lines` the daemon's key file lines
    /// (`facts.key_lines`, secrets in them: only a `no_log` step uses them).
    pub fn context(
        &self,
        vars: &Vars,
        daemon: Option<&Daemon>,
        virtualization: Option<&str>,
        key_lines: &[String],
    ) -> Value {
        let mut map = vars.values.clone();
        let mut facts = serde_json::Map::new();
        if let Some(d) = daemon {
            facts.insert("daemon".into(), json!(d));
        }
        let on_a_vm = match vars.values.get("virtual") {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(auto)) if auto == "auto" => virtualization.is_some(),
            _ => false,
        };
        facts.insert("virtual".into(), json!(on_a_vm));
        facts.insert("key_lines".into(), json!(key_lines));
        map.insert("facts".into(), serde_json::Value::Object(facts));
        Value::from_serialize(&map)
    }

    pub fn render_str(&self, source: &str, ctx: &Value) -> Result<String, String> {
        if !source.contains("{{") && !source.contains("{%") {
            return Ok(source.to_string());
        }
        self.env.render_str(source, ctx).map_err(|e| describe(&e))
    }

    /// A `when` condition: a Jinja expression, true or false.
    pub fn eval_bool(&self, expr: &str, ctx: &Value) -> Result<bool, String> {
        // minijinja 2.24 panics ("empty lexer stack") on a block end inside a
        // bare expression; found by the loader's mutation test.
        if let Some(end) = ["}}", "%}", "#}"].into_iter().find(|d| expr.contains(d)) {
            return Err(format!(
                "`{end}` in an expression: write the condition without Jinja delimiters"
            ));
        }
        let compiled = self
            .env
            .compile_expression(expr)
            .map_err(|e| describe(&e))?;
        // Strict undefined still lets `undefined == "x"` be false, and a bare
        // undefined name is merely false: a typo would silently drop the
        // step. Every name and attribute chain the expression reads must
        // exist.
        let mut paths: Vec<String> = compiled.undeclared_variables(true).into_iter().collect();
        paths.sort();
        for path in &paths {
            check_defined(path, ctx)?;
        }
        let value = compiled.eval(ctx).map_err(|e| describe(&e))?;
        if value.is_undefined() {
            return Err(format!("undefined value: {} is not defined", expr.trim()));
        }
        Ok(value.is_true())
    }

    /// A field that may name several things: a string that is one whole
    /// `{{ expression }}` yielding a list expands to the list's items.
    pub fn render_list(&self, source: &str, ctx: &Value) -> Result<Vec<String>, String> {
        let trimmed = source.trim();
        if let Some(expr) = trimmed
            .strip_prefix("{{")
            .and_then(|r| r.strip_suffix("}}"))
        {
            if !expr.contains("{{") && !expr.contains("}}") {
                let compiled = self
                    .env
                    .compile_expression(expr)
                    .map_err(|e| describe(&e))?;
                let value = compiled.eval(ctx).map_err(|e| describe(&e))?;
                if value.is_undefined() {
                    return Err(format!("undefined value: {} is not defined", expr.trim()));
                }
                if value.kind() == minijinja::value::ValueKind::Seq {
                    let items = value.try_iter().map_err(|e| describe(&e))?;
                    return Ok(items
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .collect());
                }
                return Ok(vec![value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string)]);
            }
        }
        Ok(vec![self.render_str(source, ctx)?])
    }

    pub fn render_template(&self, name: &str, ctx: &Value) -> Result<String, String> {
        check_src(name)?;
        let template = self.env.get_template(name).map_err(|_| {
            let known: Vec<&str> = embedded().iter().map(|(n, _)| *n).collect();
            format!("no template {name:?} (embedded: {})", known.join(", "))
        })?;
        template
            .render(ctx)
            .map_err(|e| format!("template {name}: {}", describe(&e)))
    }
}

/// `a.b.c` must resolve in `ctx` as far as the values on the way are maps
/// (an attribute of a list or string is left to evaluation).
fn check_defined(path: &str, ctx: &Value) -> Result<(), String> {
    let mut value = ctx.clone();
    let mut seen = String::new();
    for part in path.split('.') {
        if value.kind() != minijinja::value::ValueKind::Map {
            return Ok(());
        }
        let next = value.get_attr(part).unwrap_or(Value::UNDEFINED);
        if next.is_undefined() {
            let name = if seen.is_empty() {
                part.to_string()
            } else {
                format!("{seen}.{part}")
            };
            let mut known: Vec<String> = value
                .try_iter()
                .map(|keys| keys.map(|k| k.to_string()).collect())
                .unwrap_or_default();
            known.sort();
            let within = if seen.is_empty() {
                "the plan's variables and facts".to_string()
            } else {
                seen.clone()
            };
            return Err(if name == "facts.daemon" {
                format!("undefined value: {name} is not defined (it is set only when the plan sets vars.daemon)")
            } else if known.is_empty() {
                format!("undefined value: {name} is not defined")
            } else {
                format!(
                    "undefined value: {name} is not defined ({within}: {})",
                    known.join(", ")
                )
            });
        }
        if !seen.is_empty() {
            seen.push('.');
        }
        seen.push_str(part);
        value = next;
    }
    Ok(())
}

/// `{{ net | restrict_net }}`: a `clients` network as a restrict line's
/// address and mask (the variable is checked at load, so this rarely fails).
fn restrict_net(network: &str) -> Result<String, minijinja::Error> {
    crate::net::restrict_spelling(network).ok_or_else(|| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("restrict_net: {network:?} is not a network (ADDRESS or ADDRESS/PREFIX)"),
        )
    })
}

/// minijinja's message plus the line it points at.
fn describe(e: &minijinja::Error) -> String {
    let mut msg = e
        .detail()
        .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (template line {line})"));
    }
    msg
}
