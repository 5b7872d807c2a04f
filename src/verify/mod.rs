//! The amplification check: sends the queries attackers use (mode 7 monlist
//! and PEER_LIST, mode 6 READVAR and READSTAT) and an ordinary time request
//! to an NTP daemon, from a source its restrict lines treat as remote, and
//! measures what comes back. Run by `ntp-provision verify` and by `apply`
//! after it started or restarted the daemon.
//!
//! Must not: change anything, resolve names, or send more than one packet per
//! query. Only `socket` touches the network; `packet` and `evaluate` are pure.

pub mod packet;
pub mod report;
pub mod socket;
pub mod target;

use crate::daemons::{Access, Flavor};
use packet::{Query, QueryKind, Reply};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// How long each query waits for answers. A daemon answers on loopback in
/// microseconds and a monlist reply is sent in one burst; a second covers a
/// remote target too, and keeps the probes a second apart, which ntpd's
/// `limited` accepts.
pub const WAIT: Duration = Duration::from_secs(1);
/// Analysed replies kept per query in the report (a monlist answer can have
/// hundreds; the byte count covers them all).
const KEPT_REPLIES: usize = 10;

/// Whether the probe's source stands for any host, or is one the usual
/// config trusts (answers are then expected, and no risk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Remote,
    Trusted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeService {
    /// A mode 4 answer: the daemon serves time to this source.
    Served,
    /// A kiss-o'-death answer (`RATE`, `DENY`, ...): the daemon is there but
    /// refuses this source for now.
    Refused,
    NotServed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No control query was answered, or only to a trusted source.
    NoAmplification,
    /// A control query was answered from a remote source.
    Amplifier,
    /// `verify` only: nothing answered any query, and the target's host said
    /// ICMP port unreachable. Nothing was measured.
    NothingListens,
    /// `verify` only: nothing came back at all, not even an ICMP error.
    /// Nothing was measured.
    NoAnswer,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct QueryResult {
    pub query: Query,
    /// The source address it was sent from.
    pub from: IpAddr,
    pub name: &'static str,
    pub mode: u8,
    pub kind: QueryKind,
    pub sent: usize,
    /// Sum over every datagram received within the wait.
    pub received: usize,
    pub datagrams: usize,
    /// received / sent.
    pub amplification: f64,
    /// The first few datagrams as their headers read.
    pub replies: Vec<Reply>,
}

impl QueryResult {
    pub fn answered(&self) -> bool {
        self.received > 0
    }

    /// `sent 12 bytes, received 396 bytes in 1 datagram (33x)`.
    pub fn figures(&self) -> String {
        if !self.answered() {
            return format!("sent {} bytes, no answer", self.sent);
        }
        let plural = if self.datagrams == 1 { "" } else { "s" };
        format!(
            "sent {} bytes, received {} bytes in {} datagram{plural} (amplification {}x)",
            self.sent, self.received, self.datagrams, self.amplification
        )
    }
}

/// The measured answer of one daemon to every query.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Check {
    pub target: SocketAddr,
    pub from: IpAddr,
    pub source: SourceKind,
    pub verdict: Verdict,
    pub time_service: TimeService,
    /// The largest factor among the control queries (mode 6 and 7).
    pub max_amplification: f64,
    pub queries: Vec<QueryResult>,
}

impl Check {
    /// The control queries that were answered.
    pub fn answered_control(&self) -> Vec<&QueryResult> {
        self.queries
            .iter()
            .filter(|q| q.kind == QueryKind::Control && q.answered())
            .collect()
    }

