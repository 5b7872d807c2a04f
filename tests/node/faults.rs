//! Faults on real nodes: a held dpkg or apt lock, an interrupted dpkg, a
//! mirror that does not answer, the agent killed half way, a config the
//! daemon parses but cannot work with, and two runs at once. Each test checks
//! the message the operator gets, the node afterwards (nothing lost, the
//! daemon running) and that the next run converges.
//!
//! Daemons only ever get loopback servers; the broken mirror is a closed
//! loopback port.

use crate::harness::{exclusive, json, plan_with_template, repo_template, Node, Release, SERVERS};
use serde_json::Value;
use std::time::{Duration, Instant};

const NTPSEC_CONF: &str = "/etc/ntpsec/ntp.conf";

/// Applies and requires success, then requires the next run to change nothing.
fn converges(node: &Node) -> Value {
    let (out, doc) = node.apply_json(&[]);
    assert_eq!(
        out.code,
        0,
        "{}: apply did not converge:\n{}\n{}",
        node.name(),
        out.stdout,
        out.stderr
    );
    node.rerun_clean(&[]);
    assert_eq!(
        node.run(&["systemctl", "is-active", "ntpsec.service"])
            .stdout
            .trim(),
        "active"
    );
    doc
}

fn step<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name:?} in {doc:#}"))
}

fn failed_step(doc: &Value) -> &Value {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["status"] == "failed")
        .unwrap_or_else(|| panic!("no failed step in {doc:#}"))
}

/// Polls `check` every 200 ms until it holds or `bound` passes.
fn wait_for(what: &str, bound: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < bound,
            "gave up after {bound:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn main_pid(node: &Node, unit: &str) -> u32 {
    node.unit_property(unit, "MainPID").parse().unwrap()
}

/// Holds `lock` as apt and dpkg take it (an fcntl write lock) from a
/// process of its own, a transient unit `unit`, until that unit is stopped.
/// perl is in every minbase tree; apt names the holder `perl`.
fn hold_lock(node: &Node, unit: &str, lock: &str) -> u32 {
    let ready = format!("/run/{unit}.ready");
    let script = "use Fcntl; open(my $f, '>>', $ARGV[0]) or die \"$!\"; \
                  my $l = pack('s s x4 q q l x4', F_WRLCK, 0, 0, 0, 0); fcntl($f, F_SETLKW, $l) or die \"$!\"; \
                  open(my $m, '>', $ARGV[1]) or die; close $m; sleep 120;";
    node.ok(&[
        "systemd-run",
        &format!("--unit={unit}"),
        "--",
        "perl",
        "-e",
        script,
        lock,
        &ready,
    ]);
    wait_for(
        &format!("{unit} to hold {lock}"),
        Duration::from_secs(20),
        || node.run(&["test", "-e", &ready]).success(),
    );
    main_pid(node, unit)
}

