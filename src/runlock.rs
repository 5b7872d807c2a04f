//! One run at a time per node: `plan` and `apply` both hold an exclusive
//! flock(2) on /run/ntp-provision.lock while they read and change the node,
//! so a plan never reads a half-applied node and two applies never race. The
//! holder's pid is written into the file so that a waiting run can name it.
//!
//! The lock is the open file description: it goes away with the process,
//! also on kill -9, so a crashed run never leaves the node locked. The file
//! itself is never removed (removing it would let two runs lock two files).
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
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening the run lock {}", path.display()))?;
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
        let started = Instant::now();
        let err = RunLock::acquire(
            &path,
            Duration::from_millis(300),
            &mut |w| heard.push(w.clone()),
            &|| None,
        )
        .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300));
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
