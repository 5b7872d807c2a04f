//! Each rule fires and stays quiet, on hand-written configs, on what our
//! templates render and on what Debian ships.

use super::*;
use crate::daemons::{Daemon, DaemonName};
use crate::plan::{parse_override, Plan, Source, DEFAULT_PLAN};

fn rules(flavor: Flavor, config: &str, version: Option<&str>) -> Vec<&'static str> {
    lint(flavor, config, version)
        .iter()
        .map(|f| f.rule.name())
        .collect()
}

/// What `plan` writes to `daemon`'s config.
fn rendered_config(plan: &Plan, daemon: &Daemon) -> String {
    let r = plan.render(Some(daemon)).unwrap();
    r.steps
        .iter()
        .find_map(|s| match &s.action {
            Action::Template(t) if t.dest == daemon.config => Some(t.content.clone()),
            _ => None,
        })
        .unwrap()
}

/// The one finding in `found`: it must be of `rule`, on `line`.
fn only_finding(found: &[Finding], rule: Rule, line: usize, context: &str) -> Finding {
    assert_eq!(
        found.iter().map(|f| f.rule).collect::<Vec<_>>(),
        vec![rule],
        "{context}"
    );
    assert_eq!(found[0].line, Some(line), "{context}");
    found[0].clone()
}

const NTPD_4_2_8: Option<&str> = Some("1:4.2.8p15+dfsg-1");
const HARDENED: &str = "\
restrict -4 default kod notrap nomodify nopeer noquery limited
restrict -6 default kod notrap nomodify nopeer noquery limited
restrict 127.0.0.1
restrict ::1
";

/// /etc/ntp.conf as Debian 11's ntp 1:4.2.8p15+dfsg-1 ships it (its
/// directives; the long comments shortened).
const DEBIAN_11_NTP_CONF: &str = "\
# /etc/ntp.conf, configuration for ntpd; see ntp.conf(5) for help

driftfile /var/lib/ntp/ntp.drift

# Leap seconds definition provided by tzdata
leapfile /usr/share/zoneinfo/leap-seconds.list

statistics loopstats peerstats clockstats
filegen loopstats file loopstats type day enable
filegen peerstats file peerstats type day enable
filegen clockstats file clockstats type day enable

pool 0.debian.pool.ntp.org iburst
pool 1.debian.pool.ntp.org iburst
pool 2.debian.pool.ntp.org iburst
pool 3.debian.pool.ntp.org iburst

# By default, exchange time with everybody, but don't allow configuration.
restrict -4 default kod notrap nomodify nopeer noquery limited
restrict -6 default kod notrap nomodify nopeer noquery limited

# Local users may interrogate the ntp server more closely.
restrict 127.0.0.1
restrict ::1

# Needed for adding pool entries
restrict source notrap nomodify noquery

# Clients from this (example!) subnet have unlimited access, but only if
# cryptographically authenticated.
#restrict 192.168.123.0 mask 255.255.255.0 notrust
#broadcast 192.168.123.255
#disable auth
#broadcastclient
";

/// /etc/ntpsec/ntp.conf as Debian 12's ntpsec 1.2.2 ships it (directives).
const DEBIAN_12_NTPSEC_CONF: &str = "\
driftfile /var/lib/ntpsec/ntp.drift
leapfile /usr/share/zoneinfo/leap-seconds.list
# nts enable
tos maxclock 11
tos minclock 4 minsane 3
pool 0.debian.pool.ntp.org iburst
pool 1.debian.pool.ntp.org iburst
pool 2.debian.pool.ntp.org iburst
pool 3.debian.pool.ntp.org iburst

# By default, exchange time with everybody, but don't allow configuration.
restrict default kod nomodify nopeer noquery limited

# Local users may interrogate the ntp server more closely.
restrict 127.0.0.1
restrict ::1
";

const DEBIAN_CHRONY_CONF: &str = "\
# Use Debian vendor zone.
pool 2.debian.pool.ntp.org iburst
sourcedir /run/chrony-dhcp
sourcedir /etc/chrony/sources.d
keyfile /etc/chrony/chrony.keys
driftfile /var/lib/chrony/chrony.drift
ntsdumpdir /var/lib/chrony
#log tracking measurements statistics
logdir /var/log/chrony
maxupdateskew 100.0
rtcsync
makestep 1 3
leapsectz right/UTC
";

const DEBIAN_OPENNTPD_CONF: &str = "\
# sample ntpd configuration file, see ntpd.conf(5)

# Addresses to listen on (ntpd does not listen by default)
#listen on *
#listen on 127.0.0.1
#listen on ::1

servers pool.ntp.org
servers 0.debian.pool.ntp.org
#sensor *
";

/// Each line alone, as a config, gives exactly the rules `want`.
fn each_line(flavor: Flavor, lines: &[&str], want: &[&str]) {
    for line in lines {
        assert_eq!(rules(flavor, &format!("{line}\n"), None), want, "{line}");
    }
}

#[test]
fn our_templates_render_configs_that_lint_clean() {
    for overrides in [
        vec!["servers=[127.0.0.1, \"::1\"]"],
        vec!["pools=[pool.ntp.org]"],
        // Client networks get time, never queries: ntpd and NTPsec serve time
        // under the default entry (no line of their own), chrony by `allow`.
        vec![
            "servers=[127.0.0.1]",
            "clients=[10.0.0.0/8, 192.0.2.0/24, \"2001:db8::/32\"]",
            "listen=[192.0.2.1]",
        ],
    ] {
        let o: Vec<_> = overrides
            .iter()
            .map(|s| parse_override(s).unwrap())
            .collect();
        let plan = Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &o).unwrap();
        for (requested, flavor) in [
            (DaemonName::NTP, Flavor::NTPD),
            (DaemonName::NTP, Flavor::NTPSEC),
            (DaemonName::CHRONY, Flavor::CHRONY),
            (DaemonName::OPENNTPD, Flavor::OPENNTPD),
        ] {
            let daemon = Daemon::new(requested, flavor);
            let content = rendered_config(&plan, &daemon);
            // Even with the version unknown: no host but loopback may query
            // (monlist obeys noquery).
            for version in [
                None,
                NTPD_4_2_8,
                Some("1:4.2.6.p5+dfsg-3ubuntu2"),
                Some("1.2.2+dfsg1-1+deb12u1"),
                Some("4.3-2+deb12u1"),
            ] {
                assert_eq!(
                    lint(flavor, &content, version),
                    vec![],
                    "{flavor:?} {version:?} {overrides:?}:\n{content}"
                );
            }
        }
    }
}

#[test]
fn debian_defaults_lint_clean_where_the_daemon_is_current() {
    assert_eq!(
        rules(Flavor::NTPD, DEBIAN_11_NTP_CONF, NTPD_4_2_8),
        Vec::<&str>::new()
    );
    assert_eq!(
        rules(
            Flavor::NTPSEC,
            DEBIAN_12_NTPSEC_CONF,
            Some("1.2.2+dfsg1-1+deb12u1")
        ),
        Vec::<&str>::new()
    );
    assert_eq!(
        rules(Flavor::CHRONY, DEBIAN_CHRONY_CONF, Some("4.3-2+deb12u1")),
        Vec::<&str>::new()
    );
    assert_eq!(
        rules(Flavor::OPENNTPD, DEBIAN_OPENNTPD_CONF, Some("1:6.8p1-4")),
        Vec::<&str>::new()
    );
    // Debian's ntp.conf has no `disable monitor` (and `limited` would keep
    // monitoring on), but noquery on both defaults: even an older ntpd
    // (Ubuntu 14.04's 4.2.6p5) answers monlist to no one but loopback.
    for version in [None, Some("1:4.2.6.p5+dfsg-3ubuntu2")] {
        assert_eq!(
            rules(Flavor::NTPD, DEBIAN_11_NTP_CONF, version),
            Vec::<&str>::new()
        );
    }
}

