//! OpenNTPD (package `openntpd`). It listens nowhere without `listen on`
//! and has no mode 6/7.

use super::sync::{first_line, float, interval, Peer, Selection, Sync};
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
            parse_ntpctl_peers(&peers.stdout)?,
            parse_ntpctl_status(&status.stdout)?,
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

/// `ntpctl -s status`: comma-separated phrases such as
/// "4/4 peers valid, clock synced, stratum 3" or
/// "0/1 peers valid, clock unsynced, clock offset is 12.345ms".
pub(super) fn parse_ntpctl_status(stdout: &str) -> Result<Sync, String> {
    let (mut synced, mut stratum, mut offset_ms) = (None, None, None);
    for phrase in stdout.split([',', '\n']).map(str::trim) {
        if phrase == "clock synced" {
            synced = Some(true);
        } else if phrase == "clock unsynced" {
            synced = Some(false);
        } else if let Some(st) = phrase.strip_prefix("stratum ") {
            stratum = st.trim().parse().ok();
        } else if let Some(ms) = phrase.strip_prefix("clock offset is ") {
            offset_ms = ms.strip_suffix("ms").and_then(float);
        }
    }
    let Some(synchronised) = synced else {
        let said = first_line(stdout).unwrap_or("no output");
        return Err(format!("ntpctl -s status: no clock state in {said:?}"));
    };
    Ok(Sync {
        synchronised,
        stratum,
        offset_ms,
        refid: None,
        leap: None,
    })
}

/// `ntpctl -s peers`: a header, then per peer a description line
/// ("ADDRESS [from pool ]NAME") and an indented figures line
/// (" *  1 10  2   22s   31s        -0.612ms    11.048ms     0.533ms", or
/// "---- peer not valid ----" in place of the three times).
pub(super) fn parse_ntpctl_peers(stdout: &str) -> Result<Vec<Peer>, String> {
    let mut peers = Vec::new();
    let mut description: Option<&str> = None;
    for line in stdout.lines() {
        let text = line.trim();
        if text.is_empty()
            || text == "peer"
            || text.starts_with("wt ")
            || text == "no peers configured"
        {
            continue;
        }
        // Sensors (`-s all`) are local clocks, not peers.
        if text == "sensor" {
            break;
        }
        // Descriptions start in column 0, figures are indented.
        if !line.starts_with(char::is_whitespace) {
            if let Some(orphan) = description.replace(text) {
                return Err(format!("ntpctl -s peers: no figures for {orphan:?}"));
            }
            continue;
        }
        let Some(desc) = description.take() else {
            return Err(format!("ntpctl -s peers: figures without a peer: {line:?}"));
        };
        peers.push(ntpctl_peer(desc, text)?);
    }
    match description {
        Some(orphan) => Err(format!("ntpctl -s peers: no figures for {orphan:?}")),
        None => Ok(peers),
    }
}

