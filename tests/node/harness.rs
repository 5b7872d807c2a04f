//! Real-node test harness: throwaway Debian nodes for end-to-end tests of the
//! `ntp-provision` binary.
//!
//! * [`Node::boot`] makes a fresh tree from a cached root-filesystem image and
//!   boots it with `systemd-nspawn --boot` (systemd as PID 1 inside) in the
//!   node's own network namespace.
//! * [`Node::chroot`] makes the same tree but runs no init: commands run
//!   under `chroot` (in the node's network namespace too), for the
//!   no-systemd (`service` / init.d) path.
//! * [`NetHost`] is a bare network namespace of the test network (no tree):
//!   a host on the network to probe the nodes from.
//!
//! The test network (see the `network` section below): each node has a
//! namespace `ntpp-<node>` with `eth0` at `10.123.0.N/24` (from .10 up, or
//! an address asked for with [`Node::boot_at`]), a veth into the host's
//! bridge `ntpp-br0` (10.123.0.1), and reaches the archive through NAT; its
//! loopback is its own. Nothing outside the test's own hosts can reach a
//! node's daemons. Everything of it is removed with the last node, and
//! what a killed run left is cleaned before the next one sets up.
//!
//! Images come from `scripts/node-image RELEASE` (cached under
//! `$NTPP_NODE_CACHE`, default `/var/tmp/ntp-provision/images`). Each image is
//! unpacked once into a pristine base tree under `/var/tmp/ntp-provision/base`
//! and each node is an overlayfs mount of it with its own upper directory, so
//! a node is ready in milliseconds; where overlayfs is unavailable, or with
//! `NTPP_NODE_UNPACK=1`, every node gets its own full unpack of the image.
//! Nodes live under `/var/tmp/ntp-provision/nodes/<release>-<pid>-<n>/root`;
//! dropping a [`Node`] stops every process of it, unmounts and removes the
//! tree (`NTPP_KEEP_NODES=1` keeps the tree for a post-mortem). Nodes left
//! behind by a killed test run are reaped the next time a node is made.
//! `NTPP_NODE_VERBOSE=1` prints each boot's time.
//!
//! The binary under test is `$NTPP_BIN`, else
//! `<repo>/target/x86_64-unknown-linux-gnu/release/ntp-provision`; it must be
//! statically linked (it runs on bullseye, bookworm and trixie alike).
//!
//! Requirements: root, `systemd-nspawn` (systemd-container), `debootstrap`,
//! `tar`, `mount`/`umount`, `chroot`, `nsenter`, `ip` (iproute2), `nft`
//! (nftables). Missing any of them is a
//! failure, never a skip. `scripts/test` installs what is needed.
//!
//! The test network (its addresses, the bridge, the NAT table) is one per
//! machine, so one test runs at a time: every test that makes a node takes
//! [`exclusive`] first, and the suite runs with `cargo test --test node --
//! --test-threads=1` (see `scripts/test`). Within a test, nodes may be
//! booted in parallel threads. Declare the guard before the node so the node drops
//! first:
//!
//! ```ignore
//! let _guard = harness::exclusive();
//! let node = harness::Node::boot(harness::Release::Bookworm);
//! node.ok(&["apt-get", "update"]);
//! ```

#![allow(dead_code)]

use serde_json::Value;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::hash::Hasher;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Where nodes are unpacked.
pub const NODES_DIR: &str = "/var/tmp/ntp-provision/nodes";
/// Default image cache; `$NTPP_NODE_CACHE` overrides it (as in scripts/node-image).
pub const DEFAULT_IMAGE_CACHE: &str = "/var/tmp/ntp-provision/images";
/// Default bound on one command run in a node.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Bound on a boot, from spawning systemd-nspawn to `systemctl is-system-running`.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on a clean poweroff in Drop before the node is killed.
pub const POWEROFF_TIMEOUT: Duration = Duration::from_secs(20);
/// Path of the binary under test inside a node.
pub const NODE_BIN: &str = "/usr/local/bin/ntp-provision";
/// PATH of commands run in a node (they get `env -i`: this and `LC_ALL=C` only).
pub const NODE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const BUILD_HINT: &str = "RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu";

extern "C" {
    fn geteuid() -> u32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn __libc_current_sigrtmin() -> i32;
    fn flock(fd: i32, operation: i32) -> i32;
    fn atexit(f: extern "C" fn()) -> i32;
}
const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Release {
    Bullseye,
    Bookworm,
    Trixie,
}

impl Release {
    pub const ALL: [Release; 3] = [Release::Bullseye, Release::Bookworm, Release::Trixie];

    pub fn name(&self) -> &'static str {
        match self {
            Release::Bullseye => "bullseye",
            Release::Bookworm => "bookworm",
            Release::Trixie => "trixie",
        }
    }

    /// Major Debian version: 11, 12, 13.
    pub fn version(&self) -> u32 {
        match self {
            Release::Bullseye => 11,
            Release::Bookworm => 12,
            Release::Trixie => 13,
        }
    }
}

/// What a command run in a node did. `code` is the exit status, or 128+N when
/// it was killed by signal N (as a shell reports it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// The global lock every test that holds a node takes first (before making the
/// node, so the node is dropped before the lock is released). A panic in a
/// test that held it does not poison it for the others.
///
/// Across processes: the first call also takes an exclusive `flock` on
/// [`PROCESS_LOCK`], held until this test process exits, so two node-test
/// processes on one machine (two developers' `cargo test`, say) run one after
/// the other instead of fighting over the test network (and, with an older
/// harness on the host network, UDP 123). It waits at most
/// [`PROCESS_LOCK_WAIT`], then panics naming the holder.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    process_lock();
    guard
}

/// The cross-process lock file of [`exclusive`].
pub const PROCESS_LOCK: &str = "/var/tmp/ntp-provision/node-tests.lock";
/// How long [`exclusive`] waits for another node-test process.
pub const PROCESS_LOCK_WAIT: Duration = Duration::from_secs(30 * 60);

fn process_lock() {
    static HELD: std::sync::OnceLock<fs::File> = std::sync::OnceLock::new();
    static GAVE_UP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if HELD.get().is_none() && GAVE_UP.load(Ordering::Relaxed) {
        panic!("another node-test process holds {PROCESS_LOCK} (gave up waiting earlier)");
    }
    HELD.get_or_init(|| {
        const LOCK_EX: i32 = 2;
        const LOCK_NB: i32 = 4;
        fs::create_dir_all(Path::new(PROCESS_LOCK).parent().unwrap()).expect("create lock dir");
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(PROCESS_LOCK)
            .unwrap_or_else(|e| panic!("open {PROCESS_LOCK}: {e}"));
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&file);
        let start = Instant::now();
        let mut told = false;
        while unsafe { flock(fd, LOCK_EX | LOCK_NB) } != 0 {
            let holder = fs::read_to_string(PROCESS_LOCK).unwrap_or_default();
            let holder = holder.trim();
            if start.elapsed() > PROCESS_LOCK_WAIT {
                GAVE_UP.store(true, Ordering::Relaxed);
                panic!("another node-test process ({holder}) has held {PROCESS_LOCK} for over {PROCESS_LOCK_WAIT:?}");
            }
            if !told {
                eprintln!("[harness] waiting for another node-test process ({holder}) holding {PROCESS_LOCK}");
                told = true;
            }
            sleep(Duration::from_millis(500));
        }
        let _ = file.set_len(0);
        let _ = (&file).write_all(format!("pid {}\n", std::process::id()).as_bytes());
        file
    });
}

enum Kind {
    /// systemd-nspawn --boot; `leader` is the container's PID 1 as seen from the host.
    Nspawn { child: Child, leader: ProcId },
    /// A plain chroot with /proc, /sys, /dev, /dev/pts bind-mounted in.
    Chroot,
}

/// A process identity that survives PID reuse: pid plus start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ProcId {
    pid: u32,
    start: u64,
}

impl ProcId {
    fn of(pid: u32) -> Option<ProcId> {
        Some(ProcId {
            pid,
            start: proc_stat(pid)?.1,
        })
    }
    fn alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((_, start, state)) if start == self.start && state != 'Z')
    }
    fn kill(&self, sig: i32) {
        if self.alive() {
            unsafe {
                kill(self.pid as i32, sig);
            }
        }
    }
    fn parse(s: &str) -> Option<ProcId> {
        let mut it = s.split_whitespace();
        Some(ProcId {
            pid: it.next()?.parse().ok()?,
            start: it.next()?.parse().ok()?,
        })
    }
    fn render(&self) -> String {
        format!("{} {}\n", self.pid, self.start)
    }
}

pub struct Node {
    release: Release,
    /// The node's own network namespace and address (see [`NetLease`]);
    /// dropped after the node's processes are gone (fields drop after `drop`).
    net: NetLease,
    /// nodes/<name>: holds `root/` (the node's tree), `console.log`, `io/` and pid files.
    dir: PathBuf,
    root: PathBuf,
    kind: Kind,
    timeout: Duration,
    seq: AtomicUsize,
}

impl Node {
    /// Unpack a fresh copy of the cached image, boot it with systemd-nspawn,
    /// wait (at most [`BOOT_TIMEOUT`]) until systemd is up ("running" or
    /// "degraded"), and copy the binary under test to [`NODE_BIN`] inside.
    pub fn boot(release: Release) -> Node {
        Node::boot_with(release, None)
    }

