//! Synchronisation on real nodes: the pieces every sync test shares (the
//! upstream's config, converging a node and polling `status` until it says
//! synchronised, `verify` from a probe host) and orphan mode. The site
//! topology itself, every daemon on every release, is site.rs.
//!
//! The upstream is a plain chrony with `local stratum 8` that a test
//! installs by hand on its own node: the stand-in for the Internet's
//! servers, which do not resolve here.

use crate::harness::{exclusive, json, net_addr, NetHost, Node, Out, Release};
use serde_json::Value;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The client network the site servers serve.
pub(crate) const CLIENT_NET: &str = "10.123.0.128/25";
/// Bound on the wait for `status` to say synchronised, after apply returned.
/// OpenNTPD says synchronised only at its second clock update: the first
/// needs 8 replies (5-10 s apart, then 30-35 s), the second up to 8 new
/// ones at 30-35 s (190 to 330 s measured, more than 300 s once); classic
/// ntpd as a client of chrony took 7 s in one run and 72 s in the next.
const SYNC_WAIT: Duration = Duration::from_secs(420);
/// Pause between two `status` polls.
const POLL: Duration = Duration::from_millis(500);

/// The upstream's chrony.conf: the stand-in for the Internet's servers.
pub(crate) fn upstream_conf() -> String {
    "# The sync test's upstream (tests/node/sync.rs): serves its own clock.\n\
     local stratum 8\n\
     allow 10.123.0.0/24\n\
     driftfile /var/lib/chrony/chrony.drift\n\
     bindcmdaddress 127.0.0.1\n"
        .to_string()
}

pub(crate) struct Role {
    pub what: &'static str,
    pub release: Release,
    /// `-e daemon=...`
    pub daemon: &'static str,
    /// status's daemon.flavor
    pub flavor: &'static str,
    pub addr: Ipv4Addr,
}

pub(crate) const fn role(
    what: &'static str,
    release: Release,
    daemon: &'static str,
    flavor: &'static str,
    octet: u8,
) -> Role {
    Role {
        what,
        release,
        daemon,
        flavor,
        addr: Ipv4Addr::new(10, 123, 0, octet),
    }
}

/// How long each step took for one node.
pub(crate) struct Timing {
    pub apply: Duration,
    pub synchronised: Duration,
}

/// `apply` with the given servers (and clients), then poll `status` until it
/// says synchronised with `server` selected, at most [`SYNC_WAIT`] after
/// apply returned.
pub(crate) fn converge_and_sync(
    node: &Node,
    r: &Role,
    server: Ipv4Addr,
    clients: Option<&str>,
) -> Result<Timing, String> {
    let servers = format!("servers=[{server}]");
    let daemon = format!("daemon={}", r.daemon);
    let clients = clients.map(|c| format!("clients=[{c}]"));
    let mut args = vec!["apply", "-e", &daemon, "-e", &servers];
    if let Some(c) = &clients {
        args.extend(["-e", c]);
    }
    args.extend(["--format", "json"]);
    let start = Instant::now();
    let out = node.provision(&args);
    let apply = start.elapsed();
    if out.code != 0 {
        return Err(format!(
            "{}: `ntp-provision {}` exited {}\n{}\n{}\n{}",
            r.what,
            args.join(" "),
            out.code,
            out.stdout,
            out.stderr,
            unit_journal(node, &out.stdout)
        ));
    }
    let deadline = Instant::now() + SYNC_WAIT;
    let want = server.to_string();
    let mut last: Option<Out> = None;
    while Instant::now() < deadline {
        let st = node.provision(&["status", "--format", "json"]);
        if let Ok(doc) = serde_json::from_str::<Value>(&st.stdout) {
            if synchronised_with(&doc, &want) {
                if doc["daemon"]["flavor"] != r.flavor {
                    return Err(format!(
                        "{}: status names daemon {} (expected {}):\n{}",
                        r.what, doc["daemon"], r.flavor, st.stdout
                    ));
                }
                return Ok(Timing {
                    apply,
                    synchronised: start.elapsed(),
                });
            }
        }
        last = Some(st);
        std::thread::sleep(POLL);
    }
    let last = last.map_or_else(
        || "(status never ran)".to_string(),
        |o| format!("exit {}\n{}\n{}", o.code, o.stdout, o.stderr),
    );
    Err(format!(
        "{} ({}) at {}: not synchronised with {want} selected within {SYNC_WAIT:?} after apply; last `ntp-provision status --format json`:\n{last}",
        r.what, r.flavor, r.addr
    ))
}

