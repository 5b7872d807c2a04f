//! systemd-timesyncd (package `systemd-timesyncd`, `vars.daemon:
//! timesyncd`): an SNTP client only. It opens no UDP 123 socket, serves
//! nobody and has no mode 6/7, no NTS and no config parser of its own.
//! Its config is a drop-in under /etc/systemd/timesyncd.conf.d/; its state
//! comes from `timedatectl show-timesync --all` (machine-readable) and
//! `timedatectl timesync-status` (the offset, delay and jitter in µs).

use super::sync::{
    first_line, same_host, Configured, Peer, Selection, Source, SourceAddress, SourceKind,
    SourceState, Sync,
};
use super::{
    Access, AnswerProbe, DaemonName, Directive, Finding, Flavor, Setting, Support, TimeDaemon,
    Verdict,
};
use crate::process::Output;
use std::net::IpAddr;

pub(super) struct Timesyncd;

impl Flavor {
    pub const TIMESYNCD: Flavor = Flavor(&Timesyncd);
}

impl DaemonName {
    pub const TIMESYNCD: DaemonName = DaemonName("timesyncd");
}

/// Why no config check runs, said once per written config.
const NO_PARSER: &str =
    "systemd-timesyncd has no config check (it ignores a line it cannot parse and logs it): \
     the restart's health check (`timedatectl show-timesync` answers) and `status` decide";

impl TimeDaemon for Timesyncd {
    fn id(&self) -> &'static str {
        "timesyncd"
    }
    fn title(&self) -> &'static str {
        "systemd-timesyncd"
    }
    fn package_name(&self) -> &'static str {
        "systemd-timesyncd"
    }
    fn config_path(&self) -> &'static str {
        "/etc/systemd/timesyncd.conf.d/ntp-provision.conf"
    }
    fn unit_name(&self) -> &'static str {
        "systemd-timesyncd.service"
    }
    fn template(&self) -> &'static str {
        "timesyncd.conf.j2"
    }
    fn template_text(&self) -> &'static str {
        include_str!("../../templates/timesyncd.conf.j2")
    }
    fn requested_as(&self) -> &'static [&'static str] {
        &["timesyncd"]
    }
    /// `dhcp_servers` keeps what dhclient's drop-in under /run adds.
    fn supports(&self, setting: Setting) -> Support {
        match setting {
            Setting::DhcpServers => Support::Always,
            _ => Support::No,
        }
    }
    fn check_unavailable(&self, _version: &str) -> Option<String> {
        Some(NO_PARSER.to_string())
    }
    fn check_config(&self, _file: &str) -> anyhow::Result<Verdict> {
        Ok(Verdict::NotChecked(NO_PARSER.to_string()))
    }
    /// It answers on D-Bus once started; `timedatectl` exits 1 until then.
    fn answer_probe(&self) -> AnswerProbe {
        AnswerProbe::Tool(&["timedatectl", "show-timesync"])
    }
    fn serves_time_to(&self, _: &Access, _: IpAddr, _: IpAddr) -> bool {
        false
    }
    fn client_only(&self) -> bool {
        true
    }
    fn config_dir_may_be_missing(&self) -> bool {
        true
    }
    /// `timedatectl show-timesync` activates org.freedesktop.timesync1.
    fn asking_starts_it(&self) -> bool {
        true
    }
    fn status_queries(&self) -> [&'static [&'static str]; 2] {
        [
            &["timedatectl", "show-timesync", "--all"],
            &["timedatectl", "timesync-status"],
        ]
    }
    fn parse_status(&self, show: &Output, figures: &Output) -> Result<(Vec<Peer>, Sync), String> {
        if show.code != 0 {
            return Err(format!(
                "timedatectl show-timesync failed: {}",
                show.stderr.trim()
            ));
        }
        let state = parse_show_timesync(&show.stdout)?;
        // Without a contacted server timesync-status has no figures to give.
        let figures = if figures.code == 0 {
            parse_timesync_status(&figures.stdout)
        } else {
            Figures::default()
        };
        Ok((
            state.peer(&figures).into_iter().collect(),
            state.sync(&figures),
        ))
    }
    fn configured_sources(&self, lines: &[Directive]) -> Vec<Configured> {
        configured_sources(lines)
    }
    fn sources(
        &self,
        configured: &[Configured],
        listing: &Output,
        _asked: &[Output],
    ) -> Result<Vec<Source>, String> {
        if listing.code != 0 {
            return Err(format!(
                "timedatectl show-timesync failed: {}",
                listing.stderr.trim()
            ));
        }
        Ok(sources(configured, &parse_show_timesync(&listing.stdout)?))
    }
    /// systemd's config files take `;` comments too.
    fn comment_marks(&self) -> &'static [char] {
        &[';']
    }
    /// Nothing to find: it listens nowhere and speaks no mode 6/7.
    fn lint(&self, _lines: &[Directive], _version: Option<&str>) -> Vec<Finding> {
        Vec::new()
    }
}

