//! The apt and dpkg executor. Every call is unattended (no debconf, no
//! conffile prompt, no needrestart prompt) and waits a bounded time for a
//! dpkg or apt lock held by another process, saying who holds it.

use super::{AptExec, Purge};
use crate::facts::{apt, UPDATE_STAMP};
use crate::names::PackageName;
use crate::process::{Cmd, CmdError};
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use std::time::Duration;
pub struct RealApt {
    pub lock_timeout: Duration,
    /// Names the signal once SIGINT or SIGTERM arrived: a wait for a lock
    /// held by another process ends then (nothing was changed yet).
    pub stop: Box<dyn Fn() -> Option<&'static str>>,
}

/// `program` with the environment of an unattended package run: no
/// debconf question, no needrestart prompt, no ucf prompt for a changed
/// ucf-managed config (ours is kept), no changelog pager, apt's and dpkg's
/// messages in English. Every apt-get and dpkg call that changes packages
/// starts here (maintainer scripts inherit it).
fn unattended(program: &str) -> Cmd {
    Cmd::new(program)
        .streamed()
        .env("DEBIAN_FRONTEND", "noninteractive")
        // Ubuntu 22.04+: needrestart would prompt or restart services itself.
        .env("NEEDRESTART_MODE", "l")
        // chrony.conf is ucf-managed: keep ours without asking.
        .env("UCF_FORCE_CONFFOLD", "1")
        .env("APT_LISTCHANGES_FRONTEND", "none")
        .env("LC_ALL", "C")
}

/// Finishes an interrupted dpkg run, keeping our configs.
fn dpkg_configure_pending() -> Cmd {
    unattended("dpkg").args(["--force-confdef", "--force-confold", "--configure", "-a"])
}

impl RealApt {
    fn apt_get(&self) -> Cmd {
        unattended("apt-get")
            .args(["-q", "-y"])
            .args([
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
            ])
            // Fail at once on a held lock: `run_waiting_for_locks` waits, showing who holds it.
            .args(["-o", "DPkg::Lock::Timeout=0"])
    }
}

/// apt's own `E:` lines make a better message than the whole output, and
/// where they say what went wrong, the operator hears what to do about it.
fn apt_failure(e: CmdError) -> anyhow::Error {
    let lines = apt::error_lines(e.stderr());
    let hint = if lines.iter().any(|l| {
        l.contains("Failed to fetch")
            || l.contains("Unable to fetch")
            || l.contains("Some index files failed")
    }) {
        "\nA mirror did not answer: check /etc/apt/sources.list and /etc/apt/sources.list.d and the network, then run again"
    } else if matches!(
        apt::classify_failure(e.stderr()),
        apt::AptFailure::DpkgInterrupted
    ) {
        "\nRun `dpkg --configure -a`, or run again: the next plan finishes the interrupted dpkg run first"
    } else {
        ""
    };
    match (&e, lines.is_empty()) {
        (CmdError::Failed { cmd, code, .. }, false) => {
            anyhow!(
                "`{cmd}` failed with exit status {code}:\n    {}{hint}",
                lines.join("\n    ")
            )
        }
        _ => anyhow!(e),
    }
}

/// Between two attempts while another process holds a dpkg or apt lock.
const LOCK_RETRY: Duration = Duration::from_secs(1);
/// How often the wait is announced.
const LOCK_NOTE_EVERY: Duration = Duration::from_secs(10);

/// Runs an apt or dpkg command; while it fails because another process
/// holds a dpkg or apt lock (apt fails at once then, having changed
/// nothing), says who holds it and tries again, up to `timeout`. Waiting
/// here rather than in apt (`DPkg::Lock::Timeout`) is what lets the wait be
/// shown as it happens, and covers the apt lists lock and dpkg's own lock.
/// `stop` ends the wait (a signal arrived): the command never ran past the
/// lock, so nothing was changed.
fn run_waiting_for_locks(
    timeout: Duration,
    retry: Duration,
    attempt: &mut dyn FnMut() -> Result<crate::process::Output, CmdError>,
    stop: &dyn Fn() -> Option<&'static str>,
) -> Result<crate::process::Output> {
    let started = std::time::Instant::now();
    let mut next_note = Duration::ZERO;
    loop {
        let err = match attempt() {
            Ok(out) => return Ok(out),
            Err(e) => e,
        };
        let apt::AptFailure::Locked {
            path,
            holder_pid,
            holder_name,
        } = apt::classify_failure(err.stderr())
        else {
            return Err(apt_failure(err));
        };
        let holder_name = holder_name.or_else(|| holder_pid.and_then(process_name));
        let holder = match (holder_pid, &holder_name) {
            (Some(pid), Some(name)) => format!("process {pid} ({name})"),
            (Some(pid), None) => format!("process {pid}"),
            _ => "another process".to_string(),
        };
        if let Some(signal) = stop() {
            // A step may run several commands: only this one is known to have changed nothing.
            let cmd = match &err {
                CmdError::Failed { cmd, .. } | CmdError::NotStarted { cmd, .. } => cmd,
            };
            bail!("{signal} received: interrupted while waiting for {path}, held by {holder}; `{cmd}` never got the lock, so it changed nothing");
        }
        let waited = started.elapsed();
        if waited >= timeout {
            let next = holder_pid.map_or(String::new(), |pid| format!(" (`ps -p {pid} -o args`)"));
            return Err(apt_failure(err).context(format!(
                "{path} is held by {holder}; gave up after {} s (--lock-timeout). Let it finish{next} and run again, or give a longer --lock-timeout; never delete the lock file",
                timeout.as_secs()
            )));
        }
        if waited >= next_note {
            log::warn!(
                "waiting for {path}, held by {holder}: {} s so far, up to {} s (--lock-timeout)",
                waited.as_secs(),
                timeout.as_secs()
            );
            next_note += LOCK_NOTE_EVERY;
        }
        std::thread::sleep(retry.min(timeout.saturating_sub(waited)));
    }
}

