//! chrony (package `chrony`). It serves nobody without `allow`, never
//! speaks mode 6/7, and has a command port (UDP 323) of its own.

use super::chrony_access;
use super::sync::{
    first_line, float, log2_seconds, octal, same_host, Configured, Peer, Selection, Source,
    SourceAddress, SourceKind, SourceState, Sync,
};
use super::{
    bounded_check, Access, AnswerProbe, DaemonName, Directive, Finding, Flavor, Setting, Support,
    TimeDaemon, Verdict,
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
    /// chrony 4.0 knows an NTS-KE server by name only ("Missing name of
    /// ... for NTS-KE"); 4.1 matches an address in the certificate's
    /// subjectAltName.
    fn nts_by_address_since(&self) -> Option<&'static str> {
        Some("4.1")
    }
    /// Debian's chronyd drops root for _chrony, and reads the NTS files
    /// after that (chrony.conf(5), ntsservercert).
    fn runs_as(&self) -> Option<&'static str> {
        Some("_chrony")
    }
    /// `leapseclist` came with chrony 4.6; before it only `leapsectz`.
    fn supports(&self, setting: Setting) -> Support {
        match setting {
            Setting::Leapfile => Support::Since("4.6"),
            Setting::Logdir
            | Setting::StepThreshold
            | Setting::PanicThreshold
            | Setting::Peers
            | Setting::OrphanStratum
            | Setting::Clients
            | Setting::DhcpServers
            | Setting::Keys => Support::Always,
            Setting::Logfile | Setting::Statsdir => Support::No,
            Setting::NtsServer => Support::Since("4.0"),
        }
    }
    /// chrony.conf(5) `keyfile`: hash names as chrony spells them, CMAC
    /// (nettle) as AES128 and AES256; ASCII or `HEX:` keys of any length.
    fn key_file(&self) -> Option<super::keys::KeyFile> {
        Some(super::keys::KeyFile {
            path: "/etc/chrony/chrony.keys",
            types: &[
                ("AES128", "AES128"),
                ("AES256", "AES256"),
                ("SHA512", "SHA512"),
                ("SHA384", "SHA384"),
                ("SHA256", "SHA256"),
                ("SHA1", "SHA1"),
                ("MD5", "MD5"),
            ],
            ascii_up_to: None,
            max_bytes: None,
        })
    }
    /// `chronyd -p` appeared in 4.0.
    fn check_unavailable(&self, version: &str) -> Option<String> {
        (version::compare(version, "4.0") == Ordering::Less).then(|| {
            format!("chrony {version} cannot check a config (no -p before 4.0): the restart's health check decides")
        })
    }
    /// `chronyd -p` exits 1 with "Fatal error : ..." on a bad config.
    fn query_access(&self, lines: &[Directive]) -> Vec<super::QueryEntry> {
        command_access(lines)
    }
    fn query_answers(&self) -> &'static str {
        "answers on chrony's command port 323 (`chronyc tracking`, `sources`: its reference, sources and clock \
         figures; no larger than the request, so a leak, not an amplifier)"
    }
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
            parse_chronyc_sources(&sources.stdout)?,
            parse_chronyc_tracking(&tracking.stdout)?,
        ))
    }
    fn configured_sources(&self, lines: &[Directive]) -> Vec<Configured> {
        configured_sources(lines)
    }
    fn source_query(&self, asked: &[Output]) -> Option<Vec<String>> {
        let query = SOURCE_QUERIES.get(asked.len())?;
        Some(query.iter().map(|w| w.to_string()).collect())
    }
    fn sources(
        &self,
        configured: &[Configured],
        _listing: &Output,
        asked: &[Output],
    ) -> Result<Vec<Source>, String> {
        let [names, addresses, auth] = asked else {
            return Err(format!("chronyc: {} answers for 3 queries", asked.len()));
        };
        if let Some(failed) = asked.iter().find(|o| o.code != 0) {
            return Err(format!("chronyc failed: {}", failed.stderr.trim()));
        }
        sources(
            configured,
            &parse_chronyc_sources(&names.stdout)?,
            &parse_chronyc_sources(&addresses.stdout)?,
            &parse_chronyc_authdata(&auth.stdout)?,
        )
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
    /// `ntsserverkey FILE`, in any case; chrony takes several key and
    /// certificate pairs.
    fn nts_server_keys<'a>(&self, lines: &[Directive<'a>]) -> Vec<(usize, &'a str)> {
        lines
            .iter()
            .filter(|(_, w)| w[0].eq_ignore_ascii_case("ntsserverkey") && w.len() > 1)
            .map(|(n, w)| (*n, w[1]))
            .collect()
    }
}