    /// One line per query, as the human output prints it.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .queries
            .iter()
            .map(|q| {
                let label = match (q.kind, q.answered(), self.source) {
                    (QueryKind::TimeService, _, _) => "info",
                    (QueryKind::Control, false, _) => "ok",
                    (QueryKind::Control, true, SourceKind::Trusted) => "info",
                    (QueryKind::Control, true, SourceKind::Remote) => "failed",
                };
                if q.from == self.from {
                    format!("{label}: {}: {}", q.name, q.figures())
                } else {
                    format!("{label}: {} from {}: {}", q.name, q.from, q.figures())
                }
            })
            .collect();
        let time = match (self.verdict, self.time_service) {
            (Verdict::NothingListens, _) => "has nothing listening (ICMP port unreachable)",
            (Verdict::NoAnswer, _) => "answered nothing at all",
            (_, TimeService::Served) => "serves time to this source",
            (_, TimeService::Refused) => "refuses time to this source (kiss-o'-death)",
            (_, TimeService::NotServed) => "serves no time to this source",
        };
        lines.push(format!("info: {} {time}", self.target));
        lines
    }

    /// Why the check failed, for a report's `error`; `None` when it did not.
    pub fn failure(&self) -> Option<String> {
        let (target, from) = (self.target, self.from);
        match self.verdict {
            Verdict::NoAmplification => return None,
            Verdict::Amplifier => {}
            Verdict::NothingListens => {
                return Some(format!(
                    "nothing listens on {target}: its host answered every query with ICMP port unreachable, so \
                     nothing was measured. No NTP daemon runs there (or not on this port), or the one that runs \
                     opened no port to serve time: chrony without `allow`, OpenNTPD without `listen on`"
                ))
            }
            Verdict::NoAnswer => {
                return Some(format!(
                    "nothing answered from {target} within {} s, not even the time request, so nothing was \
                     measured. Either nothing is there to answer (no NTP daemon, a wrong address, a firewall \
                     that drops the packets), or a daemon is there and serves no time to {from} on purpose (its \
                     access control ignores this source); `--from` an address it serves measures it",
                    WAIT.as_secs()
                ))
            }
        }
        let answered: Vec<String> = self
            .answered_control()
            .iter()
            .map(|q| {
                format!(
                    "{} ({} bytes for {}, {}x)",
                    q.name, q.received, q.sent, q.amplification
                )
            })
            .collect();
        Some(format!(
            "the NTP daemon at {} answered {} from {}, an address it should treat as any host on the Internet: \
             an attacker can send these with a forged source and the daemon reflects up to {}x the traffic \
             onto the victim (DRDoS, CVE-2013-5211); give its default restrict lines noquery",
            self.target,
            answered.join(", "),
            self.from,
            self.max_amplification
        ))
    }
}

/// Whether answered control queries fail `apply`'s check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    Enforced,
    /// The plan accepted lint findings (`allow_insecure`): answers are
    /// reported, and expected.
    AllowedByPlan,
}

/// The check as `apply` reports it on its step.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Amplification {
    #[serde(flatten)]
    pub check: Check,
    pub enforcement: Enforcement,
    /// The accepted lint rules that explain answers (empty when enforced).
    pub allowed_by: Vec<String>,
    /// Whether the plan means this source to get time: compared with
    /// `time_service` and reported, never a failure of the check.
    pub time_service_intended: Intent,
}

/// What the plan means for ordinary time service to the probe's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    Served,
    NotServed,
}

/// Whether the plan means `from` to get time from the daemon at `target`:
/// ntpd and NTPsec serve anyone under the recipe's rate-limited default
/// restrict lines; chrony only the `clients` networks (`allow`); OpenNTPD
/// only on the `listen` addresses.
pub fn intended_time_service(
    flavor: Flavor,
    access: &Access,
    from: IpAddr,
    target: IpAddr,
) -> Intent {
    if flavor.serves_time_to(access, from, target) {
        Intent::Served
    } else {
        Intent::NotServed
    }
}

impl Amplification {
    pub fn lines(&self) -> Vec<String> {
        let mut lines = self.check.lines();
        let served = self.check.time_service == TimeService::Served;
        let line = match (self.time_service_intended, served) {
            (Intent::Served, true) => {
                "info: time service to this source: served, as the plan intends"
            }
            (Intent::NotServed, false) => {
                "info: time service to this source: not served, as the plan intends"
            }
            (Intent::Served, false) => {
                "warning: time service to this source: not served, but the plan means it to be"
            }
            (Intent::NotServed, true) => {
                "warning: time service to this source: served, but the plan does not mean it to be"
            }
        };
        lines.push(line.to_string());
        if self.enforcement == Enforcement::AllowedByPlan {
            for line in &mut lines {
                if let Some(rest) = line.strip_prefix("failed: ") {
                    *line = format!("allowed: {rest}");
                }
            }
            lines.push(format!(
                "info: answers are accepted by the plan's allow_insecure: {}",
                self.allowed_by.join(", ")
            ));
        }
        lines
    }

