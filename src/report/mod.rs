//! Stage 5: the report. What `plan` would do or `apply` did, step by step,
//! plus the exit code it maps to. Rendering lives in `human` and `json`; the
//! same `Report` value feeds both.

pub mod human;
pub mod json;
pub mod live;

use crate::daemons::Daemon;
use crate::diff::{Change, Changeset, PlannedStep};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Plan,
    Apply,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Skipped,
}

/// How the diff stage ends a file diff's `+++` line.
const PLANNED_HEADER_END: &str = " (planned)\n";

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct StepReport {
    pub name: String,
    pub handler: bool,
    pub status: Status,
    pub changes: Vec<Change>,
    /// The unified diffs of the files this step writes, if any.
    pub diff: Option<String>,
    pub error: Option<String>,
    pub seconds: f64,
    /// Planned service changes that were already so when the step ran: the
    /// package changes of this run had enabled or started the unit (Debian's
    /// maintainer scripts do). Not run, and not counted as changes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settled: Vec<String>,
    /// The amplification check's figures, on the step that ran it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amplification: Option<crate::verify::Amplification>,
}

impl StepReport {
    /// A step as planned: `changed` when it has changes, else `ok`.
    pub fn planned(step: &PlannedStep) -> Self {
        let diffs: Vec<&str> = step
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::File { diff, .. } if !diff.is_empty() => Some(diff.as_str()),
                _ => None,
            })
            .collect();
        StepReport {
            name: step.name.clone(),
            handler: step.handler,
            status: if step.changes.is_empty() {
                Status::Ok
            } else {
                Status::Changed
            },
            changes: step.changes.clone(),
            diff: (!diffs.is_empty()).then(|| diffs.concat()),
            error: None,
            seconds: 0.0,
            settled: Vec::new(),
            amplification: None,
        }
    }

    /// Run, not planned: the diffs' new side is the file as written, no
    /// longer `(planned)`.
    pub fn mark_done(&mut self) {
        let done = |diff: &str| -> String {
            diff.split_inclusive('\n')
                .map(|line| match line.strip_suffix(PLANNED_HEADER_END) {
                    Some(header) if header.starts_with("+++ ") => format!("{header}\n"),
                    _ => line.to_string(),
                })
                .collect()
        };
        if let Some(diff) = &mut self.diff {
            *diff = done(diff);
        }
        for change in &mut self.changes {
            if let Change::File { diff, .. } = change {
                *diff = done(diff);
            }
        }
    }

    /// A read-only check run after the changes (no changes of its own).
    pub fn check(
        name: &str,
        status: Status,
        error: Option<String>,
        seconds: f64,
        amplification: Option<crate::verify::Amplification>,
    ) -> Self {
        StepReport {
            name: name.to_string(),
            handler: false,
            status,
            changes: Vec::new(),
            diff: None,
            error,
            seconds,
            settled: Vec::new(),
            amplification,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub ok: usize,
    pub changed: usize,
    pub failed: usize,
    pub skipped: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub mode: Mode,
    pub changed: bool,
    pub failed: bool,
    pub daemon: Option<Daemon>,
    pub notes: Vec<String>,
    pub steps: Vec<StepReport>,
    pub summary: Summary,
    /// A failure before any step ran (facts could not be gathered, a step
    /// cannot be satisfied on this node).
    pub error: Option<String>,
}

impl Report {
    pub fn new(mode: Mode, changeset: &Changeset, steps: Vec<StepReport>) -> Self {
        let mut summary = Summary::default();
        // A failed step lists the changes it ran, the failed one last: any
        // before it were made.
        let mut partly_changed = false;
        for s in &steps {
            match s.status {
                Status::Ok => summary.ok += 1,
                Status::Changed => summary.changed += 1,
                Status::Failed => {
                    summary.failed += 1;
                    partly_changed |= s.changes.len() > 1;
                }
                Status::Skipped => summary.skipped += 1,
            }
        }
        Report {
            mode,
            changed: summary.changed > 0 || partly_changed,
            failed: summary.failed > 0,
            daemon: changeset.daemon.clone(),
            notes: changeset.notes.clone(),
            steps,
            summary,
            error: None,
        }
    }

    /// This report with a check after the changes appended as its last
    /// step, the summary counted again. A run stopped by an error (a
    /// signal) stays failed whatever the check finds.
    pub fn with_check(self, step: StepReport, changeset: &Changeset) -> Self {
        let error = self.error;
        let mut steps = self.steps;
        steps.push(step);
        let mut report = Report::new(self.mode, changeset, steps);
        report.failed |= error.is_some();
        report.error = error;
        report
    }

    /// The dry run's report: every planned step, nothing executed.
    pub fn plan(changeset: &Changeset) -> Self {
        Report::new(
            Mode::Plan,
            changeset,
            changeset.steps.iter().map(StepReport::planned).collect(),
        )
    }

    /// Nothing could be planned: the node was not touched. The refusal
    /// counts as the one failure of the recap.
    pub fn failed_before_start(mode: Mode, error: String) -> Self {
        Report {
            mode,
            changed: false,
            failed: true,
            daemon: None,
            notes: Vec::new(),
            steps: Vec::new(),
            summary: Summary {
                failed: 1,
                ..Summary::default()
            },
            error: Some(error),
        }
    }

    /// 0 success, 1 a step failed; with `detailed` (Puppet's convention)
    /// 0 nothing to change, 2 changes, 4 failures, 6 both.
    pub fn exit_code(&self, detailed: bool) -> i32 {
        match (detailed, self.changed, self.failed) {
            (false, _, false) => 0,
            (false, _, true) => 1,
            (true, changed, failed) => (if changed { 2 } else { 0 }) | (if failed { 4 } else { 0 }),
        }
    }
}
