//! Everything ntp-provision knows about each NTP daemon, one file per daemon
//! behind one trait, and the one list of them (`REGISTRY`).
//!
//! Adding a daemon is a file here implementing `TimeDaemon`, a line in
//! `REGISTRY`, its template under templates/ and its tests. Outside this
//! folder no code matches on a daemon: it asks the trait. This is domain
//! knowledge, not node state: which daemon a node gets for a requested name is
//! decided by `facts::daemon` from the archive. Nothing here runs a command.

mod chrony;
mod chrony_access;
pub mod keys;
mod ntp_family;
mod ntpd;
mod ntpsec;
mod openntpd;
pub mod sync;
mod timesyncd;

use crate::names::{AbsPath, PackageName, Rule, UnitName};
use crate::process::{Cmd, Output};
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use sync::{Configured, Peer, Source, Sync};

/// Every daemon ntp-provision can converge; the order is the one operators
/// read in messages.
static REGISTRY: &[&dyn TimeDaemon] = &[
    &ntpd::Ntpd,
    &ntpsec::Ntpsec,
    &chrony::Chrony,
    &openntpd::Openntpd,
    &timesyncd::Timesyncd,
];

/// Time-daemon packages that no registry entry owns but that conflict with
/// every daemon all the same (they all provide `time-daemon`); none now that
/// systemd-timesyncd is one.
const OTHER_TIME_DAEMONS: [(&str, &str); 0] = [];

/// Names operators try that were never packaged, with the reason.
const NEVER_PACKAGED: [&str; 1] = ["ntimed"];

