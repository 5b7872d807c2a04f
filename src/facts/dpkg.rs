//! Parses what dpkg says about packages: the output of
//! `dpkg-query -W -f='${Package}|${db:Status-Abbrev}|${Status}|${Version}\n' PKG...`
//! and the listing of `/var/lib/dpkg/updates`.
//!
//! Pure functions only: this module must not run commands; the probes run
//! elsewhere and hand their text in here.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::names::PackageName;

/// dpkg's view of one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DpkgState {
    /// Unknown to dpkg, or purged.
    NotInstalled,
    /// `ii`: installed and configured.
    Installed { version: String },
    /// `rc`: removed, its config files left behind (a purge target).
    ConfigFiles { version: String },
    /// Any half state (iU unpacked, iF half-configured, iH half-installed,
    /// iW/it triggers, reinst-required ...). `dpkg --configure -a` finishes
    /// only some of them (`configured_by_repair`); the others need a reinstall.
    Broken {
        abbrev: String,
        status: String,
        version: String,
    },
}

impl DpkgState {
    /// The version whose files are on disk; config-files leftovers do not count.
    pub fn installed_version(&self) -> Option<&str> {
        match self {
            DpkgState::Installed { version } | DpkgState::Broken { version, .. } => Some(version),
            DpkgState::NotInstalled | DpkgState::ConfigFiles { .. } => None,
        }
    }

    pub fn is_installed(&self) -> bool {
        matches!(self, DpkgState::Installed { .. })
    }

    /// Whether `dpkg --configure -a` leaves this package installed. dpkg
    /// configures the packages selected for install (or hold) that are
    /// unpacked, half-configured or waiting for triggers; it leaves alone a
    /// package that needs a reinstall (half-installed, or the reinst-required
    /// flag: `iHR`, `iiR`, `iUR`) and one selected for removal or purge
    /// (`rU`, `pU`): those stay broken.
    pub fn configured_by_repair(&self) -> bool {
        let DpkgState::Broken { status, .. } = self else {
            return false;
        };
        let words: Vec<&str> = status.split_whitespace().collect();
        matches!(
            words[..],
            [
                "install" | "hold",
                "ok",
                "unpacked" | "half-configured" | "triggers-awaited" | "triggers-pending"
            ]
        )
    }

    /// With Multi-Arch: same a name can appear once per architecture; the
    /// state that needs the most attention must win.
    fn severity(&self) -> u8 {
        match self {
            DpkgState::NotInstalled => 0,
            DpkgState::ConfigFiles { .. } => 1,
            DpkgState::Installed { .. } => 2,
            DpkgState::Broken { .. } => 3,
        }
    }
}

/// What dpkg says about one package: its state, and whether it is held
/// (selection `hold`, `apt-mark hold`): apt then refuses, under `-y`, to
/// install another version of it or to remove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpkgPackage {
    pub state: DpkgState,
    pub held: bool,
}

/// Parses the output of a dpkg-query that exited with `code`; every package
/// in `wanted` gets an entry (`NotInstalled`, not held, when absent from stdout).
pub fn parse_dpkg_query(
    stdout: &str,
    stderr: &str,
    code: i32,
    wanted: &[PackageName],
) -> Result<BTreeMap<PackageName, DpkgPackage>, String> {
    check_stderr(stderr, code)?;

    let mut states: BTreeMap<PackageName, DpkgPackage> = wanted
        .iter()
        .map(|p| {
            let fact = DpkgPackage {
                state: DpkgState::NotInstalled,
                held: false,
            };
            (p.clone(), fact)
        })
        .collect();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let (name, state, held) = parse_line(line)?;
        let Some(key) = wanted.iter().find(|p| p.as_str() == name) else {
            continue;
        };
        if let Some(slot) = states.get_mut(key) {
            // Multi-Arch: a hold on any architecture's instance holds the name.
            slot.held |= held;
            if state.severity() > slot.state.severity() {
                slot.state = state;
            }
        }
    }
    Ok(states)
}