#[test]
fn ipv6_default_missing_fires_without_a_default_covering_ipv6() {
    let v4_only = "restrict -4 default kod nomodify nopeer noquery limited\nrestrict 127.0.0.1\n";
    assert_eq!(
        rules(Flavor::NTPSEC, v4_only, None),
        vec!["ipv6-default-missing"]
    );
    assert_eq!(
        rules(Flavor::NTPD, v4_only, NTPD_4_2_8),
        vec!["ipv6-default-missing"]
    );
    assert_eq!(lint(Flavor::NTPSEC, v4_only, None)[0].line, None);
    // Covered by a family-less default, a -6 default, or `:: mask ::`.
    assert_eq!(
        rules(
            Flavor::NTPSEC,
            "restrict default kod nomodify noquery limited\n",
            None
        ),
        Vec::<&str>::new()
    );
    assert_eq!(
        rules(Flavor::NTPD, HARDENED, NTPD_4_2_8),
        Vec::<&str>::new()
    );
    let masks =
        "restrict 0.0.0.0 mask 0.0.0.0 nomodify noquery\nrestrict :: mask :: nomodify noquery\n";
    assert_eq!(rules(Flavor::NTPD, masks, NTPD_4_2_8), Vec::<&str>::new());
    // A commented-out -6 line does not count.
    let commented =
        "restrict -4 default nomodify noquery\n# restrict -6 default nomodify noquery\n";
    assert_eq!(
        rules(Flavor::NTPD, commented, NTPD_4_2_8),
        vec!["ipv6-default-missing"]
    );
}

#[test]
fn kod_without_limited_fires_on_a_default_entry() {
    let config = "restrict default kod nomodify noquery\nrestrict 127.0.0.1\n";
    let found = lint(Flavor::NTPD, config, NTPD_4_2_8);
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].rule, found[0].line),
        (Rule::KodWithoutLimited, Some(1))
    );
    assert!(
        found[0].message.contains("IPv4 and IPv6"),
        "{}",
        found[0].message
    );
    assert_eq!(
        rules(
            Flavor::NTPD,
            "restrict default kod limited nomodify noquery\n",
            NTPD_4_2_8
        ),
        Vec::<&str>::new()
    );
    assert_eq!(
        rules(
            Flavor::NTPD,
            "restrict default nomodify noquery\n",
            NTPD_4_2_8
        ),
        Vec::<&str>::new()
    );
    // NTPsec's own default entry has limited from 1.1.9: the message says kod
    // works there all the same.
    let ntpsec = lint(Flavor::NTPSEC, config, Some("1.2.2+dfsg1-1+deb12u1"));
    let finding = only_finding(&ntpsec, Rule::KodWithoutLimited, 1, config);
    assert!(
        finding.message.contains("so kod works all the same"),
        "{}",
        finding.message
    );
    assert!(!found[0].message.contains("works"), "{}", found[0].message);
    // A host entry with kod is not the default entry.
    assert_eq!(
        rules(
            Flavor::NTPD,
            "restrict default nomodify noquery\nrestrict 192.0.2.1 kod\n",
            NTPD_4_2_8
        ),
        Vec::<&str>::new()
    );
}

#[test]
fn noquery_and_nomodify_missing_fire_per_default_entry() {
    let open = "restrict default kod limited nomodify nopeer\nrestrict 127.0.0.1\nrestrict ::1\n";
    let found = lint(Flavor::NTPD, open, NTPD_4_2_8);
    let finding = only_finding(&found, Rule::NoqueryMissing, 1, "");
    assert!(
        finding
            .message
            .starts_with("the default restrict entry has no noquery (IPv4 and IPv6); classic ntpd's own default entry has no flags"),
        "{}",
        finding.message
    );
    // What a host gets, by the daemon's own default entry.
    assert!(
        finding.message.contains(
            "every host without an entry of its own gets mode 6 answers (READVAR about 34 times"
        ),
        "{}",
        finding.message
    );
    assert!(finding.to_string().contains("CVE-2013-5211"), "{finding}");

    let v6_open = "restrict -4 default nomodify noquery\nrestrict -6 default noquery\n";
    let found = lint(Flavor::NTPSEC, v6_open, None);
    let finding = only_finding(&found, Rule::NomodifyMissing, 2, "");
    assert!(finding.message.ends_with("(IPv6)"), "{}", finding.message);

    // Flags of several lines for the same entry add up, as in ntpd.
    let split = "restrict default kod limited\nrestrict default nomodify noquery\n";
    assert_eq!(rules(Flavor::NTPD, split, NTPD_4_2_8), Vec::<&str>::new());
    // `ignore` drops queries and modifications too.
    assert_eq!(
        rules(Flavor::NTPD, "restrict default ignore\n", NTPD_4_2_8),
        Vec::<&str>::new()
    );
    // No default entry at all: the built-in one allows everything.
    assert_eq!(
        rules(
            Flavor::NTPD,
            "server 127.0.0.1\nrestrict 127.0.0.1\n",
            NTPD_4_2_8
        ),
        vec![
            "ipv6-default-missing",
            "noquery-missing",
            "nomodify-missing"
        ]
    );
    // ippeerlimit takes a number, which is not a flag.
    assert_eq!(
        rules(
            Flavor::NTPD,
            "restrict default ippeerlimit 2 nomodify noquery\n",
            NTPD_4_2_8
        ),
        Vec::<&str>::new()
    );
}

#[test]
fn monitor_enabled_fires_only_for_old_or_unknown_classic_ntpd_that_others_may_query() {
    // Hosts that may query: the default entry without noquery.
    const OPEN: &str = "restrict default kod nomodify limited\nrestrict 127.0.0.1\n";
    let open_rules = |version| rules(Flavor::NTPD, OPEN, version);
    assert!(open_rules(Some("1:4.2.6.p5+dfsg-3ubuntu2")).contains(&"monitor-enabled"));
    assert!(open_rules(Some("4.2.7p25-1")).contains(&"monitor-enabled"));
    assert!(open_rules(None).contains(&"monitor-enabled"));
    assert!(!open_rules(Some("4.2.7p26-1")).contains(&"monitor-enabled"));
    let found = lint(Flavor::NTPD, OPEN, Some("1:4.2.6.p5+dfsg-3ubuntu2"));
    let monitor = found
        .iter()
        .find(|f| f.rule == Rule::MonitorEnabled)
        .unwrap();
    assert_eq!(
        monitor.message,
        "ntpd 4.2.6.p5+dfsg is older than 4.2.7p26, its monitoring is on (`limited` keeps it on whatever \
         `disable monitor` says), and hosts its restrict lines let query get monlist"
    );
    // With limited, disable monitor does nothing (ntpd says so).
    let disabled = format!("{OPEN}disable monitor\n");
    assert!(rules(Flavor::NTPD, &disabled, None).contains(&"monitor-enabled"));
    // Without limited it turns monitoring off; the last word counts.
    let unlimited = "restrict default kod nomodify\nrestrict 127.0.0.1\n";
    let off = format!("{unlimited}disable monitor\n");
    assert!(!rules(Flavor::NTPD, &off, None).contains(&"monitor-enabled"));
    assert!(
        rules(Flavor::NTPD, &format!("{off}enable monitor\n"), None).contains(&"monitor-enabled")
    );
    // noquery everywhere: monlist reaches no one, whatever the version.
    assert_eq!(
        rules(Flavor::NTPD, HARDENED, Some("1:4.2.6.p5+dfsg-3ubuntu2")),
        Vec::<&str>::new()
    );
    assert_eq!(rules(Flavor::NTPD, HARDENED, None), Vec::<&str>::new());
    // NTPsec has no mode 7 at all.
    assert_eq!(rules(Flavor::NTPSEC, HARDENED, None), Vec::<&str>::new());
}

