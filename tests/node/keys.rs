//! Symmetric-key authentication (issue 19) against a keyed upstream:
//!
//! ```text
//!   upstream 10.123.0.2 (bookworm): plain chrony by hand, `local stratum 8`,
//!   keyfile with key 7 (chrony signs its answer to a request signed with a
//!   key it has, with that key)
//!     |
//!   clients converged with servers=[{host: 10.123.0.2, key: 7}] and
//!   keys=[{id: 7, type: SHA1, secret_file: /etc/ntpp/k7}]:
//!     10.123.0.140 chrony (bookworm)   10.123.0.141 NTPsec (bookworm)
//!     10.123.0.142 classic ntpd (bullseye)   the right secret: synchronised
//!     10.123.0.143 chrony (bookworm)   a wrong secret for key 7: not
//! ```
//!
//! Each client's key file is root's, mode 0600 (the daemons read it as
//! root before they drop privileges: synchronising through an
//! authenticated source proves the daemon read it), no output of apply
//! shows the secret, and a second apply changes nothing.

use crate::harness::{exclusive, net_addr, Node, Release};
use crate::sync::{boot_roles, converge_with_and_sync, role, start_upstream, Role};
use serde_json::Value;
use std::time::{Duration, Instant};

const SECRET: &str = "ntpp-keys-test-secret-7";
const WRONG: &str = "ntpp-keys-test-WRONG-77";
/// How long the client with the wrong secret is watched: chrony with
/// iburst synchronises to this upstream within seconds when it can.
const WRONG_WAIT: Duration = Duration::from_secs(40);
const SECRET_FILE: &str = "/etc/ntpp/k7";
const KEYS: &str = "keys=[{id: 7, type: SHA1, secret_file: /etc/ntpp/k7}]";
const SERVERS: &str = "servers=[{host: 10.123.0.2, key: 7}]";

/// Puts the operator's secret file on the node, root's and 0600.
fn give_secret(node: &Node, secret: &str) {
    node.write(SECRET_FILE, &format!("{secret}\n"));
    node.ok(&["chmod", "0600", SECRET_FILE]);
}

/// The client's key file: mode and owner as `stat` says them.
fn key_file_stat(node: &Node, path: &str) -> String {
    node.ok(&["stat", "-c", "%a %U:%G", path])
        .stdout
        .trim()
        .to_string()
}

fn assert_no_secret(what: &str, text: &str) {
    let hex: String = SECRET.bytes().map(|b| format!("{b:02X}")).collect();
    for s in [SECRET, WRONG, hex.as_str()] {
        assert!(!text.contains(s), "{what} shows a secret:\n{text}");
    }
}