    /// [`Node::boot`] with the node at `addr` in the test network (panics
    /// when the address is outside it or taken). Tests that need a node in a
    /// given part of the network (inside or outside a `clients` prefix) use it.
    pub fn boot_at(release: Release, addr: Ipv4Addr) -> Node {
        Node::boot_with(release, Some(addr))
    }

    fn boot_with(release: Release, addr: Option<Ipv4Addr>) -> Node {
        preflight();
        let bin = binary_under_test();
        let (dir, root) = unpack(release);
        let net = NetLease::new(Some(&dir), addr).unwrap_or_else(|e| {
            remove_tree(&dir);
            panic!("{e}")
        });
        use_archive_proxy(&root).unwrap_or_else(|e| {
            remove_tree(&dir);
            panic!("{e}")
        });
        let console = dir.join("console.log");
        let log = fs::File::create(&console).expect("create console log");
        let machine = dir.file_name().unwrap().to_string_lossy().into_owned();
        let started = Instant::now();
        let mut cmd = Command::new("systemd-nspawn");
        cmd.arg("-D")
            .arg(&root)
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--capability=CAP_SYS_TIME",
            ])
            // The image's /etc/resolv.conf replaced by a copy of the host's
            // resolvers (those the test network's NAT lets through).
            .arg(format!("--resolv-conf={}", resolv_conf().1))
            .arg(format!("--network-namespace-path={}", net.netns_path()))
            .arg(format!("--machine=ntpp-{machine}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| {
            remove_tree(&dir);
            panic!("cannot spawn systemd-nspawn: {e}")
        });
        let nspawn = ProcId::of(child.id()).unwrap_or(ProcId {
            pid: child.id(),
            start: 0,
        });
        let _ = fs::write(dir.join("nspawn.pid"), nspawn.render());
        // From here on a panic drops the Node, which powers it off and removes it.
        let mut node = Node {
            release,
            net,
            dir,
            root,
            kind: Kind::Nspawn {
                child,
                leader: ProcId { pid: 0, start: 0 },
            },
            timeout: DEFAULT_TIMEOUT,
            seq: AtomicUsize::new(0),
        };
        let deadline = started + BOOT_TIMEOUT;
        let leader = node.wait_leader(deadline);
        let _ = fs::write(node.dir.join("leader.pid"), leader.render());
        if let Kind::Nspawn { leader: l, .. } = &mut node.kind {
            *l = leader;
        }
        node.wait_running(deadline);
        node.install_binary(&bin);
        if std::env::var_os("NTPP_NODE_VERBOSE").is_some() {
            eprintln!(
                "[harness] {} booted in {:.1?}",
                node.name(),
                started.elapsed()
            );
        }
        node
    }

    /// The same tree without init: a plain chroot with the host's /proc, /sys,
    /// /dev and /dev/pts bind-mounted in and the host's resolv.conf copied
    /// ([`resolv_conf`]); every command runs in the node's network namespace.
    /// Daemons started inside run as host processes rooted in the tree; Drop
    /// kills every one of them.
    pub fn chroot(release: Release) -> Node {
        preflight();
        let bin = binary_under_test();
        let (dir, root) = unpack(release);
        let net = NetLease::new(Some(&dir), None).unwrap_or_else(|e| {
            remove_tree(&dir);
            panic!("{e}")
        });
        use_archive_proxy(&root).unwrap_or_else(|e| {
            remove_tree(&dir);
            panic!("{e}")
        });
        let node = Node {
            release,
            net,
            dir,
            root,
            kind: Kind::Chroot,
            timeout: DEFAULT_TIMEOUT,
            seq: AtomicUsize::new(0),
        };
        for m in ["proc", "sys", "dev", "dev/pts"] {
            let target = node.root.join(m);
            fs::create_dir_all(&target).expect("mount point");
            let status = Command::new("mount")
                .arg("--bind")
                .arg(format!("/{m}"))
                .arg(&target)
                .status()
                .expect("run mount");
            assert!(
                status.success(),
                "mount --bind /{m} {} failed: {status}",
                target.display()
            );
        }
        let resolv = node.root.join("etc/resolv.conf");
        let _ = fs::remove_file(&resolv);
        fs::copy(resolv_conf().0, &resolv).expect("copy the host's resolv.conf into the chroot");
        node.install_binary(&bin);
        node
    }

    pub fn release(&self) -> Release {
        self.release
    }

    /// `<release>-<pid>-<n>`: the node's directory name under [`NODES_DIR`].
    pub fn name(&self) -> String {
        self.dir.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// The node's address in the test network ([`NET_CIDR`]).
    pub fn addr(&self) -> Ipv4Addr {
        self.net.addr()
    }

    /// The name of the node's network namespace (`ip netns`).
    pub fn netns(&self) -> &str {
        self.net.netns()
    }

    pub fn is_chroot(&self) -> bool {
        matches!(self.kind, Kind::Chroot)
    }

    /// Change the bound on each later `run*` call (default [`DEFAULT_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Run argv inside the node (`env -i PATH=... LC_ALL=C argv...`), stdin
    /// empty. Panics with the command if it outlives the timeout (it is
    /// killed, with its whole process group, first).
    pub fn run(&self, argv: &[&str]) -> Out {
        self.run_full(argv, b"", self.timeout)
    }

    pub fn run_stdin(&self, argv: &[&str], stdin: &[u8]) -> Out {
        self.run_full(argv, stdin, self.timeout)
    }

    pub fn run_timeout(&self, argv: &[&str], timeout: Duration) -> Out {
        self.run_full(argv, b"", timeout)
    }

    /// Like [`Node::run`] but panics with status, stdout and stderr unless it exits 0.
    /// `apt-get -q -y ARGS` in the node, non-interactive; must succeed.
    /// Tests use it to put a node in a starting state (never the tool under test).
    pub fn apt_get(&self, args: &[&str]) -> Out {
        self.ok(&apt_get_argv(args))
    }

    pub fn ok(&self, argv: &[&str]) -> Out {
        let out = self.run(argv);
        if out.code != 0 {
            panic!(
                "command failed in node {}: {:?}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.name(),
                argv,
                out.code,
                out.stdout,
                out.stderr
            );
        }
        out
    }

    /// Run argv from the node's tree (its installed programs: ntpq, chronyc)
    /// but in `host`'s network namespace: a client of the node's own
    /// packages on another host of the test network. Booted nodes only.
    pub fn run_from(&self, host: &NetHost, argv: &[&str]) -> Out {
        let Kind::Nspawn { leader, .. } = &self.kind else {
            panic!("run_from needs a booted node, not a chroot");
        };
        let pid = leader.pid.to_string();
        let path = format!("PATH={NODE_PATH}");
        let mut full = vec!["nsenter", "-t", &pid, "-m", "-u", "-i", "--"];
        full.extend(["env", "-i", &path, "LC_ALL=C"]);
        full.extend_from_slice(argv);
        host.run(&full, self.timeout)
    }

    /// Run the binary under test inside: `ntp-provision ARGS`.
    pub fn provision(&self, args: &[&str]) -> Out {
        let mut argv = vec![NODE_BIN];
        argv.extend_from_slice(args);
        self.run(&argv)
    }

    /// One property of a unit (`systemctl show -p PROP --value UNIT`), trimmed.
    pub fn unit_property(&self, unit: &str, property: &str) -> String {
        self.ok(&["systemctl", "show", "-p", property, "--value", unit])
            .stdout
            .trim()
            .to_string()
    }

    /// dpkg's two- or three-letter state of a package (`ii`, `rc`, `iU`, ...),
    /// empty when dpkg does not know it.
    pub fn dpkg_abbrev(&self, package: &str) -> String {
        self.run(&["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package])
            .stdout
            .trim()
            .to_string()
    }

    /// The version of `package` dpkg has (installed, or its config files
    /// left), empty when dpkg does not know it.
    pub fn installed_version(&self, package: &str) -> String {
        self.run(&["dpkg-query", "-W", "-f=${Version}", package])
            .stdout
            .trim()
            .to_string()
    }

    /// The version apt would install of `package` from the node's lists
    /// (`apt-cache policy`'s candidate): what a test expects from the
    /// archive, read from the archive, so a point release changes both
    /// alike. Panics when the node's lists do not have it (never updated?).
    pub fn candidate(&self, package: &str) -> String {
        let out = self.ok(&["apt-cache", "policy", package]);
        let candidate = out
            .stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Candidate:"))
            .map(str::trim)
            .unwrap_or_default();
        if candidate.is_empty() || candidate == "(none)" {
            panic!(
                "node {}: no candidate for {package} in its lists (apt-get update first):\n{}",
                self.name(),
                out.stdout
            );
        }
        candidate.to_string()
    }

    /// `ntp-provision apply -e SERVERS --format json EXTRA...` and its JSON report.
    pub fn apply_json(&self, extra: &[&str]) -> (Out, Value) {
        let mut args = vec!["apply", "-e", SERVERS, "--format", "json"];
        args.extend_from_slice(extra);
        let out = self.provision(&args);
        let doc = json(&out);
        (out, doc)
    }

    /// The run after a converge (`apply_json` with EXTRA and
    /// `--detailed-exitcodes`): it must exit 0 and change nothing.
    pub fn rerun_clean(&self, extra: &[&str]) -> (Out, Value) {
        let mut args = extra.to_vec();
        args.push("--detailed-exitcodes");
        let (out, doc) = self.apply_json(&args);
        assert_eq!(
            out.code,
            0,
            "{}: the run after `apply {}` is not clean:\n{}\n{}",
            self.name(),
            extra.join(" "),
            out.stdout,
            out.stderr
        );
        assert_eq!(doc["summary"]["changed"], 0, "{}", out.stdout);
        (out, doc)
    }

    /// Host-side path of a path inside the node (the on-disk tree: inside a
    /// booted node, /run, /tmp, /proc, /sys and /dev are container mounts that
    /// this does not see; use `run(["cat", ...])` for those). Symlinks are NOT
    /// resolved: prefer [`Node::read`]/[`Node::write`], which resolve them
    /// inside the node.
    pub fn path(&self, p: &str) -> PathBuf {
        let rel = p.trim_start_matches('/');
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// Contents of a file of the node (symlinks resolved inside the node), or
    /// None if it does not exist. Panics on other errors.
    pub fn read(&self, p: &str) -> Option<String> {
        let host = self.resolve(p);
        match fs::read(&host) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("read {p} in node {} ({}): {e}", self.name(), host.display()),
        }
    }

    /// Write a file of the node (symlinks resolved inside the node), creating
    /// missing parent directories. A new file gets mode 0644.
    pub fn write(&self, p: &str, content: &str) {
        let host = self.resolve(p);
        if let Some(parent) = host.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
        }
        fs::write(&host, content).unwrap_or_else(|e| {
            panic!(
                "write {p} in node {} ({}): {e}",
                self.name(),
                host.display()
            )
        });
    }

    /// A fingerprint of the node's state for "nothing changed" assertions:
    /// * `file:/var/lib/dpkg/status` and `dpkg:<package>` (version and status
    ///   of each package),
    /// * `file:<path>` / `link:<path>` / `dir:<path>` for everything under /etc
    ///   and /var/lib/apt/lists: size, mode, owner, mtime (ns) and a content
    ///   hash for files; the target for symlinks; mode and owner for
    ///   directories (not their mtime, so adding a file changes one key).
    ///
    /// Compare two with `assert_eq!` or [`snapshot_diff`].
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        let status = self.path("/var/lib/dpkg/status");
        if let Ok(meta) = fs::symlink_metadata(&status) {
            map.insert(
                "file:/var/lib/dpkg/status".into(),
                describe_file(&status, &meta),
            );
        }
        if let Ok(text) = fs::read_to_string(&status) {
            for (pkg, value) in dpkg_packages(&text) {
                map.insert(format!("dpkg:{pkg}"), value);
            }
        }
        // /var/lib/apt: the lists, extended_states and periodic stamps;
        // /var/cache/apt: apt's binary caches and downloaded packages.
        for top in ["/etc", "/var/lib/apt", "/var/cache/apt"] {
            self.walk(top, &mut map);
        }
        map
    }

    /// [`Node::snapshot`] plus `proc:<command line>` → count, for every process
    /// running in the node. Transient on-demand services (systemd-hostnamed,
    /// systemd-timedated...) come and go by themselves, so use it with care.
    pub fn snapshot_with_processes(&self) -> BTreeMap<String, String> {
        let mut map = self.snapshot();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for pid in self.processes() {
            if let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) {
                if raw.is_empty() {
                    continue; // kernel thread or exiting
                }
                let cmd = raw
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ");
                *counts.entry(cmd).or_default() += 1;
            }
        }
        for (cmd, n) in counts {
            map.insert(format!("proc:{cmd}"), n.to_string());
        }
        map
    }

    /// Host PIDs of the processes running in the node.
    pub fn processes(&self) -> Vec<u32> {
        match &self.kind {
            Kind::Nspawn { leader, .. } => {
                let Ok(ns) = fs::read_link(format!("/proc/{}/ns/pid", leader.pid)) else {
                    return Vec::new();
                };
                all_pids()
                    .into_iter()
                    .filter(|pid| {
                        fs::read_link(format!("/proc/{pid}/ns/pid")).ok().as_ref() == Some(&ns)
                    })
                    .collect()
            }
            Kind::Chroot => rooted_in(&self.root),
        }
    }

    // ---------------------------------------------------------------- internals

    fn run_full(&self, argv: &[&str], stdin: &[u8], timeout: Duration) -> Out {
        assert!(!argv.is_empty(), "Node::run: empty argv");
        let io = self.dir.join("io");
        fs::create_dir_all(&io).expect("node io dir");
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let (in_p, out_p, err_p) = (
            io.join(format!("{n}.in")),
            io.join(format!("{n}.out")),
            io.join(format!("{n}.err")),
        );
        fs::write(&in_p, stdin).expect("write stdin file");
        // Files, not pipes: a daemon the command leaves running may keep its
        // stdout open, and that must not hang the test.
        let mut cmd = match &self.kind {
            Kind::Nspawn { leader, .. } => {
                let mut c = Command::new("nsenter");
                c.args(["-t", &leader.pid.to_string(), "-a", "--"]);
                c
            }
            Kind::Chroot => {
                // The chroot's processes live in the node's network namespace.
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", self.net.netns_path()))
                    .args(["--", "chroot"])
                    .arg(&self.root);
                c
            }
        };
        cmd.args(["env", "-i", &format!("PATH={NODE_PATH}"), "LC_ALL=C"])
            .args(argv)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(fs::File::open(&in_p).unwrap())
            .stdout(fs::File::create(&out_p).unwrap())
            .stderr(fs::File::create(&err_p).unwrap())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?} for node {}: {e}", cmd, self.name()));
        let status = match wait_timeout(&mut child, timeout) {
            Some(status) => status,
            None => {
                let pgid = child.id() as i32;
                let hung = descendants(child.id());
                unsafe {
                    kill(-pgid, SIGKILL);
                }
                let _ = child.wait();
                let out =
                    String::from_utf8_lossy(&fs::read(&out_p).unwrap_or_default()).into_owned();
                let err =
                    String::from_utf8_lossy(&fs::read(&err_p).unwrap_or_default()).into_owned();
                panic!(
                    "command timed out after {timeout:?} in node {} and was killed: {argv:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- its processes when it was killed ---\n{hung}",
                    self.name(),
                    tail(&out, 60),
                    tail(&err, 60)
                );
            }
        };
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let read =
            |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
        let out = Out {
            code,
            stdout: read(&out_p),
            stderr: read(&err_p),
        };
        for p in [&in_p, &out_p, &err_p] {
            let _ = fs::remove_file(p);
        }
        out
    }

    fn console_tail(&self) -> String {
        let text = fs::read(self.dir.join("console.log")).unwrap_or_default();
        tail(&String::from_utf8_lossy(&text), 40)
    }

    fn nspawn_exited(&mut self) -> Option<ExitStatus> {
        match &mut self.kind {
            Kind::Nspawn { child, .. } => child.try_wait().ok().flatten(),
            Kind::Chroot => None,
        }
    }

    /// The container's PID 1: the child of systemd-nspawn, once it runs systemd.
    fn wait_leader(&mut self, deadline: Instant) -> ProcId {
        let nspawn_pid = match &self.kind {
            Kind::Nspawn { child, .. } => child.id(),
            Kind::Chroot => unreachable!(),
        };
        loop {
            if let Some(status) = self.nspawn_exited() {
                panic!(
                    "systemd-nspawn exited ({status}) while booting node {}\n--- console tail ---\n{}",
                    self.name(),
                    self.console_tail()
                );
            }
            for pid in all_pids() {
                if matches!(proc_stat(pid), Some((ppid, _, _)) if ppid == nspawn_pid) {
                    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                    if comm.trim() == "systemd" || exe.to_string_lossy().ends_with("/systemd") {
                        if let Some(id) = ProcId::of(pid) {
                            return id;
                        }
                    }
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "node {} did not start systemd within {BOOT_TIMEOUT:?}\n--- console tail ---\n{}",
                    self.name(),
                    self.console_tail()
                );
            }
            sleep(Duration::from_millis(50));
        }
    }

    fn wait_running(&mut self, deadline: Instant) {
        let mut last = String::new();
        loop {
            if let Some(status) = self.nspawn_exited() {
                panic!(
                    "systemd-nspawn exited ({status}) while booting node {}\n--- console tail ---\n{}",
                    self.name(),
                    self.console_tail()
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "node {} did not finish booting within {BOOT_TIMEOUT:?} (last `systemctl is-system-running`: {last})\n--- console tail ---\n{}",
                    self.name(),
                    self.console_tail()
                );
            }
            // `timeout` inside bounds the wait without tripping run's panic.
            let secs = left.as_secs().max(1).to_string();
            let out = self.run_full(
                &["timeout", &secs, "systemctl", "is-system-running", "--wait"],
                b"",
                left + Duration::from_secs(10),
            );
            let state = out.stdout.trim().to_string();
            match state.as_str() {
                "running" | "degraded" => return,
                _ => {
                    last = format!(
                        "exit {} stdout {:?} stderr {:?}",
                        out.code,
                        state,
                        out.stderr.trim()
                    );
                    sleep(Duration::from_millis(200));
                }
            }
        }
    }

    fn install_binary(&self, bin: &Path) {
        let dest = self.path(NODE_BIN);
        fs::create_dir_all(dest.parent().unwrap()).expect("mkdir /usr/local/bin in node");
        fs::copy(bin, &dest)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", bin.display(), dest.display()));
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))
            .expect("chmod binary under test");
    }

    /// Host path of `p` with symlinks resolved inside the node's root.
    fn resolve(&self, p: &str) -> PathBuf {
        let mut todo: Vec<OsString> = Path::new(p)
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .rev()
            .collect();
        let mut cur: Vec<OsString> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                cur.pop();
                continue;
            }
            cur.push(c);
            let host = cur.iter().fold(self.root.clone(), |acc, c| acc.join(c));
            if let Ok(target) = fs::read_link(&host) {
                hops += 1;
                assert!(
                    hops < 40,
                    "too many symlinks resolving {p} in node {}",
                    self.name()
                );
                cur.pop();
                if target.is_absolute() {
                    cur.clear();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(s) => todo.push(s.to_os_string()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
            }
        }
        cur.iter().fold(self.root.clone(), |acc, c| acc.join(c))
    }

    fn walk(&self, inside: &str, map: &mut BTreeMap<String, String>) {
        let host = self.path(inside);
        let Ok(meta) = fs::symlink_metadata(&host) else {
            return;
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&host).unwrap_or_default();
            map.insert(
                format!("link:{inside}"),
                format!(
                    "-> {} uid={} gid={}",
                    target.display(),
                    meta.uid(),
                    meta.gid()
                ),
            );
        } else if ft.is_dir() {
            map.insert(
                format!("dir:{inside}"),
                format!(
                    "mode={:o} uid={} gid={}",
                    meta.mode() & 0o7777,
                    meta.uid(),
                    meta.gid()
                ),
            );
            let mut names: Vec<_> = match fs::read_dir(&host) {
                Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect(),
                Err(_) => return,
            };
            names.sort();
            for n in names {
                self.walk(
                    &format!("{}/{}", inside.trim_end_matches('/'), n.to_string_lossy()),
                    map,
                );
            }
        } else if ft.is_file() {
            map.insert(format!("file:{inside}"), describe_file(&host, &meta));
        } else {
            map.insert(
                format!("other:{inside}"),
                format!("mode={:o} rdev={}", meta.mode(), meta.rdev()),
            );
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let name = self.name();
        match &mut self.kind {
            Kind::Nspawn { child, leader } => {
                let leader = *leader;
                stop_nspawn(child, leader, &name);
            }
            Kind::Chroot => {}
        }
        kill_rooted(&self.root);
        // Nothing runs in the namespace any more: remove it with its veth.
        self.net.release();
        if std::env::var_os("NTPP_KEEP_NODES").is_some() {
            unmount_under(&self.dir);
            eprintln!("[harness] NTPP_KEEP_NODES: keeping {}", self.dir.display());
            return;
        }
        remove_tree(&self.dir);
    }
}

