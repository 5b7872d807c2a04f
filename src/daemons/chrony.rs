//! chrony (package `chrony`). It serves nobody without `allow`, never
//! speaks mode 6/7, and has a command port (UDP 323) of its own.

use super::sync::{self, Peer, Sync};
use super::{
    bounded_check, Access, AnswerProbe, DaemonName, Directive, Finding, Flavor, TimeDaemon, Verdict,
};
use crate::names::Rule;
use crate::net::{chrony_subnet, network_contains, Family, Net};
use crate::process::Output;
use crate::version;
use std::cmp::Ordering;
use std::net::IpAddr;

pub(super) struct Chrony;

impl Flavor {
    pub const CHRONY: Flavor = Flavor(&Chrony);
}

impl DaemonName {
    pub const CHRONY: DaemonName = DaemonName("chrony");
}

impl TimeDaemon for Chrony {
    fn id(&self) -> &'static str {
        "chrony"
    }
    fn title(&self) -> &'static str {
        "chrony"
    }
    fn package_name(&self) -> &'static str {
        "chrony"
    }
    fn config_path(&self) -> &'static str {
        "/etc/chrony/chrony.conf"
    }
    fn unit_name(&self) -> &'static str {
        "chrony.service"
    }
    fn template(&self) -> &'static str {
        "chrony.conf.j2"
    }
    fn template_text(&self) -> &'static str {
        include_str!("../../templates/chrony.conf.j2")
    }
    fn requested_as(&self) -> &'static [&'static str] {
        &["chrony"]
    }
    fn nts_since(&self) -> Option<&'static str> {
        Some("4.0")
    }
    /// `chronyd -p` appeared in 4.0.
    fn check_unavailable(&self, version: &str) -> Option<String> {
        (version::compare(version, "4.0") == Ordering::Less).then(|| {
            format!("chrony {version} cannot check a config (no -p before 4.0): the restart's health check decides")
        })
    }
    /// `chronyd -p` exits 1 with "Fatal error : ..." on a bad config.
    fn check_config(&self, file: &str) -> anyhow::Result<Verdict> {
        let out = bounded_check(&["chronyd", "-p", "-f", file]).output()?;
        let text = format!("{}{}", out.stdout, out.stderr);
        Ok(if out.code != 0 {
            Verdict::Rejected(text)
        } else {
            Verdict::Accepted
        })
    }
    fn answer_probe(&self) -> AnswerProbe {
        AnswerProbe::Tool(&["chronyc", "-n", "tracking"])
    }
    /// Only the `clients` networks (`allow`).
    fn serves_time_to(&self, access: &Access, from: IpAddr, _: IpAddr) -> bool {
        access.clients.iter().any(|net| network_contains(net, from))
    }
    fn status_queries(&self) -> [&'static [&'static str]; 2] {
        [
            &["chronyc", "-n", "-c", "sources"],
            &["chronyc", "-n", "-c", "tracking"],
        ]
    }
    fn parse_status(
        &self,
        sources: &Output,
        tracking: &Output,
    ) -> Result<(Vec<Peer>, Sync), String> {
        if sources.code != 0 {
            return Err(format!("chronyc failed: {}", sources.stderr.trim()));
        }
        Ok((
            sync::parse_chronyc_sources(&sources.stdout)?,
            sync::parse_chronyc_tracking(&tracking.stdout)?,
        ))
    }
    fn comment_marks(&self) -> &'static [char] {
        &['!', ';', '%']
    }
    fn lint(&self, lines: &[Directive], _version: Option<&str>) -> Vec<Finding> {
        lint_chrony(lines)
    }
    /// chrony matches directive names in any case; `sourcedir` reads time
    /// sources only, no access control.
    fn includes(&self, directive: &str) -> bool {
        directive.eq_ignore_ascii_case("include") || directive.eq_ignore_ascii_case("confdir")
    }
    fn conflicts(&self, lines: &[Directive]) -> Vec<String> {
        conflicts(lines)
    }
}

fn lint_chrony(lines: &[(usize, Vec<&str>)]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (n, words) in lines {
        let (directive, args) = words.split_first().expect("directives have a word");
        // chrony compares directive names with strcasecmp: `ALLOW` is `allow`.
        match directive.to_ascii_lowercase().as_str() {
            "allow" => {
                let everything = match args {
                    [] | ["all"] => true,
                    _ => args
                        .iter()
                        .any(|a| chrony_subnet(a).is_some_and(Net::everything)),
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
                let loopback = |s: &&str| chrony_subnet(s).is_some_and(Net::is_loopback);
                if subnets.is_empty() || !subnets.iter().all(loopback) {
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
                let local = args.first().is_some_and(|a| {
                    a.starts_with('/')
                        || a.parse::<IpAddr>()
                            .ok()
                            .and_then(|ip| Net::new(ip, if ip.is_ipv4() { 32 } else { 128 }))
                            .is_some_and(Net::is_loopback)
                });
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

/// chrony keeps only the last `bindaddress` of each address family: more
/// than one would silently drop all but the last. One message per family.
fn conflicts(lines: &[Directive]) -> Vec<String> {
    let mut out = Vec::new();
    for family in [Family::V4, Family::V6] {
        let binds: Vec<(usize, &str)> = lines
            .iter()
            .filter(|(_, w)| w[0].eq_ignore_ascii_case("bindaddress"))
            .filter_map(|(n, w)| {
                let ip = w.get(1)?.parse::<IpAddr>().ok()?;
                let f = if ip.is_ipv4() { Family::V4 } else { Family::V6 };
                (f == family).then_some((*n, w[1]))
            })
            .collect();
        if let [.., (_, last)] = binds.as_slice() {
            if binds.len() > 1 {
                let list: Vec<String> = binds
                    .iter()
                    .map(|(n, a)| format!("{a} (line {n})"))
                    .collect();
                out.push(format!(
                    "{} `bindaddress` lines for {}: {}; chrony keeps only the last one per address family, so it \
                     would listen on {last} alone: give `listen` at most one IPv4 and one IPv6 address",
                    binds.len(),
                    family.name(),
                    list.join(", ")
                ));
            }
        }
    }
    out
}
