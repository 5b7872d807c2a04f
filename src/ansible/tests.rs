//! The module's argument contract, invocation detection, and the result's
//! `msg` and `diff`, on the in-memory fake node.

use super::*;
use crate::diff::diff;
use crate::facts::gather;
use crate::fake::FakeNode;
use crate::plan::{self, Source};
use serde_json::json;

fn args(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn parse(v: Value) -> Result<ModuleArgs, String> {
    parse_args(&args(v))
}

/// Applies `cs` to the fake node; it must not fail.
fn converge(node: &FakeNode, cs: &crate::diff::Changeset) {
    assert!(!node.apply(cs, &mut |_| {}, &|| None, None).failed);
}

#[test]
fn defaults_are_the_embedded_plan_applied() {
    let a = parse(json!({"_ansible_verbosity": 0, "_ansible_version": "2.17.7"})).unwrap();
    assert_eq!(a.plan, PlanArg::Embedded);
    assert_eq!(
        (a.check_mode, a.diff, a.lock_timeout, a.command),
        (false, false, 300, ModuleCommand::Converge)
    );
    assert!(a.vars.is_empty());
}

#[test]
fn check_mode_diff_vars_daemon_and_lock_timeout() {
    let a = parse(json!({
        "_ansible_check_mode": true, "_ansible_diff": true,
        "vars": {"servers": ["127.0.0.1", "::1"], "daemon": "chrony"},
        "daemon": "openntpd", "lock_timeout": "30",
    }))
    .unwrap();
    assert!(a.check_mode && a.diff);
    assert_eq!(a.lock_timeout, 30);
    let names: Vec<&str> = a.vars.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["servers", "daemon"]);
    // `daemon` wins over vars.daemon.
    assert_eq!(a.vars[1].1, serde_yaml::Value::String("openntpd".into()));
    assert_eq!(
        a.vars[0].1,
        serde_yaml::from_str::<serde_yaml::Value>("[127.0.0.1, '::1']").unwrap()
    );
}

#[test]
fn plan_is_a_path_inline_yaml_or_a_mapping() {
    assert_eq!(
        parse(json!({"plan": "/etc/ntp-plan.yaml"})).unwrap().plan,
        PlanArg::Path("/etc/ntp-plan.yaml".into())
    );
    let inline = "steps:\n  - name: x\n    apt: {name: ntp}\n";
    assert_eq!(
        parse(json!({"plan": inline})).unwrap().plan,
        PlanArg::Inline(inline.into())
    );
    let PlanArg::Inline(text) =
        parse(json!({"plan": {"steps": [{"name": "x", "apt": {"name": "ntp"}}]}}))
            .unwrap()
            .plan
    else {
        panic!("a mapping is an inline plan")
    };
    let back: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(
        back,
        json!({"steps": [{"name": "x", "apt": {"name": "ntp"}}]})
    );
}

#[test]
fn invalid_arguments_are_named() {
    for (v, needle) in [
        (json!({"plans": "x"}), "unsupported parameter \"plans\""),
        (json!({"vars": ["a"]}), "vars must be a mapping"),
        (
            json!({"vars": {"bad-name": 1}}),
            "\"bad-name\" is not a variable name",
        ),
        (json!({"daemon": 3}), "daemon must be a string"),
        (
            json!({"lock_timeout": "soon"}),
            "lock_timeout must be a whole number",
        ),
        (
            json!({"lock_timeout": -1}),
            "lock_timeout must be a whole number",
        ),
        (json!({"plan": "  "}), "plan is empty"),
        (json!({"plan": 7}), "plan must be a path"),
        (
            json!({"command": "reboot"}),
            "command must be converge or status",
        ),
        (
            json!({"_ansible_check_mode": "yes"}),
            "_ansible_check_mode must be a boolean",
        ),
    ] {
        let e = parse(v.clone()).unwrap_err();
        assert!(e.contains(needle), "{v}: {e}");
    }
}

#[test]
fn detect_wants_one_existing_file_holding_a_json_object() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        OsString::from(p)
    };
    let argv = |a: &[OsString]| {
        std::iter::once(OsString::from("ntp-provision"))
            .chain(a.iter().cloned())
            .collect::<Vec<_>>()
    };
    let good = file("args", r#"{"daemon": "openntpd"}"#);
    assert_eq!(
        detect(&argv(std::slice::from_ref(&good))).unwrap()["daemon"],
        "openntpd"
    );
    assert!(
        detect(&argv(&[good.clone(), "x".into()])).is_none(),
        "two arguments: the CLI"
    );
    assert!(detect(&argv(&[])).is_none());
    assert!(
        detect(&argv(&[file("list", "[1]")])).is_none(),
        "a JSON list is no args file"
    );
    assert!(detect(&argv(&[file("yaml", "steps: []\n")])).is_none());
    assert!(detect(&argv(&[dir.path().join("missing").into()])).is_none());
    assert!(detect(&argv(&[dir.path().into()])).is_none(), "a directory");
    // Subcommands stay subcommands even when a file of that name exists.
    let cwd_plan = file("plan", "{}");
    assert!(
        detect(&argv(&[cwd_plan])).is_some(),
        "a path naming a file called plan is a module run"
    );
    assert!(detect(&argv(&["plan".into()])).is_none());
    for subcommand in ["completions", "generate", "status", "verify"] {
        assert!(
            detect(&argv(&[subcommand.into()])).is_none(),
            "{subcommand}"
        );
    }
    assert!(detect(&argv(&["--help".into()])).is_none());
}

