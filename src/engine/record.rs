//! What a node remembers of its last `apply`: `last-run.json` (the plan
//! whole, its `-e` overrides, the resolved daemon, each step's result), so
//! that `status` compares the node with what was applied, and one line per
//! run in a bounded log for an operator's `tail`.

use crate::plan::{Plan, Source};
use crate::report::{Report, Status};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::SystemTime;

pub const LAST_RUN: &str = "/var/lib/ntp-provision/last-run.json";
pub const RUN_LOG: &str = "/var/log/ntp-provision.log";
/// The log is cut to its newer half beyond this size.
const RUN_LOG_MAX_BYTES: u64 = 256 * 1024;
/// Bumped when a field changes meaning; a record of another version is ignored.
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    pub format_version: u32,
    pub tool_version: String,
    pub started: String,
    pub finished: String,
    pub plan: PlanRecord,
    /// What `vars.daemon` resolved to (`flavor`, `package`, `unit`), if any.
    pub daemon: Option<serde_json::Value>,
    pub steps: Vec<StepRecord>,
    pub failed: bool,
    pub changed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// The plan's name for messages (a path, `<stdin>`, the embedded plan).
    pub source: String,
    pub dir: Option<std::path::PathBuf>,
    pub sha256: String,
    pub text: String,
    /// The `-e` overrides after parsing, in order.
    pub vars: Vec<(String, serde_yaml::Value)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    pub status: Status,
    pub error: Option<String>,
}

impl LastRun {
    pub fn of(plan: &Plan, report: &Report, started: SystemTime, finished: SystemTime) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(plan.origin.text.as_bytes());
        LastRun {
            format_version: FORMAT_VERSION,
            tool_version: crate::cli::VERSION.to_string(),
            started: rfc3339(started),
            finished: rfc3339(finished),
            plan: PlanRecord {
                source: plan.source.clone(),
                dir: plan.origin.dir.clone(),
                sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
                text: plan.origin.text.clone(),
                vars: plan.origin.overrides.clone(),
            },
            daemon: report
                .daemon
                .as_ref()
                .and_then(|d| serde_json::to_value(d).ok()),
            steps: report
                .steps
                .iter()
                .map(|s| StepRecord {
                    name: s.name.clone(),
                    status: s.status,
                    error: s.error.clone(),
                })
                .collect(),
            failed: report.failed,
            changed: report.changed,
        }
    }

    /// The plan this run applied, loaded again as it was given.
    pub fn plan(&self) -> Result<Plan, String> {
        let source = Source {
            name: format!("{} (last applied {})", self.plan.source, self.finished),
            dir: self.plan.dir.clone(),
        };
        Plan::load(self.plan.text.as_bytes(), source, &self.plan.vars)
            .map_err(|e| format!("the last applied plan no longer loads: {e}"))
    }

    /// The run in one line of the log.
    pub fn log_line(&self) -> String {
        let count = |status| self.steps.iter().filter(|s| s.status == status).count();
        format!(
            "{} apply plan={:?} sha256={} daemon={} ok={} changed={} failed={} skipped={}{}\n",
            self.finished,
            self.plan.source,
            &self.plan.sha256[..12],
            self.daemon
                .as_ref()
                .and_then(|d| d["package"].as_str())
                .unwrap_or("-"),
            count(Status::Ok),
            count(Status::Changed),
            count(Status::Failed),
            count(Status::Skipped),
            if self.failed { " FAILED" } else { "" },
        )
    }
}

/// The plan of the node's last `apply`, loaded again; `None` before any.
/// What `status` compares with when it is given no plan.
pub fn last_applied_plan() -> Option<Result<Plan, String>> {
    load(Path::new(LAST_RUN)).map(|run| run.plan())
}

/// Writes `record` to `path` atomically (a temp file renamed over it).
pub fn save(path: &Path, record: &LastRun) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let dir = path
        .parent()
        .context("the record's path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut tmp, record)?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// The record at `path`, if there is one of this format.
pub fn load(path: &Path) -> Option<LastRun> {
    let bytes = std::fs::read(path).ok()?;
    let record: LastRun = serde_json::from_slice(&bytes)
        .map_err(|e| log::warn!("ignoring {}: {e}", path.display()))
        .ok()?;
    (record.format_version == FORMAT_VERSION).then_some(record)
}

/// Appends `line` to the log at `path`; a log grown past its bound keeps
/// its newer half, cut at a line.
pub fn append_log(path: &Path, line: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if std::fs::metadata(path).is_ok_and(|m| m.len() + line.len() as u64 > RUN_LOG_MAX_BYTES) {
        let text = std::fs::read(path)?;
        let half = text.len() / 2;
        let cut = text[half..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(text.len(), |i| half + i + 1);
        let mut tmp = tempfile::NamedTempFile::new_in(path.parent().unwrap_or(Path::new("/")))?;
        tmp.write_all(&text[cut..])?;
        tmp.persist(path)?;
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    log.write_all(line.as_bytes())?;
    Ok(())
}

/// `2026-12-03T14:10:00.123456Z`.
fn rfc3339(t: SystemTime) -> String {
    let s = crate::facts::utc_stamp(t);
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{DEFAULT_PLAN, DEFAULT_PLAN_NAME};

    fn applied() -> (Plan, LastRun) {
        let overrides = vec![crate::plan::parse_override("daemon=chrony").unwrap()];
        let plan = Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &overrides).unwrap();
        let report = Report::failed_before_start(crate::report::Mode::Apply, "x".into());
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_796_306_400_000_042);
        let record = LastRun::of(&plan, &report, t, t);
        (plan, record)
    }

    #[test]
    fn the_record_loads_the_plan_again_with_its_overrides() {
        let (_, record) = applied();
        assert_eq!(record.finished, "2026-12-03T14:00:00.000042Z");
        let again = record.plan().unwrap();
        assert_eq!(again.vars.daemon, Some(crate::daemons::DaemonName::CHRONY));
        assert!(
            again.source.starts_with(DEFAULT_PLAN_NAME),
            "{}",
            again.source
        );
        assert!(again
            .source
            .ends_with("(last applied 2026-12-03T14:00:00.000042Z)"));
        assert_eq!(record.plan.sha256.len(), 64);
    }

    #[test]
    fn save_and_load_round_trip_and_another_format_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/last-run.json");
        let (_, record) = applied();
        save(&path, &record).unwrap();
        assert_eq!(load(&path), Some(record.clone()));
        let other = LastRun {
            format_version: 99,
            ..record
        };
        save(&path, &other).unwrap();
        assert_eq!(load(&path), None);
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(load(&path), None);
    }

    #[test]
    fn the_log_stays_bounded_and_keeps_whole_newer_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ntp-provision.log");
        let line = |i: usize| format!("{i:06} {}\n", "x".repeat(1000));
        for i in 0..600 {
            append_log(&path, &line(i)).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() as u64 <= RUN_LOG_MAX_BYTES, "{}", text.len());
        assert!(text.ends_with(&line(599)));
        assert!(text.lines().all(|l| l.len() == 1007), "only whole lines");
        let first: usize = text[..6].parse().unwrap();
        assert!(first > 300, "the older lines went: {first}");
    }
}
