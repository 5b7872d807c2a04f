//! The access-control lint: reads every daemon config the plan would write
//! and names every setting that lets the node answer queries it should not
//! (mode 6/7 amplification, open command ports, listening everywhere), and
//! an NTS server key that every local user can read.
//!
//! Run by `plan` and `apply` after the diff and before any change: a finding
//! refuses the run unless the plan lists its rule under `allow_insecure`.
//! Must not: read the node or run anything. `lint` and `conflicts` are pure
//! functions of (flavor, config text, daemon version), `nts_keys` of
//! (flavor, config text, the NTS files as the facts read them); `for_plan`
//! only picks those out of the rendered steps, the facts and the changeset.

pub use crate::daemons::Finding;
use crate::daemons::{directives, Daemon, Directive, Flavor};
use crate::diff::{Change, Changeset};
use crate::facts::dpkg::DpkgState;
use crate::facts::nts::NtsFile;
use crate::facts::Facts;
pub use crate::names::Rule;
use crate::names::{AbsPath, PackageName};
use crate::plan::step::Action;
use crate::plan::Rendered;
use std::fmt;

impl Rule {
    /// What an attacker gains, in one or two sentences.
    pub fn risk(self) -> &'static str {
        match self {
            Rule::Ipv6DefaultMissing => {
                "IPv6 hosts are not covered by a default restrict line and get the daemon's own default entry: \
                 classic ntpd's and NTPsec's before 1.1.9 have no noquery, so every IPv6 host can query the \
                 node and it is a DRDoS reflector over IPv6 (CVE-2013-5211); NTPsec's from 1.1.9 has noquery, \
                 so the refusal rests on the daemon's version alone."
            }
            Rule::KodWithoutLimited => {
                "where the default entry ends up without limited (classic ntpd's own default entry has \
                 none, NTPsec's has it from 1.1.9), kod does nothing (ntpd logs it): clients that flood the \
                 node are neither rate-limited nor told to back off."
            }
            Rule::NoqueryMissing => {
                "where the default entry ends up without noquery (classic ntpd's own default entry and NTPsec's \
                 before 1.1.9 have none; an `unrestrict` takes NTPsec's off), any host can send mode 6 queries \
                 (classic ntpd: mode 7 too, where enabled): READVAR returns about 34 times the 12-byte \
                 request, a peer's variables about 60 times on NTPsec 1.2, so requests with a forged source \
                 make the node a DRDoS reflector (CVE-2013-5211)."
            }
            Rule::NoqueryMissingNetwork => {
                "ntpd and NTPsec apply the most specific matching restrict entry, so every host of this \
                 network gets this entry instead of the default one and can send mode 6 (classic ntpd: mode 7 \
                 too, where enabled) queries: a DRDoS reflector for that network, private or not, whose \
                 answers the probes from the node's own loopback addresses never see (CVE-2013-5211)."
            }
            Rule::NomodifyMissing => {
                "any host whose entry also lacks noquery can send mode 6 configuration requests (ntpq \
                 :config), guarded only by the control key; noquery drops them with every other mode 6 query."
            }
            Rule::MonitorEnabled => {
                "classic ntpd before 4.2.7p26 answers monlist (mode 7 MON_GETLIST) with up to 600 recent \
                 clients, several thousand times the 48-byte request, to every host its restrict lines let \
                 query (no noquery): the amplifier of CVE-2013-5211."
            }
            Rule::ChronyAllowAll => {
                "the node serves time to every address: chrony has no mode 6/7 and answers a time request \
                 with no more bytes than it got, so no amplification, but it becomes a public server that \
                 requests with a forged source bounce off."
            }
            Rule::ChronyCmdallow => {
                "every host the command port (UDP 323) is opened to gets chronyd's monitoring answers \
                 (tracking, sources, sourcestats, activity, ...): the node's time sources, their addresses \
                 and state, and its offset. An information leak, not an amplifier: chronyd answers no more \
                 bytes than the request (chronyc pads its requests to the reply's size) and refuses every \
                 other command, `clients` included, with \"Not authorised\"."
            }
            Rule::OpenntpdListenAny => {
                "OpenNTPD answers time requests on every address from every host: no mode 6/7 and an answer \
                 no larger than the request, so no amplification, but a public server that requests with a \
                 forged source bounce off."
            }
            Rule::IncludeNotLinted => {
                "the lint reads this file only: access control in the included files (a restrict entry \
                 without noquery, an allow or cmdallow for everyone) goes unchecked, and any file dropped \
                 there later changes what the daemon answers."
            }
            Rule::NtsKeyReadable => {
                "any local user who reads the NTS-KE server's private key can impersonate this server to \
                 every NTS client: they accept the impostor's cookies and its time as authenticated, so \
                 NTS no longer protects their clocks."
            }
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.rule)?;
        if let Some(n) = self.line {
            write!(f, " (line {n})")?;
        }
        write!(f, ": {}; risk: {}", self.message, self.rule.risk())
    }
}

