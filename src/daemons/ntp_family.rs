//! What classic ntpd and NTPsec share: the restrict lines and their lint,
//! ntpq for status, and time service under the recipe's rate-limited
//! default entry (to anyone, or with `clients` to those networks only).

use super::sync::{
    first_line, float, interval, is_ntpq_header, octal, same_host, Configured, Peer, Selection,
    Source, SourceAddress, SourceKind, SourceState, Sync,
};
use super::{Access, Directive, Finding, QueryEntry};
use crate::names::Rule;
use crate::net::{network_contains, ntp_net, Family, Net, PRIVATE};
use crate::process::Output;
use crate::version;
use std::cmp::Ordering;
use std::net::IpAddr;

pub(super) const STATUS_QUERIES: [&[&str]; 2] = [
    &["ntpq", "-pn"],
    &["ntpq", "-c", "rv 0 leap,stratum,offset,refid"],
];

/// The templates serve anyone without `clients`; with them the default
/// entry says noserve, and only the client networks and the unrestricted
/// `restrict 127.0.0.1` / `::1` host entries get time.
pub(super) fn serves_time_to(access: &Access, from: IpAddr) -> bool {
    access.clients.is_empty()
        || from == IpAddr::from([127, 0, 0, 1])
        || from == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        || access.clients.iter().any(|net| network_contains(net, from))
}

/// ntpq exits 0 even when it reached no daemon: its text decides.
pub(super) fn parse_status(sources: &Output, sync: &Output) -> Result<(Vec<Peer>, Sync), String> {
    Ok((
        parse_ntpq_peers(&sources.stdout, &sources.stderr)?,
        parse_ntpq_rv(&sync.stdout)?,
    ))
}

/// The ntp family's key file (ntp.keys(5)): `ID TYPE KEY`, a key of up to
/// 20 characters read as ASCII and a longer one as hex, at most 32 bytes.
pub(super) fn key_file(
    path: &'static str,
    types: &'static [(&'static str, &'static str)],
) -> super::keys::KeyFile {
    super::keys::KeyFile {
        path,
        types,
        ascii_up_to: Some(20),
        max_bytes: Some(32),
    }
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

/// The default entry of one family after every line, in order: the line
/// that starts it (`None`: no restrict line, the daemon's own entry alone),
/// its flags from the config, and the `unrestrict` line that last turned off
/// each flag no later line put back (the daemon's own flags included).
struct DefaultFlags<'a> {
    line: Option<usize>,
    flags: Vec<&'a str>,
    removed: Vec<(&'a str, usize)>,
}

fn default_flags<'a>(entries: &[RestrictLine<'a>], family: Family) -> DefaultFlags<'a> {
    let mut state = DefaultFlags {
        line: None,
        flags: Vec::new(),
        removed: Vec::new(),
    };
    for e in entries {
        let Target::Default(families) = &e.target else {
            continue;
        };
        if !families.contains(&family) {
            continue;
        }
        if e.unrestrict {
            // Without flags it does nothing: the default entry stays.
            for f in &e.flags {
                if !state.flags.contains(f) && !BUILTIN_FLAGS.contains(f) {
                    continue;
                }
                state.flags.retain(|x| x != f);
                state.removed.retain(|(r, _)| r != f);
                state.removed.push((f, e.line));
            }
        } else {
            state.line.get_or_insert(e.line);
            state.flags.extend(&e.flags);
            state.removed.retain(|(r, _)| !e.flags.contains(r));
        }
    }
    state
}

/// The default entry a daemon starts with before any restrict line; the
/// lines only add flags to it (or `unrestrict` takes them off).
pub(super) struct Builtin {
    /// Whether that entry has noquery (and limited, which come together);
    /// `None` when the version that decides it is not known.
    pub noquery: Option<bool>,
    /// What that entry is, for messages ("NTPsec 1.2.2 starts ...").
    pub says: String,
    /// What a host whose entry lacks noquery gets, for messages.
    pub answers: &'static str,
}

impl Builtin {
    pub fn classic() -> Builtin {
        Builtin {
            noquery: Some(false),
            says: "classic ntpd's own default entry has no flags, noquery neither".into(),
            answers:
                "mode 6 answers (READVAR about 34 times the request; mode 7 answers where classic \
                      ntpd has mode 7 enabled)",
        }
    }

    /// NTPsec's own default entry has noquery and limited from 1.1.9 on
    /// (`RES_Default` in its include/ntp.h, set in init_restrict).
    pub fn ntpsec(version: Option<&str>) -> Builtin {
        let upstream = version.map(upstream_version);
        let (noquery, says) = match upstream {
            Some(v) if version::compare(v, NTPSEC_DEFAULT_NOQUERY) != Ordering::Less => (
                Some(true),
                format!(
                    "NTPsec {v} starts its own default entry with noquery and limited (as NTPsec does from \
                     {NTPSEC_DEFAULT_NOQUERY}), and restrict lines only add flags to it"
                ),
            ),
            Some(v) => (
                Some(false),
                format!("NTPsec {v} is older than {NTPSEC_DEFAULT_NOQUERY}: its own default entry has no noquery"),
            ),
            None => (
                None,
                format!(
                    "the NTPsec version is not known: before {NTPSEC_DEFAULT_NOQUERY} its own default entry has \
                     no noquery, from {NTPSEC_DEFAULT_NOQUERY} on it has"
                ),
            ),
        };
        Builtin {
            noquery,
            says,
            answers:
                "mode 6 answers (READVAR about 34 times the request, a peer's variables about 60 \
                      times on NTPsec 1.2)",
        }
    }
}