/// One NTP daemon as Debian and Ubuntu package it.
pub trait TimeDaemon: std::marker::Sync {
    /// Its flavour name: in JSON, in status, and in a template's `validate`.
    fn id(&self) -> &'static str;
    /// How messages call it ("classic ntpd").
    fn title(&self) -> &'static str;
    fn package_name(&self) -> &'static str;
    fn config_path(&self) -> &'static str;
    fn unit_name(&self) -> &'static str;
    /// The name of the embedded template that writes its config.
    fn template(&self) -> &'static str;
    /// That template's text (templates/NAME, compiled in).
    fn template_text(&self) -> &'static str;
    /// The `vars.daemon` names that can give this daemon: `ntp` is classic
    /// ntpd where the archive has it, NTPsec where `ntp` is transitional.
    fn requested_as(&self) -> &'static [&'static str];
    /// The first version with NTS, if it has NTS at all.
    fn nts_since(&self) -> Option<&'static str> {
        None
    }
    /// The first version that takes an NTS server given by IP address,
    /// its certificate checked against that address.
    fn nts_by_address_since(&self) -> Option<&'static str> {
        self.nts_since()
    }
    /// The user it reads its NTS certificates and keys as, once it has
    /// dropped root (with that user's own group).
    fn runs_as(&self) -> Option<&'static str> {
        None
    }
    /// Whether its template writes `setting`, and from which version.
    fn supports(&self, _setting: Setting) -> Support {
        Support::No
    }
    /// Its symmetric key file (`vars.keys`), where it has keys.
    fn key_file(&self) -> Option<keys::KeyFile> {
        None
    }
    /// Why this version's parser cannot check a config, if it cannot.
    fn check_unavailable(&self, _version: &str) -> Option<String> {
        None
    }
    /// Whether its parser must be handed a copy under /tmp (an AppArmor
    /// profile keeps it from reading ours elsewhere).
    fn checks_a_copy_under_tmp(&self) -> bool {
        false
    }
    /// Runs its own parser on `file` and reads the verdict.
    fn check_config(&self, file: &str) -> anyhow::Result<Verdict>;
    /// How apply asks the started daemon whether it answers.
    fn answer_probe(&self) -> AnswerProbe;
    /// Whether the plan means `from` to get time from the daemon at `target`.
    fn serves_time_to(&self, access: &Access, from: IpAddr, target: IpAddr) -> bool;
    /// A client only: it serves time to nobody under any plan, so `clients`
    /// and `listen` are refused.
    fn client_only(&self) -> bool {
        false
    }
    /// Its config is a drop-in whose directory the package does not ship:
    /// apply makes the directory when it writes the config.
    fn config_dir_may_be_missing(&self) -> bool {
        false
    }
    /// The file the daemon reads instead of its config when DHCP offered
    /// servers (made from the config by Debian's hook, with `dhcp_servers`);
    /// `read` gives a node file's content.
    fn dhcp_config(&self, _read: &dyn Fn(&str) -> Option<Vec<u8>>) -> Option<&'static str> {
        None
    }
    /// Whether its status queries start it when it is stopped (D-Bus
    /// activation): `status` then asks only a running unit.
    fn asking_starts_it(&self) -> bool {
        false
    }
    /// Its own tool's two status queries: sources, then synchronisation.
    fn status_queries(&self) -> [&'static [&'static str]; 2];
    /// Parses what `status_queries` printed.
    fn parse_status(&self, sources: &Output, sync: &Output) -> Result<(Vec<Peer>, Sync), String>;
    /// The time sources its config names (server, pool... lines), in order.
    fn configured_sources(&self, lines: &[Directive]) -> Vec<Configured>;
    /// The next query about its sources after `status_queries`, built from
    /// the answers so far (ntpq lists the associations, then reads each by
    /// its ID); `None` once there is none left.
    fn source_query(&self, _asked: &[Output]) -> Option<Vec<String>> {
        None
    }
    /// What became of each configured source: `listing` is what the first
    /// status query printed, `asked` the answers to `source_query`.
    fn sources(
        &self,
        configured: &[Configured],
        listing: &Output,
        asked: &[Output],
    ) -> Result<Vec<Source>, String>;
    /// Characters that start a comment at the beginning of a line, beyond `#`.
    fn comment_marks(&self) -> &'static [char] {
        &[]
    }
    /// The access-control lint of its config's directives.
    fn lint(&self, lines: &[Directive], version: Option<&str>) -> Vec<Finding>;
    /// Whether `directive` reads other files into the config.
    fn includes(&self, _directive: &str) -> bool {
        false
    }
    /// The private keys it serves NTS-KE with, as (line, path) of each
    /// directive naming one: the lint asks who else can read them.
    fn nts_server_keys<'a>(&self, _lines: &[Directive<'a>]) -> Vec<(usize, &'a str)> {
        Vec::new()
    }
    /// Settings the daemon would not honour as the plan means them.
    fn conflicts(&self, _lines: &[Directive]) -> Vec<String> {
        Vec::new()
    }
    /// Its config's entries for monitoring queries (mode 6/7, chrony's
    /// command port) that a remote host can reach: whom each covers and
    /// whether it answers them. `verify` compares them with its sources.
    fn query_access(&self, _lines: &[Directive]) -> Vec<QueryEntry> {
        Vec::new()
    }
    /// What a host that `query_access` lets in gets, in a phrase.
    fn query_answers(&self) -> &'static str {
        "no monitoring queries"
    }
}

/// One access-control entry for monitoring queries, as the daemon matches
/// it: the most specific entry containing a source decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryEntry {
    pub line: usize,
    pub net: crate::net::Net,
    /// Whether it answers the queries (no `noquery`; a `cmdallow`).
    pub open: bool,
}

/// What a daemon's parser said of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Accepted, but the daemon said these lines do nothing or are wrong.
    Warned(Vec<String>),
    /// Rejected, with everything it printed.
    Rejected(String),
    /// It could not judge, and why (for a warning).
    NotChecked(String),
}

/// Bounds every config check: a parser that hangs must not hang the run.
pub(crate) const CHECK_SECONDS: &str = "20";

/// A parser run that is killed if it has not ended after CHECK_SECONDS.
pub(crate) fn bounded_check(argv: &[&str]) -> Cmd {
    Cmd::new("timeout")
        .env("LC_ALL", "C")
        .args(["--signal=KILL", CHECK_SECONDS])
        .args(argv)
}

