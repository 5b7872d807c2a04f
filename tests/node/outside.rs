//! Clients written by others, run from another host of the test network,
//! against configs that open what `verify` once missed (issue 21): they
//! and `verify` must agree. The clients are the node's own packages (NTPsec's
//! ntpq, chronyc) run in a bare probe host's network namespace
//! (`Node::run_from`), and a raw mode 6 probe in the node's python3 there.
//!
//! Traffic only between the node and the probe host; the daemons' servers
//! are loopback.

use crate::harness::{
    exclusive, json, plan_with_template, repo_template, NetHost, Node, Release, SERVERS,
};
use serde_json::Value;

const STEP: &str = "No amplification from this node";

fn step(doc: &Value) -> &Value {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == STEP)
        .unwrap_or_else(|| panic!("no {STEP:?} step in {doc:#}"))
}

fn query<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["queries"]
        .as_array()
        .unwrap_or_else(|| panic!("no queries in {doc:#}"))
        .iter()
        .find(|q| q["query"] == name)
        .unwrap_or_else(|| panic!("no {name} query in {doc:#}"))
}

/// The default plan with `template` as the daemon's config and these
/// `allow_insecure` rules; returns its path in the node.
fn plan(node: &Node, dir: &str, template: &str, allow: &[&str]) -> String {
    let path = plan_with_template(node, dir, template);
    let text = node.read(&path).unwrap();
    node.write(
        &path,
        &format!("allow_insecure: [{}]\n{text}", allow.join(", ")),
    );
    path
}

/// The lint refuses the plan (`plan --detailed-exitcodes`: 4, a failure
/// with nothing changed) naming `rule` at a line.
fn lint_names(node: &Node, plan: &str, vars: &[&str], rule: &str) {
    let mut args = vec!["plan", plan, "--format", "json", "--detailed-exitcodes"];
    args.extend_from_slice(vars);
    let out = node.provision(&args);
    assert_eq!(
        out.code, 4,
        "plan {plan} was not refused:\n{}\n{}",
        out.stdout, out.stderr
    );
    let error = json(&out)["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains(&format!("{rule} (line ")), "{error}");
}

/// A raw mode 6 probe (READVAR of association 0, READSTAT, READVAR of each
/// association it lists), bytes received for each, as JSON.
const MODE6_PROBE: &str = r#"
import json, socket, struct, sys
host = sys.argv[1]
def ask(assoc, opcode):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    s.sendto(struct.pack(">BBHHHHH", 0x16, opcode, 1, 0, assoc, 0, 0), (host, 123))
    got = []
    try:
        while len(got) < 100:
            got.append(s.recv(65536))
    except socket.timeout:
        pass
    return got
stat = ask(0, 1)
ids = []
for d in stat:
    data = d[12:12 + struct.unpack(">H", d[10:12])[0]]
    ids += [struct.unpack(">H", data[i:i + 2])[0] for i in range(0, len(data) - 3, 4)]
print(json.dumps({
    "readvar": sum(map(len, ask(0, 2))),
    "readstat": sum(map(len, stat)),
    "peers": [sum(map(len, ask(i, 2))) for i in ids[:8]],
}))
"#;

/// NTPsec with `restrict 10.0.0.0 mask 255.0.0.0` (no noquery), then chrony
/// with its command port open and `allow` split in two halves, on one node;
/// each time the outside clients, `verify` from outside, `verify` on the
/// node and the lint are compared.
#[test]
fn bookworm_outside_clients_agree_with_verify_on_ntpsec_and_chrony() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bookworm);
    let probe = NetHost::new(None);
    let (target, from) = (node.addr().to_string(), probe.addr().to_string());
    let outside = private_network(&node, &probe, &NTPSEC);
    raw_probe_agrees(&node, &probe, &outside);
    chrony_command_port(&node, &probe, &target, &from);
}

/// Classic ntpd 4.2.8 under the same private-network line: classic ntpq
/// from the probe host reads it, ntpdc (mode 7, off by default since
/// 4.2.7p26 without `enable mode7`) gets nothing, and verify says the same.
#[test]
fn bullseye_outside_classic_ntpq_and_ntpdc_agree_with_verify_on_a_private_network() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bullseye);
    let probe = NetHost::new(None);
    let outside = private_network(&node, &probe, &CLASSIC);
    let target = node.addr().to_string();
    let ntpdc = node.run_from(&probe, &["ntpdc", "-n", "-c", "listpeers", &target]);
    let said = format!("{}{}", ntpdc.stdout, ntpdc.stderr);
    assert!(
        said.contains("timed out") || said.contains("nothing received"),
        "ntpdc from {}: {said}",
        probe.addr()
    );
    for q in ["mon_get_list", "peer_list"] {
        assert_eq!(query(&outside, q)["received"], 0, "{q}: {outside:#}");
    }
}

