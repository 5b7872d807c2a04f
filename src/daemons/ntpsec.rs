//! NTPsec (package `ntpsec`; what `ntp` installs on Debian 12 and Ubuntu
//! 24.04). No mode 7; from 1.1.9 its own default entry keeps `noquery`.

use super::sync::{Configured, Peer, Source, Sync};
use super::{
    ntp_family, Access, AnswerProbe, DaemonName, Directive, Finding, Flavor, Setting, Support,
    TimeDaemon, Verdict,
};
use crate::process::{Cmd, CmdError, Output};
use std::net::IpAddr;
use std::time::Duration;

pub(super) struct Ntpsec;

impl Flavor {
    pub const NTPSEC: Flavor = Flavor(&Ntpsec);
}

impl DaemonName {
    pub const NTPSEC: DaemonName = DaemonName("ntpsec");
}

const DHCP_CONFIG: &str = "/run/ntpsec/ntp.conf.dhcp";

impl TimeDaemon for Ntpsec {
    fn id(&self) -> &'static str {
        "ntpsec"
    }
    fn title(&self) -> &'static str {
        "NTPsec"
    }
    fn package_name(&self) -> &'static str {
        "ntpsec"
    }
    fn config_path(&self) -> &'static str {
        "/etc/ntpsec/ntp.conf"
    }
    fn unit_name(&self) -> &'static str {
        "ntpsec.service"
    }
    fn template(&self) -> &'static str {
        "ntpsec.conf.j2"
    }
    fn template_text(&self) -> &'static str {
        include_str!("../../templates/ntpsec.conf.j2")
    }
    fn requested_as(&self) -> &'static [&'static str] {
        &["ntp", "ntpsec"]
    }
    fn nts_since(&self) -> Option<&'static str> {
        Some("1.2.0")
    }
    /// Debian's unit runs `ntpd -u ntpsec:ntpsec`; it reads the NTS files
    /// again as that user when they change.
    fn runs_as(&self) -> Option<&'static str> {
        Some("ntpsec")
    }
    fn supports(&self, setting: Setting) -> Support {
        match setting {
            Setting::Logdir => Support::No,
            Setting::NtsServer => Support::Since("1.2.0"),
            _ => Support::Always,
        }
    }
    /// ntp.keys(5) of NTPsec: OpenSSL digest and cipher names (CMAC with
    /// aes-128 and aes-256), at /etc/ntpsec/ntp.keys as Debian puts it.
    fn key_file(&self) -> Option<super::keys::KeyFile> {
        Some(ntp_family::key_file(
            "/etc/ntpsec/ntp.keys",
            &[
                ("AES128", "aes-128"),
                ("AES256", "aes-256"),
                ("SHA512", "sha512"),
                ("SHA384", "sha384"),
                ("SHA256", "sha256"),
                ("SHA1", "sha1"),
                ("MD5", "md5"),
            ],
        ))
    }
    fn checks_a_copy_under_tmp(&self) -> bool {
        true
    }
    /// NTPsec has no check mode: it is started for real, without
    /// CAP_SYS_TIME (it cannot touch the clock discipline the running daemon
    /// steers) and without a network (it cannot reach a server or bind the
    /// node's ports), and stopped once its log shows the config was read.
    fn query_access(&self, lines: &[Directive]) -> Vec<super::QueryEntry> {
        ntp_family::query_access(lines)
    }
    fn query_answers(&self) -> &'static str {
        "mode 6 answers (READVAR about 30 times its 12 bytes, a peer's variables about 60 times; the daemon's \
         version, kernel and peers)"
    }
    fn check_config(&self, file: &str) -> anyhow::Result<Verdict> {
        let mut progress = NtpsecLog::default();
        let argv = [
            "--bounding-set=-sys_time",
            "--",
            "unshare",
            "--net",
            "--",
            "ntpd",
            "-n",
            "-l",
            "/dev/stderr",
            "-c",
            file,
        ];
        let out = Cmd::new("setpriv")
            .env("LC_ALL", "C")
            .args(argv)
            .output_until(NTPSEC_CHECK_BOUND, &mut |line| progress.config_done(line));
        let out = match out {
            Err(CmdError::NotStarted { cmd, source }) => {
                return Ok(Verdict::NotChecked(format!(
                    "NTPsec config not checked (`{cmd}` could not start: {source}; setpriv is in util-linux)"
                )))
            }
            other => other?,
        };
        if out.stdout.starts_with("unshare:") || out.stdout.starts_with("setpriv:") {
            return Ok(Verdict::NotChecked(format!(
                "NTPsec config not checked (no private network namespace or capability bounding set here: {})",
                out.stdout.trim()
            )));
        }
        if !progress.parsing_started {
            log::warn!("NTPsec did not say it read the config within {NTPSEC_CHECK_BOUND:?}; judging by what it logged");
        }
        let warnings = config_warnings(&out.stdout);
        Ok(if out.stdout.contains("syntax error") {
            Verdict::Rejected(out.stdout)
        } else if warnings.is_empty() {
            Verdict::Accepted
        } else {
            Verdict::Warned(warnings)
        })
    }
    fn answer_probe(&self) -> AnswerProbe {
        AnswerProbe::TimeQuery
    }
    fn serves_time_to(&self, access: &Access, from: IpAddr, _: IpAddr) -> bool {
        ntp_family::serves_time_to(access, from)
    }
    /// Debian's ntpsec runs from the DHCP file unless /etc/default/ntpsec
    /// says IGNORE_DHCP.
    fn dhcp_config(&self, read: &dyn Fn(&str) -> Option<Vec<u8>>) -> Option<&'static str> {
        read(DHCP_CONFIG)?;
        let ignored = read("/etc/default/ntpsec").is_some_and(|t| {
            String::from_utf8_lossy(&t)
                .lines()
                .any(|l| l.trim() == "IGNORE_DHCP=\"yes\"" || l.trim() == "IGNORE_DHCP=yes")
        });
        (!ignored).then_some(DHCP_CONFIG)
    }
    fn status_queries(&self) -> [&'static [&'static str]; 2] {
        ntp_family::STATUS_QUERIES
    }
    fn parse_status(&self, sources: &Output, sync: &Output) -> Result<(Vec<Peer>, Sync), String> {
        ntp_family::parse_status(sources, sync)
    }
    fn configured_sources(&self, lines: &[Directive]) -> Vec<Configured> {
        ntp_family::configured_sources(lines)
    }
    fn source_query(&self, asked: &[Output]) -> Option<Vec<String>> {
        ntp_family::source_query_of(asked, ntp_family::NTPSEC_RV_VARIABLES)
    }
    fn sources(
        &self,
        configured: &[Configured],
        _listing: &Output,
        asked: &[Output],
    ) -> Result<Vec<Source>, String> {
        ntp_family::sources(configured, asked)
    }
    fn lint(&self, lines: &[Directive], version: Option<&str>) -> Vec<Finding> {
        ntp_family::lint_restrict(lines, &ntp_family::Builtin::ntpsec(version))
    }
    fn includes(&self, directive: &str) -> bool {
        ntp_family::includes(directive)
    }
    /// `nts key FILE`.
    fn nts_server_keys<'a>(&self, lines: &[Directive<'a>]) -> Vec<(usize, &'a str)> {
        lines
            .iter()
            .filter(|(_, w)| w.len() > 2 && w[0] == "nts" && w[1] == "key")
            .map(|(n, w)| (*n, w[2]))
            .collect()
    }
}

