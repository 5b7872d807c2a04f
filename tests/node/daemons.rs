//! Every daemon on every release: each available daemon converges, re-runs
//! with changed=0, and switching between them in any order leaves exactly
//! one time daemon installed and running. A config the daemon rejects never
//! replaces the live one.

use crate::harness::{exclusive, json, plan_with_template, Node, Release, SERVERS};
use serde_json::Value;

const TIME_DAEMONS: [(&str, &str); 5] = [
    ("ntp", "ntp.service"),
    ("ntpsec", "ntpsec.service"),
    ("chrony", "chrony.service"),
    ("openntpd", "openntpd.service"),
    ("systemd-timesyncd", "systemd-timesyncd.service"),
];

/// What `daemon` resolves to on a node: (daemon, package, unit, config).
type Resolved = (&'static str, &'static str, &'static str, &'static str);
const CLASSIC_NTP: Resolved = ("ntp", "ntp", "ntp.service", "/etc/ntp.conf");
/// `ntp` where it is a transitional package for NTPsec (Debian 12).
const NTP_AS_NTPSEC: Resolved = ("ntp", "ntpsec", "ntpsec.service", "/etc/ntpsec/ntp.conf");
const NTPSEC: Resolved = ("ntpsec", "ntpsec", "ntpsec.service", "/etc/ntpsec/ntp.conf");
const CHRONY: Resolved = (
    "chrony",
    "chrony",
    "chrony.service",
    "/etc/chrony/chrony.conf",
);
const OPENNTPD: Resolved = (
    "openntpd",
    "openntpd",
    "openntpd.service",
    "/etc/openntpd/ntpd.conf",
);

/// Installed (`ii`) time-daemon packages and active time-daemon units.
pub(crate) fn time_daemons(node: &Node) -> (Vec<String>, Vec<String>) {
    let names: Vec<&str> = TIME_DAEMONS.iter().map(|(p, _)| *p).collect();
    let mut argv = vec!["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n"];
    argv.extend(&names);
    let listed = node.run(&argv).stdout;
    let installed = listed
        .lines()
        .filter_map(|l| {
            l.strip_suffix(" ii")
                .or_else(|| l.strip_suffix(" ii "))
                .map(str::to_string)
        })
        .collect();
    // ntp.service is an alias of ntpsec.service on Debian 12/13: count Ids.
    let mut active: Vec<String> = TIME_DAEMONS
        .iter()
        .filter(|(_, unit)| node.run(&["systemctl", "is-active", unit]).stdout.trim() == "active")
        .map(|(_, unit)| node.unit_property(unit, "Id"))
        .collect();
    active.dedup();
    (installed, active)
}

/// Converge to `daemon`, check the result, and check that a re-run is
/// clean; the first apply's report.
fn converge(node: &Node, daemon: &str, package: &str, unit: &str, config: &str) -> Value {
    let var = format!("daemon={daemon}");
    let out = node.provision(&["apply", "-e", SERVERS, "-e", &var, "--format", "json"]);
    assert_eq!(
        out.code,
        0,
        "{} -> {daemon}:\n{}\n{}",
        node.name(),
        out.stdout,
        out.stderr
    );
    let doc = json(&out);
    assert_eq!(doc["daemon"]["package"], package);
    assert_eq!(doc["daemon"]["unit"], unit);
    assert_eq!(doc["daemon"]["config"], config);

    let (installed, active) = time_daemons(node);
    assert_eq!(
        installed,
        vec![package.to_string()],
        "{}: exactly one time daemon installed",
        node.name()
    );
    assert_eq!(
        active,
        vec![unit.to_string()],
        "{}: exactly one time daemon running",
        node.name()
    );
    let text = node.read(config).unwrap();
    assert!(
        text.contains("127.0.0.1") && text.contains("::1"),
        "{config}:\n{text}"
    );
    assert!(
        text.contains("written by ntp-provision"),
        "{config}:\n{text}"
    );

    node.rerun_clean(&["-e", &var]);

    let status = status_listing(node, &var, &["127.0.0.1", "::1"]);
    assert_eq!(status["daemon"]["package"], package);
    assert_eq!(status["unit"]["running"], true);
    assert_eq!(status["config"]["path"], config);
    assert_eq!(status["config"]["matches_plan"], true, "{status:#}");
    assert_eq!(
        status["synchronised"], false,
        "loopback servers never synchronise"
    );

    // A plain status compares with what was applied (-e daemon=... included).
    let plain = node.provision(&["status", "--format", "json"]);
    assert_eq!(plain.code, 0, "status: {}\n{}", plain.stdout, plain.stderr);
    let plain = json(&plain);
    assert_eq!(plain["config"]["matches_plan"], true, "{plain:#}");
    assert!(
        plain["compared_with"]
            .as_str()
            .unwrap()
            .contains("(last applied 20"),
        "{plain:#}"
    );
    let record: Value =
        serde_json::from_str(&node.read("/var/lib/ntp-provision/last-run.json").unwrap()).unwrap();
    assert_eq!(record["daemon"]["package"], package, "{record:#}");
    assert!(
        record["plan"]["vars"].to_string().contains(&var[7..]),
        "{record:#}"
    );
    let log = node.read("/var/log/ntp-provision.log").unwrap();
    // One line per apply: this converge and its clean re-run are the last two.
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines.len() >= 2
            && lines[lines.len() - 2..]
                .iter()
                .all(|l| l.contains(&format!("daemon={package} "))),
        "{log}"
    );
    doc
}

