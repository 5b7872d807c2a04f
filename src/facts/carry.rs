//! dpkg's and the init system's answers of a run's first facts, carried into
//! the facts it decides again right after its `apt-get update`
//! (`Changeset::redecide_after_update`): no probe runs twice in a run.
//!
//! An update changes the package lists (apt's answers, `memo`), never what
//! dpkg or systemd report. The answers are carried only when no step before
//! the update changed anything (the caller decides that from what ran) and
//! dpkg's database is the one they were read from
//! ([`Probe::dpkg_fingerprint`], taken before they were read): an install,
//! removal or hold by another program during the update means dpkg and
//! systemd are asked again. A unit's state may change under any run between
//! its probe and its step; this one carries it for the length of an update,
//! and after a package change `apply` reads units again anyway.
//!
//! [`Probe::dpkg_fingerprint`]: super::Probe::dpkg_fingerprint

use super::dpkg::DpkgPackage;
use super::probe::{InitSystem, UnitFact};
use crate::names::{PackageName, UnitName};
use std::collections::BTreeMap;

/// What dpkg and the init system answered, under one fingerprint of dpkg's
/// database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAnswers {
    pub dpkg_fingerprint: String,
    pub init: InitSystem,
    pub dpkg: BTreeMap<PackageName, DpkgPackage>,
    pub units: BTreeMap<UnitName, UnitFact>,
}

impl NodeAnswers {
    /// The answers for these packages and units, if they are all known and
    /// still hold: the same init system and dpkg fingerprint `now`.
    pub fn answer(
        &self,
        now: Option<&str>,
        init: InitSystem,
        packages: &[PackageName],
        units: &[UnitName],
    ) -> Option<(BTreeMap<PackageName, DpkgPackage>, Vec<UnitFact>)> {
        if now != Some(self.dpkg_fingerprint.as_str()) || init != self.init {
            return None;
        }
        let dpkg = packages
            .iter()
            .map(|p| Some((p.clone(), self.dpkg.get(p)?.clone())))
            .collect::<Option<_>>()?;
        let units = units
            .iter()
            .map(|u| self.units.get(u).cloned())
            .collect::<Option<_>>()?;
        Some((dpkg, units))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::dpkg::DpkgState;

    fn answers() -> NodeAnswers {
        let unit = UnitFact {
            exists: true,
            running: true,
            enabled: true,
            main_pid: Some(7),
            started: None,
        };
        NodeAnswers {
            dpkg_fingerprint: "f1".into(),
            init: InitSystem::Systemd,
            dpkg: [(
                PackageName::parse("ntpsec").unwrap(),
                DpkgPackage {
                    state: DpkgState::NotInstalled,
                    held: false,
                },
            )]
            .into(),
            units: [(UnitName::parse("ntpsec.service").unwrap(), unit)].into(),
        }
    }

    #[test]
    fn answers_hold_only_under_the_same_fingerprint_and_init_and_for_what_was_asked() {
        let a = answers();
        let pkgs = [PackageName::parse("ntpsec").unwrap()];
        let units = [UnitName::parse("ntpsec.service").unwrap()];
        let (dpkg, facts) = a
            .answer(Some("f1"), InitSystem::Systemd, &pkgs, &units)
            .expect("all known, same database");
        assert_eq!(dpkg, a.dpkg);
        assert_eq!(facts, vec![a.units[&units[0]].clone()]);
        assert_eq!(
            a.answer(Some("f2"), InitSystem::Systemd, &pkgs, &units),
            None
        );
        assert_eq!(a.answer(None, InitSystem::Systemd, &pkgs, &units), None);
        assert_eq!(a.answer(Some("f1"), InitSystem::Sysv, &pkgs, &units), None);
        let more = [pkgs[0].clone(), PackageName::parse("chrony").unwrap()];
        assert_eq!(
            a.answer(Some("f1"), InitSystem::Systemd, &more, &units),
            None
        );
        let other = [UnitName::parse("chrony.service").unwrap()];
        assert_eq!(
            a.answer(Some("f1"), InitSystem::Systemd, &pkgs, &other),
            None
        );
    }
}
