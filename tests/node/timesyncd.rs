//! systemd-timesyncd (`-e daemon=timesyncd`) on every release: it converges
//! from a node running another daemon (which goes), re-runs with changed=0,
//! opens no UDP 123 socket, and status says it is synchronised with the
//! test's upstream (a chrony with `local stratum 8` on its own node, as in
//! sync.rs); switching back to chrony removes it.
//!
//! The nodes are systemd-nspawn containers, and Debian's
//! systemd-timesyncd.service has `ConditionVirtualization=!container`: there
//! the unit is skipped (ConditionResult=no, inactive, and `timedatectl
//! show-timesync` times out on D-Bus). The test alone lifts that with a
//! drop-in under /etc/systemd/system written before apply; the product
//! never does. The nodes have CAP_SYS_TIME, which the unit also requires.

use crate::daemons::time_daemons;
use crate::harness::{exclusive, json, Node, Release};
use crate::sync::{boot_roles, converge_and_sync, role, start_upstream, Role};
use std::time::Instant;

const UNIT: &str = "systemd-timesyncd.service";
const CONFIG: &str = "/etc/systemd/timesyncd.conf.d/ntp-provision.conf";

/// Test only: lets the unit start inside a container (see the module doc).
pub(crate) fn allow_in_container(node: &Node) {
    node.ok(&[
        "mkdir",
        "-p",
        "/etc/systemd/system/systemd-timesyncd.service.d",
    ]);
    node.write(
        "/etc/systemd/system/systemd-timesyncd.service.d/ntpp-test-container.conf",
        "# tests/node/timesyncd.rs: Debian's unit skips containers; the test nodes are nspawn containers.\n\
         [Unit]\nConditionVirtualization=\n",
    );
    node.ok(&["systemctl", "daemon-reload"]);
}

