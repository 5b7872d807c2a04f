//! The real executors: apt-get and dpkg, systemctl or SysV `service`, and
//! atomic file replacement. Every apt call is unattended (no debconf, no
//! conffile prompt, no needrestart prompt) and waits a bounded time for a
//! dpkg or apt lock held by another process, saying who holds it.

use super::{AptExec, FileExec, Purge, ServiceExec};
use crate::daemons::{AnswerProbe, Flavor, Verdict};
use crate::diff::{Check, Health, Restore, ServiceAction, BACKUPS_KEPT, BACKUP_SUFFIX};
use crate::facts::{apt, UPDATE_STAMP};
use crate::names::{AbsPath, Mode, PackageName, UnitName};
use crate::process::{Cmd, CmdError};
use anyhow::{anyhow, bail, Context, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
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

    fn autoremove(&mut self) -> Result<()> {
        self.run(self.apt_get().args(["autoremove", "--purge"]))?;
        Ok(())
    }
}

/// How long a restarted unit gets to report itself active.
const SETTLE: Duration = Duration::from_secs(10);

pub struct Systemctl;

impl ServiceExec for Systemctl {
    /// A start or restart returns once systemd's job is done; whether the
    /// unit came up is `check_health`'s question (always asked next).
    fn service(&mut self, unit: &UnitName, action: ServiceAction) -> Result<()> {
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
                    "{} did not answer on localhost within {} s ({probe}; the unit is {state})\n{}",
                    flavor.as_str(),
                    HEALTH_BOUND.as_secs(),
                    journal_tail(unit)
                ),
                (Answer::No(_), other) => {
                    return Err(anyhow!("{unit} is {other} after being started"))
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
            return Err(anyhow!("{unit} is {state} after being started"))
                .context(journal_tail(unit));
        }
        std::thread::sleep(Duration::from_millis(200));
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

pub struct RealFiles;

impl FileExec for RealFiles {
    fn write(
        &mut self,
        path: &AbsPath,
        content: &[u8],
        mode: Mode,
        uid: u32,
        gid: u32,
        check: &Check,
    ) -> Result<()> {
        replace_atomically(path.as_path(), content, mode, uid, gid, check)
    }

    fn backup(&mut self, path: &AbsPath, backup: &AbsPath) -> Result<bool> {
        if !path.as_path().exists() {
            return Ok(false);
        }
        // A backup is never replaced: it may be the only copy of what was there.
        if backup.as_path().exists() {
            bail!("the backup {backup} already exists; not overwriting it (run again: the next run names its backups anew)");
        }
        copy_atomically(path.as_path(), backup.as_path())?;
        prune_backups(path.as_path(), backup.as_path())?;
        Ok(true)
    }

    fn restore(&mut self, r: &Restore, created: bool) -> Result<()> {
        let (path, backup) = (r.path.as_path(), r.backup.as_path());
        if !created {
            if !backup.exists() {
                bail!(
                    "the backup {} is missing; {} is left as it is",
                    r.backup,
                    r.path
                );
            }
            return copy_atomically(backup, path);
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", r.path))
            }
            _ => sync_parent(path),
        }
    }
}

/// `from`'s content, mode and owner, replacing `to` atomically.
fn copy_atomically(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(from).with_context(|| format!("stat {}", from.display()))?;
    let content = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    replace_atomically(
        to,
        &content,
        Mode(meta.mode() & 0o7777),
        meta.uid(),
        meta.gid(),
        &Check::None,
    )
}

/// Keeps the newest `BACKUPS_KEPT` backups of `file`; their names sort by time.
fn prune_backups(file: &Path, keep: &Path) -> Result<()> {
    let dir = file
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", file.display()))?;
    let prefix = format!(
        "{}.",
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let mut backups: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with(&prefix) && n.ends_with(BACKUP_SUFFIX))
        .filter(|n| Some(std::ffi::OsStr::new(n)) != keep.file_name())
        .collect();
    backups.sort();
    // `keep` (the backup just made) counts as one of the kept.
    let excess = (backups.len() + 1).saturating_sub(BACKUPS_KEPT);
    for old in backups.into_iter().take(excess) {
        let old = dir.join(old);
        std::fs::remove_file(&old)
            .with_context(|| format!("removing the old backup {}", old.display()))?;
    }
    Ok(())
}

