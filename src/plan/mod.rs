//! Stage 1: the plan. Loads YAML, merges `-e` overrides, and validates
//! everything before the node is looked at: keys, types, names, handlers,
//! templates and every Jinja expression (rendered once per daemon flavour the
//! plan could resolve to, with placeholder facts, so an undefined variable is
//! found here and not halfway through a run).
//!
//! Must not: run a command, read the node's state, or write anything.

pub mod input;
mod locate;
mod nesting;
pub mod raw;
mod render;
pub mod step;
pub mod vars;

use crate::daemons::{Daemon, Flavor};
use crate::names::{AbsPath, Account, Mode, PackageName, UnitName};
use raw::{RawApt, RawPkgState, RawPlan, RawService, RawServiceState, RawStep, RawTemplate};
use render::Renderer;
use std::fmt;
use std::path::Path;
use std::time::Duration;
use step::{
    Action, Apt, Autoremove, CacheValidity, Enabled, PkgState, Service, ServiceState, Step,
    Template,
};
pub use vars::{parse_override, read_overrides, ArgError, ArgFault, Override, VarOrigin, Vars};

/// The plan that `ntp-provision` runs when none is given.
pub const DEFAULT_PLAN: &str = include_str!("../../playbooks/ntp.yaml");
pub const DEFAULT_PLAN_NAME: &str = "playbooks/ntp.yaml (embedded)";
/// The step `vars.timezone` adds after the plan's own, with the zone's name.
pub const TIMEZONE_STEP: &str = "Time zone";
/// Plans larger than this are refused before parsing.
pub const MAX_PLAN_BYTES: usize = 1 << 20;

/// An invalid plan: where (file, position or key path) and which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub file: String,
    pub location: Option<(usize, usize)>,
    pub path: String,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PlanError {}

/// Where a plan came from: its name for messages and the directory that
/// relative template paths are read from.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub dir: Option<std::path::PathBuf>,
}

impl Source {
    pub fn embedded() -> Self {
        Source {
            name: DEFAULT_PLAN_NAME.into(),
            dir: None,
        }
    }
    pub fn file(path: &Path) -> Self {
        Source {
            name: path.display().to_string(),
            dir: path.parent().map(Path::to_path_buf),
        }
    }
    pub fn stdin() -> Self {
        Source {
            name: "<stdin>".into(),
            dir: std::env::current_dir().ok(),
        }
    }
}

#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub source: String,
    /// The plan as given, and its `-e` overrides: what a run records so
    /// that `status` can load it again.
    pub origin: Origin,
    pub vars: Vars,
    /// Access-control lint rules whose findings this plan accepts.
    pub allow_insecure: Vec<crate::names::Rule>,
    steps: Vec<StepSpec>,
    handlers: Vec<StepSpec>,
    renderer: Renderer,
}

/// Where a loaded plan came from, whole.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub text: String,
    pub dir: Option<std::path::PathBuf>,
    pub overrides: Vec<(String, serde_yaml::Value)>,
}

/// A step with its Jinja fields still unrendered.
#[derive(Debug, Clone)]
struct StepSpec {
    path: String,
    name: String,
    when: Option<String>,
    notify: Vec<String>,
    action: ActionSpec,
}

#[derive(Debug, Clone)]
enum ActionSpec {
    Apt {
        names: Vec<String>,
        state: PkgState,
        update_cache: Option<CacheValidity>,
        autoremove: Autoremove,
    },
    Template {
        src: String,
        dest: String,
        mode: Mode,
        owner: String,
        group: String,
        validate: Option<String>,
        no_log: bool,
    },
    Service {
        name: String,
        state: Option<ServiceState>,
        enabled: Option<Enabled>,
    },
}

/// The steps and handlers with facts filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub steps: Vec<Step>,
    pub handlers: Vec<Step>,
}