#[test]
fn keys_a_keyed_upstream_synchronises_clients_with_the_right_key_and_not_with_a_wrong_one() {
    let _guard = exclusive();
    let t0 = Instant::now();
    let upstream_role = role("upstream", Release::Bookworm, "chrony", "chrony", 2);
    let good: [(Role, &str); 3] = [
        (
            role("client", Release::Bookworm, "chrony", "chrony", 140),
            "/etc/chrony/chrony.keys",
        ),
        (
            role("client", Release::Bookworm, "ntpsec", "ntpsec", 141),
            "/etc/ntpsec/ntp.keys",
        ),
        (
            role("client", Release::Bullseye, "ntp", "ntpd", 142),
            "/etc/ntp.keys",
        ),
    ];
    let wrong = role("client", Release::Bookworm, "chrony", "chrony", 143);
    let all: Vec<&Role> = std::iter::once(&upstream_role)
        .chain(good.iter().map(|(r, _)| r))
        .chain(std::iter::once(&wrong))
        .collect();
    let mut nodes = boot_roles(&all);
    let wrong_node = nodes.pop().unwrap();
    let clients = nodes.split_off(1);
    let upstream = nodes.pop().unwrap();
    eprintln!("[keys] 5 nodes booted in {:.1?}", t0.elapsed());

    // The upstream, by hand: the sync test's chrony with key 7.
    start_upstream(&upstream, "keyfile /etc/chrony/chrony.keys\n");
    upstream.write("/etc/chrony/chrony.keys", &format!("7 SHA1 {SECRET}\n"));
    upstream.ok(&["systemctl", "restart", "chrony.service"]);
    assert_eq!(upstream.addr(), net_addr(2));
    eprintln!("[keys] upstream ready at {:.1?}", t0.elapsed());

    for n in &clients {
        give_secret(n, SECRET);
    }
    give_secret(&wrong_node, WRONG);
    let vars = [SERVERS, KEYS];
    let up = upstream.addr();
    let results: Vec<Result<crate::sync::Timing, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = good
            .iter()
            .zip(&clients)
            .map(|((r, _), n)| {
                let vars = &vars;
                s.spawn(move || converge_with_and_sync(n, r, up, vars))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "clients with the right key:\n{}",
        failures
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    for (((r, key_file), n), t) in good.iter().zip(&clients).zip(&results) {
        let t = t.as_ref().unwrap();
        eprintln!(
            "[keys]   {:<6} {:<8} apply {:>5.1} s, synchronised {:>5.1} s after apply started",
            r.flavor,
            r.release.name(),
            t.apply.as_secs_f64(),
            t.synchronised.as_secs_f64()
        );
        assert_eq!(
            key_file_stat(n, key_file),
            "600 root:root",
            "{} {key_file}",
            r.flavor
        );
        let written = n.read(key_file).unwrap();
        assert!(written.lines().any(|l| l.starts_with("7 ")), "{written}");
        let daemon = format!("daemon={}", r.daemon);
        let (out, _) = n.rerun_clean(&["-e", &daemon, "-e", SERVERS, "-e", KEYS]);
        assert_no_secret(
            "the second apply",
            &format!("{}\n{}", out.stdout, out.stderr),
        );
        let plan = n.provision(&["plan", "-e", &daemon, "-e", SERVERS, "-e", KEYS]);
        assert_no_secret("plan", &format!("{}\n{}", plan.stdout, plan.stderr));
    }
    // NTPsec's and classic ntpd's association with the upstream is
    // authenticated (ntpq's auth column), and chrony's uses key 7.
    for n in &clients[1..] {
        let assoc = n.ok(&["ntpq", "-n", "-c", "associations"]).stdout;
        assert!(
            assoc
                .lines()
                .any(|l| l.split_whitespace().nth(5) == Some("ok")),
            "{}: ntpq associations, no authenticated one:\n{assoc}",
            n.name()
        );
    }
    let auth = clients[0].ok(&["chronyc", "-n", "authdata"]).stdout;
    assert!(
        auth.lines()
            .any(|l| l.starts_with("10.123.0.2") && l.split_whitespace().nth(2) == Some("7")),
        "chronyc authdata: {auth}"
    );

    // A wrong secret for the same id: converged, but never synchronised.
    let daemon = format!("daemon={}", wrong.daemon);
    let out = wrong_node.provision(&[
        "apply", "-e", &daemon, "-e", SERVERS, "-e", KEYS, "--format", "json",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_no_secret("apply", &format!("{}\n{}", out.stdout, out.stderr));
    let deadline = Instant::now() + WRONG_WAIT;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let st = wrong_node.provision(&["status", "--format", "json"]);
        last = serde_json::from_str(&st.stdout).unwrap_or(Value::String(st.stdout));
        assert_ne!(
            last["synchronised"], true,
            "the client with a wrong secret synchronised: {last:#}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    assert_eq!(last["synchronised"], false, "{last:#}");
    let peers = last["peers"].as_array().cloned().unwrap_or_default();
    assert!(
        peers.iter().all(|p| p["selected"] != "system_peer"),
        "a wrong key's source is selected: {last:#}"
    );
    eprintln!("[keys] wrong secret: not synchronised after {WRONG_WAIT:?}; status: {last}");
    eprintln!("[keys] whole test {:.1?}", t0.elapsed());
}