/// The flags a daemon's own default entry may start with (NTPsec 1.1.9+).
const BUILTIN_FLAGS: [&str; 2] = ["noquery", "limited"];

/// From this upstream version on, NTPsec's own default entry has noquery.
const NTPSEC_DEFAULT_NOQUERY: &str = "1.1.9";

/// `1:4.2.8p15+dfsg-1ubuntu2` -> `4.2.8p15+dfsg`: the epoch and the Debian
/// revision say nothing about which upstream change is in.
pub(super) fn upstream_version(v: &str) -> &str {
    let v = v.trim();
    let v = match v.split_once(':') {
        Some((epoch, rest)) if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) => {
            rest
        }
        _ => v,
    };
    v.rsplit_once('-').map_or(v, |(upstream, _)| upstream)
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

/// The restrict lines' rules, which classic ntpd and NTPsec share; what the
/// daemon's own default entry holds (`builtin`) is the daemon's.
pub(super) fn lint_restrict(lines: &[Directive], builtin: &Builtin) -> Vec<Finding> {
    let entries: Vec<RestrictLine> = lines
        .iter()
        .filter_map(|(n, w)| restrict_line(*n, w))
        .collect();
    let mut findings = Vec::new();
    let missing = missing_flags(&entries, builtin, &mut findings);
    findings.extend(network_findings(&entries, builtin));
    findings.extend(default_findings(&missing, builtin));
    findings
}

/// The flags each family's default entry lacks; a missing IPv6 default is
/// a finding of its own, pushed to `findings`. ntpd ORs the flags of lines
/// for the same address into one entry, so a family's default is the union
/// of every line that covers it, less the flags an `unrestrict` line turns
/// off after them (`default_flags`).
fn missing_flags(
    entries: &[RestrictLine],
    builtin: &Builtin,
    findings: &mut Vec<Finding>,
) -> Vec<Missing> {
    let mut missing: Vec<Missing> = Vec::new();
    for family in [Family::V4, Family::V6] {
        let DefaultFlags {
            line,
            flags,
            removed,
        } = default_flags(entries, family);
        if line.is_none() && family == Family::V6 {
            findings.push(Finding {
                rule: Rule::Ipv6DefaultMissing,
                line: None,
                message: format!(
                    "no `restrict -6 default ...` line, and no family-less `restrict default ...` line covering \
                     both families: IPv6 hosts get the daemon's own default entry; {}",
                    builtin.consequence("every IPv6 host")
                ),
            });
            continue;
        }
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
            let why = match (unrestricted, line) {
                (Some(_), _) => {
                    format!("an `unrestrict` line turns off {flag} in the default restrict entry")
                }
                (None, None) if flag == "noquery" => "no `restrict -4 default ...` or `restrict default ...` \
                                                     line, so IPv4 hosts get the daemon's own default entry"
                    .to_string(),
                (None, None) => format!(
                    "no `restrict -4 default ...` or `restrict default ...` line, so IPv4 hosts get the daemon's own \
                     default entry, which has no {flag}"
                ),
                (None, Some(_)) => format!("the default restrict entry has no {flag}"),
            };
            missing.push(Missing {
                rule,
                family,
                line: unrestricted.or(line),
                why,
                unrestricted: unrestricted.is_some(),
            });
        }
        if flags.contains(&"kod") && !flags.contains(&"limited") {
            let unrestricted = removed.iter().find(|(f, _)| *f == "limited").map(|r| r.1);
            missing.push(Missing {
                rule: Rule::KodWithoutLimited,
                family,
                line: unrestricted.or(line),
                why: "the default restrict entry has kod without limited".into(),
                unrestricted: unrestricted.is_some(),
            });
        }
    }
    missing
}

