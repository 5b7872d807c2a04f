use super::*;
use crate::daemons::{Daemon, DaemonName, Flavor};
use crate::plan::step::{Action, PkgState};

fn load(text: &str) -> Result<Plan, PlanError> {
    Plan::load(
        text.as_bytes(),
        Source {
            name: "plan.yaml".into(),
            dir: None,
        },
        &[],
    )
}

fn load_with(text: &str, overrides: &[&str]) -> Result<Plan, PlanError> {
    let o: Vec<_> = overrides
        .iter()
        .map(|s| parse_override(s).unwrap())
        .collect();
    Plan::load(
        text.as_bytes(),
        Source {
            name: "plan.yaml".into(),
            dir: None,
        },
        &o,
    )
}

/// The config `plan` writes at `dest` for `flavor` (requested as `ntp`).
fn config_of(plan: &Plan, flavor: Flavor, dest: &str) -> String {
    let r = plan
        .render(Some(&Daemon::new(DaemonName::NTP, flavor)))
        .unwrap();
    config_template(&r, dest).content
}

fn config_template(r: &Rendered, dest: &str) -> crate::plan::step::Template {
    r.steps
        .iter()
        .find_map(|s| match &s.action {
            Action::Template(t) if t.dest.as_str() == dest => Some(t.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no template for {dest}"))
}

#[test]
fn the_default_plan_loads_and_renders_for_both_flavours_of_ntp() {
    let plan = Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &[]).unwrap();
    assert_eq!(plan.vars.daemon, Some(DaemonName::NTP));
    for (flavor, conf, unit, marker) in [
        (
            Flavor::NTPD,
            "/etc/ntp.conf",
            "ntp.service",
            "statsdir /var/log/ntpstats/\n",
        ),
        (
            Flavor::NTPSEC,
            "/etc/ntpsec/ntp.conf",
            "ntpsec.service",
            "/var/lib/ntpsec/ntp.drift",
        ),
    ] {
        let r = plan
            .render(Some(&Daemon::new(DaemonName::NTP, flavor)))
            .unwrap();
        let template = config_template(&r, conf);
        assert_eq!(template.dest.as_str(), conf);
        assert!(
            template
                .content
                .contains("server 0.ubuntu.pool.ntp.org iburst\n"),
            "{}",
            template.content
        );
        assert!(template
            .content
            .contains("server 3.ubuntu.pool.ntp.org iburst\n"));
        // NTPsec ignores notrap and nopeer, saying so: its lines leave them out.
        let flags = if flavor == Flavor::NTPSEC {
            "kod nomodify noquery limited"
        } else {
            "kod notrap nomodify nopeer noquery limited"
        };
        for family in ["-4", "-6"] {
            let line = format!("\nrestrict {family} default {flags}\n");
            assert!(template.content.contains(&line), "{line}");
        }
        assert!(template.content.contains("\nrestrict 127.0.0.1\n"));
        assert!(template.content.contains("\nrestrict ::1\n"));
        assert!(template.content.contains(marker));
        let Action::Service(s) = &r.handlers[0].action else {
            panic!("handler is a service")
        };
        assert_eq!(s.unit.as_str(), unit);
    }
}

#[test]
fn with_clients_ntpd_and_ntpsec_serve_time_to_those_networks_only() {
    let plan = load_with(
        DEFAULT_PLAN,
        &[
            "servers=[10.123.0.2]",
            "clients=[10.123.0.128/25, 2001:db8::/32]",
        ],
    )
    .unwrap();
    for (flavor, conf) in [
        (Flavor::NTPD, "/etc/ntp.conf"),
        (Flavor::NTPSEC, "/etc/ntpsec/ntp.conf"),
    ] {
        let r = plan
            .render(Some(&Daemon::new(DaemonName::NTP, flavor)))
            .unwrap();
        let content = config_template(&r, conf).content;
        let restricts: Vec<String> = content
            .lines()
            .filter(|l| l.starts_with("restrict"))
            .map(String::from)
            .collect();
        // NTPsec pokes its servers' holes only in an ignore entry, and
        // ignores notrap and nopeer.
        let (closed, flags, source) = if flavor == Flavor::NTPSEC {
            ("ignore", "kod nomodify noquery limited", "nomodify noquery")
        } else {
            (
                "noserve",
                "kod notrap nomodify nopeer noquery limited",
                "notrap nomodify noquery",
            )
        };
        assert_eq!(
            restricts,
            [
                format!("restrict -4 default {flags} {closed}"),
                format!("restrict -6 default {flags} {closed}"),
                format!("restrict 10.123.0.128 mask 255.255.255.128 {flags}"),
                format!("restrict 2001:db8:: mask ffff:ffff:: {flags}"),
                "restrict 127.0.0.1".into(),
                "restrict ::1".into(),
                // The server's own answers would hit noserve without it.
                format!("restrict source {source}"),
            ],
            "{flavor:?}"
        );
        let findings = crate::lint::lint(flavor, &content, None);
        assert!(findings.is_empty(), "{flavor:?}: {findings:?}");
    }
}

#[test]
fn file_variables_become_each_daemons_own_lines() {
    let plan = load_with(
        DEFAULT_PLAN,
        &[
            "leapfile=/srv/leap-seconds.list",
            "logfile=/var/log/ntpd.log",
            "logdir=/srv/chrony-logs",
            "statsdir=/srv/stats",
        ],
    )
    .unwrap();
    let conf = |flavor, dest| config_of(&plan, flavor, dest);
    let classic = conf(Flavor::NTPD, "/etc/ntp.conf");
    for line in [
        "leapfile /srv/leap-seconds.list\n",
        "logfile /var/log/ntpd.log\n",
        "statsdir /srv/stats/\n",
    ] {
        assert!(classic.contains(line), "{line}{classic}");
    }
    let ntpsec = conf(Flavor::NTPSEC, "/etc/ntpsec/ntp.conf");
    // NTPsec writes no statistics unless asked: statsdir comes with them.
    assert!(ntpsec.contains("statsdir /srv/stats/\nstatistics loopstats peerstats clockstats\n"));
    assert!(ntpsec.contains("leapfile /srv/leap-seconds.list\nlogfile /var/log/ntpd.log\n"));
    let chrony = conf(Flavor::CHRONY, "/etc/chrony/chrony.conf");
    assert!(chrony.contains("logdir /srv/chrony-logs\n"), "{chrony}");
    assert!(chrony.contains("leapseclist /srv/leap-seconds.list\n"));
    assert!(!chrony.contains("leapsectz"));
    assert_eq!(
        plan.settings(),
        crate::daemons::Setting::ALL[..4],
        "each is checked against the resolved daemon (facts::daemon::check_settings)"
    );

    let err = load_with(DEFAULT_PLAN, &["statsdir=stats"]).unwrap_err();
    assert_eq!(err.path, "vars.statsdir");
    let err = load_with(DEFAULT_PLAN, &["logfile=[a]"]).unwrap_err();
    assert!(err.message.contains("expected a path"), "{err}");
}

#[test]
fn step_and_panic_thresholds_are_one_name_for_each_daemons_own_lines() {
    let conf = |overrides: &[&str], flavor, dest| {
        config_of(&load_with(DEFAULT_PLAN, overrides).unwrap(), flavor, dest)
    };
    let set = ["step_threshold=0.5", "panic_threshold=600"];
    for (flavor, dest) in [
        (Flavor::NTPD, "/etc/ntp.conf"),
        (Flavor::NTPSEC, "/etc/ntpsec/ntp.conf"),
    ] {
        let text = conf(&set, flavor, dest);
        assert!(
            text.contains("\ntinker panic 600\ntinker step 0.5\n"),
            "{text}"
        );
        // On a virtual machine the clock may jump (suspend, migration):
        // never give up on it, unless the plan says otherwise.
        let vm = conf(&["virtual=true"], flavor, dest);
        assert!(vm.contains("\ntinker panic 0\n") && !vm.contains("tinker step"));
        let told = conf(&["virtual=true", "panic_threshold=60"], flavor, dest);
        assert!(told.contains("\ntinker panic 60\n"));
        assert!(!conf(&[], flavor, dest).contains("tinker"));
    }
    let chrony = |o: &[&str]| conf(o, Flavor::CHRONY, "/etc/chrony/chrony.conf");
    let text = chrony(&set);
    assert!(
        text.contains("\nmakestep 0.5 -1\nmaxchange 600 1 0\n"),
        "{text}"
    );
    assert!(chrony(&["virtual=true"]).contains("\nmakestep 1 -1\n"));
    // chrony never gives up by itself: panic 0 is its default, no line.
    assert!(!chrony(&["panic_threshold=0"]).contains("maxchange"));
    assert!(chrony(&[]).contains("\nmakestep 1 3\n"));

    for (o, path, says) in [
        (
            "step_threshold=0",
            "vars.step_threshold",
            "out of range: more than 0",
        ),
        (
            "panic_threshold=-1",
            "vars.panic_threshold",
            "out of range: at least 0",
        ),
        (
            "panic_threshold=soon",
            "vars.panic_threshold",
            "expected a number of seconds",
        ),
        (
            "virtual=maybe",
            "vars.virtual",
            "expected auto, true or false, found \"maybe\"",
        ),
    ] {
        let err = load_with(DEFAULT_PLAN, &[o]).unwrap_err();
        assert_eq!(err.path, path, "{o}");
        assert!(err.message.contains(says), "{o}: {err}");
    }
}

#[test]
fn peers_and_orphan_mode_are_each_daemons_own_lines() {
    let plan = load_with(
        DEFAULT_PLAN,
        &[
            "servers=[10.123.0.2]",
            "peers=[10.123.0.21, {host: site-b.example, iburst: false}]",
            "orphan_stratum=10",
        ],
    )
    .unwrap();
    let conf = |flavor, dest| config_of(&plan, flavor, dest);
    let classic = conf(Flavor::NTPD, "/etc/ntp.conf");
    assert!(classic.contains("\ntos orphan 10\nserver 10.123.0.2 iburst\npeer 10.123.0.21 iburst\npeer site-b.example\n"), "{classic}");
    // NTPsec removed symmetric peering (`peer` is an alias of `server`):
    // the site's servers are each other's servers.
    let ntpsec = conf(Flavor::NTPSEC, "/etc/ntpsec/ntp.conf");
    assert!(
        ntpsec.contains(
            "\nserver 10.123.0.2 iburst\nserver 10.123.0.21 iburst\nserver site-b.example\n"
        ),
        "{ntpsec}"
    );
    assert!(ntpsec.contains("\ntos orphan 10\n"));
    let chrony = conf(Flavor::CHRONY, "/etc/chrony/chrony.conf");
    assert!(
        chrony.contains("\npeer 10.123.0.21 iburst\npeer site-b.example\n"),
        "{chrony}"
    );
    assert!(chrony.contains("\nlocal stratum 10 orphan\n"));
    assert_eq!(
        plan.settings(),
        [
            crate::daemons::Setting::Peers,
            crate::daemons::Setting::OrphanStratum
        ]
    );
    // An empty list asks nothing of the daemon.
    assert!(load_with(DEFAULT_PLAN, &["peers=[]"])
        .unwrap()
        .settings()
        .is_empty());

    for (o, path, says) in [
        (
            "peers=[10.123.0.2, 10.123.0.2]",
            "vars.peers[1]",
            "listed twice",
        ),
        (
            "peers=[{host: p.example, nts: true}]",
            "vars.peers[0].nts",
            "not peers",
        ),
        ("orphan_stratum=16", "vars.orphan_stratum", "from 1 to 15"),
        (
            "orphan_stratum=ten",
            "vars.orphan_stratum",
            "found a string",
        ),
    ] {
        let err = load_with(DEFAULT_PLAN, &[o]).unwrap_err();
        assert_eq!(err.path, path, "{o}: {err}");
        assert!(err.message.contains(says), "{o}: {err}");
    }
    // A peer that is also a server is one host listed twice.
    let err = load_with(DEFAULT_PLAN, &["servers=[a.example]", "peers=[a.example]"]).unwrap_err();
    assert_eq!(err.path, "vars.peers[0]");
}

#[test]
fn dhcp_servers_opts_in_to_each_daemons_own_dhcp_path() {
    let confs = |overrides: &[&str]| {
        let plan = load_with(DEFAULT_PLAN, overrides).unwrap();
        let conf = |flavor, dest| config_of(&plan, flavor, dest);
        [
            conf(Flavor::CHRONY, "/etc/chrony/chrony.conf"),
            conf(Flavor::NTPD, "/etc/dhcp/dhclient-exit-hooks.d/ntp"),
            conf(Flavor::NTPSEC, "/etc/default/ntpsec"),
            conf(
                Flavor::TIMESYNCD,
                "/etc/systemd/timesyncd.conf.d/ntp-provision.conf",
            ),
        ]
    };
    let [chrony, hook, ntpsec, timesyncd] = confs(&[]);
    assert!(!chrony.contains("\nsourcedir"), "{chrony}");
    assert!(hook.ends_with("\nrm -f /run/ntp.conf.dhcp\n"), "{hook}");
    assert!(
        ntpsec.contains("\nIGNORE_DHCP=\"yes\"\n\nNTPSEC"),
        "{ntpsec}"
    );
    assert!(timesyncd.contains("\nNTP=\nNTP=0.ubuntu"), "{timesyncd}");
    assert_eq!(
        confs(&["dhcp_servers=false"]),
        [chrony, hook, ntpsec, timesyncd]
    );

    let [chrony, hook, ntpsec, timesyncd] = confs(&["dhcp_servers=true"]);
    assert!(
        chrony.contains("pool.ntp.org iburst\n\n# The servers DHCP offers, beside those above.\nsourcedir /run/chrony-dhcp\nkeyfile"),
        "{chrony}"
    );
    assert!(hook.contains("mv \"$ntpp_tmp\" $ntpp_dhcp && invoke-rc.d ntp try-restart"));
    assert!(
        !hook.contains("{%") && !hook.contains("\nrm -f /run/ntp.conf.dhcp\n"),
        "{hook}"
    );
    assert!(ntpsec.contains("\nIGNORE_DHCP=\"\"\n\nNTPSEC"), "{ntpsec}");
    assert!(!timesyncd.contains("\nNTP=\n"), "{timesyncd}");
    assert!(timesyncd.contains("\nNTP=0.ubuntu"), "{timesyncd}");

    let plan = load_with(DEFAULT_PLAN, &["dhcp_servers=true"]).unwrap();
    assert_eq!(plan.settings(), [crate::daemons::Setting::DhcpServers]);
    assert!(
        load_with(DEFAULT_PLAN, &["dhcp_servers=false"])
            .unwrap()
            .settings()
            .is_empty(),
        "false asks nothing of the daemon (OpenNTPD has it too)"
    );
    let err = load_with(DEFAULT_PLAN, &["dhcp_servers=yes please"]).unwrap_err();
    assert_eq!(err.path, "vars.dhcp_servers");
    assert!(
        err.message
            .contains("expected true or false, found a string"),
        "{err}"
    );
}

#[test]
fn overrides_replace_variables_and_are_validated() {
    let plan = load_with(DEFAULT_PLAN, &["servers=[127.0.0.1, time.example.net]"]).unwrap();
    let r = plan
        .render(Some(&Daemon::new(DaemonName::NTP, Flavor::NTPD)))
        .unwrap();
    let content = config_template(&r, "/etc/ntp.conf").content;
    assert!(
        content.contains("server 127.0.0.1 iburst\nserver time.example.net iburst\n"),
        "{content}"
    );
    assert!(!content.contains("ubuntu.pool"));

    let err = load_with(
        DEFAULT_PLAN,
        &["servers=[\"pool.ntp.org\\nrestrict default\"]"],
    )
    .unwrap_err();
    assert_eq!(err.path, "vars.servers[0]");
    assert!(err.message.contains("control character"), "{err}");
    let err = load_with(DEFAULT_PLAN, &["daemon=ntimed"]).unwrap_err();
    assert!(err.to_string().contains("never packaged"), "{err}");
}

#[test]
fn errors_name_the_file_position_and_key() {
    let err =
        load("steps:\n  - name: x\n    apt:\n      name: ntp\n      stat: latest\n").unwrap_err();
    assert_eq!(err.file, "plan.yaml");
    assert!(err.location.is_some(), "{err:?}");
    assert!(err.message.contains("unknown field `stat`"), "{err}");
    assert!(err.to_string().starts_with("plan.yaml:"), "{err}");

    let err = load("steps:\n  - name: x\n    apt: {name: ntp}\n    notify: nobody\n").unwrap_err();
    assert_eq!(err.path, "steps[0].notify");
    assert!(
        err.message.contains("no handler is named \"nobody\""),
        "{err}"
    );
}

#[test]
fn bad_plans_are_refused_with_the_rule() {
    let cases: &[(&str, &str)] = &[
        ("steps: []\n", "no steps"),
        ("steps:\n  - name: x\n", "exactly one action"),
        ("steps:\n  - name: x\n    apt: {name: ntp}\n    service: {name: ntp, state: started}\n", "exactly one action"),
        ("steps:\n  - name: x\n    command: reboot\n", "unknown field `command`"),
        ("steps:\n  - name: x\n    apt: {name: \"Bad Name\"}\n", "not a Debian package name"),
        ("steps:\n  - name: x\n    apt: {name: ntp, state: sideways}\n", "\"sideways\" is not a package state"),
        ("steps:\n  - name: x\n    template: {src: ntp.conf.j2, dest: etc/ntp.conf}\n", "not an absolute path"),
        ("steps:\n  - name: x\n    template: {src: ntp.conf.j2, dest: /etc/../ntp.conf}\n", "contains `..`"),
        ("steps:\n  - name: x\n    template: {src: ntp.conf.j2, dest: /etc/ntp.conf, mode: 644}\n", "quoted octal"),
        ("steps:\n  - name: x\n    template: {src: ntp.conf.j2, dest: /etc/ntp.conf, mode: \"10000\"}\n", "not a file mode"),
        ("steps:\n  - name: x\n    template: {src: missing.j2, dest: /etc/ntp.conf}\n", "not an embedded template"),
        ("steps:\n  - name: x\n    service: {name: \"ntp; reboot\", state: started}\n", "not a systemd unit name"),
        ("steps:\n  - name: x\n    apt: {name: \"{{ nope }}\"}\n", "undefined"),
        ("vars: {servers: []}\nsteps:\n  - name: x\n    apt: {name: ntp}\n", "no time source"),
        ("vars: {servers: [a.example, A.example]}\nsteps:\n  - name: x\n    apt: {name: ntp}\n", "listed twice"),
        ("vars: {servers: [\"-bad\"]}\nsteps:\n  - name: x\n    apt: {name: ntp}\n", "not a hostname or address"),
        ("vars: {facts: 1}\nsteps:\n  - name: x\n    apt: {name: ntp}\n", "reserved"),
        ("vars: {daemon: xntpd}\nsteps:\n  - name: x\n    apt: {name: ntp}\n", "not a known daemon"),
        ("steps:\n  - name: x\n    apt: {name: \"{{ facts.daemon.package }}\"}\n", "undefined"),
        ("steps:\n  - name: x\n    apt: {cache_valid_time: 5}\n", "only meaningful with update_cache"),
        ("handlers:\n  - name: h\n    service: {name: ntp, state: restarted}\n  - name: h\n    service: {name: ntp, state: restarted}\nsteps:\n  - name: x\n    apt: {name: ntp}\n", "second handler"),
        ("steps: [\n", "while parsing"),
    ];
    for (text, want) in cases {
        match load(text) {
            Ok(_) => panic!("plan {text:?} was accepted; expected {want:?}"),
            Err(err) => assert!(
                err.to_string().contains(want),
                "plan {text:?}: expected {want:?} in {err}"
            ),
        }
    }
}

#[test]
fn hostile_input_is_refused_fast() {
    let big = vec![b'#'; MAX_PLAN_BYTES + 1];
    let err = Plan::load(
        &big,
        Source {
            name: "big.yaml".into(),
            dir: None,
        },
        &[],
    )
    .unwrap_err();
    assert!(err.message.contains("limited to"), "{err}");
    let err = Plan::load(
        b"steps: \xff\xfe",
        Source {
            name: "bin.yaml".into(),
            dir: None,
        },
        &[],
    )
    .unwrap_err();
    assert!(err.message.contains("not UTF-8"), "{err}");
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nsteps: *g\n";
    assert!(load(bomb).is_err());
    let deep = format!(
        "vars: {{x: {}1{}}}\nsteps: []\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    assert!(load(&deep).is_err());
}

#[test]
fn a_megabyte_of_nesting_is_refused_before_parsing_with_its_depth_and_place() {
    let limit = "at most 32 are allowed (level 33 starts here)";
    let cases = [
        ("[".repeat(MAX_PLAN_BYTES), "1:33", 1 << 20),
        ("{".repeat(MAX_PLAN_BYTES), "1:33", 1 << 20),
        ("- ".repeat(MAX_PLAN_BYTES / 2), "1:65", 1 << 19),
        (
            format!("steps:\n  - {}", "[".repeat(MAX_PLAN_BYTES - 11)),
            "2:35",
            (1 << 20) - 9,
        ),
    ];
    for (text, at, depth) in cases {
        let err = load(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("plan.yaml:{at}: lists and maps nested {depth} levels deep; {limit}"),
            "{:?}...",
            &text[..20]
        );
    }
    // Variables nested past their own limit still get its message, with the key.
    let deep = format!(
        "vars: {{x: {}1{}}}\nsteps: []\n",
        "[".repeat(20),
        "]".repeat(20)
    );
    assert_eq!(
        load(&deep).unwrap_err().to_string(),
        format!(
            "plan.yaml:1:{}: vars.x{}: nested deeper than 16 levels",
            11 + 17,
            "[0]".repeat(17)
        )
    );
}

#[test]
fn apt_states_and_handlers_parse() {
    let plan = load(
        "steps:\n  - name: gone\n    apt: {name: [ntpdate, ntpdate], state: purged}\n    notify: h\n  - name: leftovers\n    apt: {name: ntp, state: residual_purged}\nhandlers:\n  - name: h\n    service: {name: ntp, state: restarted}\n",
    )
    .unwrap();
    let r = plan.render(None).unwrap();
    let Action::Apt(a) = &r.steps[0].action else {
        panic!()
    };
    assert_eq!(a.state, PkgState::Purged);
    assert_eq!(a.packages.len(), 1, "duplicates collapse");
    assert_eq!(r.steps[0].notify, vec!["h".to_string()]);
    let Action::Apt(a) = &r.steps[1].action else {
        panic!()
    };
    assert_eq!(a.state, PkgState::ResidualPurged);
}

#[test]
fn allow_insecure_names_lint_rules_and_nothing_else() {
    use crate::lint::Rule;
    let steps = "steps:\n  - name: s\n    apt: {name: ntp}\n";
    assert_eq!(load(steps).unwrap().allow_insecure, vec![]);
    let plan = load(&format!(
        "allow_insecure: [noquery-missing, monitor-enabled]\n{steps}"
    ))
    .unwrap();
    assert_eq!(
        plan.allow_insecure,
        vec![Rule::NoqueryMissing, Rule::MonitorEnabled]
    );
    let err = load(&format!(
        "allow_insecure: [noquery-missing, noquery]\n{steps}"
    ))
    .unwrap_err();
    assert_eq!(err.path, "allow_insecure[1]");
    assert!(
        err.message.starts_with(
            "\"noquery\" is not a lint rule (ipv6-default-missing, kod-without-limited"
        ),
        "{err}"
    );
    let err = load(&format!("allow_insecure: noquery-missing\n{steps}")).unwrap_err();
    assert!(err.to_string().contains("allow_insecure"), "{err}");
}

/// The shared table of bad plans: each one's exact message, file:line:col:
/// key path: rule.
fn bad_plans() -> &'static [(&'static str, &'static str)] {
    include!("../../tests/data/bad_plans.in.rs")
}

#[test]
fn every_bad_plan_gets_its_exact_message_with_position_and_key() {
    let mut wrong = Vec::new();
    for (text, want) in bad_plans() {
        let got = match load(text) {
            Ok(_) => "accepted".to_string(),
            Err(e) => e.to_string(),
        };
        if got != *want {
            wrong.push(format!("plan {text:?}\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(bad_plans().len() >= 30);
    assert!(
        wrong.is_empty(),
        "{} of {} bad plans:\n{}",
        wrong.len(),
        bad_plans().len(),
        wrong.join("\n")
    );
}

/// xorshift64*: a fixed seed makes every CI run try the same inputs, so a
/// failure found once is found again.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random edit of the kind that breaks YAML in interesting ways.
fn mutate(rng: &mut Rng, text: &mut Vec<u8>) {
    const BYTES: &[u8] = b":-[]{}&*!|>'\"\n\t #%@,?\\0123456789aZ{}.\xff\xc3";
    let at = rng.below(text.len() + 1);
    match rng.below(6) {
        0 => text.insert(at, BYTES[rng.below(BYTES.len())]),
        1 if at < text.len() => {
            let end = (at + 1 + rng.below(16)).min(text.len());
            text.drain(at..end);
        }
        2 if at < text.len() => {
            let end = (at + 1 + rng.below(64)).min(text.len());
            let copy = text[at..end].to_vec();
            let to = rng.below(text.len() + 1);
            text.splice(to..to, copy);
        }
        3 if at < text.len() => text[at] = BYTES[rng.below(BYTES.len())],
        4 => text.truncate(at),
        _ => {
            let snippets: &[&[u8]] = &[
                b"{{ x }}",
                b"&a ",
                b"*a",
                b"\n  - ",
                b": ",
                b"{{ facts.daemon.flavor }}",
                b"!!binary ",
                b"[[[[",
            ];
            let s = snippets[rng.below(snippets.len())];
            text.splice(at..at, s.iter().copied());
        }
    }
}

/// What serde says about Rust types, which a plan's author cannot map to
/// anything they wrote.
const RUST_WORDS: [&str; 10] = [
    "struct ",
    "enum ",
    "Raw",
    "OneOrMany",
    "variant",
    "field identifier",
    "unit value",
    "u64",
    "u128",
    "i64",
];

#[test]
fn no_message_of_the_bad_plan_table_names_a_rust_type() {
    for (text, want) in bad_plans() {
        for rust in RUST_WORDS {
            assert!(!want.contains(rust), "{text:?}: {rust:?} in {want}");
        }
    }
}

/// How many mutants a seeded mutation test tries: `default`, the same ones
/// on every run, or N with `NTPP_FUZZ_ITERATIONS=N` to search further by
/// hand (the seed is fixed, so the first `default` cases stay the same).
fn mutation_cases(default: usize) -> usize {
    std::env::var("NTPP_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn mutated_plans_never_panic_and_every_refusal_names_the_file() {
    let iterations = mutation_cases(20_000);
    let seeds = [
        DEFAULT_PLAN.to_string(),
        "vars:\n  daemon: chrony\n  servers: [{host: a.example, nts: true}, b.example]\nsteps:\n  - name: s\n    template: {src: chrony.conf.j2, dest: /etc/chrony/chrony.conf, mode: \"0644\"}\n    notify: h\nhandlers:\n  - name: h\n    service: {name: chrony.service, state: restarted}\n".to_string(),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    for i in 0..iterations {
        let mut text = seeds[i % seeds.len()].clone().into_bytes();
        for _ in 0..=rng.below(4) {
            mutate(&mut rng, &mut text);
        }
        let result = std::panic::catch_unwind(|| {
            Plan::load(
                &text,
                Source {
                    name: "fuzz.yaml".into(),
                    dir: None,
                },
                &[],
            )
        })
        .unwrap_or_else(|_| {
            panic!(
                "iteration {i} panicked on {:?}",
                String::from_utf8_lossy(&text)
            )
        });
        match result {
            Ok(_) => accepted += 1,
            // Every refusal names the file: no bare message from deep inside,
            // and no Rust type in it.
            Err(e) => {
                let e = e.to_string();
                assert!(e.starts_with("fuzz.yaml"), "iteration {i}: {e}");
                // The mutated input a message quotes may spell one by chance
                // ("0rvi644"): only the words around quotes count.
                let own: String = e.split('"').step_by(2).collect();
                for rust in RUST_WORDS {
                    assert!(!own.contains(rust), "iteration {i}: {rust:?} in {e}");
                }
            }
        }
    }
    // Some mutations must survive, or the loop only tested the YAML parser.
    assert!(accepted > 0);
}

fn load_in(dir: &std::path::Path, text: &str, overrides: &[&str]) -> Result<Plan, PlanError> {
    let o: Vec<_> = overrides
        .iter()
        .map(|s| parse_override(s).unwrap())
        .collect();
    let file = dir.join("plan.yaml");
    std::fs::write(&file, text).unwrap();
    Plan::load(text.as_bytes(), Source::file(&file), &o)
}

#[test]
fn a_when_is_evaluated_per_flavour_and_an_undefined_name_in_it_is_refused() {
    let plan = Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &[]).unwrap();
    let dests = |flavor| -> Vec<String> {
        plan.render(Some(&Daemon::new(DaemonName::NTP, flavor)))
            .unwrap()
            .steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Template(t) => Some(t.dest.as_str().to_string()),
                _ => None,
            })
            .collect()
    };
    assert!(dests(Flavor::NTPSEC).contains(&"/etc/default/ntpsec".to_string()));
    assert!(!dests(Flavor::NTPD).contains(&"/etc/default/ntpsec".to_string()));
    assert!(dests(Flavor::NTPD).contains(&"/etc/dhcp/dhclient-exit-hooks.d/ntp".to_string()));

    // The typo is found although the condition would be false for ntpd and
    // for NTPsec alike: the step is never silently left out.
    let typo = DEFAULT_PLAN.replace(
        "when: facts.daemon.flavor == \"ntpsec\"",
        "when: facts.daemon.flavour == \"ntpsec\"",
    );
    let err = Plan::load(typo.as_bytes(), Source::embedded(), &[]).unwrap_err();
    assert_eq!(err.path, "steps[6].when");
    assert!(err.location.is_some(), "{err:?}");
    assert!(
        err.message
            .starts_with("undefined value: facts.daemon.flavour is not defined"),
        "{err}"
    );
    // An undefined name is an error even where `is defined` asks for it:
    // a plan's variables are known when it is loaded.
    let err = load_with(
        "vars: {daemon: chrony}\nsteps:\n  - name: x\n    apt: {name: ntp}\n    when: extra is defined\n",
        &[],
    )
    .unwrap_err();
    assert!(err.message.contains("extra is not defined"), "{err}");
    // Names that exist, in variables, facts and lists, are fine.
    let plan = load(
        "vars: {daemon: chrony, servers: [a.example]}\nsteps:\n  - name: x\n    apt: {name: ntp}\n    when: servers[0].host == \"a.example\" and facts.daemon.unit == \"chrony.service\"\n",
    )
    .unwrap();
    let r = plan
        .render(Some(&Daemon::new(DaemonName::CHRONY, Flavor::CHRONY)))
        .unwrap();
    assert_eq!(r.steps.len(), 1);
}

#[test]
fn handler_errors_name_the_handler_and_its_position() {
    let err = load(
        "steps:\n  - name: x\n    apt: {name: ntp}\n    notify: h\nhandlers:\n  - name: h\n    template: {src: missing.j2, dest: /etc/x}\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plan.yaml:7:21: handlers[0].template.src: \"missing.j2\" is not an embedded template"
    );
}

#[test]
fn a_template_next_to_the_plan_wins_over_the_embedded_one() {
    let dir = tempfile::tempdir().unwrap();
    let literal = "vars: {servers: [a.example]}\nsteps:\n  - name: x\n    template: {src: ntp.conf.j2, dest: /etc/ntp.conf}\n";
    // No file next to the plan: the embedded template.
    let r = load_in(dir.path(), literal, &[])
        .unwrap()
        .render(None)
        .unwrap();
    assert!(config_template(&r, "/etc/ntp.conf")
        .content
        .contains("restrict -4 default kod"));
    // A file of the same name next to the plan replaces it.
    std::fs::write(
        dir.path().join("ntp.conf.j2"),
        "# ours\nserver {{ servers[0].host }}\n",
    )
    .unwrap();
    let r = load_in(dir.path(), literal, &[])
        .unwrap()
        .render(None)
        .unwrap();
    assert_eq!(
        config_template(&r, "/etc/ntp.conf").content,
        "# ours\nserver a.example\n"
    );
    // Also when `src` is Jinja that resolves to the embedded name.
    std::fs::write(dir.path().join("chrony.conf.j2"), "# ours too\n").unwrap();
    let dynamic = "vars: {daemon: chrony}\nsteps:\n  - name: x\n    template: {src: \"{{ facts.daemon.template }}\", dest: \"{{ facts.daemon.config }}\"}\n";
    let plan = load_in(dir.path(), dynamic, &[]).unwrap();
    let r = plan
        .render(Some(&Daemon::new(DaemonName::CHRONY, Flavor::CHRONY)))
        .unwrap();
    assert_eq!(
        config_template(&r, "/etc/chrony/chrony.conf").content,
        "# ours too\n"
    );
    // That plan sets no servers: the rule is the embedded template's, and
    // this template takes no time sources from variables.
    std::fs::remove_file(dir.path().join("chrony.conf.j2")).unwrap();
    let err = load_in(dir.path(), dynamic, &[]).unwrap_err();
    assert_eq!(err.path, "steps[0].template.src");
    assert!(
        err.message.starts_with(
            "the embedded chrony.conf.j2 writes the time sources from vars.servers and vars.pools, and the plan sets neither"
        ),
        "{err}"
    );
    assert!(load_in(dir.path(), dynamic, &["pools=[p.example]"]).is_ok());
}

#[test]
fn template_sources_outside_the_plan_directory_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside.j2");
    std::fs::write(&outside, "secret\n").unwrap();
    let inner = dir.path().join("plans");
    std::fs::create_dir(&inner).unwrap();
    for src in [
        "../outside.j2",
        outside.to_str().unwrap(),
        "./../outside.j2",
    ] {
        let text = format!("steps:\n  - name: x\n    template: {{src: \"{src}\", dest: /etc/x}}\n");
        let err = load_in(&inner, &text, &[]).unwrap_err();
        assert_eq!(err.path, "steps[0].template.src", "{src}");
        assert!(
            err.message
                .ends_with("src names an embedded template or a file next to the plan"),
            "{err}"
        );
    }
    // A subdirectory of the plan's directory is next to the plan.
    std::fs::create_dir(inner.join("t")).unwrap();
    std::fs::write(inner.join("t/x.j2"), "x\n").unwrap();
    let text = "steps:\n  - name: x\n    template: {src: t/x.j2, dest: /etc/x}\n";
    assert!(load_in(&inner, text, &[]).is_ok());
}

#[test]
fn a_variable_nothing_reads_is_refused_with_a_suggestion() {
    // From -e: no position, the variable named, the near miss suggested.
    let err = load_with(DEFAULT_PLAN, &["server=[a.example]"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "plan.yaml: vars.server: no step or template of the plan uses this variable (did you mean servers?)"
    );
    let err = load_with(DEFAULT_PLAN, &["demon=chrony"]).unwrap_err();
    assert!(err.message.ends_with("(did you mean daemon?)"), "{err}");
    // Every documented variable is accepted with the default plan, also for
    // a daemon whose template does not read it.
    for o in [
        "daemon=openntpd",
        "iburst=false",
        "pools=[p.example]",
        "clients=[192.0.2.0/24]",
        "listen=[192.0.2.1]",
        "driftfile=/var/lib/x.drift",
    ] {
        load_with(DEFAULT_PLAN, &[o]).unwrap_or_else(|e| panic!("-e {o}: {e}"));
    }
    // A plan's own variable counts as used where a field or `when` reads it.
    let plan = "vars: {pkg: ntp, extra: true}\nsteps:\n  - name: \"{{ pkg }}\"\n    apt: {name: \"{{ pkg }}\"}\n    when: extra\n";
    assert!(load(plan).is_ok());
    assert!(load_with(plan, &["pkgs=[a]"]).is_err());
}

#[test]
fn clients_and_listen_are_typed_once_at_load() {
    let plan = load_with(
        DEFAULT_PLAN,
        &[
            "daemon=chrony",
            "clients=[192.0.2.0/24, 2001:db8::/32]",
            "listen=[192.0.2.1]",
        ],
    )
    .unwrap();
    assert_eq!(plan.vars.access.clients, ["192.0.2.0/24", "2001:db8::/32"]);
    assert_eq!(plan.vars.access.listen, ["192.0.2.1"]);
    assert_eq!(
        load_with(DEFAULT_PLAN, &[]).unwrap().vars.access,
        crate::daemons::Access::default()
    );
}

/// Nesting depth as the parser builds it: each list or map one level.
fn value_depth(v: &serde_yaml::Value) -> usize {
    use serde_yaml::Value;
    match v {
        Value::Sequence(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        Value::Mapping(m) => {
            1 + m
                .iter()
                .map(|(k, v)| value_depth(k).max(value_depth(v)))
                .max()
                .unwrap_or(0)
        }
        Value::Tagged(t) => value_depth(&t.value),
        _ => 0,
    }
}

/// The pre-parse nesting count must see what the parser sees, or a deep
/// plan would slip past it into the slow parse (or a valid one be refused):
/// on mutated YAML of every style that parses, both counts are equal.
#[test]
fn the_nesting_count_before_parsing_is_the_parsers() {
    let iterations = mutation_cases(20_000);
    let seeds = [
        DEFAULT_PLAN,
        "a: [b, {c: [d, e: f]}, 'g[', \"h{\"]\nk:\n- l\n- m: |\n    [[x\n  n: >\n    {{y\n",
        "- [a, [b, [c]]]\n- {x: {y: {z: 1}}}\n- ? [k]\n  : v\n- !!map {a: 1}\n- &a [1]\n",
        "%YAML 1.2\n---\na: |2-\n   [x\n  {y\nb: >+\n\n  [[\n\nc: \"multi\n  [line\\\n  ]\"\nd: 'q\n  ''[''\n  '\n",
        "k: plain\n  continued [ here\n  # comment [\nl:\n  - - [a,\n      b]\n    - {c: d,\n       e: [f]}\n? [x, y]\n: - z\nm: !tag\n  n: &anc\n    o: [p]\n",
        "a:\r\n  - [b]\r\n  - c: {d: [e]}\r\nf: 1\n\u{2028}g: [h]\n...\n",
        "[a: [b: [c: d]], {e: [f: g]}, ? h : [i]]\n",
    ];
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let (mut parsed, mut wrong) = (0, Vec::new());
    for i in 0..iterations {
        let mut text = seeds[i % seeds.len()].as_bytes().to_vec();
        for _ in 0..=rng.below(6) {
            mutate(&mut rng, &mut text);
        }
        // Aliases repeat nodes the text nests only once.
        let Ok(text) = String::from_utf8(text) else {
            continue;
        };
        if text.contains('*') {
            continue;
        }
        let Ok(v) = serde_yaml::from_str::<serde_yaml::Value>(&text) else {
            continue;
        };
        parsed += 1;
        let (ours, parsers) = (super::nesting::depth(&text), value_depth(&v));
        if ours != parsers {
            wrong.push(format!("{text:?}: {ours} levels counted, {parsers} parsed"));
        }
    }
    assert!(parsed > iterations / 10, "only {parsed} mutants parsed");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Loads `text` as plan.yaml with `-e` arguments as the command line reads them.
fn load_e(text: &str, args: &[&str]) -> Result<Plan, PlanError> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let overrides = read_overrides(&args).unwrap_or_else(|e| panic!("{args:?}: {e:?}"));
    Plan::load_overridden(
        text.as_bytes(),
        Source {
            name: "plan.yaml".into(),
            dir: None,
        },
        &overrides,
    )
}

#[test]
fn an_error_about_a_variable_given_with_e_names_the_argument_not_the_plan() {
    let e = |args: &[&str]| load_e(DEFAULT_PLAN, args).unwrap_err().to_string();
    assert_eq!(
        e(&["daemon=ntimed"]),
        "-e daemon=ntimed: vars.daemon: \"ntimed\" was never packaged by Debian or Ubuntu; choose one of ntp, ntpsec, chrony, openntpd, timesyncd"
    );
    assert_eq!(
        e(&["servers=[a.example, \"b c\"]"]),
        "-e servers=[a.example, \"b c\"]: vars.servers[1]: \"b c\" is not a hostname or address"
    );
    assert_eq!(
        e(&["server=[a.example]"]),
        "-e server=[a.example]: vars.server: no step or template of the plan uses this variable (did you mean servers?)"
    );
    assert_eq!(
        e(&["facts=1"]),
        "-e facts=1: vars.facts: \"facts\" is reserved for facts gathered from the node"
    );
    // A long or multi-line value is shown by its key.
    let many: Vec<String> = (0..9).map(|i| format!("s{i}.example")).collect();
    assert_eq!(
        e(&[&format!("servers=[{}, s0.example]", many.join(", "))]),
        "-e servers=...: vars.servers[9]: \"s0.example\" is listed twice"
    );
    assert_eq!(
        e(&["pools=[p.example,\n  \"q r\"]"]),
        "-e pools=...: vars.pools[1]: \"q r\" is not a hostname or address"
    );
    // The last -e for a key is the one in force, and the one named.
    assert_eq!(
        e(&["daemon=ntimed", "daemon=xntpd"]),
        "-e daemon=xntpd: vars.daemon: \"xntpd\" is not a known daemon (ntp, ntpsec, chrony, openntpd, timesyncd)"
    );
    // An error about the plan's own variable still points into the plan.
    let plan = "vars:\n  servers: [\"b c\"]\nsteps:\n  - name: x\n    apt: {name: ntp}\n";
    assert_eq!(
        load_e(plan, &["daemon=ntp"]).unwrap_err().to_string(),
        "plan.yaml:2:13: vars.servers[0]: \"b c\" is not a hostname or address"
    );
}

#[test]
fn a_value_given_with_e_is_refused_as_usage_naming_it() {
    let usage = |arg: &str| {
        let err = read_overrides(&[arg.to_string()]).unwrap_err();
        assert_eq!(err.fault, ArgFault::Usage, "{arg}");
        err.message
    };
    assert_eq!(
        usage("novalue"),
        "-e \"novalue\": expected KEY=VALUE or @FILE"
    );
    assert_eq!(usage("9x=1"), "-e \"9x=1\": \"9x\" is not a variable name");
    assert_eq!(
        usage("servers=["),
        "-e servers=[: the value is not valid YAML: did not find expected node content at line 2 column 1, while parsing a flow node"
    );
    assert_eq!(
        usage(&format!("servers={}", "[".repeat(100_000))),
        "-e servers=...: the value has lists and maps nested 100000 levels deep; at most 32 are allowed (level 33 starts at line 1 column 33)"
    );
    assert_eq!(usage("@"), "-e @: expected a file name after @");
}

#[test]
fn variables_files_mix_with_e_in_order_and_the_last_wins() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vars.yaml");
    std::fs::write(&file, "daemon: chrony\nservers:\n  - a.example\n").unwrap();
    let at = format!("@{}", file.display());
    let daemon = |args: &[&str]| load_e(DEFAULT_PLAN, args).unwrap().vars.daemon;
    assert_eq!(daemon(&[&at]), Some(DaemonName::CHRONY));
    assert_eq!(
        daemon(&[&at, "daemon=openntpd"]),
        Some(DaemonName::OPENNTPD)
    );
    assert_eq!(daemon(&["daemon=openntpd", &at]), Some(DaemonName::CHRONY));
    let plan = load_e(DEFAULT_PLAN, &[&at]).unwrap();
    assert_eq!(plan.vars.values["servers"][0]["host"], "a.example");
    // An empty file (or only comments) sets nothing.
    std::fs::write(&file, "# none yet\n").unwrap();
    assert_eq!(daemon(&[&at]), Some(DaemonName::NTP));

    // An error about one of its variables names the file, line and column.
    std::fs::write(
        &file,
        "daemon: chrony\nservers:\n  - a.example\n  - \"b c\"\ncolour: blue\n",
    )
    .unwrap();
    let name = file.display();
    assert_eq!(
        load_e(DEFAULT_PLAN, &[&at]).unwrap_err().to_string(),
        format!("{name}:4:5: vars.servers[1]: \"b c\" is not a hostname or address")
    );
    assert_eq!(
        load_e(DEFAULT_PLAN, &[&at, "servers=[a.example]"])
            .unwrap_err()
            .to_string(),
        format!("{name}:5:9: vars.colour: no step or template of the plan uses this variable")
    );
    std::fs::write(&file, "9x: 1\n").unwrap();
    assert_eq!(
        load_e(DEFAULT_PLAN, &[&at]).unwrap_err().to_string(),
        format!("{name}:1:5: vars.9x: \"9x\" is not a variable name (letters, digits, _)")
    );
}

#[test]
fn a_variables_file_that_cannot_be_used_is_refused_naming_it_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vars.yaml");
    let (at, name) = (format!("@{}", file.display()), file.display().to_string());
    let refused = |content: Option<&[u8]>| {
        if let Some(c) = content {
            std::fs::write(&file, c).unwrap();
        }
        let err = read_overrides(std::slice::from_ref(&at)).unwrap_err();
        (err.fault, err.message)
    };
    assert_eq!(
        refused(None),
        (
            ArgFault::Unreadable,
            format!("-e {at}: cannot read variables file {name}: No such file or directory (os error 2)")
        )
    );
    let dir_at = format!("@{}", dir.path().display());
    assert_eq!(
        read_overrides(std::slice::from_ref(&dir_at))
            .unwrap_err()
            .message,
        format!(
            "-e {dir_at}: variables file {} is not a regular file",
            dir.path().display()
        )
    );
    let cases: &[(&[u8], &str)] = &[
        (
            b"- daemon: chrony\n",
            ":1:1: invalid type: sequence, expected a map of variables",
        ),
        (
            b"chrony\n",
            ":1:1: invalid type: string \"chrony\", expected a map of variables",
        ),
        (
            b"servers: [\n",
            ":2:1: did not find expected node content, while parsing a flow node",
        ),
        (
            b"daemon: ntp\ndaemon: chrony\n",
            ":2:1: daemon: duplicate key \"daemon\": each key may be given once in a map",
        ),
        (
            b"[servers]: a\n",
            ":1:1: invalid type: sequence, expected a string",
        ),
        (
            b"servers: [\xff]\n",
            ": the file is not UTF-8 text (invalid byte at offset 10)",
        ),
    ];
    for (content, want) in cases {
        assert_eq!(
            refused(Some(content)),
            (ArgFault::Invalid, format!("-e {at}: {name}{want}")),
            "{:?}",
            String::from_utf8_lossy(content)
        );
    }
    let deep = format!("servers: {}", "[".repeat(MAX_PLAN_BYTES - 9));
    assert_eq!(
        refused(Some(deep.as_bytes())),
        (
            ArgFault::Invalid,
            format!("-e {at}: {name}:1:41: lists and maps nested 1048568 levels deep; at most 32 are allowed (level 33 starts here)")
        )
    );
    // Refused by its size, as a plan file is, without reading it.
    std::fs::File::create(&file)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    assert_eq!(
        refused(None),
        (
            ArgFault::Unreadable,
            format!("-e {at}: variables file {name} is 67108864 bytes; variables files are limited to 1048576 bytes")
        )
    );
}

#[test]
fn a_template_that_writes_a_secret_needs_no_log() {
    use crate::daemons::keys::{Secret, Secrets};
    let plan = |no_log: bool| {
        load(&format!(
            "vars:\n  daemon: chrony\n  keys: [{{id: 7, type: SHA1, secret_file: /etc/k7}}]\n\
             steps:\n  - name: k\n    template: {{src: keys.j2, dest: /etc/chrony/chrony.keys, no_log: {no_log}}}\n"
        ))
        .unwrap()
    };
    let secrets: Secrets = [(
        "/etc/k7".to_string(),
        Secret::parse("LongEnoughSecret").unwrap(),
    )]
    .into();
    let chrony = Daemon::new(DaemonName::CHRONY, Flavor::CHRONY);
    let err = plan(false)
        .render_with(Some(&chrony), None, &secrets)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("keys.j2 writes a secret of vars.keys: set no_log: true on this step"),
        "{err}"
    );
    assert!(!err.to_string().contains("LongEnoughSecret"));
    let r = plan(true)
        .render_with(Some(&chrony), None, &secrets)
        .unwrap();
    let Action::Template(t) = &r.steps[0].action else {
        panic!()
    };
    assert!(
        t.no_log && t.content.ends_with("7 SHA1 LongEnoughSecret\n"),
        "{}",
        t.content
    );
    // Without facts (the loader's own render) the secret is masked.
    let Action::Template(t) = &plan(true).render(Some(&chrony)).unwrap().steps[0].action else {
        panic!()
    };
    assert!(t.content.ends_with("7 SHA1 ********\n"), "{}", t.content);
}

#[test]
fn nts_files_are_each_daemons_own_lines() {
    let plan = load_with(
        DEFAULT_PLAN,
        &[
            "servers=[{host: 10.123.0.50, nts: true}, 10.123.0.2]",
            "nts_ca=/etc/ssl/site-ca.pem",
            "nts_server_cert=/etc/ssl/nts.pem",
            "nts_server_key=/etc/ssl/private/nts.key",
            "clients=[10.123.0.128/25]",
        ],
    )
    .unwrap();
    let chrony = config_of(&plan, Flavor::CHRONY, "/etc/chrony/chrony.conf");
    for line in [
        "\nserver 10.123.0.50 iburst nts\nserver 10.123.0.2 iburst\n",
        "\nntsdumpdir /var/lib/chrony\n",
        "\nntstrustedcerts /etc/ssl/site-ca.pem\nnosystemcert\n",
        "\nntsservercert /etc/ssl/nts.pem\nntsserverkey /etc/ssl/private/nts.key\n",
        "\nallow 10.123.0.128/25\n",
    ] {
        assert!(chrony.contains(line), "{line:?} in\n{chrony}");
    }
    let ntpsec = config_of(&plan, Flavor::NTPSEC, "/etc/ntpsec/ntp.conf");
    for line in [
        "\nserver 10.123.0.50 iburst nts ca /etc/ssl/site-ca.pem\nserver 10.123.0.2 iburst\n",
        "\nnts key /etc/ssl/private/nts.key\nnts cert /etc/ssl/nts.pem\nnts cookie /var/lib/ntpsec/nts-keys\nnts enable\n",
    ] {
        assert!(ntpsec.contains(line), "{line:?} in\n{ntpsec}");
    }
    let classic = config_of(&plan, Flavor::NTPD, "/etc/ntp.conf");
    assert!(
        !classic.contains(" nts") && !classic.contains("site-ca"),
        "{classic}"
    );
    assert_eq!(
        plan.nts_files()
            .iter()
            .map(|(var, path)| format!("{var}={path}"))
            .collect::<Vec<_>>(),
        [
            "nts_ca=/etc/ssl/site-ca.pem",
            "nts_server_cert=/etc/ssl/nts.pem",
            "nts_server_key=/etc/ssl/private/nts.key"
        ]
    );
    assert_eq!(
        plan.settings(),
        [
            crate::daemons::Setting::Clients,
            crate::daemons::Setting::NtsServer
        ]
    );
}
