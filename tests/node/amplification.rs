//! DRDoS on real nodes: after `apply`, the daemon answers no mode 6 or mode 7
//! query from 127.0.0.2 (an address no restrict line trusts, standing in for
//! any host) while it still serves time, and ntpq still works from
//! localhost. A plan that opens queries is refused by the lint, changing
//! nothing, and when the plan accepts the risk, `verify` measures it.
//!
//! Daemons under test are only ever given loopback servers, and every probe
//! goes to 127.0.0.1 from 127.0.0.1 or 127.0.0.2.

use crate::harness::{exclusive, json, snapshot_diff, Node, Release, SERVERS};
use serde_json::Value;

const STEP: &str = "No amplification from this node";

fn query<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["queries"]
        .as_array()
        .unwrap_or_else(|| panic!("no queries in {doc:#}"))
        .iter()
        .find(|q| q["query"] == name)
        .unwrap_or_else(|| panic!("no {name} query in {doc:#}"))
}

const CONTROL: [&str; 4] = ["read_var", "read_stat", "mon_get_list", "peer_list"];

/// The apply report's amplification step.
fn amplification_step(doc: &Value) -> &Value {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == STEP)
        .unwrap_or_else(|| panic!("no {STEP:?} step in {doc:#}"))
}

/// `ntpq` right after a restart may not answer yet; poll a bounded time.
fn ntpq_from_localhost(node: &Node, args: &[&str], expect: &str) -> String {
    let mut last = String::new();
    for _ in 0..20 {
        let mut argv = vec!["ntpq"];
        argv.extend_from_slice(args);
        last = node.run(&argv).stdout;
        if last.contains(expect) {
            return last;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("ntpq {args:?} from localhost never showed {expect:?}:\n{last}");
}

fn converged_daemon_is_no_amplifier(release: Release, flavor: &str) {
    let node = Node::boot(release);
    let out = node.provision(&["apply", "-e", SERVERS, "--format", "json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let doc = json(&out);
    assert_eq!(doc["daemon"]["flavor"], flavor);
    let step = amplification_step(&doc);
    assert_eq!(step["status"], "ok", "{step:#}");
    let check = &step["amplification"];
    assert_eq!(
        check["from"], "127.0.0.3",
        "apply's check: its time request from 127.0.0.3"
    );
    assert_eq!(check["verdict"], "no_amplification", "{check:#}");
    assert_eq!(check["enforcement"], "enforced");
    assert_eq!(check["time_service_intended"], "served", "{check:#}");
    assert_eq!(
        check["time_service"], "served",
        "ntpd and NTPsec serve time as the recipe intends: {check:#}"
    );
    for q in CONTROL {
        assert_eq!(
            query(check, q)["received"],
            0,
            "{q} in the apply check: {check:#}"
        );
        assert_ne!(
            query(check, q)["from"],
            "127.0.0.3",
            "each control query has its own source: {check:#}"
        );
    }

    let verify = node.provision(&["verify", "--format", "json"]);
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    let doc = json(&verify);
    assert_eq!(
        (doc["failed"].as_bool(), doc["source"].as_str()),
        (Some(false), Some("remote"))
    );
    for q in CONTROL {
        let r = query(&doc, q);
        assert_eq!(
            (r["received"].as_u64(), r["datagrams"].as_u64()),
            (Some(0), Some(0)),
            "{q}: {doc:#}"
        );
    }
    let time = query(&doc, "time");
    assert_eq!(
        time["received"], 48,
        "the time request is answered: {doc:#}"
    );
    assert_eq!(time["replies"][0]["mode"], 4);
    eprintln!("{flavor}: time answer to 127.0.0.2: {}", time["replies"][0]);
    assert_eq!(doc["time_service"], "served");

    let human = node.provision(&["verify"]);
    assert_eq!(human.code, 0, "{}\n{}", human.stdout, human.stderr);
    assert!(
        human
            .stdout
            .contains("ok: mode 6 READVAR: sent 12 bytes, no answer\n"),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .ends_with("RESULT no amplification: no mode 6 or mode 7 query was answered\n"),
        "{}",
        human.stdout
    );

    // Localhost keeps its rights: mode 6 from 127.0.0.1 is answered.
    ntpq_from_localhost(&node, &["-pn"], "127.0.0.1");
    ntpq_from_localhost(&node, &["-c", "rv 0 stratum"], "stratum=");

    // A converged re-run restarts nothing, so it probes nothing.
    let again = node.provision(&["apply", "-e", SERVERS, "--format", "json"]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    let doc = json(&again);
    assert!(
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != STEP),
        "{doc:#}"
    );
}

#[test]
fn bookworm_ntpsec_answers_no_mode_6_or_7_from_a_remote_source_and_still_serves_time() {
    let _one_at_a_time = exclusive();
    converged_daemon_is_no_amplifier(Release::Bookworm, "ntpsec");
}

#[test]
fn bullseye_classic_ntpd_answers_no_mode_6_or_7_from_a_remote_source_and_still_serves_time() {
    let _one_at_a_time = exclusive();
    converged_daemon_is_no_amplifier(Release::Bullseye, "ntpd");
}

const OPEN_TEMPLATE: &str = "\
# Answers queries from anyone: a DRDoS reflector, on purpose, for the test.
driftfile /var/lib/ntp/ntp.drift
{% for s in servers %}server {{ s.host }} iburst
{% endfor %}
restrict default kod limited nomodify nopeer
restrict 127.0.0.1
restrict ::1
";

fn open_plan(allow: &str) -> String {
    format!(
        "name: open queries
{allow}
vars:
  daemon: ntp
  servers: [127.0.0.1, \"::1\"]
steps:
  - name: Package lists fresh
    apt: {{update_cache: true, cache_valid_time: 3600}}
  - name: NTP daemon at the latest version
    apt: {{name: \"{{{{ facts.daemon.package }}}}\", state: latest}}
    notify: restart ntp
  - name: NTP config that answers queries
    template: {{src: open.conf.j2, dest: \"{{{{ facts.daemon.config }}}}\", mode: \"0644\"}}
    notify: restart ntp
  - name: NTP daemon enabled and running
    service: {{name: \"{{{{ facts.daemon.unit }}}}\", state: started, enabled: true}}
handlers:
  - name: restart ntp
    service: {{name: \"{{{{ facts.daemon.unit }}}}\", state: restarted}}
"
    )
}

#[test]
fn bullseye_a_plan_that_opens_queries_is_refused_unless_allowed_and_verify_measures_the_amplification(
) {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bullseye);
    node.write("/root/open/open.conf.j2", OPEN_TEMPLATE);
    node.write("/root/open/refused.yaml", &open_plan(""));
    node.write(
        "/root/open/allowed.yaml",
        &open_plan("allow_insecure: [noquery-missing]"),
    );
    node.write(
        "/root/open/typo.yaml",
        &open_plan("allow_insecure: [noquery]"),
    );

    // Refused by plan and by apply, before any change.
    let before = node.snapshot();
    for command in ["plan", "apply"] {
        let out = node.provision(&[command, "/root/open/refused.yaml", "--format", "json"]);
        assert_eq!(out.code, 1, "{command}: {}\n{}", out.stdout, out.stderr);
        let doc = json(&out);
        let error = doc["error"].as_str().unwrap();
        assert!(
            error
                .starts_with("nothing was changed: /etc/ntp.conf as the plan would write it fails"),
            "{error}"
        );
        assert!(error.contains("noquery-missing (line "), "{error}");
        assert!(
            error.contains("DRDoS reflector") && error.contains("CVE-2013-5211"),
            "{error}"
        );
        assert!(
            error.ends_with("allow_insecure: [noquery-missing]"),
            "{error}"
        );
        assert_eq!(doc["steps"], Value::Array(vec![]));
    }
    let human = node.provision(&["apply", "/root/open/refused.yaml"]);
    assert_eq!(human.code, 1);
    assert!(
        human.stdout.contains("error: nothing was changed: ")
            && human.stdout.contains("noquery-missing"),
        "{}",
        human.stdout
    );
    let typo = node.provision(&["apply", "/root/open/typo.yaml"]);
    assert_eq!(typo.code, 65, "{}\n{}", typo.stdout, typo.stderr);
    assert!(
        typo.stderr
            .contains("allow_insecure[0]: \"noquery\" is not a lint rule"),
        "{}",
        typo.stderr
    );
    let after = node.snapshot();
    assert_eq!(
        before,
        after,
        "the node changed: {:?}",
        snapshot_diff(&before, &after)
    );
    assert_eq!(
        node.run(&["dpkg-query", "-W", "ntp"]).code,
        1,
        "ntp not installed by a refused run"
    );

    // Accepted: applied, the finding is a note, the check reports the answers.
    let out = node.provision(&["apply", "/root/open/allowed.yaml", "--format", "json"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let doc = json(&out);
    let notes: Vec<&str> = doc["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("allowed by allow_insecure: /etc/ntp.conf: noquery-missing")),
        "{notes:?}"
    );
    let step = amplification_step(&doc);
    assert_eq!(step["status"], "ok", "{step:#}");
    assert_eq!(step["amplification"]["enforcement"], "allowed_by_plan");
    assert_eq!(
        step["amplification"]["allowed_by"],
        serde_json::json!(["noquery-missing"])
    );
    assert_eq!(step["amplification"]["verdict"], "amplifier", "{step:#}");
    // apply's check sends every query at once and ends when the time request
    // is answered: the answer to READVAR, sent before it, is still counted.
    let readvar = query(&step["amplification"], "read_var");
    assert!(readvar["received"].as_u64().unwrap() > 12, "{step:#}");
    assert_eq!(readvar["from"], "127.0.0.4", "{step:#}");

    let verify = node.provision(&["verify", "--format", "json"]);
    assert_eq!(verify.code, 1, "{}\n{}", verify.stdout, verify.stderr);
    let doc = json(&verify);
    assert_eq!(doc["failed"], true);
    assert_eq!(doc["verdict"], "amplifier");
    let readvar = query(&doc, "read_var");
    let factor = readvar["amplification"].as_f64().unwrap();
    assert!(factor > 1.0, "READVAR amplification {factor}: {readvar:#}");
    assert!(readvar["received"].as_u64().unwrap() > 12);
    assert_eq!(readvar["replies"][0]["mode"], 6);
    assert_eq!(readvar["replies"][0]["direction"], "response");
    eprintln!(
        "bullseye ntpd without noquery: READVAR {} bytes for 12 ({factor}x)",
        readvar["received"]
    );
    assert!(
        doc["error"].as_str().unwrap().contains("mode 6 READVAR ("),
        "{doc:#}"
    );

    let human = node.provision(&["verify", "--detailed-exitcodes"]);
    assert_eq!(human.code, 4, "{}\n{}", human.stdout, human.stderr);
    assert!(
        human
            .stdout
            .contains("failed: mode 6 READVAR: sent 12 bytes, received "),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("RESULT amplifier: up to "),
        "{}",
        human.stdout
    );
}

/// Converges `daemon` on a running node and proves it answers no mode 6 or 7
/// query from 127.0.0.2, while its own local tool still works. chrony and
/// OpenNTPD serve nobody unless asked, so they answer nothing at all there:
/// apply's check passes them, `verify` reports that nothing listens.
fn switched_daemon_is_no_amplifier(node: &Node, daemon: &str, local_tool: &[&str], expect: &str) {
    let var = format!("daemon={daemon}");
    let out = node.provision(&["apply", "-e", SERVERS, "-e", &var, "--format", "json"]);
    assert_eq!(
        out.code,
        0,
        "{} {daemon}: {}\n{}",
        node.name(),
        out.stdout,
        out.stderr
    );
    let doc = json(&out);
    let step = amplification_step(&doc);
    assert_eq!(step["status"], "ok", "{daemon}: {step:#}");
    assert_eq!(
        step["amplification"]["verdict"], "no_amplification",
        "{daemon}: {step:#}"
    );
    let intended = if daemon == "chrony" || daemon == "openntpd" {
        "not_served"
    } else {
        "served"
    };
    assert_eq!(
        step["amplification"]["time_service_intended"], intended,
        "{daemon}: {step:#}"
    );

    let verify = node.provision(&["verify", "--format", "json"]);
    let doc = json(&verify);
    for q in CONTROL {
        assert_eq!(query(&doc, q)["received"], 0, "{daemon} {q}: {doc:#}");
    }
    if daemon == "chrony" || daemon == "openntpd" {
        // Serving nobody, they open no NTP port at all: `verify` says that
        // nothing listens (exit 1) rather than claim a measurement.
        assert_eq!(
            verify.code, 1,
            "{daemon}: {}\n{}",
            verify.stdout, verify.stderr
        );
        assert_eq!(
            (doc["verdict"].as_str(), doc["time_service"].as_str()),
            (Some("nothing_listens"), Some("not_served")),
            "{daemon} serves nobody unless asked: {doc:#}"
        );
    } else {
        assert_eq!(
            verify.code, 0,
            "{daemon}: {}\n{}",
            verify.stdout, verify.stderr
        );
        assert_eq!(doc["time_service"], "served", "{doc:#}");
    }

    let mut last = String::new();
    for _ in 0..20 {
        last = node.run(local_tool).stdout;
        if last.contains(expect) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("{daemon}: {local_tool:?} from localhost never showed {expect:?}:\n{last}");
}

#[test]
fn every_daemon_on_every_release_answers_no_mode_6_or_7_from_a_remote_source() {
    let _one_at_a_time = exclusive();
    let ntpq: &[&str] = &["ntpq", "-pn"];
    let chronyc: &[&str] = &["chronyc", "-n", "sources"];
    let ntpctl: &[&str] = &["ntpctl", "-s", "peers"];
    for (release, daemons) in [
        (
            Release::Bookworm,
            vec![("chrony", chronyc), ("openntpd", ntpctl)],
        ),
        (
            Release::Bullseye,
            vec![("ntpsec", ntpq), ("chrony", chronyc), ("openntpd", ntpctl)],
        ),
        (
            Release::Trixie,
            vec![("ntpsec", ntpq), ("chrony", chronyc), ("openntpd", ntpctl)],
        ),
    ] {
        let node = Node::boot(release);
        for (daemon, tool) in daemons {
            switched_daemon_is_no_amplifier(&node, daemon, tool, "127.0.0.1");
        }
    }
}