/// How apply learns that a started daemon serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerProbe {
    /// A time request to 127.0.0.1:123, answered under every plan.
    TimeQuery,
    /// Its own tool, which exits 0 once the daemon answers it.
    Tool(&'static [&'static str]),
}

/// A plan variable that only some daemons have a line for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Setting {
    Leapfile,
    Logfile,
    Logdir,
    Statsdir,
    StepThreshold,
    PanicThreshold,
    Peers,
    OrphanStratum,
    /// `clients`: time served to some networks only, which needs access
    /// control by source address (OpenNTPD has none).
    Clients,
    DhcpServers,
    Keys,
    /// `nts_server_cert` and `nts_server_key`: an NTS-KE server.
    NtsServer,
}

impl Setting {
    pub const ALL: [Setting; 12] = [
        Setting::Leapfile,
        Setting::Logfile,
        Setting::Logdir,
        Setting::Statsdir,
        Setting::StepThreshold,
        Setting::PanicThreshold,
        Setting::Peers,
        Setting::OrphanStratum,
        Setting::Clients,
        Setting::DhcpServers,
        Setting::Keys,
        Setting::NtsServer,
    ];

    /// The plan variable.
    pub fn var(self) -> &'static str {
        match self {
            Setting::Leapfile => "leapfile",
            Setting::Logfile => "logfile",
            Setting::Logdir => "logdir",
            Setting::Statsdir => "statsdir",
            Setting::StepThreshold => "step_threshold",
            Setting::PanicThreshold => "panic_threshold",
            Setting::Peers => "peers",
            Setting::OrphanStratum => "orphan_stratum",
            Setting::Clients => "clients",
            Setting::DhcpServers => "dhcp_servers",
            Setting::Keys => "keys",
            Setting::NtsServer => "nts_server_cert",
        }
    }

    /// What a daemon without the setting can do instead, where there is something.
    pub fn instead(self) -> Option<&'static str> {
        match self {
            Setting::Clients => Some(
                "`listen` makes it serve time on an address, to every host that reaches that address",
            ),
            _ => None,
        }
    }
}

/// Whether a daemon's template honours a [`Setting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    No,
    Always,
    /// From this upstream version on.
    Since(&'static str),
}

/// Who the plan lets in: `clients` networks and `listen` addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub clients: Vec<String>,
    pub listen: Vec<String>,
}

/// (1-based line number, words) of one config directive, comments dropped.
pub type Directive<'a> = (usize, Vec<&'a str>);

/// One lint rule broken by one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    /// 1-based line that breaks the rule; `None` when a line is missing.
    pub line: Option<usize>,
    /// What is wrong in this config.
    pub message: String,
}

/// A daemon implementation, as a cheap handle on its registry entry.
#[derive(Clone, Copy)]
pub struct Flavor(&'static dyn TimeDaemon);

impl Flavor {
    pub fn all() -> impl Iterator<Item = Flavor> {
        REGISTRY.iter().map(|d| Flavor(*d))
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Flavor::all().find(|f| f.as_str() == s).ok_or_else(|| {
            let ids: Vec<&str> = Flavor::all().map(Flavor::as_str).collect();
            format!("{s:?} is not a daemon flavour ({}, none)", ids.join(", "))
        })
    }

    pub fn as_str(self) -> &'static str {
        self.0.id()
    }

    pub fn package(self) -> PackageName {
        PackageName::parse(self.0.package_name()).expect("registry package names are valid")
    }

    pub fn config(self) -> AbsPath {
        AbsPath::parse(self.0.config_path()).expect("registry paths are valid")
    }

    pub fn unit(self) -> UnitName {
        UnitName::parse(self.0.unit_name()).expect("registry unit names are valid")
    }

    /// The flavours a requested name can give.
    pub fn for_request(requested: DaemonName) -> Vec<Flavor> {
        Flavor::all()
            .filter(|f| f.requested_as().contains(&requested.as_str()))
            .collect()
    }
}

