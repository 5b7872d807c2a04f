//! The access-control lint: reads the daemon config the plan would write and
//! names every setting that lets the node answer queries it should not
//! (mode 6/7 amplification, open command ports, listening everywhere).
//!
//! Run by `plan` and `apply` after the diff and before any change: a finding
//! refuses the run unless the plan lists its rule under `allow_insecure`.
//! Must not: read the node or run anything. `lint` is a pure function of
//! (flavor, config text, daemon version); `for_plan` only picks those out of
//! the rendered steps, the facts and the changeset.

use crate::daemon::{Daemon, Flavor};
use crate::diff::{Change, Changeset};
use crate::facts::dpkg::DpkgState;
use crate::facts::{version, Facts};
use crate::plan::names::AbsPath;
use crate::plan::step::Action;
use crate::plan::Rendered;
use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// A lint rule; its name is stable (plans list it in `allow_insecure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    Ipv6DefaultMissing,
    KodWithoutLimited,
    NoqueryMissing,
    NomodifyMissing,
    MonitorEnabled,
    ChronyAllowAll,
    ChronyCmdallow,
    OpenntpdListenAny,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::Ipv6DefaultMissing,
        Rule::KodWithoutLimited,
        Rule::NoqueryMissing,
        Rule::NomodifyMissing,
        Rule::MonitorEnabled,
        Rule::ChronyAllowAll,
        Rule::ChronyCmdallow,
        Rule::OpenntpdListenAny,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::Ipv6DefaultMissing => "ipv6-default-missing",
            Rule::KodWithoutLimited => "kod-without-limited",
            Rule::NoqueryMissing => "noquery-missing",
            Rule::NomodifyMissing => "nomodify-missing",
            Rule::MonitorEnabled => "monitor-enabled",
            Rule::ChronyAllowAll => "chrony-allow-all",
            Rule::ChronyCmdallow => "chrony-cmdallow",
            Rule::OpenntpdListenAny => "openntpd-listen-any",
        }
    }

    pub fn parse(name: &str) -> Result<Rule, String> {
        Rule::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
                format!("{name:?} is not a lint rule ({})", known.join(", "))
            })
    }

    /// What an attacker gains, in one or two sentences.
    pub fn risk(self) -> &'static str {
        match self {
            Rule::Ipv6DefaultMissing => {
                "IPv6 hosts are not covered by the default restrict entry and get the daemon's built-in \
                 default instead, which on classic ntpd answers every mode 6/7 query: the node is a DRDoS \
                 reflector over IPv6 (CVE-2013-5211)."
            }
            Rule::KodWithoutLimited => {
                "kod does nothing without limited (ntpd logs it): clients that flood the node are neither \
                 rate-limited nor told to back off."
            }
            Rule::NoqueryMissing => {
                "any host can send mode 6 (and on classic ntpd mode 7) queries: a 12-byte READVAR returns \
                 about 30 times its size and monlist up to thousands of times, so requests with a forged \
                 source make the node a DRDoS reflector (CVE-2013-5211)."
            }
            Rule::NomodifyMissing => {
                "any host can send mode 6/7 configuration requests (ntpq :config), guarded only by the \
                 control key."
            }
            Rule::MonitorEnabled => {
                "classic ntpd before 4.2.7p26 answers monlist (mode 7 MON_GETLIST) with up to 600 recent \
                 clients, several thousand times the 48-byte request: the amplifier of CVE-2013-5211."
            }
            Rule::ChronyAllowAll => {
                "the node serves time to every address: chrony has no mode 6/7, so no amplification, but it \
                 becomes a public server that requests with a forged source bounce off."
            }
            Rule::ChronyCmdallow => {
                "chronyc's command port (UDP 323) answers monitoring requests such as `clients` with more \
                 than the request to every host it is opened to: an amplifier and an information leak."
            }
            Rule::OpenntpdListenAny => {
                "OpenNTPD answers time requests on every address from every host: no mode 6/7, so no \
                 amplification, but a public server that requests with a forged source bounce off."
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One rule broken by one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    /// 1-based line that breaks the rule; `None` when a line is missing.
    pub line: Option<usize>,
    /// What is wrong in this config.
    pub message: String,
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
    let mut findings = match flavor {
        Flavor::Ntpd | Flavor::Ntpsec => lint_ntp(flavor, &lines, version),
        Flavor::Chrony => lint_chrony(&lines),
        Flavor::Openntpd => lint_openntpd(&lines),
    };
    findings.sort_by_key(|f| f.rule);
    findings
}

/// (1-based line number, words) of each directive, comments dropped.
fn directives(flavor: Flavor, text: &str) -> Vec<(usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.split('#').next().unwrap_or("");
            // chrony also takes !, ; and % as comment starts at the beginning of a line.
            if flavor == Flavor::Chrony && line.trim_start().starts_with(['!', ';', '%']) {
                return None;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            (!words.is_empty()).then_some((i + 1, words))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// A `restrict` line for the default entry of one or both families.
struct DefaultEntry<'a> {
    line: usize,
    families: Vec<Family>,
    flags: Vec<&'a str>,
}

/// `restrict [-4|-6] default|0.0.0.0 mask 0.0.0.0|:: mask :: FLAGS...`; `None`
/// for any other line (host entries, `restrict source`, other directives).
fn default_entry<'a>(line: usize, words: &[&'a str]) -> Option<DefaultEntry<'a>> {
    let (first, rest) = words.split_first()?;
    if *first != "restrict" {
        return None;
    }
    let (family, rest) = match rest.first() {
        Some(&"-4") => (Some(Family::V4), &rest[1..]),
        Some(&"-6") => (Some(Family::V6), &rest[1..]),
        _ => (None, rest),
    };
    let (address, mut rest) = rest.split_first()?;
    let mut mask = None;
    if rest.first() == Some(&"mask") {
        mask = rest.get(1).copied();
        rest = rest.get(2..).unwrap_or(&[]);
    }
    let families = match (*address, mask, family) {
        // A family-less `restrict default` covers both (ntpd 4.2.6+, NTPsec).
        ("default", _, None) => vec![Family::V4, Family::V6],
        ("default", _, Some(f)) => vec![f],
        ("0.0.0.0", Some("0.0.0.0"), _) => vec![Family::V4],
        ("::", Some("::"), _) => vec![Family::V6],
        _ => return None,
    };
    let mut flags = Vec::new();
    let mut words = rest.iter();
    while let Some(w) = words.next() {
        flags.push(*w);
        // The only restrict option with an argument (ntpd 4.2.8p11+).
        if *w == "ippeerlimit" {
            words.next();
        }
    }
    Some(DefaultEntry {
        line,
        families,
        flags,
    })
}

