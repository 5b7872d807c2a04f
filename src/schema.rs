//! The JSON Schemas of the plan and of the documents ntp-provision prints,
//! generated from the types that read and print them. docs/schema/ holds
//! them; a test fails when they are stale (`NTPP_BLESS=1 cargo test --lib
//! schema` rewrites them).

use schemars::JsonSchema;
use serde_json::{json, Value};

use crate::wire::FORMAT_VERSION;

/// Each document's file name under docs/schema/ and its schema.
pub fn documents() -> Vec<(&'static str, Value)> {
    vec![
        ("plan.schema.json", plan()),
        ("report.schema.json", report()),
        ("status.schema.json", status()),
        (
            "verify.schema.json",
            document::<crate::verify::report::VerifyReport>("ntp-provision verify --format json"),
        ),
    ]
}

/// A plan as written (`plan::raw`), for editors: yaml-language-server
/// reads it from a `# yaml-language-server: $schema=...` line.
fn plan() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(crate::plan::raw::RawPlan))
        .expect("a schema is JSON");
    schema["title"] = "ntp-provision plan".into();
    schema
}

/// `T`'s schema with a title and `format_version`.
fn document<T: JsonSchema>(title: &str) -> Value {
    // As the types serialise: a field skipped when empty is not required.
    let generator = schemars::generate::SchemaSettings::default()
        .for_serialize()
        .into_generator();
    let schema = generator.into_root_schema_for::<T>();
    let mut schema = serde_json::to_value(schema).expect("a schema is JSON");
    schema["title"] = title.into();
    add_property(
        &mut schema,
        "format_version",
        json!({"const": FORMAT_VERSION}),
    );
    schema
}

fn add_property(schema: &mut Value, name: &str, property: Value) {
    schema["properties"][name] = property;
    if let Some(required) = schema["required"].as_array_mut() {
        required.push(name.into());
    } else {
        schema["required"] = json!([name]);
    }
}

/// `plan` and `apply`: every change also has its `description`
/// (`json::to_value`).
fn report() -> Value {
    let mut schema = document::<crate::report::Report>("ntp-provision plan|apply --format json");
    let variants = schema["$defs"]["Change"]["oneOf"].as_array_mut();
    for variant in variants.into_iter().flatten() {
        let line =
            json!({"type": "string", "description": "The line the human output prints for it."});
        add_property(variant, "description", line);
    }
    schema
}

/// `status`, with the plan it compared with (`app`, the module).
fn status() -> Value {
    let mut schema = document::<crate::status::Status>("ntp-provision status --format json");
    let compared =
        json!({"type": "string", "description": "The plan the config was compared with."});
    add_property(&mut schema, "compared_with", compared);
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema")
    }

    #[test]
    fn the_schemas_in_docs_are_those_the_types_give() {
        let bless = std::env::var_os("NTPP_BLESS").is_some();
        for (name, schema) in documents() {
            let path = schema_dir().join(name);
            let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            if bless {
                std::fs::create_dir_all(schema_dir()).unwrap();
                std::fs::write(&path, &text).unwrap();
            }
            let kept = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                kept == text,
                "docs/schema/{name} is stale: run NTPP_BLESS=1 cargo test --lib schema"
            );
        }
    }

    /// A validator is not a dependency: checks what a schema says of the
    /// keys of a real document, the part that goes stale first.
    fn keys_match(schema: &Value, doc: &Value) {
        let properties: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        for key in &keys {
            assert!(properties.contains(key), "{key} is not in the schema");
        }
        for required in schema["required"].as_array().unwrap() {
            assert!(
                keys.contains(&&required.as_str().unwrap().to_string()),
                "{required} missing"
            );
        }
    }

    #[test]
    fn a_report_has_the_keys_its_schema_names() {
        let refused =
            crate::report::Report::failed_before_start(crate::report::Mode::Apply, "x".into());
        keys_match(&report(), &crate::report::json::to_value(&refused));
    }

    fn schema_of(name: &str) -> jsonschema::Validator {
        let (_, schema) = documents().into_iter().find(|(n, _)| *n == name).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    }

    fn assert_valid(name: &str, doc: &Value) {
        let validator = schema_of(name);
        let errors: Vec<String> = validator
            .iter_errors(doc)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}\n{doc:#}");
    }

    #[test]
    fn the_embedded_plan_is_valid_and_a_misspelt_key_is_not() {
        let plan: Value = serde_yaml::from_str(crate::plan::DEFAULT_PLAN).unwrap();
        assert_valid("plan.schema.json", &plan);
        let typo = json!({"steps": [{"name": "x", "apt": {"name": "ntp", "sate": "latest"}}]});
        assert!(!schema_of("plan.schema.json").is_valid(&typo));
    }

    #[test]
    fn real_documents_are_valid_under_their_schemas() {
        use crate::fake::FakeNode;
        let node = FakeNode::bookworm();
        let plan = crate::plan::Plan::load(
            crate::plan::DEFAULT_PLAN.as_bytes(),
            crate::plan::Source::embedded(),
            &[],
        )
        .unwrap();
        let gathered = crate::facts::gather(&node, &crate::facts::Wants::from(&plan)).unwrap();
        let changeset = crate::diff::diff(&gathered.rendered, &gathered.facts).unwrap();
        let planned = crate::report::Report::plan(&changeset);
        assert_valid(
            "report.schema.json",
            &crate::report::json::to_value(&planned),
        );
        let applied = node.apply(&changeset, &mut |_| {}, &|| None, None);
        assert!(!applied.failed);
        assert_valid(
            "report.schema.json",
            &crate::report::json::to_value(&applied),
        );
        let refused =
            crate::report::Report::failed_before_start(crate::report::Mode::Apply, "x".into());
        assert_valid(
            "report.schema.json",
            &crate::report::json::to_value(&refused),
        );

        let status = crate::status::gather(&node, &plan).unwrap();
        let mut doc = crate::wire::versioned(serde_json::to_value(&status).unwrap());
        doc["compared_with"] = "the embedded plan".into();
        assert_valid("status.schema.json", &doc);

        let verify = crate::verify::report::VerifyReport::failed("no answer".into());
        assert_valid(
            "verify.schema.json",
            &serde_json::from_str(&verify.json()).unwrap(),
        );
    }
}