#[test]
fn held_apt_and_dpkg_locks_are_waited_for_then_named_and_the_run_after_converges() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bookworm);

    // apt-get update needs the lists lock.
    let pid = hold_lock(&node, "lists-holder", "/var/lib/apt/lists/lock");
    // The messages prove the wait (its start, and giving up after 3 s): no
    // test asserts a wall-clock time.
    let (out, doc) = node.apply_json(&["--lock-timeout", "3"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "waiting for /var/lib/apt/lists/lock, held by process {pid} (perl)"
        )),
        "{}",
        out.stderr
    );
    let failed = failed_step(&doc);
    assert_eq!(failed["name"], "Package lists fresh");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "/var/lib/apt/lists/lock is held by process {pid} (perl); gave up after 3 s (--lock-timeout). Let it finish (`ps -p {pid} -o args`) and run again"
        )),
        "{error}"
    );
    assert!(
        error.contains("E: Could not get lock /var/lib/apt/lists/lock"),
        "apt's own words: {error}"
    );
    assert_eq!(
        step(&doc, "NTP daemon at the latest version")["status"],
        "skipped"
    );
    assert_ne!(node.dpkg_abbrev("ntpsec"), "ii", "nothing installed");
    node.ok(&["systemctl", "stop", "lists-holder"]);

    // Installing needs the dpkg frontend lock.
    let pid = hold_lock(&node, "dpkg-holder", "/var/lib/dpkg/lock-frontend");
    let (out, doc) = node.apply_json(&["--lock-timeout", "3"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let failed = failed_step(&doc);
    assert_eq!(failed["name"], "NTP daemon at the latest version");
    assert!(
        failed["error"].as_str().unwrap().contains(&format!(
            "/var/lib/dpkg/lock-frontend is held by process {pid} (perl); gave up after 3 s"
        )),
        "{failed:#}"
    );
    assert_eq!(
        step(&doc, "Package lists fresh")["status"],
        "changed",
        "what was done is reported as done"
    );
    assert_ne!(node.dpkg_abbrev("ntpsec"), "ii");
    assert!(
        node.run(&["test", "-e", "/var/lib/dpkg/lock-frontend"])
            .success(),
        "the lock file is never deleted"
    );

    // Released while a run waits: that run goes on. A timer's default
    // accuracy is one minute (systemd coalesces wake-ups): without
    // AccuracySec the release may come after the run gave up.
    node.ok(&[
        "systemd-run",
        "--on-active=3",
        "--timer-property=AccuracySec=100ms",
        "--unit=release-holder",
        "systemctl",
        "stop",
        "dpkg-holder",
    ]);
    let (out, _) = node.apply_json(&["--lock-timeout", "60"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("/var/lib/dpkg/lock-frontend, held by process"),
        "the wait was shown: {}",
        out.stderr
    );
    converges(&node);
}

#[test]
fn an_interrupted_dpkg_is_finished_first_and_the_run_converges() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bookworm);
    converges(&node);
    let ours = node.read(NTPSEC_CONF).unwrap();

    // Unpacked but not configured (`iU`), and a journal entry left behind:
    // what a dpkg killed half way leaves.
    node.ok(&[
        "sh",
        "-c",
        "cd /tmp && apt-get -q download ntpsec && dpkg --unpack /tmp/ntpsec_*.deb",
    ]);
    node.ok(&["touch", "/var/lib/dpkg/updates/0001"]);
    assert_eq!(node.dpkg_abbrev("ntpsec"), "iU");
    let refused = node.run(&["apt-get", "-y", "install", "ntpsec"]);
    assert!(
        refused.stderr.contains("dpkg was interrupted"),
        "apt itself refuses: {}",
        refused.stderr
    );

    let plan = node.provision(&["plan", "-e", SERVERS, "--format", "json"]);
    let plan = json(&plan);
    assert_eq!(
        plan["steps"][0]["name"], "Interrupted dpkg run finished",
        "{plan:#}"
    );
    let repair = &plan["steps"][0]["changes"][0];
    assert_eq!(repair["kind"], "repair");
    assert!(
        repair["reason"]
            .as_str()
            .unwrap()
            .starts_with("dpkg was interrupted (1 journal entries in /var/lib/dpkg/updates)"),
        "{repair:#}"
    );
    assert_eq!(repair["packages"][0]["package"], "ntpsec");

    let doc = converges(&node);
    assert_eq!(
        step(&doc, "Interrupted dpkg run finished")["status"],
        "changed"
    );
    assert_eq!(node.dpkg_abbrev("ntpsec"), "ii");
    assert_eq!(
        node.read(NTPSEC_CONF).unwrap(),
        ours,
        "our config survived the repair (--force-confold)"
    );

    // dpkg interrupted by another program while apply updates old lists (an
    // update hook stands in for it): the rest of the run, decided again on
    // the fresh lists, cannot be; the update stands, nothing after it runs,
    // and the next run repairs and converges.
    node.write(
        "/etc/apt/apt.conf.d/99ntpp-test-dpkg",
        "APT::Update::Post-Invoke { \"touch /var/lib/dpkg/updates/0001\"; };\n",
    );
    node.ok(&[
        "sh",
        "-c",
        "touch -d '-2 hours' /var/lib/apt/lists/*Release /var/lib/apt/periodic/update-success-stamp",
    ]);
    node.write(NTPSEC_CONF, &format!("{ours}# drift\n"));
    let (out, doc) = node.apply_json(&["--detailed-exitcodes"]);
    assert_eq!(out.code, 6, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(step(&doc, "Package lists fresh")["status"], "changed");
    let error = doc["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "the package lists were updated, then the rest of the run could not be decided on them: \
             dpkg needs `dpkg --configure -a` after this run updated the package lists"
        ),
        "{error}"
    );
    assert_eq!(
        step(&doc, "NTP config with our servers and access control")["status"],
        "skipped"
    );
    assert_eq!(
        node.read(NTPSEC_CONF).unwrap(),
        format!("{ours}# drift\n"),
        "nothing after the update ran"
    );
    node.ok(&["rm", "/etc/apt/apt.conf.d/99ntpp-test-dpkg"]);
    let doc = converges(&node);
    assert_eq!(
        step(&doc, "Interrupted dpkg run finished")["status"],
        "changed"
    );
    assert_eq!(node.read(NTPSEC_CONF).unwrap(), ours);
}

