//! Classic ntpd (package `ntp` where it is the daemon itself: Debian 11,
//! Ubuntu up to 22.04). It has mode 7 and, before 4.2.7p26, monlist.

use super::sync::{Configured, Peer, Source, Sync};
use super::{
    bounded_check, ntp_family, Access, AnswerProbe, DaemonName, Directive, Finding, Flavor,
    Setting, Support, TimeDaemon, Verdict, CHECK_SECONDS,
};
use crate::names::Rule;
use crate::process::Output;
use crate::version;
use std::cmp::Ordering;
use std::net::IpAddr;

pub(super) struct Ntpd;

impl Flavor {
    pub const NTPD: Flavor = Flavor(&Ntpd);
}

impl DaemonName {
    pub const NTP: DaemonName = DaemonName("ntp");
}

impl TimeDaemon for Ntpd {
    fn id(&self) -> &'static str {
        "ntpd"
    }
    fn title(&self) -> &'static str {
        "classic ntpd"
    }
    fn package_name(&self) -> &'static str {
        "ntp"
    }
    fn config_path(&self) -> &'static str {
        "/etc/ntp.conf"
    }
    fn unit_name(&self) -> &'static str {
        "ntp.service"
    }
    fn template(&self) -> &'static str {
        "ntp.conf.j2"
    }
    fn template_text(&self) -> &'static str {
        include_str!("../../templates/ntp.conf.j2")
    }
    fn requested_as(&self) -> &'static [&'static str] {
        &["ntp"]
    }
    fn supports(&self, setting: Setting) -> Support {
        match setting {
            Setting::Logdir | Setting::NtsServer => Support::No,
            _ => Support::Always,
        }
    }
    /// ntp.keys(5) of 4.2.8p15: OpenSSL digests by name, and AES128CMAC
    /// (its one cipher: no AES256).
    fn key_file(&self) -> Option<super::keys::KeyFile> {
        Some(ntp_family::key_file(
            "/etc/ntp.keys",
            &[
                ("AES128", "AES128CMAC"),
                ("SHA512", "SHA512"),
                ("SHA384", "SHA384"),
                ("SHA256", "SHA256"),
                ("SHA1", "SHA1"),
                ("MD5", "MD5"),
            ],
        ))
    }
    fn checks_a_copy_under_tmp(&self) -> bool {
        true
    }
    /// `--saveconfigquit` parses and exits, but exits 0 even on syntax
    /// errors: its messages decide.
    fn query_access(&self, lines: &[Directive]) -> Vec<super::QueryEntry> {
        ntp_family::query_access(lines)
    }
    fn query_answers(&self) -> &'static str {
        "mode 6 answers (READVAR about 30 times its 12 bytes, a peer's variables about 60 times; the daemon's \
         version, kernel and peers), and mode 7 too where monitoring is on"
    }
    fn check_config(&self, file: &str) -> anyhow::Result<Verdict> {
        let out =
            bounded_check(&["ntpd", "-n", "-c", file, "--saveconfigquit=/dev/null"]).output()?;
        let text = format!("{}{}", out.stdout, out.stderr);
        Ok(match classic_verdict(out.code, &text, file) {
            ClassicVerdict::Accepted => Verdict::Accepted,
            ClassicVerdict::Rejected => Verdict::Rejected(text),
            ClassicVerdict::Unread => Verdict::NotChecked(format!(
                "ntpd could not read the copy of the new config it was to check ({})",
                text.trim()
            )),
            ClassicVerdict::NotChecked(why) => {
                Verdict::NotChecked(format!("ntpd config not checked ({why}: {})", text.trim()))
            }
        })
    }
    fn answer_probe(&self) -> AnswerProbe {
        AnswerProbe::TimeQuery
    }
    fn serves_time_to(&self, access: &Access, from: IpAddr, _: IpAddr) -> bool {
        ntp_family::serves_time_to(access, from)
    }
    fn dhcp_config(&self, read: &dyn Fn(&str) -> Option<Vec<u8>>) -> Option<&'static str> {
        read("/run/ntp.conf.dhcp").map(|_| "/run/ntp.conf.dhcp")
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
        ntp_family::source_query(asked)
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
        let mut findings = ntp_family::lint_restrict(lines, &ntp_family::Builtin::classic());
        let upstream = version.map(ntp_family::upstream_version);
        let fixed =
            upstream.is_some_and(|v| version::compare(v, MONLIST_REMOVED) != Ordering::Less);
        // mode 7 obeys noquery: monlist reaches only hosts that may query.
        let may_query = findings.iter().any(|f| {
            matches!(
                f.rule,
                Rule::NoqueryMissing | Rule::NoqueryMissingNetwork | Rule::Ipv6DefaultMissing
            )
        });
        if !fixed && may_query && monitor_enabled(lines) {
            let old = match upstream {
                Some(v) => format!("ntpd {v} is older than {MONLIST_REMOVED}"),
                None => format!(
                    "the ntpd version is not known, so it may be older than {MONLIST_REMOVED}"
                ),
            };
            let why_on = if limits(lines) {
                "`limited` keeps it on whatever `disable monitor` says"
            } else {
                "the config has no `disable monitor`"
            };
            let message = format!(
                "{old}, its monitoring is on ({why_on}), and hosts its restrict lines let query get monlist"
            );
            findings.push(Finding {
                rule: Rule::MonitorEnabled,
                line: None,
                message,
            });
        }
        findings
    }
    fn includes(&self, directive: &str) -> bool {
        ntp_family::includes(directive)
    }
}

