//! `ntp-provision status`: which time daemon this node runs, its unit, the
//! config file it really reads and whether that matches the plan, its peers
//! and whether the clock is synchronised. Read-only, like facts.
//!
//! Must not: change anything. Commands go through `process`; their output is
//! parsed by `facts::peers`.

use crate::daemon::{Daemon, DaemonName, Flavor};
use crate::facts::dpkg::DpkgState;
use crate::facts::peers::{self, Peer, Sync};
use crate::facts::{InitSystem, Probe, UnitFact};
use crate::plan::names::PackageName;
use crate::plan::step::Action;
use crate::plan::Plan;
use crate::process::Cmd;
use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InUse {
    pub flavor: Flavor,
    pub package: PackageName,
    pub version: String,
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigStatus {
    /// The file the daemon reads: its config, or the DHCP one where DHCP wins.
    pub path: String,
    pub matches_plan: bool,
    pub detail: String,
}

/// Which daemon is installed: the flavour whose package is `ii`.
fn in_use(packages: &std::collections::BTreeMap<PackageName, DpkgState>) -> Option<InUse> {
    let version_of = |f: Flavor| match packages.get(&f.package()) {
        Some(DpkgState::Installed { version }) => Some(version.clone()),
        _ => None,
    };
    // The transitional `ntp` depends on ntpsec: NTPsec is what runs then.
    [
        Flavor::Ntpsec,
        Flavor::Chrony,
        Flavor::Openntpd,
        Flavor::Ntpd,
    ]
    .into_iter()
    .find_map(|f| {
        version_of(f).map(|version| InUse {
            flavor: f,
            package: f.package(),
            version,
            unit: f.unit().to_string(),
        })
    })
}

/// The file the daemon really reads (platforms.md: DHCP can replace servers).
fn effective_config(flavor: Flavor) -> String {
    let exists = |p: &str| std::path::Path::new(p).exists();
    match flavor {
        Flavor::Ntpd if exists("/run/ntp.conf.dhcp") => "/run/ntp.conf.dhcp".into(),
        Flavor::Ntpsec if exists("/run/ntpsec/ntp.conf.dhcp") => {
            let ignored = std::fs::read_to_string("/etc/default/ntpsec")
                .map(|t| {
                    t.lines()
                        .any(|l| l.trim() == "IGNORE_DHCP=\"yes\"" || l.trim() == "IGNORE_DHCP=yes")
                })
                .unwrap_or(false);
            if ignored {
                flavor.config().to_string()
            } else {
                "/run/ntpsec/ntp.conf.dhcp".into()
            }
        }
        _ => flavor.config().to_string(),
    }
}

/// Compares the file the daemon reads with what the plan would write.
fn compare_with_plan(plan: &Plan, daemon: &InUse, path: &str) -> ConfigStatus {
    let mismatch = |detail: String| ConfigStatus {
        path: path.to_string(),
        matches_plan: false,
        detail,
    };
    let Some(requested) = plan.vars.daemon else {
        return mismatch("the plan names no daemon".into());
    };
    let compatible = match requested {
        DaemonName::Ntp => matches!(daemon.flavor, Flavor::Ntpd | Flavor::Ntpsec),
        DaemonName::Ntpsec => daemon.flavor == Flavor::Ntpsec,
        DaemonName::Chrony => daemon.flavor == Flavor::Chrony,
        DaemonName::Openntpd => daemon.flavor == Flavor::Openntpd,
    };
    if !compatible {
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
    match std::fs::read(path) {
        Ok(actual) if actual == wanted.as_bytes() => ConfigStatus {
            path: path.to_string(),
            matches_plan: true,
            detail: "matches the plan".into(),
        },
        Ok(_) => mismatch("differs from the plan (`ntp-provision plan` shows the diff)".into()),
        Err(e) => mismatch(format!("cannot read it: {e}")),
    }
}

/// Peers and sync state through the daemon's own query tool.
fn query(flavor: Flavor) -> Result<(Vec<Peer>, Sync)> {
    let run =
        |program: &str, args: &[&str]| Cmd::new(program).env("LC_ALL", "C").args(args).output();
    Ok(match flavor {
        Flavor::Ntpd | Flavor::Ntpsec => {
            let p = run("ntpq", &["-pn"])?;
            let s = run("ntpq", &["-c", "rv 0 leap,stratum,offset,refid"])?;
            (
                peers::parse_ntpq_peers(&p.stdout, &p.stderr).map_err(anyhow::Error::msg)?,
                peers::parse_ntpq_rv(&s.stdout).map_err(anyhow::Error::msg)?,
            )
        }
        Flavor::Chrony => {
            let p = run("chronyc", &["-n", "-c", "sources"])?;
            let s = run("chronyc", &["-n", "-c", "tracking"])?;
            if p.code != 0 {
                anyhow::bail!("chronyc failed: {}", p.stderr.trim());
            }
            (
                peers::parse_chronyc_sources(&p.stdout).map_err(anyhow::Error::msg)?,
                peers::parse_chronyc_tracking(&s.stdout).map_err(anyhow::Error::msg)?,
            )
        }
        Flavor::Openntpd => {
            let p = run("ntpctl", &["-s", "peers"])?;
            let s = run("ntpctl", &["-s", "status"])?;
            if p.code != 0 {
                anyhow::bail!("ntpctl failed: {}", p.stderr.trim());
            }
            (
                peers::parse_ntpctl_peers(&p.stdout).map_err(anyhow::Error::msg)?,
                peers::parse_ntpctl_status(&s.stdout).map_err(anyhow::Error::msg)?,
            )
        }
    })
}

pub fn gather(probe: &dyn Probe, plan: &Plan) -> Result<Status> {
    let names: Vec<PackageName> = crate::daemon::TIME_DAEMON_PACKAGES
        .iter()
        .filter_map(|p| PackageName::parse(p).ok())
        .collect();
    let packages = probe.dpkg_status(&names)?;
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
    let path = effective_config(daemon.flavor);
    let config = Some(compare_with_plan(plan, &daemon, &path));
    let (peers, sync, query_error) = match query(daemon.flavor) {
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