    /// Why the step fails, when it does.
    pub fn failure(&self) -> Option<String> {
        match self.enforcement {
            Enforcement::Enforced => self.check.failure(),
            Enforcement::AllowedByPlan => None,
        }
    }
}

/// Turns the datagrams received for each query into the check's figures and
/// verdict.
pub fn evaluate(target: SocketAddr, from: IpAddr, answers: &[(Query, Vec<Vec<u8>>)]) -> Check {
    let source = if target::is_trusted_source(from) {
        SourceKind::Trusted
    } else {
        SourceKind::Remote
    };
    let queries: Vec<QueryResult> = answers
        .iter()
        .map(|(query, datagrams)| {
            let sent = query.packet().len();
            let received = datagrams.iter().map(Vec::len).sum();
            QueryResult {
                query: *query,
                from,
                name: query.name(),
                mode: query.mode(),
                kind: query.kind(),
                sent,
                received,
                datagrams: datagrams.len(),
                amplification: packet::amplification(sent, received),
                replies: datagrams
                    .iter()
                    .take(KEPT_REPLIES)
                    .filter_map(|d| packet::analyze(d))
                    .collect(),
            }
        })
        .collect();
    let control = || queries.iter().filter(|q| q.kind == QueryKind::Control);
    let max_amplification = control().map(|q| q.amplification).fold(0.0, f64::max);
    let verdict = match source {
        SourceKind::Remote if control().any(QueryResult::answered) => Verdict::Amplifier,
        _ => Verdict::NoAmplification,
    };
    let time_replies: Vec<&Reply> = queries
        .iter()
        .filter(|q| q.kind == QueryKind::TimeService)
        .flat_map(|q| &q.replies)
        .collect();
    // Stratum 0 is also how an unsynchronised server answers (refid INIT or
    // STEP): that is time service. Only these kiss codes refuse it.
    let refusal = |r: &&Reply| matches!(r.kiss_code.as_deref(), Some("DENY" | "RSTR" | "RATE"));
    let time_service = if time_replies.iter().any(|r| r.mode == 4 && !refusal(r)) {
        TimeService::Served
    } else if time_replies.iter().any(|r| r.mode == 4) {
        TimeService::Refused
    } else {
        TimeService::NotServed
    };
    Check {
        target,
        from,
        source,
        verdict,
        time_service,
        max_amplification,
        queries,
    }
}

/// Sends one packet and returns what answers it: `socket::exchange`, or a
/// hand-written responder in tests.
pub type Exchange<'a> =
    dyn FnMut(IpAddr, SocketAddr, &[u8], Duration) -> Result<socket::Answer, String> + 'a;

/// `verify`: sends every query in turn (each waits `wait` for its answers)
/// and evaluates the answers. When nothing answered any of them, the
/// verdict says so instead (`NothingListens`, `NoAnswer`): silence proves
/// no access control when nothing may be there to answer. `send` is
/// `socket::exchange` outside tests.
pub fn run(
    target: SocketAddr,
    from: IpAddr,
    wait: Duration,
    send: &mut Exchange<'_>,
) -> Result<Check, String> {
    let mut answers = Vec::new();
    let mut port_unreachable = false;
    for query in Query::ALL {
        let answer = send(from, target, &query.packet(), wait)
            .map_err(|e| format!("{}: {e}", query.name()))?;
        port_unreachable |= answer.port_unreachable;
        answers.push((query, answer.datagrams));
    }
    let mut check = evaluate(target, from, &answers);
    if !check.queries.iter().any(QueryResult::answered) {
        check.verdict = if port_unreachable {
            Verdict::NothingListens
        } else {
            Verdict::NoAnswer
        };
    }
    Ok(check)
}