/// Bounds NTPsec's check, which is a daemon run that is stopped as soon as
/// its log shows the whole config was read (milliseconds).
const NTPSEC_CHECK_BOUND: Duration = Duration::from_secs(5);

/// Follows an NTPsec log while it starts: it parses the config between
/// "CONFIG: readconfig: parsing file" and the first line of another kind
/// (INIT, IO, ...), and logs every syntax error in between as a CONFIG line.
#[derive(Debug, Default)]
pub struct NtpsecLog {
    pub parsing_started: bool,
}

impl NtpsecLog {
    /// True once `line` shows that parsing is over.
    pub fn config_done(&mut self, line: &str) -> bool {
        // `2026-11-26T14:42:35 ntpd[22502]: CONFIG: ...`; ntpd's own stderr
        // echo of the first lines has no prefix.
        let message = line.split_once("]: ").map_or(line, |(_, m)| m);
        if message.starts_with("CONFIG: readconfig: parsing file") {
            self.parsing_started = true;
            return false;
        }
        self.parsing_started && !message.starts_with("CONFIG:")
    }
}

/// What NTPsec said of config lines it read but does not honour
/// (`CONFIG: restrict notrap ignored`), each once.
fn config_warnings(log: &str) -> Vec<String> {
    let mut said: Vec<String> = Vec::new();
    for line in log.lines() {
        let message = line.split_once("]: ").map_or(line, |(_, m)| m);
        let Some(config) = message.strip_prefix("CONFIG: ") else {
            continue;
        };
        let lower = config.to_ascii_lowercase();
        let warns = ["ignored", "deprecated", "obsolete", "unknown", "warning"]
            .iter()
            .any(|w| lower.contains(w));
        if warns && !said.iter().any(|s| s == config) {
            said.push(config.to_string());
        }
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntpsec_s_words_about_lines_it_ignores_are_warnings_once_each() {
        // NTPsec 1.2.2 (Debian 12) on restrict lines in the classic form.
        let log = "\
2026-12-03T17:24:25 ntpd[25630]: CONFIG: readconfig: parsing file: /tmp/clients.conf
2026-12-03T17:24:25 ntpd[25630]: CONFIG: restrict notrap ignored
2026-12-03T17:24:25 ntpd[25630]: CONFIG: restrict nopeer ignored
2026-12-03T17:24:25 ntpd[25630]: CONFIG: restrict notrap ignored
2026-12-03T17:24:25 ntpd[25630]: CLOCK: leapsecond file ('/usr/share/zoneinfo/leap-seconds.list'): will expire in less than 25 days
2026-12-03T17:24:25 ntpd[25630]: RESTRICT: Poking hole in restrictions for 10.123.0.2
";
        assert_eq!(
            config_warnings(log),
            ["restrict notrap ignored", "restrict nopeer ignored"]
        );
        assert!(config_warnings(NTPSEC_BAD_CONFIG_LOG).is_empty());
    }

    const NTPSEC_BAD_CONFIG_LOG: &str = "\
2026-11-26T14:42:38 ntpd[22561]: INIT: ntpd ntpsec-1.2.2: Starting
2026-11-26T14:42:38 ntpd[22561]: INIT: Command line: ntpd -n -l /dev/stderr -c /tmp/bad.conf
2026-11-26T14:42:38 ntpd[22561]: INIT: precision = 0.050 usec (-24)
2026-11-26T14:42:38 ntpd[22561]: CONFIG: readconfig: parsing file: /tmp/bad.conf
2026-11-26T14:42:38 ntpd[22561]: CONFIG: line 2 column 0 syntax error
2026-11-26T14:42:38 ntpd[22561]: CONFIG: syntax error in /tmp/bad.conf line 2, column 0
2026-11-26T14:42:38 ntpd[22561]: INIT: Using SO_TIMESTAMPNS(ns)
2026-11-26T14:42:38 ntpd[22561]: IO: Listen and drop on 0 v6wildcard [::]:123
";

    #[test]
    fn the_ntpsec_check_stops_at_the_first_line_after_the_config_lines() {
        let mut log = NtpsecLog::default();
        let lines: Vec<&str> = NTPSEC_BAD_CONFIG_LOG.lines().collect();
        let done_at = lines.iter().position(|l| log.config_done(l));
        assert_eq!(
            done_at,
            Some(6),
            "stops at `INIT: Using SO_TIMESTAMPNS`, after both syntax error lines"
        );
        assert!(lines[..=6].join("\n").contains("syntax error"));
        // INIT lines before the config is read do not end it.
        let mut log = NtpsecLog::default();
        assert!(!log.config_done("ntpd[1]: INIT: precision = 0.050 usec (-24)"));
        assert!(!log.parsing_started);
    }
}
