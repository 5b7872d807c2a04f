//! plan -> apply -> plan again, on the in-memory fake node.

use super::*;
use crate::diff::diff;
use crate::facts::dpkg::DpkgState;
use crate::facts::{gather, gather_as, Carried, StaleLists};
use crate::fake::FakeNode;
use crate::plan::{parse_override, Plan, Source, DEFAULT_PLAN};
use crate::report::{Report, Status};

fn default_plan(overrides: &[&str]) -> Plan {
    let o: Vec<_> = overrides
        .iter()
        .map(|s| parse_override(s).unwrap())
        .collect();
    Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &o).unwrap()
}

fn changeset(node: &FakeNode, plan: &Plan) -> Changeset {
    let g = gather(node, &crate::facts::Wants::from(plan)).unwrap();
    diff(&g.rendered, &g.facts).unwrap()
}

/// The error facts refuse `plan` with on `node`, which saw no command run.
fn refused_before_any_change(node: &FakeNode, plan: &Plan) -> String {
    let err = gather(node, &crate::facts::Wants::from(plan))
        .err()
        .unwrap();
    assert!(node.journal().is_empty(), "{:?}", node.journal());
    format!("{err:#}")
}

fn run(node: &FakeNode, plan: &Plan) -> Report {
    run_changeset(node, &changeset(node, plan))
}

/// Applies `cs` to the fake node, each executor a handle on it.
fn run_changeset(node: &FakeNode, cs: &Changeset) -> Report {
    run_until(node, cs, &mut |_| {}, &|| None)
}

fn run_until(
    node: &FakeNode,
    cs: &Changeset,
    on_step: &mut dyn FnMut(&StepReport),
    stop: &dyn Fn() -> Option<&'static str>,
) -> Report {
    node.apply(cs, on_step, stop, None)
}

/// Applies `cs` with a SIGTERM arriving while the first step that changes
/// something runs: that step finishes, the rest are skipped.
fn run_with_sigterm_in_the_first_change(node: &FakeNode, cs: &Changeset) -> Report {
    let interrupt = crate::interrupt::Interrupt::never();
    run_until(
        node,
        cs,
        &mut |step| {
            if step.status == Status::Changed {
                interrupt.raise_for_test(15);
            }
        },
        &|| interrupt.received(),
    )
}

/// The journal with each run's backup stamp written as STAMP.
fn stamped_journal(node: &FakeNode) -> Vec<String> {
    node.journal()
        .into_iter()
        .map(|l| {
            let Some(i) = l.find(crate::diff::BACKUP_SUFFIX) else {
                return l;
            };
            format!("{}STAMP{}", &l[..i - 22], &l[i..])
        })
        .collect()
}

fn step_named<'a>(report: &'a Report, name: &str) -> &'a StepReport {
    report
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name:?}: {report:#?}"))
}

fn failed_step(report: &Report) -> &StepReport {
    report
        .steps
        .iter()
        .find(|s| s.status == Status::Failed)
        .unwrap_or_else(|| panic!("no step failed: {report:#?}"))
}

fn lines(cs: &Changeset) -> Vec<String> {
    cs.steps
        .iter()
        .flat_map(|s| s.changes.iter().map(ToString::to_string))
        .collect()
}

#[test]
fn fresh_bookworm_node_converges_and_a_second_run_changes_nothing() {
    let node = FakeNode::bookworm();
    let plan = default_plan(&[]);
    let cs = changeset(&node, &plan);
    assert_eq!(cs.daemon.as_ref().unwrap().package.as_str(), "ntpsec");
    assert_eq!(
        lines(&cs),
        vec![
            "apt-get update: the package lists were never updated",
            "install: ntpsec (none) -> 1.2.2+dfsg1-1+deb12u1",
            "create /etc/default/ntpsec (mode 0644, root:root)",
            "create /etc/ntpsec/ntp.conf (mode 0644, root:root); checked by ntpsec before it goes live",
            "start ntpsec.service: not running (not installed yet); rolled back if unhealthy after it: /etc/default/ntpsec, /etc/ntpsec/ntp.conf",
            "enable ntpsec.service: not enabled at boot (not installed yet)",
            "restart ntpsec.service: package ntpsec changed, /etc/default/ntpsec changed, /etc/ntpsec/ntp.conf changed; rolled back if unhealthy after it: /etc/default/ntpsec, /etc/ntpsec/ntp.conf",
        ]
    );
    assert!(node.journal().is_empty(), "planning changed nothing");

    let report = run(&node, &plan);
    assert!(!report.failed, "{report:?}");
    assert_eq!(
        stamped_journal(&node),
        vec![
            "apt-get update",
            "apt-get install ntpsec=1.2.2+dfsg1-1+deb12u1",
            "write /etc/default/ntpsec",
            // The package created it at install: that content is kept too.
            "backup /etc/ntpsec/ntp.conf /etc/ntpsec/ntp.conf.STAMP.ntp-provision.bak",
            "write /etc/ntpsec/ntp.conf",
            // The package's postinst enabled and started the unit: the
            // planned start and enable are settled, the restart loads the
            // new config.
            "systemctl restart ntpsec.service",
        ]
    );
    let step = step_named(&report, "NTP daemon enabled and running");
    assert_eq!(step.status, crate::report::Status::Ok);
    assert!(step.changes.is_empty(), "{step:?}");
    assert_eq!(
        step.settled,
        vec![
            "start ntpsec.service: not running (not installed yet); rolled back if unhealthy after it: /etc/default/ntpsec, /etc/ntpsec/ntp.conf (done by the package changes of this run)",
            "enable ntpsec.service: not enabled at boot (not installed yet) (done by the package changes of this run)",
        ]
    );
    let conf = node.file_text("/etc/ntpsec/ntp.conf").unwrap();
    assert!(conf.contains("server 0.ubuntu.pool.ntp.org iburst"));
    assert!(conf.contains("restrict -6 default kod nomodify noquery limited\n"));

    node.state().journal.clear();
    let again = changeset(&node, &plan);
    assert!(again.is_empty(), "{:?}", lines(&again));
    let report = run(&node, &plan);
    assert_eq!((report.summary.changed, report.changed), (0, false));
    assert!(
        node.journal().is_empty(),
        "no mutating call on a converged node"
    );
    assert_eq!(report.exit_code(true), 0);
}

#[test]
fn a_unit_the_package_enabled_but_did_not_start_is_started_and_not_enabled_again() {
    let node = FakeNode::bookworm();
    node.state().policy_forbids_start = true;
    let plan = default_plan(&[]);
    let report = run(&node, &plan);
    assert!(!report.failed, "{report:?}");
    let services: Vec<String> = node
        .journal()
        .into_iter()
        .filter(|l| l.starts_with("systemctl"))
        .collect();
    // Started after the package and both files changed: the handler's
    // restart would load nothing new.
    assert_eq!(services, vec!["systemctl start ntpsec.service"]);
    let handler = report.steps.iter().find(|s| s.handler).unwrap();
    assert_eq!(handler.status, crate::report::Status::Ok);
    assert_eq!(
        handler.settled,
        vec!["restart ntpsec.service: package ntpsec changed, /etc/default/ntpsec changed, /etc/ntpsec/ntp.conf changed; rolled back if unhealthy after it: /etc/default/ntpsec, /etc/ntpsec/ntp.conf (this run started it after every change that notified it)"]
    );
    let step = step_named(&report, "NTP daemon enabled and running");
    assert_eq!(step.status, crate::report::Status::Changed);
    assert_eq!(step.changes.len(), 1, "{step:?}");
    // The unit was read back once for the step's start and enable.
    let reads: Vec<String> = node
        .state()
        .probes
        .iter()
        .filter(|p| *p == "systemctl show ntpsec.service")
        .cloned()
        .collect();
    assert_eq!(reads.len(), 1, "{:?}", node.state().probes);
    assert_eq!(
        step.settled,
        vec!["enable ntpsec.service: not enabled at boot (not installed yet) (done by the package changes of this run)"]
    );
    // Without a package change in the run, nothing is read back: a unit
    // stopped by hand is started as planned.
    node.state()
        .units
        .get_mut("ntpsec.service")
        .unwrap()
        .running = false;
    node.state().journal.clear();
    let report = run(&node, &plan);
    assert_eq!(node.journal(), vec!["systemctl start ntpsec.service"]);
    assert!(report.steps.iter().all(|s| s.settled.is_empty()));
}

