//! The amplification check: sends the queries attackers use (mode 7 monlist
//! and PEER_LIST, mode 6 READVAR and READSTAT, READVAR of each association
//! READSTAT lists, chrony's command port) and an ordinary time request to an
//! NTP daemon, from a source its restrict lines treat as remote, and
//! measures what comes back and what it tells. Run by `ntp-provision verify`
//! and by `apply` after it started or restarted the daemon.
//!
//! Must not: change anything, resolve names, or send more than one packet per
//! query. Only `socket` touches the network; `packet`, `evaluate` and
//! `unprobed` are pure.

pub mod packet;
pub mod report;
pub mod socket;
pub mod target;

use crate::daemons::{Access, Flavor};
use crate::net::Net;
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
/// Associations whose variables are read, at most: a few peers show the
/// largest answer, and the bound keeps the packets a check sends fixed.
pub const MAX_ASSOCIATIONS: usize = 8;

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
    /// No control query was answered, but chrony's command port answered a
    /// remote source: no amplifier (its answers are no larger than the
    /// request), an information leak.
    InformationLeak,
    /// Nothing was answered to the probes' sources, but the daemon's config
    /// answers control queries from networks they are not in (`unprobed`).
    UnprobedNetworks,
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
    /// The association a `read_peer_var` asked for.
    pub association: Option<u16>,
    /// The source address it was sent from.
    pub from: IpAddr,
    /// The port it was sent to: the target's, or chrony's command port.
    pub port: u16,
    pub name: String,
    pub mode: u8,
    pub kind: QueryKind,
    pub sent: usize,
    /// Sum over every datagram received within the wait.
    pub received: usize,
    pub datagrams: usize,
    /// received / sent.
    pub amplification: f64,
    /// The first few datagrams as their headers read (NTP only).
    pub replies: Vec<Reply>,
    /// What the answer tells whoever gets it: the daemon's version, kernel,
    /// peers, reference. Empty without an answer.
    pub learned: Vec<String>,
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
    /// The query that got it (`None` when no control query was answered).
    pub worst_query: Option<String>,
    pub queries: Vec<QueryResult>,
    /// Networks the daemon's config answers control queries from that no
    /// probe came from: not measured, and not "no amplification".
    pub unprobed: Vec<Unprobed>,
}

/// A network the daemon's config answers monitoring queries from, which
/// none of the check's sources is in.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Unprobed {
    /// `10.0.0.0/8`; `0.0.0.0/0` or `::/0` for a default entry that a more
    /// specific one hides from every source.
    pub network: String,
    pub config: String,
    pub line: usize,
    /// What hosts there get.
    pub answers: String,
}

impl Unprobed {
    fn sentence(&self, sources: &str) -> String {
        format!(
            "{} line {} lets hosts in {} query the daemon: they get {}; not measured, since the probes came \
             from {sources} only",
            self.config, self.line, self.network, self.answers
        )
    }
}

impl Check {
    /// The control queries that were answered.
    pub fn answered_control(&self) -> Vec<&QueryResult> {
        self.answered(QueryKind::Control)
    }

    fn answered(&self, kind: QueryKind) -> Vec<&QueryResult> {
        self.queries
            .iter()
            .filter(|q| q.kind == kind && q.answered())
            .collect()
    }

    /// The sources the check's queries came from, in order, once each.
    pub fn sources(&self) -> Vec<IpAddr> {
        let mut sources = vec![self.from];
        for q in &self.queries {
            if !sources.contains(&q.from) {
                sources.push(q.from);
            }
        }
        sources
    }

    /// Adds the networks `unprobed` found, and says so in the verdict when
    /// nothing else failed.
    pub fn note_unprobed(&mut self, unprobed: Vec<Unprobed>) {
        if !unprobed.is_empty() && self.verdict == Verdict::NoAmplification {
            self.verdict = Verdict::UnprobedNetworks;
        }
        self.unprobed.extend(unprobed);
    }

