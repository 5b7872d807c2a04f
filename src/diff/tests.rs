use super::*;
use crate::facts::{Facts, FileState, InitSystem, ListsFact, PackageFact, UnitFact};
use crate::plan::names::AbsPath;
use crate::plan::{Plan, Source};
use std::collections::BTreeMap;
use std::time::Duration;

const CONFIG: &str = "/etc/ntp.conf";

fn plan(text: &str) -> Plan {
    Plan::load(
        text.as_bytes(),
        Source {
            name: "t.yaml".into(),
            dir: None,
        },
        &[],
    )
    .unwrap()
}

/// Facts for a node with the given dpkg states; candidates as given.
fn facts(pkgs: &[(&str, DpkgState, Option<&str>)]) -> Facts {
    Facts {
        init: InitSystem::Systemd,
        lists: ListsFact {
            age: Some(Duration::from_secs(60)),
            refreshed_privately: false,
            refresh_error: None,
        },
        daemon: None,
        packages: pkgs
            .iter()
            .map(|(n, s, c)| {
                (
                    PackageName::parse(n).unwrap(),
                    PackageFact {
                        dpkg: s.clone(),
                        candidate: c.map(str::to_string),
                    },
                )
            })
            .collect(),
        autoremovable: vec![],
        files: BTreeMap::new(),
        accounts: [
            (("root".to_string(), false), Some(0)),
            (("root".to_string(), true), Some(0)),
        ]
        .into_iter()
        .collect(),
        units: BTreeMap::new(),
        dpkg_journal: crate::facts::DpkgJournal::Clean,
        stamp: "20260102T030405".into(),
    }
}

fn installed(v: &str) -> DpkgState {
    DpkgState::Installed { version: v.into() }
}

fn changes_of(text: &str, f: &Facts) -> Vec<Change> {
    let cs = diff(&plan(text).render(None).unwrap(), f).unwrap();
    cs.steps.into_iter().flat_map(|s| s.changes).collect()
}

#[test]
fn residual_config_is_purged_but_installed_packages_are_left_alone() {
    let text =
        "steps:\n  - name: leftovers\n    apt: {name: [ntp, ntpsec], state: residual_purged}\n";
    let f = facts(&[
        (
            "ntp",
            DpkgState::ConfigFiles {
                version: "1:4.2.8p15+dfsg-1".into(),
            },
            Some("1:4.2.8p15+dfsg-1"),
        ),
        ("ntpsec", installed("1.2.2"), Some("1.2.2")),
    ]);
    let changes = changes_of(text, &f);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].to_string(),
        "purge: ntp 1:4.2.8p15+dfsg-1 (config-files) -> purged"
    );
}

#[test]
fn latest_upgrades_but_never_downgrades() {
    let text = "steps:\n  - name: daemon\n    apt: {name: [ntp, chrony, ntpdate], state: latest}\n";
    let f = facts(&[
        (
            "ntp",
            installed("1:4.2.8p12+dfsg-4"),
            Some("1:4.2.8p15+dfsg-1"),
        ),
        ("chrony", installed("4.5-1"), Some("4.3-2")),
        (
            "ntpdate",
            DpkgState::NotInstalled,
            Some("1:4.2.8p15+dfsg-1"),
        ),
    ]);
    let changes = changes_of(text, &f);
    assert_eq!(
        changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["install: ntp 1:4.2.8p12+dfsg-4 -> 1:4.2.8p15+dfsg-1, ntpdate (none) -> 1:4.2.8p15+dfsg-1"],
        "one batched install, chrony left at its newer version"
    );
}

#[test]
fn a_package_without_candidate_fails_the_diff() {
    let f = facts(&[("ntp", DpkgState::NotInstalled, None)]);
    let err = diff(
        &plan("steps:\n  - name: daemon\n    apt: {name: ntp}\n")
            .render(None)
            .unwrap(),
        &f,
    )
    .unwrap_err();
    assert!(
        err.contains("package ntp has no installation candidate"),
        "{err}"
    );
}

#[test]
fn half_installed_packages_are_repaired_first() {
    let f = facts(&[(
        "ntpsec",
        DpkgState::Broken {
            abbrev: "iU".into(),
            status: "install ok unpacked".into(),
            version: "1.2.2".into(),
        },
        Some("1.2.2"),
    )]);
    let changes = changes_of(
        "steps:\n  - name: daemon\n    apt: {name: ntpsec, state: latest}\n",
        &f,
    );
    assert_eq!(changes.len(), 1);
    assert_eq!(
        changes[0].to_string(),
        "dpkg --configure -a (interrupted install): ntpsec 1.2.2 (iU unpacked) -> 1.2.2"
    );
}