/// The command name of a process, for a lock holder dpkg named by pid only.
fn process_name(pid: u32) -> Option<String> {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(name.trim().to_string()).filter(|n| !n.is_empty())
}

impl RealApt {
    fn run(&self, cmd: Cmd) -> Result<crate::process::Output> {
        run_waiting_for_locks(
            self.lock_timeout,
            LOCK_RETRY,
            &mut || cmd.run(),
            &*self.stop,
        )
    }
}

impl AptExec for RealApt {
    fn update(&mut self) -> Result<()> {
        let out = self.run(self.apt_get().arg("update"))?;
        // apt-get update exits 0 when some index files failed to download.
        let errors = apt::error_lines(&out.stderr);
        if errors.iter().any(|l| {
            l.starts_with("E:")
                || l.starts_with("W: Failed to fetch")
                || l.starts_with("W: Some index files failed")
        }) {
            bail!(
                "apt-get update could not fetch every index:\n    {}\nA mirror did not answer: check /etc/apt/sources.list and /etc/apt/sources.list.d and the network, then run again",
                errors.join("\n    ")
            );
        }
        let stamp = Path::new(UPDATE_STAMP);
        if let Some(dir) = stamp.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::File::create(stamp)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()))
            .with_context(|| format!("touching {UPDATE_STAMP}"))?;
        Ok(())
    }

    fn repair(&mut self) -> Result<()> {
        self.run(dpkg_configure_pending())?;
        Ok(())
    }

    fn install(&mut self, packages: &[(PackageName, String)]) -> Result<()> {
        let pinned = packages.iter().map(|(p, v)| format!("{p}={v}"));
        self.run(self.apt_get().arg("install").arg("--").args(pinned))?;
        Ok(())
    }

    fn remove(&mut self, packages: &[PackageName], purge: Purge) -> Result<()> {
        let verb = if purge == Purge::Yes {
            "purge"
        } else {
            "remove"
        };
        self.run(self.apt_get().arg(verb).arg("--").args(packages))?;
        Ok(())
    }

    fn autoremove(&mut self) -> Result<Vec<String>> {
        let out = self.run(self.apt_get().args(["autoremove", "--purge"]))?;
        Ok(removed_packages(&out.stdout))
    }
}

/// `name version` of each package dpkg removed, from apt-get's output
/// (`Removing python3-ntp (1.2.2+dfsg1-1+deb12u1) ...`).
fn removed_packages(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("Removing ")?.split_once(" (")?;
            let (version, _) = rest.split_once(')')?;
            Some(format!("{name} {version}"))
        })
        .collect()
}

#[cfg(test)]
mod env_tests {
    use super::*;

    /// The lines dpkg prints under `apt-get -q -y autoremove --purge`
    /// (LC_ALL=C); the node test of the daemon switches checks a real run.
    #[test]
    fn autoremove_names_what_dpkg_removed() {
        let out = "Reading package lists...
Building dependency tree...
The following packages will be REMOVED:
  netbase* python3-ntp*
0 upgraded, 0 newly installed, 2 to remove and 0 not upgraded.
After this operation, 1,177 kB disk space will be freed.
(Reading database ... 9744 files and directories currently installed.)
Removing python3-ntp (1.2.2+dfsg1-1+deb12u1) ...
Removing netbase (6.4) ...
(Reading database ... 9700 files and directories currently installed.)
Purging configuration files for netbase (6.4) ...
";
        assert_eq!(
            removed_packages(out),
            ["python3-ntp 1.2.2+dfsg1-1+deb12u1", "netbase 6.4"]
        );
        assert!(removed_packages("0 upgraded, 0 newly installed, 0 to remove\n").is_empty());
    }