#[test]
fn bullseye_node_with_ntpdate_and_leftover_ntp_is_cleaned_then_converged() {
    let node = FakeNode::bullseye();
    {
        let mut s = node.state();
        s.dpkg.insert(
            "ntpdate".into(),
            DpkgState::Installed {
                version: "1:4.2.8p15+dfsg-1".into(),
            },
        );
        s.dpkg.insert(
            "ntp".into(),
            DpkgState::ConfigFiles {
                version: "1:4.2.8p12+dfsg-4".into(),
            },
        );
        s.lists_age = Some(std::time::Duration::from_secs(30));
    }
    let plan = default_plan(&["servers=[127.0.0.1]"]);
    let cs = changeset(&node, &plan);
    assert_eq!(cs.daemon.as_ref().unwrap().config.as_str(), "/etc/ntp.conf");
    let l = lines(&cs);
    assert_eq!(l[0], "purge: ntpdate 1:4.2.8p15+dfsg-1 -> purged");
    assert_eq!(
        l[1],
        "purge: ntp 1:4.2.8p12+dfsg-4 (config-files) -> purged"
    );
    assert_eq!(l[2], "install: ntp (none) -> 1:4.2.8p15+dfsg-1");
    assert!(
        l[3].starts_with("autoremove: packages removed above"),
        "{l:?}"
    );
    assert_eq!(
        l[4],
        "create /etc/dhcp/dhclient-exit-hooks.d/ntp (mode 0644, root:root)"
    );

    let report = run(&node, &plan);
    assert!(!report.failed, "{report:?}");
    let j = node.journal();
    assert_eq!(
        &j[..4],
        [
            "apt-get purge ntpdate",
            "apt-get purge ntp",
            "apt-get install ntp=1:4.2.8p15+dfsg-1",
            "apt-get autoremove --purge"
        ]
    );
    assert!(node
        .file_text("/etc/ntp.conf")
        .unwrap()
        .contains("server 127.0.0.1 iburst"));
    assert!(
        changeset(&node, &plan).is_empty(),
        "purge never fires on a converged node"
    );
}

#[test]
fn hand_edited_config_is_restored_and_the_daemon_restarted() {
    let node = FakeNode::bookworm();
    let plan = default_plan(&[]);
    run(&node, &plan);
    node.state()
        .files
        .get_mut("/etc/ntpsec/ntp.conf")
        .unwrap()
        .content = b"server evil.example\n".to_vec();
    node.state().journal.clear();
    let pid_before = node.state().units["ntpsec.service"].main_pid;
    let report = run(&node, &plan);
    assert_eq!(
        stamped_journal(&node),
        vec![
            "backup /etc/ntpsec/ntp.conf /etc/ntpsec/ntp.conf.STAMP.ntp-provision.bak",
            "write /etc/ntpsec/ntp.conf",
            "systemctl restart ntpsec.service"
        ]
    );
    let backups: Vec<String> = node
        .state()
        .files
        .keys()
        .filter(|k| k.ends_with(".ntp-provision.bak") && k.starts_with("/etc/ntpsec/"))
        .cloned()
        .collect();
    // The first run kept the package's own ntp.conf, this one the hand edit.
    assert_eq!(backups.len(), 2, "{backups:?}");
    assert!(
        backups
            .iter()
            .any(|b| node.file_text(b).as_deref() == Some("server evil.example\n")),
        "the replaced content is kept"
    );
    let step = report.steps.iter().find(|s| s.diff.is_some()).unwrap();
    let diff = step.diff.as_ref().unwrap();
    assert!(diff.contains("-server evil.example"));
    // Written, not planned: the header says so, in the change too.
    assert!(
        diff.contains("+++ /etc/ntpsec/ntp.conf\n") && !diff.contains("(planned)"),
        "{diff}"
    );
    assert!(step
        .changes
        .iter()
        .all(|c| !c.to_string().contains("(planned)")
            && !matches!(c, Change::File { diff, .. } if diff.contains("(planned)"))));
    assert_ne!(node.state().units["ntpsec.service"].main_pid, pid_before);
    assert!(changeset(&node, &plan).is_empty());
}

#[test]
fn a_failed_step_skips_the_rest_and_a_rerun_converges() {
    let node = FakeNode::bookworm();
    node.state().fail_on = Some("apt-get install".into());
    let plan = default_plan(&[]);
    let report = run(&node, &plan);
    assert!(report.failed);
    let statuses: Vec<Status> = report.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        vec![
            Status::Ok,      // ntpdate
            Status::Ok,      // leftovers
            Status::Changed, // lists
            Status::Failed,  // install
            Status::Skipped, // competitors
            Status::Skipped, // autoremove
            Status::Skipped, // /etc/default/ntpsec
            Status::Skipped, // config
            Status::Skipped, // service
            Status::Skipped, // timesyncd
            Status::Skipped, // handler
        ]
    );
    let install = &report.steps[3];
    let error = install.error.as_deref().unwrap();
    assert!(error.contains("fake failure"), "{error}");
    // The failed change is the step's last; its description is not repeated.
    let described = install.changes.last().unwrap().to_string();
    assert!(described.starts_with("install: ntpsec"), "{described}");
    assert!(!error.contains(&described), "{error}");
    assert_eq!((report.exit_code(false), report.exit_code(true)), (1, 6));
    assert!(
        node.file_text("/etc/ntpsec/ntp.conf").is_none(),
        "nothing after the failure ran"
    );

    node.state().fail_on = None;
    assert!(!run(&node, &plan).failed);
    assert!(changeset(&node, &plan).is_empty());
}

#[test]
fn a_step_that_failed_after_making_a_change_counts_as_a_change() {
    let node = FakeNode::bookworm();
    let plan = default_plan(&[]);
    assert!(!run(&node, &plan).failed);
    {
        let mut s = node.state();
        let unit = s.units.get_mut("ntpsec.service").unwrap();
        unit.running = false;
        unit.enabled = false;
        s.fail_on = Some("systemctl enable".into());
    }
    let report = run(&node, &plan);
    let failed = failed_step(&report);
    assert_eq!(
        failed
            .changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            "start ntpsec.service: not running",
            "enable ntpsec.service: not enabled at boot"
        ]
    );
    assert!(
        node.state().units["ntpsec.service"].running,
        "the start was made"
    );
    assert!(report.changed);
    assert_eq!(report.exit_code(true), 6, "changes and a failure");
}

#[test]
fn probes_are_batched_and_none_runs_twice() {
    let node = FakeNode::bookworm();
    let plan = default_plan(&[]);
    changeset(&node, &plan);
    let probes = node.state().probes.clone();
    let count = |prefix: &str| probes.iter().filter(|p| p.starts_with(prefix)).count();
    assert_eq!(count("dpkg-query"), 1, "{probes:?}");
    assert_eq!(count("systemctl show"), 1, "{probes:?}");
    assert_eq!(count("apt-cache policy"), 1, "{probes:?}");
    assert_eq!(count("read /etc/ntpsec/ntp.conf"), 1, "{probes:?}");
}

#[test]
fn ntp_missing_from_the_archive_is_refused_before_any_change() {
    let node = FakeNode::bookworm();
    node.state().archive.remove("ntp");
    let msg = refused_before_any_change(&node, &default_plan(&[]));
    assert!(
        msg.contains("package ntp has no installation candidate"),
        "{msg}"
    );
    assert!(msg.contains("ntpsec, chrony"), "{msg}");
}