fn lint_chrony(lines: &[(usize, Vec<&str>)]) -> Vec<Finding> {
    let mut findings = allow_all(lines);
    findings.extend(command_port(lines));
    findings
}

/// Remote hosts reach the command port only with both a `cmdallow` beyond
/// loopback and a `bindcmdaddress` off loopback (chronyd binds it to
/// 127.0.0.1 and ::1 and drops other hosts' requests by default): each
/// line is a finding, and says whether the other half is there.
fn command_port(lines: &[Directive]) -> Vec<Finding> {
    let mut allows: Vec<(usize, String)> = Vec::new();
    let mut binds: Vec<(usize, String)> = Vec::new();
    for (n, words) in lines {
        let (directive, args) = words.split_first().expect("directives have a word");
        // chrony compares directive names with strcasecmp: `CMDALLOW` is `cmdallow`.
        match directive.to_ascii_lowercase().as_str() {
            "cmdallow" => {
                let subnets: Vec<&str> = args.iter().copied().filter(|a| *a != "all").collect();
                let loopback = |s: &&str| chrony_subnet(s).is_some_and(Net::is_loopback);
                if subnets.is_empty() || !subnets.iter().all(loopback) {
                    allows.push((*n, words.join(" ")));
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
                    binds.push((*n, words.join(" ")));
                }
            }
            _ => {}
        }
    }
    let named = |lines: &[(usize, String)]| -> String {
        let named: Vec<String> = lines
            .iter()
            .map(|(n, t)| format!("`{t}` (line {n})"))
            .collect();
        named.join(", ")
    };
    let mut findings = Vec::new();
    for (n, text) in &allows {
        let reach = match binds.is_empty() {
            true => "but chronyd binds that port to 127.0.0.1 and ::1 unless a `bindcmdaddress` line moves it, so \
                     they reach it only once one does"
                .to_string(),
            false => format!("and {} puts it where they reach it", named(&binds)),
        };
        findings.push(Finding {
            rule: Rule::ChronyCmdallow,
            line: Some(*n),
            message: format!(
                "`{text}` lets hosts beyond 127.0.0.1 and ::1 send monitoring requests to the command port (UDP \
                 323), {reach}"
            ),
        });
    }
    for (n, text) in &binds {
        let reach = match allows.is_empty() {
            true => "no `cmdallow` line lets a remote host in yet: chronyd drops their requests until one does"
                .to_string(),
            false => format!("the hosts {} lets in reach it", named(&allows)),
        };
        findings.push(Finding {
            rule: Rule::ChronyCmdallow,
            line: Some(*n),
            message: format!(
                "`{text}` puts the command port (UDP 323) on a non-loopback address: {reach}"
            ),
        });
    }
    findings.sort_by_key(|f| f.line);
    findings
}

/// `allow`/`deny [all] [SUBNET]` as chrony reads them; `None` for other
/// directives, a line chrony refuses, and a hostname (one host, unknown
/// here).
fn access_rule(words: &[&str]) -> Option<chrony_access::Rule> {
    let (directive, args) = words.split_first()?;
    let allow = match directive.to_ascii_lowercase().as_str() {
        "allow" => true,
        "deny" => false,
        _ => return None,
    };
    let (all, subnet) = match args {
        [] => (false, None),
        ["all"] => (true, None),
        ["all", s] => (true, Some(*s)),
        [s] => (false, Some(*s)),
        _ => return None,
    };
    let subnet = match subnet {
        Some(s) => Some(chrony_subnet(s)?),
        None => None,
    };
    Some(chrony_access::Rule { allow, all, subnet })
}