/// The daemon unit's journal, systemd's own lines about it included, for a
/// failed apply (the report quotes the daemon's last lines only).
fn unit_journal(node: &Node, report: &str) -> String {
    let doc: Value = serde_json::from_str(report).unwrap_or_default();
    let Some(unit) = doc["daemon"]["unit"].as_str() else {
        return "(no unit in the report)".to_string();
    };
    let log = node.run(&[
        "journalctl",
        "--no-pager",
        "-o",
        "short-precise",
        "-n",
        "60",
        "-u",
        unit,
    ]);
    format!("--- journalctl -u {unit} ---\n{}", log.stdout)
}

/// status says synchronised, and `server` is its only peer and the system peer.
pub(crate) fn synchronised_with(doc: &Value, server: &str) -> bool {
    let peers = doc["peers"].as_array().cloned().unwrap_or_default();
    doc["synchronised"] == true
        && peers.len() == 1
        && peers[0]["remote"] == server
        && peers[0]["selected"] == "system_peer"
}

/// `ntp-provision verify TARGET --from PROBE --format json` on the probe
/// host. A daemon that serves the probe nothing answers nothing, which
/// verify reports as its `no_answer` failure: the caller judges.
pub(crate) fn verify_from(probe: &NetHost, target: Ipv4Addr) -> Value {
    let out = probe.provision(&[
        "verify",
        &target.to_string(),
        "--from",
        &probe.addr().to_string(),
        "--format",
        "json",
    ]);
    json(&out)
}

/// status says synchronised with one of `servers` as the system peer.
fn synchronised_with_one_of(doc: &Value, servers: &[String]) -> bool {
    doc["synchronised"] == true
        && doc["peers"].as_array().is_some_and(|peers| {
            peers.iter().any(|p| {
                p["selected"] == "system_peer" && servers.iter().any(|s| p["remote"] == s.as_str())
            })
        })
}

/// Orphan mode: two chrony site servers peered with each other, their
/// upstream gone (10.123.0.2 is stopped: no host answers there), each with
/// `orphan_stratum`; a client of both is synchronised to them all the same.
/// This is the state an outage reaches once a server that was synchronised
/// has drifted past chrony's activation distance (1 s of root distance); a
/// server that never reached its upstream is there from the start, so the
/// test needs no hours of waiting.
#[test]
fn orphan_mode_keeps_the_site_s_clients_synchronised_without_the_upstream() {
    let _guard = exclusive();
    let (a, b, c) = (net_addr(20), net_addr(21), net_addr(130));
    let nodes: Vec<Node> = std::thread::scope(|s| {
        let handles: Vec<_> = [a, b, c]
            .into_iter()
            .map(|addr| s.spawn(move || Node::boot_at(Release::Bookworm, addr)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let site = |node: &Node, peer: Ipv4Addr| {
        let peers = format!("peers=[{peer}]");
        let out = node.provision(&[
            "apply",
            "-e",
            "daemon=chrony",
            "-e",
            "servers=[10.123.0.2]",
            "-e",
            &peers,
            "-e",
            "orphan_stratum=10",
            "-e",
            &format!("clients=[{CLIENT_NET}]"),
        ]);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        let conf = node.read("/etc/chrony/chrony.conf").unwrap();
        assert!(conf.contains(&format!("\npeer {peer} iburst\n")), "{conf}");
        assert!(conf.contains("\nlocal stratum 10 orphan\n"), "{conf}");
    };
    std::thread::scope(|s| {
        s.spawn(|| site(&nodes[0], b));
        s.spawn(|| site(&nodes[1], a));
    });
    let servers = [a.to_string(), b.to_string()];
    let out = nodes[2].provision(&[
        "apply",
        "-e",
        "daemon=chrony",
        "-e",
        &format!("servers=[{a}, {b}]"),
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    while Instant::now() < deadline {
        let st = nodes[2].provision(&["status", "--format", "json"]);
        if let Ok(doc) = serde_json::from_str::<Value>(&st.stdout) {
            if synchronised_with_one_of(&doc, &servers) {
                for (node, name) in nodes[..2].iter().zip(["a", "b"]) {
                    let s = node.provision(&["status", "--format", "json"]);
                    eprintln!("[orphan] site server {name}: {}", s.stdout);
                }
                return;
            }
        }
        last = format!("{}\n{}", st.stdout, st.stderr);
        std::thread::sleep(POLL);
    }
    let sites: Vec<String> = nodes[..2]
        .iter()
        .map(|n| n.provision(&["status", "--format", "json"]).stdout)
        .collect();
    panic!(
        "the client never synchronised with {servers:?} within 120 s; its last status:\n{last}\nthe site servers':\n{}",
        sites.join("\n")
    );
}