#[test]
fn a_file_variable_the_daemon_has_no_line_for_is_refused_before_any_change() {
    // bookworm's chrony is 4.3: leapseclist came with 4.6.
    let node = FakeNode::bookworm();
    let plan = default_plan(&["daemon=chrony", "leapfile=/srv/leap-seconds.list"]);
    let msg = refused_before_any_change(&node, &plan);
    assert!(
        msg.starts_with("vars.leapfile is set, but chrony 4.3"),
        "{msg}"
    );
    assert!(msg.ends_with("(it came with 4.6)"), "{msg}");
    // The same variable for NTPsec is a line in its config.
    let cs = changeset(&node, &default_plan(&["leapfile=/srv/leap-seconds.list"]));
    assert!(format!("{cs:?}").contains("leapfile /srv/leap-seconds.list"));
}

#[test]
fn nts_for_a_server_given_by_address_is_refused_before_any_change_where_chrony_is_4_0() {
    // Debian 11's chrony: NTS, but a server known by name only.
    let node = FakeNode::bookworm();
    node.state().archive.get_mut("chrony").unwrap().candidate = Some("4.0-8+deb11u2".into());
    let by_address = default_plan(&["daemon=chrony", "servers=[{host: 10.123.0.50, nts: true}]"]);
    let msg = refused_before_any_change(&node, &by_address);
    assert!(
        msg.starts_with("nts is set for 10.123.0.50, an IP address, but chrony 4.0-8+deb11u2"),
        "{msg}"
    );
    // By name, chrony 4.0's NTS is used.
    let by_name = default_plan(&["daemon=chrony", "servers=[{host: nts.example, nts: true}]"]);
    let cs = changeset(&node, &by_name);
    assert!(
        format!("{cs:?}").contains("server nts.example iburst nts"),
        "{cs:?}"
    );
}

#[test]
fn dhcp_servers_switches_ntpsec_s_default_file_once_and_openntpd_is_refused_before_any_change() {
    let node = FakeNode::bookworm();
    assert!(!run(&node, &default_plan(&[])).failed);
    let plan = default_plan(&["dhcp_servers=true"]);
    let planned = lines(&changeset(&node, &plan));
    assert_eq!(planned.len(), 2, "{planned:?}");
    assert!(planned[0].starts_with("update /etc/default/ntpsec (content)"));
    assert!(planned[1].starts_with("restart ntpsec.service: /etc/default/ntpsec changed"));
    assert!(!run(&node, &plan).failed);
    let text = node.file_text("/etc/default/ntpsec").unwrap();
    assert!(text.contains("\nIGNORE_DHCP=\"\"\n"), "{text}");
    node.state().journal.clear();
    let again = changeset(&node, &plan);
    assert!(again.is_empty(), "{:?}", lines(&again));

    let fresh = FakeNode::bookworm();
    fresh.state().archive.insert(
        "openntpd".into(),
        crate::fake::ArchivePackage {
            candidate: Some("1:6.2p3-4.2".into()),
            unit: Some("openntpd.service".into()),
            ..Default::default()
        },
    );
    let plan = default_plan(&["daemon=openntpd", "dhcp_servers=true"]);
    let msg = refused_before_any_change(&fresh, &plan);
    assert!(
        msg.starts_with("vars.dhcp_servers is set, but openntpd has no such setting"),
        "{msg}"
    );
    let plan = default_plan(&["daemon=openntpd", "dhcp_servers=false"]);
    assert!(gather(&fresh, &crate::facts::Wants::from(&plan)).is_ok());
}

#[test]
fn virtual_auto_asks_systemd_detect_virt_and_a_vm_never_gives_up_on_its_clock() {
    use crate::process::Output;
    let plan = default_plan(&["virtual=auto"]);
    let config = |node: &FakeNode| format!("{:?}", changeset(node, &plan));
    let vm = FakeNode::bookworm();
    vm.state()
        .answers
        .insert("systemd-detect-virt --vm".into(), Output::said(0, "kvm\n"));
    assert!(config(&vm).contains("tinker panic 0\\n"), "{}", config(&vm));
    let metal = FakeNode::bookworm();
    metal
        .state()
        .answers
        .insert("systemd-detect-virt --vm".into(), Output::said(1, "none\n"));
    assert!(!config(&metal).contains("tinker"));
    // Without systemd-detect-virt: refused, naming it and the way out.
    let bare = FakeNode::bookworm();
    let msg = refused_before_any_change(&bare, &plan);
    assert!(
        msg.starts_with("virtual: auto asks systemd-detect-virt"),
        "{msg}"
    );
    // Not asked unless the plan says auto.
    let told = FakeNode::bookworm();
    let plan = default_plan(&["virtual=true"]);
    assert!(format!("{:?}", changeset(&told, &plan)).contains("tinker panic 0\\n"));
    assert!(!told
        .state()
        .probes
        .iter()
        .any(|p| p.contains("systemd-detect-virt")));
}

#[test]
fn a_signal_lets_the_current_step_finish_and_skips_the_rest() {
    let node = FakeNode::bookworm();
    let changeset = changeset(&node, &default_plan(&[]));
    assert!(
        changeset
            .steps
            .iter()
            .filter(|s| !s.changes.is_empty())
            .count()
            >= 2
    );
    let report = run_with_sigterm_in_the_first_change(&node, &changeset);
    let first_changed = report
        .steps
        .iter()
        .position(|s| s.status == Status::Changed)
        .unwrap();
    assert!(
        report.steps[first_changed + 1..]
            .iter()
            .all(|s| s.status == Status::Skipped),
        "{:#?}",
        report.steps
    );
    assert!(report.failed);
    let error = report.error.clone().unwrap();
    assert!(
        error.starts_with(&format!(
            "SIGTERM received: stopped after {} of",
            first_changed + 1
        )),
        "{error}"
    );
    assert!(error.ends_with("Run apply again to finish"), "{error}");
    assert_eq!(report.exit_code(false), 1);
}

#[test]
fn a_config_written_by_a_run_stopped_before_its_restart_is_restarted_by_the_next() {
    let node = FakeNode::bookworm();
    assert!(!run(&node, &default_plan(&[])).failed);
    node.state().journal.clear();
    // New servers: the config changes; a signal arrives while it is written.
    let plan = default_plan(&["servers=[127.0.0.9]"]);
    let cs = changeset(&node, &plan);
    let report = run_with_sigterm_in_the_first_change(&node, &cs);
    assert!(report.failed);
    assert!(node
        .file_text("/etc/ntpsec/ntp.conf")
        .unwrap()
        .contains("server 127.0.0.9"));
    assert!(
        !node
            .journal()
            .iter()
            .any(|l| l.starts_with("systemctl restart")),
        "the handler was skipped: {:?}",
        node.journal()
    );

    // The file is right now, but the daemon still runs the old one.
    let next = changeset(&node, &plan);
    assert_eq!(
        lines(&next),
        vec!["restart ntpsec.service: /etc/ntpsec/ntp.conf was modified 1 s after ntpsec.service started: the daemon has not read it"]
    );
    assert!(!run(&node, &plan).failed);
    assert!(changeset(&node, &plan).is_empty());
}

#[test]
fn an_interrupted_dpkg_is_repaired_first_then_the_run_converges() {
    let node = FakeNode::bookworm();
    node.state().dpkg_updates = vec!["0001".into(), "tmp.i".into()];
    let plan = default_plan(&[]);
    let report = run(&node, &plan);
    assert!(!report.failed, "{report:#?}");
    assert_eq!(report.steps[0].name, crate::diff::REPAIR_STEP);
    assert_eq!(report.steps[0].status, Status::Changed);
    assert_eq!(node.journal()[0], "dpkg --configure -a");
    assert!(node.state().dpkg_updates.is_empty());
    assert!(
        changeset(&node, &plan).is_empty(),
        "the next run has nothing to do"
    );
}