impl std::ops::Deref for Flavor {
    type Target = dyn TimeDaemon;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for Flavor {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Flavor {}

impl fmt::Debug for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Flavor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One of the registry's daemons, by name.
impl schemars::JsonSchema for Flavor {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Flavor".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = Flavor::all().map(|f| f.as_str()).collect();
        schemars::json_schema!({"type": "string", "enum": names})
    }
}

/// The daemon an operator asks for with `vars.daemon`: a name some
/// registry entry answers to, a package name (`ntp`) or the daemon's short
/// name (`timesyncd`, whose package is systemd-timesyncd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonName(&'static str);

impl DaemonName {
    /// Every name a plan may give, in registry order.
    pub fn all() -> Vec<DaemonName> {
        let mut names: Vec<DaemonName> = Vec::new();
        for n in REGISTRY.iter().flat_map(|d| d.requested_as()) {
            if !names.iter().any(|d| d.0 == *n) {
                names.push(DaemonName(n));
            }
        }
        names
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let all = DaemonName::all();
        let known: Vec<&str> = all.iter().map(|d| d.0).collect();
        if let Some(d) = all.into_iter().find(|d| d.0 == s) {
            return Ok(d);
        }
        if NEVER_PACKAGED.contains(&s) {
            return Err(format!(
                "{s:?} was never packaged by Debian or Ubuntu; choose one of {}",
                known.join(", ")
            ));
        }
        Err(format!(
            "{s:?} is not a known daemon ({})",
            known.join(", ")
        ))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// Whether the package of this name may be a transitional one, so that
    /// only its candidate's record tells which daemon it gives.
    pub fn may_be_transitional(self) -> bool {
        Flavor::for_request(self).len() > 1
    }

    /// The package that carries this name in the archive: the name itself
    /// where a daemon is packaged under it (`ntp`), else the package of the
    /// one daemon that answers to it (`timesyncd`: systemd-timesyncd).
    pub fn package(self) -> PackageName {
        let flavors = Flavor::for_request(self);
        let name = match flavors.as_slice() {
            [only] if only.package_name() != self.0 => only.package_name(),
            _ => self.0,
        };
        PackageName::parse(name).expect("daemon names give valid package names")
    }
}

impl fmt::Display for DaemonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for DaemonName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

/// A name `vars.daemon` may give.
impl schemars::JsonSchema for DaemonName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DaemonName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = DaemonName::all().iter().map(|d| d.0).collect();
        schemars::json_schema!({"type": "string", "enum": names})
    }
}

/// Every package that provides the `time-daemon` virtual package on Debian
/// and Ubuntu: exactly one of them may stay.
pub fn time_daemon_packages() -> Vec<PackageName> {
    REGISTRY
        .iter()
        .map(|d| d.package_name())
        .chain(OTHER_TIME_DAEMONS.iter().map(|(p, _)| *p))
        .filter_map(|p| PackageName::parse(p).ok())
        .collect()
}

/// The unit a time-daemon package brings, so the diff knows it is gone once
/// the package is purged.
pub fn unit_of_package(package: &PackageName) -> Option<UnitName> {
    let unit = REGISTRY
        .iter()
        .map(|d| (d.package_name(), d.unit_name()))
        .chain(OTHER_TIME_DAEMONS)
        .find(|(p, _)| *p == package.as_str())?
        .1;
    UnitName::parse(unit).ok()
}

/// A daemon resolved for one node: what `facts.daemon` holds in templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Daemon {
    /// What the plan asked for.
    pub requested: DaemonName,
    pub flavor: Flavor,
    /// The package that really provides the daemon on this node.
    pub package: PackageName,
    /// Set when `requested` is a transitional package for `package`.
    pub transitional: Option<PackageName>,
    pub config: AbsPath,
    pub unit: UnitName,
    pub template: String,
    /// The other time-daemon packages, to be removed.
    pub competitors: Vec<PackageName>,
    /// The symmetric key file it reads (`vars.keys`); `None` without keys.
    pub key_file: Option<AbsPath>,
}

