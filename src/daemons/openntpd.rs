//! OpenNTPD (package `openntpd`). It listens nowhere without `listen on`
//! and has no mode 6/7.

use super::sync::{
    first_line, float, interval, same_host, Configured, Peer, Selection, Source, SourceAddress,
    SourceKind, SourceState, Sync,
};
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
    fn configured_sources(&self, lines: &[Directive]) -> Vec<Configured> {
        configured_sources(lines)
    }
    /// `ntpctl -s peers` names each peer as configured already.
    fn sources(
        &self,
        configured: &[Configured],
        listing: &Output,
        _asked: &[Output],
    ) -> Result<Vec<Source>, String> {
        if listing.code != 0 {
            return Err(format!("ntpctl failed: {}", listing.stderr.trim()));
        }
        Ok(sources(configured, &ntpctl_entries(&listing.stdout)?))
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

/// `server NAME` and `servers NAME` (every address the name gives: a pool).
fn configured_sources(lines: &[Directive]) -> Vec<Configured> {
    lines
        .iter()
        .filter_map(|(_, words)| {
            let kind = match words[0] {
                "server" => SourceKind::Server,
                "servers" => SourceKind::Pool,
                _ => return None,
            };
            Some(Configured {
                kind,
                name: words.get(1)?.to_string(),
            })
        })
        .collect()
}

/// One peer of `ntpctl -s peers`, with what its description line says.
#[derive(Debug, Clone, PartialEq)]
struct NtpctlEntry {
    /// `None`: "not resolved".
    address: Option<String>,
    /// The name as configured; `None` for a peer configured by address.
    name: Option<String>,
    /// From `servers` ("from pool").
    from_pool: bool,
    /// OpenNTPD's trust level: 2 when it starts, one more for each answer
    /// until the peer is valid.
    trust: Option<u8>,
    peer: Peer,
}

/// `ntpctl -s peers`: a header, then per peer a description line
/// ("ADDRESS [from pool ]NAME", "not resolved [from pool ]NAME", or the
/// address alone) and an indented figures line
/// (" *  1 10  2   22s   31s        -0.612ms    11.048ms     0.533ms", or
/// "---- peer not valid ----" in place of the three times).
pub(super) fn parse_ntpctl_peers(stdout: &str) -> Result<Vec<Peer>, String> {
    Ok(ntpctl_entries(stdout)?
        .into_iter()
        .map(|e| e.peer)
        .collect())
}

fn ntpctl_entries(stdout: &str) -> Result<Vec<NtpctlEntry>, String> {
    let mut entries = Vec::new();
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
        entries.push(ntpctl_entry(desc, text)?);
    }
    match description {
        Some(orphan) => Err(format!("ntpctl -s peers: no figures for {orphan:?}")),
        None => Ok(entries),
    }
}