/// Where `apply`'s check sends each query from: the time request from
/// 127.0.0.3, each control query from an address of its own. No restrict
/// line of the plans trusts them (they stand for any host), and no rate limit
/// of the daemon (`limited`, `discard`) sees two packets from one address, so
/// an answer missing is the access control's doing, never the rate limit's.
/// None is `verify`'s default source (127.0.0.2): a `verify` right after
/// `apply` is not rate-limited by the check's packets either.
pub const BATCH_SOURCES: [(Query, IpAddr); 5] = [
    (Query::ReadVar, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4))),
    (Query::ReadStat, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5))),
    (Query::MonGetList, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6))),
    (Query::PeerList, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7))),
    // Last: its answer ends the wait (see `socket::exchange_batch`).
    (Query::Time, BATCH_TIME_FROM),
];

/// The source of `apply`'s time request, and so of its check as reported.
pub const BATCH_TIME_FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// How long the batch waits after the time request was answered, for the
/// kernel to deliver what the daemon sent before it. A margin only: on
/// loopback those answers are already queued by then (`scripts/answer-order`
/// measures the order; BENCHMARKS.md has its figures).
pub const SETTLE: Duration = Duration::from_millis(10);

/// Sends a batch of `(source, packet)` to a target and returns the datagrams
/// of each: `socket::exchange_batch`, or a hand-written responder in tests.
pub type ExchangeBatch<'a> =
    dyn FnMut(SocketAddr, &[(IpAddr, Vec<u8>)], Duration, Option<Duration>) -> BatchReplies + 'a;

/// The datagrams that answered each packet of a batch, in the batch's order.
pub type BatchReplies = Result<Vec<Vec<Vec<u8>>>, String>;

/// `apply`'s check of the daemon on this host: every query at once, each
/// from its `BATCH_SOURCES` address, the control queries before the time
/// request. When the time request is answered the wait ends `SETTLE` later
/// (a daemon answers its socket's datagrams in order); a daemon that serves
/// this source no time gets the whole `wait`. Same figures and verdict as
/// `run`, which `verify` uses for any target (there, from one address, one
/// query at a time).
pub fn run_batch(
    target: SocketAddr,
    wait: Duration,
    send: &mut ExchangeBatch<'_>,
) -> Result<Check, String> {
    if !target.ip().is_loopback() {
        return Err(format!(
            "the batch check is for a daemon on this host, not {target}"
        ));
    }
    let probes: Vec<(IpAddr, Vec<u8>)> = BATCH_SOURCES
        .iter()
        .map(|(q, from)| (*from, q.packet()))
        .collect();
    let replies = send(target, &probes, wait, Some(SETTLE))?;
    if replies.len() != probes.len() {
        return Err(format!(
            "{} answers for {} queries",
            replies.len(),
            probes.len()
        ));
    }
    // Reported in the usual order, each with its own source.
    let mut answers: Vec<(Query, Vec<Vec<u8>>)> = Vec::new();
    for query in Query::ALL {
        let i = BATCH_SOURCES
            .iter()
            .position(|(q, _)| *q == query)
            .expect("every query has a source");
        answers.push((query, replies[i].clone()));
    }
    let mut check = evaluate(target, BATCH_TIME_FROM, &answers);
    for result in &mut check.queries {
        result.from = BATCH_SOURCES
            .iter()
            .find(|(q, _)| *q == result.query)
            .map(|(_, a)| *a)
            .expect("every query has a source");
    }
    Ok(check)
}

/// After a start or restart: waits (at most `bound`) until the daemon
/// answers a time request from 127.0.0.1, which every config here trusts
/// and never rate-limits. A daemon that serves no time (chrony without
/// `allow`) never answers; the check then runs when the bound is over.
///
/// A daemon just started may refuse or drop the request while it sets up:
/// it is resent after [`FIRST_RETRY`], doubling up to 250 ms, so a ready
/// daemon is found at once and a slow one is not flooded.
pub fn wait_until_answering(port: u16, bound: Duration) -> bool {
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let target = SocketAddr::new(local, port);
    let started = Instant::now();
    let mut wait = FIRST_RETRY;
    while started.elapsed() < bound {
        let tried = Instant::now();
        // Ends at the first answer; a closed port answers at once.
        match socket::exchange_batch(
            target,
            &[(local, Query::Time.packet())],
            wait,
            Some(Duration::ZERO),
        ) {
            Ok(answers) if answers.iter().any(|a| !a.is_empty()) => return true,
            Ok(_) => {}
            Err(e) => {
                log::warn!("waiting for the NTP daemon on {target}: {e}");
                return false;
            }
        }
        // A closed port (not bound yet) answers at once: don't spin.
        std::thread::sleep(wait.saturating_sub(tried.elapsed()));
        wait = (wait * 2).min(Duration::from_millis(250));
    }
    false
}

