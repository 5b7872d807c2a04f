//! The one module that starts processes.
//!
//! A command is a value (`Cmd`): program, argument vector, extra environment,
//! optional standard input. Its `Display` is the exact command line to paste
//! into a shell. Nothing here goes through a shell. Two failures are kept apart:
//! the program could not be started at all, or it ran and exited non-zero (the
//! second keeps stdout and stderr so that the caller can show apt's own words).
//! Probes whose non-zero exit is an answer read `Output::code` themselves.
//!
//! Every child starts in a process group of its own, with standard input
//! from /dev/null or a pipe: a Ctrl-C at the terminal (or a signal to our
//! group) reaches this process only, so the step in progress finishes (see
//! `interrupt`), and no child ever reads the terminal from the background
//! (it would be stopped by SIGTTIN). The running children are tracked so
//! that a second signal can pass itself on to their groups.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The pids of the children running now; each leads its own process group.
static RUNNING: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// Keeps a started child's pids in `RUNNING` until it has been waited for.
struct Tracked(Vec<u32>);

impl Tracked {
    fn new(pids: Vec<u32>) -> Self {
        if let Ok(mut running) = RUNNING.lock() {
            running.extend(pids.iter().copied());
        }
        Tracked(pids)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Ok(mut running) = RUNNING.lock() {
            for pid in &self.0 {
                running.remove(pid);
            }
        }
    }
}

/// Sends `signal` to the process group of every child running now (each
/// leads its own group, so the program's own children get it too). For the
/// second SIGINT/SIGTERM, which ends the run at once.
pub fn signal_children(signal: i32) {
    let running: Vec<u32> = match RUNNING.lock() {
        Ok(r) => r.iter().copied().collect(),
        Err(poisoned) => poisoned.into_inner().iter().copied().collect(),
    };
    signal_groups(&running, signal);
}