/// The last packet timesyncd took from its server (`NTPMessage={ ... }`).
#[derive(Debug, Clone, Default, PartialEq)]
struct Message {
    leap: Option<u8>,
    stratum: Option<u8>,
    /// timesyncd ignored it (a kiss-o'-death, a bad root distance...).
    ignored: bool,
    packets: Option<u64>,
}

/// What `timedatectl show-timesync --all` says.
#[derive(Debug, Clone, Default, PartialEq)]
struct State {
    /// The server it talks to now, as configured, and its address.
    server_name: Option<String>,
    server_address: Option<String>,
    poll_seconds: Option<u32>,
    message: Option<Message>,
}

/// Offset, delay and jitter from `timedatectl timesync-status`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Figures {
    offset_ms: Option<f64>,
    delay_ms: Option<f64>,
    jitter_ms: Option<f64>,
    leap: Option<String>,
}

impl State {
    /// Synchronised with its server: a packet from it taken, not ignored,
    /// from a synchronised server (leap not 3, stratum 1 to 15). timesyncd
    /// sets the clock from each packet it takes. The kernel's own flag
    /// (`timedatectl show`'s NTPSynchronized) is not asked: a container
    /// shares the host's clock and would report the host's daemon.
    fn synchronised(&self) -> bool {
        let Some(m) = &self.message else {
            return false;
        };
        self.server_address.is_some()
            && !m.ignored
            && m.packets.is_some_and(|n| n > 0)
            && m.leap.is_some_and(|l| l != 3)
            && m.stratum.is_some_and(|s| (1..16).contains(&s))
    }

    fn sync(&self, figures: &Figures) -> Sync {
        let synchronised = self.synchronised();
        Sync {
            synchronised,
            // Its own stratum, as ntpq and chronyc give theirs: one below its server.
            stratum: synchronised
                .then(|| self.message.as_ref()?.stratum?.checked_add(1))
                .flatten(),
            offset_ms: figures.offset_ms,
            refid: self.server_address.clone(),
            leap: figures.leap.clone(),
        }
    }

    /// The one server it talks to, if any.
    fn peer(&self, figures: &Figures) -> Option<Peer> {
        let remote = self
            .server_address
            .clone()
            .or_else(|| self.server_name.clone())?;
        let answered = self
            .message
            .as_ref()
            .is_some_and(|m| m.packets.is_some_and(|n| n > 0));
        Some(Peer {
            remote,
            refid: None,
            stratum: self.message.as_ref().and_then(|m| m.stratum),
            reach: None,
            poll_seconds: self.poll_seconds,
            offset_ms: figures.offset_ms.filter(|_| answered),
            delay_ms: figures.delay_ms.filter(|_| answered),
            jitter_ms: figures.jitter_ms.filter(|_| answered),
            selected: if self.synchronised() {
                Selection::SystemPeer
            } else {
                Selection::Unusable
            },
        })
    }
}

/// `KEY=VALUE` lines; empty values are absent. A line without `=` is not
/// timedatectl's output.
fn parse_show_timesync(stdout: &str) -> Result<State, String> {
    let mut state = State::default();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "timedatectl show-timesync: no KEY=VALUE in {line:?}"
            ));
        };
        let value = value.trim();
        let some = || (!value.is_empty()).then(|| value.to_string());
        match key {
            "ServerName" => state.server_name = some(),
            "ServerAddress" => state.server_address = some(),
            "PollIntervalUSec" => {
                state.poll_seconds = timespan_us(value).map(|us| (us / 1e6) as u32)
            }
            "NTPMessage" => state.message = parse_message(value),
            _ => {}
        }
    }
    if state.server_name.is_none() && state.message.is_none() && !stdout.contains("NTPServers=") {
        let said = first_line(stdout).unwrap_or("no output");
        return Err(format!(
            "timedatectl show-timesync: no timesyncd state in {said:?}"
        ));
    }
    Ok(state)
}