    /// What the answers told this source, one line per answered query.
    fn leaks(&self) -> Vec<String> {
        self.queries
            .iter()
            .filter(|q| !q.learned.is_empty())
            .map(|q| format!("{}: {}", q.name, q.learned.join(", ")))
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
                    (_, false, _) => "ok",
                    (_, true, SourceKind::Trusted) => "info",
                    (_, true, SourceKind::Remote) => "failed",
                };
                let mut line = if q.from == self.from {
                    format!("{label}: {}: {}", q.name, q.figures())
                } else {
                    format!("{label}: {} from {}: {}", q.name, q.from, q.figures())
                };
                if !q.learned.is_empty() && q.kind != QueryKind::TimeService {
                    line.push_str(&format!("; tells {}", q.learned.join(", ")));
                }
                line
            })
            .collect();
        let sources = self.source_list();
        for u in &self.unprobed {
            lines.push(format!("failed: {}", u.sentence(&sources)));
        }
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
            Verdict::Amplifier | Verdict::InformationLeak | Verdict::UnprobedNetworks => {}
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
        let mut parts = Vec::new();
        let control = self.answered_control();
        if !control.is_empty() {
            let answered: Vec<String> = control
                .iter()
                .map(|q| {
                    format!(
                        "{} ({} bytes for {}, {}x)",
                        q.name, q.received, q.sent, q.amplification
                    )
                })
                .collect();
            parts.push(format!(
                "the NTP daemon at {target} answered {} from {from}, an address it should treat as any host on the \
                 Internet: an attacker can send these with a forged source and the daemon reflects up to {}x the \
                 traffic onto the victim ({}; DRDoS, CVE-2013-5211); give its default restrict lines noquery",
                answered.join(", "),
                self.max_amplification,
                self.worst_query.as_deref().unwrap_or("")
            ));
        }
        if !self.answered(QueryKind::Command).is_empty() {
            parts.push(format!(
                "chrony's command port at {}:{} answered {from}: not an amplifier (its answers are no larger than \
                 the request) but an information leak to any host; keep `cmdallow` to 127.0.0.1 and ::1 and \
                 `bindcmdaddress` on loopback",
                target.ip(),
                packet::CHRONY_COMMAND_PORT
            ));
        }
        let leaks = self.leaks();
        if !leaks.is_empty() {
            parts.push(format!("a remote host learns: {}", leaks.join("; ")));
        }
        let sources = self.source_list();
        parts.extend(self.unprobed.iter().map(|u| u.sentence(&sources)));
        Some(parts.join(". "))
    }

    /// `127.0.0.2`, or `127.0.0.3, 127.0.0.4 and 127.0.0.5`.
    fn source_list(&self) -> String {
        let sources: Vec<String> = self.sources().iter().map(IpAddr::to_string).collect();
        match sources.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        }
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

/// One packet of the check: a query, and the association it asks about
/// (`ReadPeerVar` only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub query: Query,
    pub association: u16,
}

impl From<Query> for Probe {
    fn from(query: Query) -> Self {
        Probe {
            query,
            association: 0,
        }
    }
}

impl Probe {
    pub fn packet(self) -> Vec<u8> {
        self.query.packet_for(self.association)
    }

    fn association(self) -> Option<u16> {
        (self.query == Query::ReadPeerVar).then_some(self.association)
    }

    pub fn name(self) -> String {
        match self.association() {
            Some(id) => format!("mode 6 READVAR of association {id}"),
            None => self.query.name().to_string(),
        }
    }
}

/// The associations READSTAT's answer lists, at most `MAX_ASSOCIATIONS`.
pub fn peer_probes(readstat: &[Vec<u8>]) -> Vec<Probe> {
    packet::associations(&packet::mode6_data(readstat))
        .into_iter()
        .take(MAX_ASSOCIATIONS)
        .map(|association| Probe {
            query: Query::ReadPeerVar,
            association,
        })
        .collect()
}

/// System variables that tell who runs what (`ntpq -c rv`), and the peer
/// variables that tell whom it talks to (`ntpq -c "rv ID"`).
const TELLING_VARIABLES: [&str; 5] = ["version", "processor", "system", "srcadr", "refid"];

