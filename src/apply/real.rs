//! The real executors: apt-get and dpkg, systemctl or SysV `service`, and
//! atomic file replacement. Every apt call is unattended (no debconf, no
//! conffile prompt, no needrestart prompt) and waits a bounded time for the
//! dpkg lock instead of failing at once.

use super::{AptExec, FileExec, Purge, ServiceExec};
use crate::daemon::Flavor;
use crate::diff::{Check, ServiceAction};
use crate::facts::{apt, UPDATE_STAMP};
use crate::plan::names::{AbsPath, Mode, PackageName, UnitName};
use crate::process::{Cmd, CmdError};
use anyhow::{anyhow, bail, Context, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

pub struct RealApt {
    pub lock_timeout: Duration,
}

impl RealApt {
    fn apt_get(&self) -> Cmd {
        Cmd::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            // Ubuntu 22.04+: needrestart would prompt or restart services itself.
            .env("NEEDRESTART_MODE", "l")
            // chrony.conf is ucf-managed: keep ours without asking.
            .env("UCF_FORCE_CONFFOLD", "1")
            .env("APT_LISTCHANGES_FRONTEND", "none")
            .env("LC_ALL", "C")
            .args(["-q", "-y"])
            .args(["-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"])
            .arg("-o")
            .arg(format!("DPkg::Lock::Timeout={}", self.lock_timeout.as_secs()))
    }
}

/// apt's own `E:` lines make a better message than the whole output.
fn apt_failure(e: CmdError) -> anyhow::Error {
    let lines = apt::error_lines(e.stderr());
    match (&e, lines.is_empty()) {
        (CmdError::Failed { cmd, code, .. }, false) => anyhow!("`{cmd}` failed with exit status {code}:\n    {}", lines.join("\n    ")),
        _ => anyhow!(e),
    }
}

impl AptExec for RealApt {
    fn update(&mut self) -> Result<()> {
        let out = self.apt_get().arg("update").run().map_err(apt_failure)?;
        // apt-get update exits 0 when some index files failed to download.
        let errors = apt::error_lines(&out.stderr);
        if errors.iter().any(|l| l.starts_with("E:") || l.starts_with("W: Failed to fetch") || l.starts_with("W: Some index files failed")) {
            bail!("apt-get update could not fetch every index:\n    {}", errors.join("\n    "));
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
        Cmd::new("dpkg")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LC_ALL", "C")
            .args(["--force-confdef", "--force-confold", "--configure", "-a"])
            .run()?;
        Ok(())
    }

    fn install(&mut self, packages: &[(PackageName, String)]) -> Result<()> {
        let pinned = packages.iter().map(|(p, v)| format!("{p}={v}"));
        self.apt_get().arg("install").arg("--").args(pinned).run().map_err(apt_failure)?;
        Ok(())
    }

    fn remove(&mut self, packages: &[PackageName], purge: Purge) -> Result<()> {
        let verb = if purge == Purge::Yes { "purge" } else { "remove" };
        self.apt_get().arg(verb).arg("--").args(packages).run().map_err(apt_failure)?;
        Ok(())
    }

    fn autoremove(&mut self) -> Result<()> {
        self.apt_get().args(["autoremove", "--purge"]).run().map_err(apt_failure)?;
        Ok(())
    }
}

/// How long a restarted unit gets to report itself active.
const SETTLE: Duration = Duration::from_secs(10);

pub struct Systemctl;

impl ServiceExec for Systemctl {
    fn service(&mut self, unit: &UnitName, action: ServiceAction) -> Result<()> {
        let verb = action.verb();
        let result = Cmd::new("systemctl").env("LC_ALL", "C").arg(verb).arg("--").arg(unit).run();
        if let Err(e) = result {
            return Err(anyhow!(e).context(journal_tail(unit)));
        }
        if matches!(action, ServiceAction::Start | ServiceAction::Restart) {
            wait_active(unit)?;
        }
        Ok(())
    }
}

/// `systemctl is-active` answers with its exit status; a unit may still be
/// activating right after the start job returns.
fn wait_active(unit: &UnitName) -> Result<()> {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let out = Cmd::new("systemctl").env("LC_ALL", "C").args(["is-active", "--"]).arg(unit).output()?;
        let state = out.stdout.trim().to_string();
        if out.code == 0 && state == "active" {
            return Ok(());
        }
        if state != "activating" || std::time::Instant::now() >= deadline {
            return Err(anyhow!("{unit} is {state} after being started")).context(journal_tail(unit));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The unit's last log lines, for a failure message; best effort.
fn journal_tail(unit: &UnitName) -> String {
    let out = Cmd::new("journalctl").env("LC_ALL", "C").args(["--no-pager", "-n", "15", "-o", "cat", "-u"]).arg(unit).output();
    match out {
        Ok(o) if !o.stdout.trim().is_empty() => format!("last log lines of {unit}:\n    {}", o.stdout.trim_end().replace('\n', "\n    ")),
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
                Cmd::new("service").env("LC_ALL", "C").arg(name).arg(action.verb())
            }
            // `defaults` creates links where none exist; `enable` turns existing K links into S links.
            ServiceAction::Enable => {
                Cmd::new("update-rc.d").env("LC_ALL", "C").arg(name).arg("defaults").run()?;
                Cmd::new("update-rc.d").env("LC_ALL", "C").arg(name).arg("enable")
            }
            ServiceAction::Disable => Cmd::new("update-rc.d").env("LC_ALL", "C").arg(name).arg("disable"),
        };
        cmd.run()?;
        Ok(())
    }
}

pub struct RealFiles;

impl FileExec for RealFiles {
    /// A temp file in the same directory, owner and mode set before it is
    /// visible, fsync, rename over the target, fsync of the directory: the
    /// target is the old file or the new one, never a mix.
    fn write(&mut self, path: &AbsPath, content: &[u8], mode: Mode, uid: u32, gid: u32, check: &Check) -> Result<()> {
        let target = path.as_path();
        let dir = target.parent().ok_or_else(|| anyhow!("{path} has no parent directory"))?;
        if !dir.is_dir() {
            bail!("directory {} does not exist (is the package that owns it installed?)", dir.display());
        }
        let file_name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{file_name}."))
            .suffix(".ntp-provision")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let ctx = || format!("writing {}", tmp_path_display(dir, &file_name));
        tmp.write_all(content).with_context(ctx)?;
        std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid)).with_context(ctx)?;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode.0)).with_context(ctx)?;
        tmp.as_file().sync_all().with_context(ctx)?;
        if let Check::Daemon { flavor } = check {
            // Dropping `tmp` on this error removes it: the live file stays.
            check_config(*flavor, tmp.path()).with_context(|| format!("the new {path} was rejected and not installed"))?;
        }
        tmp.persist(target).map_err(|e| anyhow!(e.error)).with_context(|| format!("renaming into {path}"))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing directory {}", dir.display()))?;
        Ok(())
    }
}

