//! The service executors, systemctl or SysV `service`, and the health check
//! after a start: the unit settled and the daemon answering as its registry
//! entry says.

use super::ServiceExec;
use crate::daemons::{AnswerProbe, Flavor};
use crate::diff::{Health, ServiceAction};
use crate::names::UnitName;
use crate::process::Cmd;
use anyhow::{anyhow, bail, Context, Result};
use std::time::Duration;

/// How long a restarted unit gets to report itself active.
const SETTLE: Duration = Duration::from_secs(10);

pub struct Systemctl;

impl ServiceExec for Systemctl {
    /// A start or restart returns once systemd's job is done; whether the
    /// unit came up is `check_health`'s question (always asked next).
    fn service(&mut self, unit: &UnitName, action: ServiceAction) -> Result<()> {
        if matches!(action, ServiceAction::Restart | ServiceAction::Start) {
            settle(unit)?;
        }
        let verb = action.verb();
        let result = Cmd::new("systemctl")
            .env("LC_ALL", "C")
            .arg(verb)
            .arg("--")
            .arg(unit)
            .run();
        if let Err(e) = result {
            return Err(anyhow!(e).context(journal_tail(unit)));
        }
        Ok(())
    }

    /// `Active`: the unit becomes active. `Answering`: the daemon is asked
    /// first, and the unit looked at after each attempt: an answer and an
    /// active unit (it did not answer once and exit: NTPsec has
    /// Restart=no) is healthy with one `systemctl is-active`; a unit that
    /// failed or stopped is reported at once, not after the bound.
    fn check_health(&mut self, unit: &UnitName, health: &Health) -> Result<()> {
        let Health::Answering { flavor } = health else {
            return wait_active(unit);
        };
        let started = std::time::Instant::now();
        let mut active_since: Option<std::time::Instant> = None;
        loop {
            let answered = daemon_answers(*flavor, ATTEMPT)?;
            let (active, state) = active_state(unit)?;
            let now = std::time::Instant::now();
            if active {
                active_since.get_or_insert(now);
            }
            let answering_over =
                active_since.is_some_and(|since| now.duration_since(since) >= HEALTH_BOUND);
            let settling_over = now.duration_since(started) >= SETTLE;
            match (answered, state.as_str()) {
                (Answer::Yes, _) if active => return Ok(()),
                // Answered before systemd counts it as started: wait for that.
                (Answer::Yes, "activating") if !settling_over => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                (Answer::Yes, other) => bail!(
                    "{unit} answered, then became {other}\n{}",
                    journal_tail(unit)
                ),
                (Answer::No(_), _) if active && !answering_over => {}
                (Answer::No(_), "activating") if !settling_over => {}
                (Answer::No(probe), _) if active => bail!(
                    "{} did not answer on localhost within {} s ({probe}; the unit is {state}){}\n{}",
                    flavor.as_str(),
                    HEALTH_BOUND.as_secs(),
                    port_held_elsewhere(unit),
                    journal_tail(unit)
                ),
                (Answer::No(_), other) => {
                    return Err(anyhow!(
                        "{unit} is {other} after being started{}",
                        port_held_elsewhere(unit)
                    ))
                    .context(journal_tail(unit))
                }
            }
        }
    }
}

/// One attempt to get an answer from the daemon, between two looks at its unit.
const ATTEMPT: Duration = Duration::from_millis(200);

/// How long a (re)started daemon gets to answer on localhost.
const HEALTH_BOUND: Duration = Duration::from_secs(10);

enum Answer {
    Yes,
    /// What was asked, for the message.
    No(String),
}