/// What one answer tells whoever gets it.
fn learned(query: Query, datagrams: &[Vec<u8>]) -> Vec<String> {
    if datagrams.is_empty() {
        return Vec::new();
    }
    match query {
        Query::Time => Vec::new(),
        Query::ReadVar | Query::ReadPeerVar => {
            let vars = packet::variables(&packet::mode6_data(datagrams));
            TELLING_VARIABLES
                .iter()
                .filter_map(|name| vars.iter().find(|(n, _)| n == name))
                .map(|(n, v)| format!("{n}={v:?}"))
                .collect()
        }
        Query::ReadStat => {
            let ids = packet::associations(&packet::mode6_data(datagrams));
            if ids.is_empty() {
                return Vec::new();
            }
            vec![format!("{} association IDs (one per peer)", ids.len())]
        }
        Query::MonGetList | Query::PeerList => {
            let items: usize = datagrams
                .iter()
                .filter(|d| packet::analyze(d).is_some_and(|r| !r.error))
                .map(|d| d.len().saturating_sub(8))
                .sum();
            if items == 0 {
                return Vec::new();
            }
            let table = match query {
                Query::MonGetList => "its recent clients' addresses",
                _ => "its peers' addresses",
            };
            vec![format!("{items} bytes of {table}")]
        }
        Query::ChronyTracking | Query::ChronySources => datagrams
            .iter()
            .filter_map(|d| packet::chrony_reply(d))
            .filter_map(|r| match (r.tracking, r.sources) {
                (Some((reference, _)), _) if reference == "none" => {
                    Some("its reference: none (not synchronised)".to_string())
                }
                (Some((reference, stratum)), _) => {
                    Some(format!("its reference {reference} at stratum {stratum}"))
                }
                (None, Some(n)) => Some(format!("that it has {n} sources")),
                _ => None,
            })
            .collect(),
    }
}

/// Turns the datagrams received for each query into the check's figures and
/// verdict.
pub fn evaluate(target: SocketAddr, from: IpAddr, answers: &[(Probe, Vec<Vec<u8>>)]) -> Check {
    let source = if target::is_trusted_source(from) {
        SourceKind::Trusted
    } else {
        SourceKind::Remote
    };
    let queries: Vec<QueryResult> = answers
        .iter()
        .map(|(probe, datagrams)| {
            let query = probe.query;
            let sent = probe.packet().len();
            let received = datagrams.iter().map(Vec::len).sum();
            let ntp = query.kind() != QueryKind::Command;
            QueryResult {
                query,
                association: probe.association(),
                from,
                port: query.port(target.port()),
                name: probe.name(),
                mode: query.mode(),
                kind: query.kind(),
                sent,
                received,
                datagrams: datagrams.len(),
                amplification: packet::amplification(sent, received),
                replies: datagrams
                    .iter()
                    .take(if ntp { KEPT_REPLIES } else { 0 })
                    .filter_map(|d| packet::analyze(d))
                    .collect(),
                learned: learned(query, datagrams),
            }
        })
        .collect();
    let control = || queries.iter().filter(|q| q.kind == QueryKind::Control);
    // The first of equals: the earlier query names it.
    let worst = control().filter(|q| q.answered()).reduce(|w, q| {
        if q.amplification > w.amplification {
            q
        } else {
            w
        }
    });
    let max_amplification = worst.map_or(0.0, |q| q.amplification);
    let worst_query = worst.map(|q| q.name.clone());
    let command_answered = queries
        .iter()
        .any(|q| q.kind == QueryKind::Command && q.answered());
    let verdict = match source {
        SourceKind::Remote if control().any(QueryResult::answered) => Verdict::Amplifier,
        SourceKind::Remote if command_answered => Verdict::InformationLeak,
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
        worst_query,
        queries,
        unprobed: Vec::new(),
    }
}

/// The networks `flavor`'s config `text` (at `config`) answers monitoring
/// queries from that none of `sources` is in: for each source the most
/// specific entry containing it decides, as in the daemons; an open entry
/// that decides for no source, and whose line decides for none either (one
/// line can give both families' entries), was not measured. Loopback
/// networks are left out (only this host is in them).
pub fn unprobed(flavor: Flavor, config: &str, text: &str, sources: &[IpAddr]) -> Vec<Unprobed> {
    let entries = flavor.query_access(&crate::daemons::directives(flavor, text));
    let host = |ip: IpAddr| Net::new(ip, if ip.is_ipv4() { 32 } else { 128 });
    let deciding: Vec<usize> = sources
        .iter()
        .filter_map(|s| {
            let s = host(*s)?;
            let within = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.net.contains(s));
            within
                .max_by_key(|(i, e)| (e.net.prefix, *i))
                .map(|(i, _)| i)
        })
        .collect();
    let measured_lines: Vec<usize> = deciding.iter().map(|i| entries[*i].line).collect();
    entries
        .iter()
        .enumerate()
        .filter(|(i, e)| e.open && !e.net.is_loopback() && !deciding.contains(i))
        .filter(|(_, e)| !measured_lines.contains(&e.line))
        .map(|(_, e)| Unprobed {
            network: e.net.to_string(),
            config: config.to_string(),
            line: e.line,
            answers: flavor.query_answers().to_string(),
        })
        .collect()
}

