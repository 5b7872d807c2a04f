//! The human rendering: one line per step, as Ansible prints its tasks, the
//! changes indented under it, file diffs in full, and a closing recap.
//! Colour as `--color` says (`app::use_color`).

use super::{Mode, Report, Status, StepReport};
use crate::daemons::Daemon;
use std::io::Write;

pub struct Human<W: Write> {
    out: W,
    color: bool,
}

impl Human<std::io::Stdout> {
    pub fn stdout(color: bool) -> Self {
        Human {
            out: std::io::stdout(),
            color,
        }
    }
}

impl<W: Write> Human<W> {
    pub fn new(out: W, color: bool) -> Self {
        Human { out, color }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    // A closed stdout (e.g. `| head`) must not abort a run halfway: output
    // errors are ignored here, the exit code still tells the outcome.
    pub fn header(
        &mut self,
        mode: Mode,
        plan_name: &str,
        daemon: Option<&Daemon>,
        notes: &[String],
    ) {
        let title = match mode {
            Mode::Plan => format!("PLAN [{plan_name}] (dry run: nothing on this node is changed)"),
            Mode::Apply => format!("APPLY [{plan_name}]"),
        };
        let _ = writeln!(self.out, "{}", self.paint("1", &title));
        if let Some(d) = daemon {
            let _ = writeln!(self.out, "{d}");
        }
        for n in notes {
            let _ = writeln!(self.out, "{}", self.paint("35", &format!("note: {n}")));
        }
        let _ = writeln!(self.out);
    }

    pub fn step(&mut self, step: &StepReport) {
        let (label, color) = match step.status {
            Status::Ok => ("ok", "32"),
            Status::Changed => ("changed", "33"),
            Status::Failed => ("failed", "31"),
            Status::Skipped => ("skipping", "36"),
        };
        let handler = if step.handler { " (handler)" } else { "" };
        let _ = writeln!(
            self.out,
            "{}: {}{handler}",
            self.paint(color, label),
            step.name
        );
        for c in &step.changes {
            let _ = writeln!(self.out, "    {c}");
        }
        for s in &step.settled {
            let _ = writeln!(self.out, "    already so: {s}");
        }
        if let Some(diff) = &step.diff {
            for line in diff.lines() {
                let color = match line.as_bytes().first() {
                    Some(b'+') if !line.starts_with("+++") => "32",
                    Some(b'-') if !line.starts_with("---") => "31",
                    Some(b'@') => "36",
                    _ => "0",
                };
                let _ = writeln!(self.out, "    {}", self.paint(color, line));
            }
        }
        if let Some(a) = &step.amplification {
            for line in a.lines() {
                let _ = writeln!(self.out, "    {line}");
            }
        }
        if let Some(e) = &step.error {
            let _ = writeln!(
                self.out,
                "    {}",
                self.paint("31", &e.replace('\n', "\n    "))
            );
        }
    }

    pub fn recap(&mut self, report: &Report) {
        if let Some(e) = &report.error {
            let _ = writeln!(self.out, "{}", self.paint("31", &format!("error: {e}")));
        }
        let s = report.summary;
        let _ = writeln!(self.out);
        let _ = writeln!(
            self.out,
            "RECAP ok={} changed={} failed={} skipped={}",
            s.ok, s.changed, s.failed, s.skipped
        );
        let _ = self.out.flush();
    }

    /// A whole report at once (the dry run, or a run that failed early).
    pub fn report(&mut self, plan_name: &str, report: &Report) {
        self.header(
            report.mode,
            plan_name,
            report.daemon.as_ref(),
            &report.notes,
        );
        for step in &report.steps {
            self.step(step);
        }
        self.recap(report);
    }
}