impl Daemon {
    pub fn new(requested: DaemonName, flavor: Flavor) -> Self {
        let transitional = (requested.package() != flavor.package()).then(|| requested.package());
        let keep = [flavor.package(), requested.package()];
        let competitors = time_daemon_packages()
            .into_iter()
            .filter(|p| !keep.contains(p))
            .collect();
        Daemon {
            requested,
            flavor,
            package: flavor.package(),
            transitional,
            config: flavor.config(),
            unit: flavor.unit(),
            template: flavor.template().to_string(),
            competitors,
            key_file: flavor
                .key_file()
                .map(|k| AbsPath::parse(k.path).expect("registry paths are valid")),
        }
    }
}

impl fmt::Display for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "daemon {}: package {}", self.requested, self.package)?;
        if let Some(t) = &self.transitional {
            write!(f, " ({t} is a transitional package for it here)")?;
        }
        write!(f, ", config {}, unit {}", self.config, self.unit)
    }
}

/// The directives of `text` as `flavor` reads them.
pub fn directives(flavor: Flavor, text: &str) -> Vec<Directive<'_>> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.split('#').next().unwrap_or("");
            if line.trim_start().starts_with(flavor.comment_marks()) {
                return None;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            (!words.is_empty()).then_some((i + 1, words))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_resolved_to_ntpsec_names_the_transitional_package() {
        let d = Daemon::new(DaemonName::NTP, Flavor::NTPSEC);
        assert_eq!(d.package.as_str(), "ntpsec");
        assert_eq!(d.transitional.as_ref().map(|p| p.as_str()), Some("ntp"));
        assert_eq!(
            d.to_string(),
            "daemon ntp: package ntpsec (ntp is a transitional package for it here), config /etc/ntpsec/ntp.conf, unit ntpsec.service"
        );
        let classic = Daemon::new(DaemonName::NTP, Flavor::NTPD);
        assert_eq!(classic.transitional, None);
        assert_eq!(classic.config.as_str(), "/etc/ntp.conf");
    }

    #[test]
    fn ntimed_gets_a_clear_refusal() {
        let err = DaemonName::parse("ntimed").unwrap_err();
        assert!(err.contains("never packaged"), "{err}");
        assert!(DaemonName::parse("xntpd")
            .unwrap_err()
            .contains("not a known daemon"));
    }

    #[test]
    fn every_registry_entry_is_whole_and_unique() {
        let ids: Vec<&str> = Flavor::all().map(Flavor::as_str).collect();
        assert_eq!(ids, ["ntpd", "ntpsec", "chrony", "openntpd", "timesyncd"]);
        for f in Flavor::all() {
            assert_eq!(Flavor::parse(f.as_str()), Ok(f));
            // Each name a daemon answers to gives a package some entry provides.
            for n in f.requested_as() {
                let package = DaemonName::parse(n).unwrap().package();
                assert!(Flavor::all().any(|g| g.package() == package), "{n}");
            }
            assert_eq!(unit_of_package(&f.package()), Some(f.unit()));
        }
        let names: Vec<&str> = DaemonName::all().iter().map(|d| d.as_str()).collect();
        assert_eq!(names, ["ntp", "ntpsec", "chrony", "openntpd", "timesyncd"]);
        assert_eq!(
            DaemonName::TIMESYNCD.package().as_str(),
            "systemd-timesyncd"
        );
        assert_eq!(DaemonName::NTP.package().as_str(), "ntp");
    }

    #[test]
    fn timesyncd_is_its_package_and_a_competitor_of_every_other_daemon() {
        let d = Daemon::new(DaemonName::TIMESYNCD, Flavor::TIMESYNCD);
        assert_eq!(d.transitional, None);
        assert_eq!(
            d.to_string(),
            "daemon timesyncd: package systemd-timesyncd, config \
             /etc/systemd/timesyncd.conf.d/ntp-provision.conf, unit systemd-timesyncd.service"
        );
        let competitors: Vec<&str> = d.competitors.iter().map(|p| p.as_str()).collect();
        assert_eq!(competitors, ["ntp", "ntpsec", "chrony", "openntpd"]);
        let chrony = Daemon::new(DaemonName::CHRONY, Flavor::CHRONY);
        assert!(chrony
            .competitors
            .iter()
            .any(|p| p.as_str() == "systemd-timesyncd"));
    }
}