/// Every finding for `config`, in rule order. `version` is the daemon
/// package's Debian version (installed, or the one apply will install).
pub fn lint(flavor: Flavor, config: &str, version: Option<&str>) -> Vec<Finding> {
    let lines = directives(flavor, config);
    let mut findings = flavor.lint(&lines, version);
    findings.extend(includes(flavor, &lines));
    findings.sort_by_key(|f| f.rule);
    findings
}

/// Settings the daemon would not honour as the plan means them.
pub fn conflicts(flavor: Flavor, config: &str) -> Vec<String> {
    flavor.conflicts(&directives(flavor, config))
}

/// Directives that read other files into the config, which the lint does
/// not follow.
fn includes(flavor: Flavor, lines: &[Directive]) -> Vec<Finding> {
    lines
        .iter()
        .filter(|(_, words)| flavor.includes(words[0]))
        .map(|(n, words)| Finding {
            rule: Rule::IncludeNotLinted,
            line: Some(*n),
            message: format!(
                "`{}` reads {} into the config, and the lint does not read it",
                words.join(" "),
                words.get(1).map_or("other files", |w| *w)
            ),
        })
        .collect()
}

/// The NTS server keys `config` names that every local user can read, by
/// the modes in `files` (the NTS files the facts read); a key path with no
/// fact there is not judged.
pub fn nts_keys(flavor: Flavor, config: &str, files: &[NtsFile]) -> Vec<Finding> {
    let lines = directives(flavor, config);
    flavor
        .nts_server_keys(&lines)
        .into_iter()
        .filter_map(|(n, path)| {
            let file = files.iter().find(|f| f.path.as_str() == path)?;
            (file.mode & 0o004 != 0).then(|| Finding {
                rule: Rule::NtsKeyReadable,
                line: Some(n),
                message: readable_key(flavor, file),
            })
        })
        .collect()
}

fn readable_key(flavor: Flavor, file: &NtsFile) -> String {
    let user = flavor.runs_as().unwrap_or("the daemon's user");
    format!(
        "the NTS server key {} (vars.{}) has mode {:04o}, readable by every local user; \
         chmod o-r {}: 0640 with group {user}, or 0600 owned by {user}",
        file.path, file.var, file.mode, file.path
    )
}

/// A daemon config a plan writes, linted.
#[derive(Debug, Clone, PartialEq)]
pub struct Linted {
    pub config: AbsPath,
    pub flavor: Flavor,
    pub version: Option<String>,
    /// The step that writes it, for messages: `step "NTP config"` or
    /// `handler "..."`.
    pub step: String,
    /// Whether it is the resolved daemon's own config (the one the check
    /// after apply probes).
    pub for_daemon: bool,
    pub findings: Vec<Finding>,
    /// Settings the daemon would not honour as the plan means them (see
    /// `conflicts`): refused whatever `allow_insecure` says.
    pub conflicts: Vec<String>,
}

/// What a run should know before it changes anything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanLint {
    /// Every template (steps, then handlers, in plan order) that writes the
    /// resolved daemon's config or a known daemon config path: each is
    /// written, so each can be live during the run.
    pub linted: Vec<Linted>,
    /// The resolved daemon's config, when no template writes it.
    pub not_templated: Option<AbsPath>,
}