/// One finding per rule of the default entries, naming the families it
/// applies to and what the daemon's own default entry makes of it.
fn default_findings(missing: &[Missing], builtin: &Builtin) -> Vec<Finding> {
    let mut findings = Vec::new();
    for rule in [
        Rule::KodWithoutLimited,
        Rule::NoqueryMissing,
        Rule::NomodifyMissing,
    ] {
        let hits: Vec<&Missing> = missing.iter().filter(|m| m.rule == rule).collect();
        if hits.is_empty() {
            continue;
        }
        let mut parts: Vec<String> = Vec::new();
        for h in &hits {
            let families: Vec<&str> = hits
                .iter()
                .filter(|o| o.why == h.why)
                .map(|o| o.family.name())
                .collect();
            let part = format!("{} ({})", h.why, families.join(" and "));
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
        let mut message = parts.join("; ");
        let unrestricted = hits.iter().any(|h| h.unrestricted);
        match rule {
            Rule::NoqueryMissing => {
                message.push_str("; ");
                message.push_str(&match unrestricted {
                    true => format!(
                        "every host without an entry of its own gets {}",
                        builtin.answers
                    ),
                    false => builtin.consequence("every host without an entry of its own"),
                });
            }
            // The daemon's own default entry may bring limited along.
            Rule::KodWithoutLimited if !unrestricted && builtin.noquery != Some(false) => {
                let works = match builtin.noquery {
                    Some(_) => "so kod works all the same, on the strength of its version alone",
                    None => "where it has, kod works",
                };
                message.push_str(&format!("; {}, {works}", builtin.says));
            }
            _ => {}
        }
        findings.push(Finding {
            rule,
            line: hits.iter().find_map(|h| h.line),
            message,
        });
    }
    findings
}

/// A flag a family's default entry lacks, and why.
struct Missing {
    rule: Rule,
    family: Family,
    line: Option<usize>,
    why: String,
    /// An `unrestrict` line took it off (the daemon's own one too).
    unrestricted: bool,
}

impl Builtin {
    /// What `hosts` get from the daemon's own default entry, as far as
    /// noquery goes.
    fn consequence(&self, hosts: &str) -> String {
        match self.noquery {
            Some(true) => format!(
                "{}, so the node refuses the mode 6 queries of {hosts} all the same, on the strength of its \
                 version alone",
                self.says
            ),
            Some(false) => format!("{}, so {hosts} gets {}", self.says, self.answers),
            None => format!(
                "{}: where it has none, {hosts} gets {}",
                self.says, self.answers
            ),
        }
    }
}

/// The most specific entry decides, so a network entry without noquery
/// re-opens queries for every host in it, whatever the default says; a
/// private network is no exception (its hosts can forge each other's
/// addresses), only loopback, which no other host reaches, and single hosts.
fn network_findings(entries: &[RestrictLine], builtin: &Builtin) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (net, line, flags, unrestricted) in network_entries(entries) {
        let closed = flags.contains(&"noquery") || flags.contains(&"ignore");
        if closed || net.single_host() || net.is_loopback() {
            continue;
        }
        let kind = match net.within(&PRIVATE) {
            true => "a private network",
            false => "a public network",
        };
        let what = match unrestricted {
            Some(_) => format!(
                "an `unrestrict` line leaves the restrict entry for {net}, {kind}, without noquery (or ignore)"
            ),
            None => format!("the restrict entry for {net}, {kind}, has no noquery (or ignore)"),
        };
        let message = format!(
            "{what}: every host in {net} gets {}; the probes from the node's own loopback addresses (the check after \
             apply, verify) do not come from {net}, so they cannot measure it",
            builtin.answers
        );
        findings.push(Finding {
            rule: Rule::NoqueryMissingNetwork,
            line: Some(unrestricted.unwrap_or(line)),
            message,
        });
    }
    findings
}

/// Every default and network entry with whether it answers mode 6 (and 7):
/// neither `noquery` nor `ignore` after every line. A family without a
/// default line is left out: its built-in default differs per version.
pub(super) fn query_access(lines: &[Directive]) -> Vec<QueryEntry> {
    let entries: Vec<RestrictLine> = lines
        .iter()
        .filter_map(|(n, w)| restrict_line(*n, w))
        .collect();
    let open = |flags: &[&str]| !flags.iter().any(|f| *f == "noquery" || *f == "ignore");
    let mut access = Vec::new();
    for family in [Family::V4, Family::V6] {
        let d = default_flags(&entries, family);
        if let Some(line) = d.line {
            let any: std::net::IpAddr = match family {
                Family::V4 => std::net::Ipv4Addr::UNSPECIFIED.into(),
                Family::V6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
            };
            access.push(QueryEntry {
                line,
                net: Net::new(any, 0).expect("prefix 0 fits"),
                open: open(&d.flags),
            });
        }
    }
    for (net, line, flags, unrestricted) in network_entries(&entries) {
        access.push(QueryEntry {
            line: unrestricted.unwrap_or(line),
            net,
            open: open(&flags),
        });
    }
    access
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

/// `server`, `pool` and `peer` lines: `server [-4|-6] ADDRESS [options]`.
pub(super) fn configured_sources(lines: &[Directive]) -> Vec<Configured> {
    lines
        .iter()
        .filter_map(|(_, words)| {
            let kind = match words[0] {
                "server" => SourceKind::Server,
                "pool" => SourceKind::Pool,
                "peer" => SourceKind::Peer,
                _ => return None,
            };
            let name = match words.get(1) {
                Some(&"-4" | &"-6") => words.get(2),
                other => other,
            };
            Some(Configured {
                kind,
                name: name?.to_string(),
            })
        })
        .collect()
}

/// The association list, then one `rv` per association in one ntpq run
/// (ntpq prints no association ID with a variable list: the order ties them).
pub(super) fn source_query(asked: &[Output]) -> Option<Vec<String>> {
    source_query_of(asked, RV_VARIABLES)
}

/// `source_query` asking each association for `variables`.
pub(super) fn source_query_of(asked: &[Output], variables: &str) -> Option<Vec<String>> {
    let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    match asked {
        [] => Some(argv(&["ntpq", "-n", "-c", "associations"])),
        [list] => {
            let associations = parse_associations(&list.stdout, &list.stderr).ok()?;
            if associations.is_empty() {
                return None;
            }
            let mut query = argv(&["ntpq", "-n"]);
            for a in associations {
                query.push("-c".into());
                query.push(format!("rv {} {variables}", a.assid));
            }
            Some(query)
        }
        _ => None,
    }
}

/// What each association's `rv` asks for.
const RV_VARIABLES: &str = "srcadr,srchost,reach";
/// NTPsec's, with what tells NTS: its cookies, and the refid `.NTS.` that
/// an association keeps until key establishment succeeds.
pub(super) const NTPSEC_RV_VARIABLES: &str = "srcadr,srchost,reach,refid,ntscookies";

/// One row of `ntpq -c associations`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Association {
    assid: u32,
    /// `conf yes`: from the config; pool servers are ephemeral (`no`).
    persistent: bool,
    /// `auth ok`: its packets pass authentication.
    authenticated: bool,
    selected: Selection,
}