fn sync_parent(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Our temporary files: `.NAME.XXXXXX.ntp-provision` next to the file
/// NAME being written (`replace_atomically`), and the config checks'
/// directories `/tmp/ntp-provision-check.XXXXXX`; XXXXXX is
/// `TEMP_RANDOM` letters and digits.
const TEMP_SUFFIX: &str = ".ntp-provision";
const CHECK_DIR_PREFIX: &str = "ntp-provision-check.";
pub const CHECK_DIR_PARENT: &str = "/tmp";
const TEMP_RANDOM: usize = 6;

fn is_random_part(s: &str) -> bool {
    s.len() == TEMP_RANDOM && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `.NAME.XXXXXX.ntp-provision`: a temp file of `replace_atomically`.
fn is_our_temp_file_name(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(TEMP_SUFFIX))
        .and_then(|n| n.rsplit_once('.'))
        .is_some_and(|(file, random)| !file.is_empty() && is_random_part(random))
}

/// `ntp-provision-check.XXXXXX`: a directory of `copy_for_check`.
fn is_our_check_dir_name(name: &str) -> bool {
    name.strip_prefix(CHECK_DIR_PREFIX)
        .is_some_and(is_random_part)
}

/// Removes what a run killed half way (kill -9 during a write or a config
/// check) left behind: our temp files in the directories of the files the
/// plan writes (`written`), and under each of `scratch_parents` our check
/// directories and apt's scratch directories of the facts stage
/// (`facts::probe::APT_SCRATCH_PREFIX`: private lists, caches; the facts of
/// this run have dropped theirs).
/// Only while holding the run lock, which no other live run then holds: no
/// run of ours still owns them. Only entries of our naming, of the kind we
/// create (not symlinks), owned by the user running this. Best effort: a
/// failure is a warning. Returns what was removed, each logged at info.
pub fn sweep_leftovers(written: &[&Path], scratch_parents: &[&Path]) -> Vec<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    let mut dirs: Vec<&Path> = written.iter().filter_map(|p| p.parent()).collect();
    dirs.sort();
    dirs.dedup();
    let mut removed = Vec::new();
    let mut sweep = |dir: &Path, ours: &dyn Fn(&str, &std::fs::Metadata) -> bool| {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.uid() != me || !ours(&name, &meta) {
                continue;
            }
            let result = if meta.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match result {
                Ok(()) => {
                    log::info!(
                        "removed {}, left by an earlier run that was killed",
                        path.display()
                    );
                    removed.push(path);
                }
                Err(e) => log::warn!(
                    "could not remove {}, left by an earlier run: {e}",
                    path.display()
                ),
            }
        }
    };
    for dir in dirs {
        sweep(dir, &|name, meta| {
            meta.is_file() && is_our_temp_file_name(name)
        });
    }
    for parent in scratch_parents {
        sweep(parent, &|name, meta| {
            meta.is_dir() && (is_our_check_dir_name(name) || is_our_apt_scratch_name(name))
        });
    }
    removed
}

/// `ntp-provision-apt.XXXXXX`: a scratch directory of the facts stage.
fn is_our_apt_scratch_name(name: &str) -> bool {
    name.strip_prefix(crate::facts::probe::APT_SCRATCH_PREFIX)
        .is_some_and(is_random_part)
}

/// A temp file in the same directory, owner and mode set before it is
/// visible, fsync, rename over the target, fsync of the directory: the
/// target is the old file or the new one, never a mix.
fn replace_atomically(
    target: &Path,
    content: &[u8],
    mode: Mode,
    uid: u32,
    gid: u32,
    check: &Check,
) -> Result<()> {
    {
        let path = target.display();
        let dir = target
            .parent()
            .ok_or_else(|| anyhow!("{path} has no parent directory"))?;
        if !dir.is_dir() {
            bail!(
                "directory {} does not exist (is the package that owns it installed?)",
                dir.display()
            );
        }
        let file_name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{file_name}."))
            .suffix(TEMP_SUFFIX)
            .rand_bytes(TEMP_RANDOM)
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let ctx = || format!("writing {}", tmp_path_display(dir, &file_name));
        tmp.write_all(content).with_context(ctx)?;
        std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid)).with_context(ctx)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode.0))
            .with_context(ctx)?;
        tmp.as_file().sync_all().with_context(ctx)?;
        if let Check::Daemon { flavor } = check {
            // Dropping `tmp` on this error removes it: the live file stays.
            check_config(*flavor, tmp.path())
                .with_context(|| format!("the new {path} was rejected and not installed"))?;
        }
        tmp.persist(target)
            .map_err(|e| anyhow!(e.error))
            .with_context(|| format!("renaming into {path}"))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing directory {}", dir.display()))?;
        Ok(())
    }
}