/// classic ntpd stopped answering monlist in this upstream version.
const MONLIST_REMOVED: &str = "4.2.7p26";

fn lint_ntp(flavor: Flavor, lines: &[(usize, Vec<&str>)], version: Option<&str>) -> Vec<Finding> {
    let entries: Vec<DefaultEntry> = lines
        .iter()
        .filter_map(|(n, w)| default_entry(*n, w))
        .collect();
    let mut findings = Vec::new();
    // ntpd ORs the flags of lines for the same address into one entry, so a
    // family's default is the union of every line that covers it.
    let per_family = |family: Family| -> Option<(usize, Vec<&str>)> {
        let covering: Vec<&DefaultEntry> = entries
            .iter()
            .filter(|e| e.families.contains(&family))
            .collect();
        let first = covering.first()?.line;
        Some((
            first,
            covering
                .iter()
                .flat_map(|e| e.flags.iter().copied())
                .collect(),
        ))
    };
    let mut missing: Vec<(Rule, Family, Option<usize>, String)> = Vec::new();
    for family in [Family::V4, Family::V6] {
        let Some((line, flags)) = per_family(family) else {
            match family {
                Family::V6 => findings.push(Finding {
                    rule: Rule::Ipv6DefaultMissing,
                    line: None,
                    message: "no `restrict -6 default ...` line, and no family-less `restrict default ...` \
                              line covering both families"
                        .into(),
                }),
                Family::V4 => {
                    for (rule, flag) in [(Rule::NoqueryMissing, "noquery"), (Rule::NomodifyMissing, "nomodify")] {
                        let why = format!(
                            "no `restrict -4 default ...` or `restrict default ...` line, so IPv4 hosts get the \
                             built-in default without {flag}"
                        );
                        missing.push((rule, family, None, why));
                    }
                }
            }
            continue;
        };
        // `ignore` drops every packet, queries and modifications included.
        let has = |flag: &str| flags.contains(&flag) || flags.contains(&"ignore");
        for (rule, flag) in [
            (Rule::NoqueryMissing, "noquery"),
            (Rule::NomodifyMissing, "nomodify"),
        ] {
            if !has(flag) {
                missing.push((
                    rule,
                    family,
                    Some(line),
                    format!("the default restrict entry has no {flag}"),
                ));
            }
        }
        if flags.contains(&"kod") && !flags.contains(&"limited") {
            missing.push((
                Rule::KodWithoutLimited,
                family,
                Some(line),
                "the default restrict entry has kod without limited".into(),
            ));
        }
    }
    // One finding per rule, naming the families it applies to.
    for rule in [
        Rule::KodWithoutLimited,
        Rule::NoqueryMissing,
        Rule::NomodifyMissing,
    ] {
        let hits: Vec<&(Rule, Family, Option<usize>, String)> =
            missing.iter().filter(|m| m.0 == rule).collect();
        if hits.is_empty() {
            continue;
        }
        let mut parts: Vec<String> = Vec::new();
        for h in &hits {
            let families: Vec<&str> = hits
                .iter()
                .filter(|o| o.3 == h.3)
                .map(|o| o.1.name())
                .collect();
            let part = format!("{} ({})", h.3, families.join(" and "));
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
        findings.push(Finding {
            rule,
            line: hits.iter().find_map(|h| h.2),
            message: parts.join("; "),
        });
    }

    if flavor == Flavor::Ntpd {
        let upstream = version.map(upstream_version);
        let fixed =
            upstream.is_some_and(|v| version::compare(v, MONLIST_REMOVED) != Ordering::Less);
        if !fixed && monitor_enabled(lines) {
            let message = match upstream {
                Some(v) => format!("ntpd {v} is older than {MONLIST_REMOVED} and the config has no `disable monitor`"),
                None => format!(
                    "the ntpd version is not known, so it may be older than {MONLIST_REMOVED}, and the config has no \
                     `disable monitor`"
                ),
            };
            findings.push(Finding {
                rule: Rule::MonitorEnabled,
                line: None,
                message,
            });
        }
    }
    findings
}

/// Whether the last `enable`/`disable` line naming `monitor` leaves it on
/// (ntpd's default).
fn monitor_enabled(lines: &[(usize, Vec<&str>)]) -> bool {
    let mut enabled = true;
    for (_, words) in lines {
        match words.split_first() {
            Some((&"disable", flags)) if flags.contains(&"monitor") => enabled = false,
            Some((&"enable", flags)) if flags.contains(&"monitor") => enabled = true,
            _ => {}
        }
    }
    enabled
}

/// `1:4.2.8p15+dfsg-1ubuntu2` -> `4.2.8p15+dfsg`: the epoch and the Debian
/// revision say nothing about which upstream fix is in.
fn upstream_version(v: &str) -> &str {
    let v = v.trim();
    let v = match v.split_once(':') {
        Some((epoch, rest)) if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) => {
            rest
        }
        _ => v,
    };
    v.rsplit_once('-').map_or(v, |(upstream, _)| upstream)
}