/// `unprobed` for the daemons whose config is on this host (`read` gives a
/// file's text): what `verify` of a daemon on this host adds.
pub fn unprobed_here(read: &dyn Fn(&str) -> Option<String>, sources: &[IpAddr]) -> Vec<Unprobed> {
    Flavor::all()
        .filter_map(|f| Some((f, read(f.config().as_str())?)))
        .flat_map(|(f, text)| unprobed(f, f.config().as_str(), &text, sources))
        .collect()
}

/// Sends one packet and returns what answers it: `socket::exchange`, or a
/// hand-written responder in tests.
pub type Exchange<'a> =
    dyn FnMut(IpAddr, SocketAddr, &[u8], Duration) -> Result<socket::Answer, String> + 'a;

/// `verify`: sends every query in turn (each waits `wait` for its answers;
/// READVAR of each association READSTAT listed right after it; chrony's
/// command port queries to port 323 of the target) and evaluates the
/// answers. When nothing answered any of them, the verdict says so instead
/// (`NothingListens`, `NoAnswer`): silence proves no access control when
/// nothing may be there to answer. `send` is `socket::exchange` outside tests.
pub fn run(
    target: SocketAddr,
    from: IpAddr,
    wait: Duration,
    send: &mut Exchange<'_>,
) -> Result<Check, String> {
    let mut answers: Vec<(Probe, Vec<Vec<u8>>)> = Vec::new();
    let mut port_unreachable = false;
    let mut ask = |probe: Probe, answers: &mut Vec<(Probe, Vec<Vec<u8>>)>| {
        let to = SocketAddr::new(target.ip(), probe.query.port(target.port()));
        let answer =
            send(from, to, &probe.packet(), wait).map_err(|e| format!("{}: {e}", probe.name()))?;
        // A closed command port (chrony's 323 on loopback only, as it should
        // be) says nothing of whether a daemon listens on the NTP port.
        port_unreachable |= answer.port_unreachable && to.port() == target.port();
        answers.push((probe, answer.datagrams));
        Ok::<_, String>(())
    };
    for query in Query::ALL {
        ask(query.into(), &mut answers)?;
        if query == Query::ReadStat {
            let readstat = answers.last().map(|a| a.1.clone()).unwrap_or_default();
            for probe in peer_probes(&readstat) {
                ask(probe, &mut answers)?;
            }
        }
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
/// 127.0.0.3, each other query from an address of its own. No restrict
/// line of the plans trusts them (they stand for any host), and no rate limit
/// of the daemon (`limited`, `discard`) sees two packets from one address, so
/// an answer missing is the access control's doing, never the rate limit's.
/// None is `verify`'s default source (127.0.0.2): a `verify` right after
/// `apply` is not rate-limited by the check's packets either.
pub const BATCH_SOURCES: [(Query, IpAddr); 7] = [
    (Query::ReadVar, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4))),
    (Query::ReadStat, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5))),
    (Query::MonGetList, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6))),
    (Query::PeerList, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7))),
    (
        Query::ChronyTracking,
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 8)),
    ),
    (
        Query::ChronySources,
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)),
    ),
    // Last: its answer ends the wait (see `socket::exchange_batch`).
    (Query::Time, BATCH_TIME_FROM),
];

/// The source of `apply`'s time request, and so of its check as reported.
pub const BATCH_TIME_FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// The sources of the second batch, which READSTAT's answer asks for: its
/// time request (last, as in the first), then one per association.
const PEER_BATCH_TIME_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 15);
const PEER_BATCH_FIRST: u8 = 16;

/// How long the batch waits after the time request was answered, for the
/// kernel to deliver what the daemon sent before it. A margin only: on
/// loopback those answers are already queued by then (`scripts/answer-order`
/// measures the order; BENCHMARKS.md has its figures).
pub const SETTLE: Duration = Duration::from_millis(10);

/// Sends a batch of `(source, destination, packet)` and returns the
/// datagrams of each: `socket::exchange_batch`, or a hand-written responder
/// in tests.
pub type ExchangeBatch<'a> =
    dyn FnMut(&[(IpAddr, SocketAddr, Vec<u8>)], Duration, Option<Duration>) -> BatchReplies + 'a;

