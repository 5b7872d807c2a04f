use super::*;
use crate::facts::{Facts, FileState, InitSystem, ListsFact, PackageFact, UnitFact};
use crate::names::{AbsPath, UnitName};
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
            awaiting_update: false,
        },
        daemon: None,
        packages: pkgs
            .iter()
            .map(|(n, s, c)| {
                (
                    PackageName::parse(n).unwrap(),
                    PackageFact {
                        dpkg: s.clone(),
                        held: false,
                        candidate: c.map(str::to_string),
                    },
                )
            })
            .collect(),
        autoremovable: vec![],
        left_unneeded: vec![],
        files: BTreeMap::new(),
        accounts: [
            (("root".to_string(), false), Some(0)),
            (("root".to_string(), true), Some(0)),
        ]
        .into_iter()
        .collect(),
        nts_files: vec![],
        units: BTreeMap::new(),
        timezone: None,
        dpkg_journal: crate::facts::DpkgJournal::Clean,
        stamp: "20260102T030405".into(),
        gathered_at: at(10_000),
    }
}

/// A wall-clock time, `s` seconds after the epoch.
fn at(s: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(s)
}

fn installed(v: &str) -> DpkgState {
    DpkgState::Installed { version: v.into() }
}

/// Why the diff refuses a plan that installs ntp on a node with facts `f`.
fn install_ntp_refused(f: &Facts) -> String {
    let step = plan("steps:\n  - name: daemon\n    apt: {name: ntp}\n");
    diff(&step.render(None).unwrap(), f).unwrap_err()
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
    let err = install_ntp_refused(&f);
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
            held: false,
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
            modified: Some(at(100)),
        }),
    );
    f.units.insert(
        crate::names::UnitName::parse("ntp").unwrap(),
        UnitFact {
            exists: true,
            running: true,
            enabled: true,
            main_pid: Some(42),
            started: Some(at(200)),
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
    assert_eq!(cs.steps[0].changes[0].to_string(), "update /etc/ntp.conf (content); old content kept as /etc/ntp.conf.19700101T000140.000000.ntp-provision.bak");
    assert_eq!(
        cs.steps[2].changes[0].to_string(),
        "restart ntp.service: /etc/ntp.conf changed; rolled back if unhealthy after it: /etc/ntp.conf"
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
            modified: Some(at(100)),
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
    assert_eq!(cs.steps[0].changes[0].to_string(), "update /etc/ntp.conf (mode 0600 -> 0644); old content kept as /etc/ntp.conf.19700101T000140.000000.ntp-provision.bak");
}

#[test]
fn a_right_config_written_after_the_daemon_started_still_gets_its_restart() {
    // An earlier run wrote the config and stopped before its handler ran:
    // the file is right, the daemon runs what it read before.
    let p = plan(TEMPLATE_PLAN);
    let rendered = p.render(None).unwrap();
    let content = match &rendered.steps[0].action {
        crate::plan::step::Action::Template(t) => t.content.clone(),
        _ => unreachable!(),
    };
    let config = |modified| FileState {
        content: content.clone().into_bytes(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        modified: Some(modified),
    };
    let unit = UnitName::parse("ntp").unwrap();
    let running_since = |started| UnitFact {
        exists: true,
        running: true,
        enabled: true,
        main_pid: Some(42),
        started,
    };
    let mut f = facts(&[]);
    f.files
        .insert(AbsPath::parse(CONFIG).unwrap(), Some(config(at(300))));
    f.units.insert(unit.clone(), running_since(Some(at(200))));
    let cs = diff(&rendered, &f).unwrap();
    assert!(cs.steps[0].changes.is_empty(), "the file itself is right");
    assert!(cs.steps[2].handler);
    assert_eq!(
        cs.steps[2].changes[0].to_string(),
        "restart ntp.service: /etc/ntp.conf was modified 100 s after ntp.service started: the daemon has not read it"
    );

    // Started after the write: converged, no handler.
    f.units.insert(unit.clone(), running_since(Some(at(400))));
    assert!(diff(&rendered, &f).unwrap().is_empty());
    // A modification time after the facts (a clock since set back) says nothing.
    f.units.insert(unit.clone(), running_since(Some(at(200))));
    f.files
        .insert(AbsPath::parse(CONFIG).unwrap(), Some(config(at(20_000))));
    assert!(diff(&rendered, &f).unwrap().is_empty());
    // No start time (no systemd): nothing to compare.
    f.files
        .insert(AbsPath::parse(CONFIG).unwrap(), Some(config(at(300))));
    f.units.insert(unit.clone(), running_since(None));
    assert!(diff(&rendered, &f).unwrap().is_empty());
    // Not running: the step that starts it reads the file anyway.
    f.units.insert(
        unit,
        UnitFact {
            running: false,
            ..running_since(Some(at(200)))
        },
    );
    let cs = diff(&rendered, &f).unwrap();
    assert_eq!(cs.steps.len(), 2, "no handler: {cs:?}");
    assert_eq!(
        cs.steps[1].changes[0].to_string(),
        "start ntp.service: not running"
    );
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
        0,
        &[PackageName::parse("chrony").unwrap()],
    )
    .unwrap();
    let mut f = facts(&[(
        "chrony",
        installed.into_values().next().unwrap().state,
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
            flavor: crate::daemons::Flavor::CHRONY
        }
    );
}

fn held(state: DpkgState) -> PackageFact {
    PackageFact {
        dpkg: state,
        held: true,
        candidate: None,
    }
}

#[test]
fn a_change_to_a_held_package_is_refused_before_anything_changes() {
    let latest = "steps:\n  - name: purge\n    apt: {name: chrony, state: purged}\n  - name: daemon\n    apt: {name: ntp, state: latest}\n";
    let mut f = facts(&[
        (
            "ntp",
            installed("1:4.2.8p12+dfsg-4"),
            Some("1:4.2.8p15+dfsg-1"),
        ),
        ("chrony", DpkgState::NotInstalled, Some("4.3-2")),
    ]);
    let ntp = PackageName::parse("ntp").unwrap();
    let chrony = PackageName::parse("chrony").unwrap();
    f.packages.get_mut(&ntp).unwrap().held = true;
    let rendered = plan(latest).render(None).unwrap();
    let err = diff(&rendered, &f).unwrap_err();
    assert_eq!(
        err,
        "step \"daemon\": package ntp is held (apt-mark hold) and apt refuses to change a held package; this step would change it from 1:4.2.8p12+dfsg-4 to 1:4.2.8p15+dfsg-1. Run `apt-mark unhold ntp` to let the plan change it, or take ntp out of the plan"
    );

    // Held at the wanted version already: nothing to change, nothing refused.
    f.packages.get_mut(&ntp).unwrap().dpkg = installed("1:4.2.8p15+dfsg-1");
    assert!(diff(&rendered, &f).unwrap().is_empty());

    // A held competitor that the plan purges.
    f.packages.insert(chrony.clone(), held(installed("4.3-2")));
    let err = diff(&rendered, &f).unwrap_err();
    assert!(
        err.starts_with("step \"purge\": package chrony is held"),
        "{err}"
    );
    assert!(err.contains("would purge it (4.3-2)"), "{err}");
    assert!(err.contains("apt-mark unhold chrony"), "{err}");

    // What a held package left behind (rc) is purged: no version changes.
    f.packages.insert(
        chrony.clone(),
        held(DpkgState::ConfigFiles {
            version: "4.3-2".into(),
        }),
    );
    assert_eq!(
        changes_of(latest, &f)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["purge: chrony 4.3-2 (config-files) -> purged"]
    );

    // Held but never installed: installing it is a change apt refuses.
    let mut f = facts(&[("ntp", DpkgState::NotInstalled, Some("1:4.2.8p15+dfsg-1"))]);
    f.packages.get_mut(&ntp).unwrap().held = true;
    let err = install_ntp_refused(&f);
    assert!(
        err.contains("would install it (1:4.2.8p15+dfsg-1)"),
        "{err}"
    );
}

fn broken(abbrev: &str, status: &str, version: &str) -> DpkgState {
    DpkgState::Broken {
        abbrev: abbrev.into(),
        status: status.into(),
        version: version.into(),
    }
}

#[test]
fn what_dpkg_configure_a_cannot_finish_is_refused_not_repaired_again_and_again() {
    let text = "steps:\n  - name: daemon\n    apt: {name: [ntpsec, python3-ntp], state: latest}\n";
    let mut f = facts(&[
        (
            "ntpsec",
            broken("iU", "install ok unpacked", "1.2.2"),
            Some("1.2.2"),
        ),
        (
            "python3-ntp",
            broken("iHR", "install reinstreq half-installed", "1.2.2"),
            Some("1.2.2"),
        ),
    ]);
    let rendered = plan(text).render(None).unwrap();
    assert_eq!(
        diff(&rendered, &f).unwrap_err(),
        "package python3-ntp 1.2.2 is left iHR half-installed and `dpkg --configure -a` cannot finish it: run `apt-get install --reinstall python3-ntp` (or `apt-get purge python3-ntp` if it should go), then run again"
    );
    f.dpkg_journal = crate::facts::DpkgJournal::Interrupted { entries: 1 };
    let err = diff(&rendered, &f).unwrap_err();
    assert!(
        err.contains("run `dpkg --configure -a`, then `apt-get install --reinstall python3-ntp`"),
        "{err}"
    );
    for (abbrev, status) in [
        ("iiR", "install reinstreq installed"),
        ("iH", "install ok half-installed"),
        ("rU", "deinstall ok unpacked"),
    ] {
        f.packages
            .get_mut(&PackageName::parse("python3-ntp").unwrap())
            .unwrap()
            .dpkg = broken(abbrev, status, "1.2.2");
        let err = diff(&rendered, &f).unwrap_err();
        assert!(err.contains(&format!("is left {abbrev} ")), "{err}");
    }

    // What it can finish is repaired, and projected as installed: the
    // step after it has nothing left to do.
    f.packages
        .get_mut(&PackageName::parse("python3-ntp").unwrap())
        .unwrap()
        .dpkg = broken("iF", "install ok half-configured", "1.2.2");
    let cs = diff(&rendered, &f).unwrap();
    assert_eq!(cs.steps[0].name, REPAIR_STEP);
    assert_eq!(cs.steps[0].changes.len(), 1);
    assert!(cs.steps[1].changes.is_empty(), "{:?}", cs.steps[1]);

    // Without an apt step dpkg's state does not matter.
    f.packages
        .get_mut(&PackageName::parse("python3-ntp").unwrap())
        .unwrap()
        .dpkg = broken("iHR", "install reinstreq half-installed", "1.2.2");
    assert!(changes_of(
        "steps:\n  - name: config\n    service: {name: ntp.service, enabled: false}\n",
        &f
    )
    .is_empty());
}

const UPDATE_THEN_LATEST: &str = "steps:
  - name: old client gone
    apt: {name: ntpdate, state: purged}
    notify: restart
  - name: lists and daemon
    apt: {name: chrony, state: latest, update_cache: true}
handlers:
  - name: restart
    service: {name: chrony, state: restarted}
";

/// `apply` on lists older than the plan allows, read as they are: the
/// facts before the update, and what ran up to and including it.
fn before_the_update() -> (Facts, Changeset, Vec<PlannedStep>) {
    let mut old = facts(&[
        (
            "ntpdate",
            installed("1:4.2.8p15+dfsg-1"),
            Some("1:4.2.8p15+dfsg-1"),
        ),
        ("chrony", DpkgState::NotInstalled, Some("4.3-1")),
    ]);
    old.lists.age = Some(Duration::from_secs(7200));
    old.lists.awaiting_update = true;
    let cs = diff(&plan(UPDATE_THEN_LATEST).render(None).unwrap(), &old).unwrap();
    let mut done = cs.steps[..2].to_vec();
    done[1].changes.truncate(1);
    (old, cs, done)
}

#[test]
fn after_the_update_the_rest_is_decided_on_the_fresh_lists_and_what_ran_still_fires_handlers() {
    let (_, cs, done) = before_the_update();
    assert!(cs.redecide_after_update);
    assert!(
        cs.notes
            .iter()
            .any(|n| n.contains("then decides every change after that on the fresh lists")),
        "{:?}",
        cs.notes
    );
    assert_eq!(
        cs.steps[1].changes[1].to_string(),
        "install: chrony (none) -> 4.3-1",
        "decided on the old lists"
    );
    assert!(matches!(done[1].changes[..], [Change::UpdateLists { .. }]));

    // After the purge and the update: the archive has a newer chrony.
    let mut fresh = facts(&[
        (
            "ntpdate",
            DpkgState::NotInstalled,
            Some("1:4.2.8p15+dfsg-1"),
        ),
        ("chrony", DpkgState::NotInstalled, Some("4.3-2")),
    ]);
    fresh.lists.age = Some(Duration::ZERO);
    let rendered = plan(UPDATE_THEN_LATEST).render(None).unwrap();
    let next = diff_after_update(&rendered, &fresh, &done, None).unwrap();
    assert!(!next.redecide_after_update);
    assert_eq!(next.steps[0], done[0], "what ran before the update stays");
    let described: Vec<String> = next.steps[1..]
        .iter()
        .flat_map(|s| &s.changes)
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        described,
        vec![
            "apt-get update: the package lists are 2 h old (update_cache without cache_valid_time)"
                .to_string(),
            "install: chrony (none) -> 4.3-2".into(),
            // Fired by the purge, which ran before the update.
            "restart chrony.service: package ntpdate changed".into(),
        ],
        "{next:#?}"
    );
    assert!(next.steps[2].handler);
}

#[test]
fn after_the_update_a_plan_that_does_not_match_what_ran_is_refused() {
    let (_, _, done) = before_the_update();
    let rendered = plan(UPDATE_THEN_LATEST).render(None).unwrap();
    let mut fresh = facts(&[
        ("ntpdate", DpkgState::NotInstalled, None),
        ("chrony", DpkgState::NotInstalled, Some("4.3-2")),
    ]);
    fresh.lists.age = Some(Duration::ZERO);

    let mut renamed = done.clone();
    renamed[0].name = "another step".into();
    let err = diff_after_update(&rendered, &fresh, &renamed, None).unwrap_err();
    assert!(err.contains("not the ones run before the update"), "{err}");

    let err = diff_after_update(&rendered, &fresh, &done[..1], None).unwrap_err();
    assert!(err.contains("not right after an update"), "{err}");

    let daemon = crate::daemons::Daemon::new(
        crate::daemons::DaemonName::NTP,
        crate::daemons::Flavor::NTPD,
    );
    let err = diff_after_update(&rendered, &fresh, &done, Some(&daemon)).unwrap_err();
    assert_eq!(
        err,
        "on the fresh lists the daemon is none, on the old ones it was package ntp: the steps before the update were decided for the old one"
    );

    fresh.dpkg_journal = crate::facts::DpkgJournal::Interrupted { entries: 1 };
    let err = diff_after_update(&rendered, &fresh, &done, None).unwrap_err();
    assert!(err.contains("another program ran dpkg meanwhile"), "{err}");
}