fn ntpctl_entry(description: &str, figures: &str) -> Result<NtpctlEntry, String> {
    let mut words = figures.split_whitespace().peekable();
    let synced = words.next_if_eq(&"*").is_some();
    let (Some(_weight), Some(trust), Some(st), Some(_next), Some(poll)) = (
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
    let (address, rest) = match description.strip_prefix("not resolved") {
        Some(rest) => (None, rest),
        None => match description.split_once(' ') {
            Some((address, rest)) => (Some(address), rest),
            None => (Some(description), ""),
        },
    };
    let rest = rest.trim();
    let (from_pool, name) = match rest.strip_prefix("from pool ") {
        Some(name) => (true, name.trim()),
        None => (false, rest),
    };
    let name = (!name.is_empty()).then(|| name.to_string());
    let remote = address.map(str::to_string).or_else(|| name.clone());
    Ok(NtpctlEntry {
        address: address.map(str::to_string),
        name,
        from_pool,
        trust: trust.parse().ok(),
        peer: Peer {
            remote: remote.unwrap_or_else(|| description.to_string()),
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
        },
    })
}

/// OpenNTPD's starting trust level: a peer above it has answered.
const TRUSTLEVEL_PATHETIC: u8 = 2;

/// Ties each configured source to ntpctl's peers by the name it prints.
/// OpenNTPD keeps no reach register and no authentication: a valid peer is
/// selected (every valid peer counts), one that is not valid is reachable
/// once its trust level rose above the start (it answered), else
/// unreachable.
fn sources(configured: &[Configured], entries: &[NtpctlEntry]) -> Vec<Source> {
    let mut claimed = vec![false; entries.len()];
    configured
        .iter()
        .map(|c| {
            let pool = c.kind == SourceKind::Pool;
            let mut found = Vec::new();
            for (i, e) in entries.iter().enumerate() {
                let named = match (&e.name, &e.address) {
                    (Some(name), _) => same_host(&c.name, name),
                    (None, Some(address)) => same_host(&c.name, address),
                    (None, None) => false,
                };
                if claimed[i] || e.from_pool != pool || !named {
                    continue;
                }
                claimed[i] = true;
                if let Some(address) = &e.address {
                    let state = match e.peer.selected {
                        Selection::SystemPeer | Selection::Candidate => SourceState::Selected,
                        _ if e.trust.is_some_and(|t| t > TRUSTLEVEL_PATHETIC) => {
                            SourceState::Reachable
                        }
                        _ => SourceState::Unreachable,
                    };
                    found.push(SourceAddress {
                        address: address.clone(),
                        state,
                        reach: None,
                        authenticated: false,
                        nts: false,
                        nts_failure: None,
                    });
                }
                if !pool {
                    break;
                }
            }
            Source::new(c, found)
        })
        .collect()
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

    // Recorded on Debian 11, openntpd 6.2p3, with /etc/hosts giving
    // one.ntp.test 127.0.0.1, a-very-long-server-name.ntp.test 127.0.0.2
    // and pool.ntp.test 127.0.0.3 and .4: a peer configured by address has
    // no name after it (a trailing space), `servers` are "from pool".
    #[test]
    fn ntpctl_sources_by_name_as_configured_unresolved_ones_included() {
        let config =
            "server 127.0.0.1\nserver one.ntp.test\nserver a-very-long-server-name.ntp.test\n\
                      server unresolvable.invalid\nservers pool.ntp.test\nservers nopool.invalid\n";
        let peers = concat!(
            "peer\n",
            "   wt tl st  next  poll          offset       delay      jitter\n",
            "127.0.0.1 \n",
            "    1  2  - 3140s 3155s             ---- peer not valid ----\n",
            "127.0.0.1 one.ntp.test\n",
            "    1  2  - 3181s 3196s             ---- peer not valid ----\n",
            "127.0.0.2 a-very-long-server-name.ntp.test\n",
            "    1  2  - 3276s 3291s             ---- peer not valid ----\n",
            "not resolved unresolvable.invalid\n",
            "    1  2  -   15s   15s             ---- peer not valid ----\n",
            "not resolved from pool nopool.invalid\n",
            "    1  2  -   15s   15s             ---- peer not valid ----\n",
            "127.0.0.4 from pool pool.ntp.test\n",
            "    1  2  - 3105s 3120s             ---- peer not valid ----\n",
            "127.0.0.3 from pool pool.ntp.test\n",
            "    1  2  - 3229s 3244s             ---- peer not valid ----\n",
        );
        let lines: Vec<Directive> = config
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.split_whitespace().collect()))
            .collect();
        let listing = Output {
            code: 0,
            stdout: peers.into(),
            stderr: String::new(),
            elapsed: Default::default(),
        };
        let sources = Openntpd
            .sources(&Openntpd.configured_sources(&lines), &listing, &[])
            .unwrap();
        let summary: Vec<(SourceKind, &str, SourceState, Vec<&str>)> = sources
            .iter()
            .map(|s| {
                let addresses = s.addresses.iter().map(|a| a.address.as_str()).collect();
                (s.kind, s.name.as_str(), s.state, addresses)
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    SourceKind::Server,
                    "127.0.0.1",
                    SourceState::Unreachable,
                    vec!["127.0.0.1"]
                ),
                (
                    SourceKind::Server,
                    "one.ntp.test",
                    SourceState::Unreachable,
                    vec!["127.0.0.1"]
                ),
                (
                    SourceKind::Server,
                    "a-very-long-server-name.ntp.test",
                    SourceState::Unreachable,
                    vec!["127.0.0.2"]
                ),
                (
                    SourceKind::Server,
                    "unresolvable.invalid",
                    SourceState::Unresolved,
                    vec![]
                ),
                (
                    SourceKind::Pool,
                    "pool.ntp.test",
                    SourceState::Unreachable,
                    vec!["127.0.0.4", "127.0.0.3"]
                ),
                (
                    SourceKind::Pool,
                    "nopool.invalid",
                    SourceState::Unresolved,
                    vec![]
                ),
            ]
        );
        assert_eq!(
            sources[0].addresses[0].reach, None,
            "OpenNTPD keeps no reach register"
        );
        // The peer list is what it was.
        let remotes: Vec<String> = parse_ntpctl_peers(peers)
            .unwrap()
            .into_iter()
            .map(|p| p.remote)
            .collect();
        assert_eq!(
            remotes,
            [
                "127.0.0.1",
                "127.0.0.1",
                "127.0.0.2",
                "unresolvable.invalid",
                "nopool.invalid",
                "127.0.0.4",
                "127.0.0.3"
            ]
        );
    }

    #[test]
    fn ntpctl_valid_peers_are_selected_and_answering_ones_reachable() {
        let entries = ntpctl_entries(concat!(
            "peer\n",
            "   wt tl st  next  poll          offset       delay      jitter\n",
            "162.159.200.1 from pool pool.ntp.org\n",
            " *  1 10  3   22s   31s        -0.612ms    11.048ms     0.533ms\n",
            "2606:4700:f1::123 from pool pool.ntp.org\n",
            "    1  4  3   16s   34s             ---- peer not valid ----\n",
            "192.0.2.1 ntp.example.com\n",
            "    1  8  2    5s   30s         2.070ms     3.141ms     0.100ms\n",
        ))
        .unwrap();
        let c = |kind, name: &str| Configured {
            kind,
            name: name.into(),
        };
        let sources = sources(
            &[
                c(SourceKind::Pool, "pool.ntp.org"),
                c(SourceKind::Server, "ntp.example.com"),
            ],
            &entries,
        );
        let states: Vec<(&str, SourceState)> = sources[0]
            .addresses
            .iter()
            .map(|a| (a.address.as_str(), a.state))
            .collect();
        assert_eq!(
            states,
            [
                ("162.159.200.1", SourceState::Selected),
                ("2606:4700:f1::123", SourceState::Reachable)
            ]
        );
        assert_eq!(sources[1].state, SourceState::Selected);
        assert!(!sources[1].authenticated);
    }

    #[test]
    fn no_peer_description_panics() {
        for description in [
            "not resolved",
            "not resolved from pool",
            "from pool",
            "a b c d",
            "é",
        ] {
            let text =
                format!("{description}\n    1  2  -   15s   15s   ---- peer not valid ----\n");
            let entries = ntpctl_entries(&text).unwrap();
            let c = Configured {
                kind: SourceKind::Pool,
                name: description.into(),
            };
            let _ = sources(&[c], &entries);
        }
    }
}