/// The first wait for an answer of a daemon just started (see
/// [`wait_until_answering`]); one on loopback answers in well under it.
pub const FIRST_RETRY: Duration = Duration::from_millis(1);

#[cfg(test)]
mod intent_tests {
    use super::*;

    #[test]
    fn the_plan_intends_time_for_the_probe_source_per_daemon() {
        let from: IpAddr = "127.0.0.2".parse().unwrap();
        let target: IpAddr = "127.0.0.1".parse().unwrap();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            intended_time_service(
                Flavor::NTPSEC,
                &Access {
                    clients: vec![],
                    listen: vec![]
                },
                from,
                target
            ),
            Intent::Served
        );
        assert_eq!(
            intended_time_service(
                Flavor::CHRONY,
                &Access {
                    clients: vec![],
                    listen: vec![]
                },
                from,
                target
            ),
            Intent::NotServed
        );
        assert_eq!(
            intended_time_service(
                Flavor::CHRONY,
                &Access {
                    clients: s(&["192.0.2.0/24"]),
                    listen: vec![]
                },
                from,
                target
            ),
            Intent::NotServed
        );
        assert_eq!(
            intended_time_service(
                Flavor::CHRONY,
                &Access {
                    clients: s(&["127.0.0.0/8"]),
                    listen: vec![]
                },
                from,
                target
            ),
            Intent::Served
        );
        assert_eq!(
            intended_time_service(
                Flavor::CHRONY,
                &Access {
                    clients: s(&["127.0.0.2"]),
                    listen: vec![]
                },
                from,
                target
            ),
            Intent::Served
        );
        assert_eq!(
            intended_time_service(
                Flavor::OPENNTPD,
                &Access {
                    clients: vec![],
                    listen: vec![]
                },
                from,
                target
            ),
            Intent::NotServed
        );
        assert_eq!(
            intended_time_service(
                Flavor::OPENNTPD,
                &Access {
                    clients: vec![],
                    listen: s(&["127.0.0.1"])
                },
                from,
                target
            ),
            Intent::Served
        );
        assert!(crate::net::network_contains("::/0", "::1".parse().unwrap()));
        assert!(!crate::net::network_contains(
            "10.0.0.0/8",
            "::1".parse().unwrap()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_that_drops_its_first_requests_is_asked_again_until_it_answers() {
        // A stand-in on a loopback port of its own: it drops the first two
        // time requests (a daemon still setting up) and answers every one
        // after, as a ready daemon does. An answer that comes after its
        // request's short wait is lost on a loaded machine; the next is not.
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let stand_in = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let mut requests = 0;
            // Ends once no request has come for 500 ms: the client is done.
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                requests += 1;
                if requests >= 3 {
                    let mut answer = buf[..n].to_vec();
                    answer[0] = (answer[0] & 0b1111_1000) | 4; // mode 4, server
                    server.send_to(&answer, from).unwrap();
                }
            }
            requests
        });
        assert!(wait_until_answering(port, Duration::from_secs(5)));
        let requests = stand_in.join().unwrap();
        assert!(
            requests >= 3,
            "asked again after two dropped requests: {requests}"
        );
    }

    /// `verify`'s exchange: answers each query with `datagrams_with`'s datagrams.
    fn answer_with(
        sizes: Vec<(Query, Vec<usize>)>,
    ) -> impl FnMut(IpAddr, SocketAddr, &[u8], Duration) -> Result<socket::Answer, String> {
        let mut datagrams = datagrams_with(sizes);
        move |from, target, packet, wait| {
            Ok(socket::Answer {
                datagrams: datagrams(from, target, packet, wait)?,
                port_unreachable: false,
            })
        }
    }

    fn datagrams_with(
        sizes: Vec<(Query, Vec<usize>)>,
    ) -> impl FnMut(IpAddr, SocketAddr, &[u8], Duration) -> Result<Vec<Vec<u8>>, String> {
        move |_, _, packet, _| {
            let query = Query::ALL
                .into_iter()
                .find(|q| q.packet() == packet)
                .expect("a known packet");
            let reply_head = match query.mode() {
                3 => vec![0x24, 2],
                6 => vec![0x16, 0x82],
                _ => vec![0x97, 0x00],
            };
            Ok(sizes
                .iter()
                .filter(|(q, _)| *q == query)
                .flat_map(|(_, s)| s.iter())
                .map(|&n| {
                    let mut d = reply_head.clone();
                    d.resize(n, 0);
                    d
                })
                .collect())
        }
    }

    fn local() -> SocketAddr {
        target::DEFAULT_TARGET
    }

    #[test]
    fn a_hardened_daemon_serves_time_and_answers_no_control_query() {
        let mut send = answer_with(vec![(Query::Time, vec![48])]);
        let check = run(local(), target::DEFAULT_FROM, WAIT, &mut send).unwrap();
        assert_eq!(check.verdict, Verdict::NoAmplification);
        assert_eq!(check.time_service, TimeService::Served);
        assert_eq!(check.source, SourceKind::Remote);
        assert_eq!(check.max_amplification, 0.0);
        assert_eq!(check.failure(), None);
        let sent: Vec<(Query, usize, usize)> = check
            .queries
            .iter()
            .map(|q| (q.query, q.sent, q.received))
            .collect();
        assert_eq!(
            sent,
            vec![
                (Query::Time, 48, 48),
                (Query::ReadVar, 12, 0),
                (Query::ReadStat, 12, 0),
                (Query::MonGetList, 48, 0),
                (Query::PeerList, 48, 0)
            ]
        );
        assert_eq!(
            check.lines()[1],
            "ok: mode 6 READVAR: sent 12 bytes, no answer"
        );
        assert_eq!(
            check.lines()[5],
            "info: 127.0.0.1:123 serves time to this source"
        );
    }

    /// A batch responder: answers each packet as `datagrams_with` would, and
    /// records the order and sources it saw.
    fn batch_answer_with(
        sizes: Vec<(Query, Vec<usize>)>,
        seen: &mut Vec<(IpAddr, Query)>,
    ) -> Box<ExchangeBatch<'_>> {
        let mut single = datagrams_with(sizes);
        Box::new(move |target, probes: &[(IpAddr, Vec<u8>)], wait, settle| {
            assert_eq!(
                settle,
                Some(SETTLE),
                "the batch ends once the time request is answered"
            );
            probes
                .iter()
                .map(|(from, packet)| {
                    let query = Query::ALL
                        .into_iter()
                        .find(|q| q.packet() == *packet)
                        .unwrap();
                    seen.push((*from, query));
                    single(*from, target, packet, wait)
                })
                .collect()
        })
    }

    #[test]
    fn the_batch_sends_control_queries_first_each_from_its_own_address_and_time_last() {
        let mut seen = Vec::new();
        let mut send = batch_answer_with(
            vec![(Query::Time, vec![48]), (Query::ReadVar, vec![412])],
            &mut seen,
        );
        let check = run_batch(local(), WAIT, &mut *send).unwrap();
        drop(send);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            seen,
            vec![
                (ip("127.0.0.4"), Query::ReadVar),
                (ip("127.0.0.5"), Query::ReadStat),
                (ip("127.0.0.6"), Query::MonGetList),
                (ip("127.0.0.7"), Query::PeerList),
                (ip("127.0.0.3"), Query::Time),
            ]
        );
        // Reported in the usual order, with the same verdict as one at a time.
        let order: Vec<(Query, IpAddr, usize)> = check
            .queries
            .iter()
            .map(|q| (q.query, q.from, q.received))
            .collect();
        assert_eq!(order[0], (Query::Time, ip("127.0.0.3"), 48));
        assert_eq!(order[1], (Query::ReadVar, ip("127.0.0.4"), 412));
        assert_eq!(check.verdict, Verdict::Amplifier);
        assert_eq!(check.from, ip("127.0.0.3"));
        assert_eq!(check.time_service, TimeService::Served);
        let mut single = answer_with(vec![(Query::Time, vec![48]), (Query::ReadVar, vec![412])]);
        let one_at_a_time = run(local(), target::DEFAULT_FROM, WAIT, &mut single).unwrap();
        assert_eq!(
            (check.verdict, check.max_amplification),
            (one_at_a_time.verdict, one_at_a_time.max_amplification)
        );
        assert_eq!(check.lines()[1], "failed: mode 6 READVAR from 127.0.0.4: sent 12 bytes, received 412 bytes in 1 datagram (amplification 34.33x)");
    }

    #[test]
    fn the_batch_is_for_a_daemon_on_this_host_only() {
        let mut send = |_: SocketAddr,
                        _: &[(IpAddr, Vec<u8>)],
                        _: Duration,
                        _: Option<Duration>|
         -> Result<Vec<Vec<Vec<u8>>>, String> {
            panic!("nothing may be sent to another host")
        };
        let err = run_batch("192.0.2.1:123".parse().unwrap(), WAIT, &mut send).unwrap_err();
        assert!(err.contains("192.0.2.1:123"), "{err}");
    }

    #[test]
    fn an_answered_control_query_from_a_remote_source_is_an_amplifier() {
        let mut send = answer_with(vec![
            (Query::Time, vec![48]),
            (Query::ReadVar, vec![412]),
            (Query::MonGetList, vec![440, 440, 200]),
        ]);
        let check = run(local(), target::DEFAULT_FROM, WAIT, &mut send).unwrap();
        assert_eq!(check.verdict, Verdict::Amplifier);
        assert_eq!(check.max_amplification, 34.33);
        let readvar = &check.queries[1];
        assert_eq!(
            (readvar.received, readvar.datagrams, readvar.amplification),
            (412, 1, 34.33)
        );
        assert_eq!(readvar.replies[0].direction, packet::Direction::Response);
        let monlist = &check.queries[3];
        assert_eq!(
            (monlist.received, monlist.datagrams, monlist.amplification),
            (1080, 3, 22.5)
        );
        let failure = check.failure().unwrap();
        assert!(
            failure.contains("mode 6 READVAR (412 bytes for 12, 34.33x)"),
            "{failure}"
        );
        assert!(
            failure.contains("CVE-2013-5211") && failure.contains("from 127.0.0.2"),
            "{failure}"
        );
        assert_eq!(check.lines()[1], "failed: mode 6 READVAR: sent 12 bytes, received 412 bytes in 1 datagram (amplification 34.33x)");
    }

    #[test]
    fn answers_to_a_trusted_source_are_information_only() {
        let mut send = answer_with(vec![(Query::ReadVar, vec![412])]);
        let check = run(local(), "127.0.0.1".parse().unwrap(), WAIT, &mut send).unwrap();
        assert_eq!(check.source, SourceKind::Trusted);
        assert_eq!(check.verdict, Verdict::NoAmplification);
        assert_eq!(check.time_service, TimeService::NotServed);
        assert!(check.lines()[1].starts_with("info: mode 6 READVAR"));
    }

    #[test]
    fn a_kiss_o_death_is_refused_time_service() {
        let mut send = |_: IpAddr,
                        _: SocketAddr,
                        packet: &[u8],
                        _: Duration|
         -> Result<socket::Answer, String> {
            if packet[0] != 0x1b {
                return Ok(socket::Answer::default());
            }
            let mut kod = vec![0u8; 48];
            kod[0] = 0xe4;
            kod[12..16].copy_from_slice(b"RATE");
            Ok(socket::Answer {
                datagrams: vec![kod],
                port_unreachable: false,
            })
        };
        let check = run(local(), target::DEFAULT_FROM, WAIT, &mut send).unwrap();
        assert_eq!(check.time_service, TimeService::Refused);
        assert_eq!(check.verdict, Verdict::NoAmplification);
    }

    #[test]
    fn an_unsynchronised_server_still_serves_time() {
        // Stratum 16 goes on the wire as 0, with the refid INIT until the first sync.
        let mut send = |_: IpAddr,
                        _: SocketAddr,
                        packet: &[u8],
                        _: Duration|
         -> Result<socket::Answer, String> {
            if packet[0] != 0x1b {
                return Ok(socket::Answer::default());
            }
            let mut answer = vec![0u8; 48];
            answer[0] = 0xdc; // LI 3, version 3, mode 4
            answer[12..16].copy_from_slice(b"INIT");
            Ok(socket::Answer {
                datagrams: vec![answer],
                port_unreachable: false,
            })
        };
        let check = run(local(), target::DEFAULT_FROM, WAIT, &mut send).unwrap();
        assert_eq!(
            check.queries[0].replies[0].kiss_code.as_deref(),
            Some("INIT")
        );
        assert_eq!(check.time_service, TimeService::Served);
    }

    #[test]
    fn nothing_answering_any_query_is_no_measurement_and_says_why() {
        let mut refused = |_: IpAddr, _: SocketAddr, _: &[u8], _: Duration| {
            Ok(socket::Answer {
                datagrams: vec![],
                port_unreachable: true,
            })
        };
        let check = run(local(), target::DEFAULT_FROM, WAIT, &mut refused).unwrap();
        assert_eq!(check.verdict, Verdict::NothingListens);
        assert_eq!(check.time_service, TimeService::NotServed);
        let failure = check.failure().unwrap();
        assert!(
            failure.starts_with("nothing listens on 127.0.0.1:123: ")
                && failure.contains("nothing was measured")
                && failure.contains("chrony without `allow`"),
            "{failure}"
        );

        let mut silent =
            |_: IpAddr, _: SocketAddr, _: &[u8], _: Duration| Ok(socket::Answer::default());
        let check = run(local(), target::DEFAULT_FROM, WAIT, &mut silent).unwrap();
        assert_eq!(check.verdict, Verdict::NoAnswer);
        let failure = check.failure().unwrap();
        // Both explanations: nothing there, or a daemon that ignores this source.
        assert!(
            failure.starts_with("nothing answered from 127.0.0.1:123 within 1 s")
                && failure.contains("no NTP daemon, a wrong address")
                && failure.contains("serves no time to 127.0.0.2 on purpose"),
            "{failure}"
        );

        // Any answer at all is a measurement: a kiss-o'-death to the time
        // request is one, whatever the ICMP said of other queries.
        let mut kod_only = |_: IpAddr, _: SocketAddr, packet: &[u8], _: Duration| {
            let mut kod = vec![0u8; 48];
            kod[0] = 0xe4;
            kod[12..16].copy_from_slice(b"DENY");
            Ok(socket::Answer {
                datagrams: if packet[0] == 0x1b { vec![kod] } else { vec![] },
                port_unreachable: packet[0] != 0x1b,
            })
        };
        let check = run(local(), target::DEFAULT_FROM, WAIT, &mut kod_only).unwrap();
        assert_eq!(check.verdict, Verdict::NoAmplification);
        assert_eq!(check.time_service, TimeService::Refused);
    }

    #[test]
    fn apply_s_batch_check_still_passes_a_daemon_that_answers_nothing() {
        // chrony without `clients`: no answer at all is no amplification there,
        // as before; only `verify` calls silence "not measured".
        let mut seen = Vec::new();
        let mut send = batch_answer_with(vec![], &mut seen);
        let check = run_batch(local(), WAIT, &mut *send).unwrap();
        assert_eq!(check.verdict, Verdict::NoAmplification);
        assert_eq!(check.failure(), None);
    }

    #[test]
    fn a_send_error_names_the_query() {
        let mut send =
            |_: IpAddr, _: SocketAddr, _: &[u8], _: Duration| -> Result<socket::Answer, String> {
                Err("cannot bind".into())
            };
        let err = run(local(), target::DEFAULT_FROM, WAIT, &mut send).unwrap_err();
        assert_eq!(err, "mode 3 time request: cannot bind");
    }
}