#[test]
fn a_mirror_that_does_not_answer_fails_with_apts_words_and_changes_nothing() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bookworm);
    let sources = node.read("/etc/apt/sources.list").unwrap();
    // Port 9 (discard) on loopback: nothing listens, every fetch is refused.
    let broken = "deb http://127.0.0.1:9/debian bookworm main\n";

    // A fresh node: no package lists at all, so nothing can be planned.
    node.write("/etc/apt/sources.list", broken);
    let before = node.snapshot();
    let (out, doc) = node.apply_json(&[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let error = doc["error"].as_str().unwrap();
    assert!(error.starts_with("nothing was changed: "), "{error}");
    // apt-get update reports an unreachable mirror with W: lines and exit 0.
    assert!(
        error.contains("W: Failed to fetch http://127.0.0.1:9/debian/dists/bookworm/InRelease"),
        "apt's own lines: {error}"
    );
    assert!(
        error.contains("Check /etc/apt/sources.list"),
        "what to do: {error}"
    );
    assert_eq!(doc["steps"].as_array().unwrap().len(), 0);
    let changed = crate::harness::snapshot_diff(&before, &node.snapshot());
    assert!(changed.is_empty(), "the node is unchanged: {changed:#?}");

    // Lists from the working mirror; then every fetch goes to the closed
    // loopback port (a proxy setting keeps the lists valid for the same
    // sources), so the package download fails.
    node.write("/etc/apt/sources.list", &sources);
    node.ok(&["apt-get", "-q", "update"]);
    // Fresh lists by the stamp apply itself keeps: no apt-get update is planned.
    node.ok(&[
        "sh",
        "-c",
        "mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/update-success-stamp",
    ]);
    let proxy = "/etc/apt/apt.conf.d/99-closed-port";
    node.write(proxy, "Acquire::http::Proxy \"http://127.0.0.1:9\";\nAcquire::https::Proxy \"http://127.0.0.1:9\";\n");
    let (out, doc) = node.apply_json(&[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let failed = failed_step(&doc);
    assert_eq!(failed["name"], "NTP daemon at the latest version");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("E: Failed to fetch"), "{error}");
    assert!(
        error.contains("A mirror did not answer: check /etc/apt/sources.list"),
        "{error}"
    );
    assert!(
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .skip_while(|s| s["status"] != "failed")
            .skip(1)
            .all(|s| s["status"] == "skipped"),
        "later steps do not run: {doc:#}"
    );
    assert_ne!(node.dpkg_abbrev("ntpsec"), "ii", "nothing installed");
    assert!(node.read(NTPSEC_CONF).is_none(), "no config written");

    // The mirror is back: the next run converges.
    node.ok(&["rm", proxy]);
    converges(&node);
}

/// Runs the agent (`apply -e SERVERS`) as a child of a perl watcher in the
/// node that polls `dir` every millisecond and kill -9s the agent the moment
/// a temporary file of `replace_atomically` for `file` appears there (a
/// shell or a poll from the host would miss a file that lives for
/// milliseconds). Returns the temp file's name and the agent's wait status
/// as perl saw it; panics when the agent exits first or after 300 s.
fn kill_agent_when_writing(node: &Node, dir: &str, file: &str) -> (String, i32) {
    // WNOHANG is 1 on Linux: no POSIX module needed.
    let script = r#"
        my ($dir, $file, $out, @agent) = @ARGV;
        my $temp = qr/^\.\Q$file\E\.[A-Za-z0-9]{6}\.ntp-provision$/;
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            open(STDOUT, '>', $out) or die "$out: $!";
            open(STDERR, '>&', \*STDOUT) or die;
            exec(@agent) or die "exec: $!";
        }
        my $deadline = time + 300;
        while (time < $deadline) {
            if (opendir(my $d, $dir)) {
                my @seen = grep { /$temp/ } readdir($d);
                if (@seen) {
                    kill('KILL', $pid);
                    waitpid($pid, 0);
                    print "seen $seen[0]\nstatus $?\n";
                    exit 0;
                }
            }
            if (waitpid($pid, 1) == $pid) {
                print "the agent exited (status $?) before a temp file appeared\n";
                exit 1;
            }
            select(undef, undef, undef, 0.001);
        }
        kill('KILL', $pid);
        waitpid($pid, 0);
        print "no temp file within 300 s\n";
        exit 2;
    "#;
    let out = node.run(&[
        "perl",
        "-e",
        script,
        dir,
        file,
        "/root/agent.txt",
        "/usr/local/bin/ntp-provision",
        "apply",
        "-e",
        SERVERS,
    ]);
    let agent = node.read("/root/agent.txt").unwrap_or_default();
    assert_eq!(
        out.code, 0,
        "the watcher missed the write:\n{}{}\nthe agent's output:\n{agent}",
        out.stdout, out.stderr
    );
    let field = |key: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key:?} in {}", out.stdout))
            .to_string()
    };
    (field("seen "), field("status ").parse().unwrap())
}

