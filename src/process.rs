//! The one module that starts processes.
//!
//! A command is a value (`Cmd`): program, argument vector, extra environment,
//! optional standard input. Its `Display` is the exact command line to paste
//! into a shell. Nothing here goes through a shell. Two failures are kept apart:
//! the program could not be started at all, or it ran and exited non-zero (the
//! second keeps stdout and stderr so that the caller can show apt's own words).
//! Probes whose non-zero exit is an answer read `Output::code` themselves.

use std::fmt;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
}

impl Cmd {
    pub fn new(program: &str) -> Self {
        Cmd {
            program: program.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
        }
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

    /// Runs the command to completion, whatever its exit status.
    pub fn output(&self) -> Result<Output, CmdError> {
        let started = Instant::now();
        let out = self
            .expression()
            .stdout_capture()
            .stderr_capture()
            .run()
            .map_err(|source| CmdError::NotStarted {
                cmd: self.to_string(),
                source,
            })?;
        let elapsed = started.elapsed();
        // A process killed by a signal has no code; -1 keeps it non-zero.
        let code = out.status.code().unwrap_or(-1);
        log::info!("ran `{self}` in {} ms (exit {code})", elapsed.as_millis());
        let output = Output {
            code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
        };
        log::debug!("stdout of `{}`: {}", self.program, output.stdout.trim_end());
        if !output.stderr.trim().is_empty() {
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
        // so this waits milliseconds, and at most a second) and reads its status.
        let mut status = None;
        for _ in 0..100 {
            if let Ok(Some(out)) = handle.try_wait() {
                status = out.status.code();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
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
    /// (none unless given), any exit status accepted.
    fn expression(&self) -> duct::Expression {
        let mut expr = duct::cmd(&self.program, &self.args).unchecked();
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

    #[test]
    fn stdin_is_fed() {
        let out = Cmd::new("cat").stdin(b"hello".to_vec()).run().unwrap();
        assert_eq!(out.stdout, "hello");
    }
}