/// `ntpq -c associations`, classic ntpd 4.2.8 and NTPsec 1.x alike:
/// `ind assid status conf reach auth condition last_event cnt`.
fn parse_associations(stdout: &str, stderr: &str) -> Result<Vec<Association>, String> {
    let mut lines = stdout.lines();
    let header = |l: &str| {
        let mut words = l.split_whitespace();
        words.next() == Some("ind") && words.next() == Some("assid")
    };
    if !lines.by_ref().any(header) {
        if [stdout, stderr]
            .iter()
            .any(|s| s.contains("No association ID"))
        {
            return Ok(Vec::new());
        }
        let said = first_line(stderr).or_else(|| first_line(stdout));
        return Err(format!(
            "ntpq associations: {}",
            said.unwrap_or("no output")
        ));
    }
    lines
        .filter(|l| !l.trim().is_empty() && !l.starts_with('='))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_ind, assid, _status, conf, _reach, auth, condition, ..] = fields[..] else {
                return Err(format!("ntpq associations: unexpected line {line:?}"));
            };
            let assid = assid
                .parse()
                .map_err(|_| format!("ntpq associations: no association ID in {line:?}"))?;
            Ok(Association {
                assid,
                persistent: conf == "yes",
                authenticated: auth == "ok",
                selected: match condition {
                    "sys.peer" | "pps.peer" => Selection::SystemPeer,
                    "candidate" | "backup" => Selection::Candidate,
                    "outlier" | "excess" => Selection::Outlier,
                    "falsetick" => Selection::Falseticker,
                    "reject" => Selection::Unusable,
                    _ => Selection::Unknown,
                },
            })
        })
        .collect()
}

/// One association's `rv srcadr,srchost,reach`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct AssociationVars {
    /// `None` for 0.0.0.0 or `::`: a pool's own association, or (NTPsec) a
    /// server whose name has not resolved yet.
    address: Option<String>,
    /// The name as configured: pools, and NTPsec's servers by name.
    host: Option<String>,
    reach: Option<u8>,
    /// NTPsec: NTS cookies held (0 without NTS; -1 before the first key
    /// establishment succeeded).
    nts_cookies: Option<i32>,
    refid: Option<String>,
}

impl AssociationVars {
    /// Authenticated by NTS: authenticated, with cookies.
    fn nts(&self, authenticated: bool) -> bool {
        authenticated && self.nts_cookies.is_some_and(|c| c > 0)
    }

    /// An NTS association that never got its cookies: it keeps the refid
    /// `.NTS.` and no answer reaches it.
    fn nts_failure(&self) -> Option<String> {
        let refid = self.refid.as_deref()?.trim_matches('.');
        let no_cookies = self.nts_cookies.is_some_and(|c| c <= 0);
        (refid == "NTS" && no_cookies && self.reach == Some(0)).then(|| {
            "NTS key establishment failed: no cookies, no answer (refid .NTS.; the daemon's log says why)"
                .to_string()
        })
    }
}