/// Sockets bound to local port 123 (0x007B), UDP over IPv4 and IPv6, read
/// from the node's own /proc/net.
fn udp_123_sockets(node: &Node) -> Vec<String> {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .flat_map(|f| {
            let text = node.ok(&["cat", f]).stdout;
            text.lines()
                .skip(1)
                .filter(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .is_some_and(|local| local.ends_with(":007B"))
                })
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// apply -e daemon=timesyncd with the upstream as the one server, then
/// everything only a node shows.
fn timesyncd_converges_and_synchronises(node: &Node, r: &Role, upstream: std::net::Ipv4Addr) {
    let t = converge_and_sync(node, r, upstream, None).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "[timesyncd] {} ({}): apply {:.1?}, synchronised {:.1?} after apply started",
        node.name(),
        r.release.name(),
        t.apply,
        t.synchronised
    );
    let (installed, active) = time_daemons(node);
    assert_eq!(installed, ["systemd-timesyncd"], "{}", node.name());
    assert_eq!(active, [UNIT], "{}", node.name());
    assert_eq!(node.unit_property(UNIT, "UnitFileState"), "enabled");
    let sockets = udp_123_sockets(node);
    assert!(
        sockets.is_empty(),
        "{}: UDP 123 open: {sockets:?}",
        node.name()
    );
    let config = node.read(CONFIG).expect("the drop-in");
    let servers = format!("NTP={upstream}\n");
    assert!(config.contains(&servers), "{config}");

    let server = format!("servers=[{upstream}]");
    node.rerun_clean(&["-e", "daemon=timesyncd", "-e", &server]);

    let status = json(&node.provision(&["status", "--format", "json"]));
    assert_eq!(status["daemon"]["flavor"], "timesyncd", "{status:#}");
    assert_eq!(status["daemon"]["package"], "systemd-timesyncd");
    assert_eq!(status["config"]["matches_plan"], true, "{status:#}");
    assert_eq!(status["sync"]["refid"], upstream.to_string(), "{status:#}");
    // The upstream says stratum 8: timesyncd took its answers.
    assert_eq!(status["sync"]["stratum"], 9, "{status:#}");
    assert_eq!(status["sources"][0]["state"], "selected", "{status:#}");
}

#[test]
fn timesyncd_converges_synchronises_with_the_upstream_and_switches_on_every_release() {
    let _guard = exclusive();
    let t0 = Instant::now();
    let upstream_role = role("upstream", Release::Bookworm, "chrony", "chrony", 2);
    let clients = [
        role("client", Release::Bullseye, "timesyncd", "timesyncd", 40),
        role("client", Release::Bookworm, "timesyncd", "timesyncd", 41),
        role("client", Release::Trixie, "timesyncd", "timesyncd", 42),
    ];
    let all: Vec<&Role> = std::iter::once(&upstream_role).chain(&clients).collect();
    let mut nodes = boot_roles(&all);
    let client_nodes = nodes.split_off(1);
    let upstream = nodes.pop().unwrap();
    start_upstream(&upstream, "");
    eprintln!("[timesyncd] upstream ready at {:.1?}", t0.elapsed());
    let up = upstream.addr();
    let server = format!("servers=[{up}]");

    std::thread::scope(|s| {
        for (r, node) in clients.iter().zip(&client_nodes) {
            let server = &server;
            s.spawn(move || {
                allow_in_container(node);
                // From another daemon: it goes, timesyncd comes.
                let before = node.provision(&["apply", "-e", "daemon=chrony", "-e", server]);
                assert_eq!(before.code, 0, "{}\n{}", before.stdout, before.stderr);
                timesyncd_converges_and_synchronises(node, r, up);
                // And back: timesyncd goes.
                let back = node.provision(&["apply", "-e", "daemon=chrony", "-e", server]);
                assert_eq!(back.code, 0, "{}\n{}", back.stdout, back.stderr);
                let (installed, active) = time_daemons(node);
                assert_eq!(installed, ["chrony"], "{}", node.name());
                assert_eq!(active, ["chrony.service"], "{}", node.name());
                let gone = node.dpkg_abbrev("systemd-timesyncd");
                assert!(
                    gone.is_empty() || gone.starts_with(['u', 'p']),
                    "{}: systemd-timesyncd is {gone:?}",
                    node.name()
                );
            });
        }
    });
    eprintln!("[timesyncd] all done at {:.1?}", t0.elapsed());
}

/// Refusals change nothing; then, without the test's drop-in, what stops
/// timesyncd in a container is named: apply fails on its health check with
/// the unit's own log line about the condition.
#[test]
fn timesyncd_refuses_clients_and_nts_before_any_change_and_names_the_container_condition() {
    let _guard = exclusive();
    let node = Node::boot(Release::Bookworm);
    let before = node.snapshot();
    for (args, says) in [
        (
            vec!["-e", "daemon=timesyncd", "-e", "clients=[10.123.0.0/24]"],
            "vars.clients: clients is [10.123.0.0/24], but daemon timesyncd is a client only",
        ),
        (
            vec![
                "-e",
                "daemon=timesyncd",
                "-e",
                "servers=[{host: a.example, nts: true}]",
            ],
            "timesyncd has no NTS support",
        ),
    ] {
        let mut argv = vec!["apply"];
        argv.extend(&args);
        let out = node.provision(&argv);
        assert_ne!(out.code, 0, "{args:?}");
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(said.contains(says), "{args:?}:\n{said}");
    }
    assert_eq!(
        crate::harness::snapshot_diff(&before, &node.snapshot()),
        Vec::<String>::new()
    );

    let out = node.provision(&[
        "apply",
        "-e",
        "daemon=timesyncd",
        "-e",
        "servers=[10.123.0.2]",
    ]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("systemd-timesyncd.service is inactive after being started")
            && said.contains("ConditionVirtualization=!container"),
        "{said}"
    );
    assert_eq!(node.unit_property(UNIT, "ConditionResult"), "no");
}