/// `{ Leap=0, Version=4, Mode=4, Stratum=8, ..., Ignored=no, PacketCount=1, Jitter=0 }`;
/// systemd 247 (Debian 11) prints `Ignored=no PacketCount=1` without the
/// comma, so fields are split at spaces too.
fn parse_message(value: &str) -> Option<Message> {
    let inner = value.strip_prefix('{')?.strip_suffix('}')?;
    let mut m = Message::default();
    for field in inner.split([',', ' ']) {
        let Some((k, v)) = field.split_once('=') else {
            continue;
        };
        match k {
            "Leap" => m.leap = v.parse().ok(),
            "Stratum" => m.stratum = v.parse().ok(),
            "Ignored" => m.ignored = v == "yes",
            "PacketCount" => m.packets = v.parse().ok(),
            _ => {}
        }
    }
    Some(m)
}

/// `timedatectl timesync-status`: `Name: value` lines.
fn parse_timesync_status(stdout: &str) -> Figures {
    let mut f = Figures::default();
    for line in stdout.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let ms = || timespan_us(value.trim()).map(|us| us / 1000.0);
        match key.trim() {
            "Offset" => f.offset_ms = ms(),
            "Delay" => f.delay_ms = ms(),
            "Jitter" => f.jitter_ms = ms(),
            "Leap" => f.leap = Some(value.trim().to_string()),
            _ => {}
        }
    }
    f
}

/// A systemd time span as it prints one ("1min 4s", "+30us", "-1.250ms",
/// "0"), in microseconds.
fn timespan_us(text: &str) -> Option<f64> {
    let (sign, text) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text.strip_prefix('+').unwrap_or(text)),
    };
    if text == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut any = false;
    for part in text.split_whitespace() {
        let split = part.find(|c: char| c.is_ascii_alphabetic() || c == 'µ')?;
        let (number, unit) = part.split_at(split);
        let scale = match unit {
            "us" | "µs" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            "min" => 60e6,
            "h" => 3600e6,
            "d" => 86_400e6,
            _ => return None,
        };
        total += number.parse::<f64>().ok().filter(|v| v.is_finite())? * scale;
        any = true;
    }
    any.then_some(sign * total)
}

/// The names of the drop-in's `NTP=` lines (an empty `NTP=` resets the
/// list, as timesyncd reads it).
fn configured_sources(lines: &[Directive]) -> Vec<Configured> {
    let mut names: Vec<String> = Vec::new();
    for (_, words) in lines {
        let Some(first) = words[0].strip_prefix("NTP=") else {
            continue;
        };
        let listed: Vec<&str> = std::iter::once(first)
            .chain(words[1..].iter().copied())
            .filter(|w| !w.is_empty())
            .collect();
        if listed.is_empty() {
            names.clear();
        }
        names.extend(listed.into_iter().map(str::to_string));
    }
    names
        .into_iter()
        .map(|name| Configured {
            kind: SourceKind::Server,
            name,
        })
        .collect()
}