/// Keys whose values differ between two snapshots (present in one only, or changed).
pub fn snapshot_diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

// ------------------------------------------------------------------- helpers

fn preflight() {
    if unsafe { geteuid() } != 0 {
        panic!("the node tests need root (they unpack images, mount, chroot and run systemd-nspawn): run scripts/test as root");
    }
    for (tool, package) in [
        ("systemd-nspawn", "systemd-container"),
        ("debootstrap", "debootstrap"),
        ("nsenter", "util-linux"),
        ("tar", "tar"),
        ("mount", "mount"),
        ("chroot", "coreutils"),
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("apt-cacher-ng", "apt-cacher-ng"),
    ] {
        if which(tool).is_none() {
            panic!("`{tool}` not found: the node tests need it (apt-get install {package}; scripts/test installs it)");
        }
    }
    static REAP: Once = Once::new();
    REAP.call_once(reap_stale_nodes);
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(tool))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// The binary under test: `$NTPP_BIN`, else the static release build.
pub fn binary_under_test() -> PathBuf {
    let bin = match std::env::var_os("NTPP_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/x86_64-unknown-linux-gnu/release/ntp-provision"),
    };
    let meta = fs::metadata(&bin).unwrap_or_else(|e| {
        panic!(
            "binary under test {} not found ({e}): build it with\n    {BUILD_HINT}\nor set NTPP_BIN (scripts/test does both)",
            bin.display()
        )
    });
    assert!(
        meta.is_file() && meta.mode() & 0o111 != 0,
        "binary under test {} is not an executable file",
        bin.display()
    );
    if has_interpreter(&bin) {
        panic!(
            "binary under test {} is dynamically linked; the nodes (bullseye..trixie) need a static one:\n    {BUILD_HINT}",
            bin.display()
        );
    }
    bin
}

