//! What classic ntpd and NTPsec share: the restrict lines and their lint,
//! ntpq for status, and time service to anyone under the recipe's
//! rate-limited default entry.

use super::sync::{self, Peer, Sync};
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
        sync::parse_ntpq_peers(&sources.stdout, &sources.stderr)?,
        sync::parse_ntpq_rv(&sync.stdout)?,
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