/// The `allow` lines that together serve every address of a family, less
/// what `deny` lines take away as chrony orders them: one finding per line
/// that completes the union (both families at once for a bare `allow`).
fn allow_all(lines: &[Directive]) -> Vec<Finding> {
    let families = [Family::V4, Family::V6];
    let mut table = chrony_access::Table::default();
    let mut since: [Option<usize>; 2] = [None, None];
    let mut allows: Vec<(usize, chrony_access::Rule, String)> = Vec::new();
    for (n, words) in lines {
        let Some(rule) = access_rule(words) else {
            continue;
        };
        table.apply(rule);
        if rule.allow {
            allows.push((*n, rule, words.join(" ")));
        }
        for (i, family) in families.iter().enumerate() {
            since[i] = match table.allows_all(*family) {
                true => since[i].or(Some(*n)),
                false => None,
            };
        }
    }
    let mut findings: Vec<Finding> = Vec::new();
    for (i, family) in families.iter().enumerate() {
        let Some(line) = since[i] else { continue };
        if let Some(f) = findings.iter_mut().find(|f| f.line == Some(line)) {
            let first = format!("every {} address", families[0].name());
            let both = format!("every {} and {} address", families[0].name(), family.name());
            f.message = f.message.replace(&first, &both);
            continue;
        }
        let of_family = |r: &chrony_access::Rule| r.subnet.is_none_or(|s| s.family == *family);
        let used: Vec<&(usize, chrony_access::Rule, String)> = allows
            .iter()
            .filter(|(n, r, _)| *n <= line && of_family(r))
            .collect();
        let alone = used.iter().find(|(n, r, _)| {
            let mut one = chrony_access::Table::default();
            one.apply(*r);
            *n == line && one.allows_all(*family)
        });
        let message = match alone {
            Some((_, _, text)) => format!("`{text}` serves NTP to every {} address", family.name()),
            None => {
                let list: Vec<String> = used
                    .iter()
                    .map(|(n, _, t)| format!("`{t}` (line {n})"))
                    .collect();
                format!(
                    "{} together serve NTP to every {} address",
                    list.join(", "),
                    family.name()
                )
            }
        };
        findings.push(Finding {
            rule: Rule::ChronyAllowAll,
            line: Some(line),
            message,
        });
    }
    findings
}

/// `cmdallow` and `cmddeny` entries, when a `bindcmdaddress` opens the
/// command port beyond loopback (chronyd binds it to 127.0.0.1 and ::1
/// otherwise, and no other host reaches it). No subnet, or `all` alone, is
/// every address of both families.
fn command_access(lines: &[Directive]) -> Vec<super::QueryEntry> {
    let lower = |w: &str| w.to_ascii_lowercase();
    let reachable = lines.iter().any(|(_, w)| {
        lower(w[0]) == "bindcmdaddress"
            && w.get(1).is_some_and(|a| {
                !a.starts_with('/')
                    && a.parse::<IpAddr>().is_ok_and(|ip| {
                        Net::new(ip, if ip.is_ipv4() { 32 } else { 128 })
                            .is_some_and(|n| !n.is_loopback())
                    })
            })
    });
    if !reachable {
        return Vec::new();
    }
    let mut access = Vec::new();
    for (n, words) in lines {
        let open = match lower(words[0]).as_str() {
            "cmdallow" => true,
            "cmddeny" => false,
            _ => continue,
        };
        let subnets: Vec<&str> = words[1..].iter().copied().filter(|a| *a != "all").collect();
        let nets: Vec<Net> = if subnets.is_empty() {
            ["0.0.0.0/0", "::/0"]
                .iter()
                .filter_map(|s| Net::parse_cidr(s))
                .collect()
        } else {
            subnets.iter().filter_map(|s| chrony_subnet(s)).collect()
        };
        access.extend(nets.into_iter().map(|net| super::QueryEntry {
            line: *n,
            net,
            open,
        }));
    }
    access
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

/// `chronyc -n -c sources`: one CSV line per source,
/// `mode,state,name,stratum,poll,reach,lastRx,lastOffset,offsetAtMeasure,error`.
/// No line at all is no source (chronyc prints no header in CSV mode); a
/// daemon that could not be reached shows in chronyc's exit status, not here.
pub(super) fn parse_chronyc_sources(stdout: &str) -> Result<Vec<Peer>, String> {
    let lines = stdout.lines().filter(|l| !l.trim().is_empty());
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let [mode, state, name, st, poll, reach, _last_rx, offset, _measured, _error] =
                fields[..]
            else {
                return Err(format!("chronyc sources: expected 10 fields in {line:?}"));
            };
            if !matches!(mode, "^" | "=" | "#") {
                return Err(format!(
                    "chronyc sources: unknown mode {mode:?} in {line:?}"
                ));
            }
            Ok(Peer {
                remote: name.to_string(),
                refid: None,
                stratum: st.parse().ok(),
                reach: octal(reach),
                poll_seconds: poll.parse::<i32>().ok().and_then(log2_seconds),
                offset_ms: float(offset).map(|s| s * 1000.0),
                delay_ms: None,
                jitter_ms: None,
                selected: match state {
                    "*" => Selection::SystemPeer,
                    "+" => Selection::Candidate,
                    "-" => Selection::Outlier,
                    "x" => Selection::Falseticker,
                    "?" | "~" => Selection::Unusable,
                    _ => Selection::Unknown,
                },
            })
        })
        .collect()
}