#[test]
fn chrony_allow_all_fires_on_every_spelling_of_everything() {
    each_line(
        Flavor::CHRONY,
        &[
            "allow",
            "allow all",
            "allow 0/0",
            "allow ::/0",
            "allow 0.0.0.0/0",
            "  allow all # comment",
        ],
        &["chrony-allow-all"],
    );
    each_line(
        Flavor::CHRONY,
        &[
            "allow 192.168.0.0/16",
            "allow 10/8",
            "allow all 10.0.0.0/8",
            "# allow all",
            "! allow all",
            "deny all",
        ],
        &[],
    );
    assert_eq!(
        lint(Flavor::CHRONY, "server 127.0.0.1\nallow\n", None)[0].line,
        Some(2)
    );
}

#[test]
fn chrony_allow_all_judges_the_union_of_the_allow_lines() {
    let found = |config: &str| lint(Flavor::CHRONY, config, Some("4.3-2+deb12u1"));
    for (config, line, facts) in [
        (
            "allow 0.0.0.0/1\nallow 128.0.0.0/1\n",
            2,
            &["`allow 0.0.0.0/1` (line 1), `allow 128.0.0.0/1` (line 2) together serve NTP to every IPv4 address"][..],
        ),
        (
            "allow 0/2\nallow 64/2\nserver 127.0.0.1\nallow 128/2\nallow 192/2\n",
            5,
            &["`allow 0/2` (line 1)", "`allow 192/2` (line 5) together serve NTP to every IPv4 address"],
        ),
        (
            "allow ::/1\nallow 192.0.2.0/24\nALLOW 8000::/1\n",
            3,
            &["`allow ::/1` (line 1), `ALLOW 8000::/1` (line 3) together serve NTP to every IPv6 address"],
        ),
        // A hole closed again by a later allow of the same records.
        (
            "allow 0/0\ndeny 10/8\nallow 10/8\n",
            3,
            &["`allow 0/0` (line 1), `allow 10/8` (line 3) together serve NTP to every IPv4 address"],
        ),
        // `allow all` clears the deny below it.
        (
            "deny 10/8\nallow all 0/0\n",
            2,
            &["`allow all 0/0` serves NTP to every IPv4 address"],
        ),
        (
            "allow\n",
            1,
            &["`allow` serves NTP to every IPv4 and IPv6 address"],
        ),
    ] {
        let found = found(config);
        let finding = only_finding(&found, Rule::ChronyAllowAll, line, config);
        for fact in facts {
            assert!(finding.message.contains(fact), "{fact}: {}", finding.message);
        }
    }
    // Halves of both families: one finding each.
    let both = found("allow 0.0.0.0/1\nallow ::/1\nallow 128.0.0.0/1\nallow 8000::/1\n");
    let lines: Vec<Option<usize>> = both.iter().map(|f| f.line).collect();
    assert_eq!(lines, vec![Some(3), Some(4)], "{both:?}");
    // Not everything: three quarters, a deny that punches a hole (in either
    // order), the halves of different families, `deny all` after them.
    for config in [
        "allow 0/2\nallow 64/2\nallow 128/2\n",
        "allow 0.0.0.0/1\nallow 128.0.0.0/1\ndeny 10.0.0.0/8\n",
        "deny 10.0.0.0/8\nallow 0.0.0.0/1\nallow 128.0.0.0/1\n",
        "allow all\ndeny 2001:db8::/32\ndeny 192.0.2.1\n",
        "allow 0.0.0.0/1\nallow 8000::/1\n",
        "allow 0.0.0.0/1\nallow 128.0.0.0/1\ndeny all\n",
        "allow 10/8\nallow 192.168/16\n",
    ] {
        assert_eq!(
            rules(Flavor::CHRONY, config, None),
            Vec::<&str>::new(),
            "{config}"
        );
    }
    // `deny all` after an allow of one family keeps the other's finding only
    // where the other is everything.
    assert_eq!(
        lint(Flavor::CHRONY, "allow all\ndeny ::/0\n", None)[0].message,
        "`allow all` serves NTP to every IPv4 address"
    );
}

#[test]
fn chrony_cmdallow_fires_beyond_loopback() {
    each_line(
        Flavor::CHRONY,
        &[
            "cmdallow",
            "cmdallow all",
            "cmdallow 192.168.1.0/24",
            "cmdallow 127.0.0.1 10.0.0.1",
            "bindcmdaddress 0.0.0.0",
            "bindcmdaddress ::",
        ],
        &["chrony-cmdallow"],
    );
    each_line(
        Flavor::CHRONY,
        &[
            "cmdallow 127.0.0.1",
            "cmdallow ::1",
            "cmdallow 127/8",
            "cmdallow ::1/128",
            "bindcmdaddress 127.0.0.1",
            "bindcmdaddress ::1",
            "bindcmdaddress /run/chrony/chronyd.sock",
            "cmdport 0",
        ],
        &[],
    );
}

#[test]
fn chrony_cmdallow_says_what_a_remote_host_gets_and_whether_it_reaches_the_port() {
    let risk = Rule::ChronyCmdallow.risk();
    for fact in [
        "monitoring answers (tracking, sources, sourcestats, activity",
        "An information leak, not an amplifier",
        "answers no more bytes than the request",
        "pads its requests",
        "`clients` included",
        "\"Not authorised\"",
    ] {
        assert!(risk.contains(fact), "{fact}: {risk}");
    }
    assert!(!risk.contains("more than the request"), "{risk}");
    let found = |config: &str| lint(Flavor::CHRONY, config, Some("4.3-2+deb12u1"));
    // One half alone: the message says the port is not reachable yet.
    let alone = found("cmdallow 192.0.2.0/24\n");
    assert!(
        alone[0]
            .message
            .contains("chronyd binds that port to 127.0.0.1 and ::1")
            && alone[0]
                .message
                .contains("they reach it only once one does"),
        "{}",
        alone[0].message
    );
    let bind = found("bindcmdaddress 0.0.0.0\n");
    assert!(
        bind[0]
            .message
            .contains("chronyd drops their requests until one does"),
        "{}",
        bind[0].message
    );
    // Both: each line names the other.
    let both = found("bindcmdaddress 0.0.0.0\ncmdallow all\n");
    let lines: Vec<Option<usize>> = both.iter().map(|f| f.line).collect();
    assert_eq!(lines, vec![Some(1), Some(2)]);
    assert!(
        both[0]
            .message
            .contains("the hosts `cmdallow all` (line 2) lets in reach it"),
        "{}",
        both[0].message
    );
    assert!(
        both[1]
            .message
            .contains("`bindcmdaddress 0.0.0.0` (line 1) puts it where they reach it"),
        "{}",
        both[1].message
    );
}