/// Exit status 0, or 1 with "no packages found matching" lines (the normal
/// answer for packages dpkg has never seen), is an answer. So is a warning
/// about a damaged but usable status file, with its indented continuation
/// lines (`dpkg-query: warning: parsing file '/var/lib/dpkg/status' near line
/// N package 'x':` then ` missing 'Description' field`): dpkg-query still
/// answers then. Anything else (an `error:`, an unknown line, another exit
/// status) means the query failed.
fn check_stderr(stderr: &str, code: i32) -> Result<(), String> {
    let mut in_warning = false;
    let mut errors: Vec<&str> = Vec::new();
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        if in_warning && line.starts_with(char::is_whitespace) {
            continue;
        }
        in_warning = line.starts_with("dpkg-query: warning: ");
        if in_warning || line.starts_with("dpkg-query: no packages found matching ") {
            continue;
        }
        errors.push(line.trim());
    }
    if !errors.is_empty() {
        return Err(format!("dpkg-query failed: {:?}", errors.join(" ")));
    }
    if !matches!(code, 0 | 1) {
        return Err(format!("dpkg-query failed with exit status {code}"));
    }
    Ok(())
}

fn parse_line(line: &str) -> Result<(&str, DpkgState, bool), String> {
    let malformed = |why: &str| format!("unexpected dpkg-query line ({why}): {line:?}");
    let mut fields = line.splitn(4, '|');
    let (Some(name), Some(abbrev), Some(status), Some(version)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed("expected 4 fields separated by '|'"));
    };
    let (name, version) = (name.trim(), version.trim());
    // The third abbrev column is the error flag, usually a blank.
    let abbrev = abbrev.trim_end();
    if name.is_empty() || !(2..=3).contains(&abbrev.len()) {
        return Err(malformed("bad package name or status abbreviation"));
    }
    // `${Status}` is "want eflag state"; the state and eflag decide what is
    // on disk. Of the selection (install/hold/deinstall/purge) only a hold
    // matters: apt will not change a held package.
    let words: Vec<&str> = status.split_whitespace().collect();
    let [want, eflag, current] = words[..] else {
        return Err(malformed("status is not 'want eflag state'"));
    };
    let settled = eflag == "ok" && matches!(current, "installed" | "config-files");
    if settled && version.is_empty() {
        return Err(malformed("no version for a package with files on disk"));
    }
    let version = version.to_string();
    let state = match (current, eflag) {
        ("not-installed", _) => DpkgState::NotInstalled,
        ("config-files", "ok") => DpkgState::ConfigFiles { version },
        ("installed", "ok") => DpkgState::Installed { version },
        // No version check for these: refusing an odd half state would block
        // the very `dpkg --configure -a` that repairs it.
        (
            "installed" | "config-files" | "half-installed" | "unpacked" | "half-configured"
            | "triggers-awaited" | "triggers-pending",
            _,
        ) => DpkgState::Broken {
            abbrev: abbrev.to_string(),
            status: status.trim().to_string(),
            version,
        },
        _ => return Err(malformed("unknown package state")),
    };
    Ok((name, state, want == "hold"))
}