#[test]
fn an_interrupted_dpkg_is_finished_in_a_step_of_its_own_before_the_first_apt_step() {
    let mut f = facts(&[("ntp", DpkgState::NotInstalled, Some("1:4.2.8p15+dfsg-1"))]);
    f.dpkg_journal = crate::facts::DpkgJournal::Interrupted { entries: 2 };
    let text = "steps:\n  - name: config\n    service: {name: ntp.service, enabled: false}\n  - name: daemon\n    apt: {name: ntp}\n  - name: again\n    apt: {name: ntp}\n";
    let cs = diff(&plan(text).render(None).unwrap(), &f).unwrap();
    let names: Vec<&str> = cs.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["config", REPAIR_STEP, "daemon", "again"]);
    assert_eq!(
        cs.steps[1].changes[0].to_string(),
        "dpkg --configure -a: dpkg was interrupted (2 journal entries in /var/lib/dpkg/updates); apt refuses to work until it is finished"
    );
    // Nothing to do with apt: nothing to repair for.
    assert!(changes_of(
        "steps:\n  - name: config\n    service: {name: ntp.service, enabled: false}\n",
        &f
    )
    .is_empty());
}

#[test]
fn update_cache_respects_cache_valid_time() {
    let text = "steps:\n  - name: lists\n    apt: {update_cache: true, cache_valid_time: 3600}\n";
    let mut f = facts(&[]);
    assert!(changes_of(text, &f).is_empty(), "60 s old lists are fresh");
    f.lists.age = Some(Duration::from_secs(7200));
    assert_eq!(
        changes_of(text, &f)[0].to_string(),
        "apt-get update: the package lists are 2 h old (more than 60 min)"
    );
    f.lists.age = None;
    assert_eq!(
        changes_of(text, &f)[0].to_string(),
        "apt-get update: the package lists were never updated"
    );
}

#[test]
fn autoremove_follows_removals_and_reports_what_apt_would_remove() {
    let text = "steps:\n  - name: gone\n    apt: {name: ntpdate, state: purged}\n  - name: tidy\n    apt: {autoremove: true}\n";
    let mut f = facts(&[(
        "ntpdate",
        installed("1:4.2.8p15+dfsg-1"),
        Some("1:4.2.8p15+dfsg-1"),
    )]);
    let changes = changes_of(text, &f);
    assert!(
        matches!(&changes[1], Change::Autoremove { packages, .. } if packages.is_empty()),
        "{changes:?}"
    );
    f.packages.clear();
    f.packages.insert(
        PackageName::parse("ntpdate").unwrap(),
        PackageFact {
            dpkg: DpkgState::NotInstalled,
            candidate: None,
        },
    );
    assert!(
        changes_of(text, &f).is_empty(),
        "nothing removed, nothing unneeded: no autoremove"
    );
    f.autoremovable = vec!["libopts25 1:5.18.16-4".into()];
    assert_eq!(
        changes_of(text, &f)[0].to_string(),
        "autoremove: libopts25 1:5.18.16-4"
    );
}

const TEMPLATE_PLAN: &str = "vars: {servers: [127.0.0.1]}\nsteps:\n  - name: config\n    template: {src: ntp.conf.j2, dest: /etc/ntp.conf}\n    notify: restart\n  - name: running\n    service: {name: ntp, state: started, enabled: true}\nhandlers:\n  - name: restart\n    service: {name: ntp, state: restarted}\n";