/// True if the ELF file has a PT_INTERP program header (dynamically linked).
fn has_interpreter(path: &Path) -> bool {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(_) => return false,
    };
    let mut buf = Vec::new();
    if Read::by_ref(&mut f)
        .take(1 << 20)
        .read_to_end(&mut buf)
        .is_err()
        || buf.len() < 64
        || &buf[..4] != b"\x7fELF"
    {
        return false; // not ELF (a script?): let it fail inside if it must
    }
    if buf[4] != 2 || buf[5] != 1 {
        return false; // only 64-bit little-endian is inspected
    }
    let u16_at = |o: usize| u16::from_le_bytes([buf[o], buf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(buf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        o + 4 <= buf.len() && u32::from_le_bytes(buf[o..o + 4].try_into().unwrap()) == 3
        // PT_INTERP
    })
}

fn image_cache() -> PathBuf {
    std::env::var_os("NTPP_NODE_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_IMAGE_CACHE))
}

/// A fresh node tree from the release's image in a new nodes/<name>/root;
/// returns (dir, root).
///
/// The image is unpacked once into a pristine base tree
/// (`/var/tmp/ntp-provision/base/<release>-<image mtime>-<size>`), and each
/// node is an overlay mount of it (the node's writes go to nodes/<name>/upper):
/// a node is ready in milliseconds instead of seconds of tar. Where overlayfs
/// is not available (or with `NTPP_NODE_UNPACK=1`) each node gets its own full
/// unpack instead. Either way every node starts from the image as built.
fn unpack(release: Release) -> (PathBuf, PathBuf) {
    let image = image_cache().join(format!("{}.tar.gz", release.name()));
    let image_meta = fs::metadata(&image).unwrap_or_else(|_| {
        panic!(
            "no cached {rel} image at {}: build it first with (as root)\n    scripts/node-image {rel}",
            image.display(),
            rel = release.name()
        )
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/node-image");
    if let (Ok(s), Ok(i)) = (
        fs::metadata(&script).and_then(|m| m.modified()),
        image_meta.modified(),
    ) {
        if s > i {
            eprintln!("[harness] warning: {} is older than scripts/node-image: rerun scripts/node-image {}", image.display(), release.name());
        }
    }
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    fs::create_dir_all(NODES_DIR).expect("create nodes dir");
    let dir = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let d = Path::new(NODES_DIR).join(format!("{}-{}-{n}", release.name(), std::process::id()));
        match fs::create_dir(&d) {
            Ok(()) => break d,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create {}: {e}", d.display()),
        }
    };
    let me = ProcId::of(std::process::id()).expect("own /proc entry");
    fs::write(dir.join("owner.pid"), me.render()).expect("write owner.pid");
    let root = dir.join("root");
    fs::create_dir(&root).expect("create node root");

    static NO_OVERLAY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let want_overlay =
        std::env::var_os("NTPP_NODE_UNPACK").is_none_or(|v| v.is_empty() || v == "0");
    if want_overlay && !NO_OVERLAY.load(Ordering::Relaxed) {
        let base = base_tree(release, &image, &image_meta).unwrap_or_else(|e| {
            remove_tree(&dir);
            panic!("{e}")
        });
        let (upper, work) = (dir.join("upper"), dir.join("work"));
        fs::create_dir(&upper).expect("create overlay upper dir");
        fs::create_dir(&work).expect("create overlay work dir");
        // The merged root takes the upper dir's mode: it must be 755.
        fs::set_permissions(&upper, fs::Permissions::from_mode(0o755))
            .expect("chmod 755 overlay upper dir");
        let out = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                base.display(),
                upper.display(),
                work.display()
            ))
            .arg(&root)
            .stdin(Stdio::null())
            .output()
            .expect("run mount");
        if out.status.success() {
            return (dir, root);
        }
        eprintln!(
            "[harness] overlay mount failed ({}): unpacking a full copy of the image per node instead",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        NO_OVERLAY.store(true, Ordering::Relaxed);
    }
    if let Err(e) = untar(&image, &root) {
        remove_tree(&dir);
        panic!("{e}");
    }
    // A tree that is not world-readable breaks dbus and the boot hangs.
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod 755 node root");
    (dir, root)
}

fn untar(image: &Path, into: &Path) -> Result<(), String> {
    let out = Command::new("tar")
        .args([
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "-xzf",
        ])
        .arg(image)
        .arg("-C")
        .arg(into)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run tar: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "unpacking {} failed: {}\n{}",
            image.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The pristine unpacked tree of the image, made once per image version
/// (atomically: unpacked aside, then renamed). Older versions of it that no
/// overlay mount uses any more are removed.
fn base_tree(release: Release, image: &Path, meta: &fs::Metadata) -> Result<PathBuf, String> {
    // Nodes booted side by side in this process unpack a missing base once:
    // the temporary name is per process, not per thread.
    static UNPACKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = UNPACKING.lock().unwrap_or_else(|e| e.into_inner());
    let base_dir = Path::new(NODES_DIR).parent().unwrap().join("base");
    fs::create_dir_all(&base_dir).map_err(|e| format!("create {}: {e}", base_dir.display()))?;
    let prefix = format!("{}-", release.name());
    let name = format!(
        "{prefix}{}.{:09}-{}",
        meta.mtime(),
        meta.mtime_nsec(),
        meta.size()
    );
    let base = base_dir.join(&name);
    if !base.is_dir() {
        let tmp = base_dir.join(format!(".{name}.{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
        if let Err(e) = untar(image, &tmp) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod {}: {e}", tmp.display()))?;
        if fs::rename(&tmp, &base).is_err() {
            // Another test process made it first.
            let _ = fs::remove_dir_all(&tmp);
            if !base.is_dir() {
                return Err(format!("could not create base tree {}", base.display()));
            }
        }
    }
    // Drop stale versions (and leftovers of killed unpacks) nothing mounts.
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for entry in fs::read_dir(&base_dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
    {
        let n = entry.file_name().to_string_lossy().into_owned();
        let stale_version = n.starts_with(&prefix) && n != name;
        let stale_tmp = n.starts_with(&format!(".{prefix}"))
            && n.rsplit('.')
                .next()
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| fs::metadata(format!("/proc/{pid}")).is_err());
        if (stale_version || stale_tmp) && !mounts.contains(&*entry.path().to_string_lossy()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    Ok(base)
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Ask systemd in the container for a clean poweroff, then kill what is left.
fn stop_nspawn(child: &mut Child, leader: ProcId, name: &str) {
    if child.try_wait().ok().flatten().is_none() {
        unsafe {
            kill(child.id() as i32, __libc_current_sigrtmin() + 4);
        }
        if wait_timeout(child, POWEROFF_TIMEOUT).is_none() {
            eprintln!(
                "[harness] node {name} did not power off within {POWEROFF_TIMEOUT:?}: killing it"
            );
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    // Killing the PID namespace's init kills every process of the container.
    if leader.pid != 0 && leader.alive() {
        leader.kill(SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while leader.alive() && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
        if leader.alive() {
            eprintln!(
                "[harness] node {name}: container init {} survived SIGKILL",
                leader.pid
            );
        }
    }
}

/// (ppid, start time, state) from /proc/PID/stat.
fn proc_stat(pid: u32) -> Option<(u32, u64, char)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] = state (field 3), f[1] = ppid (4), f[19] = starttime (22)
    Some((
        f.get(1)?.parse().ok()?,
        f.get(19)?.parse().ok()?,
        f.first()?.chars().next()?,
    ))
}

fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// PIDs of host processes whose root directory is `root` (or below it).
fn rooted_in(root: &Path) -> Vec<u32> {
    let me = std::process::id();
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/root"))
                .map(|r| r.starts_with(root))
                .unwrap_or(false)
        })
        .collect()
}

/// SIGKILL every process rooted in `root` until none is left (bounded).
fn kill_rooted(root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = rooted_in(root);
        if pids.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            eprintln!(
                "[harness] processes rooted in {} survive SIGKILL: {pids:?}",
                root.display()
            );
            return;
        }
        for pid in pids {
            unsafe {
                kill(pid as i32, SIGKILL);
            }
        }
        sleep(Duration::from_millis(50));
    }
}

/// Mount points at or below `dir`, in mount-table order.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let table = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    table
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m.starts_with(dir))
        .collect()
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmount everything at or below `dir`, innermost first; lazily if busy.
fn unmount_under(dir: &Path) {
    for _ in 0..5 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for m in mounts.iter().rev() {
            let ok = Command::new("umount")
                .arg(m)
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(m)
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// Remove a node directory, never while anything is still mounted inside it
/// (remove_dir_all would recurse into the host's /dev, /proc or /sys).
fn remove_tree(dir: &Path) {
    unmount_under(dir);
    let left = mounts_under(dir);
    if !left.is_empty() {
        eprintln!(
            "[harness] NOT removing {}: still mounted inside: {left:?}",
            dir.display()
        );
        return;
    }
    if let Err(e) = fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("[harness] removing {}: {e}", dir.display());
        }
    }
}

/// Tear down nodes left by test processes that died without dropping them.
fn reap_stale_nodes() {
    let Ok(rd) = fs::read_dir(NODES_DIR) else {
        return;
    };
    for entry in rd.filter_map(|e| e.ok()) {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let read_id = |f: &str| {
            fs::read_to_string(dir.join(f))
                .ok()
                .and_then(|s| ProcId::parse(&s))
        };
        if matches!(read_id("owner.pid"), Some(owner) if owner.alive()) {
            continue; // another live test process owns it
        }
        eprintln!("[harness] reaping stale node {}", dir.display());
        if let Some(nspawn) = read_id("nspawn.pid") {
            nspawn.kill(SIGKILL);
        }
        if let Some(leader) = read_id("leader.pid") {
            leader.kill(SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(10);
            while leader.alive() && Instant::now() < deadline {
                sleep(Duration::from_millis(20));
            }
        }
        kill_rooted(&dir.join("root"));
        remove_tree(&dir);
    }
}

fn describe_file(path: &Path, meta: &fs::Metadata) -> String {
    let hash = match fs::File::open(path) {
        Ok(mut f) => {
            let mut h = DefaultHasher::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match f.read(&mut buf) {
                    Ok(0) => break format!("{:016x}", h.finish()),
                    Ok(n) => h.write(&buf[..n]),
                    Err(e) => break format!("unreadable({e})"),
                }
            }
        }
        Err(e) => format!("unreadable({e})"),
    };
    format!(
        "size={} mode={:o} uid={} gid={} mtime={}.{:09} hash={hash}",
        meta.size(),
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid(),
        meta.mtime(),
        meta.mtime_nsec()
    )
}

/// (package[:arch], "version status") for each stanza of dpkg's status file.
fn dpkg_packages(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_string())
        };
        if let Some(pkg) = field("Package") {
            let arch = field("Architecture").unwrap_or_default();
            let key = if arch.is_empty() || arch == "all" || arch == "amd64" {
                pkg
            } else {
                format!("{pkg}:{arch}")
            };
            out.push((
                key,
                format!(
                    "{} [{}]",
                    field("Version").unwrap_or_default(),
                    field("Status").unwrap_or_default()
                ),
            ));
        }
    }
    out
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ------------------------------------------------------------------- network
//
// Every node (booted or chroot) and every bare [`NetHost`] gets its own
// network namespace, joined to the host by a veth pair whose host end is a
// port of one test bridge:
//
//   host: bridge ntpp-br0 10.123.0.1/24 -- veth ntpp-vN -- netns ntpp-<node>: eth0 10.123.0.N/24, lo
//
// The nodes reach each other and the host over the bridge, and the archive
// through NAT (an nftables table of our own, `inet ntpp_test`): forwarded
// traffic from the test network may go out only to the host's resolvers
// (DNS) and to TCP ports 80 and 443 (apt), masqueraded; nothing from outside
// may come in except answers. So a test daemon is reachable only from the
// test's own hosts, and a daemon given a server outside (a pool name that
// resolves) cannot reach it (UDP 123 is not forwarded).
//
// The bridge, the table and IPv4 forwarding are shared by the process's live
// leases and torn down when the last one drops (IPv4 forwarding restored to
// what it was). [`NET_STATE`] records the owner and the forwarding setting
// before the change, so that what a killed run left behind (namespaces,
// veths, bridge, table, forwarding) is cleaned before the next run sets the
// network up.

/// The test network. It must not overlap an address or route of the host;
/// the setup refuses to run when it does.
pub const NET_CIDR: &str = "10.123.0.0/24";
/// The host's address on the test bridge (the nodes' default gateway).
pub const NET_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 123, 0, 1);
const NET_PREFIX: [u8; 3] = [10, 123, 0];
const NET_PREFIX_LEN: u8 = 24;
/// The host's bridge of the test network.
pub const NET_BRIDGE: &str = "ntpp-br0";
/// The nftables table (family inet) with the NAT and forwarding rules.
pub const NFT_TABLE: &str = "ntpp_test";
/// Owner of the test network and IPv4 forwarding before it was set up.
pub const NET_STATE: &str = "/var/tmp/ntp-provision/net.state";
/// Automatically assigned addresses: 10.123.0.10 and up. Lower ones (and any
/// free one) can be asked for with [`Node::boot_at`] / [`NetHost::new`].
const AUTO_FIRST: u8 = 10;
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
/// Every node's systemd, journald and logind take inotify instances of the
/// one root user: with twenty nodes at once the host's default of 128 runs
/// out, and a unit's PID file watch fails ("Too many open files": NTPsec's
/// Type=forking unit on Debian 11 then fails its start with 'protocol').
const INOTIFY_INSTANCES: &str = "/proc/sys/fs/inotify/max_user_instances";
/// What the test run raises [`INOTIFY_INSTANCES`] to, if it is lower.
const INOTIFY_INSTANCES_WANTED: u64 = 2048;