/// ntpsec as a dpkg killed after unpacking it leaves it: `iU`, a journal
/// entry, its directory and unit file on disk, the unit neither enabled nor
/// started.
fn bookworm_with_ntpsec_unpacked() -> FakeNode {
    let node = FakeNode::bookworm();
    {
        let mut s = node.state();
        s.dpkg_updates = vec!["0001".into()];
        s.dirs.push("/etc/ntpsec".into());
        s.dpkg.insert(
            "ntpsec".into(),
            DpkgState::Broken {
                abbrev: "iU".into(),
                status: "install ok unpacked".into(),
                version: "1.2.2+dfsg1-1+deb12u1".into(),
            },
        );
        s.units.insert(
            "ntpsec.service".into(),
            crate::facts::UnitFact {
                exists: true,
                running: false,
                enabled: false,
                main_pid: None,
                started: None,
            },
        );
    }
    node
}

/// The fake's `dpkg --configure -a` finishes what dpkg finishes (the
/// product's `configured_by_repair`); the diff projects the same: the
/// daemon step has nothing left to install, and the run converges.
#[test]
fn a_daemon_left_unpacked_is_finished_by_the_repair_and_not_installed_again() {
    let node = bookworm_with_ntpsec_unpacked();
    let plan = default_plan(&[]);
    let report = run(&node, &plan);
    assert!(!report.failed, "{report:#?}");
    assert_eq!(report.steps[0].name, crate::diff::REPAIR_STEP);
    assert_eq!(report.steps[0].status, Status::Changed);
    assert_eq!(
        step_named(&report, "NTP daemon at the latest version").status,
        Status::Ok
    );
    let journal = node.journal();
    assert_eq!(journal[0], "dpkg --configure -a");
    assert!(
        !journal.iter().any(|l| l.starts_with("apt-get install")),
        "{journal:?}"
    );
    assert!(node.state().dpkg["ntpsec"].is_installed());
    assert!(
        changeset(&node, &plan).is_empty(),
        "the next run has nothing to do"
    );
}

/// The fake's apt refuses any change of a held package, as apt -y does: a
/// held daemon already at its candidate is left alone, and the run that
/// converges everything else around it succeeds.
#[test]
fn a_held_daemon_at_its_candidate_is_left_alone_and_the_run_converges() {
    let node = FakeNode::bookworm();
    let ntpsec = PackageName::parse("ntpsec").unwrap();
    AptExec::install(
        &mut node.clone(),
        &[(ntpsec, "1.2.2+dfsg1-1+deb12u1".into())],
    )
    .unwrap();
    {
        let mut s = node.state();
        s.journal.clear();
        s.lists_age = Some(std::time::Duration::from_secs(60));
        s.held.insert("ntpsec".into());
    }
    let plan = default_plan(&[]);
    let report = run(&node, &plan);
    assert!(!report.failed, "{report:#?}");
    assert_eq!(
        step_named(&report, "NTP daemon at the latest version").status,
        Status::Ok
    );
    assert!(
        !node.journal().iter().any(|l| l.contains("ntpsec=")),
        "{:?}",
        node.journal()
    );
    assert!(node.state().held.contains("ntpsec"), "the hold is kept");
    assert!(changeset(&node, &plan).is_empty());
}

fn bullseye_with_old_ntp() -> FakeNode {
    let node = FakeNode::bullseye();
    node.state().lists_age = Some(std::time::Duration::from_secs(60));
    node.state().dpkg.insert(
        "ntp".into(),
        DpkgState::Installed {
            version: "1:4.2.8p12+dfsg-4".into(),
        },
    );
    node
}

#[test]
fn a_held_daemon_with_a_newer_candidate_is_refused_before_anything_changes() {
    let node = bullseye_with_old_ntp();
    node.state().held.insert("ntp".into());
    let g = crate::facts::gather(&node, &crate::facts::Wants::from(&default_plan(&[]))).unwrap();
    assert!(g.facts.packages[&PackageName::parse("ntp").unwrap()].held);
    let err = crate::diff::diff(&g.rendered, &g.facts).unwrap_err();
    assert!(err.contains("package ntp is held"), "{err}");
    assert!(err.contains("apt-mark unhold ntp"), "{err}");
    assert!(node.journal().is_empty(), "nothing ran");

    // Unheld, the same node plans the upgrade.
    node.state().held.clear();
    let g = crate::facts::gather(&node, &crate::facts::Wants::from(&default_plan(&[]))).unwrap();
    assert!(crate::diff::diff(&g.rendered, &g.facts).is_ok());
}

#[test]
fn a_package_the_repair_cannot_finish_stops_the_plan_and_nothing_runs() {
    let node = FakeNode::bookworm();
    node.state().dpkg.insert(
        "ntpsec".into(),
        DpkgState::Broken {
            abbrev: "iHR".into(),
            status: "install reinstreq half-installed".into(),
            version: "1.2.2+dfsg1-1+deb12u1".into(),
        },
    );
    let g = crate::facts::gather(&node, &crate::facts::Wants::from(&default_plan(&[]))).unwrap();
    let err = crate::diff::diff(&g.rendered, &g.facts).unwrap_err();
    assert!(err.contains("apt-get install --reinstall ntpsec"), "{err}");
    assert!(node.journal().is_empty());
}

/// `cs` with a config the parser accepts but with which the daemon does
/// not answer.
fn unhealthy_config(cs: Changeset) -> Changeset {
    Changeset {
        steps: cs
            .steps
            .into_iter()
            .map(|mut s| {
                for c in &mut s.changes {
                    if let Change::File { content, path, .. } = c {
                        if path.as_str() == "/etc/ntpsec/ntp.conf" {
                            content.push_str("unhealthy yes\n");
                        }
                    }
                }
                s
            })
            .collect(),
        ..cs
    }
}

#[test]
fn a_stopped_daemon_started_on_an_unhealthy_config_gets_the_old_one_back() {
    let node = FakeNode::bookworm();
    let plan = default_plan(&[]);
    run(&node, &plan);
    let good = node.file_text("/etc/ntpsec/ntp.conf").unwrap();
    node.state()
        .units
        .get_mut("ntpsec.service")
        .unwrap()
        .running = false;
    // The service step's start runs the new config first, not the handler.
    let cs = unhealthy_config(changeset(&node, &default_plan(&["servers=[127.0.0.2]"])));
    let report = run_changeset(&node, &cs);
    let failed = failed_step(&report);
    assert!(!failed.handler, "{failed:?}");
    let error = failed.error.as_deref().unwrap();
    assert!(
        error.contains("Rolled back: restored /etc/ntpsec/ntp.conf from /etc/ntpsec/ntp.conf."),
        "{error}"
    );
    assert_eq!(node.file_text("/etc/ntpsec/ntp.conf").unwrap(), good);
    assert!(node.state().units["ntpsec.service"].running);
}

#[test]
fn a_config_that_leaves_the_daemon_unhealthy_is_rolled_back_and_the_daemon_restarted() {
    let node = FakeNode::bookworm();
    let plan = default_plan(&[]);
    run(&node, &plan);
    let good = node.file_text("/etc/ntpsec/ntp.conf").unwrap();
    node.state().journal.clear();
    let cs = unhealthy_config(changeset(&node, &default_plan(&["servers=[127.0.0.2]"])));
    let report = run_changeset(&node, &cs);
    let failed = failed_step(&report);
    assert!(failed.handler);
    let error = failed.error.as_deref().unwrap();
    assert!(
        error.contains("ntpsec did not answer on localhost"),
        "{error}"
    );
    assert!(
        error.contains("fake: bad config"),
        "the daemon's own log lines: {error}"
    );
    assert!(
        error.contains("Rolled back: restored /etc/ntpsec/ntp.conf from /etc/ntpsec/ntp.conf."),
        "{error}"
    );
    assert!(error.ends_with("ntpsec.service runs again with the previous config. Fix the plan's config and run again"), "{error}");
    assert_eq!(
        node.file_text("/etc/ntpsec/ntp.conf").unwrap(),
        good,
        "the live config is the previous one"
    );
    assert!(node.state().units["ntpsec.service"].running);
    let j = stamped_journal(&node);
    assert_eq!(
        &j[j.len() - 3..],
        [
            "systemctl restart ntpsec.service",
            "restore /etc/ntpsec/ntp.conf /etc/ntpsec/ntp.conf.STAMP.ntp-provision.bak",
            "systemctl restart ntpsec.service"
        ]
    );
    assert!(
        changeset(&node, &plan).is_empty(),
        "the previous plan is still converged"
    );
}

