//! The Ansible collection's sources agree with the code and with each
//! other (no node, no ansible-core: tests/node/collection.rs runs the built
//! collection): the module's documented options are exactly the arguments
//! the module accepts, the role's defaults and argument spec name the same
//! variables, every `ntp_*` variable the role reads is in its spec, and the
//! collection and the Debian changelog carry Cargo.toml's version.

use ntp_provision::ansible::parse_args;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn keys(v: &serde_yaml::Value) -> BTreeSet<String> {
    v.as_mapping()
        .expect("a mapping")
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

const MODULE_DOC: &str = "collection/plugins/modules/ntp_provision.yml";
const ARG_SPEC: &str = "collection/roles/ntp/meta/argument_specs.yml";

#[test]
fn module_docs_list_exactly_the_arguments_the_module_accepts() {
    let doc = yaml(MODULE_DOC);
    let options = &doc["DOCUMENTATION"]["options"];
    let documented = keys(options);
    // A valid value for each documented option is accepted...
    let sample = |name: &str| match name {
        "plan" => json!("/etc/ntp-provision/plan.yaml"),
        "vars" => json!({"servers": ["ntp1.example.net"]}),
        "daemon" => json!("chrony"),
        "lock_timeout" => json!(60),
        "require_sync" => json!(30),
        "command" => json!("status"),
        other => panic!("documented option {other} has no sample here: add one"),
    };
    for name in &documented {
        let mut args = Map::new();
        args.insert(name.clone(), sample(name));
        parse_args(&args).unwrap_or_else(|e| panic!("documented {name} refused: {e}"));
    }
    // ...and what the module lists as supported is what is documented.
    let mut args = Map::new();
    args.insert("no_such_option".into(), Value::Bool(true));
    let err = parse_args(&args).unwrap_err();
    let supported: BTreeSet<String> = err
        .split_once("supported: ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("the refusal lists the supported arguments: {err}"))
        .split(", ")
        .map(str::to_string)
        .collect();
    assert_eq!(documented, supported, "{MODULE_DOC} vs src/ansible/mod.rs");
    // Every option has a description and a type; the examples and return values exist.
    for name in &documented {
        let o = &options[name.as_str()];
        assert!(
            o["description"].is_sequence() || o["description"].is_string(),
            "{name}"
        );
        assert!(o["type"].is_string(), "{name} has a type");
    }
    assert!(doc["EXAMPLES"]
        .as_str()
        .unwrap()
        .contains("ntp_provision.ntp.ntp_provision:"));
    for ret in ["msg", "steps", "summary", "diff", "synchronised"] {
        assert!(!doc["RETURN"][ret].is_null(), "RETURN documents {ret}");
    }
}

#[test]
fn role_defaults_spec_and_tasks_name_the_same_variables() {
    let spec = yaml(ARG_SPEC);
    let options = &spec["argument_specs"]["main"]["options"];
    let specified = keys(options);
    // An option with choices has no null default: the argument check
    // refuses null against the choices on every ansible-core, so such an
    // option is left unset (no default, no value in defaults/main.yml, a
    // comment there) and the tasks read it with `default(omit)`.
    let unset: Vec<String> = specified
        .iter()
        .filter(|n| options[n.as_str()]["default"].is_null())
        .cloned()
        .collect();
    let defaults_text = read("collection/roles/ntp/defaults/main.yml");
    for name in &unset {
        let o = &options[name.as_str()];
        assert!(
            o.get("default").is_none() || o["choices"].is_null(),
            "{name}: a null default against choices fails the role's argument check"
        );
        if !o["choices"].is_null() {
            assert!(
                defaults_text.contains(&format!("# {name}:")),
                "{name}: unset, and said so in defaults/main.yml"
            );
        }
    }
    let defaults = keys(&yaml("collection/roles/ntp/defaults/main.yml"));
    let with_value: BTreeSet<String> = specified
        .iter()
        .filter(|n| options[n.as_str()].get("default").is_some())
        .cloned()
        .collect();
    assert_eq!(
        with_value, defaults,
        "argument_specs.yml vs defaults/main.yml"
    );
    // Each spec default is the defaults/main.yml value.
    let values = yaml("collection/roles/ntp/defaults/main.yml");
    for name in &with_value {
        assert_eq!(
            options[name.as_str()]["default"],
            values[name.as_str()],
            "{name}: the spec's default is defaults/main.yml's"
        );
        assert!(!options[name.as_str()]["description"].is_null(), "{name}");
    }
    // Every ntp_* the role's tasks and vars read is specified.
    for file in [
        "collection/roles/ntp/tasks/main.yml",
        "collection/roles/ntp/vars/main.yml",
    ] {
        let text = read(file);
        for (i, _) in text.match_indices("ntp_") {
            if i > 0 && text.as_bytes()[i - 1].is_ascii_alphanumeric()
                || text[..i].ends_with("_")
                || text[..i].ends_with('.')
            {
                continue; // ntp_provision.ntp..., _ntp_module_vars
            }
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name == "ntp_provision" || name == "ntp_status" || name.ends_with('_') {
                continue; // the collection's name, the registered result, "ntp_*" in prose
            }
            assert!(
                specified.contains(&name),
                "{file} reads {name}, which {ARG_SPEC} lacks"
            );
        }
    }
    // The daemon choices agree between the role and the module.
    let module = yaml(MODULE_DOC);
    assert_eq!(
        options["ntp_daemon"]["choices"],
        module["DOCUMENTATION"]["options"]["daemon"]["choices"]
    );
}

#[test]
fn packages_carry_the_crate_version() {
    let version = env!("CARGO_PKG_VERSION");
    let galaxy = yaml("collection/galaxy.yml");
    assert_eq!(
        galaxy["version"].as_str(),
        Some(version),
        "collection/galaxy.yml"
    );
    assert_eq!(galaxy["namespace"].as_str(), Some("ntp_provision"));
    assert_eq!(galaxy["name"].as_str(), Some("ntp"));
    let changelog = read("packaging/changelog");
    assert!(
        changelog.starts_with(&format!("ntp-provision ({version}-1) ")),
        "packaging/changelog's first entry is for {version}-1"
    );
    let runtime = yaml("collection/meta/runtime.yml");
    assert_eq!(runtime["requires_ansible"].as_str(), Some(">=2.14.0"));
}
