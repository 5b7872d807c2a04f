//! SIGINT and SIGTERM during a run: noted, not obeyed at once. The step in
//! progress finishes (a package half installed or a config half restarted
//! is worse than either end), the remaining steps are skipped, the report is
//! printed and the exit code says the run did not finish. Children run in
//! process groups of their own (see `process`), so a Ctrl-C at the terminal
//! does not reach apt-get, dpkg or systemctl. A second signal ends the
//! process at once (exit 130), for a run that is stuck, and passes that
//! signal on to the process group of the command running then, as the
//! terminal would have.
//!
//! Must not: act on a signal inside a signal handler: signal-hook's handler
//! only wakes the thread below, which does the rest in ordinary code.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Interrupt {
    /// The signal number received, 0 while none has been.
    signal: Arc<AtomicUsize>,
}

impl Interrupt {
    /// Installs the handlers. When they cannot be installed the run goes on
    /// with the default behaviour (the signal ends the process), and says so.
    pub fn install() -> Self {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let signal = Arc::new(AtomicUsize::new(0));
        let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("cannot handle SIGINT and SIGTERM ({e}); they will end the run at once");
                return Interrupt { signal };
            }
        };
        let noted = Arc::clone(&signal);
        let watcher = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if note(&noted, sig) {
                        continue;
                    }
                    eprintln!(
                        "ntp-provision: a second signal: stopping now; the command in progress gets it too"
                    );
                    crate::process::signal_children(sig);
                    // As the handler this replaced did: no destructors, no flush.
                    signal_hook::low_level::exit(130);
                }
            });
        if let Err(e) = watcher {
            log::warn!(
                "cannot watch for SIGINT and SIGTERM ({e}); a second one will not end the run"
            );
        }
        Interrupt { signal }
    }

    /// One that never fires: for runs driven by tests.
    pub fn never() -> Self {
        Interrupt {
            signal: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// `SIGINT` or `SIGTERM` once one arrived.
    pub fn received(&self) -> Option<&'static str> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s if s == signal_hook::consts::SIGINT as usize => Some("SIGINT"),
            s if s == signal_hook::consts::SIGTERM as usize => Some("SIGTERM"),
            _ => Some("a signal"),
        }
    }

    #[cfg(test)]
    pub fn raise_for_test(&self, sig: i32) {
        self.signal.store(sig as usize, Ordering::SeqCst);
    }
}

/// Records the first signal; false when one had already been recorded.
fn note(signal: &AtomicUsize, sig: i32) -> bool {
    signal
        .compare_exchange(0, sig as usize, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_is_noted_and_a_second_is_told_apart() {
        let i = Interrupt::never();
        assert_eq!(i.received(), None);
        assert!(note(&i.signal, signal_hook::consts::SIGTERM));
        assert_eq!(i.received(), Some("SIGTERM"));
        assert!(!note(&i.signal, signal_hook::consts::SIGINT));
        assert_eq!(i.received(), Some("SIGTERM"), "the first one is kept");
    }
}
