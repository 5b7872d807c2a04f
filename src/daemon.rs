//! What ntp-provision knows about each NTP daemon on Debian and Ubuntu: its
//! package, config file, unit and template (see shared platforms.md).
//!
//! This is domain knowledge, not node state: which daemon a node really gets
//! for a requested name is decided by `facts::daemon` from the archive's
//! metadata. Nothing here runs a command.

use crate::plan::names::{AbsPath, PackageName, UnitName};
use serde::Serialize;
use std::fmt;

/// The daemon an operator asks for with `vars.daemon`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DaemonName {
    Ntp,
    Ntpsec,
    Chrony,
    Openntpd,
}

impl DaemonName {
    pub const ALL: [DaemonName; 4] = [
        DaemonName::Ntp,
        DaemonName::Ntpsec,
        DaemonName::Chrony,
        DaemonName::Openntpd,
    ];

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "ntp" => Ok(DaemonName::Ntp),
            "ntpsec" => Ok(DaemonName::Ntpsec),
            "chrony" => Ok(DaemonName::Chrony),
            "openntpd" => Ok(DaemonName::Openntpd),
            "ntimed" => Err("\"ntimed\" was never packaged by Debian or Ubuntu; choose one of ntp, ntpsec, chrony, openntpd".into()),
            other => Err(format!("{other:?} is not a known daemon (ntp, ntpsec, chrony, openntpd)")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DaemonName::Ntp => "ntp",
            DaemonName::Ntpsec => "ntpsec",
            DaemonName::Chrony => "chrony",
            DaemonName::Openntpd => "openntpd",
        }
    }

    /// The package that carries this name in the archive.
    pub fn package(self) -> PackageName {
        PackageName::parse(self.as_str()).expect("daemon names are valid package names")
    }
}

impl fmt::Display for DaemonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The implementation that actually runs; `ntp` is classic ntpd on some
/// releases and a transitional package for NTPsec on others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavor {
    Ntpd,
    Ntpsec,
    Chrony,
    Openntpd,
}

impl Flavor {
    pub const ALL: [Flavor; 4] = [
        Flavor::Ntpd,
        Flavor::Ntpsec,
        Flavor::Chrony,
        Flavor::Openntpd,
    ];

    pub fn package(self) -> PackageName {
        let name = match self {
            Flavor::Ntpd => "ntp",
            Flavor::Ntpsec => "ntpsec",
            Flavor::Chrony => "chrony",
            Flavor::Openntpd => "openntpd",
        };
        PackageName::parse(name).expect("static package name")
    }

    pub fn config(self) -> AbsPath {
        let path = match self {
            Flavor::Ntpd => "/etc/ntp.conf",
            Flavor::Ntpsec => "/etc/ntpsec/ntp.conf",
            Flavor::Chrony => "/etc/chrony/chrony.conf",
            Flavor::Openntpd => "/etc/openntpd/ntpd.conf",
        };
        AbsPath::parse(path).expect("static path")
    }

    pub fn unit(self) -> UnitName {
        let unit = match self {
            Flavor::Ntpd => "ntp.service",
            Flavor::Ntpsec => "ntpsec.service",
            Flavor::Chrony => "chrony.service",
            Flavor::Openntpd => "openntpd.service",
        };
        UnitName::parse(unit).expect("static unit name")
    }

    /// The embedded template (templates/) that writes this daemon's config.
    pub fn template(self) -> &'static str {
        match self {
            Flavor::Ntpd => "ntp.conf.j2",
            Flavor::Ntpsec => "ntpsec.conf.j2",
            Flavor::Chrony => "chrony.conf.j2",
            Flavor::Openntpd => "openntpd.conf.j2",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Flavor::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!("{s:?} is not a daemon flavour (ntpd, ntpsec, chrony, openntpd, none)")
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Ntpd => "ntpd",
            Flavor::Ntpsec => "ntpsec",
            Flavor::Chrony => "chrony",
            Flavor::Openntpd => "openntpd",
        }
    }
}

/// Every package that provides the `time-daemon` virtual package on Debian
/// and Ubuntu: exactly one of them may stay.
pub const TIME_DAEMON_PACKAGES: [&str; 5] =
    ["ntp", "ntpsec", "chrony", "openntpd", "systemd-timesyncd"];

/// The unit a time-daemon package brings, so the diff knows it is gone once
/// the package is purged.
pub fn unit_of_package(package: &PackageName) -> Option<UnitName> {
    let unit = match package.as_str() {
        "ntp" => "ntp.service",
        "ntpsec" => "ntpsec.service",
        "chrony" => "chrony.service",
        "openntpd" => "openntpd.service",
        "systemd-timesyncd" => "systemd-timesyncd.service",
        _ => return None,
    };
    UnitName::parse(unit).ok()
}

/// A daemon resolved for one node: what `facts.daemon` holds in templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
}

impl Daemon {
    pub fn new(requested: DaemonName, flavor: Flavor) -> Self {
        let transitional = (requested.package() != flavor.package()).then(|| requested.package());
        let keep = [flavor.package(), requested.package()];
        let competitors = TIME_DAEMON_PACKAGES
            .iter()
            .filter_map(|p| PackageName::parse(p).ok())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_resolved_to_ntpsec_names_the_transitional_package() {
        let d = Daemon::new(DaemonName::Ntp, Flavor::Ntpsec);
        assert_eq!(d.package.as_str(), "ntpsec");
        assert_eq!(d.transitional.as_ref().map(|p| p.as_str()), Some("ntp"));
        assert_eq!(
            d.to_string(),
            "daemon ntp: package ntpsec (ntp is a transitional package for it here), config /etc/ntpsec/ntp.conf, unit ntpsec.service"
        );
        let classic = Daemon::new(DaemonName::Ntp, Flavor::Ntpd);
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
}
