//! What a daemon says of its time sources and its own synchronisation, for
//! `ntp-provision status`, and the helpers every daemon's parsers share (the
//! parsers themselves live with their daemon):
//!
//! - classic ntpd and NTPsec: `ntpq -pn` and `ntpq -c "rv 0 leap,stratum,offset,refid"`;
//! - chrony: `chronyc -n -c sources` and `chronyc -n -c tracking`;
//! - OpenNTPD: `ntpctl -s peers` and `ntpctl -s status`.
//!
//! and, to tell what became of each source the config names (`Source`):
//!
//! - ntpq: `ntpq -n -c associations`, then one `rv` per association;
//! - chronyc: `sources -a` with names as configured (`-N`) and with
//!   addresses (`-n`), and `authdata -a`;
//! - ntpctl: `-s peers` again, which names each peer's configured name.
//!
//! Pure functions only: this module must not run commands; the probes run
//! elsewhere and hand their text in here. ntpq exits 0 even when it reached
//! no daemon, so its text, not its status, decides success.
//!
//! A field the daemon prints as `-`, or in a form not understood, comes back
//! as `None` instead of failing the whole report: a status display with a gap
//! is more use than none. A line whose shape is wrong is an error, since it
//! means the output is not what the parser thinks it is.

use serde::Serialize;

/// One time source as the daemon sees it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Peer {
    /// As printed: an address, or a name (ntpq truncates names to its column).
    pub remote: String,
    /// ntpq only, as printed, dots included (`.POOL.`, `.INIT.`, `.GPS.`).
    pub refid: Option<String>,
    pub stratum: Option<u8>,
    /// Reachability register, one bit per poll; in JSON in octal as ntpq
    /// and chronyc print it (`"377"`: the last 8 polls answered).
    #[serde(serialize_with = "octal_reach")]
    #[schemars(with = "Option<String>")]
    pub reach: Option<u8>,
    /// Sub-second polls (chrony refclocks) truncate to 0.
    pub poll_seconds: Option<u32>,
    pub offset_ms: Option<f64>,
    /// ntpq and ntpctl only: `chronyc sources` has no delay column.
    pub delay_ms: Option<f64>,
    /// ntpq and ntpctl only: chrony's "+/- error" is an error bound, not jitter.
    pub jitter_ms: Option<f64>,
    pub selected: Selection,
}

/// What the daemon's selection did with a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// The source the clock follows (ntpq `*`/`o`, chronyc `*`, ntpctl `*`).
    SystemPeer,
    /// Good and combined, or kept as a backup (ntpq `+`/`#`, chronyc `+`,
    /// a valid ntpctl peer).
    Candidate,
    /// Sane but left out of the combination (ntpq `-` outlier and `.` excess,
    /// chronyc `-`).
    Outlier,
    /// Disagrees with the majority (ntpq and chronyc `x`).
    Falseticker,
    /// A pool association: it spawns the real sources and never serves time.
    Pool,
    /// Not (yet) usable: ntpq ` `, chronyc `?` and `~`, "peer not valid".
    Unusable,
    /// A mark this parser does not know.
    Unknown,
}

/// The daemon's own view of its synchronisation.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Sync {
    pub synchronised: bool,
    pub stratum: Option<u8>,
    pub offset_ms: Option<f64>,
    /// ntpq: `refid`; chronyc: the reference's address or name.
    pub refid: Option<String>,
    /// As the daemon prints it: `00`..`11` (ntpq), `Normal`, `Not synchronised`... (chronyc).
    pub leap: Option<String>,
}
/// The reach register in the base every daemon's tool prints it in: octal.
fn octal_reach<S: serde::Serializer>(reach: &Option<u8>, s: S) -> Result<S::Ok, S::Error> {
    match reach {
        Some(r) => s.serialize_str(&format!("{r:o}")),
        None => s.serialize_none(),
    }
}

/// How a config line names a time source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// `server`: one address.
    Server,
    /// `pool` (OpenNTPD: `servers`): every address the name gives.
    Pool,
    /// `peer`: symmetric mode.
    Peer,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Server => "server",
            SourceKind::Pool => "pool",
            SourceKind::Peer => "peer",
        }
    }
}

/// A time source as the config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    pub kind: SourceKind,
    /// As written: a name or an address.
    pub name: String,
}

/// What became of a configured source, worst first (a source is in the best
/// state of its addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// The daemon could not be asked, or does not say which address is this
    /// source's (classic ntpd does not keep a server's name once resolved).
    Unknown,
    /// The daemon has no address for it: the name did not resolve (yet), or
    /// it refused the address.
    Unresolved,
    /// Resolved, but no answer within the last 8 polls.
    Unreachable,
    /// It answers, and the daemon's selection did not take it (yet).
    Reachable,
    /// The daemon's selection takes it: the system peer or a candidate.
    Selected,
}

impl SourceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Unknown => "unknown",
            SourceState::Unresolved => "unresolved",
            SourceState::Unreachable => "unreachable",
            SourceState::Reachable => "reachable",
            SourceState::Selected => "selected",
        }
    }

    /// From a reach register and the selection's verdict.
    pub fn of(reach: Option<u8>, selected: Selection) -> SourceState {
        match (selected, reach) {
            (Selection::SystemPeer | Selection::Candidate, _) => SourceState::Selected,
            (_, Some(0)) => SourceState::Unreachable,
            (_, Some(_)) => SourceState::Reachable,
            (_, None) => SourceState::Unknown,
        }
    }
}

