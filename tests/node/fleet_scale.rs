//! Fleet scale (issue 18): twenty nodes converged through Ansible with the
//! collection's role against the site's two servers, beside the seed recipe's
//! playbook (playbooks/seed-recipe.yml) on twenty other fresh nodes, both at
//! forks 20. A benchmark: `scripts/bench-fleet` runs it and writes what it
//! prints (`[bench-fleet] key=value ...` lines) into BENCHMARKS.md.
//!
//! ```text
//!   upstream 10.123.0.2: plain chrony by hand, `local stratum 8`
//!     |
//!   site servers 10.123.0.20, .21: chrony converged by ntp-provision,
//!   servers=[10.123.0.2], clients=[10.123.0.128/25]
//!     |
//!   role fleet 10.123.0.150-.169 (bookworm, sshd): playbooks/fleet.yml,
//!   ntp_servers=[.20, .21], the role's default daemon (NTPsec here)
//!   seed fleet 10.123.0.170-.189 (bookworm, sshd, python3): playbooks/seed-recipe.yml
//!   writing the ntp.conf ntp-provision rendered on the role fleet
//! ```
//!
//! It asserts what it measures: each converge changed every node and failed
//! none, the run after it changed none, and every node is then synchronised
//! with one of the two site servers (bounded wait, polled after the no-op
//! run); for the seed recipe also that each node has the config and a
//! running ntpsec. No wall-clock assertion.
//!
//! Memory per node: the peak resident set (VmHWM of /proc/PID/status) of
//! the module's own process on the node, sampled from the host every
//! [`SAMPLE`] during the converge: the role's binary module
//! (`AnsiballZ_ntp_provision`, the ntp-provision binary itself) and, for
//! the seed recipe, the largest Python module process (`python3`). The
//! programs they run (apt, dpkg) are not counted.

use crate::fleet::{
    apt_get_retrying, count, install_sshd, recap, ssh_ready, wait_listening, Fleet,
};
use crate::harness::{exclusive, net_addr, Node, Release};
use crate::sync::{converge_and_sync, role, start_upstream, synchronised_with_one_of};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const FLEET: u8 = 20;
const ROLE_FIRST: u8 = 150;
const SEED_FIRST: u8 = 170;
const FORKS: &str = "20";
/// The site servers' client network: both fleets, not the site servers.
const CLIENT_NET: &str = "10.123.0.128/25";
/// Nodes booted (and given sshd) at once: a boot has 60 s on 2 cores,
/// and their apt-get runs share one archive proxy.
const BOOT_BATCH: usize = 5;
/// Bound on the wait, after the no-op run, for every node to synchronise.
const SYNC_WAIT: Duration = Duration::from_secs(120);
/// How often the host samples the nodes' module processes.
const SAMPLE: Duration = Duration::from_millis(100);

fn line(text: &str) {
    eprintln!("[bench-fleet] {text}");
}