/// The `rv` answers of one ntpq run, one block per association, each
/// starting with `srcadr=` (the first variable the daemon prints).
fn parse_rv_blocks(stdout: &str) -> Vec<AssociationVars> {
    let mut blocks: Vec<AssociationVars> = Vec::new();
    for line in stdout.lines() {
        for word in line.split(|c: char| c == ',' || c.is_whitespace()) {
            let Some((name, value)) = word.split_once('=') else {
                continue;
            };
            let value = value.trim_matches('"');
            match name {
                "srcadr" => blocks.push(AssociationVars {
                    address: value
                        .parse::<std::net::IpAddr>()
                        .ok()
                        .filter(|ip| !ip.is_unspecified())
                        .map(|ip| ip.to_string()),
                    ..Default::default()
                }),
                "srchost" if !value.is_empty() => {
                    if let Some(b) = blocks.last_mut() {
                        b.host = Some(value.to_string());
                    }
                }
                "reach" => {
                    if let Some(b) = blocks.last_mut() {
                        b.reach = octal(value);
                    }
                }
                "ntscookies" => {
                    if let Some(b) = blocks.last_mut() {
                        b.nts_cookies = value.parse().ok();
                    }
                }
                "refid" => {
                    if let Some(b) = blocks.last_mut() {
                        b.refid = Some(value.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    blocks
}

/// Ties the config's sources to the daemon's associations.
///
/// Servers by address match `srcadr`; pools, and NTPsec's servers by name,
/// match `srchost`. Classic ntpd forgets a server's name once it resolved
/// it: its associations from the config that nothing else claims go to the
/// servers by name in config order (the order ntpd resolves them in) when
/// there is one for each; with fewer, which name is missing is unknown, and
/// with none, no name resolved. A pool's servers are ephemeral associations
/// that do not say which pool gave them: with one pool they are its, with
/// several each pool is unknown (unresolved when there is none).
pub(super) fn sources(configured: &[Configured], asked: &[Output]) -> Result<Vec<Source>, String> {
    let list = asked.first().ok_or("ntpq associations: not asked")?;
    let associations = parse_associations(&list.stdout, &list.stderr)?;
    // No association at all: no second query.
    let vars = asked
        .get(1)
        .map_or_else(Vec::new, |v| parse_rv_blocks(&v.stdout));
    if vars.len() != associations.len() {
        return Err(format!(
            "ntpq: the associations changed while they were read ({} listed, {} read); ask again",
            associations.len(),
            vars.len()
        ));
    }
    let assocs: Vec<(&Association, &AssociationVars)> = associations.iter().zip(&vars).collect();
    let address = |(a, v): (&Association, &AssociationVars)| {
        v.address.as_ref().map(|address| SourceAddress {
            address: address.clone(),
            state: SourceState::of(v.reach, a.selected),
            reach: v.reach,
            authenticated: a.authenticated,
            nts: v.nts(a.authenticated),
            nts_failure: v.nts_failure(),
        })
    };
    let mut claimed = vec![false; assocs.len()];
    let mut found: Vec<Option<Source>> = vec![None; configured.len()];
    // By address, then by name as configured.
    for (i, c) in configured.iter().enumerate() {
        let by_address = c.name.parse::<std::net::IpAddr>().is_ok();
        let hit = assocs.iter().enumerate().position(|(j, (_, v))| {
            !claimed[j]
                && match (by_address, &v.address, &v.host) {
                    (true, Some(a), _) => same_host(&c.name, a),
                    (false, _, Some(h)) => same_host(&c.name, h),
                    _ => false,
                }
        });
        if let Some(j) = hit {
            claimed[j] = true;
            found[i] = Some(match c.kind {
                // A pool's own association has no address; its servers come below.
                SourceKind::Pool => Source::new(c, Vec::new()),
                _ => Source::new(c, address(assocs[j]).into_iter().collect()),
            });
        }
    }
    let unclaimed = |persistent: bool| -> Vec<usize> {
        (0..assocs.len())
            .filter(|&j| {
                let (a, v) = assocs[j];
                !claimed[j] && a.persistent == persistent && v.host.is_none() && v.address.is_some()
            })
            .collect()
    };
    let (from_config, spawned) = (unclaimed(true), unclaimed(false));
    let named: Vec<usize> = (0..configured.len())
        .filter(|&i| {
            let c = &configured[i];
            found[i].is_none()
                && c.kind != SourceKind::Pool
                && c.name.parse::<std::net::IpAddr>().is_err()
        })
        .collect();
    for (n, &i) in named.iter().enumerate() {
        let c = &configured[i];
        found[i] = Some(if from_config.is_empty() {
            Source::new(c, Vec::new())
        } else if from_config.len() == named.len() {
            Source::new(c, address(assocs[from_config[n]]).into_iter().collect())
        } else {
            Source::unknown(c)
        });
    }
    let pools = configured
        .iter()
        .filter(|c| c.kind == SourceKind::Pool)
        .count();
    Ok(configured
        .iter()
        .zip(found)
        .map(|(c, f)| match (c.kind, f) {
            (SourceKind::Pool, _) if pools == 1 || spawned.is_empty() => Source::new(
                c,
                spawned.iter().filter_map(|&j| address(assocs[j])).collect(),
            ),
            (SourceKind::Pool, _) => Source::unknown(c),
            (_, Some(f)) => f,
            (_, None) => Source::new(c, Vec::new()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemons::sync::tests::{peer, selections};
    use crate::daemons::sync::Selection;

    #[test]
    fn with_clients_only_they_and_the_host_entries_get_time() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let anyone = Access::default();
        assert!(serves_time_to(&anyone, ip("198.51.100.7")));
        let site = Access {
            clients: vec!["10.123.0.128/25".into(), "2001:db8::/32".into()],
            listen: vec![],
        };
        for inside in ["10.123.0.130", "2001:db8::5", "127.0.0.1", "::1"] {
            assert!(serves_time_to(&site, ip(inside)), "{inside}");
        }
        // apply's check probes from 127.0.0.2 and up: the default entry's noserve.
        for outside in ["10.123.0.100", "127.0.0.3", "198.51.100.7", "2001:db9::1"] {
            assert!(!serves_time_to(&site, ip(outside)), "{outside}");
        }
    }

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

    /// The sources a config names, read as status reads it.
    fn configured(config: &str) -> Vec<Configured> {
        configured_sources(&crate::daemons::directives(
            crate::daemons::Flavor::NTPSEC,
            config,
        ))
    }

    /// (name, state, addresses) of each source.
    fn summary(sources: &[Source]) -> Vec<(&str, SourceState, Vec<&str>)> {
        sources
            .iter()
            .map(|s| {
                let addresses = s.addresses.iter().map(|a| a.address.as_str()).collect();
                (s.name.as_str(), s.state, addresses)
            })
            .collect()
    }

    // Recorded on Debian 12, ntpsec 1.2.2, with /etc/hosts giving
    // one.ntp.test 127.0.0.5, a-very-long-server-name.ntp.test 127.0.0.2 and
    // pool.ntp.test 127.0.0.3 and .4, and no DNS (`hosts: files`). NTPsec
    // refused 127.0.0.6 (no association) and keeps a named server's name in
    // `srchost`, with srcadr 0.0.0.0 until it resolves. (The rv was asked
    // for hmode and flash too.)
    const NTPSEC_CONFIG: &str = "\
server 127.0.0.1 iburst
server one.ntp.test iburst
server a-very-long-server-name.ntp.test iburst
server unresolvable.invalid iburst
server -4 127.0.0.6 iburst
pool pool.ntp.test iburst
restrict -4 default kod notrap nomodify nopeer noquery limited
";
    const NTPSEC_ASSOCIATIONS: &str = concat!(
        "\n",
        "ind assid status  conf reach auth condition  last_event cnt\n",
        "===========================================================\n",
        "  1 17767  8011   yes    no  none    reject    mobilize  1\n",
        "  2 17768  8011   yes    no  none    reject    mobilize  1\n",
        "  3 17769  8011   yes    no  none    reject    mobilize  1\n",
        "  4 17770  8011   yes    no  none    reject    mobilize  1\n",
        "  5 17771  8811   yes  none  none    reject    mobilize  1\n",
        "  7 17773  0011    no    no  none    reject    mobilize  1\n",
        "  8 17774  0011    no    no  none    reject    mobilize  1\n",
    );
    const NTPSEC_RV: &str = concat!(
        "srcadr=127.0.0.1, hmode=3, reach=000,\n",
        "flash=1600 peer_stratum peer_dist peer_unreach\n",
        "srcadr=127.0.0.5, hmode=3, reach=000, flash=1400 peer_dist peer_unreach,\n",
        "srchost=\"one.ntp.test\"\n",
        "srcadr=127.0.0.2, hmode=3, reach=000, flash=1400 peer_dist peer_unreach,\n",
        "srchost=\"a-very-long-server-name.ntp.test\"\n",
        "srcadr=0.0.0.0, hmode=3, reach=000, flash=1400 peer_dist peer_unreach,\n",
        "srchost=\"unresolvable.invalid\"\n",
        "srcadr=0.0.0.0, hmode=3, reach=000, flash=1400 peer_dist peer_unreach,\n",
        "srchost=\"pool.ntp.test\"\n",
        "srcadr=127.0.0.3, hmode=3, reach=000, flash=1400 peer_dist peer_unreach\n",
        "srcadr=127.0.0.4, hmode=3, reach=000, flash=1400 peer_dist peer_unreach\n",
    );

    #[test]
    fn the_config_names_servers_pools_and_peers_in_full() {
        let c = configured(NTPSEC_CONFIG);
        let names: Vec<(SourceKind, &str)> = c.iter().map(|c| (c.kind, c.name.as_str())).collect();
        assert_eq!(
            names,
            [
                (SourceKind::Server, "127.0.0.1"),
                (SourceKind::Server, "one.ntp.test"),
                (SourceKind::Server, "a-very-long-server-name.ntp.test"),
                (SourceKind::Server, "unresolvable.invalid"),
                (SourceKind::Server, "127.0.0.6"),
                (SourceKind::Pool, "pool.ntp.test"),
            ]
        );
        assert_eq!(
            configured("peer 192.0.2.7 key 1\n")[0].kind,
            SourceKind::Peer
        );
    }

    #[test]
    fn ntpq_reads_each_association_by_its_id_in_one_run() {
        assert_eq!(
            source_query(&[]).unwrap(),
            ["ntpq", "-n", "-c", "associations"]
        );
        let query = source_query(&[Output::said(0, NTPSEC_ASSOCIATIONS)]).unwrap();
        assert_eq!(query.len(), 2 + 2 * 7);
        assert_eq!(
            query[..4],
            ["ntpq", "-n", "-c", "rv 17767 srcadr,srchost,reach"]
        );
        assert_eq!(query[15], "rv 17774 srcadr,srchost,reach");
        // No association: nothing more to ask.
        let none = Output {
            stderr: "No association ID's returned\n".into(),
            ..Output::said(0, "")
        };
        assert_eq!(source_query(&[none]), None);
        assert_eq!(
            source_query(&[Output::said(0, ""), Output::said(0, "")]),
            None
        );
    }

    #[test]
    fn ntpsec_sources_by_name_as_configured_with_their_addresses() {
        let asked = [
            Output::said(0, NTPSEC_ASSOCIATIONS),
            Output::said(0, NTPSEC_RV),
        ];
        let sources = sources(&configured(NTPSEC_CONFIG), &asked).unwrap();
        assert_eq!(
            summary(&sources),
            [
                ("127.0.0.1", SourceState::Unreachable, vec!["127.0.0.1"]),
                ("one.ntp.test", SourceState::Unreachable, vec!["127.0.0.5"]),
                (
                    "a-very-long-server-name.ntp.test",
                    SourceState::Unreachable,
                    vec!["127.0.0.2"]
                ),
                ("unresolvable.invalid", SourceState::Unresolved, vec![]),
                ("127.0.0.6", SourceState::Unresolved, vec![]),
                (
                    "pool.ntp.test",
                    SourceState::Unreachable,
                    vec!["127.0.0.3", "127.0.0.4"]
                ),
            ]
        );
        assert_eq!(sources[0].addresses[0].reach, Some(0));
        assert!(!sources[0].authenticated);
    }

    #[test]
    fn ntpsec_nts_associations_with_cookies_and_without() {
        // Recorded on bookworm's NTPsec 1.2.2 (tests/node/nts.rs), `server
        // 10.123.0.50 iburst nts ca FILE`: with the server's CA, then another.
        let associations = concat!(
            "\n",
            "ind assid status  conf reach auth condition  last_event cnt\n",
            "===========================================================\n",
            "  1 17767  f61a   yes   yes   ok   sys.peer    sys_peer  1\n",
        );
        let rv = "srcadr=10.123.0.50, refid=127.127.1.1, reach=001, flash=00 ok, ntscookies=8\n";
        let good = sources(
            &configured("server 10.123.0.50 iburst nts\n"),
            &[Output::said(0, associations), Output::said(0, rv)],
        )
        .unwrap();
        assert_eq!((good[0].nts, &good[0].nts_failure), (true, &None));
        let failing = concat!(
            "\n",
            "ind assid status  conf reach auth condition  last_event cnt\n",
            "===========================================================\n",
            "  1 17767  c011   yes    no   bad    reject    mobilize  1\n",
        );
        let rv = concat!(
            "srcadr=10.123.0.50, refid=NTS, reach=000, flash=1400 peer_dist peer_unreach,\n",
            "ntscookies=-1\n",
        );
        let failed = sources(
            &configured("server 10.123.0.50 iburst nts\n"),
            &[Output::said(0, failing), Output::said(0, rv)],
        )
        .unwrap();
        assert!(!failed[0].nts);
        assert!(failed[0]
            .nts_failure
            .as_deref()
            .is_some_and(|f| f.starts_with("NTS key establishment failed")));
        assert_eq!(
            source_query_of(&[Output::said(0, failing)], NTPSEC_RV_VARIABLES).unwrap()[3],
            "rv 17767 srcadr,srchost,reach,refid,ntscookies"
        );
    }

    // Debian 11, ntp 1:4.2.8p15: one.ntp.test resolved to ::1, and classic
    // ntpd kept no srchost for it; unresolvable.invalid has no association.
    // (Recorded with `ntpq -n`; classic separates the rv blocks by a blank line.)
    const CLASSIC_ASSOCIATIONS: &str = concat!(
        "ind assid status  conf reach auth condition  last_event cnt\n",
        "===========================================================\n",
        "  1 54463  8011   yes    no  none    reject    mobilize  1\n",
        "  2 54464  8011   yes    no  none    reject    mobilize  1\n",
    );
    const CLASSIC_RV: &str = "srcadr=127.0.0.1, reach=000\n\nsrcadr=::1, reach=000\n";

    #[test]
    fn classic_ntpd_servers_by_name_are_tied_only_when_each_has_an_association() {
        let asked = [
            Output::said(0, CLASSIC_ASSOCIATIONS),
            Output::said(0, CLASSIC_RV),
        ];
        // Two names, one association left: which name resolved is unknown.
        let both =
            configured("server 127.0.0.1\nserver one.ntp.test\nserver unresolvable.invalid\n");
        assert_eq!(
            summary(&sources(&both, &asked).unwrap()),
            [
                ("127.0.0.1", SourceState::Unreachable, vec!["127.0.0.1"]),
                ("one.ntp.test", SourceState::Unknown, vec![]),
                ("unresolvable.invalid", SourceState::Unknown, vec![]),
            ]
        );
        // One name, one association: it is that name's.
        let one = configured("server 127.0.0.1\nserver one.ntp.test\n");
        assert_eq!(
            summary(&sources(&one, &asked).unwrap())[1],
            ("one.ntp.test", SourceState::Unreachable, vec!["::1"])
        );
        // No association left: no name resolved.
        let only_localhost = CLASSIC_ASSOCIATIONS.replace(
            "  2 54464  8011   yes    no  none    reject    mobilize  1\n",
            "",
        );
        let asked = [
            Output::said(0, &only_localhost),
            Output::said(0, "srcadr=127.0.0.1, reach=000\n"),
        ];
        assert_eq!(
            summary(&sources(&both, &asked).unwrap())[1..],
            [
                ("one.ntp.test", SourceState::Unresolved, vec![]),
                ("unresolvable.invalid", SourceState::Unresolved, vec![]),
            ]
        );
    }

    #[test]
    fn reach_selection_and_authentication_come_from_the_associations() {
        // A synchronised classic ntpd: a keyed server is the system peer, a
        // pool gave two servers (one a candidate, one reachable and rejected).
        let associations = concat!(
            "ind assid status  conf reach auth condition  last_event cnt\n",
            "===========================================================\n",
            "  1 40001  f63a   yes   yes    ok  sys.peer    sys_peer  3\n",
            "  2 40002  8811   yes  none  none    reject    mobilize  1\n",
            "  3 40003  1414    no   yes  none candidate   reachable  1\n",
            "  4 40004  1014    no   yes  none    reject   reachable  1\n",
        );
        let rv = concat!(
            "srcadr=192.0.2.1, reach=377\n\n",
            "srcadr=0.0.0.0, reach=000, srchost=\"2.debian.pool.ntp.org\"\n\n",
            "srcadr=198.51.100.7, reach=377\n\n",
            "srcadr=2001:db8::123, reach=17\n",
        );
        let c = configured("server 192.0.2.1 key 1\npool 2.debian.pool.ntp.org iburst\n");
        let sources = sources(&c, &[Output::said(0, associations), Output::said(0, rv)]).unwrap();
        assert_eq!(
            (sources[0].state, sources[0].authenticated),
            (SourceState::Selected, true)
        );
        assert_eq!(sources[0].addresses[0].reach, Some(0o377));
        let pool = &sources[1];
        assert_eq!(
            (pool.state, pool.authenticated),
            (SourceState::Selected, false)
        );
        let states: Vec<(&str, SourceState, Option<u8>)> = pool
            .addresses
            .iter()
            .map(|a| (a.address.as_str(), a.state, a.reach))
            .collect();
        assert_eq!(
            states,
            [
                ("198.51.100.7", SourceState::Selected, Some(0o377)),
                ("2001:db8::123", SourceState::Reachable, Some(0o17)),
            ]
        );
        // A second pool: nothing says which pool gave which server.
        let two = configured("pool 2.debian.pool.ntp.org\npool 3.debian.pool.ntp.org\n");
        let sources =
            super::sources(&two, &[Output::said(0, associations), Output::said(0, rv)]).unwrap();
        assert_eq!(sources[0].state, SourceState::Unknown);
    }

    #[test]
    fn associations_that_changed_between_the_two_queries_are_an_error() {
        let asked = [
            Output::said(0, NTPSEC_ASSOCIATIONS),
            Output::said(0, "srcadr=127.0.0.1, reach=000\n"),
        ];
        let err = sources(&configured(NTPSEC_CONFIG), &asked).unwrap_err();
        assert!(err.contains("7 listed, 1 read"), "{err}");
        let err = sources(
            &configured(NTPSEC_CONFIG),
            &[Output {
                stderr: "ntpq: read: Connection refused\n".into(),
                ..Output::said(0, "")
            }],
        )
        .unwrap_err();
        assert!(err.contains("Connection refused"), "{err}");
    }

    #[test]
    fn no_association_text_panics() {
        let c = configured(NTPSEC_CONFIG);
        for input in [
            "",
            "ind assid\n",
            "ind assid status\n===\n  1\n",
            "ind assid\n=\n 1 x y z w v u\n",
            "srcadr=",
            "srcadr=\"\nsrchost=",
            "reach=999 srcadr=:: srchost=\"\"",
            "srchost=a, reach=7",
        ] {
            let _ = parse_associations(input, input);
            let _ = parse_rv_blocks(input);
            let _ = sources(&c, &[Output::said(0, input), Output::said(0, input)]);
            let _ = source_query(&[Output::said(0, input)]);
        }
    }
}