/// `status --format json` once the daemon lists every server (a daemon just
/// restarted may not answer its query tool yet; bounded wait).
fn status_listing(node: &Node, var: &str, servers: &[&str]) -> Value {
    let mut last = Value::Null;
    for _ in 0..30 {
        let out = node.provision(&["status", "-e", SERVERS, "-e", var, "--format", "json"]);
        assert_eq!(out.code, 0, "status: {}\n{}", out.stdout, out.stderr);
        last = json(&out);
        let remotes: Vec<&str> = last["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["remote"].as_str())
            .collect();
        if servers.iter().all(|s| remotes.contains(s)) {
            return last;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("{}: status never listed {servers:?}: {last:#}", node.name());
}

fn assert_secure(node: &Node, daemon: &str, config: &str) {
    let text = node.read(config).unwrap();
    match daemon {
        "chrony" => {
            assert!(
                !text.lines().any(|l| l.starts_with("allow")),
                "chrony serves nobody unless asked:\n{text}"
            );
            assert!(text.contains("bindcmdaddress 127.0.0.1\n"), "{text}");
            assert!(
                !text.lines().any(|l| l.starts_with("sourcedir")),
                "DHCP sources stay out:\n{text}"
            );
        }
        "openntpd" => assert!(
            !text.contains("listen on"),
            "OpenNTPD listens nowhere unless asked:\n{text}"
        ),
        _ => {
            // NTPsec ignores notrap and nopeer (and says so): its lines leave them out.
            let flags = if config == "/etc/ntpsec/ntp.conf" {
                "kod nomodify noquery limited"
            } else {
                "kod notrap nomodify nopeer noquery limited"
            };
            for family in ["-4", "-6"] {
                let line = format!("restrict {family} default {flags}\n");
                assert!(text.contains(&line), "{line}{text}");
            }
        }
    }
}

#[test]
fn bookworm_switches_ntp_chrony_openntpd_ntpsec_ntp_leaving_one_daemon() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bookworm);
    // Debian's default time sync, a competing time-daemon package here.
    node.apt_get(&["update"]);
    node.apt_get(&["install", "systemd-timesyncd"]);
    let plan = json(&node.provision(&["plan", "-e", SERVERS, "--format", "json"]));
    let notes = plan["notes"].to_string();
    assert!(
        notes.contains("also installed: systemd-timesyncd"),
        "plan names the competitor: {notes}"
    );
    for (daemon, package, unit, config) in [NTP_AS_NTPSEC, CHRONY, OPENNTPD, NTPSEC, NTP_AS_NTPSEC]
    {
        // NTPsec's python3-ntp is left unneeded by the switch to chrony:
        // plan names it (apt's simulation of the switch), apply names it gone.
        let planned = (daemon == "chrony").then(|| {
            let var = format!("daemon={daemon}");
            let plan = node.provision(&["plan", "-e", SERVERS, "-e", &var, "--format", "json"]);
            autoremoved(&json(&plan))
        });
        let doc = converge(&node, daemon, package, unit, config);
        assert_secure(&node, daemon, config);
        if let Some(planned) = planned {
            let removed = autoremoved(&doc);
            assert!(
                removed.iter().any(|p| p.starts_with("python3-ntp ")),
                "{doc:#}"
            );
            assert!(
                planned.iter().any(|p| p.starts_with("python3-ntp ")),
                "plan: {planned:?}"
            );
        }
    }
    assert!(node
        .read("/etc/default/ntpsec")
        .unwrap()
        .contains("IGNORE_DHCP=\"yes\""));
    // Purged, not just removed: no competitor's config is left behind.
    let rc = node
        .run(&[
            "dpkg-query",
            "-W",
            "-f=${Package} ${db:Status-Abbrev}\n",
            "chrony",
            "openntpd",
        ])
        .stdout;
    assert!(!rc.contains(" rc"), "{rc}");
}

#[test]
fn bullseye_runs_classic_ntpd_chrony_openntpd_and_ntpsec() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bullseye);
    for (daemon, package, unit, config) in [CLASSIC_NTP, CHRONY, NTPSEC, OPENNTPD, CLASSIC_NTP] {
        converge(&node, daemon, package, unit, config);
        assert_secure(&node, daemon, config);
    }
    assert!(node
        .read("/etc/ntp.conf")
        .unwrap()
        .contains("\nrestrict -6 default kod notrap nomodify nopeer noquery limited\n"));
    assert!(node
        .read("/etc/dhcp/dhclient-exit-hooks.d/ntp")
        .unwrap()
        .contains("written by ntp-provision"));
}

