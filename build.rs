//! Stamps `--version` with the commit and the build date. Outside a git
//! checkout (a source tarball) the commit is "unknown"; SOURCE_DATE_EPOCH,
//! where set, fixes the date for reproducible builds.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some();
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    let date_args: Vec<String> = match &epoch {
        Some(secs) => vec![
            "-u".into(),
            "-d".into(),
            format!("@{secs}"),
            "+%Y-%m-%d".into(),
        ],
        None => vec!["-u".into(), "+%Y-%m-%d".into()],
    };
    let date = Command::new("date")
        .args(&date_args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let suffix = if dirty { "-modified" } else { "" };
    println!("cargo:rustc-env=NTPP_BUILD_INFO={commit}{suffix} {date}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit or checkout changes HEAD or the ref it names.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/index");
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
            println!("cargo:rerun-if-changed={common}/{reference}");
        }
    }
}