fn lint_chrony(lines: &[(usize, Vec<&str>)]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (n, words) in lines {
        let (directive, args) = words.split_first().expect("directives have a word");
        match *directive {
            "allow" => {
                let everything = match args {
                    [] | ["all"] => true,
                    _ => args.iter().any(|a| {
                        matches!(
                            *a,
                            "0/0" | "0.0.0.0/0" | "::/0" | "::0/0" | "0.0.0.0/0.0.0.0"
                        )
                    }),
                };
                if everything {
                    let message = format!("`{}` serves NTP to every address", words.join(" "));
                    findings.push(Finding {
                        rule: Rule::ChronyAllowAll,
                        line: Some(*n),
                        message,
                    });
                }
            }
            "cmdallow" => {
                let subnets: Vec<&str> = args.iter().copied().filter(|a| *a != "all").collect();
                if subnets.is_empty() || !subnets.iter().all(|s| is_loopback_subnet(s)) {
                    let message = format!(
                        "`{}` opens the command port beyond 127.0.0.1 and ::1",
                        words.join(" ")
                    );
                    findings.push(Finding {
                        rule: Rule::ChronyCmdallow,
                        line: Some(*n),
                        message,
                    });
                }
            }
            "bindcmdaddress" => {
                // A path is the Unix socket, local by nature.
                let local = args
                    .first()
                    .is_some_and(|a| a.starts_with('/') || is_loopback_subnet(a));
                if !local {
                    let message = format!(
                        "`{}` binds the command port to a non-loopback address",
                        words.join(" ")
                    );
                    findings.push(Finding {
                        rule: Rule::ChronyCmdallow,
                        line: Some(*n),
                        message,
                    });
                }
            }
            _ => {}
        }
    }
    findings
}