#[test]
fn trixie_runs_ntpsec_chrony_and_openntpd() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Trixie);
    for (daemon, package, unit, config) in [NTPSEC, CHRONY, OPENNTPD] {
        converge(&node, daemon, package, unit, config);
        assert_secure(&node, daemon, config);
    }
}

/// The node resolves names from /etc/hosts only, so no daemon under test
/// asks DNS for the test's names; apt's mirror is pinned there as this
/// host resolves it, so packages still come.
fn resolve_from_files_only(node: &Node, hosts: &[(&str, &str)]) {
    use std::net::ToSocketAddrs;
    let mut lines = node.read("/etc/hosts").unwrap_or_default();
    let sources = node.read("/etc/apt/sources.list").unwrap();
    let mirrors = sources
        .lines()
        .filter_map(|l| l.split("http://").nth(1)?.split('/').next());
    let mut pinned: Vec<&str> = Vec::new();
    for mirror in mirrors.filter(|m| !m.is_empty()) {
        if pinned.contains(&mirror) {
            continue;
        }
        let ip = (mirror, 80)
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("{mirror}: {e}"))
            .map(|a| a.ip())
            .min_by_key(|ip| ip.is_ipv6())
            .unwrap();
        lines.push_str(&format!("{ip} {mirror}\n"));
        pinned.push(mirror);
    }
    for (ip, name) in hosts {
        lines.push_str(&format!("{ip} {name}\n"));
    }
    node.write("/etc/hosts", &lines);
    let nss = node.read("/etc/nsswitch.conf").unwrap();
    let nss: Vec<&str> = nss
        .lines()
        .map(|l| {
            if l.starts_with("hosts:") {
                "hosts: files"
            } else {
                l
            }
        })
        .collect();
    node.write("/etc/nsswitch.conf", &(nss.join("\n") + "\n"));
}