impl Plan {
    /// Parses and validates a plan completely. Errors found after parsing
    /// get the line and column of the key path they name, when that path is
    /// in the file. A variable given here has no place: an error about it
    /// names the plan without a position (see [`Plan::load_overridden`]).
    pub fn load(
        bytes: &[u8],
        source: Source,
        overrides: &[(String, serde_yaml::Value)],
    ) -> Result<Plan, PlanError> {
        let overrides: Vec<Override> = overrides
            .iter()
            .map(|(key, value)| Override {
                key: key.clone(),
                value: value.clone(),
                origin: None,
            })
            .collect();
        Self::load_overridden(bytes, source, &overrides)
    }

    /// As [`Plan::load`], with each variable's origin: an error about a
    /// variable given with `-e` names that argument, or the variables file
    /// with the line and column there.
    pub fn load_overridden(
        bytes: &[u8],
        source: Source,
        overrides: &[Override],
    ) -> Result<Plan, PlanError> {
        let pairs: Vec<(String, serde_yaml::Value)> = overrides
            .iter()
            .map(|o| (o.key.clone(), o.value.clone()))
            .collect();
        Self::load_unlocated(bytes, source, &pairs).map_err(|mut e| {
            // The last one given is the one in force.
            let given = overrides.iter().rev().find(|o| {
                let var = format!("vars.{}", o.key);
                e.path == var
                    || e.path.starts_with(&format!("{var}["))
                    || e.path.starts_with(&format!("{var}."))
            });
            match given.map(|o| o.origin.as_deref()) {
                Some(None) => {}
                Some(Some(VarOrigin::Arg(shown))) => {
                    e.file = shown.clone();
                    e.location = None;
                }
                Some(Some(VarOrigin::ModuleArg)) => {
                    e.file = vars::MODULE_VARS.into();
                    e.location = None;
                }
                Some(Some(VarOrigin::File { name, text })) => {
                    e.file = name.clone();
                    e.location = e
                        .path
                        .strip_prefix("vars.")
                        .and_then(|p| locate::locate(text, p));
                }
                None if e.location.is_none() && !e.path.is_empty() => {
                    if let Ok(text) = std::str::from_utf8(bytes) {
                        e.location = locate::locate(text, &e.path);
                    }
                }
                None => {}
            }
            e
        })
    }

