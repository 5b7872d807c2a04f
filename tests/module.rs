//! The binary as an Ansible binary module, where no node is needed: one
//! argument naming a JSON args file gives one JSON result on stdout and exit
//! 0, also for invalid arguments and plans (Ansible reads `failed`).
//!
//! The module runs as nobody, as the CLI in tests/cli.rs does: every case
//! fails before the first probe, and root is not the point of any.

mod common;

use common::{ntp_provision_as_nobody, world_readable_dir};
use std::process::Stdio;

fn module(args: &str) -> (i32, serde_json::Value, String) {
    let dir = world_readable_dir();
    let path = dir.path().join("args");
    std::fs::write(&path, args).unwrap();
    let out = ntp_provision_as_nobody()
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("the binary starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"));
    (
        out.status.code().unwrap_or(-1),
        value,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn invalid_arguments_fail_in_json_with_exit_0() {
    let (code, v, _) = module(r#"{"plan": "/nonexistent/plan.yaml", "bogus": 1}"#);
    assert_eq!(code, 0);
    assert_eq!(
        (v["failed"].as_bool(), v["changed"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(
        v["msg"]
            .as_str()
            .unwrap()
            .contains("unsupported parameter \"bogus\""),
        "{v}"
    );
}

#[test]
fn an_unreadable_or_invalid_plan_fails_before_any_probe() {
    let (code, v, _) = module(r#"{"plan": "/nonexistent/plan.yaml", "_ansible_check_mode": true}"#);
    assert_eq!(code, 0);
    assert!(
        v["msg"]
            .as_str()
            .unwrap()
            .contains("cannot read plan /nonexistent/plan.yaml on the target"),
        "{v}"
    );

    let (code, v, _) = module(
        r#"{"plan": {"steps": [{"name": "x", "apt": {"name": "ntp", "state": "gone"}}]}, "_ansible_check_mode": true}"#,
    );
    assert_eq!(code, 0);
    assert_eq!(v["failed"], true);
    assert!(
        v["msg"]
            .as_str()
            .unwrap()
            .starts_with("invalid plan: <module argument plan>"),
        "{v}"
    );

    let (_, v, _) = module(
        r#"{"vars": {"servers": ["pool.ntp.org\nrestrict default"]}, "_ansible_check_mode": true}"#,
    );
    assert_eq!(v["failed"], true);
    assert!(
        v["msg"]
            .as_str()
            .unwrap()
            .starts_with("invalid vars: the module's vars argument: vars.servers[0]:"),
        "the variable is named where it was given, not in the plan: {v}"
    );
    assert!(
        v["msg"].as_str().unwrap().contains("control character"),
        "{v}"
    );
}

#[test]
fn a_file_that_is_not_a_json_object_is_the_cli_as_before() {
    let dir = world_readable_dir();
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, "steps: []\n").unwrap();
    let out = ntp_provision_as_nobody().arg(&path).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(64),
        "a bare YAML file is bad usage, not a module run"
    );
}

#[test]
fn a_run_that_would_change_the_node_is_refused_to_a_user_other_than_root() {
    let (code, v, _) = module(r#"{"vars": {"servers": ["127.0.0.1"]}}"#);
    assert_eq!(code, 0);
    assert_eq!(
        (v["failed"].as_bool(), v["changed"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(
        v["msg"],
        "apply must run as root: it installs packages and writes under /etc (use become: true)",
        "{v}"
    );
    assert_eq!(v["steps"], serde_json::json!([]), "nothing ran");
}
