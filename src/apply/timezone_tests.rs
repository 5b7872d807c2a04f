//! `vars.timezone` through every stage, on the in-memory fake node.

use crate::diff::{diff, Change, Changeset};
use crate::facts::gather;
use crate::fake::FakeNode;
use crate::plan::{parse_override, Plan, Source, DEFAULT_PLAN};
use crate::report::Report;

fn plan(overrides: &[&str]) -> Result<Plan, crate::plan::PlanError> {
    let o: Vec<_> = overrides
        .iter()
        .map(|s| parse_override(s).unwrap())
        .collect();
    Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &o)
}

fn changeset(node: &FakeNode, plan: &Plan) -> Changeset {
    let g = gather(node, &crate::facts::Wants::from(plan)).unwrap();
    diff(&g.rendered, &g.facts).unwrap()
}

fn timezone_changes(cs: &Changeset) -> Vec<&Change> {
    cs.steps
        .iter()
        .flat_map(|s| &s.changes)
        .filter(|c| matches!(c, Change::Timezone { .. }))
        .collect()
}

/// The timezone changes as the report prints them.
fn timezone_lines(cs: &Changeset) -> Vec<String> {
    timezone_changes(cs).iter().map(|c| c.to_string()).collect()
}

#[test]
fn plan_shows_the_zone_change_apply_sets_both_files_and_a_rerun_changes_nothing() {
    let node = FakeNode::bookworm();
    let plan = plan(&["timezone=Europe/Paris"]).unwrap();
    let cs = changeset(&node, &plan);
    let step = cs.steps.iter().find(|s| s.name == "Time zone Europe/Paris");
    let step = step.expect("a step of its own, after the plan's");
    assert_eq!(step.changes.len(), 1);
    assert_eq!(
        step.changes[0].to_string(),
        "timezone: Etc/UTC -> Europe/Paris"
    );
    // JSON: a typed change with before and after, and the line shown.
    let json = crate::report::json::to_value(&Report::plan(&cs));
    let change = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["changes"].as_array().unwrap())
        .find(|c| c["kind"] == "timezone")
        .unwrap()
        .clone();
    assert_eq!(change["before"], "Etc/UTC");
    assert_eq!(change["after"], "Europe/Paris");
    assert_eq!(change["link"], "../usr/share/zoneinfo/Europe/Paris");
    assert_eq!(change["description"], "timezone: Etc/UTC -> Europe/Paris");
    assert!(node.journal().is_empty(), "planning changed nothing");

    let report = node.apply(&cs, &mut |_| {}, &|| None, None);
    assert!(!report.failed, "{report:?}");
    // The link first, then Debian's file, after the plan's steps (its
    // handler's restart comes after every step).
    let journal = node.journal();
    let at = journal.iter().position(|l| l.starts_with("link ")).unwrap();
    assert_eq!(
        journal[at..at + 2],
        [
            "link /etc/localtime -> ../usr/share/zoneinfo/Europe/Paris",
            "write /etc/timezone",
        ]
    );
    assert_eq!(journal[at + 2..], ["systemctl restart ntpsec.service"]);
    assert_eq!(
        node.file_text("/etc/timezone").as_deref(),
        Some("Europe/Paris\n")
    );

    node.state().journal.clear();
    let again = changeset(&node, &plan);
    assert!(again.is_empty(), "{again:?}");
    let report = node.apply(&again, &mut |_| {}, &|| None, None);
    assert_eq!(report.summary.changed, 0);
    assert!(node.journal().is_empty());
}

#[test]
fn a_converged_zone_gives_no_change_and_a_stale_etc_timezone_one() {
    let node = FakeNode::bookworm();
    {
        let mut s = node.state();
        s.links.insert(
            "/etc/localtime".into(),
            "/usr/share/zoneinfo/Europe/Paris".into(),
        );
    }
    let plan = plan(&["timezone=Europe/Paris"]).unwrap();
    // The link is right (absolute, as older tzdata wrote it); /etc/timezone is not.
    let cs = changeset(&node, &plan);
    let lines = timezone_lines(&cs);
    assert_eq!(
        lines,
        ["timezone: Europe/Paris (/etc/timezone says \"Etc/UTC\"; it gets Europe/Paris)"]
    );
    node.apply(&cs, &mut |_| {}, &|| None, None);
    assert!(timezone_changes(&changeset(&node, &plan)).is_empty());
    // No timezone: the node's zone is not even read.
    node.state().probes.clear();
    let cs = changeset(
        &node,
        &crate::plan::Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &[]).unwrap(),
    );
    assert!(timezone_changes(&cs).is_empty());
    assert!(!node.state().probes.iter().any(|p| p.contains("time zone")));
}

#[test]
fn names_that_are_not_zones_are_refused_at_load_naming_vars_timezone() {
    for (arg, says) in [
        ("timezone=../../etc/shadow", "is not a time zone name"),
        ("timezone=/Europe/Paris", "is not a time zone name"),
        (
            "timezone=Europe/../../etc/passwd",
            "is not a time zone name",
        ),
        ("timezone=Europe Paris", "is not a time zone name"),
        ("timezone=localtime", "not a zone"),
        (
            "timezone=1",
            "expected a time zone name such as Europe/Paris, found a number",
        ),
        ("timezone=[Europe/Paris]", "found a list"),
    ] {
        let err = plan(&[arg]).unwrap_err();
        assert_eq!(err.path, "vars.timezone", "{arg}: {err}");
        assert!(err.message.contains(says), "{arg}: {err}");
    }
    // A typo of the name is a typo: refused as an unused variable.
    let err = plan(&["time_zone=Europe/Paris"]).unwrap_err();
    assert!(err.message.contains("did you mean timezone?"), "{err}");
    // Null leaves the zone alone.
    let p = plan(&["timezone=null"]).unwrap();
    assert!(p.timezone().is_none());
}

#[test]
fn a_zone_missing_from_the_nodes_zoneinfo_is_refused_before_any_change() {
    let node = FakeNode::bookworm();
    let plan = plan(&["timezone=Mars/Olympus"]).unwrap();
    let err = gather(&node, &crate::facts::Wants::from(&plan))
        .err()
        .unwrap();
    let msg = format!("{err:#}");
    assert!(
        msg.starts_with(
            "vars.timezone: the time zone Mars/Olympus is not in this node's zoneinfo database"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("/usr/share/zoneinfo/Mars/Olympus does not exist"),
        "{msg}"
    );
    assert!(msg.contains("tzdata"), "{msg}");
    assert!(node.journal().is_empty());
}

#[test]
fn a_node_without_etc_localtime_or_etc_timezone_gets_both() {
    let node = FakeNode::bookworm();
    {
        let mut s = node.state();
        s.links.clear();
        s.files.remove("/etc/timezone");
    }
    let plan = plan(&["timezone=America/New_York"]).unwrap();
    let cs = changeset(&node, &plan);
    let lines = timezone_lines(&cs);
    assert_eq!(
        lines,
        ["timezone: none (no /etc/localtime) -> America/New_York (no /etc/timezone; it gets America/New_York)"]
    );
    assert!(!node.apply(&cs, &mut |_| {}, &|| None, None).failed);
    assert_eq!(
        node.state().links.get("/etc/localtime").map(String::as_str),
        Some("../usr/share/zoneinfo/America/New_York")
    );
    assert!(changeset(&node, &plan).is_empty());
}
