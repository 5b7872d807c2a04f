//! `ntp-provision status`: which time daemon this node runs, its unit, the
//! config file it really reads and whether that matches the plan, its peers
//! and whether the clock is synchronised. Read-only, like facts.
//!
//! Must not: change anything. It reads the node only through the probe, so
//! the fake tests it; each daemon's queries and parsers are its own.

use crate::daemons::sync::{Peer, Sync};
use crate::daemons::{Daemon, DaemonName, Flavor};
use crate::facts::dpkg::DpkgState;
use crate::facts::{InitSystem, Probe, UnitFact};
use crate::names::{AbsPath, PackageName};
use crate::plan::step::Action;
use crate::plan::Plan;
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
    pub sync: Option<Sync>,
    pub peers: Vec<Peer>,
    /// Why peers or sync could not be read, if they could not.
    pub query_error: Option<String>,
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
    if path != resolved.config.as_str() {
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
            detail: "matches the plan".into(),
        },
        Ok(Some(_)) => {
            mismatch("differs from the plan (`ntp-provision plan` shows the diff)".into())
        }
        Ok(None) => mismatch("cannot read it: it does not exist".into()),
        Err(e) => mismatch(format!("cannot read it: {e:#}")),
    }
}

/// Peers and sync state through the daemon's own query tool.
fn query(probe: &dyn Probe, flavor: Flavor) -> Result<(Vec<Peer>, Sync)> {
    let [sources, sync] = flavor.status_queries();
    let (sources, sync) = (probe.ask(sources)?, probe.ask(sync)?);
    flavor
        .parse_status(&sources, &sync)
        .map_err(anyhow::Error::msg)
}

pub fn gather(probe: &dyn Probe, plan: &Plan) -> Result<Status> {
    let packages = probe.dpkg_status(&crate::daemons::time_daemon_packages())?;
    let Some(daemon) = in_use(&packages) else {
        return Ok(Status {
            daemon: None,
            unit: None,
            config: None,
            synchronised: false,
            sync: None,
            peers: vec![],
            query_error: None,
        });
    };
    let init: InitSystem = probe.init_system()?;
    let unit = probe
        .units(init, &[daemon.flavor.unit()])?
        .into_iter()
        .next();
    let path = effective_config(probe, daemon.flavor);
    let config = Some(compare_with_plan(probe, plan, &daemon, &path));
    let (peers, sync, query_error) = match query(probe, daemon.flavor) {
        Ok((p, s)) => (p, Some(s), None),
        Err(e) => (Vec::new(), None, Some(format!("{e:#}"))),
    };
    let synchronised = sync.as_ref().is_some_and(|s| s.synchronised);
    Ok(Status {
        daemon: Some(daemon),
        unit,
        config,
        synchronised,
        sync,
        peers,
        query_error,
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
        let sync = match &self.sync {
            Some(s) => format!(
                "{} (stratum {}, offset {})",
                if s.synchronised { "yes" } else { "no" },
                s.stratum.map_or("?".into(), |v| v.to_string()),
                s.offset_ms.map_or("?".into(), |v| format!("{v:.3} ms"))
            ),
            None => "unknown".into(),
        };
        let _ = writeln!(out, "synchronised: {sync}");
        if let Some(e) = &self.query_error {
            let _ = writeln!(out, "query failed: {e}");
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

    fn said(stdout: &str) -> Output {
        Output {
            code: 0,
            stdout: stdout.into(),
            stderr: String::new(),
            elapsed: Default::default(),
        }
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
            said("^,*,192.0.2.1,2,6,377,12,-0.000012,-0.000010,0.000020\n"),
        );
        node.state().answers.insert(
            "chronyc -n -c tracking".into(),
            said("C0000201,192.0.2.1,3,1700000000.0,-0.000001,0.000002,0.000003,-1.0,0.0,0.01,0.001,0.002,64.0,Normal\n"),
        );
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
        assert_eq!(s.peers.len(), 1);
        assert_eq!(s.exit_code(), 0);
        // The plan asks for another daemon: status says so, reading nothing else.
        let other = gather(&node, &plan(&["daemon=openntpd"])).unwrap();
        let detail = &other.config.unwrap().detail;
        assert_eq!(detail, "the plan wants openntpd, the node runs chrony");
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
}