/// Every source with the name as configured (`-N`), with its address
/// (`-n`; `ID#...` until its name resolves), and how each authenticates.
/// `-a` keeps the sources whose names did not resolve; the three list the
/// same sources in the same order.
const SOURCE_QUERIES: [&[&str]; 3] = [
    &["chronyc", "-N", "-c", "sources", "-a"],
    &["chronyc", "-n", "-c", "sources", "-a"],
    &["chronyc", "-N", "-c", "authdata", "-a"],
];

/// `server`, `pool` and `peer` lines, in any case as chrony reads them.
fn configured_sources(lines: &[Directive]) -> Vec<Configured> {
    lines
        .iter()
        .filter_map(|(_, words)| {
            let kind = match words[0].to_ascii_lowercase().as_str() {
                "server" => SourceKind::Server,
                "pool" => SourceKind::Pool,
                "peer" => SourceKind::Peer,
                _ => return None,
            };
            Some(Configured {
                kind,
                name: words.get(1)?.to_string(),
            })
        })
        .collect()
}

/// One line of `chronyc -c authdata`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuthData {
    /// `-` (none), `SK` (a symmetric key) or `NTS`.
    mode: String,
    /// NTS-KE sessions started since the last NTP answer with cookies.
    attempts: u32,
    /// NTS cookies held.
    cookies: u32,
}

impl AuthData {
    /// An NTS source whose key establishment failed: a session was started
    /// and there are no cookies. chronyd counts a session when it starts and
    /// sets the count back at the first answer with cookies; after a TLS
    /// failure (a certificate it does not trust) the next try is 1024 s
    /// later, so the count stays at 1 meanwhile. During the first handshake
    /// (well under a second on a reachable server) it reads the same.
    fn nts_failure(&self) -> Option<String> {
        (self.mode == "NTS" && self.cookies == 0 && self.attempts >= 1).then(|| {
            format!(
                "NTS key establishment failed: no cookies after {} attempt{}",
                self.attempts,
                if self.attempts == 1 { "" } else { "s" }
            )
        })
    }
}

/// `chronyc -c authdata`: `name,mode,keyid,type,klen,last,atmp,nak,cook,clen`.
fn parse_chronyc_authdata(stdout: &str) -> Result<Vec<AuthData>, String> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| match line.split(',').collect::<Vec<_>>()[..] {
            [_name, mode, _, _, _, _, attempts, _, cookies, _] => Ok(AuthData {
                mode: mode.to_string(),
                attempts: attempts.parse().unwrap_or(0),
                cookies: cookies.parse().unwrap_or(0),
            }),
            _ => Err(format!("chronyc authdata: expected 10 fields in {line:?}")),
        })
        .collect()
}

/// Ties each configured source to chrony's: the `-N` listing names them as
/// configured, the `-n` one in the same order gives their addresses. A pool
/// has an entry for each server it may use; those whose names did not
/// resolve are left out. A key or NTS authenticates a source once it
/// answers: chrony drops an answer that fails authentication.
fn sources(
    configured: &[Configured],
    names: &[Peer],
    addresses: &[Peer],
    auth: &[AuthData],
) -> Result<Vec<Source>, String> {
    if names.len() != addresses.len() || names.len() != auth.len() {
        return Err(format!(
            "chronyc: the sources changed between queries ({}, {} and {} listed); ask again",
            names.len(),
            addresses.len(),
            auth.len()
        ));
    }
    let mut claimed = vec![false; names.len()];
    Ok(configured
        .iter()
        .map(|c| {
            let mut found = Vec::new();
            for (i, name) in names.iter().enumerate() {
                if claimed[i] || !same_host(&c.name, &name.remote) {
                    continue;
                }
                claimed[i] = true;
                let a = &addresses[i];
                if !a.remote.starts_with("ID#") {
                    let authenticated = auth[i].mode != "-" && a.reach.is_some_and(|r| r > 0);
                    found.push(SourceAddress {
                        address: a.remote.clone(),
                        state: SourceState::of(a.reach, a.selected),
                        reach: a.reach,
                        authenticated,
                        nts: authenticated && auth[i].mode == "NTS",
                        nts_failure: auth[i].nts_failure(),
                    });
                }
                if c.kind != SourceKind::Pool {
                    break;
                }
            }
            Source::new(c, found)
        })
        .collect())
}

