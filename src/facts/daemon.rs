//! Which daemon a requested name really gives on this node, read from the
//! archive: `ntp` is classic ntpd where its candidate is the daemon itself,
//! NTPsec where the candidate is a transitional package depending on ntpsec,
//! and unavailable where the archive has no candidate at all.

use super::apt::{parse_depends, Policy, Stanza};
use crate::daemons::{Daemon, DaemonName, Flavor, Setting, Support};
use crate::names::PackageName;
use std::collections::BTreeMap;

/// Decides the daemon from candidates (apt-cache policy of every daemon
/// package) and the requested package's candidate stanza.
pub fn resolve(
    requested: DaemonName,
    policies: &BTreeMap<PackageName, Policy>,
    candidate_stanza: Option<&Stanza>,
) -> Result<Daemon, String> {
    let has_candidate = |d: DaemonName| {
        policies
            .get(&d.package())
            .is_some_and(|p| p.candidate.is_some())
    };
    if !has_candidate(requested) {
        let offered: Vec<&str> = DaemonName::all()
            .into_iter()
            .filter(|d| *d != requested && has_candidate(*d))
            .map(DaemonName::as_str)
            .collect();
        let alternatives = if offered.is_empty() {
            "the archive offers no other NTP daemon either".to_string()
        } else {
            format!(
                "the archive offers: {} (set vars.daemon or -e daemon=NAME)",
                offered.join(", ")
            )
        };
        return Err(format!(
            "daemon {requested}: package {} has no installation candidate on this node; {alternatives}",
            requested.package()
        ));
    }
    Ok(Daemon::new(
        requested,
        flavor_of(requested, candidate_stanza)?,
    ))
}

/// The daemon a name gives: the one packaged under the name, or the one a
/// transitional package of that name depends on (Debian 12's empty `ntp`
/// depends on ntpsec).
fn flavor_of(requested: DaemonName, candidate_stanza: Option<&Stanza>) -> Result<Flavor, String> {
    let flavors = Flavor::for_request(requested);
    let own = flavors
        .iter()
        .copied()
        .find(|f| f.package_name() == requested.as_str());
    let others: Vec<Flavor> = flavors
        .iter()
        .copied()
        .filter(|f| Some(*f) != own)
        .collect();
    let (Some(own), false) = (own, others.is_empty()) else {
        return flavors
            .first()
            .copied()
            .ok_or_else(|| format!("daemon {requested}: no daemon answers to this name"));
    };
    // Without the candidate's record, the daemon itself and a transitional
    // package cannot be told apart: never guess.
    let titles: Vec<&str> = others.iter().map(|f| f.title()).collect();
    let stanza = candidate_stanza.ok_or_else(|| {
        format!(
            "daemon {requested}: apt gave no record of the candidate version of {requested}, so it is \
             unknown whether it is {} or the transitional package for {} \
             (check `apt-cache policy {requested}` and `apt-cache show {requested}`)",
            own.title(),
            titles.join(" or ")
        )
    })?;
    let depends = stanza.get("Depends").map(parse_depends).unwrap_or_default();
    let target = others.into_iter().find(|f| {
        depends
            .iter()
            .any(|alts| alts.iter().any(|p| p == f.package_name()))
    });
    Ok(target.unwrap_or(own))
}

/// NTS needs a daemon and version that have it, and for a source given by
/// IP address one that checks a certificate against an address. `version`
/// is the version apply will run (candidate or installed); `hosts`, the
/// sources that ask for NTS.
pub fn check_nts(daemon: &Daemon, version: Option<&str>, hosts: &[String]) -> Result<(), String> {
    let Some(minimum) = daemon.flavor.nts_since() else {
        let with: Vec<String> = Flavor::all()
            .filter_map(|f| f.nts_since().map(|v| format!("{} (>= {v})", f.title())))
            .collect();
        return Err(format!(
            "nts is set for a time source, but {} has no NTS support; use {}",
            daemon.flavor.as_str(),
            with.join(" or ")
        ));
    };
    let Some(v) = version else { return Ok(()) };
    let older = |minimum| super::version::compare(v, minimum) == std::cmp::Ordering::Less;
    if older(minimum) {
        return Err(format!(
            "nts is set for a time source, but {} {v} on this node is older than {minimum}, the first with NTS",
            daemon.package
        ));
    }
    let by_address = daemon.flavor.nts_by_address_since().unwrap_or(minimum);
    match hosts.iter().find(|h| h.parse::<std::net::IpAddr>().is_ok()) {
        Some(host) if older(by_address) => Err(format!(
            "nts is set for {host}, an IP address, but {} {v} on this node checks an NTS server's \
             certificate against its name only ({by_address} added addresses): give the server by \
             the name its certificate carries",
            daemon.package
        )),
        _ => Ok(()),
    }
}

