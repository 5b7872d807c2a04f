//! What classic ntpd and NTPsec share: the restrict lines and their lint,
//! ntpq for status, and time service to anyone under the recipe's
//! rate-limited default entry.

use super::sync::{first_line, float, interval, is_ntpq_header, octal, Peer, Selection, Sync};
use super::{Directive, Finding};
use crate::names::Rule;
use crate::net::{ntp_net, Family, Net, PRIVATE};
use crate::process::Output;

pub(super) const STATUS_QUERIES: [&[&str]; 2] = [
    &["ntpq", "-pn"],
    &["ntpq", "-c", "rv 0 leap,stratum,offset,refid"],
];

/// ntpq exits 0 even when it reached no daemon: its text decides.
pub(super) fn parse_status(sources: &Output, sync: &Output) -> Result<(Vec<Peer>, Sync), String> {
    Ok((
        parse_ntpq_peers(&sources.stdout, &sources.stderr)?,
        parse_ntpq_rv(&sync.stdout)?,
    ))
}

/// ntpq's config reads other files only through `includefile`.
pub(super) fn includes(directive: &str) -> bool {
    directive == "includefile"
}

/// What a restrict line applies to.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// The default entry of these families.
    Default(Vec<Family>),
    /// A host or network entry.
    Net(Net),
    /// A hostname, `source`, or an address the lint cannot read.
    Other,
}

/// A `restrict` line, or an `unrestrict` one (NTPsec: turns the flags off,
/// or without flags removes the entry).
struct RestrictLine<'a> {
    line: usize,
    unrestrict: bool,
    target: Target,
    flags: Vec<&'a str>,
}

/// `[un]restrict [-4|-6] ADDRESS[/PREFIX] [mask MASK] FLAGS...`; `None` for
/// other directives. `default`, and any address with a zero mask or prefix,
/// is a default entry.
fn restrict_line<'a>(line: usize, words: &[&'a str]) -> Option<RestrictLine<'a>> {
    let (first, rest) = words.split_first()?;
    let unrestrict = match *first {
        "restrict" => false,
        "unrestrict" => true,
        _ => return None,
    };
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
    let target = match (*address, family) {
        // A family-less `restrict default` covers both (ntpd 4.2.6+, NTPsec).
        ("default", None) => Target::Default(vec![Family::V4, Family::V6]),
        ("default", Some(f)) => Target::Default(vec![f]),
        _ => match ntp_net(address, mask) {
            Some(n) if n.everything() => Target::Default(vec![n.family]),
            Some(n) => Target::Net(n),
            None => Target::Other,
        },
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
    Some(RestrictLine {
        line,
        unrestrict,
        target,
        flags,
    })
}

/// The default entry of one family after every line, in order: where it
/// starts, its flags, and the `unrestrict` line that last turned off each
/// flag it no longer has.
struct DefaultFlags<'a> {
    line: usize,
    flags: Vec<&'a str>,
    removed: Vec<(&'a str, usize)>,
}

fn default_flags<'a>(entries: &[RestrictLine<'a>], family: Family) -> Option<DefaultFlags<'a>> {
    let mut state: Option<DefaultFlags> = None;
    for e in entries {
        let Target::Default(families) = &e.target else {
            continue;
        };
        if !families.contains(&family) {
            continue;
        }
        if e.unrestrict {
            // Without flags it does nothing: the default entry stays.
            if let Some(st) = &mut state {
                for f in &e.flags {
                    if st.flags.contains(f) {
                        st.flags.retain(|x| x != f);
                        st.removed.retain(|(r, _)| r != f);
                        st.removed.push((f, e.line));
                    }
                }
            }
        } else {
            let st = state.get_or_insert(DefaultFlags {
                line: e.line,
                flags: Vec::new(),
                removed: Vec::new(),
            });
            st.flags.extend(&e.flags);
            st.removed.retain(|(r, _)| !e.flags.contains(r));
        }
    }
    state
}

/// Host and network entries (never the default) with the flags left after
/// every line, and the `unrestrict` line that last took flags off.
fn network_entries<'a>(
    entries: &[RestrictLine<'a>],
) -> Vec<(Net, usize, Vec<&'a str>, Option<usize>)> {
    let mut nets: Vec<(Net, usize, Vec<&str>, Option<usize>)> = Vec::new();
    for e in entries {
        let Target::Net(net) = e.target else {
            continue;
        };
        let pos = nets.iter().position(|n| n.0 == net);
        match (e.unrestrict, pos) {
            (true, None) => {}
            (true, Some(i)) if e.flags.is_empty() => {
                nets.remove(i);
            }
            (true, Some(i)) => {
                nets[i].2.retain(|f| !e.flags.contains(f));
                nets[i].3 = Some(e.line);
            }
            (false, Some(i)) => nets[i].2.extend(&e.flags),
            (false, None) => nets.push((net, e.line, e.flags.clone(), None)),
        }
    }
    nets
}