/// The md5sum dpkg records for the conffile `path` of `package`.
fn conffile_md5(node: &Node, package: &str, path: &str) -> String {
    let listed = node
        .ok(&["dpkg-query", "-W", "-f=${Conffiles}", package])
        .stdout;
    listed
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{path} ")))
        .unwrap_or_else(|| panic!("{package} has no conffile {path}: {listed}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn the_agent_killed_half_way_leaves_no_mix_and_the_next_run_converges() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bookworm);
    node.ok(&["truncate", "-s", "0", "/var/log/dpkg.log"]);
    // KillMode=process: only the agent dies, as with a kill -9 over SSH; apt and
    // dpkg, its children, carry on as orphans.
    node.ok(&[
        "systemd-run",
        "--unit=agent",
        "-p",
        "KillMode=process",
        "--",
        "/usr/local/bin/ntp-provision",
        "apply",
        "-e",
        SERVERS,
    ]);
    wait_for("dpkg to start unpacking", Duration::from_secs(300), || {
        node.run(&["grep", "-qE", " (unpack|install) ", "/var/log/dpkg.log"])
            .success()
    });
    assert_ne!(main_pid(&node, "agent"), 0, "the agent is still running");
    // kill -9 of the agent alone (minbase has no kill(1)).
    node.ok(&[
        "systemctl",
        "kill",
        "--kill-whom=main",
        "--signal=SIGKILL",
        "agent",
    ]);
    wait_for("the agent to be gone", Duration::from_secs(20), || {
        main_pid(&node, "agent") == 0
    });
    assert!(
        node.read(NTPSEC_CONF)
            .is_none_or(|t| !t.contains("written by ntp-provision")),
        "killed while dpkg unpacked, the agent wrote no config"
    );

    // The next run, killed while it writes the config: the lock the first
    // agent held died with it, and the orphaned dpkg has finished (or this
    // run waits for its lock).
    let (temp, status) = kill_agent_when_writing(&node, "/etc/ntpsec", "ntp.conf");
    assert_eq!(status & 0x7f, 9, "the agent died of SIGKILL");
    assert!(
        node.run(&["test", "-f", &format!("/etc/ntpsec/{temp}")])
            .success(),
        "{temp} is left behind: the kill came before the rename"
    );
    // The config is the package's, whole; never a mix.
    assert_eq!(node.dpkg_abbrev("ntpsec"), "ii");
    let md5 = node.ok(&["md5sum", NTPSEC_CONF]).stdout;
    assert_eq!(
        md5.split_whitespace().next().unwrap(),
        conffile_md5(&node, "ntpsec", NTPSEC_CONF),
        "{NTPSEC_CONF} is the package's as dpkg installed it"
    );

    // The next run sweeps the temp file, writes the config and converges.
    let (out, doc) = node.apply_json(&["-v"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "removed /etc/ntpsec/{temp}, left by an earlier run that was killed"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        step(&doc, "NTP config with our servers and access control")["status"],
        "changed"
    );
    assert!(node
        .read(NTPSEC_CONF)
        .unwrap()
        .contains("written by ntp-provision"));
    let temps = node
        .run(&["find", "/etc", "-name", ".*.ntp-provision"])
        .stdout;
    assert!(temps.trim().is_empty(), "temporary files left: {temps}");
    node.rerun_clean(&[]);
    assert_eq!(
        node.run(&["systemctl", "is-active", "ntpsec.service"])
            .stdout
            .trim(),
        "active"
    );
}

/// Applies `plan` (with `vars` after the test servers), whose config leaves
/// the daemon unhealthy, and checks the rollback: the config step made a
/// backup of `conf`, the handler's restart fails saying `why` with the
/// unit's own log lines, `conf` is put back from that backup (which stays)
/// and `unit` runs again on it; and the good plan is then still converged.
fn assert_rolled_back(node: &Node, plan: &str, vars: &[&str], conf: &str, unit: &str, why: &str) {
    let good = node.read(conf).unwrap();
    let mut args = vec!["apply", plan, "-e", SERVERS];
    for v in vars {
        args.extend(["-e", v]);
    }
    args.extend(["--format", "json"]);
    let out = node.provision(&args);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let doc = json(&out);
    let config = step(&doc, "NTP config with our servers and access control");
    assert_eq!(config["status"], "changed");
    let backup = config["changes"][0]["backup"].as_str().unwrap().to_string();
    assert!(
        backup.starts_with(&format!("{conf}.")) && backup.ends_with(".ntp-provision.bak"),
        "{backup}"
    );
    let failed = failed_step(&doc);
    assert_eq!(
        (failed["name"].as_str(), failed["handler"].as_bool()),
        (Some("restart ntp"), Some(true))
    );
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains(why), "{error}");
    assert!(
        error.contains(&format!("last log lines of {unit}")),
        "the daemon's own log lines: {error}"
    );
    assert!(
        error.contains(&format!("Rolled back: restored {conf} from {backup}")),
        "{error}"
    );
    assert!(
        error.contains(&format!("{unit} runs again with the previous config")),
        "{error}"
    );
    assert_eq!(
        node.read(conf).unwrap(),
        good,
        "the live config is the previous one"
    );
    assert_eq!(node.read(&backup).unwrap(), good, "and its backup stays");
    assert_eq!(
        node.run(&["systemctl", "is-active", unit]).stdout.trim(),
        "active"
    );

    // The good plan is still converged: nothing to do.
    let extra: Vec<&str> = vars.iter().flat_map(|v| ["-e", *v]).collect();
    node.rerun_clean(&extra);
}

#[test]
fn a_config_that_stops_the_daemon_answering_is_rolled_back() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bookworm);
    converges(&node);

    // NTPsec parses this and runs, but ignores everything from localhost:
    // the restart "succeeds" and the daemon answers nobody here.
    let template = repo_template("ntpsec.conf.j2");
    assert!(template.contains("\nrestrict 127.0.0.1\n"));
    let plan = plan_with_template(
        &node,
        "/root/bad",
        &template.replace("\nrestrict 127.0.0.1\n", "\nrestrict 127.0.0.1 ignore\n"),
    );
    assert_rolled_back(
        &node,
        &plan,
        &[],
        NTPSEC_CONF,
        "ntpsec.service",
        "ntpsec did not answer on localhost within 10 s",
    );
    let verify = node.provision(&["verify", "--format", "json"]);
    assert_eq!(
        json(&verify)["time_service"],
        "served",
        "the daemon answers again: {}",
        verify.stdout
    );
}

