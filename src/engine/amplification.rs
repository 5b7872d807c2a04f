//! The check after apply: a daemon this run started or restarted must not
//! answer `verify`'s amplification queries.

use super::CheckPolicy;
use crate::diff::{Change, Changeset, ServiceAction};
use crate::plan::Plan;
use crate::report::{Report, Status, StepReport};
use crate::verify::{self, socket, target, Amplification};
use std::time::{Duration, Instant};

pub const AMPLIFICATION_STEP: &str = "No amplification from this node";

/// After apply started or restarted the daemon: sends it `verify`'s queries,
/// all at once, each from its own address (`verify::run_batch`), and appends
/// the result as a step. Read-only; the executors never see it.
pub(crate) fn check_amplification(
    report: Report,
    plan: &Plan,
    changeset: &Changeset,
    (enforcement, allowed_by): &CheckPolicy,
    on_step: &mut dyn FnMut(&StepReport),
) -> Report {
    let Some(daemon) = &changeset.daemon else {
        return report;
    };
    let started_daemon = report
        .steps
        .iter()
        .filter(|s| s.status == Status::Changed)
        .flat_map(|s| &s.changes)
        .any(|c| matches!(c, Change::Service { unit, action: ServiceAction::Start | ServiceAction::Restart, .. } if *unit == daemon.unit));
    if !started_daemon {
        return report;
    }
    let started = Instant::now();
    // ntpd and NTPsec answer time to 127.0.0.1 under every plan here: the
    // probe waits until they do (even where no health check did: SysV).
    // chrony and OpenNTPD may serve 127.0.0.1 no time at all (no `clients`,
    // no `listen`); their health check asked their own tool already.
    let localhost = std::net::IpAddr::from([127, 0, 0, 1]);
    let serves_localhost =
        daemon
            .flavor
            .serves_time_to(&crate::daemons::Access::default(), localhost, localhost);
    if serves_localhost && !verify::wait_until_answering(target::NTP_PORT, DAEMON_READY_BOUND) {
        log::info!("the daemon did not answer a time request from 127.0.0.1 within {DAEMON_READY_BOUND:?}; probing anyway");
    }
    let step = match verify::run_batch(
        target::DEFAULT_TARGET,
        verify::WAIT,
        &mut socket::exchange_batch,
    ) {
        Ok(mut check) => {
            // The config as the daemon reads it: networks it answers
            // queries from that none of the check's sources is in.
            let config = daemon.config.as_str();
            if let Ok(text) = std::fs::read_to_string(config) {
                let sources = check.sources();
                check.note_unprobed(verify::unprobed(daemon.flavor, config, &text, &sources));
            }
            let time_service_intended = verify::intended_time_service(
                daemon.flavor,
                &plan.vars.access,
                verify::BATCH_TIME_FROM,
                target::DEFAULT_TARGET.ip(),
            );
            let amplification = Amplification {
                check,
                enforcement: *enforcement,
                allowed_by: allowed_by.clone(),
                time_service_intended,
            };
            let failure = amplification.failure();
            let status = if failure.is_some() {
                Status::Failed
            } else {
                Status::Ok
            };
            StepReport::check(
                AMPLIFICATION_STEP,
                status,
                failure,
                started.elapsed().as_secs_f64(),
                Some(amplification),
            )
        }
        Err(e) => {
            let error = format!(
                "could not probe the daemon at {}: {e}",
                target::DEFAULT_TARGET
            );
            StepReport::check(
                AMPLIFICATION_STEP,
                Status::Failed,
                Some(error),
                started.elapsed().as_secs_f64(),
                None,
            )
        }
    };
    on_step(&step);
    report.with_check(step, changeset)
}

/// How long a just-(re)started daemon gets to answer before the probe.
const DAEMON_READY_BOUND: Duration = Duration::from_secs(5);