struct NetShared {
    users: usize,
    in_use: BTreeSet<u8>,
}

static NET: Mutex<NetShared> = Mutex::new(NetShared {
    users: 0,
    in_use: BTreeSet::new(),
});

fn net_lock() -> MutexGuard<'static, NetShared> {
    NET.lock().unwrap_or_else(|p| p.into_inner())
}

/// An address of the test network: `10.123.0.N`.
pub fn net_addr(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(NET_PREFIX[0], NET_PREFIX[1], NET_PREFIX[2], n)
}

/// One network namespace with a veth into the test bridge and one address.
/// Dropping it (or [`NetLease::release`]) deletes the veth and the namespace,
/// and with the process's last lease the bridge, the NAT and the forwarding.
pub struct NetLease {
    netns: String,
    veth: String,
    addr: Ipv4Addr,
    released: bool,
}

impl NetLease {
    /// A namespace `ntpp-<name of dir>` (or `ntpp-h<N>` without a node dir)
    /// at `want`, or the lowest free automatic address.
    fn new(dir: Option<&Path>, want: Option<Ipv4Addr>) -> Result<NetLease, String> {
        let octet = {
            let mut shared = net_lock();
            let octet = match want {
                Some(a) => {
                    let o = a.octets();
                    if o[..3] != NET_PREFIX || o[3] < 2 || o[3] == 255 {
                        return Err(format!("{a} is not a host address of the test network {NET_CIDR} (other than {NET_GATEWAY})"));
                    }
                    if shared.in_use.contains(&o[3]) {
                        return Err(format!("{a} is already taken in the test network"));
                    }
                    o[3]
                }
                None => (AUTO_FIRST..=254)
                    .find(|o| !shared.in_use.contains(o))
                    .ok_or_else(|| format!("no free address left in {NET_CIDR}"))?,
            };
            if shared.users == 0 {
                net_up()?;
            }
            shared.users += 1;
            shared.in_use.insert(octet);
            octet
        };
        let netns = match dir {
            Some(d) => format!("ntpp-{}", d.file_name().unwrap().to_string_lossy()),
            None => format!("ntpp-h{octet}-{}", std::process::id()),
        };
        // From here on a failure drops the lease, which undoes what was done.
        let lease = NetLease {
            netns,
            veth: format!("ntpp-v{octet}"),
            addr: net_addr(octet),
            released: false,
        };
        if let Some(d) = dir {
            // Which namespace is this node's, for a post-mortem (a killed run's
            // namespaces are all removed by reap_stale_net, by their ntpp- name).
            let _ = fs::write(d.join("netns"), format!("{}\n", lease.netns));
        }
        let (ns, veth, addr) = (
            lease.netns.as_str(),
            lease.veth.as_str(),
            format!("{}/{NET_PREFIX_LEN}", lease.addr),
        );
        let gw = NET_GATEWAY.to_string();
        ip(&["netns", "add", ns])?;
        ip(&[
            "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ])?;
        ip(&["link", "set", veth, "master", NET_BRIDGE, "up"])?;
        ip(&["-n", ns, "addr", "add", &addr, "dev", "eth0"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", ns, "route", "add", "default", "via", &gw])?;
        Ok(lease)
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// `/run/netns/NAME`, for `systemd-nspawn --network-namespace-path` and `nsenter --net`.
    pub fn netns_path(&self) -> String {
        format!("/run/netns/{}", self.netns)
    }

    /// Delete the veth and the namespace; the last lease of the process also
    /// tears the shared network down. Idempotent.
    pub fn release(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        let _ = ip_quiet(&["link", "del", &self.veth]);
        let _ = ip_quiet(&["netns", "del", &self.netns]);
        let mut shared = net_lock();
        shared.in_use.remove(&self.addr.octets()[3]);
        shared.users = shared.users.saturating_sub(1);
        if shared.users == 0 {
            if let Err(e) = net_down() {
                eprintln!("[harness] tearing down the test network: {e}");
            }
        }
    }
}

impl Drop for NetLease {
    fn drop(&mut self) {
        self.release();
    }
}

/// A bare host of the test network: a namespace with an address and no node
/// tree. [`NetHost::run`] runs a host command in it (the binary under test
/// too, [`NetHost::provision`]): a client or a stranger on the network
/// without the cost of a boot.
pub struct NetHost {
    net: NetLease,
}

impl NetHost {
    /// At `addr`, or at the lowest free automatic address.
    pub fn new(addr: Option<Ipv4Addr>) -> NetHost {
        preflight();
        NetHost {
            net: NetLease::new(None, addr).unwrap_or_else(|e| panic!("{e}")),
        }
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.net.addr()
    }

    /// argv (a host command) in the namespace, bounded by `timeout`; stdin empty.
    pub fn run(&self, argv: &[&str], timeout: Duration) -> Out {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.net.netns_path()))
            .arg("--")
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {argv:?}: {e}"));
        // Drain the pipes in threads so a chatty command cannot block.
        let mut so = child.stdout.take().unwrap();
        let mut se = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = so.read_to_end(&mut v);
            v
        });
        let t_err = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = se.read_to_end(&mut v);
            v
        });
        let status = match wait_timeout(&mut child, timeout) {
            Some(s) => s,
            None => {
                unsafe {
                    kill(-(child.id() as i32), SIGKILL);
                }
                let _ = child.wait();
                panic!(
                    "{argv:?} in {} timed out after {timeout:?}",
                    self.net.netns()
                );
            }
        };
        Out {
            code: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&t_out.join().unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
        }
    }

    /// The binary under test (the host's copy of it), run in the namespace.
    pub fn provision(&self, args: &[&str]) -> Out {
        let bin = binary_under_test();
        let mut argv = vec![bin.to_str().expect("UTF-8 binary path")];
        argv.extend_from_slice(args);
        self.run(&argv, Duration::from_secs(120))
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip_quiet(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn host_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The resolv.conf the nodes get, and the systemd-nspawn `--resolv-conf`
/// mode that copies it: the host's /etc/resolv.conf, unless it names only
/// loopback resolvers (systemd-resolved's stub, unreachable from a
/// namespace), then resolved's list of its upstream servers.
pub fn resolv_conf() -> (PathBuf, &'static str) {
    let host = PathBuf::from("/etc/resolv.conf");
    let uplink = PathBuf::from("/run/systemd/resolve/resolv.conf");
    let text = fs::read_to_string(&host).unwrap_or_default();
    let servers = nameservers(&text);
    if servers.iter().all(|a| a.is_loopback()) && uplink.is_file() {
        (uplink, "replace-uplink")
    } else {
        (host, "replace-host")
    }
}

fn nameservers(resolv: &str) -> Vec<std::net::IpAddr> {
    resolv
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse().ok())
        .collect()
}

/// The process's first lease: clean up a killed run's network, check the
/// range is free, then make the bridge, the nftables table and turn on IPv4
/// forwarding (recording what it was first).
fn net_up() -> Result<(), String> {
    if which("nft").is_none() {
        return Err("`nft` not found: the node tests need it for the test network's NAT (apt-get install nftables; scripts/test installs it)".into());
    }
    if which("ip").is_none() {
        return Err("`ip` not found: the node tests need it (apt-get install iproute2; scripts/test installs it)".into());
    }
    reap_stale_net()?;
    // The range must be ours alone: no address of the host in it, and no
    // route into it.
    for line in host_output("ip", &["-4", "-o", "addr", "show"]).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let Some(i) = f.iter().position(|w| *w == "inet") {
            if f.get(i + 1).is_some_and(|a| a.starts_with("10.123.0.")) {
                return Err(format!(
                    "the test network {NET_CIDR} is in use on this host: {line}"
                ));
            }
        }
    }
    for line in host_output("ip", &["-4", "route", "show"]).lines() {
        if line.starts_with("10.123.0.") || line.starts_with("10.123.0.0/") {
            return Err(format!(
                "the test network {NET_CIDR} is routed on this host: {line}"
            ));
        }
    }
    let forward = fs::read_to_string(IP_FORWARD)
        .map_err(|e| format!("read {IP_FORWARD}: {e}"))?
        .trim()
        .to_string();
    let me = ProcId::of(std::process::id()).expect("own /proc entry");
    fs::create_dir_all(Path::new(NET_STATE).parent().unwrap()).map_err(|e| e.to_string())?;
    // Written first, so a run killed half way through the setup is cleaned too.
    let instances = fs::read_to_string(INOTIFY_INSTANCES)
        .map_err(|e| format!("read {INOTIFY_INSTANCES}: {e}"))?
        .trim()
        .to_string();
    fs::write(
        NET_STATE,
        format!(
            "{}ip_forward {forward}\ninotify_instances {instances}\n",
            me.render()
        ),
    )
    .map_err(|e| format!("write {NET_STATE}: {e}"))?;
    let gw = format!("{NET_GATEWAY}/{NET_PREFIX_LEN}");
    let setup = (|| -> Result<(), String> {
        ip(&["link", "add", NET_BRIDGE, "type", "bridge"])?;
        ip(&["addr", "add", &gw, "dev", NET_BRIDGE])?;
        ip(&["link", "set", NET_BRIDGE, "up"])?;
        nft_load(&nft_ruleset(forward == "0"))?;
        fs::write(IP_FORWARD, "1\n").map_err(|e| format!("enable IPv4 forwarding: {e}"))?;
        if instances
            .parse::<u64>()
            .is_ok_and(|n| n < INOTIFY_INSTANCES_WANTED)
        {
            fs::write(INOTIFY_INSTANCES, format!("{INOTIFY_INSTANCES_WANTED}\n"))
                .map_err(|e| format!("raise {INOTIFY_INSTANCES}: {e}"))?;
        }
        Ok(())
    })();
    if let Err(e) = setup {
        let _ = net_down();
        return Err(format!("setting up the test network: {e}"));
    }
    Ok(())
}