#[test]
fn no_risk_claims_an_answer_larger_than_the_request_where_the_daemon_gives_none() {
    // chrony and OpenNTPD answer no more than they get; NTPsec's own
    // default entry has noquery from 1.1.9, which the texts must not deny.
    for rule in [
        Rule::ChronyAllowAll,
        Rule::ChronyCmdallow,
        Rule::OpenntpdListenAny,
    ] {
        assert!(
            rule.risk().contains("no amplification") || rule.risk().contains("not an amplifier"),
            "{rule}: {}",
            rule.risk()
        );
    }
    for rule in [Rule::NoqueryMissing, Rule::Ipv6DefaultMissing] {
        assert!(
            rule.risk().contains("before 1.1.9"),
            "{rule}: {}",
            rule.risk()
        );
    }
    assert!(
        Rule::NomodifyMissing.risk().contains("also lacks noquery"),
        "{}",
        Rule::NomodifyMissing.risk()
    );
}

#[test]
fn openntpd_listen_any_fires_on_a_wildcard() {
    each_line(
        Flavor::OPENNTPD,
        &[
            "listen on *",
            "listen on * rtable 0",
            "listen on 0.0.0.0",
            "listen on ::",
        ],
        &["openntpd-listen-any"],
    );
    each_line(
        Flavor::OPENNTPD,
        &[
            "listen on 127.0.0.1",
            "listen on ::1",
            "listen on 192.0.2.10",
            "#listen on *",
        ],
        &[],
    );
}

#[test]
fn rules_do_not_cross_daemons() {
    // ntpd words mean nothing to chrony and OpenNTPD, and the other way round.
    assert_eq!(
        rules(Flavor::CHRONY, "restrict default kod\n", None),
        Vec::<&str>::new()
    );
    assert_eq!(
        rules(Flavor::OPENNTPD, "allow all\n", None),
        Vec::<&str>::new()
    );
    assert_eq!(
        rules(
            Flavor::NTPSEC,
            &format!("{HARDENED}allow all\nlisten on *\n"),
            None
        ),
        Vec::<&str>::new()
    );
}

#[test]
fn rule_names_round_trip_and_unknown_names_are_refused() {
    for rule in Rule::ALL {
        assert_eq!(Rule::parse(rule.name()), Ok(rule));
        assert!(!rule.risk().is_empty());
    }
    let err = Rule::parse("noquery").unwrap_err();
    assert!(
        err.contains("\"noquery\" is not a lint rule (ipv6-default-missing, "),
        "{err}"
    );
}

fn linted(config: &str, step: &str, findings: Vec<Finding>) -> Linted {
    Linted {
        config: AbsPath::parse(config).unwrap(),
        flavor: Flavor::NTPD,
        version: NTPD_4_2_8.map(str::to_string),
        step: step.to_string(),
        for_daemon: true,
        findings,
        conflicts: vec![],
    }
}

#[test]
fn judge_refuses_unless_allowed_and_explains_the_risk() {
    let open = lint(
        Flavor::NTPD,
        "restrict default kod limited nomodify nopeer\n",
        NTPD_4_2_8,
    );
    let plan = PlanLint {
        linted: vec![linted("/etc/ntp.conf", "step \"NTP config\"", open)],
        not_templated: None,
    };
    let err = judge(&plan, &[]).unwrap_err();
    assert!(err.starts_with("/etc/ntp.conf as the plan would write it fails the access-control lint in step \"NTP config\": noquery-missing (line 1)"), "{err}");
    assert!(
        err.contains("DRDoS reflector (CVE-2013-5211). If this is intended")
            && err.ends_with("allow_insecure: [noquery-missing]"),
        "{err}"
    );
    let notes = judge(&plan, &[Rule::NoqueryMissing]).unwrap();
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].starts_with("allowed by allow_insecure: /etc/ntp.conf: noquery-missing (line 1)"),
        "{}",
        notes[0]
    );
    // Allowing another rule does not allow this one.
    assert!(judge(&plan, &[Rule::MonitorEnabled]).is_err());
}

#[test]
fn judge_refuses_if_any_template_fails_and_names_each() {
    let clean = linted("/etc/ntp.conf", "step \"late\"", vec![]);
    let open = linted(
        "/etc/ntp.conf",
        "step \"early\"",
        lint(Flavor::NTPD, "restrict default nomodify\n", NTPD_4_2_8),
    );
    let mut chrony = linted(
        "/etc/chrony/chrony.conf",
        "handler \"chrony too\"",
        lint(Flavor::CHRONY, "cmdallow all\n", None),
    );
    chrony.for_daemon = false;
    let plan = PlanLint {
        linted: vec![open, clean.clone(), chrony],
        not_templated: None,
    };
    let err = judge(&plan, &[]).unwrap_err();
    assert!(
        err.starts_with("/etc/ntp.conf as the plan would write it fails the access-control lint in step \"early\": noquery-missing (line 1)"),
        "{err}"
    );
    assert!(
        err.contains(" /etc/chrony/chrony.conf as the plan would write it fails the access-control lint in handler \"chrony too\": chrony-cmdallow (line 1)"),
        "{err}"
    );
    assert!(!err.contains("late"), "{err}");
    assert!(
        err.ends_with("allow_insecure: [noquery-missing, chrony-cmdallow]"),
        "{err}"
    );
    // The gate refuses too; once allowed, only the daemon's own config's
    // findings relax the check after apply.
    assert_eq!(crate::engine::lint_gate(&plan, &[]).unwrap_err(), err);
    let (notes, (enforcement, accepted)) =
        crate::engine::lint_gate(&plan, &[Rule::NoqueryMissing, Rule::ChronyCmdallow]).unwrap();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert_eq!(enforcement, crate::verify::Enforcement::AllowedByPlan);
    assert_eq!(accepted, vec!["noquery-missing"]);
    // A plan whose daemon config no template writes gets the note.
    let untouched = PlanLint {
        linted: vec![],
        not_templated: Some(AbsPath::parse("/etc/ntpsec/ntp.conf").unwrap()),
    };
    let (notes, (enforcement, _)) = crate::engine::lint_gate(&untouched, &[]).unwrap();
    assert_eq!(
        notes,
        vec!["the plan does not write /etc/ntpsec/ntp.conf: its access control was not linted"]
    );
    assert_eq!(enforcement, crate::verify::Enforcement::Enforced);
}

#[test]
fn judge_refuses_conflicts_whatever_the_plan_allows() {
    let mut two = linted("/etc/chrony/chrony.conf", "step \"NTP config\"", vec![]);
    two.conflicts = conflicts(
        Flavor::CHRONY,
        "bindaddress 192.0.2.1\nbindaddress 192.0.2.2\n",
    );
    let plan = PlanLint {
        linted: vec![two],
        not_templated: None,
    };
    for allow in [&[][..], &Rule::ALL[..]] {
        let err = judge(&plan, allow).unwrap_err();
        assert!(
            err.starts_with("/etc/chrony/chrony.conf as the plan would write it in step \"NTP config\" does not work as intended: 2 `bindaddress` lines for IPv4"),
            "{err}"
        );
        assert!(!err.contains("allow_insecure"), "{err}");
    }
}