/// The datagrams that answered each packet of a batch, in the batch's order.
pub type BatchReplies = Result<Vec<Vec<Vec<u8>>>, String>;

/// One batch: each probe from its source, to the target (or chrony's
/// command port on its host), the time request last.
fn send_batch(
    target: SocketAddr,
    probes: &[(Probe, IpAddr)],
    wait: Duration,
    send: &mut ExchangeBatch<'_>,
) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let packets: Vec<(IpAddr, SocketAddr, Vec<u8>)> = probes
        .iter()
        .map(|(p, from)| {
            let to = SocketAddr::new(target.ip(), p.query.port(target.port()));
            (*from, to, p.packet())
        })
        .collect();
    let replies = send(&packets, wait, Some(SETTLE))?;
    if replies.len() != packets.len() {
        return Err(format!(
            "{} answers for {} queries",
            replies.len(),
            packets.len()
        ));
    }
    Ok(replies)
}

/// `apply`'s check of the daemon on this host: every query at once, each
/// from its `BATCH_SOURCES` address, the time request last. When the time
/// request is answered the wait ends `SETTLE` later (a daemon answers its
/// datagrams in order); a daemon that serves this source no time gets the
/// whole `wait`. When READSTAT was answered, a second batch reads each
/// association's variables, each from an address of its own. Same figures
/// and verdict as `run`, which `verify` uses for any target (there, from one
/// address, one query at a time).
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
    let first: Vec<(Probe, IpAddr)> = BATCH_SOURCES
        .iter()
        .map(|(q, from)| (Probe::from(*q), *from))
        .collect();
    let replies = send_batch(target, &first, wait, send)?;
    let mut sent: Vec<(Probe, IpAddr, Vec<Vec<u8>>)> = first
        .iter()
        .zip(replies)
        .map(|((p, from), r)| (*p, *from, r))
        .collect();
    let readstat = sent
        .iter()
        .find(|s| s.0.query == Query::ReadStat)
        .map(|s| s.2.clone())
        .unwrap_or_default();
    let peers = peer_probes(&readstat);
    if !peers.is_empty() {
        let mut second: Vec<(Probe, IpAddr)> = peers
            .iter()
            .zip(PEER_BATCH_FIRST..)
            .map(|(p, n)| (*p, IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))))
            .collect();
        second.push((Query::Time.into(), PEER_BATCH_TIME_FROM.into()));
        let replies = send_batch(target, &second, wait, send)?;
        let peer_replies = second
            .iter()
            .zip(replies)
            .filter(|(p, _)| p.0.query == Query::ReadPeerVar);
        sent.extend(peer_replies.map(|((p, from), r)| (*p, *from, r)));
    }
    // Reported in `run`'s order, each with its own source.
    let mut ordered: Vec<(Probe, IpAddr, Vec<Vec<u8>>)> = Vec::new();
    for query in Query::ALL {
        ordered.extend(sent.iter().filter(|s| s.0.query == query).cloned());
        if query == Query::ReadStat {
            ordered.extend(
                sent.iter()
                    .filter(|s| s.0.query == Query::ReadPeerVar)
                    .cloned(),
            );
        }
    }
    let answers: Vec<(Probe, Vec<Vec<u8>>)> =
        ordered.iter().map(|(p, _, r)| (*p, r.clone())).collect();
    let mut check = evaluate(target, BATCH_TIME_FROM, &answers);
    for (result, (_, from, _)) in check.queries.iter_mut().zip(&ordered) {
        result.from = *from;
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
            &[(local, target, Query::Time.packet())],
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
                (Query::PeerList, 48, 0),
                (Query::ChronyTracking, 108, 0),
                (Query::ChronySources, 32, 0)
            ]
        );
        assert_eq!(
            check.lines()[1],
            "ok: mode 6 READVAR: sent 12 bytes, no answer"
        );
        assert_eq!(
            check.lines()[7],
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
        Box::new(
            move |probes: &[(IpAddr, SocketAddr, Vec<u8>)], wait, settle| {
                assert_eq!(
                    settle,
                    Some(SETTLE),
                    "the batch ends once the time request is answered"
                );
                probes
                    .iter()
                    .map(|(from, to, packet)| {
                        let query = Query::ALL
                            .into_iter()
                            .find(|q| q.packet() == *packet)
                            .unwrap();
                        assert_eq!(to.port(), query.port(123), "{query:?}");
                        seen.push((*from, query));
                        single(*from, *to, packet, wait)
                    })
                    .collect()
            },
        )
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
                (ip("127.0.0.8"), Query::ChronyTracking),
                (ip("127.0.0.9"), Query::ChronySources),
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
        let mut send = |_: &[(IpAddr, SocketAddr, Vec<u8>)],
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

        // chrony serving another network: silence on 123, and its command
        // port closed to this host (ICMP from 323 only). Something listens
        // on 123: that is no answer, not nothing listening.
        let mut chrony_elsewhere = |_: IpAddr, to: SocketAddr, _: &[u8], _: Duration| {
            Ok(socket::Answer {
                datagrams: vec![],
                port_unreachable: to.port() == 323,
            })
        };
        let check = run(local(), target::DEFAULT_FROM, WAIT, &mut chrony_elsewhere).unwrap();
        assert_eq!(check.verdict, Verdict::NoAnswer);
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
    /// A mode 6 answer to `request` carrying `data` in one datagram.
    fn mode6_answer(request: &[u8], data: &[u8]) -> Vec<u8> {
        let mut d = request[..12].to_vec();
        d[1] |= 0x80;
        d[10..12].copy_from_slice(&(data.len() as u16).to_be_bytes());
        d.extend(data);
        d
    }

    /// An NTPsec without noquery: its system variables, two associations,
    /// and a peer's variables padded to 728 bytes.
    fn open_ntpsec(packet: &[u8]) -> Vec<Vec<u8>> {
        if packet[0] == 0x1b {
            let mut time = packet.to_vec();
            time[0] = 0x24;
            return vec![time];
        }
        if packet[0] & 0x07 != 6 {
            return vec![];
        }
        let association = u16::from_be_bytes([packet[6], packet[7]]);
        let data: Vec<u8> = match (packet[1], association) {
            (0x01, _) => vec![0xb1, 0xc2, 0x96, 0x1a, 0xb1, 0xc3, 0x91, 0x14],
            (0x02, 0) => {
                let mut v = b"version=\"ntpd ntpsec-1.2.2\", processor=\"x86_64\", system=\"Linux/6.1.0\", leap=00".to_vec();
                v.resize(400, b' ');
                v
            }
            (0x02, id) => {
                let mut v =
                    format!("srcadr=10.123.0.{}, srcport=123, stratum=2", id & 0xff).into_bytes();
                v.resize(716, b' ');
                v
            }
            _ => return vec![],
        };
        vec![mode6_answer(packet, &data)]
    }

    #[test]
    fn the_worst_answer_is_a_peer_s_variables_and_the_leak_is_named() {
        let mut send = |_: IpAddr, _: SocketAddr, packet: &[u8], _: Duration| {
            Ok(socket::Answer {
                datagrams: open_ntpsec(packet),
                port_unreachable: false,
            })
        };
        let check = run(local(), target::DEFAULT_FROM, WAIT, &mut send).unwrap();
        let asked: Vec<(Query, Option<u16>, usize)> = check
            .queries
            .iter()
            .map(|q| (q.query, q.association, q.received))
            .collect();
        assert_eq!(
            asked[..5],
            [
                (Query::Time, None, 48),
                (Query::ReadVar, None, 412),
                (Query::ReadStat, None, 20),
                (Query::ReadPeerVar, Some(0xb1c2), 728),
                (Query::ReadPeerVar, Some(0xb1c3), 728),
            ]
        );
        assert_eq!(check.verdict, Verdict::Amplifier);
        assert_eq!(check.max_amplification, 60.67);
        assert_eq!(
            check.worst_query.as_deref(),
            Some("mode 6 READVAR of association 45506")
        );
        assert_eq!(
            check.queries[1].learned,
            [
                r#"version="ntpd ntpsec-1.2.2""#,
                r#"processor="x86_64""#,
                r#"system="Linux/6.1.0""#
            ]
        );
        assert_eq!(check.queries[3].learned, [r#"srcadr="10.123.0.194""#]);
        let failure = check.failure().unwrap();
        assert!(
            failure.contains(
                "up to 60.67x the traffic onto the victim (mode 6 READVAR of association 45506"
            ) && failure
                .contains(r#"a remote host learns: mode 6 READVAR: version="ntpd ntpsec-1.2.2""#)
                && failure
                    .contains(r#"mode 6 READVAR of association 45507: srcadr="10.123.0.195""#),
            "{failure}"
        );
        assert!(check.lines()[1].ends_with(
            r#"; tells version="ntpd ntpsec-1.2.2", processor="x86_64", system="Linux/6.1.0""#
        ));
    }

    #[test]
    fn associations_read_are_bounded() {
        let mut many = vec![0x16, 0x81, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let ids: Vec<u8> = (1..=20u16)
            .flat_map(|id| [0, id as u8, 0x96, 0x1a])
            .collect();
        many[10..12].copy_from_slice(&(ids.len() as u16).to_be_bytes());
        many.extend(ids);
        assert_eq!(peer_probes(&[many]).len(), MAX_ASSOCIATIONS);
    }

    #[test]
    fn the_batch_reads_each_association_from_an_address_of_its_own() {
        let mut seen: Vec<(IpAddr, Vec<u8>)> = Vec::new();
        let mut send =
            |probes: &[(IpAddr, SocketAddr, Vec<u8>)], _: Duration, _: Option<Duration>| {
                Ok(probes
                    .iter()
                    .map(|(from, _, packet)| {
                        seen.push((*from, packet.clone()));
                        open_ntpsec(packet)
                    })
                    .collect())
            };
        let check = run_batch(local(), WAIT, &mut send).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let second: Vec<IpAddr> = seen[7..].iter().map(|s| s.0).collect();
        assert_eq!(
            second,
            [ip("127.0.0.16"), ip("127.0.0.17"), ip("127.0.0.15")]
        );
        assert_eq!(
            seen[9].1,
            Query::Time.packet(),
            "the time request last again"
        );
        let peers: Vec<(Option<u16>, IpAddr)> = check
            .queries
            .iter()
            .filter(|q| q.query == Query::ReadPeerVar)
            .map(|q| (q.association, q.from))
            .collect();
        assert_eq!(
            peers,
            [
                (Some(0xb1c2), ip("127.0.0.16")),
                (Some(0xb1c3), ip("127.0.0.17"))
            ]
        );
        assert_eq!(check.queries[3].query, Query::ReadPeerVar, "after READSTAT");
        assert_eq!(check.max_amplification, 60.67);
    }

    #[test]
    fn chrony_s_command_port_answering_is_a_leak_not_an_amplifier() {
        let mut send = |_: IpAddr, to: SocketAddr, packet: &[u8], _: Duration| {
            let mut datagrams = vec![];
            if to.port() == packet::CHRONY_COMMAND_PORT && packet[5] == 33 {
                let mut reply = vec![0u8; 108];
                reply[..2].copy_from_slice(&[6, 2]);
                reply[7] = 5; // RPY_TRACKING
                reply[32..36].copy_from_slice(&[10, 123, 0, 2]);
                reply[49] = 1;
                reply[53] = 3;
                datagrams.push(reply);
            }
            Ok(socket::Answer {
                datagrams,
                port_unreachable: false,
            })
        };
        let check = run(local(), target::DEFAULT_FROM, WAIT, &mut send).unwrap();
        assert_eq!(check.verdict, Verdict::InformationLeak);
        assert_eq!(check.max_amplification, 0.0);
        let tracking = &check.queries[5];
        assert_eq!((tracking.port, tracking.amplification), (323, 1.0));
        assert_eq!(tracking.learned, ["its reference 10.123.0.2 at stratum 3"]);
        let failure = check.failure().unwrap();
        assert!(
            failure.starts_with(
                "chrony's command port at 127.0.0.1:323 answered 127.0.0.2: not an amplifier"
            ) && failure.contains("information leak")
                && failure.contains("REQ_TRACKING: its reference 10.123.0.2 at stratum 3"),
            "{failure}"
        );
        assert!(check.lines()[5].starts_with(
            "failed: chrony command port REQ_TRACKING: sent 108 bytes, received 108 bytes"
        ));
    }

    fn from(s: &str) -> Vec<IpAddr> {
        vec![s.parse().unwrap()]
    }

    const NTP_BASE: &str =
        "restrict default kod limited nomodify noquery nopeer\nrestrict 127.0.0.1\nrestrict ::1\n";

    #[test]
    fn a_private_network_without_noquery_is_unprobed_from_loopback() {
        let conf = format!("{NTP_BASE}restrict 10.0.0.0 mask 255.0.0.0 nomodify\n");
        let found = unprobed(Flavor::NTPD, "/etc/ntp.conf", &conf, &from("127.0.0.2"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].network.as_str(), found[0].line),
            ("10.0.0.0/8", 4)
        );
        assert!(found[0].answers.contains("mode 6"), "{found:?}");
        // Probed from inside it: measured, nothing to add.
        assert!(unprobed(Flavor::NTPD, "/etc/ntp.conf", &conf, &from("10.1.2.3")).is_empty());
        // With noquery: nothing answered there.
        let closed = format!("{NTP_BASE}restrict 10.0.0.0 mask 255.0.0.0 nomodify noquery\n");
        assert!(unprobed(
            Flavor::NTPSEC,
            "/etc/ntpsec/ntp.conf",
            &closed,
            &from("127.0.0.2")
        )
        .is_empty());
        // The embedded templates: nothing.
        for f in [Flavor::NTPD, Flavor::NTPSEC, Flavor::CHRONY] {
            let text = crate::daemons::directives(f, f.template_text());
            assert!(
                text.is_empty()
                    || unprobed(f, "t", f.template_text(), &from("127.0.0.2")).is_empty(),
                "{f:?}"
            );
        }
    }

    #[test]
    fn an_open_default_hidden_from_the_probe_by_a_loopback_entry_is_unprobed() {
        let conf = "restrict default kod limited nomodify\nrestrict -6 default noquery\nrestrict 127.0.0.0 mask 255.0.0.0 noquery\n";
        let found = unprobed(Flavor::NTPD, "/etc/ntp.conf", conf, &from("127.0.0.2"));
        let nets: Vec<&str> = found.iter().map(|u| u.network.as_str()).collect();
        assert_eq!(nets, ["0.0.0.0/0"]);
        // Where the probe falls to the default, it measured it.
        let plain = "restrict default kod limited nomodify\nrestrict -6 default noquery\nrestrict 127.0.0.1\n";
        assert!(unprobed(Flavor::NTPD, "/etc/ntp.conf", plain, &from("127.0.0.2")).is_empty());
    }

    #[test]
    fn chrony_s_command_port_open_to_a_network_is_unprobed() {
        let open = "cmdallow 10.0.0.0/8\nbindcmdaddress 0.0.0.0\n";
        let found = unprobed(
            Flavor::CHRONY,
            "/etc/chrony/chrony.conf",
            open,
            &from("127.0.0.2"),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].network, "10.0.0.0/8");
        assert!(found[0].answers.contains("command port 323"), "{found:?}");
        // Bound to loopback (chronyd's default): no other host reaches it.
        assert!(unprobed(
            Flavor::CHRONY,
            "c",
            "cmdallow 10.0.0.0/8\n",
            &from("127.0.0.2")
        )
        .is_empty());
        // `cmdallow all` lets the probe in: measured.
        assert!(unprobed(
            Flavor::CHRONY,
            "c",
            "cmdallow all\nbindcmdaddress 0.0.0.0\n",
            &from("127.0.0.2")
        )
        .is_empty());
    }

    #[test]
    fn unprobed_networks_turn_no_amplification_into_not_measured() {
        let mut send = answer_with(vec![(Query::Time, vec![48])]);
        let mut check = run(local(), target::DEFAULT_FROM, WAIT, &mut send).unwrap();
        let conf = format!("{NTP_BASE}restrict 10.0.0.0 mask 255.0.0.0\n");
        let found = unprobed(
            Flavor::NTPSEC,
            "/etc/ntpsec/ntp.conf",
            &conf,
            &check.sources(),
        );
        check.note_unprobed(found);
        assert_eq!(check.verdict, Verdict::UnprobedNetworks);
        let failure = check.failure().unwrap();
        assert!(
            failure.starts_with("/etc/ntpsec/ntp.conf line 4 lets hosts in 10.0.0.0/8 query the daemon: they get mode 6 answers")
                && failure.ends_with("not measured, since the probes came from 127.0.0.2 only"),
            "{failure}"
        );
        assert!(check
            .lines()
            .iter()
            .any(|l| l.starts_with("failed: /etc/ntpsec/ntp.conf line 4")));
        let read = |p: &str| (p == "/etc/ntpsec/ntp.conf").then(|| conf.clone());
        assert_eq!(unprobed_here(&read, &from("127.0.0.2")).len(), 1);
    }
}
