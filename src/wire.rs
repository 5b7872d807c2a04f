//! What every JSON document ntp-provision prints carries, whichever
//! module prints it.

/// Bumped when a field changes meaning or goes away, not when one is added.
pub const FORMAT_VERSION: u32 = 1;

/// Adds `format_version` to a document.
pub fn versioned(mut doc: serde_json::Value) -> serde_json::Value {
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("format_version".into(), FORMAT_VERSION.into());
    }
    doc
}