/// Asks the daemon on localhost, as its own tools would, until it answers
/// or `bound` passes, the way its registry entry says (`AnswerProbe`).
fn daemon_answers(flavor: Flavor, bound: Duration) -> Result<Answer> {
    let cmd = match flavor.answer_probe() {
        AnswerProbe::TimeQuery => {
            return Ok(
                if crate::verify::wait_until_answering(crate::verify::target::NTP_PORT, bound) {
                    Answer::Yes
                } else {
                    Answer::No("no answer to a time query to 127.0.0.1:123".into())
                },
            );
        }
        AnswerProbe::Tool([program, args @ ..]) => Cmd::new(program).env("LC_ALL", "C").args(args),
        AnswerProbe::Tool([]) => bail!("{} has an empty answer probe", flavor.as_str()),
    };
    let deadline = std::time::Instant::now() + bound;
    loop {
        let out = cmd.output()?;
        if out.code == 0 {
            return Ok(Answer::Yes);
        }
        if std::time::Instant::now() >= deadline {
            let said = format!("{}{}", out.stdout, out.stderr);
            return Ok(Answer::No(format!(
                "`{cmd}` exited {}: {}",
                out.code,
                said.trim().replace('\n', " ")
            )));
        }
        // A daemon answers its own tool within milliseconds of starting.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `systemctl is-active` answers with its exit status; a unit may still be
/// activating right after the start job returns.
fn wait_active(unit: &UnitName) -> Result<()> {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let (active, state) = active_state(unit)?;
        if active {
            return Ok(());
        }
        if state != "activating" || std::time::Instant::now() >= deadline {
            return Err(anyhow!(
                "{unit} is {state} after being started{}",
                port_held_elsewhere(unit)
            ))
            .context(journal_tail(unit));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits (at most `SETTLE`) until `unit` is in no transition: not
/// activating, deactivating or reloading, and if active its main process
/// known. Right after apt-get returns, the daemon the package's postinst
/// started may still be daemonizing; a restart then could not stop it, and
/// the new daemon would find UDP 123 taken.
fn settle(unit: &UnitName) -> Result<()> {
    let deadline = std::time::Instant::now() + SETTLE;
    let started = std::time::Instant::now();
    loop {
        let (state, main_pid) = transition_state(unit)?;
        let settled = match state.as_str() {
            "activating" | "deactivating" | "reloading" | "refreshing" => false,
            "active" => main_pid != Some(0),
            _ => true,
        };
        if settled || std::time::Instant::now() >= deadline {
            if !settled {
                log::warn!(
                    "{unit} is still {state} after {} s; going on",
                    SETTLE.as_secs()
                );
            } else if started.elapsed() > Duration::from_millis(1) {
                log::info!(
                    "{unit} settled ({state}) after {} ms",
                    started.elapsed().as_millis()
                );
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The unit's ActiveState and MainPID (`None` when systemd gives none).
fn transition_state(unit: &UnitName) -> Result<(String, Option<u32>)> {
    let out = Cmd::new("systemctl")
        .env("LC_ALL", "C")
        .args(["show", "-p", "ActiveState,MainPID", "--"])
        .arg(unit)
        .run()?;
    Ok(parse_transition(&out.stdout))
}

fn parse_transition(show: &str) -> (String, Option<u32>) {
    let value = |key: &str| {
        show.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
    };
    (
        value("ActiveState").unwrap_or_default().to_string(),
        value("MainPID").and_then(|p| p.parse().ok()),
    )
}

/// For a failure message: who else holds UDP 123, if anyone does.
fn port_held_elsewhere(unit: &UnitName) -> String {
    let others: Vec<String> = super::holders::udp_port_holders(
        std::path::Path::new("/proc"),
        crate::verify::target::NTP_PORT,
    )
    .into_iter()
    .filter(|h| h.unit.as_deref() != Some(unit.as_str()))
    .map(|h| h.to_string())
    .collect();
    if others.is_empty() {
        String::new()
    } else {
        format!("; UDP 123 is held by {}", others.join(", "))
    }
}

/// `systemctl is-active`: whether the unit is active (its exit status and
/// its word agree), and the word (`active`, `activating`, `failed`, ...).
fn active_state(unit: &UnitName) -> Result<(bool, String)> {
    let out = Cmd::new("systemctl")
        .env("LC_ALL", "C")
        .args(["is-active", "--"])
        .arg(unit)
        .output()?;
    let state = out.stdout.trim().to_string();
    Ok((out.code == 0 && state == "active", state))
}

/// The unit's last log lines, for a failure message; best effort.
fn journal_tail(unit: &UnitName) -> String {
    let out = Cmd::new("journalctl")
        .env("LC_ALL", "C")
        .args(["--no-pager", "-n", "15", "-o", "cat", "-u"])
        .arg(unit)
        .output();
    match out {
        Ok(o) if !o.stdout.trim().is_empty() => format!(
            "last log lines of {unit}:\n    {}",
            o.stdout.trim_end().replace('\n', "\n    ")
        ),
        _ => format!("see `journalctl -u {unit}`"),
    }
}

/// No systemd: init.d scripts through `service`, boot links through update-rc.d.
pub struct Sysv;

impl ServiceExec for Sysv {
    fn service(&mut self, unit: &UnitName, action: ServiceAction) -> Result<()> {
        let name = unit.stem();
        let cmd = match action {
            ServiceAction::Start | ServiceAction::Stop | ServiceAction::Restart => {
                Cmd::new("service")
                    .env("LC_ALL", "C")
                    .arg(name)
                    .arg(action.verb())
            }
            // `defaults` creates links where none exist; `enable` turns existing K links into S links.
            ServiceAction::Enable => {
                Cmd::new("update-rc.d")
                    .env("LC_ALL", "C")
                    .arg(name)
                    .arg("defaults")
                    .run()?;
                Cmd::new("update-rc.d")
                    .env("LC_ALL", "C")
                    .arg(name)
                    .arg("enable")
            }
            ServiceAction::Disable => Cmd::new("update-rc.d")
                .env("LC_ALL", "C")
                .arg(name)
                .arg("disable"),
        };
        cmd.run()?;
        Ok(())
    }

    /// No health probe without systemd: a chroot shares the host's network,
    /// so whatever answers on localhost may be the host's daemon, not ours.
    fn check_health(&mut self, unit: &UnitName, _health: &Health) -> Result<()> {
        log::info!("{unit}: no health check without systemd");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemctl_show_gives_the_state_and_the_main_pid() {
        assert_eq!(
            parse_transition("ActiveState=activating\nMainPID=0\n"),
            ("activating".to_string(), Some(0))
        );
        assert_eq!(
            parse_transition("MainPID=812\nActiveState=active\n"),
            ("active".to_string(), Some(812))
        );
        assert_eq!(parse_transition(""), (String::new(), None));
    }
}