/// Bounds every config check: a parser that hangs must not hang the run.
const CHECK_SECONDS: &str = "20";

/// Asks the daemon's own parser about `file` (platforms.md lists each one's
/// traps): classic ntpd exits 0 even on syntax errors, so its messages are
/// read; NTPsec has no check mode, so it is started in a private network
/// namespace for a few seconds and its log read.
pub fn check_config(flavor: Flavor, file: &Path) -> Result<()> {
    let file = file.to_string_lossy().into_owned();
    let (out, bad) = match flavor {
        Flavor::Ntpd => {
            let out = Cmd::new("timeout")
                .env("LC_ALL", "C")
                .args(["--signal=KILL", CHECK_SECONDS, "ntpd", "-n", "-c", &file, "--saveconfigquit=/dev/null"])
                .output()?;
            let text = format!("{}{}", out.stdout, out.stderr);
            let bad = text.contains("syntax error") || text.contains("Couldn't open");
            (text, bad)
        }
        Flavor::Ntpsec => {
            let out = Cmd::new("timeout")
                .env("LC_ALL", "C")
                .args(["--signal=KILL", "3", "unshare", "--net", "--", "ntpd", "-n", "-l", "/dev/stderr", "-c", &file])
                .output()?;
            if out.stderr.starts_with("unshare:") {
                log::warn!("NTPsec config not checked (no private network namespace here: {}); the restart's health check decides", out.stderr.trim());
                return Ok(());
            }
            let bad = out.stderr.contains("syntax error");
            (out.stderr, bad)
        }
        Flavor::Chrony => {
            let out = Cmd::new("timeout").env("LC_ALL", "C").args(["--signal=KILL", CHECK_SECONDS, "chronyd", "-p", "-f", &file]).output()?;
            let bad = out.code != 0;
            (format!("{}{}", out.stdout, out.stderr), bad)
        }
        Flavor::Openntpd => {
            let out = Cmd::new("timeout").env("LC_ALL", "C").args(["--signal=KILL", CHECK_SECONDS, "ntpd", "-n", "-f", &file]).output()?;
            let bad = out.code != 0;
            (format!("{}{}", out.stdout, out.stderr), bad)
        }
    };
    if bad {
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("error") || l.contains("couldn't") || l.contains("invalid") || l.contains("unknown")
            })
            .take(8)
            .collect();
        bail!("{} rejected the config:\n    {}", flavor.as_str(), if lines.is_empty() { out.trim().to_string() } else { lines.join("\n    ") });
    }
    Ok(())
}

fn tmp_path_display(dir: &Path, name: &str) -> String {
    format!("a temporary file for {}", dir.join(name).display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_content_and_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ntp.conf");
        std::fs::write(&file, "old\n").unwrap();
        let path = AbsPath::parse(file.to_str().unwrap()).unwrap();
        let (uid, gid) = {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(&file).unwrap();
            (m.uid(), m.gid())
        };
        RealFiles.write(&path, b"new\n", Mode(0o640), uid, gid, &Check::None).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new\n");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ntp.conf")]);
    }

    #[test]
    fn write_into_a_missing_directory_names_it() {
        let path = AbsPath::parse("/nonexistent-ntp-provision-dir/ntp.conf").unwrap();
        let err = RealFiles.write(&path, b"x", Mode(0o644), 0, 0, &Check::None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-ntp-provision-dir does not exist"), "{err}");
    }
}