/// chrony's subnet syntax: `127.0.0.1`, `127/8`, `127.0.0.0/8`, `::1`,
/// `::1/128`; true when every address it covers is a loopback address.
fn is_loopback_subnet(subnet: &str) -> bool {
    let (addr, prefix) = match subnet.split_once('/') {
        Some((a, p)) => match p.parse::<u8>() {
            Ok(p) => (a, Some(p)),
            Err(_) => return false,
        },
        None => (subnet, None),
    };
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(v4) => v4.is_loopback() && prefix.map_or(true, |p| p >= 8),
            IpAddr::V6(v6) => v6.is_loopback() && prefix.map_or(true, |p| p == 128),
        };
    }
    // A partial IPv4 address ("127", "127.0") means that many octets as the prefix.
    let octets: Vec<&str> = addr.split('.').collect();
    let parsed: Option<Vec<u8>> = octets.iter().map(|o| o.parse::<u8>().ok()).collect();
    match parsed {
        Some(o) if !o.is_empty() && o.len() < 4 => {
            o[0] == Ipv4Addr::LOCALHOST.octets()[0] && prefix.unwrap_or(8 * o.len() as u8) >= 8
        }
        _ => false,
    }
}

fn lint_openntpd(lines: &[(usize, Vec<&str>)]) -> Vec<Finding> {
    lines
        .iter()
        .filter(|(_, w)| matches!(w.as_slice(), ["listen", "on", addr, ..] if matches!(*addr, "*" | "0.0.0.0" | "::")))
        .map(|(n, w)| Finding {
            rule: Rule::OpenntpdListenAny,
            line: Some(*n),
            message: format!("`{}` listens on every address", w.join(" ")),
        })
        .collect()
}

/// The config a plan writes for its daemon, linted.
#[derive(Debug, Clone, PartialEq)]
pub struct Linted {
    pub config: AbsPath,
    pub flavor: Flavor,
    pub version: Option<String>,
    pub findings: Vec<Finding>,
}

/// What a run should know before it changes anything.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanLint {
    /// The plan names no daemon (no `vars.daemon`): nothing to lint.
    NoDaemon,
    /// The plan does not write the daemon's config file.
    NotTemplated(AbsPath),
    Linted(Linted),
}

/// Lints the content the plan's last template for `facts.daemon.config`
/// renders (equal to the file when it is unchanged), for the daemon version
/// that will run: the one this changeset installs, else the installed one,
/// else the archive's candidate.
pub fn for_plan(rendered: &Rendered, facts: &Facts, changeset: &Changeset) -> PlanLint {
    let Some(daemon) = &facts.daemon else {
        return PlanLint::NoDaemon;
    };
    let content = rendered
        .steps
        .iter()
        .chain(&rendered.handlers)
        .rev()
        .find_map(|s| match &s.action {
            Action::Template(t) if t.dest == daemon.config => Some(t.content.as_str()),
            _ => None,
        });
    let Some(content) = content else {
        return PlanLint::NotTemplated(daemon.config.clone());
    };
    let version = daemon_version(daemon, facts, changeset);
    PlanLint::Linted(Linted {
        config: daemon.config.clone(),
        flavor: daemon.flavor,
        findings: lint(daemon.flavor, content, version.as_deref()),
        version,
    })
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
    let fact = facts.packages.get(&daemon.package);
    installing
        .or_else(|| match fact.map(|f| &f.dpkg) {
            Some(DpkgState::Installed { version }) => Some(version.clone()),
            _ => None,
        })
        .or_else(|| fact.and_then(|f| f.candidate.clone()))
}

/// Splits findings into refusals and those the plan allows; `Err` is the
/// report's error (what and why), `Ok` the notes for allowed findings.
pub fn judge(linted: &Linted, allow: &[Rule]) -> Result<Vec<String>, String> {
    let (allowed, refused): (Vec<&Finding>, Vec<&Finding>) = linted
        .findings
        .iter()
        .partition(|f| allow.contains(&f.rule));
    if !refused.is_empty() {
        let items: Vec<String> = refused.iter().map(|f| f.to_string()).collect();
        let mut names: Vec<&str> = refused.iter().map(|f| f.rule.name()).collect();
        names.dedup();
        return Err(format!(
            "{} as the plan would write it fails the access-control lint: {}. If this is intended, list the \
             rule in the plan: allow_insecure: [{}]",
            linted.config,
            items.join(" "),
            names.join(", ")
        ));
    }
    Ok(allowed
        .iter()
        .map(|f| format!("allowed by allow_insecure: {}: {f}", linted.config))
        .collect())
}

#[cfg(test)]
mod tests;