#[test]
fn only_the_newest_backups_are_kept() {
    let node = FakeNode::bookworm();
    let plan = default_plan(&[]);
    run(&node, &plan);
    // Five hand edits, each replaced by a run: each edit is a version kept.
    for i in 0..5 {
        node.state()
            .files
            .get_mut("/etc/ntpsec/ntp.conf")
            .unwrap()
            .content = format!("edit {i}\n").into_bytes();
        run(&node, &plan);
    }
    let kept: Vec<String> = backups_of(&node, "/etc/ntpsec/ntp.conf")
        .iter()
        .map(|b| node.file_text(b).unwrap())
        .collect();
    // The package's own file was kept under the first run's stamp, which on
    // the fake's clock sorts after every edit; the oldest edits went.
    assert_eq!(kept.len(), crate::diff::BACKUPS_KEPT, "{kept:?}");
    assert!(
        kept.contains(&"edit 3\n".into()) && kept.contains(&"edit 4\n".into()),
        "{kept:?}"
    );
    assert!(
        !kept.iter().any(|k| k == "edit 0\n" || k == "edit 1\n"),
        "{kept:?}"
    );
}

/// The backups of `path` on the fake, oldest first (names sort by time).
fn backups_of(node: &FakeNode, path: &str) -> Vec<String> {
    let mut names: Vec<String> = node
        .state()
        .files
        .keys()
        .filter(|k| k.starts_with(&format!("{path}.")) && k.ends_with(crate::diff::BACKUP_SUFFIX))
        .cloned()
        .collect();
    names.sort();
    names
}

#[test]
fn a_rejected_config_makes_no_backup_and_leaves_the_file() {
    let node = FakeNode::bookworm();
    run(&node, &default_plan(&[]));
    let path = crate::names::AbsPath::parse("/etc/ntpsec/ntp.conf").unwrap();
    let (live, kept) = (
        node.file_text(path.as_str()),
        backups_of(&node, path.as_str()),
    );
    let meta = FileMeta {
        mode: crate::names::Mode(0o644),
        uid: 0,
        gid: 0,
        owner: None,
        group: None,
    };
    let check = Check::Daemon {
        flavor: crate::daemons::Flavor::NTPSEC,
    };
    // Three rejected tries push out no real backup.
    for i in 0..3 {
        let backup = crate::diff::backup_path(&path, &format!("2027010{i}T000000.000000")).unwrap();
        let mut files = node.clone();
        let err = write_file(
            &mut files,
            &path,
            &meta,
            "bogus\n",
            &check,
            Some(&backup),
            &mut BTreeSet::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("syntax error"), "{err}");
    }
    assert_eq!(node.file_text(path.as_str()), live);
    assert_eq!(backups_of(&node, path.as_str()), kept);
}

