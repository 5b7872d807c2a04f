//! The Ansible collection as a user installs it, with each ansible-core the
//! tests cover (the pinned one, and the oldest and newest the collection
//! claims that run on this Python): `ansible-galaxy collection install` of
//! the built tarball into a temporary path, `ansible-doc` of the module and
//! of the role, and a wrong role variable refused before any task and any
//! connection. No node: the inventory's host is a closed loopback port.

use crate::fleet::{
    ansible_tool, assert_argument_spec_failure, install_collection, ANSIBLE_EXTRA, ANSIBLE_VERSION,
};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

const MODULE: &str = "ntp_provision.ntp.ntp_provision";
const ROLE: &str = "ntp_provision.ntp.ntp";

fn run(version: &str, tool: &str, collections: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("timeout")
        .arg("300")
        .arg(ansible_tool(version, tool))
        .args(args)
        .env("ANSIBLE_COLLECTIONS_PATH", collections)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCAL_TEMP", collections.join("tmp"))
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The option names a YAML document lists under `path` (a.b.c).
fn options(file: &str, path: &[&str]) -> Vec<String> {
    let text = fs::read_to_string(format!("{}/collection/{file}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("collection/{file}: {e}"));
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut node = &doc;
    for key in path {
        node = &node[*key];
    }
    node.as_mapping()
        .unwrap_or_else(|| panic!("collection/{file}: no mapping at {path:?}"))
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn collection_installs_documents_its_module_and_role_and_checks_role_arguments() {
    let module_options = options(
        "plugins/modules/ntp_provision.yml",
        &["DOCUMENTATION", "options"],
    );
    assert_eq!(
        module_options,
        [
            "plan",
            "vars",
            "daemon",
            "lock_timeout",
            "require_sync",
            "command"
        ],
        "the module's documented options"
    );
    let role_options = options(
        "roles/ntp/meta/argument_specs.yml",
        &["argument_specs", "main", "options"],
    );
    for version in std::iter::once(ANSIBLE_VERSION).chain(ANSIBLE_EXTRA) {
        let dir = tempfile::tempdir().unwrap();
        let collections = install_collection(version, dir.path());

        let (code, doc) = run(version, "ansible-doc", &collections, &[MODULE]);
        assert_eq!(
            code, 0,
            "ansible-core {version}: ansible-doc {MODULE}:\n{doc}"
        );
        for option in &module_options {
            assert!(
                doc.contains(option.as_str()),
                "ansible-core {version}: no {option}:\n{doc}"
            );
        }
        for part in ["EXAMPLES", "RETURN VALUES", "check_mode", "synchronised"] {
            assert!(
                doc.contains(part),
                "ansible-core {version}: no {part}:\n{doc}"
            );
        }

        let (code, doc) = run(version, "ansible-doc", &collections, &["-t", "role", ROLE]);
        assert_eq!(
            code, 0,
            "ansible-core {version}: ansible-doc -t role {ROLE}:\n{doc}"
        );
        for option in &role_options {
            assert!(
                doc.contains(option.as_str()),
                "ansible-core {version}: role option {option}:\n{doc}"
            );
        }

        // A wrong variable: refused by the argument spec before any task,
        // without connecting to the (closed) host.
        let inventory = dir.path().join("hosts.yml");
        fs::write(
            &inventory,
            "ntp:\n  hosts:\n    closed:\n      ansible_host: 127.0.0.1\n      ansible_port: 9\n",
        )
        .unwrap();
        let playbook = format!("{}/playbooks/fleet.yml", env!("CARGO_MANIFEST_DIR"));
        let inv = inventory.to_string_lossy().into_owned();
        let (code, out) = run(
            version,
            "ansible-playbook",
            &collections,
            &["-i", &inv, &playbook, "-e", "ntp_daemon=ntimed"],
        );
        assert_ne!(code, 0, "ansible-core {version}:\n{out}");
        assert_argument_spec_failure(&out);
        assert!(
            out.contains("ntimed"),
            "ansible-core {version}: names the value:\n{out}"
        );
    }
}
