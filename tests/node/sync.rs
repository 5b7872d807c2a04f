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

/// Makes `node` the tests' upstream: chrony from the archive, running
/// [`upstream_conf`] followed by `extra` (more chrony.conf lines).
pub(crate) fn start_upstream(node: &Node, extra: &str) {
    node.apt_get(&["update"]);
    node.apt_get(&["install", "--no-install-recommends", "chrony"]);
    node.write(
        "/etc/chrony/chrony.conf",
        &format!("{}{extra}", upstream_conf()),
    );
    node.ok(&["systemctl", "restart", "chrony.service"]);
}

/// Boots one node per role, all at once, each at its role's address.
pub(crate) fn boot_roles(roles: &[&Role]) -> Vec<Node> {
    std::thread::scope(|s| {
        let handles: Vec<_> = roles
            .iter()
            .map(|r| s.spawn(move || Node::boot_at(r.release, r.addr)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
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
    /// The apply's JSON report (its steps' `seconds`).
    pub report: Value,
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
    let clients = clients.map(|c| format!("clients=[{c}]"));
    let mut vars = vec![servers.as_str()];
    vars.extend(clients.as_deref());
    converge_with_and_sync(node, r, server, &vars)
}

/// [`converge_and_sync`] with the given `-e` variables (servers among them).
pub(crate) fn converge_with_and_sync(
    node: &Node,
    r: &Role,
    server: Ipv4Addr,
    vars: &[&str],
) -> Result<Timing, String> {
    let daemon = format!("daemon={}", r.daemon);
    let mut args = vec!["apply", "-e", &daemon];
    for v in vars {
        args.extend(["-e", v]);
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
                    report: serde_json::from_str(&out.stdout).unwrap_or(Value::Null),
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
pub(crate) fn synchronised_with_one_of(doc: &Value, servers: &[String]) -> bool {
    doc["synchronised"] == true
        && doc["peers"].as_array().is_some_and(|peers| {
            peers.iter().any(|p| {
                p["selected"] == "system_peer" && servers.iter().any(|s| p["remote"] == s.as_str())
            })
        })
}

/// Poll exponent of every source in the orphan test: 8 s, so a lost
/// source is unreachable after chrony's 8 missed polls, about a minute.
const FAST_POLL: &str = "minpoll: 3, maxpoll: 3";
/// Bound on the wait for the site servers to see the upstream unreachable
/// once it stopped: 8 polls of 8 s, and room for a loaded machine.
const LOSS_WAIT: Duration = Duration::from_secs(150);

/// Bound on the wait for the orphan state once its activation distance is
/// reached: a few 8-s polls.
const ORPHAN_WAIT: Duration = Duration::from_secs(90);
/// chrony's reference ID while its `local` reference is active (127.127.1.1).
const LOCAL_REFID: &str = "7F7F0101";

/// `status --format json` of `node`, parsed; `None` when it is not JSON.
fn status_of(node: &Node) -> (Option<Value>, String) {
    let st = node.provision(&["status", "--format", "json"]);
    (
        serde_json::from_str(&st.stdout).ok(),
        format!("exit {}\n{}\n{}", st.code, st.stdout, st.stderr),
    )
}

/// Polls `node`'s status until `ok` holds, at most `bound`; the last status
/// on failure.
fn wait_status(node: &Node, bound: Duration, ok: impl Fn(&Value) -> bool) -> Result<Value, String> {
    let deadline = Instant::now() + bound;
    loop {
        let (doc, text) = status_of(node);
        if let Some(doc) = doc.filter(|d| ok(d)) {
            return Ok(doc);
        }
        if Instant::now() >= deadline {
            return Err(text);
        }
        std::thread::sleep(POLL);
    }
}

/// status lists `peer` with an empty reachability register.
fn unreachable_peer(doc: &Value, peer: &str) -> bool {
    doc["peers"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["remote"] == peer && p["reach"] == "0"))
}

/// Orphan mode after a real loss of the upstream: two chrony site servers
/// peered with each other and with `orphan_stratum`, synchronised to the
/// upstream, their client synchronised to them; then the upstream's daemon
/// stops. Once both site servers see it unreachable (8 missed polls), the
/// client and both site servers are still synchronised (one site server
/// keeps the lost upstream's last samples, the other follows it). Then the
/// orphan state proper: the lower address serves its local reference at
/// the orphan stratum, the other follows it, the client stays with them.
#[test]
fn orphan_mode_keeps_the_site_s_clients_synchronised_after_the_upstream_is_lost() {
    let _guard = exclusive();
    let t0 = Instant::now();
    let (up, a, b, c) = (net_addr(2), net_addr(20), net_addr(21), net_addr(130));
    let nodes: Vec<Node> = std::thread::scope(|s| {
        let handles: Vec<_> = [up, a, b, c]
            .into_iter()
            .map(|addr| s.spawn(move || Node::boot_at(Release::Bookworm, addr)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (upstream, site_a, site_b, client) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    start_upstream(upstream, "");
    eprintln!("[orphan] upstream ready at {:.1?}", t0.elapsed());

    let site = |node: &Node, peer: Ipv4Addr| {
        let servers = format!("servers=[{{host: {up}, {FAST_POLL}}}]");
        let peers = format!("peers=[{{host: {peer}, {FAST_POLL}}}]");
        let clients = format!("clients=[{CLIENT_NET}]");
        let args = [
            "apply",
            "-e",
            "daemon=chrony",
            "-e",
            &servers,
            "-e",
            &peers,
            "-e",
            "orphan_stratum=10",
            "-e",
            &clients,
        ];
        let out = node.provision(&args);
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        let conf = node.read("/etc/chrony/chrony.conf").unwrap();
        assert!(
            conf.contains(&format!("\npeer {peer} iburst minpoll 3 maxpoll 3\n")),
            "{conf}"
        );
        assert!(conf.contains("\nlocal stratum 10 orphan\n"), "{conf}");
        wait_status(node, SYNC_WAIT, |d| {
            synchronised_with_one_of(d, &[up.to_string()])
        })
        .unwrap_or_else(|last| {
            panic!(
                "site server {}: never synchronised with the upstream {up}:\n{last}",
                node.addr()
            )
        })
    };
    std::thread::scope(|s| {
        s.spawn(|| site(site_a, b));
        s.spawn(|| site(site_b, a));
    });
    eprintln!(
        "[orphan] site servers synchronised with the upstream at {:.1?}",
        t0.elapsed()
    );

    let sites = [a.to_string(), b.to_string()];
    let servers = format!("servers=[{{host: {a}, {FAST_POLL}}}, {{host: {b}, {FAST_POLL}}}]");
    let out = client.provision(&["apply", "-e", "daemon=chrony", "-e", &servers]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    wait_status(client, SYNC_WAIT, |d| synchronised_with_one_of(d, &sites))
        .unwrap_or_else(|last| panic!("the client never synchronised with {sites:?}:\n{last}"));
    eprintln!("[orphan] client synchronised at {:.1?}", t0.elapsed());

    // The loss: the upstream's daemon stops; nothing answers at 10.123.0.2.
    upstream.ok(&["systemctl", "stop", "chrony.service"]);
    let lost = Instant::now();
    let chronyc = |node: &Node| {
        let t = node.run(&["chronyc", "-n", "tracking"]).stdout;
        let s = node.run(&["chronyc", "-n", "sources"]).stdout;
        format!("{t}{s}")
    };
    for node in [site_a, site_b] {
        if let Err(last) = wait_status(node, LOSS_WAIT, |d| unreachable_peer(d, &up.to_string())) {
            panic!(
                "site server {}: the upstream not unreachable within {LOSS_WAIT:?} after it stopped:\n{last}\n{}",
                node.addr(),
                chronyc(node)
            );
        }
    }
    eprintln!(
        "[orphan] both site servers see the upstream unreachable {:.1?} after it stopped",
        lost.elapsed()
    );

    // The client stays with a site server, and no site server falls out of
    // sync: each follows the other or keeps the time it had.
    let report = || {
        [site_a, site_b, client]
            .iter()
            .map(|n| format!("--- {}:\n{}\n{}", n.addr(), status_of(n).1, chronyc(n)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (doc, _) = status_of(client);
    assert!(
        doc.as_ref()
            .is_some_and(|d| synchronised_with_one_of(d, &sites)),
        "the client lost its site servers once the upstream was gone:\n{}",
        report()
    );
    for node in [site_a, site_b] {
        let (doc, _) = status_of(node);
        assert!(
            doc.as_ref().is_some_and(|d| d["synchronised"] == true),
            "site server {} is no longer synchronised without the upstream:\n{}",
            node.addr(),
            report()
        );
    }
    eprintln!(
        "[orphan] after the loss, {:.1?} in:\n{}",
        t0.elapsed(),
        report()
    );

    // The orphan state itself comes once a site server's root distance
    // reaches `local`'s activation distance (1 s: hours of drift), when the
    // lost upstream's last samples are long too old to select. The test
    // does what those hours do: it drops every sample on both (`chronyc
    // reset sources`). The lowest address (a) then serves its own clock at
    // the orphan stratum, b follows it, and the client stays with them.
    for node in [site_a, site_b] {
        node.ok(&["chronyc", "reset", "sources"]);
    }
    let orphaned = wait_status(site_a, ORPHAN_WAIT, |d| {
        d["sync"]["refid"] == LOCAL_REFID && d["sync"]["stratum"] == 10
    });
    let followed = wait_status(site_b, ORPHAN_WAIT, |d| {
        synchronised_with_one_of(d, &[a.to_string()])
    });
    let kept = wait_status(client, ORPHAN_WAIT, |d| synchronised_with_one_of(d, &sites));
    assert!(
        orphaned.is_ok() && followed.is_ok() && kept.is_ok(),
        "orphan mode: a serves its local reference {}, b follows a {}, the client stays {}:\n{}",
        orphaned.is_ok(),
        followed.is_ok(),
        kept.is_ok(),
        report()
    );
    eprintln!(
        "[orphan] orphan state, {:.1?} in:\n{}",
        t0.elapsed(),
        report()
    );
}
