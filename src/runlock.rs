//! One run at a time per node: `plan` and `apply` both hold an exclusive
//! flock(2) on /run/ntp-provision.lock while they read and change the node,
//! so a plan never reads a half-applied node and two applies never race. The
//! holder's pid is written into the file so that a waiting run can name it.
//!
//! The lock is the open file description: it goes away with the process,
//! also on kill -9, so a crashed run never leaves the node locked. The file
//! itself is never removed (removing it would let two runs lock two files).
//!
//! flock(2) works on a read-only descriptor, so a file others may open is a
//! lock anyone can hold: the file is the runner's alone, mode 0600 (made so
//! if it is not), and one owned by another user is refused.
//!
//! Must not: break or steal a lock, or wait without a bound.

use anyhow::{bail, Context, Result};
use rustix::fs::{flock, FlockOperation};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

pub const RUN_LOCK: &str = "/run/ntp-provision.lock";

/// Held for the whole run; dropping it (or exiting) releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

/// A wait in progress: the holder as far as known, and how long so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub holder: Option<u32>,
    pub waited: Duration,
}

impl RunLock {
    /// Takes the lock, waiting up to `timeout` while another run holds it.
    /// `on_wait` hears about the wait at its start and every 10 s after;
    /// `stop` ends the wait early (a signal arrived).
    pub fn acquire(
        path: &Path,
        timeout: Duration,
        on_wait: &mut dyn FnMut(&Waiting),
        stop: &dyn Fn() -> Option<&'static str>,
    ) -> Result<RunLock> {
        let mut file = open_private(path)?;
        let started = Instant::now();
        let mut next_note = Duration::ZERO;
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {}
                Err(e) => {
                    return Err(std::io::Error::from(e))
                        .with_context(|| format!("locking {}", path.display()))
                }
            }
            let waited = started.elapsed();
            let holder = holder_pid(&mut file);
            if waited >= timeout {
                let who = holder.map_or("another run".to_string(), |pid| {
                    format!("another run (pid {pid})")
                });
                bail!(
                    "{who} holds {}; gave up after {} s (--lock-timeout). Wait for it to finish{}, or give a longer --lock-timeout",
                    path.display(),
                    timeout.as_secs(),
                    holder.map_or(String::new(), |pid| format!(" (`ps -p {pid}`)")),
                );
            }
            if let Some(signal) = stop() {
                bail!(
                    "{signal} received while waiting for {}; nothing was changed",
                    path.display()
                );
            }
            if waited >= next_note {
                on_wait(&Waiting { holder, waited });
                next_note += Duration::from_secs(10);
            }
            std::thread::sleep(Duration::from_millis(100).min(timeout.saturating_sub(waited)));
        }
        // Ours now: record who holds it for the next one to name.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{}", std::process::id());
        let _ = file.sync_all();
        Ok(RunLock { _file: file })
    }
}

/// Opens (creating it, mode 0600) the lock file; an existing one must be
/// ours and is made 0600 if it is not, so that no other user can open it.
fn open_private(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening the run lock {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("stat of the run lock {}", path.display()))?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "the run lock {} belongs to uid {}, not to uid {me} running this: another user could hold it and block every run. Remove it (`rm {}`) when no ntp-provision runs",
            path.display(),
            meta.uid(),
            path.display()
        );
    }
    if !meta.is_file() {
        bail!("the run lock {} is not a regular file", path.display());
    }
    let mode = meta.mode() & 0o7777;
    if mode != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making the run lock {} mode 0600", path.display()))?;
        log::info!(
            "the run lock {} was mode {mode:04o}: made 0600 so that no other user can hold it",
            path.display()
        );
    }
    Ok(file)
}

fn holder_pid(file: &mut std::fs::File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_waits_then_fails_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        let first = RunLock::acquire(&path, Duration::ZERO, &mut |_| {}, &|| None).unwrap();
        let mut heard = Vec::new();
        let err = RunLock::acquire(
            &path,
            Duration::from_millis(300),
            &mut |w| heard.push(w.clone()),
            &|| None,
        )
        .unwrap_err();
        let pid = std::process::id();
        assert_eq!(
            heard.len(),
            1,
            "one note at the start of a short wait: {heard:?}"
        );
        assert_eq!(heard[0].holder, Some(pid));
        assert!(
            err.to_string().starts_with(&format!(
                "another run (pid {pid}) holds {}; gave up after 0 s",
                path.display()
            )),
            "{err}"
        );
        drop(first);
        RunLock::acquire(&path, Duration::ZERO, &mut |_| {}, &|| None)
            .expect("free once the holder is gone");
    }

    #[test]
    fn the_lock_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let path = dir.path().join("new.lock");
        drop(RunLock::acquire(&path, Duration::ZERO, &mut |_| {}, &|| None).unwrap());
        assert_eq!(mode(&path), 0o600, "created private");
        // Left readable by an older version: made private.
        let path = dir.path().join("old.lock");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(RunLock::acquire(&path, Duration::ZERO, &mut |_| {}, &|| None).unwrap());
        assert_eq!(mode(&path), 0o600, "made private");
    }

    #[test]
    fn a_lock_file_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        std::fs::write(&path, "").unwrap();
        let other = rustix::process::geteuid().as_raw() + 4242;
        // Only root can give a file away: fail loudly rather than pass unchecked.
        std::os::unix::fs::chown(&path, Some(other), None).expect(
            "this test runs as root (scripts/test does): only root can make a file of another user",
        );
        let err = RunLock::acquire(&path, Duration::ZERO, &mut |_| {}, &|| None).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "the run lock {} belongs to uid {other}, not to uid",
                path.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_signal_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        let _first = RunLock::acquire(&path, Duration::ZERO, &mut |_| {}, &|| None).unwrap();
        let err = RunLock::acquire(&path, Duration::from_secs(60), &mut |_| {}, &|| {
            Some("SIGTERM")
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("SIGTERM received while waiting"),
            "{err}"
        );
    }
}