    fn load_unlocated(
        bytes: &[u8],
        source: Source,
        overrides: &[(String, serde_yaml::Value)],
    ) -> Result<Plan, PlanError> {
        let file = source.name.clone();
        let err = |path: &str, message: String| PlanError {
            file: file.clone(),
            location: None,
            path: path.to_string(),
            message,
        };
        if bytes.len() > MAX_PLAN_BYTES {
            return Err(err(
                "",
                format!(
                    "the plan is {} bytes; plans are limited to {MAX_PLAN_BYTES} bytes",
                    bytes.len()
                ),
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            err(
                "",
                format!(
                    "the plan is not UTF-8 text (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            )
        })?;
        let raw: RawPlan = parse_yaml(text, &file)?;

        let vars = vars::build(raw.vars, overrides, &err)?;
        let allow_insecure = raw
            .allow_insecure
            .iter()
            .enumerate()
            .map(|(i, name)| {
                crate::names::Rule::parse(name).map_err(|m| err(&format!("allow_insecure[{i}]"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let renderer = Renderer::new(source.dir.as_deref(), &raw.steps, &raw.handlers, &err)?;

        let mut handler_names = Vec::new();
        let mut handlers = Vec::new();
        for (i, h) in raw.handlers.into_iter().enumerate() {
            let path = format!("handlers[{i}]");
            if h.notify.is_some() {
                return Err(err(&path, "a handler cannot notify other handlers".into()));
            }
            if handler_names.contains(&h.name) {
                return Err(err(
                    &path,
                    format!("a second handler is named {:?}", h.name),
                ));
            }
            handler_names.push(h.name.clone());
            handlers.push(step_spec(h, path, &err)?);
        }
        if raw.steps.is_empty() {
            return Err(err("steps", "the plan has no steps".into()));
        }
        let mut steps = Vec::new();
        for (i, s) in raw.steps.into_iter().enumerate() {
            let path = format!("steps[{i}]");
            let spec = step_spec(s, path.clone(), &err)?;
            for n in &spec.notify {
                if !handler_names.contains(n) {
                    return Err(err(
                        &format!("{path}.notify"),
                        format!("no handler is named {n:?}"),
                    ));
                }
            }
            steps.push(spec);
        }

        let plan = Plan {
            name: raw.name.unwrap_or_else(|| "ntp-provision".into()),
            source: file.clone(),
            origin: Origin {
                text: String::from_utf8_lossy(bytes).into_owned(),
                dir: source.dir.clone(),
                overrides: overrides.to_vec(),
            },
            vars,
            allow_insecure,
            steps,
            handlers,
            renderer,
        };
        plan.check_vars_used(&err)?;
        plan.check_serving(&err)?;
        plan.check_renders()?;
        Ok(plan)
    }

    /// Refuses a variable that no field, `when` or template reads.
    fn check_vars_used(&self, err: &dyn Fn(&str, String) -> PlanError) -> Result<(), PlanError> {
        let r = &self.renderer;
        let mut used = r.template_variables();
        for s in self.steps.iter().chain(&self.handlers) {
            used.extend(r.field_variables(&s.name));
            if let Some(when) = &s.when {
                used.extend(r.expression_variables(when));
            }
            let fields: Vec<&String> = match &s.action {
                ActionSpec::Apt { names, .. } => names.iter().collect(),
                ActionSpec::Template {
                    src,
                    dest,
                    owner,
                    group,
                    validate,
                    ..
                } => [src, dest, owner, group]
                    .into_iter()
                    .chain(validate)
                    .collect(),
                ActionSpec::Service { name, .. } => vec![name],
            };
            for f in fields {
                used.extend(r.field_variables(f));
            }
        }
        vars::check_used(&self.vars, &used, err)
    }

    /// Refuses `clients` or `listen` for a daemon that serves nobody
    /// (systemd-timesyncd), before any node is read.
    fn check_serving(&self, err: &dyn Fn(&str, String) -> PlanError) -> Result<(), PlanError> {
        let Some(requested) = self.vars.daemon else {
            return Ok(());
        };
        let flavors = Flavor::for_request(requested);
        if !flavors.iter().all(|f| f.client_only()) {
            return Ok(());
        }
        let access = &self.vars.access;
        let (key, values) = if !access.clients.is_empty() {
            ("clients", &access.clients)
        } else if !access.listen.is_empty() {
            ("listen", &access.listen)
        } else {
            return Ok(());
        };
        let servers: Vec<&str> = Flavor::all()
            .filter(|f| !f.client_only())
            .flat_map(|f| f.requested_as().iter().copied())
            .fold(Vec::new(), |mut names, n| {
                if !names.contains(&n) {
                    names.push(n);
                }
                names
            });
        Err(err(
            &format!("vars.{key}"),
            format!(
                "{key} is [{}], but daemon {requested} is a client only and serves time to nobody: \
                 leave {key} empty, or choose a daemon that serves ({})",
                values.join(", "),
                servers.join(", ")
            ),
        ))
    }

    /// Renders every field once for each daemon flavour the plan could end up
    /// with, so that no Jinja error is left for the node to find.
    fn check_renders(&self) -> Result<(), PlanError> {
        match self.vars.daemon {
            None => self.render(None).map(drop),
            Some(requested) => Flavor::for_request(requested)
                .iter()
                .try_for_each(|f| self.render(Some(&Daemon::new(requested, *f))).map(drop)),
        }
    }

    /// The `cache_valid_time` of the plan's `update_cache` step, if any:
    /// facts need it before the steps can be rendered.
    pub fn cache_validity(&self) -> Option<CacheValidity> {
        self.steps
            .iter()
            .chain(&self.handlers)
            .find_map(|s| match &s.action {
                ActionSpec::Apt { update_cache, .. } => *update_cache,
                _ => None,
            })
    }

    /// Whether any step or handler removes unneeded packages, whatever its
    /// `when` says: the facts ask apt early, before the steps are rendered.
    pub fn may_autoremove(&self) -> bool {
        self.steps.iter().chain(&self.handlers).any(|s| {
            matches!(
                s.action,
                ActionSpec::Apt {
                    autoremove: Autoremove::Yes,
                    ..
                }
            )
        })
    }

    /// Package names written literally in the plan (no Jinja): probed together
    /// with the daemon candidates so that no package is probed twice.
    pub fn literal_packages(&self) -> Vec<PackageName> {
        let mut out = Vec::new();
        for s in self.steps.iter().chain(&self.handlers) {
            if let ActionSpec::Apt { names, .. } = &s.action {
                out.extend(
                    names
                        .iter()
                        .filter(|n| !n.contains("{{"))
                        .filter_map(|n| PackageName::parse(n).ok()),
                );
            }
        }
        out
    }

    /// The NTS files the plan names on the node, `(variable, path)`.
    pub fn nts_files(&self) -> Vec<(&'static str, crate::names::AbsPath)> {
        vars::NTS_FILE_VARS
            .into_iter()
            .filter_map(|var| {
                let path = self.vars.values.get(var)?.as_str()?;
                Some((var, crate::names::AbsPath::parse(path).ok()?))
            })
            .collect()
    }

    /// The hosts of the servers and pools that ask for NTS.
    pub fn wants_nts(&self) -> Vec<String> {
        ["servers", "pools"]
            .iter()
            .filter_map(|k| self.vars.values.get(*k).and_then(|v| v.as_array()))
            .flatten()
            .filter(|s| s["nts"] == true)
            .filter_map(|s| s["host"].as_str().map(str::to_string))
            .collect()
    }

    /// The file and directory variables set, which the resolved daemon
    /// must have a line for.
    pub fn settings(&self) -> Vec<crate::daemons::Setting> {
        crate::daemons::Setting::ALL
            .into_iter()
            .filter(|s| match self.vars.values.get(s.var()) {
                None | Some(serde_json::Value::Null | serde_json::Value::Bool(false)) => false,
                Some(serde_json::Value::Array(items)) => !items.is_empty(),
                Some(_) => true,
            })
            .collect()
    }

    /// Fills in facts and parses every rendered field.
    pub fn render(&self, daemon: Option<&Daemon>) -> Result<Rendered, PlanError> {
        self.render_on(daemon, None)
    }

    /// `vars.timezone`, checked at load; `None`: the node's zone is left alone.
    pub fn timezone(&self) -> Option<crate::names::TimeZone> {
        let zone = self.vars.values.get("timezone")?.as_str()?;
        crate::names::TimeZone::parse(zone).ok()
    }

    /// Whether `virtual: auto` has systemd-detect-virt asked.
    pub fn detects_virtualization(&self) -> bool {
        self.vars.values.get("virtual").and_then(|v| v.as_str()) == Some("auto")
    }

    /// As [`Plan::render`], on a machine systemd-detect-virt named
    /// (`None`: not a virtual machine, or not asked).
    pub fn render_on(
        &self,
        daemon: Option<&Daemon>,
        virtualization: Option<&str>,
    ) -> Result<Rendered, PlanError> {
        self.render_with(daemon, virtualization, &Default::default())
    }

    /// As [`Plan::render_on`], with the secrets of `vars.keys` that facts
    /// read (by secret_file; a missing one renders masked).
    pub fn render_with(
        &self,
        daemon: Option<&Daemon>,
        virtualization: Option<&str>,
        secrets: &crate::daemons::keys::Secrets,
    ) -> Result<Rendered, PlanError> {
        let key_file = daemon.and_then(|d| d.flavor.key_file());
        let key_lines = key_file.map_or_else(Vec::new, |file| {
            crate::daemons::keys::lines(&file, &self.vars.keys, &|f| secrets.get(f).cloned())
        });
        let ctx = self
            .renderer
            .context(&self.vars, daemon, virtualization, &key_lines);
        // Secrets as written, to refuse a template that writes one unmasked
        // (short ones could match a config by chance).
        let written: Vec<String> = match key_file {
            Some(file) => secrets
                .values()
                .map(|s| s.written(&file))
                .filter(|s| s.len() >= 8)
                .collect(),
            None => Vec::new(),
        };
        let render_all = |specs: &[StepSpec]| -> Result<Vec<Step>, PlanError> {
            let rendered: Vec<Option<Step>> = specs
                .iter()
                .map(|s| self.render_step(s, &ctx, &written))
                .collect::<Result<_, _>>()?;
            Ok(rendered.into_iter().flatten().collect())
        };
        let mut steps = render_all(&self.steps)?;
        // Whatever the plan's steps, `timezone` is one more, after them.
        steps.extend(self.timezone().map(|zone| Step {
            name: format!("{TIMEZONE_STEP} {zone}"),
            action: Action::Timezone(zone),
            notify: Vec::new(),
        }));
        Ok(Rendered {
            steps,
            handlers: render_all(&self.handlers)?,
        })
    }

    /// The step with facts filled in; `None` when its `when` is false.
    fn render_step(
        &self,
        spec: &StepSpec,
        ctx: &minijinja::Value,
        secrets: &[String],
    ) -> Result<Option<Step>, PlanError> {
        let err = |field: &str, message: String| PlanError {
            file: self.source.clone(),
            location: None,
            path: if field.is_empty() {
                spec.path.clone()
            } else {
                format!("{}.{field}", spec.path)
            },
            message,
        };
        let r = |field: &str, s: &str| self.renderer.render_str(s, ctx).map_err(|m| err(field, m));
        if let Some(when) = &spec.when {
            if !self
                .renderer
                .eval_bool(when, ctx)
                .map_err(|m| err("when", m))?
            {
                return Ok(None);
            }
        }
        let name = r("name", &spec.name)?;
        let action = match &spec.action {
            ActionSpec::Apt {
                names,
                state,
                update_cache,
                autoremove,
            } => {
                let mut packages = Vec::new();
                for (i, n) in names.iter().enumerate() {
                    let field = format!("apt.name[{i}]");
                    for name in self
                        .renderer
                        .render_list(n, ctx)
                        .map_err(|m| err(&field, m))?
                    {
                        let pkg = PackageName::parse(&name).map_err(|m| err(&field, m))?;
                        if !packages.contains(&pkg) {
                            packages.push(pkg);
                        }
                    }
                }
                Action::Apt(Apt {
                    update_cache: *update_cache,
                    packages,
                    state: *state,
                    autoremove: *autoremove,
                })
            }
            ActionSpec::Template {
                src,
                dest,
                mode,
                owner,
                group,
                validate,
                no_log,
            } => {
                let src = r("template.src", src)?;
                let validate = match validate {
                    None => None,
                    Some(v) => match r("template.validate", v)?.as_str() {
                        "none" => None,
                        flavor => {
                            Some(Flavor::parse(flavor).map_err(|m| err("template.validate", m))?)
                        }
                    },
                };
                let content = self
                    .renderer
                    .render_template(&src, ctx)
                    .map_err(|m| err("template.src", m))?;
                let template = Template {
                    dest: AbsPath::parse(&r("template.dest", dest)?)
                        .map_err(|m| err("template.dest", m))?,
                    owner: Account::parse(&r("template.owner", owner)?)
                        .map_err(|m| err("template.owner", m))?,
                    group: Account::parse(&r("template.group", group)?)
                        .map_err(|m| err("template.group", m))?,
                    src,
                    content,
                    mode: *mode,
                    validate,
                    no_log: *no_log,
                };
                if !template.no_log
                    && secrets
                        .iter()
                        .any(|s| template.content.contains(s.as_str()))
                {
                    return Err(err(
                        "template",
                        format!(
                            "{} writes a secret of vars.keys: set no_log: true on this step",
                            template.src
                        ),
                    ));
                }
                // The embedded daemon configs take their time sources from
                // servers and pools; without either the daemon gets none.
                let values = &self.vars.values;
                if self.renderer.is_embedded_daemon_config(&template.src)
                    && !values.contains_key("servers")
                    && !values.contains_key("pools")
                {
                    return Err(err(
                        "template.src",
                        format!(
                            "the embedded {} writes the time sources from vars.servers and vars.pools, and the plan sets neither: add servers: [HOST, ...] (or pools) to vars, or give -e 'servers=[HOST]'",
                            template.src
                        ),
                    ));
                }
                Action::Template(template)
            }
            ActionSpec::Service {
                name,
                state,
                enabled,
            } => Action::Service(Service {
                unit: UnitName::parse(&r("service.name", name)?)
                    .map_err(|m| err("service.name", m))?,
                state: *state,
                enabled: *enabled,
            }),
        };
        Ok(Some(Step {
            name,
            action,
            notify: spec.notify.clone(),
        }))
    }
}

fn step_spec(
    raw: RawStep,
    path: String,
    err: &dyn Fn(&str, String) -> PlanError,
) -> Result<StepSpec, PlanError> {
    if raw.name.trim().is_empty() {
        return Err(err(&format!("{path}.name"), "a step needs a name".into()));
    }
    let kinds = [
        raw.apt.is_some(),
        raw.template.is_some(),
        raw.service.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(err(
            &path,
            "a step needs exactly one action: apt, template or service".into(),
        ));
    }
    let action = if let Some(apt) = raw.apt {
        apt_spec(apt, &format!("{path}.apt"), err)?
    } else if let Some(t) = raw.template {
        template_spec(t, &format!("{path}.template"), err)?
    } else if let Some(s) = raw.service {
        service_spec(s, &format!("{path}.service"), err)?
    } else {
        unreachable!("exactly one action was checked above")
    };
    if raw
        .when
        .as_deref()
        .is_some_and(|w| w.contains("{{") || w.contains("{%"))
    {
        return Err(err(
            &format!("{path}.when"),
            "`when` is already an expression: write it without {{ }}".into(),
        ));
    }
    Ok(StepSpec {
        path,
        name: raw.name,
        when: raw.when,
        notify: raw.notify.map(raw::OneOrMany::into_vec).unwrap_or_default(),
        action,
    })
}

fn apt_spec(
    raw: RawApt,
    path: &str,
    err: &dyn Fn(&str, String) -> PlanError,
) -> Result<ActionSpec, PlanError> {
    let names = raw.name.map(raw::OneOrMany::into_vec).unwrap_or_default();
    if names.iter().any(|n| n.trim().is_empty()) {
        return Err(err(&format!("{path}.name"), "an empty package name".into()));
    }
    let state = match raw.state {
        None | Some(RawPkgState::Present) => PkgState::Present,
        Some(RawPkgState::Latest) => PkgState::Latest,
        Some(RawPkgState::Absent) => PkgState::Absent,
        Some(RawPkgState::Purged) => PkgState::Purged,
        Some(RawPkgState::ResidualPurged) => PkgState::ResidualPurged,
    };
    if raw.state.is_some() && names.is_empty() {
        return Err(err(
            &format!("{path}.state"),
            "a package state needs `name`".into(),
        ));
    }
    let update_cache = match (raw.update_cache, raw.cache_valid_time) {
        (Some(true), secs) => Some(CacheValidity {
            max_age: secs.map(Duration::from_secs),
        }),
        (_, Some(_)) => {
            return Err(err(
                &format!("{path}.cache_valid_time"),
                "only meaningful with update_cache: true".into(),
            ))
        }
        _ => None,
    };
    let autoremove = if raw.autoremove == Some(true) {
        Autoremove::Yes
    } else {
        Autoremove::No
    };
    if names.is_empty() && update_cache.is_none() && autoremove == Autoremove::No {
        return Err(err(
            path,
            "nothing to do: give name, update_cache or autoremove".into(),
        ));
    }
    Ok(ActionSpec::Apt {
        names,
        state,
        update_cache,
        autoremove,
    })
}

fn template_spec(
    raw: RawTemplate,
    path: &str,
    err: &dyn Fn(&str, String) -> PlanError,
) -> Result<ActionSpec, PlanError> {
    let mode = match raw.mode {
        None => Mode(0o644),
        Some(serde_yaml::Value::String(s)) => Mode::parse(&s).map_err(|m| err(&format!("{path}.mode"), m))?,
        Some(other) => {
            return Err(err(
                &format!("{path}.mode"),
                format!(
                    "{} is not a quoted octal string: write mode: \"0644\" (YAML reads an unquoted 0644 as decimal)",
                    serde_yaml::to_string(&other).unwrap_or_default().trim()
                ),
            ))
        }
    };
    Ok(ActionSpec::Template {
        src: raw.src,
        dest: raw.dest,
        mode,
        owner: raw.owner.unwrap_or_else(|| "root".into()),
        group: raw.group.unwrap_or_else(|| "root".into()),
        validate: raw.validate,
        no_log: raw.no_log,
    })
}

fn service_spec(
    raw: RawService,
    path: &str,
    err: &dyn Fn(&str, String) -> PlanError,
) -> Result<ActionSpec, PlanError> {
    if raw.state.is_none() && raw.enabled.is_none() {
        return Err(err(path, "nothing to do: give state or enabled".into()));
    }
    Ok(ActionSpec::Service {
        name: raw.name,
        state: raw.state.map(|s| match s {
            RawServiceState::Started => ServiceState::Started,
            RawServiceState::Stopped => ServiceState::Stopped,
            RawServiceState::Restarted => ServiceState::Restarted,
        }),
        enabled: raw
            .enabled
            .map(|e| if e { Enabled::Yes } else { Enabled::No }),
    })
}

/// Parses YAML text named `file` (a plan, a variables file) into `T`:
/// deep nesting is refused first, a duplicate key is named where it is
/// given the second time.
fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T, PlanError> {
    // Before parsing: the parser's time grows with the nesting (minutes
    // for a megabyte of `[`), this check's does not.
    nesting::check(text, nesting::MAX_NESTING).map_err(|deep| PlanError {
        file: file.to_string(),
        location: Some(deep.at),
        path: String::new(),
        message: deep.message(),
    })?;
    serde_yaml::from_str(text).map_err(|e| {
        // Serde refuses a duplicate key but points at the enclosing map;
        // name the key and where it is given the second time.
        let duplicate = e
            .to_string()
            .contains("duplicate")
            .then(|| locate::duplicate_key(text))
            .flatten();
        match duplicate {
            Some(d) => PlanError {
                file: file.to_string(),
                location: Some(d.at),
                path: d.path,
                message: format!(
                    "duplicate key {:?}: each key may be given once in a map",
                    d.key
                ),
            },
            None => yaml_error(file, &e),
        }
    })
}

/// serde_yaml puts "at line L column C" into its message; we move the
/// position to the front where editors and humans look for it.
fn yaml_error(file: &str, e: &serde_yaml::Error) -> PlanError {
    let mut message = e.to_string();
    let location = e.location().map(|l| (l.line(), l.column()));
    if let Some((line, col)) = location {
        for suffix in [
            format!(" at line {line} column {col}"),
            format!(" at line {line}"),
        ] {
            if let Some(i) = message.find(&suffix) {
                message.replace_range(i..i + suffix.len(), "");
            }
        }
    }
    let (path, mut message) = match message.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (p.to_string(), m.to_string()),
        _ => (String::new(), message),
    };
    // What serde says in its own words, for types the plan cannot name.
    for (serde, plan) in [
        ("invalid type: unit value,", "invalid type: null,"),
        ("invalid type: enum,", "invalid type: tagged value,"),
        (", expected field identifier", ", expected a key name"),
    ] {
        if let Some(rest) = message.strip_prefix(serde) {
            message = format!("{plan}{rest}");
        } else if let Some(head) = message.strip_suffix(serde) {
            message = format!("{head}{plan}");
        }
    }
    // A list as the whole plan is most likely a playbook given to the wrong tool.
    if path.is_empty()
        && message.starts_with("invalid type: sequence, expected a mapping of plan keys")
    {
        message.push_str(
            "; a plan is a mapping with steps: (see docs/plan-format.md), not an Ansible playbook's list of plays",
        );
    }
    PlanError {
        file: file.to_string(),
        location,
        path,
        message,
    }
}

#[cfg(test)]
mod tests;
