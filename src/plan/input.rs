//! Where a plan's bytes come from: the embedded default, a file, standard
//! input, or text handed over by the Ansible module. Both adapters read
//! their plan here, so the size cap and the file checks are the same.

use super::{Source, DEFAULT_PLAN, MAX_PLAN_BYTES};
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub enum PlanInput {
    Embedded,
    /// A plan file on the node; `-` on the command line is standard input.
    File(PathBuf),
    Stdin,
    /// The plan's YAML text, e.g. a module argument; `name` is for messages.
    Text {
        text: String,
        name: String,
    },
}

/// The plan's bytes and where they came from, or an error that names the
/// input. `label` is how messages name a file (the module adds "on the
/// target", where a path could be mistaken for one on the controller).
pub fn read(
    input: &PlanInput,
    label: &dyn Fn(&Path) -> String,
) -> Result<(Vec<u8>, Source), String> {
    match input {
        PlanInput::Embedded => Ok((DEFAULT_PLAN.as_bytes().to_vec(), Source::embedded())),
        PlanInput::Text { text, name } => Ok((
            text.clone().into_bytes(),
            Source {
                name: name.clone(),
                dir: None,
            },
        )),
        PlanInput::Stdin => {
            let mut bytes = Vec::new();
            // One byte more than allowed is enough to refuse a huge plan without reading it all.
            std::io::stdin()
                .take(MAX_PLAN_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("reading the plan from standard input: {e}"))?;
            // Only the limit is known, not the real size: the rest is unread.
            if bytes.len() > MAX_PLAN_BYTES {
                return Err(format!(
                    "the plan on standard input is more than {MAX_PLAN_BYTES} bytes; plans are limited to {MAX_PLAN_BYTES} bytes"
                ));
            }
            Ok((bytes, Source::stdin()))
        }
        PlanInput::File(path) => {
            read_capped(path, &label(path), ("plan", "plans")).map(|b| (b, Source::file(path)))
        }
    }
}

/// A file of at most [`MAX_PLAN_BYTES`]; `noun` names such files in
/// messages, singular and plural (`("plan", "plans")`).
pub fn read_capped(path: &Path, label: &str, noun: (&str, &str)) -> Result<Vec<u8>, String> {
    let (one, many) = noun;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {one} {label}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{one} {label} is not a regular file"));
    }
    // Refused by its size on disk, so a huge file is never read.
    if meta.len() > MAX_PLAN_BYTES as u64 {
        return Err(format!(
            "{one} {label} is {} bytes; {many} are limited to {MAX_PLAN_BYTES} bytes",
            meta.len()
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read {one} {label}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(p: &Path) -> String {
        p.display().to_string()
    }

    #[test]
    fn a_file_too_big_is_refused_by_its_real_size_without_being_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(64 << 20).unwrap();
        let err = read(&PlanInput::File(path.clone()), &plain).unwrap_err();
        assert_eq!(
            err,
            format!(
                "plan {} is 67108864 bytes; plans are limited to 1048576 bytes",
                path.display()
            )
        );
    }

    #[test]
    fn a_missing_file_or_a_directory_is_named_with_the_callers_label() {
        let dir = tempfile::tempdir().unwrap();
        let on_target = |p: &Path| format!("{} on the target", p.display());
        let missing = dir.path().join("none.yaml");
        let err = read(&PlanInput::File(missing.clone()), &on_target).unwrap_err();
        assert!(
            err.starts_with(&format!(
                "cannot read plan {} on the target: ",
                missing.display()
            )),
            "{err}"
        );
        let err = read(&PlanInput::File(dir.path().to_path_buf()), &plain).unwrap_err();
        assert_eq!(
            err,
            format!("plan {} is not a regular file", dir.path().display())
        );
    }

    #[test]
    fn text_and_the_embedded_plan_come_back_with_their_names() {
        let (bytes, source) = read(&PlanInput::Embedded, &plain).unwrap();
        assert_eq!(
            (bytes.as_slice(), source.name.as_str()),
            (DEFAULT_PLAN.as_bytes(), super::super::DEFAULT_PLAN_NAME)
        );
        let text = PlanInput::Text {
            text: "steps: []\n".into(),
            name: "<module argument plan>".into(),
        };
        let (bytes, source) = read(&text, &plain).unwrap();
        assert_eq!(
            (bytes.as_slice(), source.name.as_str(), source.dir),
            (&b"steps: []\n"[..], "<module argument plan>", None)
        );
    }
}
