//! `ntp-provision status`: which time daemon this node runs, its unit, the
//! config file it really reads and whether that matches the plan, each
//! source that config names and what became of it, its peers, and whether
//! the clock is synchronised (if not, why, when that is known). Read-only,
//! like facts.
//!
//! Must not: change anything. It reads the node only through the probe, so
//! the fake tests it; each daemon's queries and parsers are its own.

use crate::daemons::sync::{Configured, Peer, Source, SourceState, Sync};
use crate::daemons::{directives, Daemon, DaemonName, Flavor};
use crate::facts::dpkg::DpkgState;
use crate::facts::{InitSystem, Probe, UnitFact};
use crate::names::{AbsPath, PackageName};
use crate::plan::step::Action;
use crate::plan::Plan;
use crate::process::Output;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Status {
    /// `None`: no NTP daemon package is installed.
    pub daemon: Option<InUse>,
    pub unit: Option<UnitFact>,
    pub config: Option<ConfigStatus>,
    pub synchronised: bool,
    /// Why the clock is not synchronised, when that is known.
    pub reason: Option<Reason>,
    pub sync: Option<Sync>,
    /// Each source the config names, in its order, and what became of it.
    pub sources: Vec<Source>,
    pub peers: Vec<Peer>,
    /// Why peers or sync could not be read, if they could not.
    pub query_error: Option<String>,
    /// Why the daemon could not say what became of the sources (they are
    /// then `unknown`), if it could not.
    pub sources_error: Option<String>,
}

/// Why the clock is not synchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The daemon's unit is not running.
    NotRunning,
    /// The config names no time source.
    NoSources,
    /// No source the config names has an address: no name resolved.
    NoneResolved,
    /// Sources have addresses, but none answered in its last 8 polls.
    NoneReachable,
    /// Sources answer; the daemon has not synchronised to one yet.
    Selecting,
}

impl Reason {
    pub fn says(self) -> &'static str {
        match self {
            Reason::NotRunning => "the daemon is not running",
            Reason::NoSources => "the config names no time source",
            Reason::NoneResolved => "no source resolved",
            Reason::NoneReachable => "no source reachable",
            Reason::Selecting => "still selecting",
        }
    }
}

