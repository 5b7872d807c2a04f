//! The fleet: real ansible-core drives the collection's role and binary
//! module over SSH to several real nodes, and plain `ssh node ntp-provision
//! ...` works too.
//!
//! The collection is the tarball `scripts/package` built (`$NTPP_COLLECTION`,
//! else `<repo>/dist/ntp_provision-ntp-VERSION.tar.gz`), installed with
//! `ansible-galaxy collection install` into a temporary path; its module must
//! be the binary under test. The repo's playbooks/fleet.yml and
//! fleet-canary.yml run as they are.
//!
//! Each node runs sshd on port 22 of its own address in the test network
//! (its own network namespace, see the harness) and converges OpenNTPD.
//! Daemons get loopback servers only (each node's own loopback), and every
//! connection the test makes goes to a node's address.
//!
//! ansible-core is the pinned one `scripts/test` installs into a venv
//! (`$NTPP_ANSIBLE_VENV`, default [`DEFAULT_VENV`]), and for the oldest and
//! newest versions the collection claims that run on this Python,
//! [`ANSIBLE_EXTRA`] in `$NTPP_ANSIBLE_VENV-VERSION`; without them the test
//! fails, naming the command that installs them.

use crate::harness::{binary_under_test, exclusive, Node, Release};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DEFAULT_VENV: &str = "/var/tmp/ntp-provision/ansible-venv";
pub const ANSIBLE_VERSION: &str = "2.17.7";
/// The oldest ansible-core collection/meta/runtime.yml accepts, and the
/// newest that runs on Debian 12's Python 3.11 (scripts/test installs both).
pub const ANSIBLE_EXTRA: [&str; 2] = ["2.14.18", "2.19.14"];
const OPENNTPD_CONF: &str = "/etc/openntpd/ntpd.conf";
/// Bound on one ansible-playbook or ssh run (apt installs on every node).
const RUN_TIMEOUT_SECS: &str = "1200";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv of ansible-core VERSION: the pinned one in `$NTPP_ANSIBLE_VENV`,
/// the others beside it with `-VERSION` appended.
pub fn venv(version: &str) -> PathBuf {
    let base = std::env::var_os("NTPP_ANSIBLE_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| DEFAULT_VENV.into());
    if version == ANSIBLE_VERSION {
        base
    } else {
        PathBuf::from(format!("{}-{version}", base.display()))
    }
}

/// `ansible-playbook` (or another tool of the venv) of ansible-core VERSION; panics
/// naming the install command when it is missing or another version.
pub fn ansible_tool(version: &str, tool: &str) -> PathBuf {
    let venv = venv(version);
    let bin = venv.join("bin").join(tool);
    let out = Command::new(&bin).arg("--version").output().unwrap_or_else(|e| {
        panic!(
            "{tool} not found at {} ({e}); install ansible-core {version} with\n    \
             python3 -m venv {v} && {v}/bin/pip install ansible-core=={version}\n(scripts/test does this)",
            bin.display(),
            v = venv.display()
        )
    });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("[core {version}]")),
        "{} is not ansible-core {version}:\n{text}",
        bin.display()
    );
    bin
}

/// The collection tarball scripts/package built.
pub fn collection_tarball() -> PathBuf {
    let path = std::env::var_os("NTPP_COLLECTION")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            repo().join(format!(
                "dist/ntp_provision-ntp-{}.tar.gz",
                env!("CARGO_PKG_VERSION")
            ))
        });
    assert!(
        path.is_file(),
        "no collection at {}: build it with scripts/package (scripts/test does), or set NTPP_COLLECTION",
        path.display()
    );
    path
}