    #[test]
    fn the_dpkg_repair_and_apt_get_run_with_the_same_unattended_environment() {
        let env_of = |cmd: &Cmd| -> Vec<String> {
            cmd.to_string()
                .split(' ')
                .take_while(|w| w.contains('='))
                .map(str::to_string)
                .collect()
        };
        let apt = RealApt {
            lock_timeout: Duration::ZERO,
            stop: Box::new(|| None),
        };
        let dpkg = dpkg_configure_pending();
        assert_eq!(dpkg.program(), "dpkg");
        assert_eq!(env_of(&apt.apt_get()), env_of(&dpkg));
        assert_eq!(
            env_of(&dpkg),
            [
                "DEBIAN_FRONTEND=noninteractive",
                "NEEDRESTART_MODE=l",
                "UCF_FORCE_CONFFOLD=1",
                "APT_LISTCHANGES_FRONTEND=none",
                "LC_ALL=C"
            ]
        );
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;
    use crate::process::Output;

    fn locked() -> Result<Output, CmdError> {
        Err(CmdError::Failed {
            cmd: "apt-get install ntp".into(),
            code: 100,
            stdout: String::new(),
            stderr: "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)\n\
                     N: Be aware that removing the lock file is not a solution and may break your system.\n\
                     E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n"
                .into(),
        })
    }

    fn ok() -> Result<Output, CmdError> {
        Ok(Output {
            code: 0,
            stdout: String::new(),
            stderr: String::new(),
            elapsed: Duration::ZERO,
        })
    }

    #[test]
    fn a_held_lock_is_waited_for_and_the_command_retried() {
        let mut calls = 0;
        let out = run_waiting_for_locks(
            Duration::from_secs(5),
            Duration::from_millis(1),
            &mut || {
                calls += 1;
                if calls < 3 {
                    locked()
                } else {
                    ok()
                }
            },
            &|| None,
        );
        assert!(out.is_ok());
        assert_eq!(calls, 3);
    }

    #[test]
    fn after_the_timeout_the_failure_names_the_holder_and_what_to_do() {
        let err = run_waiting_for_locks(
            Duration::from_millis(20),
            Duration::from_millis(5),
            &mut locked,
            &|| None,
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.starts_with("/var/lib/dpkg/lock-frontend is held by process 4242 (unattended-upgr); gave up after 0 s (--lock-timeout). Let it finish (`ps -p 4242 -o args`) and run again"),
            "{text}"
        );
        assert!(
            text.contains("E: Could not get lock /var/lib/dpkg/lock-frontend"),
            "apt's own words are kept: {text}"
        );
    }

    #[test]
    fn a_signal_ends_the_wait_for_a_held_lock_without_another_attempt() {
        let mut calls = 0;
        let stop = std::cell::Cell::new(None);
        let err = run_waiting_for_locks(
            // Would wait for an hour: only the signal can end it.
            Duration::from_secs(3600),
            Duration::from_millis(1),
            &mut || {
                calls += 1;
                if calls == 2 {
                    stop.set(Some("SIGTERM"));
                }
                locked()
            },
            &|| stop.get(),
        )
        .unwrap_err();
        assert_eq!(calls, 2, "no attempt after the signal");
        assert_eq!(
            format!("{err:#}"),
            "SIGTERM received: interrupted while waiting for /var/lib/dpkg/lock-frontend, held by process 4242 (unattended-upgr); `apt-get install ntp` never got the lock, so it changed nothing"
        );
        // A signal does not stop a command that got the lock.
        let out = run_waiting_for_locks(
            Duration::from_secs(5),
            Duration::from_millis(1),
            &mut ok,
            &|| Some("SIGINT"),
        );
        assert!(out.is_ok());
    }

    #[test]
    fn other_failures_are_not_retried() {
        let mut calls = 0;
        let err = run_waiting_for_locks(Duration::from_secs(5), Duration::from_millis(1), &mut || {
            calls += 1;
            Err(CmdError::Failed { cmd: "apt-get update".into(), code: 100, stdout: String::new(), stderr: "E: Failed to fetch http://127.0.0.1:9/debian/dists/bookworm/InRelease  Could not connect to 127.0.0.1:9\n".into() })
        }, &|| None)
        .unwrap_err();
        assert_eq!(calls, 1);
        let text = format!("{err:#}");
        assert!(text.contains("    E: Failed to fetch"), "{text}");
        assert!(text.ends_with("A mirror did not answer: check /etc/apt/sources.list and /etc/apt/sources.list.d and the network, then run again"), "{text}");
    }
}