/// NTPsec (bookworm) or classic ntpd (bullseye) and its config file.
struct NtpDaemon {
    flavor: &'static str,
    template: &'static str,
    config: &'static str,
}

const NTPSEC: NtpDaemon = NtpDaemon {
    flavor: "ntpsec",
    template: "ntpsec.conf.j2",
    config: "/etc/ntpsec/ntp.conf",
};

const CLASSIC: NtpDaemon = NtpDaemon {
    flavor: "ntpd",
    template: "ntp.conf.j2",
    config: "/etc/ntp.conf",
};

/// `restrict 10.0.0.0 mask 255.0.0.0` without noquery: the probe host (in
/// 10/8) reads the daemon with its ntpq; verify from there measures it,
/// verify on the node says it could not. Returns the outside verify's document.
fn private_network(node: &Node, probe: &NetHost, daemon: &NtpDaemon) -> Value {
    let (target, from) = (&node.addr().to_string(), &probe.addr().to_string());
    let template =
        repo_template(daemon.template) + "restrict 10.0.0.0 mask 255.0.0.0 nomodify nopeer\n";
    let bare = plan(node, "/root/private-bare", &template, &[]);
    let rule = "noquery-missing-network";
    lint_names(node, &bare, &["-e", SERVERS], rule);
    let allowed = plan(node, "/root/private", &template, &[rule]);
    let out = node.provision(&["apply", &allowed, "-e", SERVERS, "--format", "json"]);
    let doc = json(&out);
    assert_eq!(doc["daemon"]["flavor"], daemon.flavor, "{doc:#}");
    let check = &step(&doc)["amplification"];
    // apply probes from 127.0.0.x only: it says so, never "no amplification".
    assert_eq!(check["verdict"], "unprobed_networks", "{check:#}");
    assert_eq!(check["unprobed"][0]["network"], "10.0.0.0/8", "{check:#}");
    // The plan lists the rule under allow_insecure: the check reports, not enforces.
    assert_eq!(
        (out.code, check["enforcement"].as_str()),
        (0, Some("allowed_by_plan")),
        "{check:#}"
    );

    // From 10.123.0.x, inside 10/8: NTPsec's own ntpq and the raw probe get answers.
    let mut rv = String::new();
    for _ in 0..20 {
        rv = node
            .run_from(probe, &["ntpq", "-n", "-c", "rv", target])
            .stdout;
        if rv.contains("version=") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let version = rv
        .split([',', '\n'])
        .find_map(|v| v.trim().strip_prefix("version="))
        .unwrap_or_else(|| panic!("ntpq rv from {from} got no version:\n{rv}"))
        .trim_matches('"')
        .to_string();
    eprintln!("{} from {from}: ntpq version {version:?}", daemon.flavor);
    // verify from the same host agrees: the same answers, the worst named,
    // and what they tell.
    let outside = probe.provision(&["verify", target, "--from", from, "--format", "json"]);
    assert_eq!(outside.code, 1, "{}\n{}", outside.stdout, outside.stderr);
    let v = json(&outside);
    assert_eq!(v["verdict"], "amplifier", "{v:#}");
    let worst = v["max_amplification"].as_f64().unwrap();
    assert!(
        v["worst_query"]
            .as_str()
            .unwrap()
            .starts_with("mode 6 READVAR of association "),
        "{v:#}"
    );
    let learned = query(&v, "read_var")["learned"].as_array().unwrap().clone();
    assert!(
        learned.contains(&Value::from(format!("version={version:?}"))),
        "{learned:?} vs ntpq's {version:?}"
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("a remote host learns: "),
        "{v:#}"
    );
    eprintln!("verify from {from}: up to {worst}x ({})", v["worst_query"]);

    // verify on the node (from 127.0.0.2) cannot measure 10/8 and says so.
    let local = node.provision(&["verify", "--format", "json"]);
    assert_eq!(local.code, 1, "{}\n{}", local.stdout, local.stderr);
    let l = json(&local);
    assert_eq!(l["verdict"], "unprobed_networks", "{l:#}");
    assert_eq!(query(&l, "read_var")["received"], 0, "{l:#}");
    let error = l["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("{} line ", daemon.config))
            && error.contains("lets hosts in 10.0.0.0/8 query the daemon")
            && error.contains("not measured, since the probes came from 127.0.0.2 only"),
        "{error}"
    );
    let human = node.provision(&["verify"]);
    assert!(
        human
            .stdout
            .contains("\nRESULT not measured: the config answers queries from 1 network(s)")
            && !human.stdout.contains("RESULT no amplification"),
        "{}",
        human.stdout
    );
    v
}

/// The raw mode 6 probe from `probe` (the node's python3): a peer's
/// variables are the larger answer, and verify's worst factor is that one.
fn raw_probe_agrees(node: &Node, probe: &NetHost, outside: &Value) {
    let target = &node.addr().to_string();
    let raw = node.run_from(probe, &["python3", "-c", MODE6_PROBE, target]);
    assert_eq!(raw.code, 0, "{}\n{}", raw.stdout, raw.stderr);
    let raw: Value = serde_json::from_str(&raw.stdout).unwrap();
    let worst_peer = raw["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .max()
        .unwrap_or(0);
    assert!(
        worst_peer > raw["readvar"].as_u64().unwrap(),
        "a peer's variables are the larger answer: {raw}"
    );
    let worst = outside["max_amplification"].as_f64().unwrap();
    let raw_worst = worst_peer as f64 / 12.0;
    assert!(
        worst > raw_worst * 0.8 && worst < raw_worst * 1.25,
        "verify {worst}x, the raw probe {raw_worst:.2}x: {raw}"
    );
    eprintln!(
        "raw probe from {}: {raw} (worst {raw_worst:.2}x)",
        probe.addr()
    );
}

fn chrony_command_port(node: &Node, probe: &NetHost, target: &str, from: &str) {
    let template = repo_template("chrony.conf.j2").replace(
        "bindcmdaddress 127.0.0.1\nbindcmdaddress ::1\n",
        "bindcmdaddress 0.0.0.0\ncmdallow all\nallow 0.0.0.0/1\nallow 128.0.0.0/1\n",
    );
    assert!(
        template.contains("cmdallow all"),
        "the template's command port lines moved"
    );
    let vars = ["-e", SERVERS, "-e", "daemon=chrony"];
    let cmd_only = plan(node, "/root/chrony-cmd", &template, &["chrony-cmdallow"]);
    // The union of the two halves is everything.
    lint_names(node, &cmd_only, &vars, "chrony-allow-all");
    let both = plan(
        node,
        "/root/chrony",
        &template,
        &["chrony-cmdallow", "chrony-allow-all"],
    );
    let mut args = vec!["apply", both.as_str(), "--format", "json"];
    args.extend_from_slice(&vars);
    let out = node.provision(&args);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let doc = json(&out);
    let check = &step(&doc)["amplification"];
    assert_eq!(
        (check["verdict"].as_str(), check["enforcement"].as_str()),
        (Some("information_leak"), Some("allowed_by_plan")),
        "{check:#}"
    );
    assert_eq!(
        query(check, "chrony_tracking")["from"],
        "127.0.0.8",
        "{check:#}"
    );

    // chronyc from the probe host reads tracking and sources.
    let mut tracking = node.run_from(probe, &["chronyc", "-h", target, "-n", "tracking"]);
    for _ in 0..20 {
        if tracking.code == 0 && tracking.stdout.contains("Reference ID") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        tracking = node.run_from(probe, &["chronyc", "-h", target, "-n", "tracking"]);
    }
    assert!(
        tracking.stdout.contains("Stratum"),
        "chronyc tracking from {from}: {}\n{}",
        tracking.stdout,
        tracking.stderr
    );
    let sources = node.run_from(probe, &["chronyc", "-h", target, "-n", "sources"]);
    assert!(
        sources.stdout.contains("127.0.0.1"),
        "chronyc sources from {from}: {}\n{}",
        sources.stdout,
        sources.stderr
    );

    // verify from there: a leak, no amplifier; 1:1; what it told; time served (allow 0/1 + 128/1).
    let outside = probe.provision(&["verify", target, "--from", from, "--format", "json"]);
    assert_eq!(outside.code, 1, "{}\n{}", outside.stdout, outside.stderr);
    let v = json(&outside);
    assert_eq!(v["verdict"], "information_leak", "{v:#}");
    assert_eq!(v["max_amplification"], 0.0, "{v:#}");
    assert_eq!(v["time_service"], "served", "{v:#}");
    let t = query(&v, "chrony_tracking");
    // chrony wants each request padded to at least its reply's size: never
    // more than 1x.
    let factor = t["amplification"].as_f64().unwrap();
    assert!(t["port"] == 323 && factor > 0.5 && factor <= 1.0, "{v:#}");
    assert!(
        t["learned"][0]
            .as_str()
            .unwrap()
            .starts_with("its reference"),
        "{v:#}"
    );
    let s = query(&v, "chrony_sources");
    assert_eq!(
        s["learned"][0], "that it has 2 sources",
        "chronyc listed {}: {v:#}",
        sources.stdout
    );
    let human = probe.provision(&["verify", target, "--from", from]);
    assert!(
        human
            .stdout
            .contains("RESULT information leak: chrony's command port answered"),
        "{}",
        human.stdout
    );

    // On the node, from 127.0.0.2 (inside `cmdallow all`): the same finding.
    let local = node.provision(&["verify", "--format", "json"]);
    assert_eq!(
        json(&local)["verdict"],
        "information_leak",
        "{}",
        local.stdout
    );
}
