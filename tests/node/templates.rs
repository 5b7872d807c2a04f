//! The embedded templates against the daemons themselves: with every
//! variable that adds lines (a server, `clients`, `listen`, the file
//! variables) no line of a rendered config is one the daemon ignores or
//! warns about, neither in apply's config check nor in what the daemon logs
//! once it runs with it.

use crate::harness::{exclusive, json, Node, Release};

/// What a daemon says of a config line that does nothing or is wrong
/// (classic ntpd: "restrict: 'monitor' cannot be disabled while 'limited'
/// is enabled"; NTPsec: "CONFIG: restrict notrap ignored").
const WARNING_WORDS: [&str; 7] = [
    "ignored",
    "cannot be disabled",
    "deprecated",
    "obsolete",
    "unknown",
    "syntax error",
    "invalid",
];

/// Each release's daemons and the variables that add lines for them.
fn cases(release: Release) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let ntp_stats = |dir: &str| vec![format!("statsdir={dir}")];
    match release {
        Release::Bullseye => vec![
            ("ntp", "ntp.service", ntp_stats("/var/log/ntpstats")),
            ("ntpsec", "ntpsec.service", ntp_stats("/var/log/ntpsec")),
        ],
        Release::Bookworm => vec![
            ("ntpsec", "ntpsec.service", ntp_stats("/var/log/ntpsec")),
            (
                "chrony",
                "chrony.service",
                vec!["logdir=/var/log/chrony".into(), "dhcp_servers=true".into()],
            ),
        ],
        Release::Trixie => vec![
            ("ntpsec", "ntpsec.service", ntp_stats("/var/log/ntpsec")),
            (
                "chrony",
                "chrony.service",
                vec![
                    "logdir=/var/log/chrony".into(),
                    "dhcp_servers=true".into(),
                    // chrony 4.6 has leapseclist.
                    "leapfile=/usr/share/zoneinfo/leap-seconds.list".into(),
                ],
            ),
        ],
    }
}

fn warnings_in(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            WARNING_WORDS.iter().any(|w| l.contains(w))
        })
        .collect()
}

fn check_release(release: Release) {
    let node = Node::boot(release);
    let listen = format!("listen=[{}]", node.addr());
    for (daemon, unit, extra) in cases(release) {
        let mut args = vec![
            "apply".to_string(),
            "-e".into(),
            format!("daemon={daemon}"),
            "-e".into(),
            "servers=[10.123.0.2]".into(),
            "-e".into(),
            "clients=[10.123.0.128/25]".into(),
            "-e".into(),
            listen.clone(),
        ];
        for e in &extra {
            args.extend(["-e".to_string(), e.clone()]);
        }
        args.extend(["--format".into(), "json".into()]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let cursor = node
            .ok(&["journalctl", "--show-cursor", "-n", "0", "-q"])
            .stdout;
        let cursor = cursor
            .lines()
            .find_map(|l| l.strip_prefix("-- cursor: "))
            .unwrap_or_default()
            .to_string();
        let out = node.provision(&argv);
        let name = format!("{} {daemon} {extra:?}", release.name());
        assert_eq!(out.code, 0, "{name}:\n{}\n{}", out.stdout, out.stderr);
        assert_eq!(json(&out)["summary"]["failed"], 0, "{name}");
        assert!(
            !out.stderr.contains("accepted the config but said"),
            "{name}: the config check's words:\n{}",
            out.stderr
        );
        let mut journal = vec!["journalctl", "-u", unit, "-o", "cat", "--no-pager"];
        let after = format!("--after-cursor={cursor}");
        if !cursor.is_empty() {
            journal.push(&after);
        }
        let logged = node.ok(&journal).stdout;
        assert!(
            logged.lines().count() > 1,
            "{name}: {unit} logged nothing since the apply:\n{logged}"
        );
        let warned = warnings_in(&logged);
        assert!(
            warned.is_empty(),
            "{name}: {unit} warned about its config: {warned:#?}\n{logged}"
        );
        eprintln!(
            "[templates] {name}: {} lines logged, none a warning",
            logged.lines().count()
        );
    }
}

#[test]
fn bullseye_daemons_warn_about_no_line_of_their_config() {
    let _one_at_a_time = exclusive();
    check_release(Release::Bullseye);
}

#[test]
fn bookworm_daemons_warn_about_no_line_of_their_config() {
    let _one_at_a_time = exclusive();
    check_release(Release::Bookworm);
}

#[test]
fn trixie_daemons_warn_about_no_line_of_their_config() {
    let _one_at_a_time = exclusive();
    check_release(Release::Trixie);
}

#[test]
fn warning_words_are_found_in_what_the_daemons_said() {
    let classic = "restrict: 'monitor' cannot be disabled while 'limited' is enabled\n\
                   Listening on routing socket on fd #16 for interface updates";
    assert_eq!(
        warnings_in(classic),
        ["restrict: 'monitor' cannot be disabled while 'limited' is enabled"]
    );
    assert_eq!(
        warnings_in("CONFIG: restrict nopeer ignored").len(),
        1,
        "NTPsec's"
    );
}