/// killpg(2) of each group led by one of `leaders`; best effort.
fn signal_groups(leaders: &[u32], signal: i32) {
    let Some(sig) = rustix::process::Signal::from_named_raw(signal) else {
        return;
    };
    for &pid in leaders {
        if let Some(pgid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(pgid, sig);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    /// Its output goes to the log (`-v`) line by line as it comes.
    streamed: bool,
}

impl Cmd {
    pub fn new(program: &str) -> Self {
        Cmd {
            program: program.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            streamed: false,
        }
    }

    /// Logs the command's output line by line while it runs (at info: `-v`),
    /// for the long apt and dpkg runs an operator may be watching.
    pub fn streamed(mut self) -> Self {
        self.streamed = true;
        self
    }

    pub fn arg(mut self, arg: impl AsRef<str>) -> Self {
        self.args.push(arg.as_ref().to_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn stdin(mut self, input: Vec<u8>) -> Self {
        self.stdin = Some(input);
        self
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    pub fn arguments(&self) -> &[String] {
        &self.args
    }

    /// Runs the command to completion, whatever its exit status. Its
    /// stdout and stderr go to unnamed temporary files, not pipes, and are
    /// read once it has exited: a daemon it starts (an init script, a
    /// maintainer script's `invoke-rc.d`) may keep them open for as long as
    /// it runs, and a pipe would make the run wait for the daemon's end.
    pub fn output(&self) -> Result<Output, CmdError> {
        use std::io::{Read, Seek};
        let started = Instant::now();
        let not_started = |source| CmdError::NotStarted {
            cmd: self.to_string(),
            source,
        };
        let capture = || -> std::io::Result<(std::fs::File, std::fs::File)> {
            let file = tempfile::tempfile()?;
            Ok((file.try_clone()?, file))
        };
        let (stdout_child, mut stdout) = capture().map_err(not_started)?;
        let (stderr_child, mut stderr) = capture().map_err(not_started)?;
        let handle = self
            .expression()
            .stdout_file(stdout_child)
            .stderr_file(stderr_child)
            .start()
            .map_err(not_started)?;
        let tracked = Tracked::new(handle.pids());
        let streaming = self.streamed && log::log_enabled!(log::Level::Info);
        let status = if streaming {
            let program = self.program.as_str();
            let done = std::sync::atomic::AtomicBool::new(false);
            let log = |line: &str| log::info!("{program}: {line}");
            std::thread::scope(|scope| {
                scope.spawn(|| stream_lines([&stdout, &stderr], &done, &log));
                let status = handle.into_output().map(|o| o.status);
                done.store(true, std::sync::atomic::Ordering::Release);
                status
            })
        } else {
            handle.into_output().map(|o| o.status)
        }
        .map_err(not_started)?;
        drop(tracked);
        let elapsed = started.elapsed();
        let read = |file: &mut std::fs::File| -> std::io::Result<String> {
            let mut bytes = Vec::new();
            file.rewind()?;
            file.read_to_end(&mut bytes)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        let (stdout, stderr) = (
            read(&mut stdout).map_err(not_started)?,
            read(&mut stderr).map_err(not_started)?,
        );
        // A process killed by a signal has no code; -1 keeps it non-zero.
        let code = status.code().unwrap_or(-1);
        log::info!("ran `{self}` in {} ms (exit {code})", elapsed.as_millis());
        let output = Output {
            code,
            stdout,
            stderr,
            elapsed,
        };
        if !streaming {
            log::debug!("stdout of `{}`: {}", self.program, output.stdout.trim_end());
        }
        if !streaming && !output.stderr.trim().is_empty() {
            log::debug!("stderr of `{}`: {}", self.program, output.stderr.trim_end());
        }
        Ok(output)
    }

    /// Runs the command with stdout and stderr merged, handing each line to
    /// `enough` as it arrives; stops the process (SIGKILL) as soon as
    /// `enough` says the output already tells all, or when `bound` passes.
    /// For programs with no check-only mode whose log shows what a check
    /// needs long before they would exit (NTPsec reading its config). The
    /// program must not fork: only the process started here is killed.
    /// `Output::stdout` has every line read; `code` is -1 when it was stopped.
    pub fn output_until(
        &self,
        bound: Duration,
        enough: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Output, CmdError> {
        use std::io::BufRead;
        let started = Instant::now();
        let expr = self.expression().stderr_to_stdout();
        let not_started = |source| CmdError::NotStarted {
            cmd: self.to_string(),
            source,
        };
        let handle = expr.reader().map_err(not_started)?;
        let _tracked = Tracked::new(handle.pids());
        let (finished, finish_rx) = std::sync::mpsc::channel::<()>();
        let mut text = String::new();
        let mut stopped = false;
        std::thread::scope(|scope| {
            // The watchdog: kills the process when the bound passes, unless
            // reading finished first (the sender is dropped or sends).
            let to_kill = &handle;
            let watchdog = scope.spawn(move || {
                if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    finish_rx.recv_timeout(bound)
                {
                    let _ = to_kill.kill();
                    true
                } else {
                    false
                }
            });
            let mut lines = std::io::BufReader::new(&handle);
            let mut line = Vec::new();
            loop {
                line.clear();
                match lines.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let l = String::from_utf8_lossy(&line);
                        text.push_str(&l);
                        if enough(l.trim_end_matches('\n')) {
                            stopped = true;
                            let _ = handle.kill();
                            break;
                        }
                    }
                }
            }
            let _ = finished.send(());
            if watchdog.join().unwrap_or(false) {
                stopped = true;
            }
        });
        // Reaps the process (killed or exited; a kill takes effect at once,
        // so this polls for a millisecond or two, and at most about a
        // second) and reads its status.
        let mut status = None;
        for _ in 0..1000 {
            if let Ok(Some(out)) = handle.try_wait() {
                status = out.status.code();
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let code = if stopped { -1 } else { status.unwrap_or(-1) };
        let elapsed = started.elapsed();
        log::info!(
            "ran `{self}` in {} ms (exit {code}{})",
            elapsed.as_millis(),
            if stopped {
                ", stopped once its output told enough"
            } else {
                ""
            }
        );
        log::debug!("output of `{}`: {}", self.program, text.trim_end());
        Ok(Output {
            code,
            stdout: text,
            stderr: String::new(),
            elapsed,
        })
    }

    /// The command as duct runs it: arguments, environment, standard input
    /// (/dev/null unless given: never the terminal), any exit status
    /// accepted, in a process group of its own.
    fn expression(&self) -> duct::Expression {
        let mut expr = duct::cmd(&self.program, &self.args)
            .unchecked()
            .before_spawn(|command| {
                use std::os::unix::process::CommandExt;
                command.process_group(0);
                Ok(())
            });
        for (k, v) in &self.env {
            expr = expr.env(k, v);
        }
        match &self.stdin {
            Some(bytes) => expr.stdin_bytes(bytes.clone()),
            None => expr.stdin_null(),
        }
    }

    /// Runs the command and requires exit status 0.
    pub fn run(&self) -> Result<Output, CmdError> {
        let out = self.output()?;
        if out.code == 0 {
            Ok(out)
        } else {
            Err(CmdError::Failed {
                cmd: self.to_string(),
                code: out.code,
                stdout: out.stdout,
                stderr: out.stderr,
            })
        }
    }
}

/// Quotes a word for a POSIX shell only when it needs it, so the common
/// case stays readable: `apt-get install -y ntp`.
fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_./:=+,@%^".contains(&c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// Hands each complete line the command writes to `files` to `line` until
/// `done` (then reads once more, for the last lines). Reads at its own
/// offsets (`read_at`): the files share the child's, which must not move.
fn stream_lines(
    files: [&std::fs::File; 2],
    done: &std::sync::atomic::AtomicBool,
    line: &(dyn Fn(&str) + Sync),
) {
    use std::os::unix::fs::FileExt;
    let mut offsets = [0u64; 2];
    let mut partial = [Vec::new(), Vec::new()];
    loop {
        let last = done.load(std::sync::atomic::Ordering::Acquire);
        for i in 0..2 {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = files[i].read_at(&mut buf, offsets[i]) {
                offsets[i] += n as u64;
                partial[i].extend_from_slice(&buf[..n]);
            }
            while let Some(end) = partial[i].iter().position(|b| *b == b'\n') {
                let text: Vec<u8> = partial[i].drain(..=end).collect();
                line(String::from_utf8_lossy(&text).trim_end());
            }
        }
        if last {
            for rest in partial.iter().filter(|p| !p.is_empty()) {
                line(String::from_utf8_lossy(rest).trim_end());
            }
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_word(v)))
            .collect();
        words.push(shell_word(&self.program));
        words.extend(self.args.iter().map(|a| shell_word(a)));
        f.write_str(&words.join(" "))
    }
}

#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

#[cfg(test)]
impl Output {
    /// What a command said, for canned answers in tests.
    pub fn said(code: i32, stdout: &str) -> Output {
        Output {
            code,
            stdout: stdout.into(),
            stderr: String::new(),
            elapsed: Duration::ZERO,
        }
    }
}

#[derive(Debug)]
pub enum CmdError {
    NotStarted {
        cmd: String,
        source: std::io::Error,
    },
    Failed {
        cmd: String,
        code: i32,
        stdout: String,
        stderr: String,
    },
}

impl CmdError {
    pub fn stderr(&self) -> &str {
        match self {
            CmdError::NotStarted { .. } => "",
            CmdError::Failed { stderr, .. } => stderr,
        }
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdError::NotStarted { cmd, source } => write!(f, "could not start `{cmd}`: {source}"),
            CmdError::Failed {
                cmd,
                code,
                stdout,
                stderr,
            } => {
                write!(f, "`{cmd}` failed with exit status {code}")?;
                let detail = if stderr.trim().is_empty() {
                    stdout
                } else {
                    stderr
                };
                let tail: Vec<&str> = detail.trim_end().lines().rev().take(12).collect();
                if !tail.is_empty() {
                    write!(f, ":")?;
                    for line in tail.into_iter().rev() {
                        write!(f, "\n    {line}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for CmdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CmdError::NotStarted { source, .. } => Some(source),
            CmdError::Failed { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_lines_come_whole_in_order_and_the_last_one_without_a_newline_too() {
        use std::io::Write;
        let mut out = tempfile::tempfile().unwrap();
        let mut err = tempfile::tempfile().unwrap();
        out.write_all(b"Reading package lists...\nBuilding dependency tree")
            .unwrap();
        err.write_all(b"W: a warning\n").unwrap();
        let done = std::sync::atomic::AtomicBool::new(true);
        let seen = std::sync::Mutex::new(Vec::new());
        stream_lines([&out, &err], &done, &|l: &str| {
            seen.lock().unwrap().push(l.to_string())
        });
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "Reading package lists...",
                "W: a warning",
                "Building dependency tree"
            ]
        );
        // Reading left the files' shared offset where the writer had it.
        use std::io::Seek;
        assert_eq!(out.stream_position().unwrap(), 49);
    }

    #[test]
    fn a_streamed_command_still_returns_all_its_output() {
        let out = Cmd::new("printf")
            .arg("one\ntwo\n")
            .streamed()
            .output()
            .unwrap();
        assert_eq!((out.code, out.stdout.as_str()), (0, "one\ntwo\n"));
    }

    #[test]
    fn display_is_a_pasteable_command_line() {
        let cmd = Cmd::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "-o",
                "Dpkg::Options::=--force-confold",
                "install",
                "-y",
                "ntp=1:4.2.8p15+dfsg-1",
            ])
            .arg("it's");
        assert_eq!(
            cmd.to_string(),
            "DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Options::=--force-confold install -y ntp=1:4.2.8p15+dfsg-1 'it'\\''s'"
        );
    }

    #[test]
    fn a_daemon_the_command_leaves_running_does_not_hold_up_its_output() {
        // The background sleep keeps the command's stdout and stderr open;
        // the output is there as soon as sh has exited, with it still alive.
        let out = Cmd::new("sh")
            .args(["-c", "sleep 600 & echo $!; echo started >&2"])
            .run()
            .unwrap();
        let pid: i32 = out.stdout.trim().parse().unwrap();
        assert_eq!(out.stderr, "started\n");
        // Its state: gone, a zombie (Z) nobody reaped yet, or alive (asleep,
        // or still starting).
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat.rsplit_once(") ")?.1.chars().next());
        let _ = Cmd::new("kill").arg(pid.to_string()).output();
        assert!(
            state.is_some_and(|s| s != 'Z'),
            "output came only after the daemon ended: {state:?}"
        );
    }

    #[test]
    fn started_and_failed_are_different_errors() {
        let err = Cmd::new("/nonexistent/program").output().unwrap_err();
        assert!(matches!(err, CmdError::NotStarted { .. }), "{err}");
        let err = Cmd::new("sh")
            .args(["-c", "echo oops >&2; exit 3"])
            .run()
            .unwrap_err();
        match &err {
            CmdError::Failed { code, stderr, .. } => {
                assert_eq!(*code, 3);
                assert_eq!(stderr.trim(), "oops");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            err.to_string().contains("exit status 3:\n    oops"),
            "{err}"
        );
    }

    #[test]
    fn arguments_are_not_interpreted_by_a_shell() {
        let out = Cmd::new("echo").arg("$HOME; rm -rf /").run().unwrap();
        assert_eq!(out.stdout, "$HOME; rm -rf /\n");
    }

    #[test]
    fn output_until_stops_the_process_once_enough_was_read() {
        // Would exit 0 after 30 s, long before the bound: -1 means it was
        // stopped, and only `enough` could have stopped it.
        let out = Cmd::new("sh")
            .args(["-c", "echo one; echo two >&2; exec sleep 30"])
            .output_until(Duration::from_secs(600), &mut |l| l == "two")
            .unwrap();
        assert_eq!(out.stdout, "one\ntwo\n");
        assert_eq!(out.code, -1, "stopped, not exited");
    }

    #[test]
    fn output_until_keeps_the_exit_code_of_a_process_that_ends_first_and_bounds_one_that_does_not()
    {
        let out = Cmd::new("sh")
            .args(["-c", "echo done; exit 3"])
            .output_until(Duration::from_secs(20), &mut |_| false)
            .unwrap();
        assert_eq!((out.code, out.stdout.as_str()), (3, "done\n"));
        // Would exit 0 after 30 s: -1 means the bound stopped it.
        let out = Cmd::new("sh")
            .args(["-c", "echo waiting; exec sleep 30"])
            .output_until(Duration::from_millis(300), &mut |_| false)
            .unwrap();
        assert_eq!((out.code, out.stdout.as_str()), (-1, "waiting\n"));
    }

    /// A shell may observe its own process group: `ps` run by the test's
    /// child, not by the product.
    #[test]
    fn every_child_leads_a_process_group_of_its_own() {
        let ours = rustix::process::getpgrp().as_raw_nonzero().get();
        let out = Cmd::new("sh")
            .args(["-c", "echo $$; ps -o pgid= -p $$"])
            .run()
            .unwrap();
        let words: Vec<i32> = out
            .stdout
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        assert_eq!(words.len(), 2, "{}", out.stdout);
        assert_eq!(words[0], words[1], "the child's group is its own pid");
        assert_ne!(words[1], ours, "not our process group");
        // The same for the reading path.
        let out = Cmd::new("sh")
            .args(["-c", "echo $$; ps -o pgid= -p $$"])
            .output_until(Duration::from_secs(60), &mut |_| false)
            .unwrap();
        let words: Vec<&str> = out.stdout.split_whitespace().collect();
        assert_eq!(words.len(), 2, "{}", out.stdout);
        assert_eq!(words[0], words[1]);
    }

    #[test]
    fn stdin_is_never_the_terminal() {
        // /dev/null when no input is given: read at once as end of file.
        let out = Cmd::new("sh")
            .args(["-c", "if [ -t 0 ]; then echo tty; fi; cat; echo end"])
            .run()
            .unwrap();
        assert_eq!(out.stdout, "end\n");
    }

    #[test]
    fn a_running_child_is_tracked_and_a_signal_to_its_group_ends_its_own_children_too() {
        // Tests run in parallel: this one signals only its own child, found
        // among the tracked ones by a marker argument.
        let marker = "ntp-provision-group-signal-test";
        let (done, pid) = std::thread::scope(|scope| {
            // The child starts a grandchild (same group) and waits for it;
            // the signal must end both: the shell would print otherwise.
            let child = scope.spawn(|| {
                Cmd::new("sh")
                    .args(["-c", "sleep 60 & wait; echo survived", marker])
                    .output()
                    .unwrap()
            });
            let mut tries = 0;
            let pid = loop {
                let running: Vec<u32> = RUNNING.lock().unwrap().iter().copied().collect();
                let ours = running.into_iter().find(|pid| {
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    let children =
                        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                            .unwrap_or_default();
                    String::from_utf8_lossy(&cmdline).contains(marker)
                        && !children.trim().is_empty()
                });
                if let Some(pid) = ours {
                    break pid;
                }
                tries += 1;
                assert!(tries < 6000, "the child never started its sleep");
                std::thread::sleep(Duration::from_millis(10));
            };
            signal_groups(&[pid], rustix::process::Signal::TERM.as_raw());
            (child.join().unwrap(), pid)
        });
        assert_eq!(done.code, -1, "ended by the signal: {done:?}");
        assert_eq!(done.stdout, "");
        assert!(!RUNNING.lock().unwrap().contains(&pid), "no longer tracked");
    }

    #[test]
    fn stdin_is_fed() {
        let out = Cmd::new("cat").stdin(b"hello".to_vec()).run().unwrap();
        assert_eq!(out.stdout, "hello");
    }
}
