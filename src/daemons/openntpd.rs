//! OpenNTPD (package `openntpd`). It listens nowhere without `listen on`
//! and has no mode 6/7.

use super::sync::{self, Peer, Sync};
use super::{
    bounded_check, Access, AnswerProbe, DaemonName, Directive, Finding, Flavor, TimeDaemon, Verdict,
};
use crate::names::Rule;
use crate::net::parse_addr;
use crate::process::Output;
use anyhow::Context;
use std::net::IpAddr;

pub(super) struct Openntpd;

impl Flavor {
    pub const OPENNTPD: Flavor = Flavor(&Openntpd);
}

impl DaemonName {
    pub const OPENNTPD: DaemonName = DaemonName("openntpd");
}

impl TimeDaemon for Openntpd {
    fn id(&self) -> &'static str {
        "openntpd"
    }
    fn title(&self) -> &'static str {
        "OpenNTPD"
    }
    fn package_name(&self) -> &'static str {
        "openntpd"
    }
    fn config_path(&self) -> &'static str {
        "/etc/openntpd/ntpd.conf"
    }
    fn unit_name(&self) -> &'static str {
        "openntpd.service"
    }
    fn template(&self) -> &'static str {
        "openntpd.conf.j2"
    }
    fn template_text(&self) -> &'static str {
        include_str!("../../templates/openntpd.conf.j2")
    }
    fn requested_as(&self) -> &'static [&'static str] {
        &["openntpd"]
    }
    /// Its AppArmor profile lets it read /etc/openntpd/ntpd.conf and nothing
    /// of ours, not even under /tmp: the config comes on standard input
    /// (pipes are not path-mediated).
    fn check_config(&self, file: &str) -> anyhow::Result<Verdict> {
        let content = std::fs::read(file).with_context(|| format!("reading {file}"))?;
        let out = bounded_check(&["ntpd", "-n", "-f", "/dev/stdin"])
            .stdin(content)
            .output()?;
        let text = format!("{}{}", out.stdout, out.stderr);
        Ok(if out.code == 0 {
            Verdict::Accepted
        } else if text.contains("/dev/stdin") && text.contains("Permission denied") {
            Verdict::NotChecked(format!(
                "OpenNTPD could not read the new config it was to check ({})",
                text.trim()
            ))
        } else {
            Verdict::Rejected(text)
        })
    }
    fn answer_probe(&self) -> AnswerProbe {
        AnswerProbe::Tool(&["ntpctl", "-s", "status"])
    }
    /// Only on the `listen` addresses.
    fn serves_time_to(&self, access: &Access, _: IpAddr, target: IpAddr) -> bool {
        access.listen.iter().any(|a| {
            a.parse::<IpAddr>()
                .is_ok_and(|a| a == target || a.is_unspecified())
        })
    }
    fn status_queries(&self) -> [&'static [&'static str]; 2] {
        [&["ntpctl", "-s", "peers"], &["ntpctl", "-s", "status"]]
    }
    fn parse_status(&self, peers: &Output, status: &Output) -> Result<(Vec<Peer>, Sync), String> {
        if peers.code != 0 {
            return Err(format!("ntpctl failed: {}", peers.stderr.trim()));
        }
        Ok((
            sync::parse_ntpctl_peers(&peers.stdout)?,
            sync::parse_ntpctl_status(&status.stdout)?,
        ))
    }
    fn lint(&self, lines: &[Directive], _version: Option<&str>) -> Vec<Finding> {
        lint_openntpd(lines)
    }
}

fn lint_openntpd(lines: &[(usize, Vec<&str>)]) -> Vec<Finding> {
    // `*`, or the unspecified address in any spelling (`0`, `::0`, ...).
    let everywhere = |addr: &str| {
        addr == "*"
            || parse_addr(addr).is_some_and(|ip| match ip {
                IpAddr::V4(v4) => v4.is_unspecified(),
                IpAddr::V6(v6) => {
                    v6.is_unspecified() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_unspecified())
                }
            })
    };
    lines
        .iter()
        .filter(|(_, w)| matches!(w.as_slice(), ["listen", "on", addr, ..] if everywhere(addr)))
        .map(|(n, w)| Finding {
            rule: Rule::OpenntpdListenAny,
            line: Some(*n),
            message: format!("`{}` listens on every address", w.join(" ")),
        })
        .collect()
}
