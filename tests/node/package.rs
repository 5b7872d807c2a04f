//! The Debian package on fresh nodes of each release: `dpkg -i` the .deb
//! that `scripts/package` built, the files in place, the timer there and
//! disabled, the service converging the node, the timer (enabled, with a
//! short interval from a drop-in under /run) repairing a hand edit, and
//! `dpkg --purge` leaving nothing of the package while the node's NTP
//! daemon and config stay (with the `*.ntp-provision.bak` copies of what
//! the runs replaced, which are the node's too).
//!
//! The .deb is `$NTPP_DEB`, else `<repo>/dist/ntp-provision_VERSION-1_amd64.deb`;
//! its binary must be the binary under test (a stale package fails).
//! Daemons get loopback servers only: the test edits the packaged plan, as
//! an operator would.

use crate::harness::{binary_under_test, exclusive, json, Node, Release, NODE_BIN};
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const PLAN: &str = "/etc/ntp-provision/plan.yaml";
const DEB_IN_NODE: &str = "/root/ntp-provision.deb";

fn deb() -> PathBuf {
    let path = std::env::var_os("NTPP_DEB")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
                "dist/ntp-provision_{}-1_amd64.deb",
                env!("CARGO_PKG_VERSION")
            ))
        });
    assert!(
        path.is_file(),
        "no Debian package at {}: build it with scripts/package (scripts/test does), or set NTPP_DEB",
        path.display()
    );
    // The package must carry the binary under test, not an older build.
    let out = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&path)
        .output()
        .expect("run dpkg-deb");
    assert!(
        out.status.success(),
        "dpkg-deb --fsys-tarfile {}",
        path.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("data.tar");
    fs::write(&tar, &out.stdout).unwrap();
    let st = Command::new("tar")
        .args(["-xf"])
        .arg(&tar)
        .arg("-C")
        .arg(dir.path())
        .arg("./usr/sbin/ntp-provision")
        .status()
        .expect("run tar");
    assert!(
        st.success(),
        "no usr/sbin/ntp-provision in {}",
        path.display()
    );
    let packaged = fs::read(dir.path().join("usr/sbin/ntp-provision")).unwrap();
    assert!(
        packaged == fs::read(binary_under_test()).unwrap(),
        "{} does not hold the binary under test ({}): rerun scripts/package",
        path.display(),
        binary_under_test().display()
    );
    path
}

/// The packaged plan with loopback servers, and on Debian 13 (no `ntp`)
/// chrony: the edit an operator makes to the conffile.
fn edit_plan(node: &Node) {
    let plan = node.read(PLAN).expect("the packaged plan");
    let pool = "    - 0.ubuntu.pool.ntp.org\n    - 1.ubuntu.pool.ntp.org\n    - 2.ubuntu.pool.ntp.org\n    - 3.ubuntu.pool.ntp.org\n";
    assert!(
        plan.contains(pool),
        "the packaged plan is the default one:\n{plan}"
    );
    let mut plan = plan.replace(pool, "    - 127.0.0.1\n    - \"::1\"\n");
    if node.release() == Release::Trixie {
        plan = plan.replace("  daemon: ntp\n", "  daemon: chrony\n");
        assert!(plan.contains("daemon: chrony"));
    }
    node.write(PLAN, &plan);
}