/// Every file or directory variable the plan sets needs a line in the
/// resolved daemon's template, in the version apply will run.
pub fn check_settings(
    daemon: &Daemon,
    version: Option<&str>,
    settings: &[Setting],
) -> Result<(), String> {
    for &setting in settings {
        let var = setting.var();
        match (daemon.flavor.supports(setting), version) {
            (Support::Always, _) => {}
            (Support::Since(minimum), Some(v))
                if super::version::compare(v, minimum) == std::cmp::Ordering::Less =>
            {
                return Err(format!(
                    "vars.{var} is set, but {} {v} on this node has no line for it (it came with {minimum})",
                    daemon.package
                ))
            }
            (Support::Since(_), _) => {}
            (Support::No, _) => {
                let with: Vec<&str> = Flavor::all()
                    .filter(|f| f.supports(setting) != Support::No)
                    .map(|f| f.as_str())
                    .collect();
                let instead = setting.instead().map(|i| format!(" ({i})")).unwrap_or_default();
                return Err(format!(
                    "vars.{var} is set, but {} has no such setting; only {} {}: leave it out for {}{instead}",
                    daemon.flavor.as_str(),
                    with.join(" and "),
                    if with.len() == 1 { "has it" } else { "have it" },
                    daemon.flavor.as_str()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::apt::{parse_policy, parse_stanzas};

    fn pkgs() -> Vec<PackageName> {
        DaemonName::all().iter().map(|d| d.package()).collect()
    }

    // Recorded on Debian 12 (bookworm), like Ubuntu 24.04.
    const BOOKWORM_POLICY: &str = "\
ntp:
  Installed: (none)
  Candidate: 1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1
  Version table:
     1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
ntpsec:
  Installed: (none)
  Candidate: 1.2.2+dfsg1-1+deb12u1
  Version table:
     1.2.2+dfsg1-1+deb12u1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
chrony:
  Installed: (none)
  Candidate: 4.3-2+deb12u1
  Version table:
     4.3-2+deb12u1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
openntpd:
  Installed: (none)
  Candidate: 1:6.8p1-4
  Version table:
     1:6.8p1-4 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
";
    const BOOKWORM_NTP_SHOW: &str = "\
Package: ntp
Source: ntpsec
Version: 1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1
Installed-Size: 13
Maintainer: Richard Laager <rlaager@debian.org>
Architecture: all
Depends: ntpsec
Description-en: Network Time Protocol daemon/utilities (transitional package)
 This is a dummy transitional package to transition to NTPsec.
";
    // Recorded on Ubuntu 22.04 (jammy): classic ntpd.
    const JAMMY_NTP_SHOW: &str = "\
Package: ntp
Architecture: amd64
Version: 1:4.2.8p15+dfsg-1ubuntu2
Priority: optional
Section: net
Origin: Ubuntu
Depends: adduser, lsb-base (>= 3.2-13), netbase, libc6 (>= 2.34), libcap2 (>= 1:2.10), libevent-core-2.1-7 (>= 2.1.8-stable), libevent-pthreads-2.1-7 (>= 2.1.8-stable), libopts25 (>= 1:5.18.16), libssl3 (>= 3.0.0~~alpha1)
Recommends: perl
Description: Network Time Protocol daemon and utility programs
";
    // Debian 13 (trixie), like Ubuntu 25.10+: no ntp at all.
    const TRIXIE_POLICY: &str = "\
ntpsec:
  Installed: (none)
  Candidate: 1.2.3+dfsg1-9
  Version table:
     1.2.3+dfsg1-9 500
        500 http://deb.debian.org/debian trixie/main amd64 Packages
chrony:
  Installed: (none)
  Candidate: 4.6.1-3
  Version table:
     4.6.1-3 500
        500 http://deb.debian.org/debian trixie/main amd64 Packages
openntpd:
  Installed: (none)
  Candidate: 1:6.8p1-6
  Version table:
     1:6.8p1-6 500
        500 http://deb.debian.org/debian trixie/main amd64 Packages
systemd-timesyncd:
  Installed: (none)
  Candidate: 257.13-1~deb13u1
  Version table:
     257.13-1~deb13u1 500
        500 http://deb.debian.org/debian trixie/main amd64 Packages
";

    #[test]
    fn transitional_ntp_resolves_to_ntpsec() {
        let policies = parse_policy(BOOKWORM_POLICY, &pkgs()).unwrap();
        let stanzas = parse_stanzas(BOOKWORM_NTP_SHOW);
        let d = resolve(DaemonName::NTP, &policies, stanzas.first()).unwrap();
        assert_eq!(d.flavor, Flavor::NTPSEC);
        assert_eq!(d.config.as_str(), "/etc/ntpsec/ntp.conf");
        assert_eq!(d.unit.as_str(), "ntpsec.service");
        assert_eq!(d.transitional.unwrap().as_str(), "ntp");
    }

    #[test]
    fn classic_ntp_stays_ntpd() {
        let policies = parse_policy(BOOKWORM_POLICY, &pkgs()).unwrap();
        let stanzas = parse_stanzas(JAMMY_NTP_SHOW);
        let d = resolve(DaemonName::NTP, &policies, stanzas.first()).unwrap();
        assert_eq!(d.flavor, Flavor::NTPD);
        assert_eq!(d.config.as_str(), "/etc/ntp.conf");
        assert_eq!(d.unit.as_str(), "ntp.service");
    }

    // Recorded from Ubuntu 24.04 (noble): `apt-cache show --no-all-versions ntp`.
    const NOBLE_NTP_SHOW: &str = "\
Package: ntp
Architecture: all
Version: 1:4.2.8p15+dfsg-2~1.2.2+dfsg1-4build2
Priority: optional
Section: universe/oldlibs
Source: ntpsec (1.2.2+dfsg1-4build2)
Origin: Ubuntu
Maintainer: Ubuntu Developers <ubuntu-devel-discuss@lists.ubuntu.com>
Original-Maintainer: Richard Laager <rlaager@debian.org>
Installed-Size: 13
Depends: ntpsec
Filename: pool/universe/n/ntpsec/ntp_4.2.8p15+dfsg-2~1.2.2+dfsg1-4build2_all.deb
Description: Network Time Protocol daemon/utilities (transitional package)
";
    // Recorded from Ubuntu 14.04 (trusty): classic ntpd 4.2.6 with a SysV script.
    const TRUSTY_NTP_SHOW: &str = "\
Package: ntp
Priority: optional
Section: net
Installed-Size: 1519
Maintainer: Ubuntu Developers <ubuntu-devel-discuss@lists.ubuntu.com>
Architecture: amd64
Version: 1:4.2.6.p5+dfsg-3ubuntu2.14.04.13
Depends: libc6 (>= 2.17), libcap2 (>= 1:2.10), libedit2 (>= 2.11-20080614), libopts25 (>= 1:5.18), libssl1.0.0 (>= 1.0.0), netbase, adduser, lsb-base (>= 3.2-13), dpkg (>= 1.15.7.2)
Recommends: perl
Suggests: ntp-doc
Description: Network Time Protocol daemon and utility programs
";

    #[test]
    fn ubuntu_noble_transitional_and_trusty_classic() {
        let policies: BTreeMap<PackageName, Policy> = pkgs()
            .into_iter()
            .map(|p| {
                (
                    p,
                    Policy {
                        installed: None,
                        candidate: Some("1".into()),
                    },
                )
            })
            .collect();
        let noble = resolve(
            DaemonName::NTP,
            &policies,
            parse_stanzas(NOBLE_NTP_SHOW).first(),
        )
        .unwrap();
        assert_eq!(
            (noble.flavor, noble.unit.as_str()),
            (Flavor::NTPSEC, "ntpsec.service")
        );
        let trusty = resolve(
            DaemonName::NTP,
            &policies,
            parse_stanzas(TRUSTY_NTP_SHOW).first(),
        )
        .unwrap();
        assert_eq!(
            (trusty.flavor, trusty.config.as_str()),
            (Flavor::NTPD, "/etc/ntp.conf")
        );
        // 14.04 has no systemd: the unit name gives the SysV script's name.
        assert_eq!(trusty.unit.stem(), "ntp");
    }

    #[test]
    fn nts_needs_a_daemon_and_version_that_have_it() {
        let chrony = Daemon::new(DaemonName::CHRONY, Flavor::CHRONY);
        // Ubuntu 18.04 and 20.04 ship chrony 3.x.
        let named = ["time.example".to_string()];
        assert!(check_nts(&chrony, Some("3.5-6ubuntu6"), &named)
            .unwrap_err()
            .contains("older than 4.0"));
        assert!(check_nts(&chrony, Some("4.3-2+deb12u1"), &named).is_ok());
        let ntpsec = Daemon::new(DaemonName::NTPSEC, Flavor::NTPSEC);
        assert!(check_nts(&ntpsec, Some("1.1.9+dfsg1-1+deb11u1"), &named).is_err());
        assert!(check_nts(&ntpsec, Some("1.2.2+dfsg1-1+deb12u1"), &named).is_ok());
        let classic = Daemon::new(DaemonName::NTP, Flavor::NTPD);
        assert!(check_nts(&classic, None, &named)
            .unwrap_err()
            .contains("no NTS support"));
    }

    #[test]
    fn nts_by_ip_address_needs_chrony_4_1() {
        let chrony = Daemon::new(DaemonName::CHRONY, Flavor::CHRONY);
        let hosts = ["time.example".to_string(), "10.123.0.50".to_string()];
        // Debian 11's chrony 4.0 has NTS, but only for a server given by name.
        assert!(check_nts(&chrony, Some("4.0-8+deb11u2"), &hosts[..1]).is_ok());
        let err = check_nts(&chrony, Some("4.0-8+deb11u2"), &hosts).unwrap_err();
        assert!(
            err.contains("nts is set for 10.123.0.50, an IP address, but chrony 4.0-8+deb11u2")
                && err.contains("4.1 added addresses"),
            "{err}"
        );
        let v6 = ["fd00::7b".to_string()];
        assert!(check_nts(&chrony, Some("4.0-8+deb11u2"), &v6).is_err());
        assert!(check_nts(&chrony, Some("4.3-2+deb12u1"), &hosts).is_ok());
        // Unknown version (nothing installed, no candidate): apply decides nothing from it.
        assert!(check_nts(&chrony, None, &hosts).is_ok());
        let ntpsec = Daemon::new(DaemonName::NTPSEC, Flavor::NTPSEC);
        assert!(check_nts(&ntpsec, Some("1.2.2+dfsg1-1+deb12u1"), &hosts).is_ok());
    }

    #[test]
    fn file_settings_need_a_daemon_and_version_with_a_line_for_them() {
        let chrony = Daemon::new(DaemonName::CHRONY, Flavor::CHRONY);
        let bookworm = check_settings(&chrony, Some("4.3-2+deb12u1"), &[Setting::Leapfile]);
        assert_eq!(
            bookworm.unwrap_err(),
            "vars.leapfile is set, but chrony 4.3-2+deb12u1 on this node has no line for it (it came with 4.6)"
        );
        assert!(check_settings(&chrony, Some("4.6.1-3"), &[Setting::Leapfile]).is_ok());
        assert!(check_settings(&chrony, None, &[Setting::Logdir]).is_ok());
        let err = check_settings(&chrony, None, &[Setting::Statsdir]).unwrap_err();
        assert_eq!(
            err,
            "vars.statsdir is set, but chrony has no such setting; only ntpd and ntpsec have it: leave it out for chrony"
        );
        let classic = Daemon::new(DaemonName::NTP, Flavor::NTPD);
        assert!(check_settings(&classic, None, &Setting::ALL[..3]).is_err());
        let all_but_logdir = [Setting::Leapfile, Setting::Logfile, Setting::Statsdir];
        assert!(check_settings(&classic, None, &all_but_logdir).is_ok());
        let openntpd = Daemon::new(DaemonName::OPENNTPD, Flavor::OPENNTPD);
        for s in Setting::ALL {
            assert!(check_settings(&openntpd, None, &[s]).is_err(), "{s:?}");
        }
        assert_eq!(
            check_settings(&openntpd, None, &[Setting::PanicThreshold]).unwrap_err(),
            "vars.panic_threshold is set, but openntpd has no such setting; only ntpd and ntpsec and chrony have it: leave it out for openntpd"
        );
        // OpenNTPD would serve nobody with `clients` alone: refused, naming what it has.
        assert_eq!(
            check_settings(&openntpd, None, &[Setting::Clients]).unwrap_err(),
            "vars.clients is set, but openntpd has no such setting; only ntpd and ntpsec and chrony have it: leave it out \
             for openntpd (`listen` makes it serve time on an address, to every host that reaches that address)"
        );
        // OpenNTPD has no DHCP integration in Debian; timesyncd has nothing else.
        assert_eq!(
            check_settings(&openntpd, None, &[Setting::DhcpServers]).unwrap_err(),
            "vars.dhcp_servers is set, but openntpd has no such setting; only ntpd and ntpsec and chrony and timesyncd have it: leave it out for openntpd"
        );
        let timesyncd = Daemon::new(DaemonName::TIMESYNCD, Flavor::TIMESYNCD);
        assert!(check_settings(&timesyncd, None, &[Setting::DhcpServers]).is_ok());
        assert!(check_settings(&timesyncd, None, &[Setting::OrphanStratum]).is_err());
    }

    #[test]
    fn ntp_without_the_candidate_record_is_an_error_not_a_guess() {
        let policies = parse_policy(BOOKWORM_POLICY, &pkgs()).unwrap();
        let err = resolve(DaemonName::NTP, &policies, None).unwrap_err();
        assert!(
            err.contains("no record of the candidate version of ntp"),
            "{err}"
        );
    }

    #[test]
    fn missing_ntp_names_the_alternatives() {
        let policies = parse_policy(TRIXIE_POLICY, &pkgs()).unwrap();
        let err = resolve(DaemonName::NTP, &policies, None).unwrap_err();
        assert_eq!(
            err,
            "daemon ntp: package ntp has no installation candidate on this node; \
             the archive offers: ntpsec, chrony, openntpd, timesyncd (set vars.daemon or -e daemon=NAME)"
        );
    }

    #[test]
    fn timesyncd_is_its_package_where_the_archive_has_it_and_refused_where_not() {
        let policies = parse_policy(TRIXIE_POLICY, &pkgs()).unwrap();
        let d = resolve(DaemonName::TIMESYNCD, &policies, None).unwrap();
        assert_eq!(d.flavor, Flavor::TIMESYNCD);
        assert_eq!(d.package.as_str(), "systemd-timesyncd");
        // Where timesyncd is inside the `systemd` package (Ubuntu 18.04) no
        // systemd-timesyncd package has a candidate: refused, nothing guessed.
        let policies = parse_policy(BOOKWORM_POLICY, &pkgs()).unwrap();
        let err = resolve(DaemonName::TIMESYNCD, &policies, None).unwrap_err();
        assert!(
            err.starts_with(
                "daemon timesyncd: package systemd-timesyncd has no installation candidate on this node; \
                 the archive offers: ntp, ntpsec, chrony, openntpd"
            ),
            "{err}"
        );
        let nts = check_nts(&d, Some("257.13-1~deb13u1"), &["t.example".to_string()]).unwrap_err();
        assert!(nts.contains("timesyncd has no NTS support"), "{nts}");
    }
}