#[test]
fn for_plan_lints_the_rendered_config_for_the_version_apply_installs() {
    use crate::fake::FakeNode;
    let plan = Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &[]).unwrap();
    let node = FakeNode::bullseye();
    let g = crate::facts::gather(&node, &crate::facts::Wants::from(&plan)).unwrap();
    let cs = crate::diff::diff(&g.rendered, &g.facts).unwrap();
    let outcome = for_plan(&g.rendered, &g.facts, &cs);
    assert_eq!(outcome.not_templated, None);
    let [linted] = outcome.linted.as_slice() else {
        panic!("the default plan writes the config once: {outcome:?}")
    };
    assert_eq!(linted.config.as_str(), "/etc/ntp.conf");
    assert_eq!(linted.flavor, Flavor::NTPD);
    assert_eq!(
        linted.step,
        "step \"NTP config with our servers and access control\""
    );
    assert!(linted.for_daemon);
    let installed = cs
        .steps
        .iter()
        .flat_map(|s| &s.changes)
        .find_map(|c| match c {
            Change::Install { packages } => packages[0].after.clone(),
            _ => None,
        });
    assert!(installed.is_some());
    assert_eq!(linted.version, installed);
    assert_eq!(linted.findings, vec![]);

    // A plan without a daemon that writes no daemon config: nothing to lint.
    let bare = Plan::load(
        b"steps:\n  - name: s\n    apt: {name: ntp}\n",
        Source::embedded(),
        &[],
    )
    .unwrap();
    let g = crate::facts::gather(&node, &crate::facts::Wants::from(&bare)).unwrap();
    let cs = crate::diff::diff(&g.rendered, &g.facts).unwrap();
    assert_eq!(for_plan(&g.rendered, &g.facts, &cs), PlanLint::default());
}

/// Gathers facts on a fake bullseye node for a plan file with templates
/// next to it, and lints.
fn lint_plan_file(plan: &str, templates: &[(&str, &str)]) -> (PlanLint, crate::facts::Facts) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in templates {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, plan).unwrap();
    let plan = Plan::load(plan.as_bytes(), Source::file(&path), &[]).unwrap();
    let node = crate::fake::FakeNode::bullseye();
    let g = crate::facts::gather(&node, &crate::facts::Wants::from(&plan)).unwrap();
    let cs = crate::diff::diff(&g.rendered, &g.facts).unwrap();
    (for_plan(&g.rendered, &g.facts, &cs), g.facts)
}

const OPEN_NTP_CONF: &str =
    "restrict default kod limited nomodify\nrestrict 127.0.0.1\ndisable monitor\n";

#[test]
fn for_plan_lints_known_daemon_configs_in_plans_without_a_daemon() {
    let plan = "\
steps:
  - name: ntp installed
    apt: {name: ntp}
  - name: custom ntp.conf
    template: {src: open.j2, dest: /etc/ntp.conf}
  - name: some other file
    template: {src: open.j2, dest: /etc/default/ntp}
handlers:
  - name: chrony config
    template: {src: chrony.j2, dest: /etc/chrony/chrony.conf}
";
    let (outcome, facts) = lint_plan_file(
        plan,
        &[("open.j2", OPEN_NTP_CONF), ("chrony.j2", "CMDALLOW all\n")],
    );
    assert_eq!(outcome.not_templated, None);
    let seen: Vec<(&str, Flavor, &str, bool)> = outcome
        .linted
        .iter()
        .map(|l| (l.config.as_str(), l.flavor, l.step.as_str(), l.for_daemon))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                "/etc/ntp.conf",
                Flavor::NTPD,
                "step \"custom ntp.conf\"",
                false
            ),
            (
                "/etc/chrony/chrony.conf",
                Flavor::CHRONY,
                "handler \"chrony config\"",
                false
            ),
        ]
    );
    // The version of another path's flavor is its package's from the facts.
    let ntp = facts
        .packages
        .get(&Flavor::NTPD.package())
        .expect("the plan names ntp");
    let want = match &ntp.dpkg {
        DpkgState::Installed { version } => Some(version.clone()),
        _ => ntp.candidate.clone(),
    };
    assert!(want.is_some());
    assert_eq!(outcome.linted[0].version, want);
    assert_eq!(outcome.linted[1].version, None);
    let err = judge(&outcome, &[]).unwrap_err();
    assert!(err.starts_with("/etc/ntp.conf as the plan would write it fails the access-control lint in step \"custom ntp.conf\": noquery-missing"), "{err}");
    assert!(
        err.contains("in handler \"chrony config\": chrony-cmdallow"),
        "{err}"
    );
}

