//! The JSON Schemas of the documents ntp-provision prints, generated from
//! the types that print them. docs/schema/ holds them; a test fails when
//! they are stale (`NTPP_BLESS=1 cargo test --lib schema` rewrites them).

use schemars::JsonSchema;
use serde_json::{json, Value};

use crate::wire::FORMAT_VERSION;

/// Each document's file name under docs/schema/ and its schema.
pub fn documents() -> Vec<(&'static str, Value)> {
    vec![
        ("report.schema.json", report()),
        ("status.schema.json", status()),
        (
            "verify.schema.json",
            document::<crate::verify::report::VerifyReport>("ntp-provision verify --format json"),
        ),
    ]
}

/// `T`'s schema with a title and `format_version`.
fn document<T: JsonSchema>(title: &str) -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(T)).expect("a schema is JSON");
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
    let mut schema = document::<super::Report>("ntp-provision plan|apply --format json");
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
            super::super::Report::failed_before_start(super::super::Mode::Apply, "x".into());
        keys_match(&report(), &super::super::json::to_value(&refused));
    }
}