/// `ansible-galaxy collection install TARBALL -p DIR` with ansible-core
/// VERSION; returns DIR, the ANSIBLE_COLLECTIONS_PATH that finds it. The
/// installed module must be the binary under test.
pub fn install_collection(version: &str, dir: &Path) -> PathBuf {
    let tarball = collection_tarball();
    let galaxy = ansible_tool(version, "ansible-galaxy");
    let out = Command::new(&galaxy)
        .args(["collection", "install", "--force", "-p"])
        .arg(dir)
        .arg(&tarball)
        .env("ANSIBLE_LOCAL_TEMP", dir.join("tmp"))
        .stdin(Stdio::null())
        .output()
        .expect("run ansible-galaxy");
    assert!(
        out.status.success(),
        "ansible-galaxy collection install {}:\n{}{}",
        tarball.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let module = dir.join("ansible_collections/ntp_provision/ntp/plugins/modules/ntp_provision");
    let installed = fs::read(&module).unwrap_or_else(|e| panic!("{}: {e}", module.display()));
    assert!(
        installed == fs::read(binary_under_test()).unwrap(),
        "the module in {} is not the binary under test: rerun scripts/package",
        tarball.display()
    );
    dir.to_path_buf()
}

/// A booted node with sshd on port 22 of its address that accepts `key` for root.
pub(crate) fn ssh_node(release: Release, key_pub: &str) -> Node {
    ssh_ready(Node::boot(release), key_pub)
}

/// `node`, readied as [`ssh_node`] readies a node it booted (before [`install_sshd`]).
pub(crate) fn ssh_ready(node: Node, key_pub: &str) -> Node {
    // Before the install: sshd listens on the node's test-network address only.
    node.write(
        "/etc/ssh/sshd_config.d/ntpp-test.conf",
        &format!("ListenAddress {}:22\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n", node.addr()),
    );
    node.write("/root/.ssh/authorized_keys", key_pub);
    node.ok(&["chmod", "700", "/root", "/root/.ssh"]);
    node.ok(&["chmod", "600", "/root/.ssh/authorized_keys"]);
    node
}

pub(crate) fn install_sshd(node: &Node) {
    apt_get_retrying(node, &["update"]);
    apt_get_retrying(
        node,
        &["install", "--no-install-recommends", "openssh-server"],
    );
    // The images' policy-rc.d keeps packages from starting daemons: start it ourselves.
    node.ok(&["systemctl", "enable", "ssh.service"]);
    node.ok(&["systemctl", "restart", "ssh.service"]);
}

/// `apt-get -q -y ARGS` in the node, tried again (three tries at most) when
/// it fails: with many nodes fetching at once through the one archive
/// proxy, apt's http method has died mid-update ("Method http has died
/// unexpectedly"). Setup only, never the tool under test.
pub(crate) fn apt_get_retrying(node: &Node, args: &[&str]) {
    const TRIES: u32 = 3;
    let argv = crate::harness::apt_get_argv(args);
    for attempt in 1..=TRIES {
        let out = node.run(&argv);
        if out.code == 0 {
            return;
        }
        assert!(
            attempt < TRIES,
            "apt-get {args:?} in node {} failed {TRIES} times; the last:\nexit code {}\n{}\n{}",
            node.name(),
            out.code,
            out.stdout,
            out.stderr
        );
        eprintln!(
            "[fleet] {}: apt-get {args:?} failed (try {attempt} of {TRIES}), trying again: {}",
            node.name(),
            out.stderr.trim()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

pub(crate) fn wait_listening(host: Ipv4Addr) {
    let addr: SocketAddr = (host, 22).into();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        assert!(Instant::now() < deadline, "sshd never listened on {addr}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(crate) struct Fleet {
    dir: tempfile::TempDir,
    pub(crate) key: PathBuf,
    /// ansible-core version -> the collection installed with it.
    collections: BTreeMap<&'static str, PathBuf>,
}

impl Fleet {
    pub(crate) fn new() -> Fleet {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut collections = BTreeMap::new();
        for version in std::iter::once(ANSIBLE_VERSION).chain(ANSIBLE_EXTRA) {
            let path = dir.path().join(format!("collections-{version}"));
            collections.insert(version, install_collection(version, &path));
        }
        let key = dir.path().join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "ntpp-fleet-test",
                "-f",
            ])
            .arg(&key)
            .output()
            .expect("run ssh-keygen");
        assert!(
            out.status.success(),
            "ssh-keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Fleet {
            dir,
            key,
            collections,
        }
    }

    pub(crate) fn key_pub(&self) -> String {
        fs::read_to_string(self.key.with_extension("pub")).unwrap()
    }

    /// An inventory dir: hosts.yml plus group_vars/ and host_vars/, as users keep them.
    fn inventory(&self, hosts: &[(&str, Ipv4Addr)], host_vars: &[(&str, &str)]) -> PathBuf {
        let inv = self.dir.path().join("inventory");
        fs::create_dir_all(inv.join("group_vars")).unwrap();
        fs::create_dir_all(inv.join("host_vars")).unwrap();
        let mut yml = String::from("ntp:\n  hosts:\n");
        for (name, addr) in hosts {
            yml += &format!("    {name}:\n      ansible_host: {addr}\n      ansible_port: 22\n");
        }
        fs::write(inv.join("hosts.yml"), yml).unwrap();
        fs::write(
            inv.join("group_vars/ntp.yml"),
            format!(
                "ansible_user: root\nansible_ssh_private_key_file: {}\nntp_daemon: openntpd\nntp_servers: [127.0.0.1, \"::1\"]\n",
                self.key.display()
            ),
        )
        .unwrap();
        for (host, vars) in host_vars {
            fs::write(inv.join(format!("host_vars/{host}.yml")), vars).unwrap();
        }
        inv.join("hosts.yml")
    }

    /// `ansible-playbook -i INVENTORY playbooks/PLAYBOOK ARGS` with the pinned
    /// ansible-core, bounded; stdout and stderr together.
    pub(crate) fn playbook(
        &self,
        inventory: &Path,
        playbook: &str,
        args: &[&str],
    ) -> (i32, String) {
        self.playbook_with(ANSIBLE_VERSION, inventory, playbook, args)
    }

    /// The same with ansible-core VERSION and the collection it installed.
    fn playbook_with(
        &self,
        version: &str,
        inventory: &Path,
        playbook: &str,
        args: &[&str],
    ) -> (i32, String) {
        let out = Command::new("timeout")
            .arg(RUN_TIMEOUT_SECS)
            .arg(ansible_tool(version, "ansible-playbook"))
            .arg("-i")
            .arg(inventory)
            .arg(repo().join("playbooks").join(playbook))
            .args(args)
            .current_dir(self.dir.path())
            .env("ANSIBLE_COLLECTIONS_PATH", &self.collections[version])
            .env("ANSIBLE_HOST_KEY_CHECKING", "False")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
            .env("ANSIBLE_SSH_CONTROL_PATH_DIR", self.dir.path().join("cp"))
            .env("ANSIBLE_LOCAL_TEMP", self.dir.path().join("tmp"))
            .env("ANSIBLE_FORKS", "5")
            .stdin(Stdio::null())
            .output()
            .expect("run ansible-playbook");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("----- ansible-playbook {version} {playbook} {args:?} -----\n{text}");
        (out.status.code().unwrap_or(-1), text)
    }

    fn ssh(&self, host: Ipv4Addr, remote: &[&str], stdin: &[u8]) -> Output {
        let input = self.dir.path().join("ssh-stdin");
        fs::write(&input, stdin).unwrap();
        Command::new("timeout")
            .arg(RUN_TIMEOUT_SECS)
            .arg("ssh")
            .args(["-p", "22", "-i"])
            .arg(&self.key)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg(format!("root@{host}"))
            .args(remote)
            .stdin(fs::File::open(&input).unwrap())
            .output()
            .expect("run ssh")
    }
}

/// PLAY RECAP counters per host: {"node1": {"ok": 1, "changed": 1, ...}}.
pub(crate) fn recap(output: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut hosts = BTreeMap::new();
    let Some((_, tail)) = output.rsplit_once("PLAY RECAP") else {
        return hosts;
    };
    for line in tail.lines().skip(1) {
        let Some((host, counts)) = line.split_once(" : ") else {
            continue;
        };
        let counts = counts
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect();
        hosts.insert(host.trim().to_string(), counts);
    }
    hosts
}

pub(crate) fn count(recap: &BTreeMap<String, BTreeMap<String, u64>>, host: &str, key: &str) -> u64 {
    recap
        .get(host)
        .and_then(|c| c.get(key))
        .copied()
        .unwrap_or_else(|| panic!("no {key} for {host} in the recap: {recap:?}"))
}

fn assert_running_openntpd(node: &Node, name: &str) {
    let active = node.run(&["systemctl", "is-active", "openntpd.service"]);
    assert_eq!(
        active.stdout.trim(),
        "active",
        "{name}: openntpd is not running"
    );
    let conf = node
        .read(OPENNTPD_CONF)
        .unwrap_or_else(|| panic!("{name}: no {OPENNTPD_CONF}"));
    assert!(
        conf.contains("written by ntp-provision") && !conf.contains("listen on"),
        "{name}:\n{conf}"
    );
}

/// The role's argument check refused the run, naming the variable, and none
/// of the role's own tasks ran.
pub fn assert_argument_spec_failure(out: &str) {
    assert!(
        out.contains("Validating arguments against arg spec") && out.contains("ntp_daemon"),
        "the argument spec names the variable:\n{out}"
    );
    assert!(
        !out.contains("NTP daemon converged") && !out.contains("UNREACHABLE"),
        "no task of the role ran, and no host was contacted:\n{out}"
    );
}

#[test]
fn ansible_converges_three_nodes_and_a_broken_one_fails_alone_then_plain_ssh() {
    let _guard = exclusive();
    let fleet = Fleet::new();
    let key = fleet.key_pub();
    let names = ["node1", "node2", "node3", "broken"];
    let nodes = [
        ssh_node(Release::Bookworm, &key),
        ssh_node(Release::Bullseye, &key),
        ssh_node(Release::Trixie, &key),
        ssh_node(Release::Bookworm, &key),
    ];
    let addrs: Vec<Ipv4Addr> = nodes.iter().map(Node::addr).collect();
    std::thread::scope(|s| {
        for node in &nodes {
            s.spawn(|| install_sshd(node));
        }
    });
    for addr in &addrs {
        wait_listening(*addr);
    }
    // The broken host: its only apt source is a closed loopback port, and its
    // lists are gone, so the module must fetch them and cannot.
    let broken = &nodes[3];
    broken.write(
        "/etc/apt/sources.list",
        "deb http://127.0.0.1:9/debian bookworm main\n",
    );
    broken.ok(&[
        "find",
        "/var/lib/apt/lists",
        "-maxdepth",
        "1",
        "-type",
        "f",
        "!",
        "-name",
        "lock",
        "-delete",
    ]);

    let hosts: Vec<(&str, Ipv4Addr)> = names.iter().copied().zip(addrs.iter().copied()).collect();
    // node3 has its own servers: host_vars win over group_vars.
    let inventory = fleet.inventory(&hosts, &[("node3", "ntp_servers: [\"::1\"]\n")]);

    // 1. One run converges the three good nodes; the broken one fails with our message.
    let (code, out) = fleet.playbook(&inventory, "fleet.yml", &[]);
    assert_ne!(code, 0, "a host failed: ansible-playbook must say so");
    let r = recap(&out);
    for name in &names[..3] {
        assert_eq!(
            (count(&r, name, "changed"), count(&r, name, "failed")),
            (1, 0),
            "{name}: {r:?}"
        );
    }
    assert_eq!(count(&r, "broken", "failed"), 1, "{r:?}");
    assert!(
        out.contains("fatal: [broken]")
            && out.contains("nothing was changed")
            && out.contains("127.0.0.1:9"),
        "our message for the broken host:\n{out}"
    );
    for (node, name) in nodes[..3].iter().zip(names) {
        assert_running_openntpd(node, name);
    }
    assert!(nodes[0]
        .read(OPENNTPD_CONF)
        .unwrap()
        .contains("server 127.0.0.1\nserver ::1\n"));
    let node3 = nodes[2].read(OPENNTPD_CONF).unwrap();
    assert!(
        node3.contains("server ::1\n") && !node3.contains("server 127.0.0.1"),
        "host_vars servers on node3:\n{node3}"
    );
    assert_eq!(
        broken.run(&["dpkg-query", "-W", "openntpd"]).code,
        1,
        "nothing was installed on the broken host"
    );

    // 2. A second run changes nothing anywhere.
    let good = "ntp:!broken";
    let (code, out) = fleet.playbook(&inventory, "fleet.yml", &["--limit", good]);
    assert_eq!(code, 0);
    let r = recap(&out);
    for name in &names[..3] {
        assert_eq!(
            (
                count(&r, name, "ok"),
                count(&r, name, "changed"),
                count(&r, name, "failed")
            ),
            (3, 0, 0),
            "{name} (argument check, converge, status): {r:?}"
        );
    }

    // 2b. A wrong role variable fails on the role's argument spec, before any
    // task of the role runs: the node is untouched.
    let snap = nodes[0].snapshot();
    let (code, out) = fleet.playbook(
        &inventory,
        "fleet.yml",
        &["--limit", "node1", "-e", "ntp_daemon=ntimed"],
    );
    assert_ne!(code, 0, "{out}");
    assert_argument_spec_failure(&out);
    assert_eq!(
        nodes[0].snapshot(),
        snap,
        "a refused variable changed node1"
    );

    // 3. Drift by hand, then --check --diff: the diffs show, nothing changes.
    let mut before = Vec::new();
    for (node, name) in nodes[..3].iter().zip(names) {
        let conf = node.read(OPENNTPD_CONF).unwrap();
        node.write(
            OPENNTPD_CONF,
            &format!("{conf}# drifted by hand on {name}\n"),
        );
        before.push((
            node.read(OPENNTPD_CONF).unwrap(),
            node.snapshot(),
            node.unit_property("openntpd", "MainPID"),
        ));
    }
    let (code, out) = fleet.playbook(
        &inventory,
        "fleet.yml",
        &["--limit", good, "--check", "--diff"],
    );
    assert_eq!(code, 0);
    let r = recap(&out);
    for (i, name) in names[..3].iter().enumerate() {
        assert_eq!(count(&r, name, "changed"), 1, "{name} would change: {r:?}");
        assert!(
            out.contains(&format!("-# drifted by hand on {name}")),
            "the diff for {name} is in Ansible's output"
        );
        let node = &nodes[i];
        let (conf, snap, pid) = &before[i];
        assert_eq!(
            &node.read(OPENNTPD_CONF).unwrap(),
            conf,
            "{name}: check mode changed the config"
        );
        assert_eq!(
            &node.snapshot(),
            snap,
            "{name}: check mode changed the node"
        );
        assert_eq!(
            &node.unit_property("openntpd", "MainPID"),
            pid,
            "{name}: check mode restarted the daemon"
        );
    }
    assert!(
        out.contains(&format!("--- before: {OPENNTPD_CONF}"))
            && out.contains(&format!("+++ after: {OPENNTPD_CONF} (planned)")),
        "{out}"
    );

    // 4. The canary rollout: the broken host goes first and stops the rollout there.
    let canary_inventory = fleet.inventory(
        &[
            ("broken", addrs[3]),
            ("node1", addrs[0]),
            ("node2", addrs[1]),
        ],
        &[],
    );
    let (code, out) = fleet.playbook(&canary_inventory, "fleet-canary.yml", &[]);
    assert_ne!(code, 0);
    let r = recap(&out);
    assert_eq!(count(&r, "broken", "failed"), 1, "{r:?}");
    assert!(
        !r.contains_key("node1") && !r.contains_key("node2"),
        "the rollout stopped after the canary: {r:?}"
    );
    assert!(
        nodes[0]
            .read(OPENNTPD_CONF)
            .unwrap()
            .contains("# drifted by hand on node1"),
        "node1 untouched"
    );
    // Healthy hosts pass the canary's running check (sync check off: loopback servers never sync).
    let healthy = fleet.inventory(
        &[
            ("node1", addrs[0]),
            ("node2", addrs[1]),
            ("node3", addrs[2]),
        ],
        &[("node3", "ntp_servers: [\"::1\"]\n")],
    );
    let (code, out) = fleet.playbook(&healthy, "fleet-canary.yml", &["-v"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("openntpd.service is running, not synchronised"),
        "{out}"
    );
    // With the sync check on, one short try fails the canary and stops the rollout.
    let (code, out) = fleet.playbook(
        &healthy,
        "fleet-canary.yml",
        &[
            "-e",
            "ntp_require_sync=true",
            "-e",
            "ntp_sync_retries=1",
            "-e",
            "ntp_sync_delay=1",
        ],
    );
    assert_ne!(code, 0);
    let r = recap(&out);
    assert_eq!(r.len(), 1, "only the canary ran: {r:?}");

    // 4b. The oldest and the newest ansible-core the collection claims: a
    // drift on node1 is repaired, and the run after changes nothing.
    let one = fleet.inventory(&[("node1", addrs[0])], &[]);
    for version in ANSIBLE_EXTRA {
        let conf = nodes[0].read(OPENNTPD_CONF).unwrap();
        nodes[0].write(OPENNTPD_CONF, &format!("{conf}# drifted under {version}\n"));
        for changed in [1, 0] {
            let (code, out) = fleet.playbook_with(version, &one, "fleet.yml", &[]);
            assert_eq!(code, 0, "ansible-core {version}:\n{out}");
            let r = recap(&out);
            assert_eq!(
                (count(&r, "node1", "changed"), count(&r, "node1", "failed")),
                (changed, 0),
                "ansible-core {version}: {r:?}"
            );
        }
        assert_eq!(
            nodes[0].read(OPENNTPD_CONF).unwrap(),
            conf,
            "ansible-core {version} repaired the drift"
        );
    }

    // 5. Plain SSH: no terminal, plan on stdin, exit codes 2 then 0, JSON on stdout.
    let plan = fs::read_to_string(repo().join("playbooks/ntp.yaml")).unwrap();
    let plan = plan.replace("  daemon: ntp\n", "  daemon: openntpd\n");
    let plan = plan.replace("    - 0.ubuntu.pool.ntp.org\n    - 1.ubuntu.pool.ntp.org\n    - 2.ubuntu.pool.ntp.org\n    - 3.ubuntu.pool.ntp.org\n", "    - 127.0.0.1\n");
    assert!(
        plan.contains("daemon: openntpd") && !plan.contains("pool.ntp.org"),
        "the plan edit took:\n{plan}"
    );
    let argv = [
        "ntp-provision",
        "apply",
        "--format",
        "json",
        "--detailed-exitcodes",
        "-",
    ];
    for expected in [2, 0] {
        let out = fleet.ssh(addrs[1], &argv, plan.as_bytes());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(expected),
            "ssh ... {argv:?}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
        assert_eq!(doc["changed"], expected == 2);
        assert_eq!(doc["failed"], false);
    }
    let conf = nodes[1].read(OPENNTPD_CONF).unwrap();
    assert!(
        conf.contains("server 127.0.0.1\n") && !conf.contains("::1"),
        "{conf}"
    );
    // A failure is told apart too: an invalid plan is 65, with JSON.
    let out = fleet.ssh(addrs[1], &argv, b"steps: [oops\n");
    assert_eq!(out.status.code(), Some(65));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON")["failed"],
        true
    );
}