/// The NAT and the filter on what the test network may send out. Traffic
/// between two nodes is bridged, but where br_netfilter is active
/// (`net.bridge.bridge-nf-call-iptables`) it passes the forward hook too,
/// with the bridge as both interfaces: the first rule lets it through.
fn nft_ruleset(forwarding_was_off: bool) -> String {
    let resolvers: Vec<String> =
        nameservers(&fs::read_to_string(resolv_conf().0).unwrap_or_default())
            .into_iter()
            .filter_map(|a| match a {
                std::net::IpAddr::V4(v4) if !v4.is_loopback() => Some(v4.to_string()),
                _ => None,
            })
            .collect();
    let dns = if resolvers.is_empty() {
        String::new()
    } else {
        format!(
            "    iifname \"{NET_BRIDGE}\" ip daddr {{ {} }} meta l4proto {{ tcp, udp }} th dport 53 accept\n",
            resolvers.join(", ")
        )
    };
    // The host forwarded nothing before: it forwards nothing else now either.
    let others = if forwarding_was_off {
        "    meta nfproto ipv4 drop\n"
    } else {
        ""
    };
    format!(
        "table inet {NFT_TABLE} {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {NET_CIDR} oifname != \"{NET_BRIDGE}\" masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname \"{NET_BRIDGE}\" oifname \"{NET_BRIDGE}\" accept
    oifname \"{NET_BRIDGE}\" ct state established,related accept
    oifname \"{NET_BRIDGE}\" drop
{dns}    iifname \"{NET_BRIDGE}\" tcp dport {{ 80, 443 }} accept
    iifname \"{NET_BRIDGE}\" drop
{others}  }}
}}
"
    )
}