/// `chronyc -n -c tracking`: one CSV line of 14 fields. Unsynchronised when
/// the leap status says so, or the reference is unset (`00000000`, stratum 0).
pub(super) fn parse_chronyc_tracking(stdout: &str) -> Result<Sync, String> {
    let line = first_line(stdout).ok_or("chronyc tracking: no output")?;
    let fields: Vec<&str> = line.split(',').collect();
    let [ref_id, name, st, _ref_time, system_offset, _last, _rms, _freq, _resid, _skew, _root_delay, _root_disp, _interval, leap] =
        fields[..]
    else {
        return Err(format!("chronyc tracking: expected 14 fields in {line:?}"));
    };
    let stratum: Option<u8> = st.parse().ok();
    let no_reference = ref_id.trim_start_matches('0').is_empty();
    // A reference without an address (the `local` directive: 7F7F0101) has
    // an empty name; its hex ID is then the only name it has.
    let refid = match (name, no_reference) {
        ("", true) => None,
        ("", false) => Some(ref_id.to_string()),
        (name, _) => Some(name.to_string()),
    };
    Ok(Sync {
        synchronised: leap != "Not synchronised" && !no_reference && stratum != Some(0),
        stratum,
        offset_ms: float(system_offset).map(|s| s * 1000.0),
        refid,
        leap: Some(leap.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemons::sync::tests::selections;
    use crate::daemons::sync::Selection;

    // chrony 4.3 (Debian 12): selected, combined, not combined, falseticker,
    // too variable, an IPv6 source, a never-reached one (lastRx 2^32-1), and
    // refclocks with negative (sub-second) polls.
    const CHRONYC_SOURCES: &str = concat!(
        "^,*,162.159.200.1,3,6,377,41,0.000085620,0.000103474,0.011468376\n",
        "^,+,2606:4700:f1::1,3,6,377,42,-0.000187417,-0.000169564,0.011497023\n",
        "^,-,185.125.190.56,2,10,377,514,0.000963449,0.000981303,0.026587946\n",
        "^,x,203.0.113.50,2,6,377,40,0.215734000,0.215752000,0.030331000\n",
        "^,~,198.51.100.9,2,6,17,3,-0.001843000,-0.001843000,0.074012000\n",
        "^,?,192.0.2.99,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "#,-,GPS,0,4,377,12,0.071234000,0.071234000,0.200000000\n",
        "#,*,PPS,0,-4,377,0,-0.000000312,-0.000000312,0.000000451\n",
        "=,+,192.0.2.5,3,8,1,90,0.000412000,0.000412000,0.001100000\n",
    );

    #[test]
    fn chronyc_sources() {
        let peers = parse_chronyc_sources(CHRONYC_SOURCES).unwrap();
        let summary = selections(&peers);
        assert_eq!(
            summary,
            [
                ("162.159.200.1", Selection::SystemPeer),
                ("2606:4700:f1::1", Selection::Candidate),
                ("185.125.190.56", Selection::Outlier),
                ("203.0.113.50", Selection::Falseticker),
                ("198.51.100.9", Selection::Unusable),
                ("192.0.2.99", Selection::Unusable),
                ("GPS", Selection::Outlier),
                ("PPS", Selection::SystemPeer),
                ("192.0.2.5", Selection::Candidate),
            ]
        );
        let first = &peers[0];
        assert_eq!(
            (
                first.stratum,
                first.reach,
                first.poll_seconds,
                first.refid.as_ref()
            ),
            (Some(3), Some(255), Some(64), None)
        );
        assert!((first.offset_ms.unwrap() - 0.085620).abs() < 1e-9);
        assert_eq!((first.delay_ms, first.jitter_ms), (None, None));
        assert_eq!(peers[2].poll_seconds, Some(1024));
        assert_eq!(peers[4].reach, Some(0o17));
        assert_eq!(
            (peers[5].stratum, peers[5].reach, peers[5].offset_ms),
            (Some(0), Some(0), Some(0.0))
        );
        assert_eq!(peers[6].poll_seconds, Some(16));
        assert_eq!(peers[7].poll_seconds, Some(0));
    }

    #[test]
    fn chronyc_without_sources_is_an_empty_list() {
        // CSV mode prints no header, so no sources is no output at all.
        assert_eq!(parse_chronyc_sources(""), Ok(vec![]));
        assert_eq!(parse_chronyc_sources("\n"), Ok(vec![]));
    }

    #[test]
    fn chronyc_sources_rejects_other_text() {
        // The human-readable table, or tracking's CSV, is not `sources -c`.
        assert!(parse_chronyc_sources(
            "MS Name/IP address         Stratum Poll Reach LastRx Last sample\n"
        )
        .is_err());
        assert!(parse_chronyc_sources(CHRONYC_TRACKING_SYNCED).is_err());
        assert!(parse_chronyc_sources("?,*,a,b,c,d,e,f,g,h\n").is_err());
    }

    const CHRONYC_TRACKING_SYNCED: &str =
        "A29FC801,162.159.200.1,4,1718000000.123456789,-0.000012345,0.000003456,0.000123456,-12.345,-0.001,0.023,0.011223344,0.000456789,1030.5,Normal\n";

    #[test]
    fn chronyc_tracking_synchronised() {
        let sync = parse_chronyc_tracking(CHRONYC_TRACKING_SYNCED).unwrap();
        assert!(sync.synchronised);
        assert_eq!(sync.stratum, Some(4));
        assert_eq!(sync.refid.as_deref(), Some("162.159.200.1"));
        assert_eq!(sync.leap.as_deref(), Some("Normal"));
        assert!((sync.offset_ms.unwrap() + 0.012345).abs() < 1e-9);
    }

    #[test]
    fn chronyc_tracking_unsynchronised() {
        // Right after start, or with every source unreachable.
        let out = "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,-12.345,0.000,0.000,1.000000000,1.000000000,0.0,Not synchronised\n";
        let sync = parse_chronyc_tracking(out).unwrap();
        assert_eq!(
            sync,
            Sync {
                synchronised: false,
                stratum: Some(0),
                offset_ms: Some(0.0),
                refid: None,
                leap: Some("Not synchronised".into()),
            }
        );
        // A zero reference ID alone is enough.
        let out = "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,-12.345,0.000,0.000,1.000000000,1.000000000,0.0,Normal\n";
        assert!(!parse_chronyc_tracking(out).unwrap().synchronised);
    }

    #[test]
    fn chronyc_tracking_local_reference_has_no_name() {
        // `local stratum 10`: chrony serves its own clock.
        let out = "7F7F0101,,10,1718000000.000000000,0.000000000,0.000000000,0.000000000,-12.345,0.000,0.000,0.000000000,0.000010000,16.0,Normal\n";
        let sync = parse_chronyc_tracking(out).unwrap();
        assert!(sync.synchronised);
        assert_eq!(
            (sync.stratum, sync.refid.as_deref()),
            (Some(10), Some("7F7F0101"))
        );
    }

    #[test]
    fn chronyc_tracking_errors() {
        assert!(parse_chronyc_tracking("").is_err());
        assert!(parse_chronyc_tracking("^,*,162.159.200.1,3,6,377,41,0.0,0.0,0.0\n").is_err());
    }

    /// The sources a config names, read as status reads it.
    fn configured(config: &str) -> Vec<Configured> {
        configured_sources(&crate::daemons::directives(Flavor::CHRONY, config))
    }

    // Recorded on Debian 11, chrony 4.0, with /etc/hosts giving
    // a-very-long-server-name.ntp.test 127.0.0.2, one.ntp.test 127.0.0.1
    // (already a server: chrony keeps it unresolved) and pool.ntp.test
    // 127.0.0.3 and .4. `-a` lists the unresolved ones too; a pool has an
    // entry per server it may use. (`Server`: chrony reads directive names
    // in any case.)
    const CHRONY_CONFIG: &str = "\
server 127.0.0.1 iburst
server one.ntp.test iburst
server a-very-long-server-name.ntp.test iburst
Server unresolvable.invalid iburst
pool pool.ntp.test iburst
pool nopool.invalid iburst
bindcmdaddress 127.0.0.1
";
    const CHRONYC_NAMES: &str = concat!(
        "^,?,127.0.0.1,0,7,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,one.ntp.test,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,a-very-long-server-name.ntp.test,0,7,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,unresolvable.invalid,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,pool.ntp.test,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,pool.ntp.test,0,7,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,pool.ntp.test,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,pool.ntp.test,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,pool.ntp.test,0,7,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,pool.ntp.test,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,pool.ntp.test,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,pool.ntp.test,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,nopool.invalid,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,nopool.invalid,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,nopool.invalid,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,nopool.invalid,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,nopool.invalid,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,nopool.invalid,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,nopool.invalid,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,nopool.invalid,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
    );
    const CHRONYC_ADDRESSES: &str = concat!(
        "^,?,127.0.0.1,0,7,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000001,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,127.0.0.2,0,7,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000003,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000004,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,127.0.0.3,0,7,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000006,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000007,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,127.0.0.4,0,7,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000009,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000010,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000011,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000012,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000013,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000014,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000015,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000016,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000017,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000018,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
        "^,?,ID#0000000019,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n",
    );
    const CHRONYC_AUTHDATA: &str = concat!(
        "127.0.0.1,-,0,0,0,4294967295,0,0,0,0\n",
        "one.ntp.test,-,0,0,0,4294967295,0,0,0,0\n",
        "a-very-long-server-name.ntp.test,-,0,0,0,4294967295,0,0,0,0\n",
        "unresolvable.invalid,-,0,0,0,4294967295,0,0,0,0\n",
        "pool.ntp.test,-,0,0,0,4294967295,0,0,0,0\n",
        "pool.ntp.test,-,0,0,0,4294967295,0,0,0,0\n",
        "pool.ntp.test,-,0,0,0,4294967295,0,0,0,0\n",
        "pool.ntp.test,-,0,0,0,4294967295,0,0,0,0\n",
        "pool.ntp.test,-,0,0,0,4294967295,0,0,0,0\n",
        "pool.ntp.test,-,0,0,0,4294967295,0,0,0,0\n",
        "pool.ntp.test,-,0,0,0,4294967295,0,0,0,0\n",
        "pool.ntp.test,-,0,0,0,4294967295,0,0,0,0\n",
        "nopool.invalid,-,0,0,0,4294967295,0,0,0,0\n",
        "nopool.invalid,-,0,0,0,4294967295,0,0,0,0\n",
        "nopool.invalid,-,0,0,0,4294967295,0,0,0,0\n",
        "nopool.invalid,-,0,0,0,4294967295,0,0,0,0\n",
        "nopool.invalid,-,0,0,0,4294967295,0,0,0,0\n",
        "nopool.invalid,-,0,0,0,4294967295,0,0,0,0\n",
        "nopool.invalid,-,0,0,0,4294967295,0,0,0,0\n",
        "nopool.invalid,-,0,0,0,4294967295,0,0,0,0\n",
    );

    fn chrony_sources(
        config: &str,
        names: &str,
        addresses: &str,
        auth: &str,
    ) -> Result<Vec<Source>, String> {
        let asked = [
            Output::said(0, names),
            Output::said(0, addresses),
            Output::said(0, auth),
        ];
        Chrony.sources(&configured(config), &Output::said(0, ""), &asked)
    }

    #[test]
    fn chronyc_sources_by_name_as_configured_unresolved_ones_included() {
        let sources = chrony_sources(
            CHRONY_CONFIG,
            CHRONYC_NAMES,
            CHRONYC_ADDRESSES,
            CHRONYC_AUTHDATA,
        )
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
                    SourceState::Unresolved,
                    vec![]
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
                    vec!["127.0.0.3", "127.0.0.4"]
                ),
                (
                    SourceKind::Pool,
                    "nopool.invalid",
                    SourceState::Unresolved,
                    vec![]
                ),
            ]
        );
        assert_eq!(sources[0].addresses[0].reach, Some(0));
    }

    #[test]
    fn chronyc_selected_and_nts_sources() {
        let config = "server time.cloudflare.com iburst nts\npool 2.debian.pool.ntp.org iburst\n";
        let names = concat!(
            "^,*,time.cloudflare.com,3,6,377,41,0.000085620,0.000103474,0.011468376\n",
            "^,+,2.debian.pool.ntp.org,2,6,377,42,-0.000187417,-0.000169564,0.011497023\n",
            "^,?,2.debian.pool.ntp.org,2,6,0,4294967295,0.0,0.0,0.0\n",
        );
        let addresses = concat!(
            "^,*,162.159.200.1,3,6,377,41,0.000085620,0.000103474,0.011468376\n",
            "^,+,2606:4700:f1::1,2,6,377,42,-0.000187417,-0.000169564,0.011497023\n",
            "^,?,192.0.2.99,2,6,0,4294967295,0.0,0.0,0.0\n",
        );
        let auth = concat!(
            "time.cloudflare.com,NTS,1,15,256,33,0,0,8,100\n",
            "2.debian.pool.ntp.org,-,0,0,0,4294967295,0,0,0,0\n",
            "2.debian.pool.ntp.org,-,0,0,0,4294967295,0,0,0,0\n",
        );
        let sources = chrony_sources(config, names, addresses, auth).unwrap();
        assert_eq!(
            (sources[0].state, sources[0].authenticated),
            (SourceState::Selected, true)
        );
        let pool: Vec<(&str, SourceState)> = sources[1]
            .addresses
            .iter()
            .map(|a| (a.address.as_str(), a.state))
            .collect();
        assert_eq!(
            pool,
            [
                ("2606:4700:f1::1", SourceState::Selected),
                ("192.0.2.99", SourceState::Unreachable)
            ]
        );
        assert!(!sources[1].authenticated);
    }

    #[test]
    fn chronyc_nts_key_establishment_that_failed_is_said() {
        let config = "server 10.123.0.50 iburst nts\n";
        let listing = "^,?,10.123.0.50,0,6,0,4294967295,0.000000000,0.000000000,0.000000000\n";
        // Recorded on bookworm's chrony 4.3 (tests/node/nts.rs) given another
        // CA: one attempt, no cookies, the next try 1024 s later.
        let failed = "10.123.0.50,NTS,0,0,0,4294967295,1,0,0,0\n";
        let sources = chrony_sources(config, listing, listing, failed).unwrap();
        assert_eq!((sources[0].nts, sources[0].authenticated), (false, false));
        assert_eq!(
            sources[0].nts_failure.as_deref(),
            Some("NTS key establishment failed: no cookies after 1 attempt")
        );
        let selected = "^,*,10.123.0.50,8,1,377,1,0.000001,0.000001,0.0001\n";
        let good = "10.123.0.50,NTS,1,15,256,3,0,0,8,64\n";
        let sources = chrony_sources(config, selected, selected, good).unwrap();
        assert_eq!((sources[0].nts, &sources[0].nts_failure), (true, &None));
        // Not started yet: nothing to say.
        let fresh = "10.123.0.50,NTS,0,0,0,4294967295,0,0,0,0\n";
        let sources = chrony_sources(config, listing, listing, fresh).unwrap();
        assert_eq!(sources[0].nts_failure, None);
    }

    #[test]
    fn chronyc_lists_that_differ_or_fail_are_errors() {
        let err = chrony_sources(CHRONY_CONFIG, CHRONYC_NAMES, "", CHRONYC_AUTHDATA).unwrap_err();
        assert!(err.contains("the sources changed between queries"), "{err}");
        let failed = Output {
            code: 1,
            stderr: "506 Cannot talk to daemon\n".into(),
            ..Output::said(0, "")
        };
        let asked = [failed.clone(), failed.clone(), failed];
        let err = Chrony
            .sources(&configured(CHRONY_CONFIG), &Output::said(0, ""), &asked)
            .unwrap_err();
        assert!(err.contains("506 Cannot talk to daemon"), "{err}");
        assert_eq!(
            Chrony.source_query(&[]).unwrap(),
            ["chronyc", "-N", "-c", "sources", "-a"]
        );
        assert_eq!(
            Chrony.source_query(&[
                Output::said(0, ""),
                Output::said(0, ""),
                Output::said(0, "")
            ]),
            None
        );
        assert!(parse_chronyc_authdata("a,b\n").is_err());
        assert_eq!(parse_chronyc_authdata(""), Ok(vec![]));
    }
}