/// timesyncd talks to one server at a time and says only which: that
/// source gets its address and state, the others are unknown.
fn sources(configured: &[Configured], state: &State) -> Vec<Source> {
    let mut found = false;
    configured
        .iter()
        .map(|c| {
            let current = !found
                && state
                    .server_name
                    .as_deref()
                    .is_some_and(|n| same_host(&c.name, n));
            let Some(address) = state.server_address.clone().filter(|_| current) else {
                return Source::unknown(c);
            };
            found = true;
            let answered = state
                .message
                .as_ref()
                .is_some_and(|m| m.packets.is_some_and(|n| n > 0));
            let state = match (state.synchronised(), answered) {
                (true, _) => SourceState::Selected,
                (false, true) => SourceState::Reachable,
                (false, false) => SourceState::Unreachable,
            };
            Source::new(
                c,
                vec![SourceAddress {
                    address,
                    state,
                    reach: None,
                    authenticated: false,
                    nts: false,
                    nts_failure: None,
                }],
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(stdout: &str) -> Output {
        Output {
            code: 0,
            stdout: stdout.into(),
            stderr: String::new(),
            elapsed: Default::default(),
        }
    }

    // Recorded on Debian 12, systemd-timesyncd 252.39-1~deb12u2, in a
    // node synchronised with a chrony `local stratum 8` at 10.123.0.2.
    const SHOW_SYNCED: &str = "\
LinkNTPServers=
SystemNTPServers=10.123.0.2
RuntimeNTPServers=
FallbackNTPServers=0.debian.pool.ntp.org 1.debian.pool.ntp.org 2.debian.pool.ntp.org 3.debian.pool.ntp.org
ServerName=10.123.0.2
ServerAddress=10.123.0.2
RootDistanceMaxUSec=5s
PollIntervalMinUSec=32s
PollIntervalMaxUSec=34min 8s
PollIntervalUSec=1min 4s
NTPMessage={ Leap=0, Version=4, Mode=4, Stratum=8, Precision=-26, RootDelay=0, RootDispersion=0, Reference=7F7F0101, OriginateTimestamp=Thu 2026-12-03 17:31:11 UTC, ReceiveTimestamp=Thu 2026-12-03 17:31:11 UTC, TransmitTimestamp=Thu 2026-12-03 17:31:11 UTC, DestinationTimestamp=Thu 2026-12-03 17:31:11 UTC, Ignored=no, PacketCount=1, Jitter=0 }
Frequency=0
";
    const STATUS_SYNCED: &str = "       Server: 10.123.0.2 (10.123.0.2)
Poll interval: 1min 4s (min: 32s; max 34min 8s)
         Leap: normal
      Version: 4
      Stratum: 8
    Reference: 7F7F0101
    Precision: 1us (-26)
Root distance: 0 (max: 5s)
       Offset: +30us
        Delay: 115us
       Jitter: 0
 Packet count: 1
    Frequency: +0.000ppm
";

    #[test]
    fn synchronised_with_its_one_server() {
        let (peers, sync) = Timesyncd
            .parse_status(&out(SHOW_SYNCED), &out(STATUS_SYNCED))
            .unwrap();
        assert_eq!(
            sync,
            Sync {
                synchronised: true,
                stratum: Some(9),
                offset_ms: Some(0.03),
                refid: Some("10.123.0.2".into()),
                leap: Some("normal".into()),
            }
        );
        assert_eq!(
            peers,
            [Peer {
                remote: "10.123.0.2".into(),
                refid: None,
                stratum: Some(8),
                reach: None,
                poll_seconds: Some(64),
                offset_ms: Some(0.03),
                delay_ms: Some(0.115),
                jitter_ms: Some(0.0),
                selected: Selection::SystemPeer,
            }]
        );
    }

    // Recorded on Debian 11, systemd-timesyncd 247.3-7+deb11u8: no comma
    // between Ignored and PacketCount.
    const SHOW_SYNCED_247: &str = "\
ServerName=10.123.0.2
ServerAddress=10.123.0.2
PollIntervalUSec=32s
NTPMessage={ Leap=0, Version=4, Mode=4, Stratum=8, Precision=-26, RootDelay=0, RootDispersion=0, Reference=7F7F0101, OriginateTimestamp=Thu 2026-12-03 18:05:35 UTC, ReceiveTimestamp=Thu 2026-12-03 18:05:35 UTC, TransmitTimestamp=Thu 2026-12-03 18:05:35 UTC, DestinationTimestamp=Thu 2026-12-03 18:05:35 UTC, Ignored=no PacketCount=1, Jitter=0 }
Frequency=0
";

    #[test]
    fn systemd_247_synchronised_too() {
        let (peers, sync) = Timesyncd
            .parse_status(&out(SHOW_SYNCED_247), &out("       Offset: +40us\n"))
            .unwrap();
        assert!(sync.synchronised, "{sync:?}");
        assert_eq!(
            (peers[0].selected, sync.offset_ms),
            (Selection::SystemPeer, Some(0.04))
        );
        let ignored = SHOW_SYNCED_247.replace("Ignored=no", "Ignored=yes");
        let (_, sync) = Timesyncd.parse_status(&out(&ignored), &out("")).unwrap();
        assert!(!sync.synchronised);
    }

    #[test]
    fn an_ignored_or_unsynchronised_answer_is_not_synchronised() {
        for (from, to) in [
            ("Ignored=no", "Ignored=yes"),
            ("Leap=0", "Leap=3"),
            ("Stratum=8", "Stratum=0"),
            ("PacketCount=1", "PacketCount=0"),
        ] {
            let show = SHOW_SYNCED.replace(from, to);
            let (peers, sync) = Timesyncd
                .parse_status(&out(&show), &out(STATUS_SYNCED))
                .unwrap();
            assert!(!sync.synchronised, "{to}");
            assert_eq!(peers[0].selected, Selection::Unusable, "{to}");
        }
        // No server contacted yet: no NTPMessage, timesync-status fails.
        let show = "SystemNTPServers=127.0.0.1 ::1\nServerName=127.0.0.1\nServerAddress=127.0.0.1\nPollIntervalUSec=0\n";
        let failed = Output { code: 1, ..out("") };
        let (peers, sync) = Timesyncd.parse_status(&out(show), &failed).unwrap();
        assert!(!sync.synchronised);
        assert_eq!(peers[0].remote, "127.0.0.1");
        assert_eq!(peers[0].offset_ms, None);
    }

    #[test]
    fn a_daemon_that_cannot_be_asked_is_an_error() {
        let failed = Output {
            code: 1,
            stderr: "Failed to parse bus message: Connection timed out\n".into(),
            ..out("")
        };
        let err = Timesyncd.parse_status(&failed, &failed).unwrap_err();
        assert!(err.contains("Connection timed out"), "{err}");
        assert!(parse_show_timesync("something else\n").is_err());
        assert!(parse_show_timesync("Frequency=0\n").is_err());
    }

    #[test]
    fn time_spans_as_systemd_prints_them() {
        assert_eq!(timespan_us("1min 4s"), Some(64e6));
        assert_eq!(timespan_us("+30us"), Some(30.0));
        assert_eq!(timespan_us("-1.250ms"), Some(-1250.0));
        assert_eq!(timespan_us("34min 8s"), Some(2048e6));
        assert_eq!(timespan_us("0"), Some(0.0));
        for bad in ["", "x", "12", "1 min", "5parsecs", "nanms"] {
            assert_eq!(timespan_us(bad), None, "{bad:?}");
        }
    }

    fn lines(text: &str) -> Vec<Directive<'_>> {
        super::super::directives(Flavor::TIMESYNCD, text)
    }

    #[test]
    fn the_drop_in_names_its_servers_and_the_current_one_is_tied_to_its_address() {
        let config = "[Time]\n; a comment\nNTP=\nNTP=ntp1.example.net 10.123.0.2\nFallbackNTP=ntp1.example.net 10.123.0.2\n";
        let configured = Timesyncd.configured_sources(&lines(config));
        let names: Vec<&str> = configured.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ntp1.example.net", "10.123.0.2"]);
        let sources = Timesyncd
            .sources(&configured, &out(SHOW_SYNCED), &[])
            .unwrap();
        assert_eq!(sources[0].state, SourceState::Unknown);
        assert_eq!(sources[1].state, SourceState::Selected);
        assert_eq!(sources[1].addresses[0].address, "10.123.0.2");
        // An answer it ignored: reachable, not selected.
        let ignored = SHOW_SYNCED.replace("Ignored=no", "Ignored=yes");
        let sources = Timesyncd.sources(&configured, &out(&ignored), &[]).unwrap();
        assert_eq!(sources[1].state, SourceState::Reachable);
        // A later empty NTP= drops what came before, as timesyncd reads it.
        assert!(Timesyncd
            .configured_sources(&lines("NTP=a b\nNTP=\n"))
            .is_empty());
    }

    #[test]
    fn nothing_to_lint_no_service_no_parser() {
        // It listens on no port and has no mode 6/7: even an open-looking
        // config has nothing for the lint to find.
        let config = "[Time]\nNTP=0.0.0.0 ::\n";
        assert_eq!(Timesyncd.lint(&lines(config), None), vec![]);
        let anyone = "203.0.113.9".parse().unwrap();
        let access = Access {
            clients: vec!["0.0.0.0/0".into()],
            listen: vec!["0.0.0.0".into()],
        };
        assert!(!Timesyncd.serves_time_to(&access, anyone, anyone));
        assert!(Timesyncd.client_only());
        assert!(Timesyncd.check_unavailable("252.39-1~deb12u2").is_some());
        assert!(matches!(
            Timesyncd.check_config("/nonexistent").unwrap(),
            Verdict::NotChecked(_)
        ));
    }

    #[test]
    fn no_input_panics() {
        for text in [
            "",
            "=",
            "NTPMessage={",
            "NTPMessage={ }",
            "NTPMessage={ Leap=, Stratum=999 }",
            "PollIntervalUSec=é",
            "ServerName=\n",
        ] {
            let _ = Timesyncd.parse_status(&out(text), &out(text));
            let _ = parse_timesync_status(text);
        }
    }
}
