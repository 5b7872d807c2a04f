//! `dhcp_servers` on a real node: chrony on Debian 12 reads the servers
//! Debian's dhclient hook would write (a file the test drops in
//! /run/chrony-dhcp/, as the hook does, then `chronyc reload sources`, as
//! the hook runs) beside the plan's, and only with `dhcp_servers: true`.

use crate::harness::{exclusive, Node, Release};
use std::time::{Duration, Instant};

/// The address a DHCP lease "offered": no host answers there, chrony lists it all the same.
const OFFERED: &str = "10.123.0.3";

/// chronyc lists `addr` among its sources, within a few seconds.
fn listed(node: &Node, addr: &str) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = node.run(&["chronyc", "-n", "sources"]).stdout;
        let found = out
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(addr));
        if found || Instant::now() >= deadline {
            return (found, out);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn chrony_uses_the_servers_dhcp_offered_only_with_dhcp_servers() {
    let _guard = exclusive();
    let node = Node::boot(Release::Bookworm);
    let (out, doc) = node.apply_json(&["-e", "daemon=chrony", "-e", "dhcp_servers=true"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(doc["summary"]["failed"], 0, "{}", out.stdout);
    let conf = node.read("/etc/chrony/chrony.conf").unwrap();
    assert!(conf.contains("\nsourcedir /run/chrony-dhcp\n"), "{conf}");
    node.rerun_clean(&["-e", "daemon=chrony", "-e", "dhcp_servers=true"]);

    // What Debian's hook does on a lease with an NTP server.
    node.ok(&["mkdir", "-p", "/run/chrony-dhcp"]);
    let line = format!("server {OFFERED} iburst\n");
    let w = node.run_stdin(&["tee", "/run/chrony-dhcp/eth0.sources"], line.as_bytes());
    assert_eq!(w.code, 0, "{}", w.stderr);
    node.ok(&["chronyc", "reload", "sources"]);
    let (found, sources) = listed(&node, OFFERED);
    assert!(found, "the offered server is not a source:\n{sources}");
    let (found, _) = listed(&node, "127.0.0.1");
    assert!(found, "the plan's servers stay beside it:\n{sources}");

    // Back to the default: no sourcedir, and after the restart no such source.
    let (out, doc) = node.apply_json(&["-e", "daemon=chrony"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(doc["summary"]["failed"], 0, "{}", out.stdout);
    let conf = node.read("/etc/chrony/chrony.conf").unwrap();
    assert!(!conf.contains("\nsourcedir "), "{conf}");
    let out = node.run(&["chronyc", "-n", "sources"]).stdout;
    assert!(
        !out.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(OFFERED)),
        "DHCP's server is still a source without dhcp_servers:\n{out}"
    );
}