/// A copy of `file` (content only, mode 0600, root's) named `ntp.conf`, in
/// a new private directory under /tmp; removed when the directory is dropped.
fn copy_for_check(file: &Path) -> Result<(tempfile::TempDir, std::path::PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix(CHECK_DIR_PREFIX)
        .rand_bytes(TEMP_RANDOM)
        .tempdir_in(CHECK_DIR_PARENT)
        .context("creating a directory under /tmp for the config check")?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting the mode of {}", dir.path().display()))?;
    let copy = dir.path().join("ntp.conf");
    let content = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    std::fs::write(&copy, content).with_context(|| format!("writing {}", copy.display()))?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", copy.display()))?;
    Ok((dir, copy))
}

/// Asks the daemon's own parser about `file`; each daemon knows its own
/// traps (daemons/). A parser that could not judge leaves the decision to the
/// restart's health check.
pub fn check_config(flavor: Flavor, file: &Path) -> Result<()> {
    // Ubuntu and Debian confine some daemons with AppArmor profiles that let
    // them read their own config path and, through <abstractions/user-tmp>,
    // root's files under /tmp: their parser is handed a private copy there.
    let _copy_dir;
    let checked = if flavor.checks_a_copy_under_tmp() {
        let (dir, copy) = copy_for_check(file)?;
        _copy_dir = dir;
        copy
    } else {
        file.to_path_buf()
    };
    let out = match flavor.check_config(&checked.to_string_lossy())? {
        Verdict::Accepted => return Ok(()),
        Verdict::NotChecked(why) => {
            log::warn!("{why}; the restart's health check decides");
            return Ok(());
        }
        Verdict::Rejected(out) => out,
    };
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("error")
                || l.contains("couldn't")
                || l.contains("invalid")
                || l.contains("unknown")
        })
        .take(8)
        .collect();
    bail!(
        "{} rejected the config:\n    {}",
        flavor.as_str(),
        if lines.is_empty() {
            out.trim().to_string()
        } else {
            lines.join("\n    ")
        }
    );
}

