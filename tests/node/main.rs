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
mod faults;
mod fleet;
mod harness;
mod package;

use harness::{exclusive, snapshot_diff, Node, Release, NODE_BIN};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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
        fs::read_to_string("/etc/resolv.conf").ok()
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
