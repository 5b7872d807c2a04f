//! `apply --wait-sync`: after a successful apply, waits until `status` says
//! the clock is synchronised, and fails naming the state it was left in.

use crate::facts::Probe;
use crate::plan::Plan;
use crate::report::{Status, StepReport};
use crate::status;
use std::time::{Duration, Instant};

pub const SYNC_STEP: &str = "Clock synchronised";
/// How often status is read while waiting: the daemons poll their first
/// sources about every 2 s (iburst), so this sees the change within one.
const POLL: Duration = Duration::from_secs(1);

/// The wait's step: `ok` once synchronised within `bound`, else `failed`
/// with what status said last.
pub fn wait(probe: &dyn Probe, plan: &Plan, bound: Duration) -> StepReport {
    let started = Instant::now();
    loop {
        let last = match status::gather(probe, plan) {
            Ok(s) if s.synchronised => {
                let secs = started.elapsed().as_secs_f64();
                return StepReport::check(SYNC_STEP, Status::Ok, None, secs, None);
            }
            Ok(s) => unsynchronised(&s),
            Err(e) => format!("status could not be read: {e:#}"),
        };
        if started.elapsed() + POLL > bound {
            let error = format!("not synchronised within {} s: {last}", bound.as_secs());
            let secs = started.elapsed().as_secs_f64();
            return StepReport::check(SYNC_STEP, Status::Failed, Some(error), secs, None);
        }
        std::thread::sleep(POLL);
    }
}

/// The state a clock that is not synchronised is in, in an operator's words.
pub fn unsynchronised(s: &status::Status) -> String {
    use crate::daemons::sync::Selection;
    if s.daemon.is_none() {
        return "no NTP daemon is installed".into();
    }
    // Status's own reason where it could tell, with the sources it means.
    if let Some(reason) = s.reason {
        let names: Vec<&str> = s.sources.iter().map(|x| x.name.as_str()).collect();
        return match reason {
            status::Reason::NoneResolved | status::Reason::NoneReachable if !names.is_empty() => {
                format!("{}: {}", reason.says(), names.join(", "))
            }
            _ => reason.says().to_string(),
        };
    }
    if let Some(e) = &s.query_error {
        return format!("the daemon could not be asked ({e})");
    }
    if s.unit.as_ref().is_some_and(|u| !u.running) {
        return "the daemon is not running".into();
    }
    let sources: Vec<_> = s
        .peers
        .iter()
        .filter(|p| p.selected != Selection::Pool)
        .collect();
    if sources.is_empty() {
        return "no source resolved: the daemon lists no server (names that do not resolve, or none configured)".into();
    }
    if sources.iter().all(|p| p.reach == Some(0)) {
        let names: Vec<&str> = sources.iter().map(|p| p.remote.as_str()).collect();
        return format!("none reachable: no answer yet from {}", names.join(", "));
    }
    "still selecting: sources answer, the daemon has not chosen one yet".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemons::sync::{Peer, Selection};

    fn peer(remote: &str, reach: u8, selected: Selection) -> Peer {
        Peer {
            remote: remote.into(),
            refid: None,
            stratum: None,
            reach: Some(reach),
            poll_seconds: None,
            offset_ms: None,
            delay_ms: None,
            jitter_ms: None,
            selected,
        }
    }

    fn status(peers: Vec<Peer>) -> status::Status {
        status::Status {
            daemon: None,
            unit: None,
            config: None,
            synchronised: false,
            reason: None,
            sync: None,
            sources: vec![],
            peers,
            query_error: None,
            sources_error: None,
        }
    }

    fn installed(mut s: status::Status) -> status::Status {
        s.daemon = Some(status::InUse {
            flavor: crate::daemons::Flavor::NTPSEC,
            package: crate::names::PackageName::parse("ntpsec").unwrap(),
            version: "1.2.2+dfsg1-1+deb12u1".into(),
            unit: "ntpsec.service".into(),
        });
        s
    }

    #[test]
    fn the_wait_ends_at_its_bound_with_the_state_status_gave() {
        let node = crate::fake::FakeNode::bookworm();
        let plan = Plan::load(
            crate::plan::DEFAULT_PLAN.as_bytes(),
            crate::plan::Source::embedded(),
            &[],
        )
        .unwrap();
        let step = wait(&node, &plan, Duration::ZERO);
        assert_eq!(
            (step.name.as_str(), step.status),
            (SYNC_STEP, Status::Failed)
        );
        assert_eq!(
            step.error.as_deref(),
            Some("not synchronised within 0 s: no NTP daemon is installed")
        );
    }

    #[test]
    fn the_state_names_what_keeps_the_clock_from_synchronising() {
        let status = |peers| installed(status(peers));
        // Without status's own reason, the peers tell.
        assert!(unsynchronised(&status(vec![])).starts_with("no source resolved"));
        let pool_only = status(vec![peer("0.debian.pool.ntp.org", 0, Selection::Pool)]);
        assert!(unsynchronised(&pool_only).starts_with("no source resolved"));
        let silent = status(vec![peer("192.0.2.1", 0, Selection::Unusable)]);
        assert_eq!(
            unsynchronised(&silent),
            "none reachable: no answer yet from 192.0.2.1"
        );
        let answering = status(vec![peer("192.0.2.1", 7, Selection::Candidate)]);
        assert!(unsynchronised(&answering).starts_with("still selecting"));
        let mut told = status(vec![]);
        told.reason = Some(status::Reason::Selecting);
        assert_eq!(unsynchronised(&told), "still selecting");
        let mut broken = status(vec![]);
        broken.query_error = Some("ntpq: read: Connection refused".into());
        assert!(unsynchronised(&broken).contains("Connection refused"));
    }
}