#[test]
fn for_plan_lints_every_template_for_the_daemon_config_not_only_the_last() {
    let plan = "\
vars:
  daemon: ntp
  servers: [127.0.0.1]
steps:
  - name: first, open
    template: {src: open.j2, dest: \"{{ facts.daemon.config }}\"}
  - name: then hardened
    template: {src: ntp.conf.j2, dest: \"{{ facts.daemon.config }}\"}
";
    let (outcome, facts) = lint_plan_file(plan, &[("open.j2", OPEN_NTP_CONF)]);
    let daemon = facts.daemon.as_ref().unwrap();
    assert_eq!(outcome.linted.len(), 2);
    assert!(outcome
        .linted
        .iter()
        .all(|l| l.for_daemon && l.config == daemon.config));
    assert_eq!(outcome.linted[1].findings, vec![]);
    let err = judge(&outcome, &[]).unwrap_err();
    assert!(
        err.contains("fails the access-control lint in step \"first, open\": noquery-missing"),
        "{err}"
    );

    // A daemon whose config nothing writes keeps its note, even when another
    // daemon's config is written.
    let plan = "\
vars:
  daemon: ntp
steps:
  - name: chrony config
    template: {src: chrony.j2, dest: /etc/chrony/chrony.conf}
";
    let (outcome, facts) = lint_plan_file(plan, &[("chrony.j2", "allow 10/8\n")]);
    assert_eq!(
        outcome.not_templated,
        Some(facts.daemon.as_ref().unwrap().config.clone())
    );
    assert_eq!(outcome.linted.len(), 1);
    assert_eq!(outcome.linted[0].flavor, Flavor::CHRONY);
    assert!(judge(&outcome, &[]).unwrap().is_empty());
}

#[test]
fn noquery_missing_network_fires_on_every_network_without_noquery_private_too() {
    // Each line re-opens queries for a network under a hardened default.
    for line in [
        "restrict 128.0.0.0 mask 128.0.0.0 nomodify",
        "restrict 0.0.0.0 mask 128.0.0.0 nomodify notrap",
        "restrict 192.0.2.0 mask 255.255.255.0",
        "restrict 192.0.2.0/24 nomodify",
        "restrict -6 2001:db8:: mask ffff:ffff:: nomodify",
        "restrict 2001:db8::/32",
        "restrict 10.0.0.0 mask 254.0.0.0",
        // inet_aton spellings: 0x80 is 128.0.0.0.
        "restrict 0x80000000 mask 128.0.0.0 nomodify",
        // Private networks too: their hosts can forge each other's addresses.
        "restrict 10.0.0.0 mask 255.0.0.0",
        "restrict 192.168.0.0 mask 255.255.0.0 nomodify",
        "restrict 10.0.0.0/8",
        "restrict 172.16.0.0 mask 255.240.0.0",
        "restrict 169.254.0.0/16",
        "restrict fd00:1234::/48",
        "restrict fe80:: mask ffc0::",
        "restrict 172.32.0.0/12",
    ] {
        let config = format!("{HARDENED}{line}\n");
        for version in [None, Some("1.2.2+dfsg1-1+deb12u1")] {
            let found = lint(Flavor::NTPSEC, &config, version);
            only_finding(&found, Rule::NoqueryMissingNetwork, 5, line);
        }
        assert_eq!(
            rules(
                Flavor::NTPD,
                &format!("{config}disable monitor\n"),
                NTPD_4_2_8
            ),
            vec!["noquery-missing-network"],
            "{line}"
        );
    }
    // The message says which hosts get what, and that probes from the node
    // itself cannot see it.
    let private = lint(
        Flavor::NTPSEC,
        &format!("{HARDENED}restrict 10.0.0.0 mask 255.0.0.0\n"),
        Some("1.2.2+dfsg1-1+deb12u1"),
    );
    let message = &private[0].message;
    for fact in [
        "the restrict entry for 10.0.0.0/8, a private network, has no noquery (or ignore)",
        "every host in 10.0.0.0/8 gets mode 6 answers",
        "READVAR about 34 times the request",
        "a peer's variables about 60 times on NTPsec 1.2",
        "probes from the node's own loopback addresses",
        "cannot measure it",
    ] {
        assert!(message.contains(fact), "{fact}: {message}");
    }
    assert!(
        !private[0].to_string().contains("no amplification"),
        "{}",
        private[0]
    );
    let public = lint(
        Flavor::NTPD,
        &format!("{HARDENED}restrict 128.0.0.0 mask 128.0.0.0 nomodify\n"),
        NTPD_4_2_8,
    );
    let message = &public[0].message;
    assert!(
        message.starts_with(
            "the restrict entry for 128.0.0.0/1, a public network, has no noquery (or ignore)"
        ),
        "{message}"
    );
    assert!(
        message.contains("mode 7 answers where classic ntpd has mode 7 enabled"),
        "{message}"
    );
    assert!(!message.contains("NTPsec"), "{message}");
    // Single hosts, loopback, entries with noquery or ignore, and hostnames
    // stay allowed.
    for line in [
        "restrict 192.0.2.1",
        "restrict 192.0.2.1 mask 255.255.255.255 nomodify",
        "restrict 2001:db8::1",
        "restrict 10.0.0.1",
        "restrict 127.0.0.0 mask 255.0.0.0",
        "restrict 127.0.0.0/8",
        "restrict ::1/128",
        "restrict 10.0.0.0 mask 255.0.0.0 nomodify noquery",
        "restrict 128.0.0.0 mask 128.0.0.0 nomodify noquery",
        "restrict 128.0.0.0 mask 128.0.0.0 ignore",
        "restrict source nomodify",
        "restrict time.example.org nomodify",
    ] {
        assert_eq!(
            rules(Flavor::NTPSEC, &format!("{HARDENED}{line}\n"), None),
            Vec::<&str>::new(),
            "{line}"
        );
    }
    // Flags of several lines for one network add up.
    let split = format!(
        "{HARDENED}restrict 192.0.2.0/24 nomodify\nrestrict 192.0.2.0 mask 255.255.255.0 noquery\n"
    );
    assert_eq!(rules(Flavor::NTPSEC, &split, None), Vec::<&str>::new());
}

#[test]
fn a_missing_noquery_on_ntpsec_says_what_its_own_default_entry_does_per_version() {
    let open = "restrict default kod limited nomodify nopeer\nrestrict 127.0.0.1\n";
    let message = |version| {
        let found = lint(Flavor::NTPSEC, open, version);
        only_finding(&found, Rule::NoqueryMissing, 1, open).message
    };
    // From 1.1.9 NTPsec's own default entry has noquery, and lines only add.
    let current = message(Some("1.2.2+dfsg1-1+deb12u1"));
    for fact in [
        "the default restrict entry has no noquery (IPv4 and IPv6)",
        "NTPsec 1.2.2+dfsg1 starts its own default entry with noquery and limited",
        "from 1.1.9",
        "refuses the mode 6 queries of every host without an entry of its own all the same",
        "on the strength of its version alone",
    ] {
        assert!(current.contains(fact), "{fact}: {current}");
    }
    assert!(!current.contains("gets mode 6 answers"), "{current}");
    let old = message(Some("1.1.8+dfsg1-1"));
    assert!(
        old.contains("NTPsec 1.1.8+dfsg1 is older than 1.1.9: its own default entry has no noquery, so every host without an entry of its own gets mode 6 answers"),
        "{old}"
    );
    let unknown = message(None);
    assert!(
        unknown.contains("the NTPsec version is not known")
            && unknown.contains("where it has none, every host"),
        "{unknown}"
    );
    // `unrestrict` takes the daemon's own noquery off too, with or without a
    // restrict line for the default entry.
    let off = "restrict default kod limited nomodify\nunrestrict default noquery\n";
    let found = lint(Flavor::NTPSEC, off, Some("1.2.2+dfsg1-1+deb12u1"));
    let finding = only_finding(&found, Rule::NoqueryMissing, 2, off);
    assert!(
        finding.message.contains("gets mode 6 answers"),
        "{}",
        finding.message
    );
    assert!(!finding.message.contains("refuses"), "{}", finding.message);
    assert_eq!(
        rules(
            Flavor::NTPSEC,
            "unrestrict default noquery\n",
            Some("1.2.2+dfsg1-1+deb12u1")
        ),
        vec![
            "ipv6-default-missing",
            "noquery-missing",
            "nomodify-missing"
        ]
    );
    // No -6 default: what IPv6 hosts get is the daemon's, per version.
    let v4_only = "restrict -4 default kod limited nomodify nopeer noquery\n";
    let v6 = |flavor, version| lint(flavor, v4_only, version)[0].message.clone();
    let ntpsec = v6(Flavor::NTPSEC, Some("1.2.2+dfsg1-1+deb12u1"));
    assert!(
        ntpsec.contains("refuses the mode 6 queries of every IPv6 host all the same"),
        "{ntpsec}"
    );
    let classic = v6(Flavor::NTPD, NTPD_4_2_8);
    assert!(
        classic.contains("so every IPv6 host gets mode 6 answers (READVAR about 34 times"),
        "{classic}"
    );
}

#[test]
fn unrestrict_that_turns_off_noquery_or_nomodify_is_a_finding() {
    let off = "restrict default kod limited nomodify noquery\nunrestrict default noquery\n";
    let found = lint(Flavor::NTPSEC, off, None);
    let finding = only_finding(&found, Rule::NoqueryMissing, 2, "");
    assert!(
        finding.message.starts_with(
            "an `unrestrict` line turns off noquery in the default restrict entry (IPv4 and IPv6); every host without an entry of its own gets mode 6 answers"
        ),
        "{}",
        finding.message
    );
    assert_eq!(
        rules(
            Flavor::NTPSEC,
            "restrict default nomodify noquery\nunrestrict -6 default nomodify\n",
            None
        ),
        vec!["nomodify-missing"]
    );
    // `unrestrict default` without flags does nothing; a later restrict puts a flag back.
    assert_eq!(
        rules(
            Flavor::NTPSEC,
            "restrict default nomodify noquery\nunrestrict default\n",
            None
        ),
        Vec::<&str>::new()
    );
    assert_eq!(
        rules(
            Flavor::NTPSEC,
            "restrict default nomodify noquery\nunrestrict default noquery\nrestrict default noquery\n",
            None
        ),
        Vec::<&str>::new()
    );
    // On a network entry: turning noquery off re-opens it; removing the entry does not.
    let net = format!("{HARDENED}restrict 192.0.2.0/24 noquery\n");
    let found = lint(
        Flavor::NTPSEC,
        &format!("{net}unrestrict 192.0.2.0/24 noquery\n"),
        None,
    );
    assert_eq!(
        (found[0].rule, found[0].line),
        (Rule::NoqueryMissingNetwork, Some(6))
    );
    assert_eq!(
        rules(
            Flavor::NTPSEC,
            &format!("{HARDENED}restrict 192.0.2.0/24\nunrestrict 192.0.2.0/24\n"),
            None
        ),
        Vec::<&str>::new()
    );
}

#[test]
fn chrony_directives_match_in_any_case() {
    each_line(
        Flavor::CHRONY,
        &[
            "CMDALLOW all",
            "CmdAllow 192.0.2.0/24",
            "BINDCMDADDRESS 0.0.0.0",
        ],
        &["chrony-cmdallow"],
    );
    for line in ["ALLOW", "Allow all", "ALLOW 0/0"] {
        assert_eq!(
            rules(Flavor::CHRONY, &format!("{line}\n"), None),
            vec!["chrony-allow-all"],
            "{line}"
        );
    }
    assert_eq!(
        rules(
            Flavor::CHRONY,
            "CMDALLOW 127.0.0.1\nBindCmdAddress ::1\n",
            None
        ),
        Vec::<&str>::new()
    );
    // ntpd and OpenNTPD keywords stay case-sensitive.
    assert_eq!(
        rules(Flavor::OPENNTPD, "LISTEN ON *\n", None),
        Vec::<&str>::new()
    );
}

#[test]
fn every_spelling_of_all_and_everywhere_is_recognised() {
    each_line(
        Flavor::CHRONY,
        &[
            "allow 192.0.2.0/0",
            "allow 0::/0",
            "allow 2001:db8::/0",
            "allow 10/0",
            "allow 10.0.0.0/0.0.0.0",
        ],
        &["chrony-allow-all"],
    );
    each_line(
        Flavor::CHRONY,
        &[
            "allow 192.0.2.0/1",
            "allow 10.0.0.0/255.0.0.0",
            "allow ntp.example.org",
        ],
        &[],
    );
    each_line(
        Flavor::OPENNTPD,
        &[
            "listen on ::0",
            "listen on 0:0:0:0:0:0:0:0",
            "listen on 0",
            "listen on 0.0",
            "listen on 0x0",
            "listen on 000.000.000.000",
            "listen on ::ffff:0.0.0.0",
        ],
        &["openntpd-listen-any"],
    );
    for line in ["listen on 0.0.0.1", "listen on ::2", "listen on localhost"] {
        assert_eq!(
            rules(Flavor::OPENNTPD, &format!("{line}\n"), None),
            Vec::<&str>::new(),
            "{line}"
        );
    }
    // A zero mask or prefix on any address is the default entry for ntpd.
    assert_eq!(
        rules(
            Flavor::NTPSEC,
            "restrict 192.0.2.0 mask 0.0.0.0 nomodify noquery\nrestrict 2001:db8::/0 nomodify noquery\n",
            None
        ),
        Vec::<&str>::new()
    );
    assert_eq!(
        rules(
            Flavor::NTPSEC,
            "restrict 0.0.0.0/0 nomodify\nrestrict -6 default nomodify noquery\n",
            None
        ),
        vec!["noquery-missing"]
    );
}

#[test]
fn inet_aton_reads_what_glibc_reads() {
    for (s, want) in [
        ("0", "0.0.0.0"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("010.0.0.1", "8.0.0.1"),
        ("192.168.1", "192.168.0.1"),
        ("4294967295", "255.255.255.255"),
    ] {
        assert_eq!(crate::net::inet_aton(s), Some(want.parse().unwrap()), "{s}");
    }
    for s in [
        "",
        "1.2.3.4.5",
        "256.1",
        "1.2.3.256",
        "08",
        "0x",
        "a",
        "1..2",
        "+1",
    ] {
        assert_eq!(crate::net::inet_aton(s), None, "{s}");
    }
}

#[test]
fn chrony_refuses_more_than_one_bindaddress_per_family() {
    let two = "bindaddress 192.0.2.1\nbindaddress 2001:db8::1\nBINDADDRESS 192.0.2.2\n";
    let errors = conflicts(Flavor::CHRONY, two);
    assert_eq!(
        errors,
        vec![
            "2 `bindaddress` lines for IPv4: 192.0.2.1 (line 1), 192.0.2.2 (line 3); chrony keeps only the last \
             one per address family, so it would listen on 192.0.2.2 alone: give `listen` at most one IPv4 and \
             one IPv6 address"
        ]
    );
    assert_eq!(
        conflicts(
            Flavor::CHRONY,
            "bindaddress 192.0.2.1\nbindaddress 2001:db8::1\n"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        conflicts(Flavor::CHRONY, "bindaddress ::1\nbindaddress 2001:db8::1\n").len(),
        1
    );
    // Only chrony behaves so.
    assert_eq!(conflicts(Flavor::OPENNTPD, two), Vec::<String>::new());

    // What our template renders from `listen`.
    let o = parse_override("listen=[192.0.2.1, 192.0.2.2]").unwrap();
    let plan = Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &[o]).unwrap();
    let daemon = Daemon::new(DaemonName::CHRONY, Flavor::CHRONY);
    let content = rendered_config(&plan, &daemon);
    let errors = conflicts(Flavor::CHRONY, &content);
    assert_eq!(errors.len(), 1, "{content}");
    assert!(errors[0].contains("192.0.2.1 (line"), "{}", errors[0]);
}

#[test]
fn a_chrony_plan_listening_on_two_ipv4_addresses_is_refused_before_any_change() {
    use crate::fake::FakeNode;
    let overrides: Vec<_> = [
        "daemon=chrony",
        "listen=[192.0.2.1, 192.0.2.2, \"2001:db8::1\"]",
    ]
    .iter()
    .map(|s| parse_override(s).unwrap())
    .collect();
    let plan = Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &overrides).unwrap();
    let node = FakeNode::bookworm();
    let g = crate::facts::gather(&node, &crate::facts::Wants::from(&plan)).unwrap();
    let cs = crate::diff::diff(&g.rendered, &g.facts).unwrap();
    let outcome = for_plan(&g.rendered, &g.facts, &cs);
    assert_eq!(outcome.linted.len(), 1);
    assert_eq!(outcome.linted[0].flavor, Flavor::CHRONY);
    assert_eq!(outcome.linted[0].findings, vec![]);
    let err = crate::engine::lint_gate(&outcome, &Rule::ALL).unwrap_err();
    assert!(
        err.starts_with("/etc/chrony/chrony.conf as the plan would write it in step "),
        "{err}"
    );
    assert!(
        err.contains("2 `bindaddress` lines for IPv4: 192.0.2.1 (line ")
            && err.contains("would listen on 192.0.2.2 alone"),
        "{err}"
    );
    // One address per family is fine.
    let o = parse_override("listen=[192.0.2.1, \"2001:db8::1\"]").unwrap();
    let plan = Plan::load(
        DEFAULT_PLAN.as_bytes(),
        Source::embedded(),
        &[overrides[0].clone(), o],
    )
    .unwrap();
    let g = crate::facts::gather(&node, &crate::facts::Wants::from(&plan)).unwrap();
    let cs = crate::diff::diff(&g.rendered, &g.facts).unwrap();
    assert!(crate::engine::lint_gate(&for_plan(&g.rendered, &g.facts, &cs), &[]).is_ok());
}

#[test]
fn a_config_that_reads_other_files_is_a_finding_the_plan_must_allow() {
    let secure = "restrict -4 default kod limited notrap nomodify nopeer noquery\n\
                  restrict -6 default kod limited notrap nomodify nopeer noquery\n";
    for flavor in [Flavor::NTPD, Flavor::NTPSEC] {
        let config = format!("{secure}includefile /etc/ntp.d/extra.conf\n");
        let found = lint(flavor, &config, Some("1:4.2.8p15+dfsg-1"));
        let rules: Vec<Rule> = found.iter().map(|f| f.rule).collect();
        assert_eq!(rules, vec![Rule::IncludeNotLinted], "{flavor:?}: {found:?}");
        assert_eq!(found[0].line, Some(3));
        assert!(
            found[0].message.contains("/etc/ntp.d/extra.conf"),
            "{found:?}"
        );
        assert!(lint(flavor, secure, Some("1:4.2.8p15+dfsg-1")).is_empty());
    }
    each_line(
        Flavor::CHRONY,
        &[
            "include /etc/chrony/extra/*.conf",
            "confdir /etc/chrony/conf.d",
            "CONFDIR /etc/chrony/conf.d",
        ],
        &["include-not-linted"],
    );
    // Time sources only: no access control in them.
    each_line(
        Flavor::CHRONY,
        &["sourcedir /run/chrony-dhcp", "#include x"],
        &[],
    );
    // OpenNTPD has no include; the word means nothing to it.
    each_line(Flavor::OPENNTPD, &["includefile /etc/x"], &[]);
}

fn nts_key(path: &str, mode: u32) -> NtsFile {
    NtsFile {
        var: "nts_server_key",
        path: AbsPath::parse(path).unwrap(),
        mode,
        uid: 0,
        gid: 101,
    }
}

#[test]
fn a_served_nts_key_others_can_read_is_a_finding_on_its_line() {
    let chrony = "server 192.0.2.1 iburst\nntsservercert /etc/chrony/nts.pem\nntsserverkey /etc/chrony/nts.key\n";
    let ntpsec =
        "server 192.0.2.1 iburst\nnts key /etc/ntpsec/nts.key\nnts cert /etc/ntpsec/nts.pem\n";
    for (flavor, config, path, line, user) in [
        (Flavor::CHRONY, chrony, "/etc/chrony/nts.key", 3, "_chrony"),
        (Flavor::NTPSEC, ntpsec, "/etc/ntpsec/nts.key", 2, "ntpsec"),
    ] {
        let found = nts_keys(flavor, config, &[nts_key(path, 0o644)]);
        let finding = only_finding(&found, Rule::NtsKeyReadable, line, config);
        assert_eq!(
            finding.message,
            format!(
                "the NTS server key {path} (vars.nts_server_key) has mode 0644, readable by every \
                 local user; chmod o-r {path}: 0640 with group {user}, or 0600 owned by {user}"
            )
        );
        for private in [0o640, 0o600, 0o400] {
            assert_eq!(nts_keys(flavor, config, &[nts_key(path, private)]), vec![]);
        }
        // A key the facts did not read is not judged; the pure lint never reads.
        assert_eq!(
            nts_keys(flavor, config, &[nts_key("/etc/other.key", 0o644)]),
            vec![]
        );
        assert!(lint(flavor, config, None)
            .iter()
            .all(|f| f.rule != Rule::NtsKeyReadable));
    }
    // chrony takes the directive in any case; only daemons that serve NTS name a key.
    let upper = nts_keys(Flavor::CHRONY, "NTSSERVERKEY /k\n", &[nts_key("/k", 0o604)]);
    only_finding(&upper, Rule::NtsKeyReadable, 1, "upper case");
    for flavor in [Flavor::NTPD, Flavor::OPENNTPD] {
        assert_eq!(
            nts_keys(flavor, ntpsec, &[nts_key("/etc/ntpsec/nts.key", 0o644)]),
            vec![]
        );
    }
}

#[test]
fn our_templates_name_the_nts_key_the_plan_serves_with() {
    let vars = [
        "nts_server_cert=/etc/ssl/nts.pem",
        "nts_server_key=/etc/ssl/nts.key",
    ];
    let o: Vec<_> = vars.iter().map(|v| parse_override(v).unwrap()).collect();
    let plan = Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &o).unwrap();
    for (name, flavor, directive) in [
        (
            DaemonName::CHRONY,
            Flavor::CHRONY,
            "ntsserverkey /etc/ssl/nts.key",
        ),
        (
            DaemonName::NTPSEC,
            Flavor::NTPSEC,
            "nts key /etc/ssl/nts.key",
        ),
    ] {
        let content = rendered_config(&plan, &Daemon::new(name, flavor));
        let line = 1 + content.lines().position(|l| l == directive).unwrap();
        let found = nts_keys(flavor, &content, &[nts_key("/etc/ssl/nts.key", 0o644)]);
        only_finding(&found, Rule::NtsKeyReadable, line, &content);
    }
}

#[test]
fn an_allowed_readable_nts_key_is_a_note_and_relaxes_no_check() {
    let mut key = linted(
        "/etc/chrony/chrony.conf",
        "step \"NTP config\"",
        nts_keys(Flavor::CHRONY, "ntsserverkey /k\n", &[nts_key("/k", 0o644)]),
    );
    key.flavor = Flavor::CHRONY;
    let plan = PlanLint {
        linted: vec![key],
        not_templated: None,
    };
    let err = judge(&plan, &[]).unwrap_err();
    assert!(
        err.contains("nts-key-readable (line 1): the NTS server key /k"),
        "{err}"
    );
    assert!(
        err.contains("impersonate this server to every NTS client"),
        "{err}"
    );
    assert!(err.ends_with("allow_insecure: [nts-key-readable]"), "{err}");
    let (notes, (enforcement, accepted)) =
        crate::engine::lint_gate(&plan, &[Rule::NtsKeyReadable]).unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].starts_with(
            "allowed by allow_insecure: /etc/chrony/chrony.conf: nts-key-readable (line 1)"
        ),
        "{notes:?}"
    );
    // A readable key explains no answer to a query: the check stays enforced.
    assert_eq!(enforcement, crate::verify::Enforcement::Enforced);
    assert_eq!(accepted, Vec::<String>::new());
}
