//! What `apply` shows while a step runs, before its result line: on a
//! terminal one live line (spinner, step, what runs, elapsed seconds) that
//! the result replaces; elsewhere a plain `running: ...` line for an action
//! that takes a while, so a log shows what a slow run was doing.

use crate::diff::{Change, PlannedStep, ServiceAction};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::Write;
use std::time::Duration;

pub struct Live {
    /// The live line, on a terminal while a step runs.
    bar: Option<ProgressBar>,
    terminal: bool,
    step: String,
}

impl Live {
    pub fn new(terminal: bool) -> Self {
        Live {
            bar: None,
            terminal,
            step: String::new(),
        }
    }

    pub fn step_started(&mut self, step: &PlannedStep) {
        self.step = step.name.clone();
        if self.terminal {
            let live = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            live.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .expect("a fixed template"),
            );
            live.set_message(step.name.clone());
            live.enable_steady_tick(Duration::from_millis(120));
            self.bar = Some(live);
        }
    }

    pub fn change_started(&mut self, change: &Change) {
        if !takes_a_while(change) {
            return;
        }
        let line = format!("{}: {}", self.step, first_line(&change.to_string()));
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None if self.terminal => {}
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "running: {line}");
                let _ = out.flush();
            }
        }
    }

    /// The step is done: the live line goes, for its result line.
    pub fn finished(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// apt and dpkg commands, and a start or restart (it waits for the daemon
/// to answer): what can keep an operator waiting.
fn takes_a_while(change: &Change) -> bool {
    match change {
        Change::File { .. } | Change::Timezone { .. } => false,
        Change::Service { action, .. } => {
            matches!(action, ServiceAction::Start | ServiceAction::Restart)
        }
        _ => true,
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_commands_and_starts_take_a_while_file_writes_and_enables_do_not() {
        let update = Change::UpdateLists {
            age_seconds: None,
            max_age_seconds: Some(3600),
        };
        assert!(takes_a_while(&update));
        let unit = crate::names::UnitName::parse("ntpsec.service").unwrap();
        let service = |action| Change::Service {
            unit: unit.clone(),
            action,
            reason: "r".into(),
            health: crate::diff::Health::Active,
            rollback: Vec::new(),
        };
        assert!(takes_a_while(&service(ServiceAction::Restart)));
        assert!(!takes_a_while(&service(ServiceAction::Enable)));
    }
}
