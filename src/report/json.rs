//! The JSON rendering: exactly one document on stdout. Each change keeps its
//! typed fields (`kind`, `before`, `after`, ...) and gains `description`, the
//! line the human output prints for it.

use super::Report;
use serde_json::Value;

pub fn to_value(report: &Report) -> Value {
    let mut value = serde_json::to_value(report).expect("a report is always serialisable");
    if let Some(steps) = value.get_mut("steps").and_then(Value::as_array_mut) {
        for (step, original) in steps.iter_mut().zip(&report.steps) {
            if let Some(changes) = step.get_mut("changes").and_then(Value::as_array_mut) {
                for (change, typed) in changes.iter_mut().zip(&original.changes) {
                    if let Some(obj) = change.as_object_mut() {
                        obj.insert("description".into(), Value::String(typed.to_string()));
                    }
                }
            }
        }
    }
    crate::wire::versioned(value)
}

pub fn render(report: &Report) -> String {
    let mut text =
        serde_json::to_string_pretty(&to_value(report)).expect("a JSON value always renders");
    text.push('\n');
    text
}
