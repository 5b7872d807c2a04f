//! SIGINT and SIGTERM during a run: noted, not obeyed at once. The step in
//! progress finishes (a package half installed or a config half restarted
//! is worse than either end), the remaining steps are skipped, the report is
//! printed and the exit code says the run did not finish. A second signal
//! ends the process at once (exit 130), for a run that is stuck.
//!
//! Must not: do anything in the handler but store a number (signal-hook's
//! flag handlers are async-signal-safe; nothing else here runs in one).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
        let signal = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Order matters: the exit is registered first so that it only
            // fires once the first signal armed it.
            let result =
                signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&armed))
                    .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&armed)))
                    .and_then(|_| {
                        signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize)
                    });
            if let Err(e) = result {
                log::warn!("cannot handle signal {sig} ({e}); it will end the run at once");
            }
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