/// Every path on the node's disk whose name mentions ntp-provision.
fn traces(node: &Node) -> Vec<String> {
    let out = node.ok(&[
        "find",
        "/",
        "-xdev",
        "(",
        "-path",
        "/proc",
        "-o",
        "-path",
        "/sys",
        "-o",
        "-path",
        "/dev",
        ")",
        "-prune",
        "-o",
        "-name",
        "*ntp-provision*",
        "-print",
    ]);
    let mut paths: Vec<String> = out.stdout.lines().map(str::to_string).collect();
    // /run is a tmpfs of its own (not under -xdev): look there too.
    let run = node.ok(&["find", "/run", "-xdev", "-name", "*ntp-provision*"]);
    paths.extend(run.stdout.lines().map(str::to_string));
    paths.sort();
    paths
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn package_on(release: Release, deb: &PathBuf) {
    let node = Node::boot(release);
    let name = node.name();
    // Only the packaged binary: the harness's copy in /usr/local/bin goes.
    node.ok(&["rm", "-f", NODE_BIN]);
    fs::copy(deb, node.path(DEB_IN_NODE)).expect("copy the .deb into the node");

    node.ok(&["dpkg", "-i", DEB_IN_NODE]);
    assert_eq!(node.dpkg_abbrev("ntp-provision"), "ii", "{name}");
    assert_eq!(
        node.ok(&["sh", "-c", "command -v ntp-provision"])
            .stdout
            .trim(),
        "/usr/sbin/ntp-provision"
    );
    // `ntp-provision 0.1.0 (COMMIT DATE)`
    let version = node.ok(&["ntp-provision", "--version"]).stdout;
    assert!(
        version.starts_with(&format!("ntp-provision {} (", env!("CARGO_PKG_VERSION"))),
        "{name}: {version}"
    );

    // Man pages, completions, the plan as a conffile.
    let man8 = node
        .ok(&["zcat", "/usr/share/man/man8/ntp-provision.8.gz"])
        .stdout;
    assert!(
        man8.contains(".TH NTP-PROVISION 8") && man8.contains(".SS apply"),
        "{name}"
    );
    let man5 = node
        .ok(&["zcat", "/usr/share/man/man5/ntp-provision-plan.5.gz"])
        .stdout;
    assert!(man5.contains(".TH NTP-PROVISION-PLAN 5"), "{name}");
    for (file, mark) in [
        (
            "/usr/share/bash-completion/completions/ntp-provision",
            "complete -F",
        ),
        (
            "/usr/share/zsh/vendor-completions/_ntp-provision",
            "#compdef ntp-provision",
        ),
        (
            "/usr/share/fish/vendor_completions.d/ntp-provision.fish",
            "complete -c ntp-provision",
        ),
    ] {
        let text = node
            .read(file)
            .unwrap_or_else(|| panic!("{name}: no {file}"));
        assert!(text.contains(mark), "{name}: {file}");
    }
    // bash loads the script and knows the command.
    let loaded = node.ok(&[
        "bash",
        "-c",
        ". /usr/share/bash-completion/completions/ntp-provision && complete -p ntp-provision",
    ]);
    assert!(
        loaded.stdout.contains("ntp-provision"),
        "{name}: {loaded:?}"
    );
    let default_plan =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/ntp.yaml")).unwrap();
    assert_eq!(
        node.read(PLAN).as_deref(),
        Some(default_plan.as_str()),
        "{name}"
    );
    let conffiles = node.ok(&["dpkg-query", "-W", "-f=${Conffiles}", "ntp-provision"]);
    assert!(
        conffiles.stdout.contains(PLAN),
        "{name}: conffiles {conffiles:?}"
    );

    // The units: installed, valid, the timer disabled and not running, and
    // installing started nothing.
    node.ok(&[
        "systemd-analyze",
        "verify",
        "--man=no",
        "/usr/lib/systemd/system/ntp-provision.service",
        "/usr/lib/systemd/system/ntp-provision.timer",
    ]);
    let enabled = node.run(&["systemctl", "is-enabled", "ntp-provision.timer"]);
    assert_eq!(enabled.stdout.trim(), "disabled", "{name}: {enabled:?}");
    let active = node.run(&["systemctl", "is-active", "ntp-provision.timer"]);
    assert_eq!(active.stdout.trim(), "inactive", "{name}");
    assert_eq!(
        node.unit_property("ntp-provision.service", "ActiveState"),
        "inactive",
        "{name}: installing started the service"
    );

    // The service converges the node.
    edit_plan(&node);
    node.ok(&["systemctl", "start", "ntp-provision.service"]);
    assert_eq!(
        node.unit_property("ntp-provision.service", "Result"),
        "success"
    );
    let journal = node
        .ok(&["journalctl", "-u", "ntp-provision.service", "--no-pager"])
        .stdout;
    assert!(
        journal.contains("RECAP") && journal.contains("changed="),
        "{name}:\n{journal}"
    );
    let status = node.run(&["ntp-provision", "status", "--format", "json", PLAN]);
    assert_eq!(
        status.code, 0,
        "{name}: the daemon runs:\n{}",
        status.stdout
    );
    let doc = json(&status);
    assert_eq!(doc["config"]["matches_plan"], true, "{name}: {doc:#}");
    let config = doc["config"]["path"].as_str().unwrap().to_string();
    let unit = doc["daemon"]["unit"].as_str().unwrap().to_string();
    let clean = node.run(&["ntp-provision", "plan", "--detailed-exitcodes", PLAN]);
    assert_eq!(clean.code, 0, "{name}: converged:\n{}", clean.stdout);

    // The timer, enabled with a short interval, repairs a hand edit.
    // Written from inside: the node's /run is its own tmpfs.
    node.run_stdin(
        &["sh", "-c", "mkdir -p /run/systemd/system/ntp-provision.timer.d && cat > /run/systemd/system/ntp-provision.timer.d/test.conf"],
        b"[Timer]\nOnCalendar=\nOnActiveSec=1s\nOnUnitActiveSec=2s\nRandomizedDelaySec=0\nAccuracySec=1s\n",
    );
    let timer = node.ok(&["systemctl", "cat", "ntp-provision.timer"]).stdout;
    assert!(
        timer.contains("OnUnitActiveSec=2s"),
        "{name}: the drop-in applies:\n{timer}"
    );
    node.ok(&["systemctl", "daemon-reload"]);
    node.ok(&["systemctl", "enable", "--now", "ntp-provision.timer"]);
    let good = node.read(&config).unwrap();
    node.write(&config, &format!("{good}# edited by hand\n"));
    wait_for(
        &format!("{name}: the timer repairing {config}"),
        Duration::from_secs(120),
        || node.read(&config).as_deref() == Some(good.as_str()),
    );
    node.ok(&["systemctl", "disable", "--now", "ntp-provision.timer"]);
    wait_for(
        &format!("{name}: the service to finish"),
        Duration::from_secs(120),
        || node.unit_property("ntp-provision.service", "ActiveState") != "activating",
    );
    // Leave it enabled through the purge: the worst case for leftovers.
    node.ok(&["systemctl", "enable", "ntp-provision.timer"]);
    node.ok(&["rm", "-r", "/run/systemd/system/ntp-provision.timer.d"]);

    // Purge: nothing of the package stays; the daemon and its config do.
    node.ok(&["dpkg", "--purge", "ntp-provision"]);
    assert_eq!(
        node.dpkg_abbrev("ntp-provision"),
        "",
        "{name}: dpkg still knows it"
    );
    let left: Vec<String> = traces(&node)
        .into_iter()
        // What a run replaced (the daemon's config, its DHCP hook), kept
        // next to the file: the node's, like the file itself.
        .filter(|p| !p.ends_with(".ntp-provision.bak"))
        .filter(|p| p != DEB_IN_NODE)
        .collect();
    assert!(left.is_empty(), "{name}: left after purge: {left:?}");
    assert_eq!(
        node.read(&config).as_deref(),
        Some(good.as_str()),
        "{name}: the NTP config stays"
    );
    let active = node.run(&["systemctl", "is-active", &unit]);
    assert_eq!(active.stdout.trim(), "active", "{name}: {unit} still runs");
}

#[test]
fn deb_installs_converges_through_its_timer_and_purges_clean_on_each_release() {
    let _guard = exclusive();
    let deb = deb();
    for release in Release::ALL {
        let started = Instant::now();
        package_on(release, &deb);
        eprintln!("[package] {} in {:.1?}", release.name(), started.elapsed());
    }
}