/// Boot the nodes at `addrs` (bookworm) in batches, each with sshd for the
/// fleet's key, and python3 when `python` (the seed recipe's modules need it).
fn boot_fleet(addrs: &[Ipv4Addr], key_pub: &str, python: bool) -> Vec<Node> {
    let mut nodes = Vec::new();
    for batch in addrs.chunks(BOOT_BATCH) {
        let booted: Vec<Node> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .map(|&addr| {
                    s.spawn(move || {
                        let node = ssh_ready(Node::boot_at(Release::Bookworm, addr), key_pub);
                        install_sshd(&node);
                        if python {
                            apt_get_retrying(
                                &node,
                                &["install", "--no-install-recommends", "python3"],
                            );
                        }
                        node
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        nodes.extend(booted);
    }
    for node in &nodes {
        wait_listening(node.addr());
    }
    nodes
}

fn addrs(first: u8) -> Vec<Ipv4Addr> {
    (first..first + FLEET).map(net_addr).collect()
}

fn host_name(addr: Ipv4Addr) -> String {
    format!("fleet{}", addr.octets()[3])
}

/// hosts.yml of the group `ntp` (what fleet.yml converges), every host by its address.
fn inventory(dir: &Path, name: &str, fleet: &Fleet, addrs: &[Ipv4Addr], vars: &str) -> PathBuf {
    let mut yml = String::from("ntp:\n  hosts:\n");
    for addr in addrs {
        yml += &format!("    {}:\n      ansible_host: {addr}\n", host_name(*addr));
    }
    yml += &format!(
        "  vars:\n    ansible_user: root\n    ansible_port: 22\n    ansible_ssh_private_key_file: {}\n{vars}",
        fleet.key.display()
    );
    let path = dir.join(name);
    fs::write(&path, yml).unwrap();
    path
}

/// VmHWM of a process, in KiB.
fn vm_hwm(pid: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A node's PID namespace (`/proc/PID/ns/pid` of its processes), which
/// tells its processes apart on the host.
fn pid_namespace(node: &Node) -> PathBuf {
    let pid = *node
        .processes()
        .first()
        .expect("a booted node has processes");
    fs::read_link(format!("/proc/{pid}/ns/pid")).expect("the node's PID namespace")
}

/// Until `stop`: every [`SAMPLE`], the VmHWM of each process whose name
/// `wanted` accepts and whose PID namespace is one of `namespaces`; the peak
/// per namespace, KiB.
fn sample_peaks(namespaces: &[PathBuf], wanted: fn(&str) -> bool, stop: &AtomicBool) -> Vec<u64> {
    let mut peaks = vec![0; namespaces.len()];
    while !stop.load(Ordering::Relaxed) {
        for entry in fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(comm) = fs::read_to_string(format!("/proc/{pid}/comm")) else {
                continue;
            };
            if !wanted(comm.trim_end()) {
                continue;
            }
            let Ok(ns) = fs::read_link(format!("/proc/{pid}/ns/pid")) else {
                continue;
            };
            if let (Some(i), Some(kib)) = (namespaces.iter().position(|n| ns == *n), vm_hwm(&pid)) {
                peaks[i] = peaks[i].max(kib);
            }
        }
        std::thread::sleep(SAMPLE);
    }
    peaks
}

/// Ansible copies a binary module as AnsiballZ_NAME; comm keeps 15 bytes.
fn role_module(comm: &str) -> bool {
    comm.starts_with("AnsiballZ_ntp")
}

fn python_module(comm: &str) -> bool {
    comm == "python3"
}

/// Sets its flag when dropped, a panic's unwinding included.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One fleet and the playbook that converges it, run at forks 20.
struct Run<'a> {
    fleet: &'a Fleet,
    nodes: &'a [Node],
    inventory: PathBuf,
    playbook: &'static str,
    extra: Vec<String>,
    /// Which processes on a node are the playbook's module (by comm).
    module: fn(&str) -> bool,
}

impl Run<'_> {
    /// The first run on fresh nodes: its wall time and the peak memory of
    /// the module's processes per node (KiB); every node changed, none failed.
    fn converge(&self) -> (Duration, Vec<u64>) {
        let namespaces: Vec<PathBuf> = self.nodes.iter().map(pid_namespace).collect();
        let stop = AtomicBool::new(false);
        let (elapsed, peaks) = std::thread::scope(|s| {
            let sampler = s.spawn(|| sample_peaks(&namespaces, self.module, &stop));
            // Set on the way out of a failed run too: the scope joins the
            // sampler, and a test that waited on it kept its 23 nodes.
            let stopping = StopOnDrop(&stop);
            let elapsed = self.run(true);
            drop(stopping);
            (elapsed, sampler.join().unwrap())
        });
        // A converge runs the module on every node for seconds: a node whose
        // module was never sampled would show a figure that is not one.
        assert!(
            peaks.iter().all(|&kib| kib > 0),
            "{}: no module process sampled on some node: {peaks:?}",
            self.playbook
        );
        (elapsed, peaks)
    }

    /// The run after it: its wall time; no node changed or failed.
    fn noop(&self) -> Duration {
        self.run(false)
    }

    fn run(&self, changed: bool) -> Duration {
        let mut args = vec!["-f", FORKS];
        args.extend(self.extra.iter().map(String::as_str));
        let start = Instant::now();
        let (code, out) = self.fleet.playbook(&self.inventory, self.playbook, &args);
        let elapsed = start.elapsed();
        assert_eq!(code, 0, "{} {args:?} failed:\n{out}", self.playbook);
        let r = recap(&out);
        assert_eq!(
            r.len(),
            self.nodes.len(),
            "every node is in the recap: {r:?}"
        );
        for node in self.nodes {
            let host = host_name(node.addr());
            let c = count(&r, &host, "changed");
            assert!(
                count(&r, &host, "failed") == 0
                    && count(&r, &host, "unreachable") == 0
                    && (c > 0) == changed,
                "{} {args:?}: {host} changed={c}, expected {}: {r:?}",
                self.playbook,
                if changed { "at least 1" } else { "0" }
            );
        }
        elapsed
    }
}

/// Poll every node's status until each says synchronised with one of
/// `servers`, at most [`SYNC_WAIT`]; when each was first seen so, since `t0`.
fn wait_all_synchronised(nodes: &[Node], servers: &[String], t0: Instant) -> Vec<Duration> {
    let deadline = Instant::now() + SYNC_WAIT;
    let mut seen: Vec<Option<Duration>> = vec![None; nodes.len()];
    let mut last: BTreeMap<usize, String> = BTreeMap::new();
    while seen.iter().any(Option::is_none) && Instant::now() < deadline {
        for (i, node) in nodes.iter().enumerate() {
            if seen[i].is_some() {
                continue;
            }
            let st = node.provision(&["status", "--format", "json"]);
            let doc: Option<Value> = serde_json::from_str(&st.stdout).ok();
            if doc.is_some_and(|d| synchronised_with_one_of(&d, servers)) {
                seen[i] = Some(t0.elapsed());
            } else {
                last.insert(i, format!("exit {}\n{}\n{}", st.code, st.stdout, st.stderr));
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(i, _)| {
            format!(
                "{}: last `ntp-provision status --format json`:\n{}",
                nodes[i].addr(),
                last.get(&i).map_or("(never ran)", String::as_str)
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} nodes not synchronised with one of {servers:?} within {SYNC_WAIT:?} after the no-op run:\n{}",
        missing.len(),
        nodes.len(),
        missing.join("\n")
    );
    seen.into_iter().map(Option::unwrap).collect()
}

#[test]
#[ignore = "a benchmark: scripts/bench-fleet runs it"]
fn twenty_nodes_converge_through_the_role_and_synchronise_beside_the_seed_recipe() {
    let _guard = exclusive();
    let t0 = Instant::now();
    let fleet = Fleet::new();
    let key = fleet.key_pub();
    let work = tempfile::tempdir().unwrap();

    // The upstream by hand and the two site servers, as tests/node/sync.rs makes them.
    let sites = [
        role("site server", Release::Bookworm, "chrony", "chrony", 20),
        role("site server", Release::Bookworm, "chrony", "chrony", 21),
    ];
    let mut nodes: Vec<Node> = std::thread::scope(|s| {
        let handles: Vec<_> = [net_addr(2), sites[0].addr, sites[1].addr]
            .into_iter()
            .map(|addr| s.spawn(move || Node::boot_at(Release::Bookworm, addr)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let site_nodes = nodes.split_off(1);
    let upstream = nodes.pop().unwrap();
    start_upstream(&upstream, "");
    let up = upstream.addr();
    let site_results: Vec<Result<_, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = sites
            .iter()
            .zip(&site_nodes)
            .map(|(r, n)| s.spawn(move || converge_and_sync(n, r, up, Some(CLIENT_NET))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &site_results {
        if let Err(e) = r {
            panic!("site server: {e}");
        }
    }
    eprintln!(
        "[fleet-scale] upstream and site servers synchronised at {:.1?}",
        t0.elapsed()
    );
    let servers: Vec<String> = sites.iter().map(|r| r.addr.to_string()).collect();

    // The role fleet.
    let role_nodes = boot_fleet(&addrs(ROLE_FIRST), &key, false);
    eprintln!("[fleet-scale] role fleet ready at {:.1?}", t0.elapsed());
    let role_run = Run {
        fleet: &fleet,
        nodes: &role_nodes,
        inventory: inventory(
            work.path(),
            "role.yml",
            &fleet,
            &addrs(ROLE_FIRST),
            &format!("    ntp_servers: [{}]\n", servers.join(", ")),
        ),
        playbook: "fleet.yml",
        extra: Vec::new(),
        module: role_module,
    };
    let start = Instant::now();
    let (converge, role_rss) = role_run.converge();
    let noop = role_run.noop();
    let synced = wait_all_synchronised(&role_nodes, &servers, start);
    let flavor = json_flavor(&role_nodes[0]);
    line(&format!(
        "nodes={FLEET} forks={FORKS} release=bookworm daemon={flavor} site_servers={} upstream={up} sample_ms={}",
        servers.join(","),
        SAMPLE.as_millis()
    ));
    line(&format!(
        "run=role converge_s={:.1} noop_s={:.1} all_synchronised_s={:.1}",
        converge.as_secs_f64(),
        noop.as_secs_f64(),
        synced.iter().max().unwrap().as_secs_f64()
    ));
    for ((node, rss), sync) in role_nodes.iter().zip(&role_rss).zip(&synced) {
        line(&format!(
            "run=role node={} peak_rss_kib={rss} synchronised_s={:.1}",
            node.addr(),
            sync.as_secs_f64()
        ));
    }

    // The seed recipe writes what ntp-provision rendered on the role fleet.
    let templates = work.path().join("templates");
    fs::create_dir_all(&templates).unwrap();
    for (from, to) in [
        ("/etc/ntpsec/ntp.conf", "ntp.conf"),
        ("/etc/default/ntpsec", "ntpsec.default"),
    ] {
        let text = role_nodes[0]
            .read(from)
            .unwrap_or_else(|| panic!("the role fleet has no {from}"));
        fs::write(templates.join(to), text).unwrap();
    }
    drop(role_nodes);

    // The seed fleet: other fresh nodes, at other addresses (Ansible's ssh
    // master connections to the first fleet may outlive its nodes).
    let seed_nodes = boot_fleet(&addrs(SEED_FIRST), &key, true);
    eprintln!("[fleet-scale] seed fleet ready at {:.1?}", t0.elapsed());
    let seed_run = Run {
        fleet: &fleet,
        nodes: &seed_nodes,
        inventory: inventory(
            work.path(),
            "seed.yml",
            &fleet,
            &addrs(SEED_FIRST),
            "    ansible_python_interpreter: /usr/bin/python3\n",
        ),
        playbook: "seed-recipe.yml",
        extra: vec![
            "-e".into(),
            format!("seed_templates={}", templates.display()),
        ],
        module: python_module,
    };
    let seed_start = Instant::now();
    let (seed_converge, seed_rss) = seed_run.converge();
    let seed_noop = seed_run.noop();
    let seed_synced = wait_all_synchronised(&seed_nodes, &servers, seed_start);
    let conf = fs::read_to_string(templates.join("ntp.conf")).unwrap();
    for node in &seed_nodes {
        assert_eq!(
            node.read("/etc/ntpsec/ntp.conf").as_deref(),
            Some(conf.as_str()),
            "{}: the seed recipe's ntp.conf",
            node.addr()
        );
        let active = node.run(&["systemctl", "is-active", "ntpsec.service"]);
        assert_eq!(
            active.stdout.trim(),
            "active",
            "{}: ntpsec after the seed recipe",
            node.addr()
        );
    }
    line(&format!(
        "run=seed converge_s={:.1} noop_s={:.1} all_synchronised_s={:.1}",
        seed_converge.as_secs_f64(),
        seed_noop.as_secs_f64(),
        seed_synced.iter().max().unwrap().as_secs_f64()
    ));
    for ((node, rss), sync) in seed_nodes.iter().zip(&seed_rss).zip(&seed_synced) {
        line(&format!(
            "run=seed node={} peak_rss_kib={rss} synchronised_s={:.1}",
            node.addr(),
            sync.as_secs_f64()
        ));
    }
    eprintln!("[fleet-scale] whole test {:.1?}", t0.elapsed());
}

/// status's daemon flavor on a node.
fn json_flavor(node: &Node) -> String {
    let st = node.provision(&["status", "--format", "json"]);
    let doc: Value = serde_json::from_str(&st.stdout)
        .unwrap_or_else(|e| panic!("status is not JSON ({e}): {}", st.stdout));
    doc["daemon"]["flavor"].as_str().unwrap_or("?").to_string()
}