/// Lints the content of every template the plan writes to a daemon config:
/// the resolved daemon's `config` (for its flavor), or any of the known
/// paths (`Flavor::config`, for the flavor the path belongs to). The
/// version is the daemon's that will run (the one this changeset installs,
/// else the installed one, else the archive's candidate); for another
/// flavor's path, that flavor package's installed or candidate version as
/// the facts know it.
pub fn for_plan(rendered: &Rendered, facts: &Facts, changeset: &Changeset) -> PlanLint {
    let daemon = facts.daemon.as_ref();
    let steps = rendered
        .steps
        .iter()
        .map(|s| ("step", s))
        .chain(rendered.handlers.iter().map(|s| ("handler", s)));
    let mut linted = Vec::new();
    for (kind, step) in steps {
        let Action::Template(t) = &step.action else {
            continue;
        };
        let (flavor, version, for_daemon) = match daemon {
            Some(d) if t.dest == d.config => (d.flavor, daemon_version(d, facts, changeset), true),
            _ => match Flavor::all().find(|f| f.config() == t.dest) {
                Some(f) => (f, fact_version(&f.package(), facts), false),
                None => continue,
            },
        };
        linted.push(Linted {
            config: t.dest.clone(),
            flavor,
            step: format!("{kind} {:?}", step.name),
            for_daemon,
            findings: with_nts_keys(
                lint(flavor, &t.content, version.as_deref()),
                nts_keys(flavor, &t.content, &facts.nts_files),
            ),
            conflicts: conflicts(flavor, &t.content),
            version,
        });
    }
    let not_templated = daemon
        .filter(|_| !linted.iter().any(|l| l.for_daemon))
        .map(|d| d.config.clone());
    PlanLint {
        linted,
        not_templated,
    }
}

/// `findings` and `keys`, in rule order.
fn with_nts_keys(mut findings: Vec<Finding>, keys: Vec<Finding>) -> Vec<Finding> {
    findings.extend(keys);
    findings.sort_by_key(|f| f.rule);
    findings
}

fn daemon_version(daemon: &Daemon, facts: &Facts, changeset: &Changeset) -> Option<String> {
    let installing = changeset
        .steps
        .iter()
        .flat_map(|s| &s.changes)
        .find_map(|c| match c {
            Change::Install { packages } => packages
                .iter()
                .find(|p| p.package == daemon.package)
                .and_then(|p| p.after.clone()),
            _ => None,
        });
    installing.or_else(|| fact_version(&daemon.package, facts))
}

/// The installed version of `package`, else its candidate, as the facts
/// know them.
fn fact_version(package: &PackageName, facts: &Facts) -> Option<String> {
    let fact = facts.packages.get(package);
    match fact.map(|f| &f.dpkg) {
        Some(DpkgState::Installed { version }) => Some(version.clone()),
        _ => fact.and_then(|f| f.candidate.clone()),
    }
}

/// Splits the findings of every linted template into refusals and those the
/// plan allows; `Err` is the report's error (what, where and why), `Ok` the
/// notes for allowed findings. Conflicts refuse whatever the plan allows.
pub fn judge(plan: &PlanLint, allow: &[Rule]) -> Result<Vec<String>, String> {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let mut names: Vec<Rule> = Vec::new();
    for linted in &plan.linted {
        if !linted.conflicts.is_empty() {
            errors.push(format!(
                "{} as the plan would write it in {} does not work as intended: {}.",
                linted.config,
                linted.step,
                linted.conflicts.join("; ")
            ));
        }
        let (allowed, refused): (Vec<&Finding>, Vec<&Finding>) = linted
            .findings
            .iter()
            .partition(|f| allow.contains(&f.rule));
        if !refused.is_empty() {
            let items: Vec<String> = refused.iter().map(|f| f.to_string()).collect();
            errors.push(format!(
                "{} as the plan would write it fails the access-control lint in {}: {}",
                linted.config,
                linted.step,
                items.join(" ")
            ));
            names.extend(refused.iter().map(|f| f.rule));
        }
        notes.extend(
            allowed
                .iter()
                .map(|f| format!("allowed by allow_insecure: {}: {f}", linted.config)),
        );
    }
    if errors.is_empty() {
        return Ok(notes);
    }
    let mut error = errors.join(" ");
    if !names.is_empty() {
        names.sort();
        names.dedup();
        let names: Vec<&str> = names.iter().map(|r| r.name()).collect();
        error.push_str(&format!(
            " If this is intended, list the rule in the plan: allow_insecure: [{}]",
            names.join(", ")
        ));
    }
    Err(error)
}

#[cfg(test)]
mod tests;