/// The restrict lines' rules, which classic ntpd and NTPsec share.
pub(super) fn lint_restrict(lines: &[Directive]) -> Vec<Finding> {
    let entries: Vec<RestrictLine> = lines
        .iter()
        .filter_map(|(n, w)| restrict_line(*n, w))
        .collect();
    let mut findings = Vec::new();
    // ntpd ORs the flags of lines for the same address into one entry, so a
    // family's default is the union of every line that covers it, less the
    // flags an `unrestrict` line turns off after them (`default_flags`).
    let mut missing: Vec<(Rule, Family, Option<usize>, String)> = Vec::new();
    for family in [Family::V4, Family::V6] {
        let Some(DefaultFlags {
            line,
            flags,
            removed,
        }) = default_flags(&entries, family)
        else {
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
            if has(flag) {
                continue;
            }
            let unrestricted = removed.iter().find(|(f, _)| *f == flag).map(|r| r.1);
            let why = match unrestricted {
                Some(_) => {
                    format!("an `unrestrict` line turns off {flag} in the default restrict entry")
                }
                None => format!("the default restrict entry has no {flag}"),
            };
            missing.push((rule, family, Some(unrestricted.unwrap_or(line)), why));
        }
        if flags.contains(&"kod") && !flags.contains(&"limited") {
            let unrestricted = removed.iter().find(|(f, _)| *f == "limited").map(|r| r.1);
            missing.push((
                Rule::KodWithoutLimited,
                family,
                Some(unrestricted.unwrap_or(line)),
                "the default restrict entry has kod without limited".into(),
            ));
        }
    }
    // The most specific entry decides, so a network entry without noquery
    // re-opens queries for every host in it, whatever the default says.
    for (net, line, flags, unrestricted) in network_entries(&entries) {
        let closed = flags.contains(&"noquery") || flags.contains(&"ignore");
        if closed || net.single_host() || net.within(&PRIVATE) {
            continue;
        }
        let message = match unrestricted {
            Some(_) => format!(
                "an `unrestrict` line leaves the restrict entry for {net}, a public network, without noquery (or ignore)"
            ),
            None => format!("the restrict entry for {net}, a public network, has no noquery (or ignore)"),
        };
        findings.push(Finding {
            rule: Rule::NoqueryMissingNetwork,
            line: Some(unrestricted.unwrap_or(line)),
            message,
        });
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

    findings
}

/// `ntpq -pn`, classic ntpd 4.2.x and NTPsec 1.x (whose columns are wider and
/// whose name column grows with the terminal). Columns are split on
/// whitespace, so any of these widths parses.
///
/// No header: `Ok(vec![])` for "No association ID's returned" (classic,
/// stderr) / "No association IDs returned" (NTPsec, stdout); otherwise an
/// error naming what ntpq said ("ntpq: read: Connection refused", "***Socket
/// error; probably ntpd is not running", "***Request timed out", ...).
pub(super) fn parse_ntpq_peers(stdout: &str, stderr: &str) -> Result<Vec<Peer>, String> {
    let mut lines = stdout.lines();
    if !lines.by_ref().any(is_ntpq_header) {
        if [stdout, stderr]
            .iter()
            .any(|s| s.contains("No association ID"))
        {
            return Ok(Vec::new());
        }
        let said = first_line(stderr).or_else(|| first_line(stdout));
        return Err(format!("ntpq -p: {}", said.unwrap_or("no output")));
    }

    let mut peers = Vec::new();
    // With a wide remote (`ntpq -w`, NTPsec's wideremote) the name gets a line
    // of its own and the other columns follow on the next one.
    let mut wrapped: Option<(char, &str)> = None;
    for line in lines {
        if line.trim().is_empty() || line.starts_with('=') {
            continue;
        }
        let (tally, fields) = match wrapped.take() {
            Some((tally, remote)) => {
                let fields = std::iter::once(remote).chain(line.split_whitespace());
                (tally, fields.collect::<Vec<_>>())
            }
            None => {
                let mut chars = line.chars();
                let tally = chars.next().unwrap_or(' ');
                let fields: Vec<&str> = chars.as_str().split_whitespace().collect();
                if let [remote] = fields[..] {
                    wrapped = Some((tally, remote));
                    continue;
                }
                (tally, fields)
            }
        };
        let [remote, refid, st, kind, _when, poll, reach, delay, offset, jitter] = fields[..]
        else {
            return Err(format!("ntpq -p: unexpected peer line {line:?}"));
        };
        let selected = if refid == ".POOL." || kind == "p" {
            Selection::Pool
        } else {
            match tally {
                '*' | 'o' => Selection::SystemPeer,
                '+' | '#' => Selection::Candidate,
                '-' | '.' => Selection::Outlier,
                'x' => Selection::Falseticker,
                ' ' => Selection::Unusable,
                _ => Selection::Unknown,
            }
        };
        peers.push(Peer {
            remote: remote.to_string(),
            refid: Some(refid.to_string()),
            stratum: st.parse().ok(),
            reach: octal(reach),
            poll_seconds: interval(poll),
            offset_ms: float(offset),
            delay_ms: float(delay),
            jitter_ms: float(jitter),
            selected,
        });
    }
    match wrapped {
        Some((_, remote)) => Err(format!("ntpq -p: no columns after remote {remote:?}")),
        None => Ok(peers),
    }
}

/// `ntpq -c "rv 0 leap,stratum,offset,refid"`: `name=value` pairs separated by
/// commas, wrapped over lines at the terminal width, possibly after an
/// `associd=0 status=...` line. `leap=11` or `stratum=16` is unsynchronised.
pub(super) fn parse_ntpq_rv(stdout: &str) -> Result<Sync, String> {
    let (mut leap, mut stratum, mut offset_ms, mut refid) = (None, None, None, None);
    let mut saw_stratum = false;
    // Splitting items on whitespace too keeps `associd=0 status=0615 leap_none`
    // from being read as a variable called "associd" with a long value.
    for word in stdout.split(|c: char| c == ',' || c.is_whitespace()) {
        let Some((name, value)) = word.split_once('=') else {
            continue;
        };
        let value = value.trim_matches('"');
        match name {
            "leap" => leap = Some(value.to_string()),
            "stratum" => {
                saw_stratum = true;
                stratum = value.parse::<u8>().ok();
            }
            "offset" => offset_ms = float(value),
            "refid" if !value.is_empty() => refid = Some(value.to_string()),
            _ => {}
        }
    }
    if leap.is_none() && !saw_stratum {
        let said = first_line(stdout).unwrap_or("no output");
        return Err(format!("ntpq rv: no leap or stratum in {said:?}"));
    }
    let synchronised = leap.as_deref() != Some("11") && !matches!(stratum, Some(16..));
    Ok(Sync {
        synchronised,
        stratum,
        offset_ms,
        refid,
        leap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemons::sync::tests::{peer, selections};
    use crate::daemons::sync::Selection;

    // Debian 11, ntp 1:4.2.8p15+dfsg-1: pools (names cut to 15 columns), a
    // GPS stratum 1, an IPv6 server, every tally code, a dead server.
    const NTPQ_CLASSIC: &str = concat!(
        "     remote           refid      st t when poll reach   delay   offset  jitter\n",
        "==============================================================================\n",
        " 0.debian.pool.n .POOL.          16 p    -   64    0    0.000    0.000   0.000\n",
        " ntp.ubuntu.com  .POOL.          16 p    -   64    0    0.000    0.000   0.000\n",
        "*198.51.100.7    .GPS.            1 u   33   64  377    1.012   -0.087   0.044\n",
        "+2001:db8::123   203.0.113.17     2 u   28   64  377   15.210    0.108   0.094\n",
        "-192.0.2.10      192.0.2.200      2 u  611 1024  377    1.047    0.337   0.201\n",
        "x203.0.113.50    198.51.100.99    3 u   45   64  377   30.331  215.734   3.012\n",
        "#192.0.2.20      192.0.2.200      2 u   40   64   17    2.101    0.412   0.310\n",
        ".192.0.2.30      192.0.2.200      2 u   12   64    1    9.870    1.204   0.530\n",
        "o127.127.22.0    .PPS.            0 l   12   16  377    0.000    0.002   0.004\n",
        " 2001:db8:85a3:: .INIT.          16 u    - 1024    0    0.000    0.000   0.000\n",
    );

    #[test]
    fn ntpq_classic_peers() {
        let peers = parse_ntpq_peers(NTPQ_CLASSIC, "").unwrap();
        let summary = selections(&peers);
        assert_eq!(
            summary,
            [
                ("0.debian.pool.n", Selection::Pool),
                ("ntp.ubuntu.com", Selection::Pool),
                ("198.51.100.7", Selection::SystemPeer),
                ("2001:db8::123", Selection::Candidate),
                ("192.0.2.10", Selection::Outlier),
                ("203.0.113.50", Selection::Falseticker),
                ("192.0.2.20", Selection::Candidate),
                ("192.0.2.30", Selection::Outlier),
                ("127.127.22.0", Selection::SystemPeer),
                ("2001:db8:85a3::", Selection::Unusable),
            ]
        );
        assert_eq!(
            peers[2],
            Peer {
                refid: Some(".GPS.".into()),
                stratum: Some(1),
                reach: Some(255),
                poll_seconds: Some(64),
                offset_ms: Some(-0.087),
                delay_ms: Some(1.012),
                jitter_ms: Some(0.044),
                ..peer("198.51.100.7", Selection::SystemPeer)
            }
        );
        let pool = &peers[0];
        assert_eq!(
            (pool.refid.as_deref(), pool.stratum, pool.reach),
            (Some(".POOL."), Some(16), Some(0))
        );
        assert_eq!(peers[6].reach, Some(0o17));
        assert_eq!(peers[7].reach, Some(1));
        assert_eq!(peers[4].poll_seconds, Some(1024));
        let dead = &peers[9];
        assert_eq!(
            (dead.refid.as_deref(), dead.stratum, dead.reach),
            (Some(".INIT."), Some(16), Some(0))
        );
    }

    // Debian 12, ntpsec 1.2.2, stdout not a terminal: 15-column names, an
    // extra space before "jitter", four decimals, NTS cookie count ("8") in
    // the type column, `17m` intervals.
    const NTPQ_NTPSEC: &str = concat!(
        "     remote           refid      st t when poll reach   delay   offset   jitter\n",
        "===============================================================================\n",
        " 0.debian.pool.n .POOL.          16 p    -  256    0   0.0000   0.0000   0.0001\n",
        "*162.159.200.1   10.20.8.4        3 8   18   64  377  12.3456  -0.2345   0.4567\n",
        "+2a01:4f8:c2c:2b 192.53.103.108   2 u  17m  17m  377  24.6260  -0.4543   0.5133\n",
        " 192.0.2.99      .INIT.          16 u    -   64    0   0.0000   0.0000   0.0000\n",
    );

    #[test]
    fn ntpq_ntpsec_peers() {
        let peers = parse_ntpq_peers(NTPQ_NTPSEC, "").unwrap();
        assert_eq!(peers.len(), 4);
        assert_eq!(
            (peers[0].remote.as_str(), peers[0].selected),
            ("0.debian.pool.n", Selection::Pool)
        );
        assert_eq!(peers[0].poll_seconds, Some(256));
        assert_eq!(
            peers[1],
            Peer {
                refid: Some("10.20.8.4".into()),
                stratum: Some(3),
                reach: Some(255),
                poll_seconds: Some(64),
                offset_ms: Some(-0.2345),
                delay_ms: Some(12.3456),
                jitter_ms: Some(0.4567),
                ..peer("162.159.200.1", Selection::SystemPeer)
            }
        );
        assert_eq!(peers[2].remote, "2a01:4f8:c2c:2b");
        assert_eq!(peers[2].poll_seconds, Some(17 * 60));
        assert_eq!(
            (peers[3].selected, peers[3].stratum),
            (Selection::Unusable, Some(16))
        );
    }

    // The same on a terminal 104+ columns wide: NTPsec widens the name column
    // to 39 and pads the header to match.
    #[test]
    fn ntpq_ntpsec_wide_terminal() {
        let out = concat!(
            "     remote                                   refid      st t when poll reach   delay   offset   jitter\n",
            "=======================================================================================================\n",
            " 0.debian.pool.ntp.org                   .POOL.          16 p    -  256    0   0.0000   0.0000   0.0001\n",
            "*162.159.200.1                           10.20.8.4        3 8   18   64  377  12.3456  -0.2345   0.4567\n",
            "+2a01:4f8:c2c:2b57::1                    192.53.103.108   2 u  17m  17m  377  24.6260  -0.4543   0.5133\n",
        );
        let peers = parse_ntpq_peers(out, "").unwrap();
        let remotes: Vec<&str> = peers.iter().map(|p| p.remote.as_str()).collect();
        assert_eq!(
            remotes,
            [
                "0.debian.pool.ntp.org",
                "162.159.200.1",
                "2a01:4f8:c2c:2b57::1"
            ]
        );
        assert_eq!(peers[2].offset_ms, Some(-0.4543));
    }

    // `ntpq -pw` / NTPsec's wideremote: a long name gets its own line.
    #[test]
    fn ntpq_wide_remote_on_its_own_line() {
        let out = concat!(
            "     remote           refid      st t when poll reach   delay   offset   jitter\n",
            "===============================================================================\n",
            "+2a01:4f8:c2c:2b57::1\n",
            "                 192.53.103.108   2 u   17   64  377  24.6260  -0.4543   0.5133\n",
            "*162.159.200.1   10.20.8.4        3 u   18   64  377  12.3456  -0.2345   0.4567\n",
        );
        let peers = parse_ntpq_peers(out, "").unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(
            (peers[0].remote.as_str(), peers[0].selected),
            ("2a01:4f8:c2c:2b57::1", Selection::Candidate)
        );
        assert_eq!(
            (peers[0].refid.as_deref(), peers[0].stratum),
            (Some("192.53.103.108"), Some(2))
        );
        assert_eq!(peers[1].selected, Selection::SystemPeer);
    }

    #[test]
    fn ntpq_daemon_not_running_is_an_error_even_with_exit_0() {
        let err = parse_ntpq_peers("", "ntpq: read: Connection refused\n").unwrap_err();
        assert!(err.contains("ntpq: read: Connection refused"), "{err}");
        let err =
            parse_ntpq_peers("", "***Socket error; probably ntpd is not running\n").unwrap_err();
        assert!(err.contains("probably ntpd is not running"), "{err}");
        // `restrict ... noquery` on localhost: the query just times out.
        let err = parse_ntpq_peers(
            "",
            "localhost: timed out, nothing received\n***Request timed out\n",
        )
        .unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        assert!(parse_ntpq_peers("", "").is_err());
    }

    #[test]
    fn ntpq_no_associations_is_an_empty_list() {
        // Classic says it on stderr, NTPsec on stdout (and drops the apostrophe).
        assert_eq!(
            parse_ntpq_peers("", "No association ID's returned\n"),
            Ok(vec![])
        );
        assert_eq!(
            parse_ntpq_peers("No association IDs returned\n", ""),
            Ok(vec![])
        );
    }

    #[test]
    fn ntpq_malformed_peer_lines_are_errors() {
        let header = concat!(
            "     remote           refid      st t when poll reach   delay   offset  jitter\n",
            "==============================================================================\n",
        );
        let truncated = format!("{header}*198.51.100.7    .GPS.            1 u   33\n");
        assert!(parse_ntpq_peers(&truncated, "")
            .unwrap_err()
            .contains("198.51.100.7"));
        let dangling = format!("{header}+2a01:4f8:c2c:2b57::1\n");
        assert!(parse_ntpq_peers(&dangling, "").is_err());
        assert_eq!(parse_ntpq_peers(header, ""), Ok(vec![]));
    }

    #[test]
    fn ntpq_rv_synchronised() {
        let sync =
            parse_ntpq_rv("leap=00, stratum=2, offset=-0.123456, refid=192.0.2.1\n").unwrap();
        assert_eq!(
            sync,
            Sync {
                synchronised: true,
                stratum: Some(2),
                offset_ms: Some(-0.123456),
                refid: Some("192.0.2.1".into()),
                leap: Some("00".into()),
            }
        );
    }

    #[test]
    fn ntpq_rv_with_status_line_and_wrapping() {
        let out = concat!(
            "associd=0 status=0615 leap_none, sync_ntp, 1 event, clock_sync,\n",
            "leap=00, stratum=3,\n",
            "offset=+0.291, refid=GPS\n",
        );
        let sync = parse_ntpq_rv(out).unwrap();
        assert!(sync.synchronised);
        assert_eq!((sync.stratum, sync.offset_ms), (Some(3), Some(0.291)));
        assert_eq!(
            (sync.refid.as_deref(), sync.leap.as_deref()),
            (Some("GPS"), Some("00"))
        );
    }

    #[test]
    fn ntpq_rv_unsynchronised() {
        // Just after start: alarm leap bits, stratum 16, refid INIT.
        let sync = parse_ntpq_rv("leap=11, stratum=16, offset=0.000000, refid=INIT\n").unwrap();
        assert!(!sync.synchronised);
        assert_eq!(
            (sync.stratum, sync.refid.as_deref()),
            (Some(16), Some("INIT"))
        );
        // NTPsec can report leap=00 while still at stratum 16.
        let sync = parse_ntpq_rv("leap=00, stratum=16, offset=+0.000000, refid=INIT\n").unwrap();
        assert!(!sync.synchronised);
        assert_eq!(sync.offset_ms, Some(0.0));
    }

    #[test]
    fn ntpq_rv_without_variables_is_an_error() {
        assert!(parse_ntpq_rv("").is_err());
        let err = parse_ntpq_rv("No system variables returned\n").unwrap_err();
        assert!(err.contains("No system variables returned"), "{err}");
    }
}