fn default_plan(vars: &[(&str, &str)]) -> Plan {
    let o: Vec<_> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), serde_yaml::from_str(v).unwrap()))
        .collect();
    Plan::load(plan::DEFAULT_PLAN.as_bytes(), Source::embedded(), &o).unwrap()
}

#[test]
fn diffs_carry_before_and_after_text_and_follow_earlier_steps() {
    let node = FakeNode::bookworm();
    let plan = default_plan(&[("servers", "[127.0.0.1]")]);
    // Converge, then drift the config by hand.
    let g = gather(&node, &crate::facts::Wants::from(&plan)).unwrap();
    let cs = diff(&g.rendered, &g.facts).unwrap();
    converge(&node, &cs);
    let converged = node.file_text("/etc/ntpsec/ntp.conf").unwrap();
    let drifted = converged.replace("server 127.0.0.1", "server 127.0.0.9");
    node.state()
        .files
        .get_mut("/etc/ntpsec/ntp.conf")
        .unwrap()
        .content = drifted.clone().into_bytes();

    let g = gather(&node, &crate::facts::Wants::from(&plan)).unwrap();
    let cs = diff(&g.rendered, &g.facts).unwrap();
    let diffs = file_diffs(&cs, &g.facts, true);
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert_eq!(diffs[0].0, "/etc/ntpsec/ntp.conf");
    assert_eq!(
        diffs[0].1,
        json!({"before_header": "/etc/ntpsec/ntp.conf", "after_header": "/etc/ntpsec/ntp.conf (planned)",
               "before": drifted, "after": converged})
    );

    let report = Report::plan(&cs);
    let value = result(&report, diffs.into_iter().map(|(_, d)| d).collect(), true);
    assert_eq!(value["changed"], true);
    assert_eq!(value["failed"], false);
    assert!(
        value["msg"]
            .as_str()
            .unwrap()
            .starts_with("plan (check mode, nothing changed): ok="),
        "{value}"
    );
    assert_eq!(value["diff"].as_array().unwrap().len(), 1);
    assert!(value["steps"].is_array() && value["summary"]["changed"].as_u64().unwrap() >= 1);
    assert!(
        result(&report, vec![json!({})], false)
            .get("diff")
            .is_none(),
        "no diff unless asked"
    );
}

#[test]
fn a_new_file_diffs_from_dev_null_and_a_mode_change_is_a_prepared_line() {
    let node = FakeNode::bookworm();
    let plan = default_plan(&[("servers", "[127.0.0.1]")]);
    let g = gather(&node, &crate::facts::Wants::from(&plan)).unwrap();
    let cs = diff(&g.rendered, &g.facts).unwrap();
    let diffs = file_diffs(&cs, &g.facts, true);
    let conf = diffs
        .iter()
        .find(|(p, _)| p == "/etc/ntpsec/ntp.conf")
        .unwrap();
    assert_eq!(conf.1["before_header"], "/dev/null");
    assert_eq!(conf.1["before"], "");
    assert!(conf.1["after"]
        .as_str()
        .unwrap()
        .contains("server 127.0.0.1"));

    converge(&node, &cs);
    node.state()
        .files
        .get_mut("/etc/ntpsec/ntp.conf")
        .unwrap()
        .mode = 0o600;
    let g = gather(&node, &crate::facts::Wants::from(&plan)).unwrap();
    let cs = diff(&g.rendered, &g.facts).unwrap();
    let diffs = file_diffs(&cs, &g.facts, true);
    assert_eq!(diffs.len(), 1);
    let prepared = diffs[0].1["prepared"].as_str().unwrap();
    assert!(
        prepared.contains("/etc/ntpsec/ntp.conf") && prepared.contains("0644"),
        "{prepared}"
    );
}

#[test]
fn msg_is_the_error_or_the_failed_steps() {
    let early = Report::failed_before_start(
        Mode::Apply,
        "nothing was changed: apt-get update failed".into(),
    );
    assert_eq!(
        result(&early, vec![], true)["msg"],
        "nothing was changed: apt-get update failed"
    );
    assert_eq!(result(&early, vec![], true)["failed"], true);
}

#[test]
fn the_refusal_of_a_user_other_than_root_tells_ansible_users_to_become_root() {
    let refused = Report::failed_before_start(Mode::Apply, engine::NOT_ROOT.into());
    let value = result(&refused, vec![], false);
    assert_eq!(
        value["msg"],
        "apply must run as root: it installs packages and writes under /etc (use become: true)"
    );
    assert_eq!(
        (&value["failed"], &value["error"]),
        (&json!(true), &json!(engine::NOT_ROOT))
    );
}
