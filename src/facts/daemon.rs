//! Which daemon a requested name really gives on this node, read from the
//! archive: `ntp` is classic ntpd where its candidate is the daemon itself,
//! NTPsec where the candidate is a transitional package depending on ntpsec,
//! and unavailable where the archive has no candidate at all.

use super::apt::{parse_depends, Policy, Stanza};
use crate::daemon::{Daemon, DaemonName, Flavor};
use crate::plan::names::PackageName;
use std::collections::BTreeMap;

/// Decides the daemon from candidates (apt-cache policy of every daemon
/// package) and the requested package's candidate stanza.
pub fn resolve(
    requested: DaemonName,
    policies: &BTreeMap<PackageName, Policy>,
    candidate_stanza: Option<&Stanza>,
) -> Result<Daemon, String> {
    let has_candidate = |d: DaemonName| policies.get(&d.package()).is_some_and(|p| p.candidate.is_some());
    if !has_candidate(requested) {
        let offered: Vec<&str> = DaemonName::ALL
            .into_iter()
            .filter(|d| *d != requested && has_candidate(*d))
            .map(DaemonName::as_str)
            .collect();
        let alternatives = if offered.is_empty() {
            "the archive offers no other NTP daemon either".to_string()
        } else {
            format!("the archive offers: {} (set vars.daemon or -e daemon=NAME)", offered.join(", "))
        };
        return Err(format!(
            "daemon {requested}: package {} has no installation candidate on this node; {alternatives}",
            requested.package()
        ));
    }
    let flavor = match requested {
        DaemonName::Ntp => {
            let depends = candidate_stanza.and_then(|s| s.get("Depends")).map(parse_depends).unwrap_or_default();
            // The transitional `ntp` of Debian 12 / Ubuntu 24.04 is an empty
            // package whose only job is to depend on ntpsec.
            if depends.iter().any(|alts| alts.iter().any(|p| p == "ntpsec")) {
                Flavor::Ntpsec
            } else {
                Flavor::Ntpd
            }
        }
        DaemonName::Ntpsec => Flavor::Ntpsec,
        DaemonName::Chrony => Flavor::Chrony,
        DaemonName::Openntpd => Flavor::Openntpd,
    };
    Ok(Daemon::new(requested, flavor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::apt::{parse_policy, parse_stanzas};

    fn pkgs() -> Vec<PackageName> {
        DaemonName::ALL.iter().map(|d| d.package()).collect()
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
";

    #[test]
    fn transitional_ntp_resolves_to_ntpsec() {
        let policies = parse_policy(BOOKWORM_POLICY, &pkgs()).unwrap();
        let stanzas = parse_stanzas(BOOKWORM_NTP_SHOW);
        let d = resolve(DaemonName::Ntp, &policies, stanzas.first()).unwrap();
        assert_eq!(d.flavor, Flavor::Ntpsec);
        assert_eq!(d.config.as_str(), "/etc/ntpsec/ntp.conf");
        assert_eq!(d.unit.as_str(), "ntpsec.service");
        assert_eq!(d.transitional.unwrap().as_str(), "ntp");
    }

    #[test]
    fn classic_ntp_stays_ntpd() {
        let policies = parse_policy(BOOKWORM_POLICY, &pkgs()).unwrap();
        let stanzas = parse_stanzas(JAMMY_NTP_SHOW);
        let d = resolve(DaemonName::Ntp, &policies, stanzas.first()).unwrap();
        assert_eq!(d.flavor, Flavor::Ntpd);
        assert_eq!(d.config.as_str(), "/etc/ntp.conf");
        assert_eq!(d.unit.as_str(), "ntp.service");
    }

    #[test]
    fn missing_ntp_names_the_alternatives() {
        let policies = parse_policy(TRIXIE_POLICY, &pkgs()).unwrap();
        let err = resolve(DaemonName::Ntp, &policies, None).unwrap_err();
        assert_eq!(
            err,
            "daemon ntp: package ntp has no installation candidate on this node; \
             the archive offers: ntpsec, chrony, openntpd (set vars.daemon or -e daemon=NAME)"
        );
    }
}