fn tmp_path_display(dir: &Path, name: &str) -> String {
    format!("a temporary file for {}", dir.join(name).display())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ntp.conf` with `content` in a new temporary directory (kept alive
    /// by the first value), as a path and as an `AbsPath`.
    fn conf_file(content: &str) -> (tempfile::TempDir, std::path::PathBuf, AbsPath) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ntp.conf");
        std::fs::write(&file, content).unwrap();
        let path = AbsPath::parse(file.to_str().unwrap()).unwrap();
        (dir, file, path)
    }

    /// Captured from NTPsec 1.2.2 (Debian 12) started as the check starts it.
    #[test]
    fn atomic_write_sets_content_and_mode_and_leaves_no_temp_file() {
        let (dir, file, path) = conf_file("old\n");
        let (uid, gid) = {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(&file).unwrap();
            (m.uid(), m.gid())
        };
        RealFiles
            .write(&path, b"new\n", Mode(0o640), uid, gid, &Check::None)
            .unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new\n");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ntp.conf")]);
    }

    #[test]
    fn the_checked_copy_is_private_under_tmp_and_goes_away() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".ntp.conf.XyZ.ntp-provision");
        std::fs::write(&file, "server 127.0.0.1\n").unwrap();
        let (copy_dir, copy) = copy_for_check(&file).unwrap();
        assert!(copy.starts_with("/tmp/"), "{}", copy.display());
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            "server 127.0.0.1\n"
        );
        assert_eq!(std::fs::metadata(&copy).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(copy_dir.path()).unwrap().mode() & 0o777,
            0o700
        );
        drop(copy_dir);
        assert!(!copy.exists());
    }

    #[test]
    fn an_existing_backup_is_never_overwritten() {
        let (_dir, file, path) = conf_file("first\n");
        let b = crate::diff::backup_path(&path, "20260101T000000.000000").unwrap();
        RealFiles.backup(&path, &b).unwrap();
        std::fs::write(&file, "second\n").unwrap();
        let err = RealFiles.backup(&path, &b).unwrap_err();
        assert!(
            format!("{err:#}").contains("already exists; not overwriting it"),
            "{err:#}"
        );
        assert_eq!(std::fs::read_to_string(b.as_path()).unwrap(), "first\n");
    }

    #[test]
    fn backups_keep_content_and_mode_are_bounded_and_restore_atomically() {
        use std::os::unix::fs::MetadataExt;
        let (dir, file, path) = conf_file("old\n");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (uid, gid) = (
            std::fs::metadata(&file).unwrap().uid(),
            std::fs::metadata(&file).unwrap().gid(),
        );
        let mut files = RealFiles;
        for i in 1..=5 {
            let b = crate::diff::backup_path(&path, &format!("2026010{i}T000000")).unwrap();
            files.backup(&path, &b).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "ntp.conf",
                "ntp.conf.20260103T000000.ntp-provision.bak",
                "ntp.conf.20260104T000000.ntp-provision.bak",
                "ntp.conf.20260105T000000.ntp-provision.bak"
            ]
        );
        let newest = crate::diff::backup_path(&path, "20260105T000000").unwrap();
        assert_eq!(
            std::fs::metadata(newest.as_path())
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o640
        );
        files
            .write(&path, b"new\n", Mode(0o644), uid, gid, &Check::None)
            .unwrap();
        let restore = |path: &AbsPath, backup: &AbsPath| Restore {
            path: path.clone(),
            backup: backup.clone(),
        };
        files.restore(&restore(&path, &newest), false).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "old\n");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        // Nothing was there to back up: restoring removes what the run created.
        let created = AbsPath::parse(dir.path().join("new.conf").to_str().unwrap()).unwrap();
        let none = crate::diff::backup_path(&created, "20260105T000000").unwrap();
        assert!(!files.backup(&created, &none).unwrap(), "nothing to keep");
        files
            .write(&created, b"x\n", Mode(0o644), uid, gid, &Check::None)
            .unwrap();
        files.restore(&restore(&created, &none), true).unwrap();
        assert!(!created.as_path().exists());

        // A backup gone missing is an error, and the live file stays.
        let gone = crate::diff::backup_path(&path, "20260109T000000").unwrap();
        let err = files
            .restore(&restore(&path, &gone), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is missing"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "old\n");
    }

    #[test]
    fn the_backup_just_made_is_kept_even_when_older_names_sort_after_it() {
        // Three backups from a clock that ran a year ahead, then set right:
        // the new backup's name sorts first, and must survive the pruning.
        let (dir, _file, path) = conf_file("current\n");
        for stamp in ["20271001T000000", "20271002T000000", "20271003T000000"] {
            let b = crate::diff::backup_path(&path, stamp).unwrap();
            std::fs::write(b.as_path(), "ahead\n").unwrap();
        }
        let new = crate::diff::backup_path(&path, "20261126T000000").unwrap();
        RealFiles.backup(&path, &new).unwrap();
        assert_eq!(std::fs::read_to_string(new.as_path()).unwrap(), "current\n");
        let left = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(BACKUP_SUFFIX)
            })
            .count();
        assert_eq!(left, BACKUPS_KEPT);
    }

    #[test]
    fn write_into_a_missing_directory_names_it() {
        let path = AbsPath::parse("/nonexistent-ntp-provision-dir/ntp.conf").unwrap();
        let err = RealFiles
            .write(&path, b"x", Mode(0o644), 0, 0, &Check::None)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent-ntp-provision-dir does not exist"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod sweep_tests {
    use super::*;

    #[test]
    fn our_temp_names_are_told_from_everything_else() {
        for ours in [
            ".ntp.conf.Ab12Cd.ntp-provision",
            ".ntp.conf.20260105T000000.ntp-provision.bak.Xy98Zz.ntp-provision",
        ] {
            assert!(is_our_temp_file_name(ours), "{ours}");
        }
        for not in [
            "ntp.conf",
            "ntp.conf.20260105T000000.ntp-provision.bak",
            ".ntp.conf.ntp-provision",
            ".ntp.conf.Ab1.ntp-provision",
            ".ntp.conf.Ab-2Cd.ntp-provision",
            "..Ab12Cd.ntp-provision",
            "ntp.conf.Ab12Cd.ntp-provision",
        ] {
            assert!(!is_our_temp_file_name(not), "{not}");
        }
        assert!(is_our_check_dir_name("ntp-provision-check.Ab12Cd"));
        assert!(!is_our_check_dir_name("ntp-provision-check.Ab12Cd7"));
        assert!(!is_our_check_dir_name("ntp-provision-check."));
    }

    #[test]
    fn the_names_we_create_are_the_names_we_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ntp.conf");
        std::fs::write(&file, "x\n").unwrap();
        // As `replace_atomically` and `copy_for_check` name them.
        let tmp = tempfile::Builder::new()
            .prefix(".ntp.conf.")
            .suffix(TEMP_SUFFIX)
            .rand_bytes(TEMP_RANDOM)
            .tempfile_in(dir.path())
            .unwrap();
        let name_of = |p: &std::path::Path| p.file_name().unwrap().to_str().unwrap().to_string();
        let name = name_of(tmp.path());
        assert!(is_our_temp_file_name(&name), "{name}");
        let (check, _) = copy_for_check(&file).unwrap();
        let name = name_of(check.path());
        assert!(is_our_check_dir_name(&name), "{name}");
    }

    #[test]
    fn leftovers_next_to_written_files_and_check_directories_are_removed_and_nothing_else() {
        let etc = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let names = |d: &Path| {
            let mut n: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        let conf = etc.path().join("ntp.conf");
        for f in [
            "ntp.conf",
            ".ntp.conf.Ab12Cd.ntp-provision",
            ".ntp.conf.20260105T000000.ntp-provision.bak.Xy98Zz.ntp-provision",
            "ntp.conf.20260105T000000.ntp-provision.bak",
            ".other.conf.swp",
        ] {
            std::fs::write(etc.path().join(f), "x").unwrap();
        }
        // A directory of our temp file naming is not one we made.
        std::fs::create_dir(etc.path().join(".d.Qw12Er.ntp-provision")).unwrap();
        let check = tmp.path().join("ntp-provision-check.Zx98Cv");
        std::fs::create_dir(&check).unwrap();
        std::fs::write(check.join("ntp.conf"), "x").unwrap();
        std::fs::write(tmp.path().join("ntp-provision-check.Fi1eXx"), "x").unwrap();
        std::fs::create_dir(tmp.path().join("ntp-provision-checks")).unwrap();
        std::os::unix::fs::symlink(&check, tmp.path().join("ntp-provision-check.Sym1nk")).unwrap();
        // apt's scratch of a killed facts stage, in either parent: private
        // lists under one, the node's cache under the other.
        let var_tmp = tempfile::tempdir().unwrap();
        let lists = tmp.path().join("ntp-provision-apt.Li5tsA");
        std::fs::create_dir_all(lists.join("lists/partial")).unwrap();
        std::fs::write(lists.join("lists/x_InRelease"), "x").unwrap();
        let cache = var_tmp.path().join("ntp-provision-apt.Cach3B");
        std::fs::create_dir(&cache).unwrap();
        std::fs::write(cache.join("pkgcache.bin"), "x").unwrap();
        std::fs::create_dir(var_tmp.path().join("ntp-provision-apt.toolong")).unwrap();

        let mut removed = sweep_leftovers(&[conf.as_path()], &[tmp.path(), var_tmp.path()]);
        removed.sort();
        let mut expected = vec![
            etc.path()
                .join(".ntp.conf.20260105T000000.ntp-provision.bak.Xy98Zz.ntp-provision"),
            etc.path().join(".ntp.conf.Ab12Cd.ntp-provision"),
            check.clone(),
            lists,
            cache,
        ];
        expected.sort();
        assert_eq!(removed, expected);
        assert_eq!(
            names(etc.path()),
            [
                ".d.Qw12Er.ntp-provision",
                ".other.conf.swp",
                "ntp.conf",
                "ntp.conf.20260105T000000.ntp-provision.bak"
            ]
        );
        assert_eq!(
            names(tmp.path()),
            [
                "ntp-provision-check.Fi1eXx",
                "ntp-provision-check.Sym1nk",
                "ntp-provision-checks"
            ]
        );
        assert_eq!(names(var_tmp.path()), ["ntp-provision-apt.toolong"]);
        // Nothing left: a second sweep removes nothing.
        assert!(sweep_leftovers(&[conf.as_path()], &[tmp.path(), var_tmp.path()]).is_empty());
    }
}

#[cfg(test)]
mod env_tests {
    use super::*;

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
