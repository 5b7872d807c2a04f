//! Real-node tests: `ntp-provision` against throwaway Debian nodes booted with
//! systemd-nspawn (or entered with chroot for the no-systemd path).
//!
//! Run them with `scripts/test` (as root), which builds the static binary and
//! the images and then runs `cargo test --test node -- --test-threads=1`.
//! Every test that makes a node takes `harness::exclusive()` first.

mod amplification;
mod collection;
mod converge;
mod daemons;
mod dhcp;
mod faults;
mod fleet;
mod fleet_scale;
mod harness;
mod keys;
mod nts;
mod outside;
mod package;
mod site;
mod sync;
mod templates;
mod timesyncd;
mod timezone;

use harness::{exclusive, snapshot_diff, NetHost, Node, Release, NODE_BIN};
use std::fs;
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Nothing of a dropped node may be left: no tree, no process rooted in it,
/// no systemd-nspawn for it.
fn assert_gone(dir: &Path) {
    assert!(!dir.exists(), "{} was not removed", dir.display());
    for entry in fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(root) = fs::read_link(format!("/proc/{pid}/root")) {
            assert!(
                !root.starts_with(dir),
                "process {pid} still rooted in {}",
                dir.display()
            );
        }
        if let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(
                !cmdline.contains(&*dir.to_string_lossy()),
                "process {pid} still refers to {}: {cmdline}",
                dir.display()
            );
        }
    }
}

fn node_dir(node: &Node) -> PathBuf {
    node.path("/").parent().unwrap().to_path_buf()
}

fn debian_version(node: &Node) -> String {
    node.ok(&["cat", "/etc/debian_version"])
        .stdout
        .trim()
        .to_string()
}

#[test]
fn harness_boots_bookworm_and_chroot() {
    let _guard = exclusive();
    let t = Instant::now();
    let node = Node::boot(Release::Bookworm);
    eprintln!("bookworm node booted in {:.1?}", t.elapsed());
    let dir = node_dir(&node);

    let state = node.run(&["systemctl", "is-system-running"]);
    let state = state.stdout.trim();
    assert!(
        state == "running" || state == "degraded",
        "systemctl is-system-running: {state:?}"
    );
    assert_eq!(node.ok(&["hostname"]).stdout.trim(), "node-bookworm");
    assert!(debian_version(&node).starts_with("12"));

    // The binary under test is in place and executable.
    node.ok(&["test", "-x", NODE_BIN]);
    let meta = fs::metadata(node.path(NODE_BIN)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o755);

    // run: exit codes, stdout, stderr, stdin; the environment is clean.
    let out = node.run(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    assert_eq!(node.run_stdin(&["cat"], b"piped\n").stdout, "piped\n");
    let env = node.ok(&["env"]).stdout;
    assert!(
        env.contains("LC_ALL=C") && env.contains("PATH=/usr/local/sbin:"),
        "{env}"
    );
    assert!(
        !env.contains("CARGO") && !env.contains("RUST"),
        "host environment leaked: {env}"
    );

    // Image properties the tests rely on: apt never updated, timers masked.
    let lists = node.ok(&["ls", "/var/lib/apt/lists"]).stdout;
    assert!(
        lists
            .split_whitespace()
            .all(|f| f == "lock" || f == "partial"),
        "apt lists: {lists}"
    );
    assert_eq!(
        node.ok(&["ls", "-A", "/var/lib/apt/lists/partial"]).stdout,
        ""
    );
    let sources = node.read("/etc/apt/sources.list").unwrap();
    assert!(
        sources.contains("deb http://deb.debian.org/debian-security bookworm-security main"),
        "{sources}"
    );
    assert_eq!(
        node.run(&["systemctl", "is-enabled", "apt-daily.timer"])
            .stdout
            .trim(),
        "masked"
    );

    // Snapshots: stable without changes; a write shows as exactly one key.
    let before = node.snapshot();
    assert!(
        before.contains_key("file:/var/lib/dpkg/status") && before.contains_key("dpkg:systemd")
    );
    assert!(
        before.contains_key("file:/etc/hostname")
            && before.contains_key("dir:/var/lib/apt/lists/partial")
    );
    let again = node.snapshot();
    assert_eq!(
        before,
        again,
        "snapshot changed without changes: {:?}",
        snapshot_diff(&before, &again)
    );
    node.write("/etc/ntpp-harness-smoke.conf", "hello\n");
    assert_eq!(
        node.ok(&["cat", "/etc/ntpp-harness-smoke.conf"]).stdout,
        "hello\n"
    );
    let after = node.snapshot();
    assert_eq!(
        snapshot_diff(&before, &after),
        ["file:/etc/ntpp-harness-smoke.conf"]
    );
    assert_eq!(
        node.read("/etc/ntpp-harness-smoke.conf").as_deref(),
        Some("hello\n")
    );
    assert_eq!(node.read("/etc/does-not-exist"), None);
    let procs = node.snapshot_with_processes();
    assert!(
        procs
            .keys()
            .any(|k| k.starts_with("proc:") && k.contains("systemd-journald")),
        "{procs:?}"
    );

    let t = Instant::now();
    drop(node);
    eprintln!("bookworm node stopped and removed in {:.1?}", t.elapsed());
    assert_gone(&dir);

    // The same tree as a plain chroot.
    let t = Instant::now();
    let mut node = Node::chroot(Release::Bookworm);
    eprintln!("bookworm chroot ready in {:.1?}", t.elapsed());
    let dir = node_dir(&node);
    assert!(debian_version(&node).starts_with("12"));
    node.ok(&["test", "-x", NODE_BIN]);
    node.ok(&["test", "-e", "/proc/self/status"]);
    node.ok(&["test", "-c", "/dev/null"]);
    assert_eq!(
        node.read("/etc/resolv.conf"),
        fs::read_to_string(harness::resolv_conf().0).ok()
    );
    // No init: systemctl sees no running systemd, so `service` uses init.d.
    node.ok(&["test", "!", "-e", "/run/systemd/system"]);
    // A daemon left running inside, and a command that outlives its timeout:
    // both are killed (the latter with a panic naming the command).
    node.ok(&["sh", "-c", "setsid sleep 900 </dev/null >/dev/null 2>&1 &"]);
    assert_eq!(
        node.processes().len(),
        1,
        "the daemonized sleep runs rooted in the node"
    );
    node.set_timeout(Duration::from_secs(1));
    let timed_out =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| node.run(&["sleep", "901"])));
    let msg = timed_out.expect_err("run must panic on timeout");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("timed out") && msg.contains("901"), "{msg}");
    assert_eq!(
        node.processes().len(),
        1,
        "the timed-out command was killed"
    );
    drop(node);
    assert_gone(&dir);
}