/// Why the clock is not synchronised, from what the daemon said: `None`
/// when it is, or when that cannot be told (the daemon could not be asked,
/// the config not read, the sources not matched).
fn reason(
    running: bool,
    sync: Option<&Sync>,
    sources: Option<&[Source]>,
    peers: &[Peer],
) -> Option<Reason> {
    use crate::daemons::sync::Selection;
    if sync.is_some_and(|s| s.synchronised) {
        return None;
    }
    if !running {
        return Some(Reason::NotRunning);
    }
    sync?;
    // A peer the config does not name (chrony's sourcedir, say) counts too.
    let answering = |p: &Peer| match p.reach {
        Some(r) => r > 0,
        None => matches!(p.selected, Selection::SystemPeer | Selection::Candidate),
    };
    let sources = sources?;
    if sources.iter().any(|s| s.state >= SourceState::Reachable) || peers.iter().any(answering) {
        return Some(Reason::Selecting);
    }
    if sources.iter().any(|s| s.state == SourceState::Unknown) {
        return None;
    }
    if sources.is_empty() {
        return Some(if peers.is_empty() {
            Reason::NoSources
        } else {
            Reason::NoneReachable
        });
    }
    Some(
        if sources.iter().all(|s| s.state == SourceState::Unresolved) {
            Reason::NoneResolved
        } else {
            Reason::NoneReachable
        },
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct InUse {
    pub flavor: Flavor,
    pub package: PackageName,
    pub version: String,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ConfigStatus {
    /// The file the daemon reads: its config, or the DHCP one where DHCP wins.
    pub path: String,
    pub matches_plan: bool,
    pub detail: String,
}

/// Which daemon is installed: the flavour whose package is `ii`. A package
/// that may be transitional for another daemon counts last: where both are
/// installed, the other is what runs.
fn in_use(packages: &std::collections::BTreeMap<PackageName, DpkgState>) -> Option<InUse> {
    let may_be_transitional = |f: &Flavor| {
        DaemonName::all()
            .iter()
            .any(|n| n.as_str() == f.package_name() && n.may_be_transitional())
    };
    let (plain, transitional): (Vec<Flavor>, Vec<Flavor>) =
        Flavor::all().partition(|f| !may_be_transitional(f));
    plain
        .into_iter()
        .chain(transitional)
        .find_map(|f| match packages.get(&f.package()) {
            Some(DpkgState::Installed { version }) => Some(InUse {
                flavor: f,
                package: f.package(),
                version: version.clone(),
                unit: f.unit().to_string(),
            }),
            _ => None,
        })
}

/// The file the daemon really reads: DHCP can replace its servers.
fn effective_config(probe: &dyn Probe, flavor: Flavor) -> String {
    let read = |path: &str| {
        let path = AbsPath::parse(path).ok()?;
        probe.file(&path).ok().flatten().map(|f| f.content)
    };
    flavor
        .dhcp_config(&read)
        .map_or_else(|| flavor.config().to_string(), str::to_string)
}

/// Compares the file the daemon reads with what the plan would write.
fn compare_with_plan(probe: &dyn Probe, plan: &Plan, daemon: &InUse, path: &str) -> ConfigStatus {
    let mismatch = |detail: String| ConfigStatus {
        path: path.to_string(),
        matches_plan: false,
        detail,
    };
    let Some(requested) = plan.vars.daemon else {
        return mismatch("the plan names no daemon".into());
    };
    if !daemon.flavor.requested_as().contains(&requested.as_str()) {
        return mismatch(format!(
            "the plan wants {requested}, the node runs {}",
            daemon.flavor.as_str()
        ));
    }
    let resolved = Daemon::new(requested, daemon.flavor);
    // With dhcp_servers the DHCP file is what the plan asked for: Debian's
    // hook makes it from the config, which is then the file to compare.
    let from_dhcp = path != resolved.config.as_str();
    if from_dhcp && plan.vars.values.get("dhcp_servers") != Some(&serde_json::Value::Bool(true)) {
        return mismatch(format!(
            "the daemon reads {path} (from DHCP), not {}",
            resolved.config
        ));
    }
    let rendered = match plan.render(Some(&resolved)) {
        Ok(r) => r,
        Err(e) => return mismatch(format!("the plan cannot be rendered: {e}")),
    };
    let wanted = rendered.steps.iter().find_map(|s| match &s.action {
        Action::Template(t) if t.dest == resolved.config => Some(t.content.clone()),
        _ => None,
    });
    let Some(wanted) = wanted else {
        return mismatch(format!("the plan writes no {path}"));
    };
    match probe.file(&resolved.config) {
        Ok(Some(actual)) if actual.content == wanted.as_bytes() => ConfigStatus {
            path: path.to_string(),
            matches_plan: true,
            detail: if from_dhcp {
                format!("made by DHCP's hook from {}, which matches the plan, with the servers DHCP offered (dhcp_servers)", resolved.config)
            } else {
                "matches the plan".into()
            },
        },
        Ok(Some(_)) => {
            mismatch("differs from the plan (`ntp-provision plan` shows the diff)".into())
        }
        Ok(None) => mismatch("cannot read it: it does not exist".into()),
        Err(e) => mismatch(format!("cannot read it: {e:#}")),
    }
}

/// Peers and sync state through the daemon's own query tool, and what its
/// first query printed (OpenNTPD's names the sources too).
fn query(probe: &dyn Probe, flavor: Flavor) -> Result<(Vec<Peer>, Sync, Output)> {
    let [sources, sync] = flavor.status_queries();
    let (sources, sync) = (probe.ask(sources)?, probe.ask(sync)?);
    let (peers, sync) = flavor
        .parse_status(&sources, &sync)
        .map_err(anyhow::Error::msg)?;
    Ok((peers, sync, sources))
}

/// A daemon's source queries are a short fixed sequence; this bounds a
/// mistaken one.
const MAX_SOURCE_QUERIES: usize = 4;

/// What became of each configured source, through the daemon's own tool.
fn sources(
    probe: &dyn Probe,
    flavor: Flavor,
    configured: &[Configured],
    listing: &Output,
) -> Result<Vec<Source>> {
    if configured.is_empty() {
        return Ok(Vec::new());
    }
    let mut asked = Vec::new();
    while let Some(query) = flavor.source_query(&asked) {
        anyhow::ensure!(
            asked.len() < MAX_SOURCE_QUERIES,
            "more than {MAX_SOURCE_QUERIES} source queries"
        );
        let argv: Vec<&str> = query.iter().map(String::as_str).collect();
        asked.push(probe.ask(&argv)?);
    }
    flavor
        .sources(configured, listing, &asked)
        .map_err(anyhow::Error::msg)
}

/// The sources the daemon's config names; `None` when it cannot be read.
fn configured(probe: &dyn Probe, flavor: Flavor, path: &str) -> Option<Vec<Configured>> {
    let file = probe.file(&AbsPath::parse(path).ok()?).ok()??;
    let text = String::from_utf8_lossy(&file.content);
    Some(flavor.configured_sources(&directives(flavor, &text)))
}

pub fn gather(probe: &dyn Probe, plan: &Plan) -> Result<Status> {
    let packages = probe.dpkg_status(&crate::daemons::time_daemon_packages())?;
    let Some(daemon) = in_use(&packages) else {
        return Ok(Status {
            daemon: None,
            unit: None,
            config: None,
            synchronised: false,
            reason: None,
            sync: None,
            sources: vec![],
            peers: vec![],
            query_error: None,
            sources_error: None,
        });
    };
    let init: InitSystem = probe.init_system()?;
    let unit = probe
        .units(init, &[daemon.flavor.unit()])?
        .into_iter()
        .next();
    let path = effective_config(probe, daemon.flavor);
    let config = Some(compare_with_plan(probe, plan, &daemon, &path));
    let named = configured(probe, daemon.flavor, &path);
    let unknown = || -> Vec<Source> {
        let named = named.as_deref().unwrap_or_default();
        named.iter().map(Source::unknown).collect()
    };
    let running = unit.as_ref().is_some_and(|u| u.running);
    let asked = if !running && daemon.flavor.asking_starts_it() {
        Err(anyhow::anyhow!(
            "not asked: the unit is not running, and asking {} would start it",
            daemon.flavor.title()
        ))
    } else {
        query(probe, daemon.flavor)
    };
    let (peers, sync, query_error, sources, sources_error) = match asked {
        Ok((peers, sync, listing)) => {
            let named = named.as_deref().unwrap_or_default();
            match sources(probe, daemon.flavor, named, &listing) {
                Ok(found) => (peers, Some(sync), None, found, None),
                Err(e) => (peers, Some(sync), None, unknown(), Some(format!("{e:#}"))),
            }
        }
        Err(e) => (Vec::new(), None, Some(format!("{e:#}")), unknown(), None),
    };
    let synchronised = sync.as_ref().is_some_and(|s| s.synchronised);
    let known = named.as_ref().map(|_| sources.as_slice());
    Ok(Status {
        reason: reason(running, sync.as_ref(), known, &peers),
        daemon: Some(daemon),
        unit,
        config,
        synchronised,
        sync,
        sources,
        peers,
        query_error,
        sources_error,
    })
}

impl Status {
    /// 0 when a daemon is installed and running, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.daemon.is_some() && self.unit.as_ref().is_some_and(|u| u.running) {
            0
        } else {
            1
        }
    }

    pub fn human(&self) -> String {
        let mut out = String::new();
        let Some(d) = &self.daemon else {
            return "daemon: none (no NTP daemon package is installed)\n".into();
        };
        let unit = match &self.unit {
            Some(u) if u.running => format!(
                "{} running{}",
                d.unit,
                if u.enabled {
                    ", enabled"
                } else {
                    ", not enabled at boot"
                }
            ),
            Some(u) if u.exists => format!("{} NOT running", d.unit),
            _ => format!("{} not found", d.unit),
        };
        let _ = writeln!(
            out,
            "daemon: {} (package {} {}), unit {unit}",
            d.flavor.as_str(),
            d.package,
            d.version
        );
        if let Some(c) = &self.config {
            let _ = writeln!(out, "config: {} ({})", c.path, c.detail);
        }
        let why = self
            .reason
            .map_or(String::new(), |r| format!(", {}", r.says()));
        let sync = match &self.sync {
            Some(s) => format!(
                "{}{why} (stratum {}, offset {})",
                if s.synchronised { "yes" } else { "no" },
                s.stratum.map_or("?".into(), |v| v.to_string()),
                s.offset_ms.map_or("?".into(), |v| format!("{v:.3} ms"))
            ),
            None if self.reason.is_some() => format!("no{why}"),
            None => "unknown".into(),
        };
        let _ = writeln!(out, "synchronised: {sync}");
        if let Some(e) = &self.query_error {
            let _ = writeln!(out, "query failed: {e}");
        }
        let _ = writeln!(out, "sources: {}", self.sources.len());
        for source in &self.sources {
            let _ = writeln!(out, "  {}", source_line(source));
        }
        if let Some(e) = &self.sources_error {
            let _ = writeln!(out, "sources unknown: {e}");
        }
        let _ = writeln!(out, "peers: {}", self.peers.len());
        for p in &self.peers {
            let _ = writeln!(
                out,
                "  {:<40} reach {:>3o}  stratum {:>2}  offset {}  {:?}",
                p.remote,
                p.reach.unwrap_or(0),
                p.stratum.map_or("-".into(), |s| s.to_string()),
                p.offset_ms.map_or("-".into(), |o| format!("{o:.3} ms")),
                p.selected
            );
        }
        out
    }
}

/// `pool 2.debian.pool.ntp.org   selected   192.0.2.1 (reach 377, selected), ...`:
/// each address with its reach in octal, as the daemons print it.
fn source_line(source: &Source) -> String {
    let mut state = source.state.as_str().to_string();
    if source.nts {
        state.push_str(", NTS");
    } else if source.authenticated {
        state.push_str(", authenticated");
    }
    let several = source.addresses.len() > 1;
    let addresses: Vec<String> = source
        .addresses
        .iter()
        .map(|a| {
            let mut facts: Vec<String> = a.reach.iter().map(|r| format!("reach {r:o}")).collect();
            if several {
                facts.push(a.state.as_str().into());
            }
            if several && a.authenticated {
                facts.push("authenticated".into());
            }
            match facts.is_empty() {
                true => a.address.clone(),
                false => format!("{} ({})", a.address, facts.join(", ")),
            }
        })
        .collect();
    let line = format!(
        "{:<6} {:<40} {state:<11} {}",
        source.kind.as_str(),
        source.name,
        addresses.join(", ")
    );
    match &source.nts_failure {
        Some(why) => format!("{}; {why}", line.trim_end()),
        None => line.trim_end().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::diff;
    use crate::facts::gather as gather_facts;
    use crate::fake::FakeNode;
    use crate::plan::{parse_override, Source, DEFAULT_PLAN};
    use crate::process::Output;

    fn plan(overrides: &[&str]) -> Plan {
        let o: Vec<_> = overrides
            .iter()
            .map(|s| parse_override(s).unwrap())
            .collect();
        Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &o).unwrap()
    }

    /// Converges `node` with the stages `apply` runs; the fake archive's
    /// chrony is given the unit and conffile Debian's has.
    fn converged(node: &FakeNode, plan: &Plan) {
        if let Some(chrony) = node.state().archive.get_mut("chrony") {
            chrony.unit = Some("chrony.service".into());
            chrony.conffile = Some((
                "/etc/chrony/chrony.conf".into(),
                "pool 2.debian.pool.ntp.org iburst\n".into(),
            ));
        }
        let g = gather_facts(node, &crate::facts::Wants::from(plan)).unwrap();
        let cs = diff(&g.rendered, &g.facts).unwrap();
        let report = node.apply(&cs, &mut |_| {}, &|| None, None);
        assert!(!report.failed, "{report:?}");
        assert!(
            node.file_text(Flavor::CHRONY.config_path()).is_some(),
            "{:?}",
            node.journal()
        );
    }

    #[test]
    fn a_node_with_nothing_installed_runs_no_daemon() {
        let node = FakeNode::bookworm();
        let s = gather(&node, &plan(&[])).unwrap();
        assert_eq!(s.daemon, None);
        assert_eq!(s.exit_code(), 1);
    }

    #[test]
    fn a_converged_chrony_node_is_read_through_the_probe_only() {
        let node = FakeNode::bookworm();
        let p = plan(&["daemon=chrony"]);
        converged(&node, &p);
        node.state().answers.insert(
            "chronyc -n -c sources".into(),
            Output::said(0, "^,*,192.0.2.1,2,6,377,12,-0.000012,-0.000010,0.000020\n"),
        );
        node.state().answers.insert(
            "chronyc -n -c tracking".into(),
            Output::said(0, "C0000201,192.0.2.1,3,1700000000.0,-0.000001,0.000002,0.000003,-1.0,0.0,0.01,0.001,0.002,64.0,Normal\n"),
        );
        answer_sources(&node, ChronySources::SYNCHRONISED);
        let s = gather(&node, &p).unwrap();
        let d = s.daemon.as_ref().expect("chrony is installed");
        assert_eq!(d.flavor, Flavor::CHRONY);
        assert_eq!(
            s.config.as_ref().map(|c| c.matches_plan),
            Some(true),
            "{:?}",
            s.config
        );
        assert!(s.synchronised, "{s:?}");
        assert_eq!(s.reason, None);
        assert_eq!(s.peers.len(), 1);
        assert_eq!(s.exit_code(), 0);
        // Every server the config names, in full, with what became of it.
        let sources: Vec<(&str, SourceState)> = s
            .sources
            .iter()
            .map(|x| (x.name.as_str(), x.state))
            .collect();
        assert_eq!(
            sources,
            [
                ("0.ubuntu.pool.ntp.org", SourceState::Selected),
                ("1.ubuntu.pool.ntp.org", SourceState::Reachable),
                ("2.ubuntu.pool.ntp.org", SourceState::Unreachable),
                ("3.ubuntu.pool.ntp.org", SourceState::Unresolved),
            ]
        );
        assert_eq!(s.sources_error, None);
        // reach in octal, as chronyc and ntpq print it, in JSON and human alike.
        let doc = serde_json::to_value(&s).unwrap();
        assert_eq!(doc["peers"][0]["reach"], "377");
        assert_eq!(doc["sources"][1]["addresses"][0]["reach"], "17");
        assert_eq!(doc["sources"][3]["state"], "unresolved");
        assert_eq!(doc["reason"], serde_json::Value::Null);
        let human = s.human();
        assert!(
            human.contains(
                "\n  server 0.ubuntu.pool.ntp.org                    selected    192.0.2.1 (reach 377)\n"
            ) && human.contains("\n  server 3.ubuntu.pool.ntp.org                    unresolved\n")
                && human.contains("reach 377  stratum  2"),
            "{human}"
        );
        // The plan asks for another daemon: status says so, reading nothing else.
        let other = gather(&node, &plan(&["daemon=openntpd"])).unwrap();
        let detail = &other.config.unwrap().detail;
        assert_eq!(detail, "the plan wants openntpd, the node runs chrony");
    }

    /// What chronyc says of the default plan's four servers.
    struct ChronySources {
        names: &'static str,
        addresses: &'static str,
    }

    impl ChronySources {
        const SYNCHRONISED: ChronySources = ChronySources {
            names: concat!(
                "^,*,0.ubuntu.pool.ntp.org,2,6,377,12,-0.000012,-0.000010,0.000020\n",
                "^,-,1.ubuntu.pool.ntp.org,2,6,17,12,-0.000012,-0.000010,0.000020\n",
                "^,?,2.ubuntu.pool.ntp.org,0,6,0,4294967295,0.0,0.0,0.0\n",
                "^,?,3.ubuntu.pool.ntp.org,0,6,0,4294967295,0.0,0.0,0.0\n",
            ),
            addresses: concat!(
                "^,*,192.0.2.1,2,6,377,12,-0.000012,-0.000010,0.000020\n",
                "^,-,192.0.2.2,2,6,17,12,-0.000012,-0.000010,0.000020\n",
                "^,?,192.0.2.3,0,6,0,4294967295,0.0,0.0,0.0\n",
                "^,?,ID#0000000004,0,6,0,4294967295,0.0,0.0,0.0\n",
            ),
        };
        /// No name resolved (no DNS).
        const UNRESOLVED: ChronySources = ChronySources {
            names: concat!(
                "^,?,0.ubuntu.pool.ntp.org,0,6,0,4294967295,0.0,0.0,0.0\n",
                "^,?,1.ubuntu.pool.ntp.org,0,6,0,4294967295,0.0,0.0,0.0\n",
                "^,?,2.ubuntu.pool.ntp.org,0,6,0,4294967295,0.0,0.0,0.0\n",
                "^,?,3.ubuntu.pool.ntp.org,0,6,0,4294967295,0.0,0.0,0.0\n",
            ),
            addresses: concat!(
                "^,?,ID#0000000001,0,6,0,4294967295,0.0,0.0,0.0\n",
                "^,?,ID#0000000002,0,6,0,4294967295,0.0,0.0,0.0\n",
                "^,?,ID#0000000003,0,6,0,4294967295,0.0,0.0,0.0\n",
                "^,?,ID#0000000004,0,6,0,4294967295,0.0,0.0,0.0\n",
            ),
        };
    }

    fn answer_sources(node: &FakeNode, sources: ChronySources) {
        let auth: String = sources
            .names
            .lines()
            .map(|l| {
                format!(
                    "{},-,0,0,0,4294967295,0,0,0,0\n",
                    l.split(',').nth(2).unwrap()
                )
            })
            .collect();
        let mut state = node.state();
        let answers = &mut state.answers;
        answers.insert(
            "chronyc -N -c sources -a".into(),
            Output::said(0, sources.names),
        );
        answers.insert(
            "chronyc -n -c sources -a".into(),
            Output::said(0, sources.addresses),
        );
        answers.insert("chronyc -N -c authdata -a".into(), Output::said(0, &auth));
    }

    #[test]
    fn an_unsynchronised_node_says_why() {
        let node = FakeNode::bookworm();
        let p = plan(&["daemon=chrony"]);
        converged(&node, &p);
        node.state()
            .answers
            .insert("chronyc -n -c sources".into(), Output::said(0, ""));
        node.state().answers.insert(
            "chronyc -n -c tracking".into(),
            Output::said(0, "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,-12.345,0.000,0.000,1.000000000,1.000000000,0.0,Not synchronised\n"),
        );
        answer_sources(&node, ChronySources::UNRESOLVED);
        let s = gather(&node, &p).unwrap();
        assert!(!s.synchronised);
        assert_eq!(s.reason, Some(Reason::NoneResolved), "{s:?}");
        assert_eq!(s.sources.len(), 4, "listed although chronyc lists no peer");
        assert!(s.peers.is_empty());
        assert_eq!(serde_json::to_value(&s).unwrap()["reason"], "none_resolved");
        let human = s.human();
        assert!(
            human.contains("synchronised: no, no source resolved (stratum 0, offset 0.000 ms)\n"),
            "{human}"
        );

        // A chronyc too old for `sources -a`: the sources are unknown, the
        // rest of the status stands.
        node.state().answers.insert(
            "chronyc -N -c sources -a".into(),
            Output {
                code: 1,
                stderr: "Unrecognized command\n".into(),
                ..Output::said(0, "")
            },
        );
        let s = gather(&node, &p).unwrap();
        assert_eq!(s.query_error, None);
        assert!(
            s.sources_error
                .as_deref()
                .unwrap()
                .contains("Unrecognized command"),
            "{s:?}"
        );
        assert!(s.sources.iter().all(|x| x.state == SourceState::Unknown));
        assert_eq!(s.reason, None, "not known without the sources");
        assert!(s
            .human()
            .contains("\nsources unknown: chronyc failed: Unrecognized command\n"));
    }

    #[test]
    fn the_reason_follows_what_the_sources_reached() {
        use crate::daemons::sync::{Configured, Selection, Source, SourceAddress, SourceKind};
        let unsynced = Sync {
            synchronised: false,
            stratum: Some(16),
            offset_ms: None,
            refid: None,
            leap: None,
        };
        let server = |state: Option<SourceState>| {
            let c = Configured {
                kind: SourceKind::Server,
                name: "ntp.example.net".into(),
            };
            let addresses = state.map(|state| SourceAddress {
                address: "192.0.2.1".into(),
                state,
                reach: None,
                authenticated: false,
                nts: false,
                nts_failure: None,
            });
            Source::new(&c, addresses.into_iter().collect())
        };
        let why = |running, sources: Option<&[Source]>, peers: &[Peer]| {
            reason(running, Some(&unsynced), sources, peers)
        };
        assert_eq!(why(false, Some(&[]), &[]), Some(Reason::NotRunning));
        assert_eq!(why(true, Some(&[]), &[]), Some(Reason::NoSources));
        assert_eq!(
            why(true, Some(&[server(None)]), &[]),
            Some(Reason::NoneResolved)
        );
        let unreachable = [server(None), server(Some(SourceState::Unreachable))];
        assert_eq!(
            why(true, Some(&unreachable), &[]),
            Some(Reason::NoneReachable)
        );
        let reachable = [server(Some(SourceState::Reachable))];
        assert_eq!(why(true, Some(&reachable), &[]), Some(Reason::Selecting));
        // A peer no config line names (chrony's sourcedir) that answers.
        let dhcp = Peer {
            remote: "192.0.2.9".into(),
            refid: None,
            stratum: None,
            reach: Some(1),
            poll_seconds: None,
            offset_ms: None,
            delay_ms: None,
            jitter_ms: None,
            selected: Selection::Unusable,
        };
        assert_eq!(
            why(true, Some(&unreachable), &[dhcp]),
            Some(Reason::Selecting)
        );
        assert_eq!(why(true, None, &[]), None, "the config was not read");
        let unknown = [Source {
            state: SourceState::Unknown,
            ..server(None)
        }];
        assert_eq!(why(true, Some(&unknown), &[]), None);
        let synced = Sync {
            synchronised: true,
            ..unsynced.clone()
        };
        assert_eq!(reason(false, Some(&synced), Some(&[]), &[]), None);
        assert_eq!(reason(true, None, Some(&[]), &[]), None, "not asked");
    }

    #[test]
    fn with_dhcp_servers_status_names_the_dhcp_file_and_compares_the_config_it_is_made_from() {
        let node = FakeNode::bookworm();
        let applied = |p: &Plan| {
            let g = gather_facts(&node, &crate::facts::Wants::from(p)).unwrap();
            let cs = diff(&g.rendered, &g.facts).unwrap();
            assert!(!node.apply(&cs, &mut |_| {}, &|| None, None).failed);
        };
        let (opted_in, default) = (
            plan(&["daemon=ntpsec", "dhcp_servers=true"]),
            plan(&["daemon=ntpsec"]),
        );
        applied(&opted_in);
        node.state().files.insert(
            "/run/ntpsec/ntp.conf.dhcp".into(),
            crate::fake::file("server 192.0.2.9 iburst\n"),
        );
        let config = |p: &Plan| gather(&node, p).unwrap().config.unwrap();
        let c = config(&opted_in);
        assert_eq!(c.path, "/run/ntpsec/ntp.conf.dhcp");
        assert!(c.matches_plan, "{c:?}");
        assert!(c.detail.contains("from /etc/ntpsec/ntp.conf"), "{c:?}");
        // The same node judged by a plan that ignores DHCP.
        let c = config(&default);
        assert!(!c.matches_plan, "{c:?}");
        assert!(c.detail.contains("(from DHCP)"), "{c:?}");
        // Converged to it, IGNORE_DHCP hides the file again.
        applied(&default);
        let c = config(&default);
        assert_eq!(
            (c.path.as_str(), c.matches_plan),
            ("/etc/ntpsec/ntp.conf", true)
        );
    }

    #[test]
    fn a_hand_edited_config_and_a_daemon_that_does_not_answer_are_reported() {
        let node = FakeNode::bookworm();
        let p = plan(&["daemon=chrony"]);
        converged(&node, &p);
        node.state()
            .files
            .get_mut("/etc/chrony/chrony.conf")
            .unwrap()
            .content = b"server 192.0.2.9\n".to_vec();
        let s = gather(&node, &p).unwrap();
        assert!(!s.config.as_ref().unwrap().matches_plan);
        assert!(!s.synchronised);
        let e = s.query_error.expect("no answers recorded");
        assert!(e.contains("chronyc -n -c sources"), "{e}");
    }

    #[test]
    fn timesyncd_is_asked_while_it_runs_and_never_started_by_status() {
        let node = FakeNode::bookworm();
        node.state().archive.insert(
            "systemd-timesyncd".into(),
            crate::fake::ArchivePackage {
                candidate: Some("252.39-1~deb12u2".into()),
                unit: Some("systemd-timesyncd.service".into()),
                ..Default::default()
            },
        );
        let p = plan(&["daemon=timesyncd", "servers=[192.0.2.1]"]);
        let g = gather_facts(&node, &crate::facts::Wants::from(&p)).unwrap();
        let cs = diff(&g.rendered, &g.facts).unwrap();
        assert!(!node.apply(&cs, &mut |_| {}, &|| None, None).failed);
        node.state().answers.insert(
            "timedatectl show-timesync --all".into(),
            Output::said(0, "ServerName=192.0.2.1\nServerAddress=192.0.2.1\nPollIntervalUSec=32s\n\
                  NTPMessage={ Leap=0, Version=4, Mode=4, Stratum=2, Ignored=no, PacketCount=3, Jitter=0 }\n"),
        );
        node.state().answers.insert(
            "timedatectl timesync-status".into(),
            Output::said(
                0,
                "       Offset: -1.250ms\n        Delay: 2ms\n         Leap: normal\n",
            ),
        );
        let s = gather(&node, &p).unwrap();
        assert!(s.synchronised, "{s:?}");
        assert_eq!(s.sources[0].state, SourceState::Selected);
        assert_eq!(s.peers[0].offset_ms, Some(-1.25));
        assert_eq!(s.sync.as_ref().unwrap().stratum, Some(3));

        // Stopped: asking would start it (D-Bus activation), so nothing is asked.
        node.state()
            .units
            .get_mut("systemd-timesyncd.service")
            .unwrap()
            .running = false;
        node.state().answers.clear();
        let s = gather(&node, &p).unwrap();
        let e = s.query_error.expect("not asked");
        assert!(e.starts_with("not asked: the unit is not running"), "{e}");
        assert_eq!(s.reason, Some(Reason::NotRunning));
    }
}