/// chrony's health is its own tool answering (`chronyc -n tracking`), not a
/// time query: a config that closes both command sockets parses, starts,
/// and leaves chronyc nothing to talk to. The rollback puts the previous
/// config back and chrony answers again.
#[test]
fn a_chrony_config_that_shuts_chronyc_out_is_rolled_back() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bookworm);
    let (out, _) = node.apply_json(&["-e", "daemon=chrony"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);

    let template = repo_template("chrony.conf.j2");
    let open = "bindcmdaddress 127.0.0.1\nbindcmdaddress ::1\n";
    assert!(template.contains(open));
    // No UDP command port, no Unix command socket (`bindcmdaddress /`).
    let plan = plan_with_template(
        &node,
        "/root/bad",
        &template.replace(open, "cmdport 0\nbindcmdaddress /\n"),
    );
    assert_rolled_back(
        &node,
        &plan,
        &["daemon=chrony"],
        "/etc/chrony/chrony.conf",
        "chrony.service",
        "chrony did not answer on localhost within 10 s (`LC_ALL=C chronyc -n tracking` exited 1: 506 Cannot talk to daemon",
    );
    assert_eq!(
        node.run(&["chronyc", "-n", "tracking"]).code,
        0,
        "chronyc answers again"
    );
}

/// Starts `apply -e SERVERS --lock-timeout 540` as the transient unit
/// `unit`, its stdout and stderr in /root/UNIT.out and /root/UNIT.err, the
/// unit kept after the run for its exit status.
fn start_apply_unit(node: &Node, unit: &str, extra: &[&str]) {
    let mut argv = vec![
        "systemd-run".to_string(),
        format!("--unit={unit}"),
        "-p".into(),
        "RemainAfterExit=yes".into(),
        "-p".into(),
        format!("StandardOutput=file:/root/{unit}.out"),
        "-p".into(),
        format!("StandardError=file:/root/{unit}.err"),
        "--".into(),
        "/usr/local/bin/ntp-provision".into(),
        "apply".into(),
        "-e".into(),
        SERVERS.into(),
        "--lock-timeout".into(),
        "540".into(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    node.ok(&argv);
}

/// Waits until /root/UNIT.err contains `text`.
fn wait_for_stderr(node: &Node, unit: &str, text: &str) {
    let path = format!("/root/{unit}.err");
    wait_for(
        &format!("{unit} to say {text:?}"),
        Duration::from_secs(60),
        || node.read(&path).is_some_and(|e| e.contains(text)),
    );
}

#[test]
fn a_second_run_waits_for_the_first_or_gives_up_naming_it() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bookworm);
    // The first run is held at its first step (apt-get update waits for the
    // lists lock) while it holds the run lock, until the test lets it go.
    let lists = hold_lock(&node, "lists-holder", "/var/lib/apt/lists/lock");
    start_apply_unit(&node, "first", &[]);
    wait_for_stderr(
        &node,
        "first",
        &format!("waiting for /var/lib/apt/lists/lock, held by process {lists} (perl)"),
    );
    let holder = node
        .run(&["cat", "/run/ntp-provision.lock"])
        .stdout
        .trim()
        .to_string();
    assert_eq!(holder, main_pid(&node, "first").to_string());

    let out = node.provision(&["plan", "-e", SERVERS, "--lock-timeout", "2"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!("another ntp-provision run (pid {holder}) holds /run/ntp-provision.lock; waiting up to 2 s")),
        "the wait is shown: {}",
        out.stderr
    );
    assert!(
        out.stdout.contains(&format!(
            "nothing was changed: another run (pid {holder}) holds /run/ntp-provision.lock; gave up after 2 s (--lock-timeout). Wait for it to finish (`ps -p {holder}`)"
        )),
        "{}",
        out.stdout
    );

    // With time enough a second run waits while the first holds the lock,
    // then runs once the first has finished, and finds the node converged.
    start_apply_unit(&node, "second", &["--format", "json"]);
    wait_for_stderr(
        &node,
        "second",
        &format!(
            "another ntp-provision run (pid {holder}) holds /run/ntp-provision.lock; waiting up to 540 s (--lock-timeout), 0 s so far"
        ),
    );
    assert_ne!(main_pid(&node, "first"), 0, "the first still runs");
    node.ok(&["systemctl", "stop", "lists-holder"]);
    wait_for("both runs to finish", Duration::from_secs(540), || {
        main_pid(&node, "first") == 0 && main_pid(&node, "second") == 0
    });
    for unit in ["first", "second"] {
        assert_eq!(
            node.unit_property(unit, "ExecMainStatus"),
            "0",
            "{unit}: {}",
            node.read(&format!("/root/{unit}.err")).unwrap_or_default()
        );
    }
    let doc: Value = serde_json::from_str(&node.read("/root/second.out").unwrap()).unwrap();
    assert_eq!(
        doc["summary"]["changed"], 0,
        "the first run had done it all: {doc:#}"
    );
    // The run log has a line per apply, in the order they finished: the
    // first made the changes, the second, after it, none.
    let log = node.read("/var/log/ntp-provision.log").unwrap();
    let runs: Vec<&str> = log.lines().collect();
    assert_eq!(runs.len(), 2, "{log}");
    assert!(
        !runs[0].contains(" changed=0 ") && !runs[0].ends_with("FAILED"),
        "{log}"
    );
    assert!(
        runs[1].contains(" changed=0 failed=0 ") && !runs[1].ends_with("FAILED"),
        "{log}"
    );
    assert_eq!(
        node.run(&["systemctl", "is-active", "ntpsec.service"])
            .stdout
            .trim(),
        "active"
    );
}