#[test]
fn harness_boots_bullseye_and_trixie() {
    let _guard = exclusive();
    for (release, major) in [(Release::Bullseye, "11."), (Release::Trixie, "13.")] {
        let t = Instant::now();
        let node = Node::boot(release);
        eprintln!("{} node booted in {:.1?}", release.name(), t.elapsed());
        let dir = node_dir(&node);
        let version = debian_version(&node);
        assert!(
            version.starts_with(major),
            "{}: /etc/debian_version is {version:?}",
            release.name()
        );
        let state = node.run(&["systemctl", "is-system-running"]);
        assert!(
            matches!(state.stdout.trim(), "running" | "degraded"),
            "{state:?}"
        );
        node.ok(&["test", "-x", NODE_BIN]);
        let sources = node.read("/etc/apt/sources.list").unwrap();
        let security = format!(
            "deb http://deb.debian.org/debian-security {}-security main",
            release.name()
        );
        assert!(sources.contains(&security), "{sources}");
        drop(node);
        assert_gone(&dir);
    }
}

/// The names of the network namespaces on the host.
fn netns_names() -> Vec<String> {
    fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn nft_tables() -> String {
    let out = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip_forward() -> String {
    fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .unwrap()
        .trim()
        .to_string()
}

/// Nothing of the test network is left: no namespace, veth or bridge of it,
/// no table, forwarding as it was.
fn assert_network_gone(forward_before: &str) {
    let names = netns_names();
    assert!(
        !names.iter().any(|n| n.starts_with("ntpp-")),
        "namespaces left: {names:?}"
    );
    let links = fs::read_dir("/sys/class/net")
        .unwrap()
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("ntpp-"))
        .collect::<Vec<_>>();
    assert!(links.is_empty(), "links left: {links:?}");
    let tables = nft_tables();
    assert!(
        !tables.contains(harness::NFT_TABLE),
        "nft table left: {tables}"
    );
    assert!(!Path::new(harness::NET_STATE).exists());
    assert_eq!(ip_forward(), forward_before, "IPv4 forwarding restored");
}

/// The node's datagram to ADDR:PORT (bash's /dev/udp: the images have no nc).
fn send_udp(node: &Node, addr: &str, port: u16, text: &str) {
    node.ok(&[
        "bash",
        "-c",
        &format!("echo {text} > /dev/udp/{addr}/{port}"),
    ]);
}

/// What arrives on `sock` within a second, if anything.
fn recv_text(sock: &UdpSocket) -> Option<String> {
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 512];
    sock.recv_from(&mut buf)
        .ok()
        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

#[test]
fn harness_gives_each_node_its_own_network_and_removes_it() {
    let _guard = exclusive();
    let forward_before = ip_forward();
    // A killed run's leftovers: a namespace, a veth and the shared part, owned
    // by a process that is gone. The next node cleans them up first.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    assert!(Command::new("ip")
        .args(["netns", "add", "ntpp-stale-test"])
        .status()
        .unwrap()
        .success());
    assert!(Command::new("ip")
        .args([
            "link",
            "add",
            "ntpp-v251",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            "ntpp-stale-test"
        ])
        .status()
        .unwrap()
        .success());
    assert!(Command::new("ip")
        .args(["link", "add", harness::NET_BRIDGE, "type", "bridge"])
        .status()
        .unwrap()
        .success());
    fs::write(
        harness::NET_STATE,
        format!("{dead_pid} 1\nip_forward {forward_before}\n"),
    )
    .unwrap();

    let a = Node::boot(Release::Bookworm);
    assert!(
        !netns_names().contains(&"ntpp-stale-test".to_string()),
        "the stale namespace was reaped"
    );
    assert!(!Path::new("/sys/class/net/ntpp-v251").exists());
    let b = Node::chroot(Release::Bookworm);
    let stranger = NetHost::new(None);
    let addrs = [a.addr(), b.addr(), stranger.addr()];
    eprintln!("addresses: {addrs:?}");
    assert!(
        addrs[0] != addrs[1] && addrs[1] != addrs[2] && addrs[0] != addrs[2],
        "{addrs:?}"
    );
    for addr in addrs {
        assert_eq!(&addr.octets()[..3], &[10, 123, 0], "{addr}");
    }
    assert_eq!(ip_forward(), "1", "forwarding is on while nodes run");
    assert!(nft_tables().contains(harness::NFT_TABLE));
    // Each node's eth0 holds its own address only.
    for node in [&a, &b] {
        let addrs = node.ok(&["cat", "/proc/net/fib_trie"]).stdout;
        assert!(addrs.contains(&node.addr().to_string()), "{addrs}");
        assert!(
            !addrs.contains("192.0.2."),
            "no host address inside:\n{addrs}"
        );
    }

    // Loopback is the node's own: what a node sends to 127.0.0.1 never
    // reaches the host's loopback; what it sends to the gateway does.
    let host_lo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = host_lo.local_addr().unwrap().port();
    send_udp(&a, "127.0.0.1", port, "to-loopback");
    assert_eq!(
        recv_text(&host_lo),
        None,
        "a node reached the host's loopback"
    );
    let host_br = UdpSocket::bind((harness::NET_GATEWAY, 0)).unwrap();
    let port = host_br.local_addr().unwrap().port();
    send_udp(&a, &harness::NET_GATEWAY.to_string(), port, "from-a");
    assert_eq!(recv_text(&host_br).as_deref(), Some("from-a"));
    send_udp(&b, &harness::NET_GATEWAY.to_string(), port, "from-b");
    assert_eq!(recv_text(&host_br).as_deref(), Some("from-b"));
    // The bare host runs host commands in its namespace.
    let out = stranger.run(
        &[
            "bash",
            "-c",
            &format!(
                "echo from-stranger > /dev/udp/{}/{port}",
                harness::NET_GATEWAY
            ),
        ],
        Duration::from_secs(10),
    );
    assert!(out.success(), "{out:?}");
    assert_eq!(recv_text(&host_br).as_deref(), Some("from-stranger"));

    // Node to node over the bridge (also where br_netfilter sends bridged
    // traffic through the host's forward hook): the booted node and the
    // chroot each reach a listener on the bare host.
    for (node, text) in [(&a, "a-to-stranger"), (&b, "b-to-stranger")] {
        let got = std::thread::scope(|s| {
            let listener = s.spawn(|| {
                stranger.run(
                    &[
                        "python3",
                        "-c",
                        &format!(
                            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); \
                             s.bind(('{}', 9999)); s.settimeout(10); print(s.recv(100).decode().strip())",
                            stranger.addr()
                        ),
                    ],
                    Duration::from_secs(20),
                )
            });
            // Until the listener has it (it may not be bound yet), at most 20 tries.
            for _ in 0..20 {
                if listener.is_finished() {
                    break;
                }
                send_udp(node, &stranger.addr().to_string(), 9999, text);
                std::thread::sleep(Duration::from_millis(250));
            }
            listener.join().unwrap()
        });
        assert_eq!(
            got.stdout.trim(),
            text,
            "{} to {}: {got:?}",
            node.addr(),
            stranger.addr()
        );
    }

    // The archive through the harness's caching proxy (the booted node),
    // and, with the proxy turned off, straight through the NAT (the chroot).
    for node in [&a, &b] {
        let conf = node.read(harness::NODE_PROXY_CONF).unwrap_or_default();
        assert!(conf.contains(&harness::proxy_url()), "{conf}");
    }
    a.apt_get(&["update"]);
    b.apt_get(&["-o", "Acquire::http::Proxy=", "update"]);

    let (ns_a, ns_b) = (a.netns().to_string(), b.netns().to_string());
    drop(a);
    assert!(
        !netns_names().contains(&ns_a),
        "{ns_a} removed with its node"
    );
    assert!(netns_names().contains(&ns_b));
    drop(b);
    assert!(!netns_names().contains(&ns_b));
    assert_eq!(ip_forward(), "1", "the stranger still holds the network");
    drop(stranger);
    assert_network_gone(&forward_before);
}