/// True when dpkg left journal entries behind (`/var/lib/dpkg/updates/0001`
/// ...): apt then refuses to work until `dpkg --configure -a` has run.
/// `tmp.i` is dpkg's scratch file and does not mean an interrupted run.
pub fn dpkg_interrupted(updates_dir_entries: &[String]) -> bool {
    updates_dir_entries.iter().any(|entry| {
        let name = entry.rsplit('/').next().unwrap_or(entry);
        !name.is_empty() && name.bytes().all(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<PackageName> {
        list.iter()
            .map(|n| PackageName::parse(n).expect("test name"))
            .collect()
    }

    fn state(map: &BTreeMap<PackageName, DpkgPackage>, name: &str) -> DpkgState {
        map[&PackageName::parse(name).expect("test name")]
            .state
            .clone()
    }

    fn held(map: &BTreeMap<PackageName, DpkgPackage>, name: &str) -> bool {
        map[&PackageName::parse(name).expect("test name")].held
    }

    #[test]
    fn bookworm_ntp_transitional_with_ntpsec_and_missing_ntpdate() {
        let stdout = "ntp|ii |install ok installed|1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1\n\
                      ntpsec|ii |install ok installed|1.2.2+dfsg1-1+deb12u1\n";
        let stderr = "dpkg-query: no packages found matching ntpdate\n";
        let got =
            parse_dpkg_query(stdout, stderr, 1, &names(&["ntp", "ntpsec", "ntpdate"])).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(
            state(&got, "ntp"),
            DpkgState::Installed {
                version: "1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1".into()
            }
        );
        assert_eq!(
            state(&got, "ntpsec").installed_version(),
            Some("1.2.2+dfsg1-1+deb12u1")
        );
        assert_eq!(state(&got, "ntpdate"), DpkgState::NotInstalled);
        assert!(state(&got, "ntp").is_installed());
    }

    #[test]
    fn removed_ntp_leaves_config_files() {
        let stdout = "ntp|rc |deinstall ok config-files|1:4.2.8p15+dfsg-1\n";
        let got = parse_dpkg_query(stdout, "", 0, &names(&["ntp"])).unwrap();
        let ntp = state(&got, "ntp");
        assert_eq!(
            ntp,
            DpkgState::ConfigFiles {
                version: "1:4.2.8p15+dfsg-1".into()
            }
        );
        assert!(!ntp.is_installed());
        assert_eq!(ntp.installed_version(), None);
    }

    #[test]
    fn purged_package_dpkg_still_remembers_is_not_installed() {
        // Real bookworm output for a package that was installed once and purged.
        let stdout = "chrony|un |unknown ok not-installed|\nntpdate|pn |purge ok not-installed|\n";
        let got = parse_dpkg_query(stdout, "", 0, &names(&["chrony", "ntpdate"])).unwrap();
        assert_eq!(state(&got, "chrony"), DpkgState::NotInstalled);
        assert_eq!(state(&got, "ntpdate"), DpkgState::NotInstalled);
    }

    #[test]
    fn half_states_are_broken() {
        let stdout = "ntpsec|iU |install ok unpacked|1.2.2+dfsg1-1+deb12u1\n\
                      ntp|iF |install ok half-configured|1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1\n\
                      python3-ntp|iHR|install reinstreq half-installed|1.2.2+dfsg1-1+deb12u1\n\
                      man-db|iW |install ok triggers-awaited|2.11.2-2\n\
                      libc-bin|it |install ok triggers-pending|2.36-9+deb12u14\n";
        let wanted = names(&["ntpsec", "ntp", "python3-ntp", "man-db", "libc-bin"]);
        let got = parse_dpkg_query(stdout, "", 0, &wanted).unwrap();
        assert_eq!(
            state(&got, "ntpsec"),
            DpkgState::Broken {
                abbrev: "iU".into(),
                status: "install ok unpacked".into(),
                version: "1.2.2+dfsg1-1+deb12u1".into()
            }
        );
        let ntp = state(&got, "ntp");
        assert!(!ntp.is_installed());
        assert_eq!(
            ntp.installed_version(),
            Some("1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1")
        );
        for name in ["python3-ntp", "man-db", "libc-bin"] {
            assert!(
                matches!(state(&got, name), DpkgState::Broken { .. }),
                "{name}"
            );
        }
        assert!(
            matches!(state(&got, "python3-ntp"), DpkgState::Broken { abbrev, .. } if abbrev == "iHR")
        );
    }

    #[test]
    fn installed_but_marked_for_reinstall_is_broken() {
        let stdout = "ntp|iiR|install reinstreq installed|1:4.2.8p12+dfsg-4\n";
        let got = parse_dpkg_query(stdout, "", 0, &names(&["ntp"])).unwrap();
        assert!(matches!(state(&got, "ntp"), DpkgState::Broken { .. }));
    }

    #[test]
    fn dpkg_configure_a_finishes_only_what_it_can_configure() {
        let stdout = "ntpsec|iU |install ok unpacked|1.2.2+dfsg1-1+deb12u1\n\
                      ntp|iF |install ok half-configured|1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1\n\
                      man-db|iW |install ok triggers-awaited|2.11.2-2\n\
                      libc-bin|it |install ok triggers-pending|2.36-9+deb12u14\n\
                      chrony|hU |hold ok unpacked|4.3-2+deb12u1\n\
                      python3-ntp|iHR|install reinstreq half-installed|1.2.2+dfsg1-1+deb12u1\n\
                      ntpdate|iH |install ok half-installed|1:4.2.8p15+dfsg-1\n\
                      openntpd|iiR|install reinstreq installed|1:6.8p1-4\n\
                      ntpsec-ntpdate|iUR|install reinstreq unpacked|1.2.2+dfsg1-1+deb12u1\n\
                      systemd-timesyncd|rU |deinstall ok unpacked|252.30-1~deb12u2\n\
                      sntp|pU |purge ok unpacked|1:4.2.8p15+dfsg-1\n\
                      ntpstat|ii |install ok installed|0.0.0.1-2+b1\n";
        let all: Vec<&str> = stdout
            .lines()
            .map(|l| l.split('|').next().unwrap())
            .collect();
        let got = parse_dpkg_query(stdout, "", 0, &names(&all)).unwrap();
        let fixed: Vec<&str> = all
            .iter()
            .copied()
            .filter(|n| state(&got, n).configured_by_repair())
            .collect();
        assert_eq!(fixed, ["ntpsec", "ntp", "man-db", "libc-bin", "chrony"]);
    }

    #[test]
    fn held_or_deselected_but_present_is_installed_and_the_hold_is_kept() {
        let stdout = "ntp|hi |hold ok installed|1:4.2.8p12+dfsg-4\nntpdate|ri |deinstall ok installed|1:4.2.8p12+dfsg-4\n";
        let got = parse_dpkg_query(stdout, "", 0, &names(&["ntp", "ntpdate"])).unwrap();
        assert!(state(&got, "ntp").is_installed());
        assert!(state(&got, "ntpdate").is_installed());
        assert!(held(&got, "ntp"), "apt-mark hold ntp");
        assert!(!held(&got, "ntpdate"), "deinstall is no hold");
    }

    #[test]
    fn a_hold_on_any_state_or_architecture_holds_the_name() {
        // `apt-mark hold` of a package never installed, and of one arch of two.
        let stdout = "chrony|hn |hold ok not-installed|\n\
                      libc6|ii |install ok installed|2.36-9+deb12u14\n\
                      libc6|hi |hold ok installed|2.36-9+deb12u14\n\
                      ntpsec|hU |hold ok unpacked|1.2.2+dfsg1-1+deb12u1\n";
        let got = parse_dpkg_query(stdout, "", 0, &names(&["chrony", "libc6", "ntpsec"])).unwrap();
        assert_eq!(state(&got, "chrony"), DpkgState::NotInstalled);
        assert!(held(&got, "chrony"));
        assert!(held(&got, "libc6"));
        assert!(state(&got, "libc6").is_installed());
        assert!(held(&got, "ntpsec"));
        assert!(matches!(state(&got, "ntpsec"), DpkgState::Broken { .. }));
    }

    #[test]
    fn multi_arch_duplicates_keep_the_state_that_needs_attention() {
        let stdout = "libc6|ii |install ok installed|2.36-9+deb12u14\nlibc6|iU |install ok unpacked|2.36-9+deb12u14\n";
        let got = parse_dpkg_query(stdout, "", 0, &names(&["libc6"])).unwrap();
        assert!(matches!(state(&got, "libc6"), DpkgState::Broken { .. }));
    }

    #[test]
    fn nothing_known_at_all() {
        let stderr = "dpkg-query: no packages found matching ntp\n\
                      dpkg-query: no packages found matching ntpsec\n\
                      dpkg-query: no packages found matching ntpdate\n";
        let got = parse_dpkg_query("", stderr, 1, &names(&["ntp", "ntpsec", "ntpdate"])).unwrap();
        assert!(got
            .values()
            .all(|s| s.state == DpkgState::NotInstalled && !s.held));
    }

    #[test]
    fn packages_not_wanted_are_ignored() {
        let stdout = "chrony|ii |install ok installed|4.3-2+deb12u1\n";
        let got = parse_dpkg_query(stdout, "", 0, &names(&["ntp"])).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(state(&got, "ntp"), DpkgState::NotInstalled);
    }

    #[test]
    fn real_errors_are_reported_with_the_line() {
        let err = parse_dpkg_query(
            "",
            "dpkg-query: error: parsing file '/var/lib/dpkg/status' near line 7 package 'ntp':\n 'Status' field value 'install ok foo': invalid package status\n",
            2,
            &names(&["ntp"]),
        )
        .unwrap_err();
        assert!(err.contains("dpkg-query: error: parsing file"), "{err}");

        for line in [
            "ntp ii install ok installed 1:4.2.8p15+dfsg-1",
            "ntp|ii |install ok installed",
            "ntp|ii |installed|1.0",
            "ntp|ii |install ok exploded|1.0",
            "ntp|ii |install ok installed|",
            "|ii |install ok installed|1.0",
            "ntp||install ok installed|1.0",
        ] {
            let err = parse_dpkg_query(line, "", 0, &names(&["ntp"])).unwrap_err();
            assert!(err.contains(line), "{err}");
        }
    }

    #[test]
    fn warnings_about_a_damaged_but_usable_status_file_are_not_failures() {
        // dpkg-query's words for a status file with a stanza lacking a field:
        // it warns, then answers as usual.
        let stderr = "dpkg-query: warning: parsing file '/var/lib/dpkg/status' near line 5373 package 'ntp':\n missing 'Description' field\n\
                      dpkg-query: no packages found matching ntpdate\n";
        let stdout = "ntp|ii |install ok installed|1:4.2.8p15+dfsg-1\n";
        let got = parse_dpkg_query(stdout, stderr, 1, &names(&["ntp", "ntpdate"])).unwrap();
        assert!(state(&got, "ntp").is_installed());
        assert_eq!(state(&got, "ntpdate"), DpkgState::NotInstalled);
        assert!(parse_dpkg_query(stdout, stderr, 0, &names(&["ntp"])).is_ok());

        // An indented line after an error is part of the error, not a warning.
        let err = parse_dpkg_query(
            stdout,
            "dpkg-query: warning: parsing file '/var/lib/dpkg/status' near line 5373 package 'ntp':\n missing 'Description' field\n\
             dpkg-query: error: parsing file '/var/lib/dpkg/status' near line 7 package 'ntp':\n 'Status' field value 'install ok foo': invalid package status\n",
            1,
            &names(&["ntp"]),
        )
        .unwrap_err();
        assert!(err.contains("dpkg-query: error: parsing file"), "{err}");
        assert!(err.contains("invalid package status"), "{err}");
        assert!(!err.contains("Description"), "{err}");

        // A failure that prints nothing but its exit status is still a failure.
        let err = parse_dpkg_query(stdout, "", 2, &names(&["ntp"])).unwrap_err();
        assert!(err.contains("exit status 2"), "{err}");
    }

    #[test]
    fn serializes_with_a_state_tag() {
        let json = serde_json::to_string(&DpkgState::ConfigFiles {
            version: "1:4.2.8p15+dfsg-1".into(),
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"state":"config_files","version":"1:4.2.8p15+dfsg-1"}"#
        );
    }

    #[test]
    fn journal_files_mean_an_interrupted_run() {
        let entries = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!dpkg_interrupted(&[]));
        assert!(!dpkg_interrupted(&entries(&["tmp.i"])));
        assert!(dpkg_interrupted(&entries(&["tmp.i", "0000"])));
        assert!(dpkg_interrupted(&entries(&["/var/lib/dpkg/updates/0003"])));
        assert!(!dpkg_interrupted(&entries(&["0001.bak", ""])));
    }
}