fn nft_load(ruleset: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run nft: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ruleset.as_bytes())
        .map_err(|e| format!("write to nft: {e}"))?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft -f failed: {}\n{ruleset}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Undo [`net_up`]: the table, the bridge, the forwarding setting (restored
/// from [`NET_STATE`]), the state file.
fn net_down() -> Result<(), String> {
    let state = fs::read_to_string(NET_STATE).unwrap_or_default();
    let mut errors = Vec::new();
    if host_output("nft", &["list", "tables"])
        .lines()
        .any(|l| l.trim() == format!("table inet {NFT_TABLE}"))
        && !Command::new("nft")
            .args(["delete", "table", "inet", NFT_TABLE])
            .status()
            .is_ok_and(|s| s.success())
    {
        errors.push(format!("nft delete table inet {NFT_TABLE} failed"));
    }
    if Path::new("/sys/class/net").join(NET_BRIDGE).exists() {
        if let Err(e) = ip(&["link", "del", NET_BRIDGE]) {
            errors.push(e);
        }
    }
    if let Some(before) = state
        .lines()
        .find_map(|l| l.strip_prefix("ip_forward "))
        .map(str::trim)
    {
        let now = fs::read_to_string(IP_FORWARD).unwrap_or_default();
        if (before == "0" || before == "1") && now.trim() != before {
            if let Err(e) = fs::write(IP_FORWARD, format!("{before}\n")) {
                errors.push(format!("restore {IP_FORWARD} to {before}: {e}"));
            }
        }
    }
    if let Some(before) = state
        .lines()
        .find_map(|l| l.strip_prefix("inotify_instances "))
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        let now = fs::read_to_string(INOTIFY_INSTANCES).unwrap_or_default();
        if now.trim() != before.to_string() {
            if let Err(e) = fs::write(INOTIFY_INSTANCES, format!("{before}\n")) {
                errors.push(format!("restore {INOTIFY_INSTANCES} to {before}: {e}"));
            }
        }
    }
    let _ = fs::remove_file(NET_STATE);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// What a killed run left of the test network: its namespaces and veths,
/// then the shared part. Refuses while another live process owns it.
fn reap_stale_net() -> Result<(), String> {
    let me = ProcId::of(std::process::id());
    if let Ok(state) = fs::read_to_string(NET_STATE) {
        if let Some(owner) = ProcId::parse(&state) {
            if owner.alive() && Some(owner) != me {
                return Err(format!(
                    "the test network {NET_CIDR} belongs to another live process (pid {}; {NET_STATE})",
                    owner.pid
                ));
            }
        }
    }
    let mut reaped = Vec::new();
    for entry in fs::read_dir("/run/netns").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("ntpp-") {
            // A process still in it (a container init that survived) would keep
            // it, and its veth, alive.
            kill_in_netns(&entry.path());
            let _ = ip_quiet(&["netns", "del", &name]);
            reaped.push(name);
        }
    }
    for line in host_output("ip", &["-o", "link", "show"]).lines() {
        if let Some(name) = line
            .split(": ")
            .nth(1)
            .map(|n| n.split('@').next().unwrap_or(n))
        {
            if name.starts_with("ntpp-v") {
                let _ = ip_quiet(&["link", "del", name]);
                reaped.push(name.to_string());
            }
        }
    }
    let bridge = Path::new("/sys/class/net").join(NET_BRIDGE).exists();
    if bridge || Path::new(NET_STATE).exists() {
        reaped.push(format!("{NET_BRIDGE}, table inet {NFT_TABLE}, forwarding"));
        net_down()?;
    } else if host_output("nft", &["list", "tables"])
        .lines()
        .any(|l| l.trim() == format!("table inet {NFT_TABLE}"))
    {
        reaped.push(format!("table inet {NFT_TABLE}"));
        net_down()?;
    }
    if !reaped.is_empty() {
        eprintln!(
            "[harness] reaped a stale test network: {}",
            reaped.join(", ")
        );
    }
    Ok(())
}

/// SIGKILL every process whose network namespace is the one bound at `path`.
fn kill_in_netns(path: &Path) {
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    let me = std::process::id();
    for pid in all_pids().into_iter().filter(|&p| p != me) {
        if let Ok(ns) = fs::metadata(format!("/proc/{pid}/ns/net")) {
            if ns.ino() == meta.ino() && ns.dev() == meta.dev() {
                unsafe {
                    kill(pid as i32, SIGKILL);
                }
            }
        }
    }
}

// -------------------------------------------------------------- archive proxy
//
// The nodes fetch the Debian archive through one caching proxy on the host
// (apt-cacher-ng, on the bridge address), so a repeated run takes the
// package lists and packages from a cache kept between runs instead of the
// mirror. The first node of a process starts it, or adopts the one a killed
// run left (its pid file); the process stops it when it exits, and
// scripts/test stops whatever is left when it ends.

/// The proxy's port on [`NET_GATEWAY`]. Not apt-cacher-ng's usual 3142: on
/// a host where the package's own service runs, that holds 3142 on every
/// address.
pub const PROXY_PORT: u16 = 3143;
/// The proxy's configuration, pid file and logs.
pub const PROXY_DIR: &str = "/var/tmp/ntp-provision/apt-proxy";
/// The proxy's cache, kept between runs; removing it (while no test runs)
/// only costs the next run the downloads.
pub const PROXY_CACHE: &str = "/var/tmp/ntp-provision/apt-cache";
/// Bound on the proxy's start, from spawning it to its port accepting.
pub const PROXY_START_TIMEOUT: Duration = Duration::from_secs(20);
/// The apt configuration the harness writes into every node's tree. Named
/// so that a test's own `99...` proxy setting is read after it and wins.
pub const NODE_PROXY_CONF: &str = "/etc/apt/apt.conf.d/90ntpp-archive-proxy";

/// `http://10.123.0.1:PORT`, the archive proxy as the nodes reach it.
pub fn proxy_url() -> String {
    format!("http://{NET_GATEWAY}:{PROXY_PORT}")
}

/// What a node's apt is told: every HTTP fetch through the proxy, except
/// from loopback hosts, so a test's closed mirror on 127.0.0.1 is still one
/// that does not answer rather than the proxy's error page.
fn node_proxy_conf() -> String {
    format!(
        "// Written by the node-test harness (tests/node/harness.rs): the archive
// through the test run's caching proxy; loopback sources go direct.
Acquire::http::Proxy \"{}\";
Acquire::http::Proxy::127.0.0.1 \"DIRECT\";
Acquire::http::Proxy::localhost \"DIRECT\";
// A fetch that stalls is given up after 30 s and tried again.
Acquire::http::Timeout \"30\";
Acquire::Retries \"3\";
// No pipelining through the proxy: a reply lost in a pipeline leaves apt
// waiting on the rest (one apply never got past its update in CI).
Acquire::http::Pipeline-Depth \"0\";
",
        proxy_url()
    )
}