#[test]
fn sigterm_lets_the_install_finish_prints_the_report_and_the_next_run_converges() {
    let _one_at_a_time = exclusive();
    let node = Node::boot(Release::Bookworm);
    node.ok(&["truncate", "-s", "0", "/var/log/dpkg.log"]);
    node.ok(&[
        "systemd-run",
        "--unit=agent",
        "-p",
        "RemainAfterExit=yes",
        "-p",
        "StandardOutput=file:/root/report.txt",
        "--",
        "/usr/local/bin/ntp-provision",
        "apply",
        "-e",
        SERVERS,
    ]);
    wait_for("dpkg to start unpacking", Duration::from_secs(300), || {
        node.run(&["grep", "-qE", " (unpack|install) ", "/var/log/dpkg.log"])
            .success()
    });
    node.ok(&[
        "systemctl",
        "kill",
        "--kill-whom=main",
        "--signal=SIGTERM",
        "agent",
    ]);
    wait_for(
        "the agent to finish its step and exit",
        Duration::from_secs(300),
        || main_pid(&node, "agent") == 0,
    );

    assert_eq!(node.unit_property("agent", "ExecMainStatus"), "1");
    let report = node.read("/root/report.txt").unwrap();
    assert!(
        report.contains("changed: NTP daemon at the latest version"),
        "the step in progress finished:\n{report}"
    );
    assert!(
        report.contains("skipping: NTP config with our servers and access control"),
        "{report}"
    );
    assert!(
        report.contains("error: SIGTERM received: stopped after "),
        "{report}"
    );
    assert!(report.contains("Run apply again to finish"), "{report}");
    assert!(report.contains("RECAP "), "{report}");
    assert_eq!(
        node.dpkg_abbrev("ntpsec"),
        "ii",
        "no half-installed package"
    );
    converges(&node);
}