/// classic ntpd stopped answering monlist in this upstream version.
const MONLIST_REMOVED: &str = "4.2.7p26";

/// Whether a restrict line says `limited`, which needs monitoring.
fn limits(lines: &[(usize, Vec<&str>)]) -> bool {
    lines
        .iter()
        .any(|(_, w)| w.first() == Some(&"restrict") && w.contains(&"limited"))
}

/// Whether monitoring is on: ntpd's default, the last `enable`/`disable`
/// line naming `monitor`, and always with `limited` (ntpd logs "'monitor'
/// cannot be disabled while 'limited' is enabled").
fn monitor_enabled(lines: &[(usize, Vec<&str>)]) -> bool {
    if limits(lines) {
        return true;
    }
    let mut enabled = true;
    for (_, words) in lines {
        match words.split_first() {
            Some((&"disable", flags)) if flags.contains(&"monitor") => enabled = false,
            Some((&"enable", flags)) if flags.contains(&"monitor") => enabled = true,
            _ => {}
        }
    }
    enabled
}

/// What classic ntpd's messages say of a config it was given to check (it
/// exits 0 whatever it found), and its exit status whether it ran at all.
#[derive(Debug, PartialEq, Eq)]
enum ClassicVerdict {
    Accepted,
    Rejected,
    /// It could not read `file` itself (a denial, say): nothing was checked.
    Unread,
    /// It did not run to the end (killed by `timeout`, not found, ...) and
    /// said nothing of the config: nothing was checked. Why, for the warning.
    NotChecked(String),
}

fn classic_verdict(code: i32, text: &str, file: &str) -> ClassicVerdict {
    if text.contains(&format!("Couldn't open <{file}>")) {
        ClassicVerdict::Unread
    } else if text.contains("syntax error") || text.contains("Couldn't open") {
        // "Couldn't open" of another file: an includefile that is not there.
        ClassicVerdict::Rejected
    } else if code != 0 {
        // `timeout`'s own statuses, then ntpd's: silence is no verdict.
        ClassicVerdict::NotChecked(match code {
            124 | 137 | -1 => format!("ntpd was killed after {CHECK_SECONDS} s"),
            125 => "`timeout` itself failed".to_string(),
            126 => "ntpd could not be executed".to_string(),
            127 => "ntpd was not found".to_string(),
            other => format!("ntpd exited {other}"),
        })
    } else {
        ClassicVerdict::Accepted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_ntpd_rejects_syntax_errors_and_missing_includes_but_an_unreadable_copy_checks_nothing(
    ) {
        let f = "/tmp/ntp-provision-check.abc/ntp.conf";
        assert_eq!(classic_verdict(0, "", f), ClassicVerdict::Accepted);
        assert_eq!(
            classic_verdict(0, "line 2 column 0 syntax error", f),
            ClassicVerdict::Rejected
        );
        assert_eq!(
            classic_verdict(
                0,
                "includefile: Couldn't open </etc/ntp/missing.conf>: No such file or directory",
                f
            ),
            ClassicVerdict::Rejected
        );
        assert_eq!(
            classic_verdict(
                0,
                &format!("getconfig: Couldn't open <{f}>: Permission denied"),
                f
            ),
            ClassicVerdict::Unread
        );
    }

    #[test]
    fn a_classic_ntpd_that_did_not_run_to_the_end_checked_nothing() {
        let f = "/tmp/ntp-provision-check.abc/ntp.conf";
        let not_checked = |code| match classic_verdict(code, "", f) {
            ClassicVerdict::NotChecked(why) => why,
            other => panic!("exit {code}: {other:?}"),
        };
        assert_eq!(not_checked(137), "ntpd was killed after 20 s");
        assert_eq!(not_checked(124), "ntpd was killed after 20 s");
        assert_eq!(not_checked(-1), "ntpd was killed after 20 s");
        assert_eq!(not_checked(127), "ntpd was not found");
        assert_eq!(not_checked(126), "ntpd could not be executed");
        assert_eq!(not_checked(1), "ntpd exited 1");
        // What it said before it was stopped still counts.
        assert_eq!(
            classic_verdict(137, "line 2 column 0 syntax error", f),
            ClassicVerdict::Rejected
        );
    }
}
