//! The access-control lint: reads every daemon config the plan would write
//! and names every setting that lets the node answer queries it should not
//! (mode 6/7 amplification, open command ports, listening everywhere).
//!
//! Run by `plan` and `apply` after the diff and before any change: a finding
//! refuses the run unless the plan lists its rule under `allow_insecure`.
//! Must not: read the node or run anything. `lint` and `conflicts` are pure
//! functions of (flavor, config text, daemon version); `for_plan` only picks
//! those out of the rendered steps, the facts and the changeset.

use crate::daemon::{Daemon, Flavor};
use crate::diff::{Change, Changeset};
use crate::facts::dpkg::DpkgState;
use crate::facts::{version, Facts};
use crate::plan::names::{AbsPath, PackageName};
use crate::plan::step::Action;
use crate::plan::Rendered;
use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A lint rule; its name is stable (plans list it in `allow_insecure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    Ipv6DefaultMissing,
    KodWithoutLimited,
    NoqueryMissing,
    NoqueryMissingNetwork,
    NomodifyMissing,
    MonitorEnabled,
    ChronyAllowAll,
    ChronyCmdallow,
    OpenntpdListenAny,
    IncludeNotLinted,
}

impl Rule {
    pub const ALL: [Rule; 10] = [
        Rule::Ipv6DefaultMissing,
        Rule::KodWithoutLimited,
        Rule::NoqueryMissing,
        Rule::NoqueryMissingNetwork,
        Rule::NomodifyMissing,
        Rule::MonitorEnabled,
        Rule::ChronyAllowAll,
        Rule::ChronyCmdallow,
        Rule::OpenntpdListenAny,
        Rule::IncludeNotLinted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::Ipv6DefaultMissing => "ipv6-default-missing",
            Rule::KodWithoutLimited => "kod-without-limited",
            Rule::NoqueryMissing => "noquery-missing",
            Rule::NoqueryMissingNetwork => "noquery-missing-network",
            Rule::NomodifyMissing => "nomodify-missing",
            Rule::MonitorEnabled => "monitor-enabled",
            Rule::ChronyAllowAll => "chrony-allow-all",
            Rule::ChronyCmdallow => "chrony-cmdallow",
            Rule::OpenntpdListenAny => "openntpd-listen-any",
            Rule::IncludeNotLinted => "include-not-linted",
        }
    }

    pub fn parse(name: &str) -> Result<Rule, String> {
        Rule::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
                format!("{name:?} is not a lint rule ({})", known.join(", "))
            })
    }

    /// What an attacker gains, in one or two sentences.
    pub fn risk(self) -> &'static str {
        match self {
            Rule::Ipv6DefaultMissing => {
                "IPv6 hosts are not covered by the default restrict entry and get the daemon's built-in \
                 default instead, which on classic ntpd answers every mode 6/7 query: the node is a DRDoS \
                 reflector over IPv6 (CVE-2013-5211)."
            }
            Rule::KodWithoutLimited => {
                "kod does nothing without limited (ntpd logs it): clients that flood the node are neither \
                 rate-limited nor told to back off."
            }
            Rule::NoqueryMissing => {
                "any host can send mode 6 (and on classic ntpd mode 7) queries: a 12-byte READVAR returns \
                 about 30 times its size and monlist up to thousands of times, so requests with a forged \
                 source make the node a DRDoS reflector (CVE-2013-5211)."
            }
            Rule::NoqueryMissingNetwork => {
                "ntpd and NTPsec apply the most specific matching restrict entry, so every host of this \
                 public network gets this entry instead of the default one and can send mode 6 (and on \
                 classic ntpd mode 7) queries: a DRDoS reflector for that network (CVE-2013-5211)."
            }
            Rule::NomodifyMissing => {
                "any host can send mode 6/7 configuration requests (ntpq :config), guarded only by the \
                 control key."
            }
            Rule::MonitorEnabled => {
                "classic ntpd before 4.2.7p26 answers monlist (mode 7 MON_GETLIST) with up to 600 recent \
                 clients, several thousand times the 48-byte request: the amplifier of CVE-2013-5211."
            }
            Rule::ChronyAllowAll => {
                "the node serves time to every address: chrony has no mode 6/7, so no amplification, but it \
                 becomes a public server that requests with a forged source bounce off."
            }
            Rule::ChronyCmdallow => {
                "chronyc's command port (UDP 323) answers monitoring requests such as `clients` with more \
                 than the request to every host it is opened to: an amplifier and an information leak."
            }
            Rule::OpenntpdListenAny => {
                "OpenNTPD answers time requests on every address from every host: no mode 6/7, so no \
                 amplification, but a public server that requests with a forged source bounce off."
            }
            Rule::IncludeNotLinted => {
                "the lint reads this file only: access control in the included files (a restrict entry \
                 without noquery, an allow or cmdallow for everyone) goes unchecked, and any file dropped \
                 there later changes what the daemon answers."
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One rule broken by one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    /// 1-based line that breaks the rule; `None` when a line is missing.
    pub line: Option<usize>,
    /// What is wrong in this config.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.rule)?;
        if let Some(n) = self.line {
            write!(f, " (line {n})")?;
        }
        write!(f, ": {}; risk: {}", self.message, self.rule.risk())
    }
}

/// Every finding for `config`, in rule order. `version` is the daemon
/// package's Debian version (installed, or the one apply will install).
pub fn lint(flavor: Flavor, config: &str, version: Option<&str>) -> Vec<Finding> {
    let lines = directives(flavor, config);
    let mut findings = match flavor {
        Flavor::Ntpd | Flavor::Ntpsec => lint_ntp(flavor, &lines, version),
        Flavor::Chrony => lint_chrony(&lines),
        Flavor::Openntpd => lint_openntpd(&lines),
    };
    findings.extend(includes(flavor, &lines));
    findings.sort_by_key(|f| f.rule);
    findings
}

/// Directives that read other files into the config: ntpd's and NTPsec's
/// `includefile`, chrony's `include` and `confdir` (chrony matches names in
/// any case). OpenNTPD's ntpd.conf has no include. chrony's `sourcedir`
/// reads time sources only, no access control: not a finding.
fn includes(flavor: Flavor, lines: &[(usize, Vec<&str>)]) -> Vec<Finding> {
    let reads_files = |directive: &str| match flavor {
        Flavor::Ntpd | Flavor::Ntpsec => directive == "includefile",
        Flavor::Chrony => {
            directive.eq_ignore_ascii_case("include") || directive.eq_ignore_ascii_case("confdir")
        }
        Flavor::Openntpd => false,
    };
    lines
        .iter()
        .filter(|(_, words)| reads_files(words[0]))
        .map(|(n, words)| Finding {
            rule: Rule::IncludeNotLinted,
            line: Some(*n),
            message: format!(
                "`{}` reads {} into the config, and the lint does not read it",
                words.join(" "),
                words.get(1).map_or("other files", |w| *w)
            ),
        })
        .collect()
}

/// (1-based line number, words) of each directive, comments dropped.
fn directives(flavor: Flavor, text: &str) -> Vec<(usize, Vec<&str>)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.split('#').next().unwrap_or("");
            // chrony also takes !, ; and % as comment starts at the beginning of a line.
            if flavor == Flavor::Chrony && line.trim_start().starts_with(['!', ';', '%']) {
                return None;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            (!words.is_empty()).then_some((i + 1, words))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// A block of addresses: the first `prefix` bits of `bits` (an IPv4
/// address in the low 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    family: Family,
    bits: u128,
    prefix: u32,
}

impl Net {
    /// `addr/prefix`, the address masked; `None` for a prefix too long.
    fn new(addr: IpAddr, prefix: u32) -> Option<Net> {
        let (family, bits) = match addr {
            IpAddr::V4(a) => (Family::V4, u128::from(u32::from(a))),
            IpAddr::V6(a) => (Family::V6, u128::from(a)),
        };
        let net = Net {
            family,
            bits,
            prefix,
        };
        (prefix <= net.width()).then(|| Net {
            bits: bits & net.mask(),
            ..net
        })
    }

    fn parse_cidr(s: &str) -> Option<Net> {
        let (addr, prefix) = s.split_once('/')?;
        Net::new(addr.parse().ok()?, prefix.parse().ok()?)
    }

    fn width(self) -> u32 {
        match self.family {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    fn mask(self) -> u128 {
        let ones = match self.family {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        };
        match self.prefix {
            0 => 0,
            p => (ones << (self.width() - p)) & ones,
        }
    }

    /// Every address of its family.
    fn everything(self) -> bool {
        self.prefix == 0
    }

    fn single_host(self) -> bool {
        self.prefix == self.width()
    }

    fn contains(self, other: Net) -> bool {
        self.family == other.family
            && self.prefix <= other.prefix
            && other.bits & self.mask() == self.bits
    }

    fn within(self, blocks: &[&str]) -> bool {
        blocks
            .iter()
            .filter_map(|b| Net::parse_cidr(b))
            .any(|b| b.contains(self))
    }

    fn is_loopback(self) -> bool {
        self.within(&LOOPBACK)
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr: IpAddr = match self.family {
            Family::V4 => Ipv4Addr::from(self.bits as u32).into(),
            Family::V6 => Ipv6Addr::from(self.bits).into(),
        };
        write!(f, "{addr}/{}", self.prefix)
    }
}

const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// Networks a restrict entry may open without reaching the internet:
/// loopback, RFC 1918, IPv6 ULA and link-local.
const PRIVATE: [&str; 8] = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
];

/// A numeric address as getaddrinfo(AI_NUMERICHOST) reads it: IPv6 with an
/// optional `%zone`, IPv4 in every inet_aton spelling ("0", "0x7f.1",
/// "010.0.0.1").
fn parse_addr(s: &str) -> Option<IpAddr> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some(a);
    }
    if let Some((a, zone)) = s.split_once('%') {
        if let (false, Ok(a)) = (zone.is_empty(), a.parse::<Ipv6Addr>()) {
            return Some(a.into());
        }
    }
    inet_aton(s).map(IpAddr::V4)
}

/// glibc's inet_aton: one to four parts, each decimal, octal (leading 0)
/// or hex (0x); the last part fills the bytes left.
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let part = |p: &str| -> Option<u32> {
        let (digits, radix) = match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            Some(hex) => (hex, 16),
            None if p.len() > 1 && p.starts_with('0') => (&p[1..], 8),
            None => (p, 10),
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        u32::from_str_radix(digits, radix).ok()
    };
    let parts: Vec<u32> = s.split('.').map(part).collect::<Option<_>>()?;
    let (last, init) = parts.split_last()?;
    if init.len() > 3 || init.iter().any(|p| *p > 255) {
        return None;
    }
    if init.is_empty() {
        return Some(Ipv4Addr::from(*last));
    }
    let rest_bits = 8 * (4 - init.len() as u32);
    if u64::from(*last) >= 1u64 << rest_bits {
        return None;
    }
    let high = init.iter().fold(0u32, |v, p| (v << 8) | p);
    Some(Ipv4Addr::from((high << rest_bits) | last))
}

/// Prefix length of a netmask; a mask with holes counts its leading ones
/// (the block it covers lies inside that prefix).
fn mask_prefix(mask: IpAddr) -> u32 {
    match mask {
        IpAddr::V4(m) => u32::from(m).leading_ones(),
        IpAddr::V6(m) => u128::from(m).leading_ones(),
    }
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

/// `ADDRESS`, `ADDRESS mask MASK` or NTPsec's `ADDRESS/PREFIX`; with both a
/// prefix and a mask, the larger block.
fn ntp_net(address: &str, mask: Option<&str>) -> Option<Net> {
    let (addr, cidr) = match address.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u32>().ok()?)),
        None => (address, None),
    };
    let addr = parse_addr(addr)?;
    let masked = match mask {
        Some(m) => {
            let m = parse_addr(m)?;
            if m.is_ipv4() != addr.is_ipv4() {
                return None;
            }
            Some(mask_prefix(m))
        }
        None => None,
    };
    let width = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match (cidr, masked) {
        (Some(c), Some(m)) => c.min(m),
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) => width,
    };
    Net::new(addr, prefix)
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

/// classic ntpd stopped answering monlist in this upstream version.
const MONLIST_REMOVED: &str = "4.2.7p26";

fn lint_ntp(flavor: Flavor, lines: &[(usize, Vec<&str>)], version: Option<&str>) -> Vec<Finding> {
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

    if flavor == Flavor::Ntpd {
        let upstream = version.map(upstream_version);
        let fixed =
            upstream.is_some_and(|v| version::compare(v, MONLIST_REMOVED) != Ordering::Less);
        if !fixed && monitor_enabled(lines) {
            let message = match upstream {
                Some(v) => format!("ntpd {v} is older than {MONLIST_REMOVED} and the config has no `disable monitor`"),
                None => format!(
                    "the ntpd version is not known, so it may be older than {MONLIST_REMOVED}, and the config has no \
                     `disable monitor`"
                ),
            };
            findings.push(Finding {
                rule: Rule::MonitorEnabled,
                line: None,
                message,
            });
        }
    }
    findings
}

/// Whether the last `enable`/`disable` line naming `monitor` leaves it on
/// (ntpd's default).
fn monitor_enabled(lines: &[(usize, Vec<&str>)]) -> bool {
    let mut enabled = true;
    for (_, words) in lines {
        match words.split_first() {
            Some((&"disable", flags)) if flags.contains(&"monitor") => enabled = false,
            Some((&"enable", flags)) if flags.contains(&"monitor") => enabled = true,
            _ => {}
        }
    }
    enabled
}

/// `1:4.2.8p15+dfsg-1ubuntu2` -> `4.2.8p15+dfsg`: the epoch and the Debian
/// revision say nothing about which upstream fix is in.
fn upstream_version(v: &str) -> &str {
    let v = v.trim();
    let v = match v.split_once(':') {
        Some((epoch, rest)) if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) => {
            rest
        }
        _ => v,
    };
    v.rsplit_once('-').map_or(v, |(upstream, _)| upstream)
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

/// chrony's subnet syntax: `192.0.2.1`, `10/8`, `10.0.0.0/8`, `::1/128`,
/// `0/0`, a partial IPv4 address (`10`, `192.168`: that many octets as the
/// prefix), and a dotted mask after `/`; `None` for a hostname.
fn chrony_subnet(subnet: &str) -> Option<Net> {
    let (addr, bits) = match subnet.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (subnet, None),
    };
    let (ip, default_prefix) = match addr.parse::<IpAddr>() {
        Ok(ip) => (ip, if ip.is_ipv4() { 32 } else { 128 }),
        Err(_) => {
            let octets: Vec<u8> = addr
                .split('.')
                .map(|o| o.parse::<u8>().ok())
                .collect::<Option<_>>()?;
            if octets.is_empty() || octets.len() > 3 {
                return None;
            }
            let mut full = [0u8; 4];
            full[..octets.len()].copy_from_slice(&octets);
            (IpAddr::from(full), 8 * octets.len() as u32)
        }
    };
    let prefix = match bits {
        None => default_prefix,
        Some(b) => match b.parse::<u32>() {
            Ok(p) => p,
            Err(_) => mask_prefix(b.parse::<IpAddr>().ok()?),
        },
    };
    Net::new(ip, prefix)
}

/// chrony keeps only the last `bindaddress` of each address family: more
/// than one would silently drop all but the last. One message per family.
pub fn conflicts(flavor: Flavor, config: &str) -> Vec<String> {
    if flavor != Flavor::Chrony {
        return Vec::new();
    }
    let lines = directives(flavor, config);
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

/// A daemon config a plan writes, linted.
#[derive(Debug, Clone, PartialEq)]
pub struct Linted {
    pub config: AbsPath,
    pub flavor: Flavor,
    pub version: Option<String>,
    /// The step that writes it, for messages: `step "NTP config"` or
    /// `handler "..."`.
    pub step: String,
    /// Whether it is the resolved daemon's own config (the one the check
    /// after apply probes).
    pub for_daemon: bool,
    pub findings: Vec<Finding>,
    /// Settings the daemon would not honour as the plan means them (see
    /// `conflicts`): refused whatever `allow_insecure` says.
    pub conflicts: Vec<String>,
}

/// What a run should know before it changes anything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanLint {
    /// Every template (steps, then handlers, in plan order) that writes the
    /// resolved daemon's config or a known daemon config path: each is
    /// written, so each can be live during the run.
    pub linted: Vec<Linted>,
    /// The resolved daemon's config, when no template writes it.
    pub not_templated: Option<AbsPath>,
}

/// Lints the content of every template the plan writes to a daemon config:
/// the resolved daemon's `config` (for its flavor), or any of the known
/// paths (`Flavor::config`, for the flavor the path belongs to). The
/// version is the daemon's that will run (the one this changeset installs,
/// else the installed one, else the archive's candidate); for another
/// flavor's path, that flavor package's installed or candidate version as
/// the facts know it.
pub fn for_plan(rendered: &Rendered, facts: &Facts, changeset: &Changeset) -> PlanLint {
    let daemon = facts.daemon.as_ref();
    let steps = rendered
        .steps
        .iter()
        .map(|s| ("step", s))
        .chain(rendered.handlers.iter().map(|s| ("handler", s)));
    let mut linted = Vec::new();
    for (kind, step) in steps {
        let Action::Template(t) = &step.action else {
            continue;
        };
        let (flavor, version, for_daemon) = match daemon {
            Some(d) if t.dest == d.config => (d.flavor, daemon_version(d, facts, changeset), true),
            _ => match Flavor::ALL.into_iter().find(|f| f.config() == t.dest) {
                Some(f) => (f, fact_version(&f.package(), facts), false),
                None => continue,
            },
        };
        linted.push(Linted {
            config: t.dest.clone(),
            flavor,
            step: format!("{kind} {:?}", step.name),
            for_daemon,
            findings: lint(flavor, &t.content, version.as_deref()),
            conflicts: conflicts(flavor, &t.content),
            version,
        });
    }
    let not_templated = daemon
        .filter(|_| !linted.iter().any(|l| l.for_daemon))
        .map(|d| d.config.clone());
    PlanLint {
        linted,
        not_templated,
    }
}

fn daemon_version(daemon: &Daemon, facts: &Facts, changeset: &Changeset) -> Option<String> {
    let installing = changeset
        .steps
        .iter()
        .flat_map(|s| &s.changes)
        .find_map(|c| match c {
            Change::Install { packages } => packages
                .iter()
                .find(|p| p.package == daemon.package)
                .and_then(|p| p.after.clone()),
            _ => None,
        });
    installing.or_else(|| fact_version(&daemon.package, facts))
}

/// The installed version of `package`, else its candidate, as the facts
/// know them.
fn fact_version(package: &PackageName, facts: &Facts) -> Option<String> {
    let fact = facts.packages.get(package);
    match fact.map(|f| &f.dpkg) {
        Some(DpkgState::Installed { version }) => Some(version.clone()),
        _ => fact.and_then(|f| f.candidate.clone()),
    }
}

/// Splits the findings of every linted template into refusals and those the
/// plan allows; `Err` is the report's error (what, where and why), `Ok` the
/// notes for allowed findings. Conflicts refuse whatever the plan allows.
pub fn judge(plan: &PlanLint, allow: &[Rule]) -> Result<Vec<String>, String> {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let mut names: Vec<Rule> = Vec::new();
    for linted in &plan.linted {
        if !linted.conflicts.is_empty() {
            errors.push(format!(
                "{} as the plan would write it in {} does not work as intended: {}.",
                linted.config,
                linted.step,
                linted.conflicts.join("; ")
            ));
        }
        let (allowed, refused): (Vec<&Finding>, Vec<&Finding>) = linted
            .findings
            .iter()
            .partition(|f| allow.contains(&f.rule));
        if !refused.is_empty() {
            let items: Vec<String> = refused.iter().map(|f| f.to_string()).collect();
            errors.push(format!(
                "{} as the plan would write it fails the access-control lint in {}: {}",
                linted.config,
                linted.step,
                items.join(" ")
            ));
            names.extend(refused.iter().map(|f| f.rule));
        }
        notes.extend(
            allowed
                .iter()
                .map(|f| format!("allowed by allow_insecure: {}: {f}", linted.config)),
        );
    }
    if errors.is_empty() {
        return Ok(notes);
    }
    let mut error = errors.join(" ");
    if !names.is_empty() {
        names.sort();
        names.dedup();
        let names: Vec<&str> = names.iter().map(|r| r.name()).collect();
        error.push_str(&format!(
            " If this is intended, list the rule in the plan: allow_insecure: [{}]",
            names.join(", ")
        ));
    }
    Err(error)
}

#[cfg(test)]
mod tests;