fn proxy_conf() -> String {
    format!(
        "# Written by the node-test harness (tests/node/harness.rs) at each start.
CacheDir: {PROXY_CACHE}
LogDir: {PROXY_DIR}
SupportDir: /usr/lib/apt-cacher-ng
BindAddress: {NET_GATEWAY}
Port: {PROXY_PORT}
ForeGround: 1
PidFile:
SocketPath:
ReportPage:
# The index files (InRelease) are kept as fetched for the whole run, never
# refreshed: apt-cacher-ng refreshes one by moving it aside under a name of
# the second, so nodes refreshing it in the same second collide (\"Failure to
# move file ... out of the way\", 503 to all but one), and one loser's apt
# waited on its closed connection for good. Each start fetches them afresh,
# one at a time (`forget_index_files`, `warm_proxy`).
SPfilePatternEx: .*/dists/[^/]+/InRelease$
"
    )
}

/// The archive's index files the nodes' sources name, as the proxy is asked
/// for them: `(host/path)` of each release's InRelease.
fn index_files() -> Vec<String> {
    Release::ALL
        .iter()
        .flat_map(|r| {
            let n = r.name();
            [
                format!("deb.debian.org/debian/dists/{n}/InRelease"),
                format!("deb.debian.org/debian/dists/{n}-updates/InRelease"),
                format!("deb.debian.org/debian-security/dists/{n}-security/InRelease"),
            ]
        })
        .collect()
}

/// Removes the cached index files (and apt-cacher-ng's `.head` of each), so
/// that this run's proxy fetches the archive's current ones (see
/// [`proxy_conf`]): a run's lists are as fresh as its start.
fn forget_index_files(cache: &Path) {
    for file in index_files() {
        let path = cache.join(&file);
        for p in [path.clone(), path.with_file_name("InRelease.head")] {
            if let Err(e) = fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    eprintln!(
                        "[harness] archive proxy: cannot remove {}: {e}",
                        p.display()
                    );
                }
            }
        }
    }
}

/// Asks the fresh proxy for every index file, one at a time, so that each
/// is refreshed by one request; the nodes then get it from the cache (see
/// [`proxy_conf`]). A failure is only logged: the nodes' apt retries.
fn warm_proxy() {
    let started = Instant::now();
    for file in index_files() {
        if let Err(e) = proxy_get(&file) {
            eprintln!("[harness] archive proxy: warming {file}: {e} (the nodes will fetch it)");
        }
    }
    eprintln!(
        "[harness] archive proxy: index files refreshed in {:.1?}",
        started.elapsed()
    );
}

/// One GET of `http://FILE` through the proxy, read to its end (bounded).
fn proxy_get(file: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect_timeout(
        &(NET_GATEWAY, PROXY_PORT).into(),
        Duration::from_secs(5),
    )
    .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let host = file.split('/').next().unwrap_or_default();
    write!(
        conn,
        "GET http://{file} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    let status = String::from_utf8_lossy(&reply[..reply.len().min(64)])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => Err(format!("the proxy answered {status:?}")),
    }
}

/// The proxy this process started or adopted, stopped when it exits.
static PROXY: Mutex<Option<ProcId>> = Mutex::new(None);

/// Starts the proxy if it does not answer (needs the bridge up: a node's
/// lease held) and writes [`NODE_PROXY_CONF`] into the node's tree.
fn use_archive_proxy(root: &Path) -> Result<(), String> {
    ensure_proxy()?;
    let conf = root.join(NODE_PROXY_CONF.trim_start_matches('/'));
    fs::write(&conf, node_proxy_conf()).map_err(|e| format!("write {}: {e}", conf.display()))
}

fn ensure_proxy() -> Result<(), String> {
    let mut ours = PROXY.lock().unwrap_or_else(|p| p.into_inner());
    let pid_file = Path::new(PROXY_DIR).join("pid");
    let running = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| ProcId::parse(&s))
        .filter(is_proxy);
    if let Some(proxy) = running {
        if proxy_answers() {
            if ours.replace(proxy).is_none() {
                register_proxy_stop();
            }
            return Ok(());
        }
        // Ours by its pid file, but deaf (a killed run's, say): start afresh.
        stop_proxy(proxy);
    }
    let proxy = start_proxy(&pid_file)?;
    if ours.replace(proxy).is_none() {
        register_proxy_stop();
    }
    Ok(())
}

/// An apt-cacher-ng whose command line names our configuration.
fn is_proxy(id: &ProcId) -> bool {
    id.alive()
        && fs::read_to_string(format!("/proc/{}/comm", id.pid))
            .is_ok_and(|n| n.trim() == "apt-cacher-ng")
        && fs::read(format!("/proc/{}/cmdline", id.pid))
            .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == PROXY_DIR.as_bytes()))
}

fn proxy_answers() -> bool {
    std::net::TcpStream::connect_timeout(
        &(NET_GATEWAY, PROXY_PORT).into(),
        Duration::from_millis(500),
    )
    .is_ok()
}

fn start_proxy(pid_file: &Path) -> Result<ProcId, String> {
    for d in [PROXY_DIR, PROXY_CACHE] {
        fs::create_dir_all(d).map_err(|e| format!("create {d}: {e}"))?;
    }
    let dir = Path::new(PROXY_DIR);
    fs::write(dir.join("acng.conf"), proxy_conf()).map_err(|e| format!("write acng.conf: {e}"))?;
    forget_index_files(Path::new(PROXY_CACHE));
    let console = dir.join("console.log");
    let log =
        fs::File::create(&console).map_err(|e| format!("create {}: {e}", console.display()))?;
    let mut child = Command::new("apt-cacher-ng")
        .arg("-c")
        .arg(PROXY_DIR)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        // Its own group: a Ctrl-C of the test run leaves it to scripts/test's trap.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start apt-cacher-ng: {e}"))?;
    let id = ProcId::of(child.id()).unwrap_or(ProcId {
        pid: child.id(),
        start: 0,
    });
    fs::write(pid_file, id.render()).map_err(|e| format!("write {}: {e}", pid_file.display()))?;
    let deadline = Instant::now() + PROXY_START_TIMEOUT;
    loop {
        if proxy_answers() {
            eprintln!(
                "[harness] archive proxy {} started (pid {}, cache {PROXY_CACHE})",
                proxy_url(),
                id.pid
            );
            warm_proxy();
            return Ok(id);
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = fs::remove_file(pid_file);
            let why = match exited {
                Some(status) => format!("exited ({status})"),
                None => format!(
                    "did not accept on {} within {PROXY_START_TIMEOUT:?}",
                    proxy_url()
                ),
            };
            let err = fs::read_to_string(dir.join("apt-cacher.err")).unwrap_or_default();
            return Err(format!(
                "the archive proxy (apt-cacher-ng -c {PROXY_DIR}) {why}\n--- {} ---\n{}\n--- apt-cacher.err ---\n{}",
                console.display(),
                tail(&fs::read_to_string(&console).unwrap_or_default(), 40),
                tail(&err, 20)
            ));
        }
        sleep(Duration::from_millis(50));
    }
}

/// SIGTERM, then SIGKILL after a bounded wait.
fn stop_proxy(id: ProcId) {
    id.kill(SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while id.alive() && Instant::now() < deadline {
        sleep(Duration::from_millis(20));
    }
    id.kill(SIGKILL);
}

fn register_proxy_stop() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| unsafe {
        atexit(stop_proxy_at_exit);
    });
}

extern "C" fn stop_proxy_at_exit() {
    let proxy = PROXY.lock().ok().and_then(|mut p| p.take());
    if let Some(id) = proxy {
        stop_proxy(id);
        let _ = fs::remove_file(Path::new(PROXY_DIR).join("pid"));
    }
}

/// The process `pid` and all its descendants, as `ps` shows them (what a
/// command that timed out was waiting on).
fn descendants(pid: u32) -> String {
    let listing = host_output("ps", &["-eo", "pid=,ppid=,etimes=,stat=,wchan:24=,args="]);
    let rows: Vec<(u32, u32, &str)> = listing
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?, l))
        })
        .collect();
    let mut keep = vec![pid];
    let mut i = 0;
    while i < keep.len() {
        let parent = keep[i];
        keep.extend(rows.iter().filter(|r| r.1 == parent).map(|r| r.0));
        i += 1;
    }
    rows.iter()
        .filter(|r| keep.contains(&r.0))
        .map(|r| r.2)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `apt-get -q -y ARGS`, non-interactive, as an argument vector.
pub fn apt_get_argv<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec![
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "-q",
        "-y",
    ];
    argv.extend_from_slice(args);
    argv
}

/// The daemon's servers in the node tests: loopback only (NTPsec refuses
/// other 127/8 addresses as servers), so no test reaches another host.
pub const SERVERS: &str = "servers=[127.0.0.1, \"::1\"]";

/// The one JSON document a `--format json` run printed on stdout.
pub fn json(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        )
    })
}

/// The text of one of the repository's templates (`templates/NAME`).
pub fn repo_template(name: &str) -> String {
    let path = format!("{}/templates/{name}", env!("CARGO_MANIFEST_DIR"));
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Writes into the node, under `dir`, the default plan with its daemon
/// config rendered from `template` instead of the daemon's own template,
/// and that template; returns the plan's path in the node.
pub fn plan_with_template(node: &Node, dir: &str, template: &str) -> String {
    let default =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/ntp.yaml")).unwrap();
    let from = "src: \"{{ facts.daemon.template }}\"";
    assert!(
        default.contains(from),
        "the default plan renders the daemon's own template"
    );
    node.write(&format!("{dir}/custom.conf.j2"), template);
    let plan = format!("{dir}/plan.yaml");
    node.write(&plan, &default.replace(from, "src: custom.conf.j2"));
    plan
}