#[test]
fn a_changed_config_restarts_the_service_with_the_reason() {
    let p = plan(TEMPLATE_PLAN);
    let rendered = p.render(None).unwrap();
    let mut f = facts(&[]);
    f.files.insert(
        AbsPath::parse(CONFIG).unwrap(),
        Some(FileState {
            content: b"server old.example\n".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        }),
    );
    f.units.insert(
        crate::plan::names::UnitName::parse("ntp").unwrap(),
        UnitFact {
            exists: true,
            running: true,
            enabled: true,
            main_pid: Some(42),
        },
    );
    let cs = diff(&rendered, &f).unwrap();
    assert_eq!(
        cs.steps.len(),
        3,
        "the handler is added because the config changed"
    );
    let Change::File {
        diff: text, before, ..
    } = &cs.steps[0].changes[0]
    else {
        panic!("{:?}", cs.steps[0])
    };
    assert!(before.is_some());
    assert!(
        text.starts_with("--- /etc/ntp.conf\n+++ /etc/ntp.conf (planned)\n"),
        "{text}"
    );
    assert!(text.contains("-server old.example\n"));
    assert!(text.contains("+server 127.0.0.1 iburst\n"));
    assert!(
        cs.steps[1].changes.is_empty(),
        "already running and enabled"
    );
    assert!(cs.steps[2].handler);
    assert_eq!(cs.steps[0].changes[0].to_string(), "update /etc/ntp.conf (content); old content kept as /etc/ntp.conf.20260102T030405.ntp-provision.bak");
    assert_eq!(
        cs.steps[2].changes[0].to_string(),
        "restart ntp.service: /etc/ntp.conf changed; unhealthy after it: /etc/ntp.conf rolled back"
    );

    // Converged: same content and metadata, no change and no handler.
    let content = match &rendered.steps[0].action {
        crate::plan::step::Action::Template(t) => t.content.clone(),
        _ => unreachable!(),
    };
    f.files.insert(
        AbsPath::parse(CONFIG).unwrap(),
        Some(FileState {
            content: content.into_bytes(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        }),
    );
    let cs = diff(&rendered, &f).unwrap();
    assert!(cs.is_empty());
    assert_eq!(cs.steps.len(), 2);

    // Only the mode drifted: a change without a content diff.
    if let Some(Some(file)) = f.files.get_mut(&AbsPath::parse(CONFIG).unwrap()) {
        file.mode = 0o600;
    }
    let cs = diff(&rendered, &f).unwrap();
    assert_eq!(cs.steps[0].changes[0].to_string(), "update /etc/ntp.conf (mode 0600 -> 0644); old content kept as /etc/ntp.conf.20260102T030405.ntp-provision.bak");
}

#[test]
fn a_missing_owner_is_an_error_not_a_guess() {
    let p = Plan::load(
        TEMPLATE_PLAN
            .replace(
                "dest: /etc/ntp.conf}",
                "dest: /etc/ntp.conf, owner: ntpsec}",
            )
            .as_bytes(),
        Source {
            name: "t.yaml".into(),
            dir: None,
        },
        &[],
    )
    .unwrap();
    let mut f = facts(&[]);
    f.files.insert(AbsPath::parse(CONFIG).unwrap(), None);
    f.accounts.insert(("ntpsec".into(), false), None);
    let err = diff(&p.render(None).unwrap(), &f).unwrap_err();
    assert!(
        err.contains("user ntpsec or group root does not exist"),
        "{err}"
    );
}

#[test]
fn chrony_3_of_ubuntu_18_04_has_no_config_check_and_says_so() {
    let text = "vars: {servers: [127.0.0.1]}\nsteps:\n  - name: config\n    template: {src: chrony.conf.j2, dest: /etc/chrony/chrony.conf, validate: chrony}\n";
    // Recorded from Ubuntu 18.04 (bionic): dpkg-query of chrony.
    let installed = crate::facts::dpkg::parse_dpkg_query(
        "chrony|ii |install ok installed|3.2-4ubuntu4.5\n",
        "",
        &[PackageName::parse("chrony").unwrap()],
    )
    .unwrap();
    let mut f = facts(&[(
        "chrony",
        installed.into_values().next().unwrap(),
        Some("3.2-4ubuntu4.5"),
    )]);
    f.files
        .insert(AbsPath::parse("/etc/chrony/chrony.conf").unwrap(), None);
    let changes = changes_of(text, &f);
    let Change::File { check, .. } = &changes[0] else {
        panic!("{changes:?}")
    };
    assert_eq!(
        check,
        &Check::Unavailable {
            reason: "chrony 3.2-4ubuntu4.5 cannot check a config (no -p before 4.0): the restart's health check decides".into()
        }
    );
    f.packages
        .get_mut(&PackageName::parse("chrony").unwrap())
        .unwrap()
        .dpkg = DpkgState::Installed {
        version: "4.3-2".into(),
    };
    let Change::File { check, .. } = &changes_of(text, &f)[0] else {
        panic!()
    };
    assert_eq!(
        check,
        &Check::Daemon {
            flavor: crate::daemon::Flavor::Chrony
        }
    );
}
