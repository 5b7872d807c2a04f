//! The file executor: atomic replacement, bounded backups and their
//! restore, the daemon's own check of a config before it goes live, and the
//! sweep of leftovers a killed run can leave.

use super::FileExec;
use crate::daemons::{Flavor, Verdict};
use crate::diff::{Check, Restore, BACKUPS_KEPT, BACKUP_SUFFIX};
use crate::names::{AbsPath, Mode};
use anyhow::{anyhow, bail, Context, Result};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
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
        backup: Option<&AbsPath>,
    ) -> Result<bool> {
        let existed = path.as_path().exists();
        let keep = || match backup {
            Some(b) if existed => keep_backup(path.as_path(), b.as_path()),
            _ => Ok(()),
        };
        make_drop_in_dir(path)?;
        replace_atomically(path.as_path(), content, mode, uid, gid, check, keep)?;
        Ok(existed)
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

    fn link(&mut self, path: &AbsPath, target: &str) -> Result<()> {
        replace_with_link(path.as_path(), target)
    }
}

/// A symbolic link to `target` under our temporary name beside `path`
/// (`.NAME.XXXXXX.ntp-provision`, which the sweep knows), renamed over it,
/// the directory synced: `path` is the old entry or the new link, never
/// missing.
fn replace_with_link(path: &Path, target: &str) -> Result<()> {
    let shown = path.display();
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{shown} has no parent directory"))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(TEMP_SUFFIX)
        .rand_bytes(TEMP_RANDOM)
        .make_in(dir, |tmp| std::os::unix::fs::symlink(target, tmp))
        .with_context(|| format!("creating a link to {target} in {}", dir.display()))?;
    tmp.persist(path)
        .map_err(|e| anyhow!(e.error))
        .with_context(|| format!("renaming the new link into {shown}"))?;
    sync_parent(path)
}

/// Whether `path` is a daemon's config whose directory apply makes.
pub fn makes_its_directory(path: &AbsPath) -> bool {
    Flavor::all().any(|f| f.config_dir_may_be_missing() && f.config() == *path)
}

/// A daemon's config that is a drop-in (systemd-timesyncd's) may live in a
/// directory its package does not ship: it is made (0755, root's) for that
/// path alone; any other missing directory stays an error.
fn make_drop_in_dir(path: &AbsPath) -> Result<()> {
    let Some(dir) = path.as_path().parent() else {
        return Ok(());
    };
    if !makes_its_directory(path) || dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    log::info!("created {}", dir.display());
    sync_parent(dir)
}

/// Copies `file` to `backup`, then prunes `file`'s backups. A backup is
/// never replaced: one of the same content is this version kept already
/// (a run killed after its backup), another content is refused.
fn keep_backup(file: &Path, backup: &Path) -> Result<()> {
    if backup.exists() {
        if std::fs::read(backup).ok() != std::fs::read(file).ok() {
            bail!(
                "the backup {} already exists with other content; not overwriting it (move it away and run again)",
                backup.display()
            );
        }
    } else {
        copy_atomically(file, backup)?;
    }
    prune_backups(file, backup)
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
        || Ok(()),
    )
}