/// `status` names every server the config names, in full, with what became
/// of it, and says why the clock is not synchronised: NTPsec (whose ntpq
/// cuts names to 15 columns) and chrony (whose peer list leaves out names
/// that did not resolve).
#[test]
fn bookworm_status_lists_each_configured_source_by_name_with_its_state() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bookworm);
    let long = "a-long-name-for-a-test-server.test";
    resolve_from_files_only(&node, &[("::1", long)]);
    let servers = format!("servers=[127.0.0.1, {long}, unresolvable.invalid]");
    for daemon in ["ntp", "chrony"] {
        let var = format!("daemon={daemon}");
        let out = node.provision(&["apply", "-e", &servers, "-e", &var, "--format", "json"]);
        assert_eq!(out.code, 0, "{daemon}: {}\n{}", out.stdout, out.stderr);
        // The daemon resolves its names a moment after it starts.
        let mut status = Value::Null;
        for _ in 0..30 {
            let out = node.provision(&["status", "-e", &servers, "-e", &var, "--format", "json"]);
            assert_eq!(out.code, 0, "status: {}\n{}", out.stdout, out.stderr);
            status = json(&out);
            if status["sources"][1]["addresses"][0]["address"] == "::1" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let sources = status["sources"].as_array().unwrap();
        let named: Vec<(&str, &str)> = sources
            .iter()
            .map(|s| (s["name"].as_str().unwrap(), s["kind"].as_str().unwrap()))
            .collect();
        assert_eq!(
            named,
            [
                ("127.0.0.1", "server"),
                (long, "server"),
                ("unresolvable.invalid", "server")
            ],
            "{daemon}: {status:#}"
        );
        for (source, address) in sources[..2].iter().zip(["127.0.0.1", "::1"]) {
            assert_eq!(
                source["addresses"][0]["address"], address,
                "{daemon}: {status:#}"
            );
            assert!(
                ["unreachable", "reachable", "selected"]
                    .contains(&source["state"].as_str().unwrap()),
                "{daemon}: {status:#}"
            );
            assert!(
                source["addresses"][0]["reach"].is_string(),
                "octal: {status:#}"
            );
        }
        assert_eq!(sources[2]["state"], "unresolved", "{daemon}: {status:#}");
        assert_eq!(sources[2]["addresses"], Value::Array(vec![]));
        assert_eq!(status["synchronised"], false);
        let reason = status["reason"].as_str().unwrap_or_default();
        assert!(
            ["none_reachable", "selecting"].contains(&reason),
            "{daemon}: {status:#}"
        );
        let human = node
            .provision(&["status", "-e", &servers, "-e", &var])
            .stdout;
        eprintln!("{daemon}:\n{human}");
        assert!(
            human.contains("\nsynchronised: no, ")
                && human.contains(&format!("\n  server {long:<40} "))
                && human.contains(&format!(
                    "\n  server {:<40} unresolved\n",
                    "unresolvable.invalid"
                )),
            "{daemon}:\n{human}"
        );
    }
}

/// A plan like the default one, but with a config template the daemon's
/// parser rejects: the step fails, the live config and daemon stay.
#[test]
fn a_config_the_daemon_rejects_never_replaces_the_live_one() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bookworm);
    for (daemon, unit, config) in [
        ("ntp", "ntpsec.service", "/etc/ntpsec/ntp.conf"),
        ("chrony", "chrony.service", "/etc/chrony/chrony.conf"),
        ("openntpd", "openntpd.service", "/etc/openntpd/ntpd.conf"),
    ] {
        let var = format!("daemon={daemon}");
        let out = node.provision(&["apply", "-e", SERVERS, "-e", &var]);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        let live = node.read(config).unwrap();
        let pid = node.unit_property(unit, "MainPID");

        // Secure (it passes the access-control lint) but not parseable.
        let plan = plan_with_template(
            &node,
            "/root/broken",
            &format!("{live}bogus-directive here\n"),
        );
        let out = node.provision(&[
            "apply", &plan, "-e", SERVERS, "-e", &var, "--format", "json",
        ]);
        assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
        let doc = json(&out);
        let failed: Vec<&Value> = doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "failed")
            .collect();
        assert_eq!(failed.len(), 1, "{doc:#}");
        let error = failed[0]["error"].as_str().unwrap();
        assert!(error.contains("was rejected and not installed"), "{error}");
        // The daemon's own words about the bad line (ntpd and NTPsec read a
        // copy under /tmp, OpenNTPD reads it from a pipe).
        assert!(error.contains("rejected the config:"), "{daemon}: {error}");
        let copies = node
            .run(&[
                "sh",
                "-c",
                "ls -d /tmp/ntp-provision-check.* 2>/dev/null || true",
            ])
            .stdout;
        assert!(copies.trim().is_empty(), "checked copies left: {copies}");
        assert_eq!(
            node.read(config).unwrap(),
            live,
            "the live config is untouched"
        );
        // Temporary files end in `.ntp-provision`; backups (`.ntp-provision.bak`) are meant to stay.
        let leftovers = node
            .run(&[
                "sh",
                "-c",
                "ls -a $(dirname $0) | grep '[.]ntp-provision$' || true",
                config,
            ])
            .stdout;
        assert!(
            leftovers.trim().is_empty(),
            "temporary files left: {leftovers}"
        );
        assert_eq!(
            node.run(&["systemctl", "is-active", unit]).stdout.trim(),
            "active"
        );
        assert_eq!(node.unit_property(unit, "MainPID"), pid, "not restarted");
    }
}

/// The packages of a report's autoremove changes.
fn autoremoved(doc: &Value) -> Vec<String> {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["changes"].as_array().unwrap())
        .filter(|c| c["kind"] == "autoremove")
        .flat_map(|c| c["packages"].as_array().unwrap())
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect()
}