fn ntpctl_peer(description: &str, figures: &str) -> Result<Peer, String> {
    let mut words = figures.split_whitespace().peekable();
    let synced = words.next_if_eq(&"*").is_some();
    let (Some(_weight), Some(_trust), Some(st), Some(_next), Some(poll)) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return Err(format!("ntpctl -s peers: short figures line {figures:?}"));
    };
    let valid = !figures.contains("peer not valid");
    let times: Vec<Option<f64>> = words
        .map(|w| w.strip_suffix("ms").and_then(float))
        .collect();
    let time = |i: usize| {
        if valid {
            times.get(i).copied().flatten()
        } else {
            None
        }
    };
    // Before DNS answers, the configured name is all ntpctl knows of a peer.
    let remote = match description.strip_prefix("not resolved") {
        Some(rest) => rest.split_whitespace().last(),
        None => description.split_whitespace().next(),
    };
    Ok(Peer {
        remote: remote.unwrap_or(description).to_string(),
        refid: None,
        stratum: st.parse().ok(),
        reach: None,
        poll_seconds: interval(poll),
        offset_ms: time(0),
        delay_ms: time(1),
        jitter_ms: time(2),
        selected: match (synced, valid) {
            (true, _) => Selection::SystemPeer,
            (false, true) => Selection::Candidate,
            (false, false) => Selection::Unusable,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemons::sync::tests::peer;
    use crate::daemons::sync::Selection;

    #[test]
    fn ntpctl_status() {
        let sync = parse_ntpctl_status("4/4 peers valid, clock synced, stratum 3\n").unwrap();
        assert_eq!(
            sync,
            Sync {
                synchronised: true,
                stratum: Some(3),
                offset_ms: None,
                refid: None,
                leap: None
            }
        );
        let sync = parse_ntpctl_status("0/1 peers valid, clock unsynced\n").unwrap();
        assert_eq!((sync.synchronised, sync.stratum), (false, None));
        let sync =
            parse_ntpctl_status("4/4 peers valid, clock unsynced, clock offset is 1048.342ms\n")
                .unwrap();
        assert_eq!((sync.synchronised, sync.offset_ms), (false, Some(1048.342)));
    }

    #[test]
    fn ntpctl_status_other_shapes() {
        // With `constraints from`, and with a sensor.
        let sync = parse_ntpctl_status(
            "1/1 peers valid, constraint offset -1s, clock synced, stratum 2\n",
        )
        .unwrap();
        assert_eq!((sync.synchronised, sync.stratum), (true, Some(2)));
        let sync =
            parse_ntpctl_status("2/2 peers valid, 1/1 sensors valid, clock synced, stratum 1\n")
                .unwrap();
        assert_eq!(sync.stratum, Some(1));
        // Nothing configured: two lines.
        let sync =
            parse_ntpctl_status("no peers and no sensors configured\nclock unsynced\n").unwrap();
        assert!(!sync.synchronised);
    }

    #[test]
    fn ntpctl_status_errors() {
        assert!(parse_ntpctl_status("").is_err());
        let err =
            parse_ntpctl_status("ntpctl: connect: /var/run/ntpd.sock: No such file or directory\n")
                .unwrap_err();
        assert!(err.contains("ntpd.sock"), "{err}");
    }

    #[test]
    fn ntpctl_peers_synced() {
        let out = concat!(
            "peer\n",
            "   wt tl st  next  poll          offset       delay      jitter\n",
            "162.159.200.1 from pool pool.ntp.org\n",
            " *  1 10  3   22s   31s        -0.612ms    11.048ms     0.533ms\n",
            "2606:4700:f1::123 from pool pool.ntp.org\n",
            "    1 10  3   16s   34s         0.371ms    27.604ms     1.211ms\n",
            "192.0.2.1 ntp.example.com\n",
            "    1  8  2    5s   30s         2.070ms     3.141ms     0.100ms\n",
        );
        let peers = parse_ntpctl_peers(out).unwrap();
        assert_eq!(
            peers[0],
            Peer {
                stratum: Some(3),
                poll_seconds: Some(31),
                offset_ms: Some(-0.612),
                delay_ms: Some(11.048),
                jitter_ms: Some(0.533),
                ..peer("162.159.200.1", Selection::SystemPeer)
            }
        );
        assert_eq!(
            (peers[1].remote.as_str(), peers[1].selected),
            ("2606:4700:f1::123", Selection::Candidate)
        );
        assert_eq!(
            (peers[2].remote.as_str(), peers[2].stratum),
            ("192.0.2.1", Some(2))
        );
    }

    #[test]
    fn ntpctl_peers_none_valid() {
        let out = concat!(
            "peer\n",
            "   wt tl st  next  poll          offset       delay      jitter\n",
            "162.159.200.1 from pool pool.ntp.org\n",
            "    1  2  -    5s   30s             ---- peer not valid ----\n",
            "not resolved ntp.example.com\n",
            "    1  2  -   14s   15s             ---- peer not valid ----\n",
        );
        let peers = parse_ntpctl_peers(out).unwrap();
        assert_eq!(
            peers,
            [
                Peer {
                    poll_seconds: Some(30),
                    ..peer("162.159.200.1", Selection::Unusable)
                },
                Peer {
                    poll_seconds: Some(15),
                    ..peer("ntp.example.com", Selection::Unusable)
                },
            ]
        );
    }

    #[test]
    fn ntpctl_peers_empty_and_malformed() {
        assert_eq!(parse_ntpctl_peers(""), Ok(vec![]));
        assert_eq!(parse_ntpctl_peers("no peers configured\n"), Ok(vec![]));
        let header = "peer\n   wt tl st  next  poll          offset       delay      jitter\n";
        assert!(
            parse_ntpctl_peers(&format!("{header}162.159.200.1 from pool pool.ntp.org\n")).is_err()
        );
        assert!(parse_ntpctl_peers(&format!(
            "{header}    1 10  3   16s   34s         0.371ms\n"
        ))
        .is_err());
        assert!(parse_ntpctl_peers(&format!("{header}192.0.2.1\n    1 10\n")).is_err());
    }
}