#[test]
fn the_backup_plan_announces_is_the_one_apply_writes() {
    let node = FakeNode::bookworm();
    let plan = default_plan(&[]);
    run(&node, &plan);
    node.state()
        .files
        .get_mut("/etc/ntpsec/ntp.conf")
        .unwrap()
        .content = b"server evil.example\n".to_vec();
    let announced: Vec<_> = changeset(&node, &plan)
        .steps
        .iter()
        .flat_map(|s| &s.changes)
        .filter_map(|c| match c {
            Change::File { backup, .. } => backup.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(announced.len(), 1, "{announced:?}");
    run(&node, &plan);
    assert_eq!(
        node.file_text(announced[0].as_str()).as_deref(),
        Some("server evil.example\n")
    );
}

/// A bookworm node whose lists are two hours old and predate the latest
/// ntpsec and ntp (a security update since): what the old lists know.
fn node_with_old_lists() -> FakeNode {
    let node = FakeNode::bookworm();
    let mut s = node.state();
    let mut old = s.archive.clone();
    old.get_mut("ntpsec").unwrap().candidate = Some("1.2.2+dfsg1-1".into());
    old.get_mut("ntp").unwrap().candidate = Some("1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1".into());
    s.node_lists = Some(old);
    s.lists_age = Some(std::time::Duration::from_secs(7200));
    drop(s);
    node
}

/// What `apply` does (engine::run: prepare, then execute): decide on the node's own
/// lists, update them, decide the rest again on the fresh ones.
fn apply_on_old_lists(
    node: &FakeNode,
    plan: &Plan,
    redecide: &mut crate::apply::Redecide<'_>,
) -> (Changeset, Report) {
    let g = gather_as(
        node,
        &crate::facts::Wants::from(plan),
        StaleLists::ReadNodes,
        Carried::default(),
    )
    .unwrap();
    let cs = diff(&g.rendered, &g.facts).unwrap();
    let report = node.apply(&cs, &mut |_| {}, &|| None, Some(redecide));
    (cs, report)
}

#[test]
fn on_the_nodes_lists_ntp_is_resolved_from_its_candidates_stanza_among_every_version() {
    let node = node_with_old_lists();
    // The lists also carry an older `ntp`, classic ntpd (no NTPsec behind
    // it), which apt-cache show lists before the candidate.
    node.state()
        .node_lists
        .as_mut()
        .unwrap()
        .get_mut("ntp")
        .unwrap()
        .older = vec![("1:4.2.8p15+dfsg-1".into(), vec!["libopts25".into()])];
    let g = gather_as(
        &node,
        &crate::facts::Wants::from(&default_plan(&[])),
        StaleLists::ReadNodes,
        Carried::default(),
    )
    .unwrap();
    let daemon = g.facts.daemon.unwrap();
    assert_eq!(daemon.package.as_str(), "ntpsec", "{daemon:?}");
    assert_eq!(
        daemon.transitional.as_ref().map(|p| p.as_str()),
        Some("ntp")
    );
    let probes = node.state().probes.clone();
    assert!(
        probes.contains(&"apt-cache show ntp".to_string()),
        "every version, asked beside the candidates: {probes:?}"
    );
}

#[test]
fn after_an_update_dpkg_and_the_units_are_not_asked_again_unless_dpkg_changed_meanwhile() {
    let mut node = node_with_old_lists();
    let plan = default_plan(&[]);
    let first = gather_as(
        &node,
        &crate::facts::Wants::from(&plan),
        StaleLists::ReadNodes,
        Carried::default(),
    )
    .unwrap();
    let answers = first.reuse.node.expect("the fake fingerprints its dpkg");
    let carried = Carried {
        apt: None,
        node: Some(&answers),
    };
    let asked =
        |node: &FakeNode, what: &str| node.state().probes.iter().any(|p| p.starts_with(what));

    node.state().journal.clear();
    node.update().unwrap();
    node.state().probes.clear();
    let again = gather_as(
        &node,
        &crate::facts::Wants::from(&plan),
        StaleLists::ReadNodes,
        carried,
    )
    .unwrap();
    assert!(!asked(&node, "dpkg-query"), "{:?}", node.state().probes);
    assert!(!asked(&node, "systemctl show"), "{:?}", node.state().probes);
    let fresh = gather_as(
        &node,
        &crate::facts::Wants::from(&plan),
        StaleLists::ReadNodes,
        Carried::default(),
    )
    .unwrap();
    assert!(asked(&node, "dpkg-query") && asked(&node, "systemctl show"));
    assert_eq!(again.facts.packages, fresh.facts.packages);
    assert_eq!(again.facts.units, fresh.facts.units);
    // The same changes (the backups' names differ: they carry the time).
    assert_eq!(
        lines(&diff(&again.rendered, &again.facts).unwrap()),
        lines(&diff(&fresh.rendered, &fresh.facts).unwrap())
    );

    // Another program installed chrony during the update: dpkg and the
    // units are asked again, and the fresh answer decides.
    node.state().dpkg.insert(
        "chrony".into(),
        DpkgState::Installed {
            version: "4.3-2+deb12u1".into(),
        },
    );
    node.state().probes.clear();
    let changed = gather_as(
        &node,
        &crate::facts::Wants::from(&plan),
        StaleLists::ReadNodes,
        carried,
    )
    .unwrap();
    assert!(asked(&node, "dpkg-query") && asked(&node, "systemctl show"));
    let chrony = PackageName::parse("chrony").unwrap();
    assert!(
        matches!(
            changed.facts.packages[&chrony].dpkg,
            DpkgState::Installed { .. }
        ),
        "{:?}",
        changed.facts.packages[&chrony]
    );
}

#[test]
fn old_lists_are_updated_once_and_the_rest_is_decided_on_the_fresh_ones() {
    let node = node_with_old_lists();
    let plan = default_plan(&[]);
    let mut redecisions = 0;
    let before = changeset(&node, &plan);
    node.state().probes.clear();
    let mut redecide = |done: &[crate::diff::PlannedStep]| {
        redecisions += 1;
        let g = gather_as(
            &node,
            &crate::facts::Wants::from(&plan),
            StaleLists::ReadNodes,
            Carried::default(),
        )
        .map_err(|e| format!("{e:#}"))?;
        crate::diff::diff_after_update(&g.rendered, &g.facts, done, before.daemon.as_ref())
    };
    let (decided, report) = apply_on_old_lists(&node, &plan, &mut redecide);
    assert_eq!(redecisions, 1);
    assert!(decided.redecide_after_update);
    assert!(
        lines(&decided).contains(&"install: ntpsec (none) -> 1.2.2+dfsg1-1".to_string()),
        "the old lists' version, never installed: {:?}",
        lines(&decided)
    );
    assert!(!report.failed, "{report:#?}");
    assert_eq!(
        &stamped_journal(&node)[..2],
        [
            "apt-get update",
            "apt-get install ntpsec=1.2.2+dfsg1-1+deb12u1"
        ],
        "one update, the node's own, then the fresh lists' version"
    );
    let probes = node.state().probes.clone();
    assert!(
        !probes.iter().any(|p| p.contains("private lists")),
        "no private update: {probes:?}"
    );
    let install = step_named(&report, "NTP daemon at the latest version");
    assert_eq!(
        install
            .changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["install: ntpsec (none) -> 1.2.2+dfsg1-1+deb12u1"]
    );
    assert!(report
        .notes
        .iter()
        .all(|n| !n.contains("then decides every change after that")));

    // The plan, which reads fresh lists privately, had shown just that.
    let replay = node_with_old_lists();
    let shown = changeset(&replay, &plan);
    assert!(!shown.redecide_after_update);
    assert!(lines(&shown).contains(&"install: ntpsec (none) -> 1.2.2+dfsg1-1+deb12u1".to_string()));

    node.state().journal.clear();
    assert!(changeset(&node, &plan).is_empty(), "converged");
}

#[test]
fn when_the_rest_cannot_be_decided_after_the_update_nothing_else_runs() {
    let node = node_with_old_lists();
    node.state().dpkg.insert(
        "ntpdate".into(),
        DpkgState::Installed {
            version: "1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1".into(),
        },
    );
    let plan = default_plan(&[]);
    let mut redecide = |_: &[crate::diff::PlannedStep]| -> Result<Changeset, String> {
        Err("the archive no longer has ntp".into())
    };
    let (_, report) = apply_on_old_lists(&node, &plan, &mut redecide);
    assert_eq!(
        node.journal(),
        ["apt-get purge ntpdate", "apt-get update"],
        "the steps up to the update ran, nothing after it"
    );
    assert!(report.failed && report.changed);
    assert_eq!(report.exit_code(true), 6);
    assert_eq!(
        report.error.as_deref(),
        Some("the package lists were updated, then the rest of the run could not be decided on them: the archive no longer has ntp\nNothing after the update was changed. Run apply again")
    );
    let statuses: Vec<Status> = report.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses[..3],
        [Status::Changed, Status::Ok, Status::Changed]
    );
    assert!(
        statuses[3..].iter().all(|s| *s == Status::Skipped),
        "{statuses:?}"
    );
}

#[test]
fn units_read_ahead_after_a_package_change_serve_until_a_change_other_than_a_file_write() {
    let node = FakeNode::bookworm();
    let unit = UnitName::parse("ntpsec.service").unwrap();
    let install = Change::Install {
        packages: vec![PkgChange {
            package: PackageName::parse("ntpsec").unwrap(),
            before: None,
            after: Some("1.2.2+dfsg1-1+deb12u1".into()),
        }],
    };
    let write = Change::File {
        path: AbsPath::parse("/etc/default/ntpsec").unwrap(),
        before: None,
        after: crate::diff::FileMeta {
            mode: Mode(0o644),
            uid: 0,
            gid: 0,
            owner: None,
            group: None,
        },
        content: String::new(),
        diff: String::new(),
        masked: false,
        check: Check::None,
        backup: None,
    };
    let start = Change::Service {
        unit: unit.clone(),
        action: ServiceAction::Start,
        reason: String::new(),
        health: Health::Active,
        rollback: Vec::new(),
    };
    let reads = |node: &FakeNode| {
        node.state()
            .probes
            .iter()
            .filter(|p| *p == "systemctl show ntpsec.service")
            .count()
    };
    std::thread::scope(|scope| {
        // Read after the install; a file write leaves the answer standing.
        let mut ahead = Ahead::default();
        ahead.after(&install, vec![unit.clone()], scope, &node);
        ahead.after(&write, vec![unit.clone()], scope, &node);
        let state = ahead.take(&unit).expect("read ahead").unwrap();
        assert!(!state.exists, "not installed on the fake: {state:?}");
        assert_eq!(reads(&node), 1);
        assert!(ahead.take(&unit).is_some(), "kept for later checks");
        assert_eq!(reads(&node), 1, "read once");

        // A start (or any change but a file write) makes it stale.
        ahead.after(&start, vec![unit.clone()], scope, &node);
        assert!(ahead.take(&unit).is_none(), "read again, now");
        // Nothing is read ahead after a change that is not a package change.
        ahead.after(&write, vec![unit.clone()], scope, &node);
        assert!(ahead.take(&unit).is_none());
        // A unit not asked for ahead is read when needed.
        let other = UnitName::parse("chrony.service").unwrap();
        ahead.after(&install, vec![unit.clone()], scope, &node);
        assert!(ahead.take(&other).is_none());
    });
}

#[test]
fn the_units_read_ahead_are_those_a_later_enable_disable_start_or_stop_checks() {
    let node = FakeNode::bookworm();
    let cs = changeset(&node, &default_plan(&[]));
    let (index, at) = cs
        .steps
        .iter()
        .enumerate()
        .find_map(|(i, s)| {
            s.changes
                .iter()
                .position(|c| matches!(c, Change::Install { .. }))
                .map(|p| (i, p + 1))
        })
        .expect("a fresh node installs the daemon");
    assert_eq!(
        units_checked_after(&cs, index, at),
        [UnitName::parse("ntpsec.service").unwrap()],
        "{:#?}",
        cs.steps
    );
    // After the last step's last change, nothing comes.
    let last = cs.steps.len() - 1;
    assert!(units_checked_after(&cs, last, cs.steps[last].changes.len()).is_empty());
}

#[test]
fn plan_names_what_the_removal_of_a_competitor_leaves_unneeded_and_apply_names_what_went() {
    let node = FakeNode::bookworm();
    {
        let mut s = node.state();
        let installed = |version: &str| DpkgState::Installed {
            version: version.into(),
        };
        s.dpkg.insert("chrony".into(), installed("4.3-2+deb12u1"));
        s.dpkg.insert("libtimeonly1".into(), installed("1.0-1"));
        s.leaves_unneeded
            .insert("chrony".into(), vec!["libtimeonly1 1.0-1".into()]);
    }
    let autoremoved = |changes: Vec<&Change>| -> Vec<String> {
        changes
            .into_iter()
            .filter_map(|c| match c {
                Change::Autoremove { packages, .. } => Some(packages.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    let plan = default_plan(&[]);
    let cs = changeset(&node, &plan);
    let planned = autoremoved(cs.steps.iter().flat_map(|s| &s.changes).collect());
    assert_eq!(planned, ["libtimeonly1 1.0-1"]);
    let report = run_changeset(&node, &cs);
    assert!(!report.failed, "{report:#?}");
    let done = autoremoved(report.steps.iter().flat_map(|s| &s.changes).collect());
    assert_eq!(done, planned, "apply removed what plan named");
    assert!(!node.state().dpkg.contains_key("libtimeonly1"));
}

/// The fake Debian 12 archive with systemd-timesyncd as Debian packages it.
fn bookworm_with_timesyncd() -> FakeNode {
    let node = FakeNode::bookworm();
    node.state().archive.insert(
        "systemd-timesyncd".into(),
        crate::fake::ArchivePackage {
            candidate: Some("252.39-1~deb12u2".into()),
            unit: Some("systemd-timesyncd.service".into()),
            ..Default::default()
        },
    );
    node
}

#[test]
fn timesyncd_converges_with_its_drop_in_unchecked_and_a_second_run_changes_nothing() {
    let node = bookworm_with_timesyncd();
    let plan = default_plan(&["daemon=timesyncd", "servers=[192.0.2.1, ntp.example.net]"]);
    let cs = changeset(&node, &plan);
    assert_eq!(
        cs.daemon.as_ref().unwrap().to_string(),
        "daemon timesyncd: package systemd-timesyncd, config \
         /etc/systemd/timesyncd.conf.d/ntp-provision.conf, unit systemd-timesyncd.service"
    );
    let config = "/etc/systemd/timesyncd.conf.d/ntp-provision.conf";
    assert_eq!(
        lines(&cs),
        vec![
            "apt-get update: the package lists were never updated".to_string(),
            "install: systemd-timesyncd (none) -> 252.39-1~deb12u2".into(),
            format!("create {config} (mode 0644, root:root); systemd-timesyncd has no config check (it ignores a line it cannot parse and logs it): the restart's health check (`timedatectl show-timesync` answers) and `status` decide"),
            format!("start systemd-timesyncd.service: not running (not installed yet); rolled back if unhealthy after it: {config}"),
            "enable systemd-timesyncd.service: not enabled at boot (not installed yet)".into(),
            format!("restart systemd-timesyncd.service: package systemd-timesyncd changed, {config} changed; rolled back if unhealthy after it: {config}"),
        ]
    );
    let report = run(&node, &plan);
    assert!(!report.failed, "{report:?}");
    // The step meant for a timesyncd that is part of systemd is left out:
    // its own unit is never stopped.
    let name = "systemd-timesyncd stopped where it is part of systemd";
    assert!(!report.steps.iter().any(|s| s.name == name), "{report:?}");
    let journal = node.journal();
    assert!(
        journal.contains(&"mkdir /etc/systemd/timesyncd.conf.d".to_string()),
        "{journal:?}"
    );
    assert!(!journal.iter().any(|l| l.contains("stop")), "{journal:?}");
    let text = node.file_text(config).unwrap();
    assert!(
        text.contains("\nNTP=\nNTP=192.0.2.1 ntp.example.net\n")
            && text.ends_with("\nFallbackNTP=192.0.2.1 ntp.example.net\n"),
        "{text}"
    );
    node.state().journal.clear();
    let again = changeset(&node, &plan);
    assert!(again.is_empty(), "{:?}", lines(&again));
}

// Symmetric keys: the secret is read from the operator's file, written into
// the daemon's key file, and shown nowhere.

const SECRET: &str = "Sup3rSecretKeyMaterial";
const OTHER_SECRET: &str = "An0therSecretKeyMaterial";

fn secret_file(node: &FakeNode, path: &str, content: &str, mode: u32) {
    node.state().files.insert(
        path.into(),
        crate::facts::FileState {
            content: content.as_bytes().to_vec(),
            mode,
            uid: 0,
            gid: 0,
            modified: None,
        },
    );
}

fn keyed_plan(daemon: &str, kind: &str) -> Plan {
    default_plan(&[
        &format!("daemon={daemon}"),
        &format!("keys=[{{id: 7, type: {kind}, secret_file: /etc/ntpp/k7}}]"),
        "servers=[{host: 10.0.0.1, key: 7}, 10.0.0.2]",
    ])
}

/// Everything a run shows: the human text and the JSON of its report, and
/// the Ansible module's file diffs of its changeset.
fn shown(report: &Report, cs: &Changeset, facts: &crate::facts::Facts) -> String {
    let mut human = crate::report::human::Human::new(Vec::new(), false);
    human.report("keys", report);
    let human = String::from_utf8(human.into_inner()).unwrap();
    let json = crate::report::json::render(report);
    let ansible: Vec<String> = crate::ansible::file_diffs(cs, facts, true)
        .into_iter()
        .map(|(_, v)| v.to_string())
        .collect();
    format!("{human}\n{json}\n{}", ansible.join("\n"))
}

#[test]
fn a_key_file_is_written_from_the_secret_file_and_no_output_shows_the_secret() {
    for (daemon, path, line) in [
        (
            "chrony",
            "/etc/chrony/chrony.keys",
            format!("7 SHA256 {SECRET}"),
        ),
        // 22 characters: past ntp.keys' 20, so written as hex.
        ("ntpsec", "/etc/ntpsec/ntp.keys", {
            let hex: String = SECRET.bytes().map(|b| format!("{b:02X}")).collect();
            format!("7 sha256 {hex}")
        }),
    ] {
        let node = FakeNode::bookworm();
        secret_file(&node, "/etc/ntpp/k7", &format!("{SECRET}\n"), 0o600);
        let plan = keyed_plan(daemon, "sha256");
        let g = gather(&node, &crate::facts::Wants::from(&plan)).unwrap();
        let cs = diff(&g.rendered, &g.facts).unwrap();
        let planned = lines(&cs);
        assert!(
            planned.contains(&format!("create {path} (mode 0600, root:root)")),
            "{planned:#?}"
        );
        let plan_shown = shown(&Report::plan(&cs), &cs, &g.facts);
        assert!(plan_shown.contains("+7 "), "{plan_shown}");
        assert!(plan_shown.contains(" ********"), "{plan_shown}");
        let report = run_changeset(&node, &cs);
        assert!(!report.failed, "{report:?}");
        let written = node.state().files[path].clone();
        assert_eq!(written.mode, 0o600);
        let text = String::from_utf8(written.content).unwrap();
        assert!(text.lines().any(|l| l == line), "{daemon}: {text}");
        let config = String::from_utf8(
            node.state().files[g.facts.daemon.as_ref().unwrap().config.as_str()]
                .content
                .clone(),
        )
        .unwrap();
        assert!(
            config.contains("server 10.0.0.1 iburst key 7\n"),
            "{config}"
        );
        assert!(config.contains("server 10.0.0.2 iburst\n"), "{config}");
        if daemon == "ntpsec" {
            assert!(
                config.contains("keys /etc/ntpsec/ntp.keys\ntrustedkey 7\n"),
                "{config}"
            );
        }
        let applied = shown(&report, &cs, &g.facts);
        // The same secret file: a second run changes nothing.
        let g1 = gather(&node, &crate::facts::Wants::from(&plan)).unwrap();
        let again = diff(&g1.rendered, &g1.facts).unwrap();
        assert!(again.is_empty(), "{:#?}", lines(&again));
        let unchanged = shown(&Report::plan(&again), &again, &g1.facts);

        // Another secret: the key file changes, and neither secret shows.
        secret_file(&node, "/etc/ntpp/k7", OTHER_SECRET, 0o400);
        let g2 = gather(&node, &crate::facts::Wants::from(&plan)).unwrap();
        let cs2 = diff(&g2.rendered, &g2.facts).unwrap();
        let update = format!("update {path} (content)");
        assert!(
            lines(&cs2).iter().any(|l| l.starts_with(&update)),
            "{:#?}",
            lines(&cs2)
        );
        let changed_plan = shown(&Report::plan(&cs2), &cs2, &g2.facts);
        assert!(
            changed_plan.contains("a secret changed (not shown)"),
            "{changed_plan}"
        );
        let changed_run = shown(&run_changeset(&node, &cs2), &cs2, &g2.facts);
        for out in [
            &plan_shown,
            &applied,
            &unchanged,
            &changed_plan,
            &changed_run,
        ] {
            for secret in [SECRET, OTHER_SECRET] {
                let hex: String = secret.bytes().map(|b| format!("{b:02X}")).collect();
                assert!(
                    !out.contains(secret) && !out.contains(&hex),
                    "{daemon}: {secret} in {out}"
                );
            }
        }
    }
}

#[test]
fn bad_keys_are_refused_before_any_change() {
    let refusal = |node: &FakeNode, plan: &Plan| {
        let msg = match gather(node, &crate::facts::Wants::from(plan)) {
            Ok(_) => panic!("accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(node.journal().is_empty(), "{:?}", node.journal());
        assert!(!msg.contains(SECRET), "{msg}");
        msg
    };
    let plan = keyed_plan("chrony", "SHA1");
    let node = FakeNode::bookworm();
    assert_eq!(
        refusal(&node, &plan),
        "vars.keys[0].secret_file: /etc/ntpp/k7 does not exist on this node: put the key's secret there (one line, mode 0600, root's)"
    );
    secret_file(&node, "/etc/ntpp/k7", SECRET, 0o644);
    assert_eq!(
        refusal(&node, &plan),
        "vars.keys[0].secret_file: /etc/ntpp/k7 is readable by others (mode 0644): chmod o-rwx /etc/ntpp/k7, and replace the secret if others may have read it"
    );
    secret_file(&node, "/etc/ntpp/k7", "\n", 0o600);
    assert!(refusal(&node, &plan).ends_with("/etc/ntpp/k7 is empty: it must hold one secret"));
    secret_file(&node, "/etc/ntpp/k7", SECRET, 0o600);
    let aes = keyed_plan("chrony", "AES128");
    assert!(refusal(&node, &aes).contains("an AES128 key is exactly 16 bytes"));
    // Classic ntpd has no AES256; OpenNTPD and timesyncd no keys at all.
    let bullseye = FakeNode::bullseye();
    secret_file(
        &bullseye,
        "/etc/ntpp/k7",
        &format!("HEX:{}", "ab".repeat(32)),
        0o600,
    );
    assert_eq!(
        refusal(&bullseye, &keyed_plan("ntp", "AES256")),
        "vars.keys[0].type: ntp has no AES256 keys (ntpsec and chrony have them); ntpd takes AES128, SHA512, SHA384, SHA256, SHA1, MD5"
    );
    let msg = refusal(&node, &keyed_plan("openntpd", "SHA1"));
    assert!(msg.starts_with("vars.keys is set, but openntpd has no such setting; only ntpd and ntpsec and chrony have it"), "{msg}");
}

#[test]
fn nts_files_missing_not_pem_unreadable_or_a_key_readable_by_others_are_refused_before_any_change()
{
    let pem = |text: &str, mode: u32| crate::facts::FileState {
        content: text.as_bytes().to_vec(),
        mode,
        uid: 0,
        gid: 0,
        modified: None,
    };
    let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
    let client = [
        "daemon=chrony",
        "servers=[{host: 10.123.0.50, nts: true}]",
        "nts_ca=/etc/ssl/site-ca.pem",
    ];
    let server = [
        "daemon=chrony",
        "servers=[10.123.0.2]",
        "nts_server_cert=/etc/chrony/nts.pem",
        "nts_server_key=/etc/chrony/nts.key",
    ];
    let refusal = |node: &FakeNode, vars: &[&str]| {
        let plan = default_plan(vars);
        let err = gather(node, &crate::facts::Wants::from(&plan)).err();
        assert!(node.journal().is_empty());
        err.map(|e| format!("{e:#}"))
    };
    let node = FakeNode::bookworm();
    assert_eq!(
        refusal(&node, &client).unwrap(),
        "vars.nts_ca: /etc/ssl/site-ca.pem does not exist on the node (the operator provides it)"
    );
    node.state().files.insert(
        "/etc/ssl/site-ca.pem".into(),
        pem("not a certificate", 0o644),
    );
    assert!(refusal(&node, &client)
        .unwrap()
        .contains("is not a PEM certificate"));
    node.state()
        .files
        .insert("/etc/ssl/site-ca.pem".into(), pem(cert, 0o644));
    assert_eq!(refusal(&node, &client), None);
    let files = |key_mode| {
        let n = FakeNode::bookworm();
        n.state()
            .files
            .insert("/etc/chrony/nts.pem".into(), pem(cert, 0o644));
        n.state()
            .files
            .insert("/etc/chrony/nts.key".into(), pem(key, key_mode));
        n
    };
    // A root-only key where the package made _chrony already: the daemon
    // could not read it. On a fresh node, only the mode can be judged.
    assert_eq!(refusal(&files(0o600), &server), None);
    let made = files(0o600);
    for (db, line) in [
        (
            "/etc/passwd",
            "_chrony:x:100:101::/var/lib/chrony:/usr/sbin/nologin\n",
        ),
        ("/etc/group", "_chrony:x:101:\n"),
    ] {
        made.state().files.insert(db.into(), pem(line, 0o644));
    }
    assert!(refusal(&made, &server)
        .unwrap()
        .contains("/etc/chrony/nts.key (mode 0600, uid 0, gid 0) is not readable by _chrony"));
    // A key every local user can read is the lint's finding, refused
    // unless the plan allows the rule.
    let open = files(0o644);
    let plan = default_plan(&server);
    assert_eq!(refusal(&open, &server), None);
    let err = lint_gate(&open, &plan).unwrap_err();
    assert!(
        err.contains(
            "/etc/chrony/chrony.conf as the plan would write it fails the access-control lint"
        ),
        "{err}"
    );
    assert!(err.contains(": the NTS server key /etc/chrony/nts.key (vars.nts_server_key) has mode 0644, readable by every local user; chmod o-r /etc/chrony/nts.key"), "{err}");
    assert!(err.ends_with("allow_insecure: [nts-key-readable]"), "{err}");
    let mut allowing = default_plan(&server);
    allowing.allow_insecure = vec![crate::lint::Rule::NtsKeyReadable];
    let notes = lint_gate(&open, &allowing).unwrap();
    assert!(
        notes.iter().any(|n| n.starts_with(
            "allowed by allow_insecure: /etc/chrony/chrony.conf: nts-key-readable (line "
        )),
        "{notes:?}"
    );
    assert!(open.journal().is_empty());
}

/// The lint's verdict on what `plan` would write to `node`, as the engine
/// gives it before any change: the notes, or the refusal.
fn lint_gate(node: &FakeNode, plan: &Plan) -> Result<Vec<String>, String> {
    let g = gather(node, &crate::facts::Wants::from(plan)).unwrap();
    let cs = diff(&g.rendered, &g.facts).unwrap();
    let linted = crate::lint::for_plan(&g.rendered, &g.facts, &cs);
    crate::engine::lint_gate(&linted, &plan.allow_insecure).map(|(notes, _)| notes)
}