/// Keeps `keep` and the newest other backups of `file` (names sort by
/// time), up to `BACKUPS_KEPT` distinct contents; a backup with the content
/// of a newer kept one is a copy, and goes.
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
    let mut kept =
        vec![std::fs::read(keep).with_context(|| format!("reading {}", keep.display()))?];
    for name in backups.into_iter().rev() {
        let old = dir.join(name);
        let content = std::fs::read(&old).ok();
        let distinct = content.as_ref().is_some_and(|c| !kept.contains(c));
        if distinct && kept.len() < BACKUPS_KEPT {
            kept.extend(content);
            continue;
        }
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

/// Removes what a run killed half way left behind: our temp files beside
/// the files the plan writes (`written`), our check and apt scratch
/// directories under `scratch_parents`. Called only under the run lock, so
/// no live run owns them; only entries of our naming and kind, owned by
/// us. Best effort (a failure is a warning); returns what was removed.
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
            (meta.is_file() || meta.file_type().is_symlink()) && is_our_temp_file_name(name)
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
/// target is the old file or the new one, never a mix. `before_rename`
/// runs once the new content passed `check` (the backup of the old file).
fn replace_atomically(
    target: &Path,
    content: &[u8],
    mode: Mode,
    uid: u32,
    gid: u32,
    check: &Check,
    before_rename: impl FnOnce() -> Result<()>,
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
        before_rename()?;
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
        Verdict::Warned(lines) => {
            for line in lines {
                log::warn!("{} accepted the config but said: {line}", flavor.as_str());
            }
            return Ok(());
        }
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
            .write(&path, b"new\n", Mode(0o640), uid, gid, &Check::None, None)
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
    fn an_existing_backup_is_never_overwritten_and_the_same_version_is_kept_once() {
        let (_dir, file, path) = conf_file("first\n");
        let b = crate::diff::backup_path(&path, "20260101T000000.000000").unwrap();
        keep_backup(&file, b.as_path()).unwrap();
        // A run killed after its backup: the next one finds it, the same version.
        keep_backup(&file, b.as_path()).unwrap();
        std::fs::write(&file, "second\n").unwrap();
        let err = keep_backup(&file, b.as_path()).unwrap_err();
        assert!(
            format!("{err:#}").contains("already exists with other content; not overwriting it"),
            "{err:#}"
        );
        assert_eq!(std::fs::read_to_string(b.as_path()).unwrap(), "first\n");
    }

    #[test]
    fn only_distinct_versions_count_towards_the_backups_kept() {
        let (dir, file, path) = conf_file("a\n");
        // Three older copies of one version, then two other versions.
        for (stamp, content) in [
            ("1", "a\n"),
            ("2", "a\n"),
            ("3", "a\n"),
            ("4", "b\n"),
            ("5", "c\n"),
        ] {
            std::fs::write(&file, content).unwrap();
            let b =
                crate::diff::backup_path(&path, &format!("2026010{stamp}T000000.000000")).unwrap();
            keep_backup(&file, b.as_path()).unwrap();
        }
        let mut left: Vec<(String, String)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(BACKUP_SUFFIX))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                (
                    "ntp.conf.20260103T000000.000000.ntp-provision.bak".into(),
                    "a\n".into()
                ),
                (
                    "ntp.conf.20260104T000000.000000.ntp-provision.bak".into(),
                    "b\n".into()
                ),
                (
                    "ntp.conf.20260105T000000.000000.ntp-provision.bak".into(),
                    "c\n".into()
                ),
            ]
        );
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
            std::fs::write(&file, format!("v{i}\n")).unwrap();
            let b = crate::diff::backup_path(&path, &format!("2026010{i}T000000")).unwrap();
            keep_backup(&file, b.as_path()).unwrap();
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
            .write(&path, b"new\n", Mode(0o644), uid, gid, &Check::None, None)
            .unwrap();
        let restore = |path: &AbsPath, backup: &AbsPath| Restore {
            path: path.clone(),
            backup: backup.clone(),
        };
        files.restore(&restore(&path, &newest), false).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "v5\n");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        // Nothing was there to back up: restoring removes what the run created.
        let created = AbsPath::parse(dir.path().join("new.conf").to_str().unwrap()).unwrap();
        let none = crate::diff::backup_path(&created, "20260105T000000").unwrap();
        let existed = files
            .write(
                &created,
                b"x\n",
                Mode(0o644),
                uid,
                gid,
                &Check::None,
                Some(&none),
            )
            .unwrap();
        assert!(!existed && !none.as_path().exists(), "nothing to keep");
        files.restore(&restore(&created, &none), true).unwrap();
        assert!(!created.as_path().exists());

        // A backup gone missing is an error, and the live file stays.
        let gone = crate::diff::backup_path(&path, "20260109T000000").unwrap();
        let err = files
            .restore(&restore(&path, &gone), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is missing"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "v5\n");
    }

    #[test]
    fn the_backup_just_made_is_kept_even_when_older_names_sort_after_it() {
        // Three backups from a clock that ran a year ahead, then set right:
        // the new backup's name sorts first, and must survive the pruning.
        let (dir, _file, path) = conf_file("current\n");
        for stamp in ["20271001T000000", "20271002T000000", "20271003T000000"] {
            let b = crate::diff::backup_path(&path, stamp).unwrap();
            std::fs::write(b.as_path(), format!("ahead {stamp}\n")).unwrap();
        }
        let new = crate::diff::backup_path(&path, "20261126T000000").unwrap();
        keep_backup(path.as_path(), new.as_path()).unwrap();
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
            .write(&path, b"x", Mode(0o644), 0, 0, &Check::None, None)
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

    #[test]
    fn a_link_replaces_a_file_or_a_link_atomically_and_a_left_temp_link_is_swept() {
        let dir = tempfile::tempdir().unwrap();
        let localtime = dir.path().join("localtime");
        std::fs::write(&localtime, "TZif copy").unwrap();
        let path = AbsPath::parse(localtime.to_str().unwrap()).unwrap();
        for target in [
            "../usr/share/zoneinfo/Etc/UTC",
            "../usr/share/zoneinfo/Europe/Paris",
        ] {
            RealFiles.link(&path, target).unwrap();
            assert_eq!(
                std::fs::read_link(&localtime).unwrap().to_str(),
                Some(target)
            );
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec![std::ffi::OsString::from("localtime")]);
        }
        // What a run killed between the link and the rename leaves.
        let left = dir.path().join(".localtime.Ab12Cd.ntp-provision");
        std::os::unix::fs::symlink("../usr/share/zoneinfo/Etc/UTC", &left).unwrap();
        assert_eq!(sweep_leftovers(&[localtime.as_path()], &[]), [left]);
        assert!(std::fs::read_link(&localtime).is_ok());
    }
}
