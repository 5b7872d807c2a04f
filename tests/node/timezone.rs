//! `vars.timezone` on Debian 12 and 13 (one node each, booted at once, each
//! used for the three steps): apply sets the zone as timedatectl would,
//! without it; the re-run changes nothing; a zone the node's zoneinfo lacks
//! is refused and the node keeps its files. Debian 13's images have no
//! /etc/timezone (its tzdata no longer writes one): apply writes it.
//!
//! The plan only asks for tzdata, which the images have, so that the run is
//! about the zone alone: no daemon is installed.

use crate::harness::{exclusive, json, snapshot_diff, Node, Release};
use std::time::Instant;

const PLAN_PATH: &str = "/root/timezone-plan.yaml";
const PLAN: &str = "name: time zone only\nsteps:\n  - name: tzdata installed\n    apt: {name: tzdata, state: present}\n";

/// /etc/localtime's target as written, and /etc/timezone (None: missing).
fn zone_files(node: &Node) -> (String, Option<String>) {
    let link = node.run(&["readlink", "/etc/localtime"]).stdout;
    (link.trim().to_string(), node.read("/etc/timezone"))
}

fn apply(node: &Node, zone: &str, extra: &[&str]) -> crate::harness::Out {
    let var = format!("timezone={zone}");
    let mut args = vec!["apply", PLAN_PATH, "-e", &var, "--format", "json"];
    args.extend_from_slice(extra);
    node.provision(&args)
}

fn zone_is_set_kept_and_a_missing_one_refused(node: &Node) {
    let name = node.name();
    node.write(PLAN_PATH, PLAN);
    let (old_link, old_file) = zone_files(node);
    eprintln!(
        "[timezone] {name}: before, /etc/localtime -> {old_link}, /etc/timezone {old_file:?}"
    );

    // apply: one typed change, then both files name the zone.
    let out = apply(node, "Europe/Paris", &[]);
    assert_eq!(out.code, 0, "{name}:\n{}\n{}", out.stdout, out.stderr);
    let doc = json(&out);
    let changes: Vec<&serde_json::Value> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["changes"].as_array().unwrap())
        .filter(|c| c["kind"] == "timezone")
        .collect();
    assert_eq!(changes.len(), 1, "{name}: {}", out.stdout);
    assert_eq!(changes[0]["after"], "Europe/Paris", "{name}");
    assert_eq!(changes[0]["before"], "Etc/UTC", "{name}: {}", out.stdout);
    assert_eq!(
        zone_files(node),
        (
            "../usr/share/zoneinfo/Europe/Paris".to_string(),
            Some("Europe/Paris\n".to_string())
        ),
        "{name}"
    );
    let resolved = node.ok(&["readlink", "-f", "/etc/localtime"]).stdout;
    assert_eq!(
        resolved.trim(),
        "/usr/share/zoneinfo/Europe/Paris",
        "{name}"
    );
    let abbrev = node.ok(&["date", "+%Z"]).stdout;
    assert!(
        ["CET", "CEST"].contains(&abbrev.trim()),
        "{name}: date +%Z says {abbrev:?}"
    );
    let leftovers = node.ok(&["find", "/etc", "-maxdepth", "1", "-name", "*.ntp-provision"]);
    assert_eq!(leftovers.stdout, "", "{name}: temporary files left in /etc");

    // The re-run: nothing to change.
    let again = apply(node, "Europe/Paris", &["--detailed-exitcodes"]);
    assert_eq!(again.code, 0, "{name}:\n{}\n{}", again.stdout, again.stderr);
    assert_eq!(
        json(&again)["summary"]["changed"],
        0,
        "{name}: {}",
        again.stdout
    );

    // A zone this node does not have: refused, by plan and apply, and the
    // node's files are as they were.
    let before = node.snapshot();
    let kept = zone_files(node);
    for command in ["plan", "apply"] {
        let out = node.provision(&[command, PLAN_PATH, "-e", "timezone=Mars/Olympus"]);
        let said = format!("{}{}", out.stdout, out.stderr);
        assert_ne!(out.code, 0, "{name}: {command}:\n{said}");
        assert!(
            said.contains("the time zone Mars/Olympus is not in this node's zoneinfo database")
                && said.contains("/usr/share/zoneinfo/Mars/Olympus does not exist")
                && said.contains("tzdata"),
            "{name}: {command}:\n{said}"
        );
    }
    assert_eq!(zone_files(node), kept, "{name}");
    assert_eq!(
        snapshot_diff(&before, &node.snapshot()),
        Vec::<String>::new(),
        "{name}"
    );
}

#[test]
fn timezone_is_set_without_timedatectl_kept_on_rerun_and_a_zone_missing_from_zoneinfo_refused() {
    let _guard = exclusive();
    let t0 = Instant::now();
    let nodes: Vec<Node> = std::thread::scope(|s| {
        let handles: Vec<_> = [Release::Bookworm, Release::Trixie]
            .into_iter()
            .map(|r| s.spawn(move || Node::boot(r)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!("[timezone] booted at {:.1?}", t0.elapsed());
    std::thread::scope(|s| {
        for node in &nodes {
            s.spawn(move || zone_is_set_kept_and_a_missing_one_refused(node));
        }
    });
    eprintln!("[timezone] done at {:.1?}", t0.elapsed());
}