/// One address a configured source resolved to, as the daemon uses it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SourceAddress {
    pub address: String,
    pub state: SourceState,
    /// As `Peer::reach`: octal in JSON; `null` where the daemon keeps none
    /// (OpenNTPD).
    #[serde(serialize_with = "octal_reach")]
    #[schemars(with = "Option<String>")]
    pub reach: Option<u8>,
    /// Its answers are authenticated (a symmetric key or NTS).
    pub authenticated: bool,
    /// Authenticated by NTS.
    pub nts: bool,
    /// Why NTS does not authenticate it although the config asks for NTS
    /// (key establishment failed), if so.
    pub nts_failure: Option<String>,
}

/// A source the config names, and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Source {
    /// As configured, in full (ntpq's peer list cuts names to 15 columns).
    pub name: String,
    pub kind: SourceKind,
    /// The best state of its addresses; `unresolved` without any.
    pub state: SourceState,
    /// Whether any of its addresses is authenticated.
    pub authenticated: bool,
    /// Whether any of its addresses is authenticated by NTS.
    pub nts: bool,
    /// Without `nts`: why NTS key establishment failed, where it did.
    pub nts_failure: Option<String>,
    /// What it resolved to (a pool: every address it gave), in the daemon's order.
    pub addresses: Vec<SourceAddress>,
}

impl Source {
    pub fn new(configured: &Configured, addresses: Vec<SourceAddress>) -> Source {
        Source {
            name: configured.name.clone(),
            kind: configured.kind,
            state: addresses
                .iter()
                .map(|a| a.state)
                .max()
                .unwrap_or(SourceState::Unresolved),
            authenticated: addresses.iter().any(|a| a.authenticated),
            nts: addresses.iter().any(|a| a.nts),
            nts_failure: addresses
                .iter()
                .all(|a| !a.nts)
                .then(|| addresses.iter().find_map(|a| a.nts_failure.clone()))
                .flatten(),
            addresses,
        }
    }

    /// What is known of a source when the daemon says nothing of it.
    pub fn unknown(configured: &Configured) -> Source {
        Source {
            state: SourceState::Unknown,
            ..Source::new(configured, Vec::new())
        }
    }
}

/// Whether a config's name and a daemon's spelling of it are the same
/// source: addresses compare as addresses (`::1` and `0:0::1`), names
/// without case.
pub(super) fn same_host(configured: &str, printed: &str) -> bool {
    match (
        configured.parse::<std::net::IpAddr>(),
        printed.parse::<std::net::IpAddr>(),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => configured.eq_ignore_ascii_case(printed),
    }
}

pub(super) fn is_ntpq_header(line: &str) -> bool {
    let mut words = line.split_whitespace();
    words.next() == Some("remote") && words.next() == Some("refid")
}

pub(super) fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

pub(super) fn float(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

pub(super) fn octal(text: &str) -> Option<u8> {
    u8::from_str_radix(text, 8).ok()
}

/// ntpq prints long intervals as `17m`, `2h`, `3d`; ntpctl suffixes `s`.
pub(super) fn interval(text: &str) -> Option<u32> {
    let (number, unit) = match text.strip_suffix(|c: char| c.is_ascii_alphabetic()) {
        Some(number) => (number, &text[number.len()..]),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    number.parse::<u32>().ok()?.checked_mul(scale)
}

pub(super) fn log2_seconds(exponent: i32) -> Option<u32> {
    match u32::try_from(exponent) {
        Ok(exponent) => 1u32.checked_shl(exponent),
        Err(_) => Some(0),
    }
}
#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Each peer's name and how the daemon selected it, in order.
    pub(crate) fn selections(peers: &[Peer]) -> Vec<(&str, Selection)> {
        peers
            .iter()
            .map(|p| (p.remote.as_str(), p.selected))
            .collect()
    }

    pub(crate) fn peer(remote: &str, selected: Selection) -> Peer {
        Peer {
            remote: remote.to_string(),
            refid: None,
            stratum: None,
            reach: None,
            poll_seconds: None,
            offset_ms: None,
            delay_ms: None,
            jitter_ms: None,
            selected,
        }
    }
    #[test]
    fn no_input_panics() {
        let inputs = [
            "",
            "\n",
            "*",
            "=",
            " ",
            ",",
            "=,=",
            "é",
            "*é",
            "x\u{0}",
            "remote refid\n*",
            "remote refid\n*a b c d e f g h i j k",
            "remote refid\n+ä\n",
            "leap=",
            "stratum=999",
            "offset=nan, leap=11",
            "^,*,,,,,,,,",
            "#,?,x,-1,-99999,9999,,inf,,",
            "peer\n \n*\n",
            "not resolved\n  *",
            "clock synced, stratum ",
            "clock offset is ms, clock unsynced",
        ];
        for input in inputs {
            let _ = super::super::ntp_family::parse_ntpq_peers(input, input);
            let _ = super::super::ntp_family::parse_ntpq_rv(input);
            let _ = super::super::chrony::parse_chronyc_sources(input);
            let _ = super::super::chrony::parse_chronyc_tracking(input);
            let _ = super::super::openntpd::parse_ntpctl_status(input);
            let _ = super::super::openntpd::parse_ntpctl_peers(input);
        }
    }

    #[test]
    fn intervals() {
        assert_eq!(interval("64"), Some(64));
        assert_eq!(interval("31s"), Some(31));
        assert_eq!(interval("17m"), Some(1020));
        assert_eq!(interval("36h"), Some(129_600));
        assert_eq!(interval("2d"), Some(172_800));
        assert_eq!(interval("-"), None);
        assert_eq!(interval("5x"), None);
        assert_eq!(interval("99999999d"), None);
        assert_eq!(log2_seconds(-4), Some(0));
        assert_eq!(log2_seconds(31), Some(1 << 31));
        assert_eq!(log2_seconds(32), None);
    }
}
